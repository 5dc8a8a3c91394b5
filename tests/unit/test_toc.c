/* test_toc.c: zstd:chunked tables of contents: a real one made by skopeo
 * (tests/vectors/zstd-chunked), and hostile ones made from it. */
#include <zstd.h>

#include "../../common/json.h"
#include "../../registry/transfer/toc.h"
#include "vectors.h"

struct vec
{
  char *blob, *mjson;
  size_t blen, mlen;
  reg_manifest *m;
};

static void
load (struct vec *v)
{
  v->blob = vec_read ("zstd-chunked/layer.tar.zst", &v->blen);
  v->mjson = vec_read ("zstd-chunked/manifest.json", &v->mlen);
  assert_int_equal (reg_manifest_parse (&v->m, v->mjson, v->mlen, NULL, NULL), 0);
}

static void
dispose (struct vec *v)
{
  reg_manifest_free (v->m);
  free (v->blob);
  free (v->mjson);
}

static void
toc__skopeo_layer_from_annotations_and_footer (void **state)
{
  struct vec v;
  struct reg_toc_pos pos, fpos;
  reg_toc *t = NULL;

  (void) state;
  load (&v);
  assert_int_equal (reg_toc_position (reg_manifest_entry (v.m, 1), &pos, NULL), 0);
  assert_int_equal (pos.offset, 25192);
  assert_int_equal (pos.length, 470);
  assert_int_equal (pos.ulength, 1728);
  assert_int_equal (reg_toc_footer ((unsigned char *) v.blob, v.blen, (int64_t) v.blen, &fpos, NULL), 0);
  assert_int_equal (fpos.offset, pos.offset);
  assert_int_equal (fpos.length, pos.length);
  assert_int_equal (reg_toc_parse (&t, v.blob + pos.offset, (size_t) pos.length, &pos, (int64_t) v.blen, NULL), 0);
  assert_int_equal (reg_toc_count (t), 6);
  assert_int_equal (reg_toc_chunk (t, 0)->offset, 83);
  assert_int_equal (reg_toc_chunk (t, 0)->end, 4193);
  assert_string_equal (reg_toc_chunk (t, 0)->digest,
                       "sha256:eae327a2f25126702195cd4a701d01687fdc307e9a392c9813eecbc6cea51893");
  for (size_t i = 0; i < reg_toc_count (t); i++)
    {
      /* each chunk is one zstd frame holding 4 KiB */
      const struct reg_toc_chunk *c = reg_toc_chunk (t, i);
      assert_int_equal (ZSTD_findFrameCompressedSize (v.blob + c->offset, (size_t) (c->end - c->offset)),
                        (size_t) (c->end - c->offset));
      assert_int_equal (ZSTD_getFrameContentSize (v.blob + c->offset, (size_t) (c->end - c->offset)), 4096);
    }
  reg_toc_free (t);
  assert_int_equal (reg_toc_position (reg_manifest_entry (v.m, 0), &pos, NULL), 0); /* the small first layer too */
  dispose (&v);
}

/* An eStargz TOC of our own JSON: what the walk makes of it. */
static int
estargz_of (const char *json, reg_toc **t)
{
  return reg_estargz_walk (t, json, strlen (json), 100000, NULL);
}

/* A TOC of our own JSON, compressed: what the walk makes of hostile entries. */
static int
parse_json (const char *json, int64_t size, ef_err **err)
{
  size_t cap = ZSTD_compressBound (strlen (json));
  char *frame = xmalloc (cap);
  size_t n = ZSTD_compress (frame, cap, json, strlen (json), 3);
  struct reg_toc_pos pos = { .offset = size - (int64_t) n, .length = (int64_t) n, .ulength = (int64_t) strlen (json) };
  reg_toc *t = NULL;
  int rc = reg_toc_parse (&t, frame, n, &pos, size, err);

  reg_toc_free (t);
  free (frame);
  return rc;
}

