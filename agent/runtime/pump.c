/* pump.c: an archive of the image, written by a thread into a pipe that
 * the runtime reads (runtime.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../../common/file.h"
#include "../../common/util.h"
#include "runtime.h"

struct runtime_pump
{
  reg_store *s;
  const struct reg_pull_result *res;
  const struct reg_ref *ref;
  enum reg_export_format fmt;
  bool with_index;
  int fd; /* the write end */
  pthread_t th;
  ef_err *err;
  int rc;
};

static int
pipe_sink (void *payload, const void *buf, size_t len)
{
  return ef_write_all (*(int *) payload, buf, len);
}

static void *
pump_main (void *p)
{
  struct runtime_pump *pu = p;

  pu->rc = reg_export_stream (pu->s, pu->res->manifest_digest, pu->with_index ? pu->res->index_digest : NULL, pu->ref,
                              pu->fmt, pipe_sink, &pu->fd, &pu->err);
  close (pu->fd); /* the reader sees the end (or, after a failure, a cut archive) */
  pu->fd = -1;
  return NULL;
}

int
runtime_pump_start (struct runtime_pump **out, reg_store *s, const struct reg_pull_result *res,
                    const struct reg_ref *ref, enum reg_export_format fmt, bool with_index, int *fd, ef_err **err)
{
  struct runtime_pump *pu = xcalloc (1, sizeof *pu);
  int fds[2];

  *out = NULL;
  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      free (pu);
      return ef_err_sys (err, EF_LOCAL, errno, "pipe");
    }
  pu->s = s;
  pu->res = res;
  pu->ref = ref;
  pu->fmt = fmt;
  pu->with_index = with_index;
  pu->fd = fds[1];
  if (pthread_create (&pu->th, NULL, pump_main, pu) != 0)
    {
      close (fds[0]);
      close (fds[1]);
      free (pu);
      return ef_err_set (err, EF_LOCAL, "cannot start the archive writer");
    }
  *fd = fds[0];
  *out = pu;
  return 0;
}

int
runtime_pump_finish (struct runtime_pump *pu, ef_err **err)
{
  int rc;

  pthread_join (pu->th, NULL);
  rc = pu->rc;
  if (rc < 0)
    ef_err_propagate (err, pu->err);
  else
    ef_err_free (pu->err);
  free (pu);
  return rc;
}
