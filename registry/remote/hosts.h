/* hosts.h: containerd's hosts.toml, the mirror file of one registry.
 *
 * Read from CERTS_DIR/<host[:port]>/hosts.toml (also containerd's
 * <host>_<port>_ spelling and _default/), so that one file serves
 * containerd and edgefetch.  Exactly this subset of TOML is read, and
 * strictly: `server`, `[host."URL"]` tables with `capabilities`, `ca`,
 * `client`, `skip_verify`, `override_path`, and `[header]` /
 * `[host."URL".header]` tables; comments, basic and literal strings,
 * booleans and (nested) arrays of strings.  Anything else, an unknown key,
 * a duplicate or a malformed line is an error naming its line.  It is
 * the one hand-written parser of edgefetch: bounded in size, hosts,
 * items and string length. */
#ifndef EF_HOSTS_H
#define EF_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "../../common/err.h"

#define REG_HOSTS_FILE_MAX (64 * 1024)
#define REG_HOSTS_MAX 16

enum reg_caps
{
  REG_CAP_PULL = 1 << 0,
  REG_CAP_RESOLVE = 1 << 1,
  REG_CAP_PUSH = 1 << 2,
};

/* One place to fetch from, in the file's order; the last is the server. */
struct reg_endpoint
{
  char *scheme;      /* "https" or "http" */
  char *host;        /* host[:port]; NULL for a server the file does not name (the registry itself) */
  char *path;        /* the API root, "/v2" unless override_path says otherwise */
  unsigned caps;     /* enum reg_caps; pull|resolve|push when the file gives none */
  char **ca;         /* NULL-terminated CA files (absolute), or NULL */
  char **client;     /* NULL-terminated pairs: cert, key ("" when the cert file holds the key) */
  int skip_verify;   /* -1 not said, 0, 1 */
  char **headers;    /* NULL-terminated "Name: value" lines, or NULL */
  bool server;       /* the file's `server` (or the registry itself): not a mirror */
};

typedef struct reg_hosts reg_hosts;

/* Parse text; relative file names are taken from base_dir.  Errors are
 * EF_USAGE, "hosts.toml line N: ...". */
int reg_hosts_parse (reg_hosts **out, const char *text, size_t len, const char *base_dir, ef_err **err);
/* The hosts.toml for registry domain in the first certs dir that has one
 * (NULL-terminated list); *out is NULL when none has. */
int reg_hosts_load (reg_hosts **out, const char *const *certs_dirs, const char *domain, ef_err **err);
size_t reg_hosts_count (const reg_hosts *h);
const struct reg_endpoint *reg_hosts_get (const reg_hosts *h, size_t i);
/* Where it was read from ("" for parsed text). */
const char *reg_hosts_path (const reg_hosts *h);
void reg_hosts_free (reg_hosts *h);

#endif
