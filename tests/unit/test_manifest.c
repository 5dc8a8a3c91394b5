/* test_manifest.c: manifests, indexes and platform choice, against the
 * containers/image and image-spec fixtures in tests/vectors/manifests. */
#include "../../registry/manifest.h"
#include "../../common/digest.h"
#include "vectors.h"

/* The Content-Type a registry would send for a fixture. */
static const char *
content_type_for (json_t *c)
{
  json_t *mt = json_object_get (c, "mediaType_in_body");
  const char *kind = json_string_value (json_object_get (c, "kind"));

  if (json_is_string (mt))
    return json_string_value (mt);
  if (strstr (kind, "oci-index"))
    return MT_OCI_INDEX;
  if (strstr (kind, "oci-manifest") || strstr (kind, "oci-artifact"))
    return MT_OCI_MANIFEST;
  if (strstr (kind, "docker-v2s2"))
    return MT_DOCKER_MANIFEST;
  if (strstr (kind, "docker-manifest-list"))
    return MT_DOCKER_LIST;
  return NULL;
}

static void
manifest__fixture_verdicts (void **state)
{
  json_t *root = vec_json ("manifests/cases.json"), *c;
  size_t i, n_accept = 0, n_refuse = 0;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *file = json_string_value (json_object_get (c, "file"));
    const char *verdict = json_string_value (json_object_get (c, "verdict"));
    cleanup_free char *rel = xasprintf ("manifests/%s", file);
    size_t len;
    cleanup_free char *body = vec_read (rel, &len);
    char digest[EF_DIGEST_LEN + 1];
    reg_manifest *m = NULL;
    ef_err *err = NULL;
    int rc = reg_manifest_parse (&m, body, len, content_type_for (c), &err);

    /* the fixture's recorded digest is the sha256 of its bytes */
    ef_digest_buf (body, len, digest);
    assert_string_equal (digest, json_string_value (json_object_get (c, "sha256")));

    if (strncmp (verdict, "accept", 6) == 0 && strcmp (verdict, "accept-structure") != 0)
      {
        if (rc < 0)
          fail_msg ("%s (%s) refused: %s", file, verdict, ef_err_msg (err));
        n_accept++;
      }
    else if (strcmp (verdict, "ambiguous") == 0)
      {
        /* v2s2nomime has no layers at all: nothing to run, refused either way */
        assert_true (rc < 0);
        assert_non_null (strstr (ef_err_msg (err), "no layers"));
      }
    else
      {
        /* refuse, refuse-as-image, accept-structure (a config that is no image config) */
        if (rc == 0)
          fail_msg ("%s (%s) accepted", file, verdict);
        assert_int_equal (ef_err_code (err), EF_VERIFY);
        n_refuse++;
      }
    ef_err_free (err);
    reg_manifest_free (m);
  }
  assert_true (n_accept >= 15);
  assert_true (n_refuse >= 10);
  json_decref (root);
}

static void
manifest__schema1_says_so (void **state)
{
  size_t len;
  cleanup_free char *body = vec_read ("manifests/containers-image/v2s1.manifest.json", &len);
  reg_manifest *m = NULL;
  ef_err *err = NULL;

  (void) state;
  assert_true (reg_manifest_parse (&m, body, len, "application/vnd.docker.distribution.manifest.v1+prettyjws",
                                   &err)
               < 0);
  assert_non_null (strstr (ef_err_msg (err), "schema1"));
  ef_err_free (err);
  err = NULL;
  assert_true (reg_manifest_parse (&m, body, len, NULL, &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "schema1"));
  ef_err_free (err);
}

static void
manifest__image_spec_schema_cases (void **state)
{
  static const char *suites[] = { "manifest_test.go", "imageindex_test.go", NULL };
  json_t *root = vec_json ("manifests/oci-image-spec-schema-tests.json"), *c;
  size_t i;

  (void) state;
  for (const char **s = suites; *s; s++)
    json_array_foreach (json_object_get (json_object_get (json_object_get (root, "suites"), *s), "cases"), i, c)
    {
      const char *doc = json_string_value (json_object_get (c, "document"));
      bool fail = json_is_true (json_object_get (c, "fail"));
      const char *ct = strcmp (*s, "manifest_test.go") == 0 ? MT_OCI_MANIFEST : MT_OCI_INDEX;
      reg_manifest *m = NULL;
      ef_err *err = NULL;
      int rc = reg_manifest_parse (&m, doc, strlen (doc), ct, &err);

      if (fail && rc == 0)
        fail_msg ("%s line %lld: schema-invalid document accepted", *s,
                  (long long) json_integer_value (json_object_get (c, "line")));
      if (!fail && rc < 0 && strchr (doc, '`') == NULL) /* one case carries Go source after the JSON */
        {
          /* valid, but not for us: an algorithm we cannot verify, or an artifact */
          const char *msg = ef_err_msg (err);
          if (!strstr (msg, "unsupported digest algorithm") && !strstr (msg, "not a container image"))
            fail_msg ("%s line %lld: valid document refused: %s", *s,
                      (long long) json_integer_value (json_object_get (c, "line")), msg);
        }
      ef_err_free (err);
      reg_manifest_free (m);
    }
  json_decref (root);
}

