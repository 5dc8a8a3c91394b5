/* blobs.c: see blobs.h.  The engine: a libcurl multi handle running up
 * to the client's jobs at once, within its rate cap and download window;
 * how many run grows while what they carry together grows.  pieces.c
 * cuts the blobs into pieces; each transfer of one is prepared and judged
 * by blobs_job.c. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "blobs_job.h"

#define PROBE_MIN_MS 1000 /* goodput is measured over at least this long ... */
#define PROBE_RTTS 4      /* ... and this many of the slowest connection's set-up times ... */
#define PROBE_MAX_MS 4000 /* ... up to this */
#define PROBE_GAIN 1.05   /* more transfers that carry less than this much more: enough */
#define STUCK_MS 4000     /* a piece without a byte this long (or eight set-ups), others moving: dropped */

/* Set up x and its jobs; the same blob twice in one image is fetched once. */
static int
xfer_init (struct xfer *x, reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
           reg_store *s, struct reg_blob_result *per, ef_err **err)
{
  int rc = reg_client_routes (c, ref, &x->routes, err);

  if (rc < 0)
    return rc;
  if (reg_routes_count (x->routes) > 31)
    return ef_err_set (err, EF_USAGE, "hosts.toml of %s names too many hosts", ref->domain);
  x->rate = reg_client_opts (c)->limit_rate;
  x->c = c;
  x->session = reg_client_session (c);
  x->retry = reg_client_retry (c);
  x->ref = ref;
  x->s = s;
  x->scope = reg_client_scope (ref);
  x->n = x->remaining = n;
  x->jobs = xcalloc (n ? n : 1, sizeof *x->jobs);
  x->cap = reg_client_opts (c)->jobs;
  x->limit = x->cap < REG_START_CONNS ? x->cap : REG_START_CONNS;
  x->conns = xcalloc ((size_t) x->cap, sizeof *x->conns);
  for (int k = 0; k < x->cap; k++)
    ef_buf_init (&x->conns[k].errbody, ERRBODY_MAX);
  for (size_t i = 0; i < n; i++)
    {
      struct job *j = &x->jobs[i];
      x->total += descs[i]->size;
      j->x = x;
      j->d = descs[i];
      j->route = -1;
      j->result = per ? &per[i] : NULL;
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
  rc = reg_writer_new (&x->writer, (size_t) (x->cap < 4 ? x->cap : 4), err);
  if (rc < 0)
    return rc;
  curl_multi_setopt (x->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long) x->cap);
  return 0;
}

static void
xfer_dispose (struct xfer *x)
{
  for (int k = 0; k < x->cap; k++)
    {
      struct conn *c = &x->conns[k];
      if (c->j)
        {
          curl_multi_remove_handle (x->m, c->e);
          reg_ingest_seg_close (c->seg, NULL);
        }
      if (c->e)
        curl_easy_cleanup (c->e);
      ef_buf_dispose (&c->errbody);
      ef_err_free (c->werr);
    }
  for (size_t i = 0; i < x->n; i++)
    {
      reg_ingest_free (x->jobs[i].ing); /* partial bytes stay for a resume */
      free (x->jobs[i].url);
      free (x->jobs[i].todo);
    }
  free (x->conns);
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
  blob_report (j->x, false);
}

/* Outside the client's download window no transfer runs: those under way
 * stop with their bytes kept, to resume in the next window. */
static bool
window_closed (const struct xfer *x)
{
  const struct reg_client_opts *o = reg_client_opts (x->c);
  return o->may_fetch && !o->may_fetch (o->may_fetch_ud);
}

/* Open j if it is not yet; false when there is nothing to fetch of it now. */
static int
job_ready (struct xfer *x, struct job *j, int64_t now, int64_t *wait, ef_err **err)
{
  enum prep p;
  int rc;

  if (j->state == JOB_DONE)
    return 0;
  if (j->not_before > now)
    {
      if (j->not_before - now < *wait)
        *wait = j->not_before - now;
      return 0;
    }
  if (j->state == JOB_OPEN)
    return 1;
  if (window_closed (x) && !reg_store_has (x->s, j->d->digest, j->d->size))
    return ef_err_set (err, EF_NET, "outside the download window: %zu blobs wait", x->remaining);
  rc = pieces_open (j, &p, err);
  if (rc < 0)
    return rc;
  if (p == PREP_BUSY)
    {
      j->not_before = now + BUSY_WAIT_MS;
      if (*wait > BUSY_WAIT_MS)
        *wait = BUSY_WAIT_MS;
      return 0;
    }
  if (p == PREP_DONE)
    {
      job_done (j);
      return 0;
    }
  j->state = JOB_OPEN;
  return 1;
}

static struct conn *
free_conn (struct xfer *x)
{
  for (int k = 0; k < x->cap; k++)
    if (x->conns[k].j == NULL)
      return &x->conns[k];
  return NULL;
}

