/* hosts_toml.c: the TOML subset of hosts.toml (hosts_toml.h): a cursor
 * over the text, one line at a time: table headers and key = value,
 * values parsed into a small tree, checked against what each table may
 * hold. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../../common/text.h"
#include "../../common/util.h"
#include "hosts_toml.h"

int
hosts_fail (struct hosts_parser *ps, const char *fmt, ...)
{
  va_list ap;
  cleanup_free char *msg = NULL;

  va_start (ap, fmt);
  msg = xvasprintf (fmt, ap);
  va_end (ap);
  return ef_err_set (ps->err, EF_USAGE, "hosts.toml line %d: %s", ps->line, msg);
}

void
hosts_val_dispose (struct hosts_val *v)
{
  free (v->s);
  for (size_t i = 0; i < v->n; i++)
    hosts_val_dispose (&v->items[i]);
  free (v->items);
  memset (v, 0, sizeof *v);
}

static void
skip_ws (struct hosts_parser *ps)
{
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
    ps->p++;
}

/* Blanks, comments and newlines (inside an array). */
static void
skip_space (struct hosts_parser *ps)
{
  for (;;)
    {
      skip_ws (ps);
      if (ps->p < ps->end && *ps->p == '#')
        while (ps->p < ps->end && *ps->p != '\n')
          ps->p++;
      if (ps->p < ps->end && *ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
        ps->p++;
      if (ps->p < ps->end && *ps->p == '\n')
        {
          ps->p++;
          ps->line++;
          continue;
        }
      return;
    }
}

#define shown(c) show_char ((c), (char[8]){ 0 })

static const char *
show_char (char c, char *buf)
{
  if (c > 0x20 && c < 0x7f)
    snprintf (buf, 8, "'%c'", c);
  else
    snprintf (buf, 8, "\\x%02x", (unsigned char) c);
  return buf;
}

/* The rest of the line: blanks and a comment, then its end. */
static int
end_of_line (struct hosts_parser *ps)
{
  skip_ws (ps);
  if (ps->p < ps->end && *ps->p == '#')
    while (ps->p < ps->end && *ps->p != '\n')
      {
        unsigned char c = (unsigned char) *ps->p++;
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
          return hosts_fail (ps, "control character in a comment");
      }
  if (ps->p < ps->end && *ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
    ps->p++;
  if (ps->p == ps->end)
    return 0;
  if (*ps->p != '\n')
    return hosts_fail (ps, "unexpected %s", shown (*ps->p));
  ps->p++;
  ps->line++;
  return 0;
}

static void
put_utf8 (struct ef_buf *b, unsigned long cp)
{
  char u[4];
  size_t n;

  if (cp < 0x80)
    u[0] = (char) cp, n = 1;
  else if (cp < 0x800)
    u[0] = (char) (0xc0 | (cp >> 6)), u[1] = (char) (0x80 | (cp & 0x3f)), n = 2;
  else if (cp < 0x10000)
    u[0] = (char) (0xe0 | (cp >> 12)), u[1] = (char) (0x80 | ((cp >> 6) & 0x3f)), u[2] = (char) (0x80 | (cp & 0x3f)),
    n = 3;
  else
    u[0] = (char) (0xf0 | (cp >> 18)), u[1] = (char) (0x80 | ((cp >> 12) & 0x3f)),
    u[2] = (char) (0x80 | ((cp >> 6) & 0x3f)), u[3] = (char) (0x80 | (cp & 0x3f)), n = 4;
  ef_buf_append (b, u, n);
}

/* One escape of a basic string, after its backslash. */
static int
escape (struct hosts_parser *ps, struct ef_buf *b)
{
  static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
  const char *k;
  unsigned long cp = 0;
  int digits;

  if (ps->p == ps->end)
    return hosts_fail (ps, "unterminated string");
  if ((k = strchr (from, *ps->p)) != NULL && *ps->p)
    {
      ef_buf_append (b, &to[k - from], 1);
      ps->p++;
      return 0;
    }
  if (*ps->p != 'u' && *ps->p != 'U')
    return hosts_fail (ps, "unknown escape \\%s", shown (*ps->p));
  digits = *ps->p++ == 'u' ? 4 : 8;
  for (int i = 0; i < digits; i++, ps->p++)
    {
      char c = ps->p < ps->end ? *ps->p : 0;
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0)
        return hosts_fail (ps, "bad \\u escape");
      cp = cp << 4 | (unsigned long) v;
    }
  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return hosts_fail (ps, "escape \\u%lx is not a character we accept", cp);
  put_utf8 (b, cp);
  return 0;
}

/* A basic ("...") or literal ('...') string on one line. */
static int
parse_string (struct hosts_parser *ps, char **out)
{
  char q = *ps->p++;
  struct ef_buf b;
  int rc = 0;

  if (ps->end - ps->p >= 2 && ps->p[0] == q && ps->p[1] == q)
    return hosts_fail (ps, "multi-line strings are not supported");
  ef_buf_init (&b, STR_MAX + 4);
  while (rc == 0)
    {
      unsigned char c;
      if (ps->p == ps->end || *ps->p == '\n')
        {
          rc = hosts_fail (ps, "unterminated string");
          break;
        }
      c = (unsigned char) *ps->p++;
      if (c == (unsigned char) q)
        break;
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        rc = hosts_fail (ps, "control character in a string");
      else if (c == '\\' && q == '"')
        rc = escape (ps, &b);
      else
        ef_buf_append (&b, &c, 1);
      if (rc == 0 && b.len > STR_MAX)
        rc = hosts_fail (ps, "string longer than %d bytes", STR_MAX);
    }
  if (rc == 0 && b.len != strlen (b.data ? b.data : ""))
    rc = hosts_fail (ps, "NUL in a string");
  if (rc < 0)
    {
      ef_buf_dispose (&b);
      return rc;
    }
  *out = b.data ? b.data : xstrdup ("");
  return 0;
}

static bool
bare_char (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int
parse_key (struct hosts_parser *ps, char **out)
{
  const char *s = ps->p;

  if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\''))
    return parse_string (ps, out);
  while (ps->p < ps->end && bare_char (*ps->p))
    ps->p++;
  if (ps->p == s)
    return ps->p < ps->end ? hosts_fail (ps, "expected a key, found %s", shown (*ps->p)) : hosts_fail (ps, "expected a key");
  if (ps->p - s > 256)
    return hosts_fail (ps, "key too long");
  *out = xstrndup (s, (size_t) (ps->p - s));
  return 0;
}

