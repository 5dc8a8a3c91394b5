/* digest.c: sha256 digests through OpenSSL's EVP interface. */
#include <string.h>

#include <openssl/evp.h>

#include "util.h"
#include "digest.h"

struct ef_hash
{
  EVP_MD_CTX *ctx;
};

ef_hash *
ef_hash_new (void)
{
  ef_hash *h = xmalloc (sizeof *h);
  h->ctx = EVP_MD_CTX_new ();
  if (h->ctx == NULL)
    {
      free (h);
      return NULL;
    }
  ef_hash_reset (h);
  return h;
}

void
ef_hash_reset (ef_hash *h)
{
  EVP_DigestInit_ex (h->ctx, EVP_sha256 (), NULL);
}

void
ef_hash_update (ef_hash *h, const void *p, size_t n)
{
  EVP_DigestUpdate (h->ctx, p, n);
}

static void
hex_digest (const unsigned char *md, unsigned len, char *out)
{
  static const char hx[] = "0123456789abcdef";
  unsigned i;

  memcpy (out, "sha256:", 7);
  for (i = 0; i < len; i++)
    {
      out[7 + 2 * i] = hx[md[i] >> 4];
      out[7 + 2 * i + 1] = hx[md[i] & 15];
    }
  out[7 + 2 * len] = '\0';
}

void
ef_hash_final (ef_hash *h, char *out)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;

  EVP_DigestFinal_ex (h->ctx, md, &len);
  hex_digest (md, len, out);
}

void
ef_hash_free (ef_hash *h)
{
  if (h == NULL)
    return;
  EVP_MD_CTX_free (h->ctx);
  free (h);
}

void
ef_digest_buf (const void *p, size_t n, char *out)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;

  EVP_Digest (p, n, md, &len, EVP_sha256 (), NULL);
  hex_digest (md, len, out);
}

int
ef_digest_parse (const char *s, char *hex, ef_err **err)
{
  const char *colon;
  size_t i;

  if (s == NULL)
    return ef_err_set (err, EF_VERIFY, "missing digest");
  colon = strchr (s, ':');
  if (colon == NULL || colon == s)
    return ef_err_set (err, EF_VERIFY, "malformed digest");
  if ((size_t) (colon - s) != 6 || strncmp (s, "sha256", 6) != 0)
    return ef_err_set (err, EF_VERIFY, "unsupported digest algorithm '%.*s'",
                       (int) (colon - s > 32 ? 32 : colon - s), s);
  if (strlen (colon + 1) != EF_DIGEST_HEX)
    return ef_err_set (err, EF_VERIFY, "malformed sha256 digest");
  for (i = 0; i < EF_DIGEST_HEX; i++)
    {
      char c = colon[1 + i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
        return ef_err_set (err, EF_VERIFY, "malformed sha256 digest");
    }
  if (hex)
    memcpy (hex, colon + 1, EF_DIGEST_HEX + 1);
  return 0;
}
