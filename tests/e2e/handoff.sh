#!/usr/bin/env bash
# Handing verified images to a real dockerd, a real podman API service and
# a real containerd, each started here with its own directories.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
export EDGEFETCH_RETRY_BASE_MS=50

setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/img-tiny" --tag 1.0 --busybox >/dev/null
python3 "$M" image "$T/img-mid" --tag 1.0 --busybox --note mid --random-mb 16 --random-mb 16 --random-mb 16 >/dev/null
python3 "$M" image "$T/img-big" --tag 1.0 --busybox --note big --random-mb 64 --random-mb 64 --random-mb 64 >/dev/null
python3 "$M" image "$T/img-liar" --tag 1.0 --busybox --note liar --bad-diff-id >/dev/null
python3 "$M" image "$T/img-solo" --tag 1.0 --busybox --note solo >/dev/null
python3 "$M" image "$T/img-sync" --tag 1.0 --busybox --note sync --random-kb 64 >/dev/null
python3 "$M" image "$T/img-zstd" --tag 1.0 --busybox --note zstd --random-kb 300 >/dev/null
# v1 and v2 of a service: the same base layer, a new top one
python3 "$M" image "$T/img-v1" --tag 1.0 --busybox --note app --random-mb 4 --random-kb 64 >/dev/null
python3 "$M" image "$T/img-v2" --tag 2.0 --busybox --note app --random-mb 4 --random-kb 64 >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
for n in tiny mid big liar sync; do push "$T/img-$n:1.0" "$R/edge/$n:1.0" --dest-creds "$CR"; done
push "$T/img-zstd:1.0" "$R/edge/zstd:1.0" --dest-creds "$CR" --dest-compress-format zstd
push "$T/img-v1:1.0" "$R/edge/app:1.0" --dest-creds "$CR"
push "$T/img-v2:2.0" "$R/edge/app:2.0" --dest-creds "$CR"

