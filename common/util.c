/* util.c: see util.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdbool.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "util.h"

static void
oom (void)
{
  static const char msg[] = "edgefetch: out of memory\n";
  if (write (2, msg, sizeof msg - 1) < 0)
    _exit (7);
  abort ();
}

void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
xcalloc (size_t n, size_t size)
{
  void *p = calloc (n ? n : 1, size ? size : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
xrealloc (void *p, size_t n)
{
  p = realloc (p, n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

char *
xstrdup (const char *s)
{
  char *p = strdup (s);
  if (p == NULL)
    oom ();
  return p;
}

char *
xstrndup (const char *s, size_t n)
{
  char *p = strndup (s, n);
  if (p == NULL)
    oom ();
  return p;
}

char *
xvasprintf (const char *fmt, va_list ap)
{
  char *p;
  if (vasprintf (&p, fmt, ap) < 0)
    oom ();
  return p;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *p;
  va_start (ap, fmt);
  p = xvasprintf (fmt, ap);
  va_end (ap);
  return p;
}

void
closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

void
ef_buf_init (struct ef_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

int
ef_buf_append (struct ef_buf *b, const void *p, size_t n)
{
  if (n > b->max || b->len > b->max - n)
    return -1;
  if (b->len + n + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap : 256;
      while (cap < b->len + n + 1)
        cap *= 2;
      b->data = xrealloc (b->data, cap);
      b->cap = cap;
    }
  memcpy (b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

size_t
ef_buf_write_cb (char *p, size_t size, size_t n, void *ud)
{
  return ef_buf_append (ud, p, size * n) < 0 ? 0 : size * n;
}

void
ef_buf_dispose (struct ef_buf *b)
{
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int
ef_parse_u64 (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;

  if (s == NULL || *s == '\0')
    return -1;
  for (; *s; s++)
    {
      if (*s < '0' || *s > '9')
        return -1;
      if (v > (max - (uint64_t) (*s - '0')) / 10)
        return -1;
      v = v * 10 + (uint64_t) (*s - '0');
    }
  *out = v;
  return 0;
}

void
ef_free_secret (char *s)
{
  if (s == NULL)
    return;
  OPENSSL_cleanse (s, strlen (s));
  free (s);
}

int64_t
ef_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long
ef_b64_decode (const char *in, size_t len, unsigned char **out)
{
  unsigned char *buf;
  int n, pad = 0;
  size_t i;

  *out = NULL;
  if (len % 4 != 0 || len > (size_t) INT32_MAX)
    return -1;
  for (i = 0; i < len; i++)
    {
      char c = in[i];
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+'
                || c == '/';
      if (c == '=' && i + 2 >= len && (i + 1 == len || in[i + 1] == '='))
        {
          pad++;
          continue;
        }
      if (!ok || pad)
        return -1;
    }
  buf = xmalloc (len / 4 * 3 + 1);
  n = EVP_DecodeBlock (buf, (const unsigned char *) in, (int) len);
  if (n < 0 || n < pad)
    {
      free (buf);
      return -1;
    }
  n -= pad;
  buf[n] = '\0';
  *out = buf;
  return n;
}

char *
ef_b64_encode (const void *in, size_t len, bool url)
{
  char *out = xmalloc (4 * ((len + 2) / 3) + 1);
  int n = EVP_EncodeBlock ((unsigned char *) out, in, (int) len);

  out[n < 0 ? 0 : n] = '\0';
  for (char *p = out; url && *p; p++)
    *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  return out;
}
