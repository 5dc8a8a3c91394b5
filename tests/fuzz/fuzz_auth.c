/* WWW-Authenticate challenges, token bodies, docker config files, realms, references. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "../../registry/remote/auth.h"
#include "../../registry/ref.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = xstrndup ((const char *) data, size); /* stops at the first NUL, as a header would */
  struct auth_challenge c;
  struct auth_token t;
  struct auth_creds cr;
  struct reg_ref *r = NULL;

  if (auth_challenge_parse (&c, s, NULL) == 0)
    {
      auth_challenge_param (&c, "realm");
      auth_challenge_select (&c, 1, NULL);
      auth_challenge_dispose (&c);
    }
  if (auth_token_parse (&t, (const char *) data, size, NULL) == 0)
    auth_token_dispose (&t);
  /* no helpers here: a config naming one must not run anything while fuzzing */
  if (memmem (data, size, "cred", 4) == NULL && auth_config_lookup (&cr, (const char *) data, size, "docker.io", NULL) > 0)
    auth_creds_dispose (&cr);
  auth_realm_check (s, "127.0.0.1:5000", NULL, NULL);
  if (reg_ref_parse (&r, s, NULL) == 0)
    {
      free (reg_ref_string (r));
      reg_ref_free (r);
    }
  free (s);
  return 0;
}
