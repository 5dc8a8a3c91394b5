/* http.c: see http.h. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "http.h"

void
http_retry_init (struct http_retry *r, int max_attempts, long base_ms, const volatile sig_atomic_t *cancel)
{
  r->max_attempts = max_attempts > 0 ? max_attempts : 6;
  r->base_ms = base_ms > 0 ? base_ms : 500;
  r->cancel = cancel;
  r->stall_bytes = 1024;
  r->stall_secs = 30;
  r->rand_state = (unsigned) (ef_now_ms () ^ getpid ());
}

bool
http_cancelled (const struct http_retry *r)
{
  return r->cancel && *r->cancel;
}

void
http_retry_stall (const struct http_retry *r, CURL *e)
{
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, r->stall_bytes);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, r->stall_secs);
}

bool
http_retryable (CURLcode res, long status)
{
  switch (res)
    {
    case CURLE_OK:
      return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
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

int64_t
http_backoff_ms (struct http_retry *r, int attempt, long retry_after_s)
{
  int64_t ms;

  if (retry_after_s > 0)
    return (int64_t) (retry_after_s > 300 ? 300 : retry_after_s) * 1000;
  ms = (int64_t) r->base_ms << (attempt < 1 ? 0 : attempt > 7 ? 6 : attempt - 1);
  if (ms > 30000)
    ms = 30000;
  return ms + (int64_t) (rand_r (&r->rand_state) % (unsigned) (ms / 2 + 1));
}

/* Sleep ms, in slices, stopping early when cancelled. */
static void
nap (const struct http_retry *r, int64_t ms)
{
  int64_t end = ef_now_ms () + ms;

  while (!http_cancelled (r))
    {
      int64_t left = end - ef_now_ms ();
      struct timespec ts;
      if (left <= 0)
        break;
      if (left > 200)
        left = 200;
      ts.tv_sec = 0;
      ts.tv_nsec = (long) left * 1000000;
      nanosleep (&ts, NULL);
    }
}

bool
http_again (struct http_retry *r, CURL *e, int attempt, CURLcode res, long status)
{
  curl_off_t ra = 0;

  if (attempt >= r->max_attempts || http_cancelled (r) || !http_retryable (res, status))
    return false;
  if (res == CURLE_OK)
    curl_easy_getinfo (e, CURLINFO_RETRY_AFTER, &ra);
  nap (r, http_backoff_ms (r, attempt, (long) ra));
  return !http_cancelled (r);
}

#define CC_OFFERED "/proc/sys/net/ipv4/tcp_available_congestion_control"

int
http_congestion_offered (const char *name, ef_err **err)
{
  cleanup_free char *list = NULL;
  size_t len, n = strlen (name);

  if (ef_read_file (CC_OFFERED, 4096, &list, &len) < 0)
    return ef_err_set (err, EF_USAGE, "TCP congestion control '%s' asked for, and this kernel names none (%s)", name,
                       CC_OFFERED);
  for (char *p = list; (p = strstr (p, name)) != NULL; p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
      return 0;
  list[strcspn (list, "\n")] = '\0';
  return ef_err_set (err, EF_USAGE, "TCP congestion control '%s' is not one this kernel offers (%s)", name, list);
}

void
http_setup (CURL *e, const char *url, unsigned flags)
{
  curl_easy_reset (e);
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, (flags & HTTP_PLAIN) ? "http,https" : "https");
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, (flags & HTTP_FOLLOW) ? 1L : 0L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt (e, CURLOPT_UNRESTRICTED_AUTH, 0L); /* credentials stay with the first host */
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt (e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
}

void
http_setup_unix (CURL *e, const char *socket_path, const char *path)
{
  cleanup_free char *url = xasprintf ("http://localhost%s", path);

  curl_easy_reset (e);
  curl_easy_setopt (e, CURLOPT_UNIX_SOCKET_PATH, socket_path);
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 10L);
}

void
http_resp_init (struct http_resp *r, size_t max)
{
  memset (r, 0, sizeof *r);
  r->spool = -1;
  ef_buf_init (&r->body, max);
  ef_buf_append (&r->body, "", 0);
}

void
http_resp_dispose (struct http_resp *r)
{
  ef_buf_dispose (&r->body);
}

static size_t
collect (char *p, size_t size, size_t n, void *ud)
{
  struct http_resp *r = ud;
  size_t len = size * n;

  if (r->spool >= 0)
    {
      if (len > r->body.max - r->spooled)
        {
          r->too_big = true;
          return 0;
        }
      if (ef_write_all (r->spool, p, len) < 0)
        {
          r->spool_failed = true;
          return 0;
        }
      r->spooled += len;
      return len;
    }
  if (ef_buf_append (&r->body, p, len) < 0)
    {
      r->too_big = true;
      return 0;
    }
  return len;
}

