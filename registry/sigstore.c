/* sigstore.c: cosign's legacy signature tag, read through the registry
 * client; every payload byte is digest-checked before it is verified. */
#include <string.h>

#include <jansson.h>

#include "../common/util.h"
#include "../verify/digest.h"
#include "sigstore.h"

#define MAX_SIGNATURES 16

/* Does the payload's docker-reference name the repository we asked for? */
static bool
same_repository (const char *docker_ref, const struct reg_ref *ref)
{
  struct reg_ref *r = NULL;
  bool same;

  if (reg_ref_parse (&r, docker_ref, NULL) < 0)
    return false;
  same = strcmp (r->domain, ref->domain) == 0 && strcmp (r->path, ref->path) == 0;
  reg_ref_free (r);
  return same;
}

/* cosign's legacy format: the tag sha256-<hex>.sig. */
static int
check_legacy (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest, const vfy_cosign_key *key,
              ef_err **err)
{
  struct reg_manifest_resp resp = { 0 };
  struct reg_desc descs[MAX_SIGNATURES];
  const struct reg_desc *ptrs[MAX_SIGNATURES];
  const char *sigs[MAX_SIGNATURES];
  struct reg_fetch_stats st = { 0 };
  cleanup_free char *tag = xasprintf ("sha256-%s.sig", digest + 7);
  cleanup_free char *why = NULL;
  json_t *root = NULL, *layer;
  ef_err *e = NULL;
  size_t n = 0, i;
  int rc;

  rc = reg_client_get_manifest (c, ref, tag, &resp, &e);
  if (rc < 0)
    {
      if (ef_err_code (e) == EF_NOTFOUND)
        rc = ef_err_set (err, EF_VERIFY, "no cosign signature for %s (no tag %s)", digest, tag);
      else
        {
          ef_err_set (err, ef_err_code (e), "%s", ef_err_msg (e));
          rc = ef_err_wrap (err, "fetch cosign signatures");
        }
      ef_err_free (e);
      return rc;
    }
  root = json_loadb (resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
  json_array_foreach (json_object_get (root, "layers"), i, layer)
  {
    json_t *mt = json_object_get (layer, "mediaType"), *dg = json_object_get (layer, "digest");
    json_t *sz = json_object_get (layer, "size");
    json_t *sig = json_object_get (json_object_get (layer, "annotations"), COSIGN_SIG_ANNOTATION);

    /* Other attachments are not signatures: skip them. */
    if (!json_is_string (mt) || strcmp (json_string_value (mt), COSIGN_PAYLOAD_TYPE) != 0)
      continue;
    if (n == MAX_SIGNATURES || !json_is_string (dg) || ef_digest_parse (json_string_value (dg), NULL, NULL) < 0
        || !json_is_integer (sz) || json_integer_value (sz) < 0 || json_integer_value (sz) > COSIGN_PAYLOAD_MAX
        || !json_is_string (sig))
      continue;
    memset (&descs[n], 0, sizeof descs[n]);
    descs[n].media_type = (char *) COSIGN_PAYLOAD_TYPE;
    descs[n].digest = (char *) json_string_value (dg);
    descs[n].size = json_integer_value (sz);
    ptrs[n] = &descs[n];
    sigs[n] = json_string_value (sig);
    n++;
  }
  if (n == 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "no cosign signature for %s (tag %s holds none)", digest, tag);
      goto out;
    }
  rc = reg_client_fetch_blobs (c, ref, ptrs, n, s, NULL, NULL, &st, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "fetch cosign payloads");
      goto out;
    }
  for (i = 0; i < n; i++)
    {
      cleanup_free char *payload = NULL;
      char *docker_ref = NULL;
      size_t len;

      ef_err_free (e);
      e = NULL;
      if (reg_store_read (s, descs[i].digest, COSIGN_PAYLOAD_MAX, &payload, &len, &e) < 0
          || vfy_cosign_verify (key, payload, len, sigs[i], digest, &docker_ref, &e) < 0)
        {
          free (why);
          why = xstrdup (ef_err_msg (e));
          continue;
        }
      if (!same_repository (docker_ref, ref))
        {
          free (why);
          why = xasprintf ("cosign signature names %.200s, not %s/%s", docker_ref, ref->domain, ref->path);
          free (docker_ref);
          continue;
        }
      free (docker_ref);
      rc = 0;
      goto out;
    }
  rc = ef_err_set (err, EF_VERIFY, "%s", why ? why : "no valid cosign signature");
out:
  ef_err_free (e);
  json_decref (root);
  reg_manifest_resp_dispose (&resp);
  return rc;
}

/* cosign v3's format: sigstore bundles that name digest as their subject,
 * found through the referrers API or, without one, the referrers tag
 * sha256-<hex> holding an index. */
