/* toc.c: see toc.h. */
#include <stdio.h>
#include <string.h>

#include <zstd.h>

#include "../../common/digest.h"
#include "../../common/json.h"
#include "../../common/text.h"
#include "../../common/util.h"
#include "toc.h"

#define TOC_JSON_BUDGET (48u << 20)
#define SKIPPABLE_MAGIC 0x184D2A50u
#define FOOTER_MAGIC "GNUlInUx"
#define FOOTER_MAGIC_OLD "GnUlInUx" /* what containers/storage wrote before the tar-split */

struct reg_toc
{
  struct reg_toc_chunk *v;
  size_t n, cap;
};

static const char *const position_keys[] = {
  "io.github.containers.zstd-chunked.manifest-position",
  "io.containers.zstd-chunked.manifest-position",
};
static const char *const checksum_keys[] = {
  "io.github.containers.zstd-chunked.manifest-checksum",
  "io.containers.zstd-chunked.manifest-checksum",
};

/* "a:b:c:d" into four numbers, each at most max. */
static bool
four_numbers (const char *s, uint64_t max, uint64_t v[4])
{
  for (int i = 0; i < 4; i++)
    {
      const char *end = i < 3 ? strchr (s, ':') : s + strlen (s);
      cleanup_free char *part = NULL;
      if (end == NULL || end == s || end - s > 20)
        return false;
      part = xstrndup (s, (size_t) (end - s));
      if (ef_parse_u64 (part, max, &v[i]) < 0)
        return false;
      s = end + (i < 3);
    }
  return true;
}

static int
check_position (const struct reg_toc_pos *pos, int64_t size, ef_err **err)
{
  if (pos->length <= 0 || pos->length > (int64_t) REG_TOC_MAX || pos->ulength <= 0
      || pos->ulength > (int64_t) REG_TOC_JSON_MAX || pos->offset < 0 || pos->offset > size - pos->length)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC at %lld+%lld (%lld bytes uncompressed) does not fit a blob of "
                                       "%lld bytes or our bounds",
                       (long long) pos->offset, (long long) pos->length, (long long) pos->ulength, (long long) size);
  return 0;
}

int
reg_toc_position (const struct reg_desc *d, struct reg_toc_pos *pos, ef_err **err)
{
  const char *p = NULL, *c = NULL;
  uint64_t v[4];

  memset (pos, 0, sizeof *pos);
  for (size_t i = 0; i < 2 && p == NULL; i++)
    {
      p = reg_desc_annotation (d, position_keys[i]);
      c = reg_desc_annotation (d, checksum_keys[i]);
    }
  if (p == NULL)
    return ef_err_set (err, EF_NOTFOUND, "layer %s carries no zstd:chunked TOC", d->digest);
  if (c == NULL || ef_digest_parse (c, NULL, NULL) < 0 || !four_numbers (p, INT64_MAX, v) || v[3] != 1)
    {
      cleanup_free char *e = ef_escape (p, 100);
      return ef_err_set (err, EF_VERIFY, "layer %s: malformed zstd:chunked annotations ('%s')", d->digest, e);
    }
  pos->offset = (int64_t) v[0];
  pos->length = (int64_t) v[1];
  pos->ulength = (int64_t) v[2];
  snprintf (pos->checksum, sizeof pos->checksum, "%s", c);
  return check_position (pos, d->size, err);
}

