/* runtime.c: the runtime spec, the archive pump, and the dispatch to the
 * backends (runtime.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "runtime.h"

int
runtime_parse (struct runtime_spec *out, const char *spec, ef_err **err)
{
  const char *colon = strchr (spec, ':');
  size_t n = colon ? (size_t) (colon - spec) : strlen (spec);

  memset (out, 0, sizeof *out);
  if (n == 6 && strncmp (spec, "docker", 6) == 0)
    {
      out->kind = RT_DOCKER;
      out->socket = xstrdup (colon && colon[1] ? colon + 1 : "/run/docker.sock");
    }
  else if (n == 6 && strncmp (spec, "podman", 6) == 0)
    {
      out->kind = RT_PODMAN;
      out->socket = xstrdup (colon && colon[1] ? colon + 1 : "/run/podman/podman.sock");
    }
  else if (n == 10 && strncmp (spec, "containerd", 10) == 0)
    {
      const char *rest = colon ? colon + 1 : "";
      const char *c2 = strchr (rest, ':');
      out->kind = RT_CONTAINERD;
      out->socket = *rest && rest != c2 ? xstrndup (rest, c2 ? (size_t) (c2 - rest) : strlen (rest))
                                        : xstrdup ("/run/containerd/containerd.sock");
      out->ns = xstrdup (c2 && c2[1] ? c2 + 1 : "default");
    }
  else
    return ef_err_set (err, EF_USAGE, "runtime must be docker[:SOCKET], podman[:SOCKET] or "
                                      "containerd[:SOCKET[:NAMESPACE]]");
  return 0;
}

void
runtime_dispose (struct runtime_spec *rt)
{
  free (rt->socket);
  free (rt->ns);
  memset (rt, 0, sizeof *rt);
}

const char *
runtime_name (const struct runtime_spec *rt)
{
  return rt->kind == RT_DOCKER ? "docker" : rt->kind == RT_PODMAN ? "podman" : "containerd";
}

struct runtime_pump
{
  reg_store *s;
  const struct reg_pull_result *res;
  const struct reg_ref *ref;
  enum reg_export_format fmt;
  bool with_index;
  int fd; /* the write end */
  pthread_t th;
  ef_err *err;
  int rc;
};

static int
pipe_sink (void *payload, const void *buf, size_t len)
{
  return ef_write_all (*(int *) payload, buf, len);
}

static void *
pump_main (void *p)
{
  struct runtime_pump *pu = p;

  pu->rc = reg_export_stream (pu->s, pu->res->manifest_digest, pu->with_index ? pu->res->index_digest : NULL, pu->ref,
                              pu->fmt, pipe_sink, &pu->fd, &pu->err);
  close (pu->fd); /* the reader sees the end (or, after a failure, a cut archive) */
  pu->fd = -1;
  return NULL;
}

int
runtime_pump_start (struct runtime_pump **out, reg_store *s, const struct reg_pull_result *res,
                    const struct reg_ref *ref, enum reg_export_format fmt, bool with_index, int *fd, ef_err **err)
{
  struct runtime_pump *pu = xcalloc (1, sizeof *pu);
  int fds[2];

  *out = NULL;
  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      free (pu);
      return ef_err_sys (err, EF_LOCAL, errno, "pipe");
    }
  pu->s = s;
  pu->res = res;
  pu->ref = ref;
  pu->fmt = fmt;
  pu->with_index = with_index;
  pu->fd = fds[1];
  if (pthread_create (&pu->th, NULL, pump_main, pu) != 0)
    {
      close (fds[0]);
      close (fds[1]);
      free (pu);
      return ef_err_set (err, EF_LOCAL, "cannot start the archive writer");
    }
  *fd = fds[0];
  *out = pu;
  return 0;
}

int
runtime_pump_finish (struct runtime_pump *pu, ef_err **err)
{
  int rc;

  pthread_join (pu->th, NULL);
  rc = pu->rc;
  if (rc < 0)
    ef_err_propagate (err, pu->err);
  else
    ef_err_free (pu->err);
  free (pu);
  return rc;
}

int
runtime_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                 struct runtime_result *out, ef_err **err)
{
  memset (out, 0, sizeof *out);
  out->sent_bytes = -1;
  if (rt->kind == RT_CONTAINERD)
    return runtime_containerd_handoff (rt, s, req, out, err);
  return runtime_engine_handoff (rt, s, req, out, err);
}

bool
runtime_follows (const struct runtime_spec *rt, const struct reg_pull_result *res)
{
  return rt->kind == RT_CONTAINERD || runtime_engine_pulls (rt, res);
}

bool
runtime_in_order (const struct runtime_spec *rt)
{
  return rt->kind == RT_DOCKER;
}

json_t *
runtime_result_json (const struct runtime_spec *rt, const struct runtime_result *r, const char *image_id)
{
  json_t *j = json_pack ("{s:s, s:s, s:s?, s:s?, s:s, s:b}", "runtime", runtime_name (rt), "name", r->name,
                         "pinned", r->pinned[0] ? r->pinned : NULL, "note", r->note[0] ? r->note : NULL, "image_id",
                         image_id, "sent", r->sent);
  if (r->sent_bytes >= 0)
    json_object_set_new (j, "sent_bytes", json_integer (r->sent_bytes));
  return j;
}

int
runtime_remove (const struct runtime_spec *rt, const char *name, ef_err **err)
{
  if (rt->kind == RT_CONTAINERD)
    return runtime_containerd_remove (rt, name, err);
  return runtime_engine_remove (rt, name, err);
}
