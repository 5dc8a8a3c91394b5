/* test_store.c: digests and the content store: nothing unverified ever
 * appears under blobs/, partial bytes resume, two holders never clash. */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../registry/store/store.h"
#include "../../common/digest.h"
#include "../../common/file.h"
#include "vectors.h"

static char *
tmpdir (void)
{
  char *d = xstrdup ("/tmp/ef-store-XXXXXX");
  assert_non_null (mkdtemp (d));
  return d;
}

static void
rmtree (const char *d)
{
  cleanup_free char *cmd = xasprintf ("rm -rf '%s'", d);
  assert_int_equal (system (cmd), 0);
}

static void
digest__parse (void **state)
{
  char hex[EF_DIGEST_HEX + 1];
  ef_err *err = NULL;

  (void) state;
  assert_int_equal (ef_digest_parse ("sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55", hex, NULL),
                    0);
  assert_string_equal (hex, "20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55");
  assert_true (ef_digest_parse ("sha512:00", hex, &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "unsupported digest algorithm"));
  ef_err_free (err);
  assert_true (ef_digest_parse (NULL, hex, NULL) < 0);
  assert_true (ef_digest_parse ("sha256", hex, NULL) < 0);
  assert_true (ef_digest_parse (":abc", hex, NULL) < 0);
  assert_true (ef_digest_parse ("sha256:20BF21ED457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55", hex, NULL) < 0);
  assert_true (ef_digest_parse ("sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e5", hex, NULL) < 0);
  assert_true (ef_digest_parse ("sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e555", hex, NULL) < 0);
}

static void
digest__known_answer (void **state)
{
  size_t len;
  cleanup_free char *body = vec_read ("manifests/containers-image/v2s2.manifest.json", &len);
  char d[EF_DIGEST_LEN + 1];
  ef_hash *h = ef_hash_new ();

  (void) state;
  ef_digest_buf (body, len, d);
  assert_string_equal (d, "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55");
  /* streaming in odd pieces gives the same */
  for (size_t i = 0; i < len; i += 7)
    ef_hash_update (h, body + i, len - i < 7 ? len - i : 7);
  ef_hash_final (h, d);
  assert_string_equal (d, "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55");
  ef_hash_free (h);
}

static void
b64__strict (void **state)
{
  unsigned char *out;

  (void) state;
  assert_int_equal (ef_b64_decode ("am9lam9lOmhlbGxv", 16, &out), 12);
  assert_string_equal ((char *) out, "joejoe:hello");
  free (out);
  assert_int_equal (ef_b64_decode ("YQ==", 4, &out), 1);
  free (out);
  assert_int_equal (ef_b64_decode ("", 0, &out), 0);
  free (out);
  assert_true (ef_b64_decode ("YQ=", 3, &out) < 0);
  assert_true (ef_b64_decode ("Y Q=", 4, &out) < 0);
  assert_true (ef_b64_decode ("Y=Q=", 4, &out) < 0);
  assert_true (ef_b64_decode ("====", 4, &out) < 0);
  assert_true (ef_b64_decode ("YQ-_", 4, &out) < 0);
}

static void
store__put_checks_digest (void **state)
{
  cleanup_free char *dir = tmpdir ();
  reg_store *s = NULL;
  char d[EF_DIGEST_LEN + 1];
  char *buf;
  size_t len;
  ef_err *err = NULL;

  (void) state;
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  ef_digest_buf ("hello", 5, d);
  assert_true (reg_store_put (s, d, "hellO", 5, &err) < 0);
  assert_int_equal (ef_err_code (err), EF_VERIFY);
  ef_err_free (err);
  assert_false (reg_store_has (s, d, -1));
  assert_int_equal (reg_store_put (s, d, "hello", 5, NULL), 0);
  assert_true (reg_store_has (s, d, 5));
  assert_false (reg_store_has (s, d, 6));
  assert_int_equal (reg_store_read (s, d, 100, &buf, &len, NULL), 0);
  assert_int_equal (len, 5);
  free (buf);
  /* a damaged blob is noticed on read */
  {
    cleanup_free char *p = reg_store_blob_path (s, d);
    FILE *f = fopen (p, "w");
    fputs ("HELLO", f);
    fclose (f);
    err = NULL;
    assert_true (reg_store_read (s, d, 100, &buf, &len, &err) < 0);
    assert_int_equal (ef_err_code (err), EF_LOCAL);
    ef_err_free (err);
  }
  reg_store_free (s);
  rmtree (dir);
}

