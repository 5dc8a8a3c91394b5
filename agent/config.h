/* config.h: the agent's env-file (contract.md, "The agent's configuration"). */
#ifndef EF_CONFIG_H
#define EF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "window.h"

struct agent_config
{
  char *exchange_url; /* with a trailing '/' */
  char *org;
  char *node_id;
  char *node_token;
  char *hub_cert;
  char *store;
  char *trust_dir;
  char *anax_trust_dir; /* anax's user key dir, read too when EDGEFETCH_TRUST_DIR is not set */
  bool trust_exchange_keys;
  bool require_digest;
  bool prune;
  bool keep_layers;
  char *certs_dir;
  char *auth_file;
  char *runtime;
  char *arch; /* amd64, arm64, arm, ...: EDGEFETCH_ARCH, else the node's, else ours */
  char *cosign_key;
  char *congestion;             /* EDGEFETCH_TCP_CONGESTION, or NULL: the system's */
  long poll_min, poll_max;      /* seconds */
  long change_retention;        /* seconds the exchange keeps change records */
  long pattern_check;           /* seconds between looks at the pattern (nodes get no record of its edits) */
  long exchange_timeout;        /* seconds for one exchange request (anax: 30) */
  int64_t limit_rate;           /* EDGEFETCH_LIMIT_RATE, bytes/s for each pull; 0: none */
  struct agent_window window;   /* EDGEFETCH_FETCH_WINDOW; n == 0: always */
};

/* Read FILE (KEY=value lines, # comments, optional quotes, `export`
 * allowed); keys it lacks come from the environment.  The file wins, so
 * that SIGHUP picks up an edit even under systemd's EnvironmentFile=. */
int agent_config_load (struct agent_config *c, const char *file, ef_err **err);
void agent_config_dispose (struct agent_config *c);

/* Parse one env-file into a NULL-terminated KEY=value array (for tests). */
int agent_envfile_parse (const char *text, char ***out, ef_err **err);

#endif
