#!/usr/bin/env bash
# The link emulator (tests/link.py) that the thin-link tests and the bench
# stand on: what crosses it arrives whole, at about its rate and delay; its
# loss, outages and resets happen; it leaves no namespace behind.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

mkdir -p "$T/www"
head -c 4000000 /dev/urandom >"$T/www/blob"
SUM=$(sha256sum <"$T/www/blob" | cut -c1-64)
PW=$(free_port)
"$PY" -m http.server "$PW" --bind 127.0.0.1 --directory "$T/www" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PW" || setup_failed http server
# link NAME ARGS...: a link to the web server; sets LP (its port) and LPID
link() {
	local name=$1
	shift
	LP=$(free_port)
	"$PY" "$TOP/tests/link.py" --listen "$LP" --target "127.0.0.1:$PW" --name "t$$$name" --stats "$T/$name.json" "$@" \
		>"$T/$name.log" 2>&1 &
	LPID=$!
	PIDS+=($LPID)
	wait_port "$LP"
}
stop_link() { kill "$LPID" && wait "$LPID"; }
fetch() { curl -s --max-time 120 -o "$T/got" -w '%{time_total}' "http://127.0.0.1:$LP/blob"; }

link plain --rate 20mbit --delay 20ms --cc cubic
t=$(fetch)
check "20 Mbit/s: 4 MB arrive whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
# 3.2 Mbit at 20 Mbit/s is 1.6 s; slow start over 40 ms adds a little
check "20 Mbit/s: the rate holds ($t s for 4 MB, at least 1.5 s, at most 4 s)" \
	awk -v t="$t" 'BEGIN {exit !(t >= 1.5 && t <= 4)}'
stop_link
check "the link counts what it carried (at least the 4 MB, as packets and as TCP payload)" [ "$(jq ".carried.b_to_a" "$T/plain.json")" -ge 4000000 -a "$(jq ".payload.b_to_a" "$T/plain.json")" -ge 4000000 ]

link lossy --rate 20mbit --delay 20ms --loss 2% --cc cubic
fetch >/dev/null
check "2 % loss: the bytes still arrive whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
stop_link
check "2 % loss: packets were dropped" [ "$(jq '.dropped.loss' "$T/lossy.json")" -gt 0 ]

link flaky --rate 5mbit --delay 10ms --down 2/4 --cc cubic
fetch >/dev/null
check "down 2 s of every 4: the transfer completes, whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
stop_link
check "down 2 s of every 4: packets were dropped while down" [ "$(jq '.dropped.down' "$T/flaky.json")" -gt 0 ]

link resets --rate 5mbit --delay 10ms --down 2/4 --reset --cc cubic
curl -s --max-time 120 -o /dev/null "http://127.0.0.1:$LP/blob"
rc=$?
check "an outage with --reset resets the connection (curl exit $rc)" [ "$rc" = 56 ]
stop_link
# --inside: no relay; a client in namespace A reaches the target across the
# link itself, on its own socket (what the client sets reaches the link)
"$PY" "$TOP/tests/link.py" --inside --target "127.0.0.1:$PW" --name "t$$in" --rate 20mbit --delay 20ms --cc cubic \
	>"$T/inside.log" 2>&1 &
LPID=$!
PIDS+=($LPID)
for _ in $(seq 100); do grep -q "link up" "$T/inside.log" && break; sleep 0.1; done
(ip netns exec "efl-t$$in-a" curl -s --max-time 60 -o "$T/got" "http://10.213.0.2:9000/blob") &
cpid=$!
seen=
for _ in $(seq 100); do
	seen=$(ip netns exec "efl-t$$in-a" ss -tin "dst 10.213.0.2" 2>/dev/null | grep -o -w -E 'reno|cubic|bbr' | sort -u | tr '\n' ' ')
	[ -n "$seen" ] && break
	sleep 0.05
