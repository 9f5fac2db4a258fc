#!/usr/bin/env bash
# `make bench-nic`: wire <-> guest through one igb (QEMU's 82576), pvpass
# (a VMDq pool, zero-copy transmit) against the stock igb driver + bridge +
# tap + vhost-net on the same NIC, in one boot of the NIC bed, rounds
# interleaved (bench/nic-bed.sh). Writes bench/results/nic-<date>/ (runs.csv,
# README.md: the table of bench/nic-report.py) and prints the table.
#   BENCH_NIC_ROUNDS=3   rounds (each boots the guest once per configuration)
#   BENCH_NIC_LEN=5      seconds per netperf run
#   BENCH_NIC_TESTS="TCP_STREAM TCP_MAERTS UDP_STREAM TCP_RR"   a subset
#   BENCH_NIC_PARAMS="rx_lend=0"   pvpass.ko parameters (default: none)
#   BENCH_OUT=...        where the results go
# Every number comes from nested software emulation (QEMU TCG running the
# bed, KVM in it running the guest): only the ratios of one run carry over.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh >/dev/null
KDIR=$(bash scripts/kernel.sh)
make -s -C "$here" KDIR="$KDIR" module
(cd tool && cargo build --release --locked -q)
np=$(bash scripts/netperf.sh)
mkdir -p build
bash scripts/initramfs.sh build/qemu-initramfs.cpio.gz guest/init
res=$here/build/nic-bench
out=${BENCH_OUT:-$here/bench/results/nic-$(date +%F)}
start=$SECONDS
# One bed at a time on a small machine.
flock /tmp/pvpass-bed.lock env NIC_BED_EXEC=bench/nic-bed.sh NIC_BED_TIMEOUT=3000 \
	BENCH_NIC_ROUNDS="${BENCH_NIC_ROUNDS:-3}" BENCH_NIC_LEN="${BENCH_NIC_LEN:-5}" \
	BENCH_NIC_TESTS="${BENCH_NIC_TESTS:-TCP_STREAM TCP_MAERTS UDP_STREAM TCP_RR}" \
	BENCH_NIC_PARAMS="${BENCH_NIC_PARAMS:-}" \
	bash scripts/nic-bed.sh "$res" "$here/pvpass.ko" "$here/tool/target/release/pvpassctl" \
	"$KDIR/arch/x86/boot/bzImage" "$here/build/qemu-initramfs.cpio.gz" "$np" || true
[ -s "$res/nic-runs.csv" ] || { echo "bench-nic: no runs (see $res/nic-bench.log)"; exit 1; }
mkdir -p "$out"
cp "$res/nic-runs.csv" "$out/runs.csv"
{
	echo "# NIC benchmark, $(date -u +%FT%TZ)"
	echo
	echo "\`bench/nic.sh\` (kernel $(basename "$KDIR"), $(git -C "$here" rev-parse --short HEAD), pvpass.ko parameters: ${BENCH_NIC_PARAMS:-defaults}), $((SECONDS - start)) s."
	echo
	python3 bench/nic-report.py "$out/runs.csv"
} >"$out/README.md"
cat "$out/README.md"
