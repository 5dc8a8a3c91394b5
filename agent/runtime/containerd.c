/* containerd.c: containerd through its own CLI, ctr (runtime.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/spawn.h"
#include "../../common/util.h"
#include "../../registry/serve/serve.h"
#include "runtime.h"

#define OUT_MAX (4u << 20)
#define LS_TIMEOUT_MS 30000

/* ctr -a SOCK -n NS args...; stdin from in_fd (or /dev/null). */
static int
ctr (const struct runtime_spec *rt, const char *const *args, int in_fd, int timeout_ms, struct ef_spawn_result *r,
     ef_err **err)
{
  const char *argv[16];
  struct ef_spawn sp = { 0 };
  size_t n = 0;
  int rc;

  argv[n++] = "ctr";
  argv[n++] = "-a";
  argv[n++] = rt->socket;
  argv[n++] = "-n";
  argv[n++] = rt->ns;
  for (; *args && n < 15; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  sp.argv = argv;
  sp.in_fd = in_fd;
  sp.merge_stderr = true;
  sp.max_out = OUT_MAX;
  sp.timeout_ms = timeout_ms;
  rc = ef_spawn_run (&sp, r, err);
  if (rc < 0)
    ef_err_wrap (err, "containerd");
  return rc;
}

static bool
succeeded (const struct ef_spawn_result *r)
{
  return r->end == EF_SPAWN_EXITED && r->status == 0;
}

/* Does ctr list name with digest? */
static int
has (const struct runtime_spec *rt, const char *name, const char *digest, bool *out, ef_err **err)
{
  cleanup_free char *filter = xasprintf ("name==%s", name);
  const char *args[] = { "images", "ls", filter, NULL };
  struct ef_spawn_result r;
  int rc = ctr (rt, args, -1, LS_TIMEOUT_MS, &r, err);

  *out = rc == 0 && succeeded (&r) && strstr (r.out, digest) != NULL;
  ef_spawn_result_dispose (&r);
  return rc;
}

/* ctr's output as one line (it prints several). */
static void
one_line (char *s)
{
  char *nl;

  while ((nl = strchr (s, '\n')) != NULL && nl[1] != '\0')
    *nl = ' ';
  if ((nl = strchr (s, '\n')) != NULL)
    *nl = '\0';
}

/* A hosts dir of our own naming the served store as the server of
 * domain; containerd (1.6) reads DIR/<domain>/hosts.toml.  Caller removes. */
static int
hosts_dir (reg_store *s, const char *domain, const char *mirror, char **out, ef_err **err)
{
  cleanup_free char *tmpl = xasprintf ("%s/handoff-XXXXXX", reg_store_dir (s));
  cleanup_free char *sub = NULL, *file = NULL, *text = NULL;
  int rc;

  *out = NULL;
  if (mkdtemp (tmpl) == NULL)
    return ef_err_io (err, errno, "create %s", tmpl);
  sub = xasprintf ("%s/%s", tmpl, domain);
  file = xasprintf ("%s/hosts.toml", sub);
  /* the store itself as the server: containerd asks nothing of the registry */
  text = xasprintf ("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    mirror, mirror);
  rc = mkdir (sub, 0700) < 0 ? ef_err_io (err, errno, "create %s", sub) : 0;
  if (rc == 0)
    rc = ef_atomic_write (file, text, strlen (text), 0600, err);
  if (rc < 0)
    {
      rmdir (sub);
      rmdir (tmpl);
      return rc;
    }
  *out = xstrdup (tmpl);
  return 0;
}

static void
hosts_dir_remove (const char *dir, const char *domain)
{
  cleanup_free char *sub = xasprintf ("%s/%s", dir, domain);
  cleanup_free char *file = xasprintf ("%s/hosts.toml", sub);

  unlink (file);
  rmdir (sub);
  rmdir (dir);
}

/* ctr pulls name from the store, served on loopback while it does. */
static int
pull_from_store (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req, const char *name,
                 int64_t *sent, ef_err **err)
{
  const struct reg_ref *ref = req->ref;
  struct reg_server_opts so = { .origin = ref->domain, .pulling = req->res, .arriving = req->arriving };
  cleanup_free char *dir = NULL;
  struct ef_spawn_result r = { 0 };
  reg_server *srv = NULL;
  char plat[100];
  int rc;

  reg_platform_format (req->platform, plat, sizeof plat);
  rc = reg_server_start (&srv, s, &so, err);
  if (rc == 0)
    rc = hosts_dir (s, ref->domain, reg_server_address (srv), &dir, err);
  if (rc == 0)
    {
      const char *args[] = { "images", "pull", "--hosts-dir", dir, "--platform", plat, name, NULL };
      rc = ctr (rt, args, -1, 0, &r, err);
    }
  if (rc == 0 && !succeeded (&r))
    {
      one_line (r.out);
      rc = ef_err_set (err, EF_LOCAL, "containerd refused the image: %.300s", r.out);
    }
  ef_spawn_result_dispose (&r);
  if (dir)
    hosts_dir_remove (dir, ref->domain);
  *sent = srv ? reg_server_served (srv) : 0;
  reg_server_stop (srv);
  return rc;
}

/* Run ctr with args; a failure of ctr itself is err's. */
static int
ctr_ok (const struct runtime_spec *rt, const char *const *args, const char *what, ef_err **err)
{
  struct ef_spawn_result r;
  int rc = ctr (rt, args, -1, LS_TIMEOUT_MS, &r, err);

  if (rc == 0 && !succeeded (&r))
    {
      one_line (r.out);
      rc = ef_err_set (err, EF_LOCAL, "containerd would not %s: %.300s", what, r.out);
    }
  ef_spawn_result_dispose (&r);
  return rc;
}

/* The names a deployment (and, in k8s.io, the CRI plugin) looks an image
 * up by, beside the one the import made: NAME@DIGEST always; in k8s.io
 * also sha256:CONFIG, all labelled io.cri-containerd.image=managed as
 * the CRI plugin labels its own pulls. */
static int
add_records (const struct runtime_spec *rt, const char *source, const char *pinned, const char *config_digest,
             ef_err **err)
{
  bool cri = strcmp (rt->ns, "k8s.io") == 0;
  const char *names[3] = { source, pinned, cri ? config_digest : NULL };
  int rc = 0;

  if (strcmp (source, pinned) != 0)
    {
      const char *args[] = { "images", "tag", "--force", source, pinned, NULL };
      rc = ctr_ok (rt, args, "add the name NAME@DIGEST", err);
    }
  if (rc == 0 && cri)
    {
      const char *args[] = { "images", "tag", "--force", source, config_digest, NULL };
      rc = ctr_ok (rt, args, "add the CRI's sha256:CONFIG name", err);
    }
  for (size_t i = 0; rc == 0 && cri && i < 3; i++)
    {
      const char *args[] = { "images", "label", names[i], "io.cri-containerd.image=managed", NULL };
      rc = ctr_ok (rt, args, "label the image for the CRI plugin", err);
    }
  return rc;
}

/* containerd records the digest the name resolves to: the index, when
 * the reference named one. */
int
runtime_containerd_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                            struct runtime_result *out, ef_err **err)
{
  const struct reg_pull_result *res = req->res;
  const struct reg_ref *ref = req->ref;
  const char *top = res->index_digest ? res->index_digest : res->manifest_digest;
  bool present = false;
  int rc;

  if (ref->tag)
    snprintf (out->name, sizeof out->name, "%s/%s:%s", ref->domain, ref->path, ref->tag);
  else
    snprintf (out->name, sizeof out->name, "%s/%s@%s", ref->domain, ref->path, top);
  if (access (rt->socket, F_OK) != 0)
    return ef_err_sys (err, EF_LOCAL, errno, "containerd at %s", rt->socket);
  rc = has (rt, out->name, top, &present, err);
  out->sent = rc == 0 && !present;
  if (out->sent)
    rc = pull_from_store (rt, s, req, out->name, &out->sent_bytes, err);
  if (out->sent && rc == 0)
    rc = has (rt, out->name, top, &present, err);
  if (rc == 0 && !present)
    rc = ef_err_set (err, EF_LOCAL, "containerd does not list %s with %s after the import", out->name, top);
  snprintf (out->pinned, sizeof out->pinned, "%s/%s@%s", ref->domain, ref->path, top);
  if (rc == 0)
    rc = add_records (rt, out->name, out->pinned, res->config_digest, err);
  if (rc < 0)
    out->pinned[0] = '\0';
  return rc;
}

int
runtime_containerd_remove (const struct runtime_spec *rt, const char *name, ef_err **err)
{
  const char *args[] = { "images", "rm", name, NULL };
  struct ef_spawn_result r;
  int rc = ctr (rt, args, -1, LS_TIMEOUT_MS, &r, err);

  ef_spawn_result_dispose (&r);
  return rc; /* ctr says nothing useful for an absent name; ls would show it */
}
