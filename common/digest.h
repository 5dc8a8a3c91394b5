/* digest.h: content digests ("sha256:<64 hex>") and streaming hashing. */
#ifndef EF_DIGEST_H
#define EF_DIGEST_H

#include <stddef.h>

#include "err.h"

#define EF_DIGEST_HEX 64                   /* hex chars of a sha256 */
#define EF_DIGEST_LEN (7 + EF_DIGEST_HEX)  /* "sha256:" + hex */

typedef struct ef_hash ef_hash;

ef_hash *ef_hash_new (void);
void ef_hash_reset (ef_hash *h);
void ef_hash_update (ef_hash *h, const void *p, size_t n);
/* Finish into "sha256:<hex>" (out holds EF_DIGEST_LEN + 1 bytes). */
void ef_hash_final (ef_hash *h, char *out);
void ef_hash_free (ef_hash *h);

/* One-shot "sha256:<hex>" of a buffer. */
void ef_digest_buf (const void *p, size_t n, char *out);

/* Check that s is a digest we can verify: "sha256:" and 64 lowercase hex.
 * Any other algorithm (sha512, blake3, ...) is refused: we never accept
 * content we cannot check.  On success copies the hex part to hex (65 bytes). */
int ef_digest_parse (const char *s, char *hex, ef_err **err);

#endif
