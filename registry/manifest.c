/* manifest.c: strict parsing of manifests and indexes with jansson. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <jansson.h>

#include "../common/json.h"
#include "../common/text.h"
#include "../common/util.h"
#include "../common/digest.h"
#include "manifest.h"

#define MAX_ENTRIES 4096                 /* layers or index entries */
#define MAX_BLOB_SIZE (INT64_C (1) << 40) /* 1 TiB: a descriptor claiming more is hostile */
#define MAX_ANNOTATIONS 32                   /* kept per descriptor */

struct reg_manifest
{
  enum reg_kind kind;
  char *media_type;
  struct reg_desc config;
  size_t n;
  struct reg_desc *entries;
};

static const char *const image_layer_types[] = {
  "application/vnd.oci.image.layer.v1.tar",
  "application/vnd.oci.image.layer.v1.tar+gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.diff.tar",
  "application/vnd.docker.image.rootfs.diff.tar.gzip",
  "application/vnd.docker.image.rootfs.foreign.diff.tar",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  NULL,
};

static bool
in_list (const char *s, const char *const *list)
{
  for (; *list; list++)
    if (strcmp (s, *list) == 0)
      return true;
  return false;
}

static bool
is_manifest_type (const char *mt)
{
  return strcmp (mt, MT_OCI_MANIFEST) == 0 || strcmp (mt, MT_DOCKER_MANIFEST) == 0;
}

static bool
is_index_type (const char *mt)
{
  return strcmp (mt, MT_OCI_INDEX) == 0 || strcmp (mt, MT_DOCKER_LIST) == 0;
}

static bool
is_schema1_type (const char *mt)
{
  return strcmp (mt, "application/vnd.docker.distribution.manifest.v1+prettyjws") == 0
         || strcmp (mt, "application/vnd.docker.distribution.manifest.v1+json") == 0;
}

/* RFC 6838: type "/" subtype, restricted-name characters, + and . allowed. */
static bool
valid_media_type (const char *s)
{
  int slashes = 0;

  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
    return false;
  for (; *s; s++)
    {
      if (*s == '/')
        {
          if (++slashes > 1 || s[1] == '\0')
            return false;
          continue;
        }
      if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
            || strchr ("!#$&^_.+-", *s)))
        return false;
    }
  return slashes == 1;
}

static void
desc_dispose (struct reg_desc *d)
{
  ef_strv_free (d->annotations);
  free (d->artifact_type);
  free (d->media_type);
  free (d->digest);
  free (d->os);
  free (d->arch);
  free (d->variant);
  memset (d, 0, sizeof *d);
}

/* The string annotations of a descriptor, as key, value, ..., NULL. */
static char **
annotations_of (json_t *a)
{
  const char *k;
  json_t *v;
  char **out;
  size_t n = 0;

  if (!json_is_object (a) || json_object_size (a) == 0)
    return NULL;
  out = xcalloc (2 * MAX_ANNOTATIONS + 1, sizeof *out);
  json_object_foreach (a, k, v)
  {
    if (n == 2 * MAX_ANNOTATIONS)
      break;
    if (!json_is_string (v))
      continue;
    out[n++] = xstrdup (k);
    out[n++] = xstrdup (json_string_value (v));
  }
  return out;
}

const char *
reg_desc_annotation (const struct reg_desc *d, const char *key)
{
  for (size_t i = 0; d->annotations && d->annotations[i]; i += 2)
    if (strcmp (d->annotations[i], key) == 0)
      return d->annotations[i + 1];
  return NULL;
}

