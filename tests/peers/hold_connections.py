"""Opens COUNT TCP connections from SOURCE_ADDR to ADDR:PORT and holds them open until SIGTERM
or SIGINT, then closes them all. Prints "open N" once all are established
(or "open N of COUNT" after 120 s). Used by scripts/bench-scale.sh; one process holds at most
what its RLIMIT_NOFILE allows, so the script runs several.

    hold_connections.py ADDR PORT SOURCE_ADDR COUNT
"""
import resource
import signal
import selectors
import socket
import sys
import time

addr, port, source, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

sel = selectors.DefaultSelector()
pending = 0
opened = []
started = time.time()
next_index = 0
# Keep at most 1000 handshakes in flight, like a client pool ramping up.
while (next_index < count or pending) and time.time() - started < 120:
    while next_index < count and pending < 1000:
        s = socket.socket()
        s.setblocking(False)
        s.bind((source, 0))
        try:
            s.connect((addr, port))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE)
        pending += 1
        next_index += 1
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        sel.unregister(s)
        pending -= 1
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            opened.append(s)
        else:
            s.close()
print(f"open {len(opened)}" + ("" if len(opened) == count else f" of {count}"), flush=True)
signal.signal(signal.SIGTERM, lambda *_: None)
signal.signal(signal.SIGINT, lambda *_: None)
signal.pause()
for s in opened:
    s.close()
