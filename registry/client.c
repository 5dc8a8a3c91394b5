/* client.c: registry HTTP through libcurl: per-host TLS, auth, retries,
 * manifests, and the parallel resumable blob engine (curl multi). */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../common/util.h"
#include "../verify/digest.h"
#include "auth.h"
#include "client.h"

#define USER_AGENT "edgefetch/" EF_VERSION
#define ERRBODY_MAX 65536
#define TOKEN_BODY_MAX (1u << 20)
#define MAX_CHALLENGES 8
#define MAX_CAS 32
#define PROGRESS_MIN (64 * 1024)

struct token
{
  struct token *next;
  char *scope;
  char *value;
  int64_t expires_ms;
};

struct host
{
  struct host *next;
  char *name; /* host[:port] */
  /* TLS */
  bool tls_loaded;
  char *cas[MAX_CAS];
  size_t ncas;
  char *cert, *key;
  X509_STORE *store; /* the system CAs plus this host's; shared by all its connections */
  /* auth */
  bool pinged;
  enum auth_scheme scheme;
  char *realm, *service;
  bool creds_loaded;
  struct auth_creds creds;
  struct token *tokens;
};

struct reg_client
{
  struct reg_client_opts o;
  struct reg_host_creds *host_creds;
  size_t nhost_creds;
  char *creds;
  char *auth_file;
  char **certs_dirs;
  char *ca_file;
  CURLSH *share;
  CURL *easy;
  struct host *hosts;
  unsigned rand_state;
};

struct resp
{
  long status;
  struct ef_buf body;
  bool too_big;
  long retry_after;
};

static void
resp_dispose (struct resp *r)
{
  ef_buf_dispose (&r->body);
}

/* ---- hosts and TLS ---- */

static void
host_free (struct host *h)
{
  struct token *t, *n;
  size_t i;

  for (i = 0; i < h->ncas; i++)
    free (h->cas[i]);
  free (h->cert);
  free (h->key);
  X509_STORE_free (h->store);
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
  free (h);
}

static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n > m && strcmp (s + n - m, suffix) == 0;
}

/* DIR/<host>/: *.crt are CAs added to the system pool; X.cert needs X.key. */
static int
load_certs_dir (struct host *h, const char *dir, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, h->name);
  struct dirent *de;
  DIR *d = opendir (path);
  int rc = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL)
    {
      const char *n = de->d_name;
      if (has_suffix (n, ".crt"))
        {
          if (h->ncas < MAX_CAS)
            h->cas[h->ncas++] = xasprintf ("%s/%s", path, n);
        }
      else if (has_suffix (n, ".cert") || has_suffix (n, ".key"))
        {
          bool is_cert = has_suffix (n, ".cert");
          size_t base = strlen (n) - (is_cert ? 5 : 4);
          cleanup_free char *other = xasprintf ("%s/%.*s%s", path, (int) base, n, is_cert ? ".key" : ".cert");
          struct stat st;
          if (stat (other, &st) < 0)
            {
              rc = ef_err_set (err, EF_USAGE, "%s/%s has no matching %s file", path, n, is_cert ? ".key" : ".cert");
              break;
            }
          if (is_cert && h->cert == NULL)
            {
              h->cert = xasprintf ("%s/%s", path, n);
              h->key = xstrdup (other);
            }
        }
    }
  closedir (d);
  return rc;
}

static struct host *
host_get (reg_client *c, const char *name)
{
  struct host *h;

  for (h = c->hosts; h; h = h->next)
    if (strcasecmp (h->name, name) == 0)
      return h;
  h = xcalloc (1, sizeof *h);
  h->name = xstrdup (name);
  h->next = c->hosts;
  c->hosts = h;
  return h;
}

/* Build the host's trust once: the system pool (curl's default CA file)
 * plus certs.d CAs and --ca-file.  All its connections share it, so the
 * system bundle is parsed once per host, not once per connection. */
static int
host_tls (reg_client *c, struct host *h, ef_err **err)
{
  const char *sys = curl_version_info (CURLVERSION_NOW)->cainfo;
  size_t i;

  if (h->tls_loaded)
    return 0;
  for (i = 0; c->certs_dirs && c->certs_dirs[i]; i++)
    if (load_certs_dir (h, c->certs_dirs[i], err) < 0)
      return -EF_USAGE;
  if (c->ca_file && h->ncas < MAX_CAS)
    h->cas[h->ncas++] = xstrdup (c->ca_file);
  h->store = X509_STORE_new ();
  if (h->store == NULL)
    return ef_err_set (err, EF_LOCAL, "OpenSSL: out of memory");
  if (sys ? X509_STORE_load_file (h->store, sys) != 1 : X509_STORE_set_default_paths (h->store) != 1)
    ERR_clear_error (); /* no system CAs: only ours are trusted */
  for (i = 0; i < h->ncas; i++)
    if (ef_store_add_pem (h->store, h->cas[i]) <= 0)
      return ef_err_set (err, EF_USAGE, "CA file %s holds no certificate", h->cas[i]);
  h->tls_loaded = true;
  return 0;
}

static CURLcode
ssl_ctx_cb (CURL *e, void *sslctx, void *userdata)
{
  struct host *h = userdata;

  (void) e;
  if (h->store == NULL)
    return CURLE_SSL_CACERT_BADFILE;
  SSL_CTX_set1_cert_store ((SSL_CTX *) sslctx, h->store);
  return CURLE_OK;
}

