/* exchange.h: the Horizon exchange's REST API, as a node sees it:
 * node-authenticated JSON over registry/remote/http.h, TLS with the system CAs
 * (when the machine has them) plus HZN_MGMT_HUB_CERT_PATH, or plain HTTP
 * when the URL says http:// (never a fallback from https), timeouts and
 * retries as anax has them, redirects followed on the same host name. */
#ifndef EF_EXCHANGE_H
#define EF_EXCHANGE_H

#include <signal.h>
#include <stdbool.h>

#include <jansson.h>

#include "../../common/err.h"
#include "../config.h"

typedef struct exchange exchange;

int exchange_new (exchange **out, const struct agent_config *c, const volatile sig_atomic_t *cancel, ef_err **err);
/* A handle of its own for another thread, on from's exchange with from's
 * trust (parsed once: the system CAs are most of the agent's memory),
 * which from keeps and must outlive it. */
int exchange_dup (exchange **out, const exchange *from, const volatile sig_atomic_t *cancel, ef_err **err);
void exchange_free (exchange *ex);

/* Close the handle's connections: between syncs the poller's handle is
 * the one that talks to the exchange, and an idle TLS connection holds
 * its buffers. */
void exchange_rest (exchange *ex);
/* True for an http:// exchange (plain HTTP: the token crosses the network unencrypted). */
bool exchange_plain (const exchange *ex);

/* GET base+path: the JSON body (object or array).  404 is EF_NOTFOUND
 * ("absent"), 401/403 EF_AUTH (for a node: deleted, or its token changed), 5xx, 408, 429 and network errors EF_NET
 * after a few quick retries. */
int exchange_get (exchange *ex, const char *path, json_t **out, ef_err **err);
/* Close the handle's connections: between syncs the poller's handle is
 * the one that talks to the exchange, and an idle TLS connection holds
 * its buffers. */
void exchange_rest (exchange *ex);
/* True for an http:// exchange (plain HTTP: the token crosses the network unencrypted). */
bool exchange_plain (const exchange *ex);

/* GET base+path: a text body (keys are served as text/plain PEM). */
int exchange_get_text (exchange *ex, const char *path, char **out, size_t *len, ef_err **err);
/* POST a JSON body; the status must be want (201 for changes). */
int exchange_post (exchange *ex, const char *path, json_t *body, long want, json_t **out, ef_err **err);
/* Percent-encode one path segment or query value; caller frees. */
char *exchange_escape (exchange *ex, const char *s);

#endif
