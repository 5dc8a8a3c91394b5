/* status_cmd.c: edgefetch status. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../../common/file.h"
#include "../../common/paths.h"
#include "../../common/text.h"
#include "../../common/util.h"
#include "cli.h"
#include "../config.h"
#include "../state.h"

/* A string of the state, fit for the terminal (it came from the exchange
 * or a registry); valid until eight more calls. */
static const char *
str (json_t *o, const char *k, const char *def)
{
  static char ring[8][EF_TEXT_MAX + 1];
  static unsigned next;
  json_t *v = json_object_get (o, k);
  char *safe;

  if (!json_is_string (v))
    return def;
  safe = ef_escape (json_string_value (v), EF_TEXT_MAX);
  snprintf (ring[next % 8], sizeof ring[0], "%s", safe);
  free (safe);
  return ring[next++ % 8];
}

/* Bytes under DIR/blobs/sha256. */
static int64_t
blob_bytes (const char *store)
{
  cleanup_free char *dir = xasprintf ("%s/blobs/sha256", store);
  DIR *d = opendir (dir);
  struct dirent *de;
  struct stat st;
  int64_t n = 0;

  while (d && (de = readdir (d)) != NULL)
    if (de->d_name[0] != '.' && fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
      n += st.st_size;
  if (d)
    closedir (d);
  return n;
}

/* The store beside the images it serves: after a handoff the runtime
 * holds the layers, and the store keeps little more than the manifests. */
static void
print_disk_use (const char *store, json_t *st)
{
  json_t *svc, *img;
  int64_t images = 0;
  size_t i, k;

  json_array_foreach (json_object_get (st, "services"), i, svc)
    json_array_foreach (json_object_get (svc, "images"), k, img)
      images += json_integer_value (json_object_get (img, "size"));
  printf ("store:     %.1f MiB on disk, for images of %.1f MiB\n", (double) blob_bytes (store) / (1 << 20),
          (double) images / (1 << 20));
}

/* "from HOST (N blobs), ...": the registry or the mirrors they came from. */
static void
print_sources (json_t *src)
{
  const char *host;
  json_t *n;
  bool first = true;

  if (json_object_size (src) == 0)
    return;
  printf ("    from  ");
  json_object_foreach (src, host, n)
  {
    cleanup_free char *h = ef_escape (host, 256);
    printf ("%s%s (%lld blob%s)", first ? "" : ", ", h, (long long) json_integer_value (n),
            json_integer_value (n) == 1 ? "" : "s");
    first = false;
  }
  putchar ('\n');
}

/* Node, agent, pattern and exchange: whether the agent can follow the hub. */
static void
print_head (json_t *st)
{
  json_t *ex, *stopped;

  ex = json_object_get (st, "exchange");
  stopped = json_object_get (st, "stopped");
  printf ("node:      %s (arch %s)\n", str (st, "node", "?"), str (st, "arch", "?"));
  if (json_is_object (stopped))
    printf ("agent:     STOPPED (exit %lld) since %s: %s\n",
            (long long) json_integer_value (json_object_get (stopped, "code")), str (stopped, "since", "?"),
            str (stopped, "reason", "?"));
  printf ("pattern:   %s", str (st, "pattern", "(none)"));
  if (str (st, "pattern_deleted", NULL))
    printf (" DELETED on the exchange (noticed %s): nothing new is fetched, the images held are kept",
            str (st, "pattern_deleted", ""));
  else if (str (st, "pattern_last_updated", NULL))
    printf (" (updated %s)", str (st, "pattern_last_updated", ""));
  putchar ('\n');
  if (json_is_false (json_object_get (ex, "ok")))
    printf ("exchange:  UNREACHABLE since %s: %s (keeping the last state)\n",
            str (ex, "down_since", str (ex, "last_failure", "?")), str (ex, "last_error", "?"));
  else
    printf ("exchange:  ok, last contact %s\n", str (ex, "last_contact", "never"));
  if (str (st, "link_waiting_since", NULL))
    printf ("link:      WAITING for the link since %s: a pull goes on when bytes come again, with every byte "
            "it has kept\n",
            str (st, "link_waiting_since", ""));
  if (json_is_object (json_object_get (st, "recovery")))
    {
      json_t *r = json_object_get (st, "recovery");
      printf ("recovery:  at start %s, removed what a crash left: %lld temporary files, %lld partial downloads, "
              "%lld piece records, %lld handoff directories\n",
              str (r, "at", "?"), (long long) json_integer_value (json_object_get (r, "tmp")),
              (long long) json_integer_value (json_object_get (r, "parts")),
              (long long) json_integer_value (json_object_get (r, "records")),
              (long long) json_integer_value (json_object_get (r, "handoffs")));
    }
  if (json_is_true (json_object_get (ex, "plain_http")))
    printf ("warning:   the exchange %s is plain HTTP: the node's token and deployments cross the network "
            "unencrypted\n",
            str (ex, "url", ""));
}

int
cmd_status (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *config_file = EF_DEFAULT_CONFIG;
  cleanup_free char *path = NULL;
  bool json = false;
  json_t *st, *svc, *img;
  size_t i, k;
  int c;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'c': config_file = optarg; break;
      case 'j': json = true; break;
      case 'h': fputs ("usage: edgefetch status [--config FILE] [--json]\n", stdout); return 0;
      default: return cli_bad_option ("status", c, argv);
      }
  /* only the store is needed: no credentials are required to read the state */
  path = cli_config_value (config_file, "EDGEFETCH_STORE", EF_DEFAULT_STORE);
  {
    cleanup_free char *file = xasprintf ("%s/state.json", path);
    if (access (file, R_OK) != 0)
      {
        cleanup_err ef_err *e = NULL;
        ef_err_set (&e, EF_NOTFOUND, "no agent state in %s (has the agent run?)", path);
        return cli_report ("status", e);
      }
  }
  st = agent_state_load (path);
  if (json)
    {
      json_dumpf (st, stdout, JSON_INDENT (2) | JSON_SORT_KEYS);
      putchar ('\n');
      json_decref (st);
      return 0;
    }
  print_head (st);
  printf ("last sync: %s (exit %lld)\n", str (st, "last_sync", "never"),
          (long long) json_integer_value (json_object_get (st, "last_sync_result")));
  print_disk_use (path, st);
  json_array_foreach (json_object_get (st, "services"), i, svc)
  {
    if (json_is_true (json_object_get (svc, "ok")))
      printf ("service %s %s: ok%s%s\n", str (svc, "id", "?"), str (svc, "version", ""),
              str (svc, "verified_with", NULL) ? ", verified with " : "", str (svc, "verified_with", ""));
    else if (str (svc, "waits_until", NULL))
      printf ("service %s %s: verified, WAITING for the download window until %s (%s)\n", str (svc, "id", "?"),
              str (svc, "version", ""), str (svc, "waits_until", "?"), str (svc, "error", ""));
    else
      printf ("service %s %s: FAILED (exit %lld): %s\n", str (svc, "id", "?"), str (svc, "version", ""),
              (long long) json_integer_value (json_object_get (svc, "code")), str (svc, "error", "?"));
    json_array_foreach (json_object_get (svc, "images"), k, img)
    {
      json_t *h = json_object_get (img, "handoff");
      printf ("  image %s\n    digest %s\n    id     %s\n", str (img, "reference", "?"),
              str (img, "manifest_digest", "?"), str (img, "config_digest", "?"));
      const char *name = json_string_value (json_object_get (h, "name"));
      const char *pinned = json_string_value (json_object_get (h, "pinned"));
      bool both = name && pinned && strcmp (name, pinned) != 0;
      print_sources (json_object_get (img, "blob_sources"));
      if (h)
        printf ("    in %s as %s%s%s\n", str (h, "runtime", "?"), str (h, "name", "?"), both ? ", " : "",
                both ? str (h, "pinned", "") : "");
      if (str (h, "note", NULL))
        printf ("    note: %s\n", str (h, "note", ""));
    }
  }
  json_decref (st);
  return 0;
}
