/* sigstore.h: find an image's cosign signatures in its registry and
 * check them with a key: the legacy `sha256-<hex>.sig` tag, and cosign
 * v3's sigstore bundles stored as OCI referrers (the referrers API, or
 * the `sha256-<hex>` tag where there is none). */
#ifndef EF_SIGSTORE_H
#define EF_SIGSTORE_H

#include "../verify/cosign.h"
#include "remote/client.h"
#include "store/store.h"

/* At least one signature must verify with key and name digest; a legacy
 * one must also name ref's repository (docker-reference normalised as
 * docker does, the tag ignored).  Anything else is EF_VERIFY with the
 * reason: what was wrong with the signature found, or that none was. */
int reg_cosign_check (reg_client *c, reg_store *s, const struct reg_ref *ref, const char *digest,
                      const vfy_cosign_key *key, ef_err **err);

#endif
