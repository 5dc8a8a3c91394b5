/* pieces.c: a blob cut into pieces (blobs_job.h).  A big blob from a
 * registry that answers ranges is fetched as pieces over several
 * connections at once, each written in place (reg_ingest_seg); what is
 * on disk from an earlier run is not asked for again.  A small blob, or
 * one from a registry not yet seen to answer a range, is one stream. */
#include <string.h>

#include "blobs_job.h"

#define PIECE_MIN (128 * 1024)
#define PIECE_MAX (64 << 20)
#define PIECE_FIRST (256 * 1024) /* before any piece has shown what a transfer carries */
#define PIECE_MS 2000         /* a piece lasts about this long (or ten round trips, when longer) */
#define PIECE_FAST (32 << 20) /* bytes/s of one transfer on a link that pieces do not help */
#define TODO_MAX 64            /* ranges missing that are planned at once */

void
blob_report (struct xfer *x, bool force)
{
  int64_t now = ef_now_ms ();
  if (x->progress && (force || now - x->last_progress >= 100))
    {
      x->last_progress = now;
      x->progress (x->payload, x->done, x->total);
    }
}

void
blob_count (struct job *j, int64_t n)
{
  j->counted += n;
  j->x->done += n;
}

static void
count_reused (struct job *j, int64_t n)
{
  if (j->result)
    j->result->stats.bytes_reused += n;
  j->x->stats->bytes_reused += n;
  blob_count (j, n);
}

static void
todo_push (struct job *j, size_t at, int64_t from, int64_t to)
{
  if (j->ntodo == j->todo_cap)
    {
      j->todo_cap = j->todo_cap ? j->todo_cap * 2 : 8;
      j->todo = xrealloc (j->todo, j->todo_cap * sizeof *j->todo);
    }
  memmove (j->todo + at + 1, j->todo + at, (j->ntodo - at) * sizeof *j->todo);
  j->todo[at][0] = from;
  j->todo[at][1] = to;
  j->ntodo++;
}

/* What to ask for: every range not on disk.  Pieces are cut from them
 * when taken, so that how many there are follows the connections. */
static void
plan (struct job *j)
{
  int64_t missing[TODO_MAX][2];
  size_t n = reg_ingest_missing (j->ing, missing, TODO_MAX);

  j->ntodo = 0;
  for (size_t k = 0; k < n; k++)
    todo_push (j, j->ntodo, missing[k][0], missing[k][1]);
  /* one stream for a small blob, under a rate cap (the cap, not the
     link, sets the pace: libcurl holds each transfer to its share only
     once it has begun, so short pieces would each begin with a burst),
     and (pieces_take) from a registry that does not answer ranges */
  j->whole = j->d->size < PIECES_FROM || j->x->rate > 0;
}

/* Every byte of j was on disk from an earlier run: commit it.  Bytes
 * that do not hash were left by a power cut (written, never synced: a
 * file at its full length with zeros inside), not sent by the registry:
 * they are dropped (reg_ingest_commit) and the blob fetched again, once
 * and quietly.  A second mismatch is the registry's. */
static int
commit_kept (struct job *j, enum prep *p, ef_err **err)
{
  ef_err *e = NULL;
  int rc = reg_ingest_commit (j->ing, &e);

  if (rc == 0)
    {
      reg_ingest_free (j->ing);
      j->ing = NULL;
      *p = PREP_DONE;
      return 0;
    }
  if (rc != -EF_VERIFY || j->restarted)
    return ef_err_propagate (err, e);
  ef_err_free (e);
  count_reused (j, -j->resumed_bytes);
  reg_ingest_free (j->ing);
  j->ing = NULL;
  j->restarted = true;
  return pieces_open (j, p, err);
}

