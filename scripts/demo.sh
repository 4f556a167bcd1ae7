#!/usr/bin/env bash
# The ustack demo: builds everything, brings up the namespace and the daemon, has a kernel peer
# ping the stack (plain and fragmented) and talk TCP to its built-in echo service while
# tcpdump watches the TAP, then shows the capture and the stack's counters and tears down.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${USTACK_DEMO_NS:-ustack}
TAP=tap0
STACK_IP=10.77.0.2
KERNEL_IP=10.77.0.1
work=$(mktemp -d /tmp/ustack-demo.XXXXXX)
sock="$work/ustackd.sock"
daemon_pid=""
tcpdump_pid=""

cleanup() {
    [ -n "$tcpdump_pid" ] && kill -INT "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    scripts/netns.sh down "$NS" || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: run as root (it creates a network namespace and a TAP device)" >&2
    exit 1
fi

step "Installing what is missing and building (release)"
scripts/install-deps.sh
cargo build --release --workspace

step "Namespace $NS with $TAP (kernel side $KERNEL_IP/24)"
scripts/netns.sh up "$NS" "$TAP"

step "Starting ustackd on $TAP as $STACK_IP"
ip netns exec "$NS" tcpdump -i "$TAP" -n -U -s 0 -w "$work/tap0.pcap" 2>/dev/null &
tcpdump_pid=$!
sleep 0.5
ip netns exec "$NS" target/release/ustackd --tap "$TAP" --addr "$STACK_IP/24" \
    --gateway "$KERNEL_IP" --socket "$sock" --pcap "$work/ustackd.pcap" --services &
daemon_pid=$!
for _ in $(seq 100); do
    target/release/ustack --socket "$sock" stats >/dev/null 2>&1 && break
    sleep 0.05
done

step "Kernel peer pings the stack"
ip netns exec "$NS" ping -c 4 -i 0.2 "$STACK_IP"

step "Fragmented ping (8000 bytes: 6 fragments each way)"
ip netns exec "$NS" ping -c 2 -i 0.2 -s 8000 "$STACK_IP"

step "The kernel's neighbour table learned the stack's MAC"
ip netns exec "$NS" ip neigh show dev "$TAP"

step "Kernel nc talks TCP to the stack's echo service (port 7)"
echo "hello from the kernel, over ustack's TCP" | ip netns exec "$NS" nc -N "$STACK_IP" 7

step "10 MB through the echo service, checksums compared"
head -c 10000000 /dev/urandom > "$work/data"
ip netns exec "$NS" nc -N "$STACK_IP" 7 < "$work/data" | sha256sum
sha256sum < "$work/data"

step "UDP to a closed port gets ICMP port unreachable"
echo hi | ip netns exec "$NS" nc -u -w 1 "$STACK_IP" 9999 || true

sleep 0.3
kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true; tcpdump_pid=""

step "Capture on $TAP (tcpdump -r)"
# head stops reading after 30 lines; tcpdump then fails writing (EPIPE), which is fine here.
{ tcpdump -nn -r "$work/tap0.pcap" 2>/dev/null || true; } | head -30
echo "... $(tcpdump -nn -r "$work/tap0.pcap" 2>/dev/null | wc -l) frames in all"

step "ustack stats (non-zero counters)"
target/release/ustack --socket "$sock" stats | awk '$2 != 0'

step "Done; tearing down"
