#!/bin/bash
# Runs inside the NIC bed (bench/nic.sh boots it with scripts/nic-bed.sh:
# QEMU's igb and a virtio-net "wire" NIC on one hub): wire <-> guest netperf
# through the one igb, pvpass against the stock path on the same NIC, in the
# same boot, rounds interleaved:
#   pvpass  the igb bound to pvpass, the guest (virtio-mmio) attached with
#           --backend pvpnic0: a VMDq pool of its own, zero-copy transmit;
#   vhost   the igb on the stock igb driver, a Linux bridge over it and a
#           tap, the guest on virtio-net-pci with vhost=on.
# The far end is a real stack: the wire NIC in a network namespace (10.0.1.2)
# running netserver and netperf. Each round boots the guest (10.0.1.3,
# netserver) once per configuration and runs, from the wire: TCP_STREAM
# wire->guest, TCP_MAERTS (guest->wire), UDP_STREAM 64 B wire->guest, TCP_RR.
# Per run, deltas over the run: KVM's exits (debugfs, all VMs) and the
# frames on the guest's link (pvpass: its pool's frames; vhost: the tap's),
# pvpass's copies. One CSV row per run: <results>/nic-runs.csv.
# Usage: nic-bed.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs> <netperf dir>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5 np=$6
here=$(cd "$(dirname "$0")/.." && pwd)
# BENCH_NIC_* from bench/nic.sh, through scripts/nic-bed.sh.
# shellcheck source=/dev/null
[ -f "$res/bench.env" ] && . "$res/bench.env"
rounds=${BENCH_NIC_ROUNDS:-3} len=${BENCH_NIC_LEN:-5}
tests=${BENCH_NIC_TESTS:-TCP_STREAM TCP_MAERTS UDP_STREAM TCP_RR}
nic_mac=52:54:00:12:34:56 wire_mac=52:54:00:ab:cd:ef guest_mac=52:54:00:00:00:01
wire_ip=10.0.1.2 guest_ip=10.0.1.3
# Log (nic-bench.log), results, heartbeat, kvm_amd, pvpass.ko, debugfs.
# shellcheck source=scripts/bed-guests.sh
. "$here/scripts/bed-guests.sh"
bed_params=${BENCH_NIC_PARAMS:-}
bed_start nic-bench "$res" "$ko"
echo "nic-bench: pvpass.ko parameters: ${bed_params:-defaults}"

