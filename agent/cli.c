/* cli.c: what the subcommands share: reporting, signals, environment. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "cli.h"

volatile int ef_cancel;

int
cli_report (const char *context, ef_err *e)
{
  int code = ef_err_code (e);
  fprintf (stderr, "edgefetch: %s%s%s\n", context ? context : "", context ? ": " : "", ef_err_msg (e));
  return code ? code : EF_LOCAL;
}

int
cli_usage_error (const char *cmd, const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "edgefetch: %s: ", cmd);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, " (see edgefetch %s --help)\n", cmd);
  return EF_USAGE;
}

static void
on_signal (int sig)
{
  (void) sig;
  ef_cancel = 1;
}

void
cli_install_signals (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction (SIGPIPE, &sa, NULL);
}

const char *
cli_env (const char *name, const char *def)
{
  const char *v = getenv (name);
  return v && *v ? v : def;
}

long
cli_env_long (const char *name, long def)
{
  const char *v = getenv (name);
  uint64_t n;

  if (v == NULL || *v == '\0' || ef_parse_u64 (v, 86400000, &n) < 0)
    return def;
  return (long) n;
}