# The runtimes, as root, with their own directories and sockets.
RT=$T/rt
mkdir -p "$RT/podman"
# Runtimes leave mounts and children behind: clear them before the temp dir goes.
pre_cleanup() {
	pkill -f "$RT/docker/exec" 2>/dev/null
	umount_T
}
start_dockerd "$RT"
start_containerd "$RT"
start_podman "$RT/podman" || setup_failed podman
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_docker() { for _ in $(seq 150); do curl -sf --unix-socket "$RT/docker.sock" http://d/_ping >/dev/null && return 0; sleep 0.1; done; return 1; }
wait_runtimes || setup_failed runtimes
sleep 0.5
CTR="ctr -a $RT/cd/containerd.sock -n edge"

S=$T/store
efp() { "$EF" pull --quiet --json --store "$S" --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
config_of() { skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | jq -r .config.digest; }
manifest_of() { echo "sha256:$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/$1:1.0" | sha256sum | cut -c1-64)"; }
store_ok() { (cd "$1/blobs/sha256" && for f in *; do [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done); }

# A power cut after a handoff leaves at least one whole copy: the runtime's
# copy is synced before the store drops its layers (the recorder of
# tests/crash logs the order of what the pull does to its store).
fsrec_build || setup_failed fsrec.so
mkdir -p "$T/store-sync"
FSREC_ROOT=$T/store-sync FSREC_LOG=$T/sync.log LD_PRELOAD=$FSREC_SO "$EF" pull --quiet --store "$T/store-sync" \
	--ca-file "$T/ca/ca.crt" --creds "$CR" --runtime "docker:$RT/docker.sock" "$R/edge/sync:1.0" >/dev/null 2>"$T/err"
first_seq() { jq -r "select($1) | .seq" "$T/sync.log" | head -1; }
dropped=$(first_seq ".op == \"unlink\" and (.path | startswith(\"$T/store-sync/blobs/sha256/\"))")
synced=$(first_seq '.op == "sync"')
check "docker: a handed image's layers leave the store only after a sync (the runtime's copy durable)" \
	test -n "$dropped" -a -n "$synced" -a "${synced:-0}" -lt "${dropped:-0}"

for img in tiny mid; do
	ID=$(config_of $img) MD=$(manifest_of $img)
	run 0 "docker: $img handed over" efp --runtime "docker:$RT/docker.sock" "$R/edge/$img:1.0"
	check "docker: $img sent" [ "$(jq -r .handoff.sent "$T/out")" = true ]
	check "docker: $img has the config digest as its ID" [ "$($DOCKER image inspect -f '{{.Id}}' "$R/edge/$img:1.0")" = "$ID" ]
	run 0 "podman: $img handed over" efp --runtime "podman:$PODMAN_SOCK" "$R/edge/$img:1.0"
	check "podman: $img has the config digest as its ID" [ "sha256:$($PODMAN image inspect -f '{{.Id}}' "$R/edge/$img:1.0")" = "$ID" ]
	run 0 "containerd: $img handed over" efp --runtime "containerd:$RT/cd/containerd.sock:edge" "$R/edge/$img:1.0"
	check "containerd: ctr lists $img with its manifest digest" bash -c "$CTR images ls | grep '$R/edge/$img:1.0' | grep -q '$MD'"
done
run 0 "docker: the same image again" efp --runtime "docker:$RT/docker.sock" "$R/edge/tiny:1.0"
check "docker: nothing sent the second time" [ "$(jq -r .handoff.sent "$T/out")" = false ]
run 0 "podman: the same image again" efp --runtime "podman:$PODMAN_SOCK" "$R/edge/tiny:1.0"
check "podman: nothing sent the second time" [ "$(jq -r .handoff.sent "$T/out")" = false ]
run 0 "containerd: the same image again" efp --runtime "containerd:$RT/cd/containerd.sock:edge" "$R/edge/tiny:1.0"
check "containerd: nothing sent the second time" [ "$(jq -r .handoff.sent "$T/out")" = false ]
check "containerd: a tagged image has its NAME@DIGEST record too" \
	bash -c "$CTR images ls -q | grep -qx '$R/edge/tiny@$(manifest_of tiny)'"
# k8s.io: the records the CRI plugin makes itself, so a kubelet finds the image
K8S="ctr -a $RT/cd/containerd.sock -n k8s.io"
run 0 "containerd k8s.io: the image handed over" efp --runtime "containerd:$RT/cd/containerd.sock:k8s.io" "$R/edge/tiny:1.0"
for n in "$R/edge/tiny:1.0" "$R/edge/tiny@$(manifest_of tiny)" "$(config_of tiny)"; do
	check "containerd k8s.io: record $n, labelled io.cri-containerd.image=managed" \
		bash -c "$K8S images ls | grep -F '$n ' | grep -q 'io.cri-containerd.image=managed'"
done
check "containerd k8s.io: unpacked for the default snapshotter" bash -c "[ -n \"\$($K8S snapshots ls -q 2>/dev/null || $K8S snapshots ls | tail -n +2)\" ]"
MD=$(manifest_of tiny)
run 0 "a digest-pinned image to docker" efp --runtime "docker:$RT/docker.sock" "$R/edge/tiny@$MD"
check "digest-pinned: named sha256-<hex> in docker" $DOCKER image inspect "$R/edge/tiny:sha256-${MD#sha256:}"
check "digest-pinned: docker answers to NAME@DIGEST" $DOCKER image inspect "$R/edge/tiny@$MD"
check "digest-pinned: the JSON names it" [ "$(jq -r .handoff.pinned "$T/out")" = "$R/edge/tiny@$MD" ]
check "a tagged image in docker answers to NAME@DIGEST too" $DOCKER image inspect "$R/edge/mid@$(manifest_of mid)"
python3 "$M" image "$T/img-pinned" --tag 1.0 --busybox --note pinned >/dev/null
push "$T/img-pinned:1.0" "$R/edge/pinned:1.0" --dest-creds "$CR"
PMD=$(manifest_of pinned)
run 0 "a digest-pinned image to podman" efp --runtime "podman:$PODMAN_SOCK" "$R/edge/pinned@$PMD"
check "digest-pinned: podman names it NAME@DIGEST" [ "$(jq -r .handoff.name "$T/out")" = "$R/edge/pinned@$PMD" ]
check "digest-pinned: podman answers to NAME@DIGEST" \
	curl -sf --unix-socket "$PODMAN_SOCK" "http://d/v4.0.0/libpod/images/$R/edge/pinned@$PMD/exists"
run 0 "the same digest-pinned image to docker" efp --runtime "docker:$RT/docker.sock" "$R/edge/pinned@$PMD"
python3 "$M" index "$T/img-multi" --tag 1.0 --busybox --note "multi on " \
	--platform linux/amd64 --platform linux/arm64/v8 >/dev/null
push "$T/img-multi:1.0" "$R/edge/multi:1.0" --dest-creds "$CR" --all
XMD=$(manifest_of multi)
run 0 "a multi-arch image pinned by its index digest to podman" efp --runtime "podman:$PODMAN_SOCK" "$R/edge/multi@$XMD"
check "index digest: podman answers to NAME@INDEX" \
	curl -sf --unix-socket "$PODMAN_SOCK" "http://d/v4.0.0/libpod/images/$R/edge/multi@$XMD/exists"
run 0 "a multi-arch image pinned by its index digest to containerd" \
	efp --runtime "containerd:$RT/cd/containerd.sock:edge" "$R/edge/multi@$XMD"
check "index digest: ctr lists NAME@INDEX with the index digest" \
	bash -c "$CTR images ls | grep '$R/edge/multi@$XMD' | grep -q 'index.v1+json'"

# A registry that will not talk to dockerd: the handoff goes on, and says
# that docker does not answer to NAME@DIGEST.
HP=$(free_port)
"$PY" "$TOP/tests/e2e/hostile.py" --port "$HP" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--layout "$T/img-solo" --scenario deny-docker >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$HP" || setup_failed hostile registry
run 0 "a registry that refuses dockerd: the handoff still succeeds" \
	efp --runtime "docker:$RT/docker.sock" "127.0.0.1:$HP/edge/solo:1.0"
check "refuses dockerd: no NAME@DIGEST claimed" [ "$(jq -r .handoff.pinned "$T/out")" = null ]
check "refuses dockerd: the note says so" bash -c 'jq -r .handoff.note "$1" | grep -q "dockerd could not record"' _ "$T/out"
# docker 20.10 reads no zstd: it gets the layers decompressed, the image ID unchanged
check "the zstd image's layers are zstd" bash -c "skopeo inspect --raw --creds '$CR' --cert-dir '$T/skcerts' \
	'docker://$R/edge/zstd:1.0' | jq -e '[.layers[].mediaType | endswith(\"+zstd\")] | all'"
run 0 "a zstd image to docker 20.10" efp --runtime "docker:$RT/docker.sock" "$R/edge/zstd:1.0"
check "zstd image: docker's ID is the config digest" \
	[ "$($DOCKER image inspect -f '{{.Id}}' "$R/edge/zstd:1.0")" = "$(config_of zstd)" ]
run 0 "the zstd image runs in docker" $DOCKER run --rm --network none "$R/edge/zstd:1.0" cat /etc/edgefetch-note
check "zstd image: it printed its own file" grep -qx zstd "$T/out"
run 0 "the small image runs in docker" $DOCKER run --rm --network none "$R/edge/tiny:1.0" echo hello-docker
check "docker: it printed" grep -q hello-docker "$T/out"
run 0 "the small image runs in podman" $PODMAN $PODMAN_RUN "$R/edge/tiny:1.0" echo hello-podman
check "podman: it printed" grep -q hello-podman "$T/out"
run 0 "the small image runs in containerd" $CTR run --rm "$R/edge/tiny:1.0" t1 echo hello-containerd
check "containerd: it printed" grep -q hello-containerd "$T/out"

# ---- bad cases ----
run 7 "socket missing -> exit 7" efp --runtime "docker:$RT/nothing.sock" "$R/edge/tiny:1.0"
check "socket missing: one line naming the socket" bash -c '[ "$(wc -l <"$1")" = 1 ] && grep -q nothing.sock "$1"' _ "$T/err"
run 7 "docker refuses an image whose config lies about its layers -> exit 7" efp --runtime "docker:$RT/docker.sock" "$R/edge/liar:1.0"
check "refused: says so" grep -q "refused" "$T/err"
# (podman 4.3 loads the liar from an OCI archive without checking its diff_ids: that is podman's check to make)
efp --runtime "podman:$PODMAN_SOCK" "$R/edge/big:1.0" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1.2
{ kill -9 "$PODMAN_PID"; wait "$PODMAN_PID"; } 2>/dev/null
wait "$pid"
rc=$?
check "podman stopped mid-load -> exit 7 ($rc)" [ "$rc" = 7 ]
check "podman stopped mid-load: one line on stderr" [ "$(wc -l <"$T/err")" = 1 ]
check "podman stopped mid-load: the store is intact" store_ok "$S"
start_podman "$RT/podman" || setup_failed podman restart
run 0 "podman back: the image goes over" efp --runtime "podman:$PODMAN_SOCK" "$R/edge/big:1.0"
check "refused: the store is intact" store_ok "$S"
efp --runtime "docker:$RT/docker.sock" "$R/edge/big:1.0" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1.2
{ kill -9 "$DOCKERD"; wait "$DOCKERD"; } 2>/dev/null
wait "$pid"
rc=$?
check "dockerd stopped mid-load -> exit 7 ($rc)" [ "$rc" = 7 ]
check "stopped mid-load: one line on stderr" [ "$(wc -l <"$T/err")" = 1 ]
check "stopped mid-load: the store is intact" store_ok "$S"
# its containerd, orphaned by the kill: gone before the next dockerd starts its own
pkill -9 -f "$RT/docker/exec" 2>/dev/null
for _ in $(seq 50); do pgrep -f "$RT/docker/exec" >/dev/null || break; sleep 0.1; done
rm -rf "$RT/docker/exec"
start_dockerd "$RT"
check "dockerd restarted" wait_docker
run 0 "dockerd back: the image goes over" efp --runtime "docker:$RT/docker.sock" "$R/edge/big:1.0"
check "dockerd back: the ID is right" [ "$($DOCKER image inspect -f '{{.Id}}' "$R/edge/big:1.0")" = "$(config_of big)" ]

# containerd killed while it pulls from the store: exit 7, the store whole, the next try works
efp --runtime "containerd:$RT/cd/containerd.sock:edge" "$R/edge/big:1.0" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1.5
{ kill -9 "$CONTAINERD"; wait "$CONTAINERD"; } 2>/dev/null
wait "$pid"
rc=$?
check "containerd killed mid-pull -> exit 7 ($rc)" [ "$rc" = 7 ]
check "containerd killed: one line on stderr" [ "$(wc -l <"$T/err")" = 1 ]
check "containerd killed: the store is intact" store_ok "$S"
check "containerd killed: no hosts dir of ours left in the store" bash -c '! ls -d "$1"/handoff-* 2>/dev/null' _ "$S"
start_containerd "$RT"
check "containerd restarted" wait_sock "$RT/cd/containerd.sock"
sleep 0.5
run 0 "containerd back: the image goes over" efp --runtime "containerd:$RT/cd/containerd.sock:edge" "$R/edge/big:1.0"

# An update that shares the base layer: the registry and the runtime see only what is new.
S2=$T/store-app
efu() { "$EF" pull --quiet --json --store "$S2" --ca-file "$T/ca/ca.crt" --creds "$CR" --runtime "containerd:$RT/cd/containerd.sock:edge" "$@"; }
run 0 "update: v1 to containerd" efu "$R/edge/app:1.0"
BASE=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:1.0" | jq '.layers[0].size')
V2=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:2.0" | jq '[.config.size] + [.layers[].size] | add')
run 0 "update: v2 to containerd" efu "$R/edge/app:2.0"
check "update: v2 fetched from the registry all but the shared base ($(jq .bytes_fetched "$T/out") of $V2, base $BASE)" \
	[ "$(jq .bytes_fetched "$T/out")" -eq "$((V2 - BASE))" ]
check "update: containerd took from the store all but the shared base ($(jq .handoff.sent_bytes "$T/out") of $V2)" \
	[ "$(jq .handoff.sent_bytes "$T/out")" -le "$((V2 - BASE))" ]
check "update: v2 in containerd under its name" bash -c "$CTR images ls -q | grep -qx '$R/edge/app:2.0'"
for rt in "docker:$RT/docker.sock" "podman:$PODMAN_SOCK"; do
	n=${rt%%:*}
	efr() { "$EF" pull --quiet --json --store "$S2" --ca-file "$T/ca/ca.crt" --creds "$CR" --runtime "$rt" "$@"; }
	run 0 "update, $n: v1" efr "$R/edge/app:1.0"
	run 0 "update, $n: v2" efr "$R/edge/app:2.0"
	check "update, $n: it took from the store all but the shared base ($(jq .handoff.sent_bytes "$T/out") of $V2)" \
		[ "$(jq .handoff.sent_bytes "$T/out")" -le "$((V2 - BASE))" ]
	if [ "$n" = docker ]; then id=$($DOCKER image inspect -f '{{.Id}}' "$R/edge/app:2.0"); else
		id=sha256:$($PODMAN image inspect -f '{{.Id}}' "$R/edge/app:2.0"); fi
	check "update, $n: the runtime's ID of v2 is its config digest" [ "$id" = "$(jq -r .config_digest "$T/out")" ]
done
# Stored once: the runtimes hold the layers, the store keeps manifests, configs and records.
check "stored once: the store holds under 5 % of the image ($(du -sb "$S2/blobs" | cut -f1) of $V2 bytes)" \
	[ "$(du -sb "$S2/blobs" | cut -f1)" -le "$((V2 / 20))" ]
run 0 "stored once: handing v2 again fetches nothing" efu "$R/edge/app:2.0"
check "stored once: nothing fetched" [ "$(jq .bytes_fetched "$T/out")" = 0 ]
$CTR images ls -q | grep "/edge/app" | xargs -r $CTR images rm --sync >/dev/null 2>&1
run 0 "a runtime that lost the image gets it back" efu "$R/edge/app:2.0"
check "lost image: containerd holds v2 again" bash -c "$CTR images ls -q | grep -qx '$R/edge/app:2.0'"
check "lost image: it was fetched again and sent" [ "$(jq .handoff.sent "$T/out")" = true ]
run 0 "--keep-layers keeps them" efu --keep-layers "$R/edge/app:2.0"
V2TOP=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/app:2.0" | jq -r '.layers[-1].digest')
check "--keep-layers: the layers are in the store, whole" bash -c '[ -f "$1/blobs/sha256/${2#sha256:}" ] && (cd "$1/blobs/sha256" && for f in *; do [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done)' _ "$S2" "$V2TOP"

# dockerd unpacks a layer once it and those below it are in: handed to it, the
# layers come one at a time, in order (on a link where one transfer carries a
# blob; on a thin one, the next starts once the last pieces of one are under
# way); a pull alone fetches several at once.
PP=$(free_port)
echo '{}' >"$T/fp-control"
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/fp-control" --stats "$T/fp-stats" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PP" || setup_failed faultproxy
$DOCKER rmi -f "$(config_of mid)" >/dev/null 2>&1
efo() { "$EF" pull --quiet --json --store "$T/store-order" --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
run 0 "in order: mid handed to docker through a proxy" efo --runtime "docker:$RT/docker.sock" "127.0.0.1:$PP/edge/mid:1.0"
check "in order: docker took it" [ "$(jq -r .handoff.sent "$T/out")" = true ]
# in_order [FROM]: in the proxy's blob GETs (from the FROM-th on), when each layer
# of mid is first asked, at least half of the one before it has been
in_order() {
	jq -e --argjson from "${1:-0}" --argjson m "$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/mid:1.0")" '
		[.blob_gets | to_entries[] | select(.key >= $from) | {i: .key, d: .value[0], r: .value[1]}] as $g
		| [$m.layers[] | {d: .digest, s: .size}] as $l
		| def asked($x; $before): [$g[] | select(.d == $x.d and .i < $before)
			| if .r == "" then $x.s else (.r | ltrimstr("bytes=") | split("-")) as $p
			  | (if $p[1] == "" then $x.s else ($p[1] | tonumber) + 1 end) - ($p[0] | tonumber) end] | add // 0;
		  [range(0; ($l | length) - 1) as $k
			| ([$g[] | select(.d == $l[$k + 1].d) | .i] | min) as $b
			| $b != null and asked($l[$k]; $b) * 2 >= $l[$k].s] | all' "$T/fp-stats" >/dev/null
}
out_of_order() { ! in_order "$1"; }
check "in order: each layer first asked once half of the one before it was" in_order
rm -rf "$T/store-order"
gets=$(jq '.blob_gets | length' "$T/fp-stats")
run 0 "in order: the same pull without a runtime" efo "127.0.0.1:$PP/edge/mid:1.0"
check "in order: without one, several at once ($(jq .blobs_in_flight_max "$T/fp-stats"))" \
	[ "$(jq .blobs_in_flight_max "$T/fp-stats")" -gt 1 ]
check "in order: without one, a layer is asked before half of the one before it" out_of_order "$gets"

# ---- the agent hands what the pattern names to docker; an unchanged pattern sends nothing ----
start_exchange_sim || setup_failed exchange simulator
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/publisher.key" 2>/dev/null
mkdir -p "$T/trust" "$T/certs.d/$R"
openssl pkey -in "$T/publisher.key" -pubout -out "$T/trust/publisher.pem"
cp "$T/ca/ca.crt" "$T/certs.d/$R/"
SID=$(pub service --org o --url example.org.mid --version 1.0.0 --arch amd64 --image "$R/edge/mid:1.0" \
	--key "$T/publisher.key" --creds "$CR" --cert-dir "$T/skcerts")
pub dockauth --service-id "$SID" --registry "$R" --username alice --token s3cret
pub pattern --org o --name p --service o/example.org.mid/1.0.0/amd64 >/dev/null
pub node --org o --id n --token t --pattern o/p --arch amd64 >/dev/null
cat >"$T/agent.conf" <<CONF
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=o
HZN_DEVICE_ID=n
HZN_EXCHANGE_NODE_AUTH=n:t
HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt
EDGEFETCH_STORE=$T/agent-store
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/certs.d
EDGEFETCH_RUNTIME=docker:$RT/docker.sock
CONF
$DOCKER rmi -f "$R/edge/mid@$(manifest_of mid)" >/dev/null 2>&1
$DOCKER rmi -f "$(config_of mid)" >/dev/null 2>&1
run 0 "agent: the pattern's image handed to docker" "$EF" agent --config "$T/agent.conf" --once
check "agent: it was sent" [ "$(jq -r '.services[0].images[0].handoff.sent' "$T/agent-store/state.json")" = true ]
check "agent: docker holds it under its pinned name" $DOCKER image inspect "$R/edge/mid:sha256-$(manifest_of mid | cut -c8-)"
check "agent: docker answers to the deployment's own NAME@DIGEST (dockauth credentials)" \
	$DOCKER image inspect "$R/edge/mid@$(manifest_of mid)"
check "agent: the state says so, and holds no password" \
	bash -c '[ "$(jq -r ".services[0].images[0].handoff.pinned" "$1")" = "$2" ] && ! grep -q s3cret "$1"' _ \
	"$T/agent-store/state.json" "$R/edge/mid@$(manifest_of mid)"
run 0 "agent: the same pattern again" "$EF" agent --config "$T/agent.conf" --once
check "agent: nothing fetched" [ "$(jq -r '.services[0].images[0].bytes_fetched' "$T/agent-store/state.json")" = 0 ]
check "agent: nothing sent" [ "$(jq -r '.services[0].images[0].handoff.sent' "$T/agent-store/state.json")" = false ]
sed -i "s|^EDGEFETCH_RUNTIME=.*|EDGEFETCH_RUNTIME=docker:$RT/gone.sock|" "$T/agent.conf"
run 7 "agent: a runtime that is down -> exit 7, reported" "$EF" agent --config "$T/agent.conf" --once
check "agent: the failure is in the state" [ "$(jq -r '.services[0].code' "$T/agent-store/state.json")" = 7 ]

# EDGEFETCH_PRUNE: the pattern moves from mid to tiny; what the agent created for mid goes,
# an image someone else put in docker stays.
sed -i "s|^EDGEFETCH_RUNTIME=.*|EDGEFETCH_RUNTIME=docker:$RT/docker.sock|" "$T/agent.conf"
echo "EDGEFETCH_PRUNE=true" >>"$T/agent.conf"
$DOCKER tag "$(config_of tiny)" user/keep:1
SID2=$(pub service --org o --url example.org.tiny --version 1.0.0 --arch amd64 --image "$R/edge/tiny:1.0" \
	--key "$T/publisher.key" --creds "$CR" --cert-dir "$T/skcerts")
pub dockauth --service-id "$SID2" --registry "$R" --username alice --token s3cret
pub pattern --org o --name p --service o/example.org.tiny/1.0.0/amd64 >/dev/null
MIDNAME="$R/edge/mid:sha256-$(manifest_of mid | cut -c8-)"
MIDLAYER=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/mid:1.0" | jq -r '.layers[1].digest' | cut -c8-)
check "prune: before, the store holds mid's layers" [ -f "$T/agent-store/blobs/sha256/$MIDLAYER" ]
run 0 "prune: the agent follows the new pattern" "$EF" agent --config "$T/agent.conf" --once
check "prune: the name the agent gave mid is gone from docker" bash -c "! $DOCKER image inspect '$MIDNAME'"
check "prune: an image the agent did not create is untouched" $DOCKER image inspect user/keep:1
check "prune: the new image is in docker" $DOCKER image inspect "$R/edge/tiny:sha256-$(manifest_of tiny | cut -c8-)"
check "prune: mid's blobs left the store" [ ! -e "$T/agent-store/blobs/sha256/$MIDLAYER" ]
check "prune: tiny's blobs are still there" [ -f "$T/agent-store/blobs/sha256/$(manifest_of tiny | cut -c8-)" ]

# With the registry gone, the runtimes start the images by the names a deployment uses.
manifest_of tiny >"$T/tiny-md"
kill "$reg_PID"
wait "$reg_PID" 2>/dev/null
run 0 "registry stopped: docker runs NAME@DIGEST" $DOCKER run --rm --network none "$R/edge/pinned@$PMD" cat /etc/edgefetch-note
check "registry stopped: docker ran the pinned image" grep -qx pinned "$T/out"
run 0 "registry stopped: podman runs NAME@DIGEST" $PODMAN $PODMAN_RUN "$R/edge/pinned@$PMD" cat /etc/edgefetch-note
check "registry stopped: it printed the image's own file" grep -qx pinned "$T/out"
run 0 "registry stopped: podman runs NAME@INDEX" $PODMAN $PODMAN_RUN "$R/edge/multi@$XMD" cat /etc/edgefetch-note
check "registry stopped: podman ran the amd64 image" grep -qx "multi on linux/amd64" "$T/out"
run 0 "registry stopped: containerd k8s.io runs NAME@DIGEST" $K8S run --rm "$R/edge/tiny@$(cat "$T/tiny-md")" t3 echo hello-k8s
check "registry stopped: k8s.io printed" grep -q hello-k8s "$T/out"
run 0 "registry stopped: containerd runs NAME@INDEX" $CTR run --rm "$R/edge/multi@$XMD" t2 cat /etc/edgefetch-note
check "registry stopped: containerd ran the amd64 image" grep -qx "multi on linux/amd64" "$T/out"

finish
