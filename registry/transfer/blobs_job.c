/* blobs_job.c: one transfer of a piece of one blob (blobs_job.h): which
 * host, which request, and what its answer means: the piece is in,
 * resume it, retry, fail over to the next host, start the blob over in
 * one stream, commit the blob, or give up. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "blobs_job.h"

static struct reg_route *
route_of (struct xfer *x, long route)
{
  return reg_routes_get (x->routes, (size_t) route);
}

/* A 200 to a request for a range: the registry ignores ranges.  Alone,
 * this transfer becomes the blob's one stream from byte 0; beside other
 * pieces, the blob starts over. */
static bool
range_ignored (struct conn *k)
{
  struct job *j = k->j;
  struct xfer *x = j->x;

  x->ranges_bad |= 1u << k->route;
  if (j->conns > 1)
    {
      k->fault = FAULT_RANGE;
      snprintf (k->range, sizeof k->range, "(none: 200)");
      return false;
    }
  reg_ingest_seg_close (k->seg, NULL);
  k->seg = NULL;
  if (pieces_restart_whole (j, &k->werr) < 0
      || reg_ingest_seg_open (j->ing, 0, j->d->size, &k->seg, &k->werr) < 0)
    {
      k->fault = FAULT_WRITE;
      return false;
    }
  j->ntodo = 0;
  k->from = 0;
  k->to = k->asked_to = j->d->size;
  return true;
}

/* The first bytes of a response: is it the one we asked for? */
static bool
check_response (struct conn *k)
{
  struct xfer *x = k->j->x;
  bool ranged = k->from > 0 || k->asked_to < k->j->d->size;

  k->checked = true;
  curl_easy_getinfo (k->e, CURLINFO_RESPONSE_CODE, &k->status);
  if (k->status == 206)
    {
      const char *cr = http_header (k->e, "Content-Range", 0);
      char want[64];
      snprintf (want, sizeof want, "bytes %lld-%lld/", (long long) k->from, (long long) k->asked_to - 1);
      if (cr == NULL || strncmp (cr, want, strlen (want)) != 0)
        {
          x->ranges_bad |= 1u << k->route;
          k->fault = FAULT_RANGE;
          snprintf (k->range, sizeof k->range, "%s", cr ? cr : "(none)");
          return false;
        }
      x->ranges_ok |= 1u << k->route;
    }
  else if (k->status == 200 && ranged)
    return range_ignored (k);
  return true;
}

static size_t
blob_data_cb (char *p, size_t size, size_t n, void *ud)
{
  struct conn *k = ud;
  struct job *j = k->j;
  size_t len = size * n;

  if (!k->checked && !check_response (k))
    return 0;
  if (k->status != 200 && k->status != 206)
    {
      ef_buf_append (&k->errbody, p, len); /* keep what fits */
      return len;
    }
  if (route_of (j->x, k->route)->mirror)
    j->mirrors_wrote |= 1u << k->route;
  if (reg_ingest_seg_write (k->seg, p, len, &k->werr) < 0)
    {
      k->fault = FAULT_WRITE;
      return 0;
    }
  blob_count (j, (int64_t) len);
  j->x->last_byte = k->last_ms = ef_now_ms ();
  j->x->stats->bytes_fetched += (int64_t) len;
  if (j->result)
    j->result->stats.bytes_fetched += (int64_t) len;
  blob_report (j->x, false);
  return len;
}

static reg_host *
job_host (struct job *j)
{
  return route_of (j->x, j->route)->h;
}

