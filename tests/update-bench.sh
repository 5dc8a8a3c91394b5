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
row() { # row LABEL REPO: v2 whole into an empty store, and after v1
	local w u
	rm -rf "$T/s" "$T/w"
	efp --store "$T/w" --json "$2:v2" >"$T/whole.json"
	efp --store "$T/s" "$2:v1" >/dev/null
	efp --store "$T/s" --json "$2:v2" >"$T/upd.json"
	w=$(jq .bytes_fetched "$T/whole.json") u=$(jq .bytes_fetched "$T/upd.json")
	echo "| $1 | $w | $u | $(echo "scale=3; $u / $w" | bc) |"
}
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
	row "$fmt" "$R/edge/${fmt/:/-}"
done
PR=$(free_port)
start_registry regesgz "$PR" htpasswd
R=127.0.0.1:$PR
for v in v1 v2; do push_estargz "$T/$v:1.0" "$R/edge/esgz:$v" --dest-creds "$CR"; done
row eStargz "$R/edge/esgz"
pre_cleanup() { umount_T; }
