/* blobs_job.c: one attempt at one blob (blobs_job.h): which host, which
 * request, and what its answer means: commit, resume, retry, fail over
 * to the next host, or give up. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "blobs_job.h"

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
  if (reg_routes_get (j->x->routes, (size_t) j->route)->mirror)
    j->mirrors_wrote |= 1u << j->route;
  if (reg_ingest_write (j->ing, p, len, &j->werr) < 0)
    {
      j->fault = FAULT_WRITE;
      return 0;
    }
  j->x->done += (int64_t) len;
  j->x->stats->bytes_fetched += (int64_t) len;
  if (j->result)
    j->result->stats.bytes_fetched += (int64_t) len;
  blob_report (j->x, false);
  return len;
}


static void
count_reused (struct job *j, int64_t n)
{
  struct xfer *x = j->x;

  if (j->result)
    j->result->stats.bytes_reused += n;
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
  j->resumed = reg_ingest_offset (j->ing) > 0;
  j->resumed_bytes = reg_ingest_offset (j->ing);
  count_reused (j, reg_ingest_offset (j->ing));
  return 0;
}

static reg_host *
job_host (struct job *j)
{
  return reg_routes_get (j->x->routes, (size_t) j->route)->h;
}

/* j's route for this attempt, authorized for the scope: a mirror that
 * cannot be (it is down, or wants credentials we do not have for it) is
 * passed over for the rest of the pull. */
static int
job_route (struct job *j, ef_err **err)
{
  struct xfer *x = j->x;

  for (;;)
    {
      struct reg_route *rt;
      ef_err *e = NULL;
      int rc;
      if (j->route < 0 || reg_routes_get (x->routes, (size_t) j->route)->dead)
        j->route = reg_routes_next (x->routes, j->route < 0 ? -1 : j->route, REG_CAP_PULL);
      if (j->route < 0)
        return ef_err_set (err, EF_USAGE, "hosts.toml of %s leaves no host to fetch blobs from", x->ref->domain);
      rt = reg_routes_get (x->routes, (size_t) j->route);
      if (x->authorized & (1u << j->route))
        break;
      rc = reg_session_authorize (x->session, rt->h, x->ref->domain, x->scope, &e);
      if (rc == 0)
        {
          x->authorized |= 1u << j->route;
          break;
        }
      if (!rt->mirror)
        return ef_err_propagate (err, e);
      ef_err_free (e);
      rt->dead = true;
    }
  free (j->url);
  j->url = reg_host_url (job_host (j), x->ref->domain, "/%s/blobs/%s", x->ref->path, j->d->digest);
  return 0;
}

static int
small_rcvbuf (void *ud, curl_socket_t fd, curlsocktype purpose)
{
  struct xfer *x = ud;
  int64_t want = x->rate / 4;
  int n = (int) (want < 16384 ? 16384 : want > (1 << 22) ? 1 << 22 : want);

  if (purpose == CURLSOCKTYPE_IPCXN)
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
  return CURL_SOCKOPT_OK;
}

int
blob_job_prepare (struct job *j, enum prep *p, ef_err **err)
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
  rc = job_route (j, err);
  if (rc < 0)
    return rc;
  ef_buf_dispose (&j->errbody);
  ef_buf_init (&j->errbody, ERRBODY_MAX);
  j->checked = false;
  j->status = 0;
  j->fault = FAULT_NONE;
  j->errbuf[0] = '\0';
  j->start_offset = reg_ingest_offset (j->ing);
  reg_session_prepare (x->session, job_host (j), j->e, j->url, x->scope);
  /* Parallel blobs over separate connections: one lost packet then stalls
   * one blob, not all of them (HTTP/2 would multiplex on one TCP stream). */
  curl_easy_setopt (j->e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (j->e, CURLOPT_BUFFERSIZE, 64L * 1024);
  curl_easy_setopt (j->e, CURLOPT_WRITEFUNCTION, blob_data_cb);
  curl_easy_setopt (j->e, CURLOPT_WRITEDATA, j);
  curl_easy_setopt (j->e, CURLOPT_ERRORBUFFER, j->errbuf);
  curl_easy_setopt (j->e, CURLOPT_PRIVATE, j);
  if (x->rate)
    {
      /* a small receive window, so that TCP holds the sender to the cap too */
      curl_easy_setopt (j->e, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
      curl_easy_setopt (j->e, CURLOPT_SOCKOPTDATA, x);
    }
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


/* j's mirror failed it: the next host takes over at once, with the bytes
 * kept (they are checked against the digest all the same).  kill: the
 * mirror is skipped for the rest of the pull. */
static void
job_failover (struct job *j, bool kill)
{
  struct reg_route *rt = reg_routes_get (j->x->routes, (size_t) j->route);

  if (kill)
    rt->dead = true;
  j->route = reg_routes_next (j->x->routes, j->route, REG_CAP_PULL);
  j->attempts = 0;
  j->not_before = 0;
  j->reauthed = false;
}

/* The body is all there: commit it.  A resumed blob whose digest does
 * not match (an earlier run left wrong bytes) starts over, once. */
static int
job_commit (struct job *j, enum verdict *v, ef_err **err)
{
  ef_err *e = NULL;
  int rc = reg_ingest_commit (j->ing, &e);

  *v = JOB_COMMITTED;
  if (rc == -EF_VERIFY && j->mirrors_wrote)
    {
      /* a mirror sent wrong bytes: they are gone with the partial file;
         the blob starts over elsewhere and the mirror is not asked again */
      ef_err_free (e);
      for (size_t i = 0; i < reg_routes_count (j->x->routes); i++)
        if (j->mirrors_wrote & (1u << i))
          reg_routes_get (j->x->routes, i)->dead = true;
      j->x->done -= reg_ingest_offset (j->ing);
      reg_ingest_free (j->ing);
      j->ing = NULL;
      j->mirrors_wrote = 0;
      j->resumed = false;
      j->not_before = 0;
      j->attempts = 0;
      *v = JOB_AGAIN;
      return 0;
    }
  if (rc == -EF_VERIFY && j->resumed && !j->restarted)
    {
      /* the partial file is gone: the next attempt opens a new one at 0 */
      ef_err_free (e);
      j->x->done -= reg_ingest_offset (j->ing);
      j->x->stats->bytes_reused -= j->resumed_bytes;
      if (j->result)
        j->result->stats.bytes_reused -= j->resumed_bytes;
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
  if (j->result)
    j->result->source = xstrdup (reg_host_name (job_host (j)));
  return 0;
}

int
blob_job_finish (struct job *j, CURLcode res, enum verdict *v, ef_err **err)
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
      rc = reg_session_reauth (x->session, job_host (j), j->e, x->ref->domain, x->scope, err);
      if (rc < 0 && reg_routes_get (x->routes, (size_t) j->route)->mirror)
        {
          ef_err_clear (err);
          job_failover (j, true);
          return 0;
        }
      return rc;
    }
  if (reg_routes_get (x->routes, (size_t) j->route)->mirror && !http_cancelled (x->retry))
    {
      /* any other failure of a mirror: the next host, at once; a mirror
         that has not got the blob stays in use for the others */
      job_failover (j, !(res == CURLE_OK && j->status == 404));
      return 0;
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
