/* report.c: see report.h. */
#include <stdarg.h>
#include <stdio.h>

#include "../common/text.h"
#include "../common/util.h"
#include "report.h"

void
report_line (const char *text)
{
  cleanup_free char *safe = ef_escape (text, 2 * EF_TEXT_MAX);
  fprintf (stderr, "edgefetch: %s\n", safe);
}

int
cli_report (const char *context, ef_err *e)
{
  int code = ef_err_code (e);
  cleanup_free char *text = xasprintf ("%s%s%s", context ? context : "", context ? ": " : "",
                                       e ? ef_err_msg (e) : "failed");
  report_line (text);
  return code ? code : EF_LOCAL;
}

void
cli_report_text (const char *context, const char *text)
{
  cleanup_free char *t = xasprintf ("%s: %s", context, text);
  report_line (t);
}

void
cli_warn (const char *fmt, ...)
{
  cleanup_free char *msg = NULL, *text = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = xvasprintf (fmt, ap);
  va_end (ap);
  text = xasprintf ("warning: %s", msg);
  report_line (text);
}
