/* pull.h: resolve a reference to one verified image in the store. */
#ifndef EF_PULL_H
#define EF_PULL_H

#include "../verify/cosign.h"
#include "transfer/blobs.h"
#include "remote/client.h"

struct reg_pull_result
{
  char *reference;       /* canonical, as asked */
  char *index_digest;    /* when the reference named an index, else NULL */
  char *manifest_digest; /* the image manifest */
  char *media_type;      /* of the image manifest */
  char *config_digest;   /* the image ID */
  size_t nlayers;
  char **layer_digests;
  int64_t *layer_sizes;
  char **layer_types;
  char **layer_sources;  /* the host each layer came from; NULL: in the store already */
  struct reg_fetch_stats *layer_stats; /* per layer: bytes fetched, and reused from the store */
  char *config_source;
  char *manifest_source; /* the host that answered for the image manifest */
  int64_t total_size;    /* config + layers */
  struct reg_fetch_stats stats;
};

struct reg_pull_opts
{
  const struct reg_platform *platform;
  const vfy_cosign_key *cosign_key; /* or NULL */
  reg_progress_fn progress;
  void *payload;
  reg_stall_fn stalled; /* or NULL; the same payload */
  /* called once the manifests are in the store and the blobs are known,
   * before they are fetched (a runtime may start pulling from the store
   * then); true: something takes the blobs as they arrive, so they come
   * in the image's order, one after the other (blobs.h, in_order) */
  bool (*resolved) (void *payload, const struct reg_pull_result *r);
  void *resolved_payload;
  /* layers dropped after a handoff (the runtime holds them) are not
   * fetched again: for a pull that hands over to that runtime only */
  bool skip_dropped;
};

/* Fetch manifest (choosing the platform from an index), config and layers
 * into the store, checking every digest on the way.  With a cosign key,
 * the digest the reference resolves to (the index, for a multi-arch image)
 * must carry a valid cosign signature before anything else is fetched. */
int reg_pull (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct reg_pull_opts *o,
              struct reg_pull_result **out, ef_err **err);
void reg_pull_result_free (struct reg_pull_result *r);
/* A copy of what r names (digests, sizes, types; not its stats). */
struct reg_pull_result *reg_pull_result_dup (const struct reg_pull_result *r);

#endif