dev=""
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10c9 ] && dev=$d && break
done
[ -n "$dev" ] || { result igb fail "no 8086:10c9 function"; exit 1; }
bdf=$(basename "$dev")
ifname() { for n in /sys/class/net/*; do [ "$(cat "$n/address")" = "$1" ] && basename "$n"; done; }
wire_if=$(ifname $wire_mac)

# The wire's far end: its own stack in a namespace.
ip netns add wire || { result netns fail "ip netns add (no NET_NS in the bed kernel?)"; exit 1; }
ip link set "$wire_if" netns wire
ip -n wire link set lo up
ip -n wire addr add $wire_ip/24 dev "$wire_if"
ip -n wire link set "$wire_if" up
ip netns exec wire "$np/netserver" -4 -D >"$res/wire-netserver.log" 2>&1 &
result netns ok "the wire NIC in namespace wire as $wire_ip, netserver on it"

to_pvpass() {
	echo pvpass >"$dev/driver_override"
	echo "$bdf" >/sys/bus/pci/drivers/igb/unbind
	echo "$bdf" >/sys/bus/pci/drivers/pvpass/bind
	ip link set pvpnic0 up
}
to_igb() {
	echo "$bdf" >/sys/bus/pci/drivers/pvpass/unbind
	echo >"$dev/driver_override"
	echo "$bdf" >/sys/bus/pci/drivers_probe
	sleep 2
}

common=(-enable-kvm -cpu host -machine "q35,kernel-irqchip=on" -m 256M -smp 1 -nodefaults
	-display none -no-reboot -kernel "$kernel" -initrd "$initrd")
args="console=ttyS0 panic=-1 $bed_args pvpass_ip=$guest_ip/24 pvpass_peer=$wire_ip pvpass_netperf=server"
# guest_up <console>: the guest's netserver runs (bounded).
guest_up() {
	local end=$((SECONDS + 400))
	while [ $SECONDS -lt $end ]; do
		grep -aq 'pvpass-demo: netserver started' "$1" 2>/dev/null && return 0
		sleep 1
	done
	return 1
}
exits() { cat /sys/kernel/debug/kvm/exits 2>/dev/null || echo 0; }
pool() { # <counter>: pool 1's counter
	sed -n "s/.* pool=1 id=[0-9]* .*$1=\([0-9]*\).*/\1/p" /sys/kernel/debug/pvpass/nic
}
frames() { # <config>: frames on the guest's link so far
	case $1 in
	pvpass) echo $(($(pool tx_frames) + $(pool rx_frames))) ;;
	vhost) echo $(($(cat /sys/class/net/tap0/statistics/rx_packets) + $(cat /sys/class/net/tap0/statistics/tx_packets))) ;;
	esac
}
echo "config,round,test,throughput,units,exits,frames,tx_copies,tx_zero_copy,rx_copies,rx_zero_copy" >"$res/nic-runs.csv"
# run_tests <config> <round>
run_tests() {
	local t out e0 f0 c0 z0 r0 q0 e1 f1 opt
	for t in $tests; do
		opt=()
		[ "$t" = UDP_STREAM ] && opt=(-m 64)
		e0=$(exits) f0=$(frames "$1")
		c0=$(pool tx_copies) z0=$(pool tx_zero_copy) r0=$(pool rx_copies) q0=$(pool rx_zero_copy)
		# "<throughput>,<units>,<receiver's calls>,<seconds>"
		out=$(timeout $((len + 60)) ip netns exec wire "$np/netperf" -4 -H $guest_ip -t "$t" -l "$len" -P 0 -- \
			"${opt[@]}" -o THROUGHPUT,THROUGHPUT_UNITS,REMOTE_RECV_CALLS,ELAPSED_TIME 2>&1 | tail -n 1)
		e1=$(exits) f1=$(frames "$1")
		echo "nic-bench: $1 round $2 $t: $out"
		IFS=, read -r tp u rcalls secs <<<"$out"
		# UDP: datagrams the guest received per second, in thousands.
		if [ "$t" = UDP_STREAM ]; then
			tp=$(awk -v c="$rcalls" -v s="$secs" 'BEGIN { if (s > 0) printf "%.3f", c / s / 1000 }')
			u=kpps
		fi
		local dc="" dz="" dr="" dq=""
		if [ "$1" = pvpass ]; then
			dc=$(($(pool tx_copies) - c0)) dz=$(($(pool tx_zero_copy) - z0)) dr=$(($(pool rx_copies) - r0))
			dq=$(($(pool rx_zero_copy) - q0))
		fi
		u=${u/10^6bits\/s/Mbit\/s}
		echo "$1,$2,$t,$tp,$u,$((e1 - e0)),$((f1 - f0)),$dc,$dz,$dr,$dq" >>"$res/nic-runs.csv"
	done
}
run_pvpass() { # round
	to_pvpass
	local con=$res/pvpass-$1.console
	qemu-system-x86_64 "${common[@]}" -append "$args $(cat "$here/guest/cmdline")" \
		-serial "file:$con" -qmp "unix:/tmp/bqmp,server=on,wait=off" -S &
	local q=$!
	"$ctl" attach --pid $q --gpa 0xd0000000 --gsi 7 --mac $guest_mac --backend pvpnic0 --wait 120 \
		--ready-file /tmp/bench-ready >"$res/attach-$1.log" 2>&1 &
	local a=$! end=$((SECONDS + 130))
	while [ ! -s /tmp/bench-ready ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
	python3 "$here/scripts/qmp.py" /tmp/bqmp cont
	if guest_up "$con"; then run_tests pvpass "$1"; else result "pvpass_round$1" fail "the guest did not come up"; fi
	cat /sys/kernel/debug/pvpass/nic
	kill $q; wait $q 2>/dev/null
	sleep 1; kill $a 2>/dev/null; rm -f /tmp/bench-ready
	to_igb
}
run_vhost() { # round
	local nic_if con=$res/vhost-$1.console
	nic_if=$(ifname $nic_mac)
	ip link add br0 type bridge
	ip link set "$nic_if" master br0
	ip link set "$nic_if" up
	ip tuntap add dev tap0 mode tap
	ip link set tap0 master br0
	ip link set tap0 up
	ip link set br0 up
	qemu-system-x86_64 "${common[@]}" -append "$args" \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=on \
		-device virtio-net-pci,netdev=n0,mac=$guest_mac,romfile= \
		-serial "file:$con" &
	local q=$!
	if guest_up "$con"; then run_tests vhost "$1"; else result "vhost_round$1" fail "the guest did not come up"; fi
	kill $q; wait $q 2>/dev/null
	ip link del tap0; ip link del br0
}
for r in $(seq 1 "$rounds"); do
	rm -f /tmp/bench-ready
	run_pvpass "$r"
	run_vhost "$r"
done
n=$(($(wc -l <"$res/nic-runs.csv") - 1))
result runs ok "$n runs in nic-runs.csv"
