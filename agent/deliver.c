/* deliver.c: see deliver.h. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../registry/transfer/partial.h"
#include "deliver.h"

/* Are all of the image's blobs in the store? */
static bool
complete (reg_store *s, const struct reg_pull_result *r)
{
  if (!reg_store_has (s, r->manifest_digest, -1) || !reg_store_has (s, r->config_digest, -1)
      || (r->index_digest && !reg_store_has (s, r->index_digest, -1)))
    return false;
  for (size_t i = 0; i < r->nlayers; i++)
    if (!reg_store_has (s, r->layer_digests[i], r->layer_sizes[i]))
      return false;
  return true;
}

/* One delivery under way: a runtime that follows is handed the image
 * while its blobs still arrive, in a thread of its own. */
struct run
{
  reg_client *c;
  reg_store *s;
  const struct reg_ref *ref;
  const struct delivery_opts *o;
  struct delivery *d;
  struct runtime_request req;
  volatile sig_atomic_t arriving;
  struct reg_pull_result *early_res; /* the thread's own copy: reg_pull frees its own on failure */
  pthread_t th;
  bool early; /* the thread runs */
  ef_err *err;
  int rc;
};

static void *
handoff_main (void *p)
{
  struct run *r = p;
  r->rc = runtime_handoff (r->o->runtime, r->s, &r->req, &r->d->handoff, &r->err);
  return NULL;
}

static int
request (struct run *r, const struct reg_pull_result *res, ef_err **err)
{
  memset (&r->req, 0, sizeof r->req);
  r->req.res = res;
  r->req.ref = r->ref;
  r->req.platform = r->o->platform;
  return reg_session_credentials (reg_client_session (r->c), r->ref->api_host, r->ref->domain, &r->req.creds, err);
}

/* reg_pull's hook: the manifests are in, the blobs about to come.  A
 * runtime that follows takes them as they arrive, in order if it
 * unpacks them so. */
static bool
resolved (void *payload, const struct reg_pull_result *res)
{
  struct run *r = payload;

  if (r->o->runtime == NULL || !runtime_follows (r->o->runtime, res))
    return false;
  r->early_res = reg_pull_result_dup (res);
  if (request (r, r->early_res, NULL) < 0)
    return false;
  r->arriving = 1;
  r->req.arriving = &r->arriving;
  r->early = pthread_create (&r->th, NULL, handoff_main, r) == 0;
  return r->early && runtime_in_order (r->o->runtime);
}

/* The early handoff's outcome: with the pull failed, it does not count. */
static int
join_early (struct run *r, int pull_rc, ef_err **err)
{
  r->arriving = 0;
  if (r->early)
    pthread_join (r->th, NULL);
  reg_pull_result_free (r->early_res);
  r->early_res = NULL;
  if (!r->early)
    return 0;
  r->early = false;
  if (pull_rc < 0)
    {
      ef_err_free (r->err);
      r->err = NULL;
      return 0;
    }
  if (r->rc < 0)
    {
      ef_err_propagate (err, r->err);
      r->err = NULL;
      ef_err_wrap (err, "hand over to %s", runtime_name (r->o->runtime));
      return r->rc;
    }
  return 1; /* handed over */
}

/* The runtime holds the image, checked: the store keeps its manifests,
 * config and record, not a second copy of its layers; but for the layers
 * with a table of contents, which the next version's partial pull is
 * built from.  The runtime's copy is made durable first: dockerd and
 * containerd write their layers without an fsync, and a power cut right
 * after the drop would leave neither copy.  sync(2) waits until every
 * filesystem's dirty data is on disk, theirs with it (their storage may
 * be on another filesystem than the store). */
static void
drop_layers (reg_store *s, const struct reg_pull_result *res)
{
  sync ();
  for (size_t i = 0; i < res->nlayers; i++)
    if (reg_store_has (s, res->layer_digests[i], res->layer_sizes[i]) && !reg_partial_base (s, res->layer_digests[i]))
      reg_store_drop (s, res->layer_digests[i], res->layer_sizes[i], NULL);
}

static int
hand_out (struct run *r, bool handed, ef_err **err)
{
  int rc = 0;

  if (r->o->out_path)
    rc = reg_export (r->s, r->d->res->manifest_digest, r->ref, r->o->out_fmt, r->o->out_path, err);
  if (rc == 0 && r->o->runtime && !handed)
    rc = request (r, r->d->res, err);
  if (rc == 0 && r->o->runtime && !handed)
    {
      rc = runtime_handoff (r->o->runtime, r->s, &r->req, &r->d->handoff, err);
      if (rc < 0)
        ef_err_wrap (err, "hand over to %s", runtime_name (r->o->runtime));
    }
  return rc;
}

int
agent_deliver (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct delivery_opts *o,
               struct delivery *out, ef_err **err)
{
  struct run r = { .c = c, .s = s, .ref = ref, .o = o, .d = out };
  struct reg_pull_opts po = { .platform = o->platform,
                              .cosign_key = o->cosign_key,
                              .progress = o->progress,
                              .payload = o->payload,
                              .stalled = o->stalled,
                              .resolved = resolved,
                              .resolved_payload = &r };
  ef_err *e = NULL;
  int64_t fetched = 0;
  int rc, handed;

  memset (out, 0, sizeof *out);
  for (int round = 0;; round++)
    {
      fetched += out->res ? out->res->stats.bytes_fetched : 0;
      reg_pull_result_free (out->res);
      out->res = NULL;
      po.resolved = round == 0 ? resolved : NULL;
      /* what the runtime holds need not come again; in the second round it does */
      po.skip_dropped = round == 0 && o->runtime && !o->out_path && !o->keep_layers;
      rc = reg_pull (c, s, ref, &po, &out->res, err);
      ef_err_clear (&e);
      handed = join_early (&r, rc, &e);
      if (rc < 0)
        {
          ef_err_free (e);
          return rc;
        }
      out->res->stats.bytes_fetched += fetched;
      rc = handed < 0 ? handed : hand_out (&r, handed > 0, &e);
      /* a damaged blob left the store on the way out: fetch it, once more */
      if (rc == 0 || round == 1 || complete (s, out->res))
        break;
    }
  if (rc < 0)
    ef_err_propagate (err, e);
  else
    ef_err_free (e);
  if (rc == 0 && o->runtime && !o->keep_layers)
    drop_layers (s, out->res);
  return rc;
}

void
agent_delivery_dispose (struct delivery *d)
{
  reg_pull_result_free (d->res);
  memset (d, 0, sizeof *d);
}
