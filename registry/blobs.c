/* blobs.c: see blobs.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "../common/util.h"
#include "blobs.h"

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
  reg_host *h;
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
  int active;
  CURLM *m;
};

static void
report (struct xfer *x, bool force)
{
  int64_t now = ef_now_ms ();
  if (x->progress && (force || now - x->last_progress >= 100))
    {
      x->last_progress = now;
      x->progress (x->payload, x->done, x->total);
    }
}

/* The first bytes of a response: is it the one we asked for? */
static bool
check_response (struct job *j)
{
  j->checked = true;
  curl_easy_getinfo (j->e, CURLINFO_RESPONSE_CODE, &j->status);
  if (j->status == 206)
    {
      const char *cr = http_header (j->e, "Content-Range", 0);
      char want[48];
      snprintf (want, sizeof want, "bytes %lld-", (long long) reg_ingest_offset (j->ing));
      if (cr == NULL || strncmp (cr, want, strlen (want)) != 0)
        {
          j->fault = FAULT_RANGE;
          snprintf (j->range, sizeof j->range, "%s", cr ? cr : "(none)");
          return false;
        }
    }
  else if (j->status == 200 && reg_ingest_offset (j->ing) > 0)
    {
      /* Range ignored: the whole blob follows; start over. */
      j->x->done -= reg_ingest_offset (j->ing);
      if (reg_ingest_restart (j->ing, &j->werr) < 0)
        {
          j->fault = FAULT_WRITE;
          return false;
        }
      j->start_offset = 0;
    }
  return true;
}

static size_t
blob_data_cb (char *p, size_t size, size_t n, void *ud)
{
  struct job *j = ud;
  size_t len = size * n;

  if (!j->checked && !check_response (j))
    return 0;
  if (j->status != 200 && j->status != 206)
    {
      ef_buf_append (&j->errbody, p, len); /* keep what fits */
      return len;
    }
  if (reg_ingest_write (j->ing, p, len, &j->werr) < 0)
    {
      j->fault = FAULT_WRITE;
      return 0;
    }
  j->x->done += (int64_t) len;
  j->x->stats->bytes_fetched += (int64_t) len;
  report (j->x, false);
  return len;
}

enum prep
{
  PREP_RUN,  /* a transfer is set up */
  PREP_DONE, /* nothing to fetch: in the store already */
  PREP_BUSY, /* another edgefetch is fetching it */
};

static void
count_reused (struct xfer *x, int64_t n)
{
  x->stats->bytes_reused += n;
  x->done += n;
}

/* Open (or keep) j's ingest; *p says what comes next. */
static int
job_open (struct job *j, enum prep *p, ef_err **err)
{
  struct xfer *x = j->x;
  bool busy = false;
  int rc;

  *p = PREP_RUN;
  if (j->ing)
    return 0;
  if (reg_store_has (x->s, j->d->digest, j->d->size))
    {
      count_reused (x, j->d->size);
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
      count_reused (x, j->d->size);
      *p = PREP_DONE;
      return 0;
    }
  reg_ingest_use_writer (j->ing, x->writer);
  j->resumed = reg_ingest_offset (j->ing) > 0;
  j->resumed_bytes = reg_ingest_offset (j->ing);
  count_reused (x, reg_ingest_offset (j->ing));
  return 0;
}

