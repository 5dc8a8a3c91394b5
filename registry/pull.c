/* pull.c: manifest -> (index -> platform manifest) -> blobs. */
#include <string.h>

#include "../common/util.h"
#include "transfer/partial.h"
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
      if (r->layer_sources)
        free (r->layer_sources[i]);
    }
  free (r->layer_sources);
  free (r->layer_stats);
  free (r->config_source);
  free (r->manifest_source);
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

static char *
dup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

struct reg_pull_result *
reg_pull_result_dup (const struct reg_pull_result *r)
{
  struct reg_pull_result *d = xcalloc (1, sizeof *d);

  d->reference = dup_or_null (r->reference);
  d->index_digest = dup_or_null (r->index_digest);
  d->manifest_digest = dup_or_null (r->manifest_digest);
  d->media_type = dup_or_null (r->media_type);
  d->config_digest = dup_or_null (r->config_digest);
  d->nlayers = r->nlayers;
  d->layer_digests = xcalloc (r->nlayers + 1, sizeof (char *));
  d->layer_types = xcalloc (r->nlayers + 1, sizeof (char *));
  d->layer_sizes = xcalloc (r->nlayers + 1, sizeof (int64_t));
  d->layer_sources = xcalloc (r->nlayers + 1, sizeof (char *));
  d->layer_stats = xcalloc (r->nlayers + 1, sizeof *d->layer_stats);
  for (size_t i = 0; i < r->nlayers; i++)
    {
      d->layer_digests[i] = xstrdup (r->layer_digests[i]);
      d->layer_types[i] = xstrdup (r->layer_types[i]);
      d->layer_sizes[i] = r->layer_sizes[i];
      d->layer_sources[i] = dup_or_null (r->layer_sources ? r->layer_sources[i] : NULL);
      if (r->layer_stats)
        d->layer_stats[i] = r->layer_stats[i];
    }
  d->config_source = dup_or_null (r->config_source);
  d->manifest_source = dup_or_null (r->manifest_source);
  d->total_size = r->total_size;
  return d;
}

/* Follow ref to its image manifest: an index's entry for platform is
 * fetched in turn and must match the entry's size and type.  Every
 * manifest goes into the store; *m and *resp are the image's. */
static int
resolve (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_platform *platform,
         const vfy_cosign_key *cosign_key, struct reg_pull_result *res, reg_manifest **m,
         struct reg_manifest_resp *resp, ef_err **err)
{
  cleanup_free char *want = xstrdup (ref->digest ? ref->digest : ref->tag);
  cleanup_free char *want_type = NULL;
  int64_t want_size = -1;
  int rc;

  for (int depth = 0;; depth++)
    {
      const struct reg_desc *d;
      rc = reg_client_get_manifest (c, ref, want, resp, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "fetch manifest");
          return rc;
        }
      if (want_size >= 0 && (int64_t) resp->len != want_size)
        return ef_err_set (err, EF_VERIFY, "manifest %s is %zu bytes, the index says %lld", want, resp->len,
                           (long long) want_size);
      if (depth == 0 && cosign_key && (rc = reg_cosign_check (c, s, ref, resp->digest, cosign_key, err)) < 0)
        return rc;
      reg_manifest_free (*m);
      *m = NULL;
      rc = reg_manifest_parse (m, resp->body, resp->len, resp->content_type, err);
      if (rc < 0)
        {
          ef_err_wrap (err, "manifest %s", resp->digest);
          return rc;
        }
      if (want_type && strcmp (want_type, reg_manifest_media_type (*m)) != 0)
        return ef_err_set (err, EF_VERIFY, "manifest %s is a %s, the index says %s", resp->digest,
                           reg_manifest_media_type (*m), want_type);
      rc = reg_store_put (s, resp->digest, resp->body, resp->len, err);
      if (rc < 0 || reg_manifest_kind (*m) == REG_IMAGE)
        return rc;
      if (depth == MAX_INDEX_DEPTH)
        return ef_err_set (err, EF_VERIFY, "indexes nested too deep");
      rc = reg_index_select (*m, platform, &d, err);
      if (rc < 0)
        return rc;
      if (res->index_digest == NULL)
        res->index_digest = xstrdup (resp->digest);
      free (want);
      want = xstrdup (d->digest);
      want_size = d->size;
      free (want_type);
      want_type = xstrdup (d->media_type);
      reg_manifest_resp_dispose (resp);
    }
}

