#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The bed's control port for a guest running guest/init's kill test
(pvpass_killtest=1; scripts/guest-demo.sh, guest-nic-vms.sh):

    bed-control.py <port> <words log> <reply file>

Every connection carries one line from the guest, logged with the time to
<words log> as "HH:MM:SS <peer> <line> -> <reply>", and gets back one
line: the current content of <reply file> ("wait" if empty or missing).
"""
import socket, sys, time
port, words, reply = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(8)
while True:
    c, peer = s.accept()
    c.settimeout(10)
    try:
        data = b""
        while b"\n" not in data:
            d = c.recv(256)
            if not d:
                break
            data += d
        line = data.decode(errors="replace").split("\n")[0].strip()
        try:
            r = open(reply).read().strip() or "wait"
        except OSError:
            r = "wait"
        with open(words, "a") as f:
            f.write("%s %s %s -> %s\n" % (time.strftime("%H:%M:%S"), peer[0], line, r))
        c.sendall((r + "\n").encode())
    except OSError:
        pass
    finally:
        c.close()
