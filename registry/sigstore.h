/* sigstore.h: find an image's cosign signatures in its registry (the
 * `sha256-<hex>.sig` tag) and check them with a key. */
#ifndef EF_SIGSTORE_H
#define EF_SIGSTORE_H

#include "../verify/cosign.h"
#include "client.h"

/* At least one signature on the tag must verify with key, name digest,
 * and name ref's repository (docker-reference normalised as docker does,
 * the tag ignored).  Anything else is EF_VERIFY with the reason. */
int reg_cosign_check (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest,
                      const vfy_cosign_key *key, ef_err **err);

#endif
