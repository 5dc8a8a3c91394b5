/* runtime.c: the dispatch to the backends (runtime.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "runtime.h"

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
