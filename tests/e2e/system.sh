#!/usr/bin/env bash
# The Debian package under a real systemd: PID 1 in a podman container over
# an mmdebstrap rootfs (host network, so the test's registry and exchange on
# 127.0.0.1 are reachable).  The unit starts, reports READY, restarts after
# SIGKILL, stops cleanly, and its journal holds no secret.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
cd "$TOP"

BASE=$TOP/build/system-rootfs
INCLUDE=systemd,systemd-sysv,dbus,procps,libcurl4,libssl3,libjansson4,libarchive13,libzstd1,libmicrohttpd12,ca-certificates
# cached, and made again when the package list changes
if [ "$(cat "$BASE/.complete" 2>/dev/null)" != "$INCLUDE" ]; then
	mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
		| grep -v security | head -n 1 | tr -d ' ')
	rm -rf "$BASE"
	mkdir -p "$(dirname "$BASE")"
	mmdebstrap --mode=root --variant=minbase \
		--include="$INCLUDE" \
		bookworm "$BASE" "deb $mirror bookworm main" >"$T/mmdebstrap.log" 2>&1 || setup_failed mmdebstrap
	echo "$INCLUDE" >"$BASE/.complete"
fi
make -s deb ARCH=amd64 >/dev/null || setup_failed make deb
DEB=$(ls build/edgefetch_*_amd64.deb | head -n 1)
ROOT=$T/rootfs
cp -a "$BASE" "$ROOT"
cp "$DEB" "$ROOT/tmp/edgefetch.deb"
run 0 "the package installs in the rootfs" chroot "$ROOT" dpkg -i /tmp/edgefetch.deb
run 0 "the unit is enabled" chroot "$ROOT" systemctl enable edgefetch.service

# a registry, an exchange and a signed service, on the host's loopback
setup_pki alice s3cret
CR=alice:s3cret
python3 tests/e2e/mkimage.py image "$T/img" --tag 1.0 --busybox --note system >/dev/null
PR=$(free_port)
start_registry reg "$PR" htpasswd || setup_failed registry
R=127.0.0.1:$PR
push "$T/img:1.0" "$R/edge/app:1.0" --dest-creds "$CR"
start_exchange_sim || setup_failed exchange simulator
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/publisher.key" 2>/dev/null
openssl pkey -in "$T/publisher.key" -pubout -out "$ROOT/etc/edgefetch/trust/publisher.pem"
mkdir -p "$ROOT/etc/edgefetch/certs.d/$R"
cp "$T/ca/ca.crt" "$ROOT/etc/edgefetch/certs.d/$R/ca.crt"
cp "$T/ca/ca.crt" "$ROOT/etc/edgefetch/hub-ca.crt"
SID=$(pub service --org o --url example.org.app --version 1.0.0 --arch amd64 --image "$R/edge/app:1.0" \
	--key "$T/publisher.key" --creds "$CR" --cert-dir "$T/skcerts")
pub dockauth --service-id "$SID" --registry "$R" --username alice --token s3cret
pub pattern --org o --name p --service o/example.org.app/1.0.0/amd64 >/dev/null
NODE_TOKEN=node-token-$RANDOM$RANDOM
pub node --org o --id n1 --token "$NODE_TOKEN" --pattern o/p --arch amd64 >/dev/null
cat >>"$ROOT/etc/default/edgefetch" <<CONF
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=o
HZN_DEVICE_ID=n1
HZN_EXCHANGE_NODE_AUTH=n1:$NODE_TOKEN
HZN_MGMT_HUB_CERT_PATH=/etc/edgefetch/hub-ca.crt
EDGEFETCH_POLL_MIN=2
CONF

PODMAN="podman --root $T/podman/root --runroot $T/podman/run --tmpdir $T/podman/tmp --cgroup-manager=cgroupfs --events-backend=file"
pre_cleanup() {
	[ -n "${CID:-}" ] && $PODMAN rm -f -t 5 "$CID" >/dev/null 2>&1
	# conmon and podman's own cleanup outlive the rm, and that cleanup
	# mounts the storage again: wait for them before unmounting
	for _ in $(seq 100); do pgrep -f -- "$T/podman" >/dev/null || break; sleep 0.1; done
	umount_T
}
CID=$($PODMAN run -d --systemd=always --runtime runc --network host --ulimit nofile=1024:1024 \
	--ulimit nproc=1024:1024 --rootfs "$ROOT" /sbin/init) || setup_failed "podman run systemd"
in_c() { $PODMAN exec "$CID" "$@"; }
prop() { in_c systemctl show -p "$1" --value edgefetch.service; }
wait_for() { local end=$(($(date +%s) + $1)); shift; until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.3; done; }
is_active() { [ "$(prop ActiveState)" = active ]; }
synced() { grep -q "services ready" <<<"$(prop StatusText)"; }

check "systemd is PID 1 and boots" wait_for 30 bash -c "$PODMAN exec $CID systemctl is-system-running | grep -Eq 'running|degraded'"
check "the unit is active: READY=1 reached systemd (Type=notify)" wait_for 30 is_active
check "the unit reports its status" wait_for 30 synced
check "the agent fetched the pattern's image into StateDirectory" wait_for 10 bash -c \
	'jq -e ".services[0].ok == true" "$1/var/lib/edgefetch/state.json"' _ "$ROOT"
check "the store is private (0700)" [ "$(stat -c %a "$ROOT/var/lib/edgefetch")" = 700 ]
pid1=$(prop MainPID)
in_c systemctl kill -s SIGKILL edgefetch.service
restarted() { [ "$(prop NRestarts)" -ge 1 ] && is_active && [ "$(prop MainPID)" != "$pid1" ]; }
check "SIGKILL: systemd restarts it (Restart=on-failure)" wait_for 30 restarted
check "after the restart it is ready again" wait_for 30 is_active
run 0 "systemctl stop" in_c systemctl stop edgefetch.service
check "stopped cleanly (Result=success)" [ "$(prop Result)" = success ]
check "stopped: inactive" [ "$(prop ActiveState)" = inactive ]
in_c journalctl -u edgefetch.service --no-pager >"$T/journal" 2>&1
check "the journal has the unit's lines" grep -q edgefetch "$T/journal"
check "the journal holds no node token" bash -c '! grep -q "$1" "$2"' _ "$NODE_TOKEN" "$T/journal"
check "the journal holds no registry password" bash -c '! grep -q s3cret "$1"' _ "$T/journal"

finish
