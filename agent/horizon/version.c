/* version.c: Horizon's architecture names and version ranges (horizon.h). */
#include <stdio.h>
#include <string.h>

#include "horizon.h"

const char *
hzn_arch_synonym (const char *a)
{
  if (strcmp (a, "x86_64") == 0)
    return "amd64";
  if (strcmp (a, "aarch64") == 0)
    return "arm64";
  if (strcmp (a, "armhf") == 0 || strncmp (a, "armv", 4) == 0)
    return "arm";
  return a;
}

/* One dotted component, saturating rather than overflowing. */
static unsigned long
component (const char **p)
{
  unsigned long x = 0;

  while (**p >= '0' && **p <= '9')
    {
      x = x > 99999999ul ? x : x * 10 + (unsigned long) (**p - '0');
      (*p)++;
    }
  return x;
}

int
hzn_version_cmp (const char *a, const char *b)
{
  while (*a || *b)
    {
      unsigned long x = component (&a), y = component (&b);
      if (x != y)
        return x < y ? -1 : 1;
      if (*a == '.')
        a++;
      if (*b == '.')
        b++;
      if ((*a && !(*a >= '0' && *a <= '9')) || (*b && !(*b >= '0' && *b <= '9')))
        return strcmp (a, b) < 0 ? -1 : strcmp (a, b) > 0;
    }
  return 0;
}

bool
hzn_version_in_range (const char *v, const char *range)
{
  char lo[64], hi[64];
  const char *comma;
  size_t n;
  int c;

  if (range == NULL || *range == '\0')
    return true;
  if (*range != '[' && *range != '(')
    return hzn_version_cmp (v, range) >= 0;
  comma = strchr (range, ',');
  n = strlen (range);
  if (comma == NULL || n < 4 || (range[n - 1] != ']' && range[n - 1] != ')'))
    return false;
  snprintf (lo, sizeof lo, "%.*s", (int) (comma - range - 1), range + 1);
  snprintf (hi, sizeof hi, "%.*s", (int) (range + n - 1 - comma - 1), comma + 1);
  c = hzn_version_cmp (v, lo);
  if (c < 0 || (c == 0 && *range == '('))
    return false;
  if (strcmp (hi, "INFINITY") == 0 || hi[0] == '\0')
    return true;
  c = hzn_version_cmp (v, hi);
  return c < 0 || (c == 0 && range[n - 1] == ']');
}
