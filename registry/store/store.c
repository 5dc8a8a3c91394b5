/* store.c: see store.h. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <jansson.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "../../common/digest.h"
#include "../manifest.h"
#include "ranges.h"
#include "store.h"

#define STREAM_CHUNK (128 * 1024)

struct reg_store
{
  char *dir;
  int blobs_fd; /* blobs/sha256, for fsync after rename */
  int gc_fd;    /* gc.lock: shared while we are open */
  /* blobs hashed by this process (committed, or read back whole): what
   * may leave the store without being hashed again */
  char (*verified)[EF_DIGEST_HEX + 1];
  size_t nverified, cap_verified;
  pthread_mutex_t mu; /* the verified set: a server's threads read the store too */
};

static bool
verified_locked (const reg_store *s, const char *digest)
{
  for (size_t i = 0; i < s->nverified; i++)
    if (strcmp (s->verified[i], digest + 7) == 0)
      return true;
  return false;
}

static void
mark_verified (reg_store *s, const char *digest)
{
  pthread_mutex_lock (&s->mu);
  if (!verified_locked (s, digest))
    {
      if (s->nverified == s->cap_verified)
        {
          s->cap_verified = s->cap_verified ? 2 * s->cap_verified : 64;
          s->verified = xrealloc (s->verified, s->cap_verified * sizeof *s->verified);
        }
      snprintf (s->verified[s->nverified++], EF_DIGEST_HEX + 1, "%s", digest + 7);
    }
  pthread_mutex_unlock (&s->mu);
}

bool
reg_store_verified (const reg_store *s, const char *digest)
{
  bool v;

  if (strncmp (digest, "sha256:", 7) != 0)
    return false;
  pthread_mutex_lock ((pthread_mutex_t *) &s->mu);
  v = verified_locked (s, digest);
  pthread_mutex_unlock ((pthread_mutex_t *) &s->mu);
  return v;
}

int
reg_store_discard (reg_store *s, const char *digest)
{
  if (ef_digest_parse (digest, NULL, NULL) < 0)
    return -1;
  return unlinkat (s->blobs_fd, digest + 7, 0) < 0 && errno != ENOENT ? -1 : 0;
}

static int
io_error (ef_err **err, int errnum, const char *what, const char *path)
{
  return ef_err_io (err, errnum, "%s %s", what, path);
}

int
reg_store_open (reg_store **out, const char *dir, ef_err **err)
{
  cleanup_free char *blobs = xasprintf ("%s/blobs/sha256", dir);
  cleanup_free char *ingest = xasprintf ("%s/ingest", dir);
  reg_store *s;
  int fd;

  *out = NULL;
  if (ef_mkdirs (blobs, 0755) < 0)
    return io_error (err, errno, "create store", blobs);
  if (ef_mkdirs (ingest, 0700) < 0)
    return io_error (err, errno, "create store", ingest);
  fd = open (blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return io_error (err, errno, "open store", blobs);
  s = xcalloc (1, sizeof *s);
  pthread_mutex_init (&s->mu, NULL);
  s->dir = xstrdup (dir);
  s->blobs_fd = fd;
  {
    cleanup_free char *lock = xasprintf ("%s/gc.lock", dir);
    s->gc_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->gc_fd < 0 || flock (s->gc_fd, LOCK_SH) < 0)
      {
        int e = errno;
        reg_store_free (s);
        return io_error (err, e, "lock", lock);
      }
  }
  *out = s;
  return 0;
}

void
reg_store_free (reg_store *s)
{
  if (s == NULL)
    return;
  close (s->blobs_fd);
  if (s->gc_fd >= 0)
    close (s->gc_fd);
  free (s->verified);
  pthread_mutex_destroy (&s->mu);
  free (s->dir);
  free (s);
}

const char *
reg_store_dir (const reg_store *s)
{
  return s->dir;
}

char *
reg_store_blob_path (const reg_store *s, const char *digest)
{
  return xasprintf ("%s/blobs/sha256/%s", s->dir, digest + 7);
}

bool
reg_store_has (const reg_store *s, const char *digest, int64_t size)
{
  struct stat st;

  if (ef_digest_parse (digest, NULL, NULL) < 0)
    return false;
  if (fstatat (s->blobs_fd, digest + 7, &st, 0) < 0 || !S_ISREG (st.st_mode))
    return false;
  return size < 0 || st.st_size == size;
}

