#!/usr/bin/env bash
# The NIC bed, for development: boots the cached bed kernel under TCG (as
# `make check` does) with QEMU's igb (82576, the NIC pvpass drives) and a
# virtio-net NIC on one hub (the "wire"), and runs scripts/guest-nic.sh in it:
#   scripts/nic-bed.sh <results dir> [<pvpass.ko> [<pvpassctl> <bzImage> <initramfs> <netperf dir>]]
# (with the last four, two nested guests on the NIC's VMDq pools too:
# scripts/guest-nic-vms.sh). NIC_BED_EXEC=<script> runs another script in
# the bed with the same arguments (bench/nic.sh: bench/nic-bed.sh).
# Prints the bed's results ("<check> ok|fail <text>"); exit 1 if one failed.
# One bed at a time on a small machine: flock /tmp/pvpass-bed.lock scripts/nic-bed.sh ...
# One CPU, as the other beds: with two, nested guests now and then died or
# stopped early in their boot (nested SVM under TCG; docs/demo.md), also
# with both QEMUs pinned to one of the CPUs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
res=$(readlink -f "$1") ko=$(readlink -f "${2:-$here/pvpass.ko}")
vms=""
[ $# -ge 6 ] && vms="$(readlink -f "$3") $(readlink -f "$4") $(readlink -f "$5") $(readlink -f "$6")"
KDIR=$(PVPASS_QUIET=1 bash "$here/scripts/kernel.sh" --print-dir)
. "$here/scripts/lib.sh"
nics="-netdev hubport,id=hp0,hubid=1 -device igb,netdev=hp0,mac=52:54:00:12:34:56"
nics+=" -netdev hubport,id=hp1,hubid=1 -device virtio-net-pci,netdev=hp1,mac=52:54:00:ab:cd:ef"
start=$SECONDS
# A bed that freezes (no heartbeat for 180 s: scripts/lib.sh bed_watch), or
# whose nested guest did not boot (guest-nic-vms.sh writes not-booted), is
# booted again, up to three boots; the attempt is kept in
# <results dir>.attempt<n>.
for attempt in 1 2 3; do
	rm -rf "$res"; mkdir -p "$res"
	# The bed does not inherit this environment: BENCH_NIC_* reach it in a
	# file (bench/nic-bed.sh reads it).
	for v in ${!BENCH_NIC_@}; do printf 'export %s=%q\n' "$v" "${!v}"; done >"$res/bench.env"
	bed_watched "$res" 180 timeout "${NIC_BED_TIMEOUT:-900}" vng --run "$KDIR" --disable-kvm --qemu-opts="-cpu max $nics" --memory 2G --cpus 1 \
		--rwdir "$res" --rodir "$(dirname "$KDIR")" \
		--exec "$here/${NIC_BED_EXEC:-scripts/guest-nic.sh} $res $ko $vms" >"$res/vng.log" 2>&1 || true
	again=""
	[ -f "$res/frozen" ] && [ ! -f "$res/finished" ] && again="froze"
	[ -s "$res/not-booted" ] && again="had a nested guest that did not boot ($(tr '\n' ' ' <"$res/not-booted"))"
	[ "$attempt" != 3 ] && [ -n "$again" ] || break
	echo "the NIC bed $again; booting it again"
	rm -rf "$res.attempt$attempt"; mv "$res" "$res.attempt$attempt"
done
echo "NIC bed ran in $((SECONDS - start)) s"
[ -f "$res/finished" ] || { echo "the bed did not finish (log: $res/vng.log)"; tail -n 30 "$res/vng.log"; exit 1; }
cat "$res/bed.results"
! grep -q ' fail ' "$res/bed.results"
