#!/bin/bash
# Run the echo programs in network namespace NS and check them:
#   1. fork_server (fork per connection) + echo_client: 50 concurrent connections x 64 KiB,
#      then every per-connection child must have exited (connection ended by EOF);
#   2. asyncio_echo.py server + asyncio_echo.py client: 200 concurrent connections (epoll).
#
#   tests/programs/run_echo_programs.sh NS [BIN_DIR]
#
# NS is created (lo up) and deleted again if it does not exist yet. BIN_DIR holds fork_server
# and echo_client (default: built into a temporary directory). Optional environment, for
# running either side on ustack later: SERVER_WRAP / CLIENT_WRAP (command prefixes, e.g.
# "env LD_PRELOAD=/abs/libsockshim.so"), ADDR (default 127.0.0.1).
# Exit status 0 when everything passed.
set -u

NS=${1:?usage: run_echo_programs.sh NS [BIN_DIR]}
BIN=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ADDR=${ADDR:-127.0.0.1}
WORK=$(mktemp -d /tmp/ustk-echo.XXXXXX)
CREATED_NS=0
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ "$CREATED_NS" = 1 ] && ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
    BIN=$WORK/bin
    make -s -C "$HERE" OUT="$BIN" "$BIN/fork_server" "$BIN/echo_client" >&2 || exit 1
fi
if ! ip netns list | grep -qw "^$NS"; then
    ip netns add "$NS" || exit 1
    CREATED_NS=1
    ip -n "$NS" link set lo up
fi

# Wait for "<name>: listening HOST PORT" in a server's stdout; prints PORT.
wait_port() {
    for _ in $(seq 200); do
        port=$(sed -n 's/.*: listening [^ ]* \([0-9]*\)$/\1/p' "$1" | head -1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.05
    done
    return 1
}

status=0

# --- 1. fork-per-connection server -------------------------------------------------------
# shellcheck disable=SC2086
ip netns exec "$NS" ${SERVER_WRAP:-} "$BIN/fork_server" "$ADDR" 0 >"$WORK/fork.out" 2>"$WORK/fork.err" &
FORK_PID=$!
PIDS+=("$FORK_PID")
if port=$(wait_port "$WORK/fork.out"); then
    # shellcheck disable=SC2086
    if timeout 60 ip netns exec "$NS" ${CLIENT_WRAP:-} "$BIN/echo_client" "$ADDR" "$port" 50 65536 7; then
        :
    else
        echo "run_echo_programs: fork_server/echo_client FAILED" >&2
        status=1
    fi
    # Each child exits when its client half-closes and the echo is done; the parent reaps.
    left=
    for _ in $(seq 100); do
        left=$(pgrep -P "$FORK_PID" | wc -l)
        [ "$left" = 0 ] && break
        sleep 0.05
    done
    if [ "$left" = 0 ] && kill -0 "$FORK_PID" 2>/dev/null; then
        echo "fork_server: all per-connection children exited, parent still serving"
    else
        echo "run_echo_programs: fork_server children left: $left (or parent died)" >&2
        status=1
    fi
else
    echo "run_echo_programs: fork_server did not start" >&2
    cat "$WORK/fork.err" >&2
    status=1
fi

# --- 2. asyncio (epoll) server, 200 concurrent clients -------------------------------------
# shellcheck disable=SC2086
ip netns exec "$NS" ${SERVER_WRAP:-} python3 "$HERE/asyncio_echo.py" server "$ADDR" 0 \
    >"$WORK/asyncio.out" 2>"$WORK/asyncio.err" &
PIDS+=("$!")
if port=$(wait_port "$WORK/asyncio.out"); then
    # shellcheck disable=SC2086
    if ! timeout 60 ip netns exec "$NS" ${CLIENT_WRAP:-} python3 "$HERE/asyncio_echo.py" client "$ADDR" "$port" --conns 200; then
        echo "run_echo_programs: asyncio_echo FAILED" >&2
        status=1
    fi
else
    echo "run_echo_programs: asyncio_echo server did not start" >&2
    cat "$WORK/asyncio.err" >&2
    status=1
fi

[ $status = 0 ] && echo "run_echo_programs: PASS" || echo "run_echo_programs: FAIL"
exit $status
