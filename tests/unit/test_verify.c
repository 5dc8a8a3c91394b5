/* test_verify.c: RSA-PSS deployment signatures made by Go (rsapss-tool,
 * hzn) and cosign signatures made by cosign, from tests/vectors. */
#include <stdbool.h>
#include <time.h>

#include "../../registry/ref.h"
#include "../../verify/cosign.h"
#include "../../verify/deployment.h"
#include "../../verify/rsapss.h"
#include "../../common/text.h"
#include "vectors.h"

static time_t
utc (int y, int mo, int d)
{
  struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = 12 };
  return timegm (&tm);
}

static void
rsapss__vectors (void **state)
{
  json_t *root = vec_json ("horizon-rsapss/cases.json"), *c, *k;
  size_t i, j, nvalid = 0, ninvalid = 0;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *id = json_string_value (json_object_get (c, "id"));
    const char *expect = json_string_value (json_object_get (c, "expect"));
    cleanup_free char *rel = xasprintf ("horizon-rsapss/%s", json_string_value (json_object_get (c, "signed_file")));
    cleanup_free char *srel
        = xasprintf ("horizon-rsapss/%s", json_string_value (json_object_get (c, "signature_file")));
    size_t len, slen;
    cleanup_free char *data = vec_read (rel, &len);
    cleanup_free char *sig = vec_read (srel, &slen);
    vfy_keyring *kr = vfy_keyring_new ();
    ef_err *err = NULL;
    const char *name = NULL;
    int rc;

    json_array_foreach (json_object_get (c, "keys"), j, k)
    {
      cleanup_free char *krel = xasprintf ("horizon-rsapss/%s", json_string_value (k));
      size_t klen;
      cleanup_free char *pem = vec_read (krel, &klen);
      if (vfy_keyring_add_pem (kr, json_string_value (k), pem, klen, utc (2026, 11, 22), NULL) < 0)
        fail_msg ("%s: key %s refused", id, json_string_value (k));
    }
    rc = vfy_rsapss_verify (kr, data, len, sig, &name, &err);
    if (strcmp (expect, "valid") == 0)
      {
        if (rc < 0)
          fail_msg ("%s: %s", id, ef_err_msg (err));
        assert_non_null (name);
        nvalid++;
      }
    else
      {
        if (rc == 0)
          fail_msg ("%s: verified but must not", id);
        assert_int_equal (ef_err_code (err), EF_VERIFY);
        ninvalid++;
      }
    ef_err_free (err);
    vfy_keyring_free (kr);
  }
  assert_true (nvalid >= 15);
  assert_true (ninvalid >= 5);
  json_decref (root);
}

static int
add_key (vfy_keyring *kr, const char *rel, time_t now, ef_err **err)
{
  cleanup_free char *path = xasprintf ("horizon-rsapss/keys/%s", rel);
  size_t len;
  cleanup_free char *pem = vec_read (path, &len);
  return vfy_keyring_add_pem (kr, rel, pem, len, now, err);
}

static void
rsapss__key_forms (void **state)
{
  vfy_keyring *kr = vfy_keyring_new ();
  ef_err *err = NULL;

  (void) state;
  /* the hzn-style certificate: valid until 2027-11-30 */
  assert_int_equal (add_key (kr, "rsapss-tool-devcert.pem", utc (2026, 11, 22), NULL), 0);
  assert_true (add_key (kr, "rsapss-tool-devcert.pem", utc (2027, 12, 1), &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "expired"));
  ef_err_free (err);
  err = NULL;
  assert_true (add_key (kr, "rsapss-tool-listkeys-expired-cert.pem", 0, &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "expired"));
  ef_err_free (err);
  err = NULL;
  assert_true (add_key (kr, "examples-smart_audio-service.public.pem", 0, &err) < 0);
  ef_err_free (err);
  err = NULL;
  /* refused however the clock stands: duplicate BasicConstraints, CA:TRUE */
  assert_true (add_key (kr, "anax-api-test-cert-dup-basicconstraints.pem", utc (2019, 1, 1), &err) < 0);
  ef_err_free (err);
  err = NULL;
  /* a private key is not a trusted key */
  assert_true (add_key (kr, "rsapss-tool-devcert.private.key", 0, &err) < 0);
  ef_err_free (err);
  assert_int_equal (vfy_keyring_count (kr), 1);
  vfy_keyring_free (kr);
}

