/* trust_cmd.c: edgefetch trust: the publisher keys a node trusts for
 * deployment signatures, in EDGEFETCH_TRUST_DIR. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../../common/file.h"
#include "../../common/paths.h"
#include "../../common/util.h"
#include "../../verify/rsapss.h"
#include "cli.h"
#include "../config.h"
#include "../horizon/exchange.h"

#define KEY_MAX (64 * 1024)

static const char trust_usage[]
    = "usage: edgefetch trust add [--config FILE] [--fingerprint sha256:HEX] FILE.pem\n"
      "       edgefetch trust add [--config FILE] --exchange-key ORG/services/SERVICE/keys/NAME --fingerprint sha256:HEX\n"
      "       edgefetch trust list [--config FILE]\n"
      "\n"
      "  add   copy a publisher's key (PEM PUBLIC KEY, or an `hzn key create` certificate)\n"
      "        into the trust directory (EDGEFETCH_TRUST_DIR, default " EF_DEFAULT_TRUST_DIR ").\n"
      "        --exchange-key fetches the key the exchange holds under that name (as the\n"
      "        agent's refusal names it; ORG/patterns/PATTERN/keys/NAME too) and keeps it\n"
      "        only when its fingerprint is the one given.\n"
      "  list  the trusted keys with their fingerprints (sha256 of the DER public key).\n";

/* NAME for the trust dir: no path, no leading dot, ending in .pem. */
static char *
key_file_name (const char *name)
{
  const char *base = strrchr (name, '/');
  size_t n;

  base = base ? base + 1 : name;
  n = strlen (base);
  if (n == 0 || base[0] == '.' || n > 200)
    return NULL;
  return n > 4 && strcmp (base + n - 4, ".pem") == 0 ? xstrdup (base) : xasprintf ("%s.pem", base);
}

/* ORG/services/SVC/keys/NAME or ORG/patterns/PAT/keys/NAME, the only
 * paths this command asks the exchange for, into its five segments. */
static bool
exchange_key_path (const char *p, char seg[5][256])
{
  int n = 0;

  for (const char *c = p;; n++)
    {
      const char *slash = strchr (c, '/');
      size_t len = slash ? (size_t) (slash - c) : strlen (c);
      if (n == 5 || len == 0 || len >= sizeof seg[0])
        return false;
      memcpy (seg[n], c, len);
      seg[n][len] = '\0';
      if (slash == NULL)
        break;
      c = slash + 1;
    }
  return n == 4 && (strcmp (seg[1], "services") == 0 || strcmp (seg[1], "patterns") == 0)
         && strcmp (seg[3], "keys") == 0;
}

static int
fetch_key (const char *config_file, const char *path, char **pem, size_t *len, ef_err **err)
{
  struct agent_config cfg;
  exchange *ex = NULL;
  char seg[5][256];
  int rc;

  if (!exchange_key_path (path, seg))
    return ef_err_set (err, EF_USAGE, "--exchange-key must be ORG/services/SERVICE/keys/NAME or "
                                      "ORG/patterns/PATTERN/keys/NAME");
  rc = agent_config_load (&cfg, config_file, err);
  if (rc < 0)
    return rc;
  rc = exchange_new (&ex, &cfg, &ef_cancel, err);
  if (rc == 0)
    {
      /* the names as the exchange's own listing gave them, each escaped */
      cleanup_free char *o = exchange_escape (ex, seg[0]), *n = exchange_escape (ex, seg[2]);
      cleanup_free char *k = exchange_escape (ex, seg[4]);
      cleanup_free char *url = xasprintf ("orgs/%s/%s/%s/keys/%s", o, seg[1], n, k);
      rc = exchange_get_text (ex, url, pem, len, err);
      if (rc == -EF_NOTFOUND)
        {
          ef_err_clear (err);
          rc = ef_err_set (err, EF_NOTFOUND, "the exchange holds no key %s", path);
        }
    }
  exchange_free (ex);
  agent_config_dispose (&cfg);
  return rc;
}

/* Write pem as dir/name, unless a different key holds that name. */
static int
install (const char *dir, const char *name, const char *pem, size_t len, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  cleanup_free char *old = NULL;
  size_t olen;

  if (ef_mkdirs (dir, 0755) < 0)
    return ef_err_sys (err, EF_LOCAL, errno, "trust directory %s", dir);
  if (ef_read_file (path, KEY_MAX, &old, &olen) == 0)
    {
      if (olen == len && memcmp (old, pem, len) == 0)
        return 1;
      return ef_err_set (err, EF_USAGE, "%s holds another key already: remove it first, or give this one another "
                                        "name",
                         path);
    }
  return ef_atomic_write (path, pem, len, 0644, err);
}

