#!/usr/bin/env python3
"""Send one QMP command to a QEMU monitor socket and print the reply.

Usage: qmp.py <socket> <command>   (e.g. cont, quit). Waits up to 30 s for
the socket. Used by the demo (scripts/guest-demo.sh) and the benchmark
(bench/bed.sh) inside the test bed.
"""
import json
import socket
import sys
import time


def main() -> int:
    path, command = sys.argv[1], sys.argv[2]
    for _ in range(300):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        print("qmp", command, "no monitor at", path)
        return 1
    f = s.makefile("rw")
    f.readline()
    for cmd in ("qmp_capabilities", command):
        f.write(json.dumps({"execute": cmd}) + "\n")
        f.flush()
        print("qmp", cmd, f.readline().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
