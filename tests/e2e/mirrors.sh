#!/usr/bin/env bash
# Mirrors from containerd's hosts.toml: a real distribution pull-through
# cache in front of the token-auth registry, reached through our proxy
# (which counts what the mirror is sent and can make it lie), and the
# rate cap on the whole pull.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

export EDGEFETCH_RETRY_BASE_MS=100
setup_pki alice s3cret
CR=alice:s3cret
M=$TOP/tests/e2e/mkimage.py
python3 "$M" image "$T/tiny" --tag 1.0 --busybox >/dev/null
python3 "$M" image "$T/mid" --tag 1.0 --note mirror-mid --random-mb 2 --random-mb 2 --random-mb 2 >/dev/null
python3 "$M" image "$T/mid2" --tag 1.0 --note mirror-mid2 --random-mb 2 --random-mb 2 >/dev/null
python3 "$M" image "$T/rate" --tag 1.0 --note rate --random-mb 8 --random-mb 8 --random-mb 8 >/dev/null
PT=$(free_port) PR=$(free_port) PC=$(free_port) PP=$(free_port)
start_token_server "$PT" || setup_failed token server
start_registry origin "$PR" "token:$PT" || setup_failed registry
R=127.0.0.1:$PR
for i in tiny mid mid2 rate; do push "$T/$i:1.0" "$R/edge/$i:1.0" --dest-creds "$CR" || setup_failed push $i; done

# the pull-through cache: anonymous to its clients, alice to the origin
start_pull_through cache "$PC" "$R" alice s3cret || setup_failed cache
echo '{}' >"$T/control"
start_proxy() {
	"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PP" --upstream "127.0.0.1:$PC" --cert "$T/ca/server.crt" \
		--key "$T/ca/server.key" --ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/stats" >>"$T/proxy.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($!)
	wait_port "$PP"
}
start_proxy || setup_failed proxy
MIRROR=127.0.0.1:$PP
ctl() { echo "$1" >"$T/control"; }
# the proxy's counters since the last reset_stats
stat_of() {
	local now base
	now=$(jq -r --arg k "$1" '.[$k] // 0' "$T/stats" 2>/dev/null || echo 0)
	base=$(jq -r --arg k "$1" '.[$k] // 0' "$T/stats.base" 2>/dev/null || echo 0)
	echo $((now - base))
}
reset_stats() { if [ -e "$T/stats" ]; then cp "$T/stats" "$T/stats.base"; else echo '{}' >"$T/stats.base"; fi; }
store_ok() { (cd "$1/blobs/sha256" 2>/dev/null || exit 0; for f in *; do [ -e "$f" ] || continue; [ "$(sha256sum <"$f" | cut -c1-64)" = "$f" ] || exit 1; done); }

# certs dirs in docker's layout: the origin's and the token server's CA
# beside hosts.toml; the mirror's CA only through hosts.toml's `ca`.
certs() { # certs DIR: a certs dir without hosts.toml
	mkdir -p "$1/$R" "$1/localhost:$PT"
	cp "$T/ca/ca.crt" "$1/$R/ca.crt"
	cp "$T/ca/ca.crt" "$1/localhost:$PT/ca.crt"
}
certs "$T/plain"
certs "$T/m"
cp "$T/ca/ca.crt" "$T/m/$R/mirror-ca.pem"
hosts() { # hosts CAPS: the mirror, then the origin
	cat >"$T/m/$R/hosts.toml" <<EOF
# the site's cache first, the registry last
server = "https://$R"

[host."https://$MIRROR"]
  capabilities = [$1]
  ca = "mirror-ca.pem"
[host."https://$MIRROR".header]
  X-Edge-Site = "test-site"
EOF
}
hosts '"pull", "resolve"'
efm() { "$EF" pull --quiet --certs-dir "$T/m" --creds "$CR" "$@"; }
efo() { "$EF" pull --quiet --certs-dir "$T/plain" --creds "$CR" "$@"; }
ms() { date +%s%3N; }

