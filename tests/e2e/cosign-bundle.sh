#!/usr/bin/env bash
# cosign-bundle.sh REGISTRY REPO DIGEST SUBJECT_SIZE KEY CREDS CA [SIGNED_DIGEST]
# Sign an image the way cosign v3 does by default, with the openssl CLI only:
# an in-toto statement in a DSSE envelope inside a sigstore bundle (v0.3),
# pushed with curl as an OCI 1.1 referrer of the image, listed under the
# referrers tag sha256-<hex> (the fallback for registries without the
# referrers API, such as distribution 2.8).
set -eu
reg=$1 repo=$2 digest=$3 subject_size=$4 key=$5 creds=$6 ca=$7
signed=${8:-$digest}
BUNDLE=application/vnd.dev.sigstore.bundle.v0.3+json
source "$(dirname "$0")/registry-api.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"%s/%s","digest":{"sha256":"%s"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}' \
	"$reg" "$repo" "${signed#sha256:}" >"$tmp/statement"
ptype=application/vnd.in-toto+json
{ printf 'DSSEv1 %d %s %d ' ${#ptype} "$ptype" "$(stat -c %s "$tmp/statement")"; cat "$tmp/statement"; } >"$tmp/pae"
sig=$(openssl dgst -sha256 -sign "$key" "$tmp/pae" | base64 -w0)
printf '{"mediaType":"%s","verificationMaterial":{"publicKey":{"hint":""}},"dsseEnvelope":{"payload":"%s","payloadType":"%s","signatures":[{"sig":"%s","keyid":""}]}}' \
	"$BUNDLE" "$(base64 -w0 <"$tmp/statement")" "$ptype" "$sig" >"$tmp/bundle"
bd=$(upload "$tmp/bundle")
printf '{}' >"$tmp/empty"
ed=$(upload "$tmp/empty")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"%s","config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"%s"},"layers":[{"mediaType":"%s","size":%d,"digest":"%s"}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":%d,"digest":"%s"}}' \
	"$BUNDLE" "$ed" "$BUNDLE" "$(stat -c %s "$tmp/bundle")" "$bd" "$subject_size" "$digest" >"$tmp/manifest"
md=sha256:$(sha256sum <"$tmp/manifest" | cut -c1-64)
c -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$tmp/manifest" \
	"https://$reg/v2/$repo/manifests/$md" >/dev/null
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"%s","size":%d,"digest":"%s"}]}' \
	"$BUNDLE" "$(stat -c %s "$tmp/manifest")" "$md" >"$tmp/index"
c -X PUT -H "Content-Type: application/vnd.oci.image.index.v1+json" --data-binary "@$tmp/index" \
	"https://$reg/v2/$repo/manifests/sha256-${digest#sha256:}" >/dev/null
