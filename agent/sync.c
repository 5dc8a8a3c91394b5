/* sync.c: see sync.h. */
#include <string.h>
#include <time.h>

#include "../common/paths.h"
#include "../common/text.h"
#include "../common/util.h"
#include "../verify/cosign.h"
#include "../verify/deployment.h"
#include "report.h"
#include "signals.h"
#include "deliver.h"
#include "horizon/horizon.h"
#include "reconcile.h"
#include "state.h"
#include "sync.h"

#define MAX_DOCKAUTHS 16

/* A refusal that says how to mend it: which key the exchange holds for
 * v verifies the deployment, and how to trust it; or that none does. */
static void
explain_refusal (struct sync_ctx *s, const struct hzn_service *v, const char *dep, const char *sig, ef_err **err)
{
  cleanup_free char *why = xstrdup (ef_err_msg (err ? *err : NULL));
  cleanup_free char *keys = xstrdup ("");
  vfy_keyring *xk = vfy_keyring_new ();
  json_t *notes = json_array ();
  const char *match = NULL;

  hzn_exchange_keys (s->ex, v, s->pattern, xk, notes);
  for (size_t i = 0; vfy_keyring_name (xk, i) && i < 4; i++)
    {
      const char *n = vfy_keyring_name (xk, i);
      char *more = xasprintf ("%s%s %s (%s)", keys, i ? "," : "", n + 9, vfy_keyring_fingerprint (xk, n));
      free (keys);
      keys = more;
    }
  ef_err_clear (err);
  if (vfy_keyring_count (xk) == 0)
    ef_err_set (err, EF_VERIFY, "%s; the exchange holds no key for %s either", why, v->id);
  else if (vfy_rsapss_verify (xk, dep, strlen (dep), sig, &match, NULL) == 0)
    ef_err_set (err, EF_VERIFY,
                "%s; it verifies with the key the exchange holds as %s (%s): to trust it, run `edgefetch trust add "
                "--exchange-key %s --fingerprint %s`, or set EDGEFETCH_TRUST_EXCHANGE_KEYS=true; the exchange's "
                "keys for it:%s",
                why, match + 9, vfy_keyring_fingerprint (xk, match), match + 9, vfy_keyring_fingerprint (xk, match),
                keys);
  else
    ef_err_set (err, EF_VERIFY, "%s; nor with any key the exchange holds for it:%s", why, keys);
  json_decref (notes);
  vfy_keyring_free (xk);
}

/* The deployment's signature (and the pattern's overrides'), then the
 * images it names. */
static int
verify_service (struct sync_ctx *s, const struct hzn_service *v, json_t *entry, char ***refs, ef_err **err)
{
  const char *dep = json_string_value (json_object_get (v->def, "deployment"));
  const char *sig = json_string_value (json_object_get (v->def, "deploymentSignature"));
  vfy_keyring *kr = hzn_service_keyring (s->ex, s->cfg, v, s->pattern, json_object_get (entry, "notes"));
  const char *key = NULL;
  int rc;

  rc = vfy_rsapss_verify (kr, dep, strlen (dep), sig, &key, err);
  if (rc < 0)
    {
      explain_refusal (s, v, dep, sig, err);
      ef_err_wrap (err, "deployment signature");
    }
  else
    json_object_set_new (entry, "verified_with", json_string (key));
  if (rc == 0 && v->overrides && *v->overrides)
    {
      rc = vfy_rsapss_verify (kr, v->overrides, strlen (v->overrides), v->overrides_sig, NULL, err);
      if (rc < 0)
        ef_err_wrap (err, "pattern deployment_overrides signature");
    }
  vfy_keyring_free (kr);
  if (rc == 0)
    rc = vfy_deployment_images (dep, strlen (dep), refs, err);
  if (rc == 0 && v->overrides && *v->overrides)
    {
      /* anax takes only the Environment from overrides: the image pulled
       * is the one the service's publisher signed */
      char **over = NULL;
      rc = vfy_overrides_images (v->overrides, strlen (v->overrides), &over, err);
      for (char **o = over; o && *o; o++)
        {
          cleanup_free char *note
              = xasprintf ("the pattern's deployment_overrides names image %.200s: ignored, as anax ignores it "
                           "(the service's signed image is pulled)",
                           *o);
          json_array_append_new (json_object_get (entry, "notes"), json_string (note));
        }
      ef_strv_free (over);
    }
  for (char **r = rc == 0 ? *refs : NULL; r && *r; r++)
    if (s->cfg->require_digest && strstr (*r, "@sha256:") == NULL)
      rc = ef_err_set (err, EF_VERIFY, "image %s is not pinned by digest (EDGEFETCH_REQUIRE_DIGEST=true)", *r);
  return rc;
}

