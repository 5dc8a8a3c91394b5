#!/bin/sh
# Install every build and test dependency from Debian's packages.
# Idempotent: does nothing when everything is already there.
set -eu
BUILD="gcc make pkg-config libcurl4-openssl-dev libssl-dev libjansson-dev libarchive-dev zlib1g-dev libzstd-dev libmicrohttpd-dev libcmocka-dev"
TEST="procps docker-registry skopeo umoci busybox-static apache2-utils jq python3 python3-jwt python3-cryptography openssl curl time file systemd dpkg-dev mmdebstrap qemu-user gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf docker.io podman containerd runc crun bc faketime stargz-snapshotter iproute2 aria2"
want=""
for p in $BUILD $TEST ${EXTRA_DEPS:-}; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || want="$want $p"
done
[ -z "$want" ] && exit 0
echo "deps: installing$want" >&2
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
