/* err.h: the one error contract shared by every module.
 *
 * A function that can fail takes `ef_err **err` last and returns a
 * negative value (-code) on failure, leaving *err untouched on success;
 * err may be NULL when the caller does not want the message, and the
 * return value alone still tells the failure.  The code doubles as the
 * process exit code (see the README).  Callers add context while
 * unwinding with ef_err_wrap().  Messages are kept to one printable line
 * of at most EF_TEXT_MAX bytes, whatever remote text they quote. */
#ifndef EF_ERR_H
#define EF_ERR_H

enum ef_code
{
  EF_OK = 0,
  EF_USAGE = 2,    /* usage or configuration error */
  EF_AUTH = 3,     /* 401/403, bad credentials */
  EF_NOTFOUND = 4, /* no such repository, tag, digest, platform */
  EF_VERIFY = 5,   /* digest mismatch, bad or missing signature */
  EF_NET = 6,      /* network or remote failure */
  EF_LOCAL = 7,    /* disk full, store damaged, runtime refused */
};

typedef struct ef_err ef_err;

/* Set *err (unless one is already set: the first error wins) and return -code. */
int ef_err_set (ef_err **err, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* As ef_err_set, appending ": strerror(errnum)". */
int ef_err_sys (ef_err **err, int code, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
/* As ef_err_set with EF_LOCAL; ENOSPC and EDQUOT read "...: disk full". */
int ef_err_io (ef_err **err, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* Prefix the message of *err (if any) with "context: ".  It returns
 * nothing: the caller returns the code it already holds. */
void ef_err_wrap (ef_err **err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
/* Move src into *dst (src is consumed; when *dst is already set or dst
 * is NULL, src is freed); returns -code of src. */
int ef_err_propagate (ef_err **dst, ef_err *src);
/* Forget a deliberately ignored error. */
void ef_err_clear (ef_err **err);
int ef_err_code (const ef_err *e);
const char *ef_err_msg (const ef_err *e);
void ef_err_free (ef_err *e);

#define cleanup_err __attribute__ ((cleanup (ef_err_freep)))
static inline void
ef_err_freep (ef_err **e)
{
  ef_err_free (*e);
}

#endif
