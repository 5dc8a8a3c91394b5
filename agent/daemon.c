/* daemon.c: see daemon.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "report.h"
#include "signals.h"
#include "daemon.h"
#include "horizon/horizon.h"
#include "notify.h"
#include "poller.h"
#include "state.h"

static volatile sig_atomic_t reload;
static int wake_fd = -1; /* the write end of the loop's self-pipe */

static void
on_signal (int sig)
{
  int saved = errno;

  if (sig == SIGHUP)
    reload = 1;
  else
    ef_cancel = 1;
  if (wake_fd >= 0 && write (wake_fd, "s", 1) < 0)
    { /* full: a wake-up is pending already */
    }
  errno = saved;
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
reload_config (struct agent_config *cfg, const char *config_file, struct sync_ctx *s, poller **pl)
{
  cleanup_err ef_err *err = NULL;
  struct agent_config fresh;
  struct poll_news n;
  exchange *ex = NULL;
  poller *np = NULL;

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
  /* the poller reads cfg: stop it before cfg changes */
  poller_take (*pl, &n);
  poller_free (*pl);
  *pl = NULL;
  exchange_free (s->ex);
  s->ex = ex;
  agent_config_dispose (cfg);
  *cfg = fresh;
  if (poller_new (&np, cfg, s->ex, n.change_id, n.last_ok, true, &err) < 0)
    {
      cli_report ("agent: reload", err);
      ef_cancel = 1;
      return false;
    }
  *pl = np;
  s->node_read_ud = np;
  return true;
}

/* One sync, its state saved and its status told; true when it failed. */
static bool
sync_once (struct agent_config *cfg, struct sync_ctx *s, poller *pl)
{
  cleanup_err ef_err *err = NULL;
  int r = agent_sync (s, &err);

  if (r < 0 && s->stop == 0) /* a stop is told once, as the agent ends */
    cli_report ("agent: sync", err);
  ef_err_clear (&err);
  poller_follow (pl, json_object_get (s->state, "services"));
  if (agent_state_save (cfg->store, s->state, &err) < 0)
    cli_report ("agent", err);
  exchange_rest (s->ex);
  status_line (s->state, r < 0 ? "synced with errors" : "synced");
  return r < 0 && !s->pattern_deleted;
}

/* Nodes are not told of pattern edits: look at the pattern itself. */
static bool
pattern_moved (struct sync_ctx *s)
{
  const char *pattern = json_string_value (json_object_get (s->state, "pattern"));
  json_t *known = json_object_get (s->state, "pattern_last_updated");
  cleanup_free char *stamp = NULL;
  cleanup_err ef_err *err = NULL;
  int rc;

  if (pattern == NULL)
    return false;
  rc = hzn_pattern_stamp (s->ex, pattern, &stamp, &err);
  if (rc == -EF_NOTFOUND) /* deleted: a sync says so */
    return !json_is_string (json_object_get (s->state, "pattern_deleted"));
  if (rc < 0)
    return false;
  return json_is_string (json_object_get (s->state, "pattern_deleted")) || !json_is_string (known)
         || strcmp (stamp, json_string_value (known)) != 0;
}

/* While services wait for the download window: true once it is open;
 * until then no wait lasts past its opening. */
static bool
window_opened (const struct agent_config *cfg, const struct sync_ctx *s, int64_t *wait_ms)
{
  time_t now = time (NULL), next;

  if (!s->waiting)
    return false;
  if (agent_window_open (&cfg->window, now, &next))
    return true;
  if (next > now && (next - now) * 1000 + 1000 < *wait_ms)
    *wait_ms = (next - now) * 1000 + 1000;
  return false;
}

/* Sleep until the poller or a signal wakes us, or ms pass; the watchdog
 * is fed on the way. */
static void
wait_for (int self, int pfd, int64_t ms)
{
  int64_t end = ef_now_ms () + ms, dog = agent_watchdog_interval_ms ();
  struct pollfd fds[2] = { { self, POLLIN, 0 }, { pfd, POLLIN, 0 } };

  while (!ef_cancel && !reload)
    {
      int64_t left = end - ef_now_ms ();
      agent_watchdog ();
      if (left <= 0)
        break;
      if (dog > 0 && left > dog)
        left = dog;
      if (poll (fds, 2, (int) left) > 0)
        {
          char buf[16];
          while (read (self, buf, sizeof buf) > 0)
            ;
          if (fds[1].revents)
            break;
        }
    }
}

/* The node's record moved: a sync only when its pattern or arch did, as
 * anax's checkNodePatternChanges re-registers only then (one GET, where a
 * sync reads the pattern and each service); its heartbeatIntervals go to
 * the poller either way. */
static bool
node_moved (struct sync_ctx *s)
{
  cleanup_err ef_err *err = NULL;
  json_t *env = NULL, *node;
  const char *pattern, *arch, *was;
  bool moved;

  if (hzn_node_read (s->ex, s->cfg, &env, &err) < 0)
    return true; /* a sync tells what is wrong */
  node = hzn_envelope_one (env, "nodes", NULL);
  pattern = json_string_value (json_object_get (node, "pattern"));
  arch = json_string_value (json_object_get (node, "arch"));
  was = json_string_value (json_object_get (s->state, "pattern"));
  moved = !pattern || !was || strcmp (pattern, was) != 0;
  if (!s->cfg->arch && arch && *arch && json_is_string (json_object_get (s->state, "arch")))
    moved = moved || strcmp (hzn_arch_synonym (arch), json_string_value (json_object_get (s->state, "arch"))) != 0;
  if (s->node_read)
    s->node_read (s->node_read_ud, json_object_get (node, "heartbeatIntervals"));
  json_object_set (s->state, "heartbeat_intervals", json_object_get (node, "heartbeatIntervals"));
  json_decref (env);
  return moved;
}

/* What the poller found, into the state.  Returns whether a sync is due. */
static bool
take_news (const struct agent_config *cfg, struct sync_ctx *s, poller *pl, bool *polled)
{
  struct poll_news n;
  json_t *ex = json_object_get (s->state, "exchange");
  bool was_down = json_is_false (json_object_get (ex, "ok")), save = false;

  poller_take (pl, &n);
  *polled = n.polls > 0;
  if (n.stop)
    {
      s->stop = n.stop;
      agent_state_stopped (s->state, n.stop, n.error);
      return false;
    }
  if (n.down)
    {
      if (!was_down)
        cli_report_text ("agent: poll", n.error);
      agent_state_exchange (s->state, false, n.error);
      status_line (s->state, "exchange unreachable, keeping the last state");
      agent_state_save (cfg->store, s->state, NULL);
      return false;
    }
  if (!n.polls)
    return false;
  if (json_integer_value (json_object_get (s->state, "change_id")) != n.change_id
      || json_integer_value (json_object_get (json_object_get (s->state, "poll_intervals"), "min")) != n.iv.min
      || was_down)
    save = true;
  json_object_set_new (s->state, "change_id", json_integer (n.change_id));
  json_object_set_new (s->state, "last_poll_ok", json_integer ((json_int_t) n.last_ok));
  if (was_down)
    agent_state_exchange (s->state, true, NULL);
  json_object_set_new (s->state, "poll_intervals",
                       json_pack ("{s:I, s:I, s:I}", "min", (json_int_t) n.iv.min, "max", (json_int_t) n.iv.max,
                                  "adjust", (json_int_t) n.iv.adjust));
  if (save)
    agent_state_save (cfg->store, s->state, NULL);
  /* back from an outage: a full sync, something may have moved */
  return n.due || was_down || (n.node_changed && node_moved (s));
}

int
agent_daemon (struct agent_config *cfg, const char *config_file, struct sync_ctx *s)
{
  bool need_sync = true, retry_failed = false;
  int64_t last_pattern_check = ef_now_ms ();
  cleanup_err ef_err *err = NULL;
  struct sigaction sa;
  poller *pl = NULL;
  int self[2];

  if (!json_is_integer (json_object_get (s->state, "change_id")))
    {
      json_int_t id;
      if (hzn_max_change_id (s->ex, &id, NULL) == 0)
        json_object_set_new (s->state, "change_id", json_integer (id));
    }
  if (pipe2 (self, O_CLOEXEC | O_NONBLOCK) < 0)
    {
      ef_err_sys (&err, EF_LOCAL, errno, "pipe");
      return cli_report ("agent", err);
    }
  wake_fd = self[1];
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGHUP, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  if (poller_new (&pl, cfg, s->ex, json_integer_value (json_object_get (s->state, "change_id")),
                  (long long) json_integer_value (json_object_get (s->state, "last_poll_ok")), true, &err)
      < 0)
    {
      close (self[0]);
      close (self[1]);
      wake_fd = -1;
      return cli_report ("agent", err);
    }
  s->node_read = poller_node;
  s->node_read_ud = pl;
  agent_notify ("READY=1\nSTATUS=starting");
  while (!ef_cancel && s->stop == 0)
    {
      int64_t wait_ms = cfg->poll_max * 1000;
      bool polled;

      if (reload)
        {
          reload = 0;
          need_sync = reload_config (cfg, config_file, s, &pl) || need_sync;
          if (pl == NULL)
            break;
        }
      if (need_sync)
        {
          retry_failed = sync_once (cfg, s, pl);
          last_pattern_check = ef_now_ms ();
        }
      need_sync = false;
      if (s->stop)
        break;
      window_opened (cfg, s, &wait_ms);
      wait_for (self[0], poller_fd (pl), wait_ms);
      if (ef_cancel || reload)
        continue;
      need_sync = take_news (cfg, s, pl, &polled);
      if (s->stop)
        break;
      /* a failed sync is tried again at the pace of the polls; the pattern
       * (whose edits nodes are not told of) at its own slower one */
      need_sync = need_sync || (retry_failed && polled) || window_opened (cfg, s, &wait_ms);
      if (!need_sync && ef_now_ms () - last_pattern_check >= cfg->pattern_check * 1000)
        {
          last_pattern_check = ef_now_ms ();
          need_sync = pattern_moved (s);
          exchange_rest (s->ex);
        }
    }
  poller_free (pl);
  s->node_read = NULL;
  wake_fd = -1;
  close (self[0]);
  close (self[1]);
  agent_notify ("STOPPING=1");
  agent_state_save (cfg->store, s->state, NULL);
  if (s->stop)
    {
      const char *why = json_string_value (json_object_get (json_object_get (s->state, "stopped"), "reason"));
      cli_report_text ("agent: stopped", why ? why : "refused by the exchange");
      return s->stop;
    }
  return 0;
}