/* j's route for this transfer, authorized for the scope: a mirror that
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
      if (j->route < 0 || route_of (x, j->route)->dead)
        j->route = reg_routes_next (x->routes, j->route < 0 ? -1 : j->route, REG_CAP_PULL);
      if (j->route < 0)
        return ef_err_set (err, EF_USAGE, "hosts.toml of %s leaves no host to fetch blobs from", x->ref->domain);
      rt = route_of (x, j->route);
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
    {
      setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
      reg_session_sockopt (x->session, fd);
    }
  return CURL_SOCKOPT_OK;
}

int
conn_prepare (struct conn *k, struct job *j, int64_t from, int64_t to, ef_err **err)
{
  struct xfer *x = j->x;
  int rc;

  if (k->e == NULL && (k->e = curl_easy_init ()) == NULL)
    return ef_err_set (err, EF_LOCAL, "libcurl: out of handles");
  rc = job_route (j, err);
  if (rc == 0)
    rc = reg_ingest_seg_open (j->ing, from, to, &k->seg, err);
  if (rc < 0)
    {
      pieces_give_back (j, from, to);
      return rc;
    }
  k->j = j;
  k->from = from;
  k->to = k->asked_to = to;
  k->route = j->route;
  k->begun_ms = k->last_ms = ef_now_ms ();
  ef_buf_dispose (&k->errbody);
  ef_buf_init (&k->errbody, ERRBODY_MAX);
  k->checked = false;
  k->status = 0;
  k->fault = FAULT_NONE;
  k->errbuf[0] = '\0';
  j->conns++;
  reg_session_prepare (x->session, job_host (j), k->e, j->url, x->scope); /* HTTP/1.1 */
  /* big reads where one stream is fast; where many are slow, small ones
     (sixteen connections of a thin link hold little memory) */
  curl_easy_setopt (k->e, CURLOPT_BUFFERSIZE, x->conn_rate == 0 || x->conn_rate >= (8 << 20) ? 64L * 1024 : 16L * 1024);
  curl_easy_setopt (k->e, CURLOPT_UPLOAD_BUFFERSIZE, 16L * 1024); /* a transfer only asks */
  curl_easy_setopt (k->e, CURLOPT_WRITEFUNCTION, blob_data_cb);
  curl_easy_setopt (k->e, CURLOPT_WRITEDATA, k);
  curl_easy_setopt (k->e, CURLOPT_ERRORBUFFER, k->errbuf);
  curl_easy_setopt (k->e, CURLOPT_PRIVATE, k);
  if (x->rate)
    {
      /* a small receive window, so that TCP holds the sender to the cap
         too (on the connections opened for blobs) */
      curl_easy_setopt (k->e, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
      curl_easy_setopt (k->e, CURLOPT_SOCKOPTDATA, x);
    }
  if (from > 0 || to < j->d->size)
    {
      char range[48];
      snprintf (range, sizeof range, "%lld-%lld", (long long) from, (long long) to - 1);
      curl_easy_setopt (k->e, CURLOPT_RANGE, range);
    }
  return 0;
}

/* k is over: its bytes are handed on, what it did not get goes back to
 * its blob, and it is free for another piece. */
static int
conn_release (struct conn *k, ef_err **err)
{
  struct job *j = k->j;
  int rc = 0;

  if (k->seg)
    {
      int64_t pos = reg_ingest_seg_pos (k->seg);
      rc = reg_ingest_seg_close (k->seg, err);
      if (pos < k->to)
        pieces_give_back (j, pos, k->to);
      k->seg = NULL;
    }
  j->conns--;
  k->j = NULL;
  return rc;
}

void
conn_drop (struct xfer *x, struct conn *k)
{
  curl_multi_remove_handle (x->m, k->e);
  x->active--;
  x->shared_for = -1;
  conn_release (k, NULL);
}

void
conn_stop_job (struct xfer *x, struct job *j)
{
  for (int i = 0; i < x->cap; i++)
    if (x->conns[i].j == j)
      conn_drop (x, &x->conns[i]);
}

/* A final answer that retrying will not change. */
static int
job_refused (struct conn *k, struct job *j, ef_err **err)
{
  const struct reg_desc *d = j->d;
  char code[64], msg[256];

  reg_client_error_body (&k->errbody, code, sizeof code, msg, sizeof msg);
  if (k->status == 404)
    return ef_err_set (err, EF_NOTFOUND, "blob %s: not found in the registry", d->digest);
  if (k->status == 401 || k->status == 403)
    return ef_err_set (err, EF_AUTH, "blob %s: %ld %s", d->digest, k->status, msg[0] ? msg : "denied");
  return ef_err_set (err, EF_NET, "blob %s: HTTP %ld%s%s", d->digest, k->status, msg[0] ? ": " : "", msg);
}

