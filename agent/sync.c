/* sync.c: see sync.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "../registry/pull.h"
#include "../verify/cosign.h"
#include "../verify/deployment.h"
#include "../verify/rsapss.h"
#include "runtime.h"
#include "sync.h"

#define MAX_SERVICES 64
#define MAX_DEPTH 8

struct svc
{
  char *org, *url, *version, *arch;
  char *id;   /* "org/svcid" as the exchange keys it */
  json_t *def;
  const char *overrides, *overrides_sig; /* from the pattern, top-level only */
};

const char *
agent_arch_synonym (const char *a)
{
  if (strcmp (a, "x86_64") == 0)
    return "amd64";
  if (strcmp (a, "aarch64") == 0)
    return "arm64";
  if (strcmp (a, "armhf") == 0 || strncmp (a, "armv", 4) == 0)
    return "arm";
  return a;
}

int
agent_version_cmp (const char *a, const char *b)
{
  while (*a || *b)
    {
      unsigned long x = 0, y = 0;
      while (*a >= '0' && *a <= '9')
        x = x * 10 + (unsigned long) (*a++ - '0');
      while (*b >= '0' && *b <= '9')
        y = y * 10 + (unsigned long) (*b++ - '0');
      if (x != y)
        return x < y ? -1 : 1;
      if (*a == '.')
        a++;
      if (*b == '.')
        b++;
      if ((*a && !(*a >= '0' && *a <= '9')) || (*b && !(*b >= '0' && *b <= '9')))
        return strcmp (a, b) < 0 ? -1 : strcmp (a, b) > 0;
    }
  return 0;
}

int
agent_version_in_range (const char *v, const char *range)
{
  char lo[64], hi[64];
  const char *comma;
  size_t n;
  int c;

  if (range == NULL || *range == '\0')
    return 1;
  if (*range != '[' && *range != '(')
    return agent_version_cmp (v, range) >= 0;
  comma = strchr (range, ',');
  n = strlen (range);
  if (comma == NULL || n < 4 || (range[n - 1] != ']' && range[n - 1] != ')'))
    return 0;
  snprintf (lo, sizeof lo, "%.*s", (int) (comma - range - 1), range + 1);
  snprintf (hi, sizeof hi, "%.*s", (int) (range + n - 1 - comma - 1), comma + 1);
  c = agent_version_cmp (v, lo);
  if (c < 0 || (c == 0 && *range == '('))
    return 0;
  if (strcmp (hi, "INFINITY") == 0 || hi[0] == '\0')
    return 1;
  c = agent_version_cmp (v, hi);
  return c < 0 || (c == 0 && range[n - 1] == ']');
}

/* The single value of an envelope {"KIND":{"id": {...}}, "lastIndex":0}. */
static json_t *
envelope_one (json_t *j, const char *kind, const char **id)
{
  json_t *m = json_object_get (j, kind), *v;
  const char *k;

  json_object_foreach (m, k, v)
  {
    if (id)
      *id = k;
    return v;
  }
  return NULL;
}

