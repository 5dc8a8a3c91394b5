/* store.c: see store.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <dirent.h>

#include <jansson.h>

#include "../common/util.h"
#include "../verify/digest.h"
#include "manifest.h"
#include "store.h"

#define IMAGES_MAX (16u << 20)

struct reg_store
{
  char *dir;
  int blobs_fd; /* blobs/sha256, for fsync after rename */
  int gc_fd;    /* gc.lock: shared while we are open */
};

static int rehash (struct reg_ingest *i, ef_err **err);

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


static int
io_error (ef_err **err, int errnum, const char *what, const char *path)
{
  if (errnum == ENOSPC || errnum == EDQUOT)
    return ef_err_set (err, EF_LOCAL, "%s %s: disk full", what, path);
  return ef_err_sys (err, EF_LOCAL, errnum, "%s %s", what, path);
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

/* Write tmp fully, fsync, rename to blobs/<hex>, fsync the directory. */
static int
publish (reg_store *s, int fd, const char *tmp, const char *digest, ef_err **err)
{
  cleanup_free char *dst = reg_store_blob_path (s, digest);

  if (fsync (fd) < 0)
    return io_error (err, errno, "fsync", tmp);
  if (rename (tmp, dst) < 0)
    return io_error (err, errno, "rename into", dst);
  if (fsync (s->blobs_fd) < 0)
    return io_error (err, errno, "fsync", "blobs/sha256");
  return 0;
}

int
reg_store_put (reg_store *s, const char *digest, const void *buf, size_t len, ef_err **err)
{
  char actual[EF_DIGEST_LEN + 1];
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  int rc;

  if (ef_digest_parse (digest, NULL, err) < 0)
    return -EF_VERIFY;
  ef_digest_buf (buf, len, actual);
  if (strcmp (actual, digest) != 0)
    return ef_err_set (err, EF_VERIFY, "content does not match digest %s", digest);
  if (reg_store_has (s, digest, (int64_t) len))
    return 0;
  tmp = xasprintf ("%s/ingest/%s.%ld.tmp", s->dir, digest + 7, (long) getpid ());
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return io_error (err, errno, "create", tmp);
  if (ef_write_all (fd, buf, len) < 0)
    {
      rc = io_error (err, errno, "write", tmp);
      unlink (tmp);
      return rc;
    }
  rc = publish (s, fd, tmp, digest, err);
  if (rc < 0)
    unlink (tmp);
  return rc;
}

int
reg_store_read (const reg_store *s, const char *digest, size_t max, char **out, size_t *len, ef_err **err)
{
  cleanup_free char *path = NULL;
  char actual[EF_DIGEST_LEN + 1];
  char *buf;
  size_t n;

  *out = NULL;
  if (ef_digest_parse (digest, NULL, err) < 0)
    return -EF_VERIFY;
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
      return ef_err_set (err, EF_LOCAL, "store damaged: %s does not match its digest", path);
    }
  *out = buf;
  *len = n;
  return 0;
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
reg_ingest_open (reg_ingest **out, reg_store *s, const char *digest, int64_t size, ef_err **err)
{
  reg_ingest *i;
  struct stat st, st2;
  int rc;

  *out = NULL;
  if (ef_digest_parse (digest, NULL, err) < 0)
    return -EF_VERIFY;
  i = xcalloc (1, sizeof *i);
  i->s = s;
  i->fd = -1;
  i->size = size;
  snprintf (i->digest, sizeof i->digest, "%s", digest);
  i->part = xasprintf ("%s/ingest/%s.part", s->dir, digest + 7);
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
          rc = errno == EWOULDBLOCK ? 1 : io_error (err, errno, "lock", i->part);
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
  if (i->wlen + len > INGEST_WBUF && ingest_flush (i, err) < 0)
    return -EF_LOCAL;
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
  char actual[EF_DIGEST_LEN + 1];
  int rc;

  if (ingest_flush (i, err) < 0)
    return -EF_LOCAL;
  if (i->offset != i->size)
    return ef_err_set (err, EF_VERIFY, "blob %s is %lld bytes, its descriptor says %lld", i->digest,
                       (long long) i->offset, (long long) i->size);
  ef_hash_final (i->hash, actual);
  if (strcmp (actual, i->digest) != 0)
    {
      unlink (i->part);
      return ef_err_set (err, EF_VERIFY, "blob %s: content does not match its digest (got %s)", i->digest, actual);
    }
  rc = publish (i->s, i->fd, i->part, i->digest, err);
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
      close (i->fd);
    }
  free (i->wbuf);
  ef_hash_free (i->hash);
  free (i->part);
  free (i);
}

int64_t
reg_store_available (const reg_store *s)
{
  struct statvfs v;

  if (statvfs (s->dir, &v) < 0)
    return -1;
  return (int64_t) v.f_bavail * (int64_t) v.f_frsize;
}

int64_t
reg_store_partial (const reg_store *s, const char *digest)
{
  cleanup_free char *part = NULL;
  struct stat st;

  if (ef_digest_parse (digest, NULL, NULL) < 0)
    return 0;
  part = xasprintf ("%s/ingest/%s.part", s->dir, digest + 7);
  return stat (part, &st) == 0 ? st.st_size : 0;
}