static void
platform_for (const char *arch, struct reg_platform *p)
{
  struct reg_platform host;
  cleanup_free char *spec = xasprintf ("linux/%s", arch);

  reg_platform_host (&host);
  if (strcmp (host.arch, arch) == 0)
    *p = host;
  else if (reg_platform_parse (p, spec, NULL) < 0)
    *p = host;
}

/* The hosts the image's blobs came from, with how many each: the
 * registry, or mirrors of its hosts.toml. */
static json_t *
sources_of (const struct reg_pull_result *res)
{
  json_t *src = json_object ();

  for (size_t i = 0; i <= res->nlayers; i++)
    {
      const char *h = i < res->nlayers ? (res->layer_sources ? res->layer_sources[i] : NULL) : res->config_source;
      if (h)
        json_object_set_new (src, h, json_integer (json_integer_value (json_object_get (src, h)) + 1));
    }
  return src;
}

static json_t *
image_entry (const char *r, const struct delivery *d, const struct runtime_spec *rt)
{
  const struct reg_pull_result *res = d->res;
  json_t *img = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:o}", "reference", r, "manifest_digest",
                           res->manifest_digest, "config_digest", res->config_digest, "bytes_fetched",
                           (json_int_t) res->stats.bytes_fetched, "size", (json_int_t) res->total_size,
                           "blob_sources", sources_of (res));
  if (rt)
    json_object_set_new (img, "handoff", runtime_result_json (rt, &d->handoff, res->config_digest));
  return img;
}

static bool
window_open_now (void *ud)
{
  return agent_window_open (ud, time (NULL), NULL);
}

/* Every image of the service, with the service's own dockauths. */
/* The link went down mid-pull, or came back: status says a pull waits
 * for the link (its bytes kept), not that it failed. */
static void
link_wait (void *payload, bool down)
{
  struct sync_ctx *s = payload;

  if (down)
    {
      cleanup_free char *stamp = agent_now_utc ();
      json_object_set_new (s->state, "link_waiting_since", json_string (stamp));
    }
  else
    json_object_del (s->state, "link_waiting_since");
  agent_state_save (s->cfg->store, s->state, NULL);
}

