/* runtime.c: see runtime.h.  The archive is produced by a thread into a
 * pipe that libcurl (or ctr) reads: memory stays flat, nothing is staged. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "../common/util.h"
#include "../registry/export.h"
#include "runtime.h"

/* The Docker Engine API (dockerd, and podman's compatible one) and
 * podman's own libpod API, over the runtime's unix socket. */
#define ENGINE "/v1.41"
#define LIBPOD "/v4.0.0/libpod"
#define RESP_MAX (4u << 20)

extern char **environ;

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

/* ---- the archive pump ---- */

struct pump
{
  const reg_store *s;
  const char *digest;
  const char *index_digest;
  const struct reg_ref *ref;
  enum reg_export_format fmt;
  int fd;
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
  struct pump *pu = p;
  pu->rc = reg_export_stream (pu->s, pu->digest, pu->index_digest, pu->ref, pu->fmt, pipe_sink, &pu->fd, &pu->err);
  close (pu->fd);
  pu->fd = -1;
  return NULL;
}

/* Start the pump writing into a pipe; *rfd is the end to read. */
static int
pump_start (struct pump *pu, pthread_t *th, int *rfd, ef_err **err)
{
  int fds[2];

  if (pipe2 (fds, O_CLOEXEC) < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "pipe");
  pu->fd = fds[1];
  if (pthread_create (th, NULL, pump_main, pu) != 0)
    {
      close (fds[0]);
      close (fds[1]);
      return ef_err_set (err, EF_LOCAL, "cannot start the archive writer");
    }
  *rfd = fds[0];
  return 0;
}

/* ---- the Docker Engine API over its unix socket ---- */

static size_t
read_fd (char *buf, size_t size, size_t n, void *ud)
{
  ssize_t r;
  do
    r = read (*(int *) ud, buf, size * n);
  while (r < 0 && errno == EINTR);
  return r < 0 ? CURL_READFUNC_ABORT : (size_t) r;
}

static int
api (const struct runtime_spec *rt, const char *method, const char *path, int body_fd, const char *ctype,
     long *status, struct ef_buf *out, ef_err **err)
{
  cleanup_free char *url = xasprintf ("http://localhost%s", path);
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *h = NULL;
  CURL *e = curl_easy_init ();
  CURLcode res;

  ef_buf_init (out, RESP_MAX);
  ef_buf_append (out, "", 0);
  curl_easy_setopt (e, CURLOPT_UNIX_SOCKET_PATH, rt->socket);
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, ef_buf_write_cb);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, out);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 10L);
  if (body_fd >= 0)
    {
      h = curl_slist_append (h, ctype);
      h = curl_slist_append (h, "Transfer-Encoding: chunked");
      curl_easy_setopt (e, CURLOPT_POST, 1L);
      curl_easy_setopt (e, CURLOPT_READFUNCTION, read_fd);
      curl_easy_setopt (e, CURLOPT_READDATA, &body_fd);
      curl_easy_setopt (e, CURLOPT_HTTPHEADER, h);
    }
  else if (strcmp (method, "POST") == 0)
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, "");
  res = curl_easy_perform (e);
  *status = 0;
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all (h);
  curl_easy_cleanup (e);
  if (res != CURLE_OK)
    {
      ef_buf_dispose (out);
      return ef_err_set (err, EF_LOCAL, "%s at %s: %s", runtime_name (rt), rt->socket,
                         errbuf[0] ? errbuf : curl_easy_strerror (res));
    }
  return 0;
}

