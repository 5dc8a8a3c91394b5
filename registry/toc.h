/* toc.h: the table of contents of a zstd:chunked layer, the part of it a
 * partial pull needs: where each chunk of file content lies in the
 * compressed blob, and the digest of its uncompressed bytes.
 *
 * A zstd:chunked layer is a tar compressed as many zstd frames (a file's
 * content, or a chunk of it, in frames of its own); its TOC is one more
 * zstd frame inside a skippable frame near the end, located by the
 * layer's annotations (io.github.containers.zstd-chunked.manifest-position,
 * or the io.containers.* names older producers such as skopeo 1.9 write)
 * and by a footer, the blob's last skippable frame, whose magic is
 * "GNUlInUx" (48 bytes; 72 with the tar-split position of newer ones).
 * Every offset is checked against the blob's size; chunks must be in
 * order and must not overlap. */
#ifndef EF_TOC_H
#define EF_TOC_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "manifest.h"

#define REG_TOC_MAX (16u << 20)      /* compressed TOC */
#define REG_TOC_JSON_MAX (64u << 20) /* uncompressed TOC */

struct reg_toc_chunk
{
  int64_t offset, end; /* [offset, end) in the compressed blob */
  char digest[72];     /* sha256 of the uncompressed chunk */
};

struct reg_toc_pos
{
  int64_t offset, length, ulength; /* of the compressed TOC frame */
  char checksum[72];               /* sha256 of those length bytes; "" from a footer */
};

typedef struct reg_toc reg_toc;

/* The TOC position a layer's annotations give; EF_NOTFOUND when it has
 * none (not zstd:chunked), EF_VERIFY when they are malformed or point
 * outside its size bytes. */
int reg_toc_position (const struct reg_desc *d, struct reg_toc_pos *pos, ef_err **err);
/* The position a footer (the last 48 or 72 bytes of a blob of size bytes) gives. */
int reg_toc_footer (const unsigned char *tail, size_t len, int64_t size, struct reg_toc_pos *pos, ef_err **err);
/* Parse the compressed TOC frame (len bytes, checked against pos) of a
 * blob of size bytes. */
int reg_toc_parse (reg_toc **out, const void *frame, size_t len, const struct reg_toc_pos *pos, int64_t size,
                   ef_err **err);
size_t reg_toc_count (const reg_toc *t);
const struct reg_toc_chunk *reg_toc_chunk (const reg_toc *t, size_t i);
void reg_toc_free (reg_toc *t);

#endif
