#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The far end of the NIC bed's wire: a host that exists only as raw frames
on an interface (AF_PACKET; the bed kernel has no network namespaces, so
the wire NIC cannot have an address of its own beside pvpnic0's).

    nic-wire.py <iface> <my ip> <peer ip> <seconds> [<pings> [<interval>]]

Answers ARP requests for <my ip> (with the interface's MAC) and ICMP echo
requests to it, for <seconds>. With <pings>, it also pings <peer ip>
(after learning its MAC by ARP) that many times, <interval> seconds
(default 0.2) apart, from the start. Prints one summary line:
    wire: arp_replies=N echo_replies=N pings_sent=N pongs=N
"""
import socket
import struct
import sys
import time

iface, my_ip, peer_ip, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
pings = int(sys.argv[5]) if len(sys.argv) > 5 else 0
interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.2
ETH_P_ALL, ETH_P_ARP, ETH_P_IP = 0x0003, 0x0806, 0x0800
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.bind((iface, 0))
s.settimeout(0.01)


def send(frame):
    try:
        s.send(frame)
    except OSError:  # the wire NIC's queue is full (timeout): a lost frame
        pass

with open(f"/sys/class/net/{iface}/address") as f:
    my_mac = bytes.fromhex(f.read().strip().replace(":", ""))
my = socket.inet_aton(my_ip)
peer = socket.inet_aton(peer_ip)
peer_mac = None
counts = {"arp_replies": 0, "echo_replies": 0, "pings_sent": 0, "pongs": 0,
          "udp_ok": 0, "udp_bad": 0, "tcp_ok": 0, "tcp_bad": 0}


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff


def ip_packet(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def icmp(kind, ident, seq, data):
    m = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def send_arp(op, dst_mac, target_mac, target_ip):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, my_mac, my, target_mac, target_ip)
    send(dst_mac + my_mac + struct.pack("!H", ETH_P_ARP) + arp)


last_seq = 0
start = time.monotonic()
next_ping = start
seq = 0
last_ping = None


def listening():
    """For <seconds>, and up to GRACE seconds past the last ping while a
    pong is missing (a ping sent late, after a slow ARP, is not counted lost
    because the window closed before its answer came)."""
    now = time.monotonic()
    if now - start < secs:
        return True
    return (last_ping is not None and counts["pongs"] < counts["pings_sent"]
            and now - last_ping < GRACE)


GRACE = 3.0
while listening():
    now = time.monotonic()
    if seq < pings and now >= next_ping:
        if peer_mac is None:
            send_arp(1, b"\xff" * 6, b"\0" * 6, peer)
        else:
            seq += 1
            pkt = ip_packet(my, peer, 1, icmp(8, 0x4242, seq, b"pvpass-wire" * 8), seq)
            send(peer_mac + my_mac + struct.pack("!H", ETH_P_IP) + pkt)
            counts["pings_sent"] += 1
            last_ping = now
        next_ping = now + interval
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if len(f) < 14 or f[6:12] == my_mac:
        continue
    src_mac, etype = f[6:12], struct.unpack("!H", f[12:14])[0]
    if etype == ETH_P_ARP and len(f) >= 42:
        op = struct.unpack("!H", f[20:22])[0]
        sha, spa, tpa = f[22:28], f[28:32], f[38:42]
        if op == 1 and tpa == my:
            send_arp(2, src_mac, sha, spa)
            counts["arp_replies"] += 1
        elif op == 2 and spa == peer:
            peer_mac = sha
            next_ping = time.monotonic()
    elif etype == ETH_P_IP and len(f) >= 34 and f[23] in (6, 17) and f[30:34] == my:
        ihl = (f[14] & 0xf) * 4
        total = struct.unpack("!H", f[16:18])[0]
        seg = f[14 + ihl:14 + total]
        pseudo = f[26:30] + f[30:34] + struct.pack("!BBH", 0, f[23], len(seg))
        name = "tcp" if f[23] == 6 else "udp"
        good = len(seg) >= 8 and csum(pseudo + seg) == 0 and seg[6 if name == "udp" else 16:][:2] != b"\0\0"
        counts[name + ("_ok" if good else "_bad")] += 1
        if name == "udp" and seg[8:16].isdigit():
            last_seq = max(last_seq, int(seg[8:16]))
            if not good:
                print(f"bad udp datagram: sequence {int(seg[8:16])}")
        if not good and counts[name + "_bad"] <= 3:
            print(f"bad {name} frame ({len(f)} bytes, IP total {total}): {f[:80].hex()} ... {f[-16:].hex()}")
    elif etype == ETH_P_IP and len(f) >= 34 and f[12 + 2 + 9] == 1:
        ihl = (f[14] & 0xf) * 4
        src, dst = f[26:30], f[30:34]
        total = struct.unpack("!H", f[16:18])[0]
        msg = f[14 + ihl:14 + total]
        if dst != my or len(msg) < 8:
            continue
        if msg[0] == 8:
            ident, sq = struct.unpack("!HH", msg[4:8])
            pkt = ip_packet(my, src, 1, icmp(0, ident, sq, msg[8:]), sq)
            send(src_mac + my_mac + struct.pack("!H", ETH_P_IP) + pkt)
            counts["echo_replies"] += 1
        elif msg[0] == 0 and struct.unpack("!H", msg[4:6])[0] == 0x4242:
            counts["pongs"] += 1
if last_seq:
    print(f"last udp sequence: {last_seq}")
print("wire: " + " ".join(f"{k}={v}" for k, v in counts.items()))