static void
rsapss__hostile_fails (void **state)
{
  vfy_keyring *kr = vfy_keyring_new ();
  static const char pkcs1[] = "-----BEGIN RSA PUBLIC KEY-----\nMAoCAwEAAQIDAQAB\n-----END RSA PUBLIC KEY-----\n";
  size_t len;
  cleanup_free char *data = vec_read ("horizon-rsapss/signed/rsapss-tool-content.txt", &len);
  cleanup_free char *sig = vec_read ("horizon-rsapss/sigs/rsapss-tool-2048valid.sig.b64", NULL);
  char *bad;

  (void) state;
  assert_true (vfy_keyring_add_pem (kr, "pkcs1", pkcs1, sizeof pkcs1 - 1, 0, NULL) < 0);
  assert_true (vfy_keyring_add_pem (kr, "junk", "hello", 5, 0, NULL) < 0);
  assert_true (vfy_keyring_add_pem (kr, "empty", "", 0, 0, NULL) < 0);
  assert_true (vfy_rsapss_verify (kr, data, len, sig, NULL, NULL) < 0); /* no keys */
  assert_int_equal (add_key (kr, "rsapss-tool-2048valid.pub.pem", 0, NULL), 0);
  assert_int_equal (vfy_rsapss_verify (kr, data, len, sig, NULL, NULL), 0);
  /* one byte changed in the data, in the signature; truncated; bad base64; missing */
  data[3] ^= 1;
  assert_true (vfy_rsapss_verify (kr, data, len, sig, NULL, NULL) < 0);
  data[3] ^= 1;
  bad = xstrdup (sig);
  bad[10] = bad[10] == 'A' ? 'B' : 'A';
  assert_true (vfy_rsapss_verify (kr, data, len, bad, NULL, NULL) < 0);
  bad[strlen (bad) - 8] = '\0';
  assert_true (vfy_rsapss_verify (kr, data, len, bad, NULL, NULL) < 0);
  assert_true (vfy_rsapss_verify (kr, data, len, "!!!!", NULL, NULL) < 0);
  assert_true (vfy_rsapss_verify (kr, data, len, "", NULL, NULL) < 0);
  assert_true (vfy_rsapss_verify (kr, data, len, NULL, NULL, NULL) < 0);
  free (bad);
  vfy_keyring_free (kr);
}

static void
deployment__images (void **state)
{
  char **v = NULL;
  size_t len;
  cleanup_free char *geth = vec_read ("horizon-rsapss/signed/anax-geth-deployment.txt", &len);

  (void) state;
  assert_int_equal (vfy_deployment_images (geth, len, &v, NULL), 0);
  assert_string_equal (v[0], "summit.hovitos.engineering/private-eth:v1.5.7");
  assert_null (v[1]);
  ef_strv_free (v);
  assert_true (vfy_deployment_images ("{\"services\":{}}", 15, &v, NULL) < 0);
  assert_true (vfy_deployment_images ("{\"services\":{\"a\":{}}}", 21, &v, NULL) < 0);
  assert_true (vfy_deployment_images ("[]", 2, &v, NULL) < 0);
  assert_true (vfy_deployment_images ("{\"services\":{\"a\":{\"image\":5}}}", 30, &v, NULL) < 0);
}

/* The deployment is parsed once, strictly: a duplicate key (which two
 * parsers could read two ways) is refused, in the overrides too. */
static void
deployment__duplicate_keys_fail (void **state)
{
  static const char dup[] = "{\"services\":{\"a\":{\"image\":\"x/a:1\",\"image\":\"evil/a:1\"}}}";
  static const char ok[] = "{\"services\":{\"a\":{\"image\":\"x/a:1\"}}}";
  static const char dup_over[] = "{\"services\":{\"a\":{\"image\":\"y/a:2\"},\"a\":{\"image\":\"evil/a:1\"}}}";
  char **v = NULL;

  (void) state;
  assert_true (vfy_deployment_images (dup, strlen (dup), &v, NULL) < 0);
  assert_int_equal (vfy_deployment_images (ok, strlen (ok), &v, NULL), 0);
  ef_strv_free (v);
  assert_true (vfy_overrides_images (dup_over, strlen (dup_over), &v, NULL) < 0);
}