int
pieces_open (struct job *j, enum prep *p, ef_err **err)
{
  struct xfer *x = j->x;
  bool busy = false;
  int rc;

  *p = PREP_RUN;
  if (j->ing)
    return 0;
  if (reg_store_has (x->s, j->d->digest, j->d->size))
    {
      count_reused (j, j->d->size);
      *p = PREP_DONE;
      return 0;
    }
  rc = reg_ingest_open (&j->ing, x->s, j->d->digest, j->d->size, &busy, err);
  if (rc < 0 || busy)
    {
      *p = PREP_BUSY;
      return rc;
    }
  if (reg_store_has (x->s, j->d->digest, j->d->size)) /* the holder before us finished it */
    {
      reg_ingest_free (j->ing);
      j->ing = NULL;
      count_reused (j, j->d->size);
      *p = PREP_DONE;
      return 0;
    }
  reg_ingest_use_writer (j->ing, x->writer);
  plan (j);
  j->resumed_bytes = j->d->size;
  for (size_t k = 0; k < j->ntodo; k++)
    j->resumed_bytes -= j->todo[k][1] - j->todo[k][0];
  j->resumed = j->resumed_bytes > 0;
  count_reused (j, j->resumed_bytes);
  return j->ntodo == 0 ? commit_kept (j, p, err) : 0;
}

/* Bytes of every blob that no transfer has taken yet. */
static int64_t
untaken (const struct xfer *x)
{
  int64_t n = 0;

  for (size_t i = 0; i < x->n; i++)
    for (size_t k = 0; k < x->jobs[i].ntodo; k++)
      n += x->jobs[i].todo[k][1] - x->jobs[i].todo[k][0];
  return n;
}

bool
pieces_take (struct job *j, int64_t *from, int64_t *to)
{
  struct xfer *x = j->x;
  int64_t piece, share;

  if (j->route >= 0 && (x->ranges_bad & (1u << j->route)))
    j->whole = true;
  /* a second transfer for a blob once its registry answered a range with
     that range: until a piece has shown what one transfer carries, in
     pieces of PIECE_FIRST, so that on a long round trip the connections
     go through their handshakes and slow start together */
  if (j->ntodo == 0 || (j->conns > 0 && (j->whole || j->route < 0 || !(x->ranges_ok & (1u << j->route)))))
    return false;
  *from = j->todo[0][0];
  if (j->whole)
    {
      /* one stream from the first byte missing to the end */
      *to = j->d->size;
      j->ntodo = 0;
      return true;
    }
  /* a piece lasts about PIECE_MS at what a transfer carries: on a fast
     link a request per few MiB would cost more than the bytes (each
     request is a round trip, and a registry may check a password on
     each); on a thin one a piece ends soon, and the blob's end with it */
  piece = x->conn_rate ? x->conn_rate * (PIECE_MS > 4 * x->setup_ms ? PIECE_MS : 4 * x->setup_ms) / 1000 : PIECE_FIRST;
  /* the end: what is left shared by every transfer there may be, so that
     they end together rather than one long piece after the others */
  share = x->conn_rate ? untaken (x) / x->limit : piece;
  piece = share < piece ? share : piece;
  piece = piece < PIECE_MIN ? PIECE_MIN : piece > PIECE_MAX ? PIECE_MAX : piece;
  if (x->conn_rate >= PIECE_FAST)
    piece = j->d->size; /* one stream carries this link: the rest in one */
  if (j->todo[0][1] - *from <= piece + piece / 2)
    {
      *to = j->todo[0][1];
      memmove (j->todo, j->todo + 1, --j->ntodo * sizeof *j->todo);
    }
  else
    *to = j->todo[0][0] = *from + piece;
  return true;
}

bool
pieces_under_way (const struct job *j)
{
  const struct xfer *x = j->x;

  return j->ntodo == 0 && !j->whole && x->conn_rate > 0 && x->conn_rate < PIECE_FAST;
}

void
pieces_give_back (struct job *j, int64_t from, int64_t to)
{
  size_t at = 0;

  if (from >= to)
    return;
  while (at < j->ntodo && j->todo[at][0] < from)
    at++;
  if (at < j->ntodo && j->todo[at][0] == to)
    j->todo[at][0] = from;
  else
    todo_push (j, at, from, to);
}

int
pieces_restart_whole (struct job *j, ef_err **err)
{
  int rc;

  blob_count (j, -j->counted);
  rc = reg_ingest_restart (j->ing, err);
  j->ntodo = 0;
  todo_push (j, 0, 0, j->d->size);
  j->whole = true;
  j->resumed = false;
  return rc;
}
