/* test_common.c: what every module shares: escaped text, bounded JSON,
 * files replaced atomically, helpers bounded in time and output. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/json.h"
#include "../../common/spawn.h"
#include "../../common/text.h"
#include "vectors.h"

static void
escape__control_bytes_and_bad_utf8 (void **state)
{
  cleanup_free char *a = ef_escape ("a\x1b[31mb\x07" "c\nd\x7f", 64);
  cleanup_free char *b = ef_escape ("caf\xc3\xa9 \xff\xfe \xc0\xaf", 64);
  cleanup_free char *c = NULL;

  (void) state;
  assert_string_equal (a, "a\\x1b[31mb\\x07c\\x0ad\\x7f");
  assert_string_equal (b, "caf\xc3\xa9 \\xff\\xfe \\xc0\\xaf"); /* UTF-8 kept, overlong and stray bytes not */
  {
    char big[5000];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    c = ef_escape (big, EF_TEXT_MAX);
  }
  assert_int_equal (strlen (c), EF_TEXT_MAX);
  assert_string_equal (c + EF_TEXT_MAX - 3, "...");
}

static void
err__messages_are_one_bounded_line (void **state)
{
  ef_err *err = NULL;
  char big[3000];

  (void) state;
  memset (big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ef_err_set (&err, EF_NET, "registry said \x1b]0;pwned\x07 %s", big);
  assert_null (strchr (ef_err_msg (err), '\x1b'));
  assert_true (strlen (ef_err_msg (err)) <= EF_TEXT_MAX);
  ef_err_wrap (&err, "pull x\ny");
  assert_null (strchr (ef_err_msg (err), '\n'));
  assert_int_equal (ef_err_code (err), EF_NET);
  ef_err_free (err);
}

static void
json__four_mib_of_zeros_is_refused_within_budget (void **state)
{
  size_t n = (4u << 20) / 2;
  cleanup_free char *text = xmalloc (2 * n + 2);
  const char *why = NULL;
  size_t len;
  cleanup_free char *man = vec_read ("manifests/containers-image/v2s2.manifest.json", &len);
  json_t *j;

  (void) state;
  text[0] = '[';
  for (size_t i = 0; i < n; i++)
    memcpy (text + 1 + 2 * i, "0,", 2);
  text[2 * n] = ']';
  text[2 * n + 1] = '\0';
  assert_null (ef_json_parse (text, 2 * n + 1, EF_JSON_BUDGET, &why));
  assert_non_null (strstr (why, "too complex"));
  /* a real manifest is well inside the budget, and duplicates are refused */
  j = ef_json_parse (man, len, EF_JSON_BUDGET, NULL);
  assert_non_null (j);
  json_decref (j);
  assert_null (ef_json_parse ("{\"a\":1,\"a\":2}", 13, EF_JSON_BUDGET, &why));
  assert_string_equal (why, "is not valid JSON");
}

static void
atomic__a_symlink_at_the_name_is_replaced_not_followed (void **state)
{
  char dir[] = "/tmp/ef-atomic-XXXXXX";
  cleanup_free char *target = NULL, *path = NULL;
  cleanup_free char *back = NULL;
  struct stat st;
  size_t n;

  (void) state;
  assert_non_null (mkdtemp (dir));
  target = xasprintf ("%s/outside", dir);
  path = xasprintf ("%s/index.json", dir);
  assert_int_equal (ef_atomic_write (target, "keep", 4, 0644, NULL), 0);
  assert_int_equal (symlink (target, path), 0);
  assert_int_equal (ef_atomic_write (path, "new", 3, 0644, NULL), 0);
  assert_int_equal (lstat (path, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  assert_int_equal (ef_read_file (target, 100, &back, &n), 0);
  assert_string_equal (back, "keep");
  unlink (path);
  unlink (target);
  assert_int_equal (rmdir (dir), 0); /* no temporary left behind */
}

static void
spawn__a_hanging_child_is_killed_at_its_time (void **state)
{
  const char *argv[] = { "sleep", "30", NULL };
  struct ef_spawn sp = { argv, -1, NULL, false, 1024, 300 };
  struct ef_spawn_result r;
  int64_t t0 = ef_now_ms ();

  (void) state;
  assert_int_equal (ef_spawn_run (&sp, &r, NULL), 0);
  assert_int_equal (r.end, EF_SPAWN_TIMEOUT);
  assert_true (ef_now_ms () - t0 < 5000);
  ef_spawn_result_dispose (&r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (escape__control_bytes_and_bad_utf8),
    cmocka_unit_test (err__messages_are_one_bounded_line),
    cmocka_unit_test (json__four_mib_of_zeros_is_refused_within_budget),
    cmocka_unit_test (atomic__a_symlink_at_the_name_is_replaced_not_followed),
    cmocka_unit_test (spawn__a_hanging_child_is_killed_at_its_time),
  };
  return cmocka_run_group_tests_name ("common", tests, NULL, NULL);
}