/* The Id of an image by name or ID, or "" when the runtime has none. */
static int
image_id (const struct runtime_spec *rt, const char *name, char *id, size_t len, ef_err **err)
{
  cleanup_free char *path = NULL;
  struct ef_buf b;
  json_t *j;
  long st;
  char *enc = curl_easy_escape (NULL, name, 0);

  path = xasprintf (ENGINE "/images/%s/json", enc);
  curl_free (enc);
  id[0] = '\0';
  if (api (rt, "GET", path, -1, NULL, &st, &b, err) < 0)
    return -EF_LOCAL;
  if (st == 200 && (j = json_loadb (b.data, b.len, 0, NULL)) != NULL)
    {
      snprintf (id, len, "%s", json_string_value (json_object_get (j, "Id")) ? json_string_value (json_object_get (j, "Id")) : "");
      json_decref (j);
    }
  ef_buf_dispose (&b);
  return 0;
}

/* The first error in the JSON message stream of /images/load. */
static const char *
stream_error (const char *text, char *buf, size_t len)
{
  const char *p = text;

  while (p && *p)
    {
      const char *nl = strchr (p, '\n');
      json_t *j = json_loadb (p, nl ? (size_t) (nl - p) : strlen (p), 0, NULL);
      json_t *e = json_object_get (j, "error");
      json_t *m = json_object_get (json_object_get (j, "errorDetail"), "message");
      if (json_is_string (m) || json_is_string (e))
        {
          snprintf (buf, len, "%s", json_string_value (json_is_string (m) ? m : e));
          json_decref (j);
          return buf;
        }
      json_decref (j);
      p = nl ? nl + 1 : NULL;
    }
  return NULL;
}

/* Docker gets a docker-archive, the only archive docker 20.10 reads; a
 * digest-only reference gets the tag sha256-<hex> there, since a tag
 * cannot hold '@'.  Podman gets an OCI archive through libpod: it keeps
 * the manifest as it is, so the image answers to NAME@DIGEST as well. */
static int
handoff_engine (const struct runtime_spec *rt, const reg_store *s, const struct reg_pull_result *res,
                const struct reg_ref *ref, struct runtime_result *out, ef_err **err)
{
  const char *manifest_digest = res->manifest_digest, *config_digest = res->config_digest;
  bool podman = rt->kind == RT_PODMAN;
  cleanup_free char *repo = NULL, *tag = NULL, *tagpath = NULL;
  char id[128], msg[512];
  struct ef_buf b;
  long st;
  int rc;

  /* docker's short name for Docker Hub */
  repo = strcmp (ref->domain, "docker.io") == 0 && !podman
             ? xstrdup (strncmp (ref->path, "library/", 8) == 0 ? ref->path + 8 : ref->path)
             : xasprintf ("%s/%s", ref->domain, ref->path);
  if (ref->tag)
    tag = xstrdup (ref->tag);
  else if (!podman)
    tag = xasprintf ("sha256-%s", manifest_digest + 7);
  if (tag)
    snprintf (out->name, sizeof out->name, "%s:%s", repo, tag);
  else
    snprintf (out->name, sizeof out->name, "%s@%s", repo, res->index_digest ? res->index_digest : manifest_digest);

  if (image_id (rt, podman ? out->name : config_digest, id, sizeof id, err) < 0)
    return -EF_LOCAL;
  out->sent = strcmp (id, config_digest) != 0;
  if (out->sent)
    {
      struct pump pu = { s, manifest_digest, res->index_digest, ref,
                         podman ? REG_EXPORT_OCI_ARCHIVE : REG_EXPORT_DOCKER_ARCHIVE, -1, NULL, 0 };
      pthread_t th;
      int rfd;

      if (pump_start (&pu, &th, &rfd, err) < 0)
        return -EF_LOCAL;
      rc = api (rt, "POST", podman ? LIBPOD "/images/load" : ENGINE "/images/load?quiet=1", rfd,
                "Content-Type: application/x-tar", &st, &b, err);
      close (rfd); /* a writer still going gets EPIPE and stops */
      pthread_join (th, NULL);
      if (rc == 0 && pu.rc < 0)
        {
          ef_err_set (err, EF_LOCAL, "%s", ef_err_msg (pu.err));
          rc = -EF_LOCAL;
        }
      ef_err_free (pu.err);
      if (rc == 0 && st != 200)
        rc = ef_err_set (err, EF_LOCAL, "%s refused the image: HTTP %ld %.200s", runtime_name (rt), st,
                         b.data ? b.data : "");
      else if (rc == 0 && stream_error (b.data, msg, sizeof msg))
        rc = ef_err_set (err, EF_LOCAL, "%s refused the image: %s", runtime_name (rt), msg);
      ef_buf_dispose (&b);
      if (rc < 0)
        return rc;
    }
  /* Name it (the archive names tagged images already; this also moves an
   * existing tag to this image). */
  if (tag)
    {
      char *er = curl_easy_escape (NULL, repo, 0), *et = curl_easy_escape (NULL, tag, 0);
      tagpath = xasprintf (ENGINE "/images/%s/tag?repo=%s&tag=%s", config_digest, er, et);
      curl_free (er);
      curl_free (et);
      if (api (rt, "POST", tagpath, -1, NULL, &st, &b, err) < 0)
        return -EF_LOCAL;
      ef_buf_dispose (&b);
      if (st != 201 && st != 200)
        return ef_err_set (err, EF_LOCAL, "%s would not tag the image %s (HTTP %ld)", runtime_name (rt), out->name,
                           st);
    }
  if (image_id (rt, out->name, id, sizeof id, err) < 0)
    return -EF_LOCAL;
  if (strcmp (id, config_digest) != 0)
    return ef_err_set (err, EF_LOCAL, "%s holds %s as %s, not the image ID %s", runtime_name (rt), out->name,
                       id[0] ? id : "nothing", config_digest);
  return 0;
}

