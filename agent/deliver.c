/* deliver.c: see deliver.h. */
#include <string.h>

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

static int
hand_out (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct delivery_opts *o, struct delivery *d,
          ef_err **err)
{
  const struct auth_creds *creds = NULL;
  int rc = 0;

  if (o->out_path)
    rc = reg_export (s, d->res->manifest_digest, ref, o->out_fmt, o->out_path, err);
  if (rc == 0 && o->runtime)
    rc = reg_session_credentials (reg_client_session (c), ref->api_host, ref->domain, &creds, err);
  if (rc == 0 && o->runtime)
    {
      rc = runtime_handoff (o->runtime, s, d->res, ref, o->platform, creds, &d->handoff, err);
      if (rc < 0)
        ef_err_wrap (err, "hand over to %s", runtime_name (o->runtime));
    }
  return rc;
}

int
agent_deliver (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct delivery_opts *o,
               struct delivery *out, ef_err **err)
{
  ef_err *e = NULL;
  int64_t fetched = 0;
  int rc;

  memset (out, 0, sizeof *out);
  for (int round = 0;; round++)
    {
      fetched += out->res ? out->res->stats.bytes_fetched : 0;
      reg_pull_result_free (out->res);
      out->res = NULL;
      rc = reg_pull (c, s, ref, o->platform, o->cosign_key, o->progress, o->payload, &out->res, err);
      if (rc < 0)
        {
          ef_err_free (e);
          return rc;
        }
      out->res->stats.bytes_fetched += fetched;
      ef_err_clear (&e);
      rc = hand_out (c, s, ref, o, out, &e);
      /* a damaged blob left the store on the way out: fetch it, once more */
      if (rc == 0 || round == 1 || complete (s, out->res))
        break;
    }
  if (rc < 0)
    ef_err_propagate (err, e);
  else
    ef_err_free (e);
  return rc;
}

void
agent_delivery_dispose (struct delivery *d)
{
  reg_pull_result_free (d->res);
  memset (d, 0, sizeof *d);
}
