#!/usr/bin/env bash
# Trust tests.  Every key, certificate and signature here is made by the
# openssl CLI, never by edgefetch: Horizon deployment signatures
# (RSA-PSS) checked by `edgefetch verify-deployment`, and cosign
# signatures pushed to the real registry and checked by `pull --verify-key`.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
export EDGEFETCH_RETRY_BASE_MS=20

K=$T/keys
mkdir -p "$K"
cat >"$K/hzn.cnf" <<'CNF'
[req]
distinguished_name = dn
x509_extensions = hzn
prompt = no
[dn]
CN = edge-publisher@example.org
[hzn]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
CNF
for bits in 2048 4096; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:$bits -out "$K/rsa$bits.key" 2>/dev/null
	openssl pkey -in "$K/rsa$bits.key" -pubout -out "$K/rsa$bits.pub.pem"
	openssl req -x509 -new -key "$K/rsa$bits.key" -config "$K/hzn.cnf" -days 1461 -set_serial 7 \
		-out "$K/rsa$bits.cert.pem" 2>/dev/null
done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/other.key" 2>/dev/null
openssl pkey -in "$K/other.key" -pubout -out "$K/other.pub.pem"
# An hzn-style certificate that expired in 2021, self-signed with `openssl ca`.
mkdir -p "$K/ca"
touch "$K/ca/index.txt"
echo 09 >"$K/ca/serial"
cat >"$K/ca/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
dir = $K/ca
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
default_md = sha256
policy = p
x509_extensions = hzn
[p]
commonName = supplied
[hzn]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
CNF
openssl req -new -key "$K/rsa2048.key" -config "$K/hzn.cnf" -out "$K/ca/expired.csr" 2>/dev/null
openssl ca -batch -config "$K/ca/ca.cnf" -selfsign -keyfile "$K/rsa2048.key" -in "$K/ca/expired.csr" \
	-startdate 20200101000000Z -enddate 20210101000000Z -out "$K/expired.cert.pem" >/dev/null 2>&1
# A CA certificate is not a signing key.
openssl req -x509 -new -key "$K/rsa2048.key" -subj /CN=ca -days 30 -out "$K/ca-like.cert.pem" 2>/dev/null
openssl rsa -in "$K/rsa2048.key" -RSAPublicKey_out -out "$K/pkcs1.pem" 2>/dev/null

DIGEST=sha256:$(printf '%064d' 0 | tr 0 a)
# The deployment string exactly as Go's json.Marshal writes it, \u003c escapes included.
DEP=$(printf '{"services":{"app":{"command":["sh","-c","echo \\u003cready\\u003e"],"image":"127.0.0.1:5000/edge/app@%s"}}}' "$DIGEST")
DEP_TAG='{"services":{"app":{"image":"127.0.0.1:5000/edge/app:1.0"}}}'
sign() { # sign KEY SALT DATA -> base64 RSA-PSS signature
	printf %s "$3" | openssl dgst -sha256 -sign "$1" -sigopt rsa_padding_mode:pss -sigopt "rsa_pss_saltlen:$2" \
		-sigopt rsa_mgf1_md:sha256 | base64 -w0
}
service() { # service FILE DEPLOYMENT SIGNATURE
	jq -n --arg d "$2" --arg s "$3" '{label:"app", url:"example.org.app", version:"1.0.0", arch:"amd64",
		public:true, sharable:"multiple", deployment:$d, deploymentSignature:$s}' >"$1"
}
vd() { "$EF" verify-deployment "$@"; }

for bits in 2048 4096; do
	for salt in max digest; do
		service "$T/s-$bits-$salt.json" "$DEP" "$(sign "$K/rsa$bits.key" $salt "$DEP")"
		run 0 "RSA-$bits, salt $salt, PUBLIC KEY" vd --key "$K/rsa$bits.pub.pem" "$T/s-$bits-$salt.json"
		run 0 "RSA-$bits, salt $salt, hzn certificate" vd --key "$K/rsa$bits.cert.pem" "$T/s-$bits-$salt.json"
	done
done
check "verify-deployment names the key and the pinned image" grep -q "edge/app@$DIGEST" "$T/out"
GOOD=$T/s-2048-max.json
SIG=$(jq -r .deploymentSignature "$GOOD")

