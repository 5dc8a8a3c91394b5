/* deployment.h: what a Horizon deployment string names. */
#ifndef EF_DEPLOYMENT_H
#define EF_DEPLOYMENT_H

#include <stddef.h>

#include "../common/err.h"

#define DEPLOYMENT_MAX (1u << 20)

/* The container images of a deployment string: {"services":{NAME:{"image":...}}},
 * or the legacy form with the containers at the top level.  Every
 * container must name an image.  *images is a NULL-terminated array the
 * caller frees with vfy_strv_free(). */
int vfy_deployment_images (const char *deployment, size_t len, char ***images, ef_err **err);
void vfy_strv_free (char **v);

#endif
