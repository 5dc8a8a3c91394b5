/* exchange.c: node-authenticated JSON over libcurl, TLS with the system
 * CAs plus HZN_MGMT_HUB_CERT_PATH, timeouts as anax sets them. */
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "../common/util.h"
#include "exchange.h"

#define BODY_MAX (8u << 20)
#define ATTEMPTS 3

struct exchange
{
  CURL *e;
  char *base;
  char *user; /* org/nodeid */
  char *token;
  char *hub_cert;
  long timeout;
  volatile int *cancel;
};

static CURLcode
add_hub_cert (CURL *e, void *sslctx, void *userdata)
{
  (void) e;
  return ef_store_add_pem (SSL_CTX_get_cert_store ((SSL_CTX *) sslctx), userdata) > 0 ? CURLE_OK
                                                                                   : CURLE_SSL_CACERT_BADFILE;
}

int
exchange_new (exchange **out, const struct agent_config *c, volatile int *cancel, ef_err **err)
{
  exchange *ex;

  *out = NULL;
  if (strncmp (c->exchange_url, "https://", 8) != 0)
    return ef_err_set (err, EF_USAGE, "HZN_EXCHANGE_URL must be an https URL");
  curl_global_init (CURL_GLOBAL_DEFAULT);
  ex = xcalloc (1, sizeof *ex);
  ex->e = curl_easy_init ();
  ex->base = xstrdup (c->exchange_url);
  ex->user = xasprintf ("%s/%s", c->org, c->node_id);
  ex->token = xstrdup (c->node_token);
  ex->hub_cert = c->hub_cert ? xstrdup (c->hub_cert) : NULL;
  ex->cancel = cancel;
  ex->timeout = c->exchange_timeout > 0 ? c->exchange_timeout : 30;
  *out = ex;
  return 0;
}

