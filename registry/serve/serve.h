/* serve.h: a read-only registry over the content store, on libmicrohttpd
 * (loaded only when serving): GET and HEAD of /v2/, of manifests by
 * digest or by tag (the store's records; containerd's ?ns=ORIGIN names
 * the registry), and of blobs, each hashed as it goes out unless this
 * process verified it, its last bytes withheld when it does not match.
 * A runtime pulls from it at handoff time; other devices of a site pull
 * from it over TLS as their mirror, when it is a site cache (cache.h). */
#ifndef EF_SERVE_H
#define EF_SERVE_H

#include "../../common/err.h"
#include "cache.h"
#include "../pull.h"
#include "../store/store.h"

typedef struct reg_server reg_server;

struct reg_server_opts
{
  const char *listen; /* "ADDR:PORT"; NULL: 127.0.0.1 on a port of the kernel's choosing */
  const char *origin; /* the registry host a request without ?ns= is for, or NULL */
  /* an image being pulled into the store now: its blobs are served as
   * they arrive (store.h, reg_blob_reader_follow) while *arriving is
   * non-zero */
  const struct reg_pull_result *pulling;
  const volatile sig_atomic_t *arriving;
  /* a site cache: what the store lacks is fetched from its origins (NULL: none) */
  reg_cache *cache;
  /* HTTPS: PEM files of the server's certificate and key; with client_ca,
   * every request must come with a client certificate that CA issued */
  const char *tls_cert, *tls_key, *client_ca;
};

int reg_server_start (reg_server **out, reg_store *s, const struct reg_server_opts *o, ef_err **err);
/* "127.0.0.1:PORT": where it listens. */
const char *reg_server_address (const reg_server *srv);
/* Blob bytes sent so far. */
int64_t reg_server_served (const reg_server *srv);
void reg_server_stop (reg_server *srv);

#endif
