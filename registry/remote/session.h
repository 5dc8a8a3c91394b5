/* session.h: who we are to each registry host.  For every host it keeps
 * the trust (tls.h), the challenge its /v2/ answered, the credentials
 * that are ours for it, and the tokens its realm issued, per scope.
 * Credentials go to the registry host, and to its token realm when the
 * realm passes auth_realm_check; nowhere else.  A mirror of hosts.toml is
 * a host of its own: it gets only credentials that name it, and none at
 * all over plain http or skip_verify. */
#ifndef EF_SESSION_H
#define EF_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "../../common/err.h"
#include "auth.h"
#include "hosts.h"
#include "http.h"

/* How long a mirror may take to accept a connection before the next host is tried. */
#define REG_MIRROR_CONNECT_MS 1000
#define REG_HOSTS_CA_MAX 8

/* Credentials for one registry host (from a Horizon service's dockauths). */
struct reg_host_creds
{
  const char *registry; /* host[:port]; Docker Hub's names all mean docker.io */
  const char *username;
  const char *secret;
};

struct reg_session_opts
{
  const char *creds;                       /* "user:password" for every registry, or NULL */
  const struct reg_host_creds *host_creds; /* tried before auth_file */
  size_t nhost_creds;
  const char *auth_file;         /* docker config.json, or NULL */
  const char *const *certs_dirs; /* NULL-terminated; DIR/<host[:port]>/{*.crt,*.cert,*.key} */
  const char *ca_file;           /* one more CA bundle for every host, or NULL */
  auth_resolve_fn resolve;       /* for the realm check; NULL: the system's resolver */
  const char *congestion;        /* TCP congestion control of every connection ("bbr"), or NULL: the system's */
  int warm;                      /* connections opened beside a host's first /v2/ (for the blobs), at most 16 */
};

typedef struct reg_session reg_session;
typedef struct reg_host reg_host;

/* What every connection's socket is set to (its congestion control);
 * for a caller that sets a socket up itself (CURLOPT_SOCKOPTFUNCTION). */
void reg_session_sockopt (const reg_session *s, curl_socket_t fd);

/* Checks what can be checked before any request: "user:password" has its
 * colon, the auth file can be read (EF_USAGE otherwise).  retry is the
 * caller's and must outlive the session. */
int reg_session_new (reg_session **out, const struct reg_session_opts *o, struct http_retry *retry, ef_err **err);
void reg_session_free (reg_session *s);

/* The host api_host ("host[:port]"), created on first use with its trust. */
int reg_session_host (reg_session *s, const char *api_host, reg_host **out, ef_err **err);
/* The host of a hosts.toml entry of the registry at api_host (the
 * entry's server with no host is the registry itself). */
int reg_session_endpoint (reg_session *s, const struct reg_endpoint *ep, const char *api_host, reg_host **out,
                          ef_err **err);
const char *const *reg_session_certs_dirs (const reg_session *s);
const char *reg_host_name (const reg_host *h);
bool reg_host_is_mirror (const reg_host *h);
/* The URL of h's API root followed by fmt ("/edge/app/blobs/sha256:..."),
 * with ?ns=NS for a mirror (containerd's way of naming the registry);
 * caller frees. */
char *reg_host_url (const reg_host *h, const char *ns, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
/* A new header list: first (or nothing), then hosts.toml's headers of h;
 * for a request that sets its own.  Caller frees it. */
struct curl_slist *reg_host_headers (const reg_host *h, const char *first);
/* Be ready to authorize requests for scope on h: /v2/ asked once for its
 * challenge, then credentials or a token for scope. */
int reg_session_authorize (reg_session *s, reg_host *h, const char *domain, const char *scope, ef_err **err);
/* The credentials that are ours for domain (reached at api_host), as a
 * request to it would use them; *out is NULL when there are none.  For
 * a runtime that must contact the registry itself (docker's digest
 * record): the pointer is the session's, valid while it lives. */
int reg_session_credentials (reg_session *s, const char *api_host, const char *domain,
                             const struct auth_creds **out, ef_err **err);
/* Set e up for url on h: http_setup with redirects, the stall rule, h's
 * trust, the credentials or token for scope (none for NULL), and the
 * session's cache of connections and TLS sessions (so e must be cleaned up
 * before the session is freed). */
void reg_session_prepare (reg_session *s, reg_host *h, CURL *e, const char *url, const char *scope);
/* After a 401 on an authorized request (e holds its challenge): take the
 * new challenge, drop the token and authorize again.  Once per request. */
int reg_session_reauth (reg_session *s, reg_host *h, CURL *e, const char *domain, const char *scope, ef_err **err);

#endif
