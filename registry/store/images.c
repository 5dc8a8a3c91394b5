/* images.c: the images the store holds (STORE/images.json), and gc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../../common/digest.h"
#include "../../common/file.h"
#include "../../common/json.h"
#include "../../common/util.h"
#include "../manifest.h"
#include "store.h"

#define IMAGES_MAX (16u << 20)

static json_t *
images_load (const reg_store *s)
{
  cleanup_free char *path = xasprintf ("%s/images.json", reg_store_dir (s));
  cleanup_free char *text = NULL;
  size_t len;
  json_t *j = NULL;

  if (ef_read_file (path, IMAGES_MAX, &text, &len) == 0)
    j = ef_json_parse (text, len, IMAGES_MAX, NULL);
  if (!json_is_object (j) || !json_is_object (json_object_get (j, "images")))
    {
      json_decref (j);
      j = json_pack ("{s:{}}", "images");
    }
  return j;
}



/* Rewrite images.json under images.lock, as edit changes it. */
static int
images_edit (reg_store *s, void (*edit) (json_t *j, void *payload), void *payload, ef_err **err)
{
  cleanup_free char *lockp = xasprintf ("%s/images.lock", reg_store_dir (s));
  cleanup_free char *path = xasprintf ("%s/images.json", reg_store_dir (s));
  cleanup_close int lock = open (lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  cleanup_free char *text = NULL;
  json_t *j;

  if (lock < 0 || flock (lock, LOCK_EX) < 0)
    return ef_err_io (err, errno, "lock %s", lockp);
  j = images_load (s);
  edit (j, payload);
  text = json_dumps (j, JSON_INDENT (1) | JSON_SORT_KEYS);
  json_decref (j);
  return ef_atomic_write (path, text, strlen (text), 0644, err);
}

struct record
{
  const char *name, *manifest, *index;
};

static void
set_record (json_t *j, void *payload)
{
  const struct record *r = payload;

  if (r->manifest)
    json_object_set_new (json_object_get (j, "images"), r->name,
                         json_pack ("{s:s, s:s?}", "manifest", r->manifest, "index", r->index));
  else
    json_object_del (json_object_get (j, "images"), r->name);
}

int
reg_store_record (reg_store *s, const char *name, const char *manifest_digest, const char *index_digest,
                  ef_err **err)
{
  struct record r = { name, manifest_digest, index_digest };
  return images_edit (s, set_record, &r, err);
}

int
reg_store_unrecord (reg_store *s, const char *name, ef_err **err)
{
  struct record r = { name, NULL, NULL };
  return images_edit (s, set_record, &r, err);
}

struct drop
{
  const char *digest;
  int64_t size;
};

static void
set_dropped (json_t *j, void *payload)
{
  const struct drop *d = payload;
  json_t *dropped = json_object_get (j, "dropped");

  if (!json_is_object (dropped))
    json_object_set_new (j, "dropped", dropped = json_object ());
  json_object_set_new (dropped, d->digest, json_integer (d->size));
}

int
reg_store_drop (reg_store *s, const char *digest, int64_t size, ef_err **err)
{
  struct drop d = { digest, size };
  int rc = ef_digest_parse (digest, NULL, err);

  if (rc == 0)
    rc = images_edit (s, set_dropped, &d, err);
  if (rc == 0 && reg_store_discard (s, digest) < 0)
    rc = ef_err_io (err, errno, "remove %s", digest);
  return rc;
}

bool
reg_store_dropped (reg_store *s, const char *digest, int64_t size)
{
  json_t *j = images_load (s);
  json_t *v = json_object_get (json_object_get (j, "dropped"), digest);
  bool dropped = json_is_integer (v) && json_integer_value (v) == size;

  json_decref (j);
  return dropped;
}

int
reg_store_lookup (reg_store *s, const char *name, char **manifest_digest, char **index_digest, ef_err **err)
{
  json_t *j = images_load (s), *e = json_object_get (json_object_get (j, "images"), name);
  json_t *m = json_object_get (e, "manifest"), *ix = json_object_get (e, "index");
  int rc = 0;

  *manifest_digest = *index_digest = NULL;
  if (!json_is_string (m))
    rc = ef_err_set (err, EF_NOTFOUND, "%s is not recorded in the store", name);
  else
    {
      *manifest_digest = xstrdup (json_string_value (m));
      *index_digest = json_is_string (ix) ? xstrdup (json_string_value (ix)) : NULL;
    }
  json_decref (j);
  return rc;
}


/* Mark a manifest (or index) and everything it names that we hold.
 * A recorded manifest that is missing or damaged fails: what it needs
 * cannot be known, so nothing may be removed. */
static int
mark (reg_store *s, json_t *keep, const char *digest, int depth, ef_err **err)
{
  cleanup_free char *buf = NULL;
  reg_manifest *m = NULL;
  size_t len;
  int rc = 0;

  if (depth > 3)
    return 0;
  rc = ef_digest_parse (digest, NULL, err);
  if (rc == 0)
    rc = reg_store_manifest (s, digest, &buf, &len, &m, err);
  if (rc < 0)
    return rc;
  json_object_set_new (keep, digest + 7, json_true ());
  if (reg_manifest_kind (m) == REG_IMAGE)
    json_object_set_new (keep, reg_manifest_config (m)->digest + 7, json_true ());
  for (size_t i = 0; rc == 0 && i < reg_manifest_count (m); i++)
    {
      const struct reg_desc *d = reg_manifest_entry (m, i);
      if (reg_manifest_kind (m) != REG_INDEX)
        json_object_set_new (keep, d->digest + 7, json_true ());
      else if (reg_store_has (s, d->digest, d->size))
        rc = mark (s, keep, d->digest, depth + 1, err);
    }
  reg_manifest_free (m);
  return rc;
}

/* The blobs every recorded image needs. */
static int
mark_all (reg_store *s, json_t *keep, ef_err **err)
{
  json_t *images = images_load (s), *e;
  const char *name;
  int rc = 0;

  json_object_foreach (json_object_get (images, "images"), name, e)
  {
    json_t *m = json_object_get (e, "manifest"), *ix = json_object_get (e, "index");
    rc = json_is_string (m) ? mark (s, keep, json_string_value (m), 0, err)
                            : ef_err_set (err, EF_LOCAL, "images.json: %s has no manifest", name);
    if (rc < 0)
      {
        ef_err_wrap (err, "gc removed nothing: image %s", name);
        break;
      }
    if (json_is_string (ix) && ef_digest_parse (json_string_value (ix), NULL, NULL) == 0)
      json_object_set_new (keep, json_string_value (ix) + 7, json_true ());
  }
  json_decref (images);
  return rc;
}

/* Remove what keep does not name. */
static int
sweep (reg_store *s, json_t *keep, struct reg_gc_stats *stats, ef_err **err)
{
  cleanup_free char *dir = xasprintf ("%s/blobs/sha256", reg_store_dir (s));
  struct dirent *de;
  DIR *d = opendir (dir);
  int dfd;

  if (d == NULL)
    return ef_err_io (err, errno, "read %s", dir);
  dfd = dirfd (d);
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;
      if (de->d_name[0] == '.')
        continue;
      if (json_object_get (keep, de->d_name))
        stats->blobs_kept++;
      else if (fstatat (dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && unlinkat (dfd, de->d_name, 0) == 0)
        {
          stats->blobs_removed++;
          stats->bytes_removed += st.st_size;
        }
    }
  fsync (dfd);
  closedir (d);
  return 0;
}

int
reg_store_gc (reg_store *s, struct reg_gc_stats *stats, ef_err **err)
{
  json_t *keep;
  int rc;

  memset (stats, 0, sizeof *stats);
  if (!reg_store_lock_exclusive (s))
    return ef_err_set (err, EF_LOCAL, "the store is in use by another edgefetch; try again later");
  keep = json_object ();
  rc = mark_all (s, keep, err);
  if (rc == 0)
    rc = sweep (s, keep, stats, err);
  json_decref (keep);
  reg_store_lock_shared (s);
  return rc;
}
