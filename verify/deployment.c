/* deployment.c: see deployment.h. */
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

int
vfy_deployment_images (const char *deployment, size_t len, const char *overrides, size_t olen, char ***images,
                       ef_err **err)
{
  json_t *root = NULL, *over = NULL, *services, *c;
  const char *name;
  char **v = NULL;
  size_t n = 0;
  int rc;

  *images = NULL;
  rc = load (deployment, len, "deployment", &root, err);
  if (rc == 0 && overrides && olen > 0)
    rc = load (overrides, olen, "deployment_overrides", &over, err);
  services = containers (root);
  if (rc == 0
      && (!json_is_object (services) || json_object_size (services) == 0
          || json_object_size (services) > MAX_CONTAINERS))
    rc = ef_err_set (err, EF_VERIFY, "deployment names no containers");
  if (rc == 0)
    v = xcalloc (json_object_size (services) + 1, sizeof *v);
  json_object_foreach (rc == 0 ? services : NULL, name, c)
  {
    json_t *img = json_object_get (json_object_get (containers (over), name), "image");
    if (!json_is_string (img))
      img = json_object_get (c, "image");
    if (!json_is_string (img) || json_string_length (img) == 0
        || strlen (json_string_value (img)) != json_string_length (img))
      {
        rc = ef_err_set (err, EF_VERIFY, "deployment container '%.64s' has no image", name);
        break;
      }
    v[n++] = xstrdup (json_string_value (img));
  }
  json_decref (root);
  json_decref (over);
  if (rc < 0)
    {
      ef_strv_free (v);
      return rc;
    }
  *images = v;
  return 0;
}
