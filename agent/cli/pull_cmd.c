/* pull_cmd.c: edgefetch pull. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../../common/paths.h"
#include "../../common/util.h"
#include "../../registry/output/export.h"
#include "../../registry/pull.h"
#include "../../registry/transfer/rate.h"
#include "cli.h"
#include "../deliver.h"

static const char pull_usage[] =
    "usage: edgefetch pull [OPTIONS] IMAGE\n"
    "\n"
    "  IMAGE is [host[:port]/]path[:tag][@sha256:<64 hex>], as docker reads it.\n"
    "\n"
    "  --platform OS/ARCH[/VARIANT]  choose from an index (default: this host's)\n"
    "  --creds USER:PASS             registry credentials (also EDGEFETCH_CREDS)\n"
    "  --auth-file FILE              a docker config.json (auths, credHelpers, credsStore)\n"
    "  --certs-dir DIR               DIR/<host[:port]>/*.crt CAs, *.cert + *.key client pair\n"
    "  --ca-file FILE                one more CA bundle for every host\n"
    "  --store DIR                   content store (default " EF_DEFAULT_STORE " or EDGEFETCH_STORE)\n"
    "  --output oci:DIR | oci-archive:FILE | docker-archive:FILE\n"
    "  --verify-key FILE             a cosign public key: require a valid signature\n"
    "  --runtime docker[:SOCK] | podman[:SOCK] | containerd[:SOCK[:NS]]  hand the image over\n"
    "  --keep-layers                 keep the layers in the store after a handoff too\n"
    "  --jobs N                      connections at most (default 16: 8 at first, more while they carry more)\n"
    "  --limit-rate RATE             cap on the whole pull's download rate, as 500K or 2M (also EDGEFETCH_LIMIT_RATE)\n"
    "  --json                        one JSON object on stdout\n"
    "  --quiet                       no progress\n";

struct progress
{
  bool on;
  bool drawn;
};

static void
human (char *buf, size_t len, int64_t n)
{
  if (n >= (int64_t) 1 << 30)
    snprintf (buf, len, "%.1f GiB", (double) n / (1 << 30));
  else if (n >= 1 << 20)
    snprintf (buf, len, "%.1f MiB", (double) n / (1 << 20));
  else
    snprintf (buf, len, "%.1f KiB", (double) n / 1024);
}

static void
draw (void *payload, int64_t done, int64_t total)
{
  struct progress *p = payload;
  char a[32], b[32], bar[31];
  int pct = total > 0 ? (int) (done * 100 / total) : 100, fill = pct * 30 / 100;

  if (!p->on)
    return;
  human (a, sizeof a, done);
  human (b, sizeof b, total);
  memset (bar, '=', (size_t) fill);
  memset (bar + fill, ' ', (size_t) (30 - fill));
  bar[30] = '\0';
  fprintf (stderr, "\r[%s] %3d%%  %s / %s   ", bar, pct, a, b);
  p->drawn = true;
}

static json_t *
result_json (const struct reg_pull_result *r, const char *output)
{
  json_t *layers = json_array ();

  /* source: the host a blob came from (a mirror of hosts.toml, or the
     registry); null when it was in the store already */
  for (size_t i = 0; i < r->nlayers; i++)
    json_array_append_new (
        layers, json_pack ("{s:s, s:I, s:s, s:s?, s:I, s:I}", "digest", r->layer_digests[i], "size",
                           (json_int_t) r->layer_sizes[i], "mediaType", r->layer_types[i], "source",
                           r->layer_sources ? r->layer_sources[i] : NULL, "bytes_fetched",
                           (json_int_t) (r->layer_stats ? r->layer_stats[i].bytes_fetched : 0), "bytes_reused",
                           (json_int_t) (r->layer_stats ? r->layer_stats[i].bytes_reused : 0)));
  return json_pack ("{s:s, s:s?, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s?, s:s?, s:s?, s:n}", "reference",
                    r->reference, "index_digest", r->index_digest, "manifest_digest", r->manifest_digest,
                    "media_type", r->media_type, "config_digest", r->config_digest, "layers", layers, "size",
                    (json_int_t) r->total_size, "bytes_fetched", (json_int_t) r->stats.bytes_fetched,
                    "bytes_reused", (json_int_t) r->stats.bytes_reused, "manifest_source", r->manifest_source,
                    "config_source", r->config_source, "output", output, "handoff");
}

