/* window.h: download windows, EDGEFETCH_FETCH_WINDOW:
 * "HH:MM-HH:MM[,HH:MM-HH:MM...]" in local time.  A span whose end is
 * before its start runs past midnight; "00:00-24:00" is the whole day.
 * Outside every span the agent starts no blob download. */
#ifndef EF_WINDOW_H
#define EF_WINDOW_H

#include <stdbool.h>
#include <time.h>

#include "../common/err.h"

#define AGENT_WINDOWS_MAX 16

struct agent_window
{
  int n; /* 0: no window, always open */
  struct
  {
    int from, to; /* minutes of the day, to in 1..1440 */
  } span[AGENT_WINDOWS_MAX];
};

/* EF_USAGE for anything else than the syntax above. */
int agent_window_parse (struct agent_window *w, const char *s, ef_err **err);
/* Whether t (local time) is inside a span; *next (may be NULL) is when
 * that changes, or 0 when it never does. */
bool agent_window_open (const struct agent_window *w, time_t t, time_t *next);
/* "HH:MM" of t, local time, into buf. */
void agent_window_hhmm (time_t t, char buf[16]);

#endif
