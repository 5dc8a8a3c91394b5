/* archive.c: OCI archives and docker-archives from the store, streamed
 * through libarchive (export.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <dlfcn.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <zstd.h>

#include "../../common/util.h"
#include "export.h"
#include "../manifest.h"

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
  X (archive_entry_set_size)                                                                                         \
  X (archive_read_new)                                                                                                \
  X (archive_read_support_filter_gzip)                                                                                \
  X (archive_read_support_format_tar)                                                                                 \
  X (archive_read_open_memory)                                                                                        \
  X (archive_read_next_header)                                                                                        \
  X (archive_read_data)                                                                                               \
  X (archive_read_free)                                                                                               \
  X (archive_entry_pathname)                                                                                          \
  X (archive_entry_size)

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
    return ef_err_set (err, EF_LOCAL, "cannot load libarchive.so.13");
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

/* The header of a regular file member of size bytes. */
static int
file_header (struct archive *a, struct sink *k, const char *name, int64_t size, ef_err **err)
{
  struct archive_entry *e = archive_entry_new ();
  int r;

  archive_entry_set_pathname (e, name);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) size);
  r = archive_write_header (a, e);
  archive_entry_free (e);
  return r == ARCHIVE_OK ? 0 : archive_fail (a, k, err);
}

static int
add_buf (struct archive *a, struct sink *k, const char *name, const void *buf, size_t len, ef_err **err)
{
  int rc = file_header (a, k, name, (int64_t) len, err);

  if (rc == 0 && len > 0 && archive_write_data (a, buf, len) != (la_ssize_t) len)
    rc = archive_fail (a, k, err);
  return rc;
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

struct blob_out
{
  struct archive *a;
  struct sink *k;
};

static int
blob_chunk (void *payload, const void *buf, size_t len, ef_err **err)
{
  struct blob_out *o = payload;
  return archive_write_data (o->a, buf, len) == (la_ssize_t) len ? 0 : archive_fail (o->a, o->k, err);
}

/* The blob as an archive member, hashed as it streams (store.h): a blob
 * that does not match never ends its member, so no reader takes it. */
static int
add_blob (struct archive *a, struct sink *k, reg_store *s, const char *name, const struct reg_desc *d, ef_err **err)
{
  struct blob_out o = { a, k };
  int rc = file_header (a, k, name, d->size, err);

  return rc < 0 ? rc : reg_store_stream (s, d->digest, d->size, blob_chunk, &o, err);
}

/* The OCI layout as a tar.  With top (the index the reference named, as
 * the store holds it), index.json points at that index, so that a
 * runtime records the image under the digest a deployment pins. */
static int
write_oci (struct archive *a, struct sink *k, reg_store *s, const struct reg_image *im, const char *digest,
           const struct reg_image *top, const char *top_digest, const struct reg_ref *ref, ef_err **err)
{
  int rc;
  static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  json_t *entry = top ? reg_image_index_entry (top, top_digest, ref) : reg_image_index_entry (im, digest, ref);
  json_t *index = json_pack ("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests", entry);
  cleanup_free char *text = json_dumps (index, JSON_COMPACT);
  struct reg_desc mdesc = { .digest = (char *) digest, .size = (int64_t) im->manifest_len };
  const struct reg_desc *cfg = reg_manifest_config (im->m);
  char name[128];

  json_decref (index);
  rc = add_buf (a, k, "oci-layout", layout, sizeof layout - 1, err);
  if (rc == 0)
    rc = add_buf (a, k, "index.json", text, strlen (text), err);
  if (rc == 0)
    rc = add_dir (a, k, "blobs/", err);
  if (rc == 0)
    rc = add_dir (a, k, "blobs/sha256/", err);
  if (rc < 0)
    return rc;
  if (top)
    {
      snprintf (name, sizeof name, "blobs/sha256/%s", top_digest + 7);
      if ((rc = add_buf (a, k, name, top->manifest, top->manifest_len, err)) < 0)
        return rc;
    }
  snprintf (name, sizeof name, "blobs/sha256/%s", digest + 7);
  if ((rc = add_blob (a, k, s, name, &mdesc, err)) < 0)
    return rc;
  snprintf (name, sizeof name, "blobs/sha256/%s", cfg->digest + 7);
  if ((rc = add_blob (a, k, s, name, cfg, err)) < 0)
    return rc;
  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (im->m, i);
      bool dup = false;
      for (size_t j = 0; j < i; j++)
        dup = dup || strcmp (reg_manifest_entry (im->m, j)->digest, d->digest) == 0;
      if (dup || strcmp (d->digest, cfg->digest) == 0)
        continue;
      snprintf (name, sizeof name, "blobs/sha256/%s", d->digest + 7);
      if ((rc = add_blob (a, k, s, name, d, err)) < 0)
        return rc;
    }
  return 0;
}

/* ---- zstd layers, for readers of docker-archives that know only gzip ---- */

static bool
is_zstd (const char *media_type)
{
  size_t n = strlen (media_type);
  return n > 5 && strcmp (media_type + n - 5, "+zstd") == 0;
}

struct unzstd
{
  ZSTD_DStream *ds;
  char *out;
  size_t out_cap;
  int64_t produced;
  size_t last; /* ZSTD_decompressStream's last answer: 0 at the end of a frame */
  struct archive *a; /* NULL: only count */
  struct sink *k;
};

