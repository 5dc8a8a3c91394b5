/* deployment.c: see deployment.h. */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "../common/json.h"
#include "../common/text.h"
#include "../common/util.h"
#include "deployment.h"

#define MAX_CONTAINERS 64

/* The container map of a deployment (or of overrides). */
static json_t *
containers (json_t *root)
{
  json_t *services = json_object_get (root, "services");
  return services ? services : root; /* the 2016 form: containers at the top level */
}

static int
load (const char *text, size_t len, const char *what, json_t **out, ef_err **err)
{
  const char *why = NULL;

  *out = NULL;
  if (len > DEPLOYMENT_MAX)
    return ef_err_set (err, EF_VERIFY, "%s too large", what);
  *out = ef_json_parse (text, len, EF_JSON_BUDGET, &why);
  if (!json_is_object (*out))
    {
      json_decref (*out);
      *out = NULL;
      return ef_err_set (err, EF_VERIFY, "%s %s", what, why ? why : "is not a JSON object");
    }
  return 0;
}

/* The images of a container map; required of each container, or not. */
static int
images_of (json_t *services, bool required, char ***images, ef_err **err)
{
  json_t *c;
  const char *name;
  char **v = xcalloc (json_object_size (services) + 1, sizeof *v);
  size_t n = 0;

  json_object_foreach (services, name, c)
  {
    json_t *img = json_object_get (c, "image");
    if (img == NULL && !required)
      continue;
    if (!json_is_string (img) || json_string_length (img) == 0
        || strlen (json_string_value (img)) != json_string_length (img))
      {
        ef_strv_free (v);
        return ef_err_set (err, EF_VERIFY, "deployment container '%.64s' has no image", name);
      }
    v[n++] = xstrdup (json_string_value (img));
  }
  *images = v;
  return 0;
}

/* The images of a deployment (required: each container names one, and
 * there is at least one) or of overrides (an image where one is named). */
static int
images_in (const char *text, size_t len, bool deployment, char ***images, ef_err **err)
{
  const char *what = deployment ? "deployment" : "deployment_overrides";
  json_t *root = NULL, *services;
  int rc;

  *images = NULL;
  rc = load (text, len, what, &root, err);
  services = containers (root);
  if (rc == 0
      && (!json_is_object (services) || (deployment && json_object_size (services) == 0)
          || json_object_size (services) > MAX_CONTAINERS))
    rc = ef_err_set (err, EF_VERIFY, "%s names no containers", what);
  if (rc == 0)
    rc = images_of (services, deployment, images, err);
  json_decref (root);
  return rc;
}

int
vfy_deployment_images (const char *deployment, size_t len, char ***images, ef_err **err)
{
  return images_in (deployment, len, true, images, err);
}

int
vfy_overrides_images (const char *overrides, size_t len, char ***images, ef_err **err)
{
  return images_in (overrides, len, false, images, err);
}
