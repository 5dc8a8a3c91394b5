/* plan.c: node -> pattern -> the services it runs here (horizon.h). */
#include <stdio.h>
#include <string.h>

#include "../../common/util.h"
#include "../../registry/manifest.h"
#include "horizon.h"

#define MAX_DEPTH 8

/* The single value of an envelope {"KIND":{"id": {...}}, "lastIndex":0}. */
json_t *
hzn_envelope_one (json_t *j, const char *kind, const char **id)
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

static void
service_dispose (struct hzn_service *v)
{
  free (v->org);
  free (v->url);
  free (v->version);
  free (v->arch);
  free (v->id);
  free (v->overrides);
  free (v->overrides_sig);
  json_decref (v->def);
  memset (v, 0, sizeof *v);
}

json_t *
hzn_services_best (json_t *j, const char *arch, const char *version, const char *range, const char **id)
{
  json_t *def, *best = NULL;
  const char *k;

  json_object_foreach (json_object_get (j, "services"), k, def)
  {
    const char *v = json_string_value (json_object_get (def, "version"));
    const char *a = json_string_value (json_object_get (def, "arch"));
    if (v == NULL || a == NULL || strcmp (hzn_arch_synonym (a), arch) != 0)
      continue;
    if (version ? strcmp (v, version) != 0 : !hzn_version_in_range (v, range))
      continue;
    if (best == NULL || hzn_version_cmp (v, json_string_value (json_object_get (best, "version"))) > 0)
      {
        best = def;
        *id = k;
      }
  }
  return best;
}

/* Find url/arch in org, at exactly version or the highest in range. */
static int
resolve (exchange *ex, const char *org, const char *url, const char *version, const char *range, const char *arch,
         struct hzn_service *out, ef_err **err)
{
  cleanup_free char *eo = exchange_escape (ex, org), *eu = exchange_escape (ex, url);
  cleanup_free char *ea = exchange_escape (ex, arch);
  cleanup_free char *ev = version ? exchange_escape (ex, version) : NULL;
  cleanup_free char *path = xasprintf ("orgs/%s/services?url=%s&arch=%s%s%s", eo, eu, ea, ev ? "&version=" : "",
                                       ev ? ev : "");
  json_t *j = NULL, *best;
  const char *id = NULL;
  ef_err *e = NULL;
  int rc;

  memset (out, 0, sizeof *out);
  rc = exchange_get (ex, path, &j, &e);
  if (rc < 0 && ef_err_code (e) != EF_NOTFOUND)
    return ef_err_propagate (err, e);
  ef_err_free (e);
  best = rc < 0 ? NULL : hzn_services_best (j, arch, version, range, &id);
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
  out->id = xstrdup (id);
  out->def = json_incref (best);
  json_decref (j);
  return 0;
}

