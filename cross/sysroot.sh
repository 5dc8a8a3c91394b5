#!/bin/sh
# cross/sysroot.sh ARCH DIR: a Debian bookworm sysroot for ARCH (arm64, armhf)
# with the -dev packages edgefetch builds against, made with mmdebstrap from
# the mirror apt already uses (no host name is written here).
set -eu
arch=$1 dir=$2
include=libc6-dev,libcurl4-openssl-dev,libssl-dev,libjansson-dev,libarchive-dev,zlib1g-dev,libzstd-dev,libmicrohttpd-dev,libcmocka-dev
# cached, and made again when the package list changes
[ "$(cat "$dir/.complete" 2>/dev/null)" = "$include" ] && exit 0
mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
	| grep -v security | head -n 1 | tr -d ' ')
[ -n "$mirror" ] || { echo "cross: no Debian mirror found in apt's sources" >&2; exit 2; }
rm -rf "$dir"
mkdir -p "$dir"
mmdebstrap --mode=root --variant=extract --arch="$arch" \
	--include="$include" \
	bookworm "$dir" "deb $mirror bookworm main" >/dev/null 2>&1
echo "$include" >"$dir/.complete"