/* anax takes only the Environment from a pattern's overrides: the image
 * an override names is reported, never what the deployment runs. */
static void
deployment__overrides_name_images_that_are_not_pulled (void **state)
{
  static const char over[] = "{\"services\":{\"b\":{\"image\":\"x/b:2\",\"environment\":[\"A=1\"]},"
                             "\"c\":{\"environment\":[\"B=2\"]}}}";
  static const char env_only[] = "{\"services\":{\"b\":{\"environment\":[\"A=1\"]}}}";
  char **v = NULL;

  (void) state;
  assert_int_equal (vfy_overrides_images (over, strlen (over), &v, NULL), 0);
  assert_string_equal (v[0], "x/b:2");
  assert_null (v[1]);
  ef_strv_free (v);
  assert_int_equal (vfy_overrides_images (env_only, strlen (env_only), &v, NULL), 0);
  assert_null (v[0]);
  ef_strv_free (v);
  assert_true (vfy_overrides_images ("[1]", 3, &v, NULL) < 0);
}

static bool
same_repo (const char *a, const char *b)
{
  struct reg_ref *ra = NULL, *rb = NULL;
  bool same;

  if (reg_ref_parse (&ra, a, NULL) < 0 || reg_ref_parse (&rb, b, NULL) < 0)
    {
      reg_ref_free (ra);
      return false;
    }
  same = strcmp (ra->domain, rb->domain) == 0 && strcmp (ra->path, rb->path) == 0;
  reg_ref_free (ra);
  reg_ref_free (rb);
  return same;
}

static void
cosign__vectors (void **state)
{
  json_t *root = vec_json ("cosign/cases.json"), *c;
  size_t i, accepted = 0, rejected = 0;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *id = json_string_value (json_object_get (c, "id"));
    const char *dir = json_string_value (json_object_get (c, "dir"));
    const char *keyrel = json_string_value (json_object_get (c, "key"));
    const char *overall = json_string_value (json_object_get (c, "expect_overall"));
    const char *digest = json_string_value (json_object_get (c, "manifest_sha256"));
    const char *image = json_string_value (json_object_get (c, "image_reference_in_test"));
    const char *mime = json_string_value (json_object_get (c, "payload_mime"));
    cleanup_free char *prel = xasprintf ("cosign/%s/%s", dir, strcmp (mime, "text/plain") == 0 ? "payload.txt"
                                                                                               : "payload.json");
    cleanup_free char *srel = xasprintf ("cosign/%s/signature.b64", dir);
    cleanup_free char *krel = xasprintf ("cosign/%s", keyrel ? keyrel : "keys/cosign.pub");
    size_t plen, klen;
    cleanup_free char *payload = vec_read (prel, &plen);
    cleanup_free char *sig = vec_read (srel, NULL);
    cleanup_free char *pem = vec_read (krel, &klen);
    vfy_cosign_key *key = NULL;
    char *ref = NULL;
    int rc;

    assert_int_equal (vfy_cosign_key_from_pem (&key, pem, klen, NULL), 0);
    /* A key-only verifier: Fulcio and private-PKI signatures must fail. */
    rc = vfy_cosign_verify (key, payload, plen, sig, digest, &ref, NULL);
    if (rc == 0 && !same_repo (ref, image))
      rc = -EF_VERIFY;
    if (strcmp (overall, "accept") == 0)
      {
        if (rc < 0)
          fail_msg ("%s: rejected", id);
        accepted++;
      }
    else
      {
        if (rc == 0)
          fail_msg ("%s: accepted", id);
        rejected++;
      }
    free (ref);
    vfy_cosign_key_free (key);
  }
  assert_int_equal (accepted, 3);
  assert_int_equal (rejected, 8);
  json_decref (root);
}

