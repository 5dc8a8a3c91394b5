/* auth.c: challenges, tokens, realm checks and docker config credentials. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <jansson.h>

#include "../../common/spawn.h"
#include "../../common/json.h"
#include "../../common/util.h"
#include "auth.h"

#define AUTH_HEADER_MAX 8192
#define AUTH_HELPER_OUT_MAX 65536
#define AUTH_HELPER_TIMEOUT_MS 10000

static bool
is_tchar (char c)
{
  return c != '\0' && (isalnum ((unsigned char) c) || strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *
skip_ws (const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

void
auth_challenge_dispose (struct auth_challenge *c)
{
  size_t i;

  for (i = 0; i < c->nparams; i++)
    {
      free (c->keys[i]);
      free (c->values[i]);
    }
  memset (c, 0, sizeof *c);
}

/* The parameter value at *pp (moved past it): a token, or a quoted-string
 * with backslash escapes; NULL for an unterminated quote. */
static char *
param_value (const char **pp)
{
  const char *p = *pp, *start;
  struct ef_buf v;

  ef_buf_init (&v, AUTH_HEADER_MAX);
  ef_buf_append (&v, "", 0);
  if (*p == '"')
    {
      for (p++; *p && *p != '"'; p++)
        {
          if (*p == '\\' && p[1] != '\0')
            p++;
          ef_buf_append (&v, p, 1);
        }
      if (*p != '"')
        {
          ef_buf_dispose (&v);
          return NULL;
        }
      p++;
    }
  else
    {
      for (start = p; is_tchar (*p) || *p == '/' || *p == ':'; p++)
        ;
      ef_buf_append (&v, start, (size_t) (p - start));
    }
  *pp = p;
  return v.data;
}

int
auth_challenge_parse (struct auth_challenge *out, const char *header, ef_err **err)
{
  const char *p, *start;
  char *scheme;

  memset (out, 0, sizeof *out);
  if (header == NULL)
    return ef_err_set (err, EF_AUTH, "auth challenge missing");
  if (strlen (header) > AUTH_HEADER_MAX)
    return ef_err_set (err, EF_AUTH, "auth challenge longer than %d KiB", AUTH_HEADER_MAX / 1024);
  p = skip_ws (header);
  for (start = p; is_tchar (*p); p++)
    ;
  if (p == start || *p == '=')
    return ef_err_set (err, EF_AUTH, "auth challenge has no scheme");
  scheme = xstrndup (start, (size_t) (p - start));
  if (strcasecmp (scheme, "bearer") == 0)
    out->scheme = AUTH_BEARER;
  else if (strcasecmp (scheme, "basic") == 0)
    out->scheme = AUTH_BASIC;
  else
    out->scheme = AUTH_OTHER;
  free (scheme);
  if (out->scheme == AUTH_OTHER)
    return 0; /* token68 and friends: we will not use it anyway */

  for (;;)
    {
      char *key, *value;

      p = skip_ws (p);
      while (*p == ',')
        p = skip_ws (p + 1);
      if (*p == '\0')
        break;
      for (start = p; is_tchar (*p); p++)
        ;
      if (p == start)
        goto bad;
      key = xstrndup (start, (size_t) (p - start));
      for (char *k = key; *k; k++)
        *k = (char) tolower ((unsigned char) *k);
      p = skip_ws (p);
      if (*p != '=')
        {
          free (key);
          goto bad;
        }
      p = skip_ws (p + 1);
      value = param_value (&p);
      if (value == NULL)
        {
          free (key);
          auth_challenge_dispose (out);
          return ef_err_set (err, EF_AUTH, "auth challenge has an unterminated quoted string");
        }
      if (out->nparams == AUTH_MAX_PARAMS)
        {
          free (key);
          free (value);
          auth_challenge_dispose (out);
          return ef_err_set (err, EF_AUTH, "auth challenge has too many parameters");
        }
      out->keys[out->nparams] = key;
      out->values[out->nparams] = value;
      out->nparams++;
      p = skip_ws (p);
      if (*p != ',' && *p != '\0')
        goto bad;
    }
  if (out->scheme == AUTH_BEARER && auth_challenge_param (out, "realm") == NULL)
    {
      auth_challenge_dispose (out);
      return ef_err_set (err, EF_AUTH, "bearer challenge without a realm");
    }
  return 0;

bad:
  auth_challenge_dispose (out);
  return ef_err_set (err, EF_AUTH, "malformed auth challenge");
}

