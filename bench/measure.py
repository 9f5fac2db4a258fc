#!/usr/bin/env python3
"""Run the netperf tests of one benchmark configuration inside the test bed
and append one CSV row per (test, repetition) to <res>/runs.csv.

Runs in the bed (L1), called by bench/bed.sh once the configuration's guests
are up (or with no guests for `loopback`). For a guest configuration, guest 2
runs netperf (asked over TCP port 12867, bench/guest-agent) against guest 1
or the bed. While a test runs, the bed takes two snapshots, one second after
it started and one second before it ends, of:

  - KVM's statistics summed over every VM and vCPU (debugfs kvm/: exits,
    irq_injections, ...);
  - /proc/stat's cpu line (the bed's CPU time, jiffies);
  - the frames on the virtual wire, counted at the bed: frames the guests
    sent plus frames the bed's stack sent to them (pvpass: the attachments'
    tx_frames + pvpsw0's tx_packets; bridge: the taps' rx_packets + br0's
    tx_packets; loopback: lo's tx_packets). A GSO frame counts once;
  - for pvpass, the attachments' counters (`pvpassctl stats <id> --json`),
    pin counters included when the module has them.

Per-packet figures are deltas over that window divided by the frames in it;
the throughput is netperf's own figure for the whole test. Nothing goes over
the guests' network during the window but the test itself.
"""
import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time

KVM_DIR = "/sys/kernel/debug/kvm"
KVM_STATS = ["exits", "irq_injections", "halt_exits", "io_exits", "mmio_exits",
             "irq_exits", "irq_window_exits", "request_irq_exits", "signal_exits",
             "insn_emulation"]
PIN_FIELDS = ["pages_pinned", "pin_hits", "pin_misses"]
PV_FIELDS = ["tx_frames", "rx_frames", "notifies", "interrupts", "mmio_reads", "mmio_writes",
             "drop_rx_no_buffer", "tx_gso_frames", "tx_yields", "drop_tx_storm",
             "drop_rx_scattered", "tx_deferrals", "tx_polls", "tx_poll_irqs"]
OUTPUT = "THROUGHPUT,THROUGHPUT_UNITS,ELAPSED_TIME,LOCAL_SEND_CALLS,REMOTE_RECV_CALLS," \
         "REMOTE_BYTES_RECVD,TRANSACTION_RATE"
AGENT_PORT = 12867
HOST_IP = "10.0.0.254"
SERVER_GUEST = "10.0.0.1"
CLIENT_GUEST = "10.0.0.2"

# name -> (netperf test, destination, test-specific options)
GUEST_TESTS = {
    "tcp_stream_g2h": ("TCP_STREAM", HOST_IP, ""),
    "tcp_stream_g2g": ("TCP_STREAM", SERVER_GUEST, ""),
    "udp64_g2g": ("UDP_STREAM", SERVER_GUEST, "-m 64"),
    "tcp_rr_g2g": ("TCP_RR", SERVER_GUEST, ""),
    # Not in the default set; BENCH_TESTS can add them.
    "tcp_rr_g2h": ("TCP_RR", HOST_IP, ""),
    "udp64_g2h": ("UDP_STREAM", HOST_IP, "-m 64"),
    # No traffic: the background rate of exits and interrupts (timers, idle).
    "idle": ("IDLE", None, ""),
}
LOOPBACK_TESTS = {
    "tcp_stream_lo": ("TCP_STREAM", "127.0.0.1", ""),
    "udp64_lo": ("UDP_STREAM", "127.0.0.1", "-m 64"),
    "tcp_rr_lo": ("TCP_RR", "127.0.0.1", ""),
}
COLUMNS = ["config", "test", "rep", "value", "unit", "elapsed_s", "window_s", "packets", "bytes",
           "bed_insns"] + \
    KVM_STATS + ["cpu_busy_ms", "cpu_guest_ms", "cpu_host_ms"] + \
          ["pv_" + f for f in PV_FIELDS] + PIN_FIELDS + ["tcp_retrans", "tcp_timeouts", "netperf"]


def log(*a):
    print("measure:", *a, flush=True)


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kvm_stats():
    return {n: read_int(f"{KVM_DIR}/{n}") for n in KVM_STATS}


