#!/usr/bin/env bash
# make demo: a local TLS registry with a password, a small image pushed to
# it, and edgefetch pulling it into a store and an OCI layout.
set -eu
source "$(dirname "$0")/e2e/lib.sh"

say() { printf '\n== %s\n' "$*"; }
say "set up a CA, a registry on 127.0.0.1 with TLS and htpasswd (user demo)"
setup_pki demo demo-password
P=$(free_port)
start_registry reg "$P" htpasswd
python3 "$TOP/tests/e2e/mkimage.py" index "$T/img" --tag 1.0 --busybox \
	--platform linux/amd64 --platform linux/arm64/v8 --platform linux/arm/v7 >/dev/null
push "$T/img:1.0" "127.0.0.1:$P/edge/hello:1.0" --dest-creds demo:demo-password --all
echo "registry: https://127.0.0.1:$P  image: 127.0.0.1:$P/edge/hello:1.0 (amd64, arm64, arm/v7)"

for plat in linux/amd64 linux/arm/v7; do
	say "edgefetch pull --platform $plat"
	(set -x; "$EF" pull --store "$T/store" --ca-file "$T/ca/ca.crt" --creds demo:demo-password \
		--platform "$plat" --output "oci:$T/out-${plat//\//-}" "127.0.0.1:$P/edge/hello:1.0")
done
say "the same again: everything is in the store already"
"$EF" pull --json --store "$T/store" --ca-file "$T/ca/ca.crt" --creds demo:demo-password \
	"127.0.0.1:$P/edge/hello:1.0" | jq '{manifest_digest, bytes_fetched, bytes_reused}'
say "a wrong password is refused (exit 3), and says so in one line"
"$EF" pull --quiet --store "$T/store" --ca-file "$T/ca/ca.crt" --creds demo:wrong "127.0.0.1:$P/edge/hello:1.0" || echo "exit $?"
say "the content store"
find "$T/store" -type f | sed "s|$T/||" | sort
say "the exported layout, as skopeo sees it"
skopeo inspect "oci:$T/out-linux-amd64:1.0" | jq '{Digest, Architecture, Layers}'
