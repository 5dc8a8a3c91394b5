#!/usr/bin/env bash
# make bench, over emulated links (tests/link.py): edgefetch beside the
# peers on the same image, each tool at once on its own copy of the link,
# per profile.  For each: wall, exit, bytes the link carried / image bytes
# (TCP payload from the registry's side, retransmissions included: TLS and
# HTTP are in it, IP and TCP headers not), goodput / link rate.  The
# runtimes' rows are a dockerd and a containerd of the bench's own: docker
# pull and ctr images pull beside edgefetch pull + hand to each (ef-docker,
# ef-ctr).  aria2c, given the blobs' URLs, is the reference of a plain
# segmented download.  Root only (network namespaces).  PROFILES and
# LINK_BENCH_TOOLS select.
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
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://127.0.0.1:$PR/edge/img:1.0")
SIZE=$(jq '[.config.size] + [.layers[].size] | add' <<<"$RAW")
BLOBS=$(jq -r '.config.digest, .layers[].digest' <<<"$RAW")

CERTS=() # the /etc/docker/certs.d entries made for the links' ports
pre_cleanup() {
	local c
	for c in "${CERTS[@]}"; do rm -rf "$c"; done
	pkill -f "$T/.*/docker/exec" 2>/dev/null
	awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	return 0
}
# runtimes_up P: for each runtime tool a daemon of its own, started fresh
# for the profile: two pulls of the same layers into one daemon would
# wait for each other, and a layer left from the last profile would not be
# fetched again.  SOCK[tool] is its socket, RPID[tool] its PID.
declare -A SOCK=() RPID=()
runtimes_up() {
	local tool i
	for tool in $TOOLS; do
		case $tool in
		docker | ef-docker) start_dockerd "$T/$1/rt-$tool"; SOCK[$tool]=$DOCKER_SOCK RPID[$tool]=$DOCKERD ;;
		ctr | ef-ctr) start_containerd "$T/$1/rt-$tool"; SOCK[$tool]=$CONTAINERD_SOCK RPID[$tool]=$CONTAINERD ;;
		esac
	done
	for tool in "${!SOCK[@]}"; do
		for i in $(seq 150); do
			case $tool in
			*docker) curl -sf --unix-socket "${SOCK[$tool]}" http://d/_ping >/dev/null && break ;;
			*) [ -S "${SOCK[$tool]}" ] && break ;;
			esac
			sleep 0.1
		done
	done
}
runtimes_down() {
	local tool
	for tool in "${!RPID[@]}"; do kill "${RPID[$tool]}" 2>/dev/null; done
	for tool in "${!RPID[@]}"; do wait "${RPID[$tool]}" 2>/dev/null; done
	pkill -f "$T/$1/.*/docker/exec" 2>/dev/null
	SOCK=() RPID=()
}

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
	case $tool in # dockerd trusts a registry CA only in /etc/docker/certs.d
	docker | ef-docker)
		mkdir -p "/etc/docker/certs.d/$a"
		cp "$T/ca/ca.crt" "/etc/docker/certs.d/$a/ca.crt" ;;
	esac
	case $tool in
	docker) docker -H "unix://${SOCK[docker]}" --config "$d/cfg" login -u "${CR%%:*}" --password-stdin "$a" <<<"${CR#*:}" >/dev/null 2>&1 ;;
	ctr) printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$a" "$a" "$T/ca/ca.crt" >"$d/certs/$a/hosts.toml" ;;
	esac
	t0=$(date +%s%N)
	case $tool in
	edgefetch)
		timeout "$LIMIT" "$EF" pull --quiet --store "$d/store" --certs-dir "$d/certs" --creds "$CR" \
			--output "oci:$d/oci" "$a/edge/img:1.0" ;;
	skopeo)
		timeout "$LIMIT" skopeo copy -q --src-creds "$CR" --src-cert-dir "$d/certs/$a" "docker://$a/edge/img:1.0" \
			"oci:$d/oci:1.0" ;;
	ef-docker | ef-ctr)
		local rt="docker:${SOCK[$tool]}"
		[ "$tool" = ef-ctr ] && rt="containerd:${SOCK[$tool]}:bench"
		timeout "$LIMIT" "$EF" pull --quiet --store "$d/store" --certs-dir "$d/certs" --creds "$CR" \
			--runtime "$rt" "$a/edge/img:1.0" ;;
	aria2c) # a reference, not a peer: the same blobs to files, 16 ranges each, no digest check
		for b in $BLOBS; do echo "https://$a/v2/edge/img/blobs/$b"; done >"$d/urls"
		timeout "$LIMIT" aria2c -q -d "$d/files" -i "$d/urls" -j 3 -x 16 -s 16 -k 1M --ca-certificate "$T/ca/ca.crt" \
			--http-user "${CR%%:*}" --http-passwd "${CR#*:}" --file-allocation=none ;;
	docker) timeout "$LIMIT" docker -H "unix://${SOCK[docker]}" --config "$d/cfg" pull -q "$a/edge/img:1.0" ;;
	ctr) timeout "$LIMIT" ctr -a "${SOCK[ctr]}" -n bench images pull --hosts-dir "$d/certs" --user "$CR" "$a/edge/img:1.0" ;;
	podman)
		timeout "$LIMIT" podman --root "$d/root" --runroot "$d/run" --storage-driver vfs pull -q --creds "$CR" \
			--cert-dir "$d/certs/$a" "$a/edge/img:1.0" ;;
	esac >/dev/null 2>"$d/err"
	rc=$?
	echo "$(( ($(date +%s%N) - t0) / 1000000 )) $rc" >"$d/res"
}

