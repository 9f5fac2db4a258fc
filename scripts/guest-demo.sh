#!/bin/bash
# Runs inside the test bed (L1, virtme-ng): loads KVM and pvpass, starts two
# stock QEMU guests (L2) paused, attaches each to pvpass with pvpassctl, lets
# them run, and collects what their stock drivers found. Results go to $1.
# Usage: guest-demo.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5
mkdir -p "$res"
exec >"$res/demo.log" 2>&1
modprobe kvm_amd || { echo "demo: kvm_amd did not load"; exit 1; }
insmod "$ko" || { echo "demo: pvpass.ko did not load"; exit 1; }
"$ctl" version

qmp() { # socket, command
	python3 - "$1" "$2" <<'PY'
import json, socket, sys, time
for _ in range(300):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    print("qmp", cmd, f.readline().strip())
PY
}

cmdline=$(cat "$(dirname "$0")/../guest/cmdline")
# Nested guests under TCG: skip the delay-loop calibration and trust the TSC
# (L2 boots hung in both places here, waiting on timer ticks).
bed_args="lpj=4000000 tsc=reliable no_timer_check"
pids=()
# Guest 1 runs netserver, guest 2 runs netperf against it (guest/init).
roles=(none server client)
for i in 1 2; do
	mac=52:54:00:00:00:0$i
	qemu-system-x86_64 -enable-kvm -cpu host -machine q35,kernel-irqchip=on \
		-m 256M -smp 1 -nodefaults -display none -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 $cmdline panic=-1 $bed_args pvpass_ip=10.0.0.$i/24 pvpass_peer=10.0.0.$((3 - i)) pvpass_netperf=${roles[i]}" \
		-serial "file:$res/guest$i.console" -qmp "unix:/tmp/qmp$i,server=on,wait=off" -S &
	qpid=$!
	pids+=("$qpid")
	"$ctl" attach --pid "$qpid" --gpa 0xd0000000 --gsi 5 --mac "$mac" \
		${PVPASS_DEMO_ATTACH_OPTS:-} --ready-file "/tmp/attach$i" >"$res/attach$i.log" 2>&1 &
	for _ in $(seq 600); do [ -s "/tmp/attach$i" ] && break; sleep 0.1; done
	cat "$res/attach$i.log"
	if [ ! -s "/tmp/attach$i" ]; then
		echo "demo: guest $i could not be attached"
		kill "${pids[@]}" 2>/dev/null
		echo done >"$res/finished"
		exit 1
	fi
	qmp "/tmp/qmp$i" cont
done
# The guests power off by themselves once they have reported (boot, ping,
# netperf: about 3 minutes here). A deadline in seconds, not a count of
# polls: under TCG every poll costs far more than its sleep.
deadline=$((SECONDS + 720))
for p in "${pids[@]}"; do
	while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
	kill "$p" 2>/dev/null && echo "demo: guest QEMU $p still running at the deadline; killed"
done
wait
for i in 1 2; do
	echo "--- guest $i"
	grep 'pvpass-demo' "$res/guest$i.console"
	grep -E '^(detached|stats)' "$res/attach$i.log" | sed 's/^/pvpassctl: /'
done
dmesg | grep -E '] pvpass: '
echo done >"$res/finished"
