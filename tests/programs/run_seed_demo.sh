#!/bin/bash
# Run the seed 001 demo (seed_server + seed_client) in network namespace NS and check the
# conversation from shared/seeds/001 byte for byte:
#
#   tests/programs/run_seed_demo.sh NS [BIN_DIR]
#
# NS is created (with lo up) and deleted again if it does not exist yet. BIN_DIR holds
# seed_server and seed_client (default: built into a temporary directory with make).
# The server listens on 127.0.0.1 7777; its stdin is a FIFO this script keeps open (so the
# server never sees EOF: at EOF the original program crashes in strlen(NULL)); the client
# gets "hi", "bye", "q". Optional environment, for running the programs on ustack later:
#   SERVER_WRAP / CLIENT_WRAP   command prefix, e.g. "env LD_PRELOAD=/abs/libsockshim.so"
#   SERVER_READY_CMD            command that succeeds once the server listens (default:
#                               `ss` in NS, which only sees kernel sockets)
# Exit status 0 when both transcripts are exactly as expected.
set -u

NS=${1:?usage: run_seed_demo.sh NS [BIN_DIR]}
BIN=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=7777
WORK=$(mktemp -d /tmp/ustk-seed.XXXXXX)
CREATED_NS=0
SERVER_PID=

cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    exec 3>&- 2>/dev/null
    [ "$CREATED_NS" = 1 ] && ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
    BIN=$WORK/bin
    make -s -C "$HERE" OUT="$BIN" "$BIN/seed_server" "$BIN/seed_client" >&2 || exit 1
fi
if ! ip netns list | grep -qw "^$NS"; then
    ip netns add "$NS" || exit 1
    CREATED_NS=1
    ip -n "$NS" link set lo up
fi

mkfifo "$WORK/server_in"
exec 3<>"$WORK/server_in"   # held open read-write: the server's stdin never reaches EOF

# stdbuf -o0: the server prints its prompts without a newline and is killed at the end, so
# its stdout must not sit in a stdio buffer. (stdbuf keeps an existing LD_PRELOAD.)
# shellcheck disable=SC2086
ip netns exec "$NS" ${SERVER_WRAP:-} stdbuf -o0 "$BIN/seed_server" 127.0.0.1 $PORT \
    <"$WORK/server_in" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

ready=0
for _ in $(seq 100); do
    if [ -n "${SERVER_READY_CMD:-}" ]; then
        sh -c "$SERVER_READY_CMD" >/dev/null 2>&1 && ready=1
    else
        [ -n "$(ip netns exec "$NS" ss -Hltn "sport = :$PORT")" ] && ready=1
    fi
    [ $ready = 1 ] && break
    sleep 0.05
done
if [ $ready != 1 ]; then
    echo "run_seed_demo: server did not start listening on 127.0.0.1:$PORT" >&2
    cat "$WORK/server.err" >&2
    exit 1
fi

# The server's two replies (read with fgets when each message arrives).
printf 'hi, i got you\nbyebye\n' >&3

# shellcheck disable=SC2086
printf 'hi\nbye\nq\n' | timeout 20 ip netns exec "$NS" ${CLIENT_WRAP:-} "$BIN/seed_client" 127.0.0.1 $PORT \
    >"$WORK/client.out" 2>"$WORK/client.err"
client_rc=$?

# The client's "q" round still connects (then exits without writing): the server accepts it,
# reads EOF and prints an empty message and a third prompt. Wait for that before comparing.
for _ in $(seq 100); do
    [ "$(grep -o 'you say: ' "$WORK/server.out" | wc -l)" -ge 3 ] && break
    sleep 0.05
done

printf 'you say: 127.0.0.1 say: hi, i got you\nyou say: 127.0.0.1 say: byebye\nyou say: ' \
    >"$WORK/client.expected"
printf '127.0.0.1 say: hi\nyou say: 127.0.0.1 say: bye\nyou say: 127.0.0.1 say: \nyou say: ' \
    >"$WORK/server.expected"

status=0
if [ $client_rc != 0 ]; then
    echo "run_seed_demo: client exit status $client_rc" >&2
    status=1
fi
for side in client server; do
    if cmp -s "$WORK/$side.expected" "$WORK/$side.out"; then
        echo "run_seed_demo: $side transcript ok"
    else
        echo "run_seed_demo: $side transcript differs (expected, then got):" >&2
        od -c "$WORK/$side.expected" >&2
        od -c "$WORK/$side.out" >&2
        cat "$WORK/$side.err" >&2
        status=1
    fi
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run_seed_demo: server exited early" >&2
    status=1
fi
[ $status = 0 ] && echo "run_seed_demo: PASS" || echo "run_seed_demo: FAIL"
exit $status
