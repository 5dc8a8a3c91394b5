/* blobs_job.h: inside the transfer engine (blobs.h): one fetch of the
 * engine (struct xfer), one blob of it (struct job) and one transfer of
 * a piece of a blob over one connection (struct conn).  blobs.c runs the
 * transfers and decides how many run at once; pieces.c cuts blobs into
 * pieces and hands them out; blobs_job.c decides each transfer: its host,
 * its request, what its answer means. */
#ifndef EF_BLOBS_JOB_H
#define EF_BLOBS_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "../../common/util.h"
#include "blobs.h"
#include "../remote/routes.h"

#define ERRBODY_MAX 65536
#define PROGRESS_MIN (64 * 1024) /* bytes that count as progress for the retry budget */
#define BUSY_WAIT_MS 250         /* another edgefetch holds the blob: look again */
#define PIECES_FROM (4 << 20)  /* a blob this big or bigger is fetched in pieces */
#define RATE_PIECE_MIN (64 * 1024) /* a smaller piece shows the round trip, not what a transfer carries */

enum job_state
{
  JOB_QUEUED,  /* nothing open yet */
  JOB_OPEN,    /* its ingest is open: pieces to fetch, or under way */
  JOB_DONE,
};

/* What the write callback found wrong with a response. */
enum job_fault
{
  FAULT_NONE,
  FAULT_RANGE, /* a 206 for another range than the one asked for, or a 200 beside other pieces */
  FAULT_WRITE, /* the store refused the bytes: werr says why */
};

struct xfer;

struct job
{
  struct xfer *x;
  const struct reg_desc *d;
  struct reg_blob_result *result; /* for the caller, or NULL */
  long route;             /* index into x->routes */
  unsigned mirrors_wrote; /* routes (bit per index) whose bytes are in the ingest */
  enum job_state state;
  reg_ingest *ing;
  char *url;
  int conns;            /* transfers of it running */
  int64_t (*todo)[2];   /* pieces no transfer has taken yet, in order */
  size_t ntodo, todo_cap;
  int64_t counted;      /* of its bytes in x->done */
  int attempts;         /* consecutive failures without progress */
  int64_t failed_at;    /* ms of the last failure counted: those of transfers begun before it are the same one */
  int64_t not_before;   /* ms, for backoff */
  bool whole;           /* in one stream: small, a registry without ranges, or after a mismatch */
  bool resumed;         /* began from bytes an earlier run left ... */
  int64_t resumed_bytes; /* ... this many */
  bool restarted;       /* ... and was started over once after a mismatch */
  bool reauthed;
};

struct conn
{
  struct job *j; /* NULL: free */
  CURL *e;
  reg_ingest_seg *seg;
  int64_t from, to; /* the piece: [from, to) */
  int64_t asked_to; /* what the request asked for */
  int64_t begun_ms;
  int64_t last_ms; /* when its last byte came (or it began) */
  long route;
  bool checked; /* status of this response looked at */
  long status;
  enum job_fault fault;
  char range[96]; /* the Content-Range of a FAULT_RANGE answer */
  struct ef_buf errbody;
  ef_err *werr;
  char errbuf[CURL_ERROR_SIZE];
};

struct xfer
{
  reg_client *c;
  reg_session *session;
  struct http_retry *retry;
  reg_routes *routes;
  unsigned authorized; /* routes (bit per index) authorized for scope */
  unsigned ranges_ok;  /* routes that answered a range with that range */
  unsigned ranges_bad; /* routes that did not */
  int64_t rate;        /* the cap, bytes/s for all transfers together; 0: none */
  int shared_for;      /* running transfers when the cap was last shared out; -1: one started or ended */
  const struct reg_ref *ref;
  reg_store *s;
  char *scope;
  reg_progress_fn progress;
  void *payload;
  int64_t total, done;
  struct reg_fetch_stats *stats;
  int64_t last_progress;
  int64_t last_byte;  /* ms: when the last byte came (or the fetch began) */
  bool stall_noted;   /* the caller was told that none comes */
  int64_t dropped_ms; /* when a piece was last dropped while none came (blobs.c, drop_stuck) */
  reg_stall_fn stalled;
  struct job *jobs;
  size_t n, remaining;
  bool in_order;       /* blobs one after the other (their pieces at once; start_ready) */
  struct conn *conns;  /* cap of them */
  int active, limit, cap; /* running transfers, how many may run now, and at most */
  int64_t conn_rate; /* bytes/s one transfer carries, from the pieces done (0: none yet) */
  int64_t setup_ms;  /* the slowest connection's set-up (TCP and TLS) */
  /* how many may run: grown while goodput grows (blobs.c) */
  int64_t probe_ms, probe_bytes, probe_rate, probe_span;
  bool grown_enough;
  reg_writer *writer; /* hashes and writes while we receive */
  CURLM *m;
};

enum prep
{
  PREP_RUN,  /* a transfer is set up */
  PREP_DONE, /* nothing to fetch: in the store already */
  PREP_BUSY, /* another edgefetch is fetching it */
};

enum verdict
{
  JOB_COMMITTED,
  JOB_AGAIN, /* after j->not_before */
};

/* Tell the caller's progress function (at most every 100 ms unless force). */
void blob_report (struct xfer *x, bool force);
/* Count n more (or, negative, fewer) of j's bytes as done. */
void blob_count (struct job *j, int64_t n);

/* pieces.c: open j's ingest and plan its pieces (*p: PREP_DONE when it
 * is in the store, or was all on disk and now is; PREP_BUSY while
 * another edgefetch fetches it). */
int pieces_open (struct job *j, enum prep *p, ef_err **err);
/* The next piece of j for a transfer, into *from, *to; false when none
 * is left to take (j->whole: one transfer at a time). */
bool pieces_take (struct job *j, int64_t *from, int64_t *to);
/* Is every piece of j taken, on a link where a blob comes in pieces (not
 * in one stream)?  Then, in order, the next blob may start. */
bool pieces_under_way (const struct job *j);
/* Give [from, to) back to j, to be taken first. */
void pieces_give_back (struct job *j, int64_t from, int64_t to);
/* Throw j's pieces away and start it over in one stream from byte 0. */
int pieces_restart_whole (struct job *j, ef_err **err);

/* blobs_job.c: set k up to fetch [from, to) of j. */
int conn_prepare (struct conn *k, struct job *j, int64_t from, int64_t to, ef_err **err);
/* Decide what a finished transfer (libcurl's result res) means; *v is
 * JOB_COMMITTED when it was the blob's last and the blob is in. */
int conn_finish (struct conn *k, CURLcode res, enum verdict *v, ef_err **err);
/* Stop k now: its bytes stay, the rest of its piece goes back to its blob. */
void conn_drop (struct xfer *x, struct conn *k);
/* Stop every transfer of j now (their bytes stay). */
void conn_stop_job (struct xfer *x, struct job *j);

#endif
