/* pull.c: manifest -> (index -> platform manifest) -> blobs. */
#include <string.h>

#include "../common/util.h"
#include "pull.h"
#include "sigstore.h"

#define MAX_INDEX_DEPTH 2

void
reg_pull_result_free (struct reg_pull_result *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nlayers; i++)
    {
      free (r->layer_digests[i]);
      free (r->layer_types[i]);
    }
  free (r->layer_digests);
  free (r->layer_types);
  free (r->layer_sizes);
  free (r->reference);
  free (r->index_digest);
  free (r->manifest_digest);
  free (r->media_type);
  free (r->config_digest);
  free (r);
}

int
reg_pull (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_platform *platform,
          const vfy_cosign_key *cosign_key, reg_progress_fn progress, void *payload, struct reg_pull_result **out,
          ef_err **err)
{
  struct reg_manifest_resp resp = { 0 };
  cleanup_manifest reg_manifest *m = NULL;
  const struct reg_desc **blobs = NULL;
  struct reg_pull_result *res;
  cleanup_free char *want = xstrdup (ref->digest ? ref->digest : ref->tag);
  int64_t want_size = -1;
  cleanup_free char *want_type = NULL;
  int depth, rc;
  size_t i, n;

  *out = NULL;
  res = xcalloc (1, sizeof *res);
  res->reference = reg_ref_string (ref);

  for (depth = 0;; depth++)
    {
      rc = reg_client_get_manifest (c, ref, want, &resp, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "fetch manifest");
          goto fail;
        }
      if (want_size >= 0 && (int64_t) resp.len != want_size)
        {
          rc = ef_err_set (err, EF_VERIFY, "manifest %s is %zu bytes, the index says %lld", want, resp.len,
                           (long long) want_size);
          goto fail;
        }
      if (depth == 0 && cosign_key)
        {
          rc = reg_cosign_check (c, s, ref, resp.digest, cosign_key, err);
          if (rc < 0)
            goto fail;
        }
      reg_manifest_free (m);
      m = NULL;
      rc = reg_manifest_parse (&m, resp.body, resp.len, resp.content_type, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "manifest %s", resp.digest);
          goto fail;
        }
      if (want_type && strcmp (want_type, reg_manifest_media_type (m)) != 0)
        {
          rc = ef_err_set (err, EF_VERIFY, "manifest %s is a %s, the index says %s", resp.digest,
                           reg_manifest_media_type (m), want_type);
          goto fail;
        }
      rc = reg_store_put (s, resp.digest, resp.body, resp.len, err);
      if (rc < 0)
        goto fail;
      if (reg_manifest_kind (m) == REG_IMAGE)
        break;
      if (depth == MAX_INDEX_DEPTH)
        {
          rc = ef_err_set (err, EF_VERIFY, "indexes nested too deep");
          goto fail;
        }
      {
        const struct reg_desc *d;
        rc = reg_index_select (m, platform, &d, err);
        if (rc < 0)
          goto fail;
        if (res->index_digest == NULL)
          res->index_digest = xstrdup (resp.digest);
        free (want);
        want = xstrdup (d->digest);
        want_size = d->size;
        free (want_type);
        want_type = xstrdup (d->media_type);
      }
      reg_manifest_resp_dispose (&resp);
    }

  res->manifest_digest = xstrdup (resp.digest);
  res->media_type = xstrdup (reg_manifest_media_type (m));
  res->config_digest = xstrdup (reg_manifest_config (m)->digest);
  n = reg_manifest_count (m);
  res->nlayers = n;
  res->layer_digests = xcalloc (n, sizeof (char *));
  res->layer_types = xcalloc (n, sizeof (char *));
  res->layer_sizes = xcalloc (n, sizeof (int64_t));
  blobs = xcalloc (n + 1, sizeof *blobs);
  blobs[0] = reg_manifest_config (m);
  res->total_size = blobs[0]->size;
  for (i = 0; i < n; i++)
    {
      const struct reg_desc *d = reg_manifest_entry (m, i);
      blobs[i + 1] = d;
      res->layer_digests[i] = xstrdup (d->digest);
      res->layer_types[i] = xstrdup (d->media_type);
      res->layer_sizes[i] = d->size;
      res->total_size += d->size;
    }
  {
    /* Refuse up front what cannot fit, rather than fill the disk. */
    int64_t need = 0, avail = reg_store_available (s);
    for (i = 0; i <= n; i++)
      if (!reg_store_has (s, blobs[i]->digest, blobs[i]->size))
        need += blobs[i]->size - reg_store_partial (s, blobs[i]->digest);
    if (avail >= 0 && need > avail)
      {
        rc = ef_err_set (err, EF_LOCAL, "not enough space in %s: the image needs %lld MB more, %lld MB free",
                         reg_store_dir (s), (long long) (need >> 20) + 1, (long long) (avail >> 20));
        goto fail;
      }
  }
  rc = reg_blobs_fetch (c, ref, blobs, n + 1, s, progress, payload, &res->stats, err);
  if (rc < 0)
    goto fail;
  rc = reg_store_record (s, res->reference, res->manifest_digest, res->index_digest, err);
  if (rc < 0)
    goto fail;
  free (blobs);
  reg_manifest_resp_dispose (&resp);
  *out = res;
  return 0;
fail:
  free (blobs);
  reg_manifest_resp_dispose (&resp);
  reg_pull_result_free (res);
  return rc;
}
