/* blobs.h: the transfer engine.  Blobs are fetched into the store in
 * parallel (libcurl multi, one HTTP/1.1 connection each, so that one lost
 * packet stalls one blob), hashed as they arrive, resumed with Range from
 * the bytes on disk, retried by the client's policy, and committed only
 * when size and digest match. */
#ifndef EF_BLOBS_H
#define EF_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/err.h"
#include "../remote/client.h"
#include "../manifest.h"
#include "../ref.h"
#include "../store/store.h"

typedef void (*reg_progress_fn) (void *payload, int64_t done, int64_t total);
/* No byte has come for REG_STALL_NOTE_MS while blobs wait (the link is
 * down: transfers stall or wait to retry, their bytes kept): called once
 * with waiting true, and once with false when bytes come again. */
typedef void (*reg_stall_fn) (void *payload, bool waiting);
#define REG_STALL_NOTE_MS 3000

struct reg_fetch_stats
{
  int64_t bytes_fetched; /* over the wire, including retries */
  int64_t bytes_reused;  /* already in the store, or resumed from disk */
};

/* What became of one blob. */
struct reg_blob_result
{
  char *source; /* the host it came from; NULL when nothing was fetched (caller frees) */
  struct reg_fetch_stats stats;
};

struct reg_blobs_opts
{
  reg_progress_fn progress; /* or NULL */
  void *payload;
  reg_stall_fn stalled; /* or NULL; the same payload */
  /* the blobs one after the other, in the order given, rather than the
   * client's jobs at once: a runtime that takes the layers as they arrive
   * unpacks each while the next one comes, as it does from a registry.
   * Where a blob comes in pieces, the next one starts as soon as every
   * piece of the one before is under way. */
  bool in_order;
};

/* Fetch the n blobs of ref's repository into s, up to the client's jobs
 * at once (o may be NULL), from the first of its routes (routes.h) that
 * serves each, within the client's rate cap and download window.  Blobs already in
 * the store are skipped; partial ones resume.  A resumed blob whose
 * digest does not match starts over from byte 0, once; one that a
 * mirror got wrong starts over from the next host.  per, when not NULL,
 * has n slots: what became of each blob. */
int reg_blobs_fetch (reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
                     reg_store *s, const struct reg_blobs_opts *o, struct reg_fetch_stats *stats,
                     struct reg_blob_result *per, ef_err **err);

#endif
