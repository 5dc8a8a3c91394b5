/* test_rate.c: the rate cap's syntax, curl's --limit-rate. */
#include "../../registry/transfer/rate.h"
#include "vectors.h"

static void
rate__curl_suffixes_are_powers_of_1024 (void **state)
{
  int64_t r = 0;

  (void) state;
  assert_int_equal (reg_rate_parse ("4M", &r, NULL), 0);
  assert_int_equal (r, 4194304);
  assert_int_equal (reg_rate_parse ("500k", &r, NULL), 0);
  assert_int_equal (r, 512000);
  assert_int_equal (reg_rate_parse ("1G", &r, NULL), 0);
  assert_int_equal (r, INT64_C (1) << 30);
  assert_int_equal (reg_rate_parse ("2048", &r, NULL), 0);
  assert_int_equal (r, 2048);
}

static void
rate__nonsense_zero_and_overflow_are_refused (void **state)
{
  static const char *bad[] = { "", "M", "0", "100", "4MB", "-1M", "1.5M", " 4M", "99999999999999999999", "1048577G" };
  int64_t r = 7;

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      ef_err *err = NULL;
      if (reg_rate_parse (bad[i], &r, &err) != -EF_USAGE)
        fail_msg ("'%s' was taken", bad[i]);
      assert_non_null (strstr (ef_err_msg (err), "want bytes per second"));
      ef_err_free (err);
    }
  assert_int_equal (r, 7);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (rate__curl_suffixes_are_powers_of_1024),
    cmocka_unit_test (rate__nonsense_zero_and_overflow_are_refused),
  };
  return cmocka_run_group_tests_name ("rate", tests, NULL, NULL);
}
