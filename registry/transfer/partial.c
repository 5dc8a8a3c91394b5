/* partial.c: see partial.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/util.h"
#include "partial.h"
#include "toc.h"

#define BASE_BLOBS_MAX 256  /* zstd:chunked layers of the store looked at */
#define MERGE_GAP 4096      /* a reusable chunk this small between two ranges is fetched with them */
#define COPY_BUF (128 * 1024)

/* A chunk the store holds: in which blob, where. */
struct base_chunk
{
  char digest[72];
  int64_t len; /* compressed */
  int blob;
  int64_t offset;
};

struct base
{
  int fds[BASE_BLOBS_MAX];
  int nblobs;
  struct base_chunk *v;
  size_t n, cap;
};

struct reg_partial
{
  reg_store *s;
  struct base b;
  bool scanned; /* b is looked for once, when a layer first needs it */
};

enum seg_kind
{
  SEG_FETCH,
  SEG_COPY,
  SEG_TOC, /* fetched already: the TOC */
};

struct seg
{
  int64_t off, end;
  enum seg_kind kind;
  const struct base_chunk *src;
};

static int
cmp_chunk (const void *a, const void *b)
{
  const struct base_chunk *x = a, *y = b;
  int c = strcmp (x->digest, y->digest);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The chunks of one blob of the store, when it is a zstd:chunked layer
 * (its footer says so; it was verified when it was stored). */
static void
base_add (struct base *b, int fd)
{
  unsigned char tail[72];
  struct reg_toc_pos pos;
  cleanup_free char *frame = NULL;
  reg_toc *t = NULL;
  struct stat st;
  size_t n;

  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size < 48)
    return;
  n = st.st_size < 72 ? (size_t) st.st_size : 72;
  if (pread (fd, tail, n, st.st_size - (off_t) n) != (ssize_t) n)
    return;
  if (reg_toc_footer (tail, n, st.st_size, &pos, NULL) == 0)
    {
      frame = xmalloc ((size_t) pos.length);
      if (pread (fd, frame, (size_t) pos.length, pos.offset) != pos.length
          || reg_toc_parse (&t, frame, (size_t) pos.length, &pos, st.st_size, NULL) < 0)
        return;
    }
  else
    {
      int64_t off;
      size_t footer;
      if (reg_estargz_footer (tail, n, st.st_size, &off, &footer, NULL) < 0)
        return;
      n = (size_t) (st.st_size - (off_t) footer - off);
      frame = xmalloc (n);
      if (pread (fd, frame, n, off) != (ssize_t) n || reg_estargz_parse (&t, frame, n, "", off, NULL) < 0)
        return;
    }
  for (size_t i = 0; i < reg_toc_count (t); i++)
    {
      const struct reg_toc_chunk *c = reg_toc_chunk (t, i);
      if (b->n == b->cap)
        {
          b->cap = b->cap ? 2 * b->cap : 1024;
          b->v = xrealloc (b->v, b->cap * sizeof *b->v);
        }
      snprintf (b->v[b->n].digest, sizeof b->v[b->n].digest, "%s", c->digest);
      b->v[b->n].len = c->end - c->offset;
      b->v[b->n].blob = b->nblobs;
      b->v[b->n].offset = c->offset;
      b->n++;
    }
  reg_toc_free (t);
}

bool
reg_partial_base (reg_store *s, const char *digest)
{
  cleanup_free char *path = reg_store_blob_path (s, digest);
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  unsigned char tail[72];
  struct reg_toc_pos pos;
  struct stat st;
  int64_t off;
  size_t n, footer;

  /* its footer says so; the TOC itself is read when it is used */
  if (fd < 0 || fstat (fd, &st) < 0 || st.st_size < 47)
    return false;
  n = st.st_size < 72 ? (size_t) st.st_size : 72;
  return pread (fd, tail, n, st.st_size - (off_t) n) == (ssize_t) n
         && (reg_toc_footer (tail, n, st.st_size, &pos, NULL) == 0
             || reg_estargz_footer (tail, n, st.st_size, &off, &footer, NULL) == 0);
}

