#!/usr/bin/env bash
# The agent against the exchange simulator and the real registry: a
# pattern with two services (one requires the other), signatures made by
# the openssl CLI, dockauths, exchange failures, change polling, SIGTERM.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
export EDGEFETCH_RETRY_BASE_MS=50

setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
for n in web db bad v2 v3; do python3 "$M" image "$T/img-$n" --tag 1.0 --busybox --note "$n" >/dev/null; done
python3 "$M" image "$T/img-slow" --tag 1.0 --note slow --random-mb 12 --random-mb 12 >/dev/null
PR=$(free_port) PP=$(free_port)
REG_ACCESSLOG_OFF=false start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
for n in web db bad v2 v3 slow; do push "$T/img-$n:1.0" "$R/edge/$n:1.0" --dest-creds "$CR"; done
start_exchange_sim tls || setup_failed exchange simulator
sim() { curl -sSf --cacert "$T/ca/ca.crt" -H 'Content-Type: application/json' "$SIM/_sim/$1" ${2:+-d "$2"}; }

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/publisher.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/intruder.key" 2>/dev/null
mkdir -p "$T/trust" "$T/certs.d/$R"
openssl pkey -in "$T/publisher.key" -pubout -out "$T/trust/publisher.pem"
cp "$T/ca/ca.crt" "$T/certs.d/$R/ca.crt"
service() { # service URL VERSION IMAGE [more hzn_publish args]
	pub service --org myorg --url "$1" --version "$2" --arch amd64 --image "$3" --key "$T/publisher.key" \
		--creds "$CR" --cert-dir "$T/skcerts" "${@:4}"
}
digest_of() { skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | sha256sum | cut -c1-64; }

DB=$(service example.com.db 1.2.0 "$R/edge/db:1.0")
WEB=$(service example.com.web 2.0.0 "$R/edge/web:1.0" --requires "myorg/example.com.db/[1.0.0,2.0.0)")
for id in "$DB" "$WEB"; do pub dockauth --service-id "$id" --registry "$R" --username alice --token s3cret; done
pub pattern --org myorg --name pat --service myorg/example.com.web/2.0.0/amd64 >/dev/null
pub node --org myorg --id node1 --token nodetok --pattern myorg/pat --arch amd64 >/dev/null

conf() { # conf FILE STORE [extra lines]
	cat >"$1" <<CONF
# edgefetch agent, test configuration
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=myorg
HZN_DEVICE_ID=node1
HZN_EXCHANGE_NODE_AUTH="node1:nodetok"
HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt
EDGEFETCH_STORE=$2
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/certs.d
EDGEFETCH_POLL_MIN=1
EDGEFETCH_POLL_MAX=2
EDGEFETCH_EXCHANGE_TIMEOUT=2
${3:-}
CONF
}
state() { jq -r "$1" "$S/state.json"; }

# ---- one sync of a pattern with two services ----
S=$T/store1
conf "$T/a.conf" "$S"
run 0 "agent --once: pattern with two services, one requiring the other" "$EF" agent --config "$T/a.conf" --once
check "both services in the state" [ "$(state '.services | length')" = 2 ]
check "the required service resolved from its version range" [ "$(state '.services[] | select(.url=="example.com.db") | .version')" = 1.2.0 ]
check "web image in the store" [ -f "$S/blobs/sha256/$(digest_of web)" ]
check "db image in the store" [ -f "$S/blobs/sha256/$(digest_of db)" ]
check "deployments verified with the trusted key" [ "$(state '[.services[].verified_with] | unique | length')" = 1 ]
run 0 "status" "$EF" status --config "$T/a.conf"
check "status names the pattern and the images" bash -c 'grep -q "myorg/pat" "$1" && grep -q "edge/web@sha256" "$1"' _ "$T/out"
run 0 "status --json" "$EF" status --config "$T/a.conf" --json
check "status --json is the state" jq -e '.services | length == 2' "$T/out"
check "state and logs hold no token" bash -c '! grep -rq "nodetok\|s3cret" "$1/state.json" "$2"' _ "$S" "$T/err"
# a power cut's leftovers in the agent's store: start-up removes them, status says so
echo x >"$S/.images.json.0123456789ab.tmp" && touch -d '2 hours ago' "$S/.images.json.0123456789ab.tmp"
run 0 "a second sync fetches nothing new" "$EF" agent --config "$T/a.conf" --once
check "agent start: a power cut's temporary file is gone" [ ! -e "$S/.images.json.0123456789ab.tmp" ]
run 0 "status after a start that recovered" "$EF" status --config "$T/a.conf"
check "status says what recovery removed at start" grep -q "recovery:  at start .*removed what a crash left: 1 temporary files" "$T/out"
check "second sync: no bytes fetched" [ "$(state '[.services[].images[].bytes_fetched] | add')" = 0 ]
# A machine without ca-certificates (a fresh minbase): the hub CA and the registry's alone.
conf "$T/noca.conf" "$T/store-noca"
mkdir -p "$T/empty"
run 0 "no system CA bundle: the hub CA is enough" unshare -m sh -c \
	'mount --bind "$1" /etc/ssl/certs && exec "$2" agent --config "$3" --once' _ "$T/empty" "$EF" "$T/noca.conf"

