/* hosts_toml.h: inside hosts.c, the reader of the TOML subset: lines,
 * table headers, key = value, values, into the tables of one file;
 * hosts.c turns tables into endpoints. */
#ifndef EF_HOSTS_TOML_H
#define EF_HOSTS_TOML_H

#include <stdbool.h>
#include <stddef.h>

#include "../../common/err.h"
#include "hosts.h"

#define STR_MAX 4096
#define ITEMS_MAX 32
#define DEPTH_MAX 2
#define HEADERS_MAX 32

enum vtype
{
  V_STR,
  V_BOOL,
  V_ARR,
};

struct hosts_val
{
  enum vtype t;
  char *s;
  bool b;
  struct hosts_val *items;
  size_t n;
};

/* What a table of the file collects before it becomes an endpoint. */
struct hosts_table
{
  char *url; /* [host."URL"], or the server for the root */
  int line;
  unsigned seen; /* keys given, by enum key */
  struct hosts_val caps, ca, client;
  bool skip_verify, override_path;
  char **headers;
  size_t nheaders;
  bool declared;     /* its own [host."URL"] line was read */
  bool header_table; /* its [.header] table was opened */
};

enum key
{
  K_SERVER = 1 << 0,
  K_CAPS = 1 << 1,
  K_CA = 1 << 2,
  K_CLIENT = 1 << 3,
  K_SKIP = 1 << 4,
  K_OVERRIDE = 1 << 5,
};

struct hosts_parser
{
  const char *p, *end;
  int line;
  ef_err **err;
  struct hosts_table tables[REG_HOSTS_MAX + 1]; /* [0] is the root */
  size_t ntables;
  struct hosts_table *cur;
  bool in_header; /* the current table is cur's header table */
};

/* Set *ps->err to "hosts.toml line N: ..." for the current line; returns -EF_USAGE. */
int hosts_fail (struct hosts_parser *ps, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void hosts_val_dispose (struct hosts_val *v);
/* Read every line of ps's text into ps->tables ([0] the root). */
int hosts_parse_lines (struct hosts_parser *ps);

#endif
