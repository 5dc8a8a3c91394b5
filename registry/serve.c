/* serve.c: see serve.h. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "../common/digest.h"
#include "../common/util.h"
#include "manifest.h"
#include "serve.h"

#define BLOCK (64 * 1024)

/* libmicrohttpd, and the GnuTLS it brings, load only when a server starts. */
#define MHD_FUNCS(X)                                                                                                  \
  X (MHD_start_daemon)                                                                                                \
  X (MHD_stop_daemon)                                                                                                 \
  X (MHD_get_daemon_info)                                                                                             \
  X (MHD_lookup_connection_value)                                                                                     \
  X (MHD_create_response_from_buffer)                                                                                 \
  X (MHD_create_response_from_callback)                                                                               \
  X (MHD_add_response_header)                                                                                         \
  X (MHD_queue_response)                                                                                              \
  X (MHD_destroy_response)

static struct
{
#define MHD_FIELD(name) __typeof__ (name) *name;
  MHD_FUNCS (MHD_FIELD)
#undef MHD_FIELD
} mhd;

static int
mhd_load (ef_err **err)
{
  void *h;

  if (mhd.MHD_start_daemon)
    return 0;
  h = dlopen ("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    return ef_err_set (err, EF_LOCAL, "cannot load libmicrohttpd.so.12 to serve the store");
#define MHD_SYM(name)                                                                                                 \
  if ((*(void **) &mhd.name = dlsym (h, #name)) == NULL)                                                              \
    return ef_err_set (err, EF_LOCAL, "libmicrohttpd.so.12 lacks %s", #name);
  MHD_FUNCS (MHD_SYM)
#undef MHD_SYM
  return 0;
}

struct reg_server
{
  reg_store *s;
  char *origin;
  const struct reg_pull_result *pulling;
  const volatile sig_atomic_t *arriving;
  int64_t served; /* blob bytes sent (atomic) */
  struct MHD_Daemon *d;
  char address[64];
};

static enum MHD_Result
send_buf (struct MHD_Connection *c, unsigned status, const char *body, size_t len, const char *ctype,
          const char *digest)
{
  struct MHD_Response *r = mhd.MHD_create_response_from_buffer (len, (void *) body, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ok;

  mhd.MHD_add_response_header (r, "Docker-Distribution-API-Version", "registry/2.0");
  if (ctype)
    mhd.MHD_add_response_header (r, "Content-Type", ctype);
  if (digest)
    mhd.MHD_add_response_header (r, "Docker-Content-Digest", digest);
  ok = mhd.MHD_queue_response (c, status, r);
  mhd.MHD_destroy_response (r);
  return ok;
}

static enum MHD_Result
not_found (struct MHD_Connection *c, const char *code)
{
  char body[128];
  snprintf (body, sizeof body, "{\"errors\":[{\"code\":\"%s\",\"message\":\"not in this store\"}]}", code);
  return send_buf (c, MHD_HTTP_NOT_FOUND, body, strlen (body), "application/json", NULL);
}

/* A manifest by digest, or by tag through the records of "ORIGIN/NAME:TAG". */
static enum MHD_Result
manifest (reg_server *srv, struct MHD_Connection *c, const char *name, const char *ref)
{
  const char *ns = mhd.MHD_lookup_connection_value (c, MHD_GET_ARGUMENT_KIND, "ns");
  cleanup_free char *buf = NULL, *digest = NULL;
  reg_manifest *m = NULL;
  enum MHD_Result ok;
  size_t len;

  if (ef_digest_parse (ref, NULL, NULL) == 0)
    digest = xstrdup (ref);
  else if (ns || srv->origin)
    {
      cleanup_free char *record = xasprintf ("%s/%s:%s", ns ? ns : srv->origin, name, ref);
      cleanup_free char *index = NULL, *man = NULL;
      const struct reg_pull_result *p = srv->pulling;
      /* the image being pulled is recorded only once it is whole */
      if (p && strcmp (record, p->reference) == 0)
        digest = xstrdup (p->index_digest ? p->index_digest : p->manifest_digest);
      else if (reg_store_lookup (srv->s, record, &man, &index, NULL) == 0)
        digest = xstrdup (index ? index : man);
    }
  if (digest == NULL || reg_store_manifest (srv->s, digest, &buf, &len, &m, NULL) < 0)
    return not_found (c, "MANIFEST_UNKNOWN");
  ok = send_buf (c, MHD_HTTP_OK, buf, len, reg_manifest_media_type (m), digest);
  reg_manifest_free (m);
  return ok;
}

struct send
{
  reg_server *srv;
  reg_blob_reader *rd;
};

static ssize_t
blob_read (void *cls, uint64_t pos, char *buf, size_t max)
{
  struct send *sd = cls;
  ssize_t n = reg_blob_reader_read (sd->rd, buf, max, NULL);

  (void) pos; /* sequential: libmicrohttpd asks in order */
  if (n > 0)
    __atomic_add_fetch (&sd->srv->served, n, __ATOMIC_RELAXED);
  return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
blob_done (void *cls)
{
  struct send *sd = cls;
  reg_blob_reader_free (sd->rd);
  free (sd);
}

/* The size of a blob of the image being pulled, or -1. */
static int64_t
arriving_size (const reg_server *srv, const char *digest)
{
  const struct reg_pull_result *p = srv->pulling;

  if (p == NULL || srv->arriving == NULL || !*srv->arriving)
    return -1;
  int64_t config = p->total_size; /* the config's size is what the layers leave */
  for (size_t i = 0; i < p->nlayers; i++)
    {
      if (strcmp (digest, p->layer_digests[i]) == 0)
        return p->layer_sizes[i];
      config -= p->layer_sizes[i];
    }
  return strcmp (digest, p->config_digest) == 0 ? config : -1;
}

static enum MHD_Result
blob (reg_server *srv, struct MHD_Connection *c, const char *digest, bool head)
{
  cleanup_free char *path = NULL;
  struct MHD_Response *r;
  reg_blob_reader *rd = NULL;
  enum MHD_Result ok;
  struct stat st;
  int64_t size;

  if (ef_digest_parse (digest, NULL, NULL) < 0)
    return not_found (c, "BLOB_UNKNOWN");
  path = reg_store_blob_path (srv->s, digest);
  if (stat (path, &st) == 0 && S_ISREG (st.st_mode))
    size = st.st_size;
  else if ((size = arriving_size (srv, digest)) < 0)
    return not_found (c, "BLOB_UNKNOWN");
  if (!head && reg_blob_reader_follow (&rd, srv->s, digest, size, srv->arriving, NULL) < 0)
    return not_found (c, "BLOB_UNKNOWN");
  if (head)
    r = mhd.MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
  else
    {
      struct send *sd = xmalloc (sizeof *sd);
      sd->srv = srv;
      sd->rd = rd;
      r = mhd.MHD_create_response_from_callback ((uint64_t) size, BLOCK, blob_read, sd, blob_done);
    }
  if (head)
    {
      char n[32];
      snprintf (n, sizeof n, "%lld", (long long) size);
      mhd.MHD_add_response_header (r, "Content-Length", n);
    }
  mhd.MHD_add_response_header (r, "Content-Type", "application/octet-stream");
  mhd.MHD_add_response_header (r, "Docker-Content-Digest", digest);
  ok = mhd.MHD_queue_response (c, MHD_HTTP_OK, r);
  mhd.MHD_destroy_response (r);
  return ok;
}

static enum MHD_Result
handle (void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
        const char *upload, size_t *upload_size, void **state)
{
  reg_server *srv = cls;
  bool head = strcmp (method, "HEAD") == 0;
  const char *kind, *last;
  cleanup_free char *name = NULL;

  (void) version;
  (void) upload;
  (void) upload_size;
  (void) state;
  if (!head && strcmp (method, "GET") != 0)
    return send_buf (c, MHD_HTTP_METHOD_NOT_ALLOWED, "{}", 2, "application/json", NULL);
  if (strcmp (url, "/v2/") == 0 || strcmp (url, "/v2") == 0)
    return send_buf (c, MHD_HTTP_OK, "{}", 2, "application/json", NULL);
  if (strncmp (url, "/v2/", 4) != 0 || (last = strrchr (url, '/')) == url + 3)
    return not_found (c, "NAME_UNKNOWN");
  kind = last;
  while (kind > url + 4 && kind[-1] != '/')
    kind--;
  if (kind <= url + 4)
    return not_found (c, "NAME_UNKNOWN");
  name = xstrndup (url + 4, (size_t) (kind - 1 - (url + 4)));
  if (strncmp (kind, "manifests/", 10) == 0)
    return manifest (srv, c, name, last + 1);
  if (strncmp (kind, "blobs/", 6) == 0)
    return blob (srv, c, last + 1, head);
  return not_found (c, "NAME_UNKNOWN");
}

int
reg_server_start (reg_server **out, reg_store *s, const struct reg_server_opts *o, ef_err **err)
{
  const char *listen = o->listen ? o->listen : "127.0.0.1:0";
  const char *colon = strrchr (listen, ':');
  struct sockaddr_in sa = { 0 };
  const union MHD_DaemonInfo *info;
  reg_server *srv;
  uint64_t port;
  int rc;

  *out = NULL;
  if ((rc = mhd_load (err)) < 0)
    return rc;
  sa.sin_family = AF_INET;
  if (colon == NULL || ef_parse_u64 (colon + 1, 65535, &port) < 0)
    return ef_err_set (err, EF_USAGE, "listen address %s is not ADDR:PORT", listen);
  {
    cleanup_free char *addr = xstrndup (listen, (size_t) (colon - listen));
    if (inet_pton (AF_INET, addr, &sa.sin_addr) != 1)
      return ef_err_set (err, EF_USAGE, "listen address %s is not an IPv4 address", addr);
  }
  sa.sin_port = htons ((uint16_t) port);
  srv = xcalloc (1, sizeof *srv);
  srv->s = s;
  srv->origin = o->origin ? xstrdup (o->origin) : NULL;
  srv->pulling = o->pulling;
  srv->arriving = o->arriving;
  srv->d = mhd.MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                 handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa, MHD_OPTION_END);
  if (srv->d == NULL)
    {
      rc = ef_err_sys (err, EF_LOCAL, errno, "serve the store on %s", listen);
      reg_server_stop (srv);
      return rc;
    }
  info = mhd.MHD_get_daemon_info (srv->d, MHD_DAEMON_INFO_BIND_PORT);
  snprintf (srv->address, sizeof srv->address, "%s:%u", inet_ntoa (sa.sin_addr), info ? info->port : 0);
  *out = srv;
  return 0;
}

const char *
reg_server_address (const reg_server *srv)
{
  return srv->address;
}

int64_t
reg_server_served (const reg_server *srv)
{
  return __atomic_load_n (&srv->served, __ATOMIC_RELAXED);
}

void
reg_server_stop (reg_server *srv)
{
  if (srv == NULL)
    return;
  if (srv->d)
    mhd.MHD_stop_daemon (srv->d);
  free (srv->origin);
  free (srv);
}
