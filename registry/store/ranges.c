/* ranges.c: see ranges.h. */
#include <string.h>

#include "../../common/json.h"
#include "../../common/util.h"
#include "ranges.h"

void
ranges_clear (struct ranges *s)
{
  s->n = 0;
}

void
ranges_dispose (struct ranges *s)
{
  free (s->r);
  memset (s, 0, sizeof *s);
}

void
ranges_add (struct ranges *s, int64_t from, int64_t to)
{
  size_t i = 0, k;

  if (from >= to)
    return;
  while (i < s->n && s->r[i][1] < from)
    i++;
  /* ranges i .. k-1 touch [from, to): they merge into one */
  for (k = i; k < s->n && s->r[k][0] <= to; k++)
    {
      if (s->r[k][0] < from)
        from = s->r[k][0];
      if (s->r[k][1] > to)
        to = s->r[k][1];
    }
  if (k == i)
    {
      if (s->n == s->cap)
        {
          s->cap = s->cap ? s->cap * 2 : 8;
          s->r = xrealloc (s->r, s->cap * sizeof *s->r);
        }
      memmove (s->r + i + 1, s->r + i, (s->n - i) * sizeof *s->r);
      s->n++;
      k = i + 1;
    }
  s->r[i][0] = from;
  s->r[i][1] = to;
  memmove (s->r + i + 1, s->r + k, (s->n - k) * sizeof *s->r);
  s->n -= k - i - 1;
}

int64_t
ranges_end_at (const struct ranges *s, int64_t at)
{
  for (size_t i = 0; i < s->n && s->r[i][0] <= at; i++)
    if (at < s->r[i][1])
      return s->r[i][1];
  return at;
}

int64_t
ranges_total (const struct ranges *s)
{
  int64_t t = 0;

  for (size_t i = 0; i < s->n; i++)
    t += s->r[i][1] - s->r[i][0];
  return t;
}

void
ranges_clip (struct ranges *s, int64_t limit)
{
  while (s->n > 0 && s->r[s->n - 1][0] >= limit)
    s->n--;
  if (s->n > 0 && s->r[s->n - 1][1] > limit)
    s->r[s->n - 1][1] = limit;
}

int
ranges_parse (struct ranges *s, const char *buf, size_t len, int64_t size, ef_err **err)
{
  const char *why = NULL;
  json_t *root = ef_json_parse (buf, len, 4 * RANGES_FILE_MAX, &why);
  json_t *done = json_object_get (root, "done"), *sz = json_object_get (root, "size");
  int64_t last = 0;
  size_t k;
  json_t *v;

  ranges_clear (s);
  if (root == NULL)
    return ef_err_set (err, EF_LOCAL, "record of ranges %s", why);
  if (json_is_integer (sz) && size < 0)
    size = json_integer_value (sz);
  if (size < 0 || !json_is_integer (sz) || json_integer_value (sz) != size || !json_is_array (done)
      || json_array_size (done) > RANGES_MAX)
    goto bad;
  json_array_foreach (done, k, v)
  {
    json_t *a = json_array_get (v, 0), *b = json_array_get (v, 1);
    int64_t from, to;
    if (!json_is_array (v) || json_array_size (v) != 2 || !json_is_integer (a) || !json_is_integer (b))
      goto bad;
    from = json_integer_value (a);
    to = json_integer_value (b);
    if (from < last || (k > 0 && from == last) || to <= from || to > size)
      goto bad;
    ranges_add (s, from, to);
    last = to;
  }
  json_decref (root);
  return 0;
bad:
  json_decref (root);
  ranges_clear (s);
  return ef_err_set (err, EF_LOCAL, "record of ranges does not describe a blob of %lld bytes", (long long) size);
}

char *
ranges_format (const struct ranges *s, int64_t size)
{
  json_t *done = json_array ();
  json_t *root;
  char *text;

  for (size_t i = 0; i < s->n; i++)
    json_array_append_new (done, json_pack ("[II]", (json_int_t) s->r[i][0], (json_int_t) s->r[i][1]));
  root = json_pack ("{sIso}", "size", (json_int_t) size, "done", done);
  text = json_dumps (root, JSON_COMPACT);
  json_decref (root);
  return text ? text : xstrdup ("");
}
