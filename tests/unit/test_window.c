/* test_window.c: EDGEFETCH_FETCH_WINDOW, its syntax and its clock. */
#include <stdlib.h>
#include <time.h>

#include "../../agent/window.h"
#include "vectors.h"

/* 2026-11-30 HH:MM:30 in UTC, the tests' local time. */
static time_t
at (int h, int m)
{
  return (time_t) 1795996800 + h * 3600 + m * 60 + 30;
}

static void
window__spans_and_one_past_midnight (void **state)
{
  struct agent_window w;
  time_t next;

  (void) state;
  assert_int_equal (agent_window_parse (&w, "01:00-05:30,22:00-00:30", NULL), 0);
  assert_int_equal (w.n, 2);
  assert_true (agent_window_open (&w, at (1, 0), &next));
  assert_int_equal (next, at (5, 30) - 30);
  assert_false (agent_window_open (&w, at (5, 30), &next));
  assert_int_equal (next, at (22, 0) - 30);
  assert_true (agent_window_open (&w, at (23, 59), NULL));
  assert_true (agent_window_open (&w, at (0, 15), &next));
  assert_int_equal (next, at (0, 30) - 30);
  assert_false (agent_window_open (&w, at (12, 0), NULL));
}

static void
window__unset_is_always_and_whole_day_never_changes (void **state)
{
  struct agent_window w;
  time_t next = 5;

  (void) state;
  assert_int_equal (agent_window_parse (&w, "", NULL), 0);
  assert_true (agent_window_open (&w, at (3, 0), &next));
  assert_int_equal (next, 0);
  assert_int_equal (agent_window_parse (&w, "00:00-24:00", NULL), 0);
  assert_true (agent_window_open (&w, at (23, 59), &next));
  assert_int_equal (next, 0);
}

static void
window__malformed_is_refused (void **state)
{
  static const char *bad[] = { "1:00-2:00", "01:00", "01:00-01:00", "25:00-01:00", "01:60-02:00", "01:00-24:01",
                               "01:00-02:00,", "01:00-02:00;03:00-04:00", "01:00 - 02:00", "24:00-01:00",
                               "aa:bb-cc:dd" };
  struct agent_window w;

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      ef_err *err = NULL;
      if (agent_window_parse (&w, bad[i], &err) != -EF_USAGE)
        fail_msg ("'%s' was taken", bad[i]);
      assert_non_null (strstr (ef_err_msg (err), "want HH:MM-HH:MM"));
      assert_int_equal (w.n, 0);
      ef_err_free (err);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (window__spans_and_one_past_midnight),
    cmocka_unit_test (window__unset_is_always_and_whole_day_never_changes),
    cmocka_unit_test (window__malformed_is_refused),
  };
  setenv ("TZ", "UTC", 1);
  tzset ();
  return cmocka_run_group_tests_name ("window", tests, NULL, NULL);
}
