#!/usr/bin/env python3
"""Kernel-side TCP peer for the end-to-end tests: drives the stack's echo service.

  tcp_peer.py sequential HOST PORT COUNT     COUNT connections one after another
  tcp_peer.py concurrent HOST PORT COUNT     COUNT connections open at the same time
  tcp_peer.py halfclose  HOST PORT BYTES     send, shutdown(SHUT_WR), read the echo to EOF

Each prints one summary line and exits 0 only if every byte came back intact.
"""
import os
import selectors
import socket
import sys
import time

TIMEOUT = 30.0


def echo_once(host, port, payload):
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return bytes(got)


def sequential(host, port, count):
    for i in range(count):
        payload = os.urandom(1 + i % 3000)
        got = echo_once(host, port, payload)
        if got != payload:
            print(f"sequential: connection {i}: sent {len(payload)} bytes, got {len(got)} back")
            return 1
    print(f"sequential: {count} connections ok")
    return 0


def concurrent(host, port, count):
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(count):
        s = socket.create_connection((host, port), timeout=TIMEOUT)
        s.setblocking(False)
        payload = os.urandom(1000 + i)
        conns.append({"sock": s, "payload": payload, "sent": 0, "got": bytearray()})
    # Every connection is established before any data moves: all COUNT are open at once.
    for c in conns:
        sel.register(c["sock"], selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    deadline = time.monotonic() + TIMEOUT
    open_count = count
    while open_count and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1.0):
            c = key.data
            s = c["sock"]
            if events & selectors.EVENT_WRITE and c["sent"] < len(c["payload"]):
                c["sent"] += s.send(c["payload"][c["sent"]:])
                if c["sent"] == len(c["payload"]):
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ, c)
            if events & selectors.EVENT_READ:
                chunk = s.recv(65536)
                if chunk:
                    c["got"] += chunk
                else:
                    sel.unregister(s)
                    s.close()
                    open_count -= 1
    bad = [i for i, c in enumerate(conns) if bytes(c["got"]) != c["payload"]]
    if open_count or bad:
        print(f"concurrent: {open_count} still open, {len(bad)} with wrong data (first {bad[:5]})")
        return 1
    print(f"concurrent: {count} connections ok")
    return 0


def halfclose(host, port, nbytes):
    payload = os.urandom(nbytes)
    got = echo_once(host, port, payload)
    if got != payload:
        print(f"halfclose: sent {len(payload)}, got {len(got)}")
        return 1
    print(f"halfclose: {nbytes} bytes echoed after SHUT_WR")
    return 0


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    modes = {"sequential": sequential, "concurrent": concurrent, "halfclose": halfclose}
    if mode not in modes:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return modes[mode](host, port, n)


if __name__ == "__main__":
    sys.exit(main())
