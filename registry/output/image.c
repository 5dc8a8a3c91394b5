/* image.c: an image or index as the store holds it, for the writers of
 * layouts and archives (export.h). */
#include <string.h>

#include <jansson.h>

#include "../../common/util.h"
#include "../manifest.h"
#include "export.h"

void
reg_image_dispose (struct reg_image *im)
{
  free (im->manifest);
  reg_manifest_free (im->m);
  memset (im, 0, sizeof *im);
}

static int
manifest_load (reg_store *s, const char *digest, struct reg_image *im, ef_err **err)
{
  int rc;

  memset (im, 0, sizeof *im);
  rc = reg_store_manifest (s, digest, &im->manifest, &im->manifest_len, &im->m, err);
  return rc;
}

int
reg_image_load (reg_store *s, const char *digest, struct reg_image *im, ef_err **err)
{
  int rc = manifest_load (s, digest, im, err);

  if (rc < 0)
    return rc;
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

int
reg_image_load_index (reg_store *s, const char *digest, const char *manifest_digest, struct reg_image *im,
                      ef_err **err)
{
  int rc = manifest_load (s, digest, im, err);

  if (rc < 0)
    return rc;
  if (reg_manifest_kind (im->m) != REG_INDEX)
    return ef_err_set (err, EF_LOCAL, "%s is not an index", digest);
  for (size_t i = 0; i < reg_manifest_count (im->m); i++)
    if (strcmp (reg_manifest_entry (im->m, i)->digest, manifest_digest) == 0)
      return 0;
  return ef_err_set (err, EF_LOCAL, "index %s does not list %s", digest, manifest_digest);
}

json_t *
reg_image_index_entry (const struct reg_image *im, const char *digest, const struct reg_ref *ref)
{
  json_t *e = json_pack ("{s:s, s:s, s:I}", "mediaType", reg_manifest_media_type (im->m), "digest", digest, "size",
                         (json_int_t) im->manifest_len);
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