static int
job_give_up (struct conn *k, struct job *j, CURLcode res, ef_err **err)
{
  int rc;

  if (k->fault == FAULT_RANGE)
    rc = ef_err_set (err, EF_NET, "the registry answered Content-Range %s to a request for bytes %lld-%lld",
                     k->range, (long long) k->from, (long long) k->asked_to - 1);
  else if (res != CURLE_OK)
    rc = http_error (err, res, k->errbuf, "is the registry's CA in --ca-file or certs.d?");
  else
    rc = ef_err_set (err, EF_NET, "HTTP %ld", k->status);
  ef_err_wrap (err, "blob %s: giving up after %d attempts", j->d->digest, j->attempts);
  return rc;
}

/* j's mirror failed it: the next host takes over at once, with the bytes
 * kept (they are checked against the digest all the same).  kill: the
 * mirror is skipped for the rest of the pull. */
static void
job_failover (struct job *j, long route, bool kill)
{
  if (kill)
    route_of (j->x, route)->dead = true;
  if (j->route == route)
    j->route = reg_routes_next (j->x->routes, j->route, REG_CAP_PULL);
  j->attempts = 0;
  j->not_before = 0;
  j->reauthed = false;
}

/* Start j over, from nothing, after not_before. */
static void
job_forget (struct job *j)
{
  blob_count (j, -j->counted);
  reg_ingest_free (j->ing);
  j->ing = NULL;
  j->state = JOB_QUEUED;
  j->ntodo = 0;
  j->resumed = false;
  j->not_before = 0;
}

/* Every byte is in: commit the blob.  One whose digest does not match
 * starts over once, from nothing and in one stream (an earlier run, or
 * a registry's ranges, may have left wrong bytes); one a mirror wrote
 * starts over elsewhere, and the mirror is not asked again. */
static int
job_commit (struct job *j, enum verdict *v, ef_err **err)
{
  ef_err *e = NULL;
  int rc = reg_ingest_commit (j->ing, &e);
  bool pieces = !j->whole;

  *v = JOB_COMMITTED;
  if (rc == -EF_VERIFY && j->mirrors_wrote)
    {
      ef_err_free (e);
      for (size_t i = 0; i < reg_routes_count (j->x->routes); i++)
        if (j->mirrors_wrote & (1u << i))
          route_of (j->x, (long) i)->dead = true;
      j->mirrors_wrote = 0;
      j->attempts = 0;
      job_forget (j);
      *v = JOB_AGAIN;
      return 0;
    }
  if (rc == -EF_VERIFY && (j->resumed || pieces) && !j->restarted)
    {
      ef_err_free (e);
      j->x->stats->bytes_reused -= j->resumed_bytes;
      if (j->result)
        j->result->stats.bytes_reused -= j->resumed_bytes;
      job_forget (j);
      j->restarted = true;
      if (pieces)
        j->x->ranges_bad |= 1u << j->route;
      *v = JOB_AGAIN;
      return 0;
    }
  if (rc < 0)
    return ef_err_propagate (err, e);
  if (j->result)
    j->result->source = xstrdup (reg_host_name (job_host (j)));
  return 0;
}

/* Was it worth a retry, and when: a failure of transfers begun before
 * the last one counted is that same failure (a link that went down takes
 * all of them). */
static int
conn_retry (struct conn *k, struct job *j, CURLcode res, bool progressed, ef_err **err)
{
  struct xfer *x = j->x;
  curl_off_t ra = 0;

  if (progressed)
    j->attempts = 0;
  if (k->begun_ms > j->failed_at || progressed)
    {
      j->attempts++;
      j->failed_at = ef_now_ms ();
      if (j->attempts >= x->retry->max_attempts)
        return job_give_up (k, j, res, err);
      if (res == CURLE_OK)
        curl_easy_getinfo (k->e, CURLINFO_RETRY_AFTER, &ra);
      j->not_before = ef_now_ms () + http_backoff_ms (x->retry, j->attempts, (long) ra);
    }
  return 0;
}

