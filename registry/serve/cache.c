/* cache.c: see cache.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../../common/digest.h"
#include "../../common/text.h"
#include "../../common/util.h"
#include "../transfer/blobs.h"
#include "cache.h"
#include "../manifest.h"

#define SIZES_MAX 4096 /* blob sizes remembered from manifests seen */

struct reg_cache_fetch
{
  struct reg_cache_fetch *next;
  reg_cache *c;
  char digest[EF_DIGEST_LEN + 1];
  char *ref; /* ORIGIN/NAME */
  int64_t size;
  volatile sig_atomic_t arriving;
  int refs; /* under c->mu */
};

struct known_size
{
  char digest[EF_DIGEST_LEN + 1];
  int64_t size;
};

struct reg_cache
{
  reg_store *s;
  char **origins;
  struct reg_client_opts o;
  reg_client *docs; /* manifests and HEADs, one request at a time (docs_mu) */
  pthread_mutex_t docs_mu, mu;
  reg_cache_fetch *fetching; /* under mu */
  struct known_size *sizes;  /* under mu, a ring */
  size_t nsizes, next_size;
  int64_t origin_bytes; /* atomic */
};

int
reg_cache_new (reg_cache **out, reg_store *s, const char *const *origins, const struct reg_client_opts *o,
               ef_err **err)
{
  reg_cache *c = xcalloc (1, sizeof *c);
  size_t n = 0;
  int rc;

  *out = NULL;
  while (origins && origins[n])
    n++;
  c->s = s;
  c->o = *o;
  c->origins = xcalloc (n + 1, sizeof *c->origins);
  for (size_t i = 0; i < n; i++)
    c->origins[i] = xstrdup (origins[i]);
  c->sizes = xcalloc (SIZES_MAX, sizeof *c->sizes);
  pthread_mutex_init (&c->mu, NULL);
  pthread_mutex_init (&c->docs_mu, NULL);
  rc = reg_client_new (&c->docs, o, err);
  if (rc < 0)
    {
      reg_cache_free (c);
      return rc;
    }
  *out = c;
  return 0;
}

void
reg_cache_free (reg_cache *c)
{
  if (c == NULL)
    return;
  /* fetch threads hold references: wait for them to end */
  for (;;)
    {
      bool busy;
      pthread_mutex_lock (&c->mu);
      busy = c->fetching != NULL;
      pthread_mutex_unlock (&c->mu);
      if (!busy)
        break;
      struct timespec ts = { 0, 50000000 };
      nanosleep (&ts, NULL);
    }
  reg_client_free (c->docs);
  ef_strv_free (c->origins);
  free (c->sizes);
  pthread_mutex_destroy (&c->mu);
  pthread_mutex_destroy (&c->docs_mu);
  free (c);
}

bool
reg_cache_serves (const reg_cache *c, const char *origin)
{
  for (size_t i = 0; origin && c->origins[i]; i++)
    if (strcasecmp (c->origins[i], origin) == 0)
      return true;
  return false;
}

/* Remember the sizes of an image manifest's blobs: a blob is asked for by
 * digest alone, and the transfer needs its size. */
static void
learn (reg_cache *c, const reg_manifest *m)
{
  if (reg_manifest_kind (m) != REG_IMAGE)
    return;
  pthread_mutex_lock (&c->mu);
  for (size_t i = 0; i <= reg_manifest_count (m); i++)
    {
      const struct reg_desc *d = i == 0 ? reg_manifest_config (m) : reg_manifest_entry (m, i - 1);
      struct known_size *k = &c->sizes[c->next_size];
      snprintf (k->digest, sizeof k->digest, "%s", d->digest);
      k->size = d->size;
      c->next_size = (c->next_size + 1) % SIZES_MAX;
      if (c->nsizes < SIZES_MAX)
        c->nsizes++;
    }
  pthread_mutex_unlock (&c->mu);
}