static int
desc_parse (struct reg_desc *d, json_t *o, const char *what, ef_err **err)
{
  int rc;
  json_t *mt = json_object_get (o, "mediaType");
  json_t *dg = json_object_get (o, "digest");
  json_t *sz = json_object_get (o, "size");

  memset (d, 0, sizeof *d);
  if (!json_is_object (o))
    return ef_err_set (err, EF_VERIFY, "%s: descriptor is not an object", what);
  if (!json_is_string (mt) || json_string_length (mt) == 0 || json_string_length (mt) > 255
      || !valid_media_type (json_string_value (mt)))
    return ef_err_set (err, EF_VERIFY, "%s: descriptor without a valid mediaType", what);
  if (!json_is_string (dg))
    return ef_err_set (err, EF_VERIFY, "%s: descriptor without a digest", what);
  if ((rc = ef_digest_parse (json_string_value (dg), NULL, err)) < 0)
    {
      ef_err_wrap (err, "%s", what);
      return rc;
    }
  if (!json_is_integer (sz) || json_integer_value (sz) < 0 || json_integer_value (sz) > MAX_BLOB_SIZE)
    return ef_err_set (err, EF_VERIFY, "%s: descriptor without a valid size", what);
  d->media_type = xstrdup (json_string_value (mt));
  d->digest = xstrdup (json_string_value (dg));
  if (json_is_string (json_object_get (o, "artifactType")))
    d->artifact_type = xstrdup (json_string_value (json_object_get (o, "artifactType")));
  d->annotations = annotations_of (json_object_get (o, "annotations"));
  d->size = json_integer_value (sz);
  return 0;
}

/* The media type without parameters, or NULL. */
static char *
bare_type (const char *ct)
{
  size_t n;

  if (ct == NULL)
    return NULL;
  n = strcspn (ct, "; \t");
  return n ? xstrndup (ct, n) : NULL;
}

static int
parse_image (reg_manifest *m, json_t *root, enum reg_parse_mode mode, ef_err **err)
{
  int rc;
  bool image = mode == REG_PARSE_IMAGE;
  json_t *cfg = json_object_get (root, "config");
  json_t *layers = json_object_get (root, "layers");
  size_t i;

  if (cfg == NULL)
    return ef_err_set (err, EF_VERIFY, "manifest has no config");
  if ((rc = desc_parse (&m->config, cfg, "manifest config", err)) < 0)
    return rc;
  if (image && strcmp (m->config.media_type, MT_OCI_CONFIG) != 0 && strcmp (m->config.media_type, MT_DOCKER_CONFIG) != 0)
    return ef_err_set (err, EF_VERIFY, "not a container image: config type '%s'", m->config.media_type);
  if (!json_is_array (layers))
    return ef_err_set (err, EF_VERIFY, "manifest has no layers array");
  if (image && json_array_size (layers) == 0)
    return ef_err_set (err, EF_VERIFY, "manifest has no layers");
  if (json_array_size (layers) > MAX_ENTRIES)
    return ef_err_set (err, EF_VERIFY, "manifest has too many layers");
  m->n = json_array_size (layers);
  m->entries = xcalloc (m->n, sizeof *m->entries);
  for (i = 0; i < m->n; i++)
    {
      struct reg_desc *d = &m->entries[i];
      if ((rc = desc_parse (d, json_array_get (layers, i), "manifest layer", err)) < 0)
        return rc;
      if (!image)
        continue; /* an artifact's layers are its own business */
      if (strstr (d->media_type, "+encrypted"))
        return ef_err_set (err, EF_VERIFY, "encrypted layers are not supported");
      if (!in_list (d->media_type, image_layer_types))
        return ef_err_set (err, EF_VERIFY, "unknown layer media type '%s'", d->media_type);
    }
  return 0;
}

static char *
json_str_dup (json_t *o, const char *key)
{
  json_t *v = json_object_get (o, key);
  return json_is_string (v) ? xstrdup (json_string_value (v)) : NULL;
}

static int
parse_index (reg_manifest *m, json_t *root, ef_err **err)
{
  int rc;
  json_t *list = json_object_get (root, "manifests");
  size_t i;

  if (!json_is_array (list))
    return ef_err_set (err, EF_VERIFY, "index has no manifests array");
  if (json_array_size (list) > MAX_ENTRIES)
    return ef_err_set (err, EF_VERIFY, "index has too many entries");
  m->n = json_array_size (list);
  m->entries = xcalloc (m->n, sizeof *m->entries);
  for (i = 0; i < m->n; i++)
    {
      json_t *e = json_array_get (list, i);
      json_t *plat = json_object_get (e, "platform");
      json_t *ann = json_object_get (e, "annotations");
      json_t *rt = json_is_object (ann) ? json_object_get (ann, "vnd.docker.reference.type") : NULL;
      struct reg_desc *d = &m->entries[i];

      if ((rc = desc_parse (d, e, "index entry", err)) < 0)

        return rc;
      if (plat != NULL && !json_is_object (plat))
        return ef_err_set (err, EF_VERIFY, "index entry platform is not an object");
      if (plat && (!json_is_string (json_object_get (plat, "os"))
                   || !json_is_string (json_object_get (plat, "architecture"))
                   || (json_object_get (plat, "variant") && !json_is_string (json_object_get (plat, "variant")))))
        return ef_err_set (err, EF_VERIFY, "index entry platform has malformed fields");
      if (plat)
        {
          d->os = json_str_dup (plat, "os");
          d->arch = json_str_dup (plat, "architecture");
          d->variant = json_str_dup (plat, "variant");
        }
      d->attestation = (json_is_string (rt) && strcmp (json_string_value (rt), "attestation-manifest") == 0)
                       || (d->os && strcmp (d->os, "unknown") == 0);
    }
  return 0;
}