static int parse_value (struct hosts_parser *ps, struct hosts_val *v, int depth);

static int
parse_array (struct hosts_parser *ps, struct hosts_val *v, int depth)
{
  int rc;

  ps->p++; /* [ */
  v->t = V_ARR;
  v->items = xcalloc (ITEMS_MAX, sizeof *v->items);
  for (;;)
    {
      skip_space (ps);
      if (ps->p < ps->end && *ps->p == ']')
        {
          ps->p++;
          return 0;
        }
      if (v->n == ITEMS_MAX)
        return hosts_fail (ps, "more than %d items in an array", ITEMS_MAX);
      rc = parse_value (ps, &v->items[v->n++], depth + 1);
      if (rc < 0)
        return rc; /* the half-made item is v's, disposed with it */
      skip_space (ps);
      if (ps->p < ps->end && *ps->p == ',')
        ps->p++;
      else if (ps->p < ps->end && *ps->p == ']')
        continue;
      else
        return ps->p < ps->end ? hosts_fail (ps, "expected ',' or ']' in an array, found %s", shown (*ps->p))
                               : hosts_fail (ps, "unterminated array");
    }
}

static int
parse_value (struct hosts_parser *ps, struct hosts_val *v, int depth)
{
  size_t left = (size_t) (ps->end - ps->p);

  if (left == 0 || *ps->p == '\n')
    return hosts_fail (ps, "missing value");
  if (*ps->p == '"' || *ps->p == '\'')
    {
      v->t = V_STR;
      return parse_string (ps, &v->s);
    }
  if (*ps->p == '[')
    {
      if (depth >= DEPTH_MAX)
        return hosts_fail (ps, "arrays nested too deep");
      return parse_array (ps, v, depth);
    }
  if (left >= 4 && memcmp (ps->p, "true", 4) == 0 && (left == 4 || !bare_char (ps->p[4])))
    {
      v->t = V_BOOL;
      v->b = true;
      ps->p += 4;
      return 0;
    }
  if (left >= 5 && memcmp (ps->p, "false", 5) == 0 && (left == 5 || !bare_char (ps->p[5])))
    {
      v->t = V_BOOL;
      ps->p += 5;
      return 0;
    }
  if (*ps->p == '{')
    return hosts_fail (ps, "inline tables are not supported; use a [table]");
  return hosts_fail (ps, "unsupported value starting with %s (strings, true, false and arrays only)", shown (*ps->p));
}

