/* Trust parsers: PEM keys and certificates, signatures, cosign payloads, deployments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/util.h"
#include "../../verify/cosign.h"
#include "../../common/text.h"
#include "../../verify/deployment.h"
#include "../../verify/rsapss.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* cosign's test key (tests/vectors/cosign/keys/cosign.pub) */
static const char cosign_pub[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\n"
                                 "vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n"
                                 "-----END PUBLIC KEY-----\n";

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static vfy_cosign_key *test_key;
  vfy_keyring *kr = vfy_keyring_new ();
  vfy_cosign_key *k = NULL;
  char *s = xstrndup ((const char *) data, size);
  char *ref = NULL, *dg = NULL, **images = NULL;

  if (vfy_keyring_add_pem (kr, "fuzz", (const char *) data, size, 0, NULL) == 0)
    vfy_rsapss_verify (kr, "x", 1, "AAAA", NULL, NULL);
  vfy_keyring_free (kr);
  if (vfy_cosign_key_from_pem (&k, (const char *) data, size, NULL) == 0)
    vfy_cosign_key_free (k);
  if (test_key == NULL)
    vfy_cosign_key_from_pem (&test_key, cosign_pub, sizeof cosign_pub - 1, NULL);
  vfy_cosign_verify_bundle (test_key, (const char *) data, size,
                            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00", NULL);
  if (test_key && vfy_cosign_verify (test_key, (const char *) data, size, "MEYCIQDmtamqYPjMg81nqeBhptrPls44aA/r7PwLmspINJY4MwIhANKRpqe2E9UCBtGFdPoz/8jAbaQm4uP4h+IpwKTE6ClR",
                                     "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00", &ref, NULL) == 0)
    free (ref);
  ref = NULL;
  if (vfy_cosign_payload_parse ((const char *) data, size, &ref, &dg, NULL) == 0)
    {
      free (ref);
      free (dg);
    }
  if (vfy_deployment_images ((const char *) data, size, &images, NULL) == 0)
    ef_strv_free (images);
  {
    unsigned char *out = NULL;
    if (ef_b64_decode (s, strlen (s), &out) >= 0)
      free (out);
  }
  free (s);
  return 0;
}
