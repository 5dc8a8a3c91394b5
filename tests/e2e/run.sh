#!/usr/bin/env bash
# End-to-end tests of `edgefetch pull` against a real docker-registry over
# TLS, with htpasswd, behind a real token server, and with mTLS.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

# Failures that retry should not make the suite slow; the retry tests set their own.
export EDGEFETCH_RETRY_BASE_MS=20

USER_=alice PASS_=s3cret-pass
setup_pki "$USER_" "$PASS_"
IMG=$T/img
mkdir -p "$IMG"
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$IMG/tiny" --tag 1.0 --busybox >/dev/null
python3 "$M" image "$IMG/bad" --tag 1.0 --note "to be corrupted" >/dev/null
python3 "$M" image "$IMG/big" --tag 1.0 --busybox --note big \
	--random-mb 48 --random-mb 64 --random-mb 64 --random-mb 80 >/dev/null
python3 "$M" index "$IMG/multi" --tag 1.0 --busybox \
	--platform linux/amd64 --platform linux/arm64/v8 --platform linux/arm/v7 >/dev/null

# Registry A: htpasswd.  Registry B: token auth.  C: token auth, no OAuth2.  D: mTLS.
PA=$(free_port) PB=$(free_port) PT=$(free_port) PC=$(free_port) PT2=$(free_port) PD=$(free_port)
start_registry rega "$PA" htpasswd || setup_failed registry A
start_token_server "$PT" || setup_failed token server
start_registry regb "$PB" "token:$PT" || setup_failed registry B
"$PY" "$TOP/tests/e2e/tokenserver.py" --port "$PT2" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca-cert "$T/ca/ca.crt" --ca-key "$T/ca/ca.key" --users "$T/users" --log "$T/token2.log" --no-oauth \
	>"$T/token2.out" 2>&1 &
PIDS+=($!)
wait_port "$PT2" || setup_failed token server 2
start_registry regc "$PC" "token:$PT2" || setup_failed registry C
PE=$(free_port)
start_registry rege "$PE" "tokenip:$PT" || setup_failed registry E
A=127.0.0.1:$PA B=127.0.0.1:$PB C=127.0.0.1:$PC
CR="$USER_:$PASS_"

push "$IMG/tiny:1.0" "$A/edge/tiny:1.0" --dest-creds "$CR"
push "$IMG/tiny:1.0" "$A/edge/tinyd:1.0" --dest-creds "$CR" --format v2s2
push "$IMG/big:1.0" "$A/edge/big:1.0" --dest-creds "$CR"
push "$IMG/multi:1.0" "$A/edge/multi:1.0" --dest-creds "$CR" --all
push "$IMG/bad:1.0" "$A/edge/bad:1.0" --dest-creds "$CR"
push "$IMG/tiny:1.0" "$B/edge/tiny:1.0" --dest-creds "$CR"
push "$IMG/tiny:1.0" "$C/edge/tiny:1.0" --dest-creds "$CR"
E=127.0.0.1:$PE
push "$IMG/tiny:1.0" "$E/edge/tiny:1.0" --dest-creds "$CR"
: >"$T/token.log"
: >"$T/token2.log"

S=$T/store
ef() { "$EF" pull --quiet --store "$S" --ca-file "$T/ca/ca.crt" "$@"; }
skopeo_oci() { # skopeo_oci REF DIR [args]: what skopeo makes of REF
	local ref=$1 dir=$2
	shift 2
	skopeo copy -q --src-creds "$CR" --src-cert-dir "$T/skcerts" "$@" "docker://$ref" "oci:$dir:1.0" >/dev/null
}
index_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }
same_blobs() { diff <(ls "$1/blobs/sha256" | sort) <(ls "$2/blobs/sha256" | sort) >/dev/null; }

# ---- the image formats, each compared with skopeo's copy ----
run 0 "pull one-layer OCI image with htpasswd" ef --creds "$CR" --output "oci:$T/o-tiny" "$A/edge/tiny:1.0"
skopeo_oci "$A/edge/tiny:1.0" "$T/s-tiny"
check "OCI image: manifest digest equals skopeo's" [ "$(index_digest "$T/o-tiny")" = "$(index_digest "$T/s-tiny")" ]
check "OCI image: same blobs as skopeo's" same_blobs "$T/o-tiny" "$T/s-tiny"
check "stdout names manifest digest and image ID" grep -q "^Digest: $(index_digest "$T/s-tiny")" "$T/out"
check "umoci reads our layout" umoci stat --image "$T/o-tiny:1.0"
check "umoci unpacks our layout (diff_ids checked)" umoci unpack --image "$T/o-tiny:1.0" "$T/bundle"
check "unpacked busybox runs" "$T/bundle/rootfs/bin/busybox" true
check "skopeo inspects our layout" skopeo inspect "oci:$T/o-tiny:1.0"