/* Prepare the next attempt of j. */
static int
job_prepare (struct job *j, enum prep *p, ef_err **err)
{
  struct xfer *x = j->x;
  int rc = job_open (j, p, err);

  if (rc < 0 || *p != PREP_RUN)
    return rc;
  if (reg_ingest_offset (j->ing) == j->d->size)
    {
      *p = PREP_DONE;
      return reg_ingest_commit (j->ing, err);
    }
  if (j->e == NULL && (j->e = curl_easy_init ()) == NULL)
    return ef_err_set (err, EF_LOCAL, "libcurl: out of handles");
  ef_buf_dispose (&j->errbody);
  ef_buf_init (&j->errbody, ERRBODY_MAX);
  j->checked = false;
  j->status = 0;
  j->fault = FAULT_NONE;
  j->errbuf[0] = '\0';
  j->start_offset = reg_ingest_offset (j->ing);
  reg_session_prepare (x->session, x->h, j->e, j->url, x->scope);
  /* Parallel blobs over separate connections: one lost packet then stalls
   * one blob, not all of them (HTTP/2 would multiplex on one TCP stream). */
  curl_easy_setopt (j->e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (j->e, CURLOPT_BUFFERSIZE, 64L * 1024);
  curl_easy_setopt (j->e, CURLOPT_WRITEFUNCTION, blob_data_cb);
  curl_easy_setopt (j->e, CURLOPT_WRITEDATA, j);
  curl_easy_setopt (j->e, CURLOPT_ERRORBUFFER, j->errbuf);
  curl_easy_setopt (j->e, CURLOPT_PRIVATE, j);
  if (j->start_offset > 0)
    {
      char range[32];
      snprintf (range, sizeof range, "%lld-", (long long) j->start_offset);
      curl_easy_setopt (j->e, CURLOPT_RANGE, range);
    }
  return 0;
}

/* Start this blob over from byte 0. */
static void
job_restart (struct job *j)
{
  j->x->done -= reg_ingest_offset (j->ing);
  reg_ingest_restart (j->ing, NULL);
}

/* A final answer that retrying will not change. */
static int
job_refused (struct job *j, ef_err **err)
{
  const struct reg_desc *d = j->d;
  char code[64], msg[256];

  reg_client_error_body (&j->errbody, code, sizeof code, msg, sizeof msg);
  if (j->status == 404)
    return ef_err_set (err, EF_NOTFOUND, "blob %s: not found in the registry", d->digest);
  if (j->status == 401 || j->status == 403)
    return ef_err_set (err, EF_AUTH, "blob %s: %ld %s", d->digest, j->status, msg[0] ? msg : "denied");
  return ef_err_set (err, EF_NET, "blob %s: HTTP %ld%s%s", d->digest, j->status, msg[0] ? ": " : "", msg);
}

static int
job_give_up (struct job *j, CURLcode res, ef_err **err)
{
  int rc;

  if (j->fault == FAULT_RANGE)
    rc = ef_err_set (err, EF_NET, "the registry answered Content-Range %s to a request from byte %lld", j->range,
                     (long long) j->start_offset);
  else if (res != CURLE_OK)
    rc = http_error (err, res, j->errbuf, "is the registry's CA in --ca-file or certs.d?");
  else
    rc = ef_err_set (err, EF_NET, "HTTP %ld", j->status);
  ef_err_wrap (err, "blob %s: giving up after %d attempts", j->d->digest, j->attempts);
  return rc;
}

enum verdict
{
  JOB_COMMITTED,
  JOB_AGAIN, /* after j->not_before */
};

/* The body is all there: commit it.  A resumed blob whose digest does
 * not match (an earlier run left wrong bytes) starts over, once. */
static int
job_commit (struct job *j, enum verdict *v, ef_err **err)
{
  ef_err *e = NULL;
  int rc = reg_ingest_commit (j->ing, &e);

  *v = JOB_COMMITTED;
  if (rc == -EF_VERIFY && j->resumed && !j->restarted)
    {
      /* the partial file is gone: the next attempt opens a new one at 0 */
      ef_err_free (e);
      j->x->done -= reg_ingest_offset (j->ing);
      j->x->stats->bytes_reused -= j->resumed_bytes;
      reg_ingest_free (j->ing);
      j->ing = NULL;
      j->restarted = true;
      j->resumed = false;
      j->not_before = 0;
      *v = JOB_AGAIN;
      return 0;
    }
  if (rc < 0)
    return ef_err_propagate (err, e);
  return 0;
}

/* Decide what a finished attempt means. */
static int
job_finish (struct job *j, CURLcode res, enum verdict *v, ef_err **err)
{
  struct xfer *x = j->x;
  /* Progress that resets the retry budget: a stall after a trickle of
   * bytes is still a stall (skopeo asks for 1 MiB; edge links are slower). */
  bool progressed = reg_ingest_offset (j->ing) - j->start_offset >= PROGRESS_MIN;
  curl_off_t ra = 0;
  int rc;

  *v = JOB_AGAIN;
  if (j->fault == FAULT_WRITE)
    {
      rc = ef_err_propagate (err, j->werr);
      j->werr = NULL;
      return rc;
    }
  if (j->fault == FAULT_RANGE)
    {
      job_restart (j); /* a range we did not ask for: start this blob over */
      progressed = false;
    }
  if (!j->checked)
    curl_easy_getinfo (j->e, CURLINFO_RESPONSE_CODE, &j->status);
  if (res == CURLE_OK && (j->status == 200 || j->status == 206))
    {
      if (reg_ingest_offset (j->ing) == j->d->size)
        return job_commit (j, v, err);
      res = CURLE_PARTIAL_FILE; /* short body: resume it */
    }
  if (res == CURLE_OK && j->status == 401 && !j->reauthed)
    {
      j->reauthed = true;
      j->not_before = 0;
      return reg_session_reauth (x->session, x->h, j->e, x->ref->domain, x->scope, err);
    }
  if (res == CURLE_OK && j->status == 416)
    {
      job_restart (j);
      progressed = false;
    }
  else if (j->fault == FAULT_NONE && !http_retryable (res, j->status))
    {
      if (res == CURLE_OK)
        return job_refused (j, err);
      rc = http_error (err, res, j->errbuf, "is the registry's CA in --ca-file or certs.d?");
      ef_err_wrap (err, "blob %s", j->d->digest);
      return rc;
    }
  /* Retryable: a dropped connection, a stall, 408/429/5xx, a 416 or a wrong range. */
  j->attempts = progressed ? 1 : j->attempts + 1;
  if (j->attempts >= x->retry->max_attempts)
    return job_give_up (j, res, err);
  if (res == CURLE_OK)
    curl_easy_getinfo (j->e, CURLINFO_RETRY_AFTER, &ra);
  j->not_before = ef_now_ms () + http_backoff_ms (x->retry, j->attempts, (long) ra);
  return 0;
}

/* Set up x and its jobs; the same blob twice in one image is fetched once. */
static int
xfer_init (struct xfer *x, reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
           reg_store *s, ef_err **err)
{
  x->c = c;
  x->session = reg_client_session (c);
  x->retry = reg_client_retry (c);
  x->ref = ref;
  x->s = s;
  x->scope = reg_client_scope (ref);
  x->n = x->remaining = n;
  x->jobs = xcalloc (n ? n : 1, sizeof *x->jobs);
  for (size_t i = 0; i < n; i++)
    {
      struct job *j = &x->jobs[i];
      x->total += descs[i]->size;
      j->x = x;
      j->d = descs[i];
      j->url = xasprintf ("https://%s/v2/%s/blobs/%s", ref->api_host, ref->path, descs[i]->digest);
      ef_buf_init (&j->errbody, ERRBODY_MAX);
      for (size_t k = 0; k < i; k++)
        if (strcmp (descs[k]->digest, descs[i]->digest) == 0)
          {
            j->state = JOB_DONE;
            x->remaining--;
            break;
          }
    }
  if (n == 0)
    return 0;
  x->m = curl_multi_init ();
  if (x->m == NULL)
    return ef_err_set (err, EF_LOCAL, "libcurl: out of handles");
  {
    int rc = reg_writer_new (&x->writer, (size_t) reg_client_opts (c)->jobs, err);
    if (rc < 0)
      return rc;
  }
  curl_multi_setopt (x->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long) reg_client_opts (c)->jobs);
  {
    int rc = reg_session_host (x->session, ref->api_host, &x->h, err);
    return rc < 0 ? rc : reg_session_authorize (x->session, x->h, ref->domain, x->scope, err);
  }
}

