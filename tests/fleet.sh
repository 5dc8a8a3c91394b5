#!/usr/bin/env bash
# The fleet part of make bench: AGENTS agents (separate processes, nodes
# and stores) follow one pattern on the exchange simulator, all at once,
# through a site mirror named in hosts.toml: (a) distribution's
# pull-through cache, (b) `edgefetch serve`.  The origin sits behind a
# counting proxy; what it served is printed against AGENTS x the image.
set -u
source "$(dirname "$0")/e2e/lib.sh"
AGENTS=${AGENTS:-20}
setup_pki fleet fleet-pass
CR=fleet:fleet-pass
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/svc" --tag 1.0 --busybox --note fleet --random-mb 8 --random-mb 8 --random-mb 8 >/dev/null
PT=$(free_port) PR=$(free_port) PO=$(free_port) PC=$(free_port) PS=$(free_port)
start_token_server "$PT"
start_registry origin "$PR" "token:$PT"
push "$T/svc:1.0" "127.0.0.1:$PR/edge/svc:1.0" --dest-creds "$CR"
echo '{}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PO" --upstream "127.0.0.1:$PR" --cert "$T/ca/server.crt" \
	--key "$T/ca/server.key" --ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/ostats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PO"
O=127.0.0.1:$PO
RAW=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$O/edge/svc:1.0")
SIZE=$(jq '[.config.size] + [.layers[].size] | add' <<<"$RAW")

# (a) distribution 2.8 as a pull-through cache of the origin
start_pull_through dist "$PC" "$O" fleet fleet-pass
# (b) edgefetch serve as the site cache
mkdir -p "$T/sc/$O" "$T/sc/localhost:$PT"
cp "$T/ca/ca.crt" "$T/sc/$O/"
cp "$T/ca/ca.crt" "$T/sc/localhost:$PT/"
"$EF" serve --listen "127.0.0.1:$PS" --tls-cert "$T/ca/server.crt" --tls-key "$T/ca/server.key" --origin "$O" \
	--certs-dir "$T/sc" --creds "$CR" --store "$T/site" >"$T/serve.log" 2>&1 &
PIDS+=($!)
wait_port "$PS"

start_exchange_sim
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/publisher.key" 2>/dev/null
mkdir -p "$T/trust"
openssl pkey -in "$T/publisher.key" -pubout -out "$T/trust/publisher.pem"
SVC=$(pub service --org site --url example.com.svc --version 1.0.0 --arch amd64 --image "$O/edge/svc:1.0" \
	--key "$T/publisher.key" --creds "$CR" --cert-dir "$T/skcerts")
pub dockauth --service-id "$SVC" --registry "$O" --username fleet --token fleet-pass >/dev/null
pub pattern --org site --name fleet --service site/example.com.svc/1.0.0/amd64 >/dev/null
for i in $(seq "$AGENTS"); do pub node --org site --id "n$i" --token "t$i" --pattern site/fleet --arch amd64 >/dev/null; done

# fleet MIRROR_PORT NAME: every agent at once through that mirror; prints the origin's share
fleet() {
	local port=$1 label=$2 name=${2// /-} i b0 r0 pids=() fail=0
	mkdir -p "$T/$name/certs/$O" "$T/$name/certs/localhost:$PT"
	cp "$T/ca/ca.crt" "$T/$name/certs/$O/"
	cp "$T/ca/ca.crt" "$T/$name/certs/localhost:$PT/"
	printf '[host."https://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n' "$port" \
		>"$T/$name/certs/$O/hosts.toml"
	b0=$(jq '.blob_bytes // 0' "$T/ostats" 2>/dev/null || echo 0)
	r0=$(jq '.blob_requests // 0' "$T/ostats" 2>/dev/null || echo 0)
	for i in $(seq "$AGENTS"); do
		cat >"$T/$name/a$i.conf" <<EOF
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=site
HZN_DEVICE_ID=n$i
HZN_EXCHANGE_NODE_AUTH="n$i:t$i"
HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt
EDGEFETCH_STORE=$T/$name/s$i
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/$name/certs
EOF
		"$EF" agent --config "$T/$name/a$i.conf" --once >/dev/null 2>"$T/$name/a$i.err" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || fail=$((fail + 1)); done
	local b r via=0
	b=$(($(jq '.blob_bytes // 0' "$T/ostats") - b0))
	r=$(($(jq '.blob_requests // 0' "$T/ostats") - r0))
	for i in $(seq "$AGENTS"); do # agents whose every blob came from the mirror
		[ "$(jq -r '.services[0].images[0].blob_sources | keys | join(",")' "$T/$name/s$i/state.json" 2>/dev/null)" \
			= "127.0.0.1:$port" ] && via=$((via + 1))
	done
	echo "| $label | $r | $b | $(echo "scale=2; $b / $SIZE" | bc) | $((AGENTS - fail)) of $AGENTS, $via all from the mirror | $3 |"
}
echo
echo "fleet: $AGENTS agents, one pattern, a $((SIZE >> 20)) MiB image ($(jq '.layers | length + 1' <<<"$RAW") blobs), $((AGENTS * SIZE >> 20)) MiB in all"
echo "| site mirror | origin blob requests | origin blob bytes | origin bytes / one image | agents that got the image | target |"
echo "|---|---|---|---|---|---|"
fleet "$PC" "distribution 2.8 pull-through cache" ""
fleet "$PS" "edgefetch serve" "<= 1.05"
