/* vectors.h: reading tests/vectors (other projects' files, see its README) from unit tests. */
#ifndef EF_TEST_VECTORS_H
#define EF_TEST_VECTORS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../common/file.h"
#include "../../common/util.h"

static inline char *
vec_path (const char *rel)
{
  const char *base = getenv ("EF_VECTORS");
  return xasprintf ("%s/%s", base ? base : "tests/vectors", rel);
}

/* Read a vector file; fails the test when it is missing. */
static inline char *
vec_read (const char *rel, size_t *len)
{
  char *path = vec_path (rel), *buf = NULL;
  size_t n = 0;

  if (ef_read_file (path, 64u << 20, &buf, &n) < 0)
    {
      /* fail_msg jumps out of the test: free first, so that a missing
         vector is one clear failure and not also a leak report. */
      char msg[512];
      snprintf (msg, sizeof msg, "cannot read vector %s (run from the top of the tree, or set EF_VECTORS)", path);
      free (path);
      path = NULL;
      fail_msg ("%s", msg);
    }
  free (path);
  if (len)
    *len = n;
  return buf;
}

static inline json_t *
vec_json (const char *rel)
{
  size_t n;
  char *text = vec_read (rel, &n);
  json_t *j = json_loadb (text, n, 0, NULL);
  free (text);
  assert_non_null (j);
  return j;
}

#endif
