"""Run under the shim: writes malformed records straight into a UDP socket's descriptor with
raw system calls (bypassing the shim), then checks the socket and the daemon still work.

    udp_raw_records.py ECHO_ADDR ECHO_PORT GO_FILE

Prints "ready" once its sockets are set up, then waits for GO_FILE (the test stops the daemon
meanwhile, so that every record below is queued before the daemon reads any), writes the
records, prints "written", and finally the echo of a normal datagram and what its own
receiver got.
"""
import ctypes
import os
import socket
import struct
import sys
import time

SYS_sendto = 44  # x86-64
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

addr, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(10)
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.bind(("127.0.0.1", 0))
receiver.settimeout(10)
rport = receiver.getsockname()[1]
sock.sendto(b"hello", ("127.0.0.1", rport))  # binds the sender
receiver.recvfrom(100)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)


def raw(record):
    buf = ctypes.create_string_buffer(record, len(record))
    if libc.syscall(SYS_sendto, sock.fileno(), buf, len(record), 0, None, 0) < 0:
        print(f"raw sendto failed: errno {ctypes.get_errno()}", flush=True)
        sys.exit(1)


# A well-formed "to" header (what the shim writes): tag 2, port, IPv4 address.
def to_receiver(payload):
    return struct.pack("!BBH4sI", 2, 0, rport, socket.inet_aton("127.0.0.1"), 0) + payload


for record in [
    b"",                                     # empty
    b"\x02\x00",                             # shorter than a header
    b"\x09" + b"\x00" * 11 + b"bad tag",     # unknown tag
    b"\x03" + b"\x00" * 11 + b"from?",       # a daemon-side header from the program
    b"\x01" + b"\x00" * 11 + b"to peer",     # "to the peer" on an unconnected socket
    b"\x02" + b"\x00" * 11 + b"port 0",      # to 0.0.0.0:0
    b"",                                     # empty again, right before a good one
    to_receiver(b"after the garbage"),
]:
    raw(record)
print("written", flush=True)
got, _ = receiver.recvfrom(100)
sock.sendto(b"still fine", (addr, port))
echo, _ = sock.recvfrom(100)
print(echo.decode(), got.decode(), flush=True)
