/* signals.h: SIGINT and SIGTERM set ef_cancel, which every long wait and
 * transfer watches; SIGPIPE is ignored. */
#ifndef EF_SIGNALS_H
#define EF_SIGNALS_H

#include <signal.h>

extern volatile sig_atomic_t ef_cancel;
void cli_install_signals (void);

#endif
