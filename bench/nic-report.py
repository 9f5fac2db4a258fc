#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The NIC benchmark's table (bench/nic.sh): reads the runs.csv of
bench/nic-bed.sh and prints markdown: per test, each configuration's median
[min-max] over the rounds, pvpass / vhost-net, VM exits per frame and, for
pvpass, CPU copies per frame (whole-frame copies; a zero-copy transmit
copies its first 128 bytes only and counts 0).

    nic-report.py <runs.csv>
"""
import csv
import statistics
import sys

NAMES = {
    "TCP_STREAM": "TCP_STREAM wire→guest",
    "TCP_MAERTS": "TCP_STREAM guest→wire (TCP_MAERTS)",
    "UDP_STREAM": "UDP_STREAM 64 B wire→guest (kpps received)",
    "TCP_RR": "TCP_RR",
}
TARGETS = {"TCP_STREAM": 1.5, "TCP_MAERTS": 1.5, "UDP_STREAM": 2.0}


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def spread(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, "–"
    m = statistics.median(vals)
    return m, f"{fmt(m)} [{fmt(min(vals))}–{fmt(max(vals))}]"


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    tests = [t for t in NAMES if any(r["test"] == t for r in rows)]
    print("| test | pvpass | vhost-net | pvpass / vhost-net | target | exits/frame pvpass | exits/frame vhost-net | CPU copies/frame pvpass | zero-copy transmits | zero-copy receives |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in tests:
        by = {c: [r for r in rows if r["test"] == t and r["config"] == c] for c in ("pvpass", "vhost")}
        mp, sp = spread([num(r["throughput"]) for r in by["pvpass"]])
        mv, sv = spread([num(r["throughput"]) for r in by["vhost"]])
        ratio = f"{mp / mv:.2f}x" if mp and mv else "–"
        tgt = TARGETS.get(t)
        target = "–"
        if tgt:
            target = f"≥ {tgt}x: " + ("met" if mp and mv and mp / mv >= tgt else "missed")

        def per_frame(rs, f):
            return [num(r[f]) / num(r["frames"]) for r in rs
                    if num(r[f]) is not None and num(r["frames"])]
        _, ep = spread(per_frame(by["pvpass"], "exits"))
        _, ev = spread(per_frame(by["vhost"], "exits"))
        copies = [(num(r["tx_copies"]) + num(r["rx_copies"])) / num(r["frames"])
                  for r in by["pvpass"] if num(r["tx_copies"]) is not None and num(r["frames"])]
        _, cp = spread(copies)
        zc = sum(int(num(r["tx_zero_copy"]) or 0) for r in by["pvpass"])
        tx = sum(int((num(r["tx_zero_copy"]) or 0) + (num(r["tx_copies"]) or 0)) for r in by["pvpass"])
        # Older runs have no rx_zero_copy column.
        rz = sum(int(num(r.get("rx_zero_copy") or "") or 0) for r in by["pvpass"])
        rxn = sum(int((num(r.get("rx_zero_copy") or "") or 0) + (num(r["rx_copies"]) or 0)) for r in by["pvpass"])
        print(f"| {NAMES[t]} | {sp} | {sv} | {ratio} | {target} | {ep} | {ev} | {cp} | {zc} of {tx} | {rz} of {rxn} |")
    n = {c: len({r["round"] for r in rows if r["config"] == c}) for c in ("pvpass", "vhost")}
    print()
    print(f"Rounds: pvpass {n['pvpass']}, vhost-net {n['vhost']} (interleaved, one guest boot "
          "per configuration and round); median [min–max] over the rounds. Frames: the guest "
          "link's, both ways (pvpass: its pool's; vhost-net: the tap's), a GSO frame once. "
          "Exits: KVM's, all VMs, over the run. Nested software emulation: only the "
          "ratios of one run carry over.")


if __name__ == "__main__":
    main()
