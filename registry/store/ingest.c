/* ingest.c: a blob being fetched: STORE/ingest/<hex>.part, locked while
 * it is written, hashed as the bytes come, resumed from what is on disk,
 * adopted into blobs/ only when size and digest match (store.h). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/util.h"
#include "store.h"

static int
io_error (ef_err **err, int errnum, const char *what, const char *path)
{
  return ef_err_io (err, errnum, "%s %s", what, path);
}

struct reg_ingest
{
  reg_store *s;
  char digest[EF_DIGEST_LEN + 1];
  char *part;
  int fd;
  int64_t size;
  int64_t offset; /* bytes received, buffered ones included */
  ef_hash *hash;
  char *wbuf;     /* coalesces the network's 16 KiB pieces into fewer writes */
  size_t wlen;
  /* with a writer: buffers in its queue, and its first failure */
  reg_writer *w;
  int pending;
  int werrno;
  off_t written_back; /* writeback started up to here */
};

#define INGEST_WBUF (128 * 1024)

/* A thread that hashes and writes full buffers while the network thread
 * goes on receiving: on two cores, TLS and SHA-256 then run side by side. */
struct wjob
{
  reg_ingest *i;
  char *buf;
  size_t len;
};

struct reg_writer
{
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  struct wjob *q; /* a ring of cap jobs */
  size_t head, len, cap;
  char **spare; /* buffers no ingest holds */
  size_t nspare, extra;
  bool stop;
};

#define WRITEBACK_STEP (8 << 20)

/* Hash and write one buffer: the writer's work, or ours without one.
 * Every WRITEBACK_STEP bytes the kernel is asked to start writing them
 * out, so that the fsync at the end waits for the last few only. */
static int
put_bytes (reg_ingest *i, const char *buf, size_t len)
{
  off_t end;

  ef_hash_update (i->hash, buf, len);
  if (ef_write_all (i->fd, buf, len) < 0)
    return -1;
  end = lseek (i->fd, 0, SEEK_CUR);
  if (end >= 0 && end - i->written_back >= WRITEBACK_STEP)
    {
      sync_file_range (i->fd, i->written_back, end - i->written_back, SYNC_FILE_RANGE_WRITE);
      i->written_back = end;
    }
  return 0;
}

static void *
writer_main (void *p)
{
  reg_writer *w = p;

  pthread_mutex_lock (&w->mu);
  for (;;)
    {
      struct wjob j;
      int e = 0;
      while (w->len == 0 && !w->stop)
        pthread_cond_wait (&w->work, &w->mu);
      if (w->len == 0)
        break;
      j = w->q[w->head];
      w->head = (w->head + 1) % w->cap;
      w->len--;
      e = j.i->werrno;
      pthread_mutex_unlock (&w->mu);
      if (e == 0 && put_bytes (j.i, j.buf, j.len) < 0)
        e = errno ? errno : EIO;
      pthread_mutex_lock (&w->mu);
      if (e && j.i->werrno == 0)
        j.i->werrno = e;
      w->spare[w->nspare++] = j.buf;
      j.i->pending--;
      pthread_cond_broadcast (&w->done);
    }
  pthread_mutex_unlock (&w->mu);
  return NULL;
}

int
reg_writer_new (reg_writer **out, size_t extra, ef_err **err)
{
  reg_writer *w = xcalloc (1, sizeof *w);

  *out = NULL;
  w->extra = extra ? extra : 1;
  w->cap = w->extra;
  w->q = xcalloc (w->cap, sizeof *w->q);
  w->spare = xcalloc (w->extra, sizeof *w->spare);
  for (size_t k = 0; k < w->extra; k++)
    w->spare[w->nspare++] = xmalloc (INGEST_WBUF);
  pthread_mutex_init (&w->mu, NULL);
  pthread_cond_init (&w->work, NULL);
  pthread_cond_init (&w->done, NULL);
  if (pthread_create (&w->th, NULL, writer_main, w) != 0)
    {
      w->stop = true;
      reg_writer_free (w);
      return ef_err_set (err, EF_LOCAL, "cannot start the writer thread");
    }
  *out = w;
  return 0;
}

