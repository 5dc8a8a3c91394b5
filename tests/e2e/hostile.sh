#!/usr/bin/env bash
# edgefetch pull against hostile input: registries that lie in one way each
# (tests/e2e/hostile.py), planted files in the store and in an export
# directory, and bad command lines.  Every case: the right exit code, one
# escaped and bounded line on stderr, nothing wrong kept.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
export EDGEFETCH_RETRY_BASE_MS=20 EDGEFETCH_ATTEMPTS=2

setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/img" --tag 1.0 --busybox --note hostile --random-kb 600 >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
push "$T/img:1.0" "$R/edge/app:1.0" --dest-creds "$CR"

# hostile NAME: a hostile registry of that scenario; sets H to its address.
hostile() {
	local port
	port=$(free_port)
	"$PY" "$TOP/tests/e2e/hostile.py" --port "$port" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
		--layout "$T/img" --scenario "$1" --log "$T/hostile-$1.log" >"$T/hostile-$1.out" 2>&1 &
	PIDS+=($!)
	wait_port "$port" || setup_failed "hostile $1"
	H=127.0.0.1:$port
}
efp() { "$EF" pull --quiet --ca-file "$T/ca/ca.crt" "$@"; }
# one_clean_line: stderr is one line, no control byte, at most 2 KiB
one_clean_line() { [ "$(wc -l <"$T/err")" = 1 ] && ! LC_ALL=C grep -q '[[:cntrl:]]' <(tr -d '\n' <"$T/err") && [ "$(wc -c <"$T/err")" -le 2100 ]; }
store_ok() { (cd "$1/blobs/sha256" && for f in *; do [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done); }
LAYER=$(jq -r '.layers[1].digest' "$T/img/blobs/sha256/$(jq -r '.manifests[0].digest' "$T/img/index.json" | cut -c8-)")
MANIFEST=$(jq -r '.manifests[0].digest' "$T/img/index.json")

# ---- registry text in error lines: escaped and cut ----
hostile esc-mediatype
run 5 "a mediaType with ESC and BEL bytes -> exit 5" efp --store "$T/s1" "$H/edge/app:1.0"
check "ESC/BEL mediaType: one escaped line" one_clean_line
check "ESC/BEL mediaType: the bytes are shown as \\x1b" grep -qF '\x1b' "$T/err"
hostile huge-mediatype
run 5 "a 1 MB mediaType -> exit 5" efp --store "$T/s2" "$H/edge/app:1.0"
check "1 MB mediaType: one line of at most 2 KiB" one_clean_line
hostile esc-digest
run 5 "a Docker-Content-Digest with ESC and BEL bytes -> exit 5" efp --store "$T/s3" "$H/edge/app:1.0"
check "ESC Docker-Content-Digest: one escaped line" one_clean_line
run 2 "an IMAGE with control characters -> exit 2" efp --store "$T/s4" $'127.0.0.1:1/edge/a\e[2J\nb:1'
check "control characters in IMAGE: one escaped line" one_clean_line

# ---- parser memory ----
hostile zeros
run 5 "a 4 MiB manifest of [0,0,...] -> exit 5" efp --store "$T/s5" "$H/edge/app:1.0"
check "4 MiB of zeros: refused as too complex to hold" grep -q "too complex to hold" "$T/err"
hostile wide-index
run 5 "an index of 36,000 entries -> exit 5" efp --store "$T/s6" "$H/edge/app:1.0"
check "36,000-entry index: refused as too complex to hold" grep -q "too complex to hold" "$T/err"
hostile deep
run 5 "a 4 MiB manifest of [[[[...]]]] -> exit 5" efp --store "$T/s6a" "$H/edge/app:1.0"
check "[[[[...]]]]: one clean line" one_clean_line
hostile long-string
run 5 "a manifest with a 4 MiB annotation -> exit 5" efp --store "$T/s6b" "$H/edge/app:1.0"
check "4 MiB annotation: refused as too complex to hold" grep -q "too complex to hold" "$T/err"
hostile many-keys
run 5 "a manifest with 270,000 annotations -> exit 5" efp --store "$T/s6c" "$H/edge/app:1.0"
check "270,000 annotations: refused as too complex to hold" grep -q "too complex to hold" "$T/err"
hostile padded
run 5 "a manifest padded with 4 MiB of blanks -> exit 5" efp --store "$T/s6d" "$H/edge/app:1.0"
check "4 MiB of blanks: refused as padded" grep -q "padded to" "$T/err"
check "hostile manifests: nothing spooled is left in ingest/" \
	bash -c '! ls -A "$1"/s5/ingest "$1"/s6*/ingest 2>/dev/null | grep -q manifest' _ "$T"

# ---- messages that say what happened ----
hostile big-challenge
run 6 "a 200 KB challenge -> exit 6" efp --store "$T/s7" "$H/edge/app:1.0"
check "200 KB challenge: the error says the header was too large, not out of memory" \
	bash -c 'grep -qi "header" "$1" && ! grep -qi "out of memory" "$1"' _ "$T/err"
hostile long-bearer
run 3 "a Bearer challenge over 8 KiB -> exit 3" efp --store "$T/s8" "$H/edge/app:1.0"
check "9 KiB Bearer challenge: the error says it is too long" \
	bash -c 'grep -q "longer than 8 KiB" "$1" && ! grep -q "no supported auth scheme" "$1"' _ "$T/err"
hostile bad-range
mkdir -p "$T/s9/ingest"
head -c 1000 "$T/img/blobs/sha256/${LAYER#sha256:}" >"$T/s9/ingest/${LAYER#sha256:}.part"
run 6 "a 206 with a Content-Range from another byte -> exit 6" efp --store "$T/s9" "$H/edge/app:1.0"
check "wrong Content-Range: the error names it" \
	bash -c 'grep -q "Content-Range" "$1" && ! grep -q "Failure writing" "$1"' _ "$T/err"
check "wrong Content-Range: nothing wrong kept" store_ok "$T/s9"

# ---- wrong bytes already on disk ----
S=$T/store
mkdir -p "$S/ingest"
head -c 300000 /dev/urandom >"$S/ingest/${LAYER#sha256:}.part"
run 0 "wrong bytes left in an ingest .part: the honest pull succeeds the first time" \
	efp --store "$S" --creds "$CR" "$R/edge/app:1.0"
check "wrong .part: the store verifies" store_ok "$S"
# a planted wrong layer (same name, same size) is not exported as is
S=$T/store2
efp --store "$S" --creds "$CR" "$R/edge/app:1.0" >/dev/null 2>&1
head -c "$(stat -c %s "$S/blobs/sha256/${LAYER#sha256:}")" /dev/urandom >"$T/junk"
cp "$T/junk" "$S/blobs/sha256/${LAYER#sha256:}"
run 0 "a planted wrong layer in the store: pull --output repairs it" \
	efp --store "$S" --creds "$CR" --output "oci:$T/out1" "$R/edge/app:1.0"
check "planted layer: the export holds the right bytes" store_ok "$T/out1"
check "planted layer: the store holds the right bytes again" store_ok "$S"
# a planted wrong manifest is not recorded as is, and gc keeps the layers
head -c "$(stat -c %s "$S/blobs/sha256/${MANIFEST#sha256:}")" /dev/zero >"$S/blobs/sha256/${MANIFEST#sha256:}"
run 0 "a planted wrong manifest in the store: pull repairs it" efp --store "$S" --creds "$CR" "$R/edge/app:1.0"
run 0 "planted manifest: gc afterwards" "$EF" gc --store "$S"
check "planted manifest: gc kept the image's layer" [ -f "$S/blobs/sha256/${LAYER#sha256:}" ]
run 0 "planted manifest: --output still works after gc" \
	efp --store "$S" --creds "$CR" --output "oci-archive:$T/a.tar" "$R/edge/app:1.0"

# ---- the export directory: planted links and wrong files ----
O=$T/out2
mkdir -p "$O/blobs/sha256"
echo outside >"$T/outside"
for n in index.json.tmp oci-layout.tmp "blobs/sha256/${LAYER#sha256:}.tmp"; do ln -s "$T/outside" "$O/$n"; done
echo wrong >"$O/blobs/sha256/${MANIFEST#sha256:}"
run 0 "symlinks planted at the export's temporary names: the export succeeds" \
	efp --store "$S" --creds "$CR" --output "oci:$O" "$R/edge/app:1.0"
check "planted symlinks: the file outside OUT is untouched" [ "$(cat "$T/outside")" = outside ]
check "a wrong file at OUT/blobs/sha256/<hex> is replaced" \
	[ "$(sha256sum <"$O/blobs/sha256/${MANIFEST#sha256:}" | cut -c1-64)" = "${MANIFEST#sha256:}" ]
check "the export is read by skopeo" skopeo inspect --raw "oci:$O:1.0"

# ---- the command line: all checked before the first request ----
run 2 "an unknown option -> exit 2" efp --store "$T/s10" --no-such-option "$R/edge/app:1.0"
check "unknown option: one line naming it" bash -c '[ "$(wc -l <"$1")" = 1 ] && grep -q -- "--no-such-option" "$1"' _ "$T/err"
hostile plain
run 2 "--creds without a colon -> exit 2, even for a registry without auth" efp --store "$T/s11" --creds alice "$H/edge/app:1.0"
run 2 "a missing --auth-file -> exit 2, even for a registry without auth" \
	efp --store "$T/s12" --auth-file "$T/nope.json" "$H/edge/app:1.0"
: >"$T/hostile-plain.log"
touch "$T/afile"
run 2 "--output oci:FILE (a regular file) -> exit 2" efp --store "$T/s13" --output "oci:$T/afile" "$H/edge/app:1.0"
run 2 "--output oci:/proc/x -> exit 2" efp --store "$T/s14" --output "oci:/proc/x" "$H/edge/app:1.0"
check "bad options: the registry saw no request at all" [ ! -s "$T/hostile-plain.log" ]

finish
