/* json.c: see json.h.  jansson takes its allocator from the process: ours
 * counts what a parse holds (per thread) and refuses past the budget.  It
 * is malloc itself, measured with malloc_usable_size, so that what jansson
 * hands out (json_dumps) is still freed with free(). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "json.h"

static __thread size_t live, budget;
static __thread int exceeded;

static void *
counted_malloc (size_t n)
{
  void *p;

  if (budget && (n > budget || live > budget - n))
    {
      exceeded = 1;
      return NULL;
    }
  p = malloc (n);
  if (p)
    live += malloc_usable_size (p);
  return p;
}

static void
counted_free (void *p)
{
  size_t n = p ? malloc_usable_size (p) : 0;

  live -= n < live ? n : live;
  free (p);
}

__attribute__ ((constructor)) static void
install (void)
{
  json_set_alloc_funcs (counted_malloc, counted_free);
}

struct fd_source
{
  int fd;
  int error;
};

static size_t
read_fd (void *out, size_t n, void *ud)
{
  struct fd_source *src = ud;
  ssize_t r;

  do
    r = read (src->fd, out, n > 16384 ? 16384 : n);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    {
      src->error = errno;
      return (size_t) -1;
    }
  return (size_t) r;
}

/* One parse under the budget: buf, or fd when buf is NULL. */
static json_t *
parse (const char *buf, size_t len, int fd, size_t budget_bytes, const char **why)
{
  static __thread char msg[96];
  struct fd_source src = { fd, 0 };
  size_t saved_budget = budget;
  json_error_t jerr;
  json_t *j;

  budget = live + budget_bytes; /* this parse's share on top of what lives already */
  exceeded = 0;
  j = buf ? json_loadb (buf, len, JSON_REJECT_DUPLICATES, &jerr)
          : json_load_callback (read_fd, &src, JSON_REJECT_DUPLICATES, &jerr);
  budget = saved_budget;
  if (j == NULL && why)
    {
      if (exceeded)
        {
          snprintf (msg, sizeof msg, "is too complex to hold (more than %zu KiB in memory)", budget_bytes >> 10);
          *why = msg;
        }
      else
        *why = src.error ? "could not be read back" : "is not valid JSON";
    }
  exceeded = 0;
  return j;
}

json_t *
ef_json_parse (const char *buf, size_t len, size_t budget_bytes, const char **why)
{
  return parse (buf ? buf : "", len, -1, budget_bytes, why);
}

json_t *
ef_json_parse_fd (int fd, size_t budget_bytes, const char **why)
{
  if (lseek (fd, 0, SEEK_SET) < 0)
    {
      if (why)
        *why = "could not be read back";
      return NULL;
    }
  return parse (NULL, 0, fd, budget_bytes, why);
}
