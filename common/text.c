/* text.c: see text.h. */
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "util.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_len (const unsigned char *p, size_t n)
{
  size_t want, i;

  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    want = 2;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    want = 3;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    want = 4;
  else
    return 0;
  if (n < want)
    return 0;
  for (i = 1; i < want; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  /* no overlong forms, no surrogates, nothing past U+10FFFF */
  if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90)
      || (p[0] == 0xf4 && p[1] >= 0x90))
    return 0;
  return want;
}

char *
ef_escape (const char *s, size_t max)
{
  const unsigned char *p = (const unsigned char *) (s ? s : "");
  size_t n = strlen ((const char *) p), i = 0, o = 0;
  char *out;

  if (max < 8)
    max = 8;
  out = xmalloc (max + 1);
  while (i < n)
    {
      size_t u = p[i] >= 0x20 && p[i] != 0x7f ? utf8_len (p + i, n - i) : 0;
      size_t need = u ? u : 4;
      if (o + need > max - 3)
        {
          memcpy (out + o, "...", 3);
          o += 3;
          break;
        }
      if (u)
        memcpy (out + o, p + i, u);
      else
        snprintf (out + o, 5, "\\x%02x", p[i]);
      o += need;
      i += u ? u : 1;
    }
  out[o] = '\0';
  return out;
}

void
ef_strv_free (char **v)
{
  if (v == NULL)
    return;
  for (char **p = v; *p; p++)
    free (*p);
  free (v);
}

size_t
ef_strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

bool
ef_has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n > m && strcmp (s + n - m, suffix) == 0;
}
