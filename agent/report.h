/* report.h: everything the agent says on stderr goes through here, as
 * one escaped, bounded line "edgefetch: ...".  Only agent/ talks to the
 * user; the libraries return errors. */
#ifndef EF_REPORT_H
#define EF_REPORT_H

#include "../common/err.h"

/* "edgefetch: <text>", escaped and cut. */
void report_line (const char *text);
/* "edgefetch: <context>: <message>"; returns the exit code. */
int cli_report (const char *context, ef_err *e);
/* "edgefetch: <context>: <text>", for what is no ef_err. */
void cli_report_text (const char *context, const char *text);
/* "edgefetch: warning: <text>". */
void cli_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif
