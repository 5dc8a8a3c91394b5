/* text.h: strings that reach a terminal, and string lists. */
#ifndef EF_TEXT_H
#define EF_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* At most this many bytes of any one message or echoed string. */
#define EF_TEXT_MAX 1024

/* A copy of s fit for one line of a terminal or a log: control bytes,
 * DEL and bytes that are not UTF-8 become \xNN, and the result is cut to
 * at most max bytes (with "..." at the cut).  Caller frees. */
char *ef_escape (const char *s, size_t max);

/* Free a NULL-terminated array of strings and the array. */
void ef_strv_free (char **v);
size_t ef_strv_len (char *const *v);

bool ef_has_suffix (const char *s, const char *suffix);

#endif
