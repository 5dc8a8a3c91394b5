/* The agent's env-file and docker config.json files (auths, legacy
 * .dockercfg, credHelpers and credsStore names: no helper is run here). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/config.h"
#include "../../common/text.h"
#include "../../common/util.h"
#include "../../registry/remote/auth.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *hosts[] = { "docker.io", "127.0.0.1:5000", "registry.example/edge/app", "quay.io", NULL };
  char *text = xstrndup ((const char *) data, size); /* an env-file is text: it ends at a NUL */
  char **kv = NULL;
  struct auth_creds cr;

  if (agent_envfile_parse (text, &kv, NULL) == 0)
    ef_strv_free (kv);
  if (memmem (data, size, "cred", 4) == NULL)
    for (const char **h = hosts; *h; h++)
      if (auth_config_lookup (&cr, (const char *) data, size, *h, NULL) > 0)
        auth_creds_dispose (&cr);
  free (text);
  return 0;
}
