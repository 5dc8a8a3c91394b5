/* auth.h: registry authentication: WWW-Authenticate challenges, token
 * responses, realm checks, and credentials from docker config files. */
#ifndef EF_AUTH_H
#define EF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/err.h"

#define AUTH_MAX_PARAMS 16

enum auth_scheme
{
  AUTH_NONE = 0,
  AUTH_BASIC,
  AUTH_BEARER,
  AUTH_OTHER, /* Negotiate, Digest, ...: unusable */
};

struct auth_challenge
{
  enum auth_scheme scheme;
  size_t nparams;
  char *keys[AUTH_MAX_PARAMS]; /* lower-cased */
  char *values[AUTH_MAX_PARAMS];
};

/* Parse one WWW-Authenticate header line (one challenge, as registries
 * send it).  Scheme names are case-insensitive; values are tokens or
 * quoted-strings with backslash escapes.  A Bearer challenge must carry a
 * realm. */
int auth_challenge_parse (struct auth_challenge *out, const char *header, ef_err **err);
const char *auth_challenge_param (const struct auth_challenge *c, const char *key);
void auth_challenge_dispose (struct auth_challenge *c);

/* Pick the usable challenge out of several header lines: Bearer first,
 * then Basic.  Returns the index or -1 with err set. */
int auth_challenge_select (const struct auth_challenge *cs, size_t n, ef_err **err);

/* Anti-SSRF.  A token realm must be https.  Internal addresses are
 * loopback, private, link-local, CGNAT, unspecified, their IPv4-mapped
 * forms, localhost, and names that resolve to any of these.  A realm on
 * the registry's own host (any port) is allowed; any other internal realm
 * only when the registry itself is internal: a public registry can never
 * send us inside.  resolve may be NULL (names then count as public). */
#define AUTH_ADDR_LEN 46
typedef size_t (*auth_resolve_fn) (const char *name, char (*addrs)[AUTH_ADDR_LEN], size_t max);
size_t auth_resolve_system (const char *name, char (*addrs)[AUTH_ADDR_LEN], size_t max);
int auth_realm_check (const char *realm, const char *registry_host, auth_resolve_fn resolve, ef_err **err);

/* A token's life is taken as at most a day, however long it claims. */
#define AUTH_TOKEN_LIFE_MAX 86400

struct auth_token
{
  char *token;
  char *refresh_token; /* may be NULL */
  int64_t expires_in;  /* seconds, 60 to AUTH_TOKEN_LIFE_MAX */
};
/* Parse a token endpoint's body: "token" or "access_token". */
int auth_token_parse (struct auth_token *out, const char *body, size_t len, ef_err **err);
void auth_token_dispose (struct auth_token *t);

struct auth_creds
{
  char *username; /* NULL or "" with secret set: secret is an identity token */
  char *secret;
};
void auth_creds_dispose (struct auth_creds *c);
/* Split "user:pass" on the first colon. */
int auth_creds_from_string (struct auth_creds *out, const char *userpass, ef_err **err);

/* Look host ("127.0.0.1:5443", "docker.io") up in a docker config.json
 * text: credHelpers, then auths (exact key, then keys normalised like
 * docker's ConvertToHostname), then credsStore.  Returns 1 when found,
 * 0 when the file has nothing for that host, negative on error. */
int auth_config_lookup (struct auth_creds *out, const char *json, size_t len, const char *host, ef_err **err);

/* A registry key as auth files and dockauths write it, normalised: the
 * scheme and, for keys with a scheme, the path stripped (containers/image's
 * normalizeAuthFileKey); Docker Hub's names (index.docker.io,
 * registry-1.docker.io) become docker.io.  Caller frees. */
char *auth_registry_key (const char *key);
/* Do two registry keys name the same registry (after auth_registry_key,
 * case-insensitively, exactly: docker.io.evil.example is not docker.io)? */
bool auth_registry_same (const char *a, const char *b);

/* Run docker-credential-<helper> get for server: at most 10 s and 64 KiB
 * of output, or one error naming the helper. */
int auth_cred_helper (struct auth_creds *out, const char *helper, const char *server, ef_err **err);

#endif
