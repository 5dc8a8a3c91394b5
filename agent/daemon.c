/* daemon.c: see daemon.h. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "cli.h"
#include "daemon.h"
#include "horizon/horizon.h"
#include "notify.h"
#include "state.h"

static volatile sig_atomic_t reload;

static void
on_hup (int sig)
{
  (void) sig;
  reload = 1;
}

/* Sleep up to ms in short slices, feeding the watchdog; stop early on a signal. */
static void
idle (int64_t ms)
{
  int64_t end = ef_now_ms () + ms;

  while (!ef_cancel && !reload && ef_now_ms () < end)
    {
      int64_t left = end - ef_now_ms ();
      struct timespec ts = { 0, (long) ((left > 200 ? 200 : left) * 1000000) };
      agent_watchdog ();
      nanosleep (&ts, NULL);
    }
}

static void
status_line (json_t *state, const char *what)
{
  char buf[256];
  size_t ok = 0, n = json_array_size (json_object_get (state, "services")), i;
  json_t *e;

  json_array_foreach (json_object_get (state, "services"), i, e)
    ok += json_is_true (json_object_get (e, "ok"));
  snprintf (buf, sizeof buf, "STATUS=%s: %zu of %zu services ready%s", what, ok, n,
            json_is_false (json_object_get (json_object_get (state, "exchange"), "ok")) ? ", exchange unreachable"
                                                                                       : "");
  agent_notify (buf);
}

/* SIGHUP: the new configuration, or the old one kept when it is bad. */
static bool
reload_config (struct agent_config *cfg, const char *config_file, struct sync_ctx *s)
{
  cleanup_err ef_err *err = NULL;
  struct agent_config fresh;
  exchange *ex = NULL;

  if (agent_config_load (&fresh, config_file, &err) < 0)
    {
      cli_report ("agent: reload (keeping the old configuration)", err);
      return false;
    }
  if (exchange_new (&ex, &fresh, &ef_cancel, &err) < 0)
    {
      cli_report ("agent: reload (keeping the old configuration)", err);
      agent_config_dispose (&fresh);
      return false;
    }
  exchange_free (s->ex);
  s->ex = ex;
  agent_config_dispose (cfg);
  *cfg = fresh;
  return true;
}

/* One sync, its state saved and its status told; true when it failed. */
static bool
sync_once (struct agent_config *cfg, struct sync_ctx *s)
{
  cleanup_err ef_err *err = NULL;
  int r = agent_sync (s, &err);

  if (r < 0)
    cli_report ("agent: sync", err);
  ef_err_clear (&err);
  if (agent_state_save (cfg->store, s->state, &err) < 0)
    cli_report ("agent", err);
  status_line (s->state, r < 0 ? "synced with errors" : "synced");
  return r < 0;
}

/* Poll the changes.  Returns true when a sync is due; false on no news,
 * and also when the exchange could not be reached (*down then). */
static bool
poll_due (struct agent_config *cfg, struct sync_ctx *s, time_t *last_ok_poll, bool *down)
{
  json_t *st = s->state, *resp = NULL, *ch;
  cleanup_err ef_err *err = NULL;
  bool due = false;
  size_t i;

  *down = hzn_poll_changes (s->ex, cfg, json_integer_value (json_object_get (st, "change_id")), &resp, &err) < 0;
  if (*down)
    {
      json_t *ex = json_object_get (st, "exchange");
      if (json_is_object (ex))
        {
          json_object_set_new (ex, "ok", json_false ());
          json_object_set_new (ex, "last_error", json_string (ef_err_msg (err)));
        }
      cli_report ("agent: poll", err);
      return false;
    }
  /* after an outage longer than the exchange keeps changes, or when it
   * says it dropped some, a full sync: we may have missed one */
  due = (*last_ok_poll && time (NULL) - *last_ok_poll > cfg->change_retention)
        || json_is_true (json_object_get (resp, "hitMaxRecords"))
        || json_is_false (json_object_get (json_object_get (st, "exchange"), "ok"));
  json_array_foreach (json_object_get (resp, "changes"), i, ch)
    due = due || hzn_change_relevant (ch, cfg);
  if (json_is_integer (json_object_get (resp, "mostRecentChangeId")))
    json_object_set (st, "change_id", json_object_get (resp, "mostRecentChangeId"));
  json_decref (resp);
  *last_ok_poll = time (NULL);
  json_object_set_new (st, "last_poll_ok", json_integer ((json_int_t) *last_ok_poll));
  return due;
}

/* Nodes are not told of pattern edits: look at the pattern itself. */
static bool
pattern_moved (struct sync_ctx *s)
{
  const char *pattern = json_string_value (json_object_get (s->state, "pattern"));
  json_t *known = json_object_get (s->state, "pattern_last_updated");
  cleanup_free char *stamp = NULL;
  bool moved;

  if (pattern == NULL || hzn_pattern_stamp (s->ex, pattern, &stamp, NULL) < 0)
    return false;
  moved = !json_is_string (known) || strcmp (stamp, json_string_value (known)) != 0;
  return moved;
}

/* While services wait for the download window: true once it is open;
 * until then no idle lasts past its opening. */
static bool
window_opened (const struct agent_config *cfg, const struct sync_ctx *s, int64_t *interval)
{
  time_t now = time (NULL), next;

  if (!s->waiting)
    return false;
  if (agent_window_open (&cfg->window, now, &next))
    return true;
  if (next > now && (next - now) * 1000 + 1000 < *interval)
    *interval = (next - now) * 1000 + 1000;
  return false;
}

int
agent_daemon (struct agent_config *cfg, const char *config_file, struct sync_ctx *s)
{
  int64_t interval = cfg->poll_min * 1000;
  bool need_sync = true, retry_failed = false, down = false;
  time_t last_ok_poll = (time_t) json_integer_value (json_object_get (s->state, "last_poll_ok"));
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_hup;
  sigaction (SIGHUP, &sa, NULL);
  agent_notify ("READY=1\nSTATUS=starting");
  if (!json_is_integer (json_object_get (s->state, "change_id")))
    {
      json_int_t id;
      if (hzn_max_change_id (s->ex, &id, NULL) == 0)
        json_object_set_new (s->state, "change_id", json_integer (id));
    }
  while (!ef_cancel)
    {
      if (reload)
        {
          reload = 0;
          need_sync = reload_config (cfg, config_file, s) || need_sync;
        }
      if (need_sync)
        retry_failed = sync_once (cfg, s);
      idle (need_sync ? cfg->poll_min * 1000 : interval);
      need_sync = false;
      if (ef_cancel || reload)
        continue;
      need_sync = poll_due (cfg, s, &last_ok_poll, &down);
      if (down)
        {
          agent_state_save (cfg->store, s->state, NULL);
          status_line (s->state, "exchange unreachable, keeping the last state");
          interval = interval * 2 > cfg->poll_max * 1000 ? cfg->poll_max * 1000 : interval * 2;
          continue;
        }
      need_sync = need_sync || retry_failed || pattern_moved (s) || window_opened (cfg, s, &interval);
      if (need_sync)
        interval = cfg->poll_min * 1000;
      else
        {
          interval += cfg->poll_min * 1000;
          if (interval > cfg->poll_max * 1000)
            interval = cfg->poll_max * 1000;
          window_opened (cfg, s, &interval);
          agent_state_save (cfg->store, s->state, NULL);
        }
    }
  agent_notify ("STOPPING=1");
  agent_state_save (cfg->store, s->state, NULL);
  return 0;
}
