/* ranges.h: inside the store (store.h): the byte ranges of a blob that
 * are on disk, kept sorted and merged, and their record beside a blob
 * fetched in pieces, ingest/<hex>.ranges:
 *     {"size": N, "done": [[from, to], ...]}     from < to, half-open
 * A .part without a record holds its first st_size bytes; one with a
 * record holds exactly the ranges it names (the rest is holes). */
#ifndef EF_RANGES_H
#define EF_RANGES_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/err.h"

#define RANGES_FILE_MAX (1 << 20) /* bytes of a record */
#define RANGES_MAX 16384          /* ranges in one */

struct ranges
{
  int64_t (*r)[2];
  size_t n, cap;
};

void ranges_clear (struct ranges *s);
void ranges_dispose (struct ranges *s);
/* Add [from, to), merging with its neighbours. */
void ranges_add (struct ranges *s, int64_t from, int64_t to);
/* The end of the range holding byte at, or at when none does. */
int64_t ranges_end_at (const struct ranges *s, int64_t at);
int64_t ranges_total (const struct ranges *s);
/* Keep only what lies below limit. */
void ranges_clip (struct ranges *s, int64_t limit);

/* A record for a blob of size bytes (< 0: the size it says), parsed and
 * checked: sorted, disjoint, within the blob, at most RANGES_MAX ranges. */
int ranges_parse (struct ranges *s, const char *buf, size_t len, int64_t size, ef_err **err);
/* The record, as text; caller frees. */
char *ranges_format (const struct ranges *s, int64_t size);

#endif
