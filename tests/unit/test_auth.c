/* test_auth.c: challenges, realms, token bodies and docker configs, from
 * the vectors other projects' tests use (tests/vectors/auth). */
#include <sys/stat.h>
#include <unistd.h>

#include "../../registry/remote/auth.h"
#include "vectors.h"

static void
challenge__vectors (void **state)
{
  json_t *root = vec_json ("auth/www-authenticate.json"), *c;
  size_t i;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *id = json_string_value (json_object_get (c, "id"));
    json_t *headers = json_object_get (c, "headers"), *expect = json_object_get (c, "expect");
    struct auth_challenge cs[4];
    size_t n = json_array_size (headers), k;
    int parsed[4], sel;

    assert_true (n <= 4);
    for (k = 0; k < n; k++)
      parsed[k] = auth_challenge_parse (&cs[k], json_string_value (json_array_get (headers, k)), NULL);

    if (json_object_get (expect, "error"))
      {
        /* missing realm, unterminated quote: the parse must fail */
        assert_true (parsed[0] < 0);
      }
    else if (json_object_get (expect, "challenges"))
      {
        json_t *want = json_object_get (expect, "challenges");
        for (k = 0; k < n; k++)
          {
            assert_int_equal (parsed[k], 0);
            assert_string_equal (auth_challenge_param (&cs[k], "realm"),
                                 json_string_value (json_object_get (
                                     json_object_get (json_array_get (want, k), "params"), "realm")));
          }
        /* the first usable one wins */
        assert_int_equal (auth_challenge_select (cs, n, NULL), 0);
      }
    else if (json_object_get (expect, "scheme") || json_object_get (expect, "selected_scheme"))
      {
        const char *scheme = json_string_value (json_object_get (expect, "scheme"));
        const char *selected = json_string_value (json_object_get (expect, "selected_scheme"));
        json_t *params = json_object_get (expect, "params"), *v;
        const char *key;
        ef_err *err = NULL;

        sel = auth_challenge_select (cs, n, &err);
        if (selected && strstr (selected, "unsupported"))
          {
            assert_true (sel < 0);
            assert_int_equal (ef_err_code (err), EF_AUTH);
            ef_err_free (err);
          }
        else
          {
            if (sel < 0)
              fail_msg ("%s: no challenge selected", id);
            assert_int_equal (parsed[sel], 0);
            assert_int_equal (cs[sel].scheme,
                              strcmp (scheme ? scheme : selected, "bearer") == 0 ? AUTH_BEARER : AUTH_BASIC);
            json_object_foreach (params, key, v)
            {
              const char *got = auth_challenge_param (&cs[sel], key);
              if (got == NULL || strcmp (got, json_string_value (v)) != 0)
                fail_msg ("%s: param %s: got '%s', want '%s'", id, key, got ? got : "(none)", json_string_value (v));
            }
            assert_int_equal (cs[sel].nparams, json_object_size (params));
          }
      }
    else if (strcmp (id, "ggcr-no-scheme") == 0)
      assert_true (parsed[0] < 0); /* a bare parameter is no challenge */
    for (k = 0; k < n; k++)
      if (parsed[k] == 0)
        auth_challenge_dispose (&cs[k]);
  }
  json_decref (root);
}

static void
challenge__hostile_fails (void **state)
{
  struct auth_challenge c;
  char big[9000];

  (void) state;
  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy (big, "Bearer realm=\"", 14);
  assert_true (auth_challenge_parse (&c, big, NULL) < 0);
  assert_true (auth_challenge_parse (&c, "", NULL) < 0);
  assert_true (auth_challenge_parse (&c, "Bearer realm", NULL) < 0);
  assert_true (auth_challenge_parse (&c, "Bearer realm=\"x\" junk", NULL) < 0);
  assert_true (auth_challenge_parse (&c, "Bearer =x", NULL) < 0);
  assert_true (auth_challenge_parse (&c, "Bearer realm=\"x\\", NULL) < 0);
  assert_true (auth_challenge_parse (&c,
                                     "Basic a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1,k=1,l=1,m=1,n=1,o=1,p=1,q=1",
                                     NULL)
               < 0);
  assert_int_equal (auth_challenge_parse (&c, "BEARER REALM=\"https://r/t\", Service=s", NULL), 0);
  assert_string_equal (auth_challenge_param (&c, "service"), "s");
  auth_challenge_dispose (&c);
}

