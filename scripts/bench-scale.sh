#!/usr/bin/env bash
# Scale: 100,000 concurrent connections held open against the stack (its discard service),
# the daemon's memory per connection, and RTT and throughput on a fresh daemon, with the
# connections open, and after they have all been closed.
#   scripts/bench-scale.sh [CONNECTIONS]      (default 100000)
# The kernel side uses several source addresses on tap0 (one has ~28,000 ephemeral ports)
# and several processes (RLIMIT_NOFILE allows ~20,000 descriptors each here).
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-100000}
per_process=15000

bench_tag=bs
daemon_flags="--services"
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh
holders=()
scale_cleanup() {
    for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
    bench_cleanup
}
trap scale_cleanup EXIT

ip netns exec "$ns_tap" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status"; }
rtt() { ip netns exec "$ns_tap" ping -c 200 -i 0.002 -q 10.77.0.2 | awk -F/ '/^rtt/ { print $5 }'; }
gbps() { # 200 MB into the discard service
    local t0 t1
    t0=$(date +%s.%N)
    ip netns exec "$ns_tap" sh -c "head -c 200M /dev/zero | nc -N 10.77.0.2 9"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 200 * 8 * 1048576 / (b - a) / 1e9 }'
}
measure() { echo "$1: rtt $(rtt) ms, throughput $(gbps) Gbit/s, daemon RSS $(rss_kb) kB"; }

measure "fresh daemon"
base_rss=$(rss_kb)

processes=$(( (total + per_process - 1) / per_process ))
t0=$(date +%s.%N)
for i in $(seq 1 "$processes"); do
    src=10.77.0.$((10 + i))
    ip -n "$ns_tap" addr add "$src/24" dev tap0
    n=$(( i < processes ? per_process : total - per_process * (processes - 1) ))
    ip netns exec "$ns_tap" python3 tests/peers/hold_connections.py 10.77.0.2 9 "$src" "$n" \
        >"$work/hold.$i" 2>&1 &
    holders+=($!)
done
opened=0
for i in $(seq 1 "$processes"); do
    while ! grep -q '^open' "$work/hold.$i" 2>/dev/null; do sleep 0.5; done
    opened=$(( opened + $(awk '{ print $2 }' "$work/hold.$i") ))
done
t1=$(date +%s.%N)
echo "opened $opened connections in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
"$bin"/ustack --socket "$work/sock" stats | grep -E '^tcp_connections'
rss=$(rss_kb)
echo "daemon RSS $rss kB: $(( (rss - base_rss) * 1024 / (opened > 0 ? opened : 1) )) bytes per connection"
measure "with $opened connections open"
if [ -n "${PROFILE:-}" ]; then  # PROFILE=file.data: perf profile of a throughput run now
    perf record -g -o "$PROFILE" -p "$daemon_pid" -- sleep 3 >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.2
    gbps >/dev/null
    wait "$perf_pid" || true
fi

for pid in "${holders[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done  # close them all
for pid in "${holders[@]}"; do wait "$pid" 2>/dev/null || true; done
holders=()
# Wait (at most 120 s) for the stack to finish closing them: FINs dropped at the TAP queue
# during the burst are retransmitted after an RTO.
conns() { "$bin"/ustack --socket "$work/sock" stats | awk '$1 == "tcp_connections" { print $2 }'; }
t0=$(date +%s.%N)
for _ in $(seq 1 240); do [ "$(conns)" -le 100 ] && break; sleep 0.5; done
t1=$(date +%s.%N)
echo "closing took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; $(conns) connections left"
measure "after all were closed"