static void
toc__hostile_offsets_overlaps_and_positions_are_refused (void **state)
{
  static const struct
  {
    const char *json, *want;
  } cases[] = {
    { "{\"version\":1,\"entries\":[{\"type\":\"reg\",\"size\":5,\"offset\":10,\"endOffset\":999999,"
      "\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"}]}",
      "outside the blob" },
    { "{\"version\":1,\"entries\":[{\"type\":\"reg\",\"size\":5,\"offset\":100,\"endOffset\":200,"
      "\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"},"
      "{\"type\":\"reg\",\"size\":5,\"offset\":150,\"endOffset\":300,"
      "\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"}]}",
      "out of order or overlapping" },
    { "{\"version\":1,\"entries\":[{\"type\":\"chunk\",\"offset\":100}]}", "a chunk outside a regular file" },
    { "{\"version\":1,\"entries\":[{\"type\":\"reg\",\"size\":5,\"offset\":100,\"endOffset\":200,\"digest\":\"md5:x\"}]}",
      "without a digest" },
    { "{\"version\":2,\"entries\":[]}", "not a version 1 TOC" },
    { "[0,0,0]", "not a version 1 TOC" },
  };
  struct reg_toc_pos pos = { .offset = 100, .length = 1 << 30, .ulength = 10 };
  reg_toc *t = NULL;
  unsigned char tail[48] = { 0 };

  (void) state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      ef_err *err = NULL;
      assert_int_equal (parse_json (cases[i].json, 4000, &err), -EF_VERIFY);
      if (strstr (ef_err_msg (err), cases[i].want) == NULL)
        fail_msg ("case %zu: got \"%s\"", i, ef_err_msg (err));
      ef_err_free (err);
    }
  /* a position past the blob, or huge */
  assert_int_equal (reg_toc_parse (&t, "x", 1, &pos, 5000, NULL), -EF_VERIFY);
  pos.length = 10;
  pos.offset = 4995;
  assert_int_equal (reg_toc_parse (&t, "x", 1, &pos, 5000, NULL), -EF_VERIFY);
  /* a footer that is not one */
  assert_int_equal (reg_toc_footer (tail, sizeof tail, 5000, &pos, NULL), -EF_VERIFY);
}

static void
toc__a_huge_count_of_entries_is_refused_within_budget (void **state)
{
  struct ef_buf b;
  ef_err *err = NULL;
  int rc;

  (void) state;
  ef_buf_init (&b, 64u << 20);
  ef_buf_append (&b, "{\"version\":1,\"entries\":[", 24);
  for (int i = 0; i < 400000; i++)
    {
      char e[160];
      int n = snprintf (e, sizeof e, "%s{\"type\":\"dir\",\"name\":\"d%d/\",\"mode\":493,\"uid\":0,\"gid\":0}",
                        i ? "," : "", i);
      ef_buf_append (&b, e, (size_t) n);
    }
  ef_buf_append (&b, "]}", 2);
  rc = parse_json (b.data, 1 << 30, &err);
  assert_int_equal (rc, -EF_VERIFY);
  if (strstr (ef_err_msg (err), "too complex") == NULL)
    fail_msg ("got \"%s\"", ef_err_msg (err));
  ef_err_free (err);
  ef_buf_dispose (&b);
}

static void
toc__a_tampered_toc_fails_its_checksum (void **state)
{
  struct vec v;
  struct reg_toc_pos pos;
  reg_toc *t = NULL;
  ef_err *err = NULL;

  (void) state;
  load (&v);
  assert_int_equal (reg_toc_position (reg_manifest_entry (v.m, 1), &pos, NULL), 0);
  v.blob[pos.offset + 20] ^= 1;
  assert_int_equal (reg_toc_parse (&t, v.blob + pos.offset, (size_t) pos.length, &pos, (int64_t) v.blen, &err),
                    -EF_VERIFY);
  assert_non_null (strstr (ef_err_msg (err), "annotated checksum"));
  ef_err_free (err);
  dispose (&v);
}

