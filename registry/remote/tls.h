/* tls.h: whom a connection trusts.  The system CAs when the machine has
 * them, plus per-host CAs from a certs dir (docker's layout) and extra CA
 * files, plus a client certificate from the certs dir.  Built once per
 * host and shared by all its connections, so the system bundle is parsed
 * once, not once per connection.  Verification is turned off only where
 * an operator wrote skip_verify = true for a mirror in hosts.toml. */
#ifndef EF_TLS_H
#define EF_TLS_H

#include <stdbool.h>

#include <curl/curl.h>

#include "../../common/err.h"

typedef struct reg_trust reg_trust;

/* Trust for host ("host[:port]", or NULL for none of certs.d) from the
 * certs dirs (DIR/<host>/ *.crt are CAs; X.cert needs X.key) and the CA
 * files (both NULL-terminated lists, or NULL).  EF_USAGE for a .cert
 * without its .key or a CA file that holds no certificate. */
int reg_trust_new (reg_trust **out, const char *host, const char *const *certs_dirs, const char *const *ca_files,
                   ef_err **err);
void reg_trust_free (reg_trust *t);
/* Trust for a token realm on host: everything from trusts (the registry's
 * CAs, from certs.d, hosts.toml and --ca-file, with the system's, and its
 * client certificate), plus host's own certs.d entry, whose client pair
 * wins: docker, containerd and skopeo fetch a token with the registry's
 * transport.  A skip_verify is never carried over. */
int reg_trust_derive (reg_trust **out, const reg_trust *from, const char *host, const char *const *certs_dirs,
                      ef_err **err);
/* Use this client pair instead of certs.d's (key "" or NULL: the cert file holds it). */
void reg_trust_set_client (reg_trust *t, const char *cert, const char *key);
/* Verify no certificate: only an operator's explicit skip_verify in hosts.toml. */
void reg_trust_skip_verify (reg_trust *t);
bool reg_trust_verifies (const reg_trust *t);
/* Make e's TLS use t (and nothing else); t must outlive e's transfers. */
void reg_trust_apply (const reg_trust *t, CURL *e);

#endif
