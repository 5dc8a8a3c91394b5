/* export.c: OCI layouts and docker-archives from the store (libarchive). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "../common/util.h"
#include "../verify/digest.h"
#include "export.h"
#include "manifest.h"

#define CONFIG_MAX (16u << 20)

/* libarchive, and the libxml2, ICU and libstdc++ it drags in, are loaded
 * only when an archive is written: a pull that exports nothing (the
 * agent's usual case) stays ~1.5 MB smaller on a 512 MB device. */
#define LA_FUNCS(X)                                                                                                   \
  X (archive_write_new)                                                                                               \
  X (archive_write_set_format_pax_restricted)                                                                         \
  X (archive_write_set_bytes_per_block)                                                                               \
  X (archive_write_set_bytes_in_last_block)                                                                           \
  X (archive_write_open2)                                                                                             \
  X (archive_write_header)                                                                                            \
  X (archive_write_data)                                                                                              \
  X (archive_write_close)                                                                                             \
  X (archive_write_free)                                                                                              \
  X (archive_error_string)                                                                                            \
  X (archive_set_error)                                                                                               \
  X (archive_entry_new)                                                                                               \
  X (archive_entry_free)                                                                                              \
  X (archive_entry_set_pathname)                                                                                      \
  X (archive_entry_set_filetype)                                                                                      \
  X (archive_entry_set_perm)                                                                                          \
  X (archive_entry_set_size)

static struct
{
#define LA_FIELD(name) __typeof__ (name) *name;
  LA_FUNCS (LA_FIELD)
#undef LA_FIELD
} la;