/* A resolver for the tests: names of our own, no DNS. */
static size_t
fake_resolve (const char *name, char (*addrs)[AUTH_ADDR_LEN], size_t max)
{
  static const char *const table[][2] = {
    { "registry.example.com", "93.184.216.34" }, { "evil.example", "127.0.0.1" },
    { "rebind.example", "::ffff:10.1.2.3" },    { "registry.lan", "10.1.1.1" },
    { "gitlab.example", "192.168.7.7" },        { "token.example", "8.8.4.4" },
  };
  size_t n = 0;

  for (size_t i = 0; i < sizeof table / sizeof table[0] && n < max; i++)
    if (strcmp (table[i][0], name) == 0)
      snprintf (addrs[n++], AUTH_ADDR_LEN, "%s", table[i][1]);
  return n;
}

/* go-containerregistry's validateRealmURL cases.  Deliberate differences
 * (tests/vectors/auth/README): edgefetch has no insecure registries, so an
 * http realm is always refused, even on the registry's own host:port. */
static void
realm__vectors (void **state)
{
  json_t *root = vec_json ("auth/realm-validation.json"), *c;
  size_t i, differ = 0;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *realm = json_string_value (json_object_get (c, "realm"));
    const char *host = json_string_value (json_object_get (c, "registry_host"));
    bool reject = json_is_true (json_object_get (c, "reject"));
    int rc = auth_realm_check (realm, host && *host ? host : NULL, fake_resolve, NULL);
    if (!reject && strncmp (realm, "http://", 7) == 0)
      {
        assert_true (rc < 0); /* the deliberate difference */
        differ++;
        continue;
      }
    if ((rc < 0) != reject)
      fail_msg ("realm %s (registry %s): %s", realm, host, reject ? "accepted" : "rejected");
  }
  json_decref (root);
  assert_int_equal (differ, 2);
  assert_true (auth_realm_check ("not a url", NULL, fake_resolve, NULL) < 0);
  assert_true (auth_realm_check ("ftp://auth.example/token", NULL, fake_resolve, NULL) < 0);
}

static void
realm__internal_forms_from_a_public_registry_fail (void **state)
{
  static const char *const bad[] = {
    "https://[::ffff:127.0.0.1]:5447/token", /* IPv4-mapped loopback */
    "https://[::ffff:7f00:1]/token",         /* the same, in hex */
    "https://[::127.0.0.1]/token",           /* IPv4-compatible */
    "https://[fe80::1]/token",               "https://[fd00::5]/token",
    "https://evil.example/token",            /* a name that resolves to loopback */
    "https://rebind.example/token",          /* a name that resolves to a mapped private address */
    "https://localhost:5447/token",          "https://169.254.169.254/latest/meta-data",
    "https://0.0.0.0/token",                 "https://100.64.0.1/token",
    NULL,
  };

  (void) state;
  for (const char *const *r = bad; *r; r++)
    if (auth_realm_check (*r, "registry.example.com", fake_resolve, NULL) == 0)
      fail_msg ("realm %s accepted for a public registry", *r);
  /* ...and a public registry's public realm is fine */
  assert_int_equal (auth_realm_check ("https://token.example/token", "registry.example.com", fake_resolve, NULL), 0);
}

static void
realm__own_host_other_port_and_inside_registry_pass (void **state)
{
  (void) state;
  /* this testbed's registry on :5446 with its token server on :5447 */
  assert_int_equal (auth_realm_check ("https://127.0.0.1:5447/token", "127.0.0.1:5446", fake_resolve, NULL), 0);
  assert_int_equal (auth_realm_check ("https://[::1]:5447/token", "[::1]:5446", fake_resolve, NULL), 0);
  /* GitLab: the registry on :5050, its token endpoint on :443 of the same host */
  assert_int_equal (auth_realm_check ("https://gitlab.example/jwt/auth", "gitlab.example:5050", fake_resolve, NULL),
                    0);
  /* an on-site registry (by name or address) with its token server beside it */
  assert_int_equal (auth_realm_check ("https://localhost:9000/token", "127.0.0.1:5000", fake_resolve, NULL), 0);
  assert_int_equal (auth_realm_check ("https://10.0.0.5/token", "registry.lan:5000", fake_resolve, NULL), 0);
  assert_int_equal (auth_realm_check ("https://[::ffff:10.0.0.5]/token", "192.168.1.10:5000", fake_resolve, NULL),
                    0);
  /* still https only */
  assert_true (auth_realm_check ("http://127.0.0.1:5447/token", "127.0.0.1:5446", fake_resolve, NULL) < 0);
}