# ---- a service whose signature is bad is refused, the others go on ----
BADID=$(service example.com.bad 1.0.0 "$R/edge/bad:1.0" --bad-signature)
pub dockauth --service-id "$BADID" --registry "$R" --username alice --token s3cret
pub pattern --org myorg --name pat --service myorg/example.com.web/2.0.0/amd64 --service myorg/example.com.bad/1.0.0/amd64 >/dev/null
S=$T/store2
conf "$T/b.conf" "$S"
run 5 "bad signature -> exit 5" "$EF" agent --config "$T/b.conf" --once
check "bad signature: one line on stderr naming the service" grep -q "example.com.bad.*signature" "$T/err"
check "bad signature: nothing of its image fetched" [ ! -e "$S/blobs/sha256/$(digest_of bad)" ]
check "bad signature: the other services were fetched" [ -f "$S/blobs/sha256/$(digest_of web)" ]
check "bad signature: reported in the state" [ "$(state '.services[] | select(.url=="example.com.bad") | .code')" = 5 ]
# signed by a key we do not trust
service example.com.bad 1.0.0 "$R/edge/bad:1.0" --key "$T/intruder.key" >/dev/null
run 5 "a deployment signed by an untrusted key -> exit 5" "$EF" agent --config "$T/b.conf" --once
check "untrusted key: nothing of its image fetched" [ ! -e "$S/blobs/sha256/$(digest_of bad)" ]
# with exchange keys trusted (anax's default), the publisher's uploaded key counts
openssl pkey -in "$T/intruder.key" -pubout -out "$T/intruder.pem"
pub servicekey --service-id "$BADID" --name intruder.pem --pem "$T/intruder.pem"
conf "$T/bx.conf" "$S" "EDGEFETCH_TRUST_EXCHANGE_KEYS=true"
run 0 "EDGEFETCH_TRUST_EXCHANGE_KEYS=true trusts keys published with the service" "$EF" agent --config "$T/bx.conf" --once
pub pattern --org myorg --name pat --service myorg/example.com.web/2.0.0/amd64 >/dev/null

# ---- registry credentials from dockauths ----
NOAUTH=$(service example.com.noauth 1.0.0 "$R/edge/v2:1.0")
pub pattern --org myorg --name pat2 --service myorg/example.com.noauth/1.0.0/amd64 >/dev/null
pub node --org myorg --id node2 --token tok2 --pattern myorg/pat2 --arch amd64 >/dev/null
S=$T/store3
conf "$T/c.conf" "$S"
sed -i 's/node1/node2/g; s/nodetok/tok2/' "$T/c.conf"
run 3 "no dockauth for a private registry -> exit 3" "$EF" agent --config "$T/c.conf" --once
pub dockauth --service-id "$NOAUTH" --registry "$R" --username alice --token wrong
run 3 "wrong dockauth -> exit 3" "$EF" agent --config "$T/c.conf" --once
check "wrong dockauth: the token is not in the error" bash -c '! grep -q wrong "$1"' _ "$T/err"
sim dockauth "{\"service_id\":\"$NOAUTH\",\"clear\":true}" >/dev/null
pub dockauth --service-id "$NOAUTH" --registry "$R" --username alice --token s3cret
run 0 "right dockauth -> exit 0" "$EF" agent --config "$T/c.conf" --once

