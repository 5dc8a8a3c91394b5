#!/bin/sh
# make lint: the rooms import only downward.  Each room has a floor; a
# file may include its own room's headers and those of rooms on lower
# floors, never a room beside it or above it (so there is no circle).
cd "$(dirname "$0")/.."
exec awk '
function room(p) {
	if (p ~ /^agent\/cli\//) return "agent/cli 9"
	if (p ~ /^agent\//) return "agent 8"
	if (p ~ /^registry\/serve\//) return "registry/serve 7"
	if (p ~ /^registry\/pull\./) return "registry/pull 6"
	if (p ~ /^registry\/sigstore\./) return "registry/sigstore 5"
	if (p ~ /^registry\/transfer\//) return "registry/transfer 4"
	if (p ~ /^registry\/remote\//) return "registry/remote 3"
	if (p ~ /^registry\/output\//) return "registry/output 3"
	if (p ~ /^registry\/store\//) return "registry/store 2"
	if (p ~ /^registry\/(ref|manifest)\./) return "registry/ref,manifest 1"
	if (p ~ /^verify\//) return "verify 1"
	if (p ~ /^common\//) return "common 0"
	return "? 99"
}
# a path joined and made plain: a/b/../c -> a/c
function plain(p,   n, i, k, part, out) {
	n = split(p, part, "/"); k = 0
	for (i = 1; i <= n; i++) {
		if (part[i] == "." || part[i] == "") continue
		if (part[i] == "..") { if (k > 0) k--; continue }
		out[++k] = part[i]
	}
	p = out[1]; for (i = 2; i <= k; i++) p = p "/" out[i]
	return p
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
	inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
	dir = FILENAME; sub(/[^\/]*$/, "", dir)
	t = plain(dir inc)
	split(room(FILENAME), a, " "); split(room(t), b, " ")
	if (b[1] == "?") next
	if (a[1] != b[1] && b[2] + 0 >= a[2] + 0) {
		printf "lint: %s:%d includes %s: %s (floor %s) may not use %s (floor %s)\n", FILENAME, FNR, inc, a[1], a[2], b[1], b[2]
		bad = 1
	}
}
END { exit bad }' $(ls agent/*.[ch] agent/*/*.[ch] registry/*.[ch] registry/*/*.[ch] verify/*.[ch] common/*.[ch] 2>/dev/null) >&2