static int
check_bundles (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest, const vfy_cosign_key *key,
               ef_err **err)
{
  struct reg_manifest_resp idx = { 0 };
  cleanup_free char *tag = xasprintf ("sha256-%s", digest + 7);
  cleanup_free char *why = NULL;
  json_t *root = NULL, *m;
  ef_err *e = NULL;
  size_t i, tried = 0;
  int rc;

  rc = reg_client_get_referrers (c, ref, digest, SIGSTORE_BUNDLE_TYPE, &idx, &e);
  if (rc < 0 && ef_err_code (e) == EF_NOTFOUND)
    {
      ef_err_free (e);
      e = NULL;
      rc = reg_client_get_manifest (c, ref, tag, &idx, &e);
    }
  if (rc < 0)
    {
      rc = ef_err_code (e) == EF_NOTFOUND ? ef_err_set (err, EF_VERIFY, "no cosign signature for %s", digest)
                                          : ef_err_set (err, ef_err_code (e), "%s", ef_err_msg (e));
      ef_err_free (e);
      return rc;
    }
  root = json_loadb (idx.body, idx.len, JSON_REJECT_DUPLICATES, NULL);
  json_array_foreach (json_object_get (root, "manifests"), i, m)
  {
    const char *at = json_string_value (json_object_get (m, "artifactType"));
    const char *md = json_string_value (json_object_get (m, "digest"));
    struct reg_manifest_resp bm = { 0 };
    json_t *bj = NULL, *layer;
    struct reg_desc d = { 0 };
    const struct reg_desc *dp = &d;
    struct reg_fetch_stats st = { 0 };
    cleanup_free char *bundle = NULL;
    size_t blen;

    if (at == NULL || strcmp (at, SIGSTORE_BUNDLE_TYPE) != 0 || md == NULL || tried == MAX_SIGNATURES)
      continue;
    tried++;
    ef_err_free (e);
    e = NULL;
    if (reg_client_get_manifest (c, ref, md, &bm, &e) < 0)
      goto next;
    bj = json_loadb (bm.body, bm.len, JSON_REJECT_DUPLICATES, NULL);
    layer = json_array_get (json_object_get (bj, "layers"), 0);
    d.media_type = (char *) json_string_value (json_object_get (layer, "mediaType"));
    d.digest = (char *) json_string_value (json_object_get (layer, "digest"));
    d.size = json_integer_value (json_object_get (layer, "size"));
    if (d.media_type == NULL || strcmp (d.media_type, SIGSTORE_BUNDLE_TYPE) != 0 || d.digest == NULL
        || ef_digest_parse (d.digest, NULL, NULL) < 0 || d.size <= 0 || d.size > COSIGN_PAYLOAD_MAX * 4)
      {
        ef_err_set (&e, EF_VERIFY, "referrer %s holds no sigstore bundle", md);
        goto next;
      }
    if (reg_client_fetch_blobs (c, ref, &dp, 1, s, NULL, NULL, &st, &e) < 0
        || reg_store_read (s, d.digest, COSIGN_PAYLOAD_MAX * 4, &bundle, &blen, &e) < 0
        || vfy_cosign_verify_bundle (key, bundle, blen, digest, &e) < 0)
      goto next;
    json_decref (bj);
    reg_manifest_resp_dispose (&bm);
    rc = 0;
    goto out;
  next:
    free (why);
    why = xstrdup (ef_err_msg (e));
    json_decref (bj);
    reg_manifest_resp_dispose (&bm);
  }
  rc = ef_err_set (err, EF_VERIFY, "%s", why ? why : "no cosign signature");
  if (why == NULL)
    {
      ef_err_free (*err);
      *err = NULL;
      rc = ef_err_set (err, EF_VERIFY, "no cosign signature for %s", digest);
    }
out:
  ef_err_free (e);
  json_decref (root);
  reg_manifest_resp_dispose (&idx);
  return rc;
}

int
reg_cosign_check (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest,
                  const vfy_cosign_key *key, ef_err **err)
{
  ef_err *legacy = NULL, *bundles = NULL;
  int rc;

  if (check_legacy (c, s, ref, digest, key, &legacy) == 0)
    return 0;
  if (ef_err_code (legacy) != EF_VERIFY)
    {
      rc = ef_err_set (err, ef_err_code (legacy), "%s", ef_err_msg (legacy));
      ef_err_free (legacy);
      return rc;
    }
  if (check_bundles (c, s, ref, digest, key, &bundles) == 0)
    {
      ef_err_free (legacy);
      return 0;
    }
  /* Say what was wrong with the signature that exists, if one does. */
  if (strncmp (ef_err_msg (legacy), "no cosign signature", 19) == 0 && ef_err_code (bundles) != 0)
    rc = ef_err_set (err, ef_err_code (bundles), "%s", ef_err_msg (bundles));
  else
    rc = ef_err_set (err, EF_VERIFY, "%s", ef_err_msg (legacy));
  ef_err_free (legacy);
  ef_err_free (bundles);
  return rc;
}