static void
setup_handle (reg_client *c, struct host *h, CURL *e, const char *url)
{
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_SHARE, c->share);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt (e, CURLOPT_UNRESTRICTED_AUTH, 0L); /* credentials stay with the registry host */
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt (e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, c->o.low_speed_limit);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, c->o.low_speed_time);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* Trust comes from the host's store alone (see host_tls). */
  curl_easy_setopt (e, CURLOPT_CAINFO, NULL);
  curl_easy_setopt (e, CURLOPT_CAPATH, NULL);
  curl_easy_setopt (e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
  curl_easy_setopt (e, CURLOPT_SSL_CTX_DATA, h);
  if (h->cert)
    {
      curl_easy_setopt (e, CURLOPT_SSLCERT, h->cert);
      curl_easy_setopt (e, CURLOPT_SSLKEY, h->key);
    }
}

/* ---- responses ---- */

static size_t
collect_cb (char *p, size_t size, size_t n, void *ud)
{
  struct resp *r = ud;
  size_t len = size * n;

  if (ef_buf_append (&r->body, p, len) < 0)
    {
      r->too_big = true;
      return 0;
    }
  return len;
}

static const char *
header_value (CURL *e, const char *name, size_t idx)
{
  struct curl_header *hd;

  if (curl_easy_header (e, name, idx, CURLH_HEADER, -1, &hd) != CURLHE_OK)
    return NULL;
  return hd->value;
}

