#!/usr/bin/env bash
# The benchmark suite: ustack (through the shim) next to the Linux kernel, in one run, rounds
# interleaved (stack and kernel measurements alternate; every other round runs the list
# backwards), each figure reported as median and min-max over the rounds and as a ratio to
# its kernel reference:
#   1. bulk TCP, one stream: iperf3 shim server / shim client / shim client -R against a
#      kernel iperf3 over the TAP, vs kernel<->kernel over a veth pair (MTU 1500); two shimmed
#      iperf3 over the stack's loopback vs two kernel iperf3 over the kernel's loopback
#   2. request/response latency: 1-byte ping-pong over one TCP_NODELAY connection, 10,000
#      round trips, p50 and p99 (bench/pingpong_*): shim client -> kernel server over the
#      TAP vs kernel<->kernel over the veth
#   3. connection rate: connect / 1-byte request / 1-byte reply / close, one at a time
#      (bench/connrate_*): shim client -> kernel server, kernel client -> shim server, vs
#      kernel<->kernel over the veth
# No thresholds: a measurement that fails is reported as "failed" and the run goes on.
#
#   scripts/bench.sh [--quick] [--write] [--rounds N]
#     --quick     3 rounds, 2 s per iperf3 run, 1 s per connection-rate run (about 2 minutes)
#                 instead of 7 rounds, 5 s and 3 s (about 5 minutes)
#     --write     also write BENCHMARKS.md (table, machine, commit, date, command); without
#                 it the table is only printed, so a quick look never overwrites the record
#     --rounds N  override the number of rounds (at least 1; 3 or more for a useful spread)
# Root only. Builds the release binaries (CARGO_TARGET_DIR is honoured) and bench/ itself,
# creates its own namespaces (scripts/lib/bench-setup.sh) and removes them, and stops every
# process it started, by PID, on exit or on a signal. Every client runs under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '/^#   scripts\/bench.sh/,/^# Root only/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
rounds=7 bulk_secs=5 conn_secs=3 write=0 quick=0
rr_rounds=10000   # ping-pong round trips per run (plus 100 untimed warm-up ones)
conn_ports=8      # server ports for the connection-rate runs (see the notes in BENCHMARKS.md)
while [ "$#" -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --write) write=1 ;;
    --rounds)
        [ "$#" -ge 2 ] || usage
        case "$2" in '' | *[!0-9]*) usage ;; esac
        rounds_override=$2
        shift
        ;;
    *) usage ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then rounds=3 bulk_secs=2 conn_secs=1; fi
rounds=${rounds_override:-$rounds}
[ "$rounds" -ge 1 ] || usage
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root" >&2; exit 1; }
scripts/install-deps.sh   # iperf3, gcc, make, ... on a fresh machine (skips what is there)