static void
token__vectors (void **state)
{
  json_t *root = vec_json ("auth/token-responses.json"), *c;
  size_t i;

  (void) state;
  json_array_foreach (json_object_get (root, "cases"), i, c)
  {
    const char *id = json_string_value (json_object_get (c, "id"));
    const char *body = json_string_value (json_object_get (c, "body"));
    json_t *expect = json_object_get (c, "expect"), *v;
    struct auth_token t;
    int rc = auth_token_parse (&t, body, strlen (body), NULL);

    if (json_object_get (expect, "error"))
      {
        if (rc == 0)
          fail_msg ("%s: accepted", id);
        continue;
      }
    if (rc < 0)
      fail_msg ("%s: rejected", id);
    if ((v = json_object_get (expect, "token")) != NULL)
      assert_string_equal (t.token, json_string_value (v));
    if ((v = json_object_get (expect, "access_token")) != NULL)
      assert_string_equal (t.token, json_string_value (v));
    if ((v = json_object_get (expect, "token_prefix")) != NULL)
      assert_memory_equal (t.token, json_string_value (v), json_string_length (v));
    if ((v = json_object_get (expect, "refresh_token")) != NULL)
      assert_string_equal (t.refresh_token, json_string_value (v));
    if (json_is_integer (v = json_object_get (expect, "expires_in")))
      assert_int_equal (t.expires_in, json_integer_value (v));
    else if (json_is_string (v))
      assert_int_equal (t.expires_in, 60); /* "default 60" */
    assert_true (t.expires_in >= 60);
    auth_token_dispose (&t);
  }
  json_decref (root);
}

static void
token__hostile_fails (void **state)
{
  struct auth_token t;
  static const char *bad[] = {
    "", "[]", "null", "{\"token\": 5}", "{\"token\": \"\"}", "{\"access_token\": null}", "{\"token\": \"a\\u0000b\"}",
    "{\"token\": \"a\", \"token\": \"b\"}", "{\"token\": \"a\"", NULL,
  };

  (void) state;
  for (const char **p = bad; *p; p++)
    if (auth_token_parse (&t, *p, strlen (*p), NULL) == 0)
      fail_msg ("accepted token body %s", *p);
  assert_int_equal (auth_token_parse (&t, "{\"token\":\"x\",\"expires_in\":10}", 29, NULL), 0);
  assert_int_equal (t.expires_in, 60);
  auth_token_dispose (&t);
}

/* expires_in near INT64_MAX: taken as a day, so that no arithmetic on it
 * overflows (UBSan would abort this test otherwise). */
static void
token__expires_in_int64_max_is_a_day (void **state)
{
  static const char body[] = "{\"token\":\"x\",\"expires_in\":9223372036854775807}";
  struct auth_token t;

  (void) state;
  assert_int_equal (auth_token_parse (&t, body, strlen (body), NULL), 0);
  assert_int_equal (t.expires_in, AUTH_TOKEN_LIFE_MAX);
  assert_true ((t.expires_in - 5) * 1000 > 0);
  auth_token_dispose (&t);
}

static int
lookup (const char *file, const char *host, struct auth_creds *out)
{
  cleanup_free char *rel = xasprintf ("auth/docker-config/%s", file);
  size_t n;
  cleanup_free char *text = vec_read (rel, &n);
  return auth_config_lookup (out, text, n, host, NULL);
}

static void
config__containers_image_lookups (void **state)
{
  json_t *root = vec_json ("auth/docker-config/lookups.json"), *c;
  size_t i, checked = 0;

  (void) state;
  json_array_foreach (json_object_get (json_object_get (root, "containers_image"), "cases"), i, c)
  {
    char file[128];
    const char *f = json_string_value (json_array_get (c, 0));
    const char *host = json_string_value (json_array_get (c, 1));
    json_t *user = json_array_get (c, 2), *pass = json_array_get (c, 3);
    struct auth_creds cr;
    int rc;

    snprintf (file, sizeof file, "%.*s", (int) strcspn (f, " "), f);
    if (strcmp (file, "ci-config.json") == 0 || *host == '\0')
      continue; /* a credential helper (tested below) / no host at all */
    rc = lookup (file, host, &cr);
    if (strcmp (file, "ci-example_identitytoken.json") == 0)
      {
        /* an identity token is a refresh token: no username, the token as secret */
        assert_int_equal (rc, 1);
        assert_string_equal (cr.username, "");
        assert_string_equal (cr.secret, "some very long identity token");
      }
    else if (json_is_null (user))
      assert_int_equal (rc, 0);
    else
      {
        if (rc != 1)
          fail_msg ("%s %s: no credentials", file, host);
        assert_string_equal (cr.username, json_string_value (user));
        assert_string_equal (cr.secret, json_string_value (pass));
      }
    auth_creds_dispose (&cr);
    checked++;
  }
  assert_true (checked >= 18);
  json_decref (root);
}