static uint64_t
le64 (const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int
reg_toc_footer (const unsigned char *tail, size_t len, int64_t size, struct reg_toc_pos *pos, ef_err **err)
{
  /* skippable frame: magic, length (40 or 64), then offset, length, ulength, type, ..., magic */
  size_t flen = len >= 72 && memcmp (tail + len - 8, FOOTER_MAGIC, 8) == 0       ? 72
                : len >= 48 && memcmp (tail + len - 8, FOOTER_MAGIC_OLD, 8) == 0 ? 48
                                                                                  : 0;
  const unsigned char *f = tail + len - flen;

  memset (pos, 0, sizeof *pos);
  if (flen == 0 || le64 (f) != (SKIPPABLE_MAGIC | (uint64_t) (flen - 8) << 32) || le64 (f + 32) != 1)
    return ef_err_set (err, EF_VERIFY, "no zstd:chunked footer at the end of the blob");
  if (le64 (f + 8) > (uint64_t) INT64_MAX || le64 (f + 16) > (uint64_t) INT64_MAX
      || le64 (f + 24) > (uint64_t) INT64_MAX)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked footer with offsets past any blob");
  pos->offset = (int64_t) le64 (f + 8);
  pos->length = (int64_t) le64 (f + 16);
  pos->ulength = (int64_t) le64 (f + 24);
  return check_position (pos, size, err);
}

reg_toc *
reg_toc_new (void)
{
  return xcalloc (1, sizeof (reg_toc));
}

int
reg_toc_add (reg_toc *t, int64_t offset, int64_t end, const char *key, int64_t limit, ef_err **err)
{
  if (offset <= 0 || end <= offset || end > limit || (t->n > 0 && offset < t->v[t->n - 1].end))
    return ef_err_set (err, EF_VERIFY, "TOC: a chunk at %lld-%lld out of order or overlapping, or outside the blob",
                       (long long) offset, (long long) end);
  if (t->n == t->cap)
    {
      t->cap = t->cap ? 2 * t->cap : 256;
      t->v = xrealloc (t->v, t->cap * sizeof *t->v);
    }
  t->v[t->n].offset = offset;
  t->v[t->n].end = end;
  snprintf (t->v[t->n].digest, sizeof t->v[t->n].digest, "%s", key);
  t->n++;
  return 0;
}

/* A chunk whose start is known, and whose end is where the next one of
 * its file starts, or where the file's frames end. */
struct pending
{
  int64_t offset;
  const char *digest; /* NULL: none pending */
};

static int
begin (struct pending *p, int64_t offset, const char *digest, ef_err **err)
{
  if (digest == NULL || ef_digest_parse (digest, NULL, NULL) < 0)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: a chunk at %lld without a digest", (long long) offset);
  p->offset = offset;
  p->digest = digest;
  return 0;
}

static int
finish (reg_toc *t, struct pending *p, int64_t end, int64_t limit, ef_err **err)
{
  const char *digest = p->digest;

  p->digest = NULL;
  return digest ? reg_toc_add (t, p->offset, end, digest, limit, err) : 0;
}

static int64_t
num (json_t *e, const char *k)
{
  json_t *v = json_object_get (e, k);
  return json_is_integer (v) ? (int64_t) json_integer_value (v) : -1;
}

static const char *
text (json_t *e, const char *k)
{
  return json_string_value (json_object_get (e, k));
}

/* Entries into chunks: a regular file's first chunk is the entry itself
 * (chunkDigest, or the file's digest when it is not chunked), its further
 * chunks "chunk" entries; limit is where the TOC starts. */
static int
walk (reg_toc *t, json_t *entries, int64_t limit, ef_err **err)
{
  struct pending p = { 0, NULL };
  int64_t file_end = -1;
  size_t i;
  json_t *e;
  int rc = 0;

  json_array_foreach (entries, i, e)
  {
    const char *type = text (e, "type");
    if (type == NULL)
      return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: an entry without a type");
    if (strcmp (type, "chunk") == 0)
      {
        if (file_end < 0)
          return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: a chunk outside a regular file");
        rc = finish (t, &p, num (e, "offset"), limit, err);
        if (rc == 0)
          rc = begin (&p, num (e, "offset"), text (e, "chunkDigest"), err);
      }
    else if (strcmp (type, "reg") == 0 && num (e, "size") > 0)
      {
        rc = finish (t, &p, file_end, limit, err);
        file_end = num (e, "endOffset");
        if (rc == 0)
          rc = begin (&p, num (e, "offset"), text (e, "chunkDigest") ? text (e, "chunkDigest") : text (e, "digest"),
                      err);
      }
    if (rc < 0)
      return rc;
  }
  return finish (t, &p, file_end, limit, err);
}

int
reg_toc_parse (reg_toc **out, const void *frame, size_t len, const struct reg_toc_pos *pos, int64_t size,
               ef_err **err)
{
  char got[EF_DIGEST_LEN + 1];
  unsigned long long usize;
  cleanup_free char *json = NULL;
  const char *why = NULL;
  json_t *root;
  reg_toc *t;
  size_t n;
  int rc;

  *out = NULL;
  if ((rc = check_position (pos, size, err)) < 0)
    return rc;
  if ((int64_t) len != pos->length)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: got %zu bytes, want %lld", len, (long long) pos->length);
  ef_digest_buf (frame, len, got);
  if (pos->checksum[0] && strcmp (got, pos->checksum) != 0)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC does not match its annotated checksum %s", pos->checksum);
  usize = ZSTD_getFrameContentSize (frame, len);
  if (usize != ZSTD_CONTENTSIZE_UNKNOWN && usize != (unsigned long long) pos->ulength)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: %llu bytes uncompressed, the position says %lld", usize,
                       (long long) pos->ulength);
  json = xmalloc ((size_t) pos->ulength);
  n = ZSTD_decompress (json, (size_t) pos->ulength, frame, len);
  if (ZSTD_isError (n) || n != (size_t) pos->ulength)
    return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC: %s",
                       ZSTD_isError (n) ? ZSTD_getErrorName (n) : "shorter than its position says");
  root = ef_json_parse (json, n, TOC_JSON_BUDGET, &why);
  if (root == NULL || !json_is_array (json_object_get (root, "entries"))
      || json_integer_value (json_object_get (root, "version")) != 1)
    {
      json_decref (root);
      return ef_err_set (err, EF_VERIFY, "zstd:chunked TOC %s", why ? why : "is not a version 1 TOC");
    }
  t = xcalloc (1, sizeof *t);
  rc = walk (t, json_object_get (root, "entries"), pos->offset, err);
  json_decref (root);
  if (rc < 0)
    {
      reg_toc_free (t);
      return rc;
    }
  *out = t;
  return 0;
}

size_t
reg_toc_count (const reg_toc *t)
{
  return t ? t->n : 0;
}

const struct reg_toc_chunk *
reg_toc_chunk (const reg_toc *t, size_t i)
{
  return t && i < t->n ? &t->v[i] : NULL;
}

void
reg_toc_free (reg_toc *t)
{
  if (t == NULL)
    return;
  free (t->v);
  free (t);
}
