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

/* Each key listed at base ("ORG/services/SVC" or "ORG/patterns/PAT",
 * under orgs/) into kr, named "exchange:BASE/keys/NAME": the argument
 * `edgefetch trust add --exchange-key` takes.  What cannot be read or
 * is no valid key goes to notes. */
static void
add_listed_keys (exchange *ex, const char *base, vfy_keyring *kr, json_t *notes)
{
  cleanup_free char *list = xasprintf ("orgs/%s/keys", base);
  json_t *names = NULL, *n;
  size_t i;

  if (exchange_get (ex, list, &names, NULL) < 0) /* 404 []: none */
    return;
  json_array_foreach (names, i, n)
  {
    cleanup_free char *en = NULL, *path = NULL, *pem = NULL, *name = NULL;
    cleanup_err ef_err *e = NULL;
    size_t len;
    if (!json_is_string (n) || i >= 16)
      continue;
    en = exchange_escape (ex, json_string_value (n));
    path = xasprintf ("orgs/%s/keys/%s", base, en);
    name = xasprintf ("exchange:%s/keys/%s", base, json_string_value (n));
    if (exchange_get_text (ex, path, &pem, &len, &e) < 0 || vfy_keyring_add_pem (kr, name, pem, len, 0, &e) < 0)
      json_array_append_new (notes, json_string (ef_err_msg (e)));
  }
  json_decref (names);
}

void
hzn_exchange_keys (exchange *ex, const struct hzn_service *v, const char *pattern, vfy_keyring *kr, json_t *notes)
{
  const char *slash = strchr (v->id, '/');
  cleanup_free char *svc = xasprintf ("%s/services/%s", v->org, slash ? slash + 1 : v->id);

  add_listed_keys (ex, svc, kr, notes);
  /* for the pattern's own services, the pattern's keys too, as anax
   * trusts them with TrustCertUpdatesFromOrg (producer_protocol_handler.go
   * saveSigningKeys) */
  if (v->top && pattern && strchr (pattern, '/'))
    {
      const char *ps = strchr (pattern, '/');
      cleanup_free char *pat = xasprintf ("%.*s/patterns/%s", (int) (ps - pattern), pattern, ps + 1);
      add_listed_keys (ex, pat, kr, notes);
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
