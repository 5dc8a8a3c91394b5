/* notify.c: see notify.h (chrony's main.c does the same in ~20 lines). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/util.h"
#include "notify.h"

void
agent_notify (const char *msg)
{
  const char *path = getenv ("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t len;
  int fd;

  if (path == NULL || (path[0] != '/' && path[0] != '@') || (len = strlen (path)) >= sizeof sa.sun_path)
    return;
  memset (&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy (sa.sun_path, path, len);
  if (sa.sun_path[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract namespace */
  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (sendto (fd, msg, strlen (msg), MSG_NOSIGNAL, (struct sockaddr *) &sa,
              (socklen_t) (offsetof (struct sockaddr_un, sun_path) + len))
      < 0)
    { /* systemd gone: nothing to do */
    }
  close (fd);
}

int64_t
agent_watchdog_interval_ms (void)
{
  const char *usec = getenv ("WATCHDOG_USEC");
  uint64_t us;

  if (usec == NULL || ef_parse_u64 (usec, UINT64_MAX, &us) < 0 || us == 0)
    return 0;
  return (int64_t) (us / 2000);
}

void
agent_watchdog (void)
{
  static int64_t last;
  int64_t every = agent_watchdog_interval_ms (), now = ef_now_ms ();

  if (every == 0 || now - last < every)
    return;
  last = now;
  agent_notify ("WATCHDOG=1");
}