done
wait "$cpid"
check "--inside: a client in namespace A fetches across the link, whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
check "--inside: the client's own socket is on the link (ss in A: ${seen:-none})" [ -n "$seen" ]
check "--inside: the emulator listens on no port of the machine's own" bash -c '! ss -ltnp | grep -q "pid=$1,"' _ "$LPID"
stop_link
check "--inside: the link's namespaces are gone afterwards" bash -c '! ip netns list | grep -q "efl-t$1in-"' _ "$$"
# ---- segmented pulls across the link: the registry behind our fault proxy ----
setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
"$PY" "$M" image "$T/big" --tag 1.0 --note link-big --random-mb 16 >/dev/null
PR=$(free_port) PP=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
push "$T/big:1.0" "127.0.0.1:$PR/edge/big:1.0" --dest-creds "$CR"
echo '{}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "127.0.0.1:$PR" --cert "$T/ca/server.crt" \
	--key "$T/ca/server.key" --ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >"$T/proxy.log" 2>&1 &
PIDS+=($!)
wait_port "$PP" || setup_failed proxy
PW=$PP # the links below lead to the proxy
ctl() { echo "$1" >"$T/control"; }
stat_of() { jq -r --arg k "$1" '.[$k] // 0' "$T/stats" 2>/dev/null || echo 0; }
skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://127.0.0.1:$PR/edge/big:1.0" >"$T/big.json"
BIG=$(jq '.layers | max_by(.size) | .size' "$T/big.json")
LAYER=$(jq -r '.layers | max_by(.size) | .digest' "$T/big.json")
IMG=$(jq '[.config.size] + [.layers[].size] | add' "$T/big.json")
efl() { "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
# recorded DIR: bytes the record of the layer's pieces names
recorded() { jq '[.done[] | .[1] - .[0]] | add // 0' "$1/ingest/${LAYER#sha256:}.ranges" 2>/dev/null || echo 0; }
layer_ok() { [ "$(sha256sum <"$1/blobs/sha256/${LAYER#sha256:}" | cut -c1-64)" = "${LAYER#sha256:}" ]; }

link seg --rate 40mbit --delay 20ms --cc cubic
S=$T/s-kill
(exec "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$S" "127.0.0.1:$LP/edge/big:1.0") >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do [ "$(recorded "$S")" -gt $((BIG / 3)) ] && break; sleep 0.05; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
have=$(recorded "$S")
check "segmented, killed mid-way: its pieces are on record ($have of $BIG bytes)" [ "$have" -gt 0 -a "$have" -lt "$BIG" ]
check "segmented, killed mid-way: the record names pieces, not one prefix ($(jq -c '.done | length' "$S/ingest/${LAYER#sha256:}.ranges") ranges)" \
	[ "$(jq '.done | length' "$S/ingest/${LAYER#sha256:}.ranges")" -ge 1 ]
b0=$(stat_of blob_bytes)
run 0 "segmented, killed mid-way: the next pull completes" efl --store "$S" --json "127.0.0.1:$LP/edge/big:1.0"
b1=$(stat_of blob_bytes)
check "segmented resume: only the missing ranges were fetched ($((b1 - b0)) bytes for $((BIG - have)) missing of the layer)" \
	[ $((b1 - b0)) -ge $((BIG - have)) -a $((b1 - b0)) -le $((IMG - have)) ]
check "segmented resume: the bytes on record were re-used ($(jq .bytes_reused "$T/out"))" [ "$(jq .bytes_reused "$T/out")" -ge "$have" ]
check "segmented resume: the layer hashes to its name" layer_ok "$S"
check "segmented resume: no piece or record left" [ -z "$(ls "$S/ingest")" ]
check "segmented: it came over several connections at once ($(stat_of bodies_in_flight_max))" [ "$(stat_of bodies_in_flight_max)" -gt 1 ]

# a piece whose connection goes silent (lost by the link, no reset): dropped and
# taken again once the others have shown the link is up, not after the 30 s stall limit
ctl '{"hang_range": true}'
t0=$(date +%s)
run 0 "a piece whose connection goes silent: the pull completes" efl --store "$T/s-hang" "127.0.0.1:$LP/edge/big:1.0"
took=$(($(date +%s) - t0))
check "a silent piece: one hung ($(stat_of hangs)), and the pull did not wait out the stall limit (${took} s < 20 s)" \
	[ "$(stat_of hangs)" = 1 -a "$took" -lt 20 ]
check "a silent piece: the layer hashes to its name" layer_ok "$T/s-hang"

ctl '{"ignore_range": true}'
b0=$(stat_of blob_bytes)
run 0 "a registry that ignores Range: the pull completes" efl --store "$T/s-norange" "127.0.0.1:$LP/edge/big:1.0"
b1=$(stat_of blob_bytes)
check "a registry that ignores Range: each blob fetched once ($((b1 - b0)) bytes for $IMG)" [ $(((b1 - b0) * 100)) -le $((IMG * 102)) ]
check "a registry that ignores Range: the layer hashes to its name" layer_ok "$T/s-norange"

ctl '{"corrupt_ranges": true}'
b0=$(stat_of blob_bytes) c0=$(stat_of corrupted)
run 0 "ranges answered with wrong bytes: the pull completes in one stream" efl --store "$T/s-lies" "127.0.0.1:$LP/edge/big:1.0"
b1=$(stat_of blob_bytes)
check "ranges answered with wrong bytes: they were sent ($(($(stat_of corrupted) - c0)))" [ $(($(stat_of corrupted) - c0)) -gt 0 ]
check "ranges answered with wrong bytes: the layer hashes to its name" layer_ok "$T/s-lies"
check "ranges answered with wrong bytes: at most twice the image fetched ($((b1 - b0)) for $IMG)" [ $((b1 - b0)) -le $((IMG * 2 + 65536)) ]
ctl '{"corrupt": true}'
run 5 "every body wrong: exit 5" efl --store "$T/s-wrong" "127.0.0.1:$LP/edge/big:1.0"
check "every body wrong: one line says the digest did not match" grep -q "does not match its digest" "$T/err"
check "every body wrong: the layer is not in the store" [ ! -e "$T/s-wrong/blobs/sha256/${LAYER#sha256:}" ]
bad=$(grep -o 'blob sha256:[0-9a-f]*: content does not match' "$T/err" | cut -d: -f2 | cut -c1-64)
check "every body wrong: the blob that did not match kept no byte for a resume (${bad:-none named})" \
	[ -n "$bad" -a ! -e "$T/s-wrong/ingest/$bad.part" -a ! -e "$T/s-wrong/ingest/$bad.ranges" -a ! -e "$T/s-wrong/blobs/sha256/$bad" ]
ctl '{}'
# EDGEFETCH_TCP_CONGESTION: what the kernel offers is set on each socket; what it does not, refused
EDGEFETCH_TCP_CONGESTION=nope run 2 "EDGEFETCH_TCP_CONGESTION=nope: exit 2" efl --store "$T/s-cc" "127.0.0.1:$LP/edge/big:1.0"
check "EDGEFETCH_TCP_CONGESTION=nope: the error names what the kernel offers" grep -q "not one this kernel offers ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" "$T/err"
ctl '{"rate": 2000000}'
(EDGEFETCH_TCP_CONGESTION=reno exec "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" --store "$T/s-cc" "127.0.0.1:$LP/edge/big:1.0") >/dev/null 2>&1 &
pid=$!
seen=
for _ in $(seq 100); do
	seen=$(ss -tin "dport = :$LP" 2>/dev/null | grep -o -w -E 'reno|cubic|bbr' | sort -u | tr '\n' ' ')
	[ -n "$seen" ] && break
	sleep 0.1
done
wait "$pid"
rc=$?
ctl '{}'
check "EDGEFETCH_TCP_CONGESTION=reno: the pull's sockets use reno (${seen:-none seen}), the pull completes ($rc)" [ "$seen" = "reno " -a "$rc" = 0 ]
stop_link

link seg-flaky --rate 20mbit --delay 20ms --down 2/5 --reset --cc cubic
EDGEFETCH_RETRY_BASE_MS=200 run 0 "outages that reset every connection mid-pull: the pull completes" efl --store "$T/s-flaky" --json "127.0.0.1:$LP/edge/big:1.0"
check "outages mid-pull: the layer hashes to its name" layer_ok "$T/s-flaky"
stop_link
check "outages mid-pull: connections were reset ($(jq '.resets // 0' "$T/seg-flaky.json"))" [ "$(jq '.resets // 0' "$T/seg-flaky.json")" -gt 0 ]
check "no namespace of the links is left" bash -c '! ip netns list | grep -q "^efl-t$$"' _

finish
