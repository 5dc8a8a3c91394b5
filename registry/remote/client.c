/* client.c: see client.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "../../common/digest.h"
#include "../../common/json.h"
#include "../../common/util.h"
#include "client.h"
#include "routes.h"

struct client_routes
{
  struct client_routes *next;
  reg_routes *r;
};

struct reg_client
{
  struct reg_client_opts o;
  struct http_retry retry;
  reg_session *session;
  struct client_routes *routes; /* one per registry, made on first use */
  bool no_ranges;               /* a registry of this pull answered a Range request wrongly */
  bool ranges_ok;               /* ... or answered one rightly */
  int64_t paced_since, paced;   /* ranges under the rate cap: since when (ms), how many bytes */
  const char *range_source;     /* the host that answered the last range */
  char *spool_dir;              /* o.spool_dir, ours */
  CURL *easy;
};

int
reg_client_new (reg_client **out, const struct reg_client_opts *o, ef_err **err)
{
  struct reg_session_opts so;
  reg_client *c;
  int rc;

  *out = NULL;
  if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  c = xcalloc (1, sizeof *c);
  c->o = *o;
  memset (&c->o.session, 0, sizeof c->o.session); /* the session keeps its own copies */
  c->spool_dir = o->spool_dir ? xstrdup (o->spool_dir) : NULL;
  c->o.spool_dir = c->spool_dir;
  if (c->o.jobs <= 0)
    c->o.jobs = 16;
  if (c->o.low_speed_limit <= 0)
    c->o.low_speed_limit = 1024;
  if (c->o.low_speed_time <= 0)
    c->o.low_speed_time = 30;
  http_retry_init (&c->retry, o->max_attempts, o->retry_base_ms, o->cancel);
  c->retry.stall_bytes = c->o.low_speed_limit;
  c->retry.stall_secs = c->o.low_speed_time;
  c->o.max_attempts = c->retry.max_attempts;
  c->o.retry_base_ms = c->retry.base_ms;
  so = o->session;
  so.warm = (c->o.jobs < REG_START_CONNS ? c->o.jobs : REG_START_CONNS) - 1;
  rc = reg_session_new (&c->session, &so, &c->retry, err);
  if (rc == 0 && (c->easy = curl_easy_init ()) == NULL)
    rc = ef_err_set (err, EF_LOCAL, "libcurl initialisation failed");
  if (rc < 0)
    {
      reg_session_free (c->session);
      free (c->spool_dir);
      free (c);
      curl_global_cleanup ();
      return rc;
    }
  *out = c;
  return 0;
}

void
reg_client_free (reg_client *c)
{
  if (c == NULL)
    return;
  for (struct client_routes *r = c->routes, *n; r; r = n)
    {
      n = r->next;
      reg_routes_free (r->r);
      free (r);
    }
  if (c->easy)
    curl_easy_cleanup (c->easy); /* before the session, whose connections it shares */
  reg_session_free (c->session);
  free (c->spool_dir);
  free (c);
  curl_global_cleanup ();
}

int
reg_client_routes (reg_client *c, const struct reg_ref *ref, reg_routes **out, ef_err **err)
{
  struct client_routes *cr;
  int rc;

  for (cr = c->routes; cr; cr = cr->next)
    if (strcmp (reg_routes_domain (cr->r), ref->domain) == 0)
      {
        *out = cr->r;
        return 0;
      }
  cr = xcalloc (1, sizeof *cr);
  rc = reg_routes_new (&cr->r, c->session, reg_session_certs_dirs (c->session), ref, err);
  if (rc < 0)
    {
      free (cr);
      return rc;
    }
  cr->next = c->routes;
  c->routes = cr;
  *out = cr->r;
  return 0;
}

void
reg_client_revive_mirrors (reg_client *c)
{
  for (struct client_routes *r = c->routes; r; r = r->next)
    reg_routes_revive (r->r);
}

reg_session *
reg_client_session (reg_client *c)
{
  return c->session;
}

