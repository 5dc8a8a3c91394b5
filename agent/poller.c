/* poller.c: see poller.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "horizon/horizon.h"
#include "poller.h"

struct poller
{
  const struct agent_config *cfg;
  exchange *ex;
  bool consume;
  pthread_t thread;
  bool started;
  int pipe[2];
  volatile sig_atomic_t quit; /* the exchange handle's cancel flag too */

  pthread_mutex_t mu; /* the rest */
  pthread_cond_t cv;
  struct poll_news news;
  struct poll_intervals iv;
  bool iv_changed;  /* the node's intervals (or its org's) may have moved */
  json_t *node_iv;  /* the node's heartbeatIntervals, as last read */
  json_t *services;
};

/* Wait up to ms, or until told to quit; false when new intervals came
 * meanwhile (p->mu not held). */
static bool
nap (poller *p, long long ms)
{
  struct timespec ts;
  bool changed;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t) (ms / 1000);
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000)
    {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
  pthread_mutex_lock (&p->mu);
  while (!p->quit && !p->iv_changed && pthread_cond_timedwait (&p->cv, &p->mu, &ts) != ETIMEDOUT)
    ;
  changed = p->iv_changed;
  pthread_mutex_unlock (&p->mu);
  return !changed;
}

/* One poll's answer, into the news (p->mu held).  Returns whether
 * anything happened, which brings the interval back to its minimum. */
static bool
digest (poller *p, json_t *resp)
{
  struct poll_news *n = &p->news;
  time_t now = time (NULL);
  bool news = false;
  json_t *ch;
  size_t i;

  /* after an outage longer than the exchange keeps changes, or when it
   * says it held some back, a full sync: one may have been missed */
  if (n->last_ok && now - n->last_ok > p->cfg->change_retention)
    news = n->due = true;
  if (json_is_true (json_object_get (resp, "hitMaxRecords")))
    news = n->due = true;
  json_array_foreach (json_object_get (resp, "changes"), i, ch)
  {
    const char *res = json_string_value (json_object_get (ch, "resource"));
    const char *org = json_string_value (json_object_get (ch, "orgId"));
    if (hzn_change_relevant (ch, p->services))
      news = n->due = true;
    else if (hzn_change_own_node (ch, p->cfg))
      news = n->node_changed = true;
    else if (res && org && strcmp (res, "org") == 0 && strcmp (org, p->cfg->org) == 0)
      news = p->iv_changed = true; /* its heartbeatIntervals may have moved */
  }
  if (json_is_integer (json_object_get (resp, "mostRecentChangeId")))
    n->change_id = json_integer_value (json_object_get (resp, "mostRecentChangeId"));
  n->last_ok = now;
  return news;
}

/* The intervals: the node's, else its org's (read with this thread's
 * own handle), else the configured ones; into p->iv (p->mu not held). */
static long long
resolve_intervals (poller *p)
{
  long v[3] = { p->cfg->poll_min, p->cfg->poll_max, p->cfg->poll_min };
  json_t *node_iv;

  pthread_mutex_lock (&p->mu);
  node_iv = json_incref (p->node_iv);
  p->iv_changed = false;
  pthread_mutex_unlock (&p->mu);
  hzn_heartbeat_intervals (p->ex, p->cfg, node_iv, v);
  json_decref (node_iv);
  pthread_mutex_lock (&p->mu);
  p->iv = (struct poll_intervals){ v[0], v[1], v[2] };
  p->news.iv = p->iv;
  pthread_mutex_unlock (&p->mu);
  return v[0] * 1000;
}

