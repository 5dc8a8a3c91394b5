#!/usr/bin/env bash
# Power cuts: the crash-state explorer (tests/crash/explore.py, recording
# with tests/crash/fsrec.c) on each write path against the real registry,
# and the states it found as named regression cases.  A power cut is not
# a SIGKILL: what no fsync forced may be gone, a file may keep its new
# length with zeros inside, a name its directory was not fsynced for may
# be lost.  Every state the weak model allows must be right as the cut
# left it, and right after the same command runs once more; gc must then
# find nothing left over.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/one" --tag 1.0 --note crash-one --random-kb 1024 >/dev/null
python3 "$M" image "$T/multi" --tag 1.0 --note crash-multi --random-kb 128 --random-kb 128 --random-kb 128 >/dev/null
python3 "$M" image "$T/gcb" --tag 1.0 --note crash-gc-second --random-kb 64 >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
push "$T/one:1.0" "$R/edge/one:1.0" --dest-creds "$CR"
push "$T/multi:1.0" "$R/edge/multi:1.0" --dest-creds "$CR"
push "$T/one:1.0" "$R/edge/gc:1.0" --dest-creds "$CR"
# v1 and v2 of a zstd:chunked layer: 2 of 12 files differ
for v in v1 v2; do
	python3 "$M" image "$T/$v" --tag 1.0 --note "crash-$v" --files 12:32 --vary 3,7 >/dev/null
	push "$T/$v:1.0" "$R/edge/chunked:$v" --dest-creds "$CR" --dest-compress-format zstd:chunked || setup_failed "push $v"
done

fsrec_build || setup_failed "fsrec.so"
efp() { echo "$EF pull --quiet --ca-file $T/ca/ca.crt --creds $CR $*"; }
layer_of() { # layer_of STORE IMAGE: the first layer's hex
	jq -r '.layers[0].digest' "$1/blobs/sha256/$(jq -r --arg n "$2" '.images[$n].manifest' "$1/images.json" | cut -c8-)" |
		cut -c8-
}

# explore NAME ROOT CMD [ARGS]: one workload; its row goes to $T/table
explore() {
	local name=$1 root=$2 cmd=$3 rep=$T/report-$RANDOM.json
	"$PY" "$TOP/tests/crash/explore.py" --name "$name" --root "$root" --cmd "$cmd" "${@:4}" \
		--gc "$EF gc --store $root/store >/dev/null" --report "$rep" --keep-failures "$T/failures" \
		>>"$T/table" 2>"$T/err"
	if [ ! -s "$rep" ]; then
		not_ok "$name: the explorer ran"
		return
	fi
	check "$name: states were explored (more than one crash point and distinct state)" \
		jq -e '.crash_points > 1 and .distinct > 1' "$rep"
	local k
	for k in wrong_as_cut not_recovered exit5 leftovers; do
		if jq -e --arg k "$k" '.[$k] == 0' "$rep" >/dev/null; then
			ok "$name: $k = 0"
		else
			not_ok "$name: $k = $(jq --arg k "$k" '.[$k]' "$rep"): $(jq -r --arg k "$k" '.examples[$k][0]' "$rep")"
		fi
	done
}

echo "| workload | crash points | states | distinct | wrong as cut | not recovered by one re-run | recoveries that exited 5 | leftovers after re-run + gc |" >"$T/table"
echo "|---|---|---|---|---|---|---|---|" >>"$T/table"

# 1. a fresh pull into an OCI layout (its parent is in the explored root:
#    nothing may be left beside the layout either)
W=$T/w-fresh
mkdir -p "$W"
explore "fresh pull --output oci:" "$W" "$(efp --store "$W/store" --output "oci:$W/oci" "$R/edge/one:1.0") >/dev/null"

# 2. three layers over four connections at once
W=$T/w-multi
mkdir -p "$W"
explore "multi-layer pull --jobs 4" "$W" "$(efp --jobs 4 --store "$W/store" "$R/edge/multi:1.0") >/dev/null"

