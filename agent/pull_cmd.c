/* pull_cmd.c: edgefetch pull. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/util.h"
#include "../registry/export.h"
#include "../registry/pull.h"
#include "cli.h"
#include "runtime.h"

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
    "  --store DIR                   content store (default /var/lib/edgefetch or EDGEFETCH_STORE)\n"
    "  --output oci:DIR | oci-archive:FILE | docker-archive:FILE\n"
    "  --verify-key FILE             a cosign public key: require a valid signature\n"
    "  --runtime docker[:SOCK] | podman[:SOCK] | containerd[:SOCK[:NS]]  hand the image over\n"
    "  --jobs N                      parallel blob downloads (default 4)\n"
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

  for (size_t i = 0; i < r->nlayers; i++)
    json_array_append_new (layers, json_pack ("{s:s, s:I, s:s}", "digest", r->layer_digests[i], "size",
                                              (json_int_t) r->layer_sizes[i], "mediaType", r->layer_types[i]));
  return json_pack ("{s:s, s:s?, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s?, s:n}", "reference", r->reference,
                    "index_digest", r->index_digest, "manifest_digest", r->manifest_digest, "media_type",
                    r->media_type, "config_digest", r->config_digest, "layers", layers, "size",
                    (json_int_t) r->total_size, "bytes_fetched", (json_int_t) r->stats.bytes_fetched,
                    "bytes_reused", (json_int_t) r->stats.bytes_reused, "output", output, "handoff");
}

int
cmd_pull (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "platform", required_argument, NULL, 'p' }, { "creds", required_argument, NULL, 'c' },
    { "auth-file", required_argument, NULL, 'a' }, { "certs-dir", required_argument, NULL, 'd' },
    { "ca-file", required_argument, NULL, 'C' },   { "store", required_argument, NULL, 's' },
    { "output", required_argument, NULL, 'o' },    { "jobs", required_argument, NULL, 'j' },
    { "json", no_argument, NULL, 'J' },            { "quiet", no_argument, NULL, 'q' },
    { "verify-key", required_argument, NULL, 'k' }, { "runtime", required_argument, NULL, 'r' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *platform_s = NULL, *creds = cli_env ("EDGEFETCH_CREDS", NULL);
  const char *auth_file = cli_env ("EDGEFETCH_AUTH_FILE", NULL), *certs_dir = cli_env ("EDGEFETCH_CERTS_DIR", NULL);
  const char *ca_file = NULL, *store_dir = cli_env ("EDGEFETCH_STORE", "/var/lib/edgefetch");
  const char *output = NULL, *out_path = NULL, *verify_key = NULL;
  vfy_cosign_key *cosign_key = NULL;
  const char *runtime_s = cli_env ("EDGEFETCH_RUNTIME", NULL);
  struct runtime_spec rt = { 0 };
  struct runtime_result rres = { 0 };
  const char *default_certs[] = { "/etc/edgefetch/certs.d", "/etc/docker/certs.d", "/etc/containers/certs.d", NULL };
  const char *one_cert[2] = { NULL, NULL };
  enum reg_export_format fmt = REG_EXPORT_OCI_DIR;
  bool json = false, quiet = false;
  long jobs = 4;
  struct reg_platform platform;
  struct reg_client_opts copts = { 0 };
  struct progress prog = { false, false };
  cleanup_ref struct reg_ref *ref = NULL;
  cleanup_err ef_err *err = NULL;
  reg_client *client = NULL;
  reg_store *store = NULL;
  struct reg_pull_result *res = NULL;
  cleanup_free char *context = NULL;
  int c, rc;

  optind = 1;
  while ((c = getopt_long (argc, argv, "+h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'p': platform_s = optarg; break;
      case 'c': creds = optarg; break;
      case 'a': auth_file = optarg; break;
      case 'd': certs_dir = optarg; break;
      case 'C': ca_file = optarg; break;
      case 's': store_dir = optarg; break;
      case 'o': output = optarg; break;
      case 'k': verify_key = optarg; break;
      case 'r': runtime_s = optarg; break;
      case 'j':
        {
          uint64_t n;
          if (ef_parse_u64 (optarg, 64, &n) < 0 || n == 0)
            return cli_usage_error ("pull", "--jobs takes a number from 1 to 64");
          jobs = (long) n;
          break;
        }
      case 'J': json = true; break;
      case 'q': quiet = true; break;
      case 'h': fputs (pull_usage, stdout); return 0;
      default: return cli_usage_error ("pull", "bad option");
      }
  if (optind != argc - 1)
    return cli_usage_error ("pull", "exactly one IMAGE expected");
  context = xasprintf ("pull %s", argv[optind]);
  if (reg_ref_parse (&ref, argv[optind], &err) < 0)
    return cli_report (context, err);
  if (platform_s ? reg_platform_parse (&platform, platform_s, &err) < 0 : (reg_platform_host (&platform), 0))
    return cli_report (context, err);
  if (output && reg_export_parse (output, &fmt, &out_path, &err) < 0)
    return cli_report (context, err);
  if (verify_key && vfy_cosign_key_load (&cosign_key, verify_key, &err) < 0)
    return cli_report (context, err);
  if (runtime_s && runtime_parse (&rt, runtime_s, &err) < 0)
    return cli_report (context, err);

  one_cert[0] = certs_dir;
  copts.creds = creds;
  copts.auth_file = auth_file;
  copts.certs_dirs = certs_dir ? one_cert : default_certs;
  copts.ca_file = ca_file;
  copts.jobs = (int) jobs;
  copts.low_speed_time = cli_env_long ("EDGEFETCH_STALL_SECS", 30);
  copts.retry_base_ms = cli_env_long ("EDGEFETCH_RETRY_BASE_MS", 500);
  copts.max_attempts = (int) cli_env_long ("EDGEFETCH_ATTEMPTS", 6);
  copts.cancel = &ef_cancel;

  prog.on = !quiet && !json && isatty (2);
  rc = reg_store_open (&store, store_dir, &err);
  if (rc == 0)
    rc = reg_client_new (&client, &copts, &err);
  if (rc == 0)
    rc = reg_pull (client, store, ref, &platform, cosign_key, draw, &prog, &res, &err);
  if (prog.drawn)
    fputc ('\n', stderr);
  if (rc == 0 && out_path)
    rc = reg_export (store, res->manifest_digest, ref, fmt, out_path, &err);
  if (rc == 0 && runtime_s)
    {
      rc = runtime_handoff (&rt, store, res, ref, &rres, &err);
      if (rc < 0)
        ef_err_wrap (&err, "hand over to %s", runtime_name (&rt));
    }
  if (rc < 0)
    {
      if (ef_cancel)
        ef_err_wrap (&err, "partial blobs kept; run again to resume");
      rc = cli_report (context, err);
      goto out;
    }
  if (json)
    {
      json_t *j = result_json (res, output);
      if (runtime_s)
        json_object_set_new (j, "handoff", json_pack ("{s:s, s:s, s:s, s:b}", "runtime", runtime_name (&rt),
                                                      "name", rres.name, "image_id", res->config_digest, "sent",
                                                      rres.sent));
      json_dumpf (j, stdout, JSON_COMPACT);
      putchar ('\n');
      json_decref (j);
    }
  else
    printf ("Digest: %s\nImage ID: %s\n", res->manifest_digest, res->config_digest);
  rc = 0;
out:
  reg_pull_result_free (res);
  runtime_dispose (&rt);
  vfy_cosign_key_free (cosign_key);
  reg_client_free (client);
  reg_store_free (store);
  return rc;
}
