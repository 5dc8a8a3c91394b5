/* config.c: the env-file, shared with systemd's EnvironmentFile= and a shell. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/file.h"
#include "../common/paths.h"
#include "../common/text.h"
#include "../common/util.h"
#include "../registry/transfer/rate.h"
#include "config.h"

#define CONFIG_MAX (256 * 1024)
#define MAX_LINES 512

static bool
valid_key (const char *s, size_t n)
{
  if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
          || s[i] == '_'))
      return false;
  return true;
}

int
agent_envfile_parse (const char *text, char ***out, ef_err **err)
{
  char **v = xcalloc (MAX_LINES + 1, sizeof *v);
  const char *p = text;
  size_t n = 0;
  int lineno = 0;

  *out = NULL;
  while (*p)
    {
      const char *eol = strchr (p, '\n'), *k, *eq, *val, *end;
      size_t vlen;
      char q;

      if (eol == NULL)
        eol = p + strlen (p);
      lineno++;
      k = p;
      while (k < eol && (*k == ' ' || *k == '\t'))
        k++;
      end = eol;
      if (end > k && end[-1] == '\r')
        end--;
      p = *eol ? eol + 1 : eol;
      if (k == end || *k == '#')
        continue;
      if ((size_t) (end - k) > 7 && strncmp (k, "export ", 7) == 0)
        k += 7;
      eq = memchr (k, '=', (size_t) (end - k));
      if (eq == NULL || !valid_key (k, (size_t) (eq - k)))
        {
          ef_strv_free (v);
          return ef_err_set (err, EF_USAGE, "line %d: expected KEY=value", lineno);
        }
      val = eq + 1;
      vlen = (size_t) (end - val);
      q = vlen >= 2 && (*val == '"' || *val == '\'') ? *val : 0;
      if (q)
        {
          const char *close = memchr (val + 1, q, vlen - 1);
          if (close == NULL)
            {
              ef_strv_free (v);
              return ef_err_set (err, EF_USAGE, "line %d: unterminated quote", lineno);
            }
          val++;
          vlen = (size_t) (close - val);
        }
      else
        {
          /* unquoted: a trailing " #comment" is not part of the value */
          const char *hash = NULL;
          for (const char *s = val; s < end; s++)
            if (*s == '#' && s > val && (s[-1] == ' ' || s[-1] == '\t'))
              {
                hash = s;
                break;
              }
          if (hash)
            vlen = (size_t) (hash - val);
          while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
            vlen--;
        }
      if (n == MAX_LINES)
        {
          ef_strv_free (v);
          return ef_err_set (err, EF_USAGE, "too many lines");
        }
      v[n++] = xasprintf ("%.*s=%.*s", (int) (eq - k), k, (int) vlen, val);
    }
  *out = v;
  return 0;
}

/* The file's value, else the environment's, else NULL. */
static const char *
lookup (char **file, const char *key)
{
  size_t kl = strlen (key);
  const char *found = NULL;

  for (char **p = file; p && *p; p++)
    if (strncmp (*p, key, kl) == 0 && (*p)[kl] == '=')
      found = *p + kl + 1; /* the last one wins, as in a shell */
  if (found == NULL)
    found = getenv (key);
  return found && *found ? found : NULL;
}

static char *
dup_or (const char *v, const char *def)
{
  return v ? xstrdup (v) : def ? xstrdup (def) : NULL;
}

static int
seconds (char **kv, const char *key, long def, long *out, ef_err **err)
{
  const char *v = lookup (kv, key);
  uint64_t n;

  if (v == NULL)
    {
      *out = def;
      return 0;
    }
  if (ef_parse_u64 (v, 86400, &n) < 0 || n == 0)
    return ef_err_set (err, EF_USAGE, "%s must be a number of seconds (1 to 86400)", key);
  *out = (long) n;
  return 0;
}

static bool
truthy (const char *v)
{
  return v && (strcmp (v, "true") == 0 || strcmp (v, "1") == 0 || strcmp (v, "yes") == 0);
}

/* HZN_EXCHANGE_NODE_AUTH (nodeid:token), or EDGEFETCH_NODE_TOKEN_FILE,
 * a file of mode 0600. */
static int
node_token (struct agent_config *c, char **kv, ef_err **err)
{
  const char *v = lookup (kv, "HZN_EXCHANGE_NODE_AUTH");
  struct stat st;
  char *tok = NULL;
  size_t len;

  if (v)
    {
      const char *colon = strchr (v, ':');
      if (colon == NULL || colon == v || colon[1] == '\0')
        return ef_err_set (err, EF_USAGE, "HZN_EXCHANGE_NODE_AUTH must be nodeid:token");
      if (c->node_id == NULL)
        c->node_id = xstrndup (v, (size_t) (colon - v));
      c->node_token = xstrdup (colon + 1);
      return 0;
    }
  if ((v = lookup (kv, "EDGEFETCH_NODE_TOKEN_FILE")) == NULL)
    return 0;
  if (stat (v, &st) < 0 || ef_read_file (v, 4096, &tok, &len) < 0)
    return ef_err_sys (err, EF_USAGE, errno, "EDGEFETCH_NODE_TOKEN_FILE %s", v);
  if (st.st_mode & 077)
    {
      ef_free_secret (tok);
      return ef_err_set (err, EF_USAGE, "%s holds a secret: its mode must be 0600", v);
    }
  while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
    tok[--len] = '\0';
  c->node_token = tok;
  return 0;
}

