/* cosign.c: see cosign.h. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../common/file.h"
#include "../common/json.h"
#include "../common/util.h"
#include "cosign.h"
#include "../common/digest.h"

#define PAYLOAD_TYPE "cosign container image signature"

struct vfy_cosign_key
{
  EVP_PKEY *pkey;
};

int
vfy_cosign_key_from_pem (vfy_cosign_key **out, const char *pem, size_t len, ef_err **err)
{
  BIO *bio;
  EVP_PKEY *pkey;
  char group[64] = "";
  size_t glen = 0;
  int rc = 0;

  *out = NULL;
  if (len > 64 * 1024 || !memmem (pem, len, "-----BEGIN PUBLIC KEY-----", 26))
    return ef_err_set (err, EF_VERIFY, "cosign key: not a PEM PUBLIC KEY");
  bio = BIO_new_mem_buf (pem, (int) len);
  pkey = PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL);
  BIO_free (bio);
  ERR_clear_error ();
  if (pkey == NULL)
    return ef_err_set (err, EF_VERIFY, "cosign key: unreadable public key");
  switch (EVP_PKEY_get_base_id (pkey))
    {
    case EVP_PKEY_EC:
      if (EVP_PKEY_get_group_name (pkey, group, sizeof group, &glen) != 1 || strcmp (group, "prime256v1") != 0)
        rc = ef_err_set (err, EF_VERIFY, "cosign key: ECDSA curve '%s' is not P-256", group);
      break;
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits (pkey) < 2048)
        rc = ef_err_set (err, EF_VERIFY, "cosign key: RSA key shorter than 2048 bits");
      break;
    default:
      rc = ef_err_set (err, EF_VERIFY, "cosign key: unsupported key algorithm");
    }
  if (rc < 0)
    {
      EVP_PKEY_free (pkey);
      return rc;
    }
  *out = xmalloc (sizeof **out);
  (*out)->pkey = pkey;
  return 0;
}

int
vfy_cosign_key_load (vfy_cosign_key **out, const char *path, ef_err **err)
{
  cleanup_free char *text = NULL;
  size_t len;
  int rc;

  *out = NULL;
  if (ef_read_file (path, 64 * 1024, &text, &len) < 0)
    return ef_err_sys (err, EF_USAGE, errno, "cosign key %s", path);
  rc = vfy_cosign_key_from_pem (out, text, len, err);
  if (rc < 0)
    ef_err_wrap (err, "%s", path);
  return rc;
}

void
vfy_cosign_key_free (vfy_cosign_key *k)
{
  if (k == NULL)
    return;
  EVP_PKEY_free (k->pkey);
  free (k);
}

/* An object with exactly these keys. */
static bool
exact_keys (json_t *o, const char *const *keys)
{
  size_t n = 0;

  if (!json_is_object (o))
    return false;
  for (; *keys; keys++, n++)
    if (json_object_get (o, *keys) == NULL)
      return false;
  return json_object_size (o) == n;
}

int
vfy_cosign_payload_parse (const char *payload, size_t len, char **docker_ref, char **manifest_digest,
                          ef_err **err)
{
  static const char *const top[] = { "critical", "optional", NULL };
  static const char *const crit[] = { "identity", "image", "type", NULL };
  static const char *const ident[] = { "docker-reference", NULL };
  static const char *const image[] = { "docker-manifest-digest", NULL };
  json_t *root, *c, *opt, *ref, *dg, *type;
  int rc = 0;

  *docker_ref = *manifest_digest = NULL;
  if (len > COSIGN_PAYLOAD_MAX)
    return ef_err_set (err, EF_VERIFY, "cosign payload too large");
  root = ef_json_parse (payload, len, EF_JSON_BUDGET, NULL);
  c = json_object_get (root, "critical");
  opt = json_object_get (root, "optional");
  if (!exact_keys (root, top) || !exact_keys (c, crit) || !(json_is_object (opt) || json_is_null (opt))
      || !exact_keys (json_object_get (c, "identity"), ident) || !exact_keys (json_object_get (c, "image"), image))
    {
      rc = ef_err_set (err, EF_VERIFY, "cosign payload is not a simple-signing document");
      goto out;
    }
  type = json_object_get (c, "type");
  ref = json_object_get (json_object_get (c, "identity"), "docker-reference");
  dg = json_object_get (json_object_get (c, "image"), "docker-manifest-digest");
  if (!json_is_string (type) || strcmp (json_string_value (type), PAYLOAD_TYPE) != 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "cosign payload type is not '" PAYLOAD_TYPE "'");
      goto out;
    }
  if (!json_is_string (ref) || json_string_length (ref) == 0 || json_string_length (ref) > 1024
      || strlen (json_string_value (ref)) != json_string_length (ref))
    {
      rc = ef_err_set (err, EF_VERIFY, "cosign payload has no valid docker-reference");
      goto out;
    }
  if (!json_is_string (dg) || ef_digest_parse (json_string_value (dg), NULL, NULL) < 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "cosign payload has no valid docker-manifest-digest");
      goto out;
    }
  *docker_ref = xstrdup (json_string_value (ref));
  *manifest_digest = xstrdup (json_string_value (dg));
out:
  json_decref (root);
  return rc;
}

