/* session.c: see session.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "session.h"
#include "tls.h"

#define PING_BODY_MAX 65536
#define TOKEN_BODY_MAX (1u << 20)
#define AUTH_FILE_MAX (1u << 20)
#define MAX_CHALLENGES 8

struct token
{
  struct token *next;
  char *scope;
  char *value;
  int64_t expires_ms;
};

struct reg_host
{
  struct reg_host *next;
  char *name; /* host[:port] */
  char *base; /* scheme://host[:port]/API-root, e.g. https://r.example/v2: what it is known by */
  bool mirror; /* from hosts.toml: its own credentials only, ?ns=, one attempt, a short connect */
  bool secure; /* https with verification: credentials may go there */
  struct curl_slist *headers; /* hosts.toml's header lines */
  reg_trust *trust;
  reg_trust *realm_trust; /* for its token realm: the registry's own trust, and the realm host's */
  char *realm_host;       /* whom realm_trust is for */
  bool pinged;
  enum auth_scheme scheme;
  char *realm, *service;
  bool creds_loaded;
  struct auth_creds creds;
  struct token *tokens;
};

struct reg_session
{
  struct auth_creds creds; /* --creds, for every host */
  struct reg_host_creds *host_creds;
  size_t nhost_creds;
  char *auth_file;
  char **certs_dirs;
  char *ca_file;
  auth_resolve_fn resolve;
  char *congestion;
  int warm; /* connections opened beside a host's first /v2/ */
  struct http_retry *retry;
  CURL *easy; /* pings and token requests */
  CURLSH *share; /* connections and TLS sessions, for every handle (reg_session_prepare) */
  struct reg_host *hosts;
};

static void
host_free (struct reg_host *h)
{
  struct token *t, *n;

  reg_trust_free (h->trust);
  reg_trust_free (h->realm_trust);
  free (h->realm_host);
  free (h->realm);
  free (h->service);
  auth_creds_dispose (&h->creds);
  for (t = h->tokens; t; t = n)
    {
      n = t->next;
      free (t->scope);
      ef_free_secret (t->value);
      free (t);
    }
  free (h->name);
  free (h->base);
  curl_slist_free_all (h->headers);
  free (h);
}

