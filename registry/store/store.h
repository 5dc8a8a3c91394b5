/* store.h: the content-addressed blob store.
 *
 * Layout under DIR:  blobs/sha256/<hex>    verified content, read-only
 *                    ingest/<hex>.part     bytes of a blob being fetched
 *                    ingest/<hex>.ranges   which, when it came in pieces
 *                    images.json           the images held, by name (for gc)
 *                    gc.lock               shared while open, exclusive for gc
 *                    handoff-XXXXXX/       a containerd handoff's hosts dir, while it runs
 * A blob reaches blobs/ only through reg_store_put() or
 * reg_ingest_commit(), both of which check size and digest, fsync and
 * rename: nothing unverified is ever visible under blobs/.  What leaves
 * the store is hashed again unless this process verified it, and a blob
 * found damaged is removed, to be fetched anew.
 * store.c holds the blobs, ingest.c the blobs being fetched (ranges.c
 * the record of their pieces, writer.c the thread that writes them),
 * images.c the records and gc, recover.c what a crash left. */
#ifndef EF_STORE_H
#define EF_STORE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/err.h"

typedef struct reg_store reg_store;

int reg_store_open (reg_store **out, const char *dir, ef_err **err);
void reg_store_free (reg_store *s);
const char *reg_store_dir (const reg_store *s);
/* Path of a blob (whether or not present); caller frees. */
char *reg_store_blob_path (const reg_store *s, const char *digest);
/* Present with this size (size < 0: any size)? */
bool reg_store_has (const reg_store *s, const char *digest, int64_t size);
/* Verify buf against digest and store it.  A file already there under
 * that name is compared and replaced when its bytes differ. */
int reg_store_put (reg_store *s, const char *digest, const void *buf, size_t len, ef_err **err);
/* Read a blob of at most max bytes and check its digest again; one that
 * does not match is removed (the next pull fetches it) and is EF_LOCAL. */
int reg_store_read (reg_store *s, const char *digest, size_t max, char **out, size_t *len, ef_err **err);
/* A manifest or index of the store, read (as above) and parsed; one that
 * no longer parses is EF_LOCAL too.  *m belongs to the caller. */
struct reg_manifest;
int reg_store_manifest (reg_store *s, const char *digest, char **buf, size_t *len, struct reg_manifest **m,
                        ef_err **err);
/* Was the blob hashed whole by this process (fetched, stored or read)?
 * Only such a blob may leave the store without being hashed again. */
bool reg_store_verified (const reg_store *s, const char *digest);
/* Remove a blob found damaged; returns 0 or -1 with errno set. */
int reg_store_discard (reg_store *s, const char *digest);

/* Receives a blob's bytes in order; returns 0 or negative with err set. */
typedef int (*reg_chunk_fn) (void *payload, const void *buf, size_t len, ef_err **err);
/* Stream blob digest (of size bytes) to fn, hashing as it goes unless
 * this process verified it already; the last chunk is given only once
 * the whole blob matched, so no reader gets all of a wrong blob.  A blob
 * that does not match is removed and is EF_LOCAL ("store damaged"). */
int reg_store_stream (reg_store *s, const char *digest, int64_t size, reg_chunk_fn fn, void *payload, ef_err **err);
/* The same as a reader that pulls: read returns up to max bytes, 0 at
 * the end, negative on error (a mismatch at the end, with the last bytes
 * withheld).  For a server that sends a blob as its client takes it. */
typedef struct reg_blob_reader reg_blob_reader;
int reg_blob_reader_open (reg_blob_reader **out, reg_store *s, const char *digest, int64_t size, ef_err **err);
ssize_t reg_blob_reader_read (reg_blob_reader *r, void *buf, size_t max, ef_err **err);
/* The same for a blob that may still be arriving: while *arriving is
 * non-zero, a blob not in the store yet is waited for and its ingest is
 * read as it grows (hashed here too: its end is withheld until it
 * matches).  An ingest that starts over or is dropped fails the reader. */
int reg_blob_reader_follow (reg_blob_reader **out, reg_store *s, const char *digest, int64_t size,
                            const volatile sig_atomic_t *arriving, ef_err **err);
void reg_blob_reader_free (reg_blob_reader *r);
/* Move a complete, verified file (fd, at path tmp) to blobs/<hex>:
 * fsync, rename, fsync the directory. */
int reg_store_adopt (reg_store *s, int fd, const char *tmp, const char *digest, ef_err **err);
/* gc.lock: gc takes it exclusive (false: another edgefetch has the store
 * open), then gives it back shared. */
bool reg_store_lock_exclusive (reg_store *s);
void reg_store_lock_shared (reg_store *s);

/* Bytes free for us under the store (statvfs), or -1. */
int64_t reg_store_available (const reg_store *s);
/* Bytes already on disk for a blob being fetched (0 if none). */
int64_t reg_store_partial (const reg_store *s, const char *digest);

