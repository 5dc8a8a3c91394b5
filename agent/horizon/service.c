/* service.c: the keys and registry credentials a service carries (horizon.h). */
#include <string.h>

#include "../../common/util.h"
#include "horizon.h"

/* orgs/{org}/services/{id without "org/"}{suffix}, escaped. */
static char *
service_path (exchange *ex, const struct hzn_service *v, const char *suffix)
{
  const char *slash = strchr (v->id, '/');
  cleanup_free char *eo = exchange_escape (ex, v->org);
  cleanup_free char *ei = exchange_escape (ex, slash ? slash + 1 : v->id);
  return xasprintf ("orgs/%s/services/%s%s", eo, ei, suffix);
}

static void
add_exchange_key (exchange *ex, const struct hzn_service *v, vfy_keyring *kr, const char *key, json_t *notes)
{
  cleanup_free char *en = exchange_escape (ex, key);
  cleanup_free char *suffix = xasprintf ("/keys/%s", en);
  cleanup_free char *path = service_path (ex, v, suffix);
  cleanup_free char *pem = NULL;
  cleanup_free char *name = NULL;
  cleanup_err ef_err *e = NULL;
  size_t len;

  if (exchange_get_text (ex, path, &pem, &len, &e) < 0)
    return;
  name = xasprintf ("exchange:%s/%s", v->id, key);
  if (vfy_keyring_add_pem (kr, name, pem, len, 0, &e) < 0)
    json_array_append_new (notes, json_string (ef_err_msg (e)));
}

vfy_keyring *
hzn_service_keyring (exchange *ex, const struct agent_config *cfg, const struct hzn_service *v, json_t *notes)
{
  vfy_keyring *kr = vfy_keyring_new ();
  cleanup_err ef_err *e = NULL;
  json_t *names = NULL, *n;
  size_t i;

  if (vfy_keyring_add_dir (kr, cfg->trust_dir, 0, &e) < 0)
    json_array_append_new (notes, json_string (ef_err_msg (e)));
  for (i = 0; vfy_keyring_note (kr, i); i++)
    json_array_append_new (notes, json_string (vfy_keyring_note (kr, i)));
  if (!cfg->trust_exchange_keys)
    return kr;
  ef_err_clear (&e);
  {
    cleanup_free char *path = service_path (ex, v, "/keys");
    if (exchange_get (ex, path, &names, &e) < 0)
      names = NULL;
  }
  json_array_foreach (names, i, n)
    if (json_is_string (n))
      add_exchange_key (ex, v, kr, json_string_value (n), notes);
  json_decref (names);
  return kr;
}

int
hzn_service_dockauths (exchange *ex, const struct hzn_service *v, struct reg_host_creds *hc, size_t max, size_t *n,
                       ef_err **err)
{
  cleanup_free char *path = service_path (ex, v, "/dockauths");
  json_t *a = NULL, *e;
  ef_err *why = NULL;
  size_t i;
  int rc;

  *n = 0;
  rc = exchange_get (ex, path, &a, &why);
  if (rc < 0)
    {
      if (ef_err_code (why) != EF_NOTFOUND)
        return ef_err_propagate (err, why);
      ef_err_free (why); /* no dockauths */
      return 0;
    }
  json_array_foreach (a, i, e)
  {
    const char *reg = json_string_value (json_object_get (e, "registry"));
    const char *user = json_string_value (json_object_get (e, "username"));
    const char *tok = json_string_value (json_object_get (e, "token"));
    if (reg == NULL || tok == NULL || *n == max)
      continue;
    hc[*n].registry = xstrdup (reg);
    hc[*n].username = xstrdup (user && *user ? user : "token"); /* as the exchange stores a missing one */
    hc[*n].secret = xstrdup (tok);
    (*n)++;
  }
  json_decref (a);
  return 0;
}

void
hzn_creds_dispose (struct reg_host_creds *hc, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free ((char *) hc[i].registry);
      ef_free_secret ((char *) hc[i].username);
      ef_free_secret ((char *) hc[i].secret);
      memset (&hc[i], 0, sizeof hc[i]);
    }
}
