#!/bin/bash
# The in-bed part of `make bench` (bench/run.sh): runs inside the test bed
# (L1, virtme-ng, TCG), loads KVM, and for each configuration of
# $BENCH_CONFIGS sets up the network, starts two stock QEMU guests (L2, same
# kernel and initramfs for all), runs bench/measure.py, and stops them.
#   pvpass    NIC served by pvpass (virtio-mmio, `pvpassctl attach`), host on pvpsw0
#   pvpass-vhost  virtio-net-pci served by pvpass's vhost transport
#             (`pvpassctl vhost-exec`, MSI-X through QEMU), host on pvpsw0
#   pvpass-base, pvpass-vhost-base  the same with the module loaded as
#             `tx_poll_us=0 inline_irq=0`: a notify per frame sent and every
#             interrupt through KVM's irqfd (the data path before transmit
#             polling), to measure that design against this one in one run
#   pvpass-pN, pvpass-vhost-pN  the same with `tx_poll_us=N`
#   pvpass-adapt  pvpass loaded `tx_poll_adapt=1` (the adaptive poll period
#             and the notify after a burst, pvcore::txpolicy; the module's
#             default since 2026-12-02)
#   pvpass-fixed  pvpass loaded `tx_poll_adapt=0` (the fixed poll period)
#   pvpass-hold   pvpass loaded `tx_hold_used=1` (a service that leaves a
#             poll owed holds its used entries for that poll)
#   vhost     virtio-net-pci, vhost=on, tap per guest in bridge br0 with the host address
#   qemu      the same with vhost=off (QEMU's own virtio-net in userspace)
#   loopback  netperf to 127.0.0.1 in the bed itself (no guests): the ceiling
# Guest 1 is 10.0.N.1 (netserver only), guest 2 is 10.0.N.2 (runs netperf),
# the bed is 10.0.N.254, MACs 52:54:00:00:0N:0<guest>; N is 0 when the
# configurations run one after another, and the configuration's own subnet
# when they are interleaved (BENCH_INTERLEAVE=1; see
# run_interleaved below). Results: <res>/runs.csv, logs and consoles in <res>.
# Usage: <res>/bin/bed.sh <res dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs> <netperf dir>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5 np=$6
# run.sh copies this script, measure.py and guest/cmdline into <res>/bin and
# runs them from there: editing the work tree during a run changes nothing.
bin=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$res"
exec >"$res/bed.log" 2>&1
# shellcheck disable=SC1091
. "$res/bench.env"
export PATH=$np:$PATH
echo "bed: $(uname -r), $(nproc) CPU(s), start $(date -u +%FT%TZ)"
echo "bed: configs=$BENCH_CONFIGS reps=$BENCH_REPS len=$BENCH_LEN tests=${BENCH_TESTS:-default} pvpass gsi=${BENCH_GSI:-7}"

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
# Without the SVM extensions QEMU's TCG emulates newest (virtual GIF, virtual
# NMI, virtual VMLOAD/VMSAVE): the bed froze with a timer interrupt pending
# in its APIC and IF=1 but never taken (docs/reliability.md).
modprobe kvm_amd vgif=0 vnmi=0 vls=0 || { echo "bed: kvm_amd did not load"; echo failed >"$res/finished"; exit 1; }
grep -H . /sys/module/kvm_amd/parameters/{vgif,vnmi,vls}
# KVM's halt polling spins on the bed's one CPU while every guest is idle:
# instructions that are no work, counted by the instruction plugin and
# varying with wall time. Off (0) unless BENCH_HALT_POLL_NS says otherwise.
echo "${BENCH_HALT_POLL_NS:-0}" >/sys/module/kvm/parameters/halt_poll_ns
grep -H . /sys/module/kvm/parameters/halt_poll_ns
ip link set lo up
# glibc's getaddrinfo (AI_ADDRCONFIG, in the static netperf too) finds no
# IPv4 at all while 127.0.0.1 is the only address: give lo a second one.
ip addr add 127.0.0.2/8 dev lo
netserver -4 -D >"$res/netserver-bed.log" 2>&1 &
bed_netserver=$!
sleep 1

