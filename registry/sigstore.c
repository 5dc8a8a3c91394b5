/* sigstore.c: see sigstore.h.  Every payload byte is digest-checked
 * (it goes through the store) before it is verified. */
#include <string.h>

#include "../common/util.h"
#include "transfer/blobs.h"
#include "sigstore.h"

#define MAX_SIGNATURES 16

/* What one format of signature came to. */
enum sig_result
{
  SIG_ABSENT,  /* none of this format */
  SIG_INVALID, /* some, none valid: *why says what was wrong */
  SIG_VALID,
};

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

/* GET and parse an artifact manifest (or index).  *absent when it is not there. */
static int
get_artifact (reg_client *c, const struct reg_ref *ref, const char *what, bool referrers, reg_manifest **out,
              bool *absent, ef_err **err)
{
  struct reg_manifest_resp resp = { 0 };
  ef_err *e = NULL;
  int rc;

  *out = NULL;
  *absent = false;
  rc = referrers ? reg_client_get_referrers (c, ref, what, SIGSTORE_BUNDLE_TYPE, &resp, &e)
                 : reg_client_get_manifest (c, ref, what, &resp, &e);
  if (rc < 0 && ef_err_code (e) == EF_NOTFOUND)
    {
      *absent = true;
      ef_err_free (e);
      return 0;
    }
  if (rc < 0)
    return ef_err_propagate (err, e);
  rc = reg_manifest_parse_as (out, resp.body, resp.len, resp.content_type, REG_PARSE_ARTIFACT, err);
  reg_manifest_resp_dispose (&resp);
  return rc;
}

/* Verify one legacy payload (in the store) with key. */
static int
verify_payload (reg_store *s, const struct reg_desc *d, const char *sig, const struct reg_ref *ref, const char *digest,
                const vfy_cosign_key *key, ef_err **why)
{
  cleanup_free char *payload = NULL;
  char *docker_ref = NULL;
  size_t len;
  int rc;

  rc = reg_store_read (s, d->digest, COSIGN_PAYLOAD_MAX, &payload, &len, why);
  if (rc == 0)
    rc = vfy_cosign_verify (key, payload, len, sig, digest, &docker_ref, why);
  if (rc == 0 && !same_repository (docker_ref, ref))
    rc = ef_err_set (why, EF_VERIFY, "cosign signature names %.200s, not %s/%s", docker_ref, ref->domain, ref->path);
  free (docker_ref);
  return rc;
}

/* cosign's legacy format: the tag sha256-<hex>.sig. */
static int
check_legacy (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest, const vfy_cosign_key *key,
              enum sig_result *res, ef_err **why, ef_err **err)
{
  cleanup_free char *tag = xasprintf ("sha256-%s.sig", digest + 7);
  cleanup_manifest reg_manifest *m = NULL;
  const struct reg_desc *sigs[MAX_SIGNATURES];
  struct reg_fetch_stats st = { 0 };
  size_t n = 0;
  bool absent;
  int rc;

  *res = SIG_ABSENT;
  rc = get_artifact (c, ref, tag, false, &m, &absent, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "fetch cosign signatures");
      return rc;
    }
  for (size_t i = 0; !absent && i < reg_manifest_count (m) && n < MAX_SIGNATURES; i++)
    {
      const struct reg_desc *d = reg_manifest_entry (m, i);
      /* other attachments are not signatures: skip them */
      if (strcmp (d->media_type, COSIGN_PAYLOAD_TYPE) == 0 && d->size <= COSIGN_PAYLOAD_MAX
          && reg_desc_annotation (d, COSIGN_SIG_ANNOTATION))
        sigs[n++] = d;
    }
  if (n == 0)
    return 0;
  *res = SIG_INVALID;
  rc = reg_blobs_fetch (c, ref, sigs, n, s, NULL, &st, NULL, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "fetch cosign payloads");
      return rc;
    }
  for (size_t i = 0; i < n; i++)
    {
      ef_err_clear (why);
      if (verify_payload (s, sigs[i], reg_desc_annotation (sigs[i], COSIGN_SIG_ANNOTATION), ref, digest, key, why) == 0)
        {
          *res = SIG_VALID;
          break;
        }
    }
  return 0;
}