/* What a failed transfer means: re-authorize, fail over, or retry. */
static int
conn_failed (struct conn *k, struct job *j, CURLcode res, bool progressed, ef_err **err)
{
  struct xfer *x = j->x;
  int rc;

  if (res == CURLE_OK && k->status == 401 && !j->reauthed)
    {
      j->reauthed = true;
      j->not_before = 0;
      rc = reg_session_reauth (x->session, route_of (x, k->route)->h, k->e, x->ref->domain, x->scope, err);
      if (rc < 0 && route_of (x, k->route)->mirror)
        {
          ef_err_clear (err);
          job_failover (j, k->route, true);
          return 0;
        }
      return rc;
    }
  if (route_of (x, k->route)->mirror && !http_cancelled (x->retry))
    {
      /* any other failure of a mirror: the next host, at once; a mirror
         that has not got the blob stays in use for the others */
      job_failover (j, k->route, !(res == CURLE_OK && k->status == 404));
      return 0;
    }
  if (k->fault == FAULT_NONE && !(res == CURLE_OK && k->status == 416) && !http_retryable (res, k->status))
    {
      if (res == CURLE_OK)
        return job_refused (k, j, err);
      rc = http_error (err, res, k->errbuf, "is the registry's CA in --ca-file or certs.d?");
      ef_err_wrap (err, "blob %s", j->d->digest);
      return rc;
    }
  /* Retryable: a dropped connection, a stall, 408/429/5xx, a 416 or a wrong range. */
  return conn_retry (k, j, res, progressed, err);
}

int
conn_finish (struct conn *k, CURLcode res, enum verdict *v, ef_err **err)
{
  struct job *j = k->j;
  struct xfer *x = j->x;
  /* Progress that resets the retry budget: a stall after a trickle of
   * bytes is still a stall (skopeo asks for 1 MiB; edge links are slower). */
  bool progressed = k->seg && reg_ingest_seg_pos (k->seg) - k->from >= PROGRESS_MIN;
  bool in = k->seg && reg_ingest_seg_pos (k->seg) == k->to;
  enum job_fault fault = k->fault;
  int rc;

  *v = JOB_AGAIN;
  if (!k->checked)
    curl_easy_getinfo (k->e, CURLINFO_RESPONSE_CODE, &k->status);
  if (fault == FAULT_WRITE)
    {
      rc = ef_err_propagate (err, k->werr);
      k->werr = NULL;
      conn_release (k, NULL);
      return rc;
    }
  rc = conn_release (k, err);
  if (rc < 0)
    return rc;
  if (in && (k->status == 200 || k->status == 206))
    {
      /* the piece is whole, however its transfer ended: what it carried
         (a config of a few hundred bytes measures the round trip, not that) */
      int64_t ms = ef_now_ms () - k->begun_ms, rate = (k->to - k->from) * 1000 / (ms > 0 ? ms : 1);
      if (k->to - k->from >= RATE_PIECE_MIN)
        x->conn_rate = x->conn_rate ? (x->conn_rate * 2 + rate) / 3 : rate;
      res = CURLE_OK;
    }
  else if (fault == FAULT_RANGE || (res == CURLE_OK && k->status == 416))
    {
      /* a range we did not ask for: the blob starts over in one stream */
      conn_stop_job (x, j);
      rc = pieces_restart_whole (j, err);
      progressed = false;
    }
  else if (res == CURLE_OK && (k->status == 200 || k->status == 206))
    res = CURLE_PARTIAL_FILE; /* short body: resume it */
  if (rc == 0 && !(res == CURLE_OK && (k->status == 200 || k->status == 206)))
    rc = conn_failed (k, j, res, progressed, err);
  else if (rc == 0 && j->conns == 0 && j->ntodo == 0)
    rc = job_commit (j, v, err);
  return rc;
}
