#!/usr/bin/env bash
# Partial pulls of zstd:chunked layers made by skopeo: v1 of a service is
# pulled, then v2, in which 2 of 40 files of 1 MiB changed.  The real
# registry, behind our proxy (which counts and can strip Range), and the
# result handed to a real podman.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

export EDGEFETCH_RETRY_BASE_MS=100
setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
for v in v1 v2; do
	python3 "$M" image "$T/$v" --tag 1.0 --busybox --note "$v" --files 40:1024 --vary 3,17 >/dev/null
done
PR=$(free_port) PP=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
for v in v1 v2; do
	push "$T/$v:1.0" "$R/edge/app:$v" --dest-creds "$CR" --dest-compress-format zstd:chunked || setup_failed push $v
done
echo '{}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >"$T/proxy.log" 2>&1 &
PIDS+=($!)
wait_port "$PP" || setup_failed proxy
P=127.0.0.1:$PP
ctl() { echo "$1" >"$T/control"; }
efp() { "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:v2")
DATA=$(jq -r '.layers[-1].digest' <<<"$RAW") DSIZE=$(jq -r '.layers[-1].size' <<<"$RAW")
layer() { jq --arg d "$DATA" '.layers[] | select(.digest == $d)' "$T/out" 2>/dev/null; }
# bytes_fetched and bytes_reused of the data layer in the last --json; a
# pull that printed none reads as "everything fetched, nothing reused"
fetched() { local n; n=$(layer | jq .bytes_fetched); echo "${n:-999999999999}"; }
reused() { local n; n=$(layer | jq .bytes_reused); echo "${n:-0}"; }
blob_ok() { [ "$(sha256sum <"$1/blobs/sha256/${DATA#sha256:}" | cut -c1-64)" = "${DATA#sha256:}" ]; }
update_checks() { # update_checks LABEL STORE: the last --json was a v2 pulled after v1
	local f r
	f=$(fetched) r=$(reused)
	check "$1: the changed layer cost $f bytes on the wire of $DSIZE (<= 0.15 x)" [ $((f * 100)) -le $((DSIZE * 15)) ]
	check "$1: $r bytes of it reused from v1" [ "$r" -gt $((DSIZE / 2)) ]
	check "$1: the rebuilt layer hashes to its digest" blob_ok "$2"
}

check "the data layer is zstd:chunked with a TOC" jq -e '.layers[-1].annotations | keys | map(select(test("zstd-chunked.manifest-position"))) | length == 1' <<<"$RAW"

# ---- v1, then v2 into the same store ----
run 0 "v1 pulled whole" efp --store "$T/s" "$P/edge/app:v1"
run 0 "v2 into the same store: a partial pull" efp --store "$T/s" --json "$P/edge/app:v2"
update_checks "v2" "$T/s"
check "v2: no partial file left" [ -z "$(ls "$T/s/ingest" 2>/dev/null)" ]

# ---- a range cut half way goes on from where it stopped ----
run 0 "cut range: v1 first" efp --store "$T/c" "$P/edge/app:v1"
ctl '{"cut_after": 300000, "cut_count": 1}'
run 0 "cut range: v2 still rebuilt" efp --store "$T/c" --json "$P/edge/app:v2"
check "cut range: the proxy cut one answer ($(jq '.cuts // 0' "$T/stats"))" [ "$(jq '.cuts // 0' "$T/stats")" = 1 ]
f=$(fetched)
check "cut range: resumed, not fetched again: $f bytes (<= 0.15 x)" [ $((f * 100)) -le $((DSIZE * 15)) ]
check "cut range: the rebuilt layer hashes to its digest" blob_ok "$T/c"
ctl '{}'

# ---- a partial pull killed half way: the next run fetches only the rest ----
run 0 "SIGKILL: v1 first" efp --store "$T/k" "$P/edge/app:v1"
ctl '{"rate": 400000}'
b0=$(jq '.blob_bytes // 0' "$T/stats")
(exec "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$T/k" "$P/edge/app:v2") >/dev/null 2>&1 & # $! is edgefetch
pid=$!
journal() { local f=$T/k/ingest/${DATA#sha256:}.partial.journal; [ -e "$f" ] && [ "$(wc -l <"$f")" -ge 2 ]; }
for _ in $(seq 200); do journal && break; sleep 0.05; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
check "SIGKILL: the rebuild had a range on disk when it was killed" journal
ctl '{}'
run 0 "SIGKILL: the next pull completes the rebuild" efp --store "$T/k" --json "$P/edge/app:v2"
total=$(($(jq '.blob_bytes // 0' "$T/stats") - b0))
check "SIGKILL: both runs together fetched $total bytes (<= 0.15 x the layer)" [ $((total * 100)) -le $((DSIZE * 15)) ]
check "SIGKILL: the second run took what the first left ($(reused) bytes reused)" [ "$(reused)" -gt $((DSIZE / 2 + 1000000)) ]
check "SIGKILL: the rebuilt layer hashes to its digest" blob_ok "$T/k"
check "SIGKILL: nothing left in ingest" [ -z "$(ls "$T/k/ingest" 2>/dev/null)" ]

# ---- the rate cap and the mirrors of hosts.toml hold for the ranges too ----
run 0 "rate cap: v1 first" efp --store "$T/rc" "$R/edge/app:v1"
t0=$(date +%s%3N)
run 0 "rate cap: v2 with --limit-rate 512K" efp --store "$T/rc" --json --limit-rate 512K "$R/edge/app:v2"
t1=$(date +%s%3N) f=$(fetched)
check "rate cap: $f bytes took $((t1 - t0)) ms, at least what 512 KiB/s allows" [ $((t1 - t0)) -ge $((f * 1000 / 524288 * 90 / 100)) ]
mkdir -p "$T/mc/$R"
cp "$T/ca/ca.crt" "$T/mc/$R/ca.crt"
printf '[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n' "$P" >"$T/mc/$R/hosts.toml"
run 0 "mirror: v1 from the registry" efp --store "$T/mi" "$R/edge/app:v1"
r0=$(jq '.range_requests // 0' "$T/stats") b0=$(jq '.blob_bytes // 0' "$T/stats")
# the mirror (our proxy in front of the same registry) has credentials of its own in the auth file
printf '{"auths":{"%s":{"auth":"%s"}}}' "$P" "$(printf %s "$CR" | base64)" >"$T/mirror-auth.json"
run 0 "mirror: v2 through the mirror of hosts.toml" "$EF" pull --quiet --certs-dir "$T/mc" --creds "$CR" \
	--auth-file "$T/mirror-auth.json" --store "$T/mi" --json "$R/edge/app:v2"
check "mirror: the ranges went to the mirror ($(($(jq '.range_requests // 0' "$T/stats") - r0)) range requests)" \
	[ "$(jq '.range_requests // 0' "$T/stats")" -gt "$((r0 + 1))" ]
f=$(($(jq '.blob_bytes // 0' "$T/stats") - b0))
check "mirror: it sent $f bytes for the update (<= 0.15 x the layer)" [ "$f" -gt 0 -a $((f * 100)) -le $((DSIZE * 15)) ]
check "mirror: intact" blob_ok "$T/mi"
check "mirror: --json names the mirror as the layer's source" [ "$(layer | jq -r .source)" = "$P" ]

# ---- no cheating: into an empty store the layer is fetched whole ----
run 0 "v2 into an empty store" efp --store "$T/e" --json "$P/edge/app:v2"
check "empty store: the whole layer fetched ($(fetched) of $DSIZE), nothing reused" \
	[ "$(fetched)" -ge "$DSIZE" -a "$(fetched)" -lt 999999999999 -a "$(reused)" = 0 ]

# ---- a registry (here a proxy) that ignores Range: one plain fetch of the layer, at most ----
run 0 "ignore Range: v1 first" efp --store "$T/n" "$P/edge/app:v1"
ctl '{"ignore_range": true}'
b0=$(jq '.blob_bytes // 0' "$T/stats")
run 0 "ignore Range: v2 still pulls" efp --store "$T/n" --json "$P/edge/app:v2"
f=$(($(jq '.blob_bytes // 0' "$T/stats") - b0)) # what the proxy sent, the config too
check "ignore Range: the proxy sent $f bytes for a layer of $DSIZE (<= 1.05 x)" \
	[ "$f" -ge "$DSIZE" -a $((f * 100)) -le $((DSIZE * 105)) ]
check "ignore Range: intact" blob_ok "$T/n"
ctl '{}'

# ---- a rebuild that does not hash (the base's bytes differ): fetched whole, nothing wrong kept ----
run 0 "bad base: v1 first" efp --store "$T/b" "$P/edge/app:v1"
V1DATA=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:v1" | jq -r '.layers[-1].digest')
printf 'X' | dd of="$T/b/blobs/sha256/${V1DATA#sha256:}" bs=1 seek=5000 conv=notrunc status=none
run 0 "bad base: v2 still pulls" efp --store "$T/b" --json "$P/edge/app:v2"
check "bad base: the layer was fetched whole after the rebuild failed" [ "$(fetched)" -ge "$DSIZE" -a "$(fetched)" -lt 999999999999 ]
check "bad base: the layer in the store hashes to its digest" blob_ok "$T/b"

# ---- eStargz, made by ctr-remote (stargz-snapshotter) from the same images ----
for v in v1 v2; do push_estargz "$T/$v:1.0" "$R/edge/esgz:$v" --dest-creds "$CR" || setup_failed "eStargz $v"; done
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/esgz:v2")
DATA=$(jq -r '.layers[-1].digest' <<<"$RAW") DSIZE=$(jq -r '.layers[-1].size' <<<"$RAW")
check "eStargz: the data layer carries a TOC digest" jq -e '.layers[-1].annotations["containerd.io/snapshot/stargz/toc.digest"]' <<<"$RAW"
run 0 "eStargz: v1 pulled whole" efp --store "$T/g" "$P/edge/esgz:v1"
run 0 "eStargz: v2 into the same store" efp --store "$T/g" --json "$P/edge/esgz:v2"
update_checks "eStargz v2" "$T/g"
run 0 "eStargz: v2 into an empty store" efp --store "$T/ge" --json "$P/edge/esgz:v2"
check "eStargz, empty store: the whole layer fetched, nothing reused" \
	[ "$(fetched)" -ge "$DSIZE" -a "$(fetched)" -lt 999999999999 -a "$(reused)" = 0 ]
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:v2")
DATA=$(jq -r '.layers[-1].digest' <<<"$RAW") DSIZE=$(jq -r '.layers[-1].size' <<<"$RAW")

# ---- through a runtime: the layer with a TOC stays for the next update, which runs ----
start_podman "$T/podman" || setup_failed podman
run 0 "handoff: v1 to podman" efp --store "$T/h" --runtime "podman:$PODMAN_SOCK" "$P/edge/app:v1"
check "handoff: v1's zstd:chunked layer stays in the store, the base of the next update" \
	[ -f "$T/h/blobs/sha256/${V1DATA#sha256:}" ]
run 0 "handoff: v2 to podman, rebuilt from v1's chunks" \
	efp --store "$T/h" --runtime "podman:$PODMAN_SOCK" --json "$P/edge/app:v2"
f=$(fetched)
check "handoff v2: the changed layer cost $f bytes of $DSIZE (<= 0.15 x)" [ $((f * 100)) -le $((DSIZE * 15)) ]
check "podman runs v2" $PODMAN $PODMAN_RUN "$P/edge/app:v2" cat /etc/edgefetch-note

pre_cleanup() { umount_T; }
finish