# ---- a bad node token ----
sed 's/node1:nodetok/node1:nope/' "$T/a.conf" >"$T/badtok.conf"
run 3 "a bad node token -> exit 3" "$EF" agent --config "$T/badtok.conf" --once

# ---- the exchange fails: retries, then the last state is kept ----
S=$T/store1
sim fault '{"mode":"status","status":500,"count":1000}' >/dev/null
run 6 "exchange answering 500 -> exit 6 after retries" "$EF" agent --config "$T/a.conf" --once
check "500s: the services and images of the last sync are kept" [ "$(state '.services | length')" = 2 ]
check "500s: state says the exchange is unreachable" [ "$(state .exchange.ok)" = false ]
"$EF" status --config "$T/a.conf" >"$T/out" 2>&1
check "500s: status says so" grep -q "UNREACHABLE" "$T/out"
check "500s: the node was retried" [ "$(curl -sS --cacert "$T/ca/ca.crt" "$SIM/_sim/stats" | jq '."GET /v1/orgs/*/nodes"')" -ge 3 ]
sim fault '{"mode":"hang","seconds":4,"count":1000}' >/dev/null
run 6 "exchange that hangs -> timeouts, exit 6" "$EF" agent --config "$T/a.conf" --once
sim fault '{"mode":"none"}' >/dev/null
run 0 "exchange back: the next sync succeeds" "$EF" agent --config "$T/a.conf" --once
check "exchange back: state says ok" [ "$(state .exchange.ok)" = true ]

# ---- daemon mode: changes are noticed ----
S=$T/store4
conf "$T/d.conf" "$S" "EDGEFETCH_CHANGE_RETENTION=3"
# systemd's side of the notify protocol: a datagram socket that logs what it hears
"$PY" -c 'import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True: f.write(s.recv(4096).decode() + "\n")' "$T/notify.sock" "$T/notify.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000 "$EF" agent --config "$T/d.conf" >"$T/daemon.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
	local end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}
has_blob() { [ -f "$S/blobs/sha256/$1" ]; }
check "daemon: first sync" wait_for 20 has_blob "$(digest_of web)"
check "notify: READY=1 sent" grep -q "^READY=1" "$T/notify.log"
check "notify: a STATUS line after the sync" wait_for 5 grep -q "^STATUS=synced: 2 of 2 services ready" "$T/notify.log"
check "notify: watchdog pings" wait_for 5 grep -q "^WATCHDOG=1" "$T/notify.log"
# a pattern edit (nodes get no change record for it): a new version of web
WEB2=$(service example.com.web 2.1.0 "$R/edge/v2:1.0" --requires "myorg/example.com.db/[1.0.0,2.0.0)")
pub dockauth --service-id "$WEB2" --registry "$R" --username alice --token s3cret
pub pattern --org myorg --name pat --service myorg/example.com.web/2.1.0/amd64 >/dev/null
check "daemon: a pattern edit is fetched within two poll intervals" wait_for 6 has_blob "$(digest_of v2)"
# a service update (a change record): same version, new image
service example.com.web 2.1.0 "$R/edge/v3:1.0" --requires "myorg/example.com.db/[1.0.0,2.0.0)" >/dev/null
check "daemon: a service update is fetched within two poll intervals" wait_for 6 has_blob "$(digest_of v3)"
check "daemon: heartbeats reach the exchange" bash -c 'curl -sS --cacert "$1" "$2/_sim/nodes" | jq -e ".\"myorg/node1\".lastHeartbeat != null"' _ "$T/ca/ca.crt" "$SIM"
# an outage longer than the exchange keeps changes: a change made meanwhile is gone when we return
sim ttl '{"seconds":2}' >/dev/null
sim fault '{"mode":"down","count":100000}' >/dev/null
sleep 2
check "daemon: the outage is reported" wait_for 10 bash -c '[ "$(jq -r .exchange.ok "$1/state.json")" = false ]' _ "$S"
check "daemon: status says since when the exchange is unreachable (a poll's failure, not a sync's)" \
	bash -c '"$1" status --config "$2" | grep -qE "UNREACHABLE since [0-9]{4}-[0-9]{2}-[0-9]{2}T"' _ "$EF" "$T/d.conf"
python3 "$M" image "$T/img-v4" --tag 1.0 --busybox --note v4 >/dev/null
push "$T/img-v4:1.0" "$R/edge/v4:1.0" --dest-creds "$CR"
service example.com.web 2.1.0 "$R/edge/v4:1.0" --requires "myorg/example.com.db/[1.0.0,2.0.0)" >/dev/null
sleep 4 # the change record expires
sim fault '{"mode":"none"}' >/dev/null
check "daemon: after an outage longer than the change retention, a full resync" wait_for 10 has_blob "$(digest_of v4)"
check "daemon: images of the earlier sync are still there" has_blob "$(digest_of web)"
# SIGHUP rereads the configuration: an empty trust dir now refuses every deployment
mkdir -p "$T/empty-trust"
sed -i "s|^EDGEFETCH_TRUST_DIR=.*|EDGEFETCH_TRUST_DIR=$T/empty-trust|" "$T/d.conf"
kill -HUP "$AGENT"
check "daemon: SIGHUP rereads the configuration" wait_for 10 bash -c '[ "$(jq -r ".services[0].code" "$1/state.json")" = 5 ]' _ "$S"
kill -TERM "$AGENT"
wait "$AGENT"
check "daemon: SIGTERM -> exit 0 ($?)" [ "$?" = 0 ]
check "notify: STOPPING=1 on SIGTERM" grep -q "^STOPPING=1" "$T/notify.log"

# ---- SIGTERM mid-pull, then resume ----
echo '{"link_rate": 2000000}' >"$T/control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PP"
mkdir -p "$T/certs.d/127.0.0.1:$PP"
cp "$T/ca/ca.crt" "$T/certs.d/127.0.0.1:$PP/"
SLOW=$(service example.com.slow 1.0.0 "127.0.0.1:$PP/edge/slow:1.0")
pub dockauth --service-id "$SLOW" --registry "127.0.0.1:$PP" --username alice --token s3cret
pub pattern --org myorg --name pat3 --service myorg/example.com.slow/1.0.0/amd64 >/dev/null
pub node --org myorg --id node3 --token tok3 --pattern myorg/pat3 --arch amd64 >/dev/null
S=$T/store5
conf "$T/e.conf" "$S"
sed -i 's/node1/node3/g; s/nodetok/tok3/' "$T/e.conf"
"$EF" agent --config "$T/e.conf" >"$T/daemon2.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
partial() { [ "$(du -sb "$S/ingest" 2>/dev/null | cut -f1)" -gt 2000000 ]; }
check "SIGTERM mid-pull: the pull was under way" wait_for 20 partial
# the link goes down mid-pull: status says the pull waits for it, not that it failed
echo '{"link_rate": 2000000, "stall": true}' >"$T/control"
says() { "$EF" status --config "$T/e.conf" 2>/dev/null | grep -q "$1"; }
check "link down mid-pull: status says WAITING for the link" wait_for 20 says "WAITING for the link since"
echo '{"link_rate": 2000000}' >"$T/control"
check "link back: status no longer says it waits" wait_for 20 bash -c '! "$1" status --config "$2" | grep -q "WAITING for the link"' _ "$EF" "$T/e.conf"
kill -TERM "$AGENT"
wait "$AGENT"
rc=$?
check "SIGTERM mid-pull: exit 0 ($rc)" [ "$rc" = 0 ]
check "SIGTERM mid-pull: partial blobs kept" partial
echo '{}' >"$T/control"
run 0 "the next start completes" "$EF" agent --config "$T/e.conf" --once
check "the next start resumed instead of starting over" \
	[ "$(state '.services[0].images[0].bytes_fetched')" -lt "$(state '.services[0].images[0].size')" ]

# ---- download windows: outside one the agent verifies and waits; inside it fetches ----
hhmm() { printf '%02d:%02d' $(((($1 % 1440) + 1440) % 1440 / 60)) $(((($1 % 1440) + 1440) % 60)); }
now=$((10#$(date +%H) * 60 + 10#$(date +%M)))
OUT="$(hhmm $((now + 120)))-$(hhmm $((now + 180)))"
IN="$(hhmm $((now - 60)))-$(hhmm $((now + 60)))"
blob_gets() { grep -c '"GET /v2/[^ ]*/blobs/' "$T/reg/log"; }
S=$T/store6
conf "$T/w.conf" "$S" "EDGEFETCH_FETCH_WINDOW=$OUT"
before=$(blob_gets)
run 0 "window $OUT, now outside it: agent --once exits 0" "$EF" agent --config "$T/w.conf" --once
check "outside the window: the registry's access log shows no blob request ($before -> $(blob_gets))" [ "$(blob_gets)" = "$before" ]
check "outside the window: nothing in the store's blobs but manifests" [ -z "$(ls "$S/ingest" 2>/dev/null)" ]
check "outside the window: the deployments were verified all the same" [ "$(state '[.services[].verified_with] | map(select(. != null)) | length')" = 2 ]
check "outside the window: the state says until when it waits" [ "$(state '[.services[].waits_until] | unique | join(",")')" = "${OUT%-*}" ]
run 0 "outside the window: status" "$EF" status --config "$T/w.conf"
check "status says what waits and until when" grep -q "WAITING for the download window until ${OUT%-*}" "$T/out"
conf "$T/w.conf" "$S" "EDGEFETCH_FETCH_WINDOW=$IN"
run 0 "window $IN, now inside it: agent --once fetches" "$EF" agent --config "$T/w.conf" --once
check "inside the window: blob requests in the access log" [ "$(blob_gets)" -gt "$before" ]
check "inside the window: the images are in the store" has_blob "$(digest_of db)"
check "inside the window: status names the registry the blobs came from" \
	bash -c '"$1" status --config "$2" | grep -q "from  $3 ("' _ "$EF" "$T/w.conf" "$R"
conf "$T/w.conf" "$S" "EDGEFETCH_FETCH_WINDOW=25:00-01:00"
run 2 "EDGEFETCH_FETCH_WINDOW=25:00-01:00 -> exit 2" "$EF" agent --config "$T/w.conf" --once
check "a bad window is named" grep -q "EDGEFETCH_FETCH_WINDOW '25:00-01:00'" "$T/err"

# ---- a transfer running when the window ends stops with its bytes kept, and resumes in the next ----
# (the agent's clock is set by libfaketime to 3 s before the window ends)
S=$T/store7
echo '{"link_rate": 2000000}' >"$T/control"
conf "$T/w2.conf" "$S" "EDGEFETCH_FETCH_WINDOW=00:00-02:00"
sed -i 's/node1/node3/g; s/nodetok/tok3/' "$T/w2.conf"
ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0 TZ=UTC run 0 "window ends mid-transfer: agent --once exits 0" \
	faketime -f "@$(date -d tomorrow +%F) 01:59:57" "$EF" agent --config "$T/w2.conf" --once
check "window ends mid-transfer: partial blobs kept" partial
check "window ends mid-transfer: the state waits until the next window" [ "$(state '.services[0].waits_until')" = 00:00 ]
echo '{}' >"$T/control"
conf "$T/w2.conf" "$S" "EDGEFETCH_FETCH_WINDOW=$IN"
sed -i 's/node1/node3/g; s/nodetok/tok3/' "$T/w2.conf"
run 0 "in the next window the pull completes" "$EF" agent --config "$T/w2.conf" --once
check "in the next window it resumed from the bytes kept" \
	[ "$(state '.services[0].images[0].bytes_fetched')" -lt "$(state '.services[0].images[0].size')" ]

finish