static int
start (struct xfer *x, struct job *j, int64_t from, int64_t to, ef_err **err)
{
  struct conn *k = free_conn (x);
  int rc = conn_prepare (k, j, from, to, err);

  if (rc < 0)
    return rc;
  curl_multi_add_handle (x->m, k->e);
  x->active++;
  x->shared_for = -1;
  return 0;
}

/* Start what may start now; *wait is how long until the next may.  The
 * blobs are served in order: the first one's pieces before the next.  In
 * order (x->in_order), a blob waits for the one before it; where blobs
 * come in pieces, only until every piece of it is under way: a connection
 * its last pieces leave free goes to the next blob, not idle. */
static int
start_ready (struct xfer *x, int64_t *wait, ef_err **err)
{
  int64_t now = ef_now_ms (), from, to;

  for (size_t i = 0; i < x->n && x->active < x->limit; i++)
    {
      struct job *j = &x->jobs[i];
      int rc = job_ready (x, j, now, wait, err);
      if (rc < 0)
        return rc;
      while (rc > 0 && x->active < x->limit && pieces_take (j, &from, &to))
        {
          int st = start (x, j, from, to, err);
          if (st < 0)
            return st;
        }
      if (x->in_order && j->state != JOB_DONE && (rc <= 0 || !pieces_under_way (j)))
        break;
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
      struct conn *k;
      struct job *j;
      enum verdict v;
      int rc;

      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &k);
      curl_multi_remove_handle (x->m, k->e);
      x->active--;
      x->shared_for = -1;
      j = k->j;
      rc = conn_finish (k, msg->data.result, &v, err);
      if (rc < 0)
        return rc;
      if (v == JOB_COMMITTED)
        job_done (j);
    }
  return 0;
}

/* The rate cap: every running transfer gets an equal share of it, set
 * again whenever one starts or ends.  libcurl paces each transfer by not
 * reading its socket while it is ahead, so TCP holds the sender back. */
static void
share_rate (struct xfer *x)
{
  for (int k = 0; x->rate && x->active > 0 && k < x->cap; k++)
    if (x->conns[k].j)
      curl_easy_setopt (x->conns[k].e, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t) (x->rate / x->active));
}

/* How many transfers may run: from REG_START_CONNS up, while it pays.  With
 * every allowed transfer running, and after a probe's time for new ones
 * to get going, the goodput over the next probe is compared with the
 * last: grown by PROBE_GAIN, twice as many may run; not, and that is
 * where it stays.  On a lossy link each TCP stream carries a fraction of
 * the rate (Mathis: MSS/RTT x 1.22/sqrt(p)), so it takes several to fill
 * it; on a clean one, more gain nothing. */
/* How long a probe lasts: PROBE_RTTS of the slowest set-up (TCP and
 * TLS) of the connections running, within bounds; x->setup_ms with it. */
static int64_t
probe_span (struct xfer *x)
{
  int64_t span = PROBE_MIN_MS;

  for (int k = 0; k < x->cap; k++)
    {
      curl_off_t us = 0;
      if (x->conns[k].j && curl_easy_getinfo (x->conns[k].e, CURLINFO_APPCONNECT_TIME_T, &us) == CURLE_OK
          && us / 1000 * PROBE_RTTS > span)
        span = us / 1000 * PROBE_RTTS;
    }
  span = span > PROBE_MAX_MS ? PROBE_MAX_MS : span;
  x->setup_ms = span / PROBE_RTTS;
  return span;
}

static void
grow (struct xfer *x)
{
  int64_t now = ef_now_ms ();
  double rate;

  if (x->grown_enough || x->limit >= x->cap || x->rate)
    return;
  if (x->active < x->limit)
    {
      x->probe_ms = 0; /* not enough to do for more: measure again when there is */
      return;
    }
  if (x->probe_ms == 0)
    {
      /* settle first: new connections are still in their handshakes and slow start */
      x->probe_ms = now + probe_span (x);
      x->probe_bytes = -1;
      return;
    }
  if (x->probe_bytes < 0 && now >= x->probe_ms)
    {
      x->probe_span = probe_span (x); /* the new ones are set up by now */
      x->probe_ms = now;
      x->probe_bytes = x->stats->bytes_fetched;
      return;
    }
  if (x->probe_bytes < 0 || now - x->probe_ms < x->probe_span)
    return;
  rate = (double) (x->stats->bytes_fetched - x->probe_bytes) * 1000.0 / (double) (now - x->probe_ms);
  x->probe_ms = 0;
  if (x->probe_rate > 0 && rate < PROBE_GAIN * (double) x->probe_rate)
    {
      x->grown_enough = true;
      return;
    }
  x->probe_rate = (int64_t) rate;
  x->limit = x->limit * 2 > x->cap ? x->cap : x->limit * 2;
}

