/* err.c: allocated, wrappable error messages (after crun's libcrun_error_t). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "text.h"
#include "util.h"

struct ef_err
{
  int code;
  char *msg;
};

/* Every message is one bounded, printable line, whatever it quotes. */
static char *
clean (char *msg)
{
  char *c = ef_escape (msg, EF_TEXT_MAX);
  free (msg);
  return c;
}

static int
err_vset (ef_err **err, int code, int errnum, const char *fmt, va_list ap)
{
  char *msg;

  if (err == NULL || *err != NULL)
    return -code;
  msg = xvasprintf (fmt, ap);
  if (errnum == ENOSPC || errnum == EDQUOT)
    {
      char *full = xasprintf ("%s: disk full", msg);
      free (msg);
      msg = full;
    }
  else if (errnum != 0)
    {
      char *full = xasprintf ("%s: %s", msg, strerror (errnum));
      free (msg);
      msg = full;
    }
  *err = xmalloc (sizeof **err);
  (*err)->code = code;
  (*err)->msg = clean (msg);
  return -code;
}

int
ef_err_set (ef_err **err, int code, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = err_vset (err, code, 0, fmt, ap);
  va_end (ap);
  return r;
}

int
ef_err_sys (ef_err **err, int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = err_vset (err, code, errnum, fmt, ap);
  va_end (ap);
  return r;
}

int
ef_err_io (ef_err **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = err_vset (err, EF_LOCAL, errnum, fmt, ap);
  va_end (ap);
  return r;
}

void
ef_err_wrap (ef_err **err, const char *fmt, ...)
{
  va_list ap;
  char *ctx;

  if (err == NULL || *err == NULL)
    return;
  va_start (ap, fmt);
  ctx = xvasprintf (fmt, ap);
  va_end (ap);
  {
    char *full = xasprintf ("%s: %s", ctx, (*err)->msg);
    free (ctx);
    free ((*err)->msg);
    (*err)->msg = clean (full);
  }
}

int
ef_err_propagate (ef_err **dst, ef_err *src)
{
  int code = src ? src->code : EF_LOCAL;

  if (dst && *dst == NULL)
    *dst = src;
  else
    ef_err_free (src);
  return -code;
}

void
ef_err_clear (ef_err **err)
{
  if (err)
    {
      ef_err_free (*err);
      *err = NULL;
    }
}

int
ef_err_code (const ef_err *e)
{
  return e ? e->code : EF_OK;
}

const char *
ef_err_msg (const ef_err *e)
{
  return e ? e->msg : "";
}

void
ef_err_free (ef_err *e)
{
  if (e == NULL)
    return;
  free (e->msg);
  free (e);
}