int
reg_store_adopt (reg_store *s, int fd, const char *tmp, const char *digest, ef_err **err)
{
  cleanup_free char *dst = reg_store_blob_path (s, digest);

  if (fsync (fd) < 0)
    return io_error (err, errno, "fsync", tmp);
  if (rename (tmp, dst) < 0)
    return io_error (err, errno, "rename into", dst);
  if (fsync (s->blobs_fd) < 0)
    return io_error (err, errno, "fsync", "blobs/sha256");
  mark_verified (s, digest);
  return 0;
}

/* Does the blob on disk hold exactly these bytes? */
static bool
same_content (const reg_store *s, const char *digest, const void *buf, size_t len)
{
  cleanup_free char *path = reg_store_blob_path (s, digest);
  cleanup_free char *old = NULL;
  size_t n;

  return ef_read_file (path, len, &old, &n) == 0 && n == len && memcmp (old, buf, len) == 0;
}

int
reg_store_put (reg_store *s, const char *digest, const void *buf, size_t len, ef_err **err)
{
  char actual[EF_DIGEST_LEN + 1];
  cleanup_free char *ingest = NULL, *dst = NULL;
  struct ef_atomic a;
  int rc;

  if ((rc = ef_digest_parse (digest, NULL, err)) < 0)

    return rc;
  ef_digest_buf (buf, len, actual);
  if (strcmp (actual, digest) != 0)
    return ef_err_set (err, EF_VERIFY, "content does not match digest %s", digest);
  /* A file of that name is no proof of that content: compare (these are
   * small: manifests, configs) and replace what is wrong. */
  if (reg_store_verified (s, digest) || (reg_store_has (s, digest, (int64_t) len) && same_content (s, digest, buf, len)))
    {
      mark_verified (s, digest);
      return 0;
    }
  ingest = xasprintf ("%s/ingest", s->dir);
  dst = reg_store_blob_path (s, digest);
  rc = ef_atomic_open_in (&a, ingest, dst, 0644, err);
  if (rc < 0)
    return rc;
  if (ef_write_all (a.fd, buf, len) < 0)
    {
      rc = io_error (err, errno, "write", dst);
      ef_atomic_abort (&a);
      return rc;
    }
  rc = ef_atomic_commit (&a, err);
  if (rc == 0)
    mark_verified (s, digest);
  return rc;
}

int
reg_store_read (reg_store *s, const char *digest, size_t max, char **out, size_t *len, ef_err **err)
{
  int rc;
  cleanup_free char *path = NULL;
  char actual[EF_DIGEST_LEN + 1];
  char *buf;
  size_t n;

  *out = NULL;
  if ((rc = ef_digest_parse (digest, NULL, err)) < 0)
    return rc;
  path = reg_store_blob_path (s, digest);
  if (ef_read_file (path, max, &buf, &n) < 0)
    {
      if (errno == ENOENT)
        return ef_err_set (err, EF_NOTFOUND, "blob %s is not in the store", digest);
      return io_error (err, errno, "read", path);
    }
  ef_digest_buf (buf, n, actual);
  if (strcmp (actual, digest) != 0)
    {
      free (buf);
      /* never to be used again: the next pull fetches it anew */
      reg_store_discard (s, digest);
      return ef_err_set (err, EF_LOCAL, "store damaged: %s did not match its digest (removed; pull again)", digest);
    }
  mark_verified (s, digest);
  *out = buf;
  *len = n;
  return 0;
}

int64_t
reg_store_available (const reg_store *s)
{
  struct statvfs v;

  if (statvfs (s->dir, &v) < 0)
    return -1;
  return (int64_t) v.f_bavail * (int64_t) v.f_frsize;
}

/* The record of a blob fetched in pieces (ranges.h); caller frees. */
static char *
record_path (const reg_store *s, const char *digest)
{
  return xasprintf ("%s/ingest/%s.ranges", s->dir, digest + 7);
}

/* How far from byte 0 the record of a blob fetched in pieces names its
 * bytes; -1 without a record. */