struct pull_args
{
  const char *image, *platform, *creds, *auth_file, *certs_dir, *ca_file, *store, *output, *verify_key, *runtime;
  const char *limit_rate;
  long jobs;
  bool json, quiet, keep_layers;
};

/* 0 to go on, else the exit code (after --help, 0 too: *done says so). */
static int
parse_args (int argc, char **argv, struct pull_args *a, bool *done)
{
  static const struct option longopts[] = {
    { "platform", required_argument, NULL, 'p' },   { "creds", required_argument, NULL, 'c' },
    { "auth-file", required_argument, NULL, 'a' },  { "certs-dir", required_argument, NULL, 'd' },
    { "ca-file", required_argument, NULL, 'C' },    { "store", required_argument, NULL, 's' },
    { "output", required_argument, NULL, 'o' },     { "jobs", required_argument, NULL, 'j' },
    { "json", no_argument, NULL, 'J' },             { "quiet", no_argument, NULL, 'q' },
    { "verify-key", required_argument, NULL, 'k' }, { "runtime", required_argument, NULL, 'r' },
    { "keep-layers", no_argument, NULL, 'K' },      { "help", no_argument, NULL, 'h' },
    { "limit-rate", required_argument, NULL, 'L' },
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
      case 'p': a->platform = optarg; break;
      case 'c': a->creds = optarg; break;
      case 'a': a->auth_file = optarg; break;
      case 'd': a->certs_dir = optarg; break;
      case 'C': a->ca_file = optarg; break;
      case 's': a->store = optarg; break;
      case 'o': a->output = optarg; break;
      case 'k': a->verify_key = optarg; break;
      case 'r': a->runtime = optarg; break;
      case 'L': a->limit_rate = optarg; break;
      case 'j':
        if (ef_parse_u64 (optarg, 64, &n) < 0 || n == 0)
          return cli_usage_error ("pull", "--jobs takes a number from 1 to 64");
        a->jobs = (long) n;
        break;
      case 'J': a->json = true; break;
      case 'q': a->quiet = true; break;
      case 'K': a->keep_layers = true; break;
      case 'h': fputs (pull_usage, stdout); *done = true; return 0;
      default: return cli_bad_option ("pull", c, argv);
      }
  if (optind != argc - 1)
    return cli_usage_error ("pull", "exactly one IMAGE expected");
  a->image = argv[optind];
  return 0;
}

/* What can be checked before the first request is checked here. */
struct pull_plan
{
  struct reg_ref *ref;
  struct reg_platform platform;
  vfy_cosign_key *cosign_key;
  struct runtime_spec rt;
  bool has_rt;
  const char *out_path;
  enum reg_export_format fmt;
  int64_t rate;
};

static int
prepare (const struct pull_args *a, struct pull_plan *p, ef_err **err)
{
  int rc = reg_ref_parse (&p->ref, a->image, err);

  if (rc == 0 && a->platform)
    rc = reg_platform_parse (&p->platform, a->platform, err);
  else if (rc == 0)
    reg_platform_host (&p->platform);
  if (rc == 0 && a->output && (rc = reg_export_parse (a->output, &p->fmt, &p->out_path, err)) == 0)
    rc = reg_export_probe (p->fmt, p->out_path, err);
  if (rc == 0 && a->verify_key)
    rc = vfy_cosign_key_load (&p->cosign_key, a->verify_key, err);
  if (rc == 0 && a->runtime && (rc = runtime_parse (&p->rt, a->runtime, err)) == 0)
    p->has_rt = true;
  if (rc == 0 && a->limit_rate)
    rc = reg_rate_parse (a->limit_rate, &p->rate, err);
  return rc;
}