static char *
now_utc (void)
{
  char buf[32];
  time_t t = time (NULL);
  struct tm tm;
  gmtime_r (&t, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return xstrdup (buf);
}

/* Find url/arch in org, at exactly version or the highest in range. */
static int
resolve (struct sync_ctx *s, const char *org, const char *url, const char *version, const char *range,
         const char *arch, struct svc *out, ef_err **err)
{
  cleanup_free char *eo = exchange_escape (s->ex, org), *eu = exchange_escape (s->ex, url);
  cleanup_free char *ea = exchange_escape (s->ex, arch);
  cleanup_free char *ev = version ? exchange_escape (s->ex, version) : NULL;
  cleanup_free char *path = xasprintf ("orgs/%s/services?url=%s&arch=%s%s%s", eo, eu, ea, ev ? "&version=" : "",
                                       ev ? ev : "");
  json_t *j = NULL, *def, *best = NULL;
  const char *id, *best_id = NULL;

  memset (out, 0, sizeof *out);
  if (exchange_get (s->ex, path, &j, err) < 0)
    {
      if (ef_err_code (err ? *err : NULL) == EF_NOTFOUND)
        {
          ef_err_free (*err);
          *err = NULL;
          return ef_err_set (err, EF_NOTFOUND, "service %s/%s %s for %s not found on the exchange", org, url,
                             version ? version : range ? range : "", arch);
        }
      return -ef_err_code (err ? *err : NULL);
    }
  json_object_foreach (json_object_get (j, "services"), id, def)
  {
    const char *v = json_string_value (json_object_get (def, "version"));
    const char *a = json_string_value (json_object_get (def, "arch"));
    if (v == NULL || a == NULL || strcmp (agent_arch_synonym (a), arch) != 0)
      continue;
    if (version ? strcmp (v, version) != 0 : !agent_version_in_range (v, range))
      continue;
    if (best == NULL || agent_version_cmp (v, json_string_value (json_object_get (best, "version"))) > 0)
      {
        best = def;
        best_id = id;
      }
  }
  if (best == NULL)
    {
      json_decref (j);
      return ef_err_set (err, EF_NOTFOUND, "service %s/%s %s for %s not found on the exchange", org, url,
                         version ? version : range ? range : "", arch);
    }
  out->org = xstrdup (org);
  out->url = xstrdup (url);
  out->version = xstrdup (json_string_value (json_object_get (best, "version")));
  out->arch = xstrdup (arch);
  out->id = xstrdup (best_id);
  out->def = json_incref (best);
  json_decref (j);
  return 0;
}

static void
svc_dispose (struct svc *v)
{
  free (v->org);
  free (v->url);
  free (v->version);
  free (v->arch);
  free (v->id);
  json_decref (v->def);
}

/* The service id without its "org/" prefix, escaped for a path. */
static char *
svc_path (struct sync_ctx *s, const struct svc *v, const char *suffix)
{
  const char *slash = strchr (v->id, '/');
  cleanup_free char *eo = exchange_escape (s->ex, v->org);
  cleanup_free char *ei = exchange_escape (s->ex, slash ? slash + 1 : v->id);
  return xasprintf ("orgs/%s/services/%s%s", eo, ei, suffix);
}

/* Trusted keys: the trust dir, plus the service's own keys on the exchange
 * when EDGEFETCH_TRUST_EXCHANGE_KEYS=true. */
static vfy_keyring *
keyring_for (struct sync_ctx *s, const struct svc *v, json_t *notes)
{
  vfy_keyring *kr = vfy_keyring_new ();
  ef_err *e = NULL;
  json_t *names = NULL, *n;
  size_t i;

  if (vfy_keyring_add_dir (kr, s->cfg->trust_dir, 0, &e) < 0)
    json_array_append_new (notes, json_string (ef_err_msg (e)));
  ef_err_free (e);
  e = NULL;
  for (i = 0; vfy_keyring_note (kr, i); i++)
    json_array_append_new (notes, json_string (vfy_keyring_note (kr, i)));
  if (!s->cfg->trust_exchange_keys)
    return kr;
  {
    cleanup_free char *path = svc_path (s, v, "/keys");
    if (exchange_get (s->ex, path, &names, &e) < 0)
      names = NULL;
  }
  ef_err_free (e);
  json_array_foreach (names, i, n)
  {
    cleanup_free char *en = json_is_string (n) ? exchange_escape (s->ex, json_string_value (n)) : NULL;
    cleanup_free char *suffix = en ? xasprintf ("/keys/%s", en) : NULL;
    cleanup_free char *path = suffix ? svc_path (s, v, suffix) : NULL;
    cleanup_free char *pem = NULL;
    cleanup_free char *name = NULL;
    size_t len;
    e = NULL;
    if (path && exchange_get_text (s->ex, path, &pem, &len, &e) == 0)
      {
        name = xasprintf ("exchange:%s/%s", v->id, json_string_value (n));
        if (vfy_keyring_add_pem (kr, name, pem, len, 0, &e) < 0)
          json_array_append_new (notes, json_string (ef_err_msg (e)));
      }
    ef_err_free (e);
  }
  json_decref (names);
  return kr;
}

/* Images after the pattern's overrides: a container named in the
 * overrides with an image gets that image. */
static int
final_images (const char *dep, const char *overrides, char ***out, ef_err **err)
{
  json_t *d = json_loads (dep, 0, NULL), *o = overrides ? json_loads (overrides, 0, NULL) : NULL;
  json_t *ds, *os, *c;
  const char *name;
  char **v;
  size_t n = 0;
  int rc = vfy_deployment_images (dep, strlen (dep), out, err);

  if (rc < 0 || o == NULL)
    goto done;
  vfy_strv_free (*out);
  *out = NULL;
  ds = json_object_get (d, "services") ? json_object_get (d, "services") : d;
  os = json_object_get (o, "services") ? json_object_get (o, "services") : o;
  v = xcalloc (json_object_size (ds) + 1, sizeof *v);
  json_object_foreach (ds, name, c)
  {
    json_t *img = json_object_get (json_object_get (os, name), "image");
    if (!json_is_string (img))
      img = json_object_get (c, "image");
    v[n++] = xstrdup (json_string_value (img));
  }
  *out = v;
done:
  json_decref (d);
  json_decref (o);
  return rc;
}

/* Registry credentials from the service's dockauths. */
static size_t
dockauths (struct sync_ctx *s, const struct svc *v, struct reg_host_creds *hc, size_t max, ef_err **err)
{
  cleanup_free char *path = svc_path (s, v, "/dockauths");
  json_t *a = NULL, *e;
  size_t i, n = 0;

  if (exchange_get (s->ex, path, &a, err) < 0)
    {
      if (ef_err_code (*err) == EF_NOTFOUND)
        {
          ef_err_free (*err);
          *err = NULL;
        }
      return 0;
    }
  json_array_foreach (a, i, e)
  {
    const char *reg = json_string_value (json_object_get (e, "registry"));
    const char *user = json_string_value (json_object_get (e, "username"));
    const char *tok = json_string_value (json_object_get (e, "token"));
    if (reg == NULL || tok == NULL || n == max)
      continue;
    hc[n].registry = xstrdup (reg);
    hc[n].username = xstrdup (user && *user ? user : "token"); /* as the exchange stores a missing one */
    hc[n].secret = xstrdup (tok);
    n++;
  }
  json_decref (a);
  return n;
}

static void
platform_for (const char *arch, struct reg_platform *p)
{
  struct reg_platform host;
  cleanup_free char *spec = xasprintf ("linux/%s", arch);

  reg_platform_host (&host);
  if (strcmp (host.arch, arch) == 0)
    *p = host;
  else if (reg_platform_parse (p, spec, NULL) < 0)
    *p = host;
}

/* Verify, then fetch one service; its state entry says how it went. */
static int
sync_service (struct sync_ctx *s, struct svc *v, json_t *entry, ef_err **err)
{
  const char *dep = json_string_value (json_object_get (v->def, "deployment"));
  const char *sig = json_string_value (json_object_get (v->def, "deploymentSignature"));
  json_t *notes = json_array (), *images = json_array ();
  struct reg_host_creds hc[16];
  size_t nhc = 0;
  vfy_keyring *kr = NULL;
  vfy_cosign_key *ck = NULL;
  reg_client *client = NULL;
  struct runtime_spec rt = { 0 };
  const char *key = NULL;
  char **refs = NULL;
  int rc = 0;

  json_object_set_new (entry, "images", images);
  json_object_set_new (entry, "notes", notes);
  if (dep == NULL || *dep == '\0')
    goto out; /* nothing to run on a device (a cluster-only service) */
  kr = keyring_for (s, v, notes);
  rc = vfy_rsapss_verify (kr, dep, strlen (dep), sig, &key, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "deployment signature");
      goto out;
    }
  json_object_set_new (entry, "verified_with", json_string (key));
  if (v->overrides && *v->overrides)
    {
      rc = vfy_rsapss_verify (kr, v->overrides, strlen (v->overrides), v->overrides_sig, NULL, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "pattern deployment_overrides signature");
          goto out;
        }
    }
  rc = final_images (dep, v->overrides, &refs, err);
  if (rc < 0)
    goto out;
  for (char **r = refs; *r; r++)
    if (s->cfg->require_digest && strstr (*r, "@sha256:") == NULL)
      {
        rc = ef_err_set (err, EF_VERIFY, "image %.200s is not pinned by digest (EDGEFETCH_REQUIRE_DIGEST=true)", *r);
        goto out;
      }
  nhc = dockauths (s, v, hc, 16, err);
  if (err && *err)
    {
      rc = -ef_err_code (*err);
      goto out;
    }
  if (s->cfg->cosign_key && (rc = vfy_cosign_key_load (&ck, s->cfg->cosign_key, err)) < 0)
    goto out;
  {
    const char *dirs[2] = { s->cfg->certs_dir, NULL };
    static const char *defaults[] = { "/etc/edgefetch/certs.d", "/etc/docker/certs.d", "/etc/containers/certs.d",
                                      NULL };
    struct reg_client_opts o = { 0 };
    o.host_creds = hc;
    o.nhost_creds = nhc;
    o.auth_file = s->cfg->auth_file;
    o.certs_dirs = s->cfg->certs_dir ? dirs : defaults;
    o.cancel = s->cancel;
    o.low_speed_time = 30;
    rc = reg_client_new (&client, &o, err);
    if (rc < 0)
      goto out;
  }
  if (s->cfg->runtime && (rc = runtime_parse (&rt, s->cfg->runtime, err)) < 0)
    goto out;
  for (char **r = refs; *r && rc == 0; r++)
    {
      cleanup_ref struct reg_ref *ref = NULL;
      struct reg_pull_result *res = NULL;
      struct runtime_result rres;
      struct reg_platform p;
      json_t *img;

      platform_for (v->arch, &p);
      rc = reg_ref_parse (&ref, *r, err);
      if (rc == 0)
        rc = reg_pull (client, s->store, ref, &p, ck, s->progress, NULL, &res, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "pull %s", *r);
          break;
        }
      img = json_pack ("{s:s, s:s, s:s, s:I, s:I}", "reference", *r, "manifest_digest", res->manifest_digest,
                       "config_digest", res->config_digest, "bytes_fetched", (json_int_t) res->stats.bytes_fetched,
                       "size", (json_int_t) res->total_size);
      json_array_append_new (images, img);
      if (s->cfg->runtime)
        {
          rc = runtime_handoff (&rt, s->store, res, ref, &rres, err);
          if (rc < 0)
            ef_err_wrap (err, "hand %s to %s", *r, runtime_name (&rt));
          else
            json_object_set_new (img, "handoff", json_pack ("{s:s, s:s, s:b}", "runtime", runtime_name (&rt), "name",
                                                            rres.name, "sent", rres.sent));
        }
      reg_pull_result_free (res);
    }
