/* writer.h: inside the store (store.h): the writer thread (reg_writer)
 * that hashes and writes ingests' full buffers while the network thread
 * goes on receiving: on two cores, TLS and SHA-256 run side by side. */
#ifndef EF_WRITER_H
#define EF_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define WRITER_BUF (64 * 1024) /* every buffer the writer takes is this big */

/* One ingest as the writer sees it: put does the work (hash and write
 * len bytes at off), returning 0 or an errno; the first errno stays in
 * werrno and the ingest's later buffers are dropped. */
struct writer_client
{
  int (*put) (struct writer_client *c, int64_t off, const char *buf, size_t len);
  int pending;
  int werrno;
};

/* Hand *buf (a WRITER_BUF buffer holding len bytes for off) to w, taking
 * a spare one into *buf in exchange, waiting for one while all are in
 * flight; c's errno, or 0. */
int writer_submit (reg_writer *w, struct writer_client *c, int64_t off, char **buf, size_t len);
/* Wait until w has done all of c's buffers; c's errno, or 0. */
int writer_drain (reg_writer *w, struct writer_client *c);

#endif
