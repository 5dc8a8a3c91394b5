#!/usr/bin/env bash
# The update part of make bench: what a v1 -> v2 update of a service
# costs on the wire when 2 of its 40 files (1 MiB each) changed, for each
# layer compression, beside the whole v2 image.
set -u
source "$(dirname "$0")/e2e/lib.sh"
setup_pki bench bench-pass
CR=bench:bench-pass
M=$TOP/tests/e2e/mkimage.py
for v in v1 v2; do python3 "$M" image "$T/$v" --tag 1.0 --note "$v" --files 40:1024 --vary 3,17 >/dev/null; done
efp() { "$EF" pull --quiet --ca-file "$T/ca/ca.crt" --creds "$CR" "$@"; }
echo
echo "update: v1 -> v2 of a service, 2 of 40 files of 1 MiB changed (bytes on the wire for v2)"
echo "| layers | v2 pulled whole | v2 after v1 | ratio |"
echo "|---|---|---|---|"
n=0
for fmt in gzip zstd zstd:chunked; do
	# a registry per format: skopeo would otherwise reuse the blobs it pushed compressed another way
	n=$((n + 1)) PR=$(free_port)
	start_registry "reg$n" "$PR" htpasswd
	R=127.0.0.1:$PR
	for v in v1 v2; do push "$T/$v:1.0" "$R/edge/${fmt/:/-}:$v" --dest-creds "$CR" --dest-compress-format "$fmt"; done
	rm -rf "$T/s" "$T/w"
	efp --store "$T/w" --json "$R/edge/${fmt/:/-}:v2" >"$T/whole.json"
	efp --store "$T/s" "$R/edge/${fmt/:/-}:v1" >/dev/null
	efp --store "$T/s" --json "$R/edge/${fmt/:/-}:v2" >"$T/upd.json"
	w=$(jq .bytes_fetched "$T/whole.json") u=$(jq .bytes_fetched "$T/upd.json")
	echo "| $fmt | $w | $u | $(echo "scale=3; $u / $w" | bc) |"
done
# eStargz: ctr-remote (stargz-snapshotter) converts the same images in a containerd of our own
mkdir -p "$T/cd"
printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
	"$T/cd/root" "$T/cd/state" "$T/cd/sock" >"$T/cd/config.toml"
containerd --config "$T/cd/config.toml" >"$T/cd/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$T/cd/sock" ] && break; sleep 0.1; done
PR=$(free_port)
start_registry regesgz "$PR" htpasswd
R=127.0.0.1:$PR
for v in v1 v2; do
	skopeo copy -q "oci:$T/$v:1.0" "oci-archive:$T/$v.tar:example.com/app:$v"
	ctr -a "$T/cd/sock" images import --base-name example.com/app "$T/$v.tar" >/dev/null
	ctr-remote -a "$T/cd/sock" image convert --estargz --oci "example.com/app:$v" "example.com/app:$v-esgz" >/dev/null
	ctr -a "$T/cd/sock" images export "$T/$v-esgz.tar" "example.com/app:$v-esgz"
	skopeo copy -q --dest-cert-dir "$T/skcerts" --dest-creds "$CR" "oci-archive:$T/$v-esgz.tar" "docker://$R/edge/esgz:$v"
done
rm -rf "$T/s" "$T/w"
efp --store "$T/w" --json "$R/edge/esgz:v2" >"$T/whole.json"
efp --store "$T/s" "$R/edge/esgz:v1" >/dev/null
efp --store "$T/s" --json "$R/edge/esgz:v2" >"$T/upd.json"
w=$(jq .bytes_fetched "$T/whole.json") u=$(jq .bytes_fetched "$T/upd.json")
echo "| eStargz | $w | $u | $(echo "scale=3; $u / $w" | bc) |"
pre_cleanup() { umount_T; }