static void
base_scan (struct base *b, reg_store *s)
{
  cleanup_free char *dir = xasprintf ("%s/blobs/sha256", reg_store_dir (s));
  DIR *d = opendir (dir);
  struct dirent *de;

  while (d && (de = readdir (d)) != NULL && b->nblobs < BASE_BLOBS_MAX)
    {
      int fd;
      if (strlen (de->d_name) != EF_DIGEST_HEX)
        continue;
      fd = openat (dirfd (d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0)
        continue;
      size_t before = b->n;
      base_add (b, fd);
      if (b->n > before)
        b->fds[b->nblobs++] = fd;
      else
        close (fd);
    }
  if (d)
    closedir (d);
  if (b->n > 1)
    qsort (b->v, b->n, sizeof *b->v, cmp_chunk);
}

static void
base_dispose (struct base *b)
{
  for (int i = 0; i < b->nblobs; i++)
    close (b->fds[i]);
  free (b->v);
}

static const struct base_chunk *
base_find (const struct base *b, const char *digest, int64_t len)
{
  struct base_chunk key = { .len = len };

  snprintf (key.digest, sizeof key.digest, "%s", digest);
  return b->n ? bsearch (&key, b->v, b->n, sizeof *b->v, cmp_chunk) : NULL;
}

/* Segments tiling [0, size): the chunks the store holds are copied, the
 * TOC is at hand, the rest is fetched; then merged down to at most
 * REG_PARTIAL_RANGES fetches.  Returns the count. */
static size_t
plan (const reg_toc *t, const struct base *b, const struct reg_toc_pos *pos, int64_t size, struct seg *v)
{
  size_t n = 0;
  int64_t cur = 0;

  for (size_t i = 0; i < reg_toc_count (t); i++)
    {
      const struct reg_toc_chunk *c = reg_toc_chunk (t, i);
      const struct base_chunk *src = base_find (b, c->digest, c->end - c->offset);
      if (src == NULL)
        continue;
      if (c->offset > cur)
        v[n++] = (struct seg){ cur, c->offset, SEG_FETCH, NULL };
      v[n++] = (struct seg){ c->offset, c->end, SEG_COPY, src };
      cur = c->end;
    }
  if (pos->offset > cur) /* the TOC lies after every chunk (toc.c checks it) */
    v[n++] = (struct seg){ cur, pos->offset, SEG_FETCH, NULL };
  v[n++] = (struct seg){ pos->offset, pos->offset + pos->length, SEG_TOC, NULL };
  if (size > pos->offset + pos->length)
    v[n++] = (struct seg){ pos->offset + pos->length, size, SEG_FETCH, NULL };
  return n;
}

/* Fetch what lies between two fetches when it is small, or when there
 * are too many fetches (the smallest gap first). */
static size_t
merge (struct seg *v, size_t n)
{
  for (;;)
    {
      size_t fetches = 0, best = n, next = n;
      int64_t gap = INT64_MAX;
      for (size_t i = 0; i < n; i++)
        {
          size_t j = i + 1;
          if (v[i].kind != SEG_FETCH)
            continue;
          fetches++;
          while (j < n && v[j].kind != SEG_FETCH)
            j++;
          if (j < n && v[j].off - v[i].end < gap)
            {
              gap = v[j].off - v[i].end;
              best = i;
              next = j;
            }
        }
      if (best == n || (gap > MERGE_GAP && fetches <= REG_PARTIAL_RANGES))
        return n;
      v[best].end = v[next].end;
      memmove (&v[best + 1], &v[next + 1], (n - next - 1) * sizeof *v);
      n -= next - best;
    }
}

struct at
{
  int fd;
  int64_t off;
};

static int
write_at (void *payload, const void *buf, size_t len, ef_err **err)
{
  struct at *a = payload;
  const char *p = buf;

  while (len > 0)
    {
      ssize_t w = pwrite (a->fd, p, len, a->off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return ef_err_io (err, errno ? errno : EIO, "write a rebuilt layer");
      p += w;
      len -= (size_t) w;
      a->off += w;
    }
  return 0;
}

static int
copy (const struct base *b, const struct seg *sg, int fd, ef_err **err)
{
  cleanup_free char *buf = xmalloc (COPY_BUF);
  struct at a = { fd, sg->off };
  int64_t left = sg->end - sg->off, from = sg->src->offset;

  while (left > 0)
    {
      size_t want = left < COPY_BUF ? (size_t) left : COPY_BUF;
      ssize_t r = pread (b->fds[sg->src->blob], buf, want, from);
      int rc;
      if (r <= 0)
        return ef_err_io (err, r < 0 ? errno : EIO, "read a stored layer");
      if ((rc = write_at (&a, buf, (size_t) r, err)) < 0)
        return rc;
      from += r;
      left -= r;
    }
  return 0;
}

static int
collect (void *payload, const void *buf, size_t len, ef_err **err)
{
  struct ef_buf *b = payload;
  if (ef_buf_append (b, buf, len) < 0)
    return ef_err_set (err, EF_VERIFY, "a TOC longer than announced");
  return 0;
}

/* The file hashes to digest. */
static int
check (int fd, const char *digest, ef_err **err)
{
  cleanup_free char *buf = xmalloc (COPY_BUF);
  char got[EF_DIGEST_LEN + 1];
  ef_hash *h = ef_hash_new ();
  off_t off = 0;
  ssize_t r;

  while ((r = pread (fd, buf, COPY_BUF, off)) > 0)
    {
      ef_hash_update (h, buf, (size_t) r);
      off += r;
    }
  ef_hash_final (h, got);
  ef_hash_free (h);
  if (r < 0)
    return ef_err_io (err, errno, "read a rebuilt layer");
  if (strcmp (got, digest) != 0)
    return ef_err_set (err, EF_VERIFY, "layer %s rebuilt from its chunks hashes to %s", digest, got);
  return 0;
}

/* The journal of a rebuild: the digest of its plan on the first line,
 * then the number of every fetched range whose bytes are on disk, so that
 * a rebuild killed half way fetches only the rest (the copies from the
 * store are made again: they cost no bytes on the wire). */
struct journal
{
  int fd;
  bool *done; /* by segment */
};

static void
plan_digest (const struct reg_desc *d, const struct seg *v, size_t n, char out[72])
{
  ef_hash *h = ef_hash_new ();

  ef_hash_update (h, d->digest, strlen (d->digest));
  for (size_t i = 0; i < n; i++)
    {
      int64_t rec[3] = { v[i].off, v[i].end, (int64_t) v[i].kind };
      ef_hash_update (h, rec, sizeof rec);
    }
  ef_hash_final (h, out);
  ef_hash_free (h);
}

static int
journal_open (struct journal *j, const char *path, const char *plan, size_t n, ef_err **err)
{
  cleanup_free char *dir = xstrndup (path, (size_t) (strrchr (path, '/') - path));
  cleanup_free char *text = NULL;
  size_t len = 0;
  char *line, *save = NULL;

  j->done = xcalloc (n + 1, sizeof *j->done);
  if (ef_read_file (path, 64 * 1024, &text, &len) == 0 && strncmp (text, plan, strlen (plan)) == 0
      && text[strlen (plan)] == '\n')
    for (line = strtok_r (text + strlen (plan) + 1, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
      {
        uint64_t i;
        if (ef_parse_u64 (line, n ? n - 1 : 0, &i) == 0)
          j->done[i] = true;
      }
  else
    {
      unlink (path); /* another plan's, or torn by a cut: start it over */
      free (text);
      text = NULL;
    }
  j->fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (j->fd < 0)
    return ef_err_io (err, errno, "open %s", path);
  if (text == NULL && (dprintf (j->fd, "%s\n", plan) < 0 || fdatasync (j->fd) < 0))
    return ef_err_io (err, errno, "write %s", path);
  if (text == NULL)
    ef_fsync_dir (dir); /* the journal's name too: a cut would cost every range */
  return 0;
}

/* Range i is whole on disk: say so, after its bytes are, and durably
 * (a line a cut takes back costs that range again on the wire). */
static void
journal_mark (struct journal *j, int datafd, size_t i)
{
  if (fdatasync (datafd) == 0 && dprintf (j->fd, "%zu\n", i) > 0)
    fdatasync (j->fd);
}

/* Build the layer in fd from the plan, fetching what it says and the
 * journal does not hold already. */
static int
rebuild (reg_client *c, const struct reg_ref *ref, const struct reg_desc *d, const struct base *b,
         const struct seg *v, size_t n, const struct ef_buf *toc, int fd, struct journal *j,
         struct reg_fetch_stats *st, ef_err **err)
{
  int rc = 0;

  for (size_t i = 0; rc == 0 && i < n; i++)
    {
      struct at a = { fd, v[i].off };
      if (v[i].kind == SEG_COPY)
        {
          rc = copy (b, &v[i], fd, err);
          st->bytes_reused += v[i].end - v[i].off;
        }
      else if (v[i].kind == SEG_TOC)
        rc = write_at (&a, toc->data, toc->len, err);
      else if (j->done[i])
        st->bytes_reused += v[i].end - v[i].off; /* an earlier run fetched it */
      else
        {
          rc = reg_client_get_range (c, ref, d->digest, v[i].off, v[i].end - 1, write_at, &a, err);
          st->bytes_fetched += a.off - v[i].off;
          if (rc == 0)
            journal_mark (j, fd, i);
        }
    }
  return rc < 0 ? rc : check (fd, d->digest, err);
}

/* Rebuild d from the plan in ingest/<hex>.partial (locked: one rebuild
 * of a layer at a time), resuming what a killed run left; adopt it when
 * it hashes right, drop it when it does not, keep it for the next run
 * when the network failed. */
static int
rebuild_in_store (reg_client *c, const struct reg_ref *ref, const struct reg_desc *d, reg_store *s,
                  const struct base *b, const struct seg *v, size_t n, const struct ef_buf *toc,
                  struct reg_fetch_stats *st, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/ingest/%s.partial", reg_store_dir (s), d->digest + 7);
  cleanup_free char *jpath = xasprintf ("%s.journal", path);
  struct journal j = { .fd = -1 };
  char plan[72];
  int rc, fd;

  fd = open (path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return ef_err_io (err, errno, "open %s", path);
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      close (fd);
      return -EF_NOTFOUND; /* another edgefetch rebuilds it: fetch it the usual way, which waits */
    }
  plan_digest (d, v, n, plan);
  rc = journal_open (&j, jpath, plan, n, err);
  if (rc == 0)
    rc = rebuild (c, ref, d, b, v, n, toc, fd, &j, st, err);
  if (rc == 0)
    rc = reg_store_adopt (s, fd, path, d->digest, err);
  if (rc == 0 || rc == -EF_VERIFY || rc == -EF_LOCAL)
    {
      if (rc < 0)
        unlink (path); /* no wrong byte is kept */
      unlink (jpath);
    }
  if (j.fd >= 0)
    close (j.fd);
  free (j.done);
  close (fd);
  return rc;
}

/* The new layer's TOC, by Range requests: a zstd:chunked one where its
 * annotations place it, an eStargz one where its footer does.  *toc holds
 * the bytes [pos->offset, pos->offset + pos->length) of the layer. */
static int
new_toc (reg_client *c, const struct reg_ref *ref, const struct reg_desc *d, struct reg_toc_pos *pos,
         struct ef_buf *toc, reg_toc **t, struct reg_fetch_stats *st, ef_err **err)
{
  char tocd[72];
  struct ef_buf tail;
  int64_t off;
  size_t footer;
  int rc;

  if (reg_toc_position (d, pos, NULL) == 0)
    {
      ef_buf_init (toc, (size_t) pos->length);
      rc = reg_client_get_range (c, ref, d->digest, pos->offset, pos->offset + pos->length - 1, collect, toc, err);
      st->bytes_fetched += (int64_t) toc->len;
      return rc < 0 ? rc : reg_toc_parse (t, toc->data, toc->len, pos, d->size, err);
    }
  if (reg_estargz_toc_digest (d, tocd, NULL) < 0 || d->size < REG_ESTARGZ_FOOTER_MAX)
    return -EF_NOTFOUND;
  ef_buf_init (&tail, REG_ESTARGZ_FOOTER_MAX);
  ef_buf_init (toc, REG_TOC_MAX + REG_ESTARGZ_FOOTER_MAX);
  rc = reg_client_get_range (c, ref, d->digest, d->size - REG_ESTARGZ_FOOTER_MAX, d->size - 1, collect, &tail, err);
  st->bytes_fetched += (int64_t) tail.len;
  if (rc == 0)
    rc = reg_estargz_footer ((unsigned char *) tail.data, tail.len, d->size, &off, &footer, err);
  if (rc == 0)
    {
      rc = reg_client_get_range (c, ref, d->digest, off, d->size - (int64_t) footer - 1, collect, toc, err);
      st->bytes_fetched += (int64_t) toc->len;
    }
  if (rc == 0)
    rc = reg_estargz_parse (t, toc->data, toc->len, tocd, off, err);
  if (rc == 0)
    {
      ef_buf_append (toc, tail.data + tail.len - footer, footer); /* the footer follows the TOC */
      pos->offset = off;
      pos->length = d->size - off;
    }
  ef_buf_dispose (&tail);
  return rc;
}

reg_partial *
reg_partial_new (reg_store *s)
{
  reg_partial *p = xcalloc (1, sizeof *p);

  p->s = s;
  return p;
}

void
reg_partial_free (reg_partial *p)
{
  if (p == NULL)
    return;
  base_dispose (&p->b);
  free (p);
}

int
reg_partial_fetch (reg_partial *p, reg_client *c, const struct reg_ref *ref, const struct reg_desc *d,
                   struct reg_fetch_stats *st, ef_err **err)
{
  const struct reg_client_opts *o = reg_client_opts (c);
  struct reg_toc_pos pos;
  struct ef_buf toc;
  reg_toc *t = NULL;
  cleanup_free struct seg *v = NULL;
  char tocd[72];
  int64_t reused = 0;
  size_t n;
  int rc;

  if ((reg_toc_position (d, &pos, NULL) < 0 && reg_estargz_toc_digest (d, tocd, NULL) < 0)
      || reg_client_ranges_refused (c) || (o->may_fetch && !o->may_fetch (o->may_fetch_ud)))
    return -EF_NOTFOUND;
  if (!p->scanned)
    base_scan (&p->b, p->s);
  p->scanned = true;
  if (p->b.n == 0)
    return -EF_NOTFOUND; /* nothing to build from */
  memset (&toc, 0, sizeof toc);
  rc = new_toc (c, ref, d, &pos, &toc, &t, st, err);
  if (rc == 0)
    {
      v = xcalloc (2 * reg_toc_count (t) + 4, sizeof *v);
      n = merge (v, plan (t, &p->b, &pos, d->size, v));
      for (size_t i = 0; i < n; i++)
        reused += v[i].kind == SEG_COPY ? v[i].end - v[i].off : 0;
      /* nothing in common: one plain fetch does better than ranges */
      rc = reused > 0 ? rebuild_in_store (c, ref, d, p->s, &p->b, v, n, &toc, st, err) : -EF_NOTFOUND;
    }
  if (rc < 0 && reg_client_ranges_refused (c))
    {
      ef_err_clear (err);
      rc = -EF_NOTFOUND;
    }
  reg_toc_free (t);
  ef_buf_dispose (&toc);
  return rc;
}
