/* exchange.c: see exchange.h. */
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "../../common/json.h"
#include "../../common/util.h"
#include "../../registry/remote/http.h"
#include "../../registry/remote/tls.h"
#include "exchange.h"

#define BODY_MAX (8u << 20)
#define ATTEMPTS 3
#define RETRY_BASE_MS 1000
#define MAX_REDIRECTS 5

struct exchange
{
  CURL *e;
  char *base;
  char *user; /* org/nodeid */
  char *token;
  reg_trust *trust;
  bool owns_trust; /* false for a handle made by exchange_dup */
  bool plain;      /* http:// (the all-in-1 hub's default) */
  long timeout;
  struct http_retry retry;
};

int
exchange_new (exchange **out, const struct agent_config *c, const volatile sig_atomic_t *cancel, ef_err **err)
{
  const char *cas[2] = { c->hub_cert, NULL };
  exchange *ex;
  int rc;

  *out = NULL;
  if (strncasecmp (c->exchange_url, "https://", 8) != 0 && strncasecmp (c->exchange_url, "http://", 7) != 0)
    return ef_err_set (err, EF_USAGE, "HZN_EXCHANGE_URL must be an http:// or https:// URL");
  curl_global_init (CURL_GLOBAL_DEFAULT);
  ex = xcalloc (1, sizeof *ex);
  rc = reg_trust_new (&ex->trust, NULL, NULL, cas, err);
  if (rc == 0 && (ex->e = curl_easy_init ()) == NULL)
    rc = ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  if (rc < 0)
    {
      ef_err_wrap (err, "HZN_MGMT_HUB_CERT_PATH");
      exchange_free (ex);
      return rc;
    }
  ex->owns_trust = true;
  ex->base = xstrdup (c->exchange_url);
  ex->plain = strncasecmp (c->exchange_url, "http://", 7) == 0;
  ex->user = xasprintf ("%s/%s", c->org, c->node_id);
  ex->token = xstrdup (c->node_token);
  ex->timeout = c->exchange_timeout > 0 ? c->exchange_timeout : 30;
  http_retry_init (&ex->retry, ATTEMPTS, RETRY_BASE_MS, cancel);
  *out = ex;
  return 0;
}

int
exchange_dup (exchange **out, const exchange *from, const volatile sig_atomic_t *cancel, ef_err **err)
{
  exchange *ex = xcalloc (1, sizeof *ex);

  *out = NULL;
  curl_global_init (CURL_GLOBAL_DEFAULT);
  if ((ex->e = curl_easy_init ()) == NULL)
    {
      free (ex);
      curl_global_cleanup ();
      return ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
    }
  ex->trust = from->trust; /* an X509_STORE is safe to share between threads */
  ex->plain = from->plain;
  ex->base = xstrdup (from->base);
  ex->user = xstrdup (from->user);
  ex->token = xstrdup (from->token);
  ex->timeout = from->timeout;
  http_retry_init (&ex->retry, ATTEMPTS, RETRY_BASE_MS, cancel);
  *out = ex;
  return 0;
}

void
exchange_free (exchange *ex)
{
  if (ex == NULL)
    return;
  if (ex->e)
    curl_easy_cleanup (ex->e);
  if (ex->owns_trust)
    reg_trust_free (ex->trust);
  free (ex->base);
  free (ex->user);
  ef_free_secret (ex->token);
  free (ex);
  curl_global_cleanup ();
}

void
exchange_rest (exchange *ex)
{
  CURL *fresh = curl_easy_init ();

  if (fresh == NULL)
    return; /* keep the old one: it still works */
  curl_easy_cleanup (ex->e);
  ex->e = fresh;
}

bool
exchange_plain (const exchange *ex)
{
  return ex->plain;
}

char *
exchange_escape (exchange *ex, const char *s)
{
  char *x = curl_easy_escape (ex->e, s, 0);
  char *r = xstrdup (x ? x : "");
  curl_free (x);
  return r;
}

/* url's scheme and host name into *scheme and *host (curl_free them),
 * or false when it has none. */
