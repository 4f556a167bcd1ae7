"""A UDP echo server for the tests: answers every datagram with the same bytes.

    udp_echo.py ADDR PORT COUNT    exits after COUNT datagrams (or 30 s of silence)
"""
import socket
import sys

addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((addr, port))
sock.settimeout(30)
print("ready", flush=True)
for _ in range(count):
    data, peer = sock.recvfrom(65535)
    sock.sendto(data, peer)
