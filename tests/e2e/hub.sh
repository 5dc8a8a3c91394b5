#!/usr/bin/env bash
# The agent against a hub that behaves as the real Open Horizon exchange and
# anax do (tests/e2e/exchange_sim.py, which cites their code): plain HTTP,
# policy nodes, keys only on the exchange or the pattern or in anax's key
# dir, overrides, deleted nodes and patterns, dockauths errors, heartbeats
# during long syncs, version vs versionRange, redirects, and what a poll
# costs the hub.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
export EDGEFETCH_RETRY_BASE_MS=50

setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
for n in web db other v1 v2; do python3 "$M" image "$T/img-$n" --tag 1.0 --busybox --note "hub-$n" >/dev/null; done
python3 "$M" image "$T/img-slow" --tag 1.0 --note slow --random-mb 8 --random-mb 8 >/dev/null
PR=$(free_port) PP=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
for n in web db other v1 v2 slow; do push "$T/img-$n:1.0" "$R/edge/$n:1.0" --dest-creds "$CR"; done
SIM_REDIRECT_PORT=$(free_port)
start_exchange_sim || setup_failed exchange simulator
sim() { curl -sSf -H 'Content-Type: application/json' "$SIM/_sim/$1" ${2:+-d "$2"}; }
stat_of() { curl -sS "$SIM/_sim/stats" | jq -r --arg k "$1" '.[$k] // 0'; }
heartbeats() { curl -sS "$SIM/_sim/nodes" | jq -r --arg n "$1" '.[$n].heartbeats // 0'; }

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/publisher.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/other.key" 2>/dev/null
openssl pkey -in "$T/other.key" -pubout -out "$T/other.pem"
mkdir -p "$T/trust" "$T/certs.d/$R"
openssl pkey -in "$T/publisher.key" -pubout -out "$T/trust/publisher.pem"
cp "$T/ca/ca.crt" "$T/certs.d/$R/ca.crt"
service() { # service URL VERSION IMAGE [more hzn_publish args]
	pub service --org myorg --url "$1" --version "$2" --arch amd64 --image "$3" --key "$T/publisher.key" \
		--creds "$CR" --cert-dir "$T/skcerts" "${@:4}"
}
digest_of() { skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | sha256sum | cut -c1-64; }
node() { # node ID PATTERN [more args]: a fresh node
	pub node --org myorg --id "$1" --token "tok-$1" --pattern "$2" --arch amd64 "${@:3}" >/dev/null
}
conf() { # conf FILE NODE [extra lines]: a node's env-file, its store beside it
	cat >"$1" <<CONF
HZN_EXCHANGE_URL=${URL:-$SIM/v1}
HZN_ORG_ID=myorg
HZN_DEVICE_ID=$2
HZN_EXCHANGE_NODE_AUTH="$2:tok-$2"
EDGEFETCH_STORE=$1.store
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/certs.d
EDGEFETCH_POLL_MIN=1
EDGEFETCH_POLL_MAX=2
EDGEFETCH_EXCHANGE_TIMEOUT=3
${3:-}
CONF
}
state() { jq -r "$2" "$1.store/state.json"; }
wait_for() { # wait_for SECONDS CMD...
	local end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}

WEB=$(service example.com.web 1.0.0 "$R/edge/web:1.0")
pub dockauth --service-id "$WEB" --registry "$R" --username alice --token s3cret
pub pattern --org myorg --name pat --service myorg/example.com.web/1.0.0/amd64 >/dev/null

# ---- plain HTTP, as the exchange and the all-in-1 hub serve it ----
node n1 myorg/pat
conf "$T/n1" n1
run 0 "exchange over plain http: agent --once" "$EF" agent --config "$T/n1" --once
check "exchange over plain http: one warning line on stderr" \
	bash -c '[ "$(grep -c . "$1")" = 1 ] && grep -q "warning: the exchange is plain HTTP" "$1"' _ "$T/err"
