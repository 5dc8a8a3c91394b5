/* Manifests and indexes under every Content-Type we act on, then platform choice. */
#include <stdint.h>

#include "../../registry/manifest.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *types[] = { NULL, MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST };
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    {
      reg_manifest *m = NULL;
      if (reg_manifest_parse (&m, (const char *) data, size, types[t], NULL) == 0 && reg_manifest_kind (m) == REG_INDEX)
        {
          struct reg_platform p;
          const struct reg_desc *d;
          reg_platform_parse (&p, "linux/arm/v7", NULL);
          reg_index_select (m, &p, &d, NULL);
          reg_platform_parse (&p, "linux/arm64", NULL);
          reg_index_select (m, &p, &d, NULL);
        }
      reg_manifest_free (m);
    }
  return 0;
}
