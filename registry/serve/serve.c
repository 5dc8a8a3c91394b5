/* serve.c: see serve.h. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/util.h"
#include "../manifest.h"
#include "serve.h"

#define BLOCK (64 * 1024)
#define DENIED "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"a client certificate of this site is required\"}]}"

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
  X (MHD_destroy_response)                                                                                            \
  X (MHD_get_connection_info)

static struct
{
#define MHD_FIELD(name) __typeof__ (name) *name;
  MHD_FUNCS (MHD_FIELD)
#undef MHD_FIELD
} mhd;

/* GnuTLS, which libmicrohttpd brought: only to check client certificates. */
static struct
{
  int (*verify_peers2) (void *session, unsigned int *status);
  const void *(*get_peers) (void *session, unsigned int *list_size);
} gtls;

static int
gnutls_load (ef_err **err)
{
  void *h = dlopen ("libgnutls.so.30", RTLD_NOW | RTLD_NOLOAD);

  if (h == NULL)
    return ef_err_set (err, EF_LOCAL, "libmicrohttpd came without libgnutls.so.30: cannot check client certificates");
  *(void **) &gtls.verify_peers2 = dlsym (h, "gnutls_certificate_verify_peers2");
  *(void **) &gtls.get_peers = dlsym (h, "gnutls_certificate_get_peers");
  if (gtls.verify_peers2 == NULL || gtls.get_peers == NULL)
    return ef_err_set (err, EF_LOCAL, "libgnutls.so.30 lacks the certificate checks");
  return 0;
}

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
  reg_cache *cache;
  char *cert, *key, *client_ca; /* PEM texts, for TLS */
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
  const char *origin = ns ? ns : srv->origin;
  bool by_digest = ef_digest_parse (ref, NULL, NULL) == 0;
  cleanup_free char *buf = NULL, *digest = NULL;
  reg_manifest *m = NULL;
  enum MHD_Result ok;
  size_t len;

  /* a site cache asks the origin for a tag, and fetches a digest it lacks */
  if (srv->cache && reg_cache_serves (srv->cache, origin) && (!by_digest || !reg_store_has (srv->s, ref, -1))
      && reg_cache_manifest (srv->cache, origin, name, ref, &digest, NULL) < 0 && by_digest)
    return not_found (c, "MANIFEST_UNKNOWN");
  if (digest == NULL && by_digest)
    digest = xstrdup (ref);
  else if (digest == NULL && origin)
    {
      cleanup_free char *record = xasprintf ("%s/%s:%s", origin, name, ref);
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
  reg_cache_fetch *f; /* the cache's fetch it follows, or NULL */
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
  reg_cache_fetch_release (sd->f);
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
blob (reg_server *srv, struct MHD_Connection *c, const char *name, const char *digest, bool head)
{
  const char *ns = mhd.MHD_lookup_connection_value (c, MHD_GET_ARGUMENT_KIND, "ns");
  const volatile sig_atomic_t *arriving = srv->arriving;
  cleanup_free char *path = NULL;
  reg_cache_fetch *f = NULL;
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
  else if ((size = arriving_size (srv, digest)) >= 0)
    ;
  else if (srv->cache == NULL || reg_cache_blob (srv->cache, ns ? ns : srv->origin, name, digest, &size, &f, NULL) < 0)
    return not_found (c, "BLOB_UNKNOWN");
  else if (f)
    arriving = reg_cache_fetch_arriving (f);
  if (!head && reg_blob_reader_follow (&rd, srv->s, digest, size, arriving, NULL) < 0)
    {
      reg_cache_fetch_release (f);
      return not_found (c, "BLOB_UNKNOWN");
    }
  if (head)
    {
      reg_cache_fetch_release (f);
      f = NULL;
    }
  if (head)
    r = mhd.MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
  else
    {
      struct send *sd = xmalloc (sizeof *sd);
      sd->srv = srv;
      sd->rd = rd;
      sd->f = f;
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

/* With --client-ca: the client presented a certificate and it verifies
 * against that CA (libmicrohttpd only asks for one). */
static bool
client_trusted (struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci = mhd.MHD_get_connection_info (c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  unsigned int n = 0, status = 1;

  if (ci == NULL || ci->tls_session == NULL)
    return false;
  if (gtls.get_peers (ci->tls_session, &n) == NULL || n == 0)
    return false;
  return gtls.verify_peers2 (ci->tls_session, &status) == 0 && status == 0;
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
  if (srv->client_ca && !client_trusted (c))
    return send_buf (c, MHD_HTTP_FORBIDDEN, DENIED, sizeof DENIED - 1, "application/json", NULL);
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
    return blob (srv, c, name, last + 1, head);
  return not_found (c, "NAME_UNKNOWN");
}

/* The PEM texts libmicrohttpd takes, read once. */
static int
read_pems (reg_server *srv, const struct reg_server_opts *o, ef_err **err)
{
  const char *paths[3] = { o->tls_cert, o->tls_key, o->client_ca };
  char **dst[3] = { &srv->cert, &srv->key, &srv->client_ca };
  int rc = 0;

  if ((o->tls_cert == NULL) != (o->tls_key == NULL) || (o->client_ca && o->tls_cert == NULL))
    return ef_err_set (err, EF_USAGE, "--tls-cert and --tls-key go together, and --client-ca needs them");
  for (int i = 0; rc == 0 && i < 3; i++)
    if (paths[i] && ef_read_file (paths[i], 1u << 20, dst[i], NULL) < 0)
      rc = ef_err_sys (err, EF_USAGE, errno, "%s", paths[i]);
  if (rc == 0 && srv->client_ca)
    rc = gnutls_load (err);
  return rc;
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
  srv->cache = o->cache;
  rc = read_pems (srv, o, err);
  if (rc < 0)
    {
      reg_server_stop (srv);
      return rc;
    }
  if (srv->cert == NULL)
    srv->d = mhd.MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                   handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa, MHD_OPTION_END);
  else
    srv->d = mhd.MHD_start_daemon (
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS, 0, NULL, NULL, handle, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa, MHD_OPTION_HTTPS_MEM_CERT, srv->cert,
        MHD_OPTION_HTTPS_MEM_KEY, srv->key, srv->client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
        srv->client_ca, MHD_OPTION_END);
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
  free (srv->cert);
  ef_free_secret (srv->key);
  free (srv->client_ca);
  free (srv);
}
