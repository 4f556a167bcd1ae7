"""Sends datagrams of the given sizes to an echo server and checks every echo.

    udp_client.py ADDR PORT SIZE...     prints "ok SIZE" per echo, exits 1 on a mismatch
"""
import hashlib
import os
import socket
import sys

addr, port, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(10)
for size in sizes:
    data = os.urandom(size)
    sock.sendto(data, (addr, port))
    echo, peer = sock.recvfrom(65535)
    if hashlib.sha256(echo).digest() != hashlib.sha256(data).digest() or peer != (addr, port):
        print(f"mismatch for {size}: got {len(echo)} bytes from {peer}", flush=True)
        sys.exit(1)
    print(f"ok {size}", flush=True)