static int
trust_add (const char *config_file, const char *xkey, const char *want, const char *file)
{
  cleanup_free char *dir = cli_config_value (config_file, "EDGEFETCH_TRUST_DIR", EF_DEFAULT_TRUST_DIR);
  cleanup_free char *pem = NULL, *name = NULL;
  cleanup_err ef_err *err = NULL;
  vfy_keyring *kr = vfy_keyring_new ();
  const char *fp;
  size_t len = 0;
  int rc;

  if (xkey && want == NULL)
    {
      vfy_keyring_free (kr);
      return cli_usage_error ("trust", "--exchange-key needs --fingerprint: the one the agent's refusal names, "
                                       "checked with the publisher");
    }
  name = key_file_name (xkey ? xkey : file);
  if (name == NULL)
    rc = ef_err_set (&err, EF_USAGE, "no usable key name in '%s'", xkey ? xkey : file);
  else if (xkey)
    rc = fetch_key (config_file, xkey, &pem, &len, &err);
  else if (ef_read_file (file, KEY_MAX, &pem, &len) < 0)
    rc = ef_err_sys (&err, EF_USAGE, errno, "%s", file);
  else
    rc = 0;
  if (rc == 0)
    rc = vfy_keyring_add_pem (kr, name, pem, len, 0, &err);
  fp = rc == 0 ? vfy_keyring_fingerprint (kr, name) : NULL;
  if (rc == 0 && want && strcmp (want, fp) != 0)
    rc = ef_err_set (&err, EF_VERIFY, "%s has fingerprint %s, not %s: not trusted", xkey ? xkey : file, fp, want);
  if (rc == 0)
    rc = install (dir, name, pem, len, &err);
  if (rc >= 0)
    printf ("%s %s (%s) in %s\n", rc == 1 ? "already trusted:" : "trusted", name, fp, dir);
  vfy_keyring_free (kr);
  return rc < 0 ? cli_report ("trust add", err) : 0;
}

static int
trust_list (const char *config_file)
{
  cleanup_free char *dir = cli_config_value (config_file, "EDGEFETCH_TRUST_DIR", NULL);
  cleanup_free char *base = cli_config_value (config_file, "HZN_VAR_BASE", NULL);
  cleanup_free char *anax = dir ? NULL : base ? xasprintf ("%s/userkeys", base) : xstrdup (EF_ANAX_VAR_BASE);
  const char *dirs[2] = { dir ? dir : EF_DEFAULT_TRUST_DIR, anax };
  cleanup_err ef_err *err = NULL;

  for (int d = 0; d < 2 && dirs[d]; d++)
    {
      vfy_keyring *kr = vfy_keyring_new ();
      const char *n;
      if (vfy_keyring_add_dir (kr, dirs[d], 0, d == 0 ? &err : NULL) < 0 && d == 0)
        {
          vfy_keyring_free (kr);
          return cli_report ("trust list", err);
        }
      printf ("%s%s:\n", dirs[d], d ? " (anax's user keys)" : "");
      for (size_t i = 0; (n = vfy_keyring_name (kr, i)) != NULL; i++)
        printf ("  %s  %s\n", vfy_keyring_fingerprint (kr, n), strrchr (n, '/') ? strrchr (n, '/') + 1 : n);
      for (size_t i = 0; (n = vfy_keyring_note (kr, i)) != NULL; i++)
        printf ("  left out: %s\n", n);
      vfy_keyring_free (kr);
    }
  return 0;
}

int
cmd_trust (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "exchange-key", required_argument, NULL, 'x' },
    { "fingerprint", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *config_file = EF_DEFAULT_CONFIG, *xkey = NULL, *want = NULL, *verb;
  int c;

  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      fputs (trust_usage, argc < 2 ? stderr : stdout);
      return argc < 2 ? EF_USAGE : 0;
    }
  verb = argv[1];
  optind = 2;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'c': config_file = optarg; break;
      case 'x': xkey = optarg; break;
      case 'f': want = optarg; break;
      case 'h': fputs (trust_usage, stdout); return 0;
      default: return cli_bad_option ("trust", c, argv);
      }
  if (strcmp (verb, "list") == 0)
    {
      if (optind != argc || xkey || want)
        return cli_usage_error ("trust", "list takes only --config");
      return trust_list (config_file);
    }
  if (strcmp (verb, "add") != 0)
    return cli_usage_error ("trust", "unknown verb '%s' (add or list)", verb);
  if (xkey ? optind != argc : optind != argc - 1)
    return cli_usage_error ("trust", "add takes one FILE.pem or --exchange-key");
  if (want && (strncmp (want, "sha256:", 7) != 0 || strlen (want) != 71))
    return cli_usage_error ("trust", "--fingerprint must be sha256: and 64 hex digits");
  return trust_add (config_file, xkey, want, xkey ? NULL : argv[optind]);
}