static void
manifest__hostile_fails (void **state)
{
  static const char *bad[] = {
    "",
    "{",
    "[]",
    "{\"schemaVersion\":2}",
    "{\"schemaVersion\":\"2\",\"config\":{},\"layers\":[]}",
    "{\"schemaVersion\":3,\"mediaType\":\"" MT_OCI_MANIFEST "\"}",
    "{\"schemaVersion\":2,\"mediaType\":5}",
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":[],\"layers\":[]}",
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":{}}",
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
    "\",\"digest\":\"sha256:abc\",\"size\":1}]}",
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
    "\",\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":-1}]}",
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
    "\",\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":1,"
    "\"platform\":\"linux\"}]}",
    "{\"schemaVersion\":2,\"schemaVersion\":2}",
    "{\"schemaVersion\":2,\"mediaType\":\"text/html\"}",
    NULL,
  };
  static const char good_index[]
      = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
        "\",\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":1}]}";
  reg_manifest *m = NULL;
  char *big;
  size_t i;

  (void) state;
  for (i = 0; bad[i]; i++)
    if (reg_manifest_parse (&m, bad[i], strlen (bad[i]), NULL, NULL) == 0)
      fail_msg ("accepted hostile manifest #%zu: %s", i, bad[i]);
  /* truncated at every length */
  for (i = 0; i + 1 < sizeof good_index - 1; i++)
    assert_true (reg_manifest_parse (&m, good_index, i, NULL, NULL) < 0);
  assert_int_equal (reg_manifest_parse (&m, good_index, sizeof good_index - 1, NULL, NULL), 0);
  reg_manifest_free (m);
  /* body says index, header says manifest */
  assert_true (reg_manifest_parse (&m, good_index, sizeof good_index - 1, MT_OCI_MANIFEST, NULL) < 0);
  /* oversized */
  big = xmalloc (REG_MANIFEST_MAX + 2);
  memset (big, ' ', REG_MANIFEST_MAX + 1);
  memcpy (big, good_index, sizeof good_index - 1);
  assert_true (reg_manifest_parse (&m, big, REG_MANIFEST_MAX + 1, NULL, NULL) < 0);
  free (big);
}

static void
platform__selection_vectors (void **state)
{
  json_t *root = vec_json ("manifests/cases.json"), *rows;
  const char *file;
  size_t checked = 0;

  (void) state;
  json_object_foreach (json_object_get (json_object_get (root, "platform_selection"), "lists"), file, rows)
  {
    cleanup_free char *rel = xasprintf ("manifests/%s", file);
    size_t len, i;
    cleanup_free char *body = vec_read (rel, &len);
    cleanup_manifest reg_manifest *m = NULL;
    json_t *row;

    assert_int_equal (reg_manifest_parse (&m, body, len, NULL, NULL), 0);
    json_array_foreach (rows, i, row)
    {
      const char *arch = json_string_value (json_array_get (row, 0));
      const char *variant = json_string_value (json_array_get (row, 1));
      const char *want = json_string_value (json_array_get (row, 2));
      cleanup_free char *spec = xasprintf ("linux/%s%s%s", arch, *variant ? "/" : "", variant);
      struct reg_platform p;
      const struct reg_desc *d = NULL;
      int rc;

      assert_int_equal (reg_platform_parse (&p, spec, NULL), 0);
      rc = reg_index_select (m, &p, &d, NULL);
      if (strcmp (want, "ERROR") == 0)
        {
          assert_true (rc < 0);
          continue;
        }
      if (rc < 0)
        fail_msg ("%s %s: nothing selected", file, spec);
      if (strstr (want, "preferGzip"))
        /* containers/image skips a zstd entry; we take the first match,
         * as image-spec says, and can fetch zstd layers. */
        assert_memory_equal (d->digest, "sha256:dddd", 11);
      else
        assert_memory_equal (d->digest, want, EF_DIGEST_LEN);
      checked++;
    }
  }
  assert_true (checked >= 15);
  json_decref (root);
}

