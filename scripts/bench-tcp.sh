#!/usr/bin/env bash
# Bulk TCP throughput, one stream, measured in one run and interleaved (3 rounds):
#   kernel -> ustack   kernel nc sends to ustack's discard service (port 9)
#   ustack -> kernel   kernel nc reads ustack's chargen service (port 19)
#   kernel -> kernel   nc over a veth pair between two namespaces (the reference)
# each on a clean link and with 1% loss (nftables drop on the kernel side, both directions).
#   scripts/bench-tcp.sh [MEGABYTES]     (default 1000 per transfer)
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-1000}
[ "$(id -u)" -eq 0 ] || { echo "bench-tcp: run as root" >&2; exit 1; }

tag=$$
ns_tap=ustk-bt-tap-$tag
ns_a=ustk-bt-a-$tag
ns_b=ustk-bt-b-$tag
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
    --gateway 10.77.0.1 --socket "$work/sock" --services 2>"$work/ustackd.log" &
daemon_pid=$!
ip netns add "$ns_a"; ip netns add "$ns_b"
ip link add veth-bt-a netns "$ns_a" type veth peer name veth-bt-b netns "$ns_b"
ip -n "$ns_a" addr add 10.78.0.1/24 dev veth-bt-a
ip -n "$ns_b" addr add 10.78.0.2/24 dev veth-bt-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set veth-bt-a up; ip -n "$ns_b" link set veth-bt-b up
sleep 0.5
ip netns exec "$ns_tap" ping -c 2 -W 2 -q 10.77.0.2 >/dev/null

loss() { # loss NS IFACE on|off
    if [ "$3" = on ]; then
        ip netns exec "$1" nft "table inet bench_loss {
            chain input { type filter hook input priority 0; iifname \"$2\" numgen random mod 100 < 1 drop; }
            chain output { type filter hook output priority 0; oifname \"$2\" numgen random mod 100 < 1 drop; }
        }"
    else
        ip netns exec "$1" nft delete table inet bench_loss 2>/dev/null || true
    fi
}
# gbps SECONDS: MB transferred in that time, in Gbit/s
gbps() { awk -v s="$1" -v mb="$mb" 'BEGIN { printf "%.2f", mb * 8 * 1048576 / s / 1e9 }'; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }

to_ustack() { timed ip netns exec "$ns_tap" sh -c "head -c ${mb}M /dev/zero | nc -N 10.77.0.2 9"; }
from_ustack() { timed ip netns exec "$ns_tap" sh -c "nc 10.77.0.2 19 | head -c ${mb}M > /dev/null"; }
kernel_veth() {
    ip netns exec "$ns_b" sh -c 'nc -l 10.78.0.2 5201 > /dev/null' &
    local listener=$!
    sleep 0.2
    timed ip netns exec "$ns_a" sh -c "head -c ${mb}M /dev/zero | nc -N 10.78.0.2 5201"
    wait "$listener" 2>/dev/null || true
}

echo "transfer ${mb} MiB, Gbit/s; rounds interleaved"
for link in clean loss1; do
    if [ "$link" = loss1 ]; then loss "$ns_tap" tap0 on; loss "$ns_a" veth-bt-a on; fi
    for round in 1 2 3; do
        a=$(gbps "$(to_ustack)"); b=$(gbps "$(from_ustack)"); c=$(gbps "$(kernel_veth)")
        echo "$link round $round: kernel->ustack $a  ustack->kernel $b  kernel->kernel(veth) $c"
    done
    loss "$ns_tap" tap0 off; loss "$ns_a" veth-bt-a off
done
