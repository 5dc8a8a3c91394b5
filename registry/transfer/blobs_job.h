/* blobs_job.h: inside the transfer engine (blobs.h): one fetch of the
 * engine (struct xfer) and one blob of it (struct job).  blobs.c runs
 * the transfers; blobs_job.c decides each attempt of one blob: its host,
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

enum job_state
{
  JOB_QUEUED,
  JOB_RUNNING,
  JOB_DONE,
};

/* What the write callback found wrong with a response. */
enum job_fault
{
  FAULT_NONE,
  FAULT_RANGE,  /* a 206 for another range than the one asked for */
  FAULT_WRITE,  /* the store refused the bytes: werr says why */
};

struct xfer;

struct job
{
  struct xfer *x;
  const struct reg_desc *d;
  struct reg_blob_result *result; /* for the caller, or NULL */
  long route;    /* index into x->routes */
  unsigned mirrors_wrote; /* routes (bit per index) whose bytes are in the ingest */
  enum job_state state;
  reg_ingest *ing;
  CURL *e;
  char *url;
  int attempts;         /* consecutive failures without progress */
  int64_t start_offset; /* offset when this attempt began */
  int64_t not_before;   /* ms, for backoff */
  bool resumed;         /* began from bytes an earlier run left ... */
  int64_t resumed_bytes; /* ... this many */
  bool restarted;       /* ... and was started over once after a mismatch */
  bool reauthed;
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
  int64_t rate;         /* the cap, bytes/s for all transfers together; 0: none */
  int shared_for;       /* running transfers when the cap was last shared out; -1: one started or ended */
  const struct reg_ref *ref;
  reg_store *s;
  char *scope;
  reg_progress_fn progress;
  void *payload;
  int64_t total, done;
  struct reg_fetch_stats *stats;
  int64_t last_progress;
  struct job *jobs;
  reg_writer *writer; /* hashes and writes while we receive */
  size_t n, remaining;
  int active, max_active;
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
/* Prepare the next attempt of j; *p says what comes next. */
int blob_job_prepare (struct job *j, enum prep *p, ef_err **err);
/* Decide what a finished attempt of j (libcurl's result res) means. */
int blob_job_finish (struct job *j, CURLcode res, enum verdict *v, ef_err **err);

#endif