/* The table [host."url"], made on first use. */
static int
host_table (struct hosts_parser *ps, const char *url, bool reopen, struct hosts_table **out)
{
  for (size_t i = 1; i < ps->ntables; i++)
    if (strcmp (ps->tables[i].url, url) == 0)
      {
        if (!reopen && ps->tables[i].declared)
          return hosts_fail (ps, "[host.\"%s\"] appears twice", url);
        ps->tables[i].declared |= !reopen;
        *out = &ps->tables[i];
        return 0;
      }
  if (ps->ntables == REG_HOSTS_MAX + 1)
    return hosts_fail (ps, "more than %d hosts", REG_HOSTS_MAX);
  *out = &ps->tables[ps->ntables++];
  (*out)->url = xstrdup (url);
  (*out)->line = ps->line;
  (*out)->declared = !reopen;
  return 0;
}

/* [header], [host."URL"], [host."URL".header] */
static int
parse_table_header (struct hosts_parser *ps)
{
  char *keys[4] = { 0 };
  size_t n = 0;
  int rc = 0;

  ps->p++; /* [ */
  if (ps->p < ps->end && *ps->p == '[')
    return hosts_fail (ps, "arrays of tables are not supported");
  for (;;)
    {
      skip_ws (ps);
      if (n == 4)
        {
          rc = hosts_fail (ps, "table name too long");
          break;
        }
      if ((rc = parse_key (ps, &keys[n])) < 0)
        break;
      n++;
      skip_ws (ps);
      if (ps->p < ps->end && *ps->p == '.')
        {
          ps->p++;
          continue;
        }
      if (ps->p < ps->end && *ps->p == ']')
        {
          ps->p++;
          break;
        }
      rc = ps->p < ps->end && *ps->p != '\n' ? hosts_fail (ps, "unexpected %s in a table name", shown (*ps->p))
                                             : hosts_fail (ps, "unterminated table name");
      break;
    }
  if (rc == 0)
    {
      bool header = strcmp (keys[n - 1], "header") == 0;
      size_t base = header ? n - 1 : n;
      if (base == 0 && header)
        ps->cur = &ps->tables[0];
      else if (base == 2 && strcmp (keys[0], "host") == 0)
        rc = host_table (ps, keys[1], header, &ps->cur);
      else
        rc = hosts_fail (ps, "unknown table [%s%s%s]", keys[0], n > 1 ? "." : "", n > 1 ? keys[1] : "");
      if (rc == 0 && header)
        {
          if (ps->cur->header_table)
            rc = hosts_fail (ps, "a header table appears twice");
          ps->cur->header_table = true;
        }
      ps->in_header = header;
    }
  for (size_t i = 0; i < 4; i++)
    free (keys[i]);
  return rc < 0 ? rc : end_of_line (ps);
}

