#!/bin/sh
# make lint: no source file outside tests/ over 700 lines, no function body
# over 90 (GNU style: a body opens with "{" and closes with "}" in column 0).
cd "$(dirname "$0")/.."
fail=0
for f in $(ls agent/*.c agent/*/*.c registry/*.c registry/*/*.c verify/*.c common/*.c agent/*.h agent/*/*.h registry/*.h registry/*/*.h verify/*.h common/*.h 2>/dev/null); do
	n=$(wc -l <"$f")
	if [ "$n" -gt 700 ]; then echo "lint: $f has $n lines (at most 700)" >&2; fail=1; fi
done
for f in agent/*.c agent/*/*.c registry/*.c registry/*/*.c verify/*.c common/*.c; do
	awk -v f="$f" '
		/^[a-z_][a-z_0-9]* \(/ { name = $1 }
		/^\{/ { start = NR }
		/^\}/ && start { if (NR - start - 1 > 90) { printf "lint: %s: %s has a body of %d lines (at most 90)\n", f, name, NR - start - 1; bad = 1 } start = 0 }
		END { exit bad }' "$f" >&2 || fail=1
done
exit $fail