static json_t *
images_load (const reg_store *s)
{
  cleanup_free char *path = xasprintf ("%s/images.json", s->dir);
  cleanup_free char *text = NULL;
  size_t len;
  json_t *j = NULL;

  if (ef_read_file (path, IMAGES_MAX, &text, &len) == 0)
    j = json_loadb (text, len, 0, NULL);
  if (!json_is_object (j) || !json_is_object (json_object_get (j, "images")))
    {
      json_decref (j);
      j = json_pack ("{s:{}}", "images");
    }
  return j;
}

/* Rewrite images.json under images.lock: add (digest != NULL) or drop name. */
static int
images_update (reg_store *s, const char *name, const char *manifest_digest, const char *index_digest, ef_err **err)
{
  cleanup_free char *lockp = xasprintf ("%s/images.lock", s->dir);
  cleanup_free char *path = xasprintf ("%s/images.json", s->dir);
  cleanup_free char *tmp = xasprintf ("%s/images.json.%ld.tmp", s->dir, (long) getpid ());
  cleanup_close int lock = open (lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  cleanup_close int fd = -1;
  cleanup_free char *text = NULL;
  json_t *j;
  int rc = 0;

  if (lock < 0 || flock (lock, LOCK_EX) < 0)
    return io_error (err, errno, "lock", lockp);
  j = images_load (s);
  if (manifest_digest)
    json_object_set_new (json_object_get (j, "images"), name,
                         json_pack ("{s:s, s:s?}", "manifest", manifest_digest, "index", index_digest));
  else
    json_object_del (json_object_get (j, "images"), name);
  text = json_dumps (j, JSON_INDENT (1) | JSON_SORT_KEYS);
  json_decref (j);
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 || ef_write_all (fd, text, strlen (text)) < 0 || fsync (fd) < 0 || rename (tmp, path) < 0)
    {
      rc = io_error (err, errno, "write", path);
      unlink (tmp);
    }
  return rc;
}

int
reg_store_record (reg_store *s, const char *name, const char *manifest_digest, const char *index_digest,
                  ef_err **err)
{
  return images_update (s, name, manifest_digest, index_digest, err);
}

int
reg_store_unrecord (reg_store *s, const char *name, ef_err **err)
{
  return images_update (s, name, NULL, NULL, err);
}

/* Mark a manifest (or index) and everything it names that we hold. */
static void
mark (const reg_store *s, json_t *keep, const char *digest, int depth)
{
  cleanup_free char *buf = NULL;
  reg_manifest *m = NULL;
  size_t len;

  if (digest == NULL || depth > 3 || ef_digest_parse (digest, NULL, NULL) < 0)
    return;
  json_object_set_new (keep, digest + 7, json_true ());
  if (reg_store_read (s, digest, REG_MANIFEST_MAX, &buf, &len, NULL) < 0
      || reg_manifest_parse (&m, buf, len, NULL, NULL) < 0)
    return;
  if (reg_manifest_kind (m) == REG_IMAGE)
    json_object_set_new (keep, reg_manifest_config (m)->digest + 7, json_true ());
  for (size_t i = 0; i < reg_manifest_count (m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (m, i);
      if (reg_manifest_kind (m) == REG_INDEX)
        {
          if (reg_store_has (s, d->digest, d->size))
            mark (s, keep, d->digest, depth + 1);
        }
      else
        json_object_set_new (keep, d->digest + 7, json_true ());
    }
  reg_manifest_free (m);
}

int
reg_store_gc (reg_store *s, struct reg_gc_stats *stats, ef_err **err)
{
  json_t *images, *keep = json_object (), *e;
  const char *name;
  struct dirent *de;
  DIR *d;
  int dfd;

  memset (stats, 0, sizeof *stats);
  if (flock (s->gc_fd, LOCK_EX | LOCK_NB) < 0)
    {
      flock (s->gc_fd, LOCK_SH);
      json_decref (keep);
      return ef_err_set (err, EF_LOCAL, "the store is in use by another edgefetch; try again later");
    }
  images = images_load (s);
  json_object_foreach (json_object_get (images, "images"), name, e)
  {
    json_t *m = json_object_get (e, "manifest"), *ix = json_object_get (e, "index");
    mark (s, keep, json_string_value (m), 0);
    if (json_is_string (ix))
      json_object_set_new (keep, json_string_value (ix) + 7, json_true ());
  }
  json_decref (images);
  dfd = dup (s->blobs_fd);
  d = dfd >= 0 ? fdopendir (dfd) : NULL;
  if (d == NULL)
    {
      json_decref (keep);
      flock (s->gc_fd, LOCK_SH);
      return io_error (err, errno, "read", "blobs/sha256");
    }
  rewinddir (d);
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;
      if (de->d_name[0] == '.')
        continue;
      if (json_object_get (keep, de->d_name))
        {
          stats->blobs_kept++;
          continue;
        }
      if (fstatat (s->blobs_fd, de->d_name, &st, 0) == 0 && unlinkat (s->blobs_fd, de->d_name, 0) == 0)
        {
          stats->blobs_removed++;
          stats->bytes_removed += st.st_size;
        }
    }
  closedir (d);
  fsync (s->blobs_fd);
  json_decref (keep);
  flock (s->gc_fd, LOCK_SH);
  return 0;
}
