/* agent_cmd.c: edgefetch agent and edgefetch status. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "cli.h"
#include "notify.h"
#include "sync.h"

#define DEFAULT_CONFIG "/etc/default/edgefetch"

static volatile int reload;

static void
on_hup (int sig)
{
  (void) sig;
  reload = 1;
}

static void
progress_ping (void *payload, int64_t done, int64_t total)
{
  (void) payload;
  (void) done;
  (void) total;
  agent_watchdog ();
}

static const char agent_usage[] = "usage: edgefetch agent [--config FILE] [--once]\n"
                                  "\n"
                                  "  Follow the node's pattern on the Horizon exchange: verify each service's\n"
                                  "  deployment, fetch its images, keep them in the store.\n"
                                  "  --config FILE  env-file (default " DEFAULT_CONFIG ")\n"
                                  "  --once         one full sync, then exit with its result\n";

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

/* Is this change record one that can change what we fetch? */
static bool
relevant (json_t *ch, const struct agent_config *cfg)
{
  const char *res = json_string_value (json_object_get (ch, "resource"));
  const char *id = json_string_value (json_object_get (ch, "id"));
  const char *org = json_string_value (json_object_get (ch, "orgId"));

  if (res == NULL)
    return false;
  if (strcmp (res, "node") == 0)
    return id && org && strcmp (org, cfg->org) == 0 && strcmp (id, cfg->node_id) == 0;
  return strcmp (res, "service") == 0 || strcmp (res, "servicekeys") == 0 || strcmp (res, "servicedockauths") == 0
         || strcmp (res, "org") == 0;
}

static void
status_line (json_t *state, const char *what)
{
  char buf[256];
  size_t ok = 0, n = json_array_size (json_object_get (state, "services")), i;
  json_t *e;

  json_array_foreach (json_object_get (state, "services"), i, e) ok += json_is_true (json_object_get (e, "ok"));
  snprintf (buf, sizeof buf, "STATUS=%s: %zu of %zu services ready%s", what, ok, n,
            json_is_false (json_object_get (json_object_get (state, "exchange"), "ok")) ? ", exchange unreachable"
                                                                                       : "");
  agent_notify (buf);
}