static void
config__docker_cli_lookups (void **state)
{
  static const char *files[] = { "cli-new-format.json", "cli-with-email.json", "cli-psformat.json",
                                 "cli-credhelpers.json", NULL };
  struct auth_creds cr;

  (void) state;
  for (const char **f = files; *f; f++)
    {
      assert_int_equal (lookup (*f, "docker.io", &cr), 1);
      assert_string_equal (cr.username, "joejoe");
      assert_string_equal (cr.secret, "hello");
      auth_creds_dispose (&cr);
    }
}

static void
config__credential_helpers (void **state)
{
  char dir[] = "/tmp/ef-helper-XXXXXX";
  cleanup_free char *path = NULL, *oldpath = xstrdup (getenv ("PATH") ? getenv ("PATH") : "/usr/bin:/bin");
  cleanup_free char *newpath = NULL;
  struct auth_creds cr;
  FILE *f;

  (void) state;
  assert_non_null (mkdtemp (dir));
  path = xasprintf ("%s/docker-credential-helper-registry", dir);
  f = fopen (path, "w");
  assert_non_null (f);
  fputs ("#!/bin/sh\nread -r s\n[ \"$1\" = get ] && [ \"$s\" = registry-no-creds.com ] || "
         "{ echo 'credentials not found in native keychain'; exit 1; }\n"
         "echo '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"idtok\"}'\n",
         f);
  fclose (f);
  chmod (path, 0755);
  newpath = xasprintf ("%s:%s", dir, oldpath);
  setenv ("PATH", newpath, 1);

  /* credHelpers names the helper; "<token>" means an identity token */
  assert_int_equal (lookup ("ci-config.json", "registry-no-creds.com", &cr), 1);
  assert_string_equal (cr.username, "");
  assert_string_equal (cr.secret, "idtok");
  auth_creds_dispose (&cr);
  /* the helper says not found: no credentials, no error */
  {
    const char *cfg = "{\"credsStore\":\"helper-registry\"}";
    assert_int_equal (auth_config_lookup (&cr, cfg, strlen (cfg), "other.example", NULL), 0);
  }
  /* a missing helper is an error, and a helper name with a slash is refused */
  {
    const char *cfg = "{\"credsStore\":\"no-such-helper\"}";
    const char *evil = "{\"credsStore\":\"../../bin/sh\"}";
    assert_true (auth_config_lookup (&cr, cfg, strlen (cfg), "x.example", NULL) < 0);
    assert_true (auth_config_lookup (&cr, evil, strlen (evil), "x.example", NULL) < 0);
  }
  setenv ("PATH", oldpath, 1);
  unlink (path);
  rmdir (dir);
}

/* A helper script in a temp dir put first on PATH. */
static char *
install_helper (char *dir, const char *name, const char *body, char **oldpath)
{
  char *path;
  FILE *f;

  assert_non_null (mkdtemp (dir));
  path = xasprintf ("%s/docker-credential-%s", dir, name);
  f = fopen (path, "w");
  assert_non_null (f);
  fputs (body, f);
  fclose (f);
  chmod (path, 0755);
  *oldpath = xstrdup (getenv ("PATH") ? getenv ("PATH") : "/usr/bin:/bin");
  {
    cleanup_free char *np = xasprintf ("%s:%s", dir, *oldpath);
    setenv ("PATH", np, 1);
  }
  return path;
}

static void
helper__that_hangs_fails_in_time_naming_it (void **state)
{
  char dir[] = "/tmp/ef-helper-XXXXXX";
  cleanup_free char *oldpath = NULL;
  cleanup_free char *path = install_helper (dir, "hang", "#!/bin/sh\nexec sleep 3600\n", &oldpath);
  static const char cfg[] = "{\"credsStore\":\"hang\"}";
  struct auth_creds cr;
  ef_err *err = NULL;
  int64_t t0 = ef_now_ms ();

  (void) state;
  assert_true (auth_config_lookup (&cr, cfg, strlen (cfg), "x.example", &err) < 0);
  assert_true (ef_now_ms () - t0 < 15000);
  assert_non_null (strstr (ef_err_msg (err), "docker-credential-hang"));
  assert_non_null (strstr (ef_err_msg (err), "no answer within"));
  ef_err_free (err);
  setenv ("PATH", oldpath, 1);
  unlink (path);
  rmdir (dir);
}

