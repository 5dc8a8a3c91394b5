/* estargz.c: the eStargz table of contents (toc.h). */
#include <stdio.h>
#include <string.h>

#include "../../common/digest.h"
#include "../../common/json.h"
#include "../../common/util.h"
#include "../output/export.h"
#include "toc.h"

#define TOC_NAME "stargz.index.json"
#define TOC_JSON_BUDGET (48u << 20)
#define TOC_DIGEST_KEY "containerd.io/snapshot/stargz/toc.digest"

int
reg_estargz_toc_digest (const struct reg_desc *d, char digest[72], ef_err **err)
{
  const char *v = reg_desc_annotation (d, TOC_DIGEST_KEY);

  if (v == NULL)
    return ef_err_set (err, EF_NOTFOUND, "layer %s carries no eStargz TOC", d->digest);
  if (ef_digest_parse (v, NULL, NULL) < 0)
    return ef_err_set (err, EF_VERIFY, "layer %s: malformed %s", d->digest, TOC_DIGEST_KEY);
  snprintf (digest, 72, "%s", v);
  return 0;
}

/* 16 hex digits at p into *v. */
static bool
hex16 (const unsigned char *p, uint64_t *v)
{
  *v = 0;
  for (int i = 0; i < 16; i++)
    {
      int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0)
        return false;
      *v = *v << 4 | (uint64_t) d;
    }
  return true;
}

int
reg_estargz_footer (const unsigned char *tail, size_t len, int64_t size, int64_t *toc_offset, size_t *footer,
                    ef_err **err)
{
  /* a gzip header with FEXTRA: 1f 8b 08 04, mtime, xfl, os, XLEN, then
     "SG" + 22 + "%016xSTARGZ" (eStargz, 51 bytes) or "%016xSTARGZ" (stargz, 47) */
  static const unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0x04 };
  uint64_t off = 0;

  *toc_offset = -1;
  *footer = 0;
  if (len >= 51 && memcmp (tail + len - 51, gz, 4) == 0 && tail[len - 51 + 10] == 26 && tail[len - 51 + 11] == 0
      && memcmp (tail + len - 51 + 12, "SG\x16\x00", 4) == 0 && memcmp (tail + len - 51 + 32, "STARGZ", 6) == 0
      && hex16 (tail + len - 51 + 16, &off))
    *footer = 51;
  else if (len >= 47 && memcmp (tail + len - 47, gz, 4) == 0 && tail[len - 47 + 10] == 22
           && tail[len - 47 + 11] == 0 && memcmp (tail + len - 47 + 28, "STARGZ", 6) == 0
           && hex16 (tail + len - 47 + 12, &off))
    *footer = 47;
  if (*footer == 0)
    return ef_err_set (err, EF_VERIFY, "no eStargz footer at the end of the blob");
  if (off == 0 || off >= (uint64_t) size - *footer || (uint64_t) size - *footer - off > REG_TOC_MAX)
    return ef_err_set (err, EF_VERIFY, "eStargz footer puts the TOC at %llu, outside a blob of %lld bytes or our "
                                       "bounds",
                       (unsigned long long) off, (long long) size);
  *toc_offset = (int64_t) off;
  return 0;
}

static int64_t
num (json_t *e, const char *k)
{
  json_t *v = json_object_get (e, k);
  return json_is_integer (v) ? (int64_t) json_integer_value (v) : -1;
}

/* An entry that begins a gzip member: a regular file's first chunk, or a further chunk. */
static bool
payload (json_t *e)
{
  const char *type = json_string_value (json_object_get (e, "type"));
  return type && num (e, "offset") > 0
         && ((strcmp (type, "reg") == 0 && num (e, "size") > 0) || strcmp (type, "chunk") == 0);
}

/* The key of the member that begins at entries[i] and holds the headers
 * of the entries up to entries[next] (next == n: up to the TOC): its chunk
 * digest, and what those headers are made of (their content digests and
 * offsets left out: they are not in a tar header). */
static void
member_key (json_t *entries, size_t i, size_t next, char key[72])
{
  json_t *e = json_array_get (entries, i);
  const char *cd = json_string_value (json_object_get (e, "chunkDigest"));
  ef_hash *h = ef_hash_new ();

  if (cd == NULL)
    cd = json_string_value (json_object_get (e, "digest"));
  ef_hash_update (h, cd ? cd : "", cd ? strlen (cd) : 0);
  for (size_t k = i + 1; k <= next && k < json_array_size (entries); k++)
    {
      json_t *m = json_deep_copy (json_array_get (entries, k));
      char *text;
      json_object_del (m, "offset");
      json_object_del (m, "digest");
      json_object_del (m, "chunkDigest");
      text = json_dumps (m, JSON_SORT_KEYS | JSON_COMPACT);
      ef_hash_update (h, "\n", 1);
      if (text)
        ef_hash_update (h, text, strlen (text));
      free (text);
      json_decref (m);
    }
  ef_hash_final (h, key);
  ef_hash_free (h);
}

static int
walk (reg_toc *t, json_t *entries, int64_t limit, ef_err **err)
{
  size_t n = json_array_size (entries), i = 0;
  int rc = 0;

  while (rc == 0 && i < n && !payload (json_array_get (entries, i)))
    i++;
  while (rc == 0 && i < n)
    {
      size_t next = i + 1;
      char key[72];
      int64_t end;
      while (next < n && !payload (json_array_get (entries, next)))
        next++;
      end = next < n ? num (json_array_get (entries, next), "offset") : limit;
      member_key (entries, i, next, key);
      rc = reg_toc_add (t, num (json_array_get (entries, i), "offset"), end, key, limit, err);
      i = next;
    }
  return rc;
}

int
reg_estargz_parse (reg_toc **out, const void *member, size_t len, const char *toc_digest, int64_t toc_offset,
                   ef_err **err)
{
  char got[EF_DIGEST_LEN + 1];
  cleanup_free char *json = NULL;
  size_t n;
  int rc;

  *out = NULL;
  rc = reg_archive_read_entry (member, len, TOC_NAME, REG_TOC_JSON_MAX, &json, &n, err);
  if (rc < 0)
    {
      ef_err_wrap (err, "eStargz TOC");
      return rc;
    }
  ef_digest_buf (json, n, got);
  if (toc_digest[0] && strcmp (got, toc_digest) != 0)
    return ef_err_set (err, EF_VERIFY, "eStargz TOC does not match its annotated digest %s", toc_digest);
  return reg_estargz_walk (out, json, n, toc_offset, err);
}

int
reg_estargz_walk (reg_toc **out, const char *json, size_t n, int64_t toc_offset, ef_err **err)
{
  const char *why = NULL;
  json_t *root;
  reg_toc *t;
  int rc;

  *out = NULL;
  root = ef_json_parse (json, n, TOC_JSON_BUDGET, &why);
  if (root == NULL || !json_is_array (json_object_get (root, "entries")))
    {
      json_decref (root);
      return ef_err_set (err, EF_VERIFY, "eStargz TOC %s", why ? why : "has no entries");
    }
  t = reg_toc_new ();
  rc = walk (t, json_object_get (root, "entries"), toc_offset, err);
  json_decref (root);
  if (rc < 0)
    {
      reg_toc_free (t);
      return rc;
    }
  *out = t;
  return 0;
}
