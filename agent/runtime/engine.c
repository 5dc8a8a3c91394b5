/* engine.c: dockerd and podman through the Docker Engine API, and podman's
 * own libpod API, over the runtime's unix socket (runtime.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "../../common/json.h"
#include "../../common/util.h"
#include "../../registry/http.h"
#include "runtime.h"

#define ENGINE "/v1.41"
#define LIBPOD "/v4.0.0/libpod"
#define RESP_MAX (4u << 20)

static size_t
read_fd (char *buf, size_t size, size_t n, void *ud)
{
  ssize_t r;
  do
    r = read (*(int *) ud, buf, size * n);
  while (r < 0 && errno == EINTR);
  return r < 0 ? CURL_READFUNC_ABORT : (size_t) r;
}

/* One call; body_fd >= 0 streams a tar as the request body. */
static int
api (const struct runtime_spec *rt, const char *method, const char *path, int body_fd, struct http_resp *r,
     ef_err **err)
{
  struct curl_slist *h = NULL;
  CURL *e = curl_easy_init ();
  CURLcode res;

  http_resp_init (r, RESP_MAX);
  if (e == NULL)
    return ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  http_setup_unix (e, rt->socket, path);
  curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, method);
  if (body_fd >= 0)
    {
      h = curl_slist_append (h, "Content-Type: application/x-tar");
      h = curl_slist_append (h, "Transfer-Encoding: chunked");
      curl_easy_setopt (e, CURLOPT_POST, 1L);
      curl_easy_setopt (e, CURLOPT_READFUNCTION, read_fd);
      curl_easy_setopt (e, CURLOPT_READDATA, &body_fd);
      curl_easy_setopt (e, CURLOPT_HTTPHEADER, h);
    }
  else if (strcmp (method, "POST") == 0)
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, "");
  res = http_perform (e, r);
  curl_slist_free_all (h);
  curl_easy_cleanup (e);
  if (res != CURLE_OK && !r->too_big)
    return ef_err_set (err, EF_LOCAL, "%s at %s: %s", runtime_name (rt), rt->socket,
                       r->errbuf[0] ? r->errbuf : curl_easy_strerror (res));
  return 0;
}

/* The Id of an image by name or ID, or "" when the runtime has none. */
static int
image_id (const struct runtime_spec *rt, const char *name, char *id, size_t len, ef_err **err)
{
  char *enc = curl_easy_escape (NULL, name, 0);
  cleanup_free char *path = xasprintf (ENGINE "/images/%s/json", enc ? enc : "");
  struct http_resp r;
  json_t *j;
  int rc;

  curl_free (enc);
  id[0] = '\0';
  rc = api (rt, "GET", path, -1, &r, err);
  if (rc == 0 && r.status == 200 && (j = ef_json_parse (r.body.data, r.body.len, EF_JSON_BUDGET, NULL)) != NULL)
    {
      json_t *v = json_object_get (j, "Id");
      snprintf (id, len, "%s", json_is_string (v) ? json_string_value (v) : "");
      json_decref (j);
    }
  http_resp_dispose (&r);
  return rc;
}