run 0 "pull Docker v2 media types" ef --creds "$CR" --json "$A/edge/tinyd:1.0"
skopeo copy -q --src-creds "$CR" --src-cert-dir "$T/skcerts" "docker://$A/edge/tinyd:1.0" "dir:$T/s-tinyd"
check "Docker image: manifest digest equals skopeo's (dir:, which keeps the manifest)" \
	[ "$(jq -r .manifest_digest "$T/out")" = "sha256:$(sha256sum <"$T/s-tinyd/manifest.json" | cut -d' ' -f1)" ]
check "Docker image: media type kept" \
	[ "$(jq -r .media_type "$T/out")" = application/vnd.docker.distribution.manifest.v2+json ]
check "Docker image: nothing fetched twice (layer shared with the OCI one)" \
	[ "$(jq -r .bytes_reused "$T/out")" -gt 1000000 ]

run 0 "pull multi-layer image (~250 MB)" ef --creds "$CR" --jobs 4 --output "oci:$T/o-big" "$A/edge/big:1.0"
skopeo_oci "$A/edge/big:1.0" "$T/s-big"
check "big image: manifest digest equals skopeo's" [ "$(index_digest "$T/o-big")" = "$(index_digest "$T/s-big")" ]
check "big image: same blobs as skopeo's" same_blobs "$T/o-big" "$T/s-big"
check "big image: every stored blob hashes to its name" \
	bash -c 'cd "$1/blobs/sha256" && for f in *; do [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done' _ "$S"
run 0 "second pull of the big image" ef --creds "$CR" --json "$A/edge/big:1.0"
check "second pull fetches no blob bytes" [ "$(jq -r .bytes_fetched "$T/out")" = 0 ]

