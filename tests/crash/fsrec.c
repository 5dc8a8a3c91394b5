/* fsrec.c: an LD_PRELOAD recorder of the file-system operations a run
 * makes under one directory, for the crash-state explorer (explore.py).
 *
 *   FSREC_ROOT=/abs/dir FSREC_LOG=/abs/log LD_PRELOAD=fsrec.so CMD...
 *
 * Every operation that changes what is under FSREC_ROOT (creating,
 * writing, truncating, renaming, linking, removing, making directories)
 * and every fsync or fdatasync of a file or directory there is written
 * to FSREC_LOG as one JSON line, in the order the calls returned: one
 * lock covers each call and its line, so the threads of a run (the
 * writer thread beside the network one) are recorded as they
 * interleaved.  The bytes of each write go to FSREC_LOG.data; a line
 * gives their offset there.  Calls that failed are not recorded.  What
 * is outside FSREC_ROOT (sockets, pipes, /proc, the runtime's files) is
 * passed through untouched.  This is test tooling: it is not built into
 * edgefetch, and it is not the project's code under test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define FD_MAX 4096

struct fdent
{
  dev_t dev;
  ino_t ino;
  char *path; /* under the root, or NULL */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char root[PATH_MAX];
static size_t rootlen;
static int logfd = -1, datafd = -1;
static unsigned long long seq, dataoff;
static struct fdent fds[FD_MAX];
static int ready;