out:
  for (size_t i = 0; i < nhc; i++)
    {
      free ((char *) hc[i].registry);
      ef_free_secret ((char *) hc[i].username);
      ef_free_secret ((char *) hc[i].secret);
    }
  reg_client_free (client);
  runtime_dispose (&rt);
  vfy_cosign_key_free (ck);
  vfy_keyring_free (kr);
  vfy_strv_free (refs);
  return rc;
}

/* Add v and, recursively, what it requires (deduplicated by id). */
static int
collect (struct sync_ctx *s, struct svc *v, struct svc *all, size_t *n, int depth, ef_err **err)
{
  json_t *req, *r;
  size_t i;

  for (i = 0; i < *n; i++)
    if (strcmp (all[i].id, v->id) == 0)
      {
        svc_dispose (v);
        return 0;
      }
  if (*n == MAX_SERVICES)
    {
      svc_dispose (v);
      return ef_err_set (err, EF_USAGE, "more than %d services", MAX_SERVICES);
    }
  all[(*n)++] = *v;
  req = json_object_get (all[*n - 1].def, "requiredServices");
  if (depth >= MAX_DEPTH && json_array_size (req) > 0)
    return ef_err_set (err, EF_USAGE, "requiredServices nested deeper than %d", MAX_DEPTH);
  json_array_foreach (req, i, r)
  {
    const char *url = json_string_value (json_object_get (r, "url"));
    const char *org = json_string_value (json_object_get (r, "org"));
    const char *ver = json_string_value (json_object_get (r, "version"));
    const char *range = json_string_value (json_object_get (r, "versionRange"));
    const char *arch = json_string_value (json_object_get (r, "arch"));
    struct svc dep;
    /* a version in requiredServices has always meant "this or newer" */
    if (url == NULL || org == NULL)
      return ef_err_set (err, EF_VERIFY, "service %s: malformed requiredServices entry", all[*n - 1].id);
    if (resolve (s, org, url, NULL, range ? range : ver, arch ? agent_arch_synonym (arch) : all[*n - 1].arch,
                 &dep, err)
        < 0)
      return ef_err_wrap (err, "required by %s", v->id);
    if (collect (s, &dep, all, n, depth + 1, err) < 0)
      return -ef_err_code (err ? *err : NULL);
  }
  return 0;
}