static bool
url_parts (const char *url, char **scheme, char **host)
{
  CURLU *u = curl_url ();
  bool ok = u && curl_url_set (u, CURLUPART_URL, url, 0) == CURLUE_OK
            && curl_url_get (u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK
            && curl_url_get (u, CURLUPART_HOST, host, 0) == CURLUE_OK;

  curl_url_cleanup (u);
  return ok;
}

/* A redirect from `from` to `to` keeps the node's credentials only when it
 * stays on the same host name (any port, as Go's client that anax uses
 * keeps them) and does not go from https to http; anything else is not
 * followed at all. */
static int
redirect_ok (const char *from, const char *to, ef_err **err)
{
  char *fs = NULL, *fh = NULL, *ts = NULL, *th = NULL;
  int rc = 0;

  if (!url_parts (from, &fs, &fh) || !url_parts (to, &ts, &th))
    rc = ef_err_set (err, EF_NET, "exchange redirected to an unusable URL");
  else if (strcasecmp (fh, th) != 0)
    rc = ef_err_set (err, EF_NET,
                     "exchange redirected to another host (%.200s): not followed, the node's credentials stay with "
                     "%.200s (set HZN_EXCHANGE_URL to the new address)",
                     th, fh);
  else if (strcasecmp (fs, "https") == 0 && strcasecmp (ts, "https") != 0)
    rc = ef_err_set (err, EF_NET, "exchange redirected from https to %.16s: refused", ts);
  else if (strcasecmp (ts, "https") != 0 && strcasecmp (ts, "http") != 0)
    rc = ef_err_set (err, EF_NET, "exchange redirected to a %.16s URL: refused", ts);
  curl_free (fs);
  curl_free (fh);
  curl_free (ts);
  curl_free (th);
  return rc;
}

static bool
is_redirect (long status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* An answer under way is abandoned once the caller is cancelled. */
static int
on_progress (void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void) dltotal;
  (void) dlnow;
  (void) ultotal;
  (void) ulnow;
  return http_cancelled (ud) ? 1 : 0;
}

/* One request to url with the retry policy; r gets the response. */
static CURLcode
attempts (exchange *ex, const char *url, const char *post, struct curl_slist *h, struct http_resp *r)
{
  CURLcode res;

  for (int attempt = 1;; attempt++)
    {
      http_setup (ex->e, url, ex->plain ? HTTP_PLAIN : 0);
      reg_trust_apply (ex->trust, ex->e);
      curl_easy_setopt (ex->e, CURLOPT_CONNECTTIMEOUT, ex->timeout < 20 ? ex->timeout : 20L);
      curl_easy_setopt (ex->e, CURLOPT_TIMEOUT, ex->timeout);
      curl_easy_setopt (ex->e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
      curl_easy_setopt (ex->e, CURLOPT_USERNAME, ex->user);
      curl_easy_setopt (ex->e, CURLOPT_PASSWORD, ex->token);
      curl_easy_setopt (ex->e, CURLOPT_HTTPHEADER, h);
      if (post)
        curl_easy_setopt (ex->e, CURLOPT_POSTFIELDS, post);
      curl_easy_setopt (ex->e, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt (ex->e, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt (ex->e, CURLOPT_XFERINFODATA, &ex->retry);
      res = http_perform (ex->e, r);
      if (r->too_big || !http_again (&ex->retry, ex->e, attempt, res, r->status))
        return res;
    }
}

/* The request, following at most MAX_REDIRECTS redirects (an ingress that
 * moved the path, http -> https on the same host): 307 and 308 keep a
 * POST as it is, 301, 302 and 303 make it a GET, as Go's client does. */
static int
request (exchange *ex, const char *path, const char *post, struct http_resp *r, ef_err **err)
{
  cleanup_free char *url = xasprintf ("%s%s", ex->base, path);
  struct curl_slist *h = curl_slist_append (NULL, "Accept: application/json");
  CURLcode res;
  int rc = 0, hops = 0;

  if (post)
    h = curl_slist_append (h, "Content-Type: application/json");
  for (;;)
    {
      char *loc = NULL;
      res = attempts (ex, url, post, h, r);
      if (res != CURLE_OK || r->too_big || !is_redirect (r->status))
        break;
      if (++hops > MAX_REDIRECTS)
        {
          rc = ef_err_set (err, EF_NET, "exchange: more than %d redirects", MAX_REDIRECTS);
          break;
        }
      if (curl_easy_getinfo (ex->e, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || loc == NULL)
        {
          rc = ef_err_set (err, EF_NET, "exchange answered HTTP %ld without a Location", r->status);
          break;
        }
      if ((rc = redirect_ok (url, loc, err)) < 0)
        break;
      if (r->status <= 303)
        post = NULL;
      free (url);
      url = xstrdup (loc);
    }
  curl_slist_free_all (h);
  if (rc < 0)
    return rc;
  if (r->too_big)
    rc = ef_err_set (err, EF_NET, "exchange sent more than %u MiB", BODY_MAX >> 20);
  else if (res != CURLE_OK)
    {
      rc = http_error (err, res, r->errbuf, "set HZN_MGMT_HUB_CERT_PATH?");
      ef_err_wrap (err, "exchange");
    }
  else if (r->status == 401)
    rc = ef_err_set (err, EF_AUTH,
                     "exchange refused the node's credentials (401): the node was deleted or its token changed");
  else if (r->status == 403)
    rc = ef_err_set (err, EF_AUTH, "exchange denied the node access (403)");
  else if (http_retryable (CURLE_OK, r->status))
    rc = ef_err_set (err, EF_NET, "exchange answered HTTP %ld", r->status);
  return rc;
}

static int
parse (const struct http_resp *r, const char *path, json_t **out, ef_err **err)
{
  const char *why = "is not a JSON object or array";

  *out = ef_json_parse (r->body.data, r->body.len, EF_JSON_BUDGET, &why);
  if (*out == NULL || !(json_is_object (*out) || json_is_array (*out)))
    {
      json_decref (*out);
      *out = NULL;
      return ef_err_set (err, EF_NET, "exchange: the answer to %s %s", path, why);
    }
  return 0;
}

/* path with want as the only good status; 404 is EF_NOTFOUND ("absent"). */
static int
call (exchange *ex, const char *path, const char *post, long want, struct http_resp *r, ef_err **err)
{
  int rc;

  http_resp_init (r, BODY_MAX);
  rc = request (ex, path, post, r, err);
  if (rc == 0 && r->status == 404 && strstr (r->body.data, "unrecognized route"))
    rc = ef_err_set (err, EF_USAGE, "%s: the exchange has no such route (is HZN_EXCHANGE_URL right? it ends in /v1)",
                     path);
  else if (rc == 0 && r->status == 404)
    rc = ef_err_set (err, EF_NOTFOUND, "%s: not found", path);
  else if (rc == 0 && r->status != want)
    rc = ef_err_set (err, EF_NET, "%s: HTTP %ld", path, r->status);
  return rc;
}

int
exchange_get (exchange *ex, const char *path, json_t **out, ef_err **err)
{
  struct http_resp r;
  int rc = call (ex, path, NULL, 200, &r, err);

  *out = NULL;
  if (rc == 0)
    rc = parse (&r, path, out, err);
  http_resp_dispose (&r);
  return rc;
}

int
exchange_get_text (exchange *ex, const char *path, char **out, size_t *len, ef_err **err)
{
  struct http_resp r;
  int rc = call (ex, path, NULL, 200, &r, err);

  *out = NULL;
  if (rc == 0)
    {
      *out = r.body.data;
      *len = r.body.len;
      return 0;
    }
  http_resp_dispose (&r);
  return rc;
}

int
exchange_post (exchange *ex, const char *path, json_t *body, long want, json_t **out, ef_err **err)
{
  cleanup_free char *text = json_dumps (body, JSON_COMPACT);
  struct http_resp r;
  int rc = call (ex, path, text, want, &r, err);

  *out = NULL;
  if (rc == 0)
    rc = parse (&r, path, out, err);
  http_resp_dispose (&r);
  return rc;
}
