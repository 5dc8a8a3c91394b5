/* spawn.h: run a helper program with its output captured, bounded in
 * bytes and in time (credential helpers, ctr). */
#ifndef EF_SPAWN_H
#define EF_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct ef_spawn
{
  const char *const *argv; /* argv[0] is looked up in PATH */
  int in_fd;               /* becomes the child's stdin (closed here), or -1 */
  const char *input;       /* else these bytes are its stdin (at most 4 KiB), or NULL: /dev/null */
  bool merge_stderr;       /* stderr into the captured output too */
  size_t max_out;          /* bytes of output kept; the rest is read and dropped */
  int timeout_ms;          /* 0: no limit */
};

enum ef_spawn_end
{
  EF_SPAWN_EXITED,   /* status holds the exit code */
  EF_SPAWN_SIGNALED, /* killed by a signal it did not get from us */
  EF_SPAWN_TIMEOUT,  /* still running at timeout_ms: killed */
};

struct ef_spawn_result
{
  enum ef_spawn_end end;
  int status;
  char *out; /* NUL-terminated, at most max_out bytes */
  size_t len;
  bool truncated; /* it wrote more than max_out */
};

/* Returns 0 once the child is gone, negative (EF_LOCAL) when it could not
 * be started; the caller frees out->out. */
int ef_spawn_run (const struct ef_spawn *sp, struct ef_spawn_result *out, ef_err **err);
void ef_spawn_result_dispose (struct ef_spawn_result *r);

#endif
