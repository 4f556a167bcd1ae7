# Shared by the benchmark scripts (sourced, not run). Sets up, side by side:
#   $ns_tap  namespace with tap0 (kernel 10.77.0.1) and ustackd on it (10.77.0.2)
#   $ns_a/$ns_b  two namespaces joined by a veth pair, 10.78.0.1 <-> 10.78.0.2 (the kernel
#                reference)
# and removes all of it (and the daemon, by PID) on exit. Callers set $bench_tag first and
# may set $daemon_flags.
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root" >&2; exit 1; }

ns_tap=ustk-$bench_tag-tap-$$
ns_a=ustk-$bench_tag-a-$$
ns_b=ustk-$bench_tag-b-$$
work=$(mktemp -d)
daemon_pid=""
bench_cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    for ns in "$ns_tap" "$ns_a" "$ns_b"; do ip netns delete "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap bench_cleanup EXIT

cargo build --release -q -p ustack
bin=${CARGO_TARGET_DIR:-target}/release
scripts/netns.sh up "$ns_tap" tap0 10.77.0 >/dev/null
# shellcheck disable=SC2086 # daemon_flags is a list of flags
ip netns exec "$ns_tap" "$bin"/ustackd --tap tap0 --addr 10.77.0.2/24 \
    --gateway 10.77.0.1 --socket "$work/sock" ${daemon_flags:-} 2>"$work/ustackd.log" &
daemon_pid=$!

veth_a=veth-$bench_tag-a
veth_b=veth-$bench_tag-b
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.78.0.1/24 dev "$veth_a"
ip -n "$ns_b" addr add 10.78.0.2/24 dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up
sleep 0.5
ip netns exec "$ns_tap" ping -c 3 -W 2 -q 10.77.0.2 >/dev/null
ip netns exec "$ns_a" ping -c 3 -W 2 -q 10.78.0.2 >/dev/null
