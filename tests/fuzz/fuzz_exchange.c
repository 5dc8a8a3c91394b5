/* Bodies the exchange answers a node with: node and pattern envelopes,
 * service lists, change records, version ranges (agent/horizon). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/horizon/horizon.h"
#include "../../common/json.h"
#include "../../common/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
walk_versions (json_t *j)
{
  json_t *v;
  const char *k;
  size_t i;

  if (json_is_string (j) && json_string_length (j) < 256)
    {
      hzn_version_in_range ("1.2.3", json_string_value (j));
      hzn_version_cmp (json_string_value (j), "2.0.0");
      hzn_arch_synonym (json_string_value (j));
    }
  else if (json_is_object (j))
    json_object_foreach (j, k, v) walk_versions (v);
  else if (json_is_array (j))
    json_array_foreach (j, i, v) walk_versions (v);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct agent_config cfg = { 0 };
  json_t *j = ef_json_parse ((const char *) data, size, EF_JSON_BUDGET, NULL), *p, *ps, *ch;
  const char *id = NULL;
  size_t i;

  if (j == NULL)
    return 0;
  cfg.org = (char *) "myorg";
  cfg.node_id = (char *) "node1";
  hzn_envelope_one (j, "nodes", &id);
  p = hzn_envelope_one (j, "patterns", &id);
  json_array_foreach (json_object_get (p, "services"), i, ps) hzn_pattern_version (ps);
  hzn_services_best (j, "amd64", NULL, "[1.0.0,2.0.0)", &id);
  hzn_services_best (j, "arm", "1.0.0", NULL, &id);
  json_array_foreach (json_object_get (j, "changes"), i, ch)
  {
    hzn_change_relevant (ch, json_object_get (j, "services_followed"));
    hzn_change_own_node (ch, &cfg);
  }
  walk_versions (j);
  json_decref (j);
  return 0;
}
