#!/usr/bin/env python3
"""Open a guest NIC's files as libvirt does for an <interface type='ethernet'>
with <backend vhost='/dev/pvpass-vhost-net'/>, <target dev='TAP'/> and
<driver queues='N'/>, and exec QEMU with them: N files of the vhost device
(no pvpass ioctl on them: libvirt knows nothing of pvpass) and a
multi-queue tap TAP with N queues, given as

    -netdev tap,id=ID,fds=T1:..:TN,vhost=on,vhostfds=V1:..:VN

added to the QEMU command after `--`. The port comes from the vhost rule of
TAP (`pvpassctl vhost-rule add --tap TAP --mac ...`), which the module looks
up when QEMU starts the device. For the bed test scripts/guest-libvirt.sh.

    libvirt-open.py --tap TAP [--queues N] [--netdev-id ID] -- qemu-system-x86_64 ...
"""
import argparse
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100


def tap_queue(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
    return fd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tap", required=True)
    ap.add_argument("--queues", type=int, default=1)
    ap.add_argument("--netdev-id", default="n0")
    ap.add_argument("--vhost-device", default="/dev/pvpass-vhost-net")
    ap.add_argument("qemu", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.qemu[1:] if a.qemu[:1] == ["--"] else a.qemu
    if not cmd:
        ap.error("no QEMU command after --")
    taps = [tap_queue(a.tap) for _ in range(a.queues)]
    vhost = [os.open(a.vhost_device, os.O_RDWR) for _ in range(a.queues)]
    for fd in taps + vhost:
        os.set_inheritable(fd, True)
    netdev = "tap,id=%s,fds=%s,vhost=on,vhostfds=%s" % (
        a.netdev_id, ":".join(map(str, taps)), ":".join(map(str, vhost)))
    print("libvirt-open: %s -netdev %s" % (cmd[0], netdev), file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd + ["-netdev", netdev])


if __name__ == "__main__":
    main()
