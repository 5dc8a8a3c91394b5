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

int
reg_cosign_check (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest,
                  const vfy_cosign_key *key, ef_err **err)
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
