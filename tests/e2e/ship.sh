#!/usr/bin/env bash
# Shipping: make install, the systemd unit (verify, security exposure),
# the Debian package, and the arm64/armhf cross builds with their unit
# tests under qemu-user.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"
cd "$TOP"

R=$T/root
run 0 "make install DESTDIR PREFIX=/usr" make -s install DESTDIR="$R" PREFIX=/usr
check "installed: the binary, 0755" [ "$(stat -c %a "$R/usr/bin/edgefetch")" = 755 ]
check "installed: the unit, 0644" [ "$(stat -c %a "$R/lib/systemd/system/edgefetch.service")" = 644 ]
check "installed: the default configuration, 0600 (it will hold the node token)" [ "$(stat -c %a "$R/etc/default/edgefetch")" = 600 ]
check "installed: the configuration is all comments" bash -c '! grep -v "^#" "$1" | grep -q .' _ "$R/etc/default/edgefetch"
check "the unit runs the installed binary" grep -q "^ExecStart=/usr/bin/edgefetch agent" "$R/lib/systemd/system/edgefetch.service"
echo "# keep me" >"$R/etc/default/edgefetch"
run 0 "make install again" make -s install DESTDIR="$R" PREFIX=/usr
check "make install never overwrites a configuration" grep -q "keep me" "$R/etc/default/edgefetch"
run 0 "make install PREFIX=/usr/local" make -s install DESTDIR="$T/local" PREFIX=/usr/local
check "PREFIX=/usr/local: the unit points there" grep -q "^ExecStart=/usr/local/bin/edgefetch" "$T/local/usr/local/lib/systemd/system/edgefetch.service"

# systemd-analyze verify checks ExecStart exists: point the unit at the built binary.
mkdir -p "$T/unit"
sed "s|@BINDIR@|$TOP|" systemd/edgefetch.service.in >"$T/unit/edgefetch.service"
systemd-analyze verify "$T/unit/edgefetch.service" >"$T/out" 2>&1
check "systemd-analyze verify prints nothing" [ ! -s "$T/out" ]
[ -s "$T/out" ] && sed 's/^/#   /' "$T/out"
exposure=$(systemd-analyze security --offline=true "$R/lib/systemd/system/edgefetch.service" 2>/dev/null \
	| sed -n 's/.*Overall exposure level for edgefetch.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure $exposure <= 2.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'
for k in "Type=notify" "WatchdogSec=" "Restart=on-failure" "EnvironmentFile=-/etc/default/edgefetch" \
	"StateDirectory=edgefetch" "After=network-online.target" "ProtectSystem=strict" "NoNewPrivileges=yes" \
	"PrivateTmp=yes" "ProtectHome=yes" "CapabilityBoundingSet=" "RestrictAddressFamilies=" \
	"SystemCallFilter=@system-service"; do
	check "unit has $k" grep -q "^$k" systemd/edgefetch.service.in
done

# the Debian package for this machine
run 0 "make deb" make -s deb ARCH=amd64
DEB=build/edgefetch_$(sed -n 's/^VERSION *:= *//p' Makefile)_amd64.deb
check "deb: built" [ -f "$DEB" ]
dpkg-deb -f "$DEB" Depends >"$T/out"
check "deb: Depends names the libraries" grep -q "libcurl4.*libssl3.*libjansson4.*libarchive13" "$T/out"
dpkg-deb -c "$DEB" >"$T/out"
check "deb: binary, unit, configuration" bash -c 'grep -q "./usr/bin/edgefetch" "$1" && grep -q "./lib/systemd/system/edgefetch.service" "$1" && grep -q "./etc/default/edgefetch" "$1"' _ "$T/out"
check "deb: configuration is a conffile" bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles | grep -q /etc/default/edgefetch' _ "$DEB"
apt-get install -s "./$DEB" >"$T/out" 2>&1
check "deb: apt-get would install it cleanly (dependencies resolve)" grep -q "^Inst edgefetch" "$T/out"

# cross builds, their unit tests under qemu-user
for a in arm64 armhf; do
	run 0 "make check-cross ARCH=$a (unit tests under qemu)" make -s check-cross ARCH=$a
	check "$a: the binary is for $a" bash -c 'file "build/$1/edgefetch" | grep -q "$2"' _ $a "$([ $a = arm64 ] && echo aarch64 || echo 'ARM, EABI5')"
	size=$(stat -c %s "build/$a/edgefetch.stripped")
	check "$a: stripped binary $size bytes < 300 KB" [ "$size" -lt 307200 ]
	run 0 "make deb ARCH=$a" make -s deb ARCH=$a
done

finish