static int
fetch_service (struct sync_ctx *s, const struct hzn_service *v, char **refs, json_t *entry, ef_err **err)
{
  static const char *defaults[] = EF_DEFAULT_CERTS_DIRS;
  const char *dirs[2] = { s->cfg->certs_dir, NULL };
  struct reg_host_creds hc[MAX_DOCKAUTHS];
  struct reg_client_opts o = { 0 };
  struct delivery_opts d = { 0 };
  struct runtime_spec rt = { 0 };
  vfy_cosign_key *ck = NULL;
  reg_client *client = NULL;
  struct reg_platform p;
  cleanup_free char *spool = xasprintf ("%s/ingest", s->cfg->store);
  size_t nhc = 0;
  int rc = 0;

  platform_for (v->arch, &p);
  d.platform = &p;
  d.progress = s->progress;
  d.stalled = link_wait;
  d.payload = s;
  d.keep_layers = s->cfg->keep_layers;
  {
    /* anax pulls with its other credentials when the exchange's dockauths
     * answer an error other than 404 (governance/microservice.go) */
    cleanup_err ef_err *e = NULL;
    if (hzn_service_dockauths (s->ex, v, hc, MAX_DOCKAUTHS, &nhc, &e) < 0)
      {
        cleanup_free char *note
            = xasprintf ("dockauths: %s (pulling with the device's own credentials)", ef_err_msg (e));
        cli_warn ("service %s: %s", v->id, note);
        json_array_append_new (json_object_get (entry, "notes"), json_string (note));
      }
  }
  if (s->cfg->cosign_key)
    rc = vfy_cosign_key_load (&ck, s->cfg->cosign_key, err);
  o.session.host_creds = hc;
  o.session.nhost_creds = nhc;
  o.session.auth_file = s->cfg->auth_file;
  o.session.congestion = s->cfg->congestion;
  o.session.certs_dirs = s->cfg->certs_dir ? dirs : defaults;
  o.cancel = s->cancel;
  o.limit_rate = s->cfg->limit_rate;
  o.spool_dir = spool;
  if (s->cfg->window.n)
    {
      o.may_fetch = window_open_now;
      o.may_fetch_ud = (void *) &s->cfg->window;
    }
  if (rc == 0)
    rc = reg_client_new (&client, &o, err);
  if (rc == 0 && s->cfg->runtime && (rc = runtime_parse (&rt, s->cfg->runtime, err)) == 0)
    d.runtime = &rt;
  d.cosign_key = ck;
  for (char **r = refs; rc == 0 && *r; r++)
    {
      cleanup_ref struct reg_ref *ref = NULL;
      struct delivery out;
      rc = reg_ref_parse (&ref, *r, err);
      if (rc == 0)
        rc = agent_deliver (client, s->store, ref, &d, &out, err);
      if (rc < 0)
        ef_err_wrap (err, "%s", *r);
      else
        json_array_append_new (json_object_get (entry, "images"), image_entry (*r, &out, d.runtime));
      agent_delivery_dispose (&out);
    }
  hzn_creds_dispose (hc, nhc);
  reg_client_free (client);
  runtime_dispose (&rt);
  vfy_cosign_key_free (ck);
  return rc;
}

/* Outside the download window: the entry says until when it waits. */
static bool
waiting (struct sync_ctx *s, json_t *entry)
{
  time_t next;
  char hhmm[16];

  if (agent_window_open (&s->cfg->window, time (NULL), &next))
    return false;
  agent_window_hhmm (next, hhmm);
  json_object_set_new (entry, "waits_until", json_string (hhmm));
  json_object_set_new (entry, "waits_until_epoch", json_integer ((json_int_t) next));
  s->waiting = true;
  return true;
}

/* One service: its state entry says how it went. */
static json_t *
sync_service (struct sync_ctx *s, const struct hzn_service *v, const char *stamp, ef_err **err)
{
  json_t *entry = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:[], s:[]}", "id", v->id, "org", v->org, "url", v->url,
                             "version", v->version, "arch", v->arch, "images", "notes");
  const char *dep = json_string_value (json_object_get (v->def, "deployment"));
  char **refs = NULL;
  int rc = 0;

  if (s->cancel && *s->cancel)
    rc = ef_err_set (err, EF_NET, "interrupted");
  else if (dep && *dep) /* a service without one is for clusters, not devices */
    rc = verify_service (s, v, entry, &refs, err);
  if (rc == 0 && refs)
    rc = fetch_service (s, v, refs, entry, err);
  ef_strv_free (refs);
  if (rc == -EF_NET && !(s->cancel && *s->cancel) && waiting (s, entry))
    {
      /* verified, and waiting for the window: not a failure */
      json_object_set_new (entry, "ok", json_false ());
      json_object_set_new (entry, "code", json_integer (0));
      json_object_set_new (entry, "error", json_string (ef_err_msg (err ? *err : NULL)));
      json_object_set_new (entry, "last_attempt", json_string (stamp));
      ef_err_clear (err);
      return entry;
    }
  json_object_set_new (entry, "ok", json_boolean (rc == 0));
  json_object_set_new (entry, "code", json_integer (rc == 0 ? 0 : -rc));
  json_object_set_new (entry, "error", rc == 0 ? json_null () : json_string (ef_err_msg (err ? *err : NULL)));
  json_object_set_new (entry, "last_attempt", json_string (stamp));
  return entry;
}