/* The first error in the JSON message stream of an image load. */
static const char *
stream_error (const char *text, char *buf, size_t len)
{
  const char *p = text;

  while (p && *p)
    {
      const char *nl = strchr (p, '\n');
      json_t *j = ef_json_parse (p, nl ? (size_t) (nl - p) : strlen (p), EF_JSON_BUDGET, NULL);
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

/* Stream the archive to the runtime's load. */
static int
load (const struct runtime_spec *rt, reg_store *s, const struct reg_pull_result *res, const struct reg_ref *ref,
      ef_err **err)
{
  bool podman = rt->kind == RT_PODMAN;
  struct runtime_pump *pu;
  struct http_resp r;
  char msg[512];
  int rfd, rc, prc;

  rc = runtime_pump_start (&pu, s, res, ref, podman ? REG_EXPORT_OCI_ARCHIVE : REG_EXPORT_DOCKER_ARCHIVE, podman,
                           &rfd, err);
  if (rc < 0)
    return rc;
  rc = api (rt, "POST", podman ? LIBPOD "/images/load" : ENGINE "/images/load?quiet=1", rfd, &r, err);
  close (rfd); /* a writer still going gets EPIPE and stops */
  prc = runtime_pump_finish (pu, rc == 0 ? err : NULL);
  if (rc == 0)
    rc = prc; /* the store's failure comes first: it says why the archive was cut */
  if (rc == 0 && r.status != 200)
    rc = ef_err_set (err, EF_LOCAL, "%s refused the image: HTTP %ld %.200s", runtime_name (rt), r.status, r.body.data);
  else if (rc == 0 && stream_error (r.body.data, msg, sizeof msg))
    rc = ef_err_set (err, EF_LOCAL, "%s refused the image: %s", runtime_name (rt), msg);
  http_resp_dispose (&r);
  return rc;
}

static int
tag (const struct runtime_spec *rt, const char *id, const char *repo, const char *t, const char *name, ef_err **err)
{
  char *er = curl_easy_escape (NULL, repo, 0), *et = curl_easy_escape (NULL, t, 0);
  cleanup_free char *path = xasprintf (ENGINE "/images/%s/tag?repo=%s&tag=%s", id, er ? er : "", et ? et : "");
  struct http_resp r;
  int rc;

  curl_free (er);
  curl_free (et);
  rc = api (rt, "POST", path, -1, &r, err);
  if (rc == 0 && r.status != 201 && r.status != 200)
    rc = ef_err_set (err, EF_LOCAL, "%s would not tag the image %s (HTTP %ld)", runtime_name (rt), name, r.status);
  http_resp_dispose (&r);
  return rc;
}

/* Docker gets a docker-archive, the only archive docker 20.10 reads; a
 * digest-only reference gets the tag sha256-<hex> there, since a tag
 * cannot hold '@'.  Podman gets an OCI archive through libpod: it keeps
 * the manifest as it is, so the image answers to NAME@DIGEST as well. */
int
runtime_engine_handoff (const struct runtime_spec *rt, reg_store *s, const struct reg_pull_result *res,
                        const struct reg_ref *ref, struct runtime_result *out, ef_err **err)
{
  bool podman = rt->kind == RT_PODMAN;
  const char *pinned = res->index_digest ? res->index_digest : res->manifest_digest;
  cleanup_free char *repo = NULL, *t = NULL;
  char id[128];
  int rc;

  /* docker's short name for Docker Hub */
  repo = strcmp (ref->domain, "docker.io") == 0 && !podman
             ? xstrdup (strncmp (ref->path, "library/", 8) == 0 ? ref->path + 8 : ref->path)
             : xasprintf ("%s/%s", ref->domain, ref->path);
  if (ref->tag)
    t = xstrdup (ref->tag);
  else if (!podman)
    t = xasprintf ("sha256-%s", res->manifest_digest + 7);
  if (t)
    snprintf (out->name, sizeof out->name, "%s:%s", repo, t);
  else
    snprintf (out->name, sizeof out->name, "%s@%s", repo, pinned);

  rc = image_id (rt, podman ? out->name : res->config_digest, id, sizeof id, err);
  out->sent = rc == 0 && strcmp (id, res->config_digest) != 0;
  if (out->sent)
    rc = load (rt, s, res, ref, err);
  /* the archive names tagged images already; this also moves an existing tag */
  if (rc == 0 && t)
    rc = tag (rt, res->config_digest, repo, t, out->name, err);
  if (rc == 0)
    rc = image_id (rt, out->name, id, sizeof id, err);
  if (rc == 0 && strcmp (id, res->config_digest) != 0)
    rc = ef_err_set (err, EF_LOCAL, "%s holds %s as %s, not the image ID %s", runtime_name (rt), out->name,
                     id[0] ? id : "nothing", res->config_digest);
  return rc;
}

int
runtime_engine_remove (const struct runtime_spec *rt, const char *name, ef_err **err)
{
  char *enc = curl_easy_escape (NULL, name, 0);
  cleanup_free char *path = xasprintf (ENGINE "/images/%s", enc ? enc : "");
  struct http_resp r;
  int rc;

  curl_free (enc);
  rc = api (rt, "DELETE", path, -1, &r, err);
  if (rc == 0 && r.status != 200 && r.status != 404)
    rc = ef_err_set (err, EF_LOCAL, "%s would not remove %s (HTTP %ld%s)", runtime_name (rt), name, r.status,
                     r.status == 409 ? ": a container uses it" : "");
  http_resp_dispose (&r);
  return rc;
}
