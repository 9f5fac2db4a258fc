#!/usr/bin/env python3
"""Run the netperf tests of benchmark configurations inside the test bed
and append one CSV row per (configuration, test, repetition) to
<res>/runs.csv.

Runs in the bed (L1), called by bench/bed.sh once the guests are up (or with
no guests for `loopback`): for one configuration (--config, --kind, ...), or
for several whose guests run at the same time (--config interleaved and one
--plan per configuration), then repetition by repetition, test by test,
configuration by configuration, the order of the configurations rotated
each repetition. For a guest configuration on subnet N, guest 2 (10.0.N.2)
runs netperf (asked over TCP port 12867, bench/guest-agent) against guest 1
(10.0.N.1) or the bed (10.0.N.254). While a test runs, the bed takes two
snapshots, one second after it started and one second before it ends, of:

  - KVM's statistics (debugfs kvm/: exits, irq_injections, ...), summed over
    the configuration's own VMs when their QEMU pids are known (--pids),
    over every VM otherwise;
  - /proc/stat's cpu line (the bed's CPU time, jiffies);
  - the frames on the virtual wire, counted at the bed: frames the guests
    sent plus frames the bed's stack sent to them (pvpass: the attachments'
    tx_frames + pvpsw0's tx_packets; bridge: the taps' rx_packets + br0's
    tx_packets; loopback: lo's tx_packets). A GSO frame counts once;
  - for pvpass, the attachments' counters (`pvpassctl stats <id> --json`),
    pin counters included when the module has them.

Per-packet figures are deltas over that window divided by the frames in it;
the throughput is netperf's own figure for the whole test. Nothing goes over
the guests' network during the window but the test itself. Runs already
in runs.csv (a measure.py run again after the bed froze) are not run again.
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
             "drop_rx_scattered", "tx_deferrals", "tx_polls", "tx_poll_irqs",
             "tx_handler_completions", "merged_irqs", "drop_rx_flood"]
# The client guest's own transmit counters over the whole run (bench/guest-agent
# "tx: "): eth0 frames and bytes (a GSO frame once), TCP segments, autocorking.
GUEST_TX = ["frames", "bytes", "segs", "autocork"]
# The sending socket's TCP_INFO (guest/tcpinfo.c) one second after netperf's
# start and two seconds before its end, TCP_STREAM only: the growth of these
# between the two samples (up: the guest's uptime, s; *_us: time the socket
# was busy sending, limited by the receive window, by the send buffer) ...
TCPI_DELTA = ["up", "bytes_sent", "data_segs_out", "busy_us", "rwnd_limited_us",
              "sndbuf_limited_us", "retrans"]
# ... and these as the second sample has them.
TCPI_STATE = ["cwnd", "ssthresh", "mss", "rtt_us", "min_rtt_us", "unacked", "notsent", "snd_wnd",
              "pacing_rate", "wmem_alloc", "sndbuf", "wmem_queued"]
OUTPUT = "THROUGHPUT,THROUGHPUT_UNITS,ELAPSED_TIME,LOCAL_SEND_CALLS,REMOTE_RECV_CALLS," \
         "REMOTE_BYTES_RECVD,TRANSACTION_RATE"
AGENT_PORT = 12867
# Addresses on a configuration's subnet 10.0.<net>.0/24.
HOST, SERVER, CLIENT = 254, 1, 2


def ip(net, host):
    return f"10.0.{net}.{host}"


# name -> (netperf test, destination, test-specific options); the
# destination of a guest test is a host number on the configuration's subnet.
GUEST_TESTS = {
    "tcp_stream_g2h": ("TCP_STREAM", HOST, ""),
    "tcp_stream_g2g": ("TCP_STREAM", SERVER, ""),
    "udp64_g2g": ("UDP_STREAM", SERVER, "-m 64"),
    "tcp_rr_g2g": ("TCP_RR", SERVER, ""),
    # Not in the default set; BENCH_TESTS can add them.
    "tcp_rr_g2h": ("TCP_RR", HOST, ""),
    "udp64_g2h": ("UDP_STREAM", HOST, "-m 64"),
    # No traffic: the background rate of exits and interrupts (timers, idle).
    "idle": ("IDLE", None, ""),
}
LOOPBACK_TESTS = {
    "tcp_stream_lo": ("TCP_STREAM", "127.0.0.1", ""),
    "udp64_lo": ("UDP_STREAM", "127.0.0.1", "-m 64"),
    "tcp_rr_lo": ("TCP_RR", "127.0.0.1", ""),
}
# The loopback test measured beside a guest test when configurations are
# interleaved (both streams share one loopback run a repetition).
LOOPBACK_OF = {"tcp_stream_g2h": "tcp_stream_lo", "tcp_stream_g2g": "tcp_stream_lo",
               "udp64_g2g": "udp64_lo", "tcp_rr_g2g": "tcp_rr_lo",
               "tcp_rr_g2h": "tcp_rr_lo", "udp64_g2h": "udp64_lo"}
COLUMNS = ["config", "test", "rep", "value", "unit", "elapsed_s", "window_s", "packets", "bytes",
           "bed_insns"] + \
    KVM_STATS + ["cpu_busy_ms", "cpu_guest_ms", "cpu_host_ms"] + \
          ["pv_" + f for f in PV_FIELDS] + PIN_FIELDS + ["tcp_retrans", "tcp_timeouts"] + \
          ["g_" + f for f in GUEST_TX] + ["ti_" + f for f in TCPI_DELTA + TCPI_STATE] + ["netperf"]


def log(*a):
    print("measure:", *a, flush=True)


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kvm_stats(pids=()):
    """KVM's counters over every VM, or over the VMs of these QEMU processes
    (debugfs kvm/<pid>-<fd>/: the VM's statistics and its vCPUs' summed)."""
    if not pids:
        return {n: read_int(f"{KVM_DIR}/{n}") for n in KVM_STATS}
    try:
        dirs = [d for d in os.listdir(KVM_DIR) if d.split("-")[0] in {str(p) for p in pids}]
    except OSError:
        dirs = []
    out = {}
    for n in KVM_STATS:
        vals = [read_int(f"{KVM_DIR}/{d}/{n}") for d in dirs]
        out[n] = None if not vals or None in vals else sum(vals)
    return out


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

    def __init__(self, kind, ctl=None, macs=(), taps=(), pids=(), net=0):
        self.kind, self.ctl, self.taps = kind, ctl, list(taps)
        self.pids, self.net = list(pids), net
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
        s = {"t": time.monotonic(), "kvm": kvm_stats(self.pids), "cpu": cpu_jiffies(), "pv": [],
             "insns": bed_insns()}
        if self.kind == "pvpass":
            s["pv"] = self.pv_stats()
            s["packets"] = sum(p.get("tx_frames", 0) for p in s["pv"]) + netdev("pvpsw0",
                                                                                 "tx_packets")
            s["bytes"] = sum(p.get("tx_bytes", 0) for p in s["pv"]) + netdev("pvpsw0", "tx_bytes")
        elif self.kind == "bridge":
            br = "br0" if self.net == 0 else f"br{self.net}"
            s["packets"] = sum(netdev(t, "rx_packets") for t in self.taps) + netdev(br,
                                                                                   "tx_packets")
            s["bytes"] = sum(netdev(t, "rx_bytes") for t in self.taps) + netdev(br, "tx_bytes")
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


def agent_counters(lines):
    """The client guest's own counters in the agent's answer to `run`:
    tcp_* (retransmits, timeouts), g_* (GUEST_TX) and ti_* (TCPI_DELTA as
    the growth between the two TCP_INFO samples, TCPI_STATE from the second)."""
    d, ti = {}, {}
    for line in lines:
        tag, _, body = line.partition(": ")
        kv = dict(x.partition("=")[::2] for x in body.split() if "=" in x)
        if tag == "tcp":
            d.update({"tcp_" + k: v for k, v in kv.items() if k in ("retrans", "timeouts")})
        elif tag == "tx":
            d.update({"g_" + k: v for k, v in kv.items() if k in GUEST_TX})
        elif tag in ("tcpi1", "tcpi2"):
            ti[tag] = kv
    if len(ti) == 2 and all("bytes_sent" in x for x in ti.values()):
        a, b = ti["tcpi1"], ti["tcpi2"]
        for k in TCPI_DELTA:
            try:
                d["ti_" + k] = round(float(b[k]) - float(a[k]), 3)
            except (KeyError, ValueError):
                pass
        d.update({"ti_" + k: b[k] for k in TCPI_STATE if k in b})
    return d


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
        gen = agent(ip(wire.net, CLIENT), f"run {test} {ip(wire.net, dest)} {length} {opts}",
                    length + 120)
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
        # The client guest's TCP and transmit counters.
        d.update(agent_counters(rest))
    return d, res[-1]


class Target:
    """One configuration to measure: its name, how its wire is counted, its
    tests."""

    def __init__(self, args):
        self.config, self.kind, self.net = args.config, args.kind, args.net
        self.args = args
        self.loopback = self.kind == "loopback"
        self.table = LOOPBACK_TESTS if self.loopback else GUEST_TESTS
        self.wire = None

    def start(self):
        if not self.loopback:
            wait_agents([ip(self.net, SERVER), ip(self.net, CLIENT)], 120)
        a = self.args
        self.wire = Wire(self.kind, ctl=a.ctl, macs=[m for m in a.macs.split(",") if m],
                         taps=[t for t in a.taps.split(",") if t],
                         pids=[int(p) for p in a.pids.split(",") if p], net=self.net)
        if not self.loopback:
            # Warm-up (not recorded): ARP entries, first connections.
            for host in (SERVER, HOST):
                for line in agent(ip(self.net, CLIENT), f"run TCP_RR {ip(self.net, host)} 1", 120):
                    if line.startswith("out: ") or line.startswith("end"):
                        log(f"{self.config} warm-up to {ip(self.net, host)}: {line}")


def target_parser():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--kind", choices=["pvpass", "bridge", "loopback"])
    ap.add_argument("--net", type=int, default=0)
    ap.add_argument("--ctl")
    ap.add_argument("--macs", default="")
    ap.add_argument("--taps", default="")
    ap.add_argument("--pids", default="", help="the configuration's QEMU pids (KVM counters)")
    return ap


def main():
    ap = argparse.ArgumentParser(parents=[target_parser()])
    ap.add_argument("--config", required=True)
    ap.add_argument("--res", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--len", type=int, default=8)
    ap.add_argument("--tests", default="")
    ap.add_argument("--plan", action="append", default=[],
                    help="with --config interleaved: '<config>:<net>:<the options above>', "
                         "once per configuration")
    ap.add_argument("--profile", default="",
                    help="after the reps, one more run of this test under perf record "
                         "(one configuration only)")
    ap.add_argument("--budget", type=int, default=0,
                    help="seconds for the whole measure.py; runs that would start "
                         "after it are recorded as skipped (0: no limit)")
    args = ap.parse_args()
    t_start = time.monotonic()

    if args.plan:
        targets = []
        for p in args.plan:
            cfg, net, rest = p.split(":", 2)
            t = target_parser().parse_args(rest.split())
            t.config, t.net = cfg, int(net)
            targets.append(Target(t))
    else:
        if not args.kind:
            ap.error("--kind or --plan is needed")
        targets = [Target(args)]
    if not targets:
        raise SystemExit("measure: nothing to measure")
    guests = [t for t in targets if not t.loopback]
    names = args.tests.split() if args.tests else \
        (list(LOOPBACK_TESTS) if not guests else ["tcp_stream_g2h", "tcp_stream_g2g",
                                                   "udp64_g2g", "tcp_rr_g2g", "idle"])
    if guests:
        names = [n for n in names if n in GUEST_TESTS]
    else:
        names = [n for n in names if n in LOOPBACK_TESTS]
    for t in targets:
        t.start()

    path = os.path.join(args.res, "runs.csv")
    new = not os.path.exists(path)
    done = set()
    if not new:
        with open(path) as f:
            done = {(r["config"], r["test"], r["rep"]) for r in csv.DictReader(f)
                    if r.get("value")}
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        # Repetitions outermost, then tests, then configurations (rotated
        # each repetition): a drift in the bed's speed spreads over every
        # test and configuration instead of biasing one. The UDP floods come
        # after all the other runs: on 2026-11-23 a 64-byte flood left
        # pvpass's receive path wedged (the sender's guest unreachable
        # afterwards), which would have cost every later run.
        kind = {n: (LOOPBACK_TESTS if not guests else GUEST_TESTS)[n][0] for n in names}
        later = [n for n in names if kind[n] == "UDP_STREAM"]
        first = [n for n in names if n not in later]

        def runs(tests):
            out = []
            for rep in range(1, args.reps + 1):
                k = (rep - 1) % len(targets)
                for n in tests:
                    for t in targets[k:] + targets[:k]:
                        name = n if not guests or not t.loopback else LOOPBACK_OF.get(n)
                        if name and (t, name, rep) not in out:
                            out.append((t, name, rep))
            return out

        order = runs(first)
        if args.profile in GUEST_TESTS or args.profile in LOOPBACK_TESTS:
            order.append((targets[0], None, 0))  # the profiled run, before the floods
        order += runs(later)
        failed_in_a_row = {}
        for t, name, rep in order:
            if (t.config, name, str(rep)) in done:
                log(f"{t.config} {name} rep {rep}: in runs.csv already")
                continue
            # Guards against a wedged configuration (seen once: a 64-byte UDP
            # flood under vhost-net left netperf's control connection in
            # retransmit backoff, and each later run waited out its timeout):
            # a test that failed twice in a row is not run again, and nothing
            # starts once the budget is spent. Either way the run is written
            # down as skipped, never silently dropped.
            skip = None
            if name is not None and failed_in_a_row.get((t.config, name), 0) >= 2:
                skip = "skipped: its last two runs failed"
            elif args.budget and time.monotonic() - t_start > args.budget:
                skip = f"skipped: over the {args.budget} s budget"
            if skip:
                if name is not None:
                    log(f"{t.config} {name} rep {rep}: {skip}")
                    w.writerow({"config": t.config, "test": name, "rep": rep,
                                "netperf": "FAILED " + skip})
                    f.flush()
                continue
            if name is None:
                try:
                    profile_run(args, t, args.profile)
                except (OSError, StopIteration, subprocess.TimeoutExpired) as e:
                    log(f"profile run failed: {e}")
                continue
            test, dest, opts = t.table[name]
            t0 = time.monotonic()
            try:
                d, line = run_one(t.wire, t.loopback, test, dest, opts, args.len)
            except (OSError, StopIteration, subprocess.TimeoutExpired) as e:
                d, line = None, f"error: {e}"
            if d is None:
                failed_in_a_row[(t.config, name)] = failed_in_a_row.get((t.config, name), 0) + 1
                log(f"{t.config} {name} rep {rep}: FAILED: {line}")
                w.writerow({"config": t.config, "test": name, "rep": rep,
                            "netperf": "FAILED " + line.replace("\n", " ")})
                f.flush()
                continue
            failed_in_a_row[(t.config, name)] = 0
            value, unit, elapsed = parse_netperf(test, line)
            row = {"config": t.config, "test": name, "rep": rep,
                   "value": f"{value:.3f}", "unit": unit, "elapsed_s": f"{elapsed:.2f}",
                   "netperf": line.strip()}
            row.update(d)
            w.writerow(row)
            f.flush()
            pk = d["packets"] or 1
            ex = d["exits"]
            ins = d["bed_insns"]
            log(f"{t.config} {name} rep {rep}: {value:.2f} {unit}; "
                f"{d['packets']} frames in {d['window_s']} s, "
                f"exits/frame {'n/a' if ex == '' else f'{ex / pk:.2f}'}, "
                f"insns/frame {'n/a' if ins == '' else f'{ins / pk:.0f}'}, "
                f"cpu {d['cpu_busy_ms']} ms ({time.monotonic() - t0:.1f} s)"
                + (f", guest sent {int(d['g_bytes']) // max(1, int(d['g_frames']))} B/frame"
                   if d.get("g_frames") else ""))


def profile_run(args, t, name):
    """One extra (unrecorded) run of `name` with `perf record -a` over its
    window; writes <res>/profile-<config>.txt (where the bed's time goes)."""
    if name not in t.table:
        return
    test, dest, opts = t.table[name]
    data = os.path.join("/tmp", f"perf-{t.config}.data")
    d, line = run_one(t.wire, t.loopback, test, dest, opts, args.len, profile=data)
    if not os.path.exists(data):
        return
    out = os.path.join(args.res, f"profile-{t.config}.txt")
    with open(out, "w") as f:
        f.write(f"# {t.config} {name}: {line}\n# bed-wide cpu-clock samples over the "
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
    log(f"profile of {t.config} {name}: {out}")


if __name__ == "__main__":
    main()
