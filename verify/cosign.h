/* cosign.h: cosign "simple signing" signatures, verified with a key.
 *
 * The signature (base64 of an ASN.1 ECDSA-SHA256 signature, or RSA
 * PKCS#1 v1.5 SHA-256) is checked over the raw payload bytes before the
 * payload is parsed; then the payload is parsed strictly and must name
 * the manifest digest.  The caller compares the docker-reference with
 * the repository it asked for. */
#ifndef EF_COSIGN_H
#define EF_COSIGN_H

#include <stddef.h>

#include "../common/err.h"

#define COSIGN_PAYLOAD_TYPE "application/vnd.dev.cosign.simplesigning.v1+json"
#define COSIGN_SIG_ANNOTATION "dev.cosignproject.cosign/signature"
#define COSIGN_PAYLOAD_MAX (64 * 1024)

typedef struct vfy_cosign_key vfy_cosign_key;

/* A PEM PKIX public key: ECDSA P-256 (cosign's default), or RSA >= 2048. */
int vfy_cosign_key_from_pem (vfy_cosign_key **out, const char *pem, size_t len, ef_err **err);
int vfy_cosign_key_load (vfy_cosign_key **out, const char *path, ef_err **err);
void vfy_cosign_key_free (vfy_cosign_key *k);

/* Parse a payload strictly: top level exactly {critical, optional},
 * critical exactly {identity, image, type}, the type string cosign uses.
 * Returns the docker-reference and docker-manifest-digest (caller frees). */
int vfy_cosign_payload_parse (const char *payload, size_t len, char **docker_ref, char **manifest_digest,
                              ef_err **err);

/* Verify one signature; on success *docker_ref is the payload's reference. */
int vfy_cosign_verify (const vfy_cosign_key *k, const char *payload, size_t len, const char *sig_b64,
                       const char *manifest_digest, char **docker_ref, ef_err **err);

#define SIGSTORE_BUNDLE_TYPE "application/vnd.dev.sigstore.bundle.v0.3+json"
#define COSIGN_PREDICATE_TYPE "https://sigstore.dev/cosign/sign/v1"

/* Verify a sigstore bundle (cosign v3's default) with a key: the DSSE
 * envelope's signature over PAE(payloadType, payload) first, then the
 * in-toto statement, which must have cosign's predicate type and a subject
 * whose sha256 is manifest_digest.  Key-based only: certificates and
 * transparency-log entries in the bundle are not used. */
int vfy_cosign_verify_bundle (const vfy_cosign_key *k, const char *bundle, size_t len, const char *manifest_digest,
                              ef_err **err);

#endif