/* Add v and, recursively, what it requires (deduplicated by id). */
static int
collect (exchange *ex, struct hzn_service *v, struct hzn_plan *p, int depth, ef_err **err)
{
  struct hzn_service *added;
  json_t *req, *r;
  size_t i;

  for (i = 0; i < p->n; i++)
    if (strcmp (p->svc[i].id, v->id) == 0)
      {
        service_dispose (v);
        return 0;
      }
  if (p->n == HZN_MAX_SERVICES)
    {
      service_dispose (v);
      return ef_err_set (err, EF_USAGE, "more than %d services", HZN_MAX_SERVICES);
    }
  added = &p->svc[p->n++];
  *added = *v;
  req = json_object_get (added->def, "requiredServices");
  if (depth >= MAX_DEPTH && json_array_size (req) > 0)
    return ef_err_set (err, EF_USAGE, "requiredServices nested deeper than %d", MAX_DEPTH);
  json_array_foreach (req, i, r)
  {
    const char *url = json_string_value (json_object_get (r, "url"));
    const char *org = json_string_value (json_object_get (r, "org"));
    const char *ver = json_string_value (json_object_get (r, "version"));
    const char *range = json_string_value (json_object_get (r, "versionRange"));
    const char *arch = json_string_value (json_object_get (r, "arch"));
    struct hzn_service dep;
    int rc;
    if (url == NULL || org == NULL)
      return ef_err_set (err, EF_VERIFY, "service %s: malformed requiredServices entry", added->id);
    /* as anax resolves it at run time (exchange/service.go): `version`
     * wins when present, read as [version, INFINITY); versionRange only
     * stands in for a missing one; the highest version in range is run */
    rc = resolve (ex, org, url, NULL, ver && *ver ? ver : range, arch ? hzn_arch_synonym (arch) : added->arch, &dep,
                  err);
    if (rc < 0)
      {
        ef_err_wrap (err, "required by %s", added->id);
        return rc;
      }
    rc = collect (ex, &dep, p, depth + 1, err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

json_t *
hzn_pattern_version (json_t *ps)
{
  json_t *best = NULL, *ver;
  size_t k;

  json_array_foreach (json_object_get (ps, "serviceVersions"), k, ver)
  {
    json_t *pv = json_object_get (json_object_get (ver, "priority"), "priority_value");
    json_t *bv = best ? json_object_get (json_object_get (best, "priority"), "priority_value") : NULL;
    if (best == NULL
        || (json_is_integer (pv) && (!json_is_integer (bv) || json_integer_value (pv) < json_integer_value (bv))))
      best = ver;
  }
  return json_is_string (json_object_get (best, "version")) ? best : NULL;
}

static char *
str_dup (json_t *o, const char *key)
{
  json_t *v = json_object_get (o, key);
  return json_is_string (v) ? xstrdup (json_string_value (v)) : NULL;
}

/* One service of the pattern: resolved with what it requires, or listed
 * as unresolved; an exchange failure stops the plan. */
static int
add_pattern_service (exchange *ex, struct hzn_plan *p, json_t *ps, ef_err **err)
{
  const char *url = json_string_value (json_object_get (ps, "serviceUrl"));
  const char *org = json_string_value (json_object_get (ps, "serviceOrgid"));
  const char *sarch = json_string_value (json_object_get (ps, "serviceArch"));
  json_t *best = hzn_pattern_version (ps);
  struct hzn_service v;
  ef_err *e = NULL;
  int rc;

  if (url == NULL || org == NULL || best == NULL)
    return 0;
  if (sarch && *sarch && strcmp (sarch, "*") != 0 && strcmp (hzn_arch_synonym (sarch), p->arch) != 0)
    return 0;
  rc = resolve (ex, org, url, json_string_value (json_object_get (best, "version")), NULL, p->arch, &v, &e);
  if (rc == 0)
    {
      v.top = true;
      v.overrides = str_dup (best, "deployment_overrides");
      v.overrides_sig = str_dup (best, "deployment_overrides_signature");
      rc = collect (ex, &v, p, 0, &e);
    }
  if (rc == 0)
    return 0;
  if (ef_err_code (e) != EF_NOTFOUND && ef_err_code (e) != EF_VERIFY && ef_err_code (e) != EF_USAGE)
    return ef_err_propagate (err, e);
  if (p->nbad < HZN_MAX_SERVICES) /* an unresolvable service is that service's failure */
    {
      struct hzn_unresolved *b = &p->bad[p->nbad++];
      b->name = xasprintf ("%s/%s", org, url);
      b->code = ef_err_code (e);
      b->error = xstrdup (ef_err_msg (e));
    }
  ef_err_free (e);
  return 0;
}

static int
read_pattern (exchange *ex, const char *pattern, json_t **env, ef_err **err)
{
  const char *slash = strchr (pattern, '/');
  cleanup_free char *po = xstrndup (pattern, (size_t) (slash - pattern));
  cleanup_free char *eo = exchange_escape (ex, po), *ep = exchange_escape (ex, slash + 1);
  cleanup_free char *path = xasprintf ("orgs/%s/patterns/%s", eo, ep);

  return exchange_get (ex, path, env, err);
}

int
hzn_pattern_stamp (exchange *ex, const char *pattern, char **out, ef_err **err)
{
  json_t *env = NULL;
  int rc;

  *out = NULL;
  if (pattern == NULL || strchr (pattern, '/') == NULL)
    return ef_err_set (err, EF_USAGE, "no pattern");
  rc = read_pattern (ex, pattern, &env, err);
  if (rc == 0)
    {
      char *stamp = str_dup (hzn_envelope_one (env, "patterns", NULL), "lastUpdated");
      *out = stamp ? stamp : xstrdup ("");
    }
  json_decref (env);
  return rc;
}

int
hzn_node_read (exchange *ex, const struct agent_config *cfg, json_t **env, ef_err **err)
{
  cleanup_free char *eorg = exchange_escape (ex, cfg->org), *eid = exchange_escape (ex, cfg->node_id);
  cleanup_free char *path = xasprintf ("orgs/%s/nodes/%s", eorg, eid);
  int rc = exchange_get (ex, path, env, err);

  if (rc == -EF_NOTFOUND)
    {
      ef_err_clear (err);
      return ef_err_set (err, EF_AUTH, "node %s/%s is not on the exchange: it was deleted (or HZN_DEVICE_ID is wrong)",
                         cfg->org, cfg->node_id);
    }
  if (rc < 0)
    ef_err_wrap (err, "read node %s/%s", cfg->org, cfg->node_id);
  else if (hzn_envelope_one (*env, "nodes", NULL) == NULL)
    {
      json_decref (*env);
      *env = NULL;
      rc = ef_err_set (err, EF_NET, "read node %s/%s: the exchange's answer holds no node", cfg->org, cfg->node_id);
    }
  return rc;
}

int
hzn_plan_read (exchange *ex, const struct agent_config *cfg, struct hzn_plan *out, ef_err **err)
{
  json_t *node_env = NULL, *pat_env = NULL, *node, *pat, *ps;
  struct reg_platform host;
  const char *pattern, *arch;
  size_t i;
  int rc;

  memset (out, 0, sizeof *out);
  rc = hzn_node_read (ex, cfg, &node_env, err);
  if (rc < 0)
    return rc;
  node = hzn_envelope_one (node_env, "nodes", NULL);
  pattern = json_string_value (json_object_get (node, "pattern"));
  arch = json_string_value (json_object_get (node, "arch"));
  out->intervals = json_incref (json_object_get (node, "heartbeatIntervals"));
  if (pattern == NULL || *pattern == '\0')
    {
      /* anax's deployment-policy case: agbots make agreements with the node */
      json_decref (node_env);
      hzn_plan_dispose (out);
      return ef_err_set (err, EF_USAGE,
                         "node %s/%s has no pattern: it follows deployment policy, which edgefetch does not do (yet); "
                         "register it with a pattern (hzn register --pattern ORG/PATTERN)",
                         cfg->org, cfg->node_id);
    }
  reg_platform_host (&host);
  out->arch = xstrdup (hzn_arch_synonym (cfg->arch ? cfg->arch : arch && *arch ? arch : host.arch));
  if (strchr (pattern, '/'))
    {
      out->pattern = xstrdup (pattern);
      rc = read_pattern (ex, pattern, &pat_env, err);
      if (rc == -EF_NOTFOUND)
        {
          /* 404 {"patterns":{}}: deleted, and nodes get no change record for it */
          ef_err_clear (err);
          out->pattern_deleted = true;
          rc = 0;
        }
      else if (rc < 0)
        ef_err_wrap (err, "read pattern %s", pattern);
    }
  pat = hzn_envelope_one (pat_env, "patterns", NULL);
  out->pattern_last_updated = str_dup (pat, "lastUpdated");
  json_array_foreach (rc == 0 ? json_object_get (pat, "services") : NULL, i, ps)
  {
    rc = add_pattern_service (ex, out, ps, err);
    if (rc < 0)
      break;
  }
  json_decref (node_env);
  json_decref (pat_env);
  if (rc < 0)
    hzn_plan_dispose (out);
  return rc;
}

void
hzn_plan_dispose (struct hzn_plan *p)
{
  for (size_t i = 0; i < p->n; i++)
    service_dispose (&p->svc[i]);
  for (size_t i = 0; i < p->nbad; i++)
    {
      free (p->bad[i].name);
      free (p->bad[i].error);
    }
  free (p->pattern);
  free (p->pattern_last_updated);
  free (p->arch);
  json_decref (p->intervals);
  memset (p, 0, sizeof *p);
}