static int
la_load (ef_err **err)
{
  void *h;

  if (la.archive_write_new)
    return 0;
  h = dlopen ("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    return ef_err_set (err, EF_LOCAL, "cannot load libarchive.so.13 to write the archive");
#define LA_SYM(name)                                                                                                  \
  if ((*(void **) &la.name = dlsym (h, #name)) == NULL)                                                               \
    return ef_err_set (err, EF_LOCAL, "libarchive.so.13 lacks %s", #name);
  LA_FUNCS (LA_SYM)
#undef LA_SYM
  return 0;
}

#define archive_write_new la.archive_write_new
#define archive_write_set_format_pax_restricted la.archive_write_set_format_pax_restricted
#define archive_write_set_bytes_per_block la.archive_write_set_bytes_per_block
#define archive_write_set_bytes_in_last_block la.archive_write_set_bytes_in_last_block
#define archive_write_open2 la.archive_write_open2
#define archive_write_header la.archive_write_header
#define archive_write_data la.archive_write_data
#define archive_write_close la.archive_write_close
#define archive_write_free la.archive_write_free
#define archive_error_string la.archive_error_string
#define archive_set_error la.archive_set_error
#define archive_entry_new la.archive_entry_new
#define archive_entry_free la.archive_entry_free
#define archive_entry_set_pathname la.archive_entry_set_pathname
#define archive_entry_set_filetype la.archive_entry_set_filetype
#define archive_entry_set_perm la.archive_entry_set_perm
#define archive_entry_set_size la.archive_entry_set_size

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

/* The image as the store holds it: its manifest, parsed and re-verified. */
struct image
{
  char *manifest;
  size_t manifest_len;
  reg_manifest *m;
};

static void
image_dispose (struct image *im)
{
  free (im->manifest);
  reg_manifest_free (im->m);
}

static int
image_load (const reg_store *s, const char *digest, struct image *im, ef_err **err)
{
  memset (im, 0, sizeof *im);
  if (reg_store_read (s, digest, REG_MANIFEST_MAX, &im->manifest, &im->manifest_len, err) < 0)
    return -ef_err_code (err ? *err : NULL);
  if (reg_manifest_parse (&im->m, im->manifest, im->manifest_len, NULL, err) < 0)
    return -EF_LOCAL;
  if (reg_manifest_kind (im->m) != REG_IMAGE)
    return ef_err_set (err, EF_LOCAL, "%s is not an image manifest", digest);
  if (!reg_store_has (s, reg_manifest_config (im->m)->digest, reg_manifest_config (im->m)->size))
    return ef_err_set (err, EF_LOCAL, "config of %s is missing from the store", digest);
  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (im->m, i);
      if (!reg_store_has (s, d->digest, d->size))
        return ef_err_set (err, EF_LOCAL, "layer %s of %s is missing from the store", d->digest, digest);
    }
  return 0;
}

/* "registry/path:tag" as docker names it (docker.io/library/x -> x). */
static char *
docker_name (const struct reg_ref *ref)
{
  const char *p = ref->path;

  if (ref->tag == NULL)
    return NULL;
  if (strcmp (ref->domain, "docker.io") == 0)
    return xasprintf ("%s:%s", strncmp (p, "library/", 8) == 0 ? p + 8 : p, ref->tag);
  return xasprintf ("%s/%s:%s", ref->domain, p, ref->tag);
}

/* The entry of index.json for the manifest (or index) digest of media
 * type mt, named after ref: the tag, or the digest the reference pins. */
static json_t *
index_entry (const char *mt, const char *digest, size_t size, const struct reg_ref *ref)
{
  json_t *e = json_pack ("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t) size);
  if (ref && ref->tag)
    {
      cleanup_free char *canonical = xasprintf ("%s/%s:%s", ref->domain, ref->path, ref->tag);
      json_object_set_new (e, "annotations",
                           json_pack ("{s:s, s:s}", "org.opencontainers.image.ref.name", ref->tag,
                                      "io.containerd.image.name", canonical));
    }
  else if (ref)
    {
      cleanup_free char *canonical = xasprintf ("%s/%s@%s", ref->domain, ref->path, digest);
      json_object_set_new (e, "annotations", json_pack ("{s:s}", "io.containerd.image.name", canonical));
    }
  return e;
}

/* ---- archives ---- */

struct sink
{
  reg_sink_fn fn;
  void *payload;
  int errnum;
};

static la_ssize_t
sink_write (struct archive *a, void *ud, const void *buf, size_t len)
{
  struct sink *k = ud;

  if (k->fn (k->payload, buf, len) < 0)
    {
      k->errnum = errno ? errno : EIO;
      archive_set_error (a, k->errnum, "write failed");
      return -1;
    }
  return (la_ssize_t) len;
}

static int
archive_fail (struct archive *a, struct sink *k, ef_err **err)
{
  if (k->errnum == ENOSPC || k->errnum == EDQUOT)
    return ef_err_set (err, EF_LOCAL, "write archive: disk full");
  if (k->errnum)
    return ef_err_sys (err, EF_LOCAL, k->errnum, "write archive");
  return ef_err_set (err, EF_LOCAL, "write archive: %s", archive_error_string (a));
}

static int
add_buf (struct archive *a, struct sink *k, const char *name, const void *buf, size_t len, ef_err **err)
{
  struct archive_entry *e = archive_entry_new ();
  int r;

  archive_entry_set_pathname (e, name);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) len);
  r = archive_write_header (a, e);
  archive_entry_free (e);
  if (r != ARCHIVE_OK || (len > 0 && archive_write_data (a, buf, len) != (la_ssize_t) len))
    return archive_fail (a, k, err);
  return 0;
}

static int
add_dir (struct archive *a, struct sink *k, const char *name, ef_err **err)
{
  struct archive_entry *e = archive_entry_new ();
  int r;

  archive_entry_set_pathname (e, name);
  archive_entry_set_filetype (e, AE_IFDIR);
  archive_entry_set_perm (e, 0755);
  r = archive_write_header (a, e);
  archive_entry_free (e);
  return r == ARCHIVE_OK ? 0 : archive_fail (a, k, err);
}

static int
add_blob (struct archive *a, struct sink *k, const reg_store *s, const char *name, const struct reg_desc *d,
          ef_err **err)
{
  cleanup_free char *path = reg_store_blob_path (s, d->digest);
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct archive_entry *e;
  static char buf[1 << 17];
  int64_t left = d->size;
  int r;

  if (fd < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "open %s", path);
  e = archive_entry_new ();
  archive_entry_set_pathname (e, name);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) d->size);
  r = archive_write_header (a, e);
  archive_entry_free (e);
  if (r != ARCHIVE_OK)
    return archive_fail (a, k, err);
  while (left > 0)
    {
      ssize_t n = read (fd, buf, left < (int64_t) sizeof buf ? (size_t) left : sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return ef_err_set (err, EF_LOCAL, "store damaged: %s is shorter than its descriptor", path);
      if (archive_write_data (a, buf, (size_t) n) != n)
        return archive_fail (a, k, err);
      left -= n;
    }
  return 0;
}

/* The OCI layout as a tar.  With top (the index the reference named, as
 * the store holds it), index.json points at that index, so that a
 * runtime records the image under the digest a deployment pins. */
static int
write_oci (struct archive *a, struct sink *k, const reg_store *s, const struct image *im, const char *digest,
           const struct image *top, const char *top_digest, const struct reg_ref *ref, ef_err **err)
{
  static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  json_t *entry = top ? index_entry (reg_manifest_media_type (top->m), top_digest, top->manifest_len, ref)
                      : index_entry (reg_manifest_media_type (im->m), digest, im->manifest_len, ref);
  json_t *index = json_pack ("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests", entry);
  cleanup_free char *text = json_dumps (index, JSON_COMPACT);
  struct reg_desc mdesc = { .digest = (char *) digest, .size = (int64_t) im->manifest_len };
  const struct reg_desc *cfg = reg_manifest_config (im->m);
  char name[128];

  json_decref (index);
  if (add_buf (a, k, "oci-layout", layout, sizeof layout - 1, err) < 0
      || add_buf (a, k, "index.json", text, strlen (text), err) < 0 || add_dir (a, k, "blobs/", err) < 0
      || add_dir (a, k, "blobs/sha256/", err) < 0)
    return -EF_LOCAL;
  if (top)
    {
      snprintf (name, sizeof name, "blobs/sha256/%s", top_digest + 7);
      if (add_buf (a, k, name, top->manifest, top->manifest_len, err) < 0)
        return -EF_LOCAL;
    }
  snprintf (name, sizeof name, "blobs/sha256/%s", digest + 7);
  if (add_blob (a, k, s, name, &mdesc, err) < 0)
    return -EF_LOCAL;
  snprintf (name, sizeof name, "blobs/sha256/%s", cfg->digest + 7);
  if (add_blob (a, k, s, name, cfg, err) < 0)
    return -EF_LOCAL;
  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (im->m, i);
      bool dup = false;
      for (size_t j = 0; j < i; j++)
        dup = dup || strcmp (reg_manifest_entry (im->m, j)->digest, d->digest) == 0;
      if (dup || strcmp (d->digest, cfg->digest) == 0)
        continue;
      snprintf (name, sizeof name, "blobs/sha256/%s", d->digest + 7);
      if (add_blob (a, k, s, name, d, err) < 0)
        return -EF_LOCAL;
    }
  return 0;
}

static int
write_docker (struct archive *a, struct sink *k, const reg_store *s, const struct image *im,
              const struct reg_ref *ref, ef_err **err)
{
  const struct reg_desc *cfg = reg_manifest_config (im->m);
  cleanup_free char *cfgname = xasprintf ("%s.json", cfg->digest + 7);
  cleanup_free char *tag = ref ? docker_name (ref) : NULL;
  json_t *layers = json_array ();
  json_t *man;
  char *text;
  char name[128];
  int rc;

  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    {
      snprintf (name, sizeof name, "%s.tar", reg_manifest_entry (im->m, i)->digest + 7);
      json_array_append_new (layers, json_string (name));
    }
  man = json_pack ("[{s:s, s:o, s:o}]", "Config", cfgname, "RepoTags", tag ? json_pack ("[s]", tag) : json_array (),
                   "Layers", layers);
  text = json_dumps (man, JSON_COMPACT);
  json_decref (man);
  rc = add_blob (a, k, s, cfgname, cfg, err);
  for (size_t i = 0; rc == 0 && i < reg_manifest_count (im->m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (im->m, i);
      bool dup = false;
      for (size_t j = 0; j < i; j++)
        dup = dup || strcmp (reg_manifest_entry (im->m, j)->digest, d->digest) == 0;
      if (dup)
        continue;
      snprintf (name, sizeof name, "%s.tar", d->digest + 7);
      rc = add_blob (a, k, s, name, d, err);
    }
  /* manifest.json last, as `docker save` does: a reader sees the blobs first. */
  if (rc == 0)
    rc = add_buf (a, k, "manifest.json", text, strlen (text), err);
  free (text);
  return rc;
}

/* The index the reference named, as the store holds it: it must list
 * manifest_digest. */
static int
index_load (const reg_store *s, const char *digest, const char *manifest_digest, struct image *im, ef_err **err)
{
  memset (im, 0, sizeof *im);
  if (reg_store_read (s, digest, REG_MANIFEST_MAX, &im->manifest, &im->manifest_len, err) < 0)
    return -EF_LOCAL;
  if (reg_manifest_parse (&im->m, im->manifest, im->manifest_len, NULL, err) < 0)
    return -EF_LOCAL;
  if (reg_manifest_kind (im->m) != REG_INDEX)
    return ef_err_set (err, EF_LOCAL, "%s is not an index", digest);
  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    if (strcmp (reg_manifest_entry (im->m, i)->digest, manifest_digest) == 0)
      return 0;
  return ef_err_set (err, EF_LOCAL, "index %s does not list %s", digest, manifest_digest);
}

int
reg_export_stream (const reg_store *s, const char *manifest_digest, const char *index_digest,
                   const struct reg_ref *ref, enum reg_export_format fmt, reg_sink_fn fn, void *payload,
                   ef_err **err)
{
  struct sink k = { fn, payload, 0 };
  struct image im, top;
  struct archive *a;
  bool with_index = index_digest != NULL && fmt == REG_EXPORT_OCI_ARCHIVE;
  int rc;

  memset (&top, 0, sizeof top);
  if (fmt == REG_EXPORT_OCI_DIR)
    return ef_err_set (err, EF_USAGE, "an OCI directory is not a stream");
  if (la_load (err) < 0)
    return -EF_LOCAL;
  rc = image_load (s, manifest_digest, &im, err);
  if (rc == 0 && with_index)
    rc = index_load (s, index_digest, manifest_digest, &top, err);
  if (rc < 0)
    {
      image_dispose (&im);
      image_dispose (&top);
      return rc;
    }
  a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  archive_write_set_bytes_per_block (a, 64 * 1024);
  archive_write_set_bytes_in_last_block (a, 1);
  if (archive_write_open2 (a, &k, NULL, sink_write, NULL, NULL) != ARCHIVE_OK)
    rc = archive_fail (a, &k, err);
  else if (fmt == REG_EXPORT_OCI_ARCHIVE)
    rc = write_oci (a, &k, s, &im, manifest_digest, with_index ? &top : NULL, index_digest, ref, err);
  else
    rc = write_docker (a, &k, s, &im, ref, err);
  if (rc == 0 && archive_write_close (a) != ARCHIVE_OK)
    rc = archive_fail (a, &k, err);
  archive_write_free (a);
  image_dispose (&im);
  image_dispose (&top);
  return rc;
}

static int
fd_sink (void *payload, const void *buf, size_t len)
{
  return ef_write_all (*(int *) payload, buf, len);
}

static int
link_or_copy (const char *src, const char *dst, ef_err **err)
{
  cleanup_close int in = -1, out = -1;
  cleanup_free char *tmp = NULL;
  char buf[1 << 16];
  ssize_t n;

  if (access (dst, F_OK) == 0)
    return 0; /* content-addressed: same name, same bytes */
  if (link (src, dst) == 0)
    return 0;
  tmp = xasprintf ("%s.tmp", dst);
  in = open (src, O_RDONLY | O_CLOEXEC);
  out = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "copy %s", dst);
  while ((n = read (in, buf, sizeof buf)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || ef_write_all (out, buf, (size_t) n) < 0)
        {
          int e = errno;
          unlink (tmp);
          return e == ENOSPC ? ef_err_set (err, EF_LOCAL, "copy %s: disk full", dst)
                             : ef_err_sys (err, EF_LOCAL, e, "copy %s", dst);
        }
    }
  if (rename (tmp, dst) < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "rename %s", dst);
  return 0;
}

static int
write_file_atomic (const char *path, const char *text, ef_err **err)
{
  cleanup_free char *tmp = xasprintf ("%s.tmp", path);
  cleanup_close int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  if (fd < 0 || ef_write_all (fd, text, strlen (text)) < 0 || fsync (fd) < 0 || rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return ef_err_sys (err, EF_LOCAL, e, "write %s", path);
    }
  return 0;
}

static int
export_dir (const reg_store *s, const char *digest, const struct reg_ref *ref, const char *dir, ef_err **err)
{
  cleanup_free char *blobs = xasprintf ("%s/blobs/sha256", dir);
  cleanup_free char *index_path = xasprintf ("%s/index.json", dir);
  cleanup_free char *layout_path = xasprintf ("%s/oci-layout", dir);
  cleanup_free char *text = NULL;
  cleanup_free char *old = NULL;
  struct image im;
  json_t *index = NULL, *list, *e;
  size_t len, i;
  int rc;

  rc = image_load (s, digest, &im, err);
  if (rc < 0)
    goto out;
  if (ef_mkdirs (blobs, 0755) < 0)
    {
      rc = ef_err_sys (err, EF_LOCAL, errno, "create %s", blobs);
      goto out;
    }
  for (i = 0; i <= reg_manifest_count (im.m) + 1; i++)
    {
      const char *d = i == 0                              ? digest
                      : i == 1                            ? reg_manifest_config (im.m)->digest
                                                          : reg_manifest_entry (im.m, i - 2)->digest;
      cleanup_free char *src = reg_store_blob_path (s, d);
      cleanup_free char *dst = xasprintf ("%s/%s", blobs, d + 7);
      rc = link_or_copy (src, dst, err);
      if (rc < 0)
        goto out;
    }
  /* Merge with an existing layout: replace the entry of the same name. */
  if (ef_read_file (index_path, 16u << 20, &old, &len) == 0)
    index = json_loadb (old, len, 0, NULL);
  if (!json_is_object (index) || !json_is_array (json_object_get (index, "manifests")))
    {
      json_decref (index);
      index = json_pack ("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests");
    }
  list = json_object_get (index, "manifests");
  json_array_foreach (list, i, e)
  {
    json_t *ann = json_object_get (e, "annotations");
    json_t *name = json_object_get (ann, "org.opencontainers.image.ref.name");
    if ((ref && ref->tag && json_is_string (name) && strcmp (json_string_value (name), ref->tag) == 0)
        || (!json_is_string (name) && json_is_string (json_object_get (e, "digest"))
            && strcmp (json_string_value (json_object_get (e, "digest")), digest) == 0))
      {
        json_array_remove (list, i);
        i--;
      }
  }
  json_array_append_new (list, index_entry (reg_manifest_media_type (im.m), digest, im.manifest_len, ref));
  text = json_dumps (index, JSON_COMPACT);
  rc = write_file_atomic (layout_path, "{\"imageLayoutVersion\":\"1.0.0\"}", err);
  if (rc == 0)
    rc = write_file_atomic (index_path, text, err);
out:
  json_decref (index);
  image_dispose (&im);
  return rc;
}

int
reg_export (const reg_store *s, const char *manifest_digest, const struct reg_ref *ref, enum reg_export_format fmt,
            const char *path, ef_err **err)
{
  cleanup_free char *tmp = NULL;
  int fd, rc;

  if (fmt == REG_EXPORT_OCI_DIR)
    return export_dir (s, manifest_digest, ref, path, err);
  tmp = xasprintf ("%s.tmp%ld", path, (long) getpid ());
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "create %s", path);
  rc = reg_export_stream (s, manifest_digest, NULL, ref, fmt, fd_sink, &fd, err);
  if (rc == 0 && fsync (fd) < 0)
    rc = ef_err_sys (err, EF_LOCAL, errno, "fsync %s", path);
  close (fd);
  if (rc == 0 && rename (tmp, path) < 0)
    rc = ef_err_sys (err, EF_LOCAL, errno, "rename %s", path);
  if (rc < 0)
    {
      unlink (tmp);
      return ef_err_wrap (err, "export %s", path);
    }
  return 0;
}
