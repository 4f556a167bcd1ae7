#!/usr/bin/env bash
# iperf3 through the shim against a kernel peer, next to iperf3 kernel<->kernel over a veth
# pair, measured in one run and interleaved (3 rounds, SECONDS each, default 5):
#   shim server   iperf3 -s on the stack (LD_PRELOAD), kernel client sends      (-c)
#   shim client   iperf3 -c on the stack sends to a kernel server               (-c)
#   shim -R       iperf3 -c on the stack, kernel server sends                   (-c -R)
#   kernel veth   iperf3 kernel to kernel over veth (the reference)
#   scripts/bench-iperf.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}

bench_tag=bi
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh
cargo build --release -q -p sockshim
case "$bin" in /*) ;; *) bin=$PWD/$bin ;; esac  # CARGO_TARGET_DIR may be absolute
shim="env LD_PRELOAD=$bin/libsockshim.so USTACK_SOCKET=$work/sock"

# receiver Gbit/s from iperf3 --json on stdin
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'; }

server() { # server NS [PREFIX...]: a one-shot iperf3 server; prints its PID
    local ns=$1; shift
    ip netns exec "$ns" "$@" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    echo $!
}

run_client() { # run_client NS ADDR [FLAGS] [PREFIX...]
    local ns=$1 addr=$2 flags=$3; shift 3
    # shellcheck disable=SC2086 # flags is a list
    ip netns exec "$ns" "$@" iperf3 -c "$addr" -p 5201 -t "$secs" --json $flags | gbps
}

one() { # one SERVER_NS SERVER_PREFIX CLIENT_NS CLIENT_PREFIX ADDR FLAGS
    local pid
    # shellcheck disable=SC2086 # prefixes are word lists
    pid=$(server "$1" $2)
    sleep 0.5
    # shellcheck disable=SC2086
    run_client "$3" "$5" "$6" $4 || echo "failed"
    wait "$pid" 2>/dev/null || true
}

echo "iperf3, ${secs} s per run, receiver Gbit/s; rounds interleaved"
for round in 1 2 3; do
    a=$(one "$ns_tap" "$shim" "$ns_tap" "" 10.77.0.2 "")
    b=$(one "$ns_tap" "" "$ns_tap" "$shim" 10.77.0.1 "")
    c=$(one "$ns_tap" "" "$ns_tap" "$shim" 10.77.0.1 "-R")
    d=$(one "$ns_b" "" "$ns_a" "" 10.78.0.2 "")
    echo "round $round: shim server $a  shim client $b  shim client -R $c  kernel veth $d"
done
