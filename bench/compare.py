#!/usr/bin/env python3
"""How far two benchmark runs agree: for every configuration and test that
both have, its ratio against vhost-net in each run (per second and per 10^9
bed instructions, from summary.csv, bench/report.py), how far the second is
from the first, and whether that is within the bar (issue 16: 10 %).

Usage: compare.py <results dir A> <results dir B> [--bar 10] [--label-a X --label-b Y]
Prints a markdown table; exits 0 whatever the verdict (it reports, not tests).
"""
import argparse
import csv
import os

NAMES = {"pvpass": "pvpass", "pvpass-vhost": "pvpass (vhost transport)", "qemu": "QEMU virtio-net"}
TESTS = {"tcp_stream_g2h": "TCP_STREAM guest→host", "tcp_stream_g2g": "TCP_STREAM guest→guest",
         "udp64_g2g": "UDP_STREAM 64 B guest→guest", "tcp_rr_g2g": "TCP_RR guest→guest",
         "tcp_rr_g2h": "TCP_RR guest→host", "udp64_g2h": "UDP_STREAM 64 B guest→host"}
KINDS = [("ratio_vs_vhost", "per second"), ("ratio_per_ginsn_vs_vhost", "per Ginsn")]


def load(d):
    with open(os.path.join(d, "summary.csv")) as f:
        return {(r["config"], r["test"]): r for r in csv.DictReader(f)}


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--bar", type=float, default=10.0, help="percent")
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    keys = [k for k in a if k in b and k[0] in NAMES and k[1] in TESTS]
    keys.sort(key=lambda k: (list(NAMES).index(k[0]), list(TESTS).index(k[1])))
    print(f"| configuration | test | ratio | {args.label_a} | {args.label_b} | "
          f"{args.label_b} / {args.label_a} | within {args.bar:g} % |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    within = total = 0
    for k in keys:
        for col, label in KINDS:
            x, y = num(a[k].get(col)), num(b[k].get(col))
            if x is None or y is None or not x:
                continue
            d = y / x - 1
            ok = abs(d) * 100 <= args.bar
            within += ok
            total += 1
            print(f"| {NAMES[k[0]]} | {TESTS[k[1]]} | {label} | {x:.3f}x | {y:.3f}x | "
                  f"{d * 100:+.1f} % | {'yes' if ok else 'no'} |")
    print()
    print(f"{within} of {total} ratios within {args.bar:g} %.")


if __name__ == "__main__":
    main()
