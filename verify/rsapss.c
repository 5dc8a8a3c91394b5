/* rsapss.c: see rsapss.h.  Parsing and crypto are OpenSSL's. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../common/digest.h"
#include "../common/file.h"
#include "../common/util.h"
#include "rsapss.h"

#define PEM_MAX (64 * 1024)
#define MAX_KEYS 256
#define MIN_RSA_BITS 1024
#define MAX_CERT_DAYS 3653

struct vfy_key
{
  char *name;
  EVP_PKEY *pkey;
  char fingerprint[EF_DIGEST_LEN + 1]; /* sha256: of the DER SubjectPublicKeyInfo */
};

struct vfy_keyring
{
  struct vfy_key keys[MAX_KEYS];
  size_t n;
  char *notes[MAX_KEYS];
  size_t nnotes;
};

vfy_keyring *
vfy_keyring_new (void)
{
  return xcalloc (1, sizeof (vfy_keyring));
}

void
vfy_keyring_free (vfy_keyring *kr)
{
  size_t i;

  if (kr == NULL)
    return;
  for (i = 0; i < kr->n; i++)
    {
      free (kr->keys[i].name);
      EVP_PKEY_free (kr->keys[i].pkey);
    }
  for (i = 0; i < kr->nnotes; i++)
    free (kr->notes[i]);
  free (kr);
}

size_t
vfy_keyring_count (const vfy_keyring *kr)
{
  return kr->n;
}

const char *
vfy_keyring_note (const vfy_keyring *kr, size_t i)
{
  return i < kr->nnotes ? kr->notes[i] : NULL;
}

static int
count_pem_blocks (const char *pem, size_t len)
{
  int n = 0;
  const char *p = pem, *end = pem + len;

  while ((p = memmem (p, (size_t) (end - p), "-----BEGIN ", 11)) != NULL)
    {
      n++;
      p += 11;
    }
  return n;
}

/* rsapss-tool's ValidKeyOrCert, for one certificate. */
static int
check_cert (X509 *x, time_t now, ef_err **err)
{
  const ASN1_INTEGER *serial = X509_get0_serialNumber (x);
  BASIC_CONSTRAINTS *bc;
  int crit = -1, days = 0, secs = 0;
  uint32_t flags;
  time_t t = now ? now : time (NULL);

  flags = X509_get_extension_flags (x); /* also computes the cached flags */
  if (flags & EXFLAG_INVALID)
    return ef_err_set (err, EF_VERIFY, "certificate has invalid or duplicate extensions");
  if (X509_cmp_time (X509_get0_notBefore (x), &t) > 0)
    return ef_err_set (err, EF_VERIFY, "certificate not valid yet");
  if (X509_cmp_time (X509_get0_notAfter (x), &t) < 0)
    return ef_err_set (err, EF_VERIFY, "certificate expired");
  if (ASN1_TIME_diff (&days, &secs, X509_get0_notBefore (x), X509_get0_notAfter (x)) != 1
      || days > MAX_CERT_DAYS || (days == MAX_CERT_DAYS && secs > 0))
    return ef_err_set (err, EF_VERIFY, "certificate valid for more than %d days", MAX_CERT_DAYS);
  if (serial == NULL || ASN1_INTEGER_get (serial) <= 0)
    {
      BIGNUM *bn = ASN1_INTEGER_to_BN (serial, NULL);
      bool positive = bn && !BN_is_negative (bn) && !BN_is_zero (bn);
      BN_free (bn);
      if (!positive)
        return ef_err_set (err, EF_VERIFY, "certificate serial number is not positive");
    }
  bc = X509_get_ext_d2i (x, NID_basic_constraints, &crit, NULL);
  if (bc == NULL)
    return ef_err_set (err, EF_VERIFY, "certificate has no BasicConstraints");
  if (bc->ca)
    {
      BASIC_CONSTRAINTS_free (bc);
      return ef_err_set (err, EF_VERIFY, "certificate is a CA");
    }
  BASIC_CONSTRAINTS_free (bc);
  if (!(flags & EXFLAG_KUSAGE) || X509_get_key_usage (x) != KU_DIGITAL_SIGNATURE)
    return ef_err_set (err, EF_VERIFY, "certificate KeyUsage is not exactly digitalSignature");
  if (X509_NAME_cmp (X509_get_issuer_name (x), X509_get_subject_name (x)) != 0)
    return ef_err_set (err, EF_VERIFY, "certificate is not self-issued");
  if (X509_NAME_get_index_by_NID (X509_get_subject_name (x), NID_commonName, -1) < 0)
    return ef_err_set (err, EF_VERIFY, "certificate subject has no CN");
  return 0;
}

