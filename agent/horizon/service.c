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

/* Each key the exchange lists under orgs/ORG/KIND/NAME/keys into kr,
 * named "exchange:ORG/KIND/NAME/keys/KEY": the argument `edgefetch trust
 * add --exchange-key` takes.  What cannot be read or is no valid key goes
 * to notes. */
static void
add_listed_keys (exchange *ex, const char *org, const char *kind, const char *name, vfy_keyring *kr, json_t *notes)
{
  cleanup_free char *eo = exchange_escape (ex, org), *en = exchange_escape (ex, name);
  cleanup_free char *list = xasprintf ("orgs/%s/%s/%s/keys", eo, kind, en);
  json_t *keys = NULL, *k;
  size_t i;

  if (exchange_get (ex, list, &keys, NULL) < 0) /* 404 []: none */
    return;
  json_array_foreach (keys, i, k)
  {
    cleanup_free char *ek = NULL, *path = NULL, *pem = NULL, *label = NULL;
    cleanup_err ef_err *e = NULL;
    size_t len;
    if (!json_is_string (k) || i >= 16)
      continue;
    ek = exchange_escape (ex, json_string_value (k));
    path = xasprintf ("%s/%s", list, ek);
    label = xasprintf ("exchange:%s/%s/%s/keys/%s", org, kind, name, json_string_value (k));
    if (exchange_get_text (ex, path, &pem, &len, &e) < 0 || vfy_keyring_add_pem (kr, label, pem, len, 0, &e) < 0)
      json_array_append_new (notes, json_string (ef_err_msg (e)));
  }
  json_decref (keys);
}

void
hzn_exchange_keys (exchange *ex, const struct hzn_service *v, const char *pattern, vfy_keyring *kr, json_t *notes)
{
  const char *slash = strchr (v->id, '/');
  const char *ps = pattern ? strchr (pattern, '/') : NULL;

  add_listed_keys (ex, v->org, "services", slash ? slash + 1 : v->id, kr, notes);
  /* for the pattern's own services, the pattern's keys too, as anax
   * trusts them with TrustCertUpdatesFromOrg (producer_protocol_handler.go
   * saveSigningKeys) */
  if (v->top && ps)
    {
      cleanup_free char *po = xstrndup (pattern, (size_t) (ps - pattern));
      add_listed_keys (ex, po, "patterns", ps + 1, kr, notes);
    }
}

vfy_keyring *
hzn_service_keyring (exchange *ex, const struct agent_config *cfg, const struct hzn_service *v, const char *pattern,
                     json_t *notes)
{
  vfy_keyring *kr = vfy_keyring_new ();
  cleanup_err ef_err *e = NULL;
  size_t i;

  if (vfy_keyring_add_dir (kr, cfg->trust_dir, 0, &e) < 0 && cfg->anax_trust_dir == NULL)
    json_array_append_new (notes, json_string (ef_err_msg (e)));
  /* a node moved from anax keeps what `hzn key import` trusted */
  if (cfg->anax_trust_dir)
    vfy_keyring_add_dir (kr, cfg->anax_trust_dir, 0, NULL);
  for (i = 0; vfy_keyring_note (kr, i); i++)
    json_array_append_new (notes, json_string (vfy_keyring_note (kr, i)));
  if (cfg->trust_exchange_keys)
    hzn_exchange_keys (ex, v, pattern, kr, notes);
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
