#!/bin/sh
# Run the conformance suite on the kernel inside a private network namespace, several times,
# and check that every run prints exactly the same lines.
#
#   tests/conformance/run_in_netns.sh [RUNS] [OUTPUT_FILE]
#
# Needs root (ip netns). Builds into a temporary directory, runs RUNS times as root (default 5)
# and once more as uid/gid 65534 (the output must not depend on privilege), then writes the
# output to OUTPUT_FILE (default: stdout) and deletes the namespace.
# To run it under the shim instead, use the same binary with LD_PRELOAD set; see README.md.
set -eu

RUNS=${1:-5}
OUTPUT=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
NS=ustk-conf-$$
WORK=$(mktemp -d /tmp/ustk-conf.XXXXXX)

cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

make -s -C "$HERE" OUT="$WORK" >&2
chmod 755 "$WORK" "$WORK/conformance"

ip netns add "$NS"
ip -n "$NS" link set lo up

i=1
while [ "$i" -le "$RUNS" ]; do
    ip netns exec "$NS" "$WORK/conformance" >"$WORK/run$i.txt" 2>/dev/null
    i=$((i + 1))
done
ip netns exec "$NS" setpriv --reuid 65534 --regid 65534 --clear-groups \
    "$WORK/conformance" >"$WORK/unpriv.txt" 2>/dev/null

status=0
for f in "$WORK"/run*.txt "$WORK/unpriv.txt"; do
    if ! cmp -s "$WORK/run1.txt" "$f"; then
        echo "DIFFERENT: $(basename "$f") vs run1.txt" >&2
        diff "$WORK/run1.txt" "$f" >&2 || true
        status=1
    fi
done
lines=$(wc -l <"$WORK/run1.txt")
bad=$(grep -c -E ': (TIMEOUT|CRASH|SETUP FAILED)' "$WORK/run1.txt" || true)
echo "conformance: $RUNS root runs + 1 unprivileged run, $lines lines each, identical: $([ $status = 0 ] && echo yes || echo NO), timeouts/crashes/setup failures: $bad" >&2
[ "$bad" = 0 ] || status=1
if [ -n "$OUTPUT" ]; then cp "$WORK/run1.txt" "$OUTPUT"; else cat "$WORK/run1.txt"; fi
exit $status
