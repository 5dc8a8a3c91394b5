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

: >"$T/ef" ; : >"$T/sk" ; : >"$T/curl" ; : >"$T/tinyrss"
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
cw=$(col 1 "$T/curl") tr=$(col 2 "$T/tinyrss")
r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
cat <<TABLE

edgefetch bench: $((SIZE / 1048576)) MiB image, $NLAYERS layers, TLS + basic auth, loopback, medians of $RUNS runs
| measure                                   | edgefetch | skopeo copy oci: | curl (4 parallel) | ratio          | target  |
|-------------------------------------------|-----------|------------------|-------------------|----------------|---------|
| wall time, s                              | $efw | $skw | $cw | $(r "$efw" "$skw") x skopeo, $(r "$efw" "$cw") x curl | <= 0.7 x skopeo, <= 1.10 x curl |
| peak RSS, MB                              | $(r "$efr" 1024) | $(r "$skr" 1024) | | $(r "$efr" "$skr") x skopeo | <= 0.6 |