static void *
run (void *ud)
{
  poller *p = ud;
  long long interval, quiet = 0;
  bool first = true;

  pthread_mutex_lock (&p->mu);
  interval = p->iv.min * 1000;
  pthread_mutex_unlock (&p->mu);
  for (;;)
    {
      cleanup_err ef_err *err = NULL;
      json_t *resp = NULL;
      json_int_t from;
      bool news = false, reread;
      int rc;

      /* `agent --once` heartbeats at once; the daemon has just synced.
       * New intervals start a new wait at their minimum. */
      if ((p->consume || !first) && !nap (p, interval))
        {
          interval = resolve_intervals (p);
          quiet = 0;
          continue;
        }
      first = false;
      if (p->quit)
        break;
      pthread_mutex_lock (&p->mu);
      from = p->news.change_id;
      pthread_mutex_unlock (&p->mu);
      rc = hzn_poll_changes (p->ex, p->cfg, from, &resp, &err);
      if (p->quit)
        {
          json_decref (resp);
          break;
        }
      pthread_mutex_lock (&p->mu);
      p->news.down = rc < 0;
      if (rc == -EF_AUTH || rc == -EF_USAGE)
        p->news.stop = -rc;
      if (rc < 0)
        snprintf (p->news.error, sizeof p->news.error, "%s", ef_err_msg (err));
      else
        {
          p->news.polls++;
          if (p->consume)
            news = digest (p, resp);
        }
      /* failures back off (doubling); news brings the minimum back; quiet
       * polls slow down as anax's changes worker does (updatePollingInterval):
       * after max/interval quiet polls in a row, adjust more */
      if (rc < 0)
        interval = interval * 2;
      else if (news)
        {
          interval = p->iv.min * 1000;
          quiet = 0;
        }
      else if (interval < p->iv.max * 1000 && ++quiet >= p->iv.max * 1000 / interval)
        {
          interval += p->iv.adjust * 1000;
          quiet = 0;
        }
      if (interval > p->iv.max * 1000)
        interval = p->iv.max * 1000;
      if (interval < p->iv.min * 1000)
        interval = p->iv.min * 1000;
      reread = p->iv_changed;
      pthread_mutex_unlock (&p->mu);
      json_decref (resp);
      if (reread)
        interval = resolve_intervals (p);
      if (write (p->pipe[1], "p", 1) < 0)
        { /* full: the loop has a wake-up pending already */
        }
    }
  return NULL;
}

int
poller_new (poller **out, const struct agent_config *cfg, const exchange *from, json_int_t change_id, long long last_ok,
            bool consume, ef_err **err)
{
  poller *p = xcalloc (1, sizeof *p);
  sigset_t all, old;
  int rc;

  *out = NULL;
  p->cfg = cfg;
  p->consume = consume;
  p->news.change_id = change_id;
  p->news.last_ok = last_ok;
  p->iv = (struct poll_intervals){ cfg->poll_min, cfg->poll_max, cfg->poll_min };
  p->pipe[0] = p->pipe[1] = -1;
  pthread_mutex_init (&p->mu, NULL);
  {
    pthread_condattr_t ca;
    pthread_condattr_init (&ca);
    pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
    pthread_cond_init (&p->cv, &ca);
    pthread_condattr_destroy (&ca);
  }
  rc = exchange_dup (&p->ex, from, &p->quit, err);
  if (rc == 0 && pipe2 (p->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    rc = ef_err_sys (err, EF_LOCAL, errno, "pipe");
  if (rc == 0)
    {
      /* signals are for the agent's loop, never this thread */
      sigfillset (&all);
      pthread_sigmask (SIG_SETMASK, &all, &old);
      if ((errno = pthread_create (&p->thread, NULL, run, p)) != 0)
        rc = ef_err_sys (err, EF_LOCAL, errno, "start the exchange poller");
      else
        p->started = true;
      pthread_sigmask (SIG_SETMASK, &old, NULL);
    }
  if (rc < 0)
    {
      poller_free (p);
      return rc;
    }
  *out = p;
  return 0;
}

void
poller_free (poller *p)
{
  if (p == NULL)
    return;
  if (p->started)
    {
      pthread_mutex_lock (&p->mu);
      p->quit = 1;
      pthread_cond_signal (&p->cv);
      pthread_mutex_unlock (&p->mu);
      pthread_join (p->thread, NULL);
    }
  exchange_free (p->ex);
  if (p->pipe[0] >= 0)
    close (p->pipe[0]);
  if (p->pipe[1] >= 0)
    close (p->pipe[1]);
  json_decref (p->services);
  json_decref (p->node_iv);
  pthread_cond_destroy (&p->cv);
  pthread_mutex_destroy (&p->mu);
  free (p);
}

int
poller_fd (const poller *p)
{
  return p->pipe[0];
}

void
poller_take (poller *p, struct poll_news *out)
{
  char buf[64];

  while (read (p->pipe[0], buf, sizeof buf) > 0)
    ;
  pthread_mutex_lock (&p->mu);
  *out = p->news;
  p->news.polls = 0;
  p->news.due = p->news.node_changed = false;
  p->news.error[0] = '\0';
  pthread_mutex_unlock (&p->mu);
}

void
poller_follow (poller *p, json_t *services)
{
  json_t *copy = json_deep_copy (services);

  pthread_mutex_lock (&p->mu);
  json_decref (p->services);
  p->services = copy;
  pthread_mutex_unlock (&p->mu);
}

void
poller_node (void *ud, json_t *intervals)
{
  poller *p = ud;

  json_t *want = intervals ? intervals : json_null ();

  pthread_mutex_lock (&p->mu);
  if (p->node_iv == NULL || !json_equal (p->node_iv, want))
    {
      json_decref (p->node_iv);
      p->node_iv = json_deep_copy (want);
      p->iv_changed = true;
      pthread_cond_signal (&p->cv);
    }
  pthread_mutex_unlock (&p->mu);
}
