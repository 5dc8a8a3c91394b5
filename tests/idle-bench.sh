#!/usr/bin/env bash
# The agent at rest, and while a long sync runs: what it costs the device
# (resident memory, wake-ups per poll) and what the hub sees (heartbeats).
# IDLE_PEER=BINARY measures another edgefetch beside it in the same run
# (e.g. one built from an earlier commit).  Part of make bench.
set -u
source "$(dirname "$0")/e2e/lib.sh"
SECS=${IDLE_SECS:-30}
setup_pki bench bench-pass
CR=bench:bench-pass
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/tiny" --tag 1.0 --busybox --note idle >/dev/null
python3 "$M" image "$T/slow" --tag 1.0 --note idle-slow --random-mb 12 >/dev/null
PR=$(free_port) PP=$(free_port)
start_registry reg "$PR" htpasswd
R=127.0.0.1:$PR
push "$T/tiny:1.0" "$R/edge/tiny:1.0" --dest-creds "$CR"
push "$T/slow:1.0" "$R/edge/slow:1.0" --dest-creds "$CR"
echo '{"rate": 1000000}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PP"
start_exchange_sim tls # TLS, so that a peer from before plain HTTP was taken runs too
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/pub.key" 2>/dev/null
mkdir -p "$T/trust" "$T/certs.d/$R" "$T/certs.d/127.0.0.1:$PP"
openssl pkey -in "$T/pub.key" -pubout -out "$T/trust/pub.pem"
cp "$T/ca/ca.crt" "$T/certs.d/$R/"
cp "$T/ca/ca.crt" "$T/certs.d/127.0.0.1:$PP/"
svc() {
	local id
	id=$(pub service --org o --url "example.com.$1" --version 1.0.0 --arch amd64 --image "$2" --key "$T/pub.key" \
		--creds "$CR" --cert-dir "$T/skcerts")
	pub dockauth --service-id "$id" --registry "${2%%/*}" --username bench --token bench-pass
	pub pattern --org o --name "$1" --service "o/example.com.$1/1.0.0/amd64" >/dev/null
}
svc tiny "$R/edge/tiny:1.0"
svc slow "127.0.0.1:$PP/edge/slow:1.0"
heartbeats() { curl -sS --cacert "$T/ca/ca.crt" "$SIM/_sim/nodes" | jq -r --arg n "o/$1" '.[$n].heartbeats // 0'; }
# switches PID: context switches of all its threads so far
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'; }
conf() { # conf NAME PATTERN
	pub node --org o --id "$1" --token "t-$1" --pattern "o/$2" --arch amd64 >/dev/null
	cat >"$T/$1.conf" <<CONF
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=o
HZN_DEVICE_ID=$1
HZN_EXCHANGE_NODE_AUTH=$1:t-$1
HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt
EDGEFETCH_STORE=$T/$1.store
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/certs.d
EDGEFETCH_POLL_MIN=2
EDGEFETCH_POLL_MAX=2
CONF
}
# idle NAME LABEL BINARY: one row for an agent at rest
idle() {
	local n=idle-$1 pid hb0 sw0 hb1 sw1 rss
	conf "$n" tiny
	"$3" agent --config "$T/$n.conf" >"$T/$n.log" 2>&1 &
	pid=$!
	PIDS+=($pid)
	for _ in $(seq 100); do [ "$(jq -r '.services[0].ok' "$T/$n.store/state.json" 2>/dev/null)" = true ] && break; sleep 0.2; done
	sleep 3
	hb0=$(heartbeats "$n") sw0=$(switches "$pid")
	sleep "$SECS"
	hb1=$(heartbeats "$n") sw1=$(switches "$pid")
	rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
	kill "$pid"
	wait "$pid" 2>/dev/null
	awk -v l="$2" -v r="$rss" -v s=$((sw1 - sw0)) -v h=$((hb1 - hb0)) -v t="$SECS" 'BEGIN {
		printf "| %s: at rest, polling every 2 s | %.2f MB | %d polls in %d s | %.1f wake-ups per poll |\n", l, r / 1024, h, t, h ? s / h : s }'
}
# busy NAME LABEL BINARY: heartbeats while `agent --once` pulls 12 MiB at 1 MB/s
busy() {
	local n=busy-$1 s e
	conf "$n" slow
	s=$(date +%s)
	"$3" agent --config "$T/$n.conf" --once >/dev/null 2>"$T/$n.err" || { cat "$T/$n.err" >&2; return 1; }
	e=$(date +%s)
	echo "| $2: agent --once, a sync of $((e - s)) s | | $(heartbeats "$n") heartbeats | (every 2 s: $(((e - s) / 2))) |"
}
echo
echo "agent at rest and during a long sync (polls every 2 s, against the exchange simulator)"
echo "| agent | resident memory | polls (heartbeats) | per poll |"
echo "|---|---|---|---|"
idle ef edgefetch "$EF"
busy ef edgefetch "$EF"
if [ -n "${IDLE_PEER:-}" ]; then
	idle peer "peer ($IDLE_PEER)" "$IDLE_PEER"
	busy peer "peer ($IDLE_PEER)" "$IDLE_PEER"
fi
