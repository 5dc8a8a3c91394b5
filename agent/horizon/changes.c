/* changes.c: when to look at the exchange again (horizon.h). */
#include <string.h>

#include "../../common/util.h"
#include "horizon.h"

int
hzn_max_change_id (exchange *ex, json_int_t *out, ef_err **err)
{
  json_t *j = NULL;
  int rc = exchange_get (ex, "changes/maxchangeid", &j, err);

  if (rc == 0 && !json_is_integer (json_object_get (j, "maxChangeId")))
    rc = ef_err_set (err, EF_NET, "exchange: changes/maxchangeid without maxChangeId");
  if (rc == 0)
    *out = json_integer_value (json_object_get (j, "maxChangeId"));
  json_decref (j);
  return rc;
}

int
hzn_poll_changes (exchange *ex, const struct agent_config *cfg, json_int_t change_id, json_t **out, ef_err **err)
{
  cleanup_free char *eo = exchange_escape (ex, cfg->org);
  cleanup_free char *path = xasprintf ("orgs/%s/changes", eo);
  json_t *body = json_pack ("{s:I, s:i}", "changeId", change_id + 1, "maxRecords", 1000);
  int rc = exchange_post (ex, path, body, 201, out, err);

  json_decref (body);
  if (rc == -EF_NOTFOUND)
    {
      /* an HA hub's other instance still knows the node's credentials
       * for a while after it was deleted (Changes.scala: "Node or agbot
       * ... not found") */
      ef_err_clear (err);
      rc = ef_err_set (err, EF_AUTH, "node %s/%s is not on the exchange: it was deleted", cfg->org, cfg->node_id);
    }
  return rc;
}

/* The service id's part after "org/", up to its version: the url with
 * the scheme stripped and $!*,;/?@&~=% made '-', then '_' (the
 * exchange's ServicesTQ.formId). */
static bool
names_service (const char *id, const char *url)
{
  const char *u = strstr (url, "://");
  size_t i = 0;

  for (u = u ? u + 3 : url; *u; u++, i++)
    {
      char c = strchr ("$!*,;/?@&~=%", *u) ? '-' : *u;
      if (id[i] != c)
        return false;
    }
  return id[i] == '_';
}

bool
hzn_change_own_node (json_t *ch, const struct agent_config *cfg)
{
  const char *res = json_string_value (json_object_get (ch, "resource"));
  const char *id = json_string_value (json_object_get (ch, "id"));
  const char *org = json_string_value (json_object_get (ch, "orgId"));

  return res && id && org && strcmp (res, "node") == 0 && strcmp (org, cfg->org) == 0 && strcmp (id, cfg->node_id) == 0;
}

bool
hzn_change_relevant (json_t *ch, json_t *services)
{
  const char *res = json_string_value (json_object_get (ch, "resource"));
  const char *id = json_string_value (json_object_get (ch, "id"));
  const char *org = json_string_value (json_object_get (ch, "orgId"));
  json_t *v;
  size_t i;

  if (res == NULL || id == NULL || org == NULL)
    return false;
  if (strcmp (res, "service") != 0 && strcmp (res, "servicekeys") != 0 && strcmp (res, "servicedockauths") != 0)
    return false;
  /* a service of the node's, in any version: a new one may be in range */
  json_array_foreach (services, i, v)
  {
    const char *so = json_string_value (json_object_get (v, "org"));
    const char *su = json_string_value (json_object_get (v, "url"));
    if (so && su && strcmp (so, org) == 0 && names_service (id, su))
      return true;
  }
  return false;
}

/* An interval of heartbeatIntervals, in seconds, or 0 when unset. */
static long
interval_of (json_t *iv, const char *key)
{
  json_int_t v = json_integer_value (json_object_get (iv, key));
  return v > 0 && v <= 86400 ? (long) v : 0;
}

void
hzn_heartbeat_intervals (exchange *ex, const struct agent_config *cfg, json_t *node_iv, long iv[3])
{
  static const char *keys[3] = { "minInterval", "maxInterval", "intervalAdjustment" };
  json_t *env = NULL, *org_iv = NULL;

  /* each one the node's when set, else the org's when set, else as it
   * was (anax's getHeartbeatIntervals); the org is read only when needed */
  if (!interval_of (node_iv, keys[0]) || !interval_of (node_iv, keys[1]) || !interval_of (node_iv, keys[2]))
    {
      cleanup_free char *eo = exchange_escape (ex, cfg->org);
      cleanup_free char *path = xasprintf ("orgs/%s", eo);
      if (exchange_get (ex, path, &env, NULL) == 0)
        org_iv = json_object_get (hzn_envelope_one (env, "orgs", NULL), "heartbeatIntervals");
    }
  for (int i = 0; i < 3; i++)
    {
      long v = interval_of (node_iv, keys[i]);
      if (v == 0)
        v = interval_of (org_iv, keys[i]);
      if (v)
        iv[i] = v;
    }
  if (iv[1] < iv[0])
    iv[1] = iv[0];
  json_decref (env);
}