# row LABELS RES LINK ERR: a table row, LABELS and then wall, exit (from RES), link
# bytes / image (from LINK, the link's stats) and goodput / $rate; ERR's first lines when it failed
row() {
	local ms rc carried
	read -r ms rc <"$2"
	carried=$(jq '.payload.b_to_a' "$3")
	echo "| $1 | $(awk -v m="$ms" 'BEGIN {printf "%.1f", m / 1000}') | $rc" \
		"| $(awk -v a="$carried" -v b="$SIZE" 'BEGIN {printf "%.3f", a / b}')" \
		"| $(awk -v s="$SIZE" -v m="$ms" -v r="$rate" 'BEGIN {printf "%.2f", s * 8 / (m / 1000) / r}') |"
	[ "$rc" = 0 ] || sed -n '1,2p' "$4" | cut -c1-200 | sed 's/^/    /' >&2
}

TOOLS=${LINK_BENCH_TOOLS:-edgefetch ef-docker ef-ctr docker ctr skopeo podman aria2c}
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
		CERTS+=("/etc/docker/certs.d/127.0.0.1:${LPORT[$tool]}")
		"$PY" "$TOP/tests/link.py" --listen "${LPORT[$tool]}" --target "127.0.0.1:$PR" --name "b$$${tool//-/}" \
			--cc cubic --stats "$T/$p/$tool.link.json" "${args[@]}" >"$T/$p/$tool.link.log" 2>&1 &
		LPID[$tool]=$!
		PIDS+=(${LPID[$tool]})
		wait_port "${LPORT[$tool]}" || { echo "link for $tool did not come up" >&2; exit 1; }
	done
	runtimes_up "$p"
	pids=()
	for tool in $TOOLS; do
		one "$p" "$tool" "${LPORT[$tool]}" &
		pids+=($!)
	done
	wait "${pids[@]}"
	runtimes_down "$p"
	for tool in $TOOLS; do
		kill "${LPID[$tool]}" && wait "${LPID[$tool]}" 2>/dev/null
		row "$p | ${args[*]} | $tool" "$T/$p/$tool/res" "$T/$p/$tool.link.json" "$T/$p/$tool/err"
	done
	unset LPID LPORT
done
declare -A LPID=()
# Congestion control, measured with edgefetch inside the link (link.py
# --inside): its own sockets cross the link, end to end with the far side,
# whose sockets (the sender of a download) run cubic.  One copy of the link
# per setting of EDGEFETCH_TCP_CONGESTION, at once.
CC_PROFILES=${CC_PROFILES-thin satellite}
CCS=$(for c in cubic bbr; do grep -qw "$c" /proc/sys/net/ipv4/tcp_available_congestion_control && echo "$c"; done)
if [ -n "$CC_PROFILES" ]; then
	echo
	echo "EDGEFETCH_TCP_CONGESTION with edgefetch inside the link (the far side's sockets: cubic)"
	echo "| profile | EDGEFETCH_TCP_CONGESTION | wall, s | exit | link bytes / image | goodput / rate |"
	echo "|---|---|---|---|---|---|"
fi
for p in $CC_PROFILES; do
	read -r -a args <<<"$(profile "$p")"
	rate=${args[-2]}
	unset 'args[-1]' 'args[-1]'
	pids=()
	for cc in $CCS; do
		d=$T/cc-$p-$cc
		mkdir -p "$d/certs/10.213.0.2:9000"
		cp "$T/ca/ca.crt" "$d/certs/10.213.0.2:9000/"
		"$PY" "$TOP/tests/link.py" --inside --target "127.0.0.1:$PR" --name "c$$$cc" --cc cubic --stats "$d/link.json" \
			"${args[@]}" >"$d/link.log" 2>&1 &
		LPID[$cc]=$!
		PIDS+=(${LPID[$cc]})
		for _ in $(seq 100); do grep -q "link up" "$d/link.log" && break; sleep 0.1; done
	done
	for cc in $CCS; do
		d=$T/cc-$p-$cc
		(
			t0=$(date +%s%N)
			EDGEFETCH_TCP_CONGESTION=$cc timeout "$LIMIT" ip netns exec "efl-c$$$cc-a" "$EF" pull --quiet --store "$d/store" \
				--certs-dir "$d/certs" --creds "$CR" --output "oci:$d/oci" "10.213.0.2:9000/edge/img:1.0" >/dev/null 2>"$d/err"
			rc=$?
			echo "$(( ($(date +%s%N) - t0) / 1000000 )) $rc" >"$d/res"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	for cc in $CCS; do
		d=$T/cc-$p-$cc
		kill "${LPID[$cc]}" && wait "${LPID[$cc]}" 2>/dev/null
		row "$p | $cc" "$d/res" "$d/link.json" "$d/err"
	done
done

cat <<NOTE

Targets (issue 21): on thin and satellite, edgefetch <= 0.5 x the fastest peer, goodput >= 0.8 x the
rate, link bytes <= 1.02 x the image; on both flaky profiles every pull completes, link bytes <= 1.05 x,
wall <= 1.2 x (image / rate + the outages' total).  The link's sockets run cubic, as device kernels do.
aria2c is a reference, not a peer: it is given the blobs' URLs (no manifest, no token), fetches each in up to
16 ranges at once and checks no digest.
NOTE