# 3. a pull resumed from half a layer on disk (as a cut or a kill leaves it)
W=$T/w-resume
eval "$(efp --store "$W/store" "$R/edge/one:1.0")" >/dev/null || setup_failed "resume base"
L=$(layer_of "$W/store" "$R/edge/one:1.0")
mv "$W/store/blobs/sha256/$L" "$W/store/ingest/$L.part"
truncate -s $(($(stat -c %s "$W/store/ingest/$L.part") / 2)) "$W/store/ingest/$L.part"
rm "$W/store/images.json"
explore "resumed pull" "$W" "$(efp --store "$W/store" "$R/edge/one:1.0") >/dev/null"

# 4. gc of a store where a name has moved on to another image
W=$T/w-gc
eval "$(efp --store "$W/store" "$R/edge/gc:1.0")" >/dev/null || setup_failed "gc base"
push "$T/gcb:1.0" "$R/edge/gc:1.0" --dest-creds "$CR"
eval "$(efp --store "$W/store" "$R/edge/gc:1.0")" >/dev/null || setup_failed "gc base"
explore "gc" "$W" "$EF gc --store $W/store >/dev/null"

# 5. a zstd:chunked partial pull: v2 rebuilt from v1's chunks in the store
W=$T/w-partial
eval "$(efp --store "$W/store" "$R/edge/chunked:v1")" >/dev/null || setup_failed "partial base"
explore "zstd:chunked partial pull" "$W" "$(efp --store "$W/store" "$R/edge/chunked:v2") >/dev/null"
check "zstd:chunked partial pull: it was a partial pull (a rebuild journal was written)" \
	grep -q '\.partial\.journal"' "$W.explore/ops.jsonl"

# 6. a site cache's fills: edgefetch serve fetching misses from the registry
W=$T/w-cache
mkdir -p "$W"
SP=$(free_port)
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/one:1.0")
{
	echo '#!/usr/bin/env bash'
	echo '# serve, fetch the image through it, stop it'
	echo "$EF serve --listen 127.0.0.1:$SP --store $W/store --origin $R --creds $CR --ca-file $T/ca/ca.crt >/dev/null 2>>$T/serve.err &"
	echo 'pid=$!'
	echo 'trap "kill $pid 2>/dev/null; wait $pid" EXIT'
	echo "for _ in \$(seq 100); do curl -s -o /dev/null http://127.0.0.1:$SP/v2/ && break; sleep 0.05; done"
	echo "curl -sSf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://127.0.0.1:$SP/v2/edge/one/manifests/1.0 2>>$T/fill.err || exit 1"
	for d in $(jq -r '.config.digest, .layers[].digest' <<<"$RAW"); do
		# a client tries again when a blob ends short (as docker and containerd do; curl
		# truncates its output file first, which it cannot do to /dev/null)
		echo "curl -sSf --retry 2 --retry-all-errors --retry-delay 0 -o $T/fill.blob http://127.0.0.1:$SP/v2/edge/one/blobs/$d 2>>$T/fill.err || exit 1"
	done
} >"$T/fill.sh"
chmod +x "$T/fill.sh"
# the cache records a manifest when it is asked for, its blobs as they are
explore "site-cache fill" "$W" "$T/fill.sh" --lazy-records

# The states the explorer found before the fixes, as regression cases.
W=$T/r-zeros
eval "$(efp --store "$W/store" "$R/edge/one:1.0")" >/dev/null || setup_failed "zeros base"
L=$(layer_of "$W/store" "$R/edge/one:1.0")
size=$(stat -c %s "$W/store/blobs/sha256/$L")
rm "$W/store/blobs/sha256/$L" "$W/store/images.json"
truncate -s "$size" "$W/store/ingest/$L.part" # full length, zeros: written, never synced
run 0 "a .part at its full length with zeros inside (a cut before its fsync): the pull fetches it again" \
	$EF pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$W/store" "$R/edge/one:1.0"
check "a .part at its full length with zeros inside: the blob is right" \
	test "$(sha256sum <"$W/store/blobs/sha256/$L" | cut -c1-64)" = "$L"
check "a .part at its full length with zeros inside: nothing of it is left in ingest/" \
	test -z "$(ls -A "$W/store/ingest")"

# The order of the durable steps, read from the recorder's log of one pull.
W=$T/r-order
mkdir -p "$W"
FSREC_ROOT=$W FSREC_LOG=$T/order.log LD_PRELOAD=$FSREC_SO $EF pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" \
	--store "$W/store" --output "oci:$W/oci" "$R/edge/one:1.0" >/dev/null 2>"$T/err"
