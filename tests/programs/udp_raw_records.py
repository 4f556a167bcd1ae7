"""Run under the shim: writes malformed records straight into a UDP socket's descriptor with
raw system calls (bypassing the shim), then checks the socket and the daemon still work.

    udp_raw_records.py ECHO_ADDR ECHO_PORT
"""
import ctypes
import socket
import sys

SYS_sendto = 44  # x86-64
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

addr, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(10)
records = [
    b"",                                     # empty
    b"\x02\x00",                             # shorter than a header
    b"\x09" + b"\x00" * 11 + b"bad tag",     # unknown tag
    b"\x03" + b"\x00" * 11 + b"from?",       # a daemon-side header from the program
    b"\x01" + b"\x00" * 11 + b"to peer",     # "to the peer" on an unconnected socket
    b"\x02\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 4 + b"port 0",  # to 0.0.0.0:0
]
for record in records:
    buf = ctypes.create_string_buffer(record, len(record))
    rc = libc.syscall(SYS_sendto, sock.fileno(), buf, len(record), 0, None, 0)
    if rc < 0:
        print(f"raw sendto failed: errno {ctypes.get_errno()}", flush=True)
        sys.exit(1)
sock.sendto(b"still fine", (addr, port))
echo, _ = sock.recvfrom(100)
print(echo.decode(), flush=True)
