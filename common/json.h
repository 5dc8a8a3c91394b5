/* json.h: JSON from other parties (registries, token servers, the
 * exchange, runtimes, auth files), parsed by jansson within a memory
 * budget.  A 4 MiB body of [0,0,...] is 2 million values: unbounded, that
 * is about 100 MB of jansson objects on a 512 MB device. */
#ifndef EF_JSON_H
#define EF_JSON_H

#include <stddef.h>

#include <jansson.h>

/* Enough for any real manifest, index, token or exchange answer. */
#define EF_JSON_BUDGET (8u << 20)

/* Parse buf (duplicate keys refused) with at most budget bytes of jansson
 * memory.  NULL on failure, *why then says what was wrong: "is not valid
 * JSON" or "is too complex to hold (more than N KiB in memory)". */
json_t *ef_json_parse (const char *buf, size_t len, size_t budget, const char **why);

/* The same over what fd holds from its start, read 16 KiB at a time, so
 * that no more of a large text than its tree is ever in memory. */
json_t *ef_json_parse_fd (int fd, size_t budget, const char **why);

#endif
