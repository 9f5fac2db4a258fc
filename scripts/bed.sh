#!/usr/bin/env bash
# Run some kselftests in the test bed, for development (make check runs all):
#   scripts/bed.sh <results dir> <pvpass.ko> <selftest dir> "<test> [<test>...]"
# Boots the cached bed kernel under TCG as `make check` does; the TAP output,
# exit codes and the bed's dmesg land in <results dir>.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
res=$(readlink -f "$1") ko=$(readlink -f "$2") bin=$(readlink -f "$3") tests=$4
KDIR=$(PVPASS_QUIET=1 bash "$here/scripts/kernel.sh" --print-dir)
rm -rf "$res"; mkdir -p "$res"
timeout 1500 vng --run "$KDIR" --disable-kvm --qemu-opts='-cpu max' --memory 4G --cpus 2 \
	--rwdir "$res" --rodir "$(dirname "$KDIR")" \
	--exec "$here/scripts/guest-tests.sh $res $ko $bin '$tests'" >"$res/vng.log" 2>&1 || true
for t in $tests; do
	echo "== $t (exit $(cat "$res/$t.rc" 2>/dev/null || echo missing))"
	grep -E '^(not )?ok |^# ' "$res/$t.tap" 2>/dev/null | grep -v '^# *$' | tail -n 60 || true
done
grep -nE 'BUG:|WARNING:|Oops|KASAN|INFO: task|soft lockup|rcu.*stall|possible circular|lockdep|Call Trace' "$res/dmesg.txt" | head -20 || echo "dmesg: clean"
