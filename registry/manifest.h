/* manifest.h: OCI and Docker v2 manifests and indexes, platform choice. */
#ifndef EF_MANIFEST_H
#define EF_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* What we send in Accept: every manifest and index type we parse. */
#define REG_MANIFEST_ACCEPT MT_OCI_MANIFEST ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST

#define REG_MANIFEST_MAX (4u << 20) /* containerd's cap */
/* What a manifest's JSON tree may take while its shape is checked: a
 * manifest of 4096 layers with annotations takes under half of it. */
#define REG_MANIFEST_TREE_MAX (1u << 20)
/* A body may be this many times its compact JSON, plus 64 KiB: more is
 * padding no registry writes. */
#define REG_MANIFEST_PADDING 4

enum reg_kind
{
  REG_IMAGE = 1,
  REG_INDEX = 2,
};

struct reg_desc
{
  char *media_type;
  char *digest; /* "sha256:<hex>", checked */
  int64_t size;
  char *artifact_type; /* or NULL */
  char **annotations;  /* string annotations: key, value, ..., NULL (or NULL) */
  /* index entries only */
  char *os, *arch, *variant;
  bool attestation; /* BuildKit attestation manifest: never selected */
};
/* The value of annotation key, or NULL. */
const char *reg_desc_annotation (const struct reg_desc *d, const char *key);

typedef struct reg_manifest reg_manifest;

/* Parse a manifest or index.  content_type is the response's Content-Type
 * (parameters ignored) or NULL.  Refuses schema1, unknown schema versions,
 * unknown or encrypted layer types, non-image configs, digests we cannot
 * verify, and a body mediaType that contradicts Content-Type. */
int reg_manifest_parse (reg_manifest **out, const char *buf, size_t len, const char *content_type, ef_err **err);
enum reg_parse_mode
{
  REG_PARSE_IMAGE,    /* a runnable image: the checks above */
  REG_PARSE_ARTIFACT, /* a signature or other attachment: any config and layer types, no layers allowed */
};
int reg_manifest_parse_as (reg_manifest **out, const char *buf, size_t len, const char *content_type,
                           enum reg_parse_mode mode, ef_err **err);
enum reg_kind reg_manifest_kind (const reg_manifest *m);
const char *reg_manifest_media_type (const reg_manifest *m);
const struct reg_desc *reg_manifest_config (const reg_manifest *m); /* images only */
size_t reg_manifest_count (const reg_manifest *m);                  /* layers or entries */
const struct reg_desc *reg_manifest_entry (const reg_manifest *m, size_t i);
void reg_manifest_free (reg_manifest *m);

#define cleanup_manifest __attribute__ ((cleanup (reg_manifest_freep)))
static inline void
reg_manifest_freep (reg_manifest **m)
{
  reg_manifest_free (*m);
}

struct reg_platform
{
  char os[32];
  char arch[32];
  char variant[32];
};

/* "os/arch[/variant]", normalised like containerd (aarch64 -> arm64,
 * arm64/v8 -> arm64, x86_64 -> amd64, armhf -> arm/v7, armel -> arm/v6). */
int reg_platform_parse (struct reg_platform *out, const char *s, ef_err **err);
/* The platform this binary runs on (variant from /proc/cpuinfo on arm). */
void reg_platform_host (struct reg_platform *out);
/* "os/arch[/variant]" into buf. */
void reg_platform_format (const struct reg_platform *p, char *buf, size_t len);

/* Choose the entry for want: exact variant first, then containerd's
 * fallbacks (arm v7 -> v6 -> v5; arm64 -> arm/v8 -> v7 -> v6 -> v5), then an
 * entry with no variant; the first match in index order wins. */
int reg_index_select (const reg_manifest *idx, const struct reg_platform *want, const struct reg_desc **out,
                      ef_err **err);

#endif