static int
unzstd_chunk (void *payload, const void *buf, size_t len, ef_err **err)
{
  struct unzstd *u = payload;
  ZSTD_inBuffer in = { buf, len, 0 };

  while (in.pos < in.size)
    {
      ZSTD_outBuffer out = { u->out, u->out_cap, 0 };
      size_t r = ZSTD_decompressStream (u->ds, &out, &in);
      if (ZSTD_isError (r))
        return ef_err_set (err, EF_VERIFY, "zstd layer: %s", ZSTD_getErrorName (r));
      u->last = r;
      u->produced += (int64_t) out.pos;
      if (u->a && out.pos > 0 && archive_write_data (u->a, u->out, out.pos) != (la_ssize_t) out.pos)
        return archive_fail (u->a, u->k, err);
    }
  return 0;
}

/* One pass over the layer, decompressing: counting, or writing. */
static int
unzstd_pass (reg_store *s, const struct reg_desc *d, struct unzstd *u, ef_err **err)
{
  int rc;

  u->produced = 0;
  ZSTD_initDStream (u->ds);
  u->last = 1;
  rc = reg_store_stream (s, d->digest, d->size, unzstd_chunk, u, err);
  if (rc == 0 && u->last != 0)
    rc = ef_err_set (err, EF_VERIFY, "zstd layer %s ends in the middle of a frame", d->digest);
  return rc;
}

/* A zstd layer as its plain tar: a tar header needs the size first, so the
 * layer is decompressed twice, once to count and once to write.  The image
 * ID (the config and its diff_ids) is the same either way. */
static int
add_unzstd (struct archive *a, struct sink *k, reg_store *s, const char *name, const struct reg_desc *d,
            ef_err **err)
{
  struct unzstd u = { ZSTD_createDStream (), NULL, ZSTD_DStreamOutSize (), 0, 1, NULL, k };
  int64_t total;
  int rc;

  if (u.ds == NULL)
    return ef_err_set (err, EF_LOCAL, "zstd: out of memory");
  u.out = xmalloc (u.out_cap);
  rc = unzstd_pass (s, d, &u, err);
  total = u.produced;
  if (rc == 0)
    rc = file_header (a, k, name, total, err);
  u.a = a;
  if (rc == 0)
    rc = unzstd_pass (s, d, &u, err);
  if (rc == 0 && u.produced != total)
    rc = ef_err_set (err, EF_LOCAL, "store damaged: layer %s changed while it was read", d->digest);
  ZSTD_freeDStream (u.ds);
  free (u.out);
  return rc;
}

static int
write_docker (struct archive *a, struct sink *k, reg_store *s, const struct reg_image *im,
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
      rc = is_zstd (d->media_type) ? add_unzstd (a, k, s, name, d, err) : add_blob (a, k, s, name, d, err);
    }
  /* manifest.json last, as `docker save` does: a reader sees the blobs first. */
  if (rc == 0)
    rc = add_buf (a, k, "manifest.json", text, strlen (text), err);
  free (text);
  return rc;
}

int
reg_export_stream (reg_store *s, const char *manifest_digest, const char *index_digest,
                   const struct reg_ref *ref, enum reg_export_format fmt, reg_sink_fn fn, void *payload,
                   ef_err **err)
{
  struct sink k = { fn, payload, 0 };
  struct reg_image im, top;
  struct archive *a;
  bool with_index = index_digest != NULL && fmt == REG_EXPORT_OCI_ARCHIVE;
  int rc;

  memset (&top, 0, sizeof top);
  if (fmt == REG_EXPORT_OCI_DIR)
    return ef_err_set (err, EF_USAGE, "an OCI directory is not a stream");
  if ((rc = la_load (err)) < 0)
    return rc;
  rc = reg_image_load (s, manifest_digest, &im, err);
  if (rc == 0 && with_index)
    rc = reg_image_load_index (s, index_digest, manifest_digest, &top, err);
  if (rc < 0)
    {
      reg_image_dispose (&im);
      reg_image_dispose (&top);
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
  reg_image_dispose (&im);
  reg_image_dispose (&top);
  return rc;
}

int
reg_archive_read_entry (const void *buf, size_t len, const char *name, size_t max, char **out, size_t *n,
                        ef_err **err)
{
  struct archive *a;
  struct archive_entry *e;
  int rc = la_load (err);

  *out = NULL;
  *n = 0;
  if (rc < 0)
    return rc;
  a = la.archive_read_new ();
  if (a == NULL)
    return ef_err_set (err, EF_LOCAL, "libarchive: out of memory");
  la.archive_read_support_filter_gzip (a);
  la.archive_read_support_format_tar (a);
  rc = -EF_NOTFOUND;
  if (la.archive_read_open_memory (a, buf, len) == ARCHIVE_OK)
    while (rc == -EF_NOTFOUND && la.archive_read_next_header (a, &e) == ARCHIVE_OK)
      {
        la_int64_t size = la.archive_entry_size (e);
        const char *p = la.archive_entry_pathname (e);
        if (p == NULL || strcmp (p, name) != 0)
          continue;
        if (size < 0 || (uint64_t) size > max)
          rc = ef_err_set (err, EF_VERIFY, "%s is %lld bytes, more than %zu", name, (long long) size, max);
        else
          {
            *out = xmalloc ((size_t) size + 1);
            if (la.archive_read_data (a, *out, (size_t) size) != (la_ssize_t) size)
              rc = ef_err_set (err, EF_VERIFY, "%s is cut short", name);
            else
              {
                (*out)[size] = '\0';
                *n = (size_t) size;
                rc = 0;
              }
          }
      }
  if (rc == -EF_NOTFOUND)
    rc = ef_err_set (err, EF_VERIFY, "no %s in the archive", name);
  if (rc < 0)
    {
      free (*out);
      *out = NULL;
    }
  la.archive_read_free (a);
  return rc;
}
