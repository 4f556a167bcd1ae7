#!/usr/bin/env bash
# One ustack -> kernel transfer (ustack's chargen, kernel nc reads) with 1% loss both ways
# (nftables on the kernel side, as bench-tcp.sh), captured on the kernel side of the TAP
# (headers only), to see where a lossy transfer spends its time.
#   scripts/bench-tcp-trace.sh [MEGABYTES] [PCAP]     (default 100, /tmp/ustack-trace.pcap)
# LOSS=0 runs on a clean link. The kernel's TCP counters (nstat) for the run are printed.
# Drops on the kernel's input hook happen after the capture point, drops on its output hook
# before it: the capture holds every segment ustack sent and every ACK that reached it.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-100}
pcap=${2:-/tmp/ustack-trace.pcap}

bench_tag=tr
daemon_flags="--services"
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh

[ "${LOSS:-1}" = 0 ] || ip netns exec "$ns_tap" nft "table inet bench_loss {
    chain input { type filter hook input priority 0; iifname \"tap0\" numgen random mod 100 < 1 drop; }
    chain output { type filter hook output priority 0; oifname \"tap0\" numgen random mod 100 < 1 drop; }
}"
ip netns exec "$ns_tap" tcpdump -i tap0 -s 96 -B 65536 -w "$pcap" tcp port 19 2>/dev/null &
dump=$!
sleep 0.5
ip netns exec "$ns_tap" nstat -n
t0=$(date +%s.%N)
ip netns exec "$ns_tap" sh -c "nc 10.77.0.2 19 | head -c ${mb}M > /dev/null"
t1=$(date +%s.%N)
sleep 0.3
kill "$dump"; wait "$dump" 2>/dev/null || true
ip netns exec "$ns_tap" nstat | grep -v -E '^#|Ip|Icmp|Udp' || true
awk -v a="$t0" -v b="$t1" -v mb="$mb" \
    'BEGIN { printf "%d MiB in %.2f s: %.2f Gbit/s\n", mb, b - a, mb * 8 * 1048576 / (b - a) / 1e9 }'
echo "capture: $pcap"
if [ -n "${RUST_LOG:-}" ]; then cp "$work/ustackd.log" "${pcap%.pcap}.log"; echo "daemon log: ${pcap%.pcap}.log"; fi