static void
helper__that_prints_a_megabyte_fails_naming_it (void **state)
{
  char dir[] = "/tmp/ef-helper-XXXXXX";
  cleanup_free char *oldpath = NULL;
  cleanup_free char *path
      = install_helper (dir, "chatty", "#!/bin/sh\nhead -c 1048576 /dev/zero | tr '\\0' x\n", &oldpath);
  static const char cfg[] = "{\"credsStore\":\"chatty\"}";
  struct auth_creds cr;
  ef_err *err = NULL;

  (void) state;
  assert_true (auth_config_lookup (&cr, cfg, strlen (cfg), "x.example", &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "docker-credential-chatty"));
  assert_non_null (strstr (ef_err_msg (err), "more than 64 KiB"));
  ef_err_free (err);
  setenv ("PATH", oldpath, 1);
  unlink (path);
  rmdir (dir);
}

static void
config__hostile_fails (void **state)
{
  static const char *bad[] = {
    "", "[]", "{\"auths\":{\"h\":{\"auth\":\"!!!\"}}}", "{\"auths\":{\"h\":{\"auth\":\"bm9jb2xvbg==\"}}}",
    "{\"auths\":{\"h\":{\"auth\":\"YQ\"}}}", NULL,
  };
  struct auth_creds cr;

  (void) state;
  for (const char **p = bad; *p; p++)
    if (auth_config_lookup (&cr, *p, strlen (*p), "h", NULL) >= 0)
      fail_msg ("accepted config %s", *p);
  /* wrong types are ignored, not crashed on */
  assert_int_equal (auth_config_lookup (&cr, "{\"auths\":{\"h\":5}}", 17, "h", NULL), 0);
  assert_int_equal (auth_config_lookup (&cr, "{\"auths\":[1]}", 13, "h", NULL), 0);
}

/* dockauths for Docker Hub match Docker Hub's names, exactly. */
static void
registry__docker_hub_names_match_exactly (void **state)
{
  (void) state;
  assert_true (auth_registry_same ("docker.io", "docker.io"));
  assert_true (auth_registry_same ("index.docker.io", "docker.io"));
  assert_true (auth_registry_same ("registry-1.docker.io", "docker.io"));
  assert_true (auth_registry_same ("https://index.docker.io/v1/", "docker.io"));
  assert_true (auth_registry_same ("Registry.Example:5000", "registry.example:5000"));
  assert_false (auth_registry_same ("docker.io.evil.example", "docker.io"));
  assert_false (auth_registry_same ("notdocker.io", "docker.io"));
  assert_false (auth_registry_same ("evil.example/docker.io", "docker.io"));
  assert_false (auth_registry_same ("docker.io", "quay.io"));
  assert_false (auth_registry_same ("registry.example:5000", "registry.example"));
}

static void
creds__split_on_first_colon (void **state)
{
  struct auth_creds cr;

  (void) state;
  assert_int_equal (auth_creds_from_string (&cr, "user:pa:ss", NULL), 0);
  assert_string_equal (cr.username, "user");
  assert_string_equal (cr.secret, "pa:ss");
  auth_creds_dispose (&cr);
  assert_true (auth_creds_from_string (&cr, "nocolon", NULL) < 0);
  assert_true (auth_creds_from_string (&cr, ":pass", NULL) < 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (challenge__vectors),
    cmocka_unit_test (challenge__hostile_fails),
    cmocka_unit_test (realm__vectors),
    cmocka_unit_test (realm__internal_forms_from_a_public_registry_fail),
    cmocka_unit_test (realm__own_host_other_port_and_inside_registry_pass),
    cmocka_unit_test (token__vectors),
    cmocka_unit_test (token__hostile_fails),
    cmocka_unit_test (token__expires_in_int64_max_is_a_day),
    cmocka_unit_test (config__containers_image_lookups),
    cmocka_unit_test (config__docker_cli_lookups),
    cmocka_unit_test (config__credential_helpers),
    cmocka_unit_test (helper__that_hangs_fails_in_time_naming_it),
    cmocka_unit_test (helper__that_prints_a_megabyte_fails_naming_it),
    cmocka_unit_test (config__hostile_fails),
    cmocka_unit_test (creds__split_on_first_colon),
    cmocka_unit_test (registry__docker_hub_names_match_exactly),
  };
  return cmocka_run_group_tests_name ("auth", tests, NULL, NULL);
}
