/* export.c: OCI layout directories, and what both writers share
 * (export.h); the archives are archive.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/json.h"
#include "../../common/util.h"
#include "export.h"
#include "../manifest.h"

#define INDEX_MAX (16u << 20)
#define HASH_CHUNK (128 * 1024)

int
reg_export_parse (const char *spec, enum reg_export_format *fmt, const char **path, ef_err **err)
{
  static const struct
  {
    const char *prefix;
    enum reg_export_format fmt;
  } kinds[] = {
    { "oci:", REG_EXPORT_OCI_DIR },
    { "oci-archive:", REG_EXPORT_OCI_ARCHIVE },
    { "docker-archive:", REG_EXPORT_DOCKER_ARCHIVE },
  };

  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    {
      size_t n = strlen (kinds[i].prefix);
      if (strncmp (spec, kinds[i].prefix, n) == 0 && spec[n] != '\0')
        {
          *fmt = kinds[i].fmt;
          *path = spec + n;
          return 0;
        }
    }
  return ef_err_set (err, EF_USAGE, "--output takes oci:DIR, oci-archive:FILE or docker-archive:FILE");
}

/* path itself when it is a directory that exists (self), else the
 * nearest directory above it that exists; caller frees. */
static char *
existing_dir (const char *path, bool self)
{
  char *d = xstrdup (path);
  struct stat st;

  if (self && stat (d, &st) == 0)
    return d;
  for (;;)
    {
      char *slash = strrchr (d, '/');
      if (slash == NULL)
        {
          free (d);
          return xstrdup (".");
        }
      if (slash == d)
        {
          d[1] = '\0';
          return d;
        }
      *slash = '\0';
      if (stat (d, &st) == 0)
        return d;
    }
}

int
reg_export_probe (enum reg_export_format fmt, const char *path, ef_err **err)
{
  bool dir = fmt == REG_EXPORT_OCI_DIR;
  cleanup_free char *where = existing_dir (path, dir);
  cleanup_free char *probe = xasprintf ("%s/probe", where);
  cleanup_err ef_err *e = NULL;
  struct ef_atomic a;
  struct stat st;
  int fd;

  if (stat (path, &st) == 0 && dir != (S_ISDIR (st.st_mode) != 0))
    return ef_err_set (err, EF_USAGE, "--output %s %s a directory", path, dir ? "is not" : "is");
  /* a file with no name, which no power cut can leave behind; where the
     filesystem has no such files, a named one made and removed */
  fd = open (where, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0)
    {
      close (fd);
      return 0;
    }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return ef_err_set (err, EF_USAGE, "--output %s: %s: %s", path, where, strerror (errno));
  if (ef_atomic_open (&a, probe, 0644, &e) < 0)
    return ef_err_set (err, EF_USAGE, "--output %s: %s", path, ef_err_msg (e));
  ef_atomic_abort (&a);
  return 0;
}

/* ---- OCI layout directories ---- */

/* Does path hold exactly blob d (a regular file, not through a link)? */
static bool
holds_blob (const char *path, const struct reg_desc *d)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  cleanup_free char *buf = NULL;
  char actual[EF_DIGEST_LEN + 1];
  struct stat st;
  ef_hash *h;
  ssize_t n;

  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size != d->size)
    return false;
  buf = xmalloc (HASH_CHUNK);
  h = ef_hash_new ();
  while ((n = read (fd, buf, HASH_CHUNK)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      ef_hash_update (h, buf, (size_t) n);
    }
  ef_hash_final (h, actual);
  ef_hash_free (h);
  return n == 0 && strcmp (actual, d->digest) == 0;
}

static int
to_fd (void *payload, const void *buf, size_t len, ef_err **err)
{
  struct ef_atomic *a = payload;
  return ef_write_all (a->fd, buf, len) < 0 ? ef_err_io (err, errno, "write %s/%s", a->dir, a->name) : 0;
}

static int
drop_chunk (void *payload, const void *buf, size_t len, ef_err **err)
{
  (void) payload;
  (void) buf;
  (void) len;
  (void) err;
  return 0;
}

/* DIR/blobs/sha256/<hex>: kept when it holds the right bytes; else a hard
 * link into the store (of a blob verified now), or a copy, hashed as it
 * streams; either replaces whatever was there in one rename. */