static bool
token_char (char c)
{
  return c > 0x20 && c < 0x7f && strchr ("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

static int
add_header (struct hosts_parser *ps, const char *name, const char *value)
{
  struct hosts_table *t = ps->cur;
  size_t nl = strlen (name);

  if (nl == 0)
    return hosts_fail (ps, "empty header name");
  for (const char *c = name; *c; c++)
    if (!token_char (*c))
      return hosts_fail (ps, "header name '%s' is not an HTTP token", name);
  if (strpbrk (value, "\r\n") != NULL)
    return hosts_fail (ps, "header %s: a value holds a line break", name);
  for (size_t i = 0; i < t->nheaders; i++)
    if (strncasecmp (t->headers[i], name, nl) == 0 && t->headers[i][nl] == ':')
      return hosts_fail (ps, "header %s given twice", name);
  if (t->nheaders == HEADERS_MAX)
    return hosts_fail (ps, "more than %d headers", HEADERS_MAX);
  t->headers = xrealloc (t->headers, (t->nheaders + 2) * sizeof *t->headers);
  t->headers[t->nheaders++] = xasprintf ("%s: %s", name, value);
  t->headers[t->nheaders] = NULL;
  return 0;
}

/* name = v in a header table: a string or an array of them (one header line each, joined by ", "). */
static int
header_value (struct hosts_parser *ps, const char *name, struct hosts_val *v)
{
  struct ef_buf b;
  int rc;

  if (v->t == V_STR)
    return add_header (ps, name, v->s);
  for (size_t i = 0; v->t == V_ARR && i < v->n; i++)
    if (v->items[i].t != V_STR)
      return hosts_fail (ps, "header %s: want a string or an array of strings", name);
  if (v->t != V_ARR)
    return hosts_fail (ps, "header %s: want a string or an array of strings", name);
  ef_buf_init (&b, STR_MAX * 2);
  ef_buf_append (&b, "", 0);
  for (size_t i = 0; i < v->n; i++)
    {
      if (i)
        ef_buf_append (&b, ", ", 2);
      ef_buf_append (&b, v->items[i].s, strlen (v->items[i].s));
    }
  rc = add_header (ps, name, b.data ? b.data : "");
  ef_buf_dispose (&b);
  return rc;
}

static int
take (struct hosts_parser *ps, unsigned key, const char *name, struct hosts_val *v, struct hosts_val *dst)
{
  struct hosts_table *t = ps->cur;

  if (t->seen & key)
    return hosts_fail (ps, "%s given twice", name);
  t->seen |= key;
  switch (key)
    {
    case K_SERVER:
      if (v->t != V_STR)
        return hosts_fail (ps, "server: want a string");
      t->url = v->s;
      v->s = NULL;
      return 0;
    case K_SKIP:
    case K_OVERRIDE:
      if (v->t != V_BOOL)
        return hosts_fail (ps, "%s: want true or false", name);
      *(key == K_SKIP ? &t->skip_verify : &t->override_path) = v->b;
      return 0;
    default:
      *dst = *v;
      memset (v, 0, sizeof *v);
      return 0;
    }
}

static int
parse_keyval (struct hosts_parser *ps)
{
  cleanup_free char *key = NULL;
  struct hosts_val v = { 0 };
  struct hosts_table *t = ps->cur;
  int rc = parse_key (ps, &key);

  if (rc == 0)
    {
      skip_ws (ps);
      if (ps->p < ps->end && *ps->p == '.')
        rc = hosts_fail (ps, "dotted keys are not supported; use a [table]");
      else if (ps->p == ps->end || *ps->p != '=')
        rc = hosts_fail (ps, "expected '=' after %s", key);
      else
        {
          ps->p++;
          skip_ws (ps);
          rc = parse_value (ps, &v, 0);
        }
    }
  if (rc == 0 && ps->in_header)
    rc = header_value (ps, key, &v);
  else if (rc == 0 && strcmp (key, "server") == 0 && t == &ps->tables[0])
    rc = take (ps, K_SERVER, key, &v, NULL);
  else if (rc == 0 && strcmp (key, "capabilities") == 0)
    rc = take (ps, K_CAPS, key, &v, &t->caps);
  else if (rc == 0 && strcmp (key, "ca") == 0)
    rc = take (ps, K_CA, key, &v, &t->ca);
  else if (rc == 0 && strcmp (key, "client") == 0)
    rc = take (ps, K_CLIENT, key, &v, &t->client);
  else if (rc == 0 && strcmp (key, "skip_verify") == 0)
    rc = take (ps, K_SKIP, key, &v, NULL);
  else if (rc == 0 && strcmp (key, "override_path") == 0)
    rc = take (ps, K_OVERRIDE, key, &v, NULL);
  else if (rc == 0)
    {
      cleanup_free char *k = ef_escape (key, 64);
      rc = hosts_fail (ps, "unknown key '%s'", k);
    }
  hosts_val_dispose (&v);
  return rc < 0 ? rc : end_of_line (ps);
}

int
hosts_parse_lines (struct hosts_parser *ps)
{
  int rc = 0;

  while (rc == 0)
    {
      skip_space (ps);
      if (ps->p == ps->end)
        return 0;
      if (*ps->p == '[')
        rc = parse_table_header (ps);
      else
        rc = parse_keyval (ps);
    }
  return rc;
}

