/* cache.h: the site cache behind `edgefetch serve` (serve.h).  What the
 * store lacks is fetched from the origin registry a request names
 * (containerd's ?ns=), and only from the origins the cache was given:
 * a manifest by digest or a tag when asked, a blob once, however many
 * clients ask for it at the same time: the first starts the fetch, and
 * every request streams the blob's ingest as it grows.  Every byte is
 * verified before it is kept (the transfer engine's rule), and the
 * served stream withholds a blob's end until it matched. */
#ifndef EF_CACHE_H
#define EF_CACHE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../common/err.h"
#include "../remote/client.h"
#include "../store/store.h"

typedef struct reg_cache reg_cache;
typedef struct reg_cache_fetch reg_cache_fetch;

/* origins: NULL-terminated registry hosts the cache may fetch from; o:
 * how it reaches them (credentials, trust, retries). */
int reg_cache_new (reg_cache **out, reg_store *s, const char *const *origins, const struct reg_client_opts *o,
                   ef_err **err);
void reg_cache_free (reg_cache *c);
/* Does the cache fetch from origin? */
bool reg_cache_serves (const reg_cache *c, const char *origin);
/* ORIGIN/NAME's manifest ref (a tag: asked of the origin each time, the
 * store's record when it cannot answer; a digest: from the store, else
 * fetched) into the store; *digest is its digest (caller frees). */
int reg_cache_manifest (reg_cache *c, const char *origin, const char *name, const char *ref, char **digest,
                        ef_err **err);
/* Blob digest of ORIGIN/NAME: *size, and in *f the fetch it is arriving
 * by (NULL when the store holds it whole); release *f when done with it. */
int reg_cache_blob (reg_cache *c, const char *origin, const char *name, const char *digest, int64_t *size,
                    reg_cache_fetch **f, ef_err **err);
/* Non-zero while the fetch runs (what reg_blob_reader_follow watches). */
const volatile sig_atomic_t *reg_cache_fetch_arriving (reg_cache_fetch *f);
void reg_cache_fetch_release (reg_cache_fetch *f);
/* Blob bytes fetched from origins so far. */
int64_t reg_cache_origin_bytes (const reg_cache *c);

#endif
