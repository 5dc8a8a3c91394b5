/* serve_cmd.c: edgefetch serve. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/paths.h"
#include "../common/util.h"
#include "../registry/serve.h"
#include "cli.h"

static const char serve_usage[]
    = "usage: edgefetch serve [--listen ADDR:PORT] [--store DIR] [--origin HOST]\n"
      "\n"
      "  Serve the content store as a read-only registry: GET and HEAD of /v2/,\n"
      "  manifests (by digest, or by tag as ORIGIN/NAME:TAG was recorded; containerd's\n"
      "  ?ns=ORIGIN names the origin) and blobs, each verified as it goes out.\n"
      "  --listen ADDR:PORT  default 127.0.0.1:5000 (plain HTTP: loopback only)\n"
      "  --origin HOST       the registry a request without ?ns= is for\n";

int
cmd_serve (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "store", required_argument, NULL, 's' },
    { "origin", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct reg_server_opts o = { .listen = "127.0.0.1:5000" };
  const char *store_dir = cli_env ("EDGEFETCH_STORE", EF_DEFAULT_STORE);
  cleanup_err ef_err *err = NULL;
  reg_server *srv = NULL;
  reg_store *s = NULL;
  int c, rc;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'l': o.listen = optarg; break;
      case 's': store_dir = optarg; break;
      case 'o': o.origin = optarg; break;
      case 'h': fputs (serve_usage, stdout); return 0;
      default: return cli_bad_option ("serve", c, argv);
      }
  if (optind != argc)
    return cli_usage_error ("serve", "no arguments expected");
  if (strncmp (o.listen, "127.", 4) != 0)
    return cli_usage_error ("serve", "plain HTTP listens on loopback only (127.0.0.0/8)");
  rc = reg_store_open (&s, store_dir, &err);
  if (rc == 0)
    rc = reg_server_start (&srv, s, &o, &err);
  if (rc == 0)
    {
      printf ("serving %s on http://%s\n", store_dir, reg_server_address (srv));
      fflush (stdout);
      while (!ef_cancel)
        {
          struct timespec ts = { 0, 200000000 };
          nanosleep (&ts, NULL);
        }
    }
  reg_server_stop (srv);
  reg_store_free (s);
  return rc < 0 ? cli_report ("serve", err) : 0;
}
