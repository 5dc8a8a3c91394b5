/* test_hosts.c: containerd's hosts.toml subset, read strictly.  The good
 * files are the examples of containerd's docs/hosts.md. */
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/text.h"
#include "../../registry/remote/hosts.h"
#include "vectors.h"

static reg_hosts *
parse_ok (const char *text)
{
  reg_hosts *h = NULL;
  ef_err *err = NULL;

  if (reg_hosts_parse (&h, text, strlen (text), "/etc/containerd/certs.d/r.example", &err) < 0)
    {
      char msg[1100];
      snprintf (msg, sizeof msg, "%s", ef_err_msg (err));
      ef_err_free (err);
      fail_msg ("%s", msg);
    }
  return h;
}

/* The error message of a file that must be refused. */
static char *
parse_bad (const char *text)
{
  reg_hosts *h = NULL;
  ef_err *err = NULL;
  char *msg;

  assert_int_equal (reg_hosts_parse (&h, text, strlen (text), "/d", &err), -EF_USAGE);
  assert_null (h);
  msg = xstrdup (ef_err_msg (err));
  ef_err_free (err);
  return msg;
}

static void
hosts__docs_mirror_then_server_in_file_order (void **state)
{
  reg_hosts *h = parse_ok ("server = \"https://registry-1.docker.io\"    # Exclude this to not use upstream\n"
                           "\n"
                           "[host.\"https://public-mirror.gcr.io\"]\n"
                           "  capabilities = [\"pull\"]   # Requires less trust, won't resolve tag to digest from this host\n"
                           "[host.\"https://docker-mirror.internal\"]\n"
                           "  capabilities = [\"pull\", \"resolve\"]\n"
                           "  ca = \"docker-mirror.crt\"   # Or absolute path /etc/containerd/certs.d/docker.io/docker-mirror.crt\n");
  const struct reg_endpoint *a = reg_hosts_get (h, 0), *b = reg_hosts_get (h, 1), *s = reg_hosts_get (h, 2);

  (void) state;
  assert_int_equal (reg_hosts_count (h), 3);
  assert_string_equal (a->host, "public-mirror.gcr.io");
  assert_string_equal (a->path, "/v2");
  assert_int_equal (a->caps, REG_CAP_PULL);
  assert_false (a->server);
  assert_string_equal (b->host, "docker-mirror.internal");
  assert_int_equal (b->caps, REG_CAP_PULL | REG_CAP_RESOLVE);
  assert_string_equal (b->ca[0], "/etc/containerd/certs.d/r.example/docker-mirror.crt");
  assert_null (b->ca[1]);
  assert_true (s->server);
  assert_string_equal (s->scheme, "https");
  assert_string_equal (s->host, "registry-1.docker.io");
  assert_int_equal (s->caps, REG_CAP_PULL | REG_CAP_RESOLVE | REG_CAP_PUSH);
  assert_int_equal (s->skip_verify, -1);
  reg_hosts_free (h);
}

static void
hosts__client_pairs_headers_override_path_and_skip_verify (void **state)
{
  reg_hosts *h = parse_ok ("[host.\"https://mirror.example/proxy/base/\"]\n"
                           "  override_path = true\n"
                           "  skip_verify = false\n"
                           "  client = [[\"/etc/certs/client.cert\", \"client.key\"], \"both.pem\"]\n"
                           "[host.\"https://mirror.example/proxy/base/\".header]\n"
                           "  x-custom-1 = \"custom header\"\n"
                           "  x-custom-2 = ['a', \"b\\u00e9\"]\n"
                           "[host.\"http://10.0.0.5:5000/sub\"]\n"
                           "[header]\n"
                           "  Authorization = \"Basic abc\"\n");
  const struct reg_endpoint *a = reg_hosts_get (h, 0), *b = reg_hosts_get (h, 1), *s = reg_hosts_get (h, 2);

  (void) state;
  assert_int_equal (reg_hosts_count (h), 3);
  assert_string_equal (a->path, "/proxy/base");
  assert_int_equal (a->skip_verify, 0);
  assert_string_equal (a->client[0], "/etc/certs/client.cert");
  assert_string_equal (a->client[1], "/etc/containerd/certs.d/r.example/client.key");
  assert_string_equal (a->client[2], "/etc/containerd/certs.d/r.example/both.pem");
  assert_string_equal (a->client[3], "");
  assert_null (a->client[4]);
  assert_string_equal (a->headers[0], "x-custom-1: custom header");
  assert_string_equal (a->headers[1], "x-custom-2: a, b\xc3\xa9");
  assert_null (a->headers[2]);
  assert_string_equal (b->scheme, "http");
  assert_string_equal (b->host, "10.0.0.5:5000");
  assert_string_equal (b->path, "/sub/v2");
  assert_null (s->host); /* no server: the registry itself */
  assert_string_equal (s->path, "/v2");
  assert_string_equal (s->headers[0], "Authorization: Basic abc");
  reg_hosts_free (h);
}