/* ---- containerd through ctr ---- */

/* Run ctr with args; stdin from in_fd (or /dev/null), output into *out. */
static int
run_ctr (const struct runtime_spec *rt, const char *const *args, int in_fd, struct ef_buf *out, int *status,
         ef_err **err)
{
  const char *argv[16];
  size_t n = 0;
  int outp[2];
  posix_spawn_file_actions_t fa;
  pid_t pid;
  char buf[4096];
  ssize_t r;
  int rc;

  argv[n++] = "ctr";
  argv[n++] = "-a";
  argv[n++] = rt->socket;
  argv[n++] = "-n";
  argv[n++] = rt->ns;
  for (; *args && n < 15; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  if (pipe2 (outp, O_CLOEXEC) < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "pipe");
  posix_spawn_file_actions_init (&fa);
  if (in_fd >= 0)
    posix_spawn_file_actions_adddup2 (&fa, in_fd, 0);
  else
    posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 2);
  rc = posix_spawnp (&pid, "ctr", &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (outp[1]);
  if (rc != 0)
    {
      close (outp[0]);
      return ef_err_sys (err, EF_LOCAL, rc, "containerd: cannot run ctr");
    }
  if (in_fd >= 0)
    close (in_fd);
  ef_buf_init (out, RESP_MAX);
  ef_buf_append (out, "", 0);
  while ((r = read (outp[0], buf, sizeof buf)) != 0)
    {
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        break;
      ef_buf_append (out, buf, (size_t) r);
    }
  close (outp[0]);
  while (waitpid (pid, status, 0) < 0 && errno == EINTR)
    ;
  return 0;
}

static bool
ctr_has (const struct runtime_spec *rt, const char *name, const char *digest, ef_err **err)
{
  cleanup_free char *filter = xasprintf ("name==%s", name);
  const char *args[] = { "images", "ls", filter, NULL };
  struct ef_buf b;
  int status;
  bool has;

  if (run_ctr (rt, args, -1, &b, &status, err) < 0)
    return false;
  has = WIFEXITED (status) && WEXITSTATUS (status) == 0 && strstr (b.data, digest) != NULL;
  ef_buf_dispose (&b);
  return has;
}

static int
handoff_containerd (const struct runtime_spec *rt, const reg_store *s, const struct reg_pull_result *res,
                    const struct reg_ref *ref, struct runtime_result *out, ef_err **err)
{
  /* containerd records the digest at the archive's top: the index, when
   * the reference named one */
  const char *manifest_digest = res->index_digest ? res->index_digest : res->manifest_digest;
  struct pump pu = { s, res->manifest_digest, res->index_digest, ref, REG_EXPORT_OCI_ARCHIVE, -1, NULL, 0 };
  const char *args[] = { "images", "import", "-", NULL };
  struct ef_buf b;
  pthread_t th;
  int rfd, status = 0, rc;

  if (ref->tag)
    snprintf (out->name, sizeof out->name, "%s/%s:%s", ref->domain, ref->path, ref->tag);
  else
    snprintf (out->name, sizeof out->name, "%s/%s@%s", ref->domain, ref->path, manifest_digest);
  if (access (rt->socket, F_OK) != 0)
    return ef_err_sys (err, EF_LOCAL, errno, "containerd at %s", rt->socket);
  out->sent = !ctr_has (rt, out->name, manifest_digest, err);
  if (err && *err)
    return -EF_LOCAL;
  if (!out->sent)
    return 0;
  if (pump_start (&pu, &th, &rfd, err) < 0)
    return -EF_LOCAL;
  rc = run_ctr (rt, args, rfd, &b, &status, err);
  pthread_join (th, NULL);
  if (rc < 0)
    {
      ef_err_free (pu.err);
      return rc;
    }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      char *nl;
      while ((nl = strchr (b.data, '\n')) != NULL && nl[1] != '\0')
        *nl = ' ';
      if ((nl = strchr (b.data, '\n')) != NULL)
        *nl = '\0';
      rc = ef_err_set (err, EF_LOCAL, "containerd refused the image: %.300s", b.data);
    }
  else if (pu.rc < 0)
    rc = ef_err_set (err, EF_LOCAL, "%s", ef_err_msg (pu.err));
  ef_err_free (pu.err);
  ef_buf_dispose (&b);
  if (rc < 0)
    return rc;
  if (!ctr_has (rt, out->name, manifest_digest, err))
    return ef_err_set (err, EF_LOCAL, "containerd does not list %s with manifest %s after the import", out->name,
                       manifest_digest);
  return 0;
}

