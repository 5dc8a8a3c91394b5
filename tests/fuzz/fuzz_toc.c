/* Tables of contents (registry/transfer/toc.c, estargz.c): the input as a
 * zstd:chunked TOC's JSON (compressed here first, so the walk over
 * entries is what is fuzzed), as a compressed frame, as an eStargz TOC's
 * JSON, and its tail as either footer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "../../registry/transfer/toc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct reg_toc_pos pos = { 0 };
  reg_toc *t = NULL;
  size_t cap = ZSTD_compressBound (size);
  void *frame = malloc (cap ? cap : 1);
  size_t n = ZSTD_compress (frame, cap, data, size, 1);
  const int64_t blob = 1 << 20;

  if (!ZSTD_isError (n) && size > 0)
    {
      pos.offset = blob - (int64_t) n;
      pos.length = (int64_t) n;
      pos.ulength = (int64_t) size;
      if (reg_toc_parse (&t, frame, n, &pos, blob, NULL) == 0)
        {
          for (size_t i = 0; i < reg_toc_count (t); i++)
            {
              const struct reg_toc_chunk *c = reg_toc_chunk (t, i);
              if (c->offset <= 0 || c->end <= c->offset || c->end > pos.offset
                  || (i > 0 && c->offset < reg_toc_chunk (t, i - 1)->end))
                abort ();
            }
          reg_toc_free (t);
        }
    }
  free (frame);
  if (size > 0)
    {
      pos.offset = 0;
      pos.length = (int64_t) size;
      pos.ulength = (int64_t) size * 4 + 1;
      if (reg_toc_parse (&t, data, size, &pos, (int64_t) size, NULL) == 0)
        reg_toc_free (t);
    }
  if (reg_toc_footer (data, size, (int64_t) size + 100, &pos, NULL) == 0
      && (pos.offset < 0 || pos.length <= 0 || pos.offset + pos.length > (int64_t) size + 100))
    abort ();
  if (reg_estargz_walk (&t, (const char *) data, size, blob, NULL) == 0)
    {
      for (size_t i = 0; i < reg_toc_count (t); i++)
        {
          const struct reg_toc_chunk *c = reg_toc_chunk (t, i);
          if (c->end <= c->offset || c->end > blob || (i > 0 && c->offset < reg_toc_chunk (t, i - 1)->end))
            abort ();
        }
      reg_toc_free (t);
    }
  {
    int64_t off;
    size_t footer;
    if (reg_estargz_footer (data, size, (int64_t) size + 100, &off, &footer, NULL) == 0
        && (off <= 0 || off >= (int64_t) size + 100 - (int64_t) footer))
      abort ();
  }
  return 0;
}
