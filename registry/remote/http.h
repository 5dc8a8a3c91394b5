/* http.h: the one way edgefetch speaks HTTP through libcurl.  Handle
 * defaults, the retry policy (backoff with jitter, Retry-After), the
 * redirect and credential rules, bounded bodies and the mapping of
 * transfer failures to errors live here; the registry client, the
 * exchange client and the runtime API all go through it. */
#ifndef EF_HTTP_H
#define EF_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "../../common/err.h"
#include "../../common/util.h"

#define HTTP_USER_AGENT "edgefetch/" EF_VERSION

/* When to try a request again, and how long to wait first. */
struct http_retry
{
  int max_attempts;                   /* attempts without progress before giving up */
  long base_ms;                       /* the first backoff; it doubles, up to 30 s */
  const volatile sig_atomic_t *cancel; /* non-zero: stop at the next chance */
  long stall_bytes, stall_secs;        /* under stall_bytes/s for stall_secs: a failed attempt */
  unsigned rand_state;                 /* jitter */
};
void http_retry_init (struct http_retry *r, int max_attempts, long base_ms, const volatile sig_atomic_t *cancel);
bool http_cancelled (const struct http_retry *r);
/* A transfer that stalls counts as failed (no total timeout: a slow link still finishes). */
void http_retry_stall (const struct http_retry *r, CURL *e);
/* Connection errors, stalls, 408, 429, 500, 502, 503 and 504. */
bool http_retryable (CURLcode res, long status);
/* The wait after failed attempt number attempt: base_ms * 2^(attempt-1)
 * plus up to half of it again, or Retry-After (at most 300 s). */
int64_t http_backoff_ms (struct http_retry *r, int attempt, long retry_after_s);
/* After attempt number attempt of e ended with (res, status): when it is
 * worth another and attempts remain, wait (honouring e's Retry-After)
 * and return true. */
bool http_again (struct http_retry *r, CURL *e, int attempt, CURLcode res, long status);

enum http_flags
{
  HTTP_FOLLOW = 1 << 0, /* follow redirects: https only, credentials stay with the first host */
  HTTP_PLAIN = 1 << 1,  /* the URL may be plain http (a mirror an operator named so); redirects stay https */
};

/* Is congestion control name one this kernel offers (EF_USAGE, naming
 * those it does, when not)? */
int http_congestion_offered (const char *name, ef_err **err);
/* Reset e for a request to url with what every request shares: https
 * only (redirects too), no signals, the user agent, peer and host
 * verification on, TLS 1.2 or later, a connect timeout, TCP keepalive.
 * Redirects are followed only with HTTP_FOLLOW, and then libcurl's
 * restricted auth keeps credentials from any other host. */
void http_setup (CURL *e, const char *url, unsigned flags);
/* Reset e for plain HTTP over a unix socket (a local runtime's API). */
void http_setup_unix (CURL *e, const char *socket_path, const char *path);

/* A response: the status and a body capped at max, in memory, or with
 * spool set (a file of the caller's), written there instead. */
struct http_resp
{
  long status;
  struct ef_buf body;
  int spool;      /* -1: the body goes to body; else this fd, from its start */
  size_t spooled; /* bytes written to spool */
  bool too_big;   /* the body went past max: the transfer was stopped */
  bool spool_failed;
  char errbuf[CURL_ERROR_SIZE];
};
void http_resp_init (struct http_resp *r, size_t max);
void http_resp_dispose (struct http_resp *r);
/* Perform e, collecting its body into r (reset first). */
CURLcode http_perform (CURL *e, struct http_resp *r);
/* Perform e as http_perform does (r with no spool), with n copies of it
 * in flight at once, taking their connections from share, their bodies
 * dropped: each leaves a connection in share's cache, its handshakes done,
 * for the transfers that follow (on a long round trip, seconds saved).
 * Returns e's result when e is done and the copies are, or have had as
 * long again as e took; those not done by then are let go. */
CURLcode http_perform_beside (CURL *e, CURLSH *share, struct http_resp *r, size_t n);
/* Value of the idx-th header called name of e's last response, or NULL. */
const char *http_header (CURL *e, const char *name, size_t idx);
/* EF_NET for a failed transfer, saying what failed; hint follows a TLS
 * verification failure ("is the CA in --ca-file?"). */
int http_error (ef_err **err, CURLcode res, const char *errbuf, const char *hint);

#endif