/* The image's blobs (config first) into res and blobs. */
static const struct reg_desc **
list_blobs (const reg_manifest *m, struct reg_pull_result *res)
{
  size_t n = reg_manifest_count (m);
  const struct reg_desc **blobs = xcalloc (n + 1, sizeof *blobs);

  res->media_type = xstrdup (reg_manifest_media_type (m));
  res->config_digest = xstrdup (reg_manifest_config (m)->digest);
  res->nlayers = n;
  res->layer_digests = xcalloc (n, sizeof (char *));
  res->layer_types = xcalloc (n, sizeof (char *));
  res->layer_sizes = xcalloc (n, sizeof (int64_t));
  blobs[0] = reg_manifest_config (m);
  res->total_size = blobs[0]->size;
  for (size_t i = 0; i < n; i++)
    {
      const struct reg_desc *d = reg_manifest_entry (m, i);
      blobs[i + 1] = d;
      res->layer_digests[i] = xstrdup (d->digest);
      res->layer_types[i] = xstrdup (d->media_type);
      res->layer_sizes[i] = d->size;
      res->total_size += d->size;
    }
  return blobs;
}

/* Leave out the layers the runtime holds (dropped from the store after a
 * handoff); the rest move to the front.  Returns how many are left. */
static size_t
skip_dropped (reg_store *s, const struct reg_desc **blobs, size_t n, struct reg_fetch_stats *st)
{
  size_t k = 0;

  for (size_t i = 0; i < n; i++)
    {
      if (i > 0 && !reg_store_has (s, blobs[i]->digest, blobs[i]->size)
          && reg_store_dropped (s, blobs[i]->digest, blobs[i]->size))
        {
          st->bytes_reused += blobs[i]->size;
          continue;
        }
      blobs[k++] = blobs[i];
    }
  return k;
}

/* Refuse up front what cannot fit, rather than fill the disk. */
static int
check_space (reg_store *s, const struct reg_desc *const *blobs, size_t n, ef_err **err)
{
  int64_t need = 0, avail = reg_store_available (s);

  for (size_t i = 0; i < n; i++)
    if (!reg_store_has (s, blobs[i]->digest, blobs[i]->size))
      need += blobs[i]->size - reg_store_partial (s, blobs[i]->digest);
  if (avail >= 0 && need > avail)
    return ef_err_set (err, EF_LOCAL, "not enough space in %s: the image needs %lld MB more, %lld MB free",
                       reg_store_dir (s), (long long) (need >> 20) + 1, (long long) (avail >> 20));
  return 0;
}

/* Layers that a partial pull can rebuild from chunks the store holds
 * (partial.h); what it cannot, the engine fetches whole. */
static int
partial_layers (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_desc **blobs, size_t n,
                struct reg_pull_result *res, struct reg_blob_result *per, ef_err **err)
{
  reg_partial *p = reg_partial_new (s);
  int rc = 0;

