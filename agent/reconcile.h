/* reconcile.h: what the agent itself created, and pruning it.  The state
 * keeps the names it gave images in the runtime ("handed") and the names
 * it recorded in the store ("recorded").  After a sync in which every
 * service succeeded, with EDGEFETCH_PRUNE=true, what the pattern no
 * longer names is removed from the runtime and forgotten by the store,
 * whose gc then drops its blobs.  Images the agent did not create are
 * never touched. */
#ifndef EF_RECONCILE_H
#define EF_RECONCILE_H

#include <stdbool.h>

#include <jansson.h>

#include "../registry/store/store.h"
#include "config.h"

void agent_reconcile (const struct agent_config *cfg, reg_store *store, json_t *state, json_t *services,
                      bool complete);

#endif
