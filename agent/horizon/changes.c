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
  return rc;
}

bool
hzn_change_relevant (json_t *ch, const struct agent_config *cfg)
{
  const char *res = json_string_value (json_object_get (ch, "resource"));
  const char *id = json_string_value (json_object_get (ch, "id"));
  const char *org = json_string_value (json_object_get (ch, "orgId"));

  if (res == NULL)
    return false;
  if (strcmp (res, "node") == 0)
    return id && org && strcmp (org, cfg->org) == 0 && strcmp (id, cfg->node_id) == 0;
  return strcmp (res, "service") == 0 || strcmp (res, "servicekeys") == 0 || strcmp (res, "servicedockauths") == 0
         || strcmp (res, "org") == 0;
}
