/* The record of a blob's pieces (registry/store/ranges.c): parsed for a
 * blob of 1 MiB and for the size it names; what parses is sorted,
 * disjoint and within the blob, and is written back as it was read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../registry/store/ranges.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check (const struct ranges *r, int64_t blob)
{
  for (size_t i = 0; i < r->n; i++)
    if (r->r[i][0] >= r->r[i][1] || r->r[i][1] > blob || (i > 0 && r->r[i][0] <= r->r[i - 1][1]))
      abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const int64_t sizes[] = { 1 << 20, -1 };
  struct ranges r = { 0 }, again = { 0 };

  for (size_t k = 0; k < 2; k++)
    if (ranges_parse (&r, (const char *) data, size, sizes[k], NULL) == 0)
      {
        int64_t blob = sizes[k] >= 0 ? sizes[k] : (r.n ? r.r[r.n - 1][1] : 0);
        char *text;
        check (&r, sizes[k] >= 0 ? sizes[k] : INT64_MAX);
        text = ranges_format (&r, blob);
        if (sizes[k] >= 0 && (ranges_parse (&again, text, strlen (text), blob, NULL) < 0 || again.n != r.n
                              || (r.n > 0 && memcmp (again.r, r.r, r.n * sizeof *r.r) != 0)))
          abort ();
        free (text);
      }
  ranges_dispose (&r);
  ranges_dispose (&again);
  return 0;
}
