/* deployment.h: what a Horizon deployment string names. */
#ifndef EF_DEPLOYMENT_H
#define EF_DEPLOYMENT_H

#include <stddef.h>

#include "../common/err.h"

#define DEPLOYMENT_MAX (1u << 20)

/* The container images of a deployment string: {"services":{NAME:{"image":...}}},
 * or the legacy form with the containers at the top level.  Every
 * container must name an image.  overrides (the pattern's verified
 * deployment_overrides, or NULL) gives a container named there with an
 * image that image instead.  Both are parsed strictly (duplicate keys
 * refused).  *images is a NULL-terminated array; free it with
 * ef_strv_free(). */
int vfy_deployment_images (const char *deployment, size_t len, const char *overrides, size_t olen, char ***images,
                           ef_err **err);

#endif
