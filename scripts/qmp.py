#!/usr/bin/env python3
"""Send one QMP command to a QEMU monitor socket and print the reply.

Usage: qmp.py <socket> <command> [<arguments as JSON>]   (e.g. cont, quit;
migrate '{"uri": "unix:/tmp/m.sock"}'). Waits up to 30 s for the socket,
prints the command's reply (events before it are skipped). Used by the demo (scripts/guest-demo.sh) and the benchmark
(bench/bed.sh) inside the test bed.
"""
import json
import socket
import sys
import time


def main() -> int:
    path, command = sys.argv[1], sys.argv[2]
    arguments = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
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
        msg = {"execute": cmd}
        if cmd == command and arguments is not None:
            msg["arguments"] = arguments
        f.write(json.dumps(msg) + "\n")
        f.flush()
        while True:
            line = f.readline()
            if not line or '"return"' in line or '"error"' in line:
                break
        print("qmp", cmd, line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