static void
hosts__an_empty_file_is_the_registry_alone (void **state)
{
  reg_hosts *h = parse_ok ("# nothing but a comment\n\n");

  (void) state;
  assert_int_equal (reg_hosts_count (h), 1);
  assert_true (reg_hosts_get (h, 0)->server);
  assert_null (reg_hosts_get (h, 0)->host);
  reg_hosts_free (h);
}

static void
hosts__malformed_and_unknown_are_errors_with_their_line (void **state)
{
  static const struct
  {
    const char *text, *want;
  } cases[] = {
    { "server = \"https://a\"\n\n[host.\"https://m\"]\n  dial_timeout = \"1s\"\n", "line 4: unknown key 'dial_timeout'" },
    { "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n", "line 1: unknown capability 'fetch'" },
    { "server = \"a\"\nserver = \"b\"\n", "line 2: server given twice" },
    { "[host.\"https://m\"]\n[host.\"https://m\"]\n", "line 2: [host.\"https://m\"] appears twice" },
    { "[host.\"https://m\"]\nskip_verify = 1\n", "line 2: unsupported value" },
    { "[host.\"https://m\"]\nskip_verify = \"true\"\n", "line 2: skip_verify: want true or false" },
    { "[host.\"https://m\"]\nca = \"unterminated\n", "line 2: unterminated string" },
    { "[host.\"https://m\"\n", "line 1: unterminated table name" },
    { "[registry]\n", "line 1: unknown table [registry]" },
    { "[[host]]\n", "line 1: arrays of tables are not supported" },
    { "server = \"a\" junk\n", "line 1: unexpected 'j'" },
    { "[host.\"ftp://m\"]\n", "line 1: 'ftp': only http and https hosts" },
    { "[host.\"https://u:p@m\"]\n", "line 1: a host URL may not hold user names" },
    { "[header]\n\"bad name\" = \"x\"\n", "line 2: header name 'bad name' is not an HTTP token" },
    { "[header]\nx-a = \"1\\n2\"\n", "line 2: header x-a: a value holds a line break" },
    { "capabilities = [\"pull\", [\"x\"]]\n", "line 1: capabilities: want an array of strings" },
    { "client = [[[\"a\"]]]\n", "line 1: arrays nested too deep" },
    { "ca = \"\\u0000\"\n", "line 1: escape \\u0 is not a character we accept" },
    { "host.\"x\".ca = \"a\"\n", "line 1: dotted keys are not supported" },
    { "header = { a = \"b\" }\n", "line 1: inline tables are not supported" },
    { "ca = \"\"\"x\"\"\"\n", "line 1: multi-line strings are not supported" },
    { "[host.\"https://m\"]\nclient = [[\"a\", \"b\", \"c\"]]\n", "line 1: client: a pair must be" },
  };

  (void) state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cleanup_free char *msg = parse_bad (cases[i].text);
      if (strstr (msg, cases[i].want) == NULL)
        fail_msg ("case %zu: got \"%s\", want \"%s\"", i, msg, cases[i].want);
    }
}