static void
xfer_dispose (struct xfer *x)
{
  for (size_t i = 0; i < x->n; i++)
    {
      struct job *j = &x->jobs[i];
      if (j->state == JOB_RUNNING)
        curl_multi_remove_handle (x->m, j->e);
      if (j->e)
        curl_easy_cleanup (j->e);
      reg_ingest_free (j->ing); /* partial bytes stay for a resume */
      ef_buf_dispose (&j->errbody);
      ef_err_free (j->werr);
      free (j->url);
    }
  free (x->jobs);
  reg_writer_free (x->writer);
  if (x->m)
    curl_multi_cleanup (x->m);
  free (x->scope);
}

static void
job_done (struct job *j)
{
  j->state = JOB_DONE;
  j->x->remaining--;
  reg_ingest_free (j->ing);
  j->ing = NULL;
  report (j->x, false);
}

/* Start what may start now; *wait is how long until the next may. */
static int
start_ready (struct xfer *x, int64_t *wait, ef_err **err)
{
  int jobs = reg_client_opts (x->c)->jobs;
  int64_t now = ef_now_ms ();

  for (size_t i = 0; i < x->n && x->active < jobs; i++)
    {
      struct job *j = &x->jobs[i];
      enum prep p;
      int rc;

      if (j->state != JOB_QUEUED)
        continue;
      if (j->not_before > now)
        {
          if (j->not_before - now < *wait)
            *wait = j->not_before - now;
          continue;
        }
      rc = job_prepare (j, &p, err);
      if (rc < 0)
        return rc;
      if (p == PREP_DONE)
        job_done (j);
      else if (p == PREP_BUSY)
        {
          j->not_before = now + BUSY_WAIT_MS;
          if (*wait > BUSY_WAIT_MS)
            *wait = BUSY_WAIT_MS;
        }
      else
        {
          j->state = JOB_RUNNING;
          curl_multi_add_handle (x->m, j->e);
          x->active++;
        }
    }
  return 0;
}

