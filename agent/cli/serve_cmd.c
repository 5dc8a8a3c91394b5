/* serve_cmd.c: edgefetch serve. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../common/paths.h"
#include "../../common/util.h"
#include "../../registry/serve/serve.h"
#include "cli.h"

#define ORIGINS_MAX 16

static const char serve_usage[]
    = "usage: edgefetch serve [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE [--client-ca FILE]]\n"
      "                       [--store DIR] [--origin HOST ...] [--creds USER:PASS] [--auth-file FILE]\n"
      "                       [--certs-dir DIR] [--ca-file FILE] [--jobs N] [--public]\n"
      "\n"
      "  Serve the content store as a read-only registry mirror: GET and HEAD of /v2/,\n"
      "  manifests (by digest, or by tag) and blobs, each verified as it goes out.\n"
      "  containerd's ?ns=HOST names the origin registry of a request.\n"
      "  --listen ADDR:PORT   default 127.0.0.1:5000; plain HTTP listens on loopback only\n"
      "  --tls-cert, --tls-key  serve HTTPS (PEM files), on any address\n"
      "  --client-ca FILE     require client certificates issued by this CA\n"
      "  --origin HOST        a registry whose misses are fetched (once, verified, kept);\n"
      "                       the first is the one a request without ?ns= is for.  Without\n"
      "                       it, only what the store holds is served.\n"
      "  --creds, --auth-file, --certs-dir, --ca-file  as for pull: how origins are reached\n"
      "  --public             serve what the origin credentials unlock to anyone who reaches\n"
      "                       a non-loopback address; without it, such a cache needs --client-ca\n";

struct serve_args
{
  struct reg_server_opts so;
  struct reg_client_opts co;
  const char *store, *certs_dir;
  const char *origins[ORIGINS_MAX + 1];
  size_t norigins;
  bool public;
};

/* 127.0.0.0/8: the server listens on IPv4 addresses only. */
static bool
loopback (const char *listen)
{
  return strncmp (listen, "127.", 4) == 0;
}

static int
parse_args (int argc, char **argv, struct serve_args *a, bool *done)
{
  static const struct option longopts[] = {
    { "listen", required_argument, NULL, 'l' },   { "store", required_argument, NULL, 's' },
    { "origin", required_argument, NULL, 'o' },   { "tls-cert", required_argument, NULL, 'T' },
    { "tls-key", required_argument, NULL, 'K' },  { "client-ca", required_argument, NULL, 'A' },
    { "creds", required_argument, NULL, 'c' },    { "auth-file", required_argument, NULL, 'a' },
    { "certs-dir", required_argument, NULL, 'd' }, { "ca-file", required_argument, NULL, 'C' },
    { "jobs", required_argument, NULL, 'j' },     { "public", no_argument, NULL, 'P' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t n;
  int c;

  *done = false;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'l': a->so.listen = optarg; break;
      case 's': a->store = optarg; break;
      case 'T': a->so.tls_cert = optarg; break;
      case 'K': a->so.tls_key = optarg; break;
      case 'A': a->so.client_ca = optarg; break;
      case 'c': a->co.session.creds = optarg; break;
      case 'a': a->co.session.auth_file = optarg; break;
      case 'd': a->certs_dir = optarg; break;
      case 'C': a->co.session.ca_file = optarg; break;
      case 'o':
        if (a->norigins == ORIGINS_MAX)
          return cli_usage_error ("serve", "at most 16 --origin");
        a->origins[a->norigins++] = optarg;
        break;
      case 'j':
        if (ef_parse_u64 (optarg, 64, &n) < 0 || n == 0)
          return cli_usage_error ("serve", "--jobs takes a number from 1 to 64");
        a->co.jobs = (int) n;
        break;
      case 'P': a->public = true; break;
      case 'h': fputs (serve_usage, stdout); *done = true; return 0;
      default: return cli_bad_option ("serve", c, argv);
      }
  if (optind != argc)
    return cli_usage_error ("serve", "no arguments expected");
  if (a->so.tls_cert == NULL && !loopback (a->so.listen))
    return cli_usage_error ("serve", "plain HTTP listens on loopback only (127.0.0.0/8); give --tls-cert and --tls-key");
  /* a cache that fetches with credentials hands what they unlock to its
   * clients: off loopback, only to clients it checked, unless meant */
  if (a->norigins && (a->co.session.creds || a->co.session.auth_file) && !loopback (a->so.listen)
      && a->so.client_ca == NULL && !a->public)
    return cli_usage_error ("serve",
                            "with origin credentials on %s, anyone who reaches it gets the private images they "
                            "unlock: give --client-ca, or --public if that is meant",
                            a->so.listen);
  return 0;
}

int
cmd_serve (int argc, char **argv)
{
  struct serve_args a = { .so = { .listen = "127.0.0.1:5000" } };
  const char *one_cert[2] = { NULL, NULL };
  cleanup_free char *spool = NULL;
  cleanup_err ef_err *err = NULL;
  reg_server *srv = NULL;
  reg_cache *cache = NULL;
  reg_store *s = NULL;
  bool done;
  int rc;

  a.store = cli_env ("EDGEFETCH_STORE", EF_DEFAULT_STORE);
  a.co.session.creds = cli_env ("EDGEFETCH_CREDS", NULL);
  a.co.session.auth_file = cli_env ("EDGEFETCH_AUTH_FILE", NULL);
  a.certs_dir = cli_env ("EDGEFETCH_CERTS_DIR", NULL);
  rc = parse_args (argc, argv, &a, &done);
  if (rc != 0 || done)
    return rc;
  cli_client_opts (&a.co, a.certs_dir, one_cert);
  spool = xasprintf ("%s/ingest", a.store);
  a.co.spool_dir = spool;
  a.so.origin = a.origins[0];
  rc = reg_store_open (&s, a.store, &err);
  if (rc == 0 && a.norigins)
    rc = reg_cache_new (&cache, s, a.origins, &a.co, &err);
  a.so.cache = cache;
  if (rc == 0)
    rc = reg_server_start (&srv, s, &a.so, &err);
  if (rc == 0)
    {
      bool creds = a.co.session.creds || a.co.session.auth_file;
      printf ("serving %s on %s://%s%s%s; %s\n", a.store, a.so.tls_cert ? "https" : "http", reg_server_address (srv),
              a.norigins ? ", a cache of " : "", a.norigins ? a.origins[0] : "",
              a.so.client_ca              ? "clients must present a certificate of --client-ca"
              : loopback (a.so.listen)    ? "to this machine only (loopback)"
              : a.norigins && creds       ? "PUBLIC (--public): anyone who reaches it gets what the origin "
                                            "credentials unlock"
                                          : "to anyone who reaches it");
      fflush (stdout);
      while (!ef_cancel)
        {
          struct timespec ts = { 0, 200000000 };
          nanosleep (&ts, NULL);
        }
    }
  reg_server_stop (srv);
  reg_cache_free (cache);
  reg_store_free (s);
  return rc < 0 ? cli_report ("serve", err) : 0;
}