/* One referrer: a manifest whose first layer is a sigstore bundle. */
static int
verify_referrer (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *md, const char *digest,
                 const vfy_cosign_key *key, ef_err **why)
{
  cleanup_manifest reg_manifest *bm = NULL;
  cleanup_free char *bundle = NULL;
  struct reg_fetch_stats st = { 0 };
  const struct reg_desc *d;
  size_t blen;
  bool absent;
  int rc = get_artifact (c, ref, md, false, &bm, &absent, why);

  if (rc < 0)
    return rc;
  d = absent ? NULL : reg_manifest_entry (bm, 0);
  if (d == NULL || reg_manifest_kind (bm) != REG_IMAGE || strcmp (d->media_type, SIGSTORE_BUNDLE_TYPE) != 0
      || d->size <= 0 || d->size > COSIGN_PAYLOAD_MAX * 4)
    return ef_err_set (why, EF_VERIFY, "referrer %s holds no sigstore bundle", md);
  rc = reg_blobs_fetch (c, ref, &d, 1, s, NULL, &st, NULL, why);
  if (rc == 0)
    rc = reg_store_read (s, d->digest, COSIGN_PAYLOAD_MAX * 4, &bundle, &blen, why);
  if (rc == 0)
    rc = vfy_cosign_verify_bundle (key, bundle, blen, digest, why);
  return rc;
}

/* cosign v3's format: sigstore bundles that name digest as their subject,
 * found through the referrers API or, without one, the referrers tag
 * sha256-<hex> holding an index. */
static int
check_bundles (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest, const vfy_cosign_key *key,
               enum sig_result *res, ef_err **why, ef_err **err)
{
  cleanup_free char *tag = xasprintf ("sha256-%s", digest + 7);
  cleanup_manifest reg_manifest *idx = NULL;
  size_t tried = 0;
  bool absent;
  int rc;

  *res = SIG_ABSENT;
  rc = get_artifact (c, ref, digest, true, &idx, &absent, err);
  if (rc == 0 && absent)
    rc = get_artifact (c, ref, tag, false, &idx, &absent, err);
  if (rc < 0 || absent)
    return rc;
  if (reg_manifest_kind (idx) != REG_INDEX)
    return 0;
  for (size_t i = 0; i < reg_manifest_count (idx) && tried < MAX_SIGNATURES; i++)
    {
      const struct reg_desc *e = reg_manifest_entry (idx, i);
      if (e->artifact_type == NULL || strcmp (e->artifact_type, SIGSTORE_BUNDLE_TYPE) != 0)
        continue;
      tried++;
      *res = SIG_INVALID;
      ef_err_clear (why);
      if (verify_referrer (c, s, ref, e->digest, digest, key, why) == 0)
        {
          *res = SIG_VALID;
          break;
        }
    }
  return 0;
}

int
reg_cosign_check (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest,
                  const vfy_cosign_key *key, ef_err **err)
{
  cleanup_err ef_err *why_legacy = NULL;
  cleanup_err ef_err *why_bundle = NULL;
  enum sig_result legacy, bundle = SIG_ABSENT;
  int rc;

  rc = check_legacy (c, s, ref, digest, key, &legacy, &why_legacy, err);
  if (rc == 0 && legacy != SIG_VALID)
    rc = check_bundles (c, s, ref, digest, key, &bundle, &why_bundle, err);
  if (rc < 0 || legacy == SIG_VALID || bundle == SIG_VALID)
    return rc;
  /* Say what was wrong with the signature that exists, if one does. */
  if (legacy == SIG_INVALID)
    return ef_err_set (err, EF_VERIFY, "%s", ef_err_msg (why_legacy));
  if (bundle == SIG_INVALID)
    return ef_err_set (err, EF_VERIFY, "%s", ef_err_msg (why_bundle));
  return ef_err_set (err, EF_VERIFY, "no cosign signature for %s", digest);
}
