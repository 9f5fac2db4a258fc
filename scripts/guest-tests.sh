#!/bin/sh
# Runs inside the test-bed guest (virtme-ng, TCG): loads KVM and pvpass, runs
# the kselftests, and leaves TAP output plus exit codes in $1 (a --rwdir of
# the host), because the guest console is not a reliable channel.
# Usage: guest-tests.sh <results dir> <pvpass.ko> <selftest dir> [tests]
# (tests: a space-separated list of selftest names; default: all of them)
res=$1 ko=$2 bin=$3
tests=${4:-pvpass_test pvpass_datapath_test pvpass_hostile_test pvpass_switch_test pvpass_vhost_test pvpass_unload_test}
mkdir -p "$res"
exec >"$res/guest.log" 2>&1
# The host's freeze watchdog (scripts/lib.sh bed_watch) reads this.
( while :; do date +%s >"$res/heartbeat"; sleep 5; done ) &
set -x
tap() { echo "$1" >>"$res/bed.tap"; }
n=0
check() { # name, command...
	name=$1; shift
	n=$((n + 1))
	if "$@"; then tap "ok $n $name"; else tap "not ok $n $name"; fi
}
: >"$res/bed.tap"
check "kvm_amd loads" modprobe kvm_amd
check "/dev/kvm exists" test -c /dev/kvm
check "pvpass.ko loads" insmod "$ko"
check "/dev/pvpass exists" test -c /dev/pvpass
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
check "debugfs /sys/kernel/debug/pvpass/pinned_pages reads 0" grep -qx 0 /sys/kernel/debug/pvpass/pinned_pages
echo "1..$n" >>"$res/bed.tap"
for t in $tests; do
	PVPASS_KO=$ko timeout 600 "$bin/$t" >"$res/$t.tap" 2>"$res/$t.err"
	echo $? >"$res/$t.rc"
done
dmesg >"$res/dmesg.txt"
echo "done" >"$res/finished"
