/* Trust parsers: PEM keys and certificates, signatures, cosign payloads, deployments. */
#include <stdint.h>
#include <stdlib.h>

#include "../../common/util.h"
#include "../../verify/cosign.h"
#include "../../verify/deployment.h"
#include "../../verify/rsapss.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  vfy_keyring *kr = vfy_keyring_new ();
  vfy_cosign_key *k = NULL;
  char *s = xstrndup ((const char *) data, size);
  char *ref = NULL, *dg = NULL, **images = NULL;

  if (vfy_keyring_add_pem (kr, "fuzz", (const char *) data, size, 0, NULL) == 0)
    vfy_rsapss_verify (kr, "x", 1, "AAAA", NULL, NULL);
  vfy_keyring_free (kr);
  if (vfy_cosign_key_from_pem (&k, (const char *) data, size, NULL) == 0)
    vfy_cosign_key_free (k);
  if (vfy_cosign_payload_parse ((const char *) data, size, &ref, &dg, NULL) == 0)
    {
      free (ref);
      free (dg);
    }
  if (vfy_deployment_images ((const char *) data, size, &images, NULL) == 0)
    vfy_strv_free (images);
  {
    unsigned char *out = NULL;
    if (ef_b64_decode (s, strlen (s), &out) >= 0)
      free (out);
  }
  free (s);
  return 0;
}
