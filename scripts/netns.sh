#!/usr/bin/env bash
# Network namespace + persistent TAP for ustack.
#
#   scripts/netns.sh up   [NAMESPACE [TAP [SUBNET]]]
#   scripts/netns.sh down [NAMESPACE]
#
# Defaults: namespace "ustack", TAP "tap0", SUBNET "10.77.0" — the kernel side of the TAP gets
# SUBNET.1/24 and the stack (ustackd --addr) uses SUBNET.2/24. The namespace has only loopback
# and the TAP, so nothing in it has a route out. Both commands are idempotent; tests pass their
# own names so several can run at once.
set -euo pipefail

usage() {
    echo "usage: $0 up [NAMESPACE [TAP [SUBNET]]] | down [NAMESPACE]   (e.g. $0 up ustack tap0 10.77.0)" >&2
    exit 2
}

[ "$#" -ge 1 ] || usage
cmd=$1
ns=${2:-ustack}
tap=${3:-tap0}
subnet=${4:-10.77.0}

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root (it creates a network namespace and a TAP device)" >&2
    exit 1
fi
case "$subnet" in
    *[!0-9.]* | "") echo "$0: SUBNET must look like 10.77.0, got '$subnet'" >&2; exit 2 ;;
esac

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

case "$cmd" in
up)
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show "$tap" >/dev/null 2>&1; then
        ip -n "$ns" tuntap add dev "$tap" mode tap
    fi
    ip -n "$ns" addr replace "$subnet.1/24" dev "$tap"
    ip -n "$ns" link set "$tap" up
    # The stack answers ARP for SUBNET.2 itself; keep the kernel from delaying its first ARP.
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$tap.arp_notify=1" || true
    echo "namespace $ns: $tap at $subnet.1/24 (run ustackd with --tap $tap --addr $subnet.2/24 --gateway $subnet.1)"
    ;;
down)
    if ns_exists "$ns"; then
        ip netns delete "$ns"
    fi
    ;;
*)
    usage
    ;;
esac
