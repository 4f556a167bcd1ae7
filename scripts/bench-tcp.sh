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

bench_tag=bt
daemon_flags="--services"
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh

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
    if [ "$link" = loss1 ]; then loss "$ns_tap" tap0 on; loss "$ns_a" "$veth_a" on; fi
    for round in 1 2 3; do
        a=$(gbps "$(to_ustack)"); b=$(gbps "$(from_ustack)"); c=$(gbps "$(kernel_veth)")
        echo "$link round $round: kernel->ustack $a  ustack->kernel $b  kernel->kernel(veth) $c"
    done
    loss "$ns_tap" tap0 off; loss "$ns_a" "$veth_a" off
done
