#!/usr/bin/env bash
# `make bench`: netperf from two stock guests through pvpass, vhost-net and
# QEMU's own virtio-net, plus the bed's loopback as the ceiling; VM exits,
# interrupts, host CPU time and pins per packet. Installs what it needs,
# builds what is stale, boots the test bed once and runs every
# configuration in it (bench/bed.sh, bench/measure.py), then writes
# bench/results/ (bench/report.py): runs.csv, summary.csv, bench.md,
# bench.png, and prints the table.
#
#   BENCH_REPS=3            repetitions of each point (median, min, max)
#   BENCH_LEN=8             seconds per netperf run (-l)
#   BENCH_CONFIGS="loopback pvpass pvpass-vhost vhost qemu"   a subset for quick iteration
#   BENCH_TESTS="..."       netperf tests (bench/measure.py's names)
#   BENCH_GSI=7             the pvpass guests' GSI (5: level-triggered on q35,
#                           which pvpassctl attaches with resampling)
#   BENCH_PROFILE=tcp_stream_g2g  one more run of this test per guest config
#                           under `perf record -a` (profile-<config>.txt); "" skips
#   BENCH_OUT=bench/results where the results go
#   BENCH_QEMU_OPTS=...     more options for the bed's QEMU (e.g. a monitor:
#                           -monitor unix:/tmp/bedmon,server,nowait)
#
# Every number comes from nested software emulation (QEMU TCG running the
# bed, KVM in it running the guests): only ratios measured side by side in
# one run carry over to real hardware.
set -euo pipefail
# All in one function: bash reads a script as it runs, so an edit to this
# file during a run would otherwise change the rest of the run.
main() {
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. scripts/lib.sh
BENCH_REPS=${BENCH_REPS:-3}
BENCH_LEN=${BENCH_LEN:-8}
BENCH_CONFIGS=${BENCH_CONFIGS:-loopback pvpass pvpass-vhost vhost qemu}
BENCH_TESTS=${BENCH_TESTS:-}
BENCH_PROFILE=${BENCH_PROFILE-tcp_stream_g2g}
BENCH_GSI=${BENCH_GSI:-7}
out=${BENCH_OUT:-$here/bench/results}
start=$(date +%s)

bash scripts/setup.sh
bash bench/setup.sh
KDIR=$(bash scripts/kernel.sh)
make -s -C "$here" KDIR="$KDIR" module
(cd tool && cargo build --release --locked -q)
np=$(bash scripts/netperf.sh)
res=$here/build/bench
rm -rf "$res"
mkdir -p "$res" "$out"
bash scripts/initramfs.sh "$res/initramfs.cpio.gz" bench/guest-init bench/guest-agent:/bin/bench-agent
mkdir -p "$res/bin"
cp bench/bed.sh bench/measure.py scripts/qmp.py "$res/bin/"
cp guest/cmdline "$res/bin/cmdline"
# A configuration's budget: every run allowed its full timeout (length +
# 120 s, see bench/measure.py) plus the profiled run and the warm-up; the
# default test set has 5 tests.
n_tests=$(wc -w <<<"${BENCH_TESTS:-a b c d e}")
budget=$(((BENCH_REPS * n_tests + 2) * (BENCH_LEN + 120) + 240))
cat >"$res/bench.env" <<EOF
BENCH_REPS='$BENCH_REPS'
BENCH_LEN='$BENCH_LEN'
BENCH_CONFIGS='$BENCH_CONFIGS'
BENCH_TESTS='$BENCH_TESTS'
BENCH_PROFILE='$BENCH_PROFILE'
BENCH_GSI='$BENCH_GSI'
BENCH_BUDGET='$budget'
EOF

n_vm=$(wc -w <<<"${BENCH_CONFIGS//loopback/}")
echo "bench: booting the test bed (patched $(basename "$KDIR") under QEMU TCG); configs: $BENCH_CONFIGS;" \
	"$BENCH_REPS reps x ${BENCH_LEN}s; about $((2 + n_vm * (2 + BENCH_REPS * 5 * (BENCH_LEN + 4) / 60) + BENCH_REPS * 3 * (BENCH_LEN + 2) / 60)) minutes here"
# The bed's hard limit: every configuration may use its whole budget and
# the 5 minutes of its hard timeout (measure() in bench/bed.sh) plus two
# boots; only a wedged bed reaches it.
n_cfg=$(wc -w <<<"$BENCH_CONFIGS")
bed_limit=$((600 + n_cfg * (budget + 300) + n_vm * 1000))
# One CPU for the bed, as the demo: with two, nested SVM under TCG corrupted
# L2 guests now and then. /var/cache is a tmpfs in the bed: mount the cache
# (kernel, netperf) explicitly.
bed_start=$(date +%s)
timeout "$bed_limit" vng --run "$KDIR" --disable-kvm --qemu-opts="-cpu max ${BENCH_QEMU_OPTS:-}" --memory 4G --cpus 1 \
	--rwdir "$res" --rodir "$(dirname "$KDIR")" \
	--exec "$res/bin/bed.sh $res $here/pvpass.ko $here/tool/target/release/pvpassctl $KDIR/arch/x86/boot/bzImage $res/initramfs.cpio.gz $np" \
	>"$res/vng.log" 2>&1 || true
bed_s=$(($(date +%s) - bed_start))
if [ ! -f "$res/finished" ] || [ ! -s "$res/runs.csv" ]; then
	echo "bench: the test bed did not finish within $bed_limit s or measured nothing; see $res/bed.log and $res/vng.log" >&2
	tail -n 30 "$res/bed.log" "$res/vng.log" >&2 || true
	exit 1
fi
grep -E '^measure: .* rep |^bed: .* measured in' "$res/bed.log" || true

cp "$res/runs.csv" "$out/runs.csv"
rm -f "$out"/profile-*.txt
cp "$res"/profile-*.txt "$out/" 2>/dev/null || true
{
	echo "date: $(date -u +%FT%TZ)"
	echo "kernel: $(basename "$KDIR") (bed and guests)"
	echo "configs: $BENCH_CONFIGS"
	echo "reps: $BENCH_REPS"
	echo "len_s: $BENCH_LEN"
	echo "pvpass_gsi: $BENCH_GSI"
	echo "bed_wall_s: $bed_s"
	echo "total_wall_s: $(($(date +%s) - start))"
	echo "failures: $(tr '\n' ';' <"$res/failures.txt" 2>/dev/null || true)"
} >"$out/meta.txt"
python3 bench/report.py "$out"
cat "$out/bench.md"
echo
echo "bench: results in ${out#$here/}/ (runs.csv, summary.csv, bench.md, bench.png); logs in build/bench/;" \
	"bed $bed_s s, total $(($(date +%s) - start)) s"
if [ -s "$res/failures.txt" ]; then
	echo "bench: some runs failed:" >&2
	cat "$res/failures.txt" >&2
fi
}
main "$@"
exit
