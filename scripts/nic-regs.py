#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read an 82576's state from userspace, with no driver bound: BAR0
registers through the sysfs resource0 mapping and the PCI command register,
for the NIC bed (scripts/guest-nic.sh) to check that pvpass left the
function quiesced.

    nic-regs.py <sysfs device dir>

Prints one "name=0x..." per line and a last line "quiet=yes|no" (receive
and transmit off, no interrupt unmasked, no queue enabled, bus mastering
off).
"""
import mmap
import os
import struct
import sys

dev = sys.argv[1]
REGS = {"CTRL": 0x0, "STATUS": 0x8, "RCTL": 0x100, "TCTL": 0x400,
        "IMS": 0xd0, "EIMS": 0x1524, "VFRE": 0xc8c, "VFTE": 0xc90}
QUEUE_ENABLE = 1 << 25


def rxdctl(q):
    return (0x2828 + 0x100 * q) if q < 4 else (0xc028 + 0x40 * q)


def txdctl(q):
    return (0x3828 + 0x100 * q) if q < 4 else (0xe028 + 0x40 * q)


with open(os.path.join(dev, "config"), "rb") as f:
    cfg = f.read(8)
command = struct.unpack_from("<H", cfg, 4)[0]
fd = os.open(os.path.join(dev, "resource0"), os.O_RDWR | os.O_SYNC)
bar = mmap.mmap(fd, 0x20000, mmap.MAP_SHARED, mmap.PROT_READ)


def rd(off):
    return struct.unpack("<I", bar[off:off + 4])[0]


vals = {k: rd(v) for k, v in REGS.items()}
enabled = [q for q in range(16) if (rd(rxdctl(q)) | rd(txdctl(q))) & QUEUE_ENABLE]
for k, v in vals.items():
    print(f"{k}=0x{v:08x}")
print(f"PCI_COMMAND=0x{command:04x}")
print("queues_enabled=" + (",".join(map(str, enabled)) or "none"))
quiet = (not vals["RCTL"] & 2 and not vals["TCTL"] & 2 and vals["IMS"] == 0
         and vals["EIMS"] == 0 and not enabled and not command & 4)
print("quiet=" + ("yes" if quiet else "no"))