/* The first error code and message of a registry's JSON error body. */
static void
registry_error (const struct resp *r, char *code, size_t clen, char *msg, size_t mlen)
{
  json_t *root = r->body.data ? json_loadb (r->body.data, r->body.len, 0, NULL) : NULL;
  json_t *first = json_array_get (json_object_get (root, "errors"), 0);
  json_t *jc = json_object_get (first, "code"), *jm = json_object_get (first, "message");

  snprintf (code, clen, "%s", json_is_string (jc) ? json_string_value (jc) : "");
  snprintf (msg, mlen, "%s", json_is_string (jm) ? json_string_value (jm) : "");
  /* Remote text goes into our one-line error: keep it printable. */
  for (char *p = msg; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  for (char *p = code; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
      *p = '?';
  json_decref (root);
}

static bool
retryable_curl (CURLcode res)
{
  switch (res)
    {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_AGAIN:
      return true;
    default:
      return false;
    }
}

static bool
retryable_status (long st)
{
  return st == 408 || st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static int
curl_error (ef_err **err, CURLcode res, const char *errbuf)
{
  const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror (res);

  switch (res)
    {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return ef_err_set (err, EF_NET, "TLS: %s (is the registry's CA in --ca-file or certs.d?)", detail);
    case CURLE_UNSUPPORTED_PROTOCOL:
      return ef_err_set (err, EF_NET, "refused to follow a redirect to a non-https URL");
    case CURLE_TOO_MANY_REDIRECTS:
      return ef_err_set (err, EF_NET, "too many redirects");
    default:
      return ef_err_set (err, EF_NET, "%s", detail);
    }
}

/* Sleep for the nth backoff (with jitter), or Retry-After when given. */
static int64_t
backoff_ms (reg_client *c, int attempt, long retry_after)
{
  int64_t ms;

  if (retry_after > 0)
    return (retry_after > 300 ? 300 : retry_after) * 1000;
  ms = c->o.retry_base_ms << (attempt > 6 ? 6 : attempt - 1);
  if (ms > 30000)
    ms = 30000;
  return ms + (int64_t) (rand_r (&c->rand_state) % (unsigned) (ms / 2 + 1));
}

static void
sleep_ms (int64_t ms)
{
  struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* ---- auth ---- */

static int
host_creds (reg_client *c, struct host *h, const char *domain, ef_err **err)
{
  if (h->creds_loaded)
    return 0;
  h->creds_loaded = true;
  if (c->creds)
    return auth_creds_from_string (&h->creds, c->creds, err);
  for (size_t i = 0; i < c->nhost_creds; i++)
    {
      const struct reg_host_creds *hc = &c->host_creds[i];
      bool hub = strcmp (domain, "docker.io") == 0 && strstr (hc->registry, "docker.io") != NULL;
      if (hub || strcasecmp (hc->registry, domain) == 0)
        {
          h->creds.username = xstrdup (hc->username);
          h->creds.secret = xstrdup (hc->secret);
          return 0;
        }
    }
  if (c->auth_file)
    {
      cleanup_free char *text = NULL;
      size_t len;
      int rc;

      if (ef_read_file (c->auth_file, 1u << 20, &text, &len) < 0)
        return ef_err_sys (err, EF_USAGE, errno, "auth file %s", c->auth_file);
      rc = auth_config_lookup (&h->creds, text, len, domain, err);
      OPENSSL_cleanse (text, len);
      if (rc < 0)
        return ef_err_wrap (err, "auth file %s", c->auth_file);
    }
  return 0;
}

static struct token *
token_find (struct host *h, const char *scope)
{
  struct token *t;

  for (t = h->tokens; t; t = t->next)
    if (strcmp (t->scope, scope) == 0)
      return t;
  return NULL;
}

static void
token_drop (struct host *h, const char *scope)
{
  struct token *t = token_find (h, scope);
  if (t)
    t->expires_ms = 0;
}

static char *
escape (CURL *e, const char *s)
{
  char *x = curl_easy_escape (e, s, 0);
  char *r = xstrdup (x ? x : "");
  curl_free (x);
  return r;
}

/* Ask the realm for a token: OAuth2 POST when we hold a secret (falling
 * back to GET with Basic, as containerd does), anonymous GET otherwise. */
static int
fetch_token (reg_client *c, struct host *h, const char *domain, const char *scope, ef_err **err)
{
  CURLU *u = NULL;
  struct host *rh;
  struct resp r = { 0 };
  struct auth_token tok = { 0 };
  struct token *t;
  char errbuf[CURL_ERROR_SIZE] = "";
  char *realm_host = NULL, *realm_port = NULL, *url = NULL;
  CURL *e = c->easy;
  CURLcode res;
  bool has_secret, identity;
  int rc = 0, attempt;

  if (auth_realm_check (h->realm, h->name, false, err) < 0)
    return -EF_AUTH;
  if (host_creds (c, h, domain, err) < 0)
    return -EF_USAGE;
  has_secret = h->creds.secret != NULL;
  identity = has_secret && (h->creds.username == NULL || h->creds.username[0] == '\0');

  u = curl_url ();
  curl_url_set (u, CURLUPART_URL, h->realm, 0);
  curl_url_get (u, CURLUPART_HOST, &realm_host, 0);
  if (curl_url_get (u, CURLUPART_PORT, &realm_port, 0) != CURLUE_OK)
    realm_port = NULL;
  {
    cleanup_free char *rname = realm_port ? xasprintf ("%s:%s", realm_host, realm_port) : xstrdup (realm_host);
    rh = host_get (c, rname);
  }
  if (host_tls (c, rh, err) < 0)
    {
      rc = -EF_USAGE;
      goto out;
    }

  for (int mode = (has_secret ? 0 : 1); mode < 2; mode++)
    {
      /* mode 0: OAuth2 POST; mode 1: GET (Basic when we have a password) */
      for (attempt = 1;; attempt++)
        {
          cleanup_free char *form = NULL;
          curl_free (url);
          url = NULL;
          curl_easy_reset (e);
          resp_dispose (&r);
          memset (&r, 0, sizeof r);
          ef_buf_init (&r.body, TOKEN_BODY_MAX);
          if (mode == 0)
            {
              cleanup_free char *es = escape (e, h->service ? h->service : "");
              cleanup_free char *esc = escape (e, scope);
              if (identity)
                {
                  cleanup_free char *ert = escape (e, h->creds.secret);
                  form = xasprintf ("grant_type=refresh_token&refresh_token=%s&service=%s&client_id=edgefetch"
                                    "&scope=%s",
                                    ert, es, esc);
                  OPENSSL_cleanse (ert, strlen (ert));
                }
              else
                {
                  cleanup_free char *eu = escape (e, h->creds.username);
                  cleanup_free char *ep = escape (e, h->creds.secret);
                  form = xasprintf ("grant_type=password&username=%s&password=%s&service=%s"
                                    "&client_id=edgefetch&scope=%s",
                                    eu, ep, es, esc);
                  OPENSSL_cleanse (ep, strlen (ep));
                }
              curl_url_get (u, CURLUPART_URL, &url, 0);
              setup_handle (c, rh, e, url);
              curl_easy_setopt (e, CURLOPT_COPYPOSTFIELDS, form);
              OPENSSL_cleanse (form, strlen (form));
            }
          else
            {
              CURLU *g = curl_url_dup (u);
              cleanup_free char *q1 = h->service ? xasprintf ("service=%s", h->service) : NULL;
              cleanup_free char *q2 = xasprintf ("scope=%s", scope);
              if (q1)
                curl_url_set (g, CURLUPART_QUERY, q1, CURLU_APPENDQUERY | CURLU_URLENCODE);
              curl_url_set (g, CURLUPART_QUERY, q2, CURLU_APPENDQUERY | CURLU_URLENCODE);
              curl_url_get (g, CURLUPART_URL, &url, 0);
              curl_url_cleanup (g);
              setup_handle (c, rh, e, url);
              if (has_secret && !identity)
                {
                  curl_easy_setopt (e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                  curl_easy_setopt (e, CURLOPT_USERNAME, h->creds.username);
                  curl_easy_setopt (e, CURLOPT_PASSWORD, h->creds.secret);
                }
            }
          curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 0L); /* a token server does not redirect */
          curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, collect_cb);
          curl_easy_setopt (e, CURLOPT_WRITEDATA, &r);
          curl_easy_setopt (e, CURLOPT_ERRORBUFFER, errbuf);
          res = curl_easy_perform (e);
          curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &r.status);
          curl_easy_setopt (e, CURLOPT_ERRORBUFFER, NULL);
          if (res != CURLE_OK && !r.too_big && retryable_curl (res) && attempt < c->o.max_attempts)
            {
              sleep_ms (backoff_ms (c, attempt, 0));
              continue;
            }
          if (res == CURLE_OK && retryable_status (r.status) && attempt < c->o.max_attempts)
            {
              curl_off_t ra = 0;
              curl_easy_getinfo (e, CURLINFO_RETRY_AFTER, &ra);
              sleep_ms (backoff_ms (c, attempt, (long) ra));
              continue;
            }
          break;
        }
      if (res != CURLE_OK)
        {
          rc = r.too_big ? ef_err_set (err, EF_AUTH, "token response too large") : curl_error (err, res, errbuf);
          goto out;
        }
      if (mode == 0 && (r.status == 400 || r.status == 401 || r.status == 404 || r.status == 405) && !identity)
        continue; /* no OAuth2 here: try GET */
      break;
    }
  if (r.status == 401 || r.status == 403)
    {
      rc = ef_err_set (err, EF_AUTH, "token server: %ld %s (check --creds)", r.status,
                       r.status == 401 ? "unauthorized" : "denied");
      goto out;
    }
  if (r.status != 200)
    {
      rc = ef_err_set (err, EF_NET, "token server answered HTTP %ld", r.status);
      goto out;
    }
  rc = auth_token_parse (&tok, r.body.data, r.body.len, err);
  if (rc < 0)
    goto out;
  t = token_find (h, scope);
  if (t == NULL)
    {
      t = xcalloc (1, sizeof *t);
      t->scope = xstrdup (scope);
      t->next = h->tokens;
      h->tokens = t;
    }
  ef_free_secret (t->value);
  t->value = tok.token;
  tok.token = NULL;
  t->expires_ms = ef_now_ms () + (tok.expires_in - 5) * 1000;
out:
  if (r.body.data)
    OPENSSL_cleanse (r.body.data, r.body.len);
  resp_dispose (&r);
  auth_token_dispose (&tok);
  curl_free (url);
  curl_free (realm_host);
  curl_free (realm_port);
  curl_url_cleanup (u);
  return rc;
}

/* Record the challenges of a 401 on h. */
static int
take_challenge (struct host *h, CURL *e, ef_err **err)
{
  struct auth_challenge cs[MAX_CHALLENGES];
  size_t n = 0, i;
  const char *v;
  int sel, rc = 0;

  while (n < MAX_CHALLENGES && (v = header_value (e, "WWW-Authenticate", n)) != NULL)
    {
      if (auth_challenge_parse (&cs[n], v, NULL) < 0)
        memset (&cs[n], 0, sizeof cs[n]); /* unusable; another may do */
      n++;
    }
  if (n == 0)
    return ef_err_set (err, EF_AUTH, "401 without a WWW-Authenticate challenge");
  sel = auth_challenge_select (cs, n, err);
  if (sel < 0)
    rc = -EF_AUTH;
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
  for (i = 0; i < n; i++)
    auth_challenge_dispose (&cs[i]);
  return rc;
}

static void apply_auth (struct host *h, CURL *e, const char *scope);

/* One GET of url on h into r, the body capped at max, authorized for
 * scope when one is given; returns curl's result, r->status the HTTP status. */
static CURLcode
get_once (reg_client *c, struct host *h, const char *url, const char *scope, struct curl_slist *hdrs, size_t max,
          struct resp *r, char *errbuf)
{
  CURLcode res;

  resp_dispose (r);
  memset (r, 0, sizeof *r);
  ef_buf_init (&r->body, max);
  curl_easy_reset (c->easy);
  setup_handle (c, h, c->easy, url);
  if (scope)
    apply_auth (h, c->easy, scope);
  if (hdrs)
    curl_easy_setopt (c->easy, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (c->easy, CURLOPT_WRITEFUNCTION, collect_cb);
  curl_easy_setopt (c->easy, CURLOPT_WRITEDATA, r);
  curl_easy_setopt (c->easy, CURLOPT_ERRORBUFFER, errbuf);
  errbuf[0] = '\0';
  res = curl_easy_perform (c->easy);
  curl_easy_setopt (c->easy, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_getinfo (c->easy, CURLINFO_RESPONSE_CODE, &r->status);
  return res;
}

static int
ping (reg_client *c, struct host *h, ef_err **err)
{
  cleanup_free char *url = xasprintf ("https://%s/v2/", h->name);
  char errbuf[CURL_ERROR_SIZE] = "";
  struct resp r = { 0 };
  CURLcode res = CURLE_OK;
  int attempt, rc = 0;

  if (h->pinged)
    return 0;
  if (host_tls (c, h, err) < 0)
    return -EF_USAGE;
  for (attempt = 1;; attempt++)
    {
      res = get_once (c, h, url, NULL, NULL, ERRBODY_MAX, &r, errbuf);
      if (c->o.cancel && *c->o.cancel)
        {
          rc = ef_err_set (err, EF_NET, "interrupted");
          goto out;
        }
      if (((res != CURLE_OK && retryable_curl (res)) || (res == CURLE_OK && retryable_status (r.status)))
          && attempt < c->o.max_attempts)
        {
          sleep_ms (backoff_ms (c, attempt, 0));
          continue;
        }
      break;
    }
  if (res != CURLE_OK && !r.too_big)
    rc = curl_error (err, res, errbuf);
  else if (r.status == 401)
    rc = take_challenge (h, c->easy, err);
  else if (r.status == 200 || r.too_big)
    h->scheme = AUTH_NONE;
  else
    rc = ef_err_set (err, EF_NET, "/v2/ answered HTTP %ld: not a registry?", r.status);
  if (rc == 0)
    h->pinged = true;
out:
  resp_dispose (&r);
  return rc;
}

/* Make sure we can authorize requests for scope on h. */
static int
ensure_auth (reg_client *c, struct host *h, const char *domain, const char *scope, ef_err **err)
{
  struct token *t;

  if (ping (c, h, err) < 0)
    return -ef_err_code (err ? *err : NULL);
  switch (h->scheme)
    {
    case AUTH_NONE:
      return 0;
    case AUTH_BASIC:
      if (host_creds (c, h, domain, err) < 0)
        return -EF_USAGE;
      if (h->creds.secret == NULL || h->creds.username == NULL || h->creds.username[0] == '\0')
        return ef_err_set (err, EF_AUTH, "registry requires a username and password (use --creds or --auth-file)");
      return 0;
    case AUTH_BEARER:
      t = token_find (h, scope);
      if (t && t->expires_ms > ef_now_ms ())
        return 0;
      return fetch_token (c, h, domain, scope, err);
    default:
      return ef_err_set (err, EF_AUTH, "registry offers no supported auth scheme");
    }
}

static void
apply_auth (struct host *h, CURL *e, const char *scope)
{
  struct token *t;

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

/* After a 401 on an authorized request: take the new challenge, drop the
 * cached token and get a fresh one.  Only once per request. */
static int
reauth (reg_client *c, struct host *h, CURL *e, const char *domain, const char *scope, ef_err **err)
{
  enum auth_scheme before = h->scheme;

  if (take_challenge (h, e, err) < 0)
    return -EF_AUTH;
  if (h->scheme == AUTH_BASIC)
    {
      if (before == AUTH_BASIC && h->creds.secret)
        return ef_err_set (err, EF_AUTH, "401 unauthorized (check --creds)");
      return ensure_auth (c, h, domain, scope, err);
    }
  token_drop (h, scope);
  return ensure_auth (c, h, domain, scope, err);
}

static char *
scope_of (const struct reg_ref *ref)
{
  return xasprintf ("repository:%s:pull", ref->path);
}

/* ---- client ---- */

int
reg_client_new (reg_client **out, const struct reg_client_opts *o, ef_err **err)
{
  reg_client *c;
  size_t n = 0;

  *out = NULL;
  if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  c = xcalloc (1, sizeof *c);
  c->o = *o;
  c->creds = o->creds ? xstrdup (o->creds) : NULL;
  c->nhost_creds = o->nhost_creds;
  c->host_creds = xcalloc (o->nhost_creds + 1, sizeof *c->host_creds);
  for (size_t i = 0; i < o->nhost_creds; i++)
    {
      c->host_creds[i].registry = xstrdup (o->host_creds[i].registry);
      c->host_creds[i].username = xstrdup (o->host_creds[i].username);
      c->host_creds[i].secret = xstrdup (o->host_creds[i].secret);
    }
  c->o.host_creds = NULL;
  c->auth_file = o->auth_file ? xstrdup (o->auth_file) : NULL;
  c->ca_file = o->ca_file ? xstrdup (o->ca_file) : NULL;
  while (o->certs_dirs && o->certs_dirs[n])
    n++;
  c->certs_dirs = xcalloc (n + 1, sizeof *c->certs_dirs);
  for (size_t i = 0; i < n; i++)
    c->certs_dirs[i] = xstrdup (o->certs_dirs[i]);
  c->o.creds = c->o.auth_file = c->o.ca_file = NULL;
  c->o.certs_dirs = NULL;
  if (c->o.jobs <= 0)
    c->o.jobs = 4;
  if (c->o.low_speed_limit <= 0)
    c->o.low_speed_limit = 1024;
  if (c->o.low_speed_time <= 0)
    c->o.low_speed_time = 30;
  if (c->o.max_attempts <= 0)
    c->o.max_attempts = 6;
  if (c->o.retry_base_ms <= 0)
    c->o.retry_base_ms = 500;
  c->rand_state = (unsigned) (ef_now_ms () ^ getpid ());
  c->share = curl_share_init ();
  curl_share_setopt (c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt (c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt (c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  c->easy = curl_easy_init ();
  if (c->share == NULL || c->easy == NULL)
    {
      reg_client_free (c);
      return ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
    }
  *out = c;
  return 0;
}

void
reg_client_free (reg_client *c)
{
  struct host *h, *n;

  if (c == NULL)
    return;
  for (h = c->hosts; h; h = n)
    {
      n = h->next;
      host_free (h);
    }
  if (c->easy)
    curl_easy_cleanup (c->easy);
  if (c->share)
    curl_share_cleanup (c->share);
  ef_free_secret (c->creds);
  for (size_t i = 0; i < c->nhost_creds; i++)
    {
      free ((char *) c->host_creds[i].registry);
      ef_free_secret ((char *) c->host_creds[i].username);
      ef_free_secret ((char *) c->host_creds[i].secret);
    }
  free (c->host_creds);
  free (c->auth_file);
  free (c->ca_file);
  for (size_t i = 0; c->certs_dirs && c->certs_dirs[i]; i++)
    free (c->certs_dirs[i]);
  free (c->certs_dirs);
  free (c);
  curl_global_cleanup ();
}

void
reg_manifest_resp_dispose (struct reg_manifest_resp *r)
{
  free (r->body);
  free (r->content_type);
  memset (r, 0, sizeof *r);
}

/* GET /v2/<name>/<kind>/<what>: a manifest (whose digest is checked) or
 * the referrers index of a digest (whose content may change, so it is not). */
static int
get_document (reg_client *c, const struct reg_ref *ref, const char *kind, const char *tag_or_digest,
              const char *query, struct reg_manifest_resp *out, ef_err **err)
{
  struct host *h = host_get (c, ref->api_host);
  cleanup_free char *scope = scope_of (ref);
  cleanup_free char *url = xasprintf ("https://%s/v2/%s/%s/%s%s", ref->api_host, ref->path, kind, tag_or_digest,
                                      query ? query : "");
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *hdrs = NULL;
  struct resp r = { 0 };
  bool manifest = strcmp (kind, "manifests") == 0;
  bool reauthed = false, by_digest = manifest && strncmp (tag_or_digest, "sha256:", 7) == 0;
  const char *v;
  CURLcode res;
  int attempt, rc = 0;

  memset (out, 0, sizeof *out);
  if (ensure_auth (c, h, ref->domain, scope, err) < 0)
    return -ef_err_code (err ? *err : NULL);
  hdrs = curl_slist_append (hdrs, "Accept: " REG_MANIFEST_ACCEPT);
  for (attempt = 1;; attempt++)
    {
      res = get_once (c, h, url, scope, hdrs, REG_MANIFEST_MAX, &r, errbuf);
      if (c->o.cancel && *c->o.cancel)
        {
          rc = ef_err_set (err, EF_NET, "interrupted");
          goto out;
        }
      if (r.too_big)
        {
          rc = ef_err_set (err, EF_VERIFY, "manifest larger than %u bytes", REG_MANIFEST_MAX);
          goto out;
        }
      if (res != CURLE_OK)
        {
          if (retryable_curl (res) && attempt < c->o.max_attempts)
            {
              sleep_ms (backoff_ms (c, attempt, 0));
              continue;
            }
          rc = curl_error (err, res, errbuf);
          goto out;
        }
      if (r.status == 401 && !reauthed)
        {
          reauthed = true;
          if (reauth (c, h, c->easy, ref->domain, scope, err) < 0)
            {
              rc = -ef_err_code (err ? *err : NULL);
              goto out;
            }
          attempt--;
          continue;
        }
      if (retryable_status (r.status) && attempt < c->o.max_attempts)
        {
          curl_off_t ra = 0;
          curl_easy_getinfo (c->easy, CURLINFO_RETRY_AFTER, &ra);
          sleep_ms (backoff_ms (c, attempt, (long) ra));
          continue;
        }
      break;
    }

  if (r.status != 200)
    {
      char code[64], msg[256];
      registry_error (&r, code, sizeof code, msg, sizeof msg);
      if (r.status == 404)
        rc = ef_err_set (err, EF_NOTFOUND, "%s", strcmp (code, "NAME_UNKNOWN") == 0 ? "repository not found"
                                                  : by_digest ? "manifest unknown: no such digest"
                                                              : "manifest unknown: no such tag");
      else if (r.status == 401)
        rc = ef_err_set (err, EF_AUTH, "401 unauthorized (check --creds)");
      else if (r.status == 403)
        rc = ef_err_set (err, EF_AUTH, "403 denied%s%s", msg[0] ? ": " : "", msg);
      else
        rc = ef_err_set (err, EF_NET, "HTTP %ld%s%s", r.status, msg[0] ? ": " : "", msg);
      goto out;
    }

  ef_digest_buf (r.body.data ? r.body.data : "", r.body.len, out->digest);
  if (by_digest && strcmp (out->digest, tag_or_digest) != 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "manifest content does not match the requested digest %s (got %s)",
                       tag_or_digest, out->digest);
      goto out;
    }
  v = header_value (c->easy, "Docker-Content-Digest", 0);
  if (manifest && v && strncmp (v, "sha256:", 7) == 0 && strcmp (v, out->digest) != 0)
    {
      rc = ef_err_set (err, EF_VERIFY, "manifest content does not match Docker-Content-Digest %.80s", v);
      goto out;
    }
  v = header_value (c->easy, "Content-Type", 0);
  out->content_type = v ? xstrdup (v) : NULL;
  out->body = r.body.data ? r.body.data : xstrdup ("");
  out->len = r.body.len;
  r.body.data = NULL;
out:
  curl_slist_free_all (hdrs);
  resp_dispose (&r);
  if (rc < 0)
    reg_manifest_resp_dispose (out);
  return rc;
}

int
reg_client_get_manifest (reg_client *c, const struct reg_ref *ref, const char *tag_or_digest,
                         struct reg_manifest_resp *out, ef_err **err)
{
  return get_document (c, ref, "manifests", tag_or_digest, NULL, out, err);
}

int
reg_client_get_referrers (reg_client *c, const struct reg_ref *ref, const char *digest, const char *artifact_type,
                          struct reg_manifest_resp *out, ef_err **err)
{
  char *at = curl_easy_escape (NULL, artifact_type, 0);
  cleanup_free char *query = xasprintf ("?artifactType=%s", at ? at : "");

  curl_free (at);
  return get_document (c, ref, "referrers", digest, query, out, err);
}

/* ---- blob transfers ---- */

enum job_state
{
  JOB_QUEUED,
  JOB_RUNNING,
  JOB_DONE,
};

struct xfer;

struct job
{
  struct xfer *x;
  const struct reg_desc *d;
  enum job_state state;
  reg_ingest *ing;
  CURL *e;
  char *url;
  int attempts;         /* consecutive failures without progress */
  int64_t start_offset; /* offset when this attempt began */
  int64_t not_before;   /* ms, for backoff */
  bool reauthed;
  bool checked;         /* status of this response looked at */
  long status;
  struct ef_buf errbody;
  ef_err *werr; /* raised inside the write callback */
  char errbuf[CURL_ERROR_SIZE];
};

struct xfer
{
  reg_client *c;
  struct host *h;
  const struct reg_ref *ref;
  reg_store *s;
  char *scope;
  reg_progress_fn progress;
  void *payload;
  int64_t total, done;
  struct reg_fetch_stats *stats;
  int64_t last_progress;
};

static void
report (struct xfer *x, bool force)
{
  int64_t now = ef_now_ms ();
  if (x->progress && (force || now - x->last_progress >= 100))
    {
      x->last_progress = now;
      x->progress (x->payload, x->done, x->total);
    }
}

static size_t
blob_data_cb (char *p, size_t size, size_t n, void *ud)
{
  struct job *j = ud;
  size_t len = size * n;

  if (!j->checked)
    {
      j->checked = true;
      curl_easy_getinfo (j->e, CURLINFO_RESPONSE_CODE, &j->status);
      if (j->status == 206)
        {
          /* The range must start where our bytes end. */
          const char *cr = header_value (j->e, "Content-Range", 0);
          cleanup_free char *want = xasprintf ("bytes %lld-", (long long) reg_ingest_offset (j->ing));
          if (cr == NULL || strncmp (cr, want, strlen (want)) != 0)
            {
              ef_err_set (&j->werr, EF_NET, "registry answered a different range than asked");
              return 0;
            }
        }
      else if (j->status == 200 && reg_ingest_offset (j->ing) > 0)
        {
          /* Range ignored: the whole blob follows; start over. */
          j->x->done -= reg_ingest_offset (j->ing);
          if (reg_ingest_restart (j->ing, &j->werr) < 0)
            return 0;
          j->start_offset = 0;
        }
    }
  if (j->status != 200 && j->status != 206)
    {
      ef_buf_append (&j->errbody, p, len); /* keep what fits */
      return len;
    }
  if (reg_ingest_write (j->ing, p, len, &j->werr) < 0)
    return 0;
  j->x->done += (int64_t) len;
  j->x->stats->bytes_fetched += (int64_t) len;
  report (j->x, false);
  return len;
}

/* Prepare the next attempt of j: open (or keep) its ingest and a handle.
 * Returns 1 when the job is finished without a transfer, 0 when it is
 * ready to run, 2 when another process holds it, negative on error. */
static int
job_prepare (struct job *j, ef_err **err)
{
  struct xfer *x = j->x;
  int rc;

  if (j->ing == NULL)
    {
      if (reg_store_has (x->s, j->d->digest, j->d->size))
        {
          x->stats->bytes_reused += j->d->size;
          x->done += j->d->size;
          return 1;
        }
      rc = reg_ingest_open (&j->ing, x->s, j->d->digest, j->d->size, err);
      if (rc < 0)
        return rc;
      if (rc == 1)
        return 2;
      /* The holder before us may have just finished it. */
      if (reg_store_has (x->s, j->d->digest, j->d->size))
        {
          reg_ingest_free (j->ing);
          j->ing = NULL;
          x->stats->bytes_reused += j->d->size;
          x->done += j->d->size;
          return 1;
        }
      x->stats->bytes_reused += reg_ingest_offset (j->ing);
      x->done += reg_ingest_offset (j->ing);
    }
  if (reg_ingest_offset (j->ing) == j->d->size)
    {
      rc = reg_ingest_commit (j->ing, err);
      return rc < 0 ? rc : 1;
    }
  if (j->e == NULL)
    j->e = curl_easy_init ();
  else
    curl_easy_reset (j->e);
  if (j->e == NULL)
    return ef_err_set (err, EF_LOCAL, "libcurl: out of handles");
  ef_buf_dispose (&j->errbody);
  ef_buf_init (&j->errbody, ERRBODY_MAX);
  j->checked = false;
  j->status = 0;
  j->errbuf[0] = '\0';
  j->start_offset = reg_ingest_offset (j->ing);
  setup_handle (x->c, x->h, j->e, j->url);
  apply_auth (x->h, j->e, x->scope);
  /* Parallel blobs over separate connections: one lost packet then stalls
   * one blob, not all of them (HTTP/2 would multiplex on one TCP stream). */
  curl_easy_setopt (j->e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (j->e, CURLOPT_BUFFERSIZE, 64L * 1024);
  curl_easy_setopt (j->e, CURLOPT_WRITEFUNCTION, blob_data_cb);
  curl_easy_setopt (j->e, CURLOPT_WRITEDATA, j);
  curl_easy_setopt (j->e, CURLOPT_ERRORBUFFER, j->errbuf);
  curl_easy_setopt (j->e, CURLOPT_PRIVATE, j);
  if (j->start_offset > 0)
    {
      char range[32];
      snprintf (range, sizeof range, "%lld-", (long long) j->start_offset);
      curl_easy_setopt (j->e, CURLOPT_RANGE, range);
    }
  return 0;
}

/* Decide what a finished attempt means.  0: done; 1: run again (after
 * j->not_before); negative: the whole fetch fails. */
static int
job_finish (struct job *j, CURLcode res, ef_err **err)
{
  struct xfer *x = j->x;
  reg_client *c = x->c;
  /* Progress that resets the retry budget: a stall after a trickle of
   * bytes is still a stall (skopeo asks for 1 MiB; edge links are slower). */
  bool progressed = reg_ingest_offset (j->ing) - j->start_offset >= PROGRESS_MIN;
  curl_off_t ra = 0;
  char code[64], msg[256];
  struct resp r;

  if (j->werr)
    {
      int wcode = ef_err_code (j->werr);
      if (wcode != EF_NET)
        {
          ef_err_set (err, wcode, "%s", ef_err_msg (j->werr));
          return -wcode;
        }
      /* a range we did not ask for: start this blob over */
      ef_err_free (j->werr);
      j->werr = NULL;
      x->done -= reg_ingest_offset (j->ing);
      reg_ingest_restart (j->ing, NULL);
      progressed = false;
      res = CURLE_RECV_ERROR;
    }
  if (!j->checked)
    curl_easy_getinfo (j->e, CURLINFO_RESPONSE_CODE, &j->status);
  if (res == CURLE_OK && (j->status == 200 || j->status == 206))
    {
      if (reg_ingest_offset (j->ing) == j->d->size)
        {
          int rc = reg_ingest_commit (j->ing, err);
          return rc < 0 ? rc : 0;
        }
      res = CURLE_PARTIAL_FILE; /* short body: resume it */
    }
  if (res == CURLE_OK && j->status == 401 && !j->reauthed)
    {
      j->reauthed = true;
      if (reauth (c, x->h, j->e, x->ref->domain, x->scope, err) < 0)
        return -ef_err_code (err ? *err : NULL);
      j->not_before = 0;
      return 1;
    }
  if (res == CURLE_OK && j->status == 416)
    {
      reg_ingest_restart (j->ing, NULL);
      x->done -= j->start_offset;
      progressed = false;
    }
  else if (res == CURLE_OK && !retryable_status (j->status))
    {
      r.body = j->errbody;
      registry_error (&r, code, sizeof code, msg, sizeof msg);
      if (j->status == 404)
        return ef_err_set (err, EF_NOTFOUND, "blob %s: not found in the registry", j->d->digest);
      if (j->status == 401 || j->status == 403)
        return ef_err_set (err, EF_AUTH, "blob %s: %ld %s", j->d->digest, j->status, msg[0] ? msg : "denied");
      return ef_err_set (err, EF_NET, "blob %s: HTTP %ld%s%s", j->d->digest, j->status, msg[0] ? ": " : "", msg);
    }
  else if (res != CURLE_OK && !retryable_curl (res))
    {
      curl_error (err, res, j->errbuf);
      return ef_err_wrap (err, "blob %s", j->d->digest);
    }

  /* Retryable: a dropped connection, a stall, 408/429/5xx, or a 416. */
  j->attempts = progressed ? 1 : j->attempts + 1;
  if (j->attempts >= c->o.max_attempts)
    {
      if (res != CURLE_OK)
        curl_error (err, res, j->errbuf);
      else
        ef_err_set (err, EF_NET, "HTTP %ld", j->status);
      return ef_err_wrap (err, "blob %s: giving up after %d attempts", j->d->digest, j->attempts);
    }
  if (res == CURLE_OK)
    curl_easy_getinfo (j->e, CURLINFO_RETRY_AFTER, &ra);
  j->not_before = ef_now_ms () + backoff_ms (c, j->attempts, (long) ra);
  return 1;
}

int
reg_client_fetch_blobs (reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs, size_t n,
                        reg_store *s, reg_progress_fn progress, void *payload, struct reg_fetch_stats *stats,
                        ef_err **err)
{
  struct xfer x = { 0 };
  struct job *jobs = NULL;
  CURLM *m = NULL;
  size_t i, remaining = n;
  int running = 0, active = 0, rc = 0;

  x.c = c;
  x.h = host_get (c, ref->api_host);
  x.ref = ref;
  x.s = s;
  x.scope = scope_of (ref);
  x.progress = progress;
  x.payload = payload;
  x.stats = stats;
  for (i = 0; i < n; i++)
    x.total += descs[i]->size;
  if (n == 0)
    goto out;
  if (ensure_auth (c, x.h, ref->domain, x.scope, err) < 0)
    {
      rc = -ef_err_code (err ? *err : NULL);
      goto out;
    }
  jobs = xcalloc (n, sizeof *jobs);
  for (i = 0; i < n; i++)
    {
      jobs[i].x = &x;
      jobs[i].d = descs[i];
      jobs[i].url = xasprintf ("https://%s/v2/%s/blobs/%s", ref->api_host, ref->path, descs[i]->digest);
      ef_buf_init (&jobs[i].errbody, ERRBODY_MAX);
      /* the same blob twice in one image: fetch it once */
      for (size_t k = 0; k < i; k++)
        if (strcmp (descs[k]->digest, descs[i]->digest) == 0)
          {
            jobs[i].state = JOB_DONE;
            remaining--;
            break;
          }
    }
  m = curl_multi_init ();
  curl_multi_setopt (m, CURLMOPT_MAX_HOST_CONNECTIONS, (long) c->o.jobs);

  while (remaining > 0)
    {
      int64_t now = ef_now_ms (), wait = 1000;
      struct CURLMsg *msg;
      int left;

      if (c->o.cancel && *c->o.cancel)
        {
          rc = ef_err_set (err, EF_NET, "interrupted");
          goto out;
        }
      for (i = 0; i < n && active < c->o.jobs; i++)
        {
          struct job *j = &jobs[i];
          if (j->state != JOB_QUEUED)
            continue;
          if (j->not_before > now)
            {
              if (j->not_before - now < wait)
                wait = j->not_before - now;
              continue;
            }
          rc = job_prepare (j, err);
          if (rc < 0)
            goto out;
          if (rc == 1)
            {
              j->state = JOB_DONE;
              remaining--;
              report (&x, false);
              continue;
            }
          if (rc == 2)
            {
              j->not_before = now + 250; /* another edgefetch is on it */
              if (wait > 250)
                wait = 250;
              continue;
            }
          j->state = JOB_RUNNING;
          curl_multi_add_handle (m, j->e);
          active++;
        }
      rc = 0;
      if (remaining == 0)
        break;
      curl_multi_perform (m, &running);
      while ((msg = curl_multi_info_read (m, &left)) != NULL)
        {
          struct job *j;
          if (msg->msg != CURLMSG_DONE)
            continue;
          curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &j);
          curl_multi_remove_handle (m, j->e);
          active--;
          rc = job_finish (j, msg->data.result, err);
          if (rc < 0)
            goto out;
          if (rc == 0)
            {
              j->state = JOB_DONE;
              remaining--;
              reg_ingest_free (j->ing);
              j->ing = NULL;
              report (&x, false);
            }
          else
            j->state = JOB_QUEUED;
          rc = 0;
        }
      if (remaining > 0 && active > 0)
        curl_multi_poll (m, NULL, 0, (int) (wait > 0 ? wait : 1), NULL);
      else if (remaining > 0)
        sleep_ms (wait > 0 ? wait : 1);
    }
  report (&x, true);
out:
  for (i = 0; jobs && i < n; i++)
    {
      if (jobs[i].state == JOB_RUNNING)
        curl_multi_remove_handle (m, jobs[i].e);
      if (jobs[i].e)
        curl_easy_cleanup (jobs[i].e);
      reg_ingest_free (jobs[i].ing); /* partial bytes stay for a resume */
      ef_buf_dispose (&jobs[i].errbody);
      ef_err_free (jobs[i].werr);
      free (jobs[i].url);
    }
  free (jobs);
  if (m)
    curl_multi_cleanup (m);
  free (x.scope);
  return rc;
}