static void
estargz__ctr_remote_layer_footer_and_members (void **state)
{
  size_t blen, mlen;
  cleanup_free char *blob = vec_read ("estargz/layer.tar.gz", &blen);
  cleanup_free char *mjson = vec_read ("estargz/manifest.json", &mlen);
  static const int64_t starts[] = { 85, 178, 4427, 8639, 12888 };
  reg_manifest *m = NULL;
  reg_toc *t = NULL;
  char tocd[72];
  int64_t off;
  size_t footer;

  (void) state;
  assert_int_equal (reg_manifest_parse (&m, mjson, mlen, NULL, NULL), 0);
  assert_int_equal (reg_estargz_toc_digest (reg_manifest_entry (m, 1), tocd, NULL), 0);
  assert_int_equal (reg_estargz_footer ((unsigned char *) blob, blen, (int64_t) blen, &off, &footer, NULL), 0);
  assert_int_equal (off, 17012);
  assert_int_equal (footer, 51);
  assert_int_equal (reg_estargz_parse (&t, blob + off, blen - footer - (size_t) off, tocd, off, NULL), 0);
  assert_int_equal (reg_toc_count (t), 5);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal (reg_toc_chunk (t, i)->offset, starts[i]);
  assert_int_equal (reg_toc_chunk (t, 4)->end, 17012);
  reg_toc_free (t);
  /* a TOC that is not the annotated one */
  tocd[10] = tocd[10] == 'a' ? 'b' : 'a';
  assert_int_equal (reg_estargz_parse (&t, blob + off, blen - footer - (size_t) off, tocd, off, NULL), -EF_VERIFY);
  /* no footer where one should be, and one that points past the blob */
  assert_int_equal (reg_estargz_footer ((unsigned char *) blob, blen - 1, (int64_t) blen - 1, &off, &footer, NULL),
                    -EF_VERIFY);
  memcpy (blob + blen - 51 + 16, "ffffffffffffffff", 16);
  assert_int_equal (reg_estargz_footer ((unsigned char *) blob, blen, (int64_t) blen, &off, &footer, NULL), -EF_VERIFY);
  reg_manifest_free (m);
}

static void
estargz__a_member_key_changes_with_the_next_header (void **state)
{
  /* the same chunk before another next entry is another member */
  static const char *a = "{\"version\":1,\"entries\":[{\"name\":\"x\",\"type\":\"reg\",\"size\":3,\"offset\":100,"
                         "\"chunkDigest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"},"
                         "{\"name\":\"y\",\"type\":\"reg\",\"size\":3,\"mode\":420,\"offset\":200,"
                         "\"chunkDigest\":\"sha256:2222222222222222222222222222222222222222222222222222222222222222\"}]}";
  static const char *b = "{\"version\":1,\"entries\":[{\"name\":\"x\",\"type\":\"reg\",\"size\":3,\"offset\":100,"
                         "\"chunkDigest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"},"
                         "{\"name\":\"y\",\"type\":\"reg\",\"size\":3,\"mode\":493,\"offset\":200,"
                         "\"chunkDigest\":\"sha256:3333333333333333333333333333333333333333333333333333333333333333\"}]}";
  static const char *c = "{\"version\":1,\"entries\":[{\"name\":\"x\",\"type\":\"reg\",\"size\":3,\"offset\":100,"
                         "\"chunkDigest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"},"
                         "{\"name\":\"y\",\"type\":\"reg\",\"size\":3,\"mode\":420,\"offset\":200,"
                         "\"chunkDigest\":\"sha256:3333333333333333333333333333333333333333333333333333333333333333\"}]}";
  reg_toc *ta = NULL, *tb = NULL, *tc = NULL;

  (void) state;
  assert_int_equal (estargz_of (a, &ta), 0);
  assert_int_equal (estargz_of (b, &tb), 0);
  assert_int_equal (estargz_of (c, &tc), 0);
  /* y's mode is in x's member: b's x is another member; c's y changed only in content */
  assert_string_not_equal (reg_toc_chunk (ta, 0)->digest, reg_toc_chunk (tb, 0)->digest);
  assert_string_equal (reg_toc_chunk (ta, 0)->digest, reg_toc_chunk (tc, 0)->digest);
  assert_string_not_equal (reg_toc_chunk (ta, 1)->digest, reg_toc_chunk (tc, 1)->digest);
  reg_toc_free (ta);
  reg_toc_free (tb);
  reg_toc_free (tc);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (toc__skopeo_layer_from_annotations_and_footer),
    cmocka_unit_test (toc__hostile_offsets_overlaps_and_positions_are_refused),
    cmocka_unit_test (toc__a_tampered_toc_fails_its_checksum),
    cmocka_unit_test (toc__a_huge_count_of_entries_is_refused_within_budget),
    cmocka_unit_test (estargz__ctr_remote_layer_footer_and_members),
    cmocka_unit_test (estargz__a_member_key_changes_with_the_next_header),
  };
  return cmocka_run_group_tests_name ("toc", tests, NULL, NULL);
}
