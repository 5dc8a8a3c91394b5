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
 * "GnUlInUx" (48 bytes, older producers) or "GNUlInUx" (72, with the tar-split position).
 * Every offset is checked against the blob's size; chunks must be in
 * order and must not overlap. */
#ifndef EF_TOC_H
#define EF_TOC_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/err.h"
#include "../manifest.h"

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
/* For the eStargz reader: an empty TOC, and one more chunk at its end
 * (in order, inside [0, limit), with key as its digest). */
reg_toc *reg_toc_new (void);
int reg_toc_add (reg_toc *t, int64_t offset, int64_t end, const char *key, int64_t limit, ef_err **err);
const struct reg_toc_chunk *reg_toc_chunk (const reg_toc *t, size_t i);
void reg_toc_free (reg_toc *t);

/* eStargz (estargz.c): a gzip'd tar whose file contents (and chunks)
 * each start a gzip member, with a TOC (stargz.index.json, a tar entry
 * in a gzip member of its own) located by a footer: an empty gzip member
 * whose extra field holds its offset (51 bytes; 47 for the older stargz).
 * A member also holds the tar headers of the entries after its chunk, up
 * to the next one with content: a chunk's key is therefore the digest of
 * its chunk digest and of those entries' metadata, so that two members
 * share a key only when they hold the same bytes (the rebuild's hash
 * still decides). */
#define REG_ESTARGZ_FOOTER_MAX 51
/* The layer's annotated TOC digest (containerd.io/snapshot/stargz/toc.digest);
 * EF_NOTFOUND when it has none. */
int reg_estargz_toc_digest (const struct reg_desc *d, char digest[72], ef_err **err);
/* The TOC's offset from the last bytes of a blob of size bytes; *footer is the footer's length. */
int reg_estargz_footer (const unsigned char *tail, size_t len, int64_t size, int64_t *toc_offset, size_t *footer,
                        ef_err **err);
/* Parse the TOC member (len bytes from toc_offset; the footer excluded),
 * checked against toc_digest when it is not "". */
int reg_estargz_parse (reg_toc **out, const void *member, size_t len, const char *toc_digest, int64_t toc_offset,
                       ef_err **err);
/* The same from the TOC's JSON (stargz.index.json) itself. */
int reg_estargz_walk (reg_toc **out, const char *json, size_t n, int64_t toc_offset, ef_err **err);

#endif