# ---- through the mirror ----
reset_stats
run 0 "hosts.toml mirror: pull through a distribution pull-through cache" efm --store "$T/s1" --json "$R/edge/mid:1.0"
check "mirror: every layer came from the mirror" [ "$(jq -r '[.layers[].source] | unique | join(",")' "$T/out")" = "$MIRROR" ]
check "mirror: the tag resolved on the mirror (resolve capability)" [ "$(jq -r .manifest_source "$T/out")" = "$MIRROR" ]
check "mirror: the mirror served the blobs" [ "$(stat_of blob_requests)" -ge 4 ]
check "mirror: the mirror never saw origin credentials" [ "$(stat_of client_auth)" = 0 ]
check "mirror: requests to the mirror carry ?ns=$R" [ "$(stat_of ns_queries)" -ge 4 ]
check "mirror: hosts.toml's header went to the mirror" [ "$(stat_of site_header)" -ge 4 ]
MID_DIGEST=$(jq -r .manifest_digest "$T/out")
run 0 "mirror: the same image straight from the origin" efo --store "$T/s1o" --json "$R/edge/mid:1.0"
check "mirror: same manifest digest as the origin's" [ "$(jq -r .manifest_digest "$T/out")" = "$MID_DIGEST" ]
check "mirror: the store verifies" store_ok "$T/s1"

# ---- pull-only mirror: tags resolve on the origin, digests may come from the mirror ----
hosts '"pull"'
reset_stats
run 0 "pull-only mirror: pull by tag" efm --store "$T/s2" --json "$R/edge/tiny:1.0"
check "pull-only mirror: the tag resolved on the origin" [ "$(jq -r .manifest_source "$T/out")" = "$R" ]
check "pull-only mirror: no tag was asked of the mirror" [ "$(stat_of manifest_by_tag)" = 0 ]
check "pull-only mirror: the layers came from the mirror" [ "$(jq -r '.layers[0].source' "$T/out")" = "$MIRROR" ]
TINY=$(jq -r .manifest_digest "$T/out")
reset_stats
run 0 "pull-only mirror: pull by digest" efm --store "$T/s2b" --json "$R/edge/tiny@$TINY"
check "pull-only mirror: the pinned manifest came from the mirror" [ "$(jq -r .manifest_source "$T/out")" = "$MIRROR" ]
hosts '"pull", "resolve"'

# ---- the mirror stopped: the origin within 2 s of a mirror-less pull ----
kill "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null
t0=$(ms)
run 0 "mirror stopped: the pull falls back to the origin" efm --store "$T/s3" --json "$R/edge/mid2:1.0"
t1=$(ms)
check "mirror stopped: every layer came from the origin" [ "$(jq -r '[.layers[].source] | unique | join(",")' "$T/out")" = "$R" ]
run 0 "mirror stopped: the same pull without hosts.toml" efo --store "$T/s3o" "$R/edge/mid2:1.0"
t2=$(ms)
check "mirror stopped: fell back within 2 s of a mirror-less pull ($((t1 - t0)) ms vs $((t2 - t1)) ms)" \
	[ $((t1 - t0)) -le $((t2 - t1 + 2000)) ]
start_proxy || setup_failed proxy again
rm -f "$T/stats" "$T/stats.base" # a new proxy counts from 0

# ---- a lying mirror ----
reset_stats
ctl '{"corrupt": true}'
run 0 "lying mirror: the pull still succeeds" efm --store "$T/s4" --json "$R/edge/mid2:1.0"
check "lying mirror: the mirror's bytes were corrupted ($(stat_of corrupted) blobs)" [ "$(stat_of corrupted)" -ge 1 ]
check "lying mirror: every layer came from the origin in the end" \
	[ "$(jq -r '[.layers[].source] | unique | join(",")' "$T/out")" = "$R" ]
check "lying mirror: no wrong byte kept in the store" store_ok "$T/s4"
check "lying mirror: nothing partial kept" [ -z "$(ls "$T/s4/ingest" 2>/dev/null)" ]
check "lying mirror: skipped for the rest of the pull (asked $(stat_of blob_requests) times, lied $(stat_of corrupted))" \
	[ "$(stat_of blob_requests)" = "$(stat_of corrupted)" ]
ctl '{}'

# ---- hosts.toml mistakes are usage errors with a line number ----
mkdir -p "$T/bad/$R"
printf 'server = "https://%s"\n[host."https://%s"]\n  dial_timeout = "1s"\n' "$R" "$MIRROR" >"$T/bad/$R/hosts.toml"
run 2 "hosts.toml with an unknown key -> exit 2" "$EF" pull --quiet --certs-dir "$T/bad" --creds "$CR" --store "$T/s5" "$R/edge/tiny:1.0"
check "hosts.toml error names the file and line" grep -q "hosts.toml line 3: unknown key 'dial_timeout'" "$T/err"

