/* export.h: write an image from the store in a standard format: an OCI
 * layout directory (export.c), an OCI archive or a docker-archive, the
 * `docker save` format (archive.c); read by skopeo, umoci, `docker load`,
 * `ctr import`.  Every blob is hashed as it leaves the store unless this
 * process verified it already (store.h). */
#ifndef EF_EXPORT_H
#define EF_EXPORT_H

#include <stddef.h>

#include <jansson.h>

#include "../../common/err.h"
#include "../manifest.h"
#include "../ref.h"
#include "../store/store.h"

enum reg_export_format
{
  REG_EXPORT_OCI_DIR,
  REG_EXPORT_OCI_ARCHIVE,
  REG_EXPORT_DOCKER_ARCHIVE,
};

/* Parse "oci:DIR", "oci-archive:FILE", "docker-archive:FILE". */
int reg_export_parse (const char *spec, enum reg_export_format *fmt, const char **path, ef_err **err);
/* Before any download: can we write there?  The directory is created
 * (oci:), a temporary file is made and removed (EF_USAGE otherwise). */
int reg_export_probe (enum reg_export_format fmt, const char *path, ef_err **err);

/* Receives the archive bytes; returns 0, or -1 with errno set. */
typedef int (*reg_sink_fn) (void *payload, const void *buf, size_t len);

/* Stream an archive of image manifest_digest (in s) to sink.  ref names
 * the image inside the archive (RepoTags, ref.name); it may be NULL.
 * index_digest (or NULL) is the index the reference named: an OCI archive
 * then has that index at its top, listing the image, so that a runtime
 * knows the image by the digest the reference pins. */
int reg_export_stream (reg_store *s, const char *manifest_digest, const char *index_digest,
                       const struct reg_ref *ref, enum reg_export_format fmt, reg_sink_fn sink, void *payload,
                       ef_err **err);

/* Write to path: archives go to a temporary file renamed at the end; an
 * OCI directory gets hard links (or copies) of the blobs, and index.json
 * is merged with what the directory already holds.  Files already there
 * are kept only when they hold the right bytes. */
int reg_export (reg_store *s, const char *manifest_digest, const struct reg_ref *ref, enum reg_export_format fmt,
                const char *path, ef_err **err);

/* For the two writers: an image (or index) as the store holds it. */
struct reg_image
{
  char *manifest;
  size_t manifest_len;
  reg_manifest *m;
};
/* The image manifest digest, its config and layers present in s. */
int reg_image_load (reg_store *s, const char *digest, struct reg_image *im, ef_err **err);
/* The index digest, which must list manifest_digest. */
int reg_image_load_index (reg_store *s, const char *digest, const char *manifest_digest, struct reg_image *im,
                          ef_err **err);
void reg_image_dispose (struct reg_image *im);
/* The entry of index.json for im (at digest), named after ref. */
json_t *reg_image_index_entry (const struct reg_image *im, const char *digest, const struct reg_ref *ref);

/* Entry name of a tar (gzip'd or not) held in memory, read with
 * libarchive: at most max bytes, in *out (NUL-terminated; caller frees).
 * EF_VERIFY when it is not there or not whole. */
int reg_archive_read_entry (const void *buf, size_t len, const char *name, size_t max, char **out, size_t *n,
                            ef_err **err);

#endif
