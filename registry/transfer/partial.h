/* partial.h: partial pulls of zstd:chunked layers.  The new layer's table
 * of contents (toc.h) is fetched with a Range request and checked against
 * its annotated digest; every chunk whose digest and compressed length a
 * zstd:chunked layer in the store also holds is copied from there, the
 * rest is fetched in ranges (merged, at most REG_PARTIAL_RANGES of them,
 * one per request), and the layer is rebuilt beside the store.  It enters
 * the store only when it hashes to the layer's digest, exactly as a whole
 * download must; otherwise it is dropped and the caller fetches the layer
 * whole.  A registry that does not answer Range requests as asked costs
 * at most the first bytes of one response (the TOC's). */
#ifndef EF_PARTIAL_H
#define EF_PARTIAL_H

#include <stdbool.h>

#include "../../common/err.h"
#include "blobs.h"
#include "../remote/client.h"
#include "../manifest.h"
#include "../store/store.h"

#define REG_PARTIAL_RANGES 64

/* Partial pulls into store s: the chunks its layers hold are looked for
 * once, when a layer first needs them. */
typedef struct reg_partial reg_partial;
reg_partial *reg_partial_new (reg_store *s);
void reg_partial_free (reg_partial *p);
/* d of ref into the store.  0: it is in the store, st says what it cost;
 * EF_NOTFOUND: a partial pull does not apply (no TOC, nothing in the
 * store to reuse, ranges refused): fetch it whole; any other error: the
 * rebuild failed, nothing was kept, fetch it whole. */
int reg_partial_fetch (reg_partial *p, reg_client *c, const struct reg_ref *ref, const struct reg_desc *d,
                       struct reg_fetch_stats *st, ef_err **err);

/* Does the store's blob digest carry a table of contents (a zstd:chunked
 * or eStargz layer): is it a base for partial pulls? */
bool reg_partial_base (reg_store *s, const char *digest);

#endif