int
vfy_keyring_add_pem (vfy_keyring *kr, const char *name, const char *pem, size_t len, time_t now, ef_err **err)
{
  BIO *bio;
  EVP_PKEY *pkey = NULL;
  int rc = 0;

  if (kr->n == MAX_KEYS)
    return ef_err_set (err, EF_USAGE, "%s: too many trusted keys", name);
  if (len > PEM_MAX)
    return ef_err_set (err, EF_VERIFY, "%s: key file too large", name);
  bio = BIO_new_mem_buf (pem, (int) len);
  if (memmem (pem, len, "-----BEGIN CERTIFICATE-----", 27))
    {
      X509 *x;
      if (count_pem_blocks (pem, len) != 1)
        rc = ef_err_set (err, EF_VERIFY, "%s: must hold exactly one certificate", name);
      else if ((x = PEM_read_bio_X509 (bio, NULL, NULL, NULL)) == NULL)
        rc = ef_err_set (err, EF_VERIFY, "%s: unreadable certificate", name);
      else
        {
          rc = check_cert (x, now, err);
          if (rc < 0)
            ef_err_wrap (err, "%s", name);
          else
            pkey = X509_get_pubkey (x);
          X509_free (x);
        }
    }
  else if (memmem (pem, len, "-----BEGIN PUBLIC KEY-----", 26))
    {
      if (count_pem_blocks (pem, len) != 1)
        rc = ef_err_set (err, EF_VERIFY, "%s: must hold exactly one key", name);
      else if ((pkey = PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL)) == NULL)
        rc = ef_err_set (err, EF_VERIFY, "%s: unreadable public key", name);
    }
  else
    rc = ef_err_set (err, EF_VERIFY, "%s: neither a PUBLIC KEY nor a CERTIFICATE PEM (PKCS#1 keys are refused)", name);
  BIO_free (bio);
  ERR_clear_error ();
  if (rc == 0 && (pkey == NULL || EVP_PKEY_get_base_id (pkey) != EVP_PKEY_RSA))
    rc = ef_err_set (err, EF_VERIFY, "%s: not an RSA key", name);
  else if (rc == 0 && EVP_PKEY_get_bits (pkey) < MIN_RSA_BITS)
    rc = ef_err_set (err, EF_VERIFY, "%s: RSA key shorter than %d bits", name, MIN_RSA_BITS);
  if (rc < 0)
    {
      EVP_PKEY_free (pkey);
      return rc;
    }
  {
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY (pkey, &der);
    if (dlen <= 0)
      {
        EVP_PKEY_free (pkey);
        ERR_clear_error ();
        return ef_err_set (err, EF_VERIFY, "%s: unencodable public key", name);
      }
    ef_digest_buf (der, (size_t) dlen, kr->keys[kr->n].fingerprint);
    OPENSSL_free (der);
  }
  kr->keys[kr->n].name = xstrdup (name);
  kr->keys[kr->n].pkey = pkey;
  kr->n++;
  return 0;
}

const char *
vfy_keyring_name (const vfy_keyring *kr, size_t i)
{
  return i < kr->n ? kr->keys[i].name : NULL;
}

