/* rsapss.h: Open Horizon deployment signatures.
 *
 * RSASSA-PSS with SHA-256 and MGF1-SHA-256 over the exact bytes signed
 * (the decoded `deployment` string, as received), the salt length found
 * from the signature (hzn signs with the maximum salt; a digest-length
 * salt verifies too).  The signature is standard base64.  Any one trusted
 * key is enough, as in rsapss-tool's InputVerifiedByAnyKey. */
#ifndef EF_RSAPSS_H
#define EF_RSAPSS_H

#include <stddef.h>
#include <time.h>

#include "../common/err.h"

typedef struct vfy_keyring vfy_keyring;

vfy_keyring *vfy_keyring_new (void);
void vfy_keyring_free (vfy_keyring *kr);

/* Add one PEM: a PKIX "PUBLIC KEY" (RSA, >= 1024 bits) or one X.509
 * certificate as `hzn key create` makes it, checked as rsapss-tool does:
 * valid at `now` (0: the current time), valid for at most 3653 days,
 * serial > 0, BasicConstraints CA:FALSE, KeyUsage exactly
 * digitalSignature, self-issued with a CN.  PKCS#1 "RSA PUBLIC KEY" is
 * refused.  name identifies the key in messages. */
int vfy_keyring_add_pem (vfy_keyring *kr, const char *name, const char *pem, size_t len, time_t now, ef_err **err);
int vfy_keyring_add_file (vfy_keyring *kr, const char *path, time_t now, ef_err **err);
/* Every *.pem in dir.  A key that fails its checks is left out and
 * noted (vfy_keyring_note); a missing or unreadable dir is an error. */
int vfy_keyring_add_dir (vfy_keyring *kr, const char *dir, time_t now, ef_err **err);
size_t vfy_keyring_count (const vfy_keyring *kr);
/* The i-th key's name, or NULL past the last. */
const char *vfy_keyring_name (const vfy_keyring *kr, size_t i);
/* The named key's fingerprint: "sha256:" and the hex SHA-256 of its DER
 * SubjectPublicKeyInfo, as `openssl pkey -pubin -outform DER | sha256sum`
 * (for a certificate: `openssl x509 -pubkey -noout | openssl pkey -pubin
 * -outform DER | sha256sum`) prints it; NULL for no such key. */
const char *vfy_keyring_fingerprint (const vfy_keyring *kr, const char *name);
/* The i-th "NAME: why it was left out" note, or NULL. */
const char *vfy_keyring_note (const vfy_keyring *kr, size_t i);

/* Verify sig_b64 over data with any key; on success *key_name (may be
 * NULL) names the key that verified.  EF_VERIFY with the reason otherwise. */
int vfy_rsapss_verify (const vfy_keyring *kr, const void *data, size_t len, const char *sig_b64,
                       const char **key_name, ef_err **err);

#endif