for p in linux/amd64:amd64: linux/arm64/v8:arm64:v8 linux/arm/v7:arm:v7; do
	plat=${p%%:*} rest=${p#*:}
	arch=${rest%%:*} variant=${rest#*:}
	run 0 "multi-arch index for $plat" ef --creds "$CR" --platform "$plat" --json --output "oci:$T/o-$arch" "$A/edge/multi:1.0"
	skopeo_oci "$A/edge/multi:1.0" "$T/s-$arch" --override-arch "$arch" ${variant:+--override-variant "$variant"}
	check "$plat: platform manifest equals skopeo's choice" [ "$(index_digest "$T/o-$arch")" = "$(index_digest "$T/s-$arch")" ]
	check "$plat: index digest reported" [ "$(jq -r .index_digest "$T/out")" = "$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$A/edge/multi:1.0" | sha256sum | sed 's/^/sha256:/;s/ .*//')" ]
done
run 4 "no manifest for linux/s390x -> exit 4" ef --creds "$CR" --platform linux/s390x "$A/edge/multi:1.0"
check "platform error names the platform" grep -q "linux/s390x" "$T/err"

TINY=$(index_digest "$T/s-tiny")
run 0 "digest-pinned reference" ef --creds "$CR" --json "$A/edge/tiny@$TINY"
check "digest-pinned: that manifest" [ "$(jq -r .manifest_digest "$T/out")" = "$TINY" ]
run 0 "tag and digest: the digest wins" ef --creds "$CR" --json "$A/edge/tiny:nope@$TINY"
run 4 "unknown digest -> exit 4" ef --creds "$CR" "$A/edge/tiny@sha256:$(printf '0%.0s' $(seq 64))"

# ---- token auth ----
run 0 "token auth: pull with credentials" ef --creds "$CR" --output "oci:$T/o-tok" "$B/edge/tiny:1.0"
check "token auth: same manifest" [ "$(index_digest "$T/o-tok")" = "$TINY" ]
check "token auth: OAuth2 POST with grant_type=password" grep -q '"method": "POST", "grant": "password", "ok": true' "$T/token.log"
check "token auth: one token for manifest and blobs (cached)" [ "$(grep -c '"ok": true' "$T/token.log")" = 1 ]
check "token log holds no secret" bash -c '! grep -q "$1" "$2"' _ "$PASS_" "$T/token.log"
run 0 "a token realm on another port of the registry's own address (127.0.0.1)" ef --creds "$CR" "$E/edge/tiny:1.0"
# the registry's CA only in its certs.d entry: the realm (another host name) is fetched with the registry's trust
mkdir -p "$T/certs-only/$E" "$T/certs-only/$B"
cp "$T/ca/ca.crt" "$T/certs-only/$E/ca.crt"
cp "$T/ca/ca.crt" "$T/certs-only/$B/ca.crt"
run 0 "a token realm on another port of the registry's address, the CA only in the registry's certs.d entry (E)" \
	"$EF" pull --quiet --store "$S" --certs-dir "$T/certs-only" --creds "$CR" "$E/edge/tiny:1.0"
run 0 "a token realm on localhost, the CA only in the registry's certs.d entry (B)" \
	"$EF" pull --quiet --store "$T/s-certs-only" --certs-dir "$T/certs-only" --creds "$CR" "$B/edge/tiny:1.0"
run 6 "a token realm whose CA no trust of the registry holds: TLS refused" \
	"$EF" pull --quiet --store "$T/s-certs-none" --certs-dir "$T/empty-certs" --creds "$CR" "$B/edge/tiny:1.0"
run 3 "token auth: wrong password -> exit 3" ef --creds "$USER_:nope" "$B/edge/tiny:1.0"
run 3 "token auth: anonymous -> exit 3" ef "$B/edge/tiny:1.0"
run 0 "token auth without OAuth2: falls back to GET with Basic" ef --creds "$CR" "$C/edge/tiny:1.0"
check "fallback: POST refused, then GET with credentials" \
	bash -c 'grep -q "\"method\": \"POST\"" "$1" && grep -q "\"method\": \"GET\", \"auth\": true, \"ok\": true" "$1"' _ "$T/token2.log"

# ---- credentials from files and the environment ----
printf '{"auths":{"https://%s":{"auth":"%s"}}}' "$A" "$(printf %s "$CR" | base64 -w0)" >"$T/config.json"
run 0 "docker config.json auths" ef --auth-file "$T/config.json" "$A/edge/tiny:1.0"
mkdir -p "$T/bin"
cat >"$T/bin/docker-credential-eftest" <<HELPER
#!/bin/sh
read -r server
[ "\$1" = get ] && [ "\$server" = "$A" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "\$server" "$USER_" "$PASS_"
HELPER
chmod +x "$T/bin/docker-credential-eftest"
printf '{"credHelpers":{"%s":"eftest"}}' "$A" >"$T/helpers.json"
run 0 "docker config.json credHelpers runs docker-credential-NAME" env PATH="$T/bin:$PATH" "$EF" pull --quiet \
	--store "$S" --ca-file "$T/ca/ca.crt" --auth-file "$T/helpers.json" "$A/edge/tiny:1.0"
run 0 "EDGEFETCH_CREDS" env EDGEFETCH_CREDS="$CR" "$EF" pull --quiet --store "$S" --ca-file "$T/ca/ca.crt" "$A/edge/tiny:1.0"
run 3 "wrong password (Basic) -> exit 3" ef --creds "$USER_:wrong" "$A/edge/tiny:1.0"
check "wrong password: one line on stderr, no secret" bash -c '[ "$(wc -l <"$1")" = 1 ] && ! grep -q wrong "$1"' _ "$T/err"
run 3 "no credentials for an htpasswd registry -> exit 3" ef "$A/edge/tiny:1.0"
run 4 "unknown tag -> exit 4" ef --creds "$CR" "$A/edge/tiny:nope"
check "unknown tag: says so" grep -q "no such tag" "$T/err"
run 4 "unknown repository -> exit 4" ef --creds "$CR" "$A/edge/nothere:1.0"
run 2 "bad reference -> exit 2" ef --creds "$CR" "$A/Edge/UPPER:1.0"

# ---- TLS ----
run 6 "unknown CA -> TLS error" "$EF" pull --quiet --store "$T/store-ca" --creds "$CR" \
	--certs-dir "$T/none" --output "oci:$T/o-noca" "$A/edge/tiny:1.0"
check "unknown CA: error says TLS" grep -q "TLS" "$T/err"
check "unknown CA: nothing exported" [ ! -e "$T/o-noca" ]
check "unknown CA: no blob stored" [ -z "$(ls "$T/store-ca/blobs/sha256" 2>/dev/null)" ]
mkdir -p "$T/certs.d/$A"
cp "$T/ca/ca.crt" "$T/certs.d/$A/ca.crt"
run 0 "certs.d: <host:port>/ca.crt" "$EF" pull --quiet --store "$S" --creds "$CR" --certs-dir "$T/certs.d" "$A/edge/tiny:1.0"

# mTLS: registry D wants a client certificate signed by the test CA.
D=127.0.0.1:$PD
start_registry regd "$PD" none "clientcas"
make_client_cert "$T/ca" client
mkdir -p "$T/mtls.d/$D"
cp "$T/ca/ca.crt" "$T/mtls.d/$D/ca.crt"
cp "$T/ca/client.cert" "$T/ca/client.key" "$T/mtls.d/$D/"
skopeo copy -q --dest-cert-dir "$T/mtls.d/$D" "oci:$IMG/tiny:1.0" "docker://$D/edge/tiny:1.0" >/dev/null
run 0 "mTLS: client pair from certs.d" "$EF" pull --quiet --store "$S" --certs-dir "$T/mtls.d" "$D/edge/tiny:1.0"
rm "$T/mtls.d/$D/client.key"
run 2 "mTLS: a .cert without its .key is a configuration error" "$EF" pull --quiet --store "$S" --certs-dir "$T/mtls.d" "$D/edge/tiny:1.0"
rm "$T/mtls.d/$D/client.cert"
run 6 "mTLS: no client certificate -> refused" "$EF" pull --quiet --store "$S" --certs-dir "$T/mtls.d" "$D/edge/tiny:1.0"

# ---- a registry that serves wrong bytes ----
BAD_LAYER=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$A/edge/bad:1.0" | jq -r '.layers[0].digest')
BAD_FILE=$T/rega/data/docker/registry/v2/blobs/sha256/${BAD_LAYER:7:2}/${BAD_LAYER:7}/data
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0xff; open(p,"wb").write(b)' "$BAD_FILE"
run 5 "blob with wrong bytes -> exit 5" ef --creds "$CR" --output "oci:$T/o-bad" "$A/edge/bad:1.0"
check "wrong bytes: error names the digest" grep -q "${BAD_LAYER:7:12}" "$T/err"
check "wrong bytes: not in the store" [ ! -e "$S/blobs/sha256/${BAD_LAYER:7}" ]
check "wrong bytes: no partial left" [ ! -e "$S/ingest/${BAD_LAYER:7}.part" ]
check "wrong bytes: nothing exported" [ ! -e "$T/o-bad" ]

# ---- exports ----
run 0 "oci-archive export" ef --creds "$CR" --output "oci-archive:$T/tiny.oci.tar" "$A/edge/tiny:1.0"
check "skopeo reads our oci-archive" skopeo inspect "oci-archive:$T/tiny.oci.tar"
run 0 "docker-archive export" ef --creds "$CR" --json --output "docker-archive:$T/tiny.docker.tar" "$A/edge/tiny:1.0"
cp "$T/out" "$T/tiny.json"
check "skopeo reads our docker-archive" skopeo inspect "docker-archive:$T/tiny.docker.tar"
check "docker-archive names the image" bash -c 'tar -xOf "$1" manifest.json | jq -e ".[0].RepoTags[0] == \"$2/edge/tiny:1.0\"" >/dev/null' _ "$T/tiny.docker.tar" "$A"
check "docker-archive holds the config as the image ID" \
	bash -c 'tar -xOf "$1" manifest.json | jq -e ".[0].Config == \"$2.json\"" >/dev/null' _ "$T/tiny.docker.tar" "$(jq -r .config_digest "$T/tiny.json" | cut -c8-)"
# progress: drawn on a terminal, never when stderr is not one
script -qec "$EF pull --store $T/store-tty --ca-file $T/ca/ca.crt --creds $CR $A/edge/tiny:1.0" /dev/null >"$T/tty.out" 2>&1
check "a progress bar on a terminal" grep -q "100%" "$T/tty.out"
script -qec "$EF pull --quiet --store $T/store-tty2 --ca-file $T/ca/ca.crt --creds $CR $A/edge/tiny:1.0" /dev/null >"$T/tty2.out" 2>&1
check "--quiet: no progress bar" bash -c '! grep -q "%" "$1"' _ "$T/tty2.out"
run 0 "no terminal: no progress bar" "$EF" pull --store "$T/store-tty3" --ca-file "$T/ca/ca.crt" --creds "$CR" "$A/edge/tiny:1.0"
check "no terminal: stderr is empty" [ ! -s "$T/err" ]
run 0 "--version" "$EF" --version
check "--version names the version" grep -q "^edgefetch [0-9]" "$T/out"
run 2 "an unknown command -> exit 2" "$EF" frobnicate
run 0 "pull --help" "$EF" pull --help
check "pull --help lists the options of the contract" bash -c 'for o in --platform --creds --auth-file --certs-dir --ca-file --store --output --runtime --verify-key --jobs --json --quiet; do grep -q -- "$o" "$1" || exit 1; done' _ "$T/out"
run 2 "bad --output -> exit 2" ef --creds "$CR" --output "tarball:$T/x" "$A/edge/tiny:1.0"

finish
