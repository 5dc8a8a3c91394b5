#!/usr/bin/env bash
# Fault tests of the transfer engine: the real registry behind a proxy of
# ours that slows, cuts, refuses and forgets, plus SIGKILL, a registry
# restart, a full filesystem and two pulls at once.  Every case must end
# with the right image or the right exit code, and never with an
# unverified blob in the store.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

export EDGEFETCH_RETRY_BASE_MS=100
setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/mid" --tag 1.0 --note mid --random-mb 16 --random-mb 16 --random-mb 16 --random-mb 16 >/dev/null
python3 "$M" image "$T/kb" --tag 1.0 --note kb --random-kb 16 >/dev/null
python3 "$M" image "$T/tiny" --tag 1.0 --busybox >/dev/null
PR=$(free_port) PP=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
push "$T/mid:1.0" "$R/edge/mid:1.0" --dest-creds "$CR"
push "$T/kb:1.0" "$R/edge/kb:1.0" --dest-creds "$CR"
push "$T/tiny:1.0" "$R/edge/tiny:1.0" --dest-creds "$CR"

echo '{}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >"$T/proxy.log" 2>&1 &
PIDS+=($!)
wait_port "$PP" || setup_failed proxy
P=127.0.0.1:$PP

ctl() { echo "$1" >"$T/control"; }
stat_of() { jq -r --arg k "$1" '.[$k] // 0' "$T/stats" 2>/dev/null || echo 0; }
blob_bytes() { stat_of blob_bytes; }
# image_size NAME: config + layers, from the registry
image_size() { skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | jq '[.config.size] + [.layers[].size] | add'; }
# store_ok DIR: every blob under blobs/ hashes to its name
store_ok() { (cd "$1/blobs/sha256" 2>/dev/null || exit 0; for f in *; do [ -e "$f" ] || continue; [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done); }
efp() { "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
# ingest_bytes DIR: bytes of partial blobs; stored_bytes DIR: partial and complete
ingest_bytes() { local n; n=$(du -sb "$1/ingest" 2>/dev/null | cut -f1); echo "${n:-0}"; }
stored_bytes() { local n; n=$(du -sb "$1/blobs" 2>/dev/null | cut -f1); echo $((${n:-0} + $(ingest_bytes "$1"))); }
MID=$(image_size mid)

# ---- SIGKILL half way, then resume ----
S=$T/s-kill
ctl '{"link_rate": 4000000}' # one link: the record lags the bytes by a second of it at most
# exec: $! is edgefetch itself (a backgrounded shell function would be a
# subshell, and killing it would leave edgefetch running)
(exec "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$S" "$P/edge/mid:1.0") >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ "$(stored_bytes "$S")" -gt $((MID / 2)) ] && break; sleep 0.1; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
before=$(stored_bytes "$S")
check "SIGKILL: the pull was half way ($before of $MID on disk)" [ "$before" -gt $((MID / 3)) -a "$before" -lt "$MID" ]
check "SIGKILL: partial bytes kept on disk" [ "$(ingest_bytes "$S")" -gt 100000 ]
check "SIGKILL: every blob in the store verifies" store_ok "$S"
ctl '{}'
run 0 "SIGKILL: the next pull completes" efp --store "$S" --json "$P/edge/mid:1.0"
total=$(blob_bytes)
check "SIGKILL: the resumed pull re-used the bytes on disk" [ "$(jq -r .bytes_reused "$T/out")" -gt 100000 ]
check "SIGKILL: bytes fetched in all / image size <= 1.10 ($total / $MID)" [ $((total * 100)) -le $((MID * 110)) ]
check "SIGKILL: store verifies" store_ok "$S"
check "SIGKILL: no partial left" [ -z "$(ls "$S/ingest")" ]

# ---- the registry goes away mid-blob and comes back ----
S=$T/s-restart
ctl '{"rate": 8000000}'
EDGEFETCH_ATTEMPTS=10 efp --store "$S" "$P/edge/mid:1.0" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1.5
check "registry restart: the pull was under way" [ "$(stored_bytes "$S")" -gt 0 ]
kill "$reg_PID"
wait "$reg_PID" 2>/dev/null
sleep 1.5
docker-registry serve "$T/reg/config.yml" >>"$T/reg/log" 2>&1 &
reg_PID=$!
PIDS+=($!)
wait_port "$PR"
ctl '{}'
wait "$pid"
rc=$?
check "registry restart mid-blob: the pull completes (exit $rc)" [ "$rc" = 0 ]
check "registry restart: store verifies" store_ok "$S"
check "registry restart: image complete (manifest, config, 5 layers)" [ "$(ls "$S/blobs/sha256" | wc -l)" = 7 ]

# ---- connections cut mid-body ----
S=$T/s-cut
b0=$(blob_bytes)
ctl '{"cut_after": 200000, "cut_count": 3}'
run 0 "connection cut mid-body three times: the pull completes" efp --store "$S" "$P/edge/mid:1.0"
check "cuts: three were made" [ "$(stat_of cuts)" = 3 ]
check "cuts: resumed with Range" [ "$(stat_of range_requests)" -ge 3 ]
b1=$(blob_bytes)
check "cuts: bytes fetched / image size <= 1.10" [ $(((b1 - b0) * 100)) -le $((MID * 110)) ]
check "cuts: store verifies" store_ok "$S"

# ---- a server that ignores Range ----
S=$T/s-range
ctl '{"rate": 8000000}'
# exec: $! is edgefetch itself (a backgrounded shell function would be a
# subshell, and killing it would leave edgefetch running)
(exec "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$S" "$P/edge/mid:1.0") >/dev/null 2>&1 &
pid=$!
sleep 1.5
kill -9 "$pid"
wait "$pid" 2>/dev/null
check "Range ignored: partial bytes before" [ "$(ingest_bytes "$S")" -gt 100000 ]
ctl '{"ignore_range": true}'
run 0 "Range ignored (200 instead of 206): the pull completes" efp --store "$S" --output "oci:$T/o-range" "$P/edge/mid:1.0"
check "Range ignored: store verifies" store_ok "$S"
skopeo copy -q --src-creds "$CR" --src-cert-dir "$T/skcerts" "docker://$R/edge/mid:1.0" "oci:$T/s-mid:1.0" >/dev/null
check "Range ignored: same blobs as skopeo's" diff <(ls "$T/o-range/blobs/sha256") <(ls "$T/s-mid/blobs/sha256")

# ---- 429 with Retry-After ----
ctl '{"status429": 2, "retry_after": 1}'
start=$(date +%s%N)
run 0 "429 with Retry-After: the pull completes" efp --store "$T/s-429" "$P/edge/tiny:1.0"
ms=$((($(date +%s%N) - start) / 1000000))
check "429: both were answered" [ "$(stat_of 429s)" = 2 ]
check "429: Retry-After was honoured (${ms} ms >= 1000)" [ "$ms" -ge 1000 ]

# ---- a slow link, and a dead one ----
ctl '{"rate": 3072}'
slow_pull() { EDGEFETCH_STALL_SECS=3 efp "$@"; }
stalled_pull() { EDGEFETCH_STALL_SECS=2 EDGEFETCH_ATTEMPTS=2 efp "$@"; }
run 0 "3 KiB/s link: the pull completes (stall limit 3 s)" slow_pull --store "$T/s-slow" "$P/edge/kb:1.0"
check "slow link: store verifies" store_ok "$T/s-slow"
ctl '{"rate": 200}'
run 6 "200 B/s link: a stall, not a hang (exit 6)" stalled_pull --store "$T/s-stall" "$P/edge/kb:1.0"
check "stall: one line on stderr" [ "$(wc -l <"$T/err")" = 1 ]
check "stall: nothing unverified in the store" store_ok "$T/s-stall"

# ---- two pulls of the same image at once ----
ctl '{"rate": 30000000}'
S=$T/s-two
b0=$(blob_bytes)
efp --store "$S" "$P/edge/mid:1.0" >"$T/out1" 2>&1 &
p1=$!
efp --store "$S" "$P/edge/mid:1.0" >"$T/out2" 2>&1 &
p2=$!
wait "$p1"
r1=$?
wait "$p2"
r2=$?
b1=$(blob_bytes)
check "two pulls at once: both succeed ($r1, $r2)" [ "$r1" = 0 -a "$r2" = 0 ]
check "two pulls at once: each blob fetched once ($((b1 - b0)) bytes for $MID)" [ $(((b1 - b0) * 100)) -le $((MID * 105)) ]
check "two pulls at once: store verifies" store_ok "$S"
ctl '{}'

# ---- a full disk ----
if mkdir -p "$T/fs" && mount -t tmpfs -o size=8m tmpfs "$T/fs" 2>/dev/null; then
	MOUNTED=$T/fs
	run 7 "8 MB filesystem: refused up front (exit 7)" efp --store "$T/fs/store" "$P/edge/mid:1.0"
	check "full disk: the error says how much is needed" grep -q "not enough space" "$T/err"
	check "full disk: no blob of the image in the store" [ "$(ls "$T/fs/store/blobs/sha256" | wc -l)" -le 1 ]
	mount -o remount,size=$((MID / 1048576 + 8))m "$T/fs"
	ctl '{"rate": 12000000}'
	efp --store "$T/fs/store" "$P/edge/mid:1.0" >"$T/out" 2>"$T/err" &
	pid=$!
	sleep 1
	dd if=/dev/zero of="$T/fs/filler" bs=1M count=$((MID / 1048576 + 8)) 2>/dev/null
	wait "$pid"
	rc=$?
	check "disk fills mid-pull: exit 7 ($rc)" [ "$rc" = 7 ]
	check "disk fills mid-pull: says disk full" grep -q "disk full" "$T/err"
	check "disk fills mid-pull: every blob in the store verifies" store_ok "$T/fs/store"
	rm -f "$T/fs/filler"
	ctl '{}'
	run 0 "disk freed: a later pull completes" efp --store "$T/fs/store" "$P/edge/mid:1.0"
	check "disk freed: store verifies" store_ok "$T/fs/store"
	umount "$T/fs"
else
	skip "full-disk cases: cannot mount a tmpfs here (not root?)"
fi

# ---- credentials never follow a redirect to another host ----
PS=$(free_port)
echo '{}' >"$T/control2"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PS" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control2" --stats "$T/stats2" --inject-auth "$CR" >"$T/proxy2.log" 2>&1 &
PIDS+=($!)
wait_port "$PS" || setup_failed storage proxy
ctl "{\"redirect_blobs\": \"https://localhost:$PS\"}"
run 0 "blobs redirected to another host (a storage URL): the pull completes" efp --store "$T/s-redir" "$P/edge/kb:1.0"
check "redirect: the blobs came from the other host" [ "$(jq -r '.blob_requests // 0' "$T/stats2")" -ge 2 ]
check "redirect: no credentials were sent to it" [ "$(jq -r '.client_auth // 0' "$T/stats2")" = 0 ]
check "redirect: the registry host did get them" [ "$(stat_of client_auth)" -gt 0 ]
check "redirect: store verifies" store_ok "$T/s-redir"
ctl '{"redirect_blobs": "http://localhost:1"}'
run 6 "a redirect to plain http is refused" efp --store "$T/s-redir2" "$P/edge/tiny:1.0"
ctl '{}'

# ---- gc ----
S=$T/s-gc
efp --store "$S" "$P/edge/tiny:1.0" >/dev/null 2>&1
efp --store "$S" "$P/edge/kb:1.0" >/dev/null 2>&1
echo stray >"$T/stray"
cp "$T/stray" "$S/blobs/sha256/$(sha256sum <"$T/stray" | cut -c1-64)"
run 0 "gc: runs" "$EF" gc --store "$S"
check "gc: removed the stray blob only" grep -q "^removed 1 blobs" "$T/out"
run 0 "gc: images still complete (nothing fetched)" efp --store "$S" --json "$P/edge/tiny:1.0"
check "gc: tiny needs no bytes" [ "$(jq -r .bytes_fetched "$T/out")" = 0 ]
push "$T/kb:1.0" "$R/edge/tiny:1.0" --dest-creds "$CR" # the tag moves to another image
efp --store "$S" "$P/edge/tiny:1.0" >/dev/null 2>&1
run 0 "gc after a tag moved" "$EF" gc --store "$S"
check "gc: the old image's 3 blobs went" grep -q "^removed 3 blobs" "$T/out"
check "gc: store verifies" store_ok "$S"

finish
