/* spawn.c: see spawn.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file.h"
#include "spawn.h"
#include "util.h"

#define INPUT_MAX 4096

extern char **environ;

static int
start (const struct ef_spawn *sp, pid_t *pid, int *rfd, ef_err **err)
{
  int outp[2], inp[2] = { -1, -1 }, rc;
  posix_spawn_file_actions_t fa;

  if ((sp->input && strlen (sp->input) > INPUT_MAX) || pipe2 (outp, O_CLOEXEC) < 0)
    {
      rc = sp->input && strlen (sp->input) > INPUT_MAX ? ef_err_set (err, EF_LOCAL, "%s: input too long", sp->argv[0])
                                                       : ef_err_sys (err, EF_LOCAL, errno, "pipe");
      if (sp->in_fd >= 0)
        close (sp->in_fd); /* ours to close in every case: its writer must see the end */
      return rc;
    }
  if (sp->input && pipe2 (inp, O_CLOEXEC) < 0)
    {
      close (outp[0]);
      close (outp[1]);
      return ef_err_sys (err, EF_LOCAL, errno, "pipe");
    }
  posix_spawn_file_actions_init (&fa);
  if (sp->in_fd >= 0)
    posix_spawn_file_actions_adddup2 (&fa, sp->in_fd, 0);
  else if (sp->input)
    posix_spawn_file_actions_adddup2 (&fa, inp[0], 0);
  else
    posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  if (sp->merge_stderr)
    posix_spawn_file_actions_adddup2 (&fa, outp[1], 2);
  rc = posix_spawnp (pid, sp->argv[0], &fa, NULL, (char *const *) sp->argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (outp[1]);
  if (sp->in_fd >= 0)
    close (sp->in_fd);
  if (inp[0] >= 0)
    close (inp[0]);
  if (rc == 0 && sp->input)
    /* small enough for the pipe's buffer: this cannot block */
    (void) ef_write_all (inp[1], sp->input, strlen (sp->input));
  if (inp[1] >= 0)
    close (inp[1]);
  if (rc != 0)
    {
      close (outp[0]);
      return ef_err_sys (err, EF_LOCAL, rc, "cannot run %s", sp->argv[0]);
    }
  *rfd = outp[0];
  return 0;
}

int
ef_spawn_run (const struct ef_spawn *sp, struct ef_spawn_result *out, ef_err **err)
{
  int64_t deadline = sp->timeout_ms > 0 ? ef_now_ms () + sp->timeout_ms : 0;
  struct ef_buf b;
  bool eof = false, killed = false;
  int rfd = -1, status = 0, rc;
  pid_t pid;

  memset (out, 0, sizeof *out);
  rc = start (sp, &pid, &rfd, err);
  if (rc < 0)
    return rc;
  ef_buf_init (&b, sp->max_out);
  ef_buf_append (&b, "", 0);
  for (;;)
    {
      int64_t left = deadline ? deadline - ef_now_ms () : 1000;
      struct pollfd p = { rfd, POLLIN, 0 };
      pid_t w;

      if (deadline && left <= 0)
        {
          kill (pid, SIGKILL);
          killed = true;
          while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
            ;
          break;
        }
      if (eof)
        {
          /* output closed: wait for the exit, still within the time */
          w = waitpid (pid, &status, WNOHANG);
          if (w == pid || (w < 0 && errno != EINTR))
            break;
          poll (NULL, 0, left > 50 ? 50 : (int) left);
          continue;
        }
      if (poll (&p, 1, left > 1000 ? 1000 : (int) left) > 0)
        {
          char chunk[4096];
          ssize_t n = read (rfd, chunk, sizeof chunk);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            eof = true;
          else if (ef_buf_append (&b, chunk, (size_t) n) < 0)
            out->truncated = true; /* drained and dropped: the child never blocks */
        }
    }
  close (rfd);
  out->out = b.data;
  out->len = b.len;
  if (killed)
    out->end = EF_SPAWN_TIMEOUT;
  else if (WIFEXITED (status))
    {
      out->end = EF_SPAWN_EXITED;
      out->status = WEXITSTATUS (status);
    }
  else
    out->end = EF_SPAWN_SIGNALED;
  return 0;
}

void
ef_spawn_result_dispose (struct ef_spawn_result *r)
{
  if (r->out)
    {
      explicit_bzero (r->out, r->len); /* a helper's output may hold a secret */
      free (r->out);
    }
  memset (r, 0, sizeof *r);
}
