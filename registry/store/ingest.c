/* ingest.c: a blob being fetched: STORE/ingest/<hex>.part, locked while
 * it is written, resumed from what is on disk, adopted into blobs/ only
 * when size and digest match (store.h).  Its bytes come in order (one
 * stream, reg_ingest_write) or in pieces at once (reg_ingest_seg), each
 * written in place; the hash follows the bytes on disk from byte 0, from
 * the buffer while it is at the front and read back where a later piece
 * got there first.  Pieces are recorded in <hex>.ranges (ranges.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/util.h"
#include "ranges.h"
#include "store.h"
#include "writer.h"

static int
io_error (ef_err **err, int errnum, const char *what, const char *path)
{
  return ef_err_io (err, errnum, "%s %s", what, path);
}

/* One stream of bytes into the blob: [pos, end), buffered from base. */
struct reg_ingest_seg
{
  reg_ingest *i;
  int64_t base, pos, end;
  char *wbuf; /* coalesces the network's 16 KiB pieces into fewer writes */
  size_t wlen;
};

struct reg_ingest
{
  struct writer_client wc; /* first: the writer calls back with it */
  reg_store *s;
  char digest[EF_DIGEST_LEN + 1];
  char *part, *record;
  int fd;
  int64_t size;
  struct reg_ingest_seg main; /* reg_ingest_write's stream */
  reg_writer *w;              /* or NULL: each buffer is put at once */
  int segs;                   /* open pieces */
  /* what the writer (or put) touches, under mu */
  pthread_mutex_t mu;
  struct ranges done; /* on disk */
  int64_t hashed;     /* the hash covers [0, hashed) */
  ef_hash *hash;
  bool pieces;        /* the record exists: the file has holes */
  int64_t saved_ms;   /* when the record was last written */
  int64_t since_writeback;
};

#define WRITEBACK_STEP (8 << 20)
#define RECORD_EVERY_MS 1000

/* Write the record of what is on disk, after the bytes it names are:
 * a record never claims more than a power cut leaves.  Under mu. */
static int
save_record (reg_ingest *i)
{
  cleanup_free char *text = ranges_format (&i->done, i->size);

  i->saved_ms = ef_now_ms ();
  if (fdatasync (i->fd) < 0)
    return errno;
  return ef_atomic_write (i->record, text, strlen (text), 0600, NULL) < 0 ? EIO : 0;
}

/* Hash on from the front as far as the bytes on disk go.  Under mu. */
static int
hash_on (reg_ingest *i, int64_t off, const char *buf, size_t len)
{
  char tmp[1 << 16];
  int64_t end;

  if (off <= i->hashed && i->hashed < off + (int64_t) len)
    {
      ef_hash_update (i->hash, buf + (i->hashed - off), (size_t) (off + (int64_t) len - i->hashed));
      i->hashed = off + (int64_t) len;
    }
  end = ranges_end_at (&i->done, i->hashed);
  while (i->hashed < end)
    {
      size_t want = end - i->hashed < (int64_t) sizeof tmp ? (size_t) (end - i->hashed) : sizeof tmp;
      ssize_t n = pread (i->fd, tmp, want, i->hashed);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return n < 0 ? errno : EIO;
      ef_hash_update (i->hash, tmp, (size_t) n);
      i->hashed += n;
    }
  return 0;
}

/* Write len bytes at off, then hash on: the writer's work, or ours
 * without one.  Every WRITEBACK_STEP bytes the kernel is asked to start
 * writing them out, so that the fsync at the end waits for the last few. */