service "$T/bad.json" "${DEP/ready/readY}" "$SIG"
run 5 "one byte changed in the deployment -> exit 5" vd --key "$K/rsa2048.pub.pem" "$T/bad.json"
check "one byte changed: says why" grep -q "does not verify" "$T/err"
# the escaped text is not what was signed: hash the decoded string
jq --arg d "$(jq -c . <<<"$DEP" | jq -Rs . | sed 's/^"//; s/\\n"$//')" '.deployment = $d' "$GOOD" >"$T/escaped.json"
run 5 "signature checked over the decoded string, not the escaped text" vd --key "$K/rsa2048.pub.pem" "$T/escaped.json"
run 5 "wrong key -> exit 5" vd --key "$K/other.pub.pem" "$GOOD"
service "$T/trunc.json" "$DEP" "${SIG:0:100}"
run 5 "truncated signature -> exit 5" vd --key "$K/rsa2048.pub.pem" "$T/trunc.json"
service "$T/b64.json" "$DEP" "not*base64!!"
run 5 "bad base64 -> exit 5" vd --key "$K/rsa2048.pub.pem" "$T/b64.json"
check "bad base64: says so" grep -q "base64" "$T/err"
service "$T/nosig.json" "$DEP" ""
run 5 "missing signature -> exit 5" vd --key "$K/rsa2048.pub.pem" "$T/nosig.json"
check "missing signature: says so" grep -q "not signed" "$T/err"
run 5 "expired certificate -> exit 5" vd --key "$K/expired.cert.pem" "$GOOD"
check "expired: says so" grep -q "expired" "$T/err"
run 5 "a CA certificate is refused as a signing key" vd --key "$K/ca-like.cert.pem" "$GOOD"
run 5 "a PKCS#1 RSA PUBLIC KEY is refused" vd --key "$K/pkcs1.pem" "$GOOD"

mkdir -p "$T/trust"
cp "$K/expired.cert.pem" "$K/other.pub.pem" "$K/rsa2048.cert.pem" "$T/trust/"
run 0 "trust dir: any one valid key verifies" vd --trust-dir "$T/trust" "$GOOD"
check "trust dir: the expired key is reported as left out" grep -q "key left out.*expired" "$T/err"
rm "$T/trust/rsa2048.cert.pem"
run 5 "trust dir without the signer -> exit 5" vd --trust-dir "$T/trust" "$GOOD"
jq -n --slurpfile s "$GOOD" '{services: {"example/example.org.app_1.0.0_amd64": $s[0]}, lastIndex: 0}' >"$T/envelope.json"
run 0 "the exchange's envelope" vd --key "$K/rsa2048.pub.pem" "$T/envelope.json"
service "$T/tag.json" "$DEP_TAG" "$(sign "$K/rsa2048.key" max "$DEP_TAG")"
run 0 "tag-only image, digest not required" vd --key "$K/rsa2048.pub.pem" "$T/tag.json"
check "tag-only image is pointed out" grep -q "not pinned" "$T/out"
require_digest() { EDGEFETCH_REQUIRE_DIGEST=true vd "$@"; }
run 5 "EDGEFETCH_REQUIRE_DIGEST=true refuses a tag-only image" require_digest --key "$K/rsa2048.pub.pem" "$T/tag.json"
run 0 "EDGEFETCH_REQUIRE_DIGEST=true accepts a pinned image" require_digest --key "$K/rsa2048.pub.pem" "$GOOD"
run 2 "neither --key nor --trust-dir -> exit 2" vd "$GOOD"

