/* sync.h: one full sync of the node's pattern, and the state it leaves. */
#ifndef EF_SYNC_H
#define EF_SYNC_H

#include <jansson.h>

#include "../registry/client.h"
#include "../registry/store.h"
#include "config.h"
#include "exchange.h"

struct sync_ctx
{
  const struct agent_config *cfg;
  exchange *ex;
  reg_store *store;
  json_t *state;        /* kept in memory, saved after each sync */
  volatile int *cancel;
  reg_progress_fn progress; /* called while blobs flow (the watchdog) */
};

/* Node -> pattern -> services for our arch (requiredServices resolved,
 * version ranges honoured) -> verify each deployment -> credentials from
 * dockauths -> pull every image -> record.  One failing service does not
 * stop the others.  Returns 0, or the exit code of the first failure
 * (negated); exchange failures leave the services' last state as it was. */
int agent_sync (struct sync_ctx *s, ef_err **err);

/* The pattern's lastUpdated, or NULL (caller frees). */
char *agent_pattern_stamp (struct sync_ctx *s, ef_err **err);

/* STORE/state.json */
json_t *agent_state_load (const char *store);
int agent_state_save (const char *store, json_t *state, ef_err **err);

/* amd64, arm64, arm from GOARCH or uname names (x86_64, aarch64, armhf, ...). */
const char *agent_arch_synonym (const char *a);
/* Horizon version ranges: "1.2.3" means >= 1.2.3; "[1.0.0,2.0.0)" with
 * brackets or parens; INFINITY as an upper bound. */
int agent_version_cmp (const char *a, const char *b);
int agent_version_in_range (const char *v, const char *range);

#endif