static int64_t
known_size (reg_cache *c, const char *digest)
{
  int64_t size = -1;

  pthread_mutex_lock (&c->mu);
  for (size_t i = 0; i < c->nsizes && size < 0; i++)
    if (strcmp (c->sizes[i].digest, digest) == 0)
      size = c->sizes[i].size;
  pthread_mutex_unlock (&c->mu);
  return size;
}

static int
parse_ref (const char *origin, const char *name, const char *tail, struct reg_ref **ref, ef_err **err)
{
  cleanup_free char *s = xasprintf ("%s/%s%s", origin, name, tail);
  return reg_ref_parse (ref, s, err);
}

/* The manifest by tag from the origin, kept and recorded; by digest from
 * the store, else from the origin. */
static int
fetch_manifest (reg_cache *c, const struct reg_ref *ref, const char *want, char **digest, ef_err **err)
{
  struct reg_manifest_resp resp = { 0 };
  reg_manifest *m = NULL;
  int rc;

  pthread_mutex_lock (&c->docs_mu);
  rc = reg_client_get_manifest (c->docs, ref, want, &resp, err);
  pthread_mutex_unlock (&c->docs_mu);
  if (rc == 0)
    rc = reg_manifest_parse (&m, resp.body, resp.len, resp.content_type, err);
  if (rc == 0)
    rc = reg_store_put (c->s, resp.digest, resp.body, resp.len, err);
  if (rc == 0)
    {
      cleanup_free char *name = reg_ref_string (ref);
      bool index = reg_manifest_kind (m) != REG_IMAGE;
      learn (c, m);
      pthread_mutex_lock (&c->mu); /* images.json: one writer at a time */
      rc = reg_store_record (c->s, name, index ? NULL : resp.digest, index ? resp.digest : NULL, err);
      pthread_mutex_unlock (&c->mu);
      *digest = xstrdup (resp.digest);
    }
  reg_manifest_free (m);
  reg_manifest_resp_dispose (&resp);
  return rc;
}

int
reg_cache_manifest (reg_cache *c, const char *origin, const char *name, const char *ref, char **digest,
                    ef_err **err)
{
  bool by_digest = ef_digest_parse (ref, NULL, NULL) == 0;
  cleanup_ref struct reg_ref *r = NULL;
  reg_manifest *m = NULL;
  cleanup_free char *buf = NULL;
  size_t len;
  int rc;

  *digest = NULL;
  if (by_digest && reg_store_manifest (c->s, ref, &buf, &len, &m, NULL) == 0)
    {
      learn (c, m);
      reg_manifest_free (m);
      *digest = xstrdup (ref);
      return 0;
    }
  if (!reg_cache_serves (c, origin))
    return ef_err_set (err, EF_NOTFOUND, "not in this store, and %s is not an origin of this cache",
                       origin ? origin : "(no ?ns=)");
  rc = parse_ref (origin, name, "", &r, err);
  if (rc == 0)
    rc = fetch_manifest (c, r, ref, digest, err);
  return rc;
}

static void
fetch_release_locked (reg_cache_fetch *f)
{
  reg_cache *c = f->c;

  if (--f->refs > 0)
    return;
  for (reg_cache_fetch **p = &c->fetching; *p; p = &(*p)->next)
    if (*p == f)
      {
        *p = f->next;
        break;
      }
  free (f->ref);
  free (f);
}

void
reg_cache_fetch_release (reg_cache_fetch *f)
{
  reg_cache *c;

  if (f == NULL)
    return;
  c = f->c;
  pthread_mutex_lock (&c->mu);
  fetch_release_locked (f);
  pthread_mutex_unlock (&c->mu);
}

const volatile sig_atomic_t *
reg_cache_fetch_arriving (reg_cache_fetch *f)
{
  return &f->arriving;
}

