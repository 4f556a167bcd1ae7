#!/usr/bin/env bash
# ICMP echo round-trip time: the kernel pinging ustack over the TAP vs the kernel pinging the
# kernel over a veth pair, measured in the same run, interleaved, 3 rounds each.
#   scripts/bench-ping.sh [COUNT]        (default 1000 pings per round, 1 ms apart)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000}

bench_tag=bp
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh

# rtt min/avg/max/mdev line of ping -q
rtt() { ip netns exec "$1" ping -c "$count" -i 0.001 -q "$2" | awk -F'= ' '/rtt/ {print $2}'; }
echo "count=$count per round; rtt min/avg/max/mdev"
for round in 1 2 3; do
    echo "round $round  ustack (TAP): $(rtt "$ns_tap" 10.77.0.2)"
    echo "round $round  kernel (veth): $(rtt "$ns_a" 10.78.0.2)"
done
