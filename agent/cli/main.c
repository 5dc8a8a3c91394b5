/* main.c: the edgefetch command line. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "cli.h"

static const char usage[] =
    "usage: edgefetch pull    [OPTIONS] IMAGE      fetch, verify, store, optionally export\n"
    "       edgefetch agent   [--config FILE] [--once]   follow the node's pattern on the exchange\n"
    "       edgefetch status  [--config FILE] [--json]   what the agent holds\n"
    "       edgefetch verify-deployment (--key FILE | --trust-dir DIR) SERVICE_JSON\n"
    "       edgefetch gc      [--store DIR]        drop blobs no recorded image refers to\n"
    "       edgefetch trust   add|list ...         the publisher keys deployments are verified with\n"
    "       edgefetch serve   [--listen ADDR:PORT] [--tls-cert F --tls-key F] [--client-ca F] [--origin HOST]\n"
    "                         [--store DIR]   the store as a read-only registry mirror, a site cache\n"
    "       edgefetch --version | --help | SUBCOMMAND --help\n"
    "\n"
    "Exit codes: 0 done, 2 usage, 3 auth refused, 4 not found, 5 verification failed,\n"
    "            6 network, 7 local failure (disk, store, runtime).\n";

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
  if (strcmp (argv[1], "agent") == 0)
    return cmd_agent (argc - 1, argv + 1);
  if (strcmp (argv[1], "status") == 0)
    return cmd_status (argc - 1, argv + 1);
  if (strcmp (argv[1], "verify-deployment") == 0)
    return cmd_verify_deployment (argc - 1, argv + 1);
  if (strcmp (argv[1], "gc") == 0)
    return cmd_gc (argc - 1, argv + 1);
  if (strcmp (argv[1], "trust") == 0)
    return cmd_trust (argc - 1, argv + 1);
  if (strcmp (argv[1], "serve") == 0)
    return cmd_serve (argc - 1, argv + 1);
  fprintf (stderr, "edgefetch: unknown command '%s'\n%s", argv[1], usage);
  return EF_USAGE;
}