/* Look at the transfers that ended. */
static int
reap (struct xfer *x, ef_err **err)
{
  struct CURLMsg *msg;
  int left;

  while ((msg = curl_multi_info_read (x->m, &left)) != NULL)
    {
      struct job *j;
      enum verdict v;
      int rc;

      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &j);
      curl_multi_remove_handle (x->m, j->e);
      x->active--;
      j->state = JOB_QUEUED;
      rc = job_finish (j, msg->data.result, &v, err);
      if (rc < 0)
        return rc;
      if (v == JOB_COMMITTED)
        job_done (j);
    }
  return 0;
}

int
reg_blobs_fetch (reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
                 reg_store *s, reg_progress_fn progress, void *payload, struct reg_fetch_stats *stats, ef_err **err)
{
  struct xfer x = { 0 };
  int rc;

  x.progress = progress;
  x.payload = payload;
  x.stats = stats;
  rc = xfer_init (&x, c, ref, descs, n, s, err);
  while (rc == 0 && x.remaining > 0)
    {
      int64_t wait = 1000;
      int running;

      if (http_cancelled (x.retry))
        {
          rc = ef_err_set (err, EF_NET, "interrupted");
          break;
        }
      rc = start_ready (&x, &wait, err);
      if (rc < 0 || x.remaining == 0)
        break;
      curl_multi_perform (x.m, &running);
      rc = reap (&x, err);
      if (rc == 0 && x.remaining > 0)
        curl_multi_poll (x.m, NULL, 0, (int) (wait > 0 ? wait : 1), NULL);
    }
  if (rc == 0)
    report (&x, true);
  xfer_dispose (&x);
  return rc;
}
