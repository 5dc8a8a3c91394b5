/* rate.c: see rate.h. */
#include <string.h>

#include "../../common/text.h"
#include "../../common/util.h"
#include "rate.h"

#define RATE_MIN 1024
#define RATE_MAX (INT64_C (1) << 40)

int
reg_rate_parse (const char *s, int64_t *out, ef_err **err)
{
  size_t len = strlen (s);
  uint64_t v = 0;
  int shift = 0;
  cleanup_free char *num = NULL;

  if (len > 0 && strchr ("kKmMgG", s[len - 1]))
    {
      char u = s[len - 1];
      shift = u == 'k' || u == 'K' ? 10 : u == 'm' || u == 'M' ? 20 : 30;
      len--;
    }
  num = xstrndup (s, len);
  if (len == 0 || ef_parse_u64 (num, (uint64_t) RATE_MAX >> shift, &v) < 0 || (int64_t) (v << shift) < RATE_MIN)
    {
      cleanup_free char *e = ef_escape (s, 64);
      return ef_err_set (err, EF_USAGE, "rate '%s': want bytes per second, as 500K or 2M (at least 1K)", e);
    }
  *out = (int64_t) (v << shift);
  return 0;
}
