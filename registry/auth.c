/* auth.c: challenges, tokens, realm checks and docker config credentials. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <jansson.h>

#include "../common/util.h"
#include "auth.h"

#define AUTH_HEADER_MAX 8192
#define AUTH_HELPER_OUT_MAX 65536

extern char **environ;

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

int
auth_challenge_parse (struct auth_challenge *out, const char *header, ef_err **err)
{
  const char *p, *start;
  char *scheme;

  memset (out, 0, sizeof *out);
  if (header == NULL || strlen (header) > AUTH_HEADER_MAX)
    return ef_err_set (err, EF_AUTH, "auth challenge missing or too long");
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
      struct ef_buf v;
      char *key;

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
              free (key);
              ef_buf_dispose (&v);
              auth_challenge_dispose (out);
              return ef_err_set (err, EF_AUTH, "auth challenge has an unterminated quoted string");
            }
          p++;
        }
      else
        {
          for (start = p; is_tchar (*p) || *p == '/' || *p == ':'; p++)
            ;
          ef_buf_append (&v, start, (size_t) (p - start));
        }
      if (out->nparams == AUTH_MAX_PARAMS)
        {
          free (key);
          ef_buf_dispose (&v);
          auth_challenge_dispose (out);
          return ef_err_set (err, EF_AUTH, "auth challenge has too many parameters");
        }
      out->keys[out->nparams] = key;
      out->values[out->nparams] = v.data;
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

/* Is the IP literal host (v4, or v6 with or without brackets) one we must
 * not be sent to by a third party?  Non-literal names return false. */
static bool
ip_is_internal (const char *host)
{
  unsigned char a[16];
  char buf[64];
  size_t n = strlen (host);

  if (host[0] == '[' && n >= 2 && n < sizeof buf)
    {
      memcpy (buf, host + 1, n - 2);
      buf[n - 2] = '\0';
      host = buf;
    }
  if (inet_pton (AF_INET, host, a) == 1)
    return a[0] == 0 || a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16)
           || (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
  if (inet_pton (AF_INET6, host, a) == 1)
    {
      static const unsigned char zero[16];
      if (memcmp (a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
        return true;                             /* :: and ::1 */
      if ((a[0] & 0xfe) == 0xfc)                 /* fc00::/7 */
        return true;
      if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
        return true;
      return false;
    }
  return false;
}

int
auth_realm_check (const char *realm, const char *registry_host, bool insecure, ef_err **err)
{
  CURLU *u = curl_url ();
  char *scheme = NULL, *host = NULL, *port = NULL, *authority = NULL;
  int rc = 0;

  if (u == NULL || curl_url_set (u, CURLUPART_URL, realm, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    {
      rc = ef_err_set (err, EF_AUTH, "token realm is not a valid URL");
      goto out;
    }
  if (curl_url_get (u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
    port = NULL;
  authority = port ? xasprintf ("%s:%s", host, port) : xstrdup (host);

  if (strcmp (scheme, "https") != 0 && !(insecure && strcmp (scheme, "http") == 0))
    {
      rc = ef_err_set (err, EF_AUTH, "token realm must use https");
      goto out;
    }
  if (registry_host && strcasecmp (authority, registry_host) == 0)
    goto out;
  if (ip_is_internal (host))
    rc = ef_err_set (err, EF_AUTH, "token realm points at an internal address other than the registry");
out:
  curl_free (scheme);
  curl_free (host);
  curl_free (port);
  free (authority);
  curl_url_cleanup (u);
  return rc;
}

int
auth_token_parse (struct auth_token *out, const char *body, size_t len, ef_err **err)
{
  json_t *root, *tok, *at, *exp, *refresh, *chosen = NULL;
  const char *t;

  memset (out, 0, sizeof *out);
  root = json_loadb (body, len, JSON_REJECT_DUPLICATES, NULL);
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
    out->expires_in = json_integer_value (exp);
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

/* Strip the scheme and, for keys with a scheme, the path, like
 * containers/image's normalizeAuthFileKey; map Docker Hub's names to
 * docker.io. */
static char *
normalize_key (const char *key)
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
  cleanup_free char *want = normalize_key (host);
  const char *key;
  json_t *val;
  int rc = 0;

  memset (out, 0, sizeof *out);
  root = json_loadb (text, len, 0, NULL);
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
            cleanup_free char *k = pass ? normalize_key (key) : xstrdup (key);
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
  int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
  posix_spawn_file_actions_t fa;
  cleanup_free char *prog = NULL;
  char *argv[3];
  struct ef_buf b;
  pid_t pid;
  int status = 0, rc;
  json_t *root = NULL, *user, *secret;
  char chunk[4096];
  ssize_t n;

  memset (out, 0, sizeof *out);
  if (!valid_helper_name (helper))
    return ef_err_set (err, EF_USAGE, "auth file: invalid credential helper name");
  prog = xasprintf ("docker-credential-%s", helper);
  if (pipe2 (in, O_CLOEXEC) < 0 || pipe2 (outp, O_CLOEXEC) < 0)
    {
      rc = ef_err_sys (err, EF_LOCAL, errno, "pipe");
      goto close;
    }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  argv[0] = prog;
  argv[1] = (char *) "get";
  argv[2] = NULL;
  rc = posix_spawnp (&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (rc != 0)
    {
      rc = ef_err_sys (err, EF_AUTH, rc, "credential helper %s", prog);
      goto close;
    }
  close (in[0]);
  close (outp[1]);
  in[0] = outp[1] = -1;
  {
    void (*old) (int) = signal (SIGPIPE, SIG_IGN);
    if (ef_write_all (in[1], server, strlen (server)) < 0)
      { /* the helper may exit early; its status tells */
      }
    signal (SIGPIPE, old);
  }
  close (in[1]);
  in[1] = -1;
  ef_buf_init (&b, AUTH_HELPER_OUT_MAX);
  ef_buf_append (&b, "", 0);
  while ((n = read (outp[0], chunk, sizeof chunk)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || ef_buf_append (&b, chunk, (size_t) n) < 0)
        break;
    }
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      /* "credentials not found in native keychain" */
      rc = strstr (b.data, "not found") ? 0 : ef_err_set (err, EF_AUTH, "credential helper %s failed", prog);
      ef_buf_dispose (&b);
      goto close;
    }
  root = json_loadb (b.data, b.len, 0, NULL);
  OPENSSL_cleanse (b.data, b.len);
  ef_buf_dispose (&b);
  user = json_object_get (root, "Username");
  secret = json_object_get (root, "Secret");
  if (!json_is_string (user) || !json_is_string (secret))
    {
      rc = ef_err_set (err, EF_AUTH, "credential helper %s sent no Username/Secret", prog);
      goto close;
    }
  out->username = xstrdup (strcmp (json_string_value (user), "<token>") == 0 ? "" : json_string_value (user));
  out->secret = xstrdup (json_string_value (secret));
  rc = 1;
close:
  json_decref (root);
  for (int i = 0; i < 2; i++)
    {
      if (in[i] >= 0)
        close (in[i]);
      if (outp[i] >= 0)
        close (outp[i]);
    }
  return rc;
}