static void
cosign__payload_strict (void **state)
{
  static const char *bad[] = {
    "{}",
    "[]",
    "{\"critical\":{\"identity\":{\"docker-reference\":\"a/b\"},\"image\":{\"docker-manifest-digest\":\"sha256:"
    "634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"},\"type\":\"cosign container image "
    "signature\"},\"optional\":null,\"extra\":1}",
    "{\"critical\":{\"identity\":{\"docker-reference\":\"a/b\"},\"image\":{\"docker-manifest-digest\":\"sha256:"
    "634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"},\"type\":\"atomic container "
    "signature\"},\"optional\":null}",
    "{\"critical\":{\"identity\":{\"docker-reference\":\"a/b\"},\"image\":{\"docker-manifest-digest\":\"md5:00\"},"
    "\"type\":\"cosign container image signature\"},\"optional\":null}",
    "{\"critical\":{\"identity\":{\"docker-reference\":5},\"image\":{\"docker-manifest-digest\":\"sha256:"
    "634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"},\"type\":\"cosign container image "
    "signature\"},\"optional\":null}",
    "{\"critical\":{\"identity\":{\"docker-reference\":\"a/b\"},\"image\":{\"docker-manifest-digest\":\"sha256:"
    "634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"},\"type\":\"cosign container image "
    "signature\"},\"optional\":[]}",
    NULL,
  };
  char *r, *d;

  (void) state;
  for (const char **p = bad; *p; p++)
    if (vfy_cosign_payload_parse (*p, strlen (*p), &r, &d, NULL) == 0)
      fail_msg ("accepted payload %s", *p);
}

static void
cosign__bundle_hostile_fails (void **state)
{
  static const char *bad[] = {
    "",
    "[]",
    "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\"}",
    "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"dsseEnvelope\":{\"payload\":\"e30=\","
    "\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[]}}",
    "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"dsseEnvelope\":{\"payload\":\"e30=\","
    "\"payloadType\":\"text/plain\",\"signatures\":[{\"sig\":\"AAAA\"}]}}",
    "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"dsseEnvelope\":{\"payload\":\"!!\","
    "\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[{\"sig\":\"AAAA\"}]}}",
    "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"dsseEnvelope\":{\"payload\":\"e30=\","
    "\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[{\"sig\":\"AAAA\"}]}}",
    NULL,
  };
  size_t klen;
  cleanup_free char *pem = vec_read ("cosign/keys/cosign.pub", &klen);
  vfy_cosign_key *k = NULL;

  (void) state;
  assert_int_equal (vfy_cosign_key_from_pem (&k, pem, klen, NULL), 0);
  for (const char **p = bad; *p; p++)
    if (vfy_cosign_verify_bundle (k, *p, strlen (*p), "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00",
                                  NULL)
        == 0)
      fail_msg ("accepted bundle %s", *p);
  vfy_cosign_key_free (k);
}

static void
cosign__key_forms (void **state)
{
  vfy_cosign_key *k = NULL;
  size_t len;
  cleanup_free char *rsa4096 = vec_read ("horizon-rsapss/keys/mtn-publicKey.pem", &len);
  cleanup_free char *rsa1024 = NULL;
  size_t len2;

  (void) state;
  assert_int_equal (vfy_cosign_key_from_pem (&k, rsa4096, len, NULL), 0); /* RSA >= 2048 */
  vfy_cosign_key_free (k);
  rsa1024 = vec_read ("horizon-rsapss/keys/rsapss-tool-1024-1valid.pub.pem", &len2);
  assert_true (vfy_cosign_key_from_pem (&k, rsa1024, len2, NULL) < 0);
  assert_true (vfy_cosign_key_from_pem (&k, "junk", 4, NULL) < 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (rsapss__vectors),        cmocka_unit_test (rsapss__key_forms),
    cmocka_unit_test (rsapss__hostile_fails),  cmocka_unit_test (deployment__images),
    cmocka_unit_test (deployment__duplicate_keys_fail), cmocka_unit_test (deployment__overrides_name_images_that_are_not_pulled),
    cmocka_unit_test (cosign__vectors),        cmocka_unit_test (cosign__payload_strict),
    cmocka_unit_test (cosign__key_forms),      cmocka_unit_test (cosign__bundle_hostile_fails),
  };
  return cmocka_run_group_tests_name ("verify", tests, NULL, NULL);
}