# ---- a mirror over plain http never gets credentials ----
mkdir -p "$T/h/$R"
cp -r "$T/plain/." "$T/h/"
printf '[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' "$PC" >"$T/h/$R/hosts.toml"
run 0 "plain-http mirror URL (a TLS port): falls over to the origin" "$EF" pull --quiet --certs-dir "$T/h" --creds "$CR" --store "$T/s6" --json "$R/edge/tiny:1.0"
check "plain-http mirror: the layer came from the origin" [ "$(jq -r '.layers[0].source' "$T/out")" = "$R" ]

# ---- hosts.toml may name the registry itself as a host: it is no mirror, and keeps its credentials ----
mkdir -p "$T/self/$R"
cp -r "$T/plain/." "$T/self/"
printf 'server = "https://%s"\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n' "$R" "$R" >"$T/self/$R/hosts.toml"
run 0 "hosts.toml naming the registry itself: the pull authenticates as usual" \
	"$EF" pull --quiet --certs-dir "$T/self" --creds "$CR" --store "$T/s8" --json "$R/edge/tiny:1.0"
check "hosts.toml naming the registry itself: the layer came from it" [ "$(jq -r '.layers[0].source' "$T/out")" = "$R" ]

# ---- the rate cap: the whole pull, all transfers together ----
RATE_SIZE=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/rate:1.0" | jq '[.config.size] + [.layers[].size] | add')
for jobs in 1 3; do
	t0=$(ms)
	run 0 "--limit-rate 4M --jobs $jobs: pull of a 24 MiB image" efo --store "$T/r$jobs" --jobs "$jobs" --limit-rate 4M "$R/edge/rate:1.0"
	t1=$(ms)
	want=$((RATE_SIZE * 1000 / 4194304))
	check "--limit-rate 4M --jobs $jobs: $((t1 - t0)) ms, want $want ms +- 15 %" \
		[ $(((t1 - t0) * 100)) -ge $((want * 85)) -a $(((t1 - t0) * 100)) -le $((want * 115)) ]
done
EDGEFETCH_LIMIT_RATE=nope run 2 "EDGEFETCH_LIMIT_RATE=nope -> exit 2" efo --store "$T/r0" "$R/edge/rate:1.0"
check "a bad rate is named" grep -q "rate 'nope'" "$T/err"

# ---- a site cache: `edgefetch serve` over mTLS, in front of the origin (through a counting proxy) ----
PO=$(free_port) PS=$(free_port)
"$PY" "$TOP/tests/e2e/faultproxy.py" --port "$PO" --upstream "$R" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
	--ca "$T/ca/ca.crt" --control "$T/control" --stats "$T/ostats" >>"$T/oproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$PO" || setup_failed origin proxy
O=127.0.0.1:$PO
ostat() { jq -r --arg k "$1" '.[$k] // 0' "$T/ostats" 2>/dev/null || echo 0; }
make_client_cert "$T/ca" site
certs "$T/sc-origin" # how the cache reaches the origin: its CA, the token server's
mkdir -p "$T/sc-origin/$O" && cp "$T/ca/ca.crt" "$T/sc-origin/$O/"
"$EF" serve --listen "127.0.0.1:$PS" --tls-cert "$T/ca/server.crt" --tls-key "$T/ca/server.key" \
	--client-ca "$T/ca/ca.crt" --origin "$O" --certs-dir "$T/sc-origin" --creds "$CR" --store "$T/site" \
	>"$T/serve.out" 2>"$T/serve.err" &
SERVE=$!
PIDS+=($!)
wait_port "$PS" || setup_failed serve
site_client() { # site_client DIR [with-cert]: a device's certs dir naming the site cache
	certs "$1"
	mkdir -p "$1/$O" && cp "$T/ca/ca.crt" "$1/$O/"
	{
		printf '[host."https://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n' "$PS"
		[ -n "${2:-}" ] && printf '  client = [["%s", "%s"]]\n' "$T/ca/site.cert" "$T/ca/site.key"
	} >"$1/$O/hosts.toml"
}
site_client "$T/dev" with-cert
run 0 "site cache: a device pulls through edgefetch serve (mTLS)" \
	"$EF" pull --quiet --certs-dir "$T/dev" --creds "$CR" --store "$T/d0" --json "$O/edge/tiny:1.0"
