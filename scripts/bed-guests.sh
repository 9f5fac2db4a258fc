# shellcheck shell=bash
# What the in-bed scripts that run stock QEMU guests share (sourced by
# scripts/guest-vhost.sh, guest-acpi.sh, guest-migrate.sh; they run inside
# the test bed, L1, under virtme-ng).
#
#   bed_start <label> <results dir> <pvpass.ko> [<kvm module dir>]
#       log to <results dir>/<label>.log, start bed.results (one
#       "<check> ok|fail <text>" line per check), dump dmesg and write the
#       "finished" marker at exit, write the heartbeat the host's freeze
#       watchdog reads (scripts/lib.sh bed_watch); load kvm_amd (or kvm.ko and kvm-amd.ko
#       from the given dir: scripts/kvm-vanilla.sh's, without the pvpass
#       series) and pvpass.ko, give the host port pvpsw0 $host (10.0.0.254)
#       and note the pinned-page baseline.
#   result <check> ok|fail <text>; check <check> <text> <command...>
#   wait_for <file> <regex> <seconds>: the file has a matching line.
#   pins_back: a pinned_pages result: back to the baseline within 10 s.
#   attach_mmio <pvpassctl> <qemu pid> <name> [<mac> [<attach args>...]]:
#       attach the paused QEMU's window 0xd0000000, GSI 7, MAC <mac>
#       (52:54:00:00:00:01 by default; log <name>.log in the results, ready
#       file /tmp/<name>); waits up to 130 s for it and sets $attach_pid
#       (the attach process) and $attach_id.
#   $bed_args: the nested guests' command line (as the demo's).

host=10.0.0.254
# shellcheck disable=SC2034 # used by the scripts that source this
bed_args="lpj=4000000 tsc=reliable no_timer_check"

bed_start() {
	bed_label=$1 bed_res=$2
	mkdir -p "$bed_res"
	exec >"$bed_res/$bed_label.log" 2>&1
	: >"$bed_res/bed.results"
	trap 'dmesg >"$bed_res/dmesg.log"; echo "done" >"$bed_res/finished"' EXIT
	# The host's freeze watchdog (scripts/lib.sh bed_watch) reads this.
	( while :; do date +%s >"$bed_res/heartbeat"; sleep 5; done ) &
	if [ -n "${4:-}" ]; then
		modprobe irqbypass
		{ insmod "$4/kvm.ko" && insmod "$4/kvm-amd.ko"; } || { echo "$bed_label: $4's KVM did not load"; exit 1; }
	else
		modprobe kvm_amd || { echo "$bed_label: kvm_amd did not load"; exit 1; }
	fi
	# $bed_params: module parameters (words), e.g. "rx_lend=0".
	# shellcheck disable=SC2086
	insmod "$3" ${bed_params:-} || { echo "$bed_label: pvpass.ko did not load"; exit 1; }
	ip link set pvpsw0 up && ip addr add $host/24 dev pvpsw0
	mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	pin_base=$(pinned)
}

result() { echo "$*" >>"$bed_res/bed.results"; echo "$bed_label: [$2] $1: ${*:3}"; }

check() { # check, text, command...: ok when the command succeeds
	local name=$1 text=$2; shift 2
	if "$@"; then result "$name" ok "$text"; else result "$name" fail "$text"; fi
}

pinned() { grep -o -m1 '[0-9]\+' /sys/kernel/debug/pvpass/pinned_pages | head -n 1; }

wait_for() {
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		grep -aqE "$2" "$1" 2>/dev/null && return 0
		sleep 1
	done
	return 1
}

attach_mmio() {
	local ctl=$1 pid=$2 ready=/tmp/$3 log=$bed_res/$3.log end=$((SECONDS + 130)) mac=${4:-52:54:00:00:00:01}
	shift $(($# < 4 ? $# : 4))
	rm -f "$ready"
	"$ctl" attach --pid "$pid" --gpa 0xd0000000 --gsi 7 --mac "$mac" --wait 120 \
		--ready-file "$ready" "$@" >"$log" 2>&1 &
	attach_pid=$!
	while [ ! -s "$ready" ] && [ $SECONDS -lt $end ] && kill -0 $attach_pid 2>/dev/null; do sleep 0.2; done
	cat "$log"
	# shellcheck disable=SC2034 # for the scripts that source this
	attach_id=$(cat "$ready" 2>/dev/null)
}

pins_back() {
	local end=$((SECONDS + 10)) p
	while p=$(pinned); [ "$p" != "$pin_base" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
	check pinned_pages "$p pinned after the QEMUs exited, $pin_base before" test "$p" = "$pin_base"
}
