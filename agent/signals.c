/* signals.c: see signals.h. */
#include <signal.h>
#include <string.h>

#include "signals.h"

volatile sig_atomic_t ef_cancel;

static void
on_signal (int sig)
{
  (void) sig;
  ef_cancel = 1;
}

void
cli_install_signals (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction (SIGPIPE, &sa, NULL);
}