seq_of() { jq -r --arg op "$1" --arg p "$2" 'select(.op == $op and (.path2 // .path) == $p) | .seq' "$T/order.log" | head -1; }
first_rename_into() { jq -r --arg d "$1/" 'select(.op == "rename" and (.path2 | startswith($d))) | .seq' "$T/order.log" | head -1; }
last_link_into() { jq -r --arg d "$1/" 'select((.op == "link" or .op == "rename") and (.path2 | startswith($d))) | .seq' "$T/order.log" | tail -1; }
fsync_after() { # fsync_after DIR SEQ: the first fsync of DIR after SEQ
	jq -r --arg p "$1" --argjson s "$2" 'select(.op == "fsync" and .path == $p and .seq > $s) | .seq' "$T/order.log" | head -1
}
ix=$(seq_of rename "$W/oci/index.json")
lk=$(last_link_into "$W/oci/blobs/sha256")
fs=$(fsync_after "$W/oci/blobs/sha256" "${lk:-0}")
check "an OCI layout: its blobs' directory is fsynced after the last blob and before index.json is renamed in" \
	test -n "$ix" -a -n "$fs" -a "${fs:-0}" -lt "${ix:-0}"
md=$(seq_of mkdir "$W/store/blobs/sha256")
fs=$(fsync_after "$W/store/blobs" "${md:-0}")
br=$(first_rename_into "$W/store/blobs/sha256")
check "a new store: blobs/sha256 is fsynced into blobs/ before the first blob is renamed into it" \
	test -n "$md" -a -n "$fs" -a -n "$br" -a "${fs:-0}" -lt "${br:-0}"
md=$(seq_of mkdir "$W/oci")
fs=$(fsync_after "$W" "${md:-0}")
check "a new OCI layout directory is fsynced into its parent before index.json is renamed in" \
	test -n "$md" -a -n "$fs" -a "${fs:-0}" -lt "${ix:-0}"
check "the --output probe leaves no file beside the layout" \
	test "$(ls -A "$W")" = "$(printf 'oci\nstore')"

# What a crash leaves, and what start-up and gc remove.
W=$T/r-left
eval "$(efp --store "$W/store" "$R/edge/one:1.0")" >/dev/null || setup_failed "leftovers base"
L=$(layer_of "$W/store" "$R/edge/one:1.0")
S=$W/store
old() { touch -d '2 hours ago' "$@"; }
echo x >"$S/.images.json.0123456789ab.tmp" && old "$S/.images.json.0123456789ab.tmp"
echo x >"$S/ingest/.$L.ba9876543210.tmp" && old "$S/ingest/.$L.ba9876543210.tmp"
echo x >"$S/ingest/.$L.a1a1a1a1a1a1.tmp" # a running pull's, seconds old
cp "$S/blobs/sha256/$L" "$S/ingest/$L.part" && old "$S/ingest/$L.part" # its blob is in the store
printf '0-10\n' >"$S/ingest/$(printf '%064d' 7).ranges"                 # a record without its .part
mkdir -p "$S/handoff-Ab12Cd/$R" && echo x >"$S/handoff-Ab12Cd/$R/hosts.toml" && old "$S/handoff-Ab12Cd/$R" "$S/handoff-Ab12Cd"
run 0 "gc after a crash's leftovers" $EF gc --store "$S"
check "gc: says what the crash left and it removed" grep -q "removed what a crash left: 2 temporary files, 1 partial downloads, 1 piece records, 1 handoff directories" "$T/out"
check "gc: a temporary of a running pull (seconds old) is kept" test -e "$S/ingest/.$L.a1a1a1a1a1a1.tmp"
check "gc: the images are whole after it" \
	test "$(sha256sum <"$S/blobs/sha256/$L" | cut -c1-64)" = "$L"
cp "$S/blobs/sha256/$L" "$S/ingest/$L.part" && old "$S/ingest/$L.part"
flock "$S/ingest/$L.part" sleep 3 &
holder=$!
sleep 0.3
run 0 "gc while a pull holds a .part" $EF gc --store "$S"
check "gc: a .part a running pull holds (locked) is kept" test -e "$S/ingest/$L.part"
wait "$holder"

echo
cat "$T/table"
echo
[ -d "$T/failures" ] && ls "$T/failures" >&2
finish
