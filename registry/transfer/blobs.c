/* blobs.c: see blobs.h.  The engine: a libcurl multi handle running up
 * to the client's jobs at once, within its rate cap and download window;
 * each attempt of a blob is prepared and judged by blobs_job.c. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "blobs_job.h"

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
  for (size_t i = 0; i < n; i++)
    {
      struct job *j = &x->jobs[i];
      x->total += descs[i]->size;
      j->x = x;
      j->d = descs[i];
      j->route = -1;
      j->result = per ? &per[i] : NULL;
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
  rc = reg_writer_new (&x->writer, (size_t) reg_client_opts (c)->jobs, err);
  if (rc < 0)
    return rc;
  curl_multi_setopt (x->m, CURLMOPT_MAX_HOST_CONNECTIONS, (long) reg_client_opts (c)->jobs);
  return 0;
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

/* Start what may start now; *wait is how long until the next may. */
static int
start_ready (struct xfer *x, int64_t *wait, ef_err **err)
{
  int64_t now = ef_now_ms ();

  for (size_t i = 0; i < x->n && x->active < x->max_active; i++)
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
      if (window_closed (x) && j->ing == NULL && !reg_store_has (x->s, j->d->digest, j->d->size))
        return ef_err_set (err, EF_NET, "outside the download window: %zu blobs wait", x->remaining);
      rc = blob_job_prepare (j, &p, err);
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
          x->shared_for = -1;
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
      x->shared_for = -1;
      j->state = JOB_QUEUED;
      rc = blob_job_finish (j, msg->data.result, &v, err);
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
  int n = 0;

  for (size_t i = 0; i < x->n; i++)
    n += x->jobs[i].state == JOB_RUNNING;
  for (size_t i = 0; x->rate && n > 0 && i < x->n; i++)
    if (x->jobs[i].state == JOB_RUNNING)
      curl_easy_setopt (x->jobs[i].e, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t) (x->rate / n));
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
  x.max_active = o && o->in_order ? 1 : reg_client_opts (c)->jobs;
  x.stats = stats;
  rc = xfer_init (&x, c, ref, descs, n, s, per, err);
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
      /* a transfer that ended frees a slot: fill it now, not after a poll */
      if (rc == 0 && x.remaining > 0 && x.shared_for >= 0)
        curl_multi_poll (x.m, NULL, 0, (int) (wait > 0 ? wait : 1), NULL);
    }
  if (rc == 0)
    blob_report (&x, true);
  xfer_dispose (&x);
  return rc;
}
