/* cli.h: what the subcommands share.  Only agent/ talks to the user. */
#ifndef EF_CLI_H
#define EF_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "../../common/err.h"
#include "../../registry/remote/client.h"
#include "../report.h"
#include "../signals.h"


/* One usage line on stderr; returns 2. */
int cli_usage_error (const char *cmd, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* After getopt_long with "+:..." returned c (':' or '?'): the one usage
 * line naming the option; returns 2. */
int cli_bad_option (const char *cmd, int c, char **argv);
/* An environment value, or def when unset or empty. */
const char *cli_env (const char *name, const char *def);
long cli_env_long (const char *name, long def);
/* One key of the env-file (else of the environment, else def): what a
 * command needs of the agent's configuration without its credentials. */
char *cli_config_value (const char *config_file, const char *key, const char *def);
/* What pull and serve share of how a registry is reached: certs_dir (held
 * in one) or the default search list, the retry and stall settings of the
 * environment, and cancellation by ef_cancel. */
void cli_client_opts (struct reg_client_opts *o, const char *certs_dir, const char *one[2]);

int cmd_pull (int argc, char **argv);
int cmd_gc (int argc, char **argv);
int cmd_verify_deployment (int argc, char **argv);
int cmd_agent (int argc, char **argv);
int cmd_status (int argc, char **argv);
int cmd_serve (int argc, char **argv);
int cmd_trust (int argc, char **argv);

#endif