# ---- cosign, against the real registry ----
setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/img-signed" --tag 1.0 --busybox --note signed >/dev/null
python3 "$M" image "$T/img-plain" --tag 1.0 --note unsigned >/dev/null
python3 "$M" index "$T/img-multi" --tag 1.0 --platform linux/amd64 --platform linux/arm64/v8 >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
push "$T/img-signed:1.0" "$R/edge/signed:1.0" --dest-creds "$CR"
push "$T/img-signed:1.0" "$R/edge/wrongkey:1.0" --dest-creds "$CR"
push "$T/img-signed:1.0" "$R/edge/otherdigest:1.0" --dest-creds "$CR"
push "$T/img-signed:1.0" "$R/edge/otherrepo:1.0" --dest-creds "$CR"
push "$T/img-plain:1.0" "$R/edge/plain:1.0" --dest-creds "$CR"
push "$T/img-multi:1.0" "$R/edge/multi:1.0" --dest-creds "$CR" --all
for n in bundled bundlewrongkey bundleotherdigest; do push "$T/img-signed:1.0" "$R/edge/$n:1.0" --dest-creds "$CR"; done
digest_of() { skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/cosign.key" 2>/dev/null
openssl pkey -in "$K/cosign.key" -pubout -out "$K/cosign.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/cosign2.key" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$K/ed.key" 2>/dev/null
openssl pkey -in "$K/ed.key" -pubout -out "$K/ed.pub"
D=$(digest_of signed)
SIGN=$TOP/tests/e2e/cosign-sign.sh
"$SIGN" "$R" edge/signed "$D" "$K/cosign.key" "$CR" "$T/ca/ca.crt"
"$SIGN" "$R" edge/wrongkey "$D" "$K/cosign2.key" "$CR" "$T/ca/ca.crt"
"$SIGN" "$R" edge/otherdigest "$D" "$K/cosign.key" "$CR" "$T/ca/ca.crt" "$R/edge/otherdigest" "sha256:$(printf '%064d' 1)"
"$SIGN" "$R" edge/otherrepo "$D" "$K/cosign.key" "$CR" "$T/ca/ca.crt" "$R/edge/somethingelse"
DM=$(digest_of multi)
"$SIGN" "$R" edge/multi "$DM" "$K/cosign.key" "$CR" "$T/ca/ca.crt"

BUNDLE_SIGN=$TOP/tests/e2e/cosign-bundle.sh
SZ=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/signed:1.0" | wc -c)
"$BUNDLE_SIGN" "$R" edge/bundled "$D" "$SZ" "$K/cosign.key" "$CR" "$T/ca/ca.crt"
"$BUNDLE_SIGN" "$R" edge/bundlewrongkey "$D" "$SZ" "$K/cosign2.key" "$CR" "$T/ca/ca.crt"
"$BUNDLE_SIGN" "$R" edge/bundleotherdigest "$D" "$SZ" "$K/cosign.key" "$CR" "$T/ca/ca.crt" "sha256:$(printf '%064d' 2)"

efv() { "$EF" pull --quiet --store "$T/store" --ca-file "$T/ca/ca.crt" --creds "$CR" --verify-key "$K/cosign.pub" "$@"; }
run 0 "cosign: a valid signature" efv --output "oci:$T/o-signed" "$R/edge/signed:1.0"
check "cosign: the image was exported" [ -f "$T/o-signed/index.json" ]
run 5 "cosign: signed with another key -> exit 5" efv --output "oci:$T/o-wrongkey" "$R/edge/wrongkey:1.0"
check "cosign: wrong key: nothing exported" [ ! -e "$T/o-wrongkey" ]
run 5 "cosign: payload names another digest -> exit 5" efv --output "oci:$T/o-od" "$R/edge/otherdigest:1.0"
check "cosign: other digest: says so" grep -q "is for sha256:" "$T/err"
check "cosign: other digest: nothing exported" [ ! -e "$T/o-od" ]
run 5 "cosign: payload names another repository -> exit 5" efv --output "oci:$T/o-or" "$R/edge/otherrepo:1.0"
check "cosign: other repository: says so" grep -q "somethingelse" "$T/err"
run 5 "cosign: no signature -> exit 5" efv --output "oci:$T/o-plain" "$R/edge/plain:1.0"
check "cosign: no signature: says so" grep -q "no cosign signature" "$T/err"
check "cosign: no signature: nothing exported" [ ! -e "$T/o-plain" ]
check "cosign: refused images are not recorded in the store" bash -c '! grep -q "plain\|wrongkey\|otherdigest\|otherrepo" "$1/images.json"' _ "$T/store"
run 0 "cosign: a signed multi-arch index, pulled for arm64" efv --platform linux/arm64 "$R/edge/multi:1.0"
run 0 "cosign: by digest" efv "$R/edge/signed@$D"
run 5 "cosign: an Ed25519 key is an unknown algorithm -> exit 5" "$EF" pull --quiet --store "$T/store" \
	--ca-file "$T/ca/ca.crt" --creds "$CR" --verify-key "$K/ed.pub" "$R/edge/signed:1.0"
run 0 "cosign v3: a sigstore bundle found through the referrers tag" efv --output "oci:$T/o-bundled" "$R/edge/bundled:1.0"
run 5 "cosign v3: a bundle signed with another key -> exit 5" efv "$R/edge/bundlewrongkey:1.0"
check "cosign v3: wrong key: says so" grep -q "bundle signature does not verify" "$T/err"
run 5 "cosign v3: a bundle whose statement names another digest -> exit 5" efv "$R/edge/bundleotherdigest:1.0"
check "cosign v3: other digest: says so" grep -q "does not sign" "$T/err"
printf 'not a key\n' >"$T/junk.pub"
run 5 "cosign: a malformed key -> exit 5" "$EF" pull --quiet --store "$T/store" \
	--ca-file "$T/ca/ca.crt" --creds "$CR" --verify-key "$T/junk.pub" "$R/edge/signed:1.0"

finish