qmp() { python3 "$bin/qmp.py" "$1" "$2"; } # socket, command

# Nested guests under TCG: as in scripts/guest-demo.sh.
bed_args="lpj=4000000 tsc=reliable no_timer_check"
# The pvpass guests' device on GSI $BENCH_GSI (guest/cmdline says 7).
BENCH_GSI=${BENCH_GSI:-7}
mmio_arg=$(sed "s/:7\$/:$BENCH_GSI/" "$bin/cmdline")
pids=()
attach_pids=()
# The subnet of the configuration being started or stopped (10.0.$net.0/24).
net=0

# What runs QEMU: itself, or `pvpassctl vhost-exec ... --` for pvpass-vhost.
qemu_prefix=()
start_guest() { # config, index, extra qemu args...
	local cfg=$1 i=$2; shift 2
	local append="console=ttyS0 panic=-1 $bed_args bench_ip=10.0.$net.$i/24"
	# TCP's frame size in the guests: at least this many segments per TSO
	# frame (tcp_min_tso_segs). TSO autosizing otherwise sends about 1 ms of
	# the pacing rate per frame, so under emulation the frame size follows
	# the machine's speed and load, and with it the cost per byte.
	[ -n "${BENCH_TSO_SEGS:-}" ] && append="$append bench_tso_segs=$BENCH_TSO_SEGS"
	[ "$(pvpass_transport "$cfg")" = mmio ] && append="$append $mmio_arg"
	rm -f "/tmp/bench-qmp-$net-$i"
	"${qemu_prefix[@]}" qemu-system-x86_64 -enable-kvm -cpu host -machine q35,kernel-irqchip=on \
		-m 256M -smp 1 -nodefaults -display none -no-reboot \
		-kernel "$kernel" -initrd "$initrd" -append "$append" \
		-serial "file:$res/$cfg-guest$i.console" \
		-qmp "unix:/tmp/bench-qmp-$net-$i,server=on,wait=off" "$@" 2>"$res/$cfg-guest$i.qemu.log" &
	pids+=("$!")
}

stop_guests() {
	local ip p
	for ip in "10.0.$net.1" "10.0.$net.2"; do
		timeout 20 python3 -c "
import socket,sys
s=socket.create_connection(('$ip',12867),timeout=5); s.sendall(b'poweroff\n'); s.recv(64)" 2>/dev/null
	done
	local deadline=$((SECONDS + 60))
	for p in "${pids[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
		kill "$p" 2>/dev/null && echo "bed: guest QEMU $p still running; killed"
	done
	wait "${pids[@]}" 2>/dev/null
	for p in "${attach_pids[@]}"; do
		deadline=$((SECONDS + 10))
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
		kill "$p" 2>/dev/null
	done
	[ ${#attach_pids[@]} -gt 0 ] && wait "${attach_pids[@]}" 2>/dev/null
	pids=() attach_pids=()
}

measure() { # config (or "interleaved"), measure.py's arguments...
	local cfg=$1; shift
	echo "bed: measuring $cfg ($(date -u +%T))"
	local t0=$SECONDS
	# measure.py starts no run past the configuration's budget (bench/run.sh);
	# the hard timeout (5 minutes more) catches a measure.py that is stuck.
	local budget=$BENCH_BUDGET
	# Interleaved, one measure.py runs every configuration: their budgets add.
	[ "$cfg" = interleaved ] && budget=$((BENCH_BUDGET * $(wc -w <<<"$BENCH_CONFIGS")))
	timeout -k 30 $((budget + 300)) python3 "$bin/measure.py" --config "$cfg" \
		--res "$res" --reps "$BENCH_REPS" --len "$BENCH_LEN" --tests "${BENCH_TESTS:-}" \
		--budget "$budget" "$@"
	local rc=$?
	echo "bed: $cfg measured in $((SECONDS - t0)) s (rc $rc, budget $budget s)"
	case $rc in
	0) ;;
	124 | 137) echo "$cfg: measure.py killed after $((budget + 300)) s (see bed.log)" >>"$res/failures.txt" ;;
	*) echo "$cfg: measure.py exited $rc (see bed.log)" >>"$res/failures.txt" ;;
	esac
}