struct http_retry *
reg_client_retry (reg_client *c)
{
  return &c->retry;
}

const struct reg_client_opts *
reg_client_opts (const reg_client *c)
{
  return &c->o;
}

char *
reg_client_scope (const struct reg_ref *ref)
{
  return xasprintf ("repository:%s:pull", ref->path);
}

void
reg_client_error_body (const struct ef_buf *body, char *code, size_t clen, char *msg, size_t mlen)
{
  json_t *root = body->data ? ef_json_parse (body->data, body->len, EF_JSON_BUDGET, NULL) : NULL;
  json_t *first = json_array_get (json_object_get (root, "errors"), 0);
  json_t *jc = json_object_get (first, "code"), *jm = json_object_get (first, "message");

  snprintf (code, clen, "%s", json_is_string (jc) ? json_string_value (jc) : "");
  snprintf (msg, mlen, "%s", json_is_string (jm) ? json_string_value (jm) : "");
  for (char *p = code; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
      *p = '?';
  json_decref (root);
}

void
reg_manifest_resp_dispose (struct reg_manifest_resp *r)
{
  free (r->body);
  free (r->content_type);
  memset (r, 0, sizeof *r);
}

/* GET url with retries, authorized for scope, a 401 answered once by
 * authorizing again; r holds the last response. */
static int
get_with_retries (reg_client *c, reg_host *h, const struct reg_ref *ref, const char *url, const char *scope,
                  struct curl_slist *hdrs, struct http_resp *r, ef_err **err)
{
  bool reauthed = false;
  CURLcode res;
  int rc;

  for (int attempt = 1;; attempt++)
    {
      reg_session_prepare (c->session, h, c->easy, url, scope);
      curl_easy_setopt (c->easy, CURLOPT_HTTPHEADER, hdrs);
      res = http_perform (c->easy, r);
      if (http_cancelled (&c->retry))
        return ef_err_set (err, EF_NET, "interrupted");
      if (r->too_big)
        return ef_err_set (err, EF_VERIFY, "manifest larger than %u bytes", REG_MANIFEST_MAX);
      if (res == CURLE_OK && r->status == 401 && !reauthed)
        {
          reauthed = true;
          rc = reg_session_reauth (c->session, h, c->easy, ref->domain, scope, err);
          if (rc < 0)
            return rc;
          attempt--;
          continue;
        }
      if (reg_host_is_mirror (h) || !http_again (&c->retry, c->easy, attempt, res, r->status))
        break; /* a mirror's retry is the next host */
    }
  if (res != CURLE_OK)
    return http_error (err, res, r->errbuf, "is the registry's CA in --ca-file or certs.d?");
  return 0;
}

static int
status_error (const struct http_resp *r, bool by_digest, ef_err **err)
{
  char code[64], msg[256];

  reg_client_error_body (&r->body, code, sizeof code, msg, sizeof msg);
  if (r->status == 404)
    return ef_err_set (err, EF_NOTFOUND, "%s", strcmp (code, "NAME_UNKNOWN") == 0 ? "repository not found"
                                              : by_digest ? "manifest unknown: no such digest"
                                                          : "manifest unknown: no such tag");
  if (r->status == 401)
    return ef_err_set (err, EF_AUTH, "401 unauthorized (check --creds)");
  if (r->status == 403)
    return ef_err_set (err, EF_AUTH, "403 denied%s%s", msg[0] ? ": " : "", msg);
  return ef_err_set (err, EF_NET, "HTTP %ld%s%s", r->status, msg[0] ? ": " : "", msg);
}

/* A file in the spool dir for one body, gone when closed; -1 when there
 * is no spool dir or it cannot take one (the body then goes to memory). */
static int
spool_open (const reg_client *c)
{
  int fd;

  if (c->spool_dir == NULL)
    return -1;
  fd = open (c->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      cleanup_free char *tmpl = xasprintf ("%s/.manifest.XXXXXX", c->spool_dir);
      fd = mkostemp (tmpl, O_CLOEXEC);
      if (fd >= 0)
        unlink (tmpl);
    }
  return fd;
}

/* The spooled body into r->body: an error answer's first 64 KiB as it
 * is; a 200's only when its JSON fits REG_MANIFEST_TREE_MAX and it is not
 * padded past REG_MANIFEST_PADDING times its compact form.  So neither a
 * tree of millions of values nor 4 MiB of blanks around a small one are
 * ever held. */
static int
unspool (struct http_resp *r, ef_err **err)
{
  size_t want = r->spooled;
  const char *why = NULL;
  json_t *j;
  ssize_t n;

  if (r->spool_failed)
    return ef_err_io (err, errno, "spool the manifest");
  if (r->status != 200)
    want = want > 65536 ? 65536 : want;
  else
    {
      size_t compact;
      j = ef_json_parse_fd (r->spool, REG_MANIFEST_TREE_MAX, &why);
      if (j == NULL)
        return ef_err_set (err, EF_VERIFY, "manifest %s", why);
      compact = json_dumpb (j, NULL, 0, JSON_COMPACT);
      json_decref (j);
      if (want > compact * REG_MANIFEST_PADDING + 65536)
        return ef_err_set (err, EF_VERIFY, "manifest is %zu bytes of JSON padded to %zu: refused", compact, want);
    }
  r->body.len = 0;
  for (size_t off = 0; off < want; off += (size_t) n)
    {
      char chunk[16384];
      n = pread (r->spool, chunk, want - off < sizeof chunk ? want - off : sizeof chunk, (off_t) off);
      if (n <= 0 || ef_buf_append (&r->body, chunk, (size_t) n) < 0)
        return ef_err_io (err, n < 0 ? errno : EIO, "read the spooled manifest back");
    }
  return 0;
}

/* GET <kind>/<what> of ref's repository on h: a manifest (whose digest
 * is checked) or the referrers index of a digest (whose content may
 * change, so it is not). */
static int
get_from (reg_client *c, reg_host *h, const struct reg_ref *ref, const char *kind, const char *tag_or_digest,
          const char *query, struct reg_manifest_resp *out, ef_err **err)
{
  cleanup_free char *scope = reg_client_scope (ref);
  cleanup_free char *url
      = reg_host_url (h, ref->domain, "/%s/%s/%s%s", ref->path, kind, tag_or_digest, query ? query : "");
  bool manifest = strcmp (kind, "manifests") == 0;
  bool by_digest = manifest && strncmp (tag_or_digest, "sha256:", 7) == 0;
  struct curl_slist *hdrs = reg_host_headers (h, "Accept: " REG_MANIFEST_ACCEPT);
  struct http_resp r;
  const char *v;
  int rc;

  memset (out, 0, sizeof *out);
  http_resp_init (&r, REG_MANIFEST_MAX);
  r.spool = spool_open (c);
  rc = reg_session_authorize (c->session, h, ref->domain, scope, err);
  if (rc == 0)
    rc = get_with_retries (c, h, ref, url, scope, hdrs, &r, err);
  if (rc == 0 && r.spool >= 0)
    rc = unspool (&r, err);
  if (r.spool >= 0)
    close (r.spool);
  if (rc == 0 && r.status != 200)
    rc = status_error (&r, by_digest, err);
  if (rc == 0)
    {
      ef_digest_buf (r.body.data, r.body.len, out->digest);
      v = http_header (c->easy, "Docker-Content-Digest", 0);
      if (by_digest && strcmp (out->digest, tag_or_digest) != 0)
        rc = ef_err_set (err, EF_VERIFY, "manifest content does not match the requested digest %s (got %s)",
                         tag_or_digest, out->digest);
      else if (manifest && v && strncmp (v, "sha256:", 7) == 0 && strcmp (v, out->digest) != 0)
        rc = ef_err_set (err, EF_VERIFY, "manifest content does not match Docker-Content-Digest %.80s", v);
    }
  if (rc == 0)
    {
      v = http_header (c->easy, "Content-Type", 0);
      out->content_type = v ? xstrdup (v) : NULL;
      out->body = r.body.data;
      out->len = r.body.len;
      r.body.data = NULL;
      snprintf (out->source, sizeof out->source, "%s", reg_host_name (h));
    }
  curl_slist_free_all (hdrs);
  http_resp_dispose (&r);
  if (rc < 0)
    reg_manifest_resp_dispose (out);
  return rc;
}

/* The document from the first route that can serve it: a mirror that
 * fails is passed over (and, when it could not be reached or sent wrong
 * bytes, skipped for the rest of the pull); the registry's answer is final. */
static int
get_document (reg_client *c, const struct reg_ref *ref, const char *kind, const char *tag_or_digest,
              const char *query, struct reg_manifest_resp *out, ef_err **err)
{
  bool manifest = strcmp (kind, "manifests") == 0;
  unsigned cap = manifest && strncmp (tag_or_digest, "sha256:", 7) == 0 ? REG_CAP_PULL : REG_CAP_RESOLVE;
  reg_routes *routes;
  int rc = reg_client_routes (c, ref, &routes, err);

  for (long i = rc < 0 ? -1 : reg_routes_next (routes, -1, cap); i >= 0; i = reg_routes_next (routes, i, cap))
    {
      struct reg_route *rt = reg_routes_get (routes, (size_t) i);
      ef_err *e = NULL;
      if (rt->mirror && !manifest)
        continue; /* referrers change: asked of the registry alone */
      rc = get_from (c, rt->h, ref, kind, tag_or_digest, query, out, &e);
      if (rc == 0 || !rt->mirror || http_cancelled (&c->retry))
        return rc < 0 ? ef_err_propagate (err, e) : 0;
      if (rc == -EF_NET || rc == -EF_VERIFY)
        rt->dead = true;
      ef_err_free (e);
    }
  return rc < 0 ? rc : ef_err_set (err, EF_USAGE, "hosts.toml of %s leaves no host to fetch from", ref->domain);
}

int
reg_client_blob_size (reg_client *c, const struct reg_ref *ref, const char *digest, int64_t *size, ef_err **err)
{
  cleanup_free char *scope = reg_client_scope (ref);
  cleanup_free char *url = NULL;
  struct http_resp r;
  curl_off_t len = -1;
  reg_host *h;
  int rc = reg_session_host (c->session, ref->api_host, &h, err);

  *size = -1;
  if (rc == 0)
    rc = reg_session_authorize (c->session, h, ref->domain, scope, err);
  if (rc < 0)
    return rc;
  url = reg_host_url (h, NULL, "/%s/blobs/%s", ref->path, digest);
  http_resp_init (&r, 4096);
  for (int attempt = 1, reauthed = 0;; attempt++)
    {
      CURLcode res;
      reg_session_prepare (c->session, h, c->easy, url, scope);
      curl_easy_setopt (c->easy, CURLOPT_NOBODY, 1L);
      res = http_perform (c->easy, &r);
      if (res == CURLE_OK && r.status == 401 && !reauthed++)
        {
          if ((rc = reg_session_reauth (c->session, h, c->easy, ref->domain, scope, err)) < 0)
            break;
          continue;
        }
      if (http_again (&c->retry, c->easy, attempt, res, r.status))
        continue;
      if (res != CURLE_OK)
        rc = http_error (err, res, r.errbuf, NULL);
      else if (r.status == 404)
        rc = ef_err_set (err, EF_NOTFOUND, "blob %s: not found in the registry", digest);
      else if (r.status != 200)
        rc = ef_err_set (err, r.status == 401 || r.status == 403 ? EF_AUTH : EF_NET, "blob %s: HTTP %ld", digest,
                         r.status);
      else if (curl_easy_getinfo (c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK || len < 0)
        rc = ef_err_set (err, EF_NET, "blob %s: the registry gave no length", digest);
      break;
    }
  http_resp_dispose (&r);
  if (rc == 0)
    *size = (int64_t) len;
  return rc;
}

const char *
reg_client_range_source (const reg_client *c)
{
  return c->range_source;
}

bool
reg_client_ranges_refused (const reg_client *c)
{
  return c->no_ranges;
}

/* The rate cap across range requests, which go one after another: after
 * n more bytes, wait until the cap allows what came so far (not reading
 * the socket meanwhile, so that TCP holds the sender back too). */
static void
pace (reg_client *c, int64_t n)
{
  int64_t now = ef_now_ms (), due;

  if (c->o.limit_rate <= 0)
    return;
  if (c->paced_since == 0 || now - c->paced_since > 60000)
    {
      c->paced_since = now; /* a new run of ranges */
      c->paced = 0;
    }
  c->paced += n;
  due = c->paced_since + c->paced * 1000 / c->o.limit_rate;
  if (due > now)
    {
      struct timespec ts = { (time_t) ((due - now) / 1000), (long) ((due - now) % 1000) * 1000000 };
      nanosleep (&ts, NULL);
    }
}

struct range_sink
{
  reg_client *c;
  int64_t from, to;
  int64_t at; /* where this attempt starts: from, plus what earlier ones brought */
  reg_chunk_fn fn;
  void *payload;
  CURL *e;
  bool checked, refused;
  long status;
  int64_t got;
  ef_err *err;
};

static size_t
range_cb (char *p, size_t size, size_t n, void *ud)
{
  struct range_sink *rs = ud;
  size_t len = size * n;

  if (!rs->checked)
    {
      char want[96];
      const char *cr;
      rs->checked = true;
      curl_easy_getinfo (rs->e, CURLINFO_RESPONSE_CODE, &rs->status);
      if (rs->status == 401 || rs->status == 404)
        return 0; /* judged by the caller */
      cr = http_header (rs->e, "Content-Range", 0);
      snprintf (want, sizeof want, "bytes %lld-%lld/", (long long) rs->at, (long long) rs->to);
      if (rs->status != 206 || cr == NULL || strncmp (cr, want, strlen (want)) != 0)
        {
          rs->refused = true; /* 200, 416, 501 or another range: not one we can use */
          return 0;
        }
    }
  if (rs->got + (int64_t) len > rs->to - rs->from + 1)
    {
      rs->refused = true;
      return 0;
    }
  if (rs->fn (rs->payload, p, len, &rs->err) < 0)
    return 0;
  rs->got += (int64_t) len;
  pace (rs->c, (int64_t) len);
  return len;
}

/* Until a registry has answered a Range request rightly, ask on a new
 * connection with a small receive window: one that ignores Range then
 * gets little of the whole blob into our socket before we hang up. */
static int
probe_sockopt (void *ud, curl_socket_t fd, curlsocktype purpose)
{
  int n = 16384;

  if (purpose == CURLSOCKTYPE_IPCXN)
    {
      setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
      reg_session_sockopt (ud, fd);
    }
  return CURL_SOCKOPT_OK;
}

/* One attempt at the range on h. */
static int
range_from (reg_client *c, reg_host *h, const struct reg_ref *ref, const char *digest, struct range_sink *rs,
            ef_err **err)
{
  cleanup_free char *scope = reg_client_scope (ref);
  cleanup_free char *url = reg_host_url (h, ref->domain, "/%s/blobs/%s", ref->path, digest);
  char range[64], errbuf[CURL_ERROR_SIZE] = "";
  int rc = reg_session_authorize (c->session, h, ref->domain, scope, err);

  for (int attempt = 1, reauthed = 0; rc == 0; attempt++)
    {
      CURLcode res;
      rs->at = rs->from + rs->got; /* a cut answer goes on from where it stopped */
      reg_session_prepare (c->session, h, c->easy, url, scope);
      snprintf (range, sizeof range, "%lld-%lld", (long long) rs->at, (long long) rs->to);
      curl_easy_setopt (c->easy, CURLOPT_RANGE, range);
      curl_easy_setopt (c->easy, CURLOPT_WRITEFUNCTION, range_cb);
      curl_easy_setopt (c->easy, CURLOPT_WRITEDATA, rs);
      curl_easy_setopt (c->easy, CURLOPT_ERRORBUFFER, errbuf);
      if (!c->ranges_ok)
        {
          curl_easy_setopt (c->easy, CURLOPT_FRESH_CONNECT, 1L);
          curl_easy_setopt (c->easy, CURLOPT_FORBID_REUSE, 1L);
          curl_easy_setopt (c->easy, CURLOPT_BUFFERSIZE, 16384L);
          curl_easy_setopt (c->easy, CURLOPT_SOCKOPTFUNCTION, probe_sockopt);
          curl_easy_setopt (c->easy, CURLOPT_SOCKOPTDATA, c->session);
        }
      rs->e = c->easy;
      rs->checked = false;
      rs->status = 0;
      res = curl_easy_perform (c->easy);
      curl_easy_setopt (c->easy, CURLOPT_ERRORBUFFER, NULL);
      if (rs->err)
        return ef_err_propagate (err, rs->err);
      if (!rs->checked)
        curl_easy_getinfo (c->easy, CURLINFO_RESPONSE_CODE, &rs->status);
      if (rs->refused)
        {
          c->no_ranges = true;
          return ef_err_set (err, EF_NET, "blob %s: the registry answered HTTP %ld to a Range request", digest,
                             rs->status);
        }
      if (rs->status == 401 && !reauthed++)
        {
          rc = reg_session_reauth (c->session, h, c->easy, ref->domain, scope, err);
          continue;
        }
      if (res == CURLE_OK && rs->status == 206 && rs->got == rs->to - rs->from + 1)
        {
          c->ranges_ok = true;
          return 0;
        }
      if (reg_host_is_mirror (h) || !http_again (&c->retry, c->easy, attempt, res, rs->status))
        return res != CURLE_OK && rs->status != 404 ? http_error (err, res, errbuf, NULL)
                                                    : ef_err_set (err, rs->status == 404 ? EF_NOTFOUND : EF_NET,
                                                                  "blob %s: HTTP %ld to a Range request", digest,
                                                                  rs->status);
    }
  return rc;
}

int
reg_client_get_range (reg_client *c, const struct reg_ref *ref, const char *digest, int64_t from, int64_t to,
                      reg_chunk_fn fn, void *payload, ef_err **err)
{
  struct range_sink rs = { .c = c, .from = from, .to = to, .fn = fn, .payload = payload };
  reg_routes *routes;
  int rc;

  if (c->no_ranges)
    return ef_err_set (err, EF_NET, "the registry does not answer Range requests");
  rc = reg_client_routes (c, ref, &routes, err);
  for (long i = rc < 0 ? -1 : reg_routes_next (routes, -1, REG_CAP_PULL); i >= 0;
       i = reg_routes_next (routes, i, REG_CAP_PULL))
    {
      struct reg_route *rt = reg_routes_get (routes, (size_t) i);
      ef_err *e = NULL;
      rc = range_from (c, rt->h, ref, digest, &rs, &e);
      if (rc == 0)
        c->range_source = reg_host_name (rt->h);
      if (rc == 0 || !rt->mirror || rs.got > 0 || c->no_ranges || http_cancelled (&c->retry))
        return rc < 0 ? ef_err_propagate (err, e) : 0;
      ef_err_free (e);
    }
  return rc;
}

int
reg_client_get_manifest (reg_client *c, const struct reg_ref *ref, const char *tag_or_digest,
                         struct reg_manifest_resp *out, ef_err **err)
{
  return get_document (c, ref, "manifests", tag_or_digest, NULL, out, err);
}

int
reg_client_get_referrers (reg_client *c, const struct reg_ref *ref, const char *digest, const char *artifact_type,
                          struct reg_manifest_resp *out, ef_err **err)
{
  char *at = curl_easy_escape (NULL, artifact_type, 0);
  cleanup_free char *query = xasprintf ("?artifactType=%s", at ? at : "");

  curl_free (at);
  return get_document (c, ref, "referrers", digest, query, out, err);
}
