/* daemon.h: the agent's loop: sync, then follow the exchange's change
 * records (also the node's heartbeat) and sync again when something that
 * matters moved; SIGHUP rereads the configuration, SIGTERM ends it. */
#ifndef EF_DAEMON_H
#define EF_DAEMON_H

#include "config.h"
#include "sync.h"

/* Runs until SIGTERM or SIGINT (ef_cancel); returns 0. */
int agent_daemon (struct agent_config *cfg, const char *config_file, struct sync_ctx *s);

#endif
