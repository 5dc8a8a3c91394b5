/* export.h: write an image from the store in a standard format:
 * an OCI layout directory, an OCI archive, or a docker-archive (the
 * `docker save` format), read by skopeo, umoci, `docker load`, `ctr import`. */
#ifndef EF_EXPORT_H
#define EF_EXPORT_H

#include <stddef.h>

#include "../common/err.h"
#include "ref.h"
#include "store.h"

enum reg_export_format
{
  REG_EXPORT_OCI_DIR,
  REG_EXPORT_OCI_ARCHIVE,
  REG_EXPORT_DOCKER_ARCHIVE,
};

/* Parse "oci:DIR", "oci-archive:FILE", "docker-archive:FILE". */
int reg_export_parse (const char *spec, enum reg_export_format *fmt, const char **path, ef_err **err);

/* Receives the archive bytes; returns 0, or -1 with errno set. */
typedef int (*reg_sink_fn) (void *payload, const void *buf, size_t len);

/* Stream an archive of image manifest_digest (in s) to sink.  ref names
 * the image inside the archive (RepoTags, ref.name); it may be NULL.
 * index_digest (or NULL) is the index the reference named: an OCI archive
 * then has that index at its top, listing the image, so that a runtime
 * knows the image by the digest the reference pins. */
int reg_export_stream (const reg_store *s, const char *manifest_digest, const char *index_digest,
                       const struct reg_ref *ref, enum reg_export_format fmt, reg_sink_fn sink, void *payload,
                       ef_err **err);

/* Write to path: archives go to a temporary file renamed at the end; an
 * OCI directory gets hard links (or copies) of the blobs, and index.json
 * is merged with what the directory already holds. */
int reg_export (const reg_store *s, const char *manifest_digest, const struct reg_ref *ref,
                enum reg_export_format fmt, const char *path, ef_err **err);

#endif