int
reg_manifest_parse (reg_manifest **out, const char *buf, size_t len, const char *content_type, ef_err **err)
{
  return reg_manifest_parse_as (out, buf, len, content_type, REG_PARSE_IMAGE, err);
}

int
reg_manifest_parse_as (reg_manifest **out, const char *buf, size_t len, const char *content_type,
                       enum reg_parse_mode mode, ef_err **err)
{
  cleanup_free char *ct = bare_type (content_type);
  json_t *root, *sv, *mt;
  const char *why = NULL;
  reg_manifest *m;
  const char *type;
  int rc = 0;

  *out = NULL;
  if (len > REG_MANIFEST_MAX)
    return ef_err_set (err, EF_VERIFY, "manifest larger than %u bytes", REG_MANIFEST_MAX);
  if (ct && is_schema1_type (ct))
    return ef_err_set (err, EF_VERIFY, "schema1 manifests are not supported (re-push the image with a current client)");
  root = ef_json_parse (buf, len, EF_JSON_BUDGET, &why);
  if (root == NULL || !json_is_object (root))
    {
      json_decref (root);
      return ef_err_set (err, EF_VERIFY, "manifest %s", root ? "is not a JSON object" : why);
    }
  sv = json_object_get (root, "schemaVersion");
  mt = json_object_get (root, "mediaType");
  if (json_is_integer (sv) && json_integer_value (sv) == 1)
    {
      rc = ef_err_set (err, EF_VERIFY, "schema1 manifests are not supported (re-push the image with a current client)");
      goto out;
    }
  if (!json_is_integer (sv) || json_integer_value (sv) != 2)
    {
      rc = ef_err_set (err, EF_VERIFY, "unsupported manifest schemaVersion");
      goto out;
    }
  if (mt != NULL && !json_is_string (mt))
    {
      rc = ef_err_set (err, EF_VERIFY, "manifest mediaType is not a string");
      goto out;
    }

  /* The body's mediaType, when present, must agree with Content-Type
   * (dist-spec); without one, Content-Type decides, and a generic
   * Content-Type falls back to the OCI shape of the document. */
  if (mt)
    {
      type = json_string_value (mt);
      if (ct && (is_manifest_type (ct) || is_index_type (ct)) && strcmp (ct, type) != 0)
        {
          rc = ef_err_set (err, EF_VERIFY, "manifest mediaType '%s' contradicts Content-Type '%s'", type, ct);
          goto out;
        }
    }
  else if (ct && (is_manifest_type (ct) || is_index_type (ct)))
    type = ct;
  else if (json_object_get (root, "manifests"))
    type = MT_OCI_INDEX;
  else if (json_object_get (root, "config") && json_object_get (root, "layers"))
    type = MT_OCI_MANIFEST;
  else
    type = "";

  if (!is_manifest_type (type) && !is_index_type (type))
    {
      rc = ef_err_set (err, EF_VERIFY, "unsupported manifest media type '%.100s'", type);
      goto out;
    }
  if (json_object_get (root, "subject"))
    {
      struct reg_desc subject;
      rc = desc_parse (&subject, json_object_get (root, "subject"), "subject", err);
      desc_dispose (&subject);
      if (rc < 0)
        goto out;
    }
  m = xcalloc (1, sizeof *m);
  m->media_type = xstrdup (type);
  m->kind = is_index_type (type) ? REG_INDEX : REG_IMAGE;
  rc = m->kind == REG_INDEX ? parse_index (m, root, err) : parse_image (m, root, mode, err);
  if (rc < 0)
    reg_manifest_free (m);
  else
    *out = m;
out:
  json_decref (root);
  return rc;
}

