/* sync.h: one full sync of the node: the exchange's plan (horizon.h),
 * each service's deployment verified, its images delivered (deliver.h),
 * the state updated and what the agent created reconciled. */
#ifndef EF_SYNC_H
#define EF_SYNC_H

#include <signal.h>

#include <jansson.h>

#include "../registry/transfer/blobs.h"
#include "../registry/store/store.h"
#include "config.h"
#include "horizon/exchange.h"

struct sync_ctx
{
  const struct agent_config *cfg;
  exchange *ex;
  reg_store *store;
  json_t *state; /* kept in memory, saved after each sync */
  const volatile sig_atomic_t *cancel;
  reg_progress_fn progress; /* called while blobs flow (the watchdog) */
  /* called once the node is read, with its heartbeatIntervals (or NULL),
   * before anything is fetched: a long sync heartbeats at them */
  void (*node_read) (void *ud, json_t *intervals);
  void *node_read_ud;
  bool waiting;             /* out: some service waits for the download window */
  int stop;                 /* out: the exchange refused the node (3) or it has no pattern (2) */
  bool pattern_deleted;     /* out: the node's pattern is gone from the exchange */
  const char *pattern;      /* during a sync: the node's pattern ("org/name") */
};

/* One failing service does not stop the others.  Returns 0, or the exit
 * code of the first failure (negated); an exchange failure leaves the
 * services' last state as it was. */
int agent_sync (struct sync_ctx *s, ef_err **err);

#endif