static void
hosts__bounded_in_size_hosts_and_items (void **state)
{
  struct ef_buf b;
  cleanup_free char *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;

  (void) state;
  ef_buf_init (&b, 1u << 20);
  for (int i = 0; i <= REG_HOSTS_MAX; i++)
    {
      char line[64];
      int n = snprintf (line, sizeof line, "[host.\"https://m%d\"]\n", i);
      ef_buf_append (&b, line, (size_t) n);
    }
  m1 = parse_bad (b.data);
  assert_non_null (strstr (m1, "more than 16 hosts"));
  b.len = 0;
  ef_buf_append (&b, "ca = [", 6);
  for (int i = 0; i < 40; i++)
    ef_buf_append (&b, "\"a\",", 4);
  ef_buf_append (&b, "]\n", 3);
  m2 = parse_bad (b.data);
  assert_non_null (strstr (m2, "more than 32 items"));
  b.len = 0;
  ef_buf_append (&b, "ca = \"", 6);
  for (int i = 0; i < 5000; i++)
    ef_buf_append (&b, "x", 1);
  ef_buf_append (&b, "\"\n", 3);
  m3 = parse_bad (b.data);
  assert_non_null (strstr (m3, "string longer than"));
  b.len = 0;
  for (int i = 0; i < 70000; i++)
    ef_buf_append (&b, "\n", 1);
  m4 = parse_bad (b.data);
  assert_non_null (strstr (m4, "larger than 64 KiB"));
  ef_buf_dispose (&b);
}

static void
hosts__found_under_containerds_port_spelling_and_default (void **state)
{
  char dir[] = "/tmp/ef-hosts-XXXXXX";
  const char *dirs[] = { dir, NULL };
  reg_hosts *h = NULL;
  cleanup_free char *p1 = NULL, *p2 = NULL, *f1 = NULL, *f2 = NULL;

  (void) state;
  assert_non_null (mkdtemp (dir));
  p1 = xasprintf ("%s/127.0.0.1_5000_", dir);
  p2 = xasprintf ("%s/_default", dir);
  f1 = xasprintf ("%s/hosts.toml", p1);
  f2 = xasprintf ("%s/hosts.toml", p2);
  assert_int_equal (mkdir (p1, 0700), 0);
  assert_int_equal (mkdir (p2, 0700), 0);
  assert_int_equal (ef_atomic_write (f1, "[host.\"https://m1\"]\n", 20, 0600, NULL), 0);
  assert_int_equal (ef_atomic_write (f2, "[host.\"https://m2\"]\nca = \"x.crt\"\n", 33, 0600, NULL), 0);
  assert_int_equal (reg_hosts_load (&h, dirs, "127.0.0.1:5000", NULL), 0);
  assert_non_null (h);
  assert_string_equal (reg_hosts_get (h, 0)->host, "m1");
  assert_string_equal (reg_hosts_path (h), f1);
  reg_hosts_free (h);
  assert_int_equal (reg_hosts_load (&h, dirs, "other.example", NULL), 0);
  assert_string_equal (reg_hosts_get (h, 0)->host, "m2");
  {
    cleanup_free char *want = xasprintf ("%s/x.crt", p2);
    assert_string_equal (reg_hosts_get (h, 0)->ca[0], want);
  }
  reg_hosts_free (h);
  unlink (f1);
  unlink (f2);
  rmdir (p1);
  rmdir (p2);
  assert_int_equal (reg_hosts_load (&h, dirs, "127.0.0.1:5000", NULL), 0);
  assert_null (h);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (hosts__docs_mirror_then_server_in_file_order),
    cmocka_unit_test (hosts__client_pairs_headers_override_path_and_skip_verify),
    cmocka_unit_test (hosts__an_empty_file_is_the_registry_alone),
    cmocka_unit_test (hosts__malformed_and_unknown_are_errors_with_their_line),
    cmocka_unit_test (hosts__bounded_in_size_hosts_and_items),
    cmocka_unit_test (hosts__found_under_containerds_port_spelling_and_default),
  };
  return cmocka_run_group_tests_name ("hosts", tests, NULL, NULL);
}