/* containerd's fallbacks on a hand-made index */
static void
platform__containerd_fallbacks (void **state)
{
#define E(dg, arch, var)                                                                                              \
  "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"size\":1,\"digest\":\"sha256:" dg dg dg dg dg dg dg dg                  \
  "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"" arch "\"" var "}}"
  static const char idx[] = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
      "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"size\":1,\"digest\":\"sha256:" "99999999999999999999999999999999"
      "99999999999999999999999999999999\",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
      "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"}}," E ("11111111", "amd64", "") ","
      E ("22222222", "arm", ",\"variant\":\"v6\"") "," E ("33333333", "arm", ",\"variant\":\"v5\"") ","
      E ("44444444", "arm64", ",\"variant\":\"v8\"") "]}";
  static const struct
  {
    const char *want, *digest;
  } cases[] = {
    { "linux/amd64", "11111111" },  { "linux/x86_64", "11111111" }, { "linux/arm/v7", "22222222" },
    { "linux/armhf", "22222222" },  { "linux/arm/v6", "22222222" }, { "linux/arm/v5", "33333333" },
    { "linux/arm64", "44444444" },  { "linux/aarch64", "44444444" }, { "linux/arm64/v8", "44444444" },
    { "linux/arm/v8", "22222222" }, { "linux/386", NULL },          { "windows/amd64", NULL },
  };
  cleanup_manifest reg_manifest *m = NULL;

  (void) state;
  assert_int_equal (reg_manifest_parse (&m, idx, sizeof idx - 1, NULL, NULL), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct reg_platform p;
      const struct reg_desc *d = NULL;
      assert_int_equal (reg_platform_parse (&p, cases[i].want, NULL), 0);
      if (cases[i].digest == NULL)
        assert_true (reg_index_select (m, &p, &d, NULL) < 0);
      else
        {
          if (reg_index_select (m, &p, &d, NULL) < 0)
            fail_msg ("%s: nothing selected", cases[i].want);
          assert_memory_equal (d->digest + 7, cases[i].digest, 8);
        }
    }
  {
    /* arm64 with no arm64 entry falls back to 32-bit arm (v8 -> v7 -> v6) */
    static const char idx2[] = "{\"schemaVersion\":2,\"manifests\":[" E ("22222222", "arm", ",\"variant\":\"v6\"") "]}";
    cleanup_manifest reg_manifest *m2 = NULL;
    struct reg_platform p;
    const struct reg_desc *d = NULL;
    assert_int_equal (reg_manifest_parse (&m2, idx2, sizeof idx2 - 1, MT_OCI_INDEX, NULL), 0);
    assert_int_equal (reg_platform_parse (&p, "linux/arm64", NULL), 0);
    assert_int_equal (reg_index_select (m2, &p, &d, NULL), 0);
  }
#undef E
}

static void
platform__parse (void **state)
{
  struct reg_platform p;
  char buf[64];

  (void) state;
  assert_int_equal (reg_platform_parse (&p, "linux/armel", NULL), 0);
  reg_platform_format (&p, buf, sizeof buf);
  assert_string_equal (buf, "linux/arm/v6");
  assert_int_equal (reg_platform_parse (&p, "linux/arm/7", NULL), 0);
  assert_string_equal (p.variant, "v7");
  assert_int_equal (reg_platform_parse (&p, "linux/amd64/v1", NULL), 0);
  assert_string_equal (p.variant, "");
  assert_true (reg_platform_parse (&p, "linux", NULL) < 0);
  assert_true (reg_platform_parse (&p, "/amd64", NULL) < 0);
  assert_true (reg_platform_parse (&p, "linux/", NULL) < 0);
  assert_true (reg_platform_parse (&p, "linux/arm/", NULL) < 0);
  reg_platform_host (&p);
  assert_string_equal (p.os, "linux");
  assert_true (p.arch[0] != '\0');
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (manifest__fixture_verdicts),
    cmocka_unit_test (manifest__schema1_says_so),
    cmocka_unit_test (manifest__image_spec_schema_cases),
    cmocka_unit_test (manifest__hostile_fails),
    cmocka_unit_test (platform__selection_vectors),
    cmocka_unit_test (platform__containerd_fallbacks),
    cmocka_unit_test (platform__parse),
  };
  return cmocka_run_group_tests_name ("manifest", tests, NULL, NULL);
}
