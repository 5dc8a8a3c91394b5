/* routes.h: where a repository's content may come from: the mirrors of
 * the registry's hosts.toml (hosts.h) in the file's order, then the
 * registry itself (or the file's server).  Tags resolve only on hosts
 * with `resolve`, the registry always may; blobs and manifests by digest
 * come from the first host with `pull` that answers.  A mirror that
 * cannot be reached or sent wrong bytes is marked dead for the rest of
 * the pull. */
#ifndef EF_ROUTES_H
#define EF_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "../../common/err.h"
#include "hosts.h"
#include "../ref.h"
#include "session.h"

struct reg_route
{
  reg_host *h;
  unsigned caps; /* enum reg_caps */
  bool mirror;
  bool dead; /* skipped until reg_routes_revive */
};

typedef struct reg_routes reg_routes;

/* The routes to ref's registry, from the hosts.toml in certs_dirs (none: the registry alone). */
int reg_routes_new (reg_routes **out, reg_session *s, const char *const *certs_dirs, const struct reg_ref *ref,
                    ef_err **err);
const char *reg_routes_domain (const reg_routes *r);
size_t reg_routes_count (const reg_routes *r);
struct reg_route *reg_routes_get (reg_routes *r, size_t i);
/* The next live route after index i (i = -1: the first) that can do cap; -1 when none. */
long reg_routes_next (const reg_routes *r, long i, unsigned cap);
/* A new pull: every mirror may be tried again. */
void reg_routes_revive (reg_routes *r);
void reg_routes_free (reg_routes *r);

#endif
