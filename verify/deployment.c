/* deployment.c: see deployment.h. */
#include <string.h>

#include <jansson.h>

#include "../common/util.h"
#include "deployment.h"

#define MAX_CONTAINERS 64

void
vfy_strv_free (char **v)
{
  if (v == NULL)
    return;
  for (char **p = v; *p; p++)
    free (*p);
  free (v);
}

int
vfy_deployment_images (const char *deployment, size_t len, char ***images, ef_err **err)
{
  json_t *root, *services, *c;
  const char *name;
  char **v;
  size_t n = 0;
  int rc = 0;

  *images = NULL;
  if (len > DEPLOYMENT_MAX)
    return ef_err_set (err, EF_VERIFY, "deployment too large");
  root = json_loadb (deployment, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object (root))
    {
      json_decref (root);
      return ef_err_set (err, EF_VERIFY, "deployment is not a JSON object");
    }
  services = json_object_get (root, "services");
  if (services == NULL)
    services = root; /* the 2016 form: containers at the top level */
  if (!json_is_object (services) || json_object_size (services) == 0
      || json_object_size (services) > MAX_CONTAINERS)
    {
      json_decref (root);
      return ef_err_set (err, EF_VERIFY, "deployment names no containers");
    }
  v = xcalloc (json_object_size (services) + 1, sizeof *v);
  json_object_foreach (services, name, c)
  {
    json_t *img = json_object_get (c, "image");
    if (!json_is_string (img) || json_string_length (img) == 0
        || strlen (json_string_value (img)) != json_string_length (img))
      {
        rc = ef_err_set (err, EF_VERIFY, "deployment container '%.64s' has no image", name);
        break;
      }
    v[n++] = xstrdup (json_string_value (img));
  }
  json_decref (root);
  if (rc < 0)
    {
      vfy_strv_free (v);
      return rc;
    }
  *images = v;
  return 0;
}
