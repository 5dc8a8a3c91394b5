#!/usr/bin/env bash
# make bench: edgefetch beside skopeo (and a plain curl of the same blobs)
# on the same multi-layer image from the same local TLS registry, in one run.
# Runs alternate, five each; medians are printed.
set -u
source "$(dirname "$0")/e2e/lib.sh"
RUNS=${RUNS:-5}
setup_pki bench bench-pass
CR=bench:bench-pass
M=$TOP/tests/e2e/mkimage.py
echo "building the test images ..." >&2
python3 "$M" image "$T/big" --tag 1.0 --busybox --note bench \
	--random-mb 64 --random-mb 64 --random-mb 80 --random-mb 96 >/dev/null
python3 "$M" image "$T/tiny" --tag 1.0 --busybox >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd
R=127.0.0.1:$PR
push "$T/big:1.0" "$R/edge/big:1.0" --dest-creds "$CR"
push "$T/tiny:1.0" "$R/edge/tiny:1.0" --dest-creds "$CR"
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/big:1.0")
SIZE=$(jq '[.config.size] + [.layers[].size] | add' <<<"$RAW")
NLAYERS=$(jq '.layers | length' <<<"$RAW")

measure() { # measure OUTFILE CMD...: appends "wall rss_kb"
	local out=$1
	shift
	/usr/bin/time -f "%e %M" -o "$T/time" "$@" >/dev/null 2>"$T/cmd.err" || { cat "$T/cmd.err" >&2; return 1; }
	cat "$T/time" >>"$out"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { cut -d' ' -f"$1" <"$2" | median; }

CURL_ARGS=()
for d in $(jq -r '.config.digest, .layers[].digest' <<<"$RAW"); do
	CURL_ARGS+=(-o /dev/null "https://$R/v2/edge/big/blobs/$d")
done

# The cost of edgefetch's fsyncs: the same pull with every fsync, fdatasync
# and sync_file_range made a no-op (a preloaded shim of the bench's own);
# and the store floor: curl writing the same blobs to files, then an fsync
# of each (coreutils sync FILE...), no hashing.
cat >"$T/nosync.c" <<'SHIM'
#define _GNU_SOURCE
#include <fcntl.h>
int fsync (int fd) { (void) fd; return 0; }
int fdatasync (int fd) { (void) fd; return 0; }
int sync_file_range (int fd, off64_t o, off64_t n, unsigned f) { (void) fd; (void) o; (void) n; (void) f; return 0; }
SHIM
cc -shared -fPIC -O1 -o "$T/nosync.so" "$T/nosync.c" || exit 1
FLOOR_ARGS=()
for d in $(jq -r '.config.digest, .layers[].digest' <<<"$RAW"); do
	FLOOR_ARGS+=(-o "$T/floordir/${d#sha256:}" "https://$R/v2/edge/big/blobs/$d")
done
FLOOR_CMD="curl -sSf --parallel --parallel-max 4 --cacert $T/ca/ca.crt -u $CR $(printf '%q ' "${FLOOR_ARGS[@]}") && sync $T/floordir/*"

: >"$T/ef" ; : >"$T/sk" ; : >"$T/curl" ; : >"$T/tinyrss" ; : >"$T/efns" ; : >"$T/floor"
for i in $(seq "$RUNS"); do
	echo "run $i/$RUNS ..." >&2
	rm -rf "$T/s-ef" "$T/o-ef" "$T/o-sk"
	sync
	measure "$T/ef" "$EF" pull --quiet --store "$T/s-ef" --ca-file "$T/ca/ca.crt" --creds "$CR" \
		--output "oci:$T/o-ef" "$R/edge/big:1.0" || exit 1
	sync
	measure "$T/sk" skopeo copy -q --src-creds "$CR" --src-cert-dir "$T/skcerts" \
		"docker://$R/edge/big:1.0" "oci:$T/o-sk:1.0" || exit 1
	measure "$T/curl" curl -sSf --parallel --parallel-max 4 --cacert "$T/ca/ca.crt" -u "$CR" "${CURL_ARGS[@]}" || exit 1
	rm -rf "$T/s-ns" "$T/o-ns" "$T/floordir"
	mkdir -p "$T/floordir"
	sync
	measure "$T/efns" env LD_PRELOAD="$T/nosync.so" "$EF" pull --quiet --store "$T/s-ns" --ca-file "$T/ca/ca.crt" \
		--creds "$CR" --output "oci:$T/o-ns" "$R/edge/big:1.0" || exit 1
	sync
	measure "$T/floor" bash -c "$FLOOR_CMD" || exit 1
	rm -rf "$T/s-tiny"
	measure "$T/tinyrss" "$EF" pull --quiet --store "$T/s-tiny" --ca-file "$T/ca/ca.crt" --creds "$CR" \
		"$R/edge/tiny:1.0" || exit 1
done

# Resume: kill a throttled pull half way, then finish it; count what crossed the wire.
PP=$(free_port)
echo '{"rate": 4000000}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PP"
rm -rf "$T/s-res"
"$EF" pull --quiet --store "$T/s-res" --ca-file "$T/ca/ca.crt" --creds "$CR" "127.0.0.1:$PP/edge/big:1.0" >/dev/null 2>&1 &
pid=$!
while [ "$(du -sb "$T/s-res" 2>/dev/null | cut -f1)" -lt $((SIZE / 2)) ] 2>/dev/null; do sleep 0.1; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
echo '{}' >"$T/control"
"$EF" pull --quiet --store "$T/s-res" --ca-file "$T/ca/ca.crt" --creds "$CR" "127.0.0.1:$PP/edge/big:1.0" >/dev/null
WIRE=$(jq .blob_bytes "$T/stats")

efw=$(col 1 "$T/ef") efr=$(col 2 "$T/ef") skw=$(col 1 "$T/sk") skr=$(col 2 "$T/sk")
cw=$(col 1 "$T/curl") tr=$(col 2 "$T/tinyrss") nsw=$(col 1 "$T/efns") flw=$(col 1 "$T/floor")
r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
cat <<TABLE

edgefetch bench: $((SIZE / 1048576)) MiB image, $NLAYERS layers, TLS + basic auth, loopback, medians of $RUNS runs
| measure                                   | edgefetch | skopeo copy oci: | curl (4 parallel) | ratio          | target  |
|-------------------------------------------|-----------|------------------|-------------------|----------------|---------|
| wall time, s                              | $efw | $skw | $cw | $(r "$efw" "$skw") x skopeo, $(r "$efw" "$cw") x curl | <= 0.7 x skopeo, <= 1.10 x curl |
| peak RSS, MB                              | $(r "$efr" 1024) | $(r "$skr" 1024) | | $(r "$efr" "$skr") x skopeo | <= 0.6 |
| peak RSS above the one-layer pull, MB     | $(r "$((efr - tr))" 1024) | | | | <= 2 |
| bytes fetched (killed half way + resumed) / image size | $(r "$WIRE" "$SIZE") | | | | <= 1.10 |
| wall time with every fsync a no-op, s     | $nsw | | | the fsyncs cost $(awk -v a="$efw" -v b="$nsw" 'BEGIN {printf "%.2f", a - b}') s | |
| store floor (curl to files + fsync each), s | $flw | | | $(r "$efw" "$flw") x the floor | <= 1.0 x the floor |
TABLE

# Hostile 4 MiB manifests of every shape beside a normal pull of the same
# small image from the same (then honest) registry: peak RSS, medians of 3.
hostile_rss() {
	local sc=$1 port i
	port=$(free_port)
	"$PY" "$TOP/tests/e2e/hostile.py" --port "$port" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
		--layout "$T/tiny" --scenario "$sc" >/dev/null 2>&1 &
	PIDS+=($!)
	wait_port "$port"
	: >"$T/h-$sc"
	for i in 1 2 3; do
		rm -rf "$T/s-h-$sc"
		/usr/bin/time -f "%M" -o "$T/time" "$EF" pull --quiet --store "$T/s-h-$sc" --ca-file "$T/ca/ca.crt" \
			"127.0.0.1:$port/edge/tiny:1.0" >/dev/null 2>&1
		tail -n 1 "$T/time" >>"$T/h-$sc" # after "Command exited with non-zero status 5"
	done
	median <"$T/h-$sc"
}
base=$(hostile_rss plain) worst=0 worst_sc=
for sc in zeros wide-index deep long-string many-keys padded; do
	v=$(hostile_rss "$sc")
	if [ "$v" -gt "$worst" ]; then worst=$v worst_sc=$sc; fi
done
echo "| peak RSS, the worst 4 MiB hostile manifest ($worst_sc) / a normal pull | $(r "$worst" "$base") | | | $(r "$worst" 1024) MB against $(r "$base" 1024) MB | <= 1.25 |"

# Pull and hand over to dockerd beside `docker pull`, and to containerd beside
# `ctr images pull`, of the same image, alternating (fewer runs: each takes seconds).
HRUNS=${HRUNS:-3}
RT=$T/rt
mkdir -p "$T/hosts/$R" "$T/dockercfg"
pre_cleanup() {
	if [ -n "${LINKED:-}" ]; then tc qdisc del dev lo root 2>/dev/null; fi
	rm -rf "/etc/docker/certs.d/$R"
	pkill -f "$RT/docker/exec" 2>/dev/null
	awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	return 0
}
start_dockerd "$RT"
start_containerd "$RT"
mkdir -p "/etc/docker/certs.d/$R"
cp "$T/ca/ca.crt" "/etc/docker/certs.d/$R/ca.crt" # docker pull trusts a registry CA only there
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$R" "$R" "$T/ca/ca.crt" >"$T/hosts/$R/hosts.toml"
wait_runtimes
D="$DOCKER --config $T/dockercfg"
C="ctr -a $CONTAINERD_SOCK -n bench"
$D login -u bench --password-stdin "$R" <<<"bench-pass" >/dev/null 2>&1
wall() { local s=$(date +%s%N); "$@" >/dev/null 2>"$T/cmd.err" || { cat "$T/cmd.err" >&2; return 1; }; echo "scale=2; ($(date +%s%N) - $s) / 1000000000" | bc; }
# handoffs TAG RUNS: pull + handoff beside the runtime's own pull, to dockerd
# and to containerd, alternating; wall times in $T/TAG-{ef-docker,docker,ef-ctr,ctr},
# the store's size after the last handoff in $T/TAG-store.
handoffs() {
	local tag=$1 i
	: >"$T/$tag-ef-docker"; : >"$T/$tag-docker"; : >"$T/$tag-ef-ctr"; : >"$T/$tag-ctr"
	for i in $(seq "$2"); do
		echo "handoff ($tag) run $i/$2 ..." >&2
		$D rmi -f "$R/edge/big:1.0" >/dev/null 2>&1; rm -rf "$T/s-h"
		wall "$EF" pull --quiet --store "$T/s-h" --ca-file "$T/ca/ca.crt" --creds "$CR" --runtime "docker:$RT/docker.sock" "$R/edge/big:1.0" >>"$T/$tag-ef-docker"
		$D rmi -f "$R/edge/big:1.0" >/dev/null 2>&1
		wall $D pull -q "$R/edge/big:1.0" >>"$T/$tag-docker"
		$C images ls -q | xargs -r $C images rm --sync >/dev/null 2>&1; rm -rf "$T/s-h"
		wall "$EF" pull --quiet --store "$T/s-h" --ca-file "$T/ca/ca.crt" --creds "$CR" --runtime "containerd:$CONTAINERD_SOCK:bench" "$R/edge/big:1.0" >>"$T/$tag-ef-ctr"
		du -sb "$T/s-h/blobs" | cut -f1 >"$T/$tag-store"
		$C images ls -q | xargs -r $C images rm --sync >/dev/null 2>&1
		wall $C images pull --hosts-dir "$T/hosts" --user "$CR" "$R/edge/big:1.0" >>"$T/$tag-ctr"
	done
}
# rows TAG LABEL: the two rows of a handoffs run
rows() {
	local d e c f
	d=$(median <"$T/$1-docker") e=$(median <"$T/$1-ef-docker") c=$(median <"$T/$1-ctr") f=$(median <"$T/$1-ef-ctr")
	echo "| ${2}pull + hand to dockerd, s (vs docker pull) | $e | | | $(r "$e" "$d") x docker pull ($d s) | <= 1.0 |"
	echo "| ${2}pull + hand to containerd, s (vs ctr images pull) | $f | | | $(r "$f" "$c") x ctr pull ($c s) | <= 1.0 |"
}
handoffs h "$HRUNS"
rows h ""
echo "| the store after the handoff / image size | $(r "$(cat "$T/h-store")" "$SIZE") | | | | <= 0.05 |"

# The same over a link the network bounds rather than the CPU, as on a device:
# the registry's answers cross 400 Mbit/s (an HTB class on loopback for its
# port only), for edgefetch and the runtimes alike.  Needs tc and a loopback
# without a qdisc of its own.
LINK=${LINK:-400mbit}
if [ "${LINKRUNS:-3}" -gt 0 ] && tc qdisc show dev lo 2>/dev/null | grep -q "noqueue" &&
	tc qdisc add dev lo root handle 1: htb default 10 r2q 1000 2>/dev/null; then
	LINKED=1
	tc class add dev lo parent 1: classid 1:10 htb rate 50gbit 2>/dev/null # (a quantum warning)
	tc class add dev lo parent 1: classid 1:20 htb rate "$LINK"
	tc filter add dev lo parent 1: protocol ip u32 match ip sport "$PR" 0xffff flowid 1:20
	handoffs l "${LINKRUNS:-3}"
	tc qdisc del dev lo root
	LINKED=
	rows l "over $LINK: "
else
	echo "| over $LINK: pull + hand to a runtime | (needs tc and a loopback without a qdisc) | | | | |"
fi

# Stripped binary sizes for the devices (target: under 300 KB each).
for a in arm64 armhf; do
	(cd "$TOP" && make -s cross ARCH=$a >/dev/null 2>&1) || { echo "| $a binary | (cross build failed) |"; continue; }
	echo "| stripped binary, $a | $(( $(stat -c %s "$TOP/build/$a/edgefetch.stripped") / 1024 )) KB | | | | < 300 KB |"
done

# A site: 20 agents through distribution's pull-through cache and through edgefetch serve.
AGENTS=${AGENTS:-20} EF=$EF "$TOP/tests/fleet.sh"

# Updates: v1 -> v2 with 2 of 40 files changed, per layer compression.
EF=$EF "$TOP/tests/update-bench.sh"

# The agent at rest and during a long sync: memory, wake-ups per poll, heartbeats.
EF=$EF "$TOP/tests/idle-bench.sh"
