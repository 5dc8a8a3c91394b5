# testlib.sh: counting test results; the closing line is "N passed, N failed".
PASS=0 FAIL=0 SKIP=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
not_ok() {
	FAIL=$((FAIL + 1))
	echo "not ok - $1"
	[ -s "$T/err" ] && sed 's/^/#   /' "$T/err" | head -5
}
skip() { SKIP=$((SKIP + 1)); echo "ok - # SKIP $1"; }
# run WANT_RC DESC CMD...: run a command, check its exit code; output in $T/out, $T/err.
run() {
	local want=$1 desc=$2 rc
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" = "$want" ]; then ok "$desc"; else not_ok "$desc (exit $rc, want $want)"; fi
}
check() { # check DESC CMD...
	local desc=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$desc"; else not_ok "$desc"; fi
}
setup_failed() {
	echo "set-up failed: $*" >&2
	echo "$(basename "$0"): 0 passed, 1 failed"
	exit 1
}
finish() {
	echo "$(basename "$0" .sh): $PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" = 0 ]
}
