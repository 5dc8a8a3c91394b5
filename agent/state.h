/* state.h: what the agent knows between runs, STORE/state.json: the node,
 * pattern and services of the last sync, the exchange's health, the last
 * change record seen, and what the agent itself created (reconcile.h). */
#ifndef EF_STATE_H
#define EF_STATE_H

#include <stdbool.h>

#include <jansson.h>

#include "../common/err.h"

/* The state, or a fresh one when there is none (or it is unreadable). */
json_t *agent_state_load (const char *store);
/* Replace the file atomically. */
int agent_state_save (const char *store, json_t *state, ef_err **err);
/* "2026-12-01T21:42:29Z" now; caller frees. */
char *agent_now_utc (void);

/* The exchange's health: ok, or the error and since when it has lasted
 * (the first failure of an outage, kept until a contact succeeds). */
void agent_state_exchange (json_t *state, bool ok, const char *error);
/* The agent stopped itself for a refusal that another try would only
 * repeat (the node deleted or its token refused: code 3; a node that
 * follows deployment policy: code 2): what, and since when.  A good
 * sync clears it (stop NULL). */
void agent_state_stopped (json_t *state, int code, const char *reason);

#endif