const char *
auth_challenge_param (const struct auth_challenge *c, const char *key)
{
  size_t i;

  for (i = 0; i < c->nparams; i++)
    if (strcmp (c->keys[i], key) == 0)
      return c->values[i];
  return NULL;
}

int
auth_challenge_select (const struct auth_challenge *cs, size_t n, ef_err **err)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (cs[i].scheme == AUTH_BEARER)
      return (int) i;
  for (i = 0; i < n; i++)
    if (cs[i].scheme == AUTH_BASIC)
      return (int) i;
  ef_err_set (err, EF_AUTH, "registry offers no supported auth scheme (Basic or Bearer)");
  return -1;
}

/* Is the address text (v4, or v6 without brackets) one a third party
 * must not send us to: loopback, private, link-local, unspecified, or an
 * IPv4-mapped or -compatible form of one? */
static bool
addr_is_internal (const char *host)
{
  unsigned char a[16];

  if (inet_pton (AF_INET, host, a) != 1)
    {
      static const unsigned char zero[16], mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
      if (inet_pton (AF_INET6, host, a) != 1)
        return false;
      if (memcmp (a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
        return true;                             /* :: and ::1 */
      if ((a[0] & 0xfe) == 0xfc)                 /* fc00::/7 */
        return true;
      if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
        return true;
      if (memcmp (a, mapped, 12) != 0 && memcmp (a, zero, 12) != 0)
        return false;
      memmove (a, a + 12, 4); /* ::ffff:a.b.c.d and ::a.b.c.d */
    }
  return a[0] == 0 || a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16)
         || (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254) || (a[0] == 100 && (a[1] & 0xc0) == 64);
}

size_t
auth_resolve_system (const char *name, char (*addrs)[AUTH_ADDR_LEN], size_t max)
{
  struct addrinfo hints, *res = NULL, *ai;
  size_t n = 0;

  memset (&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo (name, NULL, &hints, &res) != 0)
    return 0;
  for (ai = res; ai && n < max; ai = ai->ai_next)
    {
      const void *a = ai->ai_family == AF_INET ? (const void *) &((struct sockaddr_in *) ai->ai_addr)->sin_addr
                                               : (const void *) &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;
      if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
          && inet_ntop (ai->ai_family, a, addrs[n], AUTH_ADDR_LEN) != NULL)
        n++;
    }
  freeaddrinfo (res);
  return n;
}

/* Is host (a name, or an address, v6 in brackets or not) internal?  A
 * name is internal when any address it resolves to is. */
static bool
host_is_internal (const char *host, auth_resolve_fn resolve)
{
  char buf[AUTH_ADDR_LEN], addrs[8][AUTH_ADDR_LEN];
  size_t n = strlen (host), k;

  if (host[0] == '[' && n >= 2 && n - 2 < sizeof buf)
    {
      memcpy (buf, host + 1, n - 2);
      buf[n - 2] = '\0';
      host = buf;
    }
  if (strcasecmp (host, "localhost") == 0 || addr_is_internal (host))
    return true;
  k = resolve ? resolve (host, addrs, 8) : 0;
  for (size_t i = 0; i < k; i++)
    if (addr_is_internal (addrs[i]))
      return true;
  return false;
}