void
reg_writer_free (reg_writer *w)
{
  if (w == NULL)
    return;
  if (!w->stop)
    {
      pthread_mutex_lock (&w->mu);
      w->stop = true;
      pthread_cond_signal (&w->work);
      pthread_mutex_unlock (&w->mu);
      pthread_join (w->th, NULL);
    }
  for (size_t k = 0; k < w->nspare; k++)
    free (w->spare[k]);
  free (w->spare);
  free (w->q);
  pthread_mutex_destroy (&w->mu);
  pthread_cond_destroy (&w->work);
  pthread_cond_destroy (&w->done);
  free (w);
}

/* Hand the full buffer to the writer, taking a spare one in exchange
 * (waiting for one when all are in flight): the writer's spares and its
 * queue always hold exactly extra buffers between them. */
static int
ingest_submit (reg_ingest *i, ef_err **err)
{
  reg_writer *w = i->w;
  int e;

  pthread_mutex_lock (&w->mu);
  while (w->nspare == 0 && i->werrno == 0)
    pthread_cond_wait (&w->done, &w->mu);
  e = i->werrno;
  if (e == 0)
    {
      w->q[(w->head + w->len) % w->cap] = (struct wjob){ i, i->wbuf, i->wlen };
      w->len++;
      i->pending++;
      i->wbuf = w->spare[--w->nspare];
      i->wlen = 0;
      pthread_cond_signal (&w->work);
    }
  pthread_mutex_unlock (&w->mu);
  return e ? io_error (err, e, "write", i->part) : 0;
}

/* Wait until the writer has done all of i's buffers; its errno, or 0. */
static int
ingest_drain (reg_ingest *i)
{
  int e;

  if (i->w == NULL)
    return 0;
  pthread_mutex_lock (&i->w->mu);
  while (i->pending > 0)
    pthread_cond_wait (&i->w->done, &i->w->mu);
  e = i->werrno;
  i->werrno = 0;
  pthread_mutex_unlock (&i->w->mu);
  return e;
}

void
reg_ingest_use_writer (reg_ingest *i, reg_writer *w)
{
  i->w = w;
}


/* Re-hash the bytes already on disk so the fetch can go on from there. */
static int
rehash (reg_ingest *i, ef_err **err)
{
  char buf[1 << 16];
  int64_t done = 0;
  ssize_t n;

  ef_hash_reset (i->hash);
  if (lseek (i->fd, 0, SEEK_SET) < 0)
    return io_error (err, errno, "seek", i->part);
  while (done < i->offset)
    {
      size_t want = sizeof buf;
      if ((int64_t) want > i->offset - done)
        want = (size_t) (i->offset - done);
      n = read (i->fd, buf, want);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return io_error (err, n < 0 ? errno : EIO, "read", i->part);
      ef_hash_update (i->hash, buf, (size_t) n);
      done += n;
    }
  return 0;
}

/* Everything received is on disk (and hashed) when this returns 0.  What
 * did reach the disk before a failure stays valid: re-align with it. */
static int
ingest_flush (reg_ingest *i, ef_err **err)
{
  int e = ingest_drain (i);

  if (e == 0 && i->wlen > 0 && put_bytes (i, i->wbuf, i->wlen) < 0)
    e = errno ? errno : EIO;
  i->wlen = 0;
  if (e)
    {
      off_t end = lseek (i->fd, 0, SEEK_END);
      if (end >= 0)
        {
          i->offset = end;
          rehash (i, NULL);
          lseek (i->fd, end, SEEK_SET);
        }
      return io_error (err, e, "write", i->part);
    }
  return 0;
}

