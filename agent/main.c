/* main.c: the edgefetch command line. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "cli.h"

volatile int ef_cancel;

static const char usage[] =
    "usage: edgefetch pull    [OPTIONS] IMAGE      fetch, verify, store, optionally export\n"
    "       edgefetch --version | --help | SUBCOMMAND --help\n"
    "\n"
    "Exit codes: 0 done, 2 usage, 3 auth refused, 4 not found, 5 verification failed,\n"
    "            6 network, 7 local failure (disk, store, runtime).\n";

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

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fputs (usage, stderr);
      return EF_USAGE;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("edgefetch %s\n", EF_VERSION);
      return 0;
    }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      fputs (usage, stdout);
      return 0;
    }
  cli_install_signals ();
  if (strcmp (argv[1], "pull") == 0)
    return cmd_pull (argc - 1, argv + 1);
  fprintf (stderr, "edgefetch: unknown command '%s'\n%s", argv[1], usage);
  return EF_USAGE;
}
