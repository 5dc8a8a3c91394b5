/* util.h: allocation that aborts on OOM, cleanup attributes, bounded buffers. */
#ifndef EF_UTIL_H
#define EF_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

void *xmalloc (size_t n);
void *xcalloc (size_t n, size_t size);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
char *xvasprintf (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

static inline void
freep (void *p)
{
  free (*(void **) p);
}
void closep (int *fd);

#define cleanup_free __attribute__ ((cleanup (freep)))
#define cleanup_close __attribute__ ((cleanup (closep)))

/* A growable byte buffer with a hard cap (curl's dynbuf): an append
 * past `max` fails and leaves the buffer as it was. Always NUL-terminated. */
struct ef_buf
{
  char *data;
  size_t len;
  size_t cap;
  size_t max;
};
void ef_buf_init (struct ef_buf *b, size_t max);
int ef_buf_append (struct ef_buf *b, const void *p, size_t n);
void ef_buf_dispose (struct ef_buf *b);
/* A libcurl write callback appending to the struct ef_buf at ud; past its
 * cap it returns 0, which makes curl stop the transfer. */
size_t ef_buf_write_cb (char *p, size_t size, size_t n, void *ud);

/* Parse a decimal number in [0, max] spanning the whole string. */
int ef_parse_u64 (const char *s, uint64_t max, uint64_t *out);
/* Overwrite then free a secret. */
void ef_free_secret (char *s);
/* Monotonic clock in milliseconds. */
int64_t ef_now_ms (void);

/* Standard base64 (with padding) through OpenSSL.  Decoding is strict:
 * whitespace-free input whose length is a multiple of 4.  Returns the
 * decoded length or -1; *out is NUL-terminated and the caller frees it. */
long ef_b64_decode (const char *in, size_t len, unsigned char **out);
/* Standard base64 with padding, or with url set the URL-safe alphabet
 * (- and _) with padding; caller frees. */
char *ef_b64_encode (const void *in, size_t len, bool url);

#endif
