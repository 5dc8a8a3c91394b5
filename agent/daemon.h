/* daemon.h: the agent's loop: sync, then follow the exchange's change
 * records (also the node's heartbeat) and sync again when something that
 * matters moved; SIGHUP rereads the configuration, SIGTERM ends it. */
#ifndef EF_DAEMON_H
#define EF_DAEMON_H

#include "config.h"
#include "sync.h"

/* Runs until SIGTERM or SIGINT (ef_cancel), and returns 0; or until the
 * exchange refuses the node (deleted, token refused: 3) or the node has
 * no pattern (2).  What ends it otherwise is reported on stderr; the
 * result is the exit code. */
int agent_daemon (struct agent_config *cfg, const char *config_file, struct sync_ctx *s);

#endif
