/* file.h: whole-file reads and writes, and files replaced atomically. */
#ifndef EF_FILE_H
#define EF_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Write the whole buffer; returns 0 or -1 with errno set. */
int ef_write_all (int fd, const void *buf, size_t len);
/* mkdir -p with mode, each directory it makes fsynced into its parent,
 * and path's own entry too (an earlier run may have made it and not
 * synced it); returns 0 or -1 with errno set. */
int ef_mkdirs (const char *path, unsigned mode);
/* fsync a directory: what was named, renamed or removed in it stays so. */
int ef_fsync_dir (const char *path);
/* How old a temporary must be before it counts as left over: one a
 * running process is writing is seconds old. */
#define EF_STALE_S 600
/* Remove from dir the temporaries of ef_atomic_open and ef_link_replace
 * (".<name>.<12 hex>.tmp") last changed grace_s or more ago: what a
 * killed run or a power cut left.  Returns how many went. */
int ef_remove_stale_tmp (const char *dir, int64_t grace_s);
/* Read a whole regular file (not a FIFO or a device) of at most max
 * bytes; returns 0 or -1 with errno set (EFBIG past max). */
int ef_read_file (const char *path, size_t max, char **out, size_t *len);

/* A file that replaces PATH only once it is complete.  The bytes go to a
 * new temporary in PATH's directory, made with O_CREAT|O_EXCL|O_NOFOLLOW
 * under a random name, so nothing planted there (a symlink, a FIFO) is
 * ever written through; commit fsyncs it, renames it over PATH (a
 * symlink at PATH is replaced, not followed) and fsyncs the directory. */
struct ef_atomic
{
  int fd; /* write here */
  int dirfd, tmpdirfd;
  char *dir, *name, *tmp;
};
int ef_atomic_open (struct ef_atomic *a, const char *path, unsigned mode, ef_err **err);
/* The same with the temporary in tmpdir, on PATH's filesystem (a store
 * keeps its temporaries out of the directory readers look in). */
int ef_atomic_open_in (struct ef_atomic *a, const char *tmpdir, const char *path, unsigned mode, ef_err **err);
int ef_atomic_commit (struct ef_atomic *a, ef_err **err);
/* Drop the temporary (after a failure, or instead of commit). */
void ef_atomic_abort (struct ef_atomic *a);

/* Hard-link src to a new random name beside dst, then rename it over
 * dst; returns 0 or -1 with errno set (EXDEV: another filesystem). */
int ef_link_replace (const char *src, const char *dst);

/* Replace path with exactly these bytes, as above. */
int ef_atomic_write (const char *path, const void *data, size_t len, unsigned mode, ef_err **err);

#endif
