/* agent_cmd.c: edgefetch agent. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>

#include "../../common/paths.h"
#include "../../common/util.h"
#include "cli.h"
#include "../daemon.h"
#include "../notify.h"
#include "../poller.h"
#include "../state.h"
#include "../sync.h"

static const char agent_usage[] = "usage: edgefetch agent [--config FILE] [--once]\n"
                                  "\n"
                                  "  Follow the node's pattern on the Horizon exchange: verify each service's\n"
                                  "  deployment, fetch its images, keep them in the store.\n"
                                  "  --config FILE  env-file (default " EF_DEFAULT_CONFIG ")\n"
                                  "  --once         one full sync, then exit with its result\n";

static void
progress_ping (void *payload, int64_t done, int64_t total)
{
  (void) payload;
  (void) done;
  (void) total;
  agent_watchdog ();
}

/* An http:// exchange works, as anax lets it, with one line that says
 * what it costs; status says it too. */
static void
plain_http (struct sync_ctx *s)
{
  json_t *ex = json_object_get (s->state, "exchange");

  if (!json_is_object (ex))
    json_object_set_new (s->state, "exchange", ex = json_object ());
  json_object_set_new (ex, "url", json_string (s->cfg->exchange_url));
  json_object_set_new (ex, "plain_http", json_boolean (exchange_plain (s->ex)));
  if (exchange_plain (s->ex))
    cli_warn ("the exchange is plain HTTP (%s): the node's token and its deployments cross the network unencrypted",
              s->cfg->exchange_url);
}

/* What recovery removed at start (a crash's leftovers), for status. */
static void
note_recovery (struct sync_ctx *s, const struct reg_recovery *r)
{
  cleanup_free char *stamp = NULL;

  if (r->tmp + r->parts + r->records + r->handoffs == 0)
    return;
  stamp = agent_now_utc ();
  json_object_set_new (s->state, "recovery",
                       json_pack ("{s:s, s:i, s:i, s:i, s:i}", "at", stamp, "tmp", r->tmp, "parts", r->parts,
                                  "records", r->records, "handoffs", r->handoffs));
}

/* agent --once: one sync, heartbeating all the while, as the daemon does. */
static int
sync_once (struct sync_ctx *s)
{
  cleanup_err ef_err *err = NULL;
  poller *hb = NULL;
  int rc, saved;

  if (poller_new (&hb, s->cfg, s->ex, json_integer_value (json_object_get (s->state, "change_id")), 0, false, &err)
      < 0)
    return cli_report ("agent", err);
  s->node_read = poller_node;
  s->node_read_ud = hb;
  rc = agent_sync (s, &err);
  s->node_read = NULL;
  poller_free (hb);
  saved = agent_state_save (s->cfg->store, s->state, rc < 0 ? NULL : &err);
  if (rc == 0)
    rc = saved;
  return rc < 0 ? cli_report ("agent", err) : 0;
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
  const char *config_file = EF_DEFAULT_CONFIG;
  bool once = false;
  struct agent_config cfg;
  struct sync_ctx s = { 0 };
  struct reg_recovery rec = { 0 };
  cleanup_err ef_err *err = NULL;
  int c, rc;


  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'c': config_file = optarg; break;
      case '1': once = true; break;
      case 'h': fputs (agent_usage, stdout); return 0;
      default: return cli_bad_option ("agent", c, argv);
      }
  if (optind != argc)
    return cli_usage_error ("agent", "no arguments expected");
  if (agent_config_load (&cfg, config_file, &err) < 0)
    return cli_report ("agent: configuration", err);
  /* one malloc arena: the poller's thread would get one of its own (a
   * third of a MiB at rest, on a device of 512 MB), and the agent's
   * threads seldom allocate at the same time */
  mallopt (M_ARENA_MAX, 1);
  s.cfg = &cfg;
  s.cancel = &ef_cancel;
  s.progress = progress_ping;
  rc = reg_store_open (&s.store, cfg.store, &err);
  if (rc == 0)
    reg_store_recover (s.store, &rec);
  if (rc == 0)
    rc = exchange_new (&s.ex, &cfg, &ef_cancel, &err);
  if (rc < 0)
    rc = cli_report ("agent", err);
  else
    {
      s.state = agent_state_load (cfg.store);
      note_recovery (&s, &rec);
      plain_http (&s);
      rc = once ? sync_once (&s) : agent_daemon (&cfg, config_file, &s);
    }
  json_decref (s.state);
  exchange_free (s.ex);
  reg_store_free (s.store);
  agent_config_dispose (&cfg);
  return rc;
}