int
runtime_handoff (const struct runtime_spec *rt, const reg_store *s, const struct reg_pull_result *res,
                 const struct reg_ref *ref, struct runtime_result *out, ef_err **err)
{
  memset (out, 0, sizeof *out);
  if (rt->kind == RT_CONTAINERD)
    return handoff_containerd (rt, s, res, ref, out, err);
  return handoff_engine (rt, s, res, ref, out, err);
}

int
runtime_remove (const struct runtime_spec *rt, const char *name, ef_err **err)
{
  struct ef_buf b;
  long st;
  int status;

  if (rt->kind == RT_CONTAINERD)
    {
      const char *args[] = { "images", "rm", name, NULL };
      if (run_ctr (rt, args, -1, &b, &status, err) < 0)
        return -EF_LOCAL;
      ef_buf_dispose (&b);
      return 0; /* ctr says nothing useful for an absent name; ls would show it */
    }
  {
    char *enc = curl_easy_escape (NULL, name, 0);
    cleanup_free char *path = xasprintf (ENGINE "/images/%s", enc);
    curl_free (enc);
    if (api (rt, "DELETE", path, -1, NULL, &st, &b, err) < 0)
      return -EF_LOCAL;
  }
  ef_buf_dispose (&b);
  if (st == 200 || st == 404)
    return 0;
  return ef_err_set (err, EF_LOCAL, "%s would not remove %s (HTTP %ld%s)", runtime_name (rt), name, st,
                     st == 409 ? ": a container uses it" : "");
}