/* A piece that has had no byte for STUCK_MS (or eight set-ups) while the
 * others bring bytes is on a connection the link lost: a SYN or a segment
 * in backoff since an outage, or one the far end forgot.  Its piece goes
 * back, to be taken at once on a new connection; no attempt is counted.
 * While no transfer brings any (the link is down, or the one piece left
 * is on such a connection), one such piece a second is dropped the same
 * way: its new connection's SYN finds the link as soon as it is back,
 * where the old ones' retransmissions back off for seconds more.  Not for
 * a blob in one stream (that would start over without ranges), nor under
 * a rate cap (a paced transfer is slow, not lost), nor for a piece whose
 * bytes are all in (its transfer ends as usual). */
static void
drop_stuck (struct xfer *x)
{
  int64_t now = ef_now_ms (), stuck = x->setup_ms * 8 > STUCK_MS ? x->setup_ms * 8 : STUCK_MS;
  bool down = now - x->last_byte >= stuck;
  struct conn *oldest = NULL;

  if (x->rate || (now - x->last_byte >= 1000 && !down) || (down && now - x->dropped_ms < 1000))
    return;
  for (int i = 0; i < x->cap; i++)
    {
      struct conn *k = &x->conns[i];
      if (!k->j || k->j->whole || k->route < 0 || !(x->ranges_ok & (1u << k->route)) || now - k->last_ms < stuck
          || !k->seg || reg_ingest_seg_pos (k->seg) >= k->to)
        continue;
      if (!down)
        conn_drop (x, k);
      else if (oldest == NULL || k->last_ms < oldest->last_ms)
        oldest = k;
    }
  if (oldest)
    {
      conn_drop (x, oldest);
      x->dropped_ms = now;
    }
}

/* Stopped: a blob whose bytes are all on disk, not yet opened (a run
 * cut between its last byte and its commit left it so), still goes into
 * the store; it needs no request. */
static void
keep_whole (struct xfer *x)
{
  for (size_t i = 0; i < x->n; i++)
    {
      struct job *j = &x->jobs[i];
      enum prep p;
      if (j->state == JOB_QUEUED && j->ing == NULL && reg_ingest_whole_on_disk (x->s, j->d->digest, j->d->size)
          && pieces_open (j, &p, NULL) == 0 && p == PREP_DONE)
        job_done (j);
    }
}

/* Tell the caller when the link seems down (no byte for a while, blobs
 * still to come) and when it is back. */
static void
note_stall (struct xfer *x)
{
  bool waiting = ef_now_ms () - x->last_byte >= REG_STALL_NOTE_MS;

  if (x->stalled && waiting != x->stall_noted)
    {
      x->stall_noted = waiting;
      x->stalled (x->payload, waiting);
    }
}

int
reg_blobs_fetch (reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
                 reg_store *s, const struct reg_blobs_opts *o, struct reg_fetch_stats *stats,
                 struct reg_blob_result *per, ef_err **err)
{
  struct xfer x = { 0 };
  int64_t window_checked = 0;
  int rc;

  x.progress = o ? o->progress : NULL;
  x.payload = o ? o->payload : NULL;
  x.in_order = o && o->in_order;
  x.stalled = o ? o->stalled : NULL;
  x.last_byte = ef_now_ms ();
  x.stats = stats;
  rc = xfer_init (&x, c, ref, descs, n, s, per, err);
  while (rc == 0 && x.remaining > 0)
    {
      int64_t wait = 1000;
      int running;

      if (http_cancelled (x.retry))
        {
          /* a transfer whose bytes are all in still ends, and its blob
             goes into the store: a reader following it may have had
             them all already (a site cache stopped right after) */
          curl_multi_perform (x.m, &running);
          reap (&x, err);
          keep_whole (&x);
          ef_err_clear (err);
          rc = ef_err_set (err, EF_NET, "interrupted");
          break;
        }
      rc = start_ready (&x, &wait, err);
      if (rc < 0 || x.remaining == 0)
        break;
      grow (&x);
      if (x.shared_for < 0)
        {
          share_rate (&x);
          x.shared_for = x.active;
        }
      if (x.active > 0 && ef_now_ms () - window_checked >= 1000)
        {
          window_checked = ef_now_ms ();
          if (window_closed (&x))
            {
              rc = ef_err_set (err, EF_NET, "outside the download window: %zu blobs wait, their bytes kept",
                               x.remaining);
              break;
            }
        }
      curl_multi_perform (x.m, &running);
      rc = reap (&x, err);
      note_stall (&x);
      drop_stuck (&x);
      /* a transfer that ended frees a slot: fill it now, not after a poll */
      if (rc == 0 && x.remaining > 0 && x.shared_for >= 0)
        curl_multi_poll (x.m, NULL, 0, (int) (wait > 0 ? wait : 1), NULL);
    }
  if (rc == 0)
    blob_report (&x, true);
  if (x.stall_noted)
    x.stalled (x.payload, false);
  xfer_dispose (&x);
  return rc;
}