static int64_t
recorded_front (const reg_store *s, const char *digest, int64_t size)
{
  cleanup_free char *path = record_path (s, digest);
  cleanup_free char *text = NULL;
  struct ranges r = { 0 };
  int64_t front;
  size_t len;

  if (ef_read_file (path, RANGES_FILE_MAX, &text, &len) < 0)
    return -1;
  ranges_parse (&r, text, len, size, NULL);
  front = ranges_end_at (&r, 0);
  ranges_dispose (&r);
  return front;
}

int64_t
reg_store_partial (const reg_store *s, const char *digest)
{
  cleanup_free char *part = NULL, *rec = NULL;
  struct stat st;

  if (ef_digest_parse (digest, NULL, NULL) < 0)
    return 0;
  part = xasprintf ("%s/ingest/%s.part", s->dir, digest + 7);
  if (stat (part, &st) < 0)
    return 0;
  /* a blob in pieces has holes: what it takes is what is allocated,
     recorded or not (a disk that filled up may have kept more) */
  rec = record_path (s, digest);
  if (access (rec, F_OK) == 0 && (int64_t) st.st_blocks * 512 < st.st_size)
    return (int64_t) st.st_blocks * 512;
  return st.st_size;
}

int
reg_store_manifest (reg_store *s, const char *digest, char **buf, size_t *len, reg_manifest **m, ef_err **err)
{
  cleanup_err ef_err *why = NULL;
  int rc = reg_store_read (s, digest, REG_MANIFEST_MAX, buf, len, err);

  *m = NULL;
  if (rc == 0 && reg_manifest_parse (m, *buf, *len, NULL, &why) < 0)
    {
      free (*buf);
      *buf = NULL;
      rc = ef_err_set (err, EF_LOCAL, "store damaged: manifest %s: %s", digest, ef_err_msg (why));
    }
  return rc;
}

bool
reg_store_lock_exclusive (reg_store *s)
{
  if (flock (s->gc_fd, LOCK_EX | LOCK_NB) == 0)
    return true;
  flock (s->gc_fd, LOCK_SH);
  return false;
}

void
reg_store_lock_shared (reg_store *s)
{
  flock (s->gc_fd, LOCK_SH);
}

