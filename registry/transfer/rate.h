/* rate.h: the download rate cap's syntax.  The cap holds a whole pull:
 * the transfer engine (blobs.c) gives each running transfer an equal
 * share of it, shared out again whenever one starts or ends, and
 * libcurl paces each one by not reading its socket while it is ahead. */
#ifndef EF_RATE_H
#define EF_RATE_H

#include <stdint.h>

#include "../../common/err.h"

/* curl's --limit-rate syntax: bytes per second, with an optional K, M or
 * G suffix (powers of 1024), at least 1 KiB/s.  EF_USAGE otherwise. */
int reg_rate_parse (const char *s, int64_t *out, ef_err **err);

#endif