static char **
strv_dup (const char *const *v)
{
  size_t n = 0;
  char **out;

  while (v && v[n])
    n++;
  out = xcalloc (n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = xstrdup (v[i]);
  return out;
}

int
reg_session_new (reg_session **out, const struct reg_session_opts *o, struct http_retry *retry, ef_err **err)
{
  reg_session *s;
  int rc = 0;

  *out = NULL;
  if (o->congestion && (rc = http_congestion_offered (o->congestion, err)) < 0)
    return rc;
  s = xcalloc (1, sizeof *s);
  s->retry = retry;
  s->resolve = o->resolve ? o->resolve : auth_resolve_system;
  s->host_creds = xcalloc (o->nhost_creds + 1, sizeof *s->host_creds);
  for (size_t i = 0; i < o->nhost_creds; i++)
    {
      s->host_creds[i].registry = xstrdup (o->host_creds[i].registry);
      s->host_creds[i].username = xstrdup (o->host_creds[i].username);
      s->host_creds[i].secret = xstrdup (o->host_creds[i].secret);
      s->nhost_creds++;
    }
  s->auth_file = o->auth_file ? xstrdup (o->auth_file) : NULL;
  s->certs_dirs = strv_dup (o->certs_dirs);
  s->ca_file = o->ca_file ? xstrdup (o->ca_file) : NULL;
  s->congestion = o->congestion ? xstrdup (o->congestion) : NULL;
  s->warm = o->warm;
  if (o->creds)
    rc = auth_creds_from_string (&s->creds, o->creds, err);
  if (rc == 0 && s->auth_file && access (s->auth_file, R_OK) != 0)
    rc = ef_err_sys (err, EF_USAGE, errno, "auth file %s", s->auth_file);
  if (rc == 0 && s->ca_file && access (s->ca_file, R_OK) != 0)
    rc = ef_err_sys (err, EF_USAGE, errno, "CA file %s", s->ca_file);
  if (rc == 0
      && ((s->easy = curl_easy_init ()) == NULL || (s->share = curl_share_init ()) == NULL
          || curl_share_setopt (s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK
          || curl_share_setopt (s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK))
    rc = ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  if (rc < 0)
    {
      reg_session_free (s);
      return rc;
    }
  *out = s;
  return 0;
}

void
reg_session_free (reg_session *s)
{
  struct reg_host *h, *n;

  if (s == NULL)
    return;
  for (h = s->hosts; h; h = n)
    {
      n = h->next;
      host_free (h);
    }
  if (s->easy)
    curl_easy_cleanup (s->easy);
  if (s->share)
    curl_share_cleanup (s->share); /* after every handle that used it */
  auth_creds_dispose (&s->creds);
  for (size_t i = 0; i < s->nhost_creds; i++)
    {
      free ((char *) s->host_creds[i].registry);
      ef_free_secret ((char *) s->host_creds[i].username);
      ef_free_secret ((char *) s->host_creds[i].secret);
    }
  free (s->host_creds);
  free (s->auth_file);
  for (size_t i = 0; s->certs_dirs && s->certs_dirs[i]; i++)
    free (s->certs_dirs[i]);
  free (s->certs_dirs);
  free (s->ca_file);
  free (s->congestion);
  free (s);
}

/* The host known by base (made on first use with its trust: certs.d of
 * name, --ca-file, and what ep, a hosts.toml entry or NULL, adds). */
static int
host_make (reg_session *s, const char *name, const char *base, const struct reg_endpoint *ep, bool mirror,
           reg_host **out, ef_err **err)
{
  const char *cas[REG_HOSTS_CA_MAX + 2] = { s->ca_file };
  size_t nca = s->ca_file ? 1 : 0;
  struct reg_host *h;
  int rc;

  for (h = s->hosts; h; h = h->next)
    if (strcasecmp (h->base, base) == 0)
      {
        h->mirror = h->mirror && mirror; /* hosts.toml may name the registry itself as a host */
        *out = h;
        return 0;
      }
  for (size_t i = 0; ep && ep->ca && ep->ca[i] && nca < REG_HOSTS_CA_MAX + 1; i++)
    cas[nca++] = ep->ca[i];
  h = xcalloc (1, sizeof *h);
  rc = reg_trust_new (&h->trust, name, (const char *const *) s->certs_dirs, cas, err);
  if (rc < 0)
    {
      free (h);
      return rc;
    }
  if (ep && ep->client && ep->client[0])
    reg_trust_set_client (h->trust, ep->client[0], ep->client[1]);
  if (ep && ep->skip_verify == 1)
    reg_trust_skip_verify (h->trust);
  for (size_t i = 0; ep && ep->headers && ep->headers[i]; i++)
    h->headers = curl_slist_append (h->headers, ep->headers[i]);
  h->name = xstrdup (name);
  h->base = xstrdup (base);
  h->mirror = mirror;
  h->secure = strncmp (base, "https://", 8) == 0 && reg_trust_verifies (h->trust);
  h->next = s->hosts;
  s->hosts = h;
  *out = h;
  return 0;
}

int
reg_session_host (reg_session *s, const char *api_host, reg_host **out, ef_err **err)
{
  cleanup_free char *base = xasprintf ("https://%s/v2", api_host);
  return host_make (s, api_host, base, NULL, false, out, err);
}

int
reg_session_endpoint (reg_session *s, const struct reg_endpoint *ep, const char *api_host, reg_host **out,
                      ef_err **err)
{
  const char *name = ep->host ? ep->host : api_host;
  cleanup_free char *base = xasprintf ("%s://%s%s", ep->scheme, name, ep->path);
  /* a [host] that is the registry itself is no mirror: its credentials are ours */
  return host_make (s, name, base, ep, !ep->server && strcasecmp (name, api_host) != 0, out, err);
}

const char *const *
reg_session_certs_dirs (const reg_session *s)
{
  return (const char *const *) s->certs_dirs;
}

const char *
reg_host_name (const reg_host *h)
{
  return h->name;
}

bool
reg_host_is_mirror (const reg_host *h)
{
  return h->mirror;
}

char *
reg_host_url (const reg_host *h, const char *ns, const char *fmt, ...)
{
  cleanup_free char *rest = NULL;
  char *ens, *url;
  va_list ap;

  va_start (ap, fmt);
  rest = xvasprintf (fmt, ap);
  va_end (ap);
  if (!h->mirror || ns == NULL)
    return xasprintf ("%s%s", h->base, rest);
  ens = curl_easy_escape (NULL, ns, 0);
  url = xasprintf ("%s%s%sns=%s", h->base, rest, strchr (rest, '?') ? "&" : "?", ens ? ens : "");
  curl_free (ens);
  return url;
}

struct curl_slist *
reg_host_headers (const reg_host *h, const char *first)
{
  struct curl_slist *l = first ? curl_slist_append (NULL, first) : NULL;

  for (const struct curl_slist *i = h->headers; i; i = i->next)
    l = curl_slist_append (l, i->data);
  return l;
}

/* Ours for domain: --creds, then the dockauth for exactly this registry
 * (Docker Hub's names all being docker.io), then the auth file. */
static int
host_creds (reg_session *s, struct reg_host *h, const char *domain, ef_err **err)
{
  cleanup_free char *text = NULL;
  size_t len;
  int rc;

  if (h->creds_loaded)
    return 0;
  h->creds_loaded = true;
  if (h->mirror) /* a mirror's own credentials, never the registry's */
    domain = h->name;
  if (s->creds.secret && !h->mirror)
    {
      h->creds.username = xstrdup (s->creds.username);
      h->creds.secret = xstrdup (s->creds.secret);
      return 0;
    }
  for (size_t i = 0; i < s->nhost_creds; i++)
    if (auth_registry_same (s->host_creds[i].registry, domain))
      {
        h->creds.username = xstrdup (s->host_creds[i].username);
        h->creds.secret = xstrdup (s->host_creds[i].secret);
        return 0;
      }
  if (s->auth_file == NULL)
    return 0;
  if (ef_read_file (s->auth_file, AUTH_FILE_MAX, &text, &len) < 0)
    return ef_err_sys (err, EF_USAGE, errno, "auth file %s", s->auth_file);
  rc = auth_config_lookup (&h->creds, text, len, domain, err);
  OPENSSL_cleanse (text, len);
  if (rc < 0)
    {
      ef_err_wrap (err, "auth file %s", s->auth_file);
      return rc;
    }
  return 0;
}

int
reg_session_credentials (reg_session *s, const char *api_host, const char *domain, const struct auth_creds **out,
                         ef_err **err)
{
  struct reg_host *h;
  int rc = reg_session_host (s, api_host, &h, err);

  *out = NULL;
  if (rc == 0)
    rc = host_creds (s, h, domain, err);
  if (rc == 0 && h->creds.secret)
    *out = &h->creds;
  return rc;
}

static struct token *
token_find (struct reg_host *h, const char *scope)
{
  for (struct token *t = h->tokens; t; t = t->next)
    if (strcmp (t->scope, scope) == 0)
      return t;
  return NULL;
}

static char *
escape (CURL *e, const char *s)
{
  char *x = curl_easy_escape (e, s, 0), *r = xstrdup (x ? x : "");
  curl_free (x);
  return r;
}

enum token_mode
{
  TOKEN_OAUTH2_POST, /* grant_type=password, or refresh_token for an identity token */
  TOKEN_GET,         /* with Basic credentials when we hold a password, else anonymous */
};

/* Set up the token request of mode for scope on h's realm. */
static void
token_setup (reg_session *s, struct reg_host *h, enum token_mode mode, const char *scope)
{
  CURL *e = s->easy;
  bool identity = h->creds.secret && (h->creds.username == NULL || h->creds.username[0] == '\0');
  cleanup_free char *es = escape (e, h->service ? h->service : ""), *esc = escape (e, scope);

  if (mode == TOKEN_OAUTH2_POST)
    {
      cleanup_free char *a = escape (e, identity ? h->creds.secret : h->creds.username);
      cleanup_free char *b = identity ? NULL : escape (e, h->creds.secret);
      cleanup_free char *form
          = identity ? xasprintf ("grant_type=refresh_token&refresh_token=%s&service=%s&client_id=edgefetch&scope=%s",
                                  a, es, esc)
                     : xasprintf ("grant_type=password&username=%s&password=%s&service=%s&client_id=edgefetch"
                                  "&scope=%s",
                                  a, b, es, esc);
      http_setup (e, h->realm, 0); /* a token server does not redirect */
      curl_easy_setopt (e, CURLOPT_COPYPOSTFIELDS, form);
      OPENSSL_cleanse (a, strlen (a));
      if (b)
        OPENSSL_cleanse (b, strlen (b));
      OPENSSL_cleanse (form, strlen (form));
    }
  else
    {
      CURLU *u = curl_url ();
      char *url = NULL;
      cleanup_free char *q1 = h->service ? xasprintf ("service=%s", h->service) : NULL;
      cleanup_free char *q2 = xasprintf ("scope=%s", scope);
      curl_url_set (u, CURLUPART_URL, h->realm, 0);
      if (q1)
        curl_url_set (u, CURLUPART_QUERY, q1, CURLU_APPENDQUERY | CURLU_URLENCODE);
      curl_url_set (u, CURLUPART_QUERY, q2, CURLU_APPENDQUERY | CURLU_URLENCODE);
      curl_url_get (u, CURLUPART_URL, &url, 0);
      http_setup (e, url ? url : h->realm, 0);
      curl_free (url);
      curl_url_cleanup (u);
      if (h->creds.secret && !identity)
        {
          curl_easy_setopt (e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
          curl_easy_setopt (e, CURLOPT_USERNAME, h->creds.username);
          curl_easy_setopt (e, CURLOPT_PASSWORD, h->creds.secret);
        }
    }
  curl_easy_setopt (e, CURLOPT_SHARE, s->share);
  http_retry_stall (s->retry, e);
  reg_trust_apply (h->realm_trust, e);
}

/* One token request, retried as every request is. */
static int
token_request (reg_session *s, struct reg_host *h, enum token_mode mode, const char *scope, struct http_resp *r,
               ef_err **err)
{
  CURLcode res;

  for (int attempt = 1;; attempt++)
    {
      token_setup (s, h, mode, scope);
      res = http_perform (s->easy, r);
      if (!r->too_big && http_again (s->retry, s->easy, attempt, res, r->status))
        continue;
      break;
    }
  if (r->too_big)
    return ef_err_set (err, EF_AUTH, "token response larger than %u KiB", TOKEN_BODY_MAX >> 10);
  if (res != CURLE_OK)
    {
      int rc = http_error (err, res, r->errbuf, "is the token server's CA in --ca-file or certs.d?");
      ef_err_wrap (err, "token server");
      return rc;
    }
  return 0;
}

/* The trust for h's realm: the registry's own (its certs.d and hosts.toml
 * CAs and client certificate, --ca-file, the system's) and the realm
 * host's certs.d entry, made again when the realm moves to another host. */
static int
realm_trust (reg_session *s, struct reg_host *h, ef_err **err)
{
  CURLU *u = curl_url ();
  char *host = NULL, *port = NULL;
  cleanup_free char *name = NULL;
  int rc = 0;

  curl_url_set (u, CURLUPART_URL, h->realm, 0);
  curl_url_get (u, CURLUPART_HOST, &host, 0);
  if (curl_url_get (u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
    port = NULL;
  name = port ? xasprintf ("%s:%s", host ? host : "", port) : xstrdup (host ? host : "");
  curl_free (host);
  curl_free (port);
  curl_url_cleanup (u);
  if (h->realm_trust == NULL || strcmp (h->realm_host, name) != 0)
    {
      reg_trust_free (h->realm_trust);
      free (h->realm_host);
      h->realm_host = xstrdup (name);
      rc = reg_trust_derive (&h->realm_trust, h->trust, name, (const char *const *) s->certs_dirs, err);
    }
  return rc;
}

/* Ask the realm for a token: OAuth2 POST when we hold a secret (falling
 * back to GET with Basic, as containerd does), anonymous GET otherwise. */
static int
fetch_token (reg_session *s, struct reg_host *h, const char *domain, const char *scope, ef_err **err)
{
  struct http_resp r;
  struct auth_token tok = { 0 };
  struct token *t;
  bool identity;
  int rc;

  rc = auth_realm_check (h->realm, h->name, s->resolve, err);
  if (rc == 0)
    rc = host_creds (s, h, domain, err);
  if (rc == 0)
    rc = realm_trust (s, h, err);
  if (rc < 0)
    return rc;
  identity = h->creds.secret && (h->creds.username == NULL || h->creds.username[0] == '\0');
  http_resp_init (&r, TOKEN_BODY_MAX);
  rc = token_request (s, h, h->creds.secret ? TOKEN_OAUTH2_POST : TOKEN_GET, scope, &r, err);
  if (rc == 0 && h->creds.secret && !identity
      && (r.status == 400 || r.status == 401 || r.status == 404 || r.status == 405))
    rc = token_request (s, h, TOKEN_GET, scope, &r, err); /* no OAuth2 here */
  if (rc == 0 && (r.status == 401 || r.status == 403))
    rc = ef_err_set (err, EF_AUTH, "token server: %ld %s (check --creds)", r.status,
                     r.status == 401 ? "unauthorized" : "denied");
  else if (rc == 0 && r.status != 200)
    rc = ef_err_set (err, EF_NET, "token server answered HTTP %ld", r.status);
  if (rc == 0)
    rc = auth_token_parse (&tok, r.body.data, r.body.len, err);
  OPENSSL_cleanse (r.body.data, r.body.len);
  http_resp_dispose (&r);
  if (rc < 0)
    return rc;
  if ((t = token_find (h, scope)) == NULL)
    {
      t = xcalloc (1, sizeof *t);
      t->scope = xstrdup (scope);
      t->next = h->tokens;
      h->tokens = t;
    }
  ef_free_secret (t->value);
  t->value = tok.token;
  tok.token = NULL;
  t->expires_ms = ef_now_ms () + (tok.expires_in - 5) * 1000; /* expires_in <= a day: no overflow */
  auth_token_dispose (&tok);
  return 0;
}

/* Record the challenges of e's 401 on h.  When none is usable, say why:
 * the parse error of one that was offered, or what was offered. */
static int
take_challenge (struct reg_host *h, CURL *e, ef_err **err)
{
  struct auth_challenge cs[MAX_CHALLENGES];
  ef_err *why = NULL;
  size_t n = 0;
  const char *v;
  int sel, rc = 0;

  while (n < MAX_CHALLENGES && (v = http_header (e, "WWW-Authenticate", n)) != NULL)
    {
      if (auth_challenge_parse (&cs[n], v, why ? NULL : &why) < 0)
        memset (&cs[n], 0, sizeof cs[n]); /* unusable; another may do */
      n++;
    }
  if (n == 0)
    rc = ef_err_set (err, EF_AUTH, "401 without a WWW-Authenticate challenge");
  else if ((sel = auth_challenge_select (cs, n, why ? NULL : err)) < 0)
    {
      rc = why ? ef_err_propagate (err, why) : -EF_AUTH;
      why = NULL;
    }
  else
    {
      free (h->realm);
      free (h->service);
      h->scheme = cs[sel].scheme;
      v = auth_challenge_param (&cs[sel], "realm");
      h->realm = v ? xstrdup (v) : NULL;
      v = auth_challenge_param (&cs[sel], "service");
      h->service = v ? xstrdup (v) : NULL;
    }
  ef_err_free (why);
  for (size_t i = 0; i < n; i++)
    auth_challenge_dispose (&cs[i]);
  return rc;
}

/* GET /v2/ once per host: 200 means no auth, 401 brings the challenge.
 * A mirror gets one attempt: the next host is the retry.  The first goes
 * with s->warm copies, whose connections the transfers after it take. */
static int
ping (reg_session *s, struct reg_host *h, ef_err **err)
{
  cleanup_free char *url = xasprintf ("%s/", h->base);
  struct http_resp r;
  CURLcode res;
  int rc = 0;

  if (h->pinged)
    return 0;
  http_resp_init (&r, PING_BODY_MAX);
  for (int attempt = 1;; attempt++)
    {
      reg_session_prepare (s, h, s->easy, url, NULL);
      res = attempt == 1 ? http_perform_beside (s->easy, s->share, &r, (size_t) s->warm) : http_perform (s->easy, &r);
      if (h->mirror || r.too_big || !http_again (s->retry, s->easy, attempt, res, r.status))
        break;
    }
  if (http_cancelled (s->retry))
    rc = ef_err_set (err, EF_NET, "interrupted");
  else if (res != CURLE_OK && !r.too_big)
    rc = http_error (err, res, r.errbuf, "is the registry's CA in --ca-file or certs.d?");
  else if (r.status == 401)
    rc = take_challenge (h, s->easy, err);
  else if (r.status == 200 || r.too_big)
    h->scheme = AUTH_NONE;
  else
    rc = ef_err_set (err, EF_NET, "/v2/ answered HTTP %ld: not a registry?", r.status);
  h->pinged = rc == 0;
  http_resp_dispose (&r);
  return rc;
}

int
reg_session_authorize (reg_session *s, reg_host *h, const char *domain, const char *scope, ef_err **err)
{
  struct token *t;
  int rc = ping (s, h, err);

  if (rc < 0)
    return rc;
  if (h->scheme != AUTH_NONE && !h->secure)
    return ef_err_set (err, EF_AUTH, "%s asks for credentials, which go to no plain-http or unverified host",
                       h->base);
  switch (h->scheme)
    {
    case AUTH_NONE:
      return 0;
    case AUTH_BASIC:
      rc = host_creds (s, h, domain, err);
      if (rc < 0)
        return rc;
      if (h->creds.secret == NULL || h->creds.username == NULL || h->creds.username[0] == '\0')
        return ef_err_set (err, EF_AUTH, "registry requires a username and password (use --creds or --auth-file)");
      return 0;
    case AUTH_BEARER:
      t = token_find (h, scope);
      if (t && t->expires_ms > ef_now_ms ())
        return 0;
      return fetch_token (s, h, domain, scope, err);
    default:
      return ef_err_set (err, EF_AUTH, "registry offers no supported auth scheme (Basic or Bearer)");
    }
}

void
reg_session_sockopt (const reg_session *s, curl_socket_t fd)
{
  /* refused (not offered, or not allowed to us): the system's stays */
  if (s->congestion)
    setsockopt (fd, IPPROTO_TCP, TCP_CONGESTION, s->congestion, (socklen_t) strlen (s->congestion));
}

static int
session_sockopt (void *ud, curl_socket_t fd, curlsocktype purpose)
{
  if (purpose == CURLSOCKTYPE_IPCXN)
    reg_session_sockopt (ud, fd);
  return CURL_SOCKOPT_OK;
}

void
reg_session_prepare (reg_session *s, reg_host *h, CURL *e, const char *url, const char *scope)
{
  struct token *t;

  http_setup (e, url, HTTP_FOLLOW | (strncmp (h->base, "http://", 7) == 0 ? HTTP_PLAIN : 0));
  curl_easy_setopt (e, CURLOPT_SHARE, s->share);
  curl_easy_setopt (e, CURLOPT_MAXCONNECTS, (long) s->warm + 5); /* idle in the share: the warm ones too */
  /* HTTP/1.1: pieces on parallel connections, one of them the manifest's */
  curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  http_retry_stall (s->retry, e);
  reg_trust_apply (h->trust, e);
  if (s->congestion)
    {
      curl_easy_setopt (e, CURLOPT_SOCKOPTFUNCTION, session_sockopt);
      curl_easy_setopt (e, CURLOPT_SOCKOPTDATA, s);
    }
  if (h->headers)
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, h->headers);
  if (h->mirror)
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, (long) REG_MIRROR_CONNECT_MS);
  if (scope == NULL || !h->secure)
    return;
  if (h->scheme == AUTH_BASIC && h->creds.secret)
    {
      curl_easy_setopt (e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
      curl_easy_setopt (e, CURLOPT_USERNAME, h->creds.username);
      curl_easy_setopt (e, CURLOPT_PASSWORD, h->creds.secret);
    }
  else if (h->scheme == AUTH_BEARER && (t = token_find (h, scope)) != NULL && t->value)
    {
      curl_easy_setopt (e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BEARER);
      curl_easy_setopt (e, CURLOPT_XOAUTH2_BEARER, t->value);
    }
}

int
reg_session_reauth (reg_session *s, reg_host *h, CURL *e, const char *domain, const char *scope, ef_err **err)
{
  enum auth_scheme before = h->scheme;
  struct token *t;
  int rc = take_challenge (h, e, err);

  if (rc < 0)
    return rc;
  if (h->scheme == AUTH_BASIC && before == AUTH_BASIC && h->creds.secret)
    return ef_err_set (err, EF_AUTH, "401 unauthorized (check --creds)");
  if ((t = token_find (h, scope)) != NULL)
    t->expires_ms = 0;
  return reg_session_authorize (s, h, domain, scope, err);
}