static int
place_blob (reg_store *s, const struct reg_desc *d, const char *blobs, ef_err **err)
{
  cleanup_free char *src = reg_store_blob_path (s, d->digest);
  cleanup_free char *dst = xasprintf ("%s/%s", blobs, d->digest + 7);
  struct ef_atomic a;
  int rc;

  if (holds_blob (dst, d))
    return 0;
  if (!reg_store_verified (s, d->digest) && (rc = reg_store_stream (s, d->digest, d->size, drop_chunk, NULL, err)) < 0)
    return rc;
  if (ef_link_replace (src, dst) == 0)
    return 0;
  rc = ef_atomic_open (&a, dst, 0644, err);
  if (rc == 0)
    rc = reg_store_stream (s, d->digest, d->size, to_fd, &a, err);
  if (rc == 0)
    return ef_atomic_commit (&a, err);
  ef_atomic_abort (&a);
  return rc;
}

/* index.json with ref's entry replacing the one of the same name. */
static char *
merged_index (const char *path, const struct reg_image *im, const char *digest, const struct reg_ref *ref)
{
  cleanup_free char *old = NULL;
  json_t *index = NULL, *list, *e;
  size_t len, i;
  char *text;

  if (ef_read_file (path, INDEX_MAX, &old, &len) == 0)
    index = ef_json_parse (old, len, EF_JSON_BUDGET, NULL);
  if (!json_is_object (index) || !json_is_array (json_object_get (index, "manifests")))
    {
      json_decref (index);
      index = json_pack ("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests");
    }
  list = json_object_get (index, "manifests");
  json_array_foreach (list, i, e)
  {
    json_t *name = json_object_get (json_object_get (e, "annotations"), "org.opencontainers.image.ref.name");
    json_t *dg = json_object_get (e, "digest");
    if ((ref && ref->tag && json_is_string (name) && strcmp (json_string_value (name), ref->tag) == 0)
        || (!json_is_string (name) && json_is_string (dg) && strcmp (json_string_value (dg), digest) == 0))
      {
        json_array_remove (list, i);
        i--;
      }
  }
  json_array_append_new (list, reg_image_index_entry (im, digest, ref));
  text = json_dumps (index, JSON_COMPACT);
  json_decref (index);
  return text;
}

static int
export_dir (reg_store *s, const char *digest, const struct reg_ref *ref, const char *dir, ef_err **err)
{
  static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  cleanup_free char *blobs = xasprintf ("%s/blobs/sha256", dir);
  cleanup_free char *index_path = xasprintf ("%s/index.json", dir);
  cleanup_free char *layout_path = xasprintf ("%s/oci-layout", dir);
  cleanup_free char *text = NULL;
  struct reg_image im;
  struct reg_desc mdesc;
  int rc = reg_image_load (s, digest, &im, err);

  if (rc == 0 && ef_mkdirs (blobs, 0755) < 0)
    rc = ef_err_io (err, errno, "create %s", blobs);
  mdesc.digest = (char *) digest;
  mdesc.size = (int64_t) im.manifest_len;
  if (rc == 0)
    rc = place_blob (s, &mdesc, blobs, err);
  if (rc == 0)
    rc = place_blob (s, reg_manifest_config (im.m), blobs, err);
  for (size_t i = 0; rc == 0 && i < reg_manifest_count (im.m); i++)
    rc = place_blob (s, reg_manifest_entry (im.m, i), blobs, err);
  /* the blobs' names durable before an index.json that names them */
  if (rc == 0 && ef_fsync_dir (blobs) < 0)
    rc = ef_err_io (err, errno, "fsync %s", blobs);
  if (rc == 0)
    {
      ef_remove_stale_tmp (blobs, EF_STALE_S);
      ef_remove_stale_tmp (dir, EF_STALE_S);
      text = merged_index (index_path, &im, digest, ref);
      rc = ef_atomic_write (layout_path, layout, sizeof layout - 1, 0644, err);
    }
  if (rc == 0)
    rc = ef_atomic_write (index_path, text, strlen (text), 0644, err);
  reg_image_dispose (&im);
  return rc;
}

static int
fd_sink (void *payload, const void *buf, size_t len)
{
  return ef_write_all (*(int *) payload, buf, len);
}

int
reg_export (reg_store *s, const char *manifest_digest, const struct reg_ref *ref, enum reg_export_format fmt,
            const char *path, ef_err **err)
{
  struct ef_atomic a;
  int rc;

  if (fmt == REG_EXPORT_OCI_DIR)
    rc = export_dir (s, manifest_digest, ref, path, err);
  else if ((rc = ef_atomic_open (&a, path, 0644, err)) == 0)
    {
      rc = reg_export_stream (s, manifest_digest, NULL, ref, fmt, fd_sink, &a.fd, err);
      if (rc == 0)
        rc = ef_atomic_commit (&a, err);
      else
        ef_atomic_abort (&a);
    }
  if (rc < 0)
    ef_err_wrap (err, "export %s", path);
  return rc;
}