int
agent_config_load (struct agent_config *c, const char *file, ef_err **err)
{
  cleanup_free char *text = NULL;
  char **kv = NULL;
  const char *v;
  int rc = 0;

  memset (c, 0, sizeof *c);
  if (file)
    {
      size_t len;
      if (ef_read_file (file, CONFIG_MAX, &text, &len) < 0)
        {
          if (errno != ENOENT)
            return ef_err_sys (err, EF_USAGE, errno, "config %s", file);
        }
      else if ((rc = agent_envfile_parse (text, &kv, err)) < 0)
        {
          ef_err_wrap (err, "config %s", file);
          return rc;
        }
    }
  v = lookup (kv, "HZN_EXCHANGE_URL");
  if (v)
    c->exchange_url = v[strlen (v) - 1] == '/' ? xstrdup (v) : xasprintf ("%s/", v);
  c->org = dup_or (lookup (kv, "HZN_ORG_ID"), NULL);
  c->node_id = dup_or (lookup (kv, "HZN_DEVICE_ID"), lookup (kv, "HZN_NODE_ID"));
  rc = node_token (c, kv, err);
  if (rc < 0)
    goto out;
  c->hub_cert = dup_or (lookup (kv, "HZN_MGMT_HUB_CERT_PATH"), NULL);
  c->store = dup_or (lookup (kv, "EDGEFETCH_STORE"), EF_DEFAULT_STORE);
  c->trust_dir = dup_or (lookup (kv, "EDGEFETCH_TRUST_DIR"), EF_DEFAULT_TRUST_DIR);
  if (lookup (kv, "EDGEFETCH_TRUST_DIR") == NULL)
    {
      /* anax's UserPublicKeyPath (config/config.go): $HZN_VAR_BASE/userkeys,
       * or /var/horizon itself when HZN_VAR_BASE is unset */
      const char *base = lookup (kv, "HZN_VAR_BASE");
      c->anax_trust_dir = base ? xasprintf ("%s/userkeys", base) : xstrdup (EF_ANAX_VAR_BASE);
    }
  c->trust_exchange_keys = truthy (lookup (kv, "EDGEFETCH_TRUST_EXCHANGE_KEYS"));
  c->require_digest = truthy (lookup (kv, "EDGEFETCH_REQUIRE_DIGEST"));
  c->prune = truthy (lookup (kv, "EDGEFETCH_PRUNE"));
  c->keep_layers = truthy (lookup (kv, "EDGEFETCH_KEEP_LAYERS"));
  c->certs_dir = dup_or (lookup (kv, "EDGEFETCH_CERTS_DIR"), NULL);
  c->auth_file = dup_or (lookup (kv, "EDGEFETCH_AUTH_FILE"), NULL);
  c->runtime = dup_or (lookup (kv, "EDGEFETCH_RUNTIME"), NULL);
  c->arch = dup_or (lookup (kv, "EDGEFETCH_ARCH"), NULL);
  c->cosign_key = dup_or (lookup (kv, "EDGEFETCH_COSIGN_KEY"), NULL);
  c->congestion = dup_or (lookup (kv, "EDGEFETCH_TCP_CONGESTION"), NULL);
  rc = seconds (kv, "EDGEFETCH_POLL_MIN", 20, &c->poll_min, err);
  if (rc == 0)
    rc = seconds (kv, "EDGEFETCH_POLL_MAX", 120, &c->poll_max, err);
  if (rc == 0)
    rc = seconds (kv, "EDGEFETCH_CHANGE_RETENTION", 14400, &c->change_retention, err);
  if (rc == 0)
    rc = seconds (kv, "EDGEFETCH_EXCHANGE_TIMEOUT", 30, &c->exchange_timeout, err);
  /* anax's ServiceUpgradeCheckIntervalS: its own look at what changed
   * upstream of the agbot, every 300 s */
  if (rc == 0)
    rc = seconds (kv, "EDGEFETCH_PATTERN_CHECK", 300, &c->pattern_check, err);
  if (rc == 0 && (v = lookup (kv, "EDGEFETCH_LIMIT_RATE")) != NULL && *v)
    {
      rc = reg_rate_parse (v, &c->limit_rate, err);
      if (rc < 0)
        ef_err_wrap (err, "EDGEFETCH_LIMIT_RATE");
    }
  if (rc == 0 && (v = lookup (kv, "EDGEFETCH_FETCH_WINDOW")) != NULL)
    rc = agent_window_parse (&c->window, v, err);
  if (rc < 0)
    goto out;
  if (c->poll_max < c->poll_min)
    c->poll_max = c->poll_min;
  if (c->exchange_url == NULL || c->org == NULL || c->node_id == NULL || c->node_token == NULL)
    rc = ef_err_set (err, EF_USAGE, "%s%s%s%s not set",
                     c->exchange_url ? "" : "HZN_EXCHANGE_URL ", c->org ? "" : "HZN_ORG_ID ",
                     c->node_id ? "" : "HZN_DEVICE_ID ",
                     c->node_token ? "" : "HZN_EXCHANGE_NODE_AUTH (or EDGEFETCH_NODE_TOKEN_FILE) ");
out:
  for (char **p = kv; p && *p; p++)
    {
      ef_free_secret (*p);
      *p = NULL;
    }
  free (kv);
  if (rc < 0)
    agent_config_dispose (c);
  return rc;
}

void
agent_config_dispose (struct agent_config *c)
{
  free (c->exchange_url);
  free (c->org);
  free (c->node_id);
  ef_free_secret (c->node_token);
  free (c->hub_cert);
  free (c->store);
  free (c->trust_dir);
  free (c->anax_trust_dir);
  free (c->certs_dir);
  free (c->auth_file);
  free (c->runtime);
  free (c->arch);
  free (c->cosign_key);
  free (c->congestion);
  memset (c, 0, sizeof *c);
}
