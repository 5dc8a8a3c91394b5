/* err.c: allocated, wrappable error messages (after crun's libcrun_error_t). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"

struct ef_err
{
  int code;
  char *msg;
};

static int
err_vset (ef_err **err, int code, int errnum, const char *fmt, va_list ap)
{
  char *msg, *full;

  if (err == NULL || *err != NULL)
    return -code;
  msg = xvasprintf (fmt, ap);
  if (errnum != 0)
    {
      full = xasprintf ("%s: %s", msg, strerror (errnum));
      free (msg);
      msg = full;
    }
  *err = xmalloc (sizeof **err);
  (*err)->code = code;
  (*err)->msg = msg;
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
ef_err_wrap (ef_err **err, const char *fmt, ...)
{
  va_list ap;
  char *ctx, *full;

  if (err == NULL || *err == NULL)
    return -EF_LOCAL;
  va_start (ap, fmt);
  ctx = xvasprintf (fmt, ap);
  va_end (ap);
  full = xasprintf ("%s: %s", ctx, (*err)->msg);
  free (ctx);
  free ((*err)->msg);
  (*err)->msg = full;
  return -(*err)->code;
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
