/* poller.h: the node's poll of the exchange's change records, which is
 * also its heartbeat (the exchange sets lastHeartbeat on each POST of
 * /changes), in a thread of its own, so that a sync that takes hours on
 * a thin link never holds it back; anax's changes worker likewise runs
 * apart from its image fetches.  The thread has its own exchange handle;
 * what it learns waits here, under a lock, for the agent's loop to take
 * (poller_take), and each poll wakes that loop through poller_fd. */
#ifndef EF_POLLER_H
#define EF_POLLER_H

#include <stdbool.h>

#include <jansson.h>

#include "../common/err.h"
#include "config.h"
#include "horizon/exchange.h"

typedef struct poller poller;

/* How often to poll, in seconds: start at min; after max/interval quiet
 * polls in a row, add adjust, up to max; news brings it back to min
 * (anax's heartbeatIntervals and changes worker). */
struct poll_intervals
{
  long min, max, adjust;
};

/* What the polls since the last poller_take found. */
struct poll_news
{
  unsigned polls;           /* polls answered */
  bool due;                 /* a change that matters to the node, or some may have been missed */
  bool node_changed;        /* the node's own record moved: its pattern, arch or intervals may have */
  bool down;                /* the last poll failed */
  int stop;                 /* the exchange refused the node: 3, or 2 (see sync.h) */
  char error[512];          /* the last poll's failure */
  json_int_t change_id;     /* the last change record seen */
  long long last_ok;        /* time() of the last poll answered, or 0 */
  struct poll_intervals iv; /* the intervals in force */
};

/* Start polling from change_id (the node's last one seen), with a handle
 * of from's (which must outlive the poller).  consume: false for `agent
 * --once`, whose polls are heartbeats only. */
int poller_new (poller **out, const struct agent_config *cfg, const exchange *from, json_int_t change_id,
                long long last_ok, bool consume, ef_err **err);
/* Stop the thread (an answer under way is abandoned) and free. */
void poller_free (poller *p);
/* Readable after each poll; read it empty with poller_take. */
int poller_fd (const poller *p);
void poller_take (poller *p, struct poll_news *out);
/* What the node runs now, for telling which changes matter: the state's
 * services array (org, url of each). */
void poller_follow (poller *p, json_t *services);
/* The node as just read: its heartbeatIntervals (or NULL), which hold
 * from now on where they are set, else the org's (which the thread
 * reads, and reads again when the org's record changes), else the
 * configured poll bounds.  Fit for sync_ctx.node_read. */
void poller_node (void *p, json_t *intervals);

#endif
