/* recover.c: what a killed run or a power cut left in a store, removed
 * (store.h, reg_store_recover). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "store.h"

/* "<64 hex>.<ext>": the blob's digest, into digest ("sha256:<hex>"). */
static bool
blob_file (const char *name, const char *ext, char *digest, size_t cap)
{
  size_t n = strlen (name), e = strlen (ext);

  if (n != 64 + e || strcmp (name + 64, ext) != 0)
    return false;
  for (size_t i = 0; i < 64; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
      return false;
  snprintf (digest, cap, "sha256:%.64s", name);
  return true;
}

/* A download (.part) or rebuild (.partial) no pull wants, open as fd:
 * its blob is in the store, or no byte came for REG_PART_KEEP_S.  One a
 * running pull holds (it is locked while written) is left alone. */
static bool
unwanted (reg_store *s, int fd, const char *digest, time_t now)
{
  struct stat st;

  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || flock (fd, LOCK_EX | LOCK_NB) < 0)
    return false;
  return reg_store_has (s, digest, -1) || now - st.st_mtime >= REG_PART_KEEP_S;
}

static bool
part_unwanted (reg_store *s, int dfd, const char *name, const char *digest, time_t now)
{
  cleanup_close int fd = openat (dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  return unwanted (s, fd, digest, now);
}

/* A rebuild and its journal: as above, or the journal is all that is left. */
static bool
partial_unwanted (reg_store *s, int dfd, const char *digest, time_t now)
{
  char name[96];
  int fd;
  bool r;

  snprintf (name, sizeof name, "%s.partial", digest + 7);
  fd = openat (dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return errno == ENOENT;
  r = unwanted (s, fd, digest, now);
  close (fd);
  return r;
}

static void
ingest_leftovers (reg_store *s, const char *ingest, time_t now, struct reg_recovery *r)
{
  DIR *d = opendir (ingest);
  struct dirent *de;
  char digest[80], other[96];
  bool removed = false;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;
      if (blob_file (de->d_name, ".part", digest, sizeof digest) && part_unwanted (s, dirfd (d), de->d_name, digest, now))
        {
          snprintf (other, sizeof other, "%.64s.ranges", de->d_name);
          unlinkat (dirfd (d), other, 0);
          if (unlinkat (dirfd (d), de->d_name, 0) == 0)
            {
              r->parts++;
              removed = true;
            }
        }
      else if ((blob_file (de->d_name, ".partial", digest, sizeof digest)
                || blob_file (de->d_name, ".partial.journal", digest, sizeof digest))
               && partial_unwanted (s, dirfd (d), digest, now))
        {
          /* a zstd:chunked rebuild (registry/transfer/partial.c) and its journal */
          snprintf (other, sizeof other, "%.64s.partial", de->d_name);
          if (unlinkat (dirfd (d), other, 0) == 0)
            r->parts++;
          snprintf (other, sizeof other, "%.64s.partial.journal", de->d_name);
          if (unlinkat (dirfd (d), other, 0) == 0)
            r->records++;
          removed = true;
        }
      else if (blob_file (de->d_name, ".ranges", digest, sizeof digest))
        {
          /* a record whose .part is gone (a power cut took the unlink back) */
          snprintf (other, sizeof other, "%.64s.part", de->d_name);
          if (fstatat (dirfd (d), other, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT
              && unlinkat (dirfd (d), de->d_name, 0) == 0)
            {
              r->records++;
              removed = true;
            }
        }
    }
  closedir (d);
  if (removed)
    ef_fsync_dir (ingest);
}

/* handoff-XXXXXX/<domain>/hosts.toml (agent/runtime/containerd.c), left
 * when the agent was cut during a handoff to containerd. */
static void
handoff_leftovers (const char *dir, time_t now, struct reg_recovery *r)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  struct stat st;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      if (strncmp (de->d_name, "handoff-", 8) != 0 || strlen (de->d_name) != 14
          || fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR (st.st_mode)
          || now - st.st_mtime < EF_STALE_S)
        continue;
      cleanup_free char *top = xasprintf ("%s/%s", dir, de->d_name);
      DIR *h = opendir (top);
      struct dirent *sub;
      while (h && (sub = readdir (h)) != NULL)
        {
          if (sub->d_name[0] == '.')
            continue;
          cleanup_free char *inner = xasprintf ("%s/%s", top, sub->d_name);
          ef_remove_stale_tmp (inner, 0);
          cleanup_free char *file = xasprintf ("%s/hosts.toml", inner);
          unlink (file);
          rmdir (inner);
        }
      if (h)
        closedir (h);
      if (rmdir (top) == 0)
        r->handoffs++;
    }
  closedir (d);
}

void
reg_store_recover (reg_store *s, struct reg_recovery *r)
{
  const char *dir = reg_store_dir (s);
  cleanup_free char *ingest = xasprintf ("%s/ingest", dir);
  time_t now = time (NULL);

  /* the store's temporaries are in ingest/ (blobs and manifests) and in
     the store itself (images.json): blobs/ is never listed */
  memset (r, 0, sizeof *r);
  r->tmp += ef_remove_stale_tmp (dir, EF_STALE_S);
  r->tmp += ef_remove_stale_tmp (ingest, EF_STALE_S);
  ingest_leftovers (s, ingest, now, r);
  handoff_leftovers (dir, now, r);
  if (r->tmp || r->handoffs)
    ef_fsync_dir (dir);
}