# Facts about this run, taken before anything (BENCHMARKS.md itself) changes the tree.
command="scripts/bench.sh"
[ "$quick" = 1 ] && command+=" --quick"
[ "$write" = 1 ] && command+=" --write"
[ -n "${rounds_override:-}" ] && command+=" --rounds $rounds_override"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    commit+="-dirty"
fi
run_date=$(date -u '+%Y-%m-%d %H:%M UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS

# ----- processes: every PID we start and have not reaped yet is in $live -----
live=()
build_group=""
forget() {
    local pid=$1 keep=() p
    for p in "${live[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    live=("${keep[@]}")
}
running() { # running PID: true while the process exists and is not a zombie
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}
stop() { # stop PID: SIGTERM, up to 3 s to exit, then SIGKILL; reaps it
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 30); do running "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}
suite_cleanup() {
    local p
    # A build is stopped with its own process group (cargo leaves rustc running otherwise).
    [ -z "$build_group" ] || kill -TERM -- "-$build_group" 2>/dev/null || true
    # Unreaped PIDs cannot have been reused, so these kills reach only our own processes.
    for p in "${live[@]}"; do stop "$p"; done
    if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
}
trap suite_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
build() { # build CMD...: run CMD in a process group of its own, waiting for it
    local rc=0
    setsid "$@" &
    build_group=$!
    wait "$build_group" || rc=$?
    build_group=""
    return "$rc"
}

echo "building (release)..."
# Two builds, as scripts/lib/bench-setup.sh and the other bench scripts do: building both
# packages in one command unifies their dependencies' features differently and makes the
# next `cargo build -p ustack` (in bench-setup.sh) build ustackd all over again.
build cargo build --release -q -p ustack
build cargo build --release -q -p sockshim

bench_tag=bench
# shellcheck source=lib/bench-setup.sh
. scripts/lib/bench-setup.sh
trap suite_cleanup EXIT  # bench-setup.sh set its own; ours calls it
case "$bin" in /*) ;; *) bin=$PWD/$bin ;; esac
make -s -C bench O="$work/bin"
progs=$work/bin
mkdir -p "$work/samples"

# pre=(...): the command prefix that runs a program in namespace $1, under the shim if $2 is
# "shim" (the kernel's own sockets otherwise).
prefix() {
    pre=(ip netns exec "$1")
    if [ "$2" = shim ]; then
        pre+=(env "LD_PRELOAD=$bin/libsockshim.so" "USTACK_SOCKET=$work/sock")
    fi
}
server_pid=""
start_server() { # start_server NAME PATTERN CMD...: run CMD in the background, output in
    # $work/NAME.out, and wait (at most 5 s) until it prints PATTERN; false if it does not
    local name=$1 pattern=$2 i
    shift 2
    "$@" >"$work/$name.out" 2>&1 &
    server_pid=$!
    live+=("$server_pid")
    for i in $(seq 50); do
        grep -q -- "$pattern" "$work/$name.out" && return 0
        running "$server_pid" || break
        sleep 0.1
    done
    return 1
}
stop_server() { [ -z "$server_pid" ] || stop "$server_pid"; server_pid=""; }
run_client() { # run_client NAME LIMIT CMD...: CMD in the foreground (killed after LIMIT
    # seconds), output in $work/NAME.out; returns its exit status
    local name=$1 limit=$2 pid rc=0
    shift 2
    timeout -k 2 "$limit" "$@" >"$work/$name.out" 2>&1 &
    pid=$!
    live+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

# ----- results: one value per round in $work/samples/KEY ("failed" when it failed) -----
round=0
record() { # record KEY VALUE
    echo "$2" >>"$work/samples/$1"
    printf '  %-22s %s\n' "$1" "$2"
}
note() { echo "round $round, $1" >>"$work/notes"; echo "  ($1)" >&2; }
failed() { # failed KEY NAME...: note why KEY failed, from the output of NAME...
    local name why=""
    for name in "${@:2}"; do
        [ -s "$work/$name.out" ] && why+=" [$name: $(tail -n 2 "$work/$name.out" | tr '\n' ' ' | cut -c1-200)]"
    done
    note "$1 failed:${why:- no output}"
}
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | head -n 1; }

# Receiver Gbit/s from iperf3 --json on stdin (exit status 1 if the run reported an error).
gbps() {
    python3 -c 'import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit(1)
print("%.2f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))'
}

bulk() { # bulk KEY SERVER_NS SERVER_SIDE CLIENT_NS CLIENT_SIDE ADDR [IPERF3_FLAGS...]
    local key=$1 sns=$2 sside=$3 cns=$4 cside=$5 addr=$6 value=failed
    shift 6
    prefix "$sns" "$sside"
    if start_server "$key.server" "Server listening" "${pre[@]}" iperf3 -s -1 -p 5201 --forceflush; then
        prefix "$cns" "$cside"
        if run_client "$key.client" $((bulk_secs + 20)) "${pre[@]}" \
            iperf3 -c "$addr" -p 5201 -t "$bulk_secs" --json "$@"; then
            value=$(gbps <"$work/$key.client.out") || value=failed
        fi
    fi
    stop_server
    [ "$value" != failed ] || failed "$key" "$key.server" "$key.client"
    record "$key" "$value"
}

pingpong() { # pingpong KEY SERVER_NS SERVER_SIDE CLIENT_NS CLIENT_SIDE ADDR
    local key=$1 sns=$2 sside=$3 cns=$4 cside=$5 addr=$6 p50=failed p99=failed
    prefix "$sns" "$sside"
    if start_server "$key.server" listening "${pre[@]}" "$progs"/pingpong_server "$addr" 7000; then
        prefix "$cns" "$cside"
        if run_client "$key.client" 60 "${pre[@]}" "$progs"/pingpong_client "$addr" 7000 "$rr_rounds"; then
            p50=$(field p50_us "$work/$key.client.out")
            p99=$(field p99_us "$work/$key.client.out")
        fi
    fi
    stop_server
    if [ -z "$p50" ] || [ "$p50" = failed ]; then
        p50=failed p99=failed
        failed "$key" "$key.server" "$key.client"
    fi
    record "${key}_p50" "$p50"
    record "${key}_p99" "$p99"
}

connrate() { # connrate KEY SERVER_NS SERVER_SIDE CLIENT_NS CLIENT_SIDE ADDR
    local key=$1 sns=$2 sside=$3 cns=$4 cside=$5 addr=$6 value=failed errors
    prefix "$sns" "$sside"
    if start_server "$key.server" listening "${pre[@]}" "$progs"/connrate_server "$addr" 7100 "$conn_ports"; then
        prefix "$cns" "$cside"
        if run_client "$key.client" $((conn_secs + 30)) "${pre[@]}" \
            "$progs"/connrate_client "$addr" 7100 "$conn_ports" "$conn_secs"; then
            value=$(field rate "$work/$key.client.out")
            errors=$(field errors "$work/$key.client.out")
            [ "${errors:-0}" = 0 ] || note "$key: $errors connections failed: $(head -n 1 "$work/$key.client.out" | cut -c1-200)"
        fi
    fi
    stop_server
    if [ -z "$value" ] || [ "$value" = failed ]; then
        value=failed
        failed "$key" "$key.server" "$key.client"
    fi
    record "$key" "$value"
}

# The measurements, in round order: each stack measurement next to its kernel reference.
m_bulk_shim_server() { bulk bulk_shim_server "$ns_tap" shim "$ns_tap" kernel 10.77.0.2; }
m_bulk_shim_client() { bulk bulk_shim_client "$ns_tap" kernel "$ns_tap" shim 10.77.0.1; }
m_bulk_shim_client_R() { bulk bulk_shim_client_R "$ns_tap" kernel "$ns_tap" shim 10.77.0.1 -R; }
m_bulk_veth() { bulk bulk_veth "$ns_b" kernel "$ns_a" kernel 10.78.0.2; }
m_bulk_lo_shim() { bulk bulk_lo_shim "$ns_tap" shim "$ns_tap" shim 127.0.0.1; }
m_bulk_lo_kernel() { bulk bulk_lo_kernel "$ns_a" kernel "$ns_a" kernel 127.0.0.1; }
m_rr_shim() { pingpong rr_shim "$ns_tap" kernel "$ns_tap" shim 10.77.0.1; }
m_rr_veth() { pingpong rr_veth "$ns_b" kernel "$ns_a" kernel 10.78.0.2; }
m_conn_shim_client() { connrate conn_shim_client "$ns_tap" kernel "$ns_tap" shim 10.77.0.1; }
m_conn_shim_server() { connrate conn_shim_server "$ns_tap" shim "$ns_tap" kernel 10.77.0.2; }
m_conn_veth() { connrate conn_veth "$ns_b" kernel "$ns_a" kernel 10.78.0.2; }
order=(m_bulk_shim_server m_bulk_shim_client m_bulk_shim_client_R m_bulk_veth
    m_bulk_lo_shim m_bulk_lo_kernel m_rr_shim m_rr_veth
    m_conn_shim_client m_conn_shim_server m_conn_veth)

busy=$(awk -v n="$(nproc)" '{ print ($1 > n / 2) ? "yes" : "no" }' /proc/loadavg)
[ "$busy" = no ] || echo "note: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs (the build included): if other work is running, expect noisy figures" >&2
echo "$rounds rounds; iperf3 ${bulk_secs} s, ping-pong $rr_rounds round trips, connection rate ${conn_secs} s per run"
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds"
    if [ $((round % 2)) = 1 ]; then
        for m in "${order[@]}"; do "$m"; done
    else
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do "${order[$i]}"; done
    fi
done
took=$((SECONDS - started))
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ----- the table -----
python3 - "$work/samples" >"$work/table.md" <<'EOF'
import os, statistics, sys

samples_dir = sys.argv[1]

def samples(key):
    try:
        with open(os.path.join(samples_dir, key)) as f:
            lines = [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        return [], 0
    ok = [float(v) for v in lines if v != "failed"]
    return ok, len(lines) - len(ok)

def fmt(v, digits):
    return f"{v:.{digits}f}"

def cell(key, digits):
    ok, nfailed = samples(key)
    if not ok:
        return "failed", None
    med = statistics.median(ok)
    text = f"{fmt(med, digits)} ({fmt(min(ok), digits)}–{fmt(max(ok), digits)})"
    if nfailed:
        text += f", {nfailed} failed"
    return text, med

# (what, unit, stack key, kernel reference label, reference key, digits)
rows = [
    ("TCP bulk: kernel client → shim server (TAP)", "Gbit/s", "bulk_shim_server", "veth", "bulk_veth", 2),
    ("TCP bulk: shim client → kernel server (TAP)", "Gbit/s", "bulk_shim_client", "veth", "bulk_veth", 2),
    ("TCP bulk: kernel server → shim client (TAP, `-R`)", "Gbit/s", "bulk_shim_client_R", "veth", "bulk_veth", 2),
    ("TCP bulk: shim ↔ shim over the stack's loopback", "Gbit/s", "bulk_lo_shim", "kernel lo", "bulk_lo_kernel", 2),
    ("1-byte ping-pong p50: shim client → kernel server (TAP)", "µs", "rr_shim_p50", "veth", "rr_veth_p50", 1),
    ("1-byte ping-pong p99: shim client → kernel server (TAP)", "µs", "rr_shim_p99", "veth", "rr_veth_p99", 1),
    ("connections: shim client → kernel server (TAP)", "conn/s", "conn_shim_client", "veth", "conn_veth", 0),
    ("connections: kernel client → shim server (TAP)", "conn/s", "conn_shim_server", "veth", "conn_veth", 0),
]
print("| measurement | unit | ustack: median (min–max) | kernel reference | kernel: median (min–max) | ratio |")
print("| --- | --- | --- | --- | --- | --- |")
for what, unit, key, ref_label, ref_key, digits in rows:
    stack_text, stack_med = cell(key, digits)
    ref_text, ref_med = cell(ref_key, digits)
    ratio = "—" if stack_med is None or not ref_med else f"{stack_med / ref_med:.2f}"
    print(f"| {what} | {unit} | {stack_text} | {ref_label} | {ref_text} | {ratio} |")
EOF

nproc_count=$(nproc)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kernel_release=$(uname -r)
echo
echo "## Results ($run_date, commit $commit, $nproc_count CPUs: ${cpu_model:-unknown}, Linux $kernel_release)"
echo
cat "$work/table.md"
echo
echo "ratio = ustack median / kernel median (throughput, conn/s: higher is better; latency: lower is better)"
[ ! -s "$work/notes" ] || { echo "notes:"; sed 's/^/  /' "$work/notes"; }
echo "took ${took} s; load average $load_at_start at the start, $load_at_end at the end"

[ "$write" = 1 ] || exit 0
{
    cat <<EOF
# Benchmarks

ustack through the preload shim next to the Linux kernel, measured by \`scripts/bench.sh\`
in one run, the stack and kernel measurements interleaved round by round. This file is
written by \`scripts/bench.sh --write\`; run it again to refresh it rather than editing by hand.

| | |
| --- | --- |
| command | \`$command\` |
| date | $run_date |
| commit | \`$commit\` |
| machine | $nproc_count CPUs, ${cpu_model:-unknown CPU}, Linux $kernel_release; load average $load_at_start at the start, $load_at_end at the end |
| settings | $rounds rounds; iperf3 ${bulk_secs} s per run; ping-pong $rr_rounds round trips per run; connection rate ${conn_secs} s per run over $conn_ports server ports; \`ustackd\` with default flags |
| run time | ${took} s (build included) |

## Results

EOF
    cat "$work/table.md"
    cat <<'EOF'

Each cell is the median over the rounds, with the smallest and largest round in brackets.
**ratio** = ustack median / kernel-reference median: for throughput and connections per
second higher is better (1.00 = as fast as the kernel), for latency lower is better.
EOF
    if [ -s "$work/notes" ]; then
        printf '\nNotes from this run:\n\n'
        sed 's/^/- /' "$work/notes"
    fi
    cat <<'EOF'

## What is measured, and how

Setup (`scripts/lib/bench-setup.sh`): namespace *tap* holds `tap0` (the kernel's side,
10.77.0.1/24) and `ustackd` on it (10.77.0.2, default flags); namespaces *a* and *b* are joined
by a veth pair, 10.78.0.1 ↔ 10.78.0.2, MTU 1500 like the TAP: the kernel reference. "shim"
means the program runs with `LD_PRELOAD=libsockshim.so`, so its sockets are on ustack; every
other program uses the kernel's sockets. Every stack measurement is paired with its kernel
reference inside the same round, and odd rounds run the list forwards, even rounds backwards,
so slow drift on the machine (other load, thermal state) falls on both sides alike.

- **TCP bulk** — `iperf3 -c ADDR -t SECONDS --json`, one stream, receiver's bits per second
  (`end.sum_received`). Over the TAP the kernel peer is in the *tap* namespace: "shim server"
  (kernel client sends to a shimmed `iperf3 -s`), "shim client" (shimmed client sends),
  "`-R`" (shimmed client receives). Reference: kernel iperf3 ↔ kernel iperf3 over the veth
  (one figure per round, used for all three rows). Loopback: both iperf3 under the shim in
  the *tap* namespace talking over 127.0.0.1 — the stack's own loopback, the TAP is not
  involved — against two kernel iperf3 over the kernel's loopback (its MTU is 65536; the
  stack's loopback route uses 65535).
- **Request/response latency** — `bench/pingpong_client` connects to `bench/pingpong_server`
  (both set TCP_NODELAY), does 100 untimed round trips, then 10,000 timed ones: write 1 byte,
  read the echo, each timed with `clock_gettime(CLOCK_MONOTONIC)`; p50/p99 by nearest rank.
  Shimmed client in the *tap* namespace → kernel server on 10.77.0.1, vs kernel client in *a*
  → kernel server in *b*.
- **Connection rate** — `bench/connrate_client` runs, one connection at a time, for the set
  time: `socket`, `connect`, write 1 byte, read the 1-byte reply, read EOF, `close`;
  `bench/connrate_server` accepts, reads the byte, replies, and **closes first**. conn/s =
  completed connections / elapsed time. Rows: shimmed client → kernel server (10.77.0.1),
  kernel client → shimmed server (10.77.0.2), reference kernel client in *a* → kernel server
  in *b*.

Fairness of the connection-rate test. Every connection ends in TIME-WAIT (60 s on both
stacks) on the side that closes first. Had the client closed first, it would hold every
4-tuple it used for a minute: a kernel client reaches the end of its ~28,000 ephemeral ports
to one destination within seconds at these rates and `connect` fails with EADDRNOTAVAIL,
later rounds starting with fewer free ports than earlier ones. `SO_LINGER {1, 0}` (closing with
RST) would avoid TIME-WAIT, but it changes what is measured (no FIN exchange at all), and
`tcp_tw_reuse` is a kernel-only knob. So the test does what HTTP/1.0 does: the server closes
first, the client answers the FIN and its port is free again once that FIN is acknowledged;
the TIME-WAIT entries stay on the server, where they cost memory, not ports. Both stacks do
exactly the same packet exchange (SYN, SYN-ACK, ACK, 1 byte each way, FIN/ACK each way), and
the server-side TIME-WAIT is there in every configuration, the kernel reference included.
The client also spreads its connections over 8 server ports round-robin, which multiplies
the 4-tuples before a client port comes back to a server 4-tuple still in TIME-WAIT (both
stacks accept such a SYN, as RFC 1122 4.2.2.13 allows; the spreading keeps it rare).
Runs are kept short (seconds). Nothing is tuned: no SO_LINGER, no SO_REUSEADDR on the client,
default sysctls. The servers set SO_REUSEADDR, as servers do, so each round can listen again
while the last round's TIME-WAIT entries are still there.

Busy polling and few CPUs: after doing work `ustackd` keeps polling for `--busy-poll-us`
(200 µs by default) before it sleeps. On a 2-CPU machine the spinning daemon, the program and
its kernel peer are three runnable processes on two CPUs, and now and then the process the
daemon waits for shares its CPU: that round trip then takes about the busy-poll window plus
one round trip. On the machine above, over repeated runs, the stack's ping-pong p99 sat near
240 µs with the default (14 of 20 runs between 227 and 247 µs), at 1,040–1,079 µs with
`--busy-poll-us 1000` (3 runs), and at a median of 145 µs with `--busy-poll-us 0` (13 runs,
61–1,039 µs, following the other load on the machine). The table uses the default.

Where the scheduler puts the processes matters as much. Kernel ping-pong over the veth took
14 µs (p50) with client and server pinned to one CPU and about 40 µs pinned to two
(`taskset`); unpinned, Linux usually puts the pair on one CPU, but not always, and then a
round's veth p50 is near 60 µs. The stack's run has three processes (client, `ustackd`,
kernel server) for two CPUs, so it always crosses CPUs. Nothing is pinned here: the figures
are what unpinned programs get, and the min–max shows when placement moved a round.

What this does not show: several streams or connections at once, loss (see
`scripts/bench-tcp.sh`), CPU cost per byte, and the `ustackd` flags (`--busy-poll-us`) that
trade CPU for latency. The machine may be shared: the load averages above say how busy it
was (1/5/15-minute averages at the start and at the end; the run itself adds up to about 2).
EOF
} >BENCHMARKS.md
echo "wrote BENCHMARKS.md"