static bool
in_set (json_t *arr, const char *a, const char *b)
{
  json_t *e;
  size_t i;

  json_array_foreach (arr, i, e)
  {
    const char *x = json_string_value (json_array_get (e, 0)), *y = json_string_value (json_array_get (e, 1));
    if (x && y && strcmp (x, a) == 0 && strcmp (y, b ? b : "") == 0)
      return true;
  }
  return false;
}

/* Keep track of what the agent itself created: the names it gave images
 * in the runtime ("handed") and the names it recorded in the store
 * ("recorded").  After a sync in which every service succeeded, with
 * EDGEFETCH_PRUNE=true, what the pattern no longer names is removed from
 * the runtime and forgotten by the store, whose gc then drops its blobs.
 * Images the agent did not create are never touched. */
static void
reconcile (struct sync_ctx *s, json_t *services, bool complete)
{
  json_t *handed = json_object_get (s->state, "handed"), *recorded = json_object_get (s->state, "recorded");
  json_t *want_h = json_array (), *want_r = json_array (), *svc, *img, *keep;
  size_t i, k;

  if (!json_is_array (handed))
    json_object_set_new (s->state, "handed", handed = json_array ());
  if (!json_is_array (recorded))
    json_object_set_new (s->state, "recorded", recorded = json_array ());
  json_array_foreach (services, i, svc)
    json_array_foreach (json_object_get (svc, "images"), k, img)
  {
    struct reg_ref *ref = NULL;
    json_t *h = json_object_get (img, "handoff");
    const char *name = json_string_value (json_object_get (h, "name"));
    if (reg_ref_parse (&ref, json_string_value (json_object_get (img, "reference")), NULL) == 0)
      {
        char *canon = reg_ref_string (ref);
        json_array_append_new (want_r, json_pack ("[s, s]", canon, ""));
        if (!in_set (recorded, canon, ""))
          json_array_append_new (recorded, json_pack ("[s, s]", canon, ""));
        free (canon);
        reg_ref_free (ref);
      }
    if (name && s->cfg->runtime)
      {
        json_array_append_new (want_h, json_pack ("[s, s]", s->cfg->runtime, name));
        if (json_is_true (json_object_get (h, "sent")) && !in_set (handed, s->cfg->runtime, name))
          json_array_append_new (handed, json_pack ("[s, s]", s->cfg->runtime, name));
      }
  }
  if (complete && s->cfg->prune)
    {
      json_t *e;
      keep = json_array ();
      json_array_foreach (handed, i, e)
      {
        const char *spec = json_string_value (json_array_get (e, 0)), *name = json_string_value (json_array_get (e, 1));
        struct runtime_spec rt;
        ef_err *err = NULL;
        bool gone = false;
        if (in_set (want_h, spec, name))
          {
            json_array_append (keep, e);
            continue;
          }
        if (runtime_parse (&rt, spec, &err) == 0)
          {
            gone = runtime_remove (&rt, name, &err) == 0;
            runtime_dispose (&rt);
          }
        if (!gone)
          json_array_append (keep, e); /* try again next time */
        ef_err_free (err);
      }
      json_object_set_new (s->state, "handed", keep);
      keep = json_array ();
      json_array_foreach (recorded, i, e)
      {
        const char *name = json_string_value (json_array_get (e, 0));
        if (in_set (want_r, name, "") || reg_store_unrecord (s->store, name, NULL) < 0)
          json_array_append (keep, e);
      }
      json_object_set_new (s->state, "recorded", keep);
      {
        struct reg_gc_stats st;
        if (reg_store_gc (s->store, &st, NULL) == 0)
          json_object_set_new (s->state, "last_gc",
                               json_pack ("{s:I, s:I}", "blobs_removed", (json_int_t) st.blobs_removed,
                                          "bytes_removed", (json_int_t) st.bytes_removed));
      }
    }
  json_decref (want_h);
  json_decref (want_r);
}

