/* client.h: a registry client.  It holds the session (credentials, trust
 * and tokens per host, session.h) and the retry policy, and fetches the
 * documents: manifests by tag or digest, and referrers indexes.  Blobs
 * go through the transfer engine (blobs.h). */
#ifndef EF_CLIENT_H
#define EF_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/err.h"
#include "http.h"
#include "../manifest.h"
#include "../ref.h"
#include "session.h"
#include "../store/store.h"

/* Blob transfers at first (more while they carry more): the connections
 * a host's first request opens beside itself. */
#define REG_START_CONNS 8

struct reg_client_opts
{
  struct reg_session_opts session;
  int jobs;                            /* connections for blobs at most (default 16), REG_START_CONNS at first */
  long low_speed_limit;                /* bytes/s under which ... */
  long low_speed_time;                 /* ... for this many seconds a transfer counts as stalled */
  int max_attempts;                    /* per request, without progress (default 6) */
  long retry_base_ms;                  /* first backoff (default 500) */
  const volatile sig_atomic_t *cancel; /* when it turns non-zero, stop (EF_NET, "interrupted") */
  int64_t limit_rate;                  /* bytes/s for all blob transfers of a pull together; 0: no cap */
  /* when it says no, no blob download starts and those running stop,
   * their bytes kept (EF_NET, "outside the download window") */
  bool (*may_fetch) (void *ud);
  void *may_fetch_ud;
  /* a directory on disk (the store's ingest/) where a manifest's body
   * waits while its shape is checked, so that a hostile 4 MiB one never
   * sits in memory beside its tree; NULL: in memory */
  const char *spool_dir;
};

typedef struct reg_client reg_client;

int reg_client_new (reg_client **out, const struct reg_client_opts *o, ef_err **err);
void reg_client_free (reg_client *c);

/* What the transfer engine shares with the client. */
reg_session *reg_client_session (reg_client *c);
struct http_retry *reg_client_retry (reg_client *c);
const struct reg_client_opts *reg_client_opts (const reg_client *c);
/* Where ref's registry is reached: its hosts.toml mirrors, then itself
 * (routes.h); the client's, made on first use. */
struct reg_routes;
int reg_client_routes (reg_client *c, const struct reg_ref *ref, struct reg_routes **out, ef_err **err);
/* A new pull: mirrors skipped in the last one may be tried again. */
void reg_client_revive_mirrors (reg_client *c);
/* "repository:<path>:pull"; caller frees. */
char *reg_client_scope (const struct reg_ref *ref);
/* The first code and message of a registry's JSON error body ("" when
 * there is none), the code reduced to [A-Z_]. */
void reg_client_error_body (const struct ef_buf *body, char *code, size_t clen, char *msg, size_t mlen);

struct reg_manifest_resp
{
  char *body;
  size_t len;
  char *content_type;
  char digest[72]; /* sha256 of body, verified against what was asked */
  char source[256]; /* the host it came from */
};
void reg_manifest_resp_dispose (struct reg_manifest_resp *r);

/* GET a manifest by tag or digest ("sha256:..."), with the Accept header
 * of every type we parse.  The body's digest is checked against
 * Docker-Content-Digest and, when asked by digest, against that digest. */
int reg_client_get_manifest (reg_client *c, const struct reg_ref *ref, const char *tag_or_digest,
                             struct reg_manifest_resp *out, ef_err **err);

/* Bytes [from, to] of blob digest, each chunk given to fn as it comes,
 * from the first route that serves it.  A registry that answers the
 * Range with anything but exactly that range (200, 416, 501, another
 * Content-Range) is remembered: every later range request of this
 * client fails at once (EF_NET), and reg_client_ranges_refused says so. */
int reg_client_get_range (reg_client *c, const struct reg_ref *ref, const char *digest, int64_t from, int64_t to,
                          reg_chunk_fn fn, void *payload, ef_err **err);
bool reg_client_ranges_refused (const reg_client *c);
/* The host that answered the last range request (NULL before one did). */
const char *reg_client_range_source (const reg_client *c);

/* HEAD of a blob at the registry itself: its length. */
int reg_client_blob_size (reg_client *c, const struct reg_ref *ref, const char *digest, int64_t *size, ef_err **err);

/* GET /v2/<name>/referrers/<digest>?artifactType=...: an OCI index of the
 * manifests that name digest as their subject.  EF_NOTFOUND where the
 * registry has no referrers API. */
int reg_client_get_referrers (reg_client *c, const struct reg_ref *ref, const char *digest, const char *artifact_type,
                              struct reg_manifest_resp *out, ef_err **err);

#endif