# wait_up: 0 once both guests' agents answer (30 s each: over pvpass a
# connection has been seen to take seconds); 1 if a guest's QEMU exits or
# stops first (nested SVM under TCG now and then stops an L2 at boot with a
# KVM internal error, and QEMU then keeps the VM paused) or nothing answers
# within 7 minutes.
wait_up() { # config
	local deadline=$((SECONDS + 420)) p
	while [ $SECONDS -lt $deadline ]; do
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null || { echo "bed: guest QEMU $p exited during boot"; return 1; }
		done
		if grep -ls "KVM internal error" "$res/$1"-guest*.qemu.log; then
			echo "bed: a $1 guest stopped with a KVM internal error during boot (nested SVM under TCG)"
			return 1
		fi
		python3 - "$net" <<'PY' && return 0
import socket, sys
for ip in (f"10.0.{sys.argv[1]}.1", f"10.0.{sys.argv[1]}.2"):
    try:
        s = socket.create_connection((ip, 12867), timeout=30)
        s.sendall(b"ping\n")
        if b"pong" not in s.recv(64):
            sys.exit(1)
    except OSError:
        sys.exit(1)
PY
		sleep 5
	done
	echo "bed: guests did not answer within 420 s"
	return 1
}

# boot <config> <start function>: start the guests, up to 2 attempts.
boot() {
	local cfg=$1 start=$2 attempt c
	for attempt in 1 2; do
		"$start" && wait_up "$cfg" && { echo "bed: $cfg guests up (attempt $attempt, $(date -u +%T))"; return 0; }
		echo "$cfg: guests did not come up (attempt $attempt)" >>"$res/failures.txt"
		stop_guests
		for c in "$res/$cfg"-guest*.console "$res/$cfg"-guest*.qemu.log; do
			[ -f "$c" ] && mv "$c" "${c%.*}.attempt$attempt.${c##*.}"
		done
	done
	return 1
}

# Module parameters of a pvpass configuration.
pvpass_params() { # config
	case $1 in
	*-base) echo "tx_poll_us=0 inline_irq=0" ;;
	*-adapt) echo "tx_poll_adapt=1" ;;
	*-fixed) echo "tx_poll_adapt=0" ;;
	*-hold) echo "tx_hold_used=1" ;;
	*-p[0-9]*) echo "tx_poll_us=${1##*-p}" ;;
	esac
}

start_pvpass() {
	local i
	for i in 1 2; do
		start_guest "$pvpass_cfg" "$i" -S
		rm -f "/tmp/bench-attach-$net-$i"
		"$ctl" attach --pid "${pids[-1]}" --gpa 0xd0000000 --gsi "$BENCH_GSI" --mac "52:54:00:00:0$net:0$i" \
			--ready-file "/tmp/bench-attach-$net-$i" >>"$res/$pvpass_cfg-attach$i.log" 2>&1 &
		attach_pids+=("$!")
		for _ in $(seq 600); do [ -s "/tmp/bench-attach-$net-$i" ] && break; sleep 0.1; done
		cat "$res/$pvpass_cfg-attach$i.log"
		if [ ! -s "/tmp/bench-attach-$net-$i" ]; then
			echo "bed: pvpass guest $i could not be attached"
			return 1
		fi
		qmp "/tmp/bench-qmp-$net-$i" cont
	done
}

# The pvpass module loaded and the host port up (once for every pvpass
# configuration running at the same time); the module's view of the devices
# every 5 s (receive queue indices, backlog, counters) goes to
# <res>/<name>-devices.log: what to look at when a run stalls.
pvpass_up() { # config whose parameters to load with, log name
	# shellcheck disable=SC2046 # the parameters are words
	insmod "$ko" $(pvpass_params "$1") || { echo "$1: insmod failed" >>"$res/failures.txt"; return 1; }
	# (The module's parameters are not in sysfs: the ones given are logged.)
	echo "bed: $1: insmod pvpass.ko $(pvpass_params "$1")"
	"$ctl" version
	ip link set pvpsw0 up
	(while sleep 5; do echo "== $(date +%T)"; cat /sys/kernel/debug/pvpass/devices; done) \
		>"$res/$2-devices.log" 2>&1 &
	pvpass_mon=$!
}

