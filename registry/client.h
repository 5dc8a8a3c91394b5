/* client.h: a registry client: TLS per host, authentication (Basic and
 * Bearer tokens, cached per host and scope), manifests, and parallel,
 * resumable blob transfers into the store. */
#ifndef EF_CLIENT_H
#define EF_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "manifest.h"
#include "ref.h"
#include "store.h"

/* Credentials for one registry host (from a Horizon service's dockauths). */
struct reg_host_creds
{
  const char *registry; /* host[:port]; "docker.io" matches any Docker Hub name */
  const char *username;
  const char *secret;
};

struct reg_client_opts
{
  const char *creds;              /* "user:password" for every registry, or NULL */
  const struct reg_host_creds *host_creds; /* tried before auth_file */
  size_t nhost_creds;
  const char *auth_file;          /* docker config.json, or NULL */
  const char *const *certs_dirs;  /* NULL-terminated; DIR/<host[:port]>/{*.crt,*.cert,*.key} */
  const char *ca_file;            /* one more CA bundle for every host, or NULL */
  int jobs;                       /* parallel blob transfers (default 4) */
  long low_speed_limit;           /* bytes/s under which ... */
  long low_speed_time;            /* ... for this many seconds a transfer counts as stalled */
  int max_attempts;               /* per request, without progress (default 6) */
  long retry_base_ms;             /* first backoff (default 500) */
  volatile int *cancel;           /* when it turns non-zero, stop (EF_NET, "interrupted") */
};

typedef struct reg_client reg_client;

int reg_client_new (reg_client **out, const struct reg_client_opts *o, ef_err **err);
void reg_client_free (reg_client *c);

struct reg_manifest_resp
{
  char *body;
  size_t len;
  char *content_type;
  char digest[72]; /* sha256 of body, verified against what was asked */
};
void reg_manifest_resp_dispose (struct reg_manifest_resp *r);

/* GET a manifest by tag or digest ("sha256:..."), with the Accept header
 * of every type we parse.  The body's digest is checked against
 * Docker-Content-Digest and, when asked by digest, against that digest. */
int reg_client_get_manifest (reg_client *c, const struct reg_ref *ref, const char *tag_or_digest,
                             struct reg_manifest_resp *out, ef_err **err);

/* GET /v2/<name>/referrers/<digest>?artifactType=...: an OCI index of the
 * manifests that name digest as their subject.  EF_NOTFOUND where the
 * registry has no referrers API. */
int reg_client_get_referrers (reg_client *c, const struct reg_ref *ref, const char *digest, const char *artifact_type,
                              struct reg_manifest_resp *out, ef_err **err);

typedef void (*reg_progress_fn) (void *payload, int64_t done, int64_t total);

struct reg_fetch_stats
{
  int64_t bytes_fetched; /* over the wire, including retries */
  int64_t bytes_reused;  /* already in the store, or resumed from disk */
};

/* Fetch blobs into the store, up to opts->jobs at once.  Blobs already in
 * the store are skipped; partial ones resume with Range. */
int reg_client_fetch_blobs (reg_client *c, const struct reg_ref *ref, const struct reg_desc *const *descs,
                            size_t n, reg_store *s, reg_progress_fn progress, void *payload,
                            struct reg_fetch_stats *stats, ef_err **err);

#endif