static int
run_daemon (struct agent_config *cfg, const char *config_file, struct sync_ctx *s)
{
  int64_t interval = cfg->poll_min * 1000;
  bool need_sync = true, retry_failed = false;
  time_t last_ok_poll = (time_t) json_integer_value (json_object_get (s->state, "last_poll_ok"));
  ef_err *err = NULL;
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_hup;
  sigaction (SIGHUP, &sa, NULL);
  agent_notify ("READY=1\nSTATUS=starting");

  if (!json_is_integer (json_object_get (s->state, "change_id")))
    {
      json_t *j = NULL;
      if (exchange_get (s->ex, "changes/maxchangeid", &j, &err) == 0)
        json_object_set (s->state, "change_id", json_object_get (j, "maxChangeId"));
      json_decref (j);
      ef_err_free (err);
      err = NULL;
    }

  while (!ef_cancel)
    {
      json_t *body, *resp = NULL, *ch;
      bool active = false;
      size_t i;

      if (reload)
        {
          struct agent_config fresh;
          reload = 0;
          if (agent_config_load (&fresh, config_file, &err) < 0)
            cli_report ("agent: reload (keeping the old configuration)", err);
          else
            {
              exchange *ex = NULL;
              if (exchange_new (&ex, &fresh, &ef_cancel, &err) < 0)
                {
                  cli_report ("agent: reload (keeping the old configuration)", err);
                  agent_config_dispose (&fresh);
                }
              else
                {
                  exchange_free (s->ex);
                  s->ex = ex;
                  agent_config_dispose (cfg);
                  *cfg = fresh;
                  need_sync = true;
                }
            }
          ef_err_free (err);
          err = NULL;
        }
      if (need_sync)
        {
          int r = agent_sync (s, &err);
          retry_failed = r < 0;
          if (r < 0)
            cli_report ("agent: sync", err);
          ef_err_free (err);
          err = NULL;
          if (agent_state_save (cfg->store, s->state, &err) < 0)
            cli_report ("agent", err);
          ef_err_free (err);
          err = NULL;
          status_line (s->state, r < 0 ? "synced with errors" : "synced");
          need_sync = false;
          active = true;
        }
      if (ef_cancel)
        break;
      idle (active ? cfg->poll_min * 1000 : interval);
      if (ef_cancel)
        break;
      if (reload)
        continue;

      /* The changes call is also the node's heartbeat. */
      body = json_pack ("{s:I, s:i}", "changeId",
                        (json_int_t) (json_integer_value (json_object_get (s->state, "change_id")) + 1), "maxRecords",
                        1000);
      {
        cleanup_free char *eo = exchange_escape (s->ex, cfg->org);
        cleanup_free char *path = xasprintf ("orgs/%s/changes", eo);
        if (exchange_post (s->ex, path, body, 201, &resp, &err) < 0)
          resp = NULL;
      }
      json_decref (body);
      if (resp == NULL)
        {
          json_t *ex = json_object_get (s->state, "exchange");
          if (json_is_object (ex))
            {
              json_object_set_new (ex, "ok", json_false ());
              json_object_set_new (ex, "last_error", json_string (ef_err_msg (err)));
            }
          cli_report ("agent: poll", err);
          ef_err_free (err);
          err = NULL;
          agent_state_save (cfg->store, s->state, NULL);
          status_line (s->state, "exchange unreachable, keeping the last state");
          interval = interval * 2 > cfg->poll_max * 1000 ? cfg->poll_max * 1000 : interval * 2;
          continue;
        }
      if (last_ok_poll && time (NULL) - last_ok_poll > cfg->change_retention)
        need_sync = true; /* the exchange may have dropped changes we never saw */
      if (json_is_true (json_object_get (resp, "hitMaxRecords")))
        need_sync = true;
      json_array_foreach (json_object_get (resp, "changes"), i, ch) if (relevant (ch, cfg)) need_sync = true;
      if (json_is_integer (json_object_get (resp, "mostRecentChangeId")))
        json_object_set (s->state, "change_id", json_object_get (resp, "mostRecentChangeId"));
      json_decref (resp);
      last_ok_poll = time (NULL);
      json_object_set_new (s->state, "last_poll_ok", json_integer ((json_int_t) last_ok_poll));
      if (json_is_false (json_object_get (json_object_get (s->state, "exchange"), "ok")))
        need_sync = true; /* back after an outage */
      /* Nodes are not told of pattern edits: look at the pattern itself. */
      if (!need_sync)
        {
          char *stamp = agent_pattern_stamp (s, &err);
          json_t *known = json_object_get (s->state, "pattern_last_updated");
          if (stamp && (!json_is_string (known) || strcmp (stamp, json_string_value (known)) != 0))
            need_sync = true;
          free (stamp);
          ef_err_free (err);
          err = NULL;
        }
      if (retry_failed)
        need_sync = true;
      if (need_sync)
        interval = cfg->poll_min * 1000;
      else
        {
          interval += cfg->poll_min * 1000;
          if (interval > cfg->poll_max * 1000)
            interval = cfg->poll_max * 1000;
          agent_state_save (cfg->store, s->state, NULL);
        }
    }
  agent_notify ("STOPPING=1");
  agent_state_save (cfg->store, s->state, NULL);
  return 0;
}

int
cmd_agent (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "once", no_argument, NULL, '1' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *config_file = DEFAULT_CONFIG;
  bool once = false;
  struct agent_config cfg;
  struct sync_ctx s = { 0 };
  cleanup_err ef_err *err = NULL;
  int c, rc;

  optind = 1;
  while ((c = getopt_long (argc, argv, "+h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'c': config_file = optarg; break;
      case '1': once = true; break;
      case 'h': fputs (agent_usage, stdout); return 0;
      default: return cli_usage_error ("agent", "bad option");
      }
  if (optind != argc)
    return cli_usage_error ("agent", "no arguments expected");
  if (agent_config_load (&cfg, config_file, &err) < 0)
    return cli_report ("agent: configuration", err);
  s.cfg = &cfg;
  s.cancel = &ef_cancel;
  s.progress = progress_ping;
  rc = reg_store_open (&s.store, cfg.store, &err);
  if (rc == 0)
    rc = exchange_new (&s.ex, &cfg, &ef_cancel, &err);
  if (rc < 0)
    {
      rc = cli_report ("agent", err);
      goto out;
    }
  s.state = agent_state_load (cfg.store);
  if (once)
    {
      rc = agent_sync (&s, &err);
      if (agent_state_save (cfg.store, s.state, err ? NULL : &err) < 0 && rc == 0)
        rc = -EF_LOCAL;
      rc = rc < 0 ? cli_report ("agent", err) : 0;
    }
  else
    rc = run_daemon (&cfg, config_file, &s);
out:
  json_decref (s.state);
  exchange_free (s.ex);
  reg_store_free (s.store);
  agent_config_dispose (&cfg);
  return rc;
}