check "site cache: every layer came from the site cache" [ "$(jq -r '[.layers[].source] | unique | join(",")' "$T/out")" = "127.0.0.1:$PS" ]
check "site cache: the cache keeps what it fetched, verified" store_ok "$T/site"
before_req=$(ostat blob_requests) before_bytes=$(ostat blob_bytes)
MID2=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/mid:1.0" | jq '[.config.size] + [.layers[].size] | add')
NBLOBS=$(skopeo inspect --raw --creds "$CR" --cert-dir "$T/skcerts" "docker://$R/edge/mid:1.0" | jq '.layers | length + 1')
for i in 1 2 3 4 5 6; do
	"$EF" pull --quiet --certs-dir "$T/dev" --creds "$CR" --store "$T/d$i" --json "$O/edge/mid:1.0" >"$T/p$i.json" 2>"$T/p$i.err" &
	eval "p$i=\$!"
done
ok_all=0
for i in 1 2 3 4 5 6; do eval "wait \$p$i" || ok_all=1; done
check "site cache: six devices pull one image at the same time" [ "$ok_all" = 0 ]
check "site cache: all six got it from the site cache" \
	[ "$(cat "$T"/p[1-6].json | jq -r '.layers[].source' | sort -u)" = "127.0.0.1:$PS" ]
req=$(($(ostat blob_requests) - before_req)) bytes=$(($(ostat blob_bytes) - before_bytes))
check "site cache: the origin was asked each blob once ($req requests for $NBLOBS blobs)" [ "$req" = "$NBLOBS" ]
check "site cache: the origin sent one copy ($bytes bytes for an image of $MID2)" [ $((bytes * 100)) -le $((MID2 * 105)) ]
site_client "$T/dev-nocert"
run 0 "site cache: a device without a site certificate is refused there and falls back to the origin" \
	"$EF" pull --quiet --certs-dir "$T/dev-nocert" --creds "$CR" --store "$T/d7" --json "$O/edge/tiny:1.0"
check "site cache: its layers came from the origin" [ "$(jq -r '.layers[0].source' "$T/out")" = "$O" ]
check "site cache: no client certificate -> 403" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/ca/ca.crt" "https://127.0.0.1:$PS/v2/")" = 403 ]
check "site cache: an origin it was not given -> 404, nothing fetched" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/ca/ca.crt" --cert "$T/ca/site.cert" --key "$T/ca/site.key" \
		"https://127.0.0.1:$PS/v2/edge/tiny/manifests/1.0?ns=registry.example")" = 404 ]
run 2 "serve: plain HTTP off loopback -> exit 2" "$EF" serve --listen 0.0.0.0:1 --store "$T/site"
run 2 "serve: origin credentials on 0.0.0.0 without --client-ca -> exit 2" "$EF" serve --listen 0.0.0.0:1 \
	--tls-cert "$T/ca/server.crt" --tls-key "$T/ca/server.key" --origin "$O" --creds "$CR" --store "$T/site"
check "serve: the refusal says what to give" grep -q "give --client-ca, or --public" "$T/err"
check "serve: the refusal holds no secret" bash -c '! grep -q "$1" "$2"' _ "${CR#*:}" "$T/err"
PUB=$(free_port)
"$EF" serve --listen "0.0.0.0:$PUB" --tls-cert "$T/ca/server.crt" --tls-key "$T/ca/server.key" --origin "$O" \
	--certs-dir "$T/sc-origin" --creds "$CR" --store "$T/site-pub" --public >"$T/pub.out" 2>&1 &
PUBPID=$!
PIDS+=($PUBPID)
wait_port "$PUB"
check "serve --public: it starts, and says in one line that it is public" grep -q "PUBLIC (--public)" "$T/pub.out"
kill "$PUBPID"
check "serve with --client-ca: the start line says clients are checked" grep -q "clients must present a certificate" "$T/serve.out"
kill "$SERVE"
wait "$SERVE" 2>/dev/null
check "serve: SIGTERM ends it cleanly ($?)" [ "$?" = 0 ]

finish
