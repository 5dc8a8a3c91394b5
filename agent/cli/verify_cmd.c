/* verify_cmd.c: edgefetch verify-deployment. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "../../common/text.h"
#include "../../common/util.h"
#include "../../verify/deployment.h"
#include "../../verify/rsapss.h"
#include "cli.h"

static const char verify_usage[]
    = "usage: edgefetch verify-deployment (--key FILE | --trust-dir DIR) SERVICE_JSON\n"
      "\n"
      "  Check the RSA-PSS signature of a Horizon service definition's deployment\n"
      "  (a service object, or the exchange's {\"services\":{...}} envelope; - reads stdin).\n"
      "  --key FILE       one trusted key: PEM PUBLIC KEY or an hzn certificate\n"
      "  --trust-dir DIR  every *.pem in DIR\n"
      "  With EDGEFETCH_REQUIRE_DIGEST=true, images must be pinned by digest.\n"
      "  Exit 0 when every deployment verifies, 5 when one does not.\n";

/* One service: signature, then images. */
static int
check_service (const char *id, json_t *svc, const vfy_keyring *kr, bool require_digest)
{
  json_t *dep = json_object_get (svc, "deployment"), *sig = json_object_get (svc, "deploymentSignature");
  cleanup_free char *context = xasprintf ("verify-deployment %s", id);
  cleanup_err ef_err *err = NULL;
  const char *key = NULL;
  char **images = NULL;

  if (!json_is_string (dep) || json_string_length (dep) == 0)
    {
      ef_err_set (&err, EF_VERIFY, "no deployment string");
      return cli_report (context, err);
    }
  if (!json_is_string (sig) || json_string_length (sig) == 0)
    {
      ef_err_set (&err, EF_VERIFY, "deployment is not signed (no deploymentSignature)");
      return cli_report (context, err);
    }
  /* The bytes signed are the decoded string value, exactly as received. */
  if (vfy_rsapss_verify (kr, json_string_value (dep), json_string_length (dep), json_string_value (sig), &key, &err)
      < 0)
    return cli_report (context, err);
  if (vfy_deployment_images (json_string_value (dep), json_string_length (dep), &images, &err) < 0)
    return cli_report (context, err);
  for (char **p = images; *p; p++)
    if (require_digest && strstr (*p, "@sha256:") == NULL)
      {
        ef_err_set (&err, EF_VERIFY, "image %.200s is not pinned by digest (EDGEFETCH_REQUIRE_DIGEST=true)", *p);
        ef_strv_free (images);
        return cli_report (context, err);
      }
  printf ("%s: deployment signature verified with %s\n", id, key);
  for (char **p = images; *p; p++)
    printf ("  image %s%s\n", *p, strstr (*p, "@sha256:") ? "" : " (tag only: not pinned by digest)");
  ef_strv_free (images);
  return 0;
}

int
cmd_verify_deployment (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "key", required_argument, NULL, 'k' },
    { "trust-dir", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *key = NULL, *dir = NULL, *path;
  bool require_digest = strcmp (cli_env ("EDGEFETCH_REQUIRE_DIGEST", "false"), "true") == 0;
  cleanup_err ef_err *err = NULL;
  vfy_keyring *kr = NULL;
  json_t *root = NULL, *services, *svc;
  json_error_t jerr;
  const char *id;
  int c, rc = 0;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'k': key = optarg; break;
      case 't': dir = optarg; break;
      case 'h': fputs (verify_usage, stdout); return 0;
      default: return cli_bad_option ("verify-deployment", c, argv);
      }
  if ((key == NULL) == (dir == NULL))
    return cli_usage_error ("verify-deployment", "give either --key or --trust-dir");
  if (optind != argc - 1)
    return cli_usage_error ("verify-deployment", "exactly one SERVICE_JSON expected");
  path = argv[optind];

  kr = vfy_keyring_new ();
  if (key)
    rc = vfy_keyring_add_file (kr, key, 0, &err);
  else
    rc = vfy_keyring_add_dir (kr, dir, 0, &err);
  for (size_t i = 0; vfy_keyring_note (kr, i); i++)
    fprintf (stderr, "edgefetch: verify-deployment: key left out: %s\n", vfy_keyring_note (kr, i));
  if (rc < 0)
    {
      rc = cli_report ("verify-deployment", err);
      goto out;
    }
  root = strcmp (path, "-") == 0 ? json_loadf (stdin, JSON_REJECT_DUPLICATES, &jerr)
                                 : json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object (root))
    {
      ef_err_set (&err, EF_USAGE, "%s: not a JSON object (%s)", path, jerr.text);
      rc = cli_report ("verify-deployment", err);
      goto out;
    }
  services = json_object_get (root, "services");
  if (json_is_object (services) && json_object_get (root, "deployment") == NULL)
    {
      if (json_object_size (services) == 0)
        {
          ef_err_set (&err, EF_NOTFOUND, "%s: no services", path);
          rc = cli_report ("verify-deployment", err);
          goto out;
        }
      json_object_foreach (services, id, svc)
      {
        int r = check_service (id, svc, kr, require_digest);
        if (r != 0 && rc == 0)
          rc = r;
      }
    }
  else
    {
      json_t *url = json_object_get (root, "url");
      rc = check_service (json_is_string (url) ? json_string_value (url) : path, root, kr, require_digest);
    }
out:
  json_decref (root);
  vfy_keyring_free (kr);
  return rc;
}