check "exchange over plain http: the image is in the store" [ -f "$T/n1.store/blobs/sha256/$(digest_of web)" ]
run 0 "exchange over plain http: status" "$EF" status --config "$T/n1"
check "exchange over plain http: status warns" grep -q "^warning: .*plain HTTP" "$T/out"
before=$(stat_of "GET /v1/orgs/*/nodes")
URL=https://127.0.0.1:$SIM_PORT/v1 conf "$T/n1s" n1
run 6 "an https:// URL to a plain http exchange never falls back" "$EF" agent --config "$T/n1s" --once
check "https URL: no request reached the exchange in plain http" [ "$(stat_of "GET /v1/orgs/*/nodes")" = "$before" ]

# ---- a node that follows deployment policy ----
node n2 ""
conf "$T/n2" n2
run 2 "node without a pattern: agent --once exits 2" "$EF" agent --config "$T/n2" --once
check "node without a pattern: one line naming deployment policy" \
	bash -c '[ "$(grep -vc "warning:" "$1")" = 1 ] && grep -q "has no pattern: it follows deployment policy" "$1"' _ "$T/err"
run 0 "node without a pattern: status" "$EF" status --config "$T/n2"
check "node without a pattern: status says the agent stopped and why" grep -q "STOPPED (exit 2).*deployment policy" "$T/out"
run 2 "node without a pattern: the daemon exits 2 (the unit does not restart into it)" timeout 20 "$EF" agent --config "$T/n2"

# ---- keys ----
OTHER=$(service example.com.other 1.0.0 "$R/edge/other:1.0" --key "$T/other.key")
pub dockauth --service-id "$OTHER" --registry "$R" --username alice --token s3cret
pub servicekey --service-id "$OTHER" --name other.pem --pem "$T/other.pem"
pub pattern --org myorg --name keypat --service myorg/example.com.other/1.0.0/amd64 >/dev/null
node n3 myorg/keypat
conf "$T/n3" n3 "EDGEFETCH_TRUST_DIR=$T/trust3"
mkdir -p "$T/trust3"
cp "$T/trust/publisher.pem" "$T/trust3/"
FP=sha256:$(openssl pkey -pubin -in "$T/other.pem" -outform DER | sha256sum | cut -c1-64)
run 5 "key only on the exchange: refused" "$EF" agent --config "$T/n3" --once
check "key only on the exchange: the refusal names the service, the key and its fingerprint" \
	grep -q "example.com.other.*myorg/services/example.com.other_1.0.0_amd64/keys/other.pem ($FP)" "$T/err"
check "key only on the exchange: the refusal gives the command that trusts it" \
	grep -q "edgefetch trust add --exchange-key myorg/services/example.com.other_1.0.0_amd64/keys/other.pem --fingerprint $FP" "$T/err"
run 5 "trust add --exchange-key with another fingerprint: refused" "$EF" trust add --config "$T/n3" \
	--exchange-key myorg/services/example.com.other_1.0.0_amd64/keys/other.pem --fingerprint "sha256:$(printf '0%.0s' $(seq 64))"
check "trust add with another fingerprint: nothing installed" [ ! -e "$T/trust3/other.pem" ]
run 2 "trust add --exchange-key without --fingerprint -> exit 2" "$EF" trust add --config "$T/n3" \
	--exchange-key myorg/services/example.com.other_1.0.0_amd64/keys/other.pem
run 2 "trust add --exchange-key outside services/patterns keys -> exit 2" "$EF" trust add --config "$T/n3" \
	--exchange-key myorg/nodes/n3 --fingerprint "$FP"
run 0 "key only on the exchange: the command from the refusal trusts it" "$EF" trust add --config "$T/n3" \
	--exchange-key myorg/services/example.com.other_1.0.0_amd64/keys/other.pem --fingerprint "$FP"
check "trust add: the key is in the trust dir" cmp -s "$T/trust3/other.pem" "$T/other.pem"
run 0 "key only on the exchange, trusted with trust add: agent --once" "$EF" agent --config "$T/n3" --once
run 0 "trust list" "$EF" trust list --config "$T/n3"
check "trust list: the fingerprint of each key" grep -q "$FP  other.pem" "$T/out"
# signed by a key the pattern carries, not the service
OTHER2=$(service example.com.other2 1.0.0 "$R/edge/other:1.0" --key "$T/other.key")
pub dockauth --service-id "$OTHER2" --registry "$R" --username alice --token s3cret
pub pattern --org myorg --name keypat2 --service myorg/example.com.other2/1.0.0/amd64 >/dev/null
pub patternkey --pattern-id myorg/keypat2 --name other.pem --pem "$T/other.pem"
node n4 myorg/keypat2
conf "$T/n4" n4 "EDGEFETCH_TRUST_EXCHANGE_KEYS=true"
run 0 "key only on the pattern, exchange keys trusted: verified as anax verifies it" "$EF" agent --config "$T/n4" --once
check "key only on the pattern: verified with the pattern's key" \
	[ "$(state "$T/n4" '.services[0].verified_with')" = "exchange:myorg/patterns/keypat2/keys/other.pem" ]
conf "$T/n4p" n4
run 5 "key only on the pattern, exchange keys not trusted: refused" "$EF" agent --config "$T/n4p" --once
check "key only on the pattern: the refusal names the pattern's key" grep -q "myorg/patterns/keypat2/keys/other.pem" "$T/err"
# keys `hzn key import` left in anax's user key dir
mkdir -p "$T/hzn/userkeys"
cp "$T/other.pem" "$T/hzn/userkeys/"
conf "$T/n4a" n4 "HZN_VAR_BASE=$T/hzn"
sed -i '/^EDGEFETCH_TRUST_DIR=/d' "$T/n4a"
run 0 "key in anax's user key dir (HZN_VAR_BASE/userkeys), no EDGEFETCH_TRUST_DIR: verified" "$EF" agent --config "$T/n4a" --once
check "key in anax's user key dir: verified with it" \
	bash -c '[ "$(jq -r ".services[0].verified_with" "$1")" = "$2/hzn/userkeys/other.pem" ]' _ "$T/n4a.store/state.json" "$T"

# ---- deployment_overrides: only what anax takes from them ----
pub pattern --org myorg --name overpat --service myorg/example.com.web/1.0.0/amd64 \
	--override "web=$R/edge/other:1.0" --key "$T/publisher.key" >/dev/null
node n5 myorg/overpat
conf "$T/n5" n5
run 0 "pattern overrides naming another image: agent --once" "$EF" agent --config "$T/n5" --once
check "overrides naming another image: the signed image is pulled" [ -f "$T/n5.store/blobs/sha256/$(digest_of web)" ]
check "overrides naming another image: the override's image is not" [ ! -e "$T/n5.store/blobs/sha256/$(digest_of other)" ]
check "overrides naming another image: the state notes it was ignored" \
	bash -c 'jq -e ".services[0].notes | map(select(test(\"deployment_overrides names image .*ignored\"))) | length == 1" "$1"' _ "$T/n5.store/state.json"

# ---- dockauths that answer an error: the device's own credentials ----
node n6 myorg/pat
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$R" "$(printf %s "$CR" | base64)" >"$T/docker.json"
chmod 600 "$T/docker.json"
conf "$T/n6" n6 "EDGEFETCH_AUTH_FILE=$T/docker.json"
sim fault '{"mode":"status","status":502,"count":100,"only":"/dockauths"}' >/dev/null
run 0 "dockauths answering 502: the pull goes on with the device's own credentials" "$EF" agent --config "$T/n6" --once
check "dockauths answering 502: a warning names the service" grep -q "warning: service myorg/example.com.web.*dockauths.*own credentials" "$T/err"
check "dockauths answering 502: the image is in the store" [ -f "$T/n6.store/blobs/sha256/$(digest_of web)" ]
sim fault '{"mode":"none"}' >/dev/null

# ---- version wins over versionRange, as anax resolves requiredServices ----
service example.com.lib 1.0.0 "$R/edge/v1:1.0" >/dev/null
service example.com.lib 2.0.0 "$R/edge/v2:1.0" >/dev/null
APP=$(service example.com.app 1.0.0 "$R/edge/web:1.0" --requires-version "myorg/example.com.lib/1.0.0/[1.0.0,2.0.0)")
pub pattern --org myorg --name verpat --service myorg/example.com.app/1.0.0/amd64 >/dev/null
node n7 myorg/verpat
conf "$T/n7" n7 "EDGEFETCH_AUTH_FILE=$T/docker.json"
run 0 "requiredServices with version 1.0.0 and versionRange [1.0.0,2.0.0): agent --once" "$EF" agent --config "$T/n7" --once
check "version wins over versionRange: 2.0.0 runs, as in anax" \
	[ "$(state "$T/n7" '.services[] | select(.url=="example.com.lib") | .version')" = 2.0.0 ]

# ---- redirects: an ingress in front of the hub ----
URL=http://127.0.0.1:$SIM_REDIRECT_PORT/v1 conf "$T/n1r" n1
run 0 "exchange behind a redirect to another port of the same host: followed" "$EF" agent --config "$T/n1r" --once
check "redirect: it was redirected" [ "$(stat_of redirect)" -gt 0 ]
sim redirect '{"host":"localhost"}' >/dev/null
before=$(stat_of "GET /v1/orgs/*/nodes")
run 6 "exchange redirecting to another host name: not followed" "$EF" agent --config "$T/n1r" --once
check "redirect to another host: the error says so" grep -q "redirected to another host (localhost)" "$T/err"
check "redirect to another host: nothing reached it" [ "$(stat_of "GET /v1/orgs/*/nodes")" = "$before" ]
sim redirect '{"host":"127.0.0.1"}' >/dev/null
# an https front that sends the node to plain http: refused
P2=$(free_port) R2=$(free_port)
"$PY" "$TOP/tests/e2e/exchange_sim.py" --port "$P2" --redirect-port "$R2" \
	--redirect-tls "$T/ca/server.crt" "$T/ca/server.key" >>"$T/sim2.log" 2>&1 &
PIDS+=($!)
wait_port "$R2"
URL=https://127.0.0.1:$R2/v1 conf "$T/n1h" n1 "HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt"
run 6 "exchange redirecting from https to http: not followed" "$EF" agent --config "$T/n1h" --once
check "https to http: the error says so" grep -q "redirected from https to http: refused" "$T/err"
check "https to http: nothing reached the plain http port" \
	[ "$(curl -sS "http://127.0.0.1:$P2/_sim/stats" | jq 'to_entries | map(select(.key | startswith("GET"))) | length')" = 0 ]

# ---- heartbeats while a sync is busy for a long time ----
echo '{"link_rate": 1000000}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/pstats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PP"
mkdir -p "$T/certs.d/127.0.0.1:$PP"
cp "$T/ca/ca.crt" "$T/certs.d/127.0.0.1:$PP/"
SLOW=$(service example.com.slow 1.0.0 "127.0.0.1:$PP/edge/slow:1.0")
pub dockauth --service-id "$SLOW" --registry "127.0.0.1:$PP" --username alice --token s3cret
pub pattern --org myorg --name slowpat --service myorg/example.com.slow/1.0.0/amd64 >/dev/null
node n8 myorg/slowpat
conf "$T/n8" n8
start=$(date +%s)
run 0 "a sync of 16 MiB at 1 MB/s: agent --once" "$EF" agent --config "$T/n8" --once
took=$(($(date +%s) - start))
check "agent --once heartbeats while it syncs (${took} s, $(heartbeats myorg/n8) heartbeats)" \
	[ "$(heartbeats myorg/n8)" -ge $((took / 2)) ]
node n9 myorg/slowpat --intervals 1,1,1
conf "$T/n9" n9 "EDGEFETCH_POLL_MIN=30
EDGEFETCH_POLL_MAX=60"
"$EF" agent --config "$T/n9" >"$T/n9.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
check "daemon: the sync is under way" wait_for 20 bash -c '[ -d "$1/ingest" ]' _ "$T/n9.store"
hb0=$(heartbeats myorg/n9)
sleep 5
hb1=$(heartbeats myorg/n9)
check "daemon: heartbeats at the node's heartbeatIntervals (1 s, not the configured 30 s) during the sync ($hb0 -> $hb1)" \
	[ $((hb1 - hb0)) -ge 3 ]
check "daemon: the node's intervals are in the state" wait_for 30 bash -c '[ "$(jq -r .poll_intervals.min "$1")" = 1 ]' _ "$T/n9.store/state.json"
echo '{}' >"$T/control"

# ---- a deleted node, a revoked token ----
sim node/delete '{"org":"myorg","id":"n9"}' >/dev/null
check "daemon: a deleted node stops the agent" wait_for 15 bash -c '! kill -0 "$1"' _ "$AGENT"
wait "$AGENT"
rc=$?
check "daemon: a deleted node -> exit 3 ($rc)" [ "$rc" = 3 ]
check "daemon: a deleted node: the last line says the credentials were refused" \
	bash -c 'tail -n 1 "$1" | grep -q "agent: stopped: .*refused the node.s credentials (401)"' _ "$T/n9.log"
run 0 "a deleted node: status" "$EF" status --config "$T/n9"
check "a deleted node: status says the agent stopped, when and why" \
	grep -qE "STOPPED \(exit 3\) since [0-9T:-]+Z: .*(deleted|token)" "$T/out"
run 3 "a deleted node: agent --once exits 3" "$EF" agent --config "$T/n9" --once
node n10 myorg/pat
conf "$T/n10" n10
run 0 "before the token is revoked: agent --once" "$EF" agent --config "$T/n10" --once
pub node --org myorg --id n10 --token other --pattern myorg/pat --arch amd64 >/dev/null
run 3 "a revoked token: agent --once exits 3" "$EF" agent --config "$T/n10" --once
check "a revoked token: the images held are kept" [ -f "$T/n10.store/blobs/sha256/$(digest_of web)" ]
# an HA hub's other instance still caches the deleted node: 404 on /changes
node n11 myorg/pat
conf "$T/n11" n11
"$EF" agent --config "$T/n11" >"$T/n11.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
check "HA hub: the daemon synced" wait_for 20 bash -c '[ "$(jq -r .services[0].ok "$1")" = true ]' _ "$T/n11.store/state.json"
sim node/delete '{"org":"myorg","id":"n11","ha_seconds":600}' >/dev/null
check "HA hub: a deleted node answered 404 on /changes stops the agent" wait_for 15 bash -c '! kill -0 "$1"' _ "$AGENT"
wait "$AGENT"
rc=$?
check "HA hub: 404 'Node or agbot not found' -> exit 3 ($rc)" [ "$rc" = 3 ]
check "HA hub: the line says the node was deleted" grep -q "node myorg/n11 is not on the exchange: it was deleted" "$T/n11.log"

# ---- a deleted pattern ----
pub pattern --org myorg --name gone --service myorg/example.com.web/1.0.0/amd64 >/dev/null
node n12 myorg/gone
conf "$T/n12" n12 "EDGEFETCH_PATTERN_CHECK=1"
run 0 "before the pattern is deleted: agent --once" "$EF" agent --config "$T/n12" --once
sim pattern/delete '{"org":"myorg","name":"gone"}' >/dev/null
run 4 "a deleted pattern: agent --once exits 4" "$EF" agent --config "$T/n12" --once
check "a deleted pattern: the line says so" grep -q "pattern myorg/gone was deleted on the exchange" "$T/err"
check "a deleted pattern: what the node held is left alone" \
	bash -c '[ "$(jq -r ".services | length" "$1")" = 1 ] && [ -f "$2" ]' _ "$T/n12.store/state.json" "$T/n12.store/blobs/sha256/$(digest_of web)"
run 0 "a deleted pattern: status" "$EF" status --config "$T/n12"
check "a deleted pattern: status says so" grep -q "myorg/gone DELETED on the exchange" "$T/out"
pub pattern --org myorg --name gone --service myorg/example.com.web/1.0.0/amd64 >/dev/null
"$EF" agent --config "$T/n12" >"$T/n12.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
check "the pattern back: the daemon follows it again" \
	wait_for 20 bash -c '! jq -e ".pattern_deleted" "$1" && [ "$(jq -r .services[0].ok "$1")" = true ]' _ "$T/n12.store/state.json"
sim pattern/delete '{"org":"myorg","name":"gone"}' >/dev/null
check "daemon: a deleted pattern is noticed at the pattern check" \
	wait_for 20 bash -c 'jq -e ".pattern_deleted" "$1"' _ "$T/n12.store/state.json"
check "daemon: a deleted pattern does not stop the agent" kill -0 "$AGENT"
kill -TERM "$AGENT"
wait "$AGENT"

# ---- what the polls cost the hub ----
node n13 myorg/pat
conf "$T/n13" n13 "EDGEFETCH_PATTERN_CHECK=300"
p0=$(stat_of "GET /v1/orgs/*/patterns")
"$EF" agent --config "$T/n13" >"$T/n13.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
check "hub load: the daemon synced" wait_for 20 bash -c '[ "$(jq -r .services[0].ok "$1")" = true ]' _ "$T/n13.store/state.json"
hb0=$(heartbeats myorg/n13) s0=$(stat_of "GET /v1/orgs/*/services")
sim change '{"org":"otherorg","resource":"service","id":"example.com.web_1.0.0_amd64","public":true}' >/dev/null
sim change '{"org":"myorg","resource":"service","id":"example.com.unrelated_1.0.0_amd64"}' >/dev/null
polled() { [ "$(heartbeats "$1")" -ge "$2" ]; }
check "hub load: polls go on" wait_for 10 polled myorg/n13 $((hb0 + 4))
check "hub load: the pattern is read once in 4 polls, by the sync ($p0 -> $(stat_of "GET /v1/orgs/*/patterns"))" \
	[ "$(stat_of "GET /v1/orgs/*/patterns")" = $((p0 + 1)) ]
check "hub load: a change of another org's or an unrelated service reads nothing more" \
	[ "$(stat_of "GET /v1/orgs/*/services")" = "$s0" ]
service example.com.web 1.0.0 "$R/edge/v1:1.0" >/dev/null
check "hub load: a change of the node's own service is followed" \
	wait_for 10 bash -c '[ -f "$1" ]' _ "$T/n13.store/blobs/sha256/$(digest_of v1)"
kill -TERM "$AGENT"
wait "$AGENT"
check "daemon: SIGTERM -> exit 0 ($?)" [ "$?" = 0 ]

finish
