/* spec.c: "docker[:SOCKET]", "podman[:SOCKET]", "containerd[:SOCKET[:NAMESPACE]]" (runtime.h). */
#include <string.h>

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