#define REAL(ret, name, ...)                                                                                         \
  static ret (*real_##name) (__VA_ARGS__);                                                                           \
  if (!real_##name)                                                                                                  \
    real_##name = (ret (*) (__VA_ARGS__)) dlsym (RTLD_NEXT, #name)

static void
setup (void)
{
  const char *r = getenv ("FSREC_ROOT"), *l = getenv ("FSREC_LOG");
  char dpath[PATH_MAX];

  ready = -1;
  if (!r || !l || !realpath (r, root))
    return;
  rootlen = strlen (root);
  snprintf (dpath, sizeof dpath, "%s.data", l);
  /* raw syscalls: our own files are not recorded */
  logfd = (int) syscall (SYS_openat, AT_FDCWD, l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  datafd = (int) syscall (SYS_openat, AT_FDCWD, dpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd >= 0 && datafd >= 0)
    {
      struct stat st;
      if (fstat (datafd, &st) == 0)
        dataoff = (unsigned long long) st.st_size;
      ready = 1;
    }
}

static int
on (void)
{
  if (ready == 0)
    setup ();
  return ready > 0;
}

static int
under (const char *p)
{
  return p && strncmp (p, root, rootlen) == 0 && (p[rootlen] == '/' || p[rootlen] == '\0');
}

static void
emit_str (char *b, size_t *n, size_t cap, const char *s)
{
  *n += (size_t) snprintf (b + *n, cap - *n, "\"");
  for (; *s && *n + 8 < cap; s++)
    {
      unsigned char c = (unsigned char) *s;
      if (c == '"' || c == '\\')
        *n += (size_t) snprintf (b + *n, cap - *n, "\\%c", c);
      else if (c < 0x20 || c >= 0x7f)
        *n += (size_t) snprintf (b + *n, cap - *n, "\\u%04x", c);
      else
        b[(*n)++] = (char) c;
    }
  *n += (size_t) snprintf (b + *n, cap - *n, "\"");
}

/* One line: {"seq":N,"op":OP,"path":P[,"path2":Q][,"off":O,"len":L,"data":D]} */
static void
record (const char *op, const char *p, const char *q, long long off, long long len, const void *data)
{
  char b[3 * PATH_MAX + 256];
  size_t n = 0;

  n += (size_t) snprintf (b, sizeof b, "{\"seq\":%llu,\"pid\":%d,\"op\":\"%s\",\"path\":", seq++, getpid (), op);
  emit_str (b, &n, sizeof b, p);
  if (q)
    {
      n += (size_t) snprintf (b + n, sizeof b - n, ",\"path2\":");
      emit_str (b, &n, sizeof b, q);
    }
  if (off >= 0)
    n += (size_t) snprintf (b + n, sizeof b - n, ",\"off\":%lld", off);
  if (len >= 0)
    n += (size_t) snprintf (b + n, sizeof b - n, ",\"len\":%lld", len);
  if (data && len > 0)
    {
      n += (size_t) snprintf (b + n, sizeof b - n, ",\"data\":%llu", dataoff);
      for (size_t done = 0; done < (size_t) len;)
        {
          ssize_t w = (ssize_t) syscall (SYS_write, datafd, (const char *) data + done, (size_t) len - done);
          if (w <= 0)
            break;
          done += (size_t) w;
        }
      dataoff += (unsigned long long) len;
    }
  n += (size_t) snprintf (b + n, sizeof b - n, "}\n");
  syscall (SYS_write, logfd, b, n);
}

/* The path of fd when it is under the root (checked against its inode,
 * so that a number reused by a socket is not taken for the old file). */
static const char *
fd_path (int fd)
{
  struct stat st;
  char link[64], p[PATH_MAX];
  ssize_t n;

  if (fd < 0 || fd >= FD_MAX || fstat (fd, &st) < 0 || !(S_ISREG (st.st_mode) || S_ISDIR (st.st_mode)))
    return NULL;
  if (fds[fd].path && fds[fd].dev == st.st_dev && fds[fd].ino == st.st_ino)
    return fds[fd].path;
  free (fds[fd].path);
  fds[fd].path = NULL;
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, p, sizeof p - 1);
  if (n <= 0)
    return NULL;
  p[n] = '\0';
  if (!under (p) || (n > 10 && strcmp (p + n - 10, " (deleted)") == 0))
    return NULL; /* an O_TMPFILE, or a file gone: no name to lose */
  fds[fd].path = strdup (p);
  fds[fd].dev = st.st_dev;
  fds[fd].ino = st.st_ino;
  return fds[fd].path;
}

/* dirfd + name as an absolute path, the directory part resolved (the
 * last component is not: it may be a link, or not exist yet). */
static int
at_path (int dirfd, const char *name, char *out)
{
  char base[2 * PATH_MAX + 2], dir[2 * PATH_MAX + 2], rdir[PATH_MAX];
  const char *slash, *last;

  if (name == NULL)
    return -1;
  if (name[0] == '/')
    snprintf (base, sizeof base, "%s", name);
  else if (dirfd == AT_FDCWD)
    {
      if (!getcwd (dir, sizeof dir))
        return -1;
      if ((size_t) snprintf (base, sizeof base, "%s/%s", dir, name) >= sizeof base)
        return -1;
    }
  else
    {
      const char *d = fd_path (dirfd);
      if (!d)
        return -1;
      snprintf (base, sizeof base, "%s/%s", d, name);
    }
  slash = strrchr (base, '/');
  last = slash + 1;
  snprintf (dir, sizeof dir, "%.*s", (int) (slash - base), base);
  if (!realpath (dir[0] ? dir : "/", rdir))
    return -1;
  if ((size_t) snprintf (out, PATH_MAX, "%s/%s", rdir, last) >= PATH_MAX)
    return -1;
  return under (out) ? 0 : -1;
}

static void
after_open (int fd, int dirfd, const char *name, int flags, int existed)
{
  char p[PATH_MAX];

  if (fd < 0 || at_path (dirfd, name, p) < 0)
    return;
  if (fd < FD_MAX)
    {
      free (fds[fd].path);
      fds[fd].path = NULL;
    }
  if ((flags & O_TMPFILE) == O_TMPFILE)
    return; /* no name until linked (/proc/self/fd links are not followed here) */
  if ((flags & O_CREAT) && !existed)
    record ("creat", p, NULL, -1, -1, NULL);
  else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
    record ("trunc", p, NULL, -1, 0, NULL);
}

static int
exists_at (int dirfd, const char *name)
{
  struct stat st;
  return fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
do_openat (int dirfd, const char *name, int flags, mode_t mode)
{
  REAL (int, openat, int, const char *, int, ...);
  int fd, existed = 0;

  if (!on ())
    return real_openat (dirfd, name, flags, mode);
  pthread_mutex_lock (&mu);
  if (flags & O_CREAT)
    existed = exists_at (dirfd, name);
  fd = real_openat (dirfd, name, flags, mode);
  if (fd >= 0)
    after_open (fd, dirfd, name, flags, existed);
  pthread_mutex_unlock (&mu);
  return fd;
}

#define MODE_ARG(flags)                                                                                              \
  mode_t mode = 0;                                                                                                   \
  if ((flags) & (O_CREAT | O_TMPFILE))                                                                               \
    {                                                                                                                \
      va_list ap;                                                                                                    \
      va_start (ap, flags);                                                                                          \
      mode = va_arg (ap, mode_t);                                                                                    \
      va_end (ap);                                                                                                   \
    }

int
open (const char *name, int flags, ...)
{
  MODE_ARG (flags);
  return do_openat (AT_FDCWD, name, flags, mode);
}

int
open64 (const char *name, int flags, ...)
{
  MODE_ARG (flags);
  return do_openat (AT_FDCWD, name, flags, mode);
}

int
openat (int dirfd, const char *name, int flags, ...)
{
  MODE_ARG (flags);
  return do_openat (dirfd, name, flags, mode);
}

int
openat64 (int dirfd, const char *name, int flags, ...)
{
  MODE_ARG (flags);
  return do_openat (dirfd, name, flags, mode);
}

int
creat (const char *name, mode_t mode)
{
  return do_openat (AT_FDCWD, name, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

static void
wrote (int fd, long long off, const void *buf, ssize_t n)
{
  const char *p;
  if (n > 0 && (p = fd_path (fd)) != NULL)
    record ("write", p, NULL, off, n, buf);
}

ssize_t
write (int fd, const void *buf, size_t len)
{
  REAL (ssize_t, write, int, const void *, size_t);
  ssize_t n;
  off_t off;

  if (!on () || fd_path (fd) == NULL)
    return real_write (fd, buf, len);
  pthread_mutex_lock (&mu);
  off = (fcntl (fd, F_GETFL) & O_APPEND) ? lseek (fd, 0, SEEK_END) : lseek (fd, 0, SEEK_CUR);
  n = real_write (fd, buf, len);
  wrote (fd, off, buf, n);
  pthread_mutex_unlock (&mu);
  return n;
}

ssize_t
pwrite (int fd, const void *buf, size_t len, off_t off)
{
  REAL (ssize_t, pwrite, int, const void *, size_t, off_t);
  ssize_t n;

  if (!on () || fd_path (fd) == NULL)
    return real_pwrite (fd, buf, len, off);
  pthread_mutex_lock (&mu);
  n = real_pwrite (fd, buf, len, off);
  wrote (fd, off, buf, n);
  pthread_mutex_unlock (&mu);
  return n;
}

ssize_t
pwrite64 (int fd, const void *buf, size_t len, off_t off)
{
  return pwrite (fd, buf, len, off);
}

static ssize_t
vec_write (int fd, const struct iovec *iov, int cnt, off_t off, int pos)
{
  REAL (ssize_t, writev, int, const struct iovec *, int);
  REAL (ssize_t, pwritev, int, const struct iovec *, int, off_t);
  ssize_t n;
  off_t at;

  if (!on () || fd_path (fd) == NULL)
    return pos ? real_pwritev (fd, iov, cnt, off) : real_writev (fd, iov, cnt);
  pthread_mutex_lock (&mu);
  at = pos ? off : lseek (fd, 0, SEEK_CUR);
  n = pos ? real_pwritev (fd, iov, cnt, off) : real_writev (fd, iov, cnt);
  for (ssize_t left = n, i = 0; left > 0 && i < cnt; i++)
    {
      ssize_t k = (ssize_t) iov[i].iov_len < left ? (ssize_t) iov[i].iov_len : left;
      wrote (fd, at, iov[i].iov_base, k);
      at += k;
      left -= k;
    }
  pthread_mutex_unlock (&mu);
  return n;
}

ssize_t
writev (int fd, const struct iovec *iov, int cnt)
{
  return vec_write (fd, iov, cnt, 0, 0);
}

ssize_t
pwritev (int fd, const struct iovec *iov, int cnt, off_t off)
{
  return vec_write (fd, iov, cnt, off, 1);
}

ssize_t
pwritev64 (int fd, const struct iovec *iov, int cnt, off_t off)
{
  return vec_write (fd, iov, cnt, off, 1);
}

int
ftruncate (int fd, off_t len)
{
  REAL (int, ftruncate, int, off_t);
  const char *p;
  int rc;

  if (!on () || fd_path (fd) == NULL)
    return real_ftruncate (fd, len);
  pthread_mutex_lock (&mu);
  rc = real_ftruncate (fd, len);
  if (rc == 0 && (p = fd_path (fd)) != NULL)
    record ("trunc", p, NULL, -1, len, NULL);
  pthread_mutex_unlock (&mu);
  return rc;
}

int
ftruncate64 (int fd, off_t len)
{
  return ftruncate (fd, len);
}

int
fallocate (int fd, int mode, off_t off, off_t len)
{
  REAL (int, fallocate, int, int, off_t, off_t);
  const char *p;
  struct stat st;
  int rc;

  if (!on () || fd_path (fd) == NULL)
    return real_fallocate (fd, mode, off, len);
  pthread_mutex_lock (&mu);
  rc = real_fallocate (fd, mode, off, len);
  /* only a change of size is a change of what is there */
  if (rc == 0 && mode == 0 && (p = fd_path (fd)) != NULL && fstat (fd, &st) == 0)
    record ("extend", p, NULL, -1, (long long) st.st_size, NULL);
  pthread_mutex_unlock (&mu);
  return rc;
}

int
posix_fallocate (int fd, off_t off, off_t len)
{
  return fallocate (fd, 0, off, len) < 0 ? errno : 0;
}

static int
synced (int fd, int data_only)
{
  REAL (int, fsync, int);
  REAL (int, fdatasync, int);
  const char *p;
  int rc;

  if (!on () || fd_path (fd) == NULL)
    return data_only ? real_fdatasync (fd) : real_fsync (fd);
  pthread_mutex_lock (&mu);
  rc = data_only ? real_fdatasync (fd) : real_fsync (fd);
  if (rc == 0 && (p = fd_path (fd)) != NULL)
    record (data_only ? "fdatasync" : "fsync", p, NULL, -1, -1, NULL);
  pthread_mutex_unlock (&mu);
  return rc;
}

int
fsync (int fd)
{
  return synced (fd, 0);
}

int
fdatasync (int fd)
{
  return synced (fd, 1);
}

void
sync (void)
{
  REAL (void, sync, void);
  if (on ())
    {
      pthread_mutex_lock (&mu);
      real_sync ();
      record ("sync", root, NULL, -1, -1, NULL);
      pthread_mutex_unlock (&mu);
    }
  else
    real_sync ();
}

int
syncfs (int fd)
{
  REAL (int, syncfs, int);
  int rc;

  if (!on ())
    return real_syncfs (fd);
  pthread_mutex_lock (&mu);
  rc = real_syncfs (fd);
  if (rc == 0)
    record ("sync", root, NULL, -1, -1, NULL);
  pthread_mutex_unlock (&mu);
  return rc;
}

/* Name operations: two paths (rename, link, symlink) or one. */
static int
name_op (const char *op, int d1, const char *n1, int d2, const char *n2, int (*call) (void *), void *ud)
{
  char p[PATH_MAX], q[PATH_MAX];
  int in1, in2, rc;

  if (!on ())
    return call (ud);
  pthread_mutex_lock (&mu);
  in1 = n1 && strcmp (op, "symlink") != 0 ? at_path (d1, n1, p) == 0 : 0;
  in2 = n2 ? at_path (d2, n2, q) == 0 : 0;
  rc = call (ud);
  if (rc == 0 && strcmp (op, "symlink") == 0 && in2)
    record (op, q, n1, -1, -1, NULL); /* path: the link; path2: what it says */
  else if (rc == 0 && n2 && (in1 || in2))
    {
      /* across the root's edge: what arrives is a new file, what leaves is gone */
      if (in1 && in2)
        record (op, p, q, -1, -1, NULL);
      else if (in2)
        record ("import", q, NULL, -1, -1, NULL);
      else if (strcmp (op, "rename") == 0)
        record ("unlink", p, NULL, -1, -1, NULL);
    }
  else if (rc == 0 && !n2 && in1)
    record (op, p, NULL, -1, -1, NULL);
  pthread_mutex_unlock (&mu);
  return rc;
}

struct args
{
  int d1, d2, flags;
  const char *n1, *n2;
  mode_t mode;
};

#define CALL(name, ...)                                                                                              \
  static int call_##name (void *ud)                                                                                  \
  {                                                                                                                  \
    struct args *a = ud;                                                                                             \
    (void) a;                                                                                                        \
    return (int) syscall (__VA_ARGS__);                                                                              \
  }
CALL (renameat2, SYS_renameat2, a->d1, a->n1, a->d2, a->n2, a->flags)
CALL (linkat, SYS_linkat, a->d1, a->n1, a->d2, a->n2, a->flags)
CALL (symlinkat, SYS_symlinkat, a->n1, a->d2, a->n2)
CALL (unlinkat, SYS_unlinkat, a->d1, a->n1, a->flags)
CALL (mkdirat, SYS_mkdirat, a->d1, a->n1, a->mode)

int
renameat2 (int d1, const char *n1, int d2, const char *n2, unsigned flags)
{
  struct args a = { .d1 = d1, .n1 = n1, .d2 = d2, .n2 = n2, .flags = (int) flags };
  return name_op ("rename", d1, n1, d2, n2, call_renameat2, &a);
}

int
renameat (int d1, const char *n1, int d2, const char *n2)
{
  return renameat2 (d1, n1, d2, n2, 0);
}

int
rename (const char *n1, const char *n2)
{
  return renameat2 (AT_FDCWD, n1, AT_FDCWD, n2, 0);
}

int
linkat (int d1, const char *n1, int d2, const char *n2, int flags)
{
  struct args a = { .d1 = d1, .n1 = n1, .d2 = d2, .n2 = n2, .flags = flags };
  return name_op ("link", d1, n1, d2, n2, call_linkat, &a);
}

int
link (const char *n1, const char *n2)
{
  return linkat (AT_FDCWD, n1, AT_FDCWD, n2, 0);
}

int
symlinkat (const char *target, int d2, const char *n2)
{
  struct args a = { .n1 = target, .d2 = d2, .n2 = n2 };
  return name_op ("symlink", AT_FDCWD, target, d2, n2, call_symlinkat, &a);
}

int
symlink (const char *target, const char *n2)
{
  return symlinkat (target, AT_FDCWD, n2);
}

int
unlinkat (int d1, const char *n1, int flags)
{
  struct args a = { .d1 = d1, .n1 = n1, .flags = flags };
  return name_op (flags & AT_REMOVEDIR ? "rmdir" : "unlink", d1, n1, 0, NULL, call_unlinkat, &a);
}

int
unlink (const char *n1)
{
  return unlinkat (AT_FDCWD, n1, 0);
}

int
rmdir (const char *n1)
{
  return unlinkat (AT_FDCWD, n1, AT_REMOVEDIR);
}

int
mkdirat (int d1, const char *n1, mode_t mode)
{
  struct args a = { .d1 = d1, .n1 = n1, .mode = mode };
  return name_op ("mkdir", d1, n1, 0, NULL, call_mkdirat, &a);
}

int
mkdir (const char *n1, mode_t mode)
{
  return mkdirat (AT_FDCWD, n1, mode);
}
