/* horizon.h: Open Horizon's protocol as a node follows it, over the
 * exchange (exchange.h): what the node runs (its pattern's services for
 * its architecture, requiredServices resolved within their version
 * ranges), the keys and registry credentials a service carries, and the
 * change records that say when to look again.  plan.c, version.c,
 * service.c, changes.c. */
#ifndef EF_HORIZON_H
#define EF_HORIZON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../../common/err.h"
#include "../../registry/remote/session.h"
#include "../../verify/rsapss.h"
#include "../config.h"
#include "exchange.h"

#define HZN_MAX_SERVICES 64

/* One service definition to run, as the exchange holds it. */
struct hzn_service
{
  char *org, *url, *version, *arch;
  char *id;                   /* "org/svcid" as the exchange keys it */
  json_t *def;                /* the definition: deployment, deploymentSignature, ... */
  char *overrides, *overrides_sig; /* the pattern's, for a top-level service */
  bool top;                        /* named by the pattern, not required by another service */
};

/* A service of the pattern that could not be resolved. */
struct hzn_unresolved
{
  char *name; /* org/url */
  int code;   /* EF_NOTFOUND, EF_VERIFY, EF_USAGE */
  char *error;
};

/* What the exchange says the node runs now. */
struct hzn_plan
{
  char *pattern;              /* "org/name", or NULL: no pattern */
  char *pattern_last_updated; /* or NULL */
  bool pattern_deleted;       /* the node names a pattern the exchange no longer has */
  json_t *intervals;          /* the node's heartbeatIntervals, or NULL */
  char *arch;                 /* amd64, arm64, arm */
  struct hzn_service svc[HZN_MAX_SERVICES];
  size_t n;
  struct hzn_unresolved bad[HZN_MAX_SERVICES];
  size_t nbad;
};

/* GET the node's own record: the {"nodes":{...}} envelope.  EF_AUTH when
 * the node is refused or not there (deleted). */
int hzn_node_read (exchange *ex, const struct agent_config *cfg, json_t **env, ef_err **err);
/* Read node, pattern and services.  An exchange failure fails: EF_AUTH
 * when the node's credentials are refused or the node is gone (deleted),
 * EF_USAGE for a node without a pattern (deployment policy), EF_NET when
 * the exchange cannot be reached.  A deleted pattern is no failure: the
 * plan says so and holds no service.  A service that cannot be resolved
 * is listed in bad and the others go on. */
int hzn_plan_read (exchange *ex, const struct agent_config *cfg, struct hzn_plan *out, ef_err **err);
void hzn_plan_dispose (struct hzn_plan *p);

/* The keys that may sign v's deployment: the trust dir (and anax's
 * user key dir when it is not set), plus the ones the exchange holds
 * for v when EDGEFETCH_TRUST_EXCHANGE_KEYS=true.  What could not be
 * loaded is added to notes. */
vfy_keyring *hzn_service_keyring (exchange *ex, const struct agent_config *cfg, const struct hzn_service *v,
                                  const char *pattern, json_t *notes);
/* The keys the exchange holds for v, into kr: those published with the
 * service and, for a service of the pattern itself, the pattern's, each
 * named "exchange:ORG/services/SVC/keys/NAME" (or .../patterns/...). */
void hzn_exchange_keys (exchange *ex, const struct hzn_service *v, const char *pattern, vfy_keyring *kr,
                        json_t *notes);
/* v's dockauths as registry credentials (at most max; an empty username
 * is "token", as the exchange stores it); *n how many.  Free them with
 * hzn_creds_dispose. */
int hzn_service_dockauths (exchange *ex, const struct hzn_service *v, struct reg_host_creds *hc, size_t max,
                           size_t *n, ef_err **err);
void hzn_creds_dispose (struct reg_host_creds *hc, size_t n);

/* changes/maxchangeid */
int hzn_max_change_id (exchange *ex, json_int_t *out, ef_err **err);
/* POST orgs/{org}/changes from change_id + 1 (also the node's heartbeat). */
int hzn_poll_changes (exchange *ex, const struct agent_config *cfg, json_int_t change_id, json_t **out,
                      ef_err **err);
/* The poll (heartbeat) intervals in seconds, iv = {min, max, adjust},
 * which come in as the configured ones: each is the node's
 * heartbeatIntervals value (node_iv, from its record) when set, else its
 * org's (GET orgs/{org}) when set, else left as it is. */
void hzn_heartbeat_intervals (exchange *ex, const struct agent_config *cfg, json_t *node_iv, long iv[3]);
/* Can this change record change what the node fetches?  A service (its
 * definition, keys or dockauths, any version) of those in services (the
 * state's: org and url of each).  The node's own record is told by
 * hzn_change_own_node. */
bool hzn_change_relevant (json_t *change, json_t *services);
bool hzn_change_own_node (json_t *change, const struct agent_config *cfg);
/* The pattern's lastUpdated ("" when it has none); caller frees. */
int hzn_pattern_stamp (exchange *ex, const char *pattern, char **out, ef_err **err);

/* For plan.c and the fuzz target: the exchange's answers as JSON. */
/* The single value of an envelope {"KIND":{"id": {...}}, "lastIndex":0}. */
json_t *hzn_envelope_one (json_t *j, const char *kind, const char **id);
/* The best definition for arch in a {"services":{...}} answer: exactly
 * version, else the highest in range (*id its key). */
json_t *hzn_services_best (json_t *answer, const char *arch, const char *version, const char *range, const char **id);
/* The serviceVersions entry of a pattern service with the best (lowest)
 * priority_value, else the first; NULL when none has a version. */
json_t *hzn_pattern_version (json_t *pattern_service);

/* amd64, arm64, arm from GOARCH or uname names (x86_64, aarch64, armhf, ...). */
const char *hzn_arch_synonym (const char *a);
/* Horizon versions: dotted numbers. */
int hzn_version_cmp (const char *a, const char *b);
/* "1.2.3" means >= 1.2.3; "[1.0.0,2.0.0)" with brackets or parens;
 * INFINITY (or nothing) as an upper bound. */
bool hzn_version_in_range (const char *v, const char *range);

#endif
