/* notify.h: systemd's notify protocol in a few lines, without libsystemd. */
#ifndef EF_NOTIFY_H
#define EF_NOTIFY_H

#include <stdint.h>

/* Send "READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1" to $NOTIFY_SOCKET;
 * nothing when it is unset. */
void agent_notify (const char *msg);
/* WATCHDOG=1, at most every half of $WATCHDOG_USEC. */
void agent_watchdog (void);
/* How often agent_watchdog wants to be called (ms), or 0: no watchdog. */
int64_t agent_watchdog_interval_ms (void);

#endif
