#!/usr/bin/env bash
# cosign-sign.sh REGISTRY REPO DIGEST KEY CREDS CA [DOCKER_REFERENCE [SIGNED_DIGEST]]
# Sign an image the way cosign does (legacy tag format), with the openssl
# CLI only, and push the signature through the registry API with curl:
# a simple-signing payload blob, its ECDSA-SHA256 signature as an
# annotation, under the tag sha256-<hex>.sig.
set -eu
reg=$1 repo=$2 digest=$3 key=$4 creds=$5 ca=$6
ref=${7:-$reg/$repo}
signed=${8:-$digest}
source "$(dirname "$0")/registry-api.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
	"$ref" "$signed" >"$tmp/payload"
sig=$(openssl dgst -sha256 -sign "$key" "$tmp/payload" | base64 -w0)
pd=$(upload "$tmp/payload")
printf '{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$pd" >"$tmp/config"
cd=$(upload "$tmp/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%d,"digest":"%s"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%d,"digest":"%s","annotations":{"dev.cosignproject.cosign/signature":"%s"}}]}' \
	"$(stat -c %s "$tmp/config")" "$cd" "$(stat -c %s "$tmp/payload")" "$pd" "$sig" >"$tmp/manifest"
c -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$tmp/manifest" \
	"https://$reg/v2/$repo/manifests/sha256-${digest#sha256:}.sig" >/dev/null