int
reg_ingest_open (reg_ingest **out, reg_store *s, const char *digest, int64_t size, bool *busy, ef_err **err)
{
  reg_ingest *i;
  struct stat st, st2;
  int rc;

  *out = NULL;
  *busy = false;
  if ((rc = ef_digest_parse (digest, NULL, err)) < 0)
    return rc;
  i = xcalloc (1, sizeof *i);
  i->s = s;
  i->fd = -1;
  i->size = size;
  snprintf (i->digest, sizeof i->digest, "%s", digest);
  i->part = xasprintf ("%s/ingest/%s.part", reg_store_dir (s), digest + 7);
  i->hash = ef_hash_new ();
  i->wbuf = xmalloc (INGEST_WBUF);

  for (;;)
    {
      i->fd = open (i->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (i->fd < 0)
        {
          rc = io_error (err, errno, "open", i->part);
          goto fail;
        }
      if (flock (i->fd, LOCK_EX | LOCK_NB) < 0)
        {
          *busy = errno == EWOULDBLOCK;
          rc = *busy ? 0 : io_error (err, errno, "lock", i->part);
          goto fail;
        }
      /* The holder before us may have committed and unlinked the path:
       * make sure we locked the file that is still there. */
      if (fstat (i->fd, &st) < 0)
        {
          rc = io_error (err, errno, "stat", i->part);
          goto fail;
        }
      if (stat (i->part, &st2) == 0 && st.st_ino == st2.st_ino && st.st_dev == st2.st_dev)
        break;
      close (i->fd);
    }
  if (st.st_size > size)
    {
      if (ftruncate (i->fd, 0) < 0)
        {
          rc = io_error (err, errno, "truncate", i->part);
          goto fail;
        }
      st.st_size = 0;
    }
  i->offset = st.st_size;
  rc = rehash (i, err);
  if (rc < 0)
    goto fail;
  if (lseek (i->fd, i->offset, SEEK_SET) < 0)
    {
      rc = io_error (err, errno, "seek", i->part);
      goto fail;
    }
  *out = i;
  return 0;
fail:
  reg_ingest_free (i);
  return rc;
}

int64_t
reg_ingest_offset (const reg_ingest *i)
{
  return i->offset;
}

int
reg_ingest_write (reg_ingest *i, const void *buf, size_t len, ef_err **err)
{
  int rc;

  if ((int64_t) len > i->size - i->offset)
    {
      /* Never keep bytes we know to be wrong for a later resume. */
      unlink (i->part);
      reg_ingest_restart (i, NULL);
      return ef_err_set (err, EF_VERIFY, "blob %s is larger than its descriptor says (%lld bytes)", i->digest,
                         (long long) i->size);
    }
  i->offset += (int64_t) len;
  while (len > 0)
    {
      size_t n = len < INGEST_WBUF - i->wlen ? len : INGEST_WBUF - i->wlen;
      memcpy (i->wbuf + i->wlen, buf, n);
      i->wlen += n;
      buf = (const char *) buf + n;
      len -= n;
      if (i->wlen == INGEST_WBUF && (rc = i->w ? ingest_submit (i, err) : ingest_flush (i, err)) < 0)
        return rc;
    }
  return 0;
}

int
reg_ingest_restart (reg_ingest *i, ef_err **err)
{
  ingest_drain (i); /* what it wrote is cut away below */
  i->wlen = 0;
  i->written_back = 0;
  if (ftruncate (i->fd, 0) < 0 || lseek (i->fd, 0, SEEK_SET) < 0)
    return io_error (err, errno, "truncate", i->part);
  i->offset = 0;
  ef_hash_reset (i->hash);
  return 0;
}

int
reg_ingest_commit (reg_ingest *i, ef_err **err)
{
  char actual[EF_DIGEST_LEN + 1];
  int rc;

  if ((rc = ingest_flush (i, err)) < 0)
    return rc;
  if (i->offset != i->size)
    return ef_err_set (err, EF_VERIFY, "blob %s is %lld bytes, its descriptor says %lld", i->digest,
                       (long long) i->offset, (long long) i->size);
  ef_hash_final (i->hash, actual);
  if (strcmp (actual, i->digest) != 0)
    {
      /* never keep bytes we know to be wrong for a later resume */
      unlink (i->part);
      return ef_err_set (err, EF_VERIFY, "blob %s: content does not match its digest (got %s)", i->digest, actual);
    }
  return reg_store_adopt (i->s, i->fd, i->part, i->digest, err);
}

void
reg_ingest_free (reg_ingest *i)
{
  if (i == NULL)
    return;
  if (i->fd >= 0)
    {
      ingest_flush (i, NULL); /* keep what we have for a resume */
      close (i->fd);
    }
  free (i->wbuf); /* buffers are alike: the writer keeps its extra ones */
  ef_hash_free (i->hash);
  free (i->part);
  free (i);
}