pvpass_down() {
	kill "$pvpass_mon"
	ip addr flush dev pvpsw0
	ip link set pvpsw0 down
	rmmod pvpass || echo "bed: rmmod pvpass failed"
}

# The arguments measure.py needs to count a configuration's wire.
wire_args() { # config
	case $1 in
	pvpass*) echo "--kind pvpass --ctl $ctl --macs 52:54:00:00:0$net:01,52:54:00:00:0$net:02" ;;
	vhost | qemu) echo "--kind bridge --taps $(tap_name 1),$(tap_name 2)" ;;
	esac
}

start_pvpass_vhost() {
	local i
	for i in 1 2; do
		qemu_prefix=("$ctl" vhost-exec --mac "52:54:00:00:0$net:0$i" --netdev-id n0 --)
		start_guest "$pvpass_cfg" "$i" -device "virtio-net-pci,netdev=n0,mac=52:54:00:00:0$net:0$i,romfile="
	done
	qemu_prefix=()
}

# The transport of a pvpass configuration (the header's list): mmio, vhost,
# or nothing for a name that is not one.
pvpass_transport() { # config
	case $1 in
	pvpass | pvpass-base | pvpass-adapt | pvpass-fixed | pvpass-hold | pvpass-p[0-9]*) echo mmio ;;
	pvpass-vhost | pvpass-vhost-base | pvpass-vhost-p[0-9]*) echo vhost ;;
	esac
}

# What starts a pvpass configuration's guests: virtio-mmio or the vhost transport.
pvpass_start() { # config
	case $(pvpass_transport "$1") in vhost) echo start_pvpass_vhost ;; *) echo start_pvpass ;; esac
}

run_pvpass() { # config (virtio-mmio or vhost transport)
	pvpass_cfg=$1
	pvpass_up "$1" "$1" || return 1
	ip addr add "10.0.$net.254/24" dev pvpsw0
	# shellcheck disable=SC2046 # the arguments are words
	boot "$1" "$(pvpass_start "$1")" && measure "$1" --profile "${BENCH_PROFILE:-}" $(wire_args "$1")
	stop_guests
	[ "$(pvpass_start "$1")" = start_pvpass ] && grep -hE '^(detached|stats)' "$res/$1"-attach*.log
	pvpass_down
}

# The bridge and taps of the configuration on subnet $net (br0, tap1 and
# tap2 when they run one after another).
bridge_name() { if [ "$net" = 0 ]; then echo br0; else echo "br$net"; fi; }
tap_name() { if [ "$net" = 0 ]; then echo "tap$1"; else echo "tap${net}_$1"; fi; }

start_bridge() {
	local i
	for i in 1 2; do
		start_guest "$bridge_cfg" "$i" \
			-netdev "tap,id=n0,ifname=$(tap_name "$i"),script=no,downscript=no,vhost=$bridge_vhost" \
			-device "virtio-net-pci,netdev=n0,mac=52:54:00:00:0$net:0$i,romfile="
	done
}

bridge_up() {
	local i br
	br=$(bridge_name)
	ip link add "$br" type bridge
	ip link set "$br" up
	ip addr add "10.0.$net.254/24" dev "$br"
	for i in 1 2; do
		ip tuntap add dev "$(tap_name "$i")" mode tap
		ip link set "$(tap_name "$i")" master "$br"
		ip link set "$(tap_name "$i")" up
	done
}

bridge_down() {
	local i
	for i in 1 2; do ip link del "$(tap_name "$i")" 2>/dev/null; done
	ip link del "$(bridge_name)"
}

run_bridge() { # config, vhost=on|off
	bridge_cfg=$1 bridge_vhost=$2
	bridge_up
	# shellcheck disable=SC2046 # the arguments are words
	boot "$1" start_bridge && measure "$1" --profile "${BENCH_PROFILE:-}" $(wire_args "$1")
	stop_guests
	bridge_down
}

