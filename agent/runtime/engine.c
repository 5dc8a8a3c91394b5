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
#include "../../common/text.h"
#include "../../registry/remote/http.h"
#include "../../registry/serve/serve.h"
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

/* One call; body_fd >= 0 streams a tar as the request body; header (or
 * NULL) is one more request header. */
static int
api_with (const struct runtime_spec *rt, const char *method, const char *path, int body_fd, const char *header,
          struct http_resp *r, ef_err **err)
{
  struct curl_slist *h = header ? curl_slist_append (NULL, header) : NULL;
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
  if (h && body_fd < 0)
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, h);
  res = http_perform (e, r);
  if (header)
    explicit_bzero (h->data, strlen (h->data)); /* it may carry credentials */
  curl_slist_free_all (h);
  curl_easy_cleanup (e);
  if (res != CURLE_OK && !r->too_big)
    {
      int rc = ef_err_set (err, EF_LOCAL, "%s at %s: %s", runtime_name (rt), rt->socket,
                           r->errbuf[0] ? r->errbuf : curl_easy_strerror (res));
      http_resp_dispose (r); /* nothing to free after a failure */
      return rc;
    }
  return 0;
}

static int
api (const struct runtime_spec *rt, const char *method, const char *path, int body_fd, struct http_resp *r,
     ef_err **err)
{
  return api_with (rt, method, path, body_fd, NULL, r, err);
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

static bool
has_zstd (const struct reg_pull_result *res)
{
  for (size_t i = 0; i < res->nlayers; i++)
    if (strstr (res->layer_types[i], "+zstd"))
      return true;
  return false;
}

/* docker reads no zstd (20.10): such images go as a decompressed archive. */
bool
runtime_engine_pulls (const struct runtime_spec *rt, const struct reg_pull_result *res)
{
  return rt->kind == RT_PODMAN || !has_zstd (res);
}

/* The runtime pulls src@pinned from the store, served on loopback (plain
 * HTTP: both take 127.0.0.0/8 as an insecure registry). */
static int
engine_pull (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req, const char *pinned,
             char **src, int64_t *sent, ef_err **err)
{
  struct reg_server_opts so = { .origin = req->ref->domain, .pulling = req->res, .arriving = req->arriving };
  const struct reg_platform *p = req->platform;
  cleanup_free char *path = NULL, *from = NULL;
  reg_server *srv = NULL;
  struct http_resp r = { 0 };
  char plat[100], msg[512];
  char *e1, *e2, *e3;
  int rc = reg_server_start (&srv, s, &so, err);

  *src = NULL;
  if (rc < 0)
    return rc;
  from = xasprintf ("%s/%s", reg_server_address (srv), req->ref->path);
  reg_platform_format (p, plat, sizeof plat);
  e1 = curl_easy_escape (NULL, from, 0);
  e2 = curl_easy_escape (NULL, pinned, 0);
  e3 = curl_easy_escape (NULL, plat, 0);
  if (rt->kind == RT_PODMAN)
    path = xasprintf (LIBPOD "/images/pull?reference=%s%%40%s&tlsVerify=false&policy=always&os=%s&arch=%s%s%s", e1,
                      e2, p->os, p->arch, p->variant[0] ? "&variant=" : "", p->variant);
  else
    path = xasprintf (ENGINE "/images/create?fromImage=%s&tag=%s&platform=%s", e1, e2, e3);
  curl_free (e1);
  curl_free (e2);
  curl_free (e3);
  rc = api (rt, "POST", path, -1, &r, err);
  if (rc == 0 && r.status != 200)
    rc = ef_err_set (err, EF_LOCAL, "%s refused the image: HTTP %ld %.200s", runtime_name (rt), r.status, r.body.data);
  else if (rc == 0 && stream_error (r.body.data, msg, sizeof msg))
    rc = ef_err_set (err, EF_LOCAL, "%s refused the image: %s", runtime_name (rt), msg);
  http_resp_dispose (&r);
  *sent = reg_server_served (srv);
  reg_server_stop (srv);
  *src = xasprintf ("%s@%s", from, pinned);
  return rc;
}

/* Drop the loopback name the pull left (the image keeps its others). */
static void
forget (const struct runtime_spec *rt, const char *name)
{
  char *enc = curl_easy_escape (NULL, name, 0);
  cleanup_free char *path = xasprintf (ENGINE "/images/%s?noprune=1", enc ? enc : "");
  struct http_resp r;

  curl_free (enc);
  if (api (rt, "DELETE", path, -1, &r, NULL) == 0)
    http_resp_dispose (&r);
}

/* X-Registry-Auth: our credentials for the registry, for dockerd to use
 * there (base64url JSON); NULL without any.  Caller wipes and frees. */
static char *
registry_auth (const struct reg_ref *ref, const struct auth_creds *creds)
{
  const char *server = strcmp (ref->domain, "docker.io") == 0 ? "https://index.docker.io/v1/" : ref->domain;
  bool identity = creds && (creds->username == NULL || creds->username[0] == '\0');
  json_t *j;
  char *text, *b64, *header;

  if (creds == NULL)
    return NULL;
  j = identity ? json_pack ("{s:s, s:s}", "identitytoken", creds->secret, "serveraddress", server)
               : json_pack ("{s:s, s:s, s:s}", "username", creds->username, "password", creds->secret,
                            "serveraddress", server);
  text = json_dumps (j, JSON_COMPACT);
  json_decref (j);
  b64 = ef_b64_encode (text, strlen (text), true);
  header = xasprintf ("X-Registry-Auth: %s", b64);
  ef_free_secret (text);
  ef_free_secret (b64);
  return header;
}

/* docker records NAME@DIGEST only from a pull: ask dockerd to pull the
 * reference by its digest.  The image (its config) is there already, so
 * dockerd fetches the manifest and no blob.  Failing that, out->note. */
static void
record_digest (const struct runtime_spec *rt, const char *repo, const struct reg_ref *ref, const char *pinned,
               const char *config_digest, const struct auth_creds *creds, struct runtime_result *out)
{
  char *er = curl_easy_escape (NULL, repo, 0), *ed = curl_easy_escape (NULL, pinned, 0);
  cleanup_free char *path = xasprintf (ENGINE "/images/create?fromImage=%s&tag=%s", er ? er : "", ed ? ed : "");
  cleanup_free char *name = xasprintf ("%s@%s", repo, pinned);
  char *auth = registry_auth (ref, creds);
  cleanup_err ef_err *e = NULL;
  struct http_resp r;
  char msg[256] = "", id[128] = "";

  curl_free (er);
  curl_free (ed);
  if (api_with (rt, "POST", path, -1, auth, &r, &e) == 0 && r.status == 200 && !stream_error (r.body.data, msg, sizeof msg)
      && image_id (rt, name, id, sizeof id, &e) == 0 && strcmp (id, config_digest) == 0)
    snprintf (out->pinned, sizeof out->pinned, "%s", name);
  else
    {
      cleanup_free char *certs = xasprintf ("/etc/docker/certs.d/%s", ref->domain);
      snprintf (out->note, sizeof out->note, "dockerd could not record %s: %.200s%s", name,
                msg[0] ? msg : e ? ef_err_msg (e) : r.status != 200 ? "its pull was refused" : "the image differs",
                access (certs, F_OK) != 0 ? " (does dockerd trust the registry? its CA goes in /etc/docker/certs.d/"
                                            "HOST/ca.crt)"
                                          : "");
    }
  if (auth)
    ef_free_secret (auth);
  http_resp_dispose (&r);
}

/* Both pull the image from the store served on loopback, as it arrives;
 * docker gets a decompressed docker-archive instead when a layer is zstd.
 * Then the image is tagged with its reference (a digest-only reference
 * gets the tag sha256-<hex> in docker, since a tag cannot hold '@') and
 * NAME@DIGEST is checked (podman keeps the manifest) or recorded (docker,
 * by a pull from the registry that fetches no blob). */
int
runtime_engine_handoff (const struct runtime_spec *rt, reg_store *s, const struct runtime_request *req,
                        struct runtime_result *out, ef_err **err)
{
  const struct reg_pull_result *res = req->res;
  const struct reg_ref *ref = req->ref;
  bool podman = rt->kind == RT_PODMAN;
  const char *pinned = res->index_digest ? res->index_digest : res->manifest_digest;
  cleanup_free char *repo = NULL, *t = NULL, *src = NULL;
  bool pulls = runtime_engine_pulls (rt, res);
  char id[128];
  int rc;

  /* docker's short name for Docker Hub */
  repo = strcmp (ref->domain, "docker.io") == 0 && !podman
             ? xstrdup (strncmp (ref->path, "library/", 8) == 0 ? ref->path + 8 : ref->path)
             : xasprintf ("%s/%s", ref->domain, ref->path);
  /* a digest-only reference gets the tag sha256-<hex>: a tag cannot hold
   * '@', and a pulled image needs one name of its repository */
  if (ref->tag)
    t = xstrdup (ref->tag);
  else if (!podman || pulls)
    t = xasprintf ("sha256-%s", res->manifest_digest + 7);
  if (t && (ref->tag || !podman))
    snprintf (out->name, sizeof out->name, "%s:%s", repo, t);
  else
    snprintf (out->name, sizeof out->name, "%s@%s", repo, pinned);

  rc = image_id (rt, podman ? out->name : res->config_digest, id, sizeof id, err);
  out->sent = rc == 0 && strcmp (id, res->config_digest) != 0;
  if (out->sent && pulls)
    rc = engine_pull (rt, s, req, pinned, &src, &out->sent_bytes, err);
  else if (out->sent)
    rc = load (rt, s, res, ref, err);
  /* the archive names tagged images already; this also moves an existing tag */
  if (rc == 0 && t)
    rc = tag (rt, res->config_digest, repo, t, out->name, err);
  if (rc == 0)
    rc = image_id (rt, out->name, id, sizeof id, err);
  if (rc == 0 && strcmp (id, res->config_digest) != 0)
    rc = ef_err_set (err, EF_LOCAL, "%s holds %s as %s, not the image ID %s", runtime_name (rt), out->name,
                     id[0] ? id : "nothing", res->config_digest);
  if (src)
    forget (rt, src);
  if (rc == 0 && podman)
    {
      /* podman keeps the manifest: it answers to NAME@DIGEST already */
      cleanup_free char *name = xasprintf ("%s@%s", repo, pinned);
      rc = image_id (rt, name, id, sizeof id, err);
      if (rc == 0 && strcmp (id, res->config_digest) == 0)
        snprintf (out->pinned, sizeof out->pinned, "%s", name);
      else if (rc == 0)
        snprintf (out->note, sizeof out->note, "podman does not answer to %s", name);
    }
  else if (rc == 0)
    record_digest (rt, repo, ref, pinned, res->config_digest, req->creds, out);
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
