"""Run under the shim: connects to ADDR PORT with TCP_USER_TIMEOUT 1 s, waits for FLAG_FILE
(the test then drops everything the stack sends), writes, and reports how the next read and
write fail (Linux: ETIMEDOUT once, then EPIPE-free EOF semantics).

    tcp_timeout_client.py ADDR PORT FLAG_FILE
"""
import errno
import os
import socket
import sys
import time

addr, port, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.create_connection((addr, port), timeout=10)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
print("connected", flush=True)
deadline = time.time() + 20
while not os.path.exists(flag) and time.time() < deadline:
    time.sleep(0.05)
sock.send(b"x" * 1000)
time.sleep(3)


def outcome(call):
    try:
        call()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


print("recv", outcome(lambda: sock.recv(10)), flush=True)
