/* file.c: see file.h. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "util.h"

int
ef_write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

int
ef_fsync_dir (const char *path)
{
  cleanup_close int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 || fsync (fd) < 0 ? -1 : 0;
}

/* fsync the directory that holds p's last component. */
static int
fsync_parent (char *p)
{
  char *slash = strrchr (p, '/');
  int rc;

  if (slash == NULL)
    return ef_fsync_dir (".");
  if (slash == p)
    return ef_fsync_dir ("/");
  *slash = '\0';
  rc = ef_fsync_dir (p);
  *slash = '/';
  return rc;
}

int
ef_mkdirs (const char *path, unsigned mode)
{
  cleanup_free char *p = xstrdup (path);
  char *s;

  for (s = p + 1;; s++)
    {
      bool last = *s == '\0';
      if (*s != '/' && !last)
        continue;
      *s = '\0';
      if (mkdir (p, mode) == 0 ? fsync_parent (p) < 0 : errno != EEXIST)
        return -1;
      if (last)
        break;
      *s = '/';
    }
  /* a directory an earlier run made, and a power cut may take back (a
     parent we may not open, such as a home of mode 0711, is not ours) */
  if (fsync_parent (p) < 0 && errno != EACCES && errno != EPERM)
    return -1;
  return 0;
}

int
ef_read_file (const char *path, size_t max, char **out, size_t *len)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct ef_buf b;
  struct stat st;
  char chunk[8192];
  ssize_t n;

  if (fd < 0)
    return -1;
  if (fstat (fd, &st) < 0)
    return -1;
  if (!S_ISREG (st.st_mode))
    {
      errno = S_ISDIR (st.st_mode) ? EISDIR : EINVAL;
      return -1;
    }
  ef_buf_init (&b, max);
  ef_buf_append (&b, "", 0);
  while ((n = read (fd, chunk, sizeof chunk)) != 0)
    {
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          ef_buf_dispose (&b);
          return -1;
        }
      if (ef_buf_append (&b, chunk, (size_t) n) < 0)
        {
          ef_buf_dispose (&b);
          errno = EFBIG;
          return -1;
        }
    }
  *out = b.data;
  if (len)
    *len = b.len;
  return 0;
}

/* ".NAME.<12 random hex>.tmp" */
static char *
tmp_name (const char *name)
{
  unsigned char r[6] = { 0 };

  if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r)
    {
      int64_t t = ef_now_ms () ^ getpid ();
      memcpy (r, &t, sizeof r);
    }
  return xasprintf (".%s.%02x%02x%02x%02x%02x%02x.tmp", name, r[0], r[1], r[2], r[3], r[4], r[5]);
}

/* Is name one of tmp_name's: ".<name>.<12 hex>.tmp"? */
static bool
is_tmp_name (const char *n)
{
  size_t len = strlen (n);

  if (len < 19 || n[0] != '.' || strcmp (n + len - 4, ".tmp") != 0 || n[len - 17] != '.')
    return false;
  for (size_t i = len - 16; i < len - 4; i++)
    if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
      return false;
  return true;
}

int
ef_remove_stale_tmp (const char *dir, int64_t grace_s)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  struct stat st;
  time_t now = time (NULL);
  int n = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL)
    if (is_tmp_name (de->d_name) && fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && !S_ISDIR (st.st_mode) && now - st.st_mtime >= grace_s && unlinkat (dirfd (d), de->d_name, 0) == 0)
      n++;
  closedir (d);
  return n;
}

int
ef_link_replace (const char *src, const char *dst)
{
  const char *slash = strrchr (dst, '/');
  cleanup_free char *dir = slash ? xstrndup (dst, (size_t) (slash - dst)) : xstrdup (".");

  for (int tries = 0; tries < 16; tries++)
    {
      cleanup_free char *name = tmp_name (slash ? slash + 1 : dst);
      cleanup_free char *tmp = xasprintf ("%s/%s", dir, name);
      if (link (src, tmp) < 0)
        {
          if (errno == EEXIST)
            continue;
          return -1;
        }
      if (rename (tmp, dst) < 0)
        {
          int e = errno;
          unlink (tmp);
          errno = e;
          return -1;
        }
      return 0;
    }
  errno = EEXIST;
  return -1;
}

int
ef_atomic_open_in (struct ef_atomic *a, const char *tmpdir, const char *path, unsigned mode, ef_err **err)
{
  const char *slash = strrchr (path, '/');
  int e = 0;

  memset (a, 0, sizeof *a);
  a->fd = a->dirfd = a->tmpdirfd = -1;
  a->dir = slash ? (slash == path ? xstrdup ("/") : xstrndup (path, (size_t) (slash - path))) : xstrdup (".");
  a->name = xstrdup (slash ? slash + 1 : path);
  a->dirfd = open (a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  a->tmpdirfd = a->dirfd < 0 ? -1 : tmpdir ? open (tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dup (a->dirfd);
  if (a->tmpdirfd < 0)
    {
      e = errno;
      ef_atomic_abort (a);
      return ef_err_io (err, e, "open the directory of %s", path);
    }
  for (int tries = 0; tries < 16; tries++)
    {
      free (a->tmp);
      a->tmp = tmp_name (a->name);
      a->fd = openat (a->tmpdirfd, a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      if (a->fd >= 0 || errno != EEXIST)
        break;
    }
  if (a->fd < 0)
    {
      e = errno;
      free (a->tmp);
      a->tmp = NULL; /* nothing of ours to remove */
      ef_atomic_abort (a);
      return ef_err_io (err, e, "create a temporary file for %s", path);
    }
  return 0;
}

int
ef_atomic_open (struct ef_atomic *a, const char *path, unsigned mode, ef_err **err)
{
  return ef_atomic_open_in (a, NULL, path, mode, err);
}

int
ef_atomic_commit (struct ef_atomic *a, ef_err **err)
{
  int rc = 0;

  if (fsync (a->fd) < 0)
    rc = ef_err_io (err, errno, "write %s/%s", a->dir, a->name);
  else if (renameat (a->tmpdirfd, a->tmp, a->dirfd, a->name) < 0)
    rc = ef_err_io (err, errno, "rename into %s/%s", a->dir, a->name);
  else
    {
      free (a->tmp);
      a->tmp = NULL;
      if (fsync (a->dirfd) < 0)
        rc = ef_err_io (err, errno, "fsync %s", a->dir);
    }
  ef_atomic_abort (a);
  return rc;
}

void
ef_atomic_abort (struct ef_atomic *a)
{
  if (a->tmp && a->tmpdirfd >= 0)
    unlinkat (a->tmpdirfd, a->tmp, 0);
  if (a->fd >= 0)
    close (a->fd);
  if (a->dirfd >= 0)
    close (a->dirfd);
  if (a->tmpdirfd >= 0)
    close (a->tmpdirfd);
  free (a->dir);
  free (a->name);
  free (a->tmp);
  memset (a, 0, sizeof *a);
  a->fd = a->dirfd = a->tmpdirfd = -1;
}

int
ef_atomic_write (const char *path, const void *data, size_t len, unsigned mode, ef_err **err)
{
  struct ef_atomic a;
  int rc = ef_atomic_open (&a, path, mode, err);

  if (rc < 0)
    return rc;
  if (ef_write_all (a.fd, data, len) < 0)
    {
      rc = ef_err_io (err, errno, "write %s", path);
      ef_atomic_abort (&a);
      return rc;
    }
  return ef_atomic_commit (&a, err);
}
