/* ref.h: image references, parsed as docker's distribution/reference does. */
#ifndef EF_REF_H
#define EF_REF_H

#include "../common/err.h"

struct reg_ref
{
  char *domain;   /* "docker.io", "127.0.0.1:5443" */
  char *api_host; /* host[:port] to talk to: registry-1.docker.io for docker.io */
  char *path;     /* "library/busybox", "edge/app" */
  char *tag;      /* "latest" when neither tag nor digest was given; else may be NULL */
  char *digest;   /* "sha256:<hex>" or NULL */
};

int reg_ref_parse (struct reg_ref **out, const char *s, ef_err **err);
/* "domain/path[:tag][@digest]" in canonical form; caller frees. */
char *reg_ref_string (const struct reg_ref *r);
/* "domain/path" without tag or digest; caller frees. */
char *reg_ref_repo (const struct reg_ref *r);
void reg_ref_free (struct reg_ref *r);

#define cleanup_ref __attribute__ ((cleanup (reg_ref_freep)))
static inline void
reg_ref_freep (struct reg_ref **r)
{
  reg_ref_free (*r);
}

#endif