  for (size_t i = 1; rc == 0 && i < n; i++)
    {
      struct reg_fetch_stats st = { 0 };
      ef_err *e = NULL;
      int prc;
      if (reg_store_has (s, blobs[i]->digest, blobs[i]->size))
        continue;
      prc = reg_partial_fetch (p, c, ref, blobs[i], &st, &e);
      ef_err_free (e); /* a rebuild that failed kept nothing: the layer is fetched whole */
      res->stats.bytes_fetched += st.bytes_fetched;
      per[i].stats.bytes_fetched += st.bytes_fetched;
      if (prc == 0)
        {
          res->stats.bytes_reused += st.bytes_reused;
          per[i].stats.bytes_reused += st.bytes_reused;
          per[i].source = xstrdup (reg_client_range_source (c) ? reg_client_range_source (c) : ref->domain);
        }
      if (http_cancelled (reg_client_retry (c)))
        rc = ef_err_set (err, EF_NET, "interrupted");
    }
  reg_partial_free (p);
  return rc;
}

/* The blobs, noting where each came from and what it cost. */
static int
fetch_blobs (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_desc **blobs, size_t n,
             const struct reg_pull_opts *o, bool followed, struct reg_pull_result *res, ef_err **err)
{
  struct reg_blobs_opts bo = { .progress = o->progress, .payload = o->payload, .stalled = o->stalled, .in_order = followed };
  struct reg_blob_result *per = xcalloc (n + 1, sizeof *per);
  struct reg_blob_result *eng = xcalloc (n + 1, sizeof *eng);
  int rc = partial_layers (c, s, ref, blobs, n, res, per, err);

  if (rc == 0)
    rc = reg_blobs_fetch (c, ref, blobs, n, s, &bo, &res->stats, eng, err);
  res->layer_sources = xcalloc (res->nlayers + 1, sizeof (char *));
  res->layer_stats = xcalloc (res->nlayers + 1, sizeof *res->layer_stats);
  for (size_t i = 0; i < n; i++)
    {
      size_t k = 0;
      if (per[i].source == NULL) /* not rebuilt: what the engine did */
        {
          per[i].source = eng[i].source;
          per[i].stats.bytes_fetched += eng[i].stats.bytes_fetched;
          per[i].stats.bytes_reused += eng[i].stats.bytes_reused;
        }
      else
        {
          free (eng[i].source); /* the engine found it in the store */
          res->stats.bytes_reused -= eng[i].stats.bytes_reused;
        }
      while (k < res->nlayers && strcmp (res->layer_digests[k], blobs[i]->digest) != 0)
        k++;
      if (i == 0) /* the config comes first */
        res->config_source = per[i].source;
      else if (k < res->nlayers && res->layer_sources[k] == NULL)
        {
          res->layer_sources[k] = per[i].source;
          res->layer_stats[k] = per[i].stats;
        }
      else
        free (per[i].source);
    }
  free (per);
  free (eng);
  return rc;
}

int
reg_pull (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_pull_opts *o,
          struct reg_pull_result **out, ef_err **err)
{
  struct reg_manifest_resp resp = { 0 };
  cleanup_manifest reg_manifest *m = NULL;
  cleanup_free const struct reg_desc **blobs = NULL;
  struct reg_pull_result *res = xcalloc (1, sizeof *res);
  size_t n = 0;
  int rc;

  *out = NULL;
  res->reference = reg_ref_string (ref);
  reg_client_revive_mirrors (c);
  rc = resolve (c, s, ref, o->platform, o->cosign_key, res, &m, &resp, err);
  if (rc == 0)
    {
      res->manifest_digest = xstrdup (resp.digest);
      res->manifest_source = xstrdup (resp.source);
      blobs = list_blobs (m, res);
      n = o->skip_dropped ? skip_dropped (s, blobs, res->nlayers + 1, &res->stats) : res->nlayers + 1;
      rc = check_space (s, blobs, n, err);
    }
  if (rc == 0)
    rc = fetch_blobs (c, s, ref, blobs, n, o, o->resolved && o->resolved (o->resolved_payload, res), res, err);
  if (rc == 0)
    rc = reg_store_record (s, res->reference, res->manifest_digest, res->index_digest, err);
  reg_manifest_resp_dispose (&resp);
  if (rc < 0)
    {
      reg_pull_result_free (res);
      return rc;
    }
  *out = res;
  return 0;
}