/* Reset r and point e's body and error text at it. */
static void
resp_begin (CURL *e, struct http_resp *r)
{
  r->body.len = 0;
  r->body.data[0] = '\0';
  r->too_big = r->spool_failed = false;
  if (r->spool >= 0)
    {
      /* a retry starts the file over */
      r->spooled = 0;
      if (ftruncate (r->spool, 0) < 0 || lseek (r->spool, 0, SEEK_SET) < 0)
        r->spool_failed = true;
    }
  r->status = 0;
  r->errbuf[0] = '\0';
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, r->errbuf);
}

static CURLcode
resp_end (CURL *e, struct http_resp *r, CURLcode res)
{
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &r->status);
  return res;
}

CURLcode
http_perform (CURL *e, struct http_resp *r)
{
  resp_begin (e, r);
  return resp_end (e, r, curl_easy_perform (e));
}

#define BESIDE_MAX 16
#define BESIDE_BODY_MAX (64 * 1024)

static size_t
drop (char *p, size_t size, size_t n, void *ud)
{
  size_t *seen = ud;
  (void) p;
  *seen += size * n;
  return *seen > BESIDE_BODY_MAX ? 0 : size * n;
}

CURLcode
http_perform_beside (CURL *e, CURLSH *share, struct http_resp *r, size_t n)
{
  CURLM *m = n > 0 && r->spool < 0 ? curl_multi_init () : NULL;
  CURL *b[BESIDE_MAX];
  size_t seen[BESIDE_MAX] = { 0 }, nb = 0, left;
  int64_t t0 = ef_now_ms (), until = INT64_MAX;
  CURLcode res = CURLE_OUT_OF_MEMORY;
  struct CURLMsg *msg;
  int running, queued;

  if (m == NULL)
    return http_perform (e, r);
  resp_begin (e, r);
  curl_multi_add_handle (m, e);
  while (nb < n && nb < BESIDE_MAX && (b[nb] = curl_easy_duphandle (e)) != NULL)
    {
      curl_easy_setopt (b[nb], CURLOPT_SHARE, share);
      curl_easy_setopt (b[nb], CURLOPT_ERRORBUFFER, NULL);
      curl_easy_setopt (b[nb], CURLOPT_WRITEFUNCTION, drop);
      curl_easy_setopt (b[nb], CURLOPT_WRITEDATA, &seen[nb]);
      curl_multi_add_handle (m, b[nb++]);
    }
  for (left = 1 + nb; left > 0 && ef_now_ms () < until;)
    {
      curl_multi_perform (m, &running);
      while ((msg = curl_multi_info_read (m, &queued)) != NULL)
        {
          if (msg->msg != CURLMSG_DONE)
            continue;
          left--;
          if (msg->easy_handle == e)
            {
              res = msg->data.result;
              until = t0 + 2 * (ef_now_ms () - t0);
            }
        }
      if (left > 0)
        curl_multi_poll (m, NULL, 0, 100, NULL);
    }
  while (nb > 0)
    {
      curl_multi_remove_handle (m, b[--nb]);
      curl_easy_cleanup (b[nb]);
    }
  curl_multi_remove_handle (m, e);
  curl_multi_cleanup (m);
  return resp_end (e, r, res);
}

const char *
http_header (CURL *e, const char *name, size_t idx)
{
  struct curl_header *hd;

  if (curl_easy_header (e, name, idx, CURLH_HEADER, -1, &hd) != CURLHE_OK)
    return NULL;
  return hd->value;
}

int
http_error (ef_err **err, CURLcode res, const char *errbuf, const char *hint)
{
  const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror (res);

  switch (res)
    {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return ef_err_set (err, EF_NET, "TLS: %s%s%s%s", detail, hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
    case CURLE_UNSUPPORTED_PROTOCOL:
      return ef_err_set (err, EF_NET, "refused to follow a redirect to a non-https URL");
    case CURLE_TOO_MANY_REDIRECTS:
      return ef_err_set (err, EF_NET, "too many redirects");
    case CURLE_OUT_OF_MEMORY:
      /* what libcurl says of a response header past its 100 KiB limit */
      return ef_err_set (err, EF_NET, "the server sent a response header too large to accept (libcurl's limit "
                                      "is 100 KiB)");
    default:
      return ef_err_set (err, EF_NET, "%s", detail);
    }
}