const char *
vfy_keyring_fingerprint (const vfy_keyring *kr, const char *name)
{
  for (size_t i = 0; i < kr->n; i++)
    if (strcmp (kr->keys[i].name, name) == 0)
      return kr->keys[i].fingerprint;
  return NULL;
}

int
vfy_keyring_add_file (vfy_keyring *kr, const char *path, time_t now, ef_err **err)
{
  cleanup_free char *text = NULL;
  size_t len;

  if (ef_read_file (path, PEM_MAX, &text, &len) < 0)
    return ef_err_sys (err, EF_USAGE, errno, "key %s", path);
  return vfy_keyring_add_pem (kr, path, text, len, now, err);
}

int
vfy_keyring_add_dir (vfy_keyring *kr, const char *dir, time_t now, ef_err **err)
{
  struct dirent **names = NULL;
  int n, i;

  n = scandir (dir, &names, NULL, alphasort);
  if (n < 0)
    return ef_err_sys (err, EF_USAGE, errno, "trust directory %s", dir);
  for (i = 0; i < n; i++)
    {
      const char *f = names[i]->d_name;
      size_t l = strlen (f);
      if (l > 4 && strcmp (f + l - 4, ".pem") == 0 && f[0] != '.')
        {
          cleanup_free char *path = xasprintf ("%s/%s", dir, f);
          ef_err *e = NULL;
          if (vfy_keyring_add_file (kr, path, now, &e) < 0 && kr->nnotes < MAX_KEYS)
            kr->notes[kr->nnotes++] = xstrdup (ef_err_msg (e));
          ef_err_free (e);
        }
      free (names[i]);
    }
  free (names);
  return 0;
}

static int
pss_verify (EVP_PKEY *pkey, const unsigned char *sig, size_t siglen, const void *data, size_t len)
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  EVP_PKEY_CTX *pctx = NULL;
  int ok = 0;

  if (ctx && EVP_DigestVerifyInit (ctx, &pctx, EVP_sha256 (), NULL, pkey) == 1
      && EVP_PKEY_CTX_set_rsa_padding (pctx, RSA_PKCS1_PSS_PADDING) == 1
      && EVP_PKEY_CTX_set_rsa_mgf1_md (pctx, EVP_sha256 ()) == 1
      && EVP_PKEY_CTX_set_rsa_pss_saltlen (pctx, RSA_PSS_SALTLEN_AUTO) == 1)
    ok = EVP_DigestVerify (ctx, sig, siglen, data, len) == 1;
  EVP_MD_CTX_free (ctx);
  ERR_clear_error ();
  return ok;
}

int
vfy_rsapss_verify (const vfy_keyring *kr, const void *data, size_t len, const char *sig_b64, const char **key_name,
                   ef_err **err)
{
  unsigned char *sig = NULL;
  long siglen;
  size_t i, sized = 0;

  if (key_name)
    *key_name = NULL;
  if (sig_b64 == NULL || *sig_b64 == '\0')
    return ef_err_set (err, EF_VERIFY, "no signature");
  if (kr->n == 0)
    return ef_err_set (err, EF_VERIFY, "no trusted keys");
  siglen = ef_b64_decode (sig_b64, strlen (sig_b64), &sig);
  if (siglen <= 0)
    return ef_err_set (err, EF_VERIFY, "signature is not valid base64");
  for (i = 0; i < kr->n; i++)
    {
      if ((size_t) EVP_PKEY_get_size (kr->keys[i].pkey) != (size_t) siglen)
        continue; /* made with a key of another size */
      sized++;
      if (pss_verify (kr->keys[i].pkey, sig, (size_t) siglen, data, len))
        {
          if (key_name)
            *key_name = kr->keys[i].name;
          free (sig);
          return 0;
        }
    }
  free (sig);
  if (sized == 0)
    return ef_err_set (err, EF_VERIFY, "signature is %ld bytes: no trusted key of that size (%zu keys)", siglen,
                       kr->n);
  return ef_err_set (err, EF_VERIFY, "signature does not verify with any of %zu trusted keys", kr->n);
}