/* The fetch thread: one blob into the store, with a client of its own. */
static void *
fetch_main (void *arg)
{
  reg_cache_fetch *f = arg;
  reg_cache *c = f->c;
  struct reg_desc d = { .media_type = (char *) "application/octet-stream", .digest = f->digest, .size = f->size };
  const struct reg_desc *dp = &d;
  struct reg_fetch_stats st = { 0 };
  struct reg_ref *ref = NULL;
  reg_client *cl = NULL;
  ef_err *e = NULL;

  if (reg_ref_parse (&ref, f->ref, &e) == 0 && reg_client_new (&cl, &c->o, &e) == 0)
    reg_blobs_fetch (cl, ref, &dp, 1, c->s, NULL, &st, NULL, &e);
  __atomic_add_fetch (&c->origin_bytes, st.bytes_fetched, __ATOMIC_RELAXED);
  ef_err_free (e); /* the followers see the blob end short, and their clients try again */
  reg_client_free (cl);
  reg_ref_free (ref);
  f->arriving = 0;
  reg_cache_fetch_release (f);
  return NULL;
}

/* The fetch of digest under way, or NULL. */
static reg_cache_fetch *
fetching_locked (reg_cache *c, const char *digest)
{
  for (reg_cache_fetch *f = c->fetching; f; f = f->next)
    if (strcmp (f->digest, digest) == 0 && f->arriving)
      return f;
  return NULL;
}

int
reg_cache_blob (reg_cache *c, const char *origin, const char *name, const char *digest, int64_t *size,
                reg_cache_fetch **out, ef_err **err)
{
  cleanup_free char *path = reg_store_blob_path (c->s, digest);
  cleanup_ref struct reg_ref *r = NULL;
  reg_cache_fetch *f;
  pthread_attr_t attr;
  pthread_t th;
  struct stat st;
  int rc;

  *out = NULL;
  *size = -1;
  if (stat (path, &st) == 0 && S_ISREG (st.st_mode))
    {
      *size = st.st_size;
      return 0;
    }
  if (!reg_cache_serves (c, origin))
    return ef_err_set (err, EF_NOTFOUND, "not in this store");
  pthread_mutex_lock (&c->mu);
  f = fetching_locked (c, digest);
  if (f)
    {
      f->refs++;
      *size = f->size;
      *out = f;
    }
  pthread_mutex_unlock (&c->mu);
  if (f)
    return 0;
  /* a new fetch: its size from a manifest seen, else from the origin */
  rc = parse_ref (origin, name, "", &r, err);
  if (rc == 0 && (*size = known_size (c, digest)) < 0)
    {
      pthread_mutex_lock (&c->docs_mu);
      rc = reg_client_blob_size (c->docs, r, digest, size, err);
      pthread_mutex_unlock (&c->docs_mu);
    }
  if (rc < 0)
    return rc;
  pthread_mutex_lock (&c->mu);
  f = fetching_locked (c, digest); /* another request may have started it meanwhile */
  if (f == NULL)
    {
      f = xcalloc (1, sizeof *f);
      f->c = c;
      snprintf (f->digest, sizeof f->digest, "%s", digest);
      f->ref = reg_ref_repo (r);
      f->size = *size;
      f->arriving = 1;
      f->refs = 1; /* the thread's */
      pthread_attr_init (&attr);
      pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
      if (pthread_create (&th, &attr, fetch_main, f) != 0)
        {
          pthread_attr_destroy (&attr);
          free (f->ref);
          free (f);
          pthread_mutex_unlock (&c->mu);
          return ef_err_set (err, EF_LOCAL, "cannot start a fetch thread");
        }
      pthread_attr_destroy (&attr);
      f->next = c->fetching;
      c->fetching = f;
    }
  f->refs++;
  *size = f->size;
  *out = f;
  pthread_mutex_unlock (&c->mu);
  return 0;
}

int64_t
reg_cache_origin_bytes (const reg_cache *c)
{
  return __atomic_load_n (&c->origin_bytes, __ATOMIC_RELAXED);
}
