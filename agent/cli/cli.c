/* cli.c: what the subcommands share: usage lines, the environment, the
 * client options (cli.h). */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/text.h"
#include "../../common/util.h"
#include "../../common/paths.h"
#include "../../common/file.h"
#include "cli.h"
#include "../config.h"

int
cli_usage_error (const char *cmd, const char *fmt, ...)
{
  cleanup_free char *msg = NULL, *text = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = xvasprintf (fmt, ap);
  va_end (ap);
  text = xasprintf ("%s: %s (see edgefetch %s --help)", cmd, msg, cmd);
  report_line (text);
  return EF_USAGE;
}

int
cli_bad_option (const char *cmd, int c, char **argv)
{
  const char *opt = optind > 0 ? argv[optind - 1] : "?";

  if (c == ':')
    return cli_usage_error (cmd, "option %s needs an argument", opt);
  return cli_usage_error (cmd, "unknown option %s", opt);
}

const char *
cli_env (const char *name, const char *def)
{
  const char *v = getenv (name);
  return v && *v ? v : def;
}

long
cli_env_long (const char *name, long def)
{
  const char *v = getenv (name);
  uint64_t n;

  if (v == NULL || *v == '\0' || ef_parse_u64 (v, 86400000, &n) < 0)
    return def;
  return (long) n;
}

void
cli_client_opts (struct reg_client_opts *o, const char *certs_dir, const char *one[2])
{
  static const char *defaults[] = EF_DEFAULT_CERTS_DIRS;

  one[0] = certs_dir;
  one[1] = NULL;
  o->session.certs_dirs = certs_dir ? one : defaults;
  o->low_speed_time = cli_env_long ("EDGEFETCH_STALL_SECS", 30);
  o->retry_base_ms = cli_env_long ("EDGEFETCH_RETRY_BASE_MS", 500);
  o->max_attempts = (int) cli_env_long ("EDGEFETCH_ATTEMPTS", 6);
  o->session.congestion = cli_env ("EDGEFETCH_TCP_CONGESTION", NULL);
  o->cancel = &ef_cancel;
}

char *
cli_config_value (const char *config_file, const char *key, const char *def)
{
  const char *v = cli_env (key, def);
  size_t kl = strlen (key);
  cleanup_free char *text = NULL;
  cleanup_err ef_err *err = NULL;
  char **kv = NULL, *out;
  size_t len;

  if (ef_read_file (config_file, 256 * 1024, &text, &len) == 0 && agent_envfile_parse (text, &kv, &err) == 0)
    for (char **p = kv; *p; p++)
      if (strncmp (*p, key, kl) == 0 && (*p)[kl] == '=' && (*p)[kl + 1])
        v = *p + kl + 1;
  out = v ? xstrdup (v) : NULL;
  for (char **p = kv; p && *p; p++)
    ef_free_secret (*p);
  free (kv);
  return out;
}