guest_lines() { # config: the guests' own lines from their consoles
	local c
	for c in "$res/$1"-guest*.console; do
		[ -f "$c" ] && grep -a 'bench-guest:' "$c" | sed "s|^|$(basename "$c"): |"
	done
}

# Interleaved (BENCH_INTERLEAVE=1): the guests of every
# configuration up at the same time, configuration number k on subnet
# 10.0.k.0/24 (the pvpass ones share pvpsw0, each bridge configuration has
# its own bridge), and one measure.py that goes repetition by repetition,
# test by test, configuration by configuration (the order of the
# configurations rotated each repetition): a drift in the machine's speed
# or load hits every configuration alike, where one configuration after
# another would put it all on one. The configurations must agree on the
# module's parameters (no -base or -pN beside plain pvpass). A measure.py
# run again after a frozen bed (bench/run.sh) skips the runs already in
# runs.csv.
run_interleaved() {
	local cfg k=0 plan=() up=() p
	declare -A cfg_pids cfg_attach
	for cfg in $BENCH_CONFIGS; do
		case $cfg in pvpass*) pvpass_up "$cfg" pvpass || return 1; break ;; esac
	done
	for cfg in $BENCH_CONFIGS; do
		k=$((k + 1))
		net=$k
		case $cfg in
		loopback) plan+=("loopback:0:--kind loopback"); continue ;;
		pvpass | pvpass-vhost)
			pvpass_cfg=$cfg
			ip addr add "10.0.$net.254/24" dev pvpsw0
			boot "$cfg" "$(pvpass_start "$cfg")"
			;;
		vhost | qemu)
			bridge_cfg=$cfg bridge_vhost=$([ "$cfg" = vhost ] && echo on || echo off)
			bridge_up
			boot "$cfg" start_bridge
			;;
		*) echo "bed: $cfg cannot be interleaved"; echo "$cfg: cannot be interleaved" >>"$res/failures.txt"; false ;;
		esac || { echo "$cfg: not measured (its guests did not come up)" >>"$res/failures.txt"; continue; }
		cfg_pids[$cfg]="${pids[*]}" cfg_attach[$cfg]="${attach_pids[*]}"
		pids=() attach_pids=()
		plan+=("$cfg:$net:$(wire_args "$cfg") --pids ${cfg_pids[$cfg]// /,}")
		up+=("$cfg")
	done
	measure interleaved "${plan[@]/#/--plan=}"
	k=0
	for cfg in $BENCH_CONFIGS; do
		k=$((k + 1))
		for p in "${up[@]}"; do [ "$p" = "$cfg" ] || continue
			net=$k
			read -ra pids <<<"${cfg_pids[$cfg]}"
			read -ra attach_pids <<<"${cfg_attach[$cfg]}"
			stop_guests
			case $cfg in
			pvpass) grep -hE '^(detached|stats)' "$res/$cfg"-attach*.log ;;
			vhost | qemu) bridge_down ;;
			esac
		done
		guest_lines "$cfg"
	done
	[ -n "${pvpass_mon:-}" ] && pvpass_down
}

if [ "${BENCH_INTERLEAVE:-0}" = 1 ]; then
	run_interleaved
else
	for cfg in $BENCH_CONFIGS; do
		net=0
		case $cfg in
		loopback) measure loopback --kind loopback ;;
		vhost) run_bridge vhost on ;;
		qemu) run_bridge qemu off ;;
		*)
			if [ -n "$(pvpass_transport "$cfg")" ]; then
				run_pvpass "$cfg"
			else
				echo "bed: unknown configuration $cfg"
				echo "$cfg: unknown configuration" >>"$res/failures.txt"
			fi
			;;
		esac
		guest_lines "$cfg"
	done
fi
kill "$bed_netserver" 2>/dev/null
dmesg >"$res/dmesg.txt"
grep -E 'BUG|WARNING|Oops' "$res/dmesg.txt" && echo "bed: kernel warnings, see dmesg.txt"
echo "bed: end $(date -u +%FT%TZ)"
echo "done" >"$res/finished"
