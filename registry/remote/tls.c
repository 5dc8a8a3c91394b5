/* tls.c: see tls.h. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../../common/text.h"
#include "../../common/util.h"
#include "tls.h"

#define MAX_CAS 32

struct reg_trust
{
  X509_STORE *store;
  char *cert, *key; /* client certificate, or NULL */
  bool no_verify;   /* hosts.toml's skip_verify = true */
};

/* Add every certificate of a PEM file; returns how many, -1 when unreadable. */
static int
add_pem (X509_STORE *store, const char *path)
{
  STACK_OF (X509_INFO) *infos;
  BIO *bio = BIO_new_file (path, "r");
  int added = 0;

  if (bio == NULL)
    return -1;
  infos = PEM_X509_INFO_read_bio (bio, NULL, NULL, NULL);
  BIO_free (bio);
  for (int k = 0; infos && k < sk_X509_INFO_num (infos); k++)
    {
      X509_INFO *xi = sk_X509_INFO_value (infos, k);
      if (xi->x509 && X509_STORE_add_cert (store, xi->x509) == 1)
        added++;
    }
  sk_X509_INFO_pop_free (infos, X509_INFO_free);
  ERR_clear_error ();
  return added;
}

static int
add_ca (reg_trust *t, const char *path, ef_err **err)
{
  if (add_pem (t->store, path) <= 0)
    return ef_err_set (err, EF_USAGE, "CA file %s holds no certificate", path);
  return 0;
}

/* DIR/<host>/: *.crt are CAs; X.cert with X.key is the client pair. */
static int
load_certs_dir (reg_trust *t, const char *dir, const char *host, size_t *ncas, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, host);
  struct dirent *de;
  DIR *d = opendir (path);
  int rc = 0;

  if (d == NULL)
    return 0;
  while (rc == 0 && (de = readdir (d)) != NULL)
    {
      const char *n = de->d_name;
      bool is_cert = ef_has_suffix (n, ".cert");
      if (ef_has_suffix (n, ".crt"))
        {
          cleanup_free char *ca = xasprintf ("%s/%s", path, n);
          if (++*ncas <= MAX_CAS)
            rc = add_ca (t, ca, err);
        }
      else if (is_cert || ef_has_suffix (n, ".key"))
        {
          size_t base = strlen (n) - (is_cert ? 5 : 4);
          cleanup_free char *other = xasprintf ("%s/%.*s%s", path, (int) base, n, is_cert ? ".key" : ".cert");
          struct stat st;
          if (stat (other, &st) < 0)
            rc = ef_err_set (err, EF_USAGE, "%s/%s has no matching %s file", path, n, is_cert ? ".key" : ".cert");
          else if (is_cert && t->cert == NULL)
            {
              t->cert = xasprintf ("%s/%s", path, n);
              t->key = xstrdup (other);
            }
        }
    }
  closedir (d);
  return rc;
}

int
reg_trust_new (reg_trust **out, const char *host, const char *const *certs_dirs, const char *const *ca_files,
               ef_err **err)
{
  const char *sys = curl_version_info (CURLVERSION_NOW)->cainfo;
  reg_trust *t = xcalloc (1, sizeof *t);
  size_t ncas = 0;
  int rc = 0;

  *out = NULL;
  t->store = X509_STORE_new ();
  if (t->store == NULL)
    {
      free (t);
      return ef_err_set (err, EF_LOCAL, "OpenSSL: out of memory");
    }
  /* No system CAs (a machine without ca-certificates): ours alone. */
  if (sys ? X509_STORE_load_file (t->store, sys) != 1 : X509_STORE_set_default_paths (t->store) != 1)
    ERR_clear_error ();
  for (size_t i = 0; rc == 0 && host && certs_dirs && certs_dirs[i]; i++)
    rc = load_certs_dir (t, certs_dirs[i], host, &ncas, err);
  for (size_t i = 0; rc == 0 && ca_files && ca_files[i]; i++)
    rc = add_ca (t, ca_files[i], err);
  if (rc < 0)
    {
      reg_trust_free (t);
      return rc;
    }
  *out = t;
  return 0;
}

int
reg_trust_derive (reg_trust **out, const reg_trust *from, const char *host, const char *const *certs_dirs,
                  ef_err **err)
{
  STACK_OF (X509_OBJECT) *objs = X509_STORE_get0_objects (from->store);
  reg_trust *t = NULL;
  int rc;

  *out = NULL;
  rc = reg_trust_new (&t, host, certs_dirs, NULL, err);
  if (rc < 0)
    return rc;
  for (int i = 0; i < sk_X509_OBJECT_num (objs); i++)
    {
      X509 *x = X509_OBJECT_get0_X509 (sk_X509_OBJECT_value (objs, i));
      if (x)
        X509_STORE_add_cert (t->store, x); /* a duplicate is refused, and that is fine */
    }
  ERR_clear_error ();
  if (t->cert == NULL && from->cert)
    reg_trust_set_client (t, from->cert, from->key);
  *out = t;
  return 0;
}

void
reg_trust_free (reg_trust *t)
{
  if (t == NULL)
    return;
  X509_STORE_free (t->store);
  free (t->cert);
  free (t->key);
  free (t);
}

void
reg_trust_set_client (reg_trust *t, const char *cert, const char *key)
{
  free (t->cert);
  free (t->key);
  t->cert = xstrdup (cert);
  t->key = xstrdup (key && *key ? key : cert);
}

void
reg_trust_skip_verify (reg_trust *t)
{
  t->no_verify = true;
}

bool
reg_trust_verifies (const reg_trust *t)
{
  return !t->no_verify;
}

static CURLcode
ssl_ctx_cb (CURL *e, void *sslctx, void *userdata)
{
  const reg_trust *t = userdata;

  (void) e;
  SSL_CTX_set1_cert_store ((SSL_CTX *) sslctx, t->store);
  return CURLE_OK;
}

void
reg_trust_apply (const reg_trust *t, CURL *e)
{
  curl_easy_setopt (e, CURLOPT_CAINFO, NULL);
  curl_easy_setopt (e, CURLOPT_CAPATH, NULL);
  curl_easy_setopt (e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
  curl_easy_setopt (e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
  curl_easy_setopt (e, CURLOPT_SSL_CTX_DATA, (void *) t);
  if (t->no_verify)
    {
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  if (t->cert)
    {
      curl_easy_setopt (e, CURLOPT_SSLCERT, t->cert);
      curl_easy_setopt (e, CURLOPT_SSLKEY, t->key);
    }
}