int
vfy_cosign_verify (const vfy_cosign_key *k, const char *payload, size_t len, const char *sig_b64,
                   const char *manifest_digest, char **docker_ref, ef_err **err)
{
  unsigned char *sig = NULL;
  EVP_MD_CTX *ctx;
  long siglen;
  char *ref = NULL, *dg = NULL;
  int ok = 0, rc;

  *docker_ref = NULL;
  if (sig_b64 == NULL || *sig_b64 == '\0')
    return ef_err_set (err, EF_VERIFY, "cosign signature missing");
  if (len > COSIGN_PAYLOAD_MAX)
    return ef_err_set (err, EF_VERIFY, "cosign payload too large");
  siglen = ef_b64_decode (sig_b64, strlen (sig_b64), &sig);
  if (siglen <= 0)
    return ef_err_set (err, EF_VERIFY, "cosign signature is not valid base64");
  /* The bytes are checked before a single one of them is parsed. */
  ctx = EVP_MD_CTX_new ();
  if (ctx && EVP_DigestVerifyInit (ctx, NULL, EVP_sha256 (), NULL, k->pkey) == 1)
    ok = EVP_DigestVerify (ctx, sig, (size_t) siglen, (const unsigned char *) payload, len) == 1;
  EVP_MD_CTX_free (ctx);
  ERR_clear_error ();
  free (sig);
  if (!ok)
    return ef_err_set (err, EF_VERIFY, "cosign signature does not verify with the key");
  if ((rc = vfy_cosign_payload_parse (payload, len, &ref, &dg, err)) < 0)
    return rc;
  if (strcmp (dg, manifest_digest) != 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "cosign signature is for %s, not %s", dg, manifest_digest);
      free (ref);
      free (dg);
      return rc;
    }
  free (dg);
  *docker_ref = ref;
  return 0;
}

/* DSSE's pre-authentication encoding. */
static char *
dsse_pae (const char *type, const unsigned char *body, size_t blen, size_t *len)
{
  char *head = xasprintf ("DSSEv1 %zu %s %zu ", strlen (type), type, blen);
  size_t hl = strlen (head);
  char *out = xmalloc (hl + blen);

  memcpy (out, head, hl);
  memcpy (out + hl, body, blen);
  free (head);
  *len = hl + blen;
  return out;
}

static bool
statement_names (const unsigned char *body, size_t len, const char *manifest_digest)
{
  json_t *st = ef_json_parse ((const char *) body, len, EF_JSON_BUDGET, NULL), *sub;
  const char *type = json_string_value (json_object_get (st, "_type"));
  const char *pred = json_string_value (json_object_get (st, "predicateType"));
  bool ok = false;
  size_t i;

  if (type && (strcmp (type, "https://in-toto.io/Statement/v1") == 0
               || strcmp (type, "https://in-toto.io/Statement/v0.1") == 0)
      && pred && strcmp (pred, COSIGN_PREDICATE_TYPE) == 0)
    json_array_foreach (json_object_get (st, "subject"), i, sub)
    {
      const char *hex = json_string_value (json_object_get (json_object_get (sub, "digest"), "sha256"));
      if (hex && strcmp (hex, manifest_digest + 7) == 0 && strncmp (manifest_digest, "sha256:", 7) == 0)
        ok = true;
    }
  json_decref (st);
  return ok;
}

int
vfy_cosign_verify_bundle (const vfy_cosign_key *k, const char *bundle, size_t len, const char *manifest_digest,
                          ef_err **err)
{
  json_t *root, *env, *sigs, *sg;
  const char *mt, *payload, *ptype;
  unsigned char *body = NULL;
  long blen;
  size_t i;
  int rc = -EF_VERIFY;

  if (len > COSIGN_PAYLOAD_MAX * 4)
    return ef_err_set (err, EF_VERIFY, "sigstore bundle too large");
  root = ef_json_parse (bundle, len, EF_JSON_BUDGET, NULL);
  mt = json_string_value (json_object_get (root, "mediaType"));
  env = json_object_get (root, "dsseEnvelope");
  payload = json_string_value (json_object_get (env, "payload"));
  ptype = json_string_value (json_object_get (env, "payloadType"));
  sigs = json_object_get (env, "signatures");
  if (mt == NULL || strncmp (mt, "application/vnd.dev.sigstore.bundle", 35) != 0 || payload == NULL || ptype == NULL
      || !json_is_array (sigs) || json_array_size (sigs) == 0)
    {
      ef_err_set (err, EF_VERIFY, "not a sigstore bundle with a DSSE envelope");
      goto out;
    }
  if (strcmp (ptype, "application/vnd.in-toto+json") != 0)
    {
      ef_err_set (err, EF_VERIFY, "sigstore bundle payload type '%.64s' is not in-toto", ptype);
      goto out;
    }
  blen = ef_b64_decode (payload, strlen (payload), &body);
  if (blen <= 0)
    {
      ef_err_set (err, EF_VERIFY, "sigstore bundle payload is not valid base64");
      goto out;
    }
  {
    size_t plen;
    cleanup_free char *pae = dsse_pae (ptype, body, (size_t) blen, &plen);
    bool verified = false;
    json_array_foreach (sigs, i, sg)
    {
      const char *b64 = json_string_value (json_object_get (sg, "sig"));
      unsigned char *sig = NULL;
      long slen = b64 ? ef_b64_decode (b64, strlen (b64), &sig) : -1;
      EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
      if (slen > 0 && ctx && EVP_DigestVerifyInit (ctx, NULL, EVP_sha256 (), NULL, k->pkey) == 1
          && EVP_DigestVerify (ctx, sig, (size_t) slen, (const unsigned char *) pae, plen) == 1)
        verified = true;
      EVP_MD_CTX_free (ctx);
      ERR_clear_error ();
      free (sig);
    }
    if (!verified)
      {
        ef_err_set (err, EF_VERIFY, "sigstore bundle signature does not verify with the key");
        goto out;
      }
  }
  /* only now is the statement parsed */
  if (!statement_names (body, (size_t) blen, manifest_digest))
    {
      ef_err_set (err, EF_VERIFY, "sigstore bundle does not sign %s with cosign's predicate", manifest_digest);
      goto out;
    }
  rc = 0;
out:
  free (body);
  json_decref (root);
  return rc;
}
