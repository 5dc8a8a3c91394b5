/* test_horizon.c: what a node makes of the exchange's change records and
 * of requiredServices versions, as the exchange and anax define them. */
#include <stdlib.h>
#include <string.h>

#include "../../agent/horizon/horizon.h"
#include "vectors.h"

static json_t *
change (const char *org, const char *resource, const char *id)
{
  return json_pack ("{s:s, s:s, s:s, s:s}", "orgId", org, "resource", resource, "id", id, "operation", "modified");
}

/* Whether a change record of resource and id in org concerns the node. */
static bool
relevant (json_t *svc, const char *org, const char *resource, const char *id)
{
  json_t *c = change (org, resource, id);
  bool r = hzn_change_relevant (c, svc);

  json_decref (c);
  return r;
}

/* The node's services by org and url; a change names a service by the
 * exchange's formId (scheme stripped, $!*,;/?@&~=% as '-') and version. */
static void
changes__a_service_of_the_node_in_any_version (void **state)
{
  json_t *svc = json_pack ("[{s:s, s:s}, {s:s, s:s}]", "org", "myorg", "url", "example.com.web", "org", "IBM", "url",
                           "https://bluehorizon.network/service-gps");

  (void) state;
  assert_true (relevant (svc, "myorg", "service", "example.com.web_2.0.0_amd64"));
  assert_true (relevant (svc, "myorg", "servicedockauths", "example.com.web_1.0.0_arm64"));
  assert_true (relevant (svc, "IBM", "servicekeys", "bluehorizon.network-service-gps_2.0.3_amd64"));
  /* another org's service of the same url, a longer url, a policy */
  assert_false (relevant (svc, "otherorg", "service", "example.com.web_2.0.0_amd64"));
  assert_false (relevant (svc, "myorg", "service", "example.com.webx_2.0.0_amd64"));
  assert_false (relevant (svc, "myorg", "servicepolicies", "example.com.web_2.0.0_amd64"));
  json_decref (svc);
}

static void
changes__the_own_node_record_only (void **state)
{
  struct agent_config cfg = { 0 };
  json_t *c;

  (void) state;
  cfg.org = (char *) "myorg";
  cfg.node_id = (char *) "node1";
  c = change ("myorg", "node", "node1");
  assert_true (hzn_change_own_node (c, &cfg));
  assert_false (hzn_change_relevant (c, NULL));
  json_decref (c);
  c = change ("myorg", "node", "node10");
  assert_false (hzn_change_own_node (c, &cfg));
  json_decref (c);
  c = change ("other", "node", "node1");
  assert_false (hzn_change_own_node (c, &cfg));
  json_decref (c);
}

/* A requiredServices `version` means [version, INFINITY) (anax's
 * Version_Expression_Factory); a range keeps its brackets. */
static void
versions__a_version_is_this_or_newer (void **state)
{
  (void) state;
  assert_true (hzn_version_in_range ("2.0.0", "1.0.0"));
  assert_true (hzn_version_in_range ("1.0.0", "1.0.0"));
  assert_false (hzn_version_in_range ("0.9.9", "1.0.0"));
  assert_false (hzn_version_in_range ("2.0.0", "[1.0.0,2.0.0)"));
  assert_true (hzn_version_in_range ("2.0.0", "[1.0.0,2.0.0]"));
  assert_true (hzn_version_in_range ("10.0.0", "[1.0.0,INFINITY)"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (changes__a_service_of_the_node_in_any_version),
    cmocka_unit_test (changes__the_own_node_record_only),
    cmocka_unit_test (versions__a_version_is_this_or_newer),
  };
  return cmocka_run_group_tests_name ("horizon", tests, NULL, NULL);
}