/* The images the store holds, by name (STORE/images.json): what gc keeps.
 * Recording replaces the entry of the same name atomically. */
int reg_store_record (reg_store *s, const char *name, const char *manifest_digest, const char *index_digest,
                      ef_err **err);

/* The digests recorded under name (*index may be NULL); EF_NOTFOUND when
 * none is.  Caller frees both. */
int reg_store_lookup (reg_store *s, const char *name, char **manifest_digest, char **index_digest, ef_err **err);

/* A layer the runtime holds after a verified handoff: its blob is removed
 * (the device keeps one copy) and noted, so that a pull for that runtime
 * need not fetch it again (reg_pull_opts.skip_dropped). */
int reg_store_drop (reg_store *s, const char *digest, int64_t size, ef_err **err);
bool reg_store_dropped (reg_store *s, const char *digest, int64_t size);

/* Forget the image recorded under name (its blobs go at the next gc). */
int reg_store_unrecord (reg_store *s, const char *name, ef_err **err);

struct reg_gc_stats
{
  int64_t blobs_removed;
  int64_t bytes_removed;
  int64_t blobs_kept;
};
/* Remove every blob that no recorded image refers to (manifests, index
 * children present in the store, configs, layers).  Fails with EF_LOCAL,
 * removing nothing, while another edgefetch has the store open or when a
 * recorded image's manifest is missing or damaged (pull it again). */
int reg_store_gc (reg_store *s, struct reg_gc_stats *stats, ef_err **err);

/* What a killed run or a power cut left, removed (recover.c): temporary
 * files (EF_STALE_S old or more) in the store and ingest/; a
 * .part no pull wants (its blob is in the store, or it had no byte for
 * REG_PART_KEEP_S), unless a running pull holds it; a .ranges record
 * without its .part; handoff directories (EF_STALE_S old).  For start-up
 * and gc: nothing a running edgefetch is writing is touched. */
#define REG_PART_KEEP_S (7 * 24 * 3600)
struct reg_recovery
{
  int tmp, parts, records, handoffs;
};
void reg_store_recover (reg_store *s, struct reg_recovery *r);

typedef struct reg_ingest reg_ingest;
/* A thread that hashes and writes ingests' full buffers, so that the
 * thread receiving from the network only copies; extra is how many
 * buffers may be in flight.  Free it after every ingest that uses it. */
typedef struct reg_writer reg_writer;
int reg_writer_new (reg_writer **out, size_t extra, ef_err **err);
void reg_writer_free (reg_writer *w);

/* Open (or resume) the ingest of one blob.  Returns 0 with *out set, or
 * 0 with *busy true when another process is fetching it now (try again
 * later), negative on error.
 * Bytes already on disk from an earlier attempt are re-hashed, so the
 * fetch can continue at reg_ingest_offset(). */
int reg_ingest_open (reg_ingest **out, reg_store *s, const char *digest, int64_t size, bool *busy, ef_err **err);
/* Is ingest/<hex>.part there at its full size (every byte in, not yet
 * committed: a run stopped between the two)? */
bool reg_ingest_whole_on_disk (const reg_store *s, const char *digest, int64_t size);
/* Hash and write through w from now on (before the first write). */
void reg_ingest_use_writer (reg_ingest *i, reg_writer *w);
int64_t reg_ingest_offset (const reg_ingest *i);
int reg_ingest_write (reg_ingest *i, const void *buf, size_t len, ef_err **err);
/* The ranges [from, to) of the blob not on disk (at most max; how many). */
size_t reg_ingest_missing (reg_ingest *i, int64_t (*out)[2], size_t max);
/* A piece [from, to) of the blob, written in place as its bytes come,
 * while other pieces come at once; the bytes of pieces are recorded on
 * disk (ingest/<hex>.ranges, at most a second behind and never ahead of
 * the bytes themselves), so that a cut, a kill or a reboot costs only
 * what is missing.  Close every piece before commit or restart. */
typedef struct reg_ingest_seg reg_ingest_seg;
int reg_ingest_seg_open (reg_ingest *i, int64_t from, int64_t to, reg_ingest_seg **out, ef_err **err);
/* Bytes beyond the piece are refused (EF_VERIFY). */
int reg_ingest_seg_write (reg_ingest_seg *g, const void *buf, size_t len, ef_err **err);
int64_t reg_ingest_seg_pos (const reg_ingest_seg *g);
/* Hand its last bytes on and close it (NULL: nothing). */
int reg_ingest_seg_close (reg_ingest_seg *g, ef_err **err);
/* Start over from byte 0 (the server ignored Range). */
int reg_ingest_restart (reg_ingest *i, ef_err **err);
/* Check size and digest, fsync, rename into blobs/.  A mismatch removes
 * the partial file and is EF_VERIFY; free the ingest then. */
int reg_ingest_commit (reg_ingest *i, ef_err **err);
/* Close, keeping the partial bytes for a later resume. */
void reg_ingest_free (reg_ingest *i);

#endif
