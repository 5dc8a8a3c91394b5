#!/usr/bin/env bash
# make check-newcomer: exactly a newcomer's first minutes.  A fresh Debian
# 12 root filesystem (mmdebstrap minbase, plus git and make: what a user
# needs to clone and to type the commands; cached under build/), a
# `git clone` of this checkout's HEAD into it, and the README's two fenced
# commands run there in one container, as root, privileged, on the host's
# network, as on a newcomer's own machine.  Fails if either command fails.
set -u
source "$(dirname "$0")/e2e/lib.sh"
source "$(dirname "$0")/e2e/testlib.sh"
cd "$TOP"

# The README's two commands: the first ```sh block after "## The two commands".
mapfile -t CMDS < <(awk '/^## The two commands/ {f = 1; next}
	f && /^```sh/ {b = 1; next}
	b && /^```/ {exit}
	b {sub(/[ \t]*#.*/, ""); if ($0 != "") print}' README.md)
check "the README gives two commands (${CMDS[*]})" [ "${#CMDS[@]}" = 2 ]
[ "${#CMDS[@]}" = 2 ] || { finish; exit 1; }

BASE=$TOP/build/newcomer-rootfs
INCLUDE=git,make
if [ "$(cat "$BASE/.complete" 2>/dev/null)" != "$INCLUDE" ]; then
	mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
		| grep -v security | head -n 1 | tr -d ' ')
	rm -rf "$BASE"
	mkdir -p "$(dirname "$BASE")"
	mmdebstrap --mode=root --variant=minbase --include="$INCLUDE" bookworm "$BASE" \
		"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
		"deb ${mirror%/debian*}/debian-security bookworm-security main" >"$T/mmdebstrap.log" 2>&1 \
		|| { tail -n 5 "$T/mmdebstrap.log" >&2; setup_failed mmdebstrap; }
	echo "$INCLUDE" >"$BASE/.complete"
fi
ROOT=$T/rootfs
cp -a "$BASE" "$ROOT"
rm -f "$ROOT/.complete"
run 0 "git clone of HEAD ($(git rev-parse --short HEAD))" git clone -q "$TOP" "$ROOT/root/edgefetch"
check "the clone has no sibling directories" [ "$(ls "$ROOT/root")" = edgefetch ]

PODMAN="podman --root $T/podman/root --runroot $T/podman/run --tmpdir $T/podman/tmp --cgroup-manager=cgroupfs --events-backend=file"
pre_cleanup() {
	$PODMAN rm -f -a -t 5 >/dev/null 2>&1
	umount_T
}
CID=$($PODMAN run -d --privileged --network host --runtime runc --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096 --systemd=false \
	--env HOME=/root --env TERM=dumb --env LANG=C.UTF-8 --rootfs "$ROOT" sleep infinity) \
	|| setup_failed "podman run"

for c in "${CMDS[@]}"; do
	start=$(date +%s)
	echo "# $c (in the container, output in build/newcomer-$(echo "$c" | tr ' ' '-').log)"
	$PODMAN exec -w /root/edgefetch "$CID" bash -c "$c" </dev/null >"$TOP/build/newcomer-$(echo "$c" | tr ' ' '-').log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	if [ "$rc" = 0 ]; then ok "a fresh machine: '$c' passes (${took} s)"; else
		not_ok "a fresh machine: '$c' passes (exit $rc after ${took} s)"
		tail -n 25 "$TOP/build/newcomer-$(echo "$c" | tr ' ' '-').log" | sed 's/^/#   /'
	fi
done
finish
