/* test_ref.c: image references, parsed as docker does. */
#include "../../registry/ref.h"
#include "vectors.h"

static void
check_ref (const char *in, const char *domain, const char *api, const char *path, const char *tag,
           const char *digest)
{
  struct reg_ref *r = NULL;
  ef_err *err = NULL;

  if (reg_ref_parse (&r, in, &err) < 0)
    fail_msg ("%s: %s", in, ef_err_msg (err));
  assert_string_equal (r->domain, domain);
  assert_string_equal (r->api_host, api);
  assert_string_equal (r->path, path);
  if (tag)
    assert_string_equal (r->tag, tag);
  else
    assert_null (r->tag);
  if (digest)
    assert_string_equal (r->digest, digest);
  else
    assert_null (r->digest);
  reg_ref_free (r);
}

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
ref_parse__docker_normalisation (void **state)
{
  (void) state;
  check_ref ("busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", NULL);
  check_ref ("busybox:1.36", "docker.io", "registry-1.docker.io", "library/busybox", "1.36", NULL);
  check_ref ("docker.io/busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", NULL);
  check_ref ("index.docker.io/library/busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest",
             NULL);
  check_ref ("openhorizon/ibm.cpu2msghub_amd64:1.2", "docker.io", "registry-1.docker.io",
             "openhorizon/ibm.cpu2msghub_amd64", "1.2", NULL);
  check_ref ("quay.io/org/app", "quay.io", "quay.io", "org/app", "latest", NULL);
}

static void
ref_parse__host_port_tag_digest (void **state)
{
  (void) state;
  check_ref ("127.0.0.1:5443/edge/app:1.0", "127.0.0.1:5443", "127.0.0.1:5443", "edge/app", "1.0", NULL);
  check_ref ("localhost/app", "localhost", "localhost", "app", "latest", NULL);
  check_ref ("localhost:5000/a/b/c:v1-rc.2", "localhost:5000", "localhost:5000", "a/b/c", "v1-rc.2", NULL);
  check_ref ("reg.example:5000/app@" D64, "reg.example:5000", "reg.example:5000", "app", NULL, D64);
  check_ref ("reg.example/app:1@" D64, "reg.example", "reg.example", "app", "1", D64);
  check_ref ("[::1]:5000/app", "[::1]:5000", "[::1]:5000", "app", "latest", NULL);
  check_ref ("a__b/c-d/e.f---g", "docker.io", "registry-1.docker.io", "a__b/c-d/e.f---g", "latest", NULL);
}

static void
ref_parse__roundtrip (void **state)
{
  struct reg_ref *r = NULL;
  char *s, *repo;

  (void) state;
  assert_int_equal (reg_ref_parse (&r, "busybox", NULL), 0);
  s = reg_ref_string (r);
  repo = reg_ref_repo (r);
  assert_string_equal (s, "docker.io/library/busybox:latest");
  assert_string_equal (repo, "docker.io/library/busybox");
  free (s);
  free (repo);
  reg_ref_free (r);
}

static void
ref_parse__invalid_fails (void **state)
{
  static const char *bad[] = {
    "",
    "UPPER/case",
    "edge/App",
    "app:",
    "app:-tag",
    "app:" "toolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolongtoolong123",
    "app@sha256:abc",
    "app@sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "app@" "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
    "a//b",
    "/app",
    "app/",
    "-host:5000/app",
    "host:99999999/app",
    "host:/app",
    "a..b",
    "a_-b",
    "[::1/app",
    "app:tag:tag",
    "host:5000/app\n",
    NULL,
  };
  char big[1100];

  (void) state;
  for (const char **p = bad; *p; p++)
    {
      struct reg_ref *r = NULL;
      ef_err *err = NULL;
      if (reg_ref_parse (&r, *p, &err) == 0)
        fail_msg ("accepted bad reference '%s'", *p);
      assert_null (r);
      assert_int_equal (ef_err_code (err), EF_USAGE);
      ef_err_free (err);
    }
  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  {
    struct reg_ref *r = NULL;
    assert_true (reg_ref_parse (&r, big, NULL) < 0);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (ref_parse__docker_normalisation),
    cmocka_unit_test (ref_parse__host_port_tag_digest),
    cmocka_unit_test (ref_parse__roundtrip),
    cmocka_unit_test (ref_parse__invalid_fails),
  };
  return cmocka_run_group_tests_name ("reference", tests, NULL, NULL);
}