static void
ingest__resume_and_verify (void **state)
{
  cleanup_free char *dir = tmpdir ();
  static char data[300000];
  char d[EF_DIGEST_LEN + 1];
  reg_store *s = NULL;
  reg_ingest *i = NULL;
  ef_err *err = NULL;
  bool busy;

  (void) state;
  for (size_t k = 0; k < sizeof data; k++)
    data[k] = (char) (k * 7 + k / 1000);
  ef_digest_buf (data, sizeof data, d);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);

  /* first attempt: a third of the bytes, then the process "dies" */
  assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
  assert_int_equal (reg_ingest_offset (i), 0);
  assert_int_equal (reg_ingest_write (i, data, 100000, NULL), 0);
  reg_ingest_free (i);
  assert_false (reg_store_has (s, d, -1));

  /* second attempt continues where the bytes end, with the hash restored */
  assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
  assert_int_equal (reg_ingest_offset (i), 100000);
  assert_int_equal (reg_ingest_write (i, data + 100000, sizeof data - 100000, NULL), 0);
  /* one byte too many is refused, and the partial is dropped */
  assert_true (reg_ingest_write (i, "x", 1, &err) < 0);
  assert_int_equal (ef_err_code (err), EF_VERIFY);
  ef_err_free (err);
  reg_ingest_free (i);
  assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
  assert_int_equal (reg_ingest_offset (i), 0);
  assert_int_equal (reg_ingest_write (i, data, sizeof data, NULL), 0);
  assert_int_equal (reg_ingest_commit (i, NULL), 0);
  reg_ingest_free (i);
  assert_true (reg_store_has (s, d, sizeof data));

  /* wrong bytes: EF_VERIFY, nothing in blobs/, no wrong byte kept for a resume */
  {
    char d2[EF_DIGEST_LEN + 1];
    cleanup_free char *part = NULL;
    ef_digest_buf ("abc", 3, d2);
    assert_int_equal (reg_ingest_open (&i, s, d2, 3, &busy, NULL), 0);
    assert_int_equal (reg_ingest_write (i, "abd", 3, NULL), 0);
    err = NULL;
    assert_true (reg_ingest_commit (i, &err) < 0);
    assert_int_equal (ef_err_code (err), EF_VERIFY);
    ef_err_free (err);
    reg_ingest_free (i);
    assert_false (reg_store_has (s, d2, -1));
    part = xasprintf ("%s/ingest/%s.part", dir, d2 + 7);
    assert_int_equal (reg_store_partial (s, d2), 0);
  }
  reg_store_free (s);
  rmtree (dir);
}

/* A blob in three pieces, written out of order through the writer
 * thread, closed half-way ("killed"), reopened: only the gap is missing,
 * the hash (read back over the pieces) still matches at commit. */
static void
ingest__pieces_out_of_order_resume_only_the_gap (void **state)
{
  cleanup_free char *dir = tmpdir ();
  static char data[1 << 20];
  char d[EF_DIGEST_LEN + 1];
  int64_t missing[8][2];
  reg_store *s = NULL;
  reg_ingest *i = NULL;
  reg_ingest_seg *a = NULL, *b = NULL;
  reg_writer *w = NULL;
  bool busy;

  (void) state;
  for (size_t k = 0; k < sizeof data; k++)
    data[k] = (char) (k * 13 + k / 4099);
  ef_digest_buf (data, sizeof data, d);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  assert_int_equal (reg_writer_new (&w, 2, NULL), 0);
  assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
  reg_ingest_use_writer (i, w);
  assert_int_equal (reg_ingest_seg_open (i, 600000, sizeof data, &b, NULL), 0);
  assert_int_equal (reg_ingest_seg_open (i, 0, 300000, &a, NULL), 0);
  for (size_t off = 600000; off < sizeof data; off += 1000)
    assert_int_equal (reg_ingest_seg_write (b, data + off, off + 1000 > sizeof data ? sizeof data - off : 1000, NULL), 0);
  assert_int_equal (reg_ingest_seg_write (a, data, 200000, NULL), 0);
  /* past the piece's end: refused */
  assert_true (reg_ingest_seg_write (a, data, 100001, NULL) < 0);
  assert_int_equal (reg_ingest_seg_close (a, NULL), 0);
  assert_int_equal (reg_ingest_seg_close (b, NULL), 0);
  reg_ingest_free (i);
  /* what the pieces take on disk, holes aside */
  assert_true (reg_store_partial (s, d) >= 200000 + (int64_t) sizeof data - 600000);
  assert_true (reg_store_partial (s, d) < (int64_t) sizeof data);

  assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
  reg_ingest_use_writer (i, w);
  assert_int_equal (reg_ingest_missing (i, missing, 8), 1);
  assert_int_equal (missing[0][0], 200000);
  assert_int_equal (missing[0][1], 600000);
  assert_int_equal (reg_ingest_seg_open (i, 200000, 600000, &a, NULL), 0);
  assert_int_equal (reg_ingest_seg_write (a, data + 200000, 400000, NULL), 0);
  assert_int_equal (reg_ingest_seg_close (a, NULL), 0);
  assert_int_equal (reg_ingest_missing (i, missing, 8), 0);
  assert_int_equal (reg_ingest_commit (i, NULL), 0);
  reg_ingest_free (i);
  assert_true (reg_store_has (s, d, sizeof data));
  assert_int_equal (reg_store_partial (s, d), 0);
  reg_writer_free (w);
  reg_store_free (s);
  rmtree (dir);
}

