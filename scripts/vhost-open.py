#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Open a pvpass vhost device and a tap, then exec QEMU with both (the bed's
stand-in for `pvpassctl vhost-exec`, which needs no Python):

    vhost-open.py <mac> <switch|""> <netdev id> -- qemu-system-x86_64 ...

appends `-netdev tap,id=<id>,fd=T,vhost=on,vhostfd=V`.
"""
import fcntl
import os
import struct
import sys

mac_s, backend, netdev = sys.argv[1:4]
argv = sys.argv[5:] if sys.argv[4] == "--" else sys.argv[4:]
mac = bytes(int(b, 16) for b in mac_s.split(":"))
v = os.open("/dev/pvpass-vhost-net", os.O_RDWR)
req = bytearray(struct.pack("16s6s2xII", backend.encode(), mac, 0, 0))
PVPASS_VHOST_SET_PORT = (3 << 30) | (32 << 16) | (0xBC << 8) | 0x10
fcntl.ioctl(v, PVPASS_VHOST_SET_PORT, req)
dev_id = struct.unpack("16s6s2xII", req)[3]
print(f"vhost-open: pvpass vhost device {dev_id}, mac {mac_s}", file=sys.stderr)
t = os.open("/dev/net/tun", os.O_RDWR)
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUNSETIFF = 0x400454CA
fcntl.ioctl(t, TUNSETIFF, struct.pack("16sH22x", b"", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
os.set_inheritable(v, True)
os.set_inheritable(t, True)
os.execvp(argv[0], argv + ["-netdev", f"tap,id={netdev},fd={t},vhost=on,vhostfd={v}"])
