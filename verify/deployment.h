/* deployment.h: what a Horizon deployment string names. */
#ifndef EF_DEPLOYMENT_H
#define EF_DEPLOYMENT_H

#include <stddef.h>

#include "../common/err.h"

#define DEPLOYMENT_MAX (1u << 20)

/* The container images of a deployment string: {"services":{NAME:{"image":...}}},
 * or the legacy form with the containers at the top level.  Every
 * container must name an image.  Parsed strictly (duplicate keys
 * refused).  *images is a NULL-terminated array; free it with
 * ef_strv_free(). */
int vfy_deployment_images (const char *deployment, size_t len, char ***images, ef_err **err);

/* The images a pattern's deployment_overrides names, parsed as strictly
 * (an override need not name one: *images may be empty).  They are
 * never pulled: anax takes only the Environment from overrides and runs
 * the image the service's publisher signed, so the caller says that it
 * ignored them. */
int vfy_overrides_images (const char *overrides, size_t len, char ***images, ef_err **err);

#endif