enum reg_kind
reg_manifest_kind (const reg_manifest *m)
{
  return m->kind;
}

const char *
reg_manifest_media_type (const reg_manifest *m)
{
  return m->media_type;
}

const struct reg_desc *
reg_manifest_config (const reg_manifest *m)
{
  return m->kind == REG_IMAGE ? &m->config : NULL;
}

size_t
reg_manifest_count (const reg_manifest *m)
{
  return m->n;
}

const struct reg_desc *
reg_manifest_entry (const reg_manifest *m, size_t i)
{
  return i < m->n ? &m->entries[i] : NULL;
}

void
reg_manifest_free (reg_manifest *m)
{
  size_t i;

  if (m == NULL)
    return;
  for (i = 0; i < m->n; i++)
    desc_dispose (&m->entries[i]);
  free (m->entries);
  desc_dispose (&m->config);
  free (m->media_type);
  free (m);
}

/* Platforms */

static void
copy_field (char *dst, size_t cap, const char *src)
{
  snprintf (dst, cap, "%s", src ? src : "");
}

/* Normalise arch and variant in place, containerd style. */
static void
normalize (char *arch, size_t acap, char *variant, size_t vcap)
{
  size_t vl;

  if (strcmp (arch, "aarch64") == 0)
    copy_field (arch, acap, "arm64");
  else if (strcmp (arch, "x86_64") == 0 || strcmp (arch, "x86-64") == 0)
    copy_field (arch, acap, "amd64");
  else if (strcmp (arch, "i386") == 0 || strcmp (arch, "i686") == 0)
    copy_field (arch, acap, "386");
  else if (strcmp (arch, "armhf") == 0 || strcmp (arch, "armv7l") == 0 || strcmp (arch, "armv7") == 0)
    {
      copy_field (arch, acap, "arm");
      if (variant[0] == '\0')
        copy_field (variant, vcap, "v7");
    }
  else if (strcmp (arch, "armel") == 0 || strcmp (arch, "armv6l") == 0 || strcmp (arch, "armv6") == 0)
    {
      copy_field (arch, acap, "arm");
      if (variant[0] == '\0')
        copy_field (variant, vcap, "v6");
    }
  /* "7" -> "v7", "v7l" -> "v7" (seen on Raspberry Pi images) */
  vl = strlen (variant);
  if (vl > 0 && variant[0] >= '0' && variant[0] <= '9' && vl + 1 < vcap)
    {
      memmove (variant + 1, variant, vl + 1);
      variant[0] = 'v';
      vl++;
    }
  if (vl == 3 && variant[0] == 'v' && variant[2] == 'l')
    variant[2] = '\0';
  if (strcmp (arch, "arm64") == 0 && (strcmp (variant, "v8") == 0 || strcmp (variant, "v8.0") == 0))
    variant[0] = '\0';
  if (strcmp (arch, "amd64") == 0 && strcmp (variant, "v1") == 0)
    variant[0] = '\0';
}

int
reg_platform_parse (struct reg_platform *out, const char *s, ef_err **err)
{
  const char *a, *v;
  size_t n;

  memset (out, 0, sizeof *out);
  a = strchr (s, '/');
  if (a == NULL || a == s || (size_t) (a - s) >= sizeof out->os)
    return ef_err_set (err, EF_USAGE, "platform must be OS/ARCH[/VARIANT]");
  memcpy (out->os, s, (size_t) (a - s));
  a++;
  v = strchr (a, '/');
  n = v ? (size_t) (v - a) : strlen (a);
  if (n == 0 || n >= sizeof out->arch || (v && (strlen (v + 1) == 0 || strlen (v + 1) >= sizeof out->variant - 1)))
    return ef_err_set (err, EF_USAGE, "platform must be OS/ARCH[/VARIANT]");
  memcpy (out->arch, a, n);
  if (v)
    copy_field (out->variant, sizeof out->variant, v + 1);
  normalize (out->arch, sizeof out->arch, out->variant, sizeof out->variant);
  return 0;
}