/* Records of pieces that do not describe the blob: each one makes the
 * ingest start over from nothing, never trusted for a byte. */
static void
ingest__record_of_pieces_that_lies_starts_over (void **state)
{
  static const char *bad[] = {
    "{\"size\":1000,\"done\":[[500,600],[100,200]]}", /* out of order */
    "{\"size\":1000,\"done\":[[0,600],[500,700]]}",   /* overlapping */
    "{\"size\":1000,\"done\":[[0,1001]]}",            /* past the end */
    "{\"size\":999,\"done\":[[0,10]]}",               /* another size */
    "{\"size\":1000,\"done\":[[10,10]]}",             /* empty */
    "{\"size\":1000,\"done\":[[0,\"5\"]]}",           /* not a number */
    "{\"size\":1000,\"done\":[[0,10],[10,20]]}",      /* not merged */
    "[0,1000]",
    "",
  };
  cleanup_free char *dir = tmpdir ();
  char data[1000], d[EF_DIGEST_LEN + 1];
  int64_t missing[4][2];

  (void) state;
  memset (data, 'q', sizeof data);
  ef_digest_buf (data, sizeof data, d);
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
    {
      cleanup_free char *part = xasprintf ("%s/ingest/%s.part", dir, d + 7);
      cleanup_free char *rec = xasprintf ("%s/ingest/%s.ranges", dir, d + 7);
      reg_store *s = NULL;
      reg_ingest *i = NULL;
      bool busy;
      assert_int_equal (reg_store_open (&s, dir, NULL), 0);
      assert_int_equal (ef_atomic_write (part, data, sizeof data, 0600, NULL), 0);
      assert_int_equal (ef_atomic_write (rec, bad[k], strlen (bad[k]), 0600, NULL), 0);
      assert_int_equal (reg_ingest_open (&i, s, d, sizeof data, &busy, NULL), 0);
      assert_int_equal (reg_ingest_missing (i, missing, 4), 1);
      assert_int_equal (missing[0][0], 0);
      assert_int_equal (missing[0][1], 1000);
      reg_ingest_free (i);
      reg_store_free (s);
    }
  rmtree (dir);
}

static void
ingest__second_holder_waits (void **state)
{
  cleanup_free char *dir = tmpdir ();
  char d[EF_DIGEST_LEN + 1];
  reg_store *s = NULL;
  reg_ingest *i = NULL;
  bool busy;
  pid_t pid;
  int status;

  (void) state;
  ef_digest_buf ("x", 1, d);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  assert_int_equal (reg_ingest_open (&i, s, d, 1, &busy, NULL), 0);
  assert_false (busy);
  pid = fork ();
  if (pid == 0)
    {
      reg_ingest *j = NULL;
      _exit (reg_ingest_open (&j, s, d, 1, &busy, NULL) == 0 && busy && j == NULL ? 0 : 1);
    }
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  reg_ingest_free (i);
  reg_store_free (s);
  rmtree (dir);
}

/* Plant bytes under blobs/sha256/<hex> as an attacker with write access
 * to the store would. */
static void
plant (const char *dir, const char *digest, const void *bytes, size_t n)
{
  cleanup_free char *p = xasprintf ("%s/blobs/sha256/%s", dir, digest + 7);
  FILE *f = fopen (p, "w");
  assert_non_null (f);
  assert_int_equal (fwrite (bytes, 1, n, f), n);
  fclose (f);
}

