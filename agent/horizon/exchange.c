/* exchange.c: see exchange.h. */
#include <string.h>

#include <curl/curl.h>

#include "../../common/json.h"
#include "../../common/util.h"
#include "../../registry/http.h"
#include "../../registry/tls.h"
#include "exchange.h"

#define BODY_MAX (8u << 20)
#define ATTEMPTS 3
#define RETRY_BASE_MS 1000

struct exchange
{
  CURL *e;
  char *base;
  char *user; /* org/nodeid */
  char *token;
  reg_trust *trust;
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
  if (strncmp (c->exchange_url, "https://", 8) != 0)
    return ef_err_set (err, EF_USAGE, "HZN_EXCHANGE_URL must be an https URL");
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
  ex->base = xstrdup (c->exchange_url);
  ex->user = xasprintf ("%s/%s", c->org, c->node_id);
  ex->token = xstrdup (c->node_token);
  ex->timeout = c->exchange_timeout > 0 ? c->exchange_timeout : 30;
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
  reg_trust_free (ex->trust);
  free (ex->base);
  free (ex->user);
  ef_free_secret (ex->token);
  free (ex);
  curl_global_cleanup ();
}

char *
exchange_escape (exchange *ex, const char *s)
{
  char *x = curl_easy_escape (ex->e, s, 0);
  char *r = xstrdup (x ? x : "");
  curl_free (x);
  return r;
}

/* One request with the retry policy; r gets the response. */
static int
request (exchange *ex, const char *path, const char *post, struct http_resp *r, ef_err **err)
{
  cleanup_free char *url = xasprintf ("%s%s", ex->base, path);
  struct curl_slist *h = curl_slist_append (NULL, "Accept: application/json");
  CURLcode res;
  int rc = 0;

  if (post)
    h = curl_slist_append (h, "Content-Type: application/json");
  for (int attempt = 1;; attempt++)
    {
      http_setup (ex->e, url, 0);
      reg_trust_apply (ex->trust, ex->e);
      curl_easy_setopt (ex->e, CURLOPT_CONNECTTIMEOUT, ex->timeout < 20 ? ex->timeout : 20L);
      curl_easy_setopt (ex->e, CURLOPT_TIMEOUT, ex->timeout);
      curl_easy_setopt (ex->e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
      curl_easy_setopt (ex->e, CURLOPT_USERNAME, ex->user);
      curl_easy_setopt (ex->e, CURLOPT_PASSWORD, ex->token);
      curl_easy_setopt (ex->e, CURLOPT_HTTPHEADER, h);
      if (post)
        curl_easy_setopt (ex->e, CURLOPT_POSTFIELDS, post);
      res = http_perform (ex->e, r);
      if (r->too_big || !http_again (&ex->retry, ex->e, attempt, res, r->status))
        break;
    }
  curl_slist_free_all (h);
  if (r->too_big)
    rc = ef_err_set (err, EF_NET, "exchange sent more than %u MiB", BODY_MAX >> 20);
  else if (res != CURLE_OK)
    {
      rc = http_error (err, res, r->errbuf, "set HZN_MGMT_HUB_CERT_PATH?");
      ef_err_wrap (err, "exchange");
    }
  else if (r->status == 401 || r->status == 403)
    rc = ef_err_set (err, EF_AUTH, "exchange refused the node's credentials (%ld)", r->status);
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
  if (rc == 0 && r->status == 404)
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