static void
print_result (const struct pull_args *a, const struct pull_plan *p, const struct delivery *d)
{
  json_t *j;

  if (!a->json)
    {
      printf ("Digest: %s\nImage ID: %s\n", d->res->manifest_digest, d->res->config_digest);
      if (p->has_rt)
        printf ("In %s as: %s%s%s\n", runtime_name (&p->rt), d->handoff.name, d->handoff.pinned[0] ? ", " : "",
                d->handoff.pinned);
      if (p->has_rt && d->handoff.note[0])
        fprintf (stderr, "edgefetch: note: %s\n", d->handoff.note);
      return;
    }
  j = result_json (d->res, a->output);
  if (p->has_rt)
    json_object_set_new (j, "handoff", runtime_result_json (&p->rt, &d->handoff, d->res->config_digest));
  json_dumpf (j, stdout, JSON_COMPACT);
  putchar ('\n');
  json_decref (j);
}

int
cmd_pull (int argc, char **argv)
{
  struct pull_args a = { 0 };
  struct pull_plan p = { 0 };
  struct delivery d = { 0 };
  struct delivery_opts o = { 0 };
  struct reg_client_opts copts = { 0 };
  struct progress prog = { false, false };
  const char *one_cert[2] = { NULL, NULL };
  cleanup_err ef_err *err = NULL;
  cleanup_free char *context = NULL, *spool = NULL;
  reg_client *client = NULL;
  reg_store *store = NULL;
  struct reg_recovery rec;
  bool done;
  int rc;

  a.creds = cli_env ("EDGEFETCH_CREDS", NULL);
  a.auth_file = cli_env ("EDGEFETCH_AUTH_FILE", NULL);
  a.certs_dir = cli_env ("EDGEFETCH_CERTS_DIR", NULL);
  a.store = cli_env ("EDGEFETCH_STORE", EF_DEFAULT_STORE);
  a.runtime = cli_env ("EDGEFETCH_RUNTIME", NULL);
  a.limit_rate = cli_env ("EDGEFETCH_LIMIT_RATE", NULL);
  a.jobs = 16;
  rc = parse_args (argc, argv, &a, &done);
  if (rc != 0 || done)
    return rc;
  context = xasprintf ("pull %s", a.image);
  cli_client_opts (&copts, a.certs_dir, one_cert);
  copts.session.creds = a.creds;
  copts.session.auth_file = a.auth_file;
  copts.session.ca_file = a.ca_file;
  copts.jobs = (int) a.jobs;
  prog.on = !a.quiet && !a.json && isatty (2);

  rc = prepare (&a, &p, &err);
  copts.limit_rate = p.rate;
  spool = xasprintf ("%s/ingest", a.store);
  copts.spool_dir = spool;
  if (rc == 0)
    rc = reg_client_new (&client, &copts, &err);
  if (rc == 0)
    rc = reg_store_open (&store, a.store, &err);
  if (rc == 0)
    reg_store_recover (store, &rec); /* what a crash left, quietly */
  o.platform = &p.platform;
  o.cosign_key = p.cosign_key;
  o.progress = draw;
  o.payload = &prog;
  o.out_path = p.out_path;
  o.out_fmt = p.fmt;
  o.runtime = p.has_rt ? &p.rt : NULL;
  o.keep_layers = a.keep_layers;
  if (rc == 0)
    rc = agent_deliver (client, store, p.ref, &o, &d, &err);
  if (prog.drawn)
    fputc ('\n', stderr);
  if (rc < 0 && ef_cancel)
    ef_err_wrap (&err, "partial blobs kept; run again to resume");
  if (rc < 0)
    rc = cli_report (context, err);
  else
    print_result (&a, &p, &d);
  agent_delivery_dispose (&d);
  reg_ref_free (p.ref);
  runtime_dispose (&p.rt);
  vfy_cosign_key_free (p.cosign_key);
  reg_client_free (client);
  reg_store_free (store);
  return rc;
}
