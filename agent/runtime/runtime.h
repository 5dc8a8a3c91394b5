/* runtime.h: hand a verified image from the store to dockerd, podman or
 * containerd, without a temporary copy of the image on disk: an archive
 * is written by a thread into a pipe the runtime reads (runtime.c), to
 * the Engine and libpod APIs (engine.c) or to `ctr` (containerd.c). */
#ifndef EF_RUNTIME_H
#define EF_RUNTIME_H

#include <signal.h>
#include <stdbool.h>

#include <jansson.h>

#include "../../common/err.h"
#include "../../registry/remote/auth.h"
#include "../../registry/output/export.h"
#include "../../registry/pull.h"
#include "../../registry/ref.h"
#include "../../registry/store/store.h"

enum runtime_kind
{
  RT_DOCKER,
  RT_PODMAN,
  RT_CONTAINERD,
};

struct runtime_spec
{
  enum runtime_kind kind;
  char *socket;
  char *ns; /* containerd namespace */
};

/* "docker[:SOCKET]", "podman[:SOCKET]", "containerd[:SOCKET[:NAMESPACE]]" */
int runtime_parse (struct runtime_spec *out, const char *spec, ef_err **err);
void runtime_dispose (struct runtime_spec *rt);
const char *runtime_name (const struct runtime_spec *rt);

struct runtime_result
{
  bool sent;        /* false: the runtime already held this image */
  char name[600];   /* the name it has there */
  char pinned[600]; /* NAME@DIGEST when the runtime answers to it, else "" */
  char note[700];   /* why it does not, or "" */
  int64_t sent_bytes; /* blob bytes the runtime took, when that is known, else -1 */
};

/* Give the runtime the image res pulled (for platform), under ref's name.
 * containerd pulls it from the store, served on loopback for the moment
 * (registry/serve/serve.h) as a mirror of the registry, so its records carry
 * the registry's own names and it fetches only what it lacks.  Docker gets
 * a docker-archive streamed to POST /images/load; podman an OCI archive
 * through libpod's load, topped by the index when the reference named
 * one, so that it knows the image by the digest a deployment pins.  Afterwards the
 * runtime's image must be this one (the ID for docker and podman, the
 * digest for containerd): anything else is EF_LOCAL.  docker's classic
 * store records NAME@DIGEST only from a pull: with creds (ours for the
 * registry, or NULL), dockerd is asked to pull the reference by digest,
 * which fetches the manifest and no blob; when it cannot, out->note says
 * why and the handoff still succeeds. */
struct runtime_request
{
  const struct reg_pull_result *res;
  const struct reg_ref *ref;
  const struct reg_platform *platform;
  const struct auth_creds *creds; /* ours for the registry, or NULL */
  /* non-zero while the pull of res still brings blobs: a runtime that
   * pulls from the served store takes them as they arrive */
  const volatile sig_atomic_t *arriving;
};
int runtime_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                     struct runtime_result *out, ef_err **err);
/* Can the runtime be handed res while it is still arriving?  It can when
 * it pulls from the served store (all but docker with zstd layers). */
bool runtime_follows (const struct runtime_spec *rt, const struct reg_pull_result *res);
/* Should the layers then come in order, one after the other?  dockerd unpacks
 * a layer as soon as it and those below it are in, so a layer that comes
 * whole early is unpacked while the next arrives (on a 400 Mbit/s link,
 * 7.7 s against 8.2 s for four at once); ctr unpacks only once all are
 * in, and gets them sooner four at a time. */
bool runtime_in_order (const struct runtime_spec *rt);

/* {"runtime", "name", "pinned" (or null), "note" (or null), "image_id", "sent"} */
json_t *runtime_result_json (const struct runtime_spec *rt, const struct runtime_result *r, const char *image_id);

/* Remove the name the agent gave an image.  Docker and podman untag it
 * (the image goes when no other name holds it and no container uses it);
 * containerd drops the image record.  Absent already counts as done. */
int runtime_remove (const struct runtime_spec *rt, const char *name, ef_err **err);

/* For the backends: an archive of the image, written by a thread into a
 * pipe whose read end is fd. */
struct runtime_pump;
int runtime_pump_start (struct runtime_pump **out, reg_store *s, const struct reg_pull_result *res,
                        const struct reg_ref *ref, enum reg_export_format fmt, bool with_index, int *fd,
                        ef_err **err);
/* Wait for the writer; its failure, if any, becomes err's. */
int runtime_pump_finish (struct runtime_pump *p, ef_err **err);

int runtime_engine_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                            struct runtime_result *out, ef_err **err);
int runtime_engine_remove (const struct runtime_spec *rt, const char *name, ef_err **err);
bool runtime_engine_pulls (const struct runtime_spec *rt, const struct reg_pull_result *res);
int runtime_containerd_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                                struct runtime_result *out, ef_err **err);
int runtime_containerd_remove (const struct runtime_spec *rt, const char *name, ef_err **err);

#endif