static int
put (struct writer_client *c, int64_t off, const char *buf, size_t len)
{
  reg_ingest *i = (reg_ingest *) c;
  size_t done = 0;
  int e = 0;

  while (done < len)
    {
      ssize_t n = pwrite (i->fd, buf + done, len - done, off + (int64_t) done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          e = n < 0 ? errno : EIO;
          break;
        }
      done += (size_t) n;
    }
  pthread_mutex_lock (&i->mu);
  ranges_add (&i->done, off, off + (int64_t) done);
  if (e == 0)
    e = hash_on (i, off, buf, len);
  i->since_writeback += (int64_t) done;
  if (i->since_writeback >= WRITEBACK_STEP)
    {
      sync_file_range (i->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
      i->since_writeback = 0;
    }
  if (e == 0 && i->pieces && ef_now_ms () - i->saved_ms >= RECORD_EVERY_MS)
    e = save_record (i);
  pthread_mutex_unlock (&i->mu);
  return e;
}

/* Put g's buffer (through the writer, or at once). */
static int
seg_submit (reg_ingest_seg *g, ef_err **err)
{
  reg_ingest *i = g->i;
  int e;

  if (g->wlen == 0)
    return 0;
  if (i->w)
    e = writer_submit (i->w, &i->wc, g->base, &g->wbuf, g->wlen);
  else if ((e = i->wc.werrno) == 0 && (e = put (&i->wc, g->base, g->wbuf, g->wlen)) != 0)
    i->wc.werrno = e;
  g->base += (int64_t) g->wlen;
  g->wlen = 0;
  return e ? io_error (err, e, "write", i->part) : 0;
}

/* Everything received is on disk and hashed when this returns 0. */
static int
ingest_flush (reg_ingest *i, ef_err **err)
{
  int rc = seg_submit (&i->main, err), e;

  if (rc < 0)
    return rc;
  e = i->w ? writer_drain (i->w, &i->wc) : i->wc.werrno;
  i->wc.werrno = 0;
  return e ? io_error (err, e, "write", i->part) : 0;
}

void
reg_ingest_use_writer (reg_ingest *i, reg_writer *w)
{
  i->w = w;
}

/* The bytes on disk when the ingest is opened: what the record names,
 * or the file's first st_size bytes without one; hashed from byte 0 as
 * far as they go.  A record that does not describe this blob, or a file
 * longer than it, starts over. */
static int
load (reg_ingest *i, int64_t st_size, ef_err **err)
{
  cleanup_free char *text = NULL;
  size_t len;
  int e;

  if (st_size > i->size)
    st_size = -1;
  else if (ef_read_file (i->record, RANGES_FILE_MAX, &text, &len) == 0)
    {
      i->pieces = true;
      if (ranges_parse (&i->done, text, len, i->size, NULL) < 0)
        st_size = -1;
      ranges_clip (&i->done, st_size);
    }
  else if (errno != ENOENT)
    st_size = -1;
  else
    ranges_add (&i->done, 0, st_size);
  if (st_size < 0)
    {
      ranges_clear (&i->done);
      i->pieces = false;
      unlink (i->record);
      if (ftruncate (i->fd, 0) < 0)
        return io_error (err, errno, "truncate", i->part);
    }
  e = hash_on (i, 0, "", 0);
  if (e)
    return io_error (err, e, "read", i->part);
  i->main.base = i->main.pos = i->hashed;
  i->main.end = i->size;
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
  i->wc.put = put;
  i->s = s;
  i->fd = -1;
  i->size = size;
  snprintf (i->digest, sizeof i->digest, "%s", digest);
  i->part = xasprintf ("%s/ingest/%s.part", reg_store_dir (s), digest + 7);
  i->record = xasprintf ("%s/ingest/%s.ranges", reg_store_dir (s), digest + 7);
  i->hash = ef_hash_new ();
  i->main.i = i;
  i->main.wbuf = xmalloc (WRITER_BUF);
  pthread_mutex_init (&i->mu, NULL);

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
  rc = load (i, st.st_size, err);
  if (rc < 0)
    goto fail;
  *out = i;
  return 0;
fail:
  reg_ingest_free (i);
  return rc;
}

bool
reg_ingest_whole_on_disk (const reg_store *s, const char *digest, int64_t size)
{
  cleanup_free char *part = xasprintf ("%s/ingest/%s.part", reg_store_dir (s), digest + 7);
  struct stat st;

  return lstat (part, &st) == 0 && S_ISREG (st.st_mode) && st.st_size == size;
}

int64_t
reg_ingest_offset (const reg_ingest *i)
{
  return i->main.pos;
}

size_t
reg_ingest_missing (reg_ingest *i, int64_t (*out)[2], size_t max)
{
  int64_t at = 0;
  size_t n = 0;

  if (i->w)
    writer_drain (i->w, &i->wc); /* what is on its way is on disk */
  pthread_mutex_lock (&i->mu);
  for (size_t k = 0; k <= i->done.n && n < max; k++)
    {
      int64_t to = k < i->done.n ? i->done.r[k][0] : i->size;
      if (to > at)
        {
          out[n][0] = at;
          out[n++][1] = to;
        }
      if (k < i->done.n)
        at = i->done.r[k][1];
    }
  pthread_mutex_unlock (&i->mu);
  return n;
}

static int
seg_write (reg_ingest_seg *g, const void *buf, size_t len, ef_err **err)
{
  int rc;

  if ((int64_t) len > g->end - g->pos)
    {
      if (g->end == g->i->size)
        return ef_err_set (err, EF_VERIFY, "blob %s is larger than its descriptor says (%lld bytes)", g->i->digest,
                           (long long) g->i->size);
      return ef_err_set (err, EF_VERIFY, "blob %s: more bytes than the range asked for", g->i->digest);
    }
  g->pos += (int64_t) len;
  while (len > 0)
    {
      size_t n = len < WRITER_BUF - g->wlen ? len : WRITER_BUF - g->wlen;
      memcpy (g->wbuf + g->wlen, buf, n);
      g->wlen += n;
      buf = (const char *) buf + n;
      len -= n;
      if (g->wlen == WRITER_BUF && (rc = seg_submit (g, err)) < 0)
        return rc;
    }
  return 0;
}

int
reg_ingest_write (reg_ingest *i, const void *buf, size_t len, ef_err **err)
{
  int rc = seg_write (&i->main, buf, len, err);

  if (rc == -EF_VERIFY && i->segs == 0)
    {
      /* Never keep bytes we know to be wrong for a later resume. */
      unlink (i->part);
      reg_ingest_restart (i, NULL);
    }
  return rc;
}

int
reg_ingest_seg_open (reg_ingest *i, int64_t from, int64_t to, reg_ingest_seg **out, ef_err **err)
{
  reg_ingest_seg *g;
  int e = 0;

  *out = NULL;
  if (from < 0 || to > i->size || from >= to)
    return ef_err_set (err, EF_LOCAL, "blob %s: no range %lld-%lld", i->digest, (long long) from, (long long) to);
  pthread_mutex_lock (&i->mu);
  /* a piece that does not go on from the bytes in order makes holes:
     from now on the record says where the bytes are */
  if (!i->pieces && (from != ranges_end_at (&i->done, 0) || i->segs > 0))
    {
      i->pieces = true;
      e = save_record (i);
    }
  pthread_mutex_unlock (&i->mu);
  if (e)
    return io_error (err, e, "record ranges of", i->part);
  g = xcalloc (1, sizeof *g);
  g->i = i;
  g->base = g->pos = from;
  g->end = to;
  g->wbuf = xmalloc (WRITER_BUF);
  i->segs++;
  *out = g;
  return 0;
}

int
reg_ingest_seg_write (reg_ingest_seg *g, const void *buf, size_t len, ef_err **err)
{
  return seg_write (g, buf, len, err);
}

int64_t
reg_ingest_seg_pos (const reg_ingest_seg *g)
{
  return g->pos;
}

int
reg_ingest_seg_close (reg_ingest_seg *g, ef_err **err)
{
  int rc = 0;

  if (g == NULL)
    return 0;
  rc = seg_submit (g, err);
  g->i->segs--;
  free (g->wbuf);
  free (g);
  return rc;
}

int
reg_ingest_restart (reg_ingest *i, ef_err **err)
{
  i->main.wlen = 0;
  ingest_flush (i, NULL); /* what it wrote is cut away below */
  pthread_mutex_lock (&i->mu);
  ranges_clear (&i->done);
  i->hashed = 0;
  ef_hash_reset (i->hash);
  i->pieces = false;
  i->since_writeback = 0;
  pthread_mutex_unlock (&i->mu);
  i->main.base = i->main.pos = 0;
  unlink (i->record);
  if (ftruncate (i->fd, 0) < 0)
    return io_error (err, errno, "truncate", i->part);
  return 0;
}

int
reg_ingest_commit (reg_ingest *i, ef_err **err)
{
  char actual[EF_DIGEST_LEN + 1];
  int64_t have;
  int rc;

  if ((rc = ingest_flush (i, err)) < 0)
    return rc;
  have = ranges_total (&i->done);
  if (have != i->size || i->hashed != i->size)
    return ef_err_set (err, EF_VERIFY, "blob %s is %lld bytes, its descriptor says %lld", i->digest,
                       (long long) have, (long long) i->size);
  ef_hash_final (i->hash, actual);
  if (strcmp (actual, i->digest) != 0)
    {
      /* never keep bytes we know to be wrong for a later resume */
      unlink (i->part);
      unlink (i->record);
      return ef_err_set (err, EF_VERIFY, "blob %s: content does not match its digest (got %s)", i->digest, actual);
    }
  rc = reg_store_adopt (i->s, i->fd, i->part, i->digest, err);
  if (rc == 0)
    unlink (i->record);
  return rc;
}

void
reg_ingest_free (reg_ingest *i)
{
  if (i == NULL)
    return;
  if (i->fd >= 0)
    {
      ingest_flush (i, NULL); /* keep what we have for a resume */
      pthread_mutex_lock (&i->mu);
      if (i->pieces && access (i->part, F_OK) == 0)
        save_record (i);
      pthread_mutex_unlock (&i->mu);
      close (i->fd);
    }
  free (i->main.wbuf); /* buffers are alike: the writer keeps its extra ones */
  ranges_dispose (&i->done);
  ef_hash_free (i->hash);
  pthread_mutex_destroy (&i->mu);
  free (i->part);
  free (i->record);
  free (i);
}
