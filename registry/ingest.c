/* ingest.c: a blob being fetched: STORE/ingest/<hex>.part, locked while
 * it is written, hashed as the bytes come, resumed from what is on disk,
 * adopted into blobs/ only when size and digest match (store.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/digest.h"
#include "../common/file.h"
#include "../common/util.h"
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
};


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

#define INGEST_WBUF (128 * 1024)

static int
ingest_flush (reg_ingest *i, ef_err **err)
{
  if (i->wlen == 0)
    return 0;
  if (ef_write_all (i->fd, i->wbuf, i->wlen) < 0)
    {
      int e = errno;
      /* What did reach the disk stays valid; re-align with it. */
      off_t end = lseek (i->fd, 0, SEEK_END);
      i->wlen = 0;
      if (end >= 0)
        {
          i->offset = end;
          rehash (i, NULL);
          lseek (i->fd, end, SEEK_SET);
        }
      return io_error (err, e, "write", i->part);
    }
  i->wlen = 0;
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
  ef_hash_update (i->hash, buf, len);
  i->offset += (int64_t) len;
  if (i->wlen + len > INGEST_WBUF && (rc = ingest_flush (i, err)) < 0)
    return rc;
  if (len >= INGEST_WBUF)
    {
      if (ef_write_all (i->fd, buf, len) < 0)
        return io_error (err, errno, "write", i->part);
      return 0;
    }
  memcpy (i->wbuf + i->wlen, buf, len);
  i->wlen += len;
  return 0;
}

int
reg_ingest_restart (reg_ingest *i, ef_err **err)
{
  i->wlen = 0;
  if (ftruncate (i->fd, 0) < 0 || lseek (i->fd, 0, SEEK_SET) < 0)
    return io_error (err, errno, "truncate", i->part);
  i->offset = 0;
  ef_hash_reset (i->hash);
  return 0;
}

int
reg_ingest_commit (reg_ingest *i, ef_err **err)
{
  int rc;
  char actual[EF_DIGEST_LEN + 1];

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
  free (i->wbuf);
  ef_hash_free (i->hash);
  free (i->part);
  free (i);
}
