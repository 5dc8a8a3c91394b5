#!/usr/bin/env bash
# make bench, over emulated links (tests/link.py): edgefetch beside the
# peers on the same image, each tool at once on its own copy of the link,
# per profile.  For each: wall, exit, bytes the link carried / image bytes
# (TCP payload from the registry's side, retransmissions included: TLS and
# HTTP are in it, IP and TCP headers not), goodput / link rate.  Root only (network namespaces).  PROFILES selects.
set -u
source "$(dirname "$0")/e2e/lib.sh"
PROFILES=${PROFILES:-thin satellite flaky flaky-resets}
LIMIT=${LINK_BENCH_LIMIT:-600} # seconds a tool may take on one profile
setup_pki bench bench-pass
CR=bench:bench-pass
echo "building the link image (32 + 6 + 1 MiB of random data) ..." >&2
"$PY" "$TOP/tests/e2e/mkimage.py" image "$T/img" --tag 1.0 --note link-bench --random-mb 32 --random-mb 6 --random-mb 1 >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd
push "$T/img:1.0" "127.0.0.1:$PR/edge/img:1.0" --dest-creds "$CR"
SIZE=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://127.0.0.1:$PR/edge/img:1.0" |
	jq '[.config.size] + [.layers[].size] | add')

profile() { # the link's parameters and its rate in bit/s, and the outages' share of the time
	case $1 in
	thin) echo "--rate 20mbit --delay 40ms --loss 1% 20000000 0" ;;
	satellite) echo "--rate 10mbit --delay 300ms --loss 0.5% 10000000 0" ;;
	flaky) echo "--rate 20mbit --delay 20ms --down 5/20 20000000 5/20" ;;
	flaky-resets) echo "--rate 20mbit --delay 20ms --down 5/20 --reset 20000000 5/20" ;;
	esac
}

# one TOOL on its own link LP: wall and exit into $T/P/TOOL.res
one() {
	local p=$1 tool=$2 lp=$3 d=$T/$1/$2 t0 rc
	local a="127.0.0.1:$lp"
	mkdir -p "$d/certs/$a"
	cp "$T/ca/ca.crt" "$d/certs/$a/ca.crt"
	t0=$(date +%s%N)
	case $tool in
	edgefetch)
		timeout "$LIMIT" "$EF" pull --quiet --store "$d/store" --certs-dir "$d/certs" --creds "$CR" \
			--output "oci:$d/oci" "$a/edge/img:1.0" ;;
	skopeo)
		timeout "$LIMIT" skopeo copy -q --src-creds "$CR" --src-cert-dir "$d/certs/$a" "docker://$a/edge/img:1.0" \
			"oci:$d/oci:1.0" ;;
	podman)
		timeout "$LIMIT" podman --root "$d/root" --runroot "$d/run" --storage-driver vfs pull -q --creds "$CR" \
			--cert-dir "$d/certs/$a" "$a/edge/img:1.0" ;;
	esac >/dev/null 2>"$d/err"
	rc=$?
	echo "$(( ($(date +%s%N) - t0) / 1000000 )) $rc" >"$d/res"
}

TOOLS=${LINK_BENCH_TOOLS:-edgefetch skopeo podman}
echo
echo "edgefetch over emulated links: $((SIZE / 1048576)) MiB image (32 + 6 + 1 MiB layers), each tool on its own copy of the link, at once"
echo "| profile | link | tool | wall, s | exit | link bytes / image | goodput / rate |"
echo "|---|---|---|---|---|---|---|"
for p in $PROFILES; do
	read -r -a args <<<"$(profile "$p")"
	down=${args[-1]} rate=${args[-2]}
	unset 'args[-1]' 'args[-1]'
	mkdir -p "$T/$p"
	declare -A LPID=() LPORT=()
	for tool in $TOOLS; do
		LPORT[$tool]=$(free_port)
		"$PY" "$TOP/tests/link.py" --listen "${LPORT[$tool]}" --target "127.0.0.1:$PR" --name "b$$${tool:0:3}" \
			--cc cubic --stats "$T/$p/$tool.link.json" "${args[@]}" >"$T/$p/$tool.link.log" 2>&1 &
		LPID[$tool]=$!
		PIDS+=(${LPID[$tool]})
		wait_port "${LPORT[$tool]}" || { echo "link for $tool did not come up" >&2; exit 1; }
	done
	pids=()
	for tool in $TOOLS; do
		one "$p" "$tool" "${LPORT[$tool]}" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for tool in $TOOLS; do
		kill "${LPID[$tool]}" && wait "${LPID[$tool]}" 2>/dev/null
		read -r ms rc <"$T/$p/$tool/res"
		carried=$(jq '.payload.b_to_a' "$T/$p/$tool.link.json")
		echo "| $p | ${args[*]} | $tool | $(awk -v m="$ms" 'BEGIN {printf "%.1f", m / 1000}') | $rc" \
			"| $(awk -v a="$carried" -v b="$SIZE" 'BEGIN {printf "%.3f", a / b}')" \
			"| $(awk -v s="$SIZE" -v m="$ms" -v r="$rate" 'BEGIN {printf "%.2f", s * 8 / (m / 1000) / r}') |"
		[ "$rc" = 0 ] || sed -n '1,2p' "$T/$p/$tool/err" | cut -c1-200 | sed 's/^/    /' >&2
	done
	unset LPID LPORT
done
cat <<NOTE

Targets (issue 21): on thin and satellite, edgefetch <= 0.5 x the fastest peer, goodput >= 0.8 x the
rate, link bytes <= 1.02 x the image; on both flaky profiles every pull completes, link bytes <= 1.05 x,
wall <= 1.2 x (image / rate + the outages' total).  The link's sockets run cubic, as device kernels do.
NOTE
