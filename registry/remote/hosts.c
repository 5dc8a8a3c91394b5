/* hosts.c: see hosts.h.  The file is read by hosts_toml.c into tables;
 * here each table becomes an endpoint, and the file is found. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "../../common/file.h"
#include "../../common/text.h"
#include "../../common/util.h"
#include "hosts_toml.h"

struct reg_hosts
{
  struct reg_endpoint *eps; /* mirrors in file order, then the server */
  size_t n;
  char *path;
};

/* ---- from tables to endpoints ---- */

static char *
abs_path (const char *p, const char *base)
{
  return p[0] == '/' || base == NULL || base[0] == '\0' ? xstrdup (p) : xasprintf ("%s/%s", base, p);
}

static int
strings_of (struct hosts_parser *ps, const struct hosts_val *v, const char *what, const char *base, char ***out)
{
  const struct hosts_val *items = v->t == V_STR ? v : v->items;
  size_t n = v->t == V_STR ? 1 : v->n;

  for (size_t i = 0; i < n; i++)
    if (items[i].t != V_STR)
      return hosts_fail (ps, "%s: want a string or an array of strings", what);
  *out = xcalloc (n + 1, sizeof **out);
  for (size_t i = 0; i < n; i++)
    (*out)[i] = abs_path (items[i].s, base);
  return 0;
}

/* client: "file" | ["file", ...] | [["cert", "key"], ...]: pairs, key "" when the file holds it. */
static int
client_pairs (struct hosts_parser *ps, const struct hosts_val *v, const char *base, char ***out)
{
  size_t n = v->t == V_STR ? 1 : v->n, k = 0;

  if (v->t == V_BOOL)
    return hosts_fail (ps, "client: want a file, a list of files or a list of [cert, key] pairs");
  *out = xcalloc (2 * n + 1, sizeof **out);
  for (size_t i = 0; i < n; i++)
    {
      const struct hosts_val *it = v->t == V_STR ? v : &v->items[i];
      if (it->t == V_STR)
        {
          (*out)[k++] = abs_path (it->s, base);
          (*out)[k++] = xstrdup ("");
        }
      else if (it->t == V_ARR && it->n == 2 && it->items[0].t == V_STR && it->items[1].t == V_STR)
        {
          (*out)[k++] = abs_path (it->items[0].s, base);
          (*out)[k++] = abs_path (it->items[1].s, base);
        }
      else
        return hosts_fail (ps, "client: a pair must be [\"cert\", \"key\"]");
    }
  return 0;
}

static int
caps_of (struct hosts_parser *ps, const struct hosts_val *v, unsigned *caps)
{
  if (v->t != V_ARR)
    return hosts_fail (ps, "capabilities: want an array of strings");
  for (size_t i = 0; i < v->n; i++)
    if (v->items[i].t != V_STR)
      return hosts_fail (ps, "capabilities: want an array of strings");
  *caps = 0;
  for (size_t i = 0; i < v->n; i++)
    {
      const char *c = v->items[i].s;
      if (strcasecmp (c, "pull") == 0)
        *caps |= REG_CAP_PULL;
      else if (strcasecmp (c, "resolve") == 0)
        *caps |= REG_CAP_RESOLVE;
      else if (strcasecmp (c, "push") == 0)
        *caps |= REG_CAP_PUSH;
      else
        {
          cleanup_free char *e = ef_escape (c, 64);
          return hosts_fail (ps, "unknown capability '%s'", e);
        }
    }
  return 0;
}

/* "[scheme://]host[:port][/path]" into ep, containerd's way: https when
 * no scheme is given (containerd also takes a scheme-less "http..." host
 * name for a URL; edgefetch does not), "/v2" appended to the path unless override_path. */
