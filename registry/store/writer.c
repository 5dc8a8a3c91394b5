/* writer.c: see writer.h. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "../../common/util.h"
#include "writer.h"

struct wjob
{
  struct writer_client *c;
  int64_t off;
  char *buf;
  size_t len;
};

struct reg_writer
{
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  struct wjob *q; /* a ring of cap jobs */
  size_t head, len, cap;
  char **spare; /* buffers no ingest holds */
  size_t nspare, extra;
  bool stop;
};

static void *
writer_main (void *p)
{
  reg_writer *w = p;

  pthread_mutex_lock (&w->mu);
  for (;;)
    {
      struct wjob j;
      int e = 0;
      while (w->len == 0 && !w->stop)
        pthread_cond_wait (&w->work, &w->mu);
      if (w->len == 0)
        break;
      j = w->q[w->head];
      w->head = (w->head + 1) % w->cap;
      w->len--;
      e = j.c->werrno;
      pthread_mutex_unlock (&w->mu);
      if (e == 0)
        e = j.c->put (j.c, j.off, j.buf, j.len);
      pthread_mutex_lock (&w->mu);
      if (e && j.c->werrno == 0)
        j.c->werrno = e;
      w->spare[w->nspare++] = j.buf;
      j.c->pending--;
      pthread_cond_broadcast (&w->done);
    }
  pthread_mutex_unlock (&w->mu);
  return NULL;
}

int
reg_writer_new (reg_writer **out, size_t extra, ef_err **err)
{
  reg_writer *w = xcalloc (1, sizeof *w);

  *out = NULL;
  w->extra = extra ? extra : 1;
  w->cap = w->extra;
  w->q = xcalloc (w->cap, sizeof *w->q);
  w->spare = xcalloc (w->extra, sizeof *w->spare);
  for (size_t k = 0; k < w->extra; k++)
    w->spare[w->nspare++] = xmalloc (WRITER_BUF);
  pthread_mutex_init (&w->mu, NULL);
  pthread_cond_init (&w->work, NULL);
  pthread_cond_init (&w->done, NULL);
  if (pthread_create (&w->th, NULL, writer_main, w) != 0)
    {
      w->stop = true;
      reg_writer_free (w);
      return ef_err_set (err, EF_LOCAL, "cannot start the writer thread");
    }
  *out = w;
  return 0;
}

void
reg_writer_free (reg_writer *w)
{
  if (w == NULL)
    return;
  if (!w->stop)
    {
      pthread_mutex_lock (&w->mu);
      w->stop = true;
      pthread_cond_signal (&w->work);
      pthread_mutex_unlock (&w->mu);
      pthread_join (w->th, NULL);
    }
  for (size_t k = 0; k < w->nspare; k++)
    free (w->spare[k]);
  free (w->spare);
  free (w->q);
  pthread_mutex_destroy (&w->mu);
  pthread_cond_destroy (&w->work);
  pthread_cond_destroy (&w->done);
  free (w);
}

/* The writer's spares and its queue always hold exactly extra buffers
 * between them. */
int
writer_submit (reg_writer *w, struct writer_client *c, int64_t off, char **buf, size_t len)
{
  int e;

  pthread_mutex_lock (&w->mu);
  while (w->nspare == 0 && c->werrno == 0)
    pthread_cond_wait (&w->done, &w->mu);
  e = c->werrno;
  if (e == 0)
    {
      w->q[(w->head + w->len) % w->cap] = (struct wjob){ c, off, *buf, len };
      w->len++;
      c->pending++;
      *buf = w->spare[--w->nspare];
      pthread_cond_signal (&w->work);
    }
  pthread_mutex_unlock (&w->mu);
  return e;
}

int
writer_drain (reg_writer *w, struct writer_client *c)
{
  int e;

  pthread_mutex_lock (&w->mu);
  while (c->pending > 0)
    pthread_cond_wait (&w->done, &w->mu);
  e = c->werrno;
  pthread_mutex_unlock (&w->mu);
  return e;
}
