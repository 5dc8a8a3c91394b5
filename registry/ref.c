/* ref.c: [host[:port]/]path[:tag][@sha256:<hex>] */
#include <stdbool.h>
#include <string.h>

#include "../common/util.h"
#include "../common/digest.h"
#include "ref.h"

#define REF_MAX 1024      /* whole reference */
#define NAME_MAX_LEN 255  /* domain + path, as distribution/reference */
#define TAG_MAX 128

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool
valid_component (const char *s, size_t n)
{
  size_t i = 0;

  if (n == 0 || !is_lower_alnum (s[0]) || !is_lower_alnum (s[n - 1]))
    return false;
  while (i < n)
    {
      if (is_lower_alnum (s[i]))
        {
          i++;
          continue;
        }
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
      else if (s[i] == '-')
        while (i < n && s[i] == '-')
          i++;
      else
        return false;
      if (i >= n || !is_lower_alnum (s[i]))
        return false;
    }
  return true;
}

static bool
valid_path (const char *s, size_t n)
{
  size_t start = 0, i;

  for (i = 0; i <= n; i++)
    if (i == n || s[i] == '/')
      {
        if (!valid_component (s + start, i - start))
          return false;
        start = i + 1;
      }
  return true;
}

/* host: [A-Za-z0-9.-]+ or [ipv6], then optional :port of digits */
static bool
valid_domain (const char *s, size_t n)
{
  size_t i = 0;

  if (n == 0)
    return false;
  if (s[0] == '[')
    {
      while (i < n && s[i] != ']')
        {
          char c = s[i];
          if (i > 0 && !(c == ':' || c == '.' || (c >= '0' && c <= '9')
                         || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
          i++;
        }
      if (i == n)
        return false;
      i++;
    }
  else
    {
      for (; i < n && s[i] != ':'; i++)
        {
          char c = s[i];
          if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '.' || c == '-'))
            return false;
        }
      if (i == 0 || s[0] == '-' || s[0] == '.' || s[i - 1] == '-' || s[i - 1] == '.')
        return false;
    }
  if (i == n)
    return true;
  if (s[i] != ':' || i + 1 == n || n - i - 1 > 5)
    return false;
  for (i++; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static bool
valid_tag (const char *s)
{
  size_t n = strlen (s), i;

  if (n == 0 || n > TAG_MAX)
    return false;
  for (i = 0; i < n; i++)
    {
      char c = s[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
                || (i > 0 && (c == '.' || c == '-'));
      if (!ok)
        return false;
    }
  return true;
}

int
reg_ref_parse (struct reg_ref **out, const char *s, ef_err **err)
{
  struct reg_ref *r;
  cleanup_free char *buf = NULL;
  char *name, *at, *slash, *colon, *last;
  size_t len;
  int rc;

  *out = NULL;
  if (s == NULL || *s == '\0')
    return ef_err_set (err, EF_USAGE, "empty image reference");
  len = strlen (s);
  if (len > REF_MAX)
    return ef_err_set (err, EF_USAGE, "image reference too long");

  buf = xstrdup (s);
  r = xcalloc (1, sizeof *r);

  at = strchr (buf, '@');
  if (at)
    {
      *at = '\0';
      if (ef_digest_parse (at + 1, NULL, NULL) < 0)
        {
          rc = ef_err_set (err, EF_USAGE, "invalid digest in reference (sha256:<64 hex> expected)");
          goto fail;
        }
      r->digest = xstrdup (at + 1);
    }

  name = buf;
  slash = strchr (name, '/');
  if (slash && (memchr (name, '.', (size_t) (slash - name)) || memchr (name, ':', (size_t) (slash - name))
                || (slash - name == 9 && strncmp (name, "localhost", 9) == 0)
                || name[0] == '['))
    {
      if (!valid_domain (name, (size_t) (slash - name)))
        {
          rc = ef_err_set (err, EF_USAGE, "invalid registry host in reference");
          goto fail;
        }
      r->domain = xstrndup (name, (size_t) (slash - name));
      name = slash + 1;
    }
  else
    r->domain = xstrdup ("docker.io");

  /* The tag follows the last ':' after the last '/'. */
  last = strrchr (name, '/');
  colon = strrchr (last ? last : name, ':');
  if (colon)
    {
      *colon = '\0';
      if (!valid_tag (colon + 1))
        {
          rc = ef_err_set (err, EF_USAGE, "invalid tag in reference");
          goto fail;
        }
      r->tag = xstrdup (colon + 1);
    }

  if (strcmp (r->domain, "index.docker.io") == 0)
    {
      free (r->domain);
      r->domain = xstrdup ("docker.io");
    }
  if (strcmp (r->domain, "docker.io") == 0 && strchr (name, '/') == NULL)
    r->path = xasprintf ("library/%s", name);
  else
    r->path = xstrdup (name);

  if (!valid_path (r->path, strlen (r->path)))
    {
      rc = ef_err_set (err, EF_USAGE, "invalid repository name (lowercase letters, digits and separators only)");
      goto fail;
    }
  if (strlen (r->domain) + 1 + strlen (r->path) > NAME_MAX_LEN)
    {
      rc = ef_err_set (err, EF_USAGE, "repository name too long");
      goto fail;
    }
  r->api_host = xstrdup (strcmp (r->domain, "docker.io") == 0 ? "registry-1.docker.io" : r->domain);
  if (r->tag == NULL && r->digest == NULL)
    r->tag = xstrdup ("latest");
  *out = r;
  return 0;

fail:
  reg_ref_free (r);
  return rc;
}

char *
reg_ref_string (const struct reg_ref *r)
{
  return xasprintf ("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
                    r->digest ? "@" : "", r->digest ? r->digest : "");
}

char *
reg_ref_repo (const struct reg_ref *r)
{
  return xasprintf ("%s/%s", r->domain, r->path);
}

void
reg_ref_free (struct reg_ref *r)
{
  if (r == NULL)
    return;
  free (r->domain);
  free (r->api_host);
  free (r->path);
  free (r->tag);
  free (r->digest);
  free (r);
}