/* Read up to want bytes (short only at end of file). */
static ssize_t
read_full (int fd, char *buf, size_t want)
{
  size_t got = 0;

  while (got < want)
    {
      ssize_t n = read (fd, buf + got, want - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      got += (size_t) n;
    }
  return (ssize_t) got;
}

struct reg_blob_reader
{
  reg_store *s;
  char digest[EF_DIGEST_LEN + 1];
  int fd;
  int64_t size, left;
  ef_hash *h; /* NULL: verified by this process already */
  const volatile sig_atomic_t *arriving; /* following an ingest while this is non-zero */
  bool following;
  int64_t front; /* a followed ingest has its bytes up to here */
};

#define FOLLOW_NAP_NS 2000000 /* 2 ms between looks at a growing file */

static void
nap (void)
{
  struct timespec ts = { 0, FOLLOW_NAP_NS };
  nanosleep (&ts, NULL);
}

/* Wait for blob digest to be in blobs/ or in ingest/, while it may still
 * come; an fd on what is there, following set when it is the ingest. */
static int
open_arriving (reg_store *s, const char *digest, const volatile sig_atomic_t *arriving, bool *following)
{
  cleanup_free char *blob = reg_store_blob_path (s, digest);
  cleanup_free char *part = xasprintf ("%s/ingest/%s.part", s->dir, digest + 7);

  for (;;)
    {
      int fd = open (blob, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0 || !arriving)
        {
          *following = false;
          return fd;
        }
      fd = open (part, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0)
        {
          *following = true;
          return fd;
        }
      if (!*arriving)
        return -1;
      nap ();
    }
}

/* How many bytes of a followed ingest can be read now (0: none yet, <0:
 * the ingest went wrong: it restarted or was dropped). */
static int64_t
follow (reg_blob_reader *r)
{
  struct stat st;
  int64_t pos = r->size - r->left;

  if (r->front > pos)
    return r->front - pos; /* known to be there: no look at the files */
  for (;;)
    {
      int64_t have;
      if (fstat (r->fd, &st) < 0)
        return -1;
      /* a blob that comes in pieces has holes: only its front counts */
      have = st.st_nlink > 0 ? recorded_front (r->s, r->digest, r->size) : -1;
      if (have < 0 || have > st.st_size)
        have = st.st_size;
      if (have < pos && st.st_size < pos)
        return -1; /* started over: what was sent is not the blob */
      if (have > pos)
        {
          r->front = have;
          return have - pos;
        }
      if (st.st_nlink == 0 && !reg_store_has (r->s, r->digest, r->size))
        return -1; /* removed without being adopted: it did not match */
      if (!*r->arriving)
        return -1;
      nap ();
    }
}

int
reg_blob_reader_follow (reg_blob_reader **out, reg_store *s, const char *digest, int64_t size,
                        const volatile sig_atomic_t *arriving, ef_err **err)
{
  reg_blob_reader *r;
  bool following = false;
  int rc, fd;

  *out = NULL;
  if ((rc = ef_digest_parse (digest, NULL, err)) < 0)
    return rc;
  fd = open_arriving (s, digest, arriving, &following);
  if (fd < 0)
    return ef_err_sys (err, arriving ? EF_NOTFOUND : EF_LOCAL, errno ? errno : ENOENT, "%sblob %s",
                       arriving ? "" : "store damaged: ", digest);
  r = xcalloc (1, sizeof *r);
  r->fd = fd;
  r->s = s;
  snprintf (r->digest, sizeof r->digest, "%s", digest);
  r->size = r->left = size;
  r->arriving = arriving;
  r->following = following;
  /* bytes of an ingest are checked here, whoever else checks them */
  r->h = !following && reg_store_verified (s, digest) ? NULL : ef_hash_new ();
  *out = r;
  return 0;
}

int
reg_blob_reader_open (reg_blob_reader **out, reg_store *s, const char *digest, int64_t size, ef_err **err)
{
  return reg_blob_reader_follow (out, s, digest, size, NULL, err);
}

ssize_t
reg_blob_reader_read (reg_blob_reader *r, void *buf, size_t max, ef_err **err)
{
  char actual[EF_DIGEST_LEN + 1];
  size_t want = (int64_t) max < r->left ? max : (size_t) r->left;
  ssize_t n;

  if (want == 0)
    return 0;
  if (r->following)
    {
      int64_t avail = follow (r);
      if (avail < 0)
        return ef_err_set (err, EF_NOTFOUND, "blob %s did not arrive whole", r->digest);
      if ((int64_t) want > avail)
        want = (size_t) avail;
    }
  n = read_full (r->fd, buf, want);
  if (n < 0)
    return ef_err_io (err, errno, "read blob %s", r->digest);
  if ((size_t) n < want)
    return ef_err_set (err, EF_LOCAL, "store damaged: %s is shorter than its descriptor", r->digest);
  r->left -= n;
  if (r->h)
    ef_hash_update (r->h, buf, (size_t) n);
  if (r->left == 0 && r->h)
    {
      /* the last bytes go out only once the whole blob matched */
      ef_hash_final (r->h, actual);
      if (strcmp (actual, r->digest) != 0)
        {
          reg_store_discard (r->s, r->digest);
          return ef_err_set (err, EF_LOCAL, "store damaged: blob %s did not match its digest (removed; pull again)",
                             r->digest);
        }
      mark_verified (r->s, r->digest);
    }
  return n;
}

void
reg_blob_reader_free (reg_blob_reader *r)
{
  if (r == NULL)
    return;
  close (r->fd);
  ef_hash_free (r->h);
  free (r);
}

int
reg_store_stream (reg_store *s, const char *digest, int64_t size, reg_chunk_fn fn, void *payload, ef_err **err)
{
  cleanup_free char *buf = NULL;
  reg_blob_reader *r = NULL;
  ssize_t n = 0;
  int rc = reg_blob_reader_open (&r, s, digest, size, err);

  if (rc < 0)
    return rc;
  buf = xmalloc (STREAM_CHUNK);
  while (rc == 0 && (n = reg_blob_reader_read (r, buf, STREAM_CHUNK, err)) > 0)
    rc = fn (payload, buf, (size_t) n, err);
  reg_blob_reader_free (r);
  return rc < 0 ? rc : n < 0 ? (int) n : 0;
}