/* "host" of "host[:port]" (v6 keeps its brackets); caller frees. */
static char *
host_part (const char *authority)
{
  const char *end = authority[0] == '[' ? strchr (authority, ']') : strrchr (authority, ':');

  if (authority[0] == '[')
    return end ? xstrndup (authority, (size_t) (end - authority + 1)) : xstrdup (authority);
  return end ? xstrndup (authority, (size_t) (end - authority)) : xstrdup (authority);
}

int
auth_realm_check (const char *realm, const char *registry_host, auth_resolve_fn resolve, ef_err **err)
{
  CURLU *u = curl_url ();
  char *scheme = NULL, *host = NULL;
  cleanup_free char *reg = registry_host ? host_part (registry_host) : NULL;
  cleanup_free char *rhost = NULL;
  int rc = 0;

  if (u == NULL || curl_url_set (u, CURLUPART_URL, realm, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    {
      rc = ef_err_set (err, EF_AUTH, "token realm is not a valid URL");
      goto out;
    }
  if (strcmp (scheme, "https") != 0)
    {
      rc = ef_err_set (err, EF_AUTH, "token realm must use https");
      goto out;
    }
  /* The registry's own host, on any port, may issue its tokens; an
   * internal realm elsewhere only for a registry that is itself inside. */
  rhost = host[0] == '[' || strchr (host, ':') == NULL ? xstrdup (host) : xasprintf ("[%s]", host);
  if (reg && strcasecmp (rhost, reg) == 0)
    goto out;
  if (host_is_internal (rhost, resolve) && !(reg && host_is_internal (reg, resolve)))
    rc = ef_err_set (err, EF_AUTH, "token realm %s is an internal address, and the registry %s is not", host,
                     registry_host ? registry_host : "(none)");
out:
  curl_free (scheme);
  curl_free (host);
  curl_url_cleanup (u);
  return rc;
}

int
auth_token_parse (struct auth_token *out, const char *body, size_t len, ef_err **err)
{
  json_t *root, *tok, *at, *exp, *refresh, *chosen = NULL;
  const char *t;

  memset (out, 0, sizeof *out);
  root = ef_json_parse (body, len, EF_JSON_BUDGET, NULL);
  if (root == NULL || !json_is_object (root))
    {
      json_decref (root);
      return ef_err_set (err, EF_AUTH, "token server sent invalid JSON");
    }
  tok = json_object_get (root, "token");
  at = json_object_get (root, "access_token");
  if (json_is_string (tok) && json_string_length (tok) > 0)
    chosen = tok;
  else if (json_is_string (at) && json_string_length (at) > 0)
    chosen = at;
  if (chosen == NULL || strlen (json_string_value (chosen)) != json_string_length (chosen))
    {
      json_decref (root);
      return ef_err_set (err, EF_AUTH, "token server sent no token");
    }
  t = json_string_value (chosen);
  out->token = xstrdup (t);
  out->expires_in = 60;
  exp = json_object_get (root, "expires_in");
  if (json_is_integer (exp) && json_integer_value (exp) > 60)
    out->expires_in = json_integer_value (exp) > AUTH_TOKEN_LIFE_MAX ? AUTH_TOKEN_LIFE_MAX : json_integer_value (exp);
  refresh = json_object_get (root, "refresh_token");
  if (json_is_string (refresh) && json_string_length (refresh) > 0)
    out->refresh_token = xstrdup (json_string_value (refresh));
  json_decref (root);
  return 0;
}

void
auth_token_dispose (struct auth_token *t)
{
  ef_free_secret (t->token);
  ef_free_secret (t->refresh_token);
  memset (t, 0, sizeof *t);
}

void
auth_creds_dispose (struct auth_creds *c)
{
  ef_free_secret (c->username);
  ef_free_secret (c->secret);
  c->username = c->secret = NULL;
}

int
auth_creds_from_string (struct auth_creds *out, const char *userpass, ef_err **err)
{
  const char *colon = strchr (userpass, ':');

  memset (out, 0, sizeof *out);
  if (colon == NULL || colon == userpass)
    return ef_err_set (err, EF_USAGE, "credentials must be USER:PASSWORD");
  out->username = xstrndup (userpass, (size_t) (colon - userpass));
  out->secret = xstrdup (colon + 1);
  return 0;
}

char *
auth_registry_key (const char *key)
{
  const char *p = key;
  char *k;

  if (strncmp (p, "http://", 7) == 0)
    p += 7;
  else if (strncmp (p, "https://", 8) == 0)
    p += 8;
  if (p != key)
    k = xstrndup (p, strcspn (p, "/"));
  else
    k = xstrdup (p);
  if (strcmp (k, "index.docker.io") == 0 || strcmp (k, "registry-1.docker.io") == 0)
    {
      free (k);
      k = xstrdup ("docker.io");
    }
  else if (strncmp (k, "index.docker.io/", 16) == 0)
    {
      char *n = xasprintf ("docker.io/%s", k + 16);
      free (k);
      k = n;
    }
  return k;
}

bool
auth_registry_same (const char *a, const char *b)
{
  cleanup_free char *ka = auth_registry_key (a), *kb = auth_registry_key (b);
  return strcasecmp (ka, kb) == 0;
}

static int
creds_from_entry (struct auth_creds *out, json_t *e, ef_err **err)
{
  json_t *auth = json_object_get (e, "auth");
  json_t *user = json_object_get (e, "username");
  json_t *pass = json_object_get (e, "password");
  json_t *idt = json_object_get (e, "identitytoken");

  memset (out, 0, sizeof *out);
  if (json_is_string (auth) && json_string_length (auth) > 0)
    {
      unsigned char *dec = NULL;
      long n = ef_b64_decode (json_string_value (auth), json_string_length (auth), &dec);
      int rc;

      if (n < 0 || memchr (dec, '\0', (size_t) n) != NULL)
        {
          free (dec);
          return ef_err_set (err, EF_USAGE, "auth file: 'auth' is not valid base64 of user:password");
        }
      rc = auth_creds_from_string (out, (char *) dec, NULL);
      ef_free_secret ((char *) dec);
      if (rc < 0)
        return ef_err_set (err, EF_USAGE, "auth file: 'auth' does not decode to user:password");
    }
  else if (json_is_string (user) && json_is_string (pass))
    {
      out->username = xstrdup (json_string_value (user));
      out->secret = xstrdup (json_string_value (pass));
    }
  if (json_is_string (idt) && json_string_length (idt) > 0)
    {
      /* An identity token is an OAuth2 refresh token: the password is not used. */
      ef_free_secret (out->secret);
      out->secret = xstrdup (json_string_value (idt));
      ef_free_secret (out->username);
      out->username = xstrdup ("");
    }
  return out->secret ? 1 : 0;
}

int
auth_config_lookup (struct auth_creds *out, const char *text, size_t len, const char *host, ef_err **err)
{
  json_t *root, *auths, *helpers, *store, *h;
  cleanup_free char *want = auth_registry_key (host);
  const char *key;
  json_t *val;
  int rc = 0;

  memset (out, 0, sizeof *out);
  root = ef_json_parse (text, len, EF_JSON_BUDGET, NULL);
  if (root == NULL || !json_is_object (root))
    {
      json_decref (root);
      return ef_err_set (err, EF_USAGE, "auth file is not a JSON object");
    }
  helpers = json_object_get (root, "credHelpers");
  store = json_object_get (root, "credsStore");
  auths = json_object_get (root, "auths");
  if (auths == NULL && helpers == NULL && store == NULL)
    auths = root; /* legacy ~/.dockercfg: registries at the top level */

  /* The host part of `want` (it may carry a repository path). */
  h = json_is_object (helpers) ? json_object_get (helpers, want) : NULL;
  if (h == NULL && json_is_object (helpers))
    {
      cleanup_free char *hostonly = xstrndup (want, strcspn (want, "/"));
      h = json_object_get (helpers, hostonly);
    }
  if (json_is_string (h))
    {
      rc = auth_cred_helper (out, json_string_value (h), host, err);
      goto out;
    }
  if (json_is_string (store) && json_string_length (store) > 0)
    {
      rc = auth_cred_helper (out, json_string_value (store), host, err);
      goto out;
    }
  if (!json_is_object (auths))
    goto out;

  /* Most specific key first: host/a/b, host/a, host; at each level an
   * exact key before one that only normalises to it. */
  {
    cleanup_free char *probe = xstrdup (want);
    for (;;)
      {
        for (int pass = 0; pass < 2; pass++)
          json_object_foreach (auths, key, val)
          {
            cleanup_free char *k = pass ? auth_registry_key (key) : xstrdup (key);
            if (strcmp (k, probe) == 0 && json_is_object (val))
              {
                rc = creds_from_entry (out, val, err);
                if (rc != 0)
                  goto out;
              }
          }
        char *slash = strrchr (probe, '/');
        if (slash == NULL)
          break;
        *slash = '\0';
      }
  }
out:
  json_decref (root);
  return rc;
}

static bool
valid_helper_name (const char *s)
{
  if (*s == '\0' || strlen (s) > 64)
    return false;
  for (; *s; s++)
    if (!(isalnum ((unsigned char) *s) || *s == '-' || *s == '_' || *s == '.'))
      return false;
  return true;
}

int
auth_cred_helper (struct auth_creds *out, const char *helper, const char *server, ef_err **err)
{
  cleanup_free char *prog = NULL;
  const char *argv[3];
  struct ef_spawn sp = { 0 };
  struct ef_spawn_result r;
  json_t *root = NULL, *user, *secret;
  int rc;

  memset (out, 0, sizeof *out);
  if (!valid_helper_name (helper))
    return ef_err_set (err, EF_USAGE, "auth file: invalid credential helper name");
  prog = xasprintf ("docker-credential-%s", helper);
  argv[0] = prog;
  argv[1] = "get";
  argv[2] = NULL;
  sp.argv = argv;
  sp.in_fd = -1;
  sp.input = server;
  sp.max_out = AUTH_HELPER_OUT_MAX;
  sp.timeout_ms = AUTH_HELPER_TIMEOUT_MS;
  rc = ef_spawn_run (&sp, &r, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "credential helper");
      return rc;
    }
  if (r.end == EF_SPAWN_TIMEOUT)
    rc = ef_err_set (err, EF_AUTH, "credential helper %s: no answer within %d s", prog, AUTH_HELPER_TIMEOUT_MS / 1000);
  else if (r.truncated)
    rc = ef_err_set (err, EF_AUTH, "credential helper %s: printed more than %d KiB", prog, AUTH_HELPER_OUT_MAX / 1024);
  else if (r.end != EF_SPAWN_EXITED || r.status != 0)
    /* "credentials not found in native keychain" is no error: nothing stored */
    rc = strstr (r.out, "not found") ? 0 : ef_err_set (err, EF_AUTH, "credential helper %s failed", prog);
  else
    {
      root = ef_json_parse (r.out, r.len, EF_JSON_BUDGET, NULL);
      user = json_object_get (root, "Username");
      secret = json_object_get (root, "Secret");
      if (!json_is_string (user) || !json_is_string (secret))
        rc = ef_err_set (err, EF_AUTH, "credential helper %s sent no Username/Secret", prog);
      else
        {
          out->username = xstrdup (strcmp (json_string_value (user), "<token>") == 0 ? "" : json_string_value (user));
          out->secret = xstrdup (json_string_value (secret));
          rc = 1;
        }
    }
  json_decref (root);
  ef_spawn_result_dispose (&r);
  return rc;
}