char *
agent_pattern_stamp (struct sync_ctx *s, ef_err **err)
{
  const char *pat = json_string_value (json_object_get (s->state, "pattern"));
  const char *slash = pat ? strchr (pat, '/') : NULL;
  cleanup_free char *path = NULL;
  json_t *j = NULL, *p;
  char *stamp;

  if (slash == NULL)
    return NULL;
  {
    cleanup_free char *po = xstrndup (pat, (size_t) (slash - pat));
    cleanup_free char *eo = exchange_escape (s->ex, po), *ep = exchange_escape (s->ex, slash + 1);
    path = xasprintf ("orgs/%s/patterns/%s", eo, ep);
  }
  if (exchange_get (s->ex, path, &j, err) < 0)
    return NULL;
  p = envelope_one (j, "patterns", NULL);
  stamp = xstrdup (json_is_string (json_object_get (p, "lastUpdated"))
                       ? json_string_value (json_object_get (p, "lastUpdated"))
                       : "");
  json_decref (j);
  return stamp;
}

int
agent_sync (struct sync_ctx *s, ef_err **err)
{
  const struct agent_config *cfg = s->cfg;
  cleanup_free char *eorg = exchange_escape (s->ex, cfg->org), *eid = exchange_escape (s->ex, cfg->node_id);
  cleanup_free char *path = xasprintf ("orgs/%s/nodes/%s", eorg, eid);
  cleanup_free char *stamp = now_utc ();
  json_t *node_env = NULL, *pat_env = NULL, *node, *pat, *ps, *services, *exstate;
  struct svc all[MAX_SERVICES];
  size_t n = 0, i;
  const char *pattern, *arch;
  struct reg_platform host;
  int rc = 0, first = 0;

  exstate = json_object_get (s->state, "exchange");
  if (!json_is_object (exstate))
    json_object_set_new (s->state, "exchange", exstate = json_object ());

  rc = exchange_get (s->ex, path, &node_env, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "read node %s/%s", cfg->org, cfg->node_id);
      goto exchange_down;
    }
  node = envelope_one (node_env, "nodes", NULL);
  pattern = json_string_value (json_object_get (node, "pattern"));
  reg_platform_host (&host);
  arch = cfg->arch ? cfg->arch
         : json_is_string (json_object_get (node, "arch")) && json_string_length (json_object_get (node, "arch"))
             ? json_string_value (json_object_get (node, "arch"))
             : host.arch;
  arch = agent_arch_synonym (arch);
  json_object_set_new (s->state, "node", json_sprintf ("%s/%s", cfg->org, cfg->node_id));
  json_object_set_new (s->state, "arch", json_string (arch));
  if (pattern == NULL || *pattern == '\0' || strchr (pattern, '/') == NULL)
    {
      json_object_set_new (s->state, "pattern", json_null ());
      json_object_set_new (s->state, "services", json_array ());
      reconcile (s, json_object_get (s->state, "services"), true);
      goto done;
    }
  json_object_set_new (s->state, "pattern", json_string (pattern));
  {
    const char *slash = strchr (pattern, '/');
    cleanup_free char *po = xstrndup (pattern, (size_t) (slash - pattern));
    cleanup_free char *eo = exchange_escape (s->ex, po), *ep = exchange_escape (s->ex, slash + 1);
    cleanup_free char *ppath = xasprintf ("orgs/%s/patterns/%s", eo, ep);
    rc = exchange_get (s->ex, ppath, &pat_env, err);
    if (rc < 0)
      {
        ef_err_wrap (err, "read pattern %s", pattern);
        goto exchange_down;
      }
  }
  pat = envelope_one (pat_env, "patterns", NULL);
  json_object_set (s->state, "pattern_last_updated",
                   json_is_string (json_object_get (pat, "lastUpdated")) ? json_object_get (pat, "lastUpdated")
                                                                         : json_null ());

  json_array_foreach (json_object_get (pat, "services"), i, ps)
  {
    const char *url = json_string_value (json_object_get (ps, "serviceUrl"));
    const char *org = json_string_value (json_object_get (ps, "serviceOrgid"));
    const char *sarch = json_string_value (json_object_get (ps, "serviceArch"));
    json_t *vers = json_object_get (ps, "serviceVersions"), *best = NULL, *ver;
    size_t k;
    struct svc v;
    ef_err *e = NULL;

    if (url == NULL || org == NULL)
      continue;
    if (sarch && *sarch && strcmp (sarch, "*") != 0 && strcmp (agent_arch_synonym (sarch), arch) != 0)
      continue;
    /* the version with the best (lowest) priority_value, else the first */
    json_array_foreach (vers, k, ver)
    {
      json_t *pv = json_object_get (json_object_get (ver, "priority"), "priority_value");
      json_t *bv = best ? json_object_get (json_object_get (best, "priority"), "priority_value") : NULL;
      if (best == NULL || (json_is_integer (pv) && (!json_is_integer (bv) || json_integer_value (pv) < json_integer_value (bv))))
        best = ver;
    }
    if (!json_is_string (json_object_get (best, "version")))
      continue;
    rc = resolve (s, org, url, json_string_value (json_object_get (best, "version")), NULL, arch, &v, &e);
    if (rc == 0)
      {
        v.overrides = json_string_value (json_object_get (best, "deployment_overrides"));
        v.overrides_sig = json_string_value (json_object_get (best, "deployment_overrides_signature"));
        rc = collect (s, &v, all, &n, 0, &e);
      }
    if (rc < 0)
      {
        if (ef_err_code (e) != EF_NOTFOUND && ef_err_code (e) != EF_VERIFY && ef_err_code (e) != EF_USAGE)
          {
            ef_err_set (err, ef_err_code (e), "%s", ef_err_msg (e));
            ef_err_free (e);
            rc = -ef_err_code (*err);
            goto exchange_down;
          }
        /* an unresolvable service is that service's failure */
        if (first == 0)
          {
            first = ef_err_code (e);
            ef_err_set (err, first, "%s/%s: %s", org, url, ef_err_msg (e));
          }
        ef_err_free (e);
      }
  }

  services = json_array ();
  for (i = 0; i < n; i++)
    {
      json_t *entry = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "id", all[i].id, "org", all[i].org, "url", all[i].url,
                                 "version", all[i].version, "arch", all[i].arch);
      ef_err *e = NULL;
      int r = (s->cancel && *s->cancel) ? ef_err_set (&e, EF_NET, "interrupted") : sync_service (s, &all[i], entry, &e);
      json_object_set_new (entry, "ok", json_boolean (r == 0));
      json_object_set_new (entry, "code", json_integer (r == 0 ? 0 : ef_err_code (e)));
      json_object_set_new (entry, "error", r == 0 ? json_null () : json_string (ef_err_msg (e)));
      json_object_set_new (entry, "last_attempt", json_string (stamp));
      json_array_append_new (services, entry);
      if (r < 0 && first == 0)
        {
          first = ef_err_code (e);
          ef_err_set (err, first, "%s: %s", all[i].id, ef_err_msg (e));
        }
      ef_err_free (e);
      svc_dispose (&all[i]);
    }
  json_object_set_new (s->state, "services", services);
  reconcile (s, services, first == 0);
