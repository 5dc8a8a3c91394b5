/* window.c: see window.h. */
#include <stdio.h>
#include <string.h>

#include "../common/text.h"
#include "../common/util.h"
#include "window.h"

/* "HH:MM" at s into minutes of the day (24:00 allowed when end). */
static int
hhmm (const char *s, bool end)
{
  int h, m;

  if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' && s[3] >= '0' && s[3] <= '5'
        && s[4] >= '0' && s[4] <= '9'))
    return -1;
  h = (s[0] - '0') * 10 + (s[1] - '0');
  m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h < 24 || (end && h == 24 && m == 0))
    return h * 60 + m;
  return -1;
}

int
agent_window_parse (struct agent_window *w, const char *s, ef_err **err)
{
  const char *p = s;

  memset (w, 0, sizeof *w);
  while (*p)
    {
      int from, to;
      if (w->n == AGENT_WINDOWS_MAX || strlen (p) < 11 || p[5] != '-' || (from = hhmm (p, false)) < 0
          || (to = hhmm (p + 6, true)) < 0 || from == to || (p[11] != ',' && p[11] != '\0')
          || (p[11] == ',' && p[12] == '\0'))
        {
          cleanup_free char *e = ef_escape (s, 200);
          memset (w, 0, sizeof *w);
          return ef_err_set (err, EF_USAGE,
                             "EDGEFETCH_FETCH_WINDOW '%s': want HH:MM-HH:MM[,HH:MM-HH:MM...] (local time, at most %d "
                             "spans, none empty)",
                             e, AGENT_WINDOWS_MAX);
        }
      w->span[w->n].from = from;
      w->span[w->n].to = to;
      w->n++;
      p += p[11] == ',' ? 12 : 11;
    }
  return 0;
}

static bool
open_at (const struct agent_window *w, int minute)
{
  for (int i = 0; i < w->n; i++)
    {
      int f = w->span[i].from, t = w->span[i].to;
      if (f < t ? minute >= f && minute < t : minute >= f || minute < t)
        return true;
    }
  return false;
}

bool
agent_window_open (const struct agent_window *w, time_t t, time_t *next)
{
  struct tm tm;
  int minute;
  bool now;

  if (next)
    *next = 0;
  if (w->n == 0)
    return true;
  localtime_r (&t, &tm);
  minute = tm.tm_hour * 60 + tm.tm_min;
  now = open_at (w, minute);
  for (int k = 1; next && k <= 24 * 60; k++)
    if (open_at (w, (minute + k) % (24 * 60)) != now)
      {
        *next = t - tm.tm_sec + (time_t) k * 60;
        break;
      }
  return now;
}

void
agent_window_hhmm (time_t t, char buf[16])
{
  struct tm tm;

  localtime_r (&t, &tm);
  snprintf (buf, 16, "%02d:%02d", tm.tm_hour, tm.tm_min);
}