void
exchange_free (exchange *ex)
{
  if (ex == NULL)
    return;
  curl_easy_cleanup (ex->e);
  free (ex->base);
  free (ex->user);
  ef_free_secret (ex->token);
  free (ex->hub_cert);
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

/* One request with retries; *body gets the response. */
static int
request (exchange *ex, const char *path, const char *post, long *status, struct ef_buf *body, ef_err **err)
{
  cleanup_free char *url = xasprintf ("%s%s", ex->base, path);
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *h = NULL;
  CURLcode res = CURLE_OK;
  int attempt;

  h = curl_slist_append (h, "Accept: application/json");
  if (post)
    h = curl_slist_append (h, "Content-Type: application/json");
  for (attempt = 1; attempt <= ATTEMPTS; attempt++)
    {
      ef_buf_dispose (body);
      ef_buf_init (body, BODY_MAX);
      ef_buf_append (body, "", 0);
      curl_easy_reset (ex->e);
      curl_easy_setopt (ex->e, CURLOPT_URL, url);
      curl_easy_setopt (ex->e, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt (ex->e, CURLOPT_PROTOCOLS_STR, "https");
      curl_easy_setopt (ex->e, CURLOPT_FOLLOWLOCATION, 0L);
      curl_easy_setopt (ex->e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
      curl_easy_setopt (ex->e, CURLOPT_CONNECTTIMEOUT, ex->timeout < 20 ? ex->timeout : 20L);
      curl_easy_setopt (ex->e, CURLOPT_TIMEOUT, ex->timeout);
      curl_easy_setopt (ex->e, CURLOPT_USERAGENT, "edgefetch/" EF_VERSION);
      curl_easy_setopt (ex->e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
      curl_easy_setopt (ex->e, CURLOPT_USERNAME, ex->user);
      curl_easy_setopt (ex->e, CURLOPT_PASSWORD, ex->token);
      curl_easy_setopt (ex->e, CURLOPT_HTTPHEADER, h);
      curl_easy_setopt (ex->e, CURLOPT_WRITEFUNCTION, ef_buf_write_cb);
      curl_easy_setopt (ex->e, CURLOPT_WRITEDATA, body);
      curl_easy_setopt (ex->e, CURLOPT_ERRORBUFFER, errbuf);
      if (ex->hub_cert)
        {
          const char *sys = curl_version_info (CURLVERSION_NOW)->cainfo;
          /* a machine without ca-certificates trusts the hub CA alone */
          if (sys == NULL || access (sys, R_OK) != 0)
            {
              curl_easy_setopt (ex->e, CURLOPT_CAINFO, NULL);
              curl_easy_setopt (ex->e, CURLOPT_CAPATH, NULL);
            }
          curl_easy_setopt (ex->e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
          curl_easy_setopt (ex->e, CURLOPT_SSL_CTX_FUNCTION, add_hub_cert);
          curl_easy_setopt (ex->e, CURLOPT_SSL_CTX_DATA, ex->hub_cert);
        }
      if (post)
        curl_easy_setopt (ex->e, CURLOPT_POSTFIELDS, post);
      errbuf[0] = '\0';
      res = curl_easy_perform (ex->e);
      *status = 0;
      curl_easy_getinfo (ex->e, CURLINFO_RESPONSE_CODE, status);
      if (res == CURLE_OK && !(*status >= 500 || *status == 408 || *status == 429))
        break;
      if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE)
        break;
      if (attempt < ATTEMPTS && !(ex->cancel && *ex->cancel))
        {
          struct timespec ts = { attempt, 0 };
          nanosleep (&ts, NULL);
        }
    }
  curl_slist_free_all (h);
  if (res != CURLE_OK)
    {
      if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE)
        return ef_err_set (err, EF_NET, "exchange TLS: %s (set HZN_MGMT_HUB_CERT_PATH?)",
                           errbuf[0] ? errbuf : curl_easy_strerror (res));
      return ef_err_set (err, EF_NET, "exchange: %s", errbuf[0] ? errbuf : curl_easy_strerror (res));
    }
  if (*status == 401 || *status == 403)
    return ef_err_set (err, EF_AUTH, "exchange refused the node's credentials (%ld)", *status);
  if (*status >= 500 || *status == 408 || *status == 429)
    return ef_err_set (err, EF_NET, "exchange answered HTTP %ld", *status);
  return 0;
}

static int
parse (struct ef_buf *b, json_t **out, ef_err **err)
{
  *out = json_loadb (b->data, b->len, 0, NULL);
  if (*out == NULL || !(json_is_object (*out) || json_is_array (*out)))
    {
      json_decref (*out);
      *out = NULL;
      return ef_err_set (err, EF_NET, "exchange sent invalid JSON");
    }
  return 0;
}

/* GET path; 404 is EF_NOTFOUND ("absent"), anything but 200 EF_NET. */
static int
get_body (exchange *ex, const char *path, struct ef_buf *b, ef_err **err)
{
  long status;
  int rc = request (ex, path, NULL, &status, b, err);

  if (rc == 0 && status == 404)
    rc = ef_err_set (err, EF_NOTFOUND, "%s: not found", path);
  else if (rc == 0 && status != 200)
    rc = ef_err_set (err, EF_NET, "%s: HTTP %ld", path, status);
  return rc;
}

int
exchange_get (exchange *ex, const char *path, json_t **out, ef_err **err)
{
  struct ef_buf b = { 0 };
  int rc;

  *out = NULL;
  rc = get_body (ex, path, &b, err);
  if (rc == 0)
    rc = parse (&b, out, err);
  ef_buf_dispose (&b);
  return rc;
}

int
exchange_get_text (exchange *ex, const char *path, char **out, size_t *len, ef_err **err)
{
  struct ef_buf b = { 0 };
  int rc;

  *out = NULL;
  rc = get_body (ex, path, &b, err);
  if (rc == 0)
    {
      *out = b.data;
      *len = b.len;
      return 0;
    }
  ef_buf_dispose (&b);
  return rc;
}

int
exchange_post (exchange *ex, const char *path, json_t *body, long want, json_t **out, ef_err **err)
{
  cleanup_free char *text = json_dumps (body, JSON_COMPACT);
  struct ef_buf b = { 0 };
  long status;
  int rc;

  *out = NULL;
  rc = request (ex, path, text, &status, &b, err);
  if (rc == 0 && status == 404)
    rc = ef_err_set (err, EF_NOTFOUND, "%s: not found", path);
  else if (rc == 0 && status != want)
    rc = ef_err_set (err, EF_NET, "%s: HTTP %ld", path, status);
  if (rc == 0)
    rc = parse (&b, out, err);
  ef_buf_dispose (&b);
  return rc;
}