done:
  json_object_set_new (exstate, "ok", json_true ());
  json_object_set_new (exstate, "last_error", json_null ());
  json_object_set_new (exstate, "last_contact", json_string (stamp));
  json_object_set_new (s->state, "last_sync", json_string (stamp));
  json_object_set_new (s->state, "last_sync_result", json_integer (first));
  json_decref (node_env);
  json_decref (pat_env);
  return first ? -first : 0;

exchange_down:
  /* keep the last good state of the services and their images */
  for (i = 0; i < n; i++)
    svc_dispose (&all[i]);
  json_object_set_new (exstate, "ok", json_false ());
  json_object_set_new (exstate, "last_error", json_string (ef_err_msg (err ? *err : NULL)));
  json_object_set_new (exstate, "last_failure", json_string (stamp));
  json_decref (node_env);
  json_decref (pat_env);
  return rc < 0 ? rc : -EF_NET;
}

json_t *
agent_state_load (const char *store)
{
  cleanup_free char *path = xasprintf ("%s/state.json", store);
  cleanup_free char *text = NULL;
  size_t len;
  json_t *j = NULL;

  if (ef_read_file (path, 16u << 20, &text, &len) == 0)
    j = json_loadb (text, len, 0, NULL);
  if (!json_is_object (j))
    {
      json_decref (j);
      j = json_pack ("{s:i}", "version", 1);
    }
  return j;
}

int
agent_state_save (const char *store, json_t *state, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/state.json", store);
  cleanup_free char *tmp = xasprintf ("%s/state.json.tmp", store);
  cleanup_free char *text = json_dumps (state, JSON_INDENT (1) | JSON_SORT_KEYS);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);

  if (fd < 0 || ef_write_all (fd, text, strlen (text)) < 0 || fsync (fd) < 0)
    {
      int e = errno;
      if (fd >= 0)
        close (fd);
      unlink (tmp);
      return ef_err_sys (err, EF_LOCAL, e, "save %s", path);
    }
  close (fd);
  if (rename (tmp, path) < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "save %s", path);
  return 0;
}