def cpu_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (10 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice = v[:10]
    busy = user + nice + system + irq + softirq + steal  # user includes guest time
    return {"busy": busy, "guest": guest + guest_nice}


def bed_insns():
    """Instructions the bed's QEMU has executed so far (its own code and the
    guests'), from the TCG plugin's running count (BENCH_ICOUNT=plugin,
    bench/run.sh); None without it."""
    path = os.environ.get("BENCH_ICOUNT_FILE")
    if not path:
        return None
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def netdev(name, field):
    return read_int(f"/sys/class/net/{name}/statistics/{field}") or 0


class Wire:
    """Counts frames on the virtual wire for one configuration."""

    def __init__(self, kind, ctl=None, macs=(), taps=()):
        self.kind, self.ctl, self.taps = kind, ctl, list(taps)
        self.ids = []
        if kind == "pvpass":
            infos = json.loads(subprocess.run([ctl, "list", "--json"], capture_output=True,
                                              text=True, check=True).stdout)
            by_mac = {i["mac"].lower(): i["id"] for i in infos if i.get("state") != "released"}
            self.ids = [by_mac[m.lower()] for m in macs]
            log("pvpass attachments", dict(zip(macs, self.ids)))

    def pv_stats(self):
        out = []
        for i in self.ids:
            r = subprocess.run([self.ctl, "stats", str(i), "--json"], capture_output=True,
                               text=True)
            out.append(json.loads(r.stdout) if r.returncode == 0 else {})
        return out

    def snapshot(self):
        s = {"t": time.monotonic(), "kvm": kvm_stats(), "cpu": cpu_jiffies(), "pv": [],
             "insns": bed_insns()}
        if self.kind == "pvpass":
            s["pv"] = self.pv_stats()
            s["packets"] = sum(p.get("tx_frames", 0) for p in s["pv"]) + netdev("pvpsw0",
                                                                                 "tx_packets")
            s["bytes"] = sum(p.get("tx_bytes", 0) for p in s["pv"]) + netdev("pvpsw0", "tx_bytes")
        elif self.kind == "bridge":
            s["packets"] = sum(netdev(t, "rx_packets") for t in self.taps) + netdev("br0",
                                                                                   "tx_packets")
            s["bytes"] = sum(netdev(t, "rx_bytes") for t in self.taps) + netdev("br0", "tx_bytes")
        else:
            s["packets"] = netdev("lo", "tx_packets")
            s["bytes"] = netdev("lo", "tx_bytes")
        return s


def delta(a, b):
    """Window deltas of two snapshots as CSV fields (strings; '' for n/a)."""
    d = {"window_s": f"{b['t'] - a['t']:.2f}", "packets": b["packets"] - a["packets"],
         "bytes": b["bytes"] - a["bytes"],
         "bed_insns": "" if a["insns"] is None or b["insns"] is None else b["insns"] - a["insns"]}
    for n in KVM_STATS:
        x, y = a["kvm"].get(n), b["kvm"].get(n)
        d[n] = "" if x is None or y is None else y - x
    hz = os.sysconf("SC_CLK_TCK")
    busy = b["cpu"]["busy"] - a["cpu"]["busy"]
    guest = b["cpu"]["guest"] - a["cpu"]["guest"]
    d["cpu_busy_ms"] = busy * 1000 // hz
    d["cpu_guest_ms"] = guest * 1000 // hz
    d["cpu_host_ms"] = (busy - guest) * 1000 // hz
    for f in PV_FIELDS + PIN_FIELDS:
        key = f if f in PIN_FIELDS else "pv_" + f
        vals = [(p.get(f), q.get(f)) for p, q in zip(a["pv"], b["pv"])]
        if not vals or any(x is None or y is None for x, y in vals):
            d[key] = ""
        else:
            d[key] = sum(y - x for x, y in vals)
    return d


def parse_netperf(test, line):
    """(value, unit, elapsed) from the -o line; UDP_STREAM gives received kpps."""
    f = line.strip().split(",")
    if test == "IDLE":
        return 0.0, "idle", float(f[2])
    thr, units, elapsed = float(f[0]), f[1], float(f[2])
    if test == "UDP_STREAM":
        return float(f[4]) / elapsed / 1000.0, "kpps received", elapsed
    if test == "TCP_RR":
        return float(f[6]), "trans/s", elapsed
    return thr, units.replace("10^6bits/s", "Mbit/s"), elapsed


def agent(ip, command, timeout):
    """Send one command to a guest's agent; yield its output lines."""
    s = socket.create_connection((ip, AGENT_PORT), timeout=timeout)
    s.settimeout(timeout)
    s.sendall((command + "\n").encode())
    f = s.makefile("r", encoding="utf-8", errors="replace")
    try:
        for line in f:
            yield line.rstrip("\n")
    finally:
        f.close()
        s.close()


def wait_agents(ips, deadline_s):
    end = time.monotonic() + deadline_s
    for ip in ips:
        while True:
            try:
                if "pong" in list(agent(ip, "ping", 5)):
                    log(f"guest {ip} agent answers")
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise SystemExit(f"measure: guest {ip} did not come up within {deadline_s} s")
            time.sleep(2)


def window_wait(window, profile):
    """Sleep through the window, or sample the whole bed with perf meanwhile."""
    if not profile:
        time.sleep(window)
        return
    r = subprocess.run(["perf", "record", "-a", "-q", "-e", "cpu-clock", "-F", "250",
                        "-o", profile, "--", "sleep", str(window)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log("perf record failed:", r.stderr.strip()[-300:])


def run_one(wire, loopback, test, dest, opts, length, profile=None):
    """One netperf run with the window snapshots; returns (deltas, netperf line)."""
    warm = 1.0
    window = max(1.0, length - 2.0)
    if test == "IDLE":
        time.sleep(warm)
        a = wire.snapshot()
        time.sleep(window)
        b = wire.snapshot()
        time.sleep(1.0)
        return delta(a, b), "0,idle,%.2f,0,0,0,0" % (b["t"] - a["t"])
    if loopback:
        cmd = ["netperf", "-4", "-H", dest, "-t", test, "-l", str(length), "-P", "0", "--",
               "-o", OUTPUT] + opts.split()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(warm)
        a = wire.snapshot()
        window_wait(window, profile)
        b = wire.snapshot()
        out, _ = p.communicate(timeout=length + 120)
        lines = out.splitlines()
    else:
        gen = agent(CLIENT_GUEST, f"run {test} {dest} {length} {opts}", length + 120)
        first = next(gen, None)
        if first != "start":
            return None, f"agent said {first!r}"
        time.sleep(warm)
        a = wire.snapshot()
        window_wait(window, profile)
        b = wire.snapshot()
        rest = list(gen)
        lines = [l[5:] for l in rest if l.startswith("out: ")]
    res = [l for l in lines if l[:1].isdigit() and l.count(",") >= 6]
    if not res:
        return None, " | ".join(lines)[-300:]
    d = delta(a, b)
    if not loopback:
        # The client guest's TCP retransmits and timeouts over the whole run.
        for l in rest:
            if l.startswith("tcp: "):
                for kv in l[5:].split():
                    k, _, v = kv.partition("=")
                    d["tcp_" + k] = v
    return d, res[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--kind", required=True, choices=["pvpass", "bridge", "loopback"])
    ap.add_argument("--res", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--len", type=int, default=8)
    ap.add_argument("--tests", default="")
    ap.add_argument("--ctl")
    ap.add_argument("--macs", default="")
    ap.add_argument("--taps", default="")
    ap.add_argument("--profile", default="",
                    help="after the reps, one more run of this test under perf record")
    ap.add_argument("--budget", type=int, default=0,
                    help="seconds for the whole configuration; runs that would start "
                         "after it are recorded as skipped (0: no limit)")
    args = ap.parse_args()
    t_start = time.monotonic()

    loopback = args.kind == "loopback"
    table = LOOPBACK_TESTS if loopback else GUEST_TESTS
    names = args.tests.split() if args.tests else \
        (list(LOOPBACK_TESTS) if loopback else ["tcp_stream_g2h", "tcp_stream_g2g",
                                                 "udp64_g2g", "tcp_rr_g2g", "idle"])
    names = [n for n in names if n in table]
    if not loopback:
        wait_agents([SERVER_GUEST, CLIENT_GUEST], 120)
    wire = Wire(args.kind, ctl=args.ctl, macs=[m for m in args.macs.split(",") if m],
                taps=[t for t in args.taps.split(",") if t])
    if not loopback:
        # Warm-up (not recorded): ARP entries, first connections.
        for dest in (SERVER_GUEST, HOST_IP):
            for l in agent(CLIENT_GUEST, f"run TCP_RR {dest} 1", 120):
                if l.startswith("out: ") or l.startswith("end"):
                    log(f"warm-up to {dest}: {l}")

    path = os.path.join(args.res, "runs.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        # Repetitions outermost: a drift in the bed's speed spreads over
        # every test instead of biasing one. The UDP floods come after all
        # the other runs: on 2026-11-23 a 64-byte flood left pvpass's
        # receive path wedged (the sender's guest unreachable afterwards),
        # which would have cost every later run of the configuration.
        later = [n for n in names if table[n][0] == "UDP_STREAM"]
        first = [n for n in names if n not in later]
        order = [(rep, n) for rep in range(1, args.reps + 1) for n in first]
        if args.profile in table:
            order.append((0, None))  # the profiled run, before the floods
        order += [(rep, n) for rep in range(1, args.reps + 1) for n in later]
        failed_in_a_row = {}
        for rep, name in order:
            # Guards against a wedged configuration (seen once: a 64-byte UDP
            # flood under vhost-net left netperf's control connection in
            # retransmit backoff, and each later run waited out its timeout):
            # a test that failed twice in a row is not run again, and nothing
            # starts once the configuration's budget is spent. Either way the
            # run is written down as skipped, never silently dropped.
            skip = None
            if name is not None and failed_in_a_row.get(name, 0) >= 2:
                skip = "skipped: its last two runs failed"
            elif args.budget and time.monotonic() - t_start > args.budget:
                skip = f"skipped: configuration over its {args.budget} s budget"
            if skip:
                if name is not None:
                    log(f"{args.config} {name} rep {rep}: {skip}")
                    w.writerow({"config": args.config, "test": name, "rep": rep,
                                "netperf": "FAILED " + skip})
                    f.flush()
                continue
            if name is None:
                try:
                    profile_run(args, wire, loopback, table, args.profile)
                except (OSError, StopIteration, subprocess.TimeoutExpired) as e:
                    log(f"profile run failed: {e}")
                continue
            test, dest, opts = table[name]
            t0 = time.monotonic()
            try:
                d, line = run_one(wire, loopback, test, dest, opts, args.len)
            except (OSError, StopIteration, subprocess.TimeoutExpired) as e:
                d, line = None, f"error: {e}"
            if d is None:
                failed_in_a_row[name] = failed_in_a_row.get(name, 0) + 1
                log(f"{args.config} {name} rep {rep}: FAILED: {line}")
                w.writerow({"config": args.config, "test": name, "rep": rep,
                            "netperf": "FAILED " + line.replace("\n", " ")})
                f.flush()
                continue
            failed_in_a_row[name] = 0
            value, unit, elapsed = parse_netperf(test, line)
            row = {"config": args.config, "test": name, "rep": rep,
                   "value": f"{value:.3f}", "unit": unit, "elapsed_s": f"{elapsed:.2f}",
                   "netperf": line.strip()}
            row.update(d)
            w.writerow(row)
            f.flush()
            pk = d["packets"] or 1
            ex = d["exits"]
            log(f"{args.config} {name} rep {rep}: {value:.2f} {unit}; "
                f"{d['packets']} frames in {d['window_s']} s, "
                f"exits/frame {'n/a' if ex == '' else f'{ex / pk:.2f}'}, "
                f"cpu {d['cpu_busy_ms']} ms ({time.monotonic() - t0:.1f} s)")


def profile_run(args, wire, loopback, table, name):
    """One extra (unrecorded) run of `name` with `perf record -a` over its
    window; writes <res>/profile-<config>.txt (where the bed's time goes)."""
    test, dest, opts = table[name]
    data = os.path.join("/tmp", f"perf-{args.config}.data")
    d, line = run_one(wire, loopback, test, dest, opts, args.len, profile=data)
    if not os.path.exists(data):
        return
    out = os.path.join(args.res, f"profile-{args.config}.txt")
    with open(out, "w") as f:
        f.write(f"# {args.config} {name}: {line}\n# bed-wide cpu-clock samples over the "
                f"window; guest time shows up at the VM entry/exit point\n")
        if d:
            f.write(f"# window: {d['packets']} frames, {d['exits']} exits, "
                    f"{d['cpu_busy_ms']} ms busy, {d['cpu_guest_ms']} ms in guests\n")
        f.flush()
        for sort in ("comm,dso", "sym"):
            r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                "--sort", sort, "--percent-limit", "1.5"],
                               capture_output=True, text=True)
            f.write("\n".join(l for l in r.stdout.splitlines() if l and not l.startswith("#"))
                    + "\n\n")
    os.remove(data)
    log(f"profile of {args.config} {name}: {out}")


if __name__ == "__main__":
    main()
