/* routes.c: see routes.h. */
#include <string.h>

#include "../../common/util.h"
#include "routes.h"

struct reg_routes
{
  char *domain;
  struct reg_route *v;
  size_t n;
};

int
reg_routes_new (reg_routes **out, reg_session *s, const char *const *certs_dirs, const struct reg_ref *ref,
                ef_err **err)
{
  reg_hosts *hosts = NULL;
  reg_routes *r;
  size_t n;
  int rc;

  *out = NULL;
  rc = reg_hosts_load (&hosts, certs_dirs, ref->domain, err);
  if (rc < 0)
    return rc;
  n = hosts ? reg_hosts_count (hosts) : 1;
  r = xcalloc (1, sizeof *r);
  r->domain = xstrdup (ref->domain);
  r->v = xcalloc (n, sizeof *r->v);
  for (size_t i = 0; rc == 0 && i < n; i++)
    {
      const struct reg_endpoint *ep = hosts ? reg_hosts_get (hosts, i) : NULL;
      struct reg_route *rt = &r->v[r->n];
      if (ep == NULL)
        rc = reg_session_host (s, ref->api_host, &rt->h, err);
      else if (!ep->server && !(ep->caps & (REG_CAP_PULL | REG_CAP_RESOLVE)))
        continue; /* a push-only host */
      else
        rc = reg_session_endpoint (s, ep, ref->api_host, &rt->h, err);
      if (rc < 0)
        break;
      rt->caps = ep ? ep->caps : 0;
      r->n++;
    }
  for (size_t i = 0; rc == 0 && i < r->n; i++)
    {
      /* after every entry is read: one that is the registry itself is no mirror */
      struct reg_route *rt = &r->v[i];
      rt->mirror = reg_host_is_mirror (rt->h);
      /* the registry itself always may resolve tags and serve what it has */
      if (!rt->mirror)
        rt->caps = REG_CAP_PULL | REG_CAP_RESOLVE;
    }
  if (rc < 0 && hosts)
    ef_err_wrap (err, "%s", reg_hosts_path (hosts));
  reg_hosts_free (hosts);
  if (rc < 0)
    {
      reg_routes_free (r);
      return rc;
    }
  *out = r;
  return 0;
}

const char *
reg_routes_domain (const reg_routes *r)
{
  return r->domain;
}

size_t
reg_routes_count (const reg_routes *r)
{
  return r->n;
}

struct reg_route *
reg_routes_get (reg_routes *r, size_t i)
{
  return i < r->n ? &r->v[i] : NULL;
}

long
reg_routes_next (const reg_routes *r, long i, unsigned cap)
{
  for (size_t k = (size_t) (i + 1); k < r->n; k++)
    if (!r->v[k].dead && (r->v[k].caps & cap))
      return (long) k;
  return -1;
}

void
reg_routes_revive (reg_routes *r)
{
  for (size_t i = 0; i < r->n; i++)
    r->v[i].dead = false;
}

void
reg_routes_free (reg_routes *r)
{
  if (r == NULL)
    return;
  free (r->domain);
  free (r->v);
  free (r);
}