/* Keep the first failure of the sync in *first and *err. */
static void
note_failure (int *first, ef_err **err, const char *who, int code, const char *msg)
{
  if (*first != 0)
    return;
  *first = code;
  ef_err_set (err, code, "%s: %s", who, msg);
}

int
agent_sync (struct sync_ctx *s, ef_err **err)
{
  cleanup_free char *stamp = agent_now_utc ();
  struct hzn_plan plan;
  json_t *services;
  int first = 0, rc;

  s->stop = 0;
  s->pattern_deleted = false;
  json_object_del (s->state, "link_waiting_since"); /* a run killed while it waited */
  rc = hzn_plan_read (s->ex, s->cfg, &plan, err);
  if (rc == -EF_AUTH || rc == -EF_USAGE)
    {
      /* the node is gone, its token refused, or it follows policy: another
       * try repeats the refusal; what runs is left alone */
      s->stop = -rc;
      agent_state_exchange (s->state, true, NULL);
      agent_state_stopped (s->state, -rc, ef_err_msg (err ? *err : NULL));
      return rc;
    }
  if (rc < 0)
    {
      /* keep the last good state of the services and their images */
      agent_state_exchange (s->state, false, ef_err_msg (err ? *err : NULL));
      return rc;
    }
  agent_state_stopped (s->state, 0, NULL);
  agent_state_exchange (s->state, true, NULL);
  json_object_set_new (s->state, "node", json_sprintf ("%s/%s", s->cfg->org, s->cfg->node_id));
  json_object_set (s->state, "heartbeat_intervals", plan.intervals ? plan.intervals : json_null ());
  if (s->node_read)
    s->node_read (s->node_read_ud, plan.intervals);
  if (plan.pattern_deleted)
    {
      /* nothing new is fetched, and what the node holds is left alone */
      if (!json_is_string (json_object_get (s->state, "pattern_deleted")))
        json_object_set_new (s->state, "pattern_deleted", json_string (stamp));
      json_object_set_new (s->state, "pattern", json_string (plan.pattern));
      s->pattern_deleted = true;
      rc = ef_err_set (err, EF_NOTFOUND,
                       "pattern %s was deleted on the exchange: nothing new is fetched, the images held are kept",
                       plan.pattern);
      hzn_plan_dispose (&plan);
      return rc;
    }
  json_object_del (s->state, "pattern_deleted");
  json_object_set_new (s->state, "arch", json_string (plan.arch));
  json_object_set_new (s->state, "pattern", plan.pattern ? json_string (plan.pattern) : json_null ());
  json_object_set_new (s->state, "pattern_last_updated",
                       plan.pattern_last_updated ? json_string (plan.pattern_last_updated) : json_null ());
  s->waiting = false;
  s->pattern = plan.pattern;
  for (size_t i = 0; i < plan.nbad; i++)
    note_failure (&first, err, plan.bad[i].name, plan.bad[i].code, plan.bad[i].error);
  services = json_array ();
  for (size_t i = 0; i < plan.n; i++)
    {
      cleanup_err ef_err *e = NULL;
      json_t *entry = sync_service (s, &plan.svc[i], stamp, &e);
      if (e)
        note_failure (&first, err, plan.svc[i].id, ef_err_code (e), ef_err_msg (e));
      json_array_append_new (services, entry);
    }
  json_object_set_new (s->state, "services", services);
  agent_reconcile (s->cfg, s->store, s->state, services, first == 0 && !s->waiting);
  json_object_set_new (s->state, "last_sync", json_string (stamp));
  json_object_set_new (s->state, "last_sync_result", json_integer (first));
  s->pattern = NULL;
  hzn_plan_dispose (&plan);
  return -first;
}
