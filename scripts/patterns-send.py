#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Send UDP datagrams whose payload guest/patterns.c checks:

    patterns-send.py <addr> <port> <seconds> [<per second>] [<bytes>]

an 8-byte little-endian sequence number (from 1), then bytes
(seq * 31 + i) & 0xff up to <bytes> (default 1400) per datagram, at
<per second> (default 200). Prints "patterns-send: <n> sent" at the end.
"""
import socket
import struct
import sys
import time

addr, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 200
size = int(sys.argv[5]) if len(sys.argv) > 5 else 1400
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + secs
# Byte i of datagram seq is (seq * 31 + i) & 0xff: a slice of 0..255 repeated.
ramp = bytes(range(256)) * (size // 256 + 2)
seq = 0
while time.monotonic() < end:
    seq += 1
    head = struct.pack("<Q", seq)
    start = (seq * 31 + 8) & 0xFF
    body = ramp[start:start + size - 8]
    try:
        s.sendto(head + body, (addr, port))
    except OSError:
        pass  # no route for a moment (the port moves with the migration)
    time.sleep(1.0 / rate)
print(f"patterns-send: {seq} sent")