static int
parse_url (struct hosts_parser *ps, const char *url, bool override, struct reg_endpoint *ep)
{
  cleanup_free char *full = strstr (url, "://") != NULL ? xstrdup (url) : xasprintf ("https://%s", url);
  CURLU *u = curl_url ();
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL, *frag = NULL;
  int rc = 0;

  if (curl_url_set (u, CURLUPART_URL, full, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_HOST, &host, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
    {
      cleanup_free char *e = ef_escape (url, 200);
      rc = hosts_fail (ps, "'%s' is not a URL", e);
    }
  else if (strcmp (scheme, "https") != 0 && strcmp (scheme, "http") != 0)
    rc = hosts_fail (ps, "'%s': only http and https hosts", scheme);
  else if (curl_url_get (u, CURLUPART_USER, &user, 0) == CURLUE_OK
           || curl_url_get (u, CURLUPART_QUERY, &query, 0) == CURLUE_OK
           || curl_url_get (u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
    rc = hosts_fail (ps, "a host URL may not hold user names, queries or fragments");
  else
    {
      size_t pl = strlen (path);
      while (pl > 0 && path[pl - 1] == '/')
        path[--pl] = '\0';
      if (strstr (path, "/../") || strstr (path, "/./") || ef_has_suffix (path, "/..") || ef_has_suffix (path, "/."))
        rc = hosts_fail (ps, "a host path may not hold . or .. segments");
      curl_url_get (u, CURLUPART_PORT, &port, 0);
      ep->scheme = xstrdup (scheme);
      ep->host = port ? xasprintf ("%s:%s", host, port) : xstrdup (host);
      ep->path = override || ef_has_suffix (path, "/v2") ? xstrdup (path) : xasprintf ("%s/v2", path);
    }
  curl_free (scheme);
  curl_free (host);
  curl_free (port);
  curl_free (path);
  curl_free (user);
  curl_free (query);
  curl_free (frag);
  curl_url_cleanup (u);
  return rc;
}

static int
to_endpoint (struct hosts_parser *ps, struct hosts_table *t, const char *base, struct reg_endpoint *ep)
{
  int rc = 0;

  ps->line = t->line;
  ep->caps = REG_CAP_PULL | REG_CAP_RESOLVE | REG_CAP_PUSH;
  ep->skip_verify = (t->seen & K_SKIP) ? t->skip_verify : -1;
  ep->server = t == &ps->tables[0];
  if (t->url)
    rc = parse_url (ps, t->url, t->override_path, ep);
  else
    {
      ep->scheme = xstrdup ("https");
      ep->path = xstrdup ("/v2");
    }
  if (rc == 0 && (t->seen & K_CAPS))
    rc = caps_of (ps, &t->caps, &ep->caps);
  if (rc == 0 && (t->seen & K_CA))
    rc = strings_of (ps, &t->ca, "ca", base, &ep->ca);
  if (rc == 0 && (t->seen & K_CLIENT))
    rc = client_pairs (ps, &t->client, base, &ep->client);
  ep->headers = t->headers;
  t->headers = NULL;
  return rc;
}

static void
endpoint_dispose (struct reg_endpoint *ep)
{
  free (ep->scheme);
  free (ep->host);
  free (ep->path);
  ef_strv_free (ep->ca);
  ef_strv_free (ep->client);
  ef_strv_free (ep->headers);
}

void
reg_hosts_free (reg_hosts *h)
{
  if (h == NULL)
    return;
  for (size_t i = 0; i < h->n; i++)
    endpoint_dispose (&h->eps[i]);
  free (h->eps);
  free (h->path);
  free (h);
}

int
reg_hosts_parse (reg_hosts **out, const char *text, size_t len, const char *base_dir, ef_err **err)
{
  struct hosts_parser ps = { .p = text, .end = text + len, .line = 1, .err = err, .ntables = 1 };
  reg_hosts *h = xcalloc (1, sizeof *h);
  int rc = 0;

  *out = NULL;
  ps.cur = &ps.tables[0];
  ps.tables[0].line = 1;
  if (len > REG_HOSTS_FILE_MAX)
    rc = ef_err_set (err, EF_USAGE, "hosts.toml is larger than %d KiB", REG_HOSTS_FILE_MAX >> 10);
  if (rc == 0)
    rc = hosts_parse_lines (&ps);
  h->eps = xcalloc (ps.ntables, sizeof *h->eps);
  /* mirrors in file order, the server last */
  for (size_t i = 1; rc == 0 && i <= ps.ntables; i++)
    rc = to_endpoint (&ps, &ps.tables[i % ps.ntables], base_dir, &h->eps[i - 1]);
  h->n = ps.ntables;
  for (size_t i = 0; i < ps.ntables; i++)
    {
      struct hosts_table *t = &ps.tables[i];
      free (t->url);
      hosts_val_dispose (&t->caps);
      hosts_val_dispose (&t->ca);
      hosts_val_dispose (&t->client);
      ef_strv_free (t->headers);
    }
  if (rc < 0)
    {
      reg_hosts_free (h);
      return rc;
    }
  h->path = xstrdup ("");
  *out = h;
  return 0;
}

/* DIR/<host>_<port>_ (containerd's spelling), DIR/<host:port>, DIR/_default. */
static char *
find_file (const char *dir, const char *domain)
{
  const char *colon = strrchr (domain, ':');
  char *cands[3];
  char *found = NULL;
  struct stat st;

  cands[0] = colon ? xasprintf ("%s/%.*s_%s_/hosts.toml", dir, (int) (colon - domain), domain, colon + 1) : NULL;
  cands[1] = xasprintf ("%s/%s/hosts.toml", dir, domain);
  cands[2] = xasprintf ("%s/_default/hosts.toml", dir);
  for (size_t i = 0; i < 3; i++)
    {
      if (found == NULL && cands[i] && stat (cands[i], &st) == 0)
        found = cands[i];
      else
        free (cands[i]);
    }
  return found;
}

int
reg_hosts_load (reg_hosts **out, const char *const *certs_dirs, const char *domain, ef_err **err)
{
  cleanup_free char *path = NULL, *text = NULL, *dir = NULL;
  size_t len;
  int rc;

  *out = NULL;
  if (strchr (domain, '/') || strcmp (domain, "..") == 0 || strcmp (domain, ".") == 0)
    return 0;
  for (size_t i = 0; path == NULL && certs_dirs && certs_dirs[i]; i++)
    path = find_file (certs_dirs[i], domain);
  if (path == NULL)
    return 0;
  if (ef_read_file (path, REG_HOSTS_FILE_MAX + 1, &text, &len) < 0)
    return errno == EFBIG ? ef_err_set (err, EF_USAGE, "%s is larger than %d KiB", path, REG_HOSTS_FILE_MAX >> 10)
                          : ef_err_sys (err, EF_USAGE, errno, "%s", path);
  dir = xstrndup (path, (size_t) (strrchr (path, '/') - path));
  rc = reg_hosts_parse (out, text, len, dir, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "%s", dir);
      return rc;
    }
  free ((*out)->path);
  (*out)->path = xstrdup (path);
  return 0;
}

size_t
reg_hosts_count (const reg_hosts *h)
{
  return h ? h->n : 0;
}

const struct reg_endpoint *
reg_hosts_get (const reg_hosts *h, size_t i)
{
  return h && i < h->n ? &h->eps[i] : NULL;
}

const char *
reg_hosts_path (const reg_hosts *h)
{
  return h ? h->path : "";
}
