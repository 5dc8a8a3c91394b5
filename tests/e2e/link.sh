#!/usr/bin/env bash
# The link emulator (tests/link.py) that the thin-link tests and the bench
# stand on: what crosses it arrives whole, at about its rate and delay; its
# loss, outages and resets happen; it leaves no namespace behind.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/testlib.sh"

mkdir -p "$T/www"
head -c 4000000 /dev/urandom >"$T/www/blob"
SUM=$(sha256sum <"$T/www/blob" | cut -c1-64)
PW=$(free_port)
"$PY" -m http.server "$PW" --bind 127.0.0.1 --directory "$T/www" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$PW" || setup_failed http server
# link NAME ARGS...: a link to the web server; sets LP (its port) and LPID
link() {
	local name=$1
	shift
	LP=$(free_port)
	"$PY" "$TOP/tests/link.py" --listen "$LP" --target "127.0.0.1:$PW" --name "t$$$name" --stats "$T/$name.json" "$@" \
		>"$T/$name.log" 2>&1 &
	LPID=$!
	PIDS+=($LPID)
	wait_port "$LP"
}
stop_link() { kill "$LPID" && wait "$LPID"; }
fetch() { curl -s -o "$T/got" -w '%{time_total}' "http://127.0.0.1:$LP/blob"; }

link plain --rate 20mbit --delay 20ms --cc cubic
t=$(fetch)
check "20 Mbit/s: 4 MB arrive whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
# 3.2 Mbit at 20 Mbit/s is 1.6 s; slow start over 40 ms adds a little
check "20 Mbit/s: the rate holds ($t s for 4 MB, at least 1.5 s, at most 4 s)" \
	awk -v t="$t" 'BEGIN {exit !(t >= 1.5 && t <= 4)}'
stop_link
check "the link counts what it carried (at least the 4 MB)" [ "$(jq '.carried.b_to_a' "$T/plain.json")" -ge 4000000 ]

link lossy --rate 20mbit --delay 20ms --loss 2% --cc cubic
fetch >/dev/null
check "2 % loss: the bytes still arrive whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
stop_link
check "2 % loss: packets were dropped" [ "$(jq '.dropped.loss' "$T/lossy.json")" -gt 0 ]

link flaky --rate 5mbit --delay 10ms --down 2/4 --cc cubic
fetch >/dev/null
check "down 2 s of every 4: the transfer completes, whole" [ "$(sha256sum <"$T/got" | cut -c1-64)" = "$SUM" ]
stop_link
check "down 2 s of every 4: packets were dropped while down" [ "$(jq '.dropped.down' "$T/flaky.json")" -gt 0 ]

link resets --rate 5mbit --delay 10ms --down 2/4 --reset --cc cubic
curl -s -o /dev/null "http://127.0.0.1:$LP/blob"
rc=$?
check "an outage with --reset resets the connection (curl exit $rc)" [ "$rc" = 56 ]
stop_link
check "no namespace of the links is left" bash -c '! ip netns list | grep -q "^efl-t$$"' _

finish