void
reg_platform_host (struct reg_platform *out)
{
  memset (out, 0, sizeof *out);
  copy_field (out->os, sizeof out->os, "linux");
#if defined(__x86_64__)
  copy_field (out->arch, sizeof out->arch, "amd64");
#elif defined(__aarch64__)
  copy_field (out->arch, sizeof out->arch, "arm64");
#elif defined(__arm__)
  /* Our own binary's architecture decides, not the kernel's: a 32-bit
   * userland on a 64-bit kernel must not ask for arm/v8. */
  copy_field (out->arch, sizeof out->arch, "arm");
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7
  copy_field (out->variant, sizeof out->variant, "v7");
#elif defined(__ARM_ARCH) && __ARM_ARCH == 6
  copy_field (out->variant, sizeof out->variant, "v6");
#else
  copy_field (out->variant, sizeof out->variant, "v5");
#endif
  {
    /* ARMv6 boards (Pi Zero/1) running an armhf userland: trust the CPU. */
    FILE *f = fopen ("/proc/cpuinfo", "re");
    char line[256];
    while (f && fgets (line, sizeof line, f))
      if (strncmp (line, "CPU architecture", 16) == 0 && strstr (line, ": 6"))
        copy_field (out->variant, sizeof out->variant, "v6");
    if (f)
      fclose (f);
  }
#elif defined(__i386__)
  copy_field (out->arch, sizeof out->arch, "386");
#else
  {
    struct utsname u;
    if (uname (&u) == 0)
      copy_field (out->arch, sizeof out->arch, u.machine);
    normalize (out->arch, sizeof out->arch, out->variant, sizeof out->variant);
  }
#endif
}

void
reg_platform_format (const struct reg_platform *p, char *buf, size_t len)
{
  snprintf (buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

static bool
entry_is (const struct reg_desc *d, const char *os, const char *arch, const char *variant)
{
  char a[32], v[32];

  if (d->attestation || d->os == NULL || d->arch == NULL || strcmp (d->os, os) != 0)
    return false;
  if (!is_manifest_type (d->media_type) && !is_index_type (d->media_type))
    return false;
  copy_field (a, sizeof a, d->arch);
  copy_field (v, sizeof v, d->variant);
  normalize (a, sizeof a, v, sizeof v);
  return strcmp (a, arch) == 0 && strcmp (v, variant) == 0;
}

int
reg_index_select (const reg_manifest *idx, const struct reg_platform *want, const struct reg_desc **out,
                  ef_err **err)
{
  static const char *const arm_variants[] = { "v8", "v7", "v6", "v5", NULL };
  struct
  {
    const char *arch, *variant;
  } cand[8];
  size_t nc = 0, i, j;
  char name[100];
#define ADD(a, v) (cand[nc].arch = (a), cand[nc].variant = (v), nc++)

  *out = NULL;
  if (idx->kind != REG_INDEX)
    return ef_err_set (err, EF_USAGE, "not an index");
  if (strcmp (want->arch, "arm") == 0)
    {
      const char *start = want->variant[0] ? want->variant : "v7";
      if (want->variant[0] == '\0')
        ADD ("arm", "");
      ADD ("arm", start);
      for (i = 0; arm_variants[i] && strcmp (arm_variants[i], start) != 0; i++)
        ;
      for (i = arm_variants[i] ? i + 1 : i; arm_variants[i]; i++)
        ADD ("arm", arm_variants[i]);
    }
  else
    {
      ADD (want->arch, want->variant);
      if (strcmp (want->arch, "arm64") == 0)
        for (i = 0; arm_variants[i]; i++)
          ADD ("arm", arm_variants[i]);
    }
#undef ADD

  for (i = 0; i < nc; i++)
    for (j = 0; j < idx->n; j++)
      if (entry_is (&idx->entries[j], want->os, cand[i].arch, cand[i].variant))
        {
          *out = &idx->entries[j];
          return 0;
        }
  /* Last resort: an entry of our architecture that names no variant. */
  for (j = 0; j < idx->n; j++)
    if (entry_is (&idx->entries[j], want->os, want->arch, ""))
      {
        *out = &idx->entries[j];
        return 0;
      }
  reg_platform_format (want, name, sizeof name);
  return ef_err_set (err, EF_NOTFOUND, "no manifest for platform %s in the index", name);
}