static void
store__put_over_a_planted_same_size_blob_replaces_it (void **state)
{
  cleanup_free char *dir = tmpdir ();
  static const char good[] = "{\"schemaVersion\":2}", bad[] = "{\"schemaVersion\":3}";
  char d[EF_DIGEST_LEN + 1];
  cleanup_free char *back = NULL;
  reg_store *s = NULL;
  size_t n;

  (void) state;
  ef_digest_buf (good, strlen (good), d);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  plant (dir, d, bad, strlen (bad));
  assert_int_equal (reg_store_put (s, d, good, strlen (good), NULL), 0);
  assert_int_equal (reg_store_read (s, d, 1024, &back, &n, NULL), 0);
  assert_memory_equal (back, good, strlen (good));
  reg_store_free (s);
  rmtree (dir);
}

struct counter
{
  size_t bytes;
};

static int
count_chunk (void *payload, const void *buf, size_t len, ef_err **err)
{
  (void) buf;
  (void) err;
  ((struct counter *) payload)->bytes += len;
  return 0;
}

static void
store__stream_of_a_planted_wrong_layer_withholds_its_end_and_removes_it (void **state)
{
  cleanup_free char *dir = tmpdir ();
  size_t n = 300 * 1024;
  cleanup_free char *good = xcalloc (1, n), *bad = xcalloc (1, n);
  char d[EF_DIGEST_LEN + 1];
  struct counter c = { 0 };
  reg_store *s = NULL, *s2 = NULL;
  ef_err *err = NULL;

  (void) state;
  memset (bad, 'x', n);
  ef_digest_buf (good, n, d);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  plant (dir, d, bad, n);
  assert_true (reg_store_has (s, d, (int64_t) n)); /* by name and size it looks right */
  assert_int_equal (reg_store_stream (s, d, (int64_t) n, count_chunk, &c, &err), -EF_LOCAL);
  assert_non_null (strstr (ef_err_msg (err), "store damaged"));
  assert_true (c.bytes < n); /* the reader never got all of it */
  assert_false (reg_store_has (s, d, -1));
  ef_err_free (err);
  /* a good blob streams whole, hashed, in another process's view too */
  assert_int_equal (reg_store_put (s, d, good, n, NULL), 0);
  assert_int_equal (reg_store_open (&s2, dir, NULL), 0);
  c.bytes = 0;
  assert_int_equal (reg_store_stream (s2, d, (int64_t) n, count_chunk, &c, NULL), 0);
  assert_int_equal (c.bytes, n);
  reg_store_free (s2);
  reg_store_free (s);
  rmtree (dir);
}

static void
gc__with_a_planted_wrong_manifest_removes_nothing (void **state)
{
  cleanup_free char *dir = tmpdir ();
  size_t len;
  cleanup_free char *body = vec_read ("manifests/containers-image/v2s2.manifest.json", &len);
  char md[EF_DIGEST_LEN + 1], other[EF_DIGEST_LEN + 1];
  struct reg_gc_stats st;
  reg_store *s = NULL;
  ef_err *err = NULL;

  (void) state;
  ef_digest_buf (body, len, md);
  ef_digest_buf ("unrelated", 9, other);
  assert_int_equal (reg_store_open (&s, dir, NULL), 0);
  assert_int_equal (reg_store_put (s, other, "unrelated", 9, NULL), 0);
  body[10] ^= 1;
  plant (dir, md, body, len);
  assert_int_equal (reg_store_record (s, "example.org/app:1", md, NULL, NULL), 0);
  assert_true (reg_store_gc (s, &st, &err) < 0);
  assert_non_null (strstr (ef_err_msg (err), "gc removed nothing"));
  assert_true (reg_store_has (s, other, 9));
  ef_err_free (err);
  reg_store_free (s);
  rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (digest__parse),         cmocka_unit_test (digest__known_answer),
    cmocka_unit_test (b64__strict),           cmocka_unit_test (store__put_checks_digest),
    cmocka_unit_test (ingest__resume_and_verify), cmocka_unit_test (ingest__second_holder_waits),
    cmocka_unit_test (ingest__pieces_out_of_order_resume_only_the_gap),
    cmocka_unit_test (ingest__record_of_pieces_that_lies_starts_over),
    cmocka_unit_test (store__put_over_a_planted_same_size_blob_replaces_it),
    cmocka_unit_test (store__stream_of_a_planted_wrong_layer_withholds_its_end_and_removes_it),
    cmocka_unit_test (gc__with_a_planted_wrong_manifest_removes_nothing),
  };
  return cmocka_run_group_tests_name ("store", tests, NULL, NULL);
}
