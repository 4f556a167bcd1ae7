#!/usr/bin/env bash
# ICMP echo round-trip time: the kernel pinging ustack over the TAP vs the kernel pinging the
# kernel over a veth pair, measured in the same run, interleaved, 3 rounds each.
#   scripts/bench-ping.sh [COUNT]        (default 1000 pings per round, 1 ms apart)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000}
[ "$(id -u)" -eq 0 ] || { echo "bench-ping: run as root" >&2; exit 1; }

tag=$$
ns_tap=ustk-bp-tap-$tag
ns_a=ustk-bp-a-$tag
ns_b=ustk-bp-b-$tag
work=$(mktemp -d)
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    for ns in "$ns_tap" "$ns_a" "$ns_b"; do ip netns delete "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p ustack
bin=${CARGO_TARGET_DIR:-target}/release
scripts/netns.sh up "$ns_tap" tap0 10.77.0 >/dev/null
ip netns exec "$ns_tap" "$bin"/ustackd --tap tap0 --addr 10.77.0.2/24 \
    --gateway 10.77.0.1 --socket "$work/sock" 2>"$work/ustackd.log" &
daemon_pid=$!

ip netns add "$ns_a"; ip netns add "$ns_b"
ip link add veth-bp-a netns "$ns_a" type veth peer name veth-bp-b netns "$ns_b"
ip -n "$ns_a" addr add 10.78.0.1/24 dev veth-bp-a
ip -n "$ns_b" addr add 10.78.0.2/24 dev veth-bp-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set veth-bp-a up; ip -n "$ns_b" link set veth-bp-b up
sleep 0.5
ip netns exec "$ns_tap" ping -c 3 -W 2 -q 10.77.0.2 >/dev/null
ip netns exec "$ns_a" ping -c 3 -W 2 -q 10.78.0.2 >/dev/null

# rtt min/avg/max/mdev line of ping -q
rtt() { ip netns exec "$1" ping -c "$count" -i 0.001 -q "$2" | awk -F'= ' '/rtt/ {print $2}'; }
echo "count=$count per round; rtt min/avg/max/mdev"
for round in 1 2 3; do
    echo "round $round  ustack (TAP): $(rtt "$ns_tap" 10.77.0.2)"
    echo "round $round  kernel (veth): $(rtt "$ns_a" 10.78.0.2)"
done
