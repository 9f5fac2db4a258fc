#!/bin/bash
# Runs inside the NIC bed (L1, virtme-ng; scripts/nic-bed.sh boots it with
# QEMU's igb (82576, mac $nic_mac) and a virtio-net "wire" NIC on one hub).
# Moves the igb function from the stock igb driver (built in) to pvpass with
# driver_override, checks pvpass's probe (the MAC QEMU gave the NIC, link
# up), that the host pool's interface pvpnic0 talks to the wire (the wire's
# far end is scripts/nic-wire.py on raw frames): pvpnic0 pings it, and it
# pings pvpnic0, both at small and near-MTU size, that the NIC inserts UDP
# and TCP checksums, that pvpnic0 works again after down/up; with a netperf
# dir, that pvpnic0 runs netperf to a stack on the wire (the wire NIC moved
# into a network namespace); then that `rmmod pvpass` (pvpnic0 up,
# frames flowing both ways) leaves the function quiesced (registers and PCI command read from
# userspace, scripts/nic-regs.py), that the stock driver can take it back,
# and that the kernel log has no warning.
# With a pvpassctl, guest kernel, initramfs and netperf, two stock
# virtio-mmio guests are attached to the NIC's backend (`--backend pvpnic0`:
# a VMDq pool each) and ping each other (through the NIC's internal switch),
# the host's pvpnic0 and the wire, run netperf to each other and to the
# host, and the pools' counters and the pins are checked.
# Results go to $1: nic.log, bed.results ("<check> ok|fail <text>" lines),
# dmesg.log, finished.
# Usage: guest-nic.sh <results dir> <pvpass.ko> [<pvpassctl> <bzImage> <initramfs> <netperf dir>]
set -u
res=$1 ko=$2 ctl=${3:-} kernel=${4:-} initrd=${5:-} np=${6:-}
here=$(cd "$(dirname "$0")/.." && pwd)
nic_mac=52:54:00:12:34:56 wire_mac=52:54:00:ab:cd:ef
host_ip=10.0.1.1 wire_ip=10.0.1.2
mkdir -p "$res"
exec >"$res/nic.log" 2>&1
: >"$res/bed.results"
trap 'dmesg >"$res/dmesg.log"; echo "done" >"$res/finished"' EXIT
# The host's freeze watchdog (scripts/lib.sh bed_watch) reads this.
( while :; do date +%s >"$res/heartbeat"; sleep 5; done ) &
result() { echo "$*" >>"$res/bed.results"; echo "nic: [$2] $1: ${*:3}"; }
check() { # check, text, command...: ok when the command succeeds
	local name=$1 text=$2; shift 2
	if "$@"; then result "$name" ok "$text"; else result "$name" fail "$text"; fi
}
klog() { dmesg | grep -a "$1" | tail -n 1; } # the last kernel log line matching

# The igb function (8086:10c9) and the driver it has.
dev=""
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10c9 ]; then dev=$d; break; fi
done
if [ -z "$dev" ]; then result igb_present fail "no 8086:10c9 function"; exit 1; fi
bdf=$(basename "$dev")
drv() { basename "$(readlink "$dev/driver" 2>/dev/null)" 2>/dev/null; }
result igb_present ok "$bdf, driver $(drv)"
ip -br link

dmesg -C
insmod "$ko" || { result pvpass_loads fail "insmod"; exit 1; }
check pvpass_leaves_igb_alone "igb keeps $bdf after insmod (override-only id table): driver $(drv)" test "$(drv)" = igb
echo pvpass >"$dev/driver_override"
echo "$bdf" >/sys/bus/pci/drivers/igb/unbind
echo "$bdf" >/sys/bus/pci/drivers/pvpass/bind
check pvpass_binds "driver of $bdf: $(drv)" test "$(drv)" = pvpass
line=$(klog '82576 (igb) taken')
echo "$line"
check probe_mac "${line:-no probe line}" grep -q "MAC $nic_mac" <<<"$line"
check probe_link_up "${line:-no probe line}" grep -q "link up" <<<"$line"

# The host pool: pvpnic0 on the igb, and the wire's far end.
ifname() { for n in /sys/class/net/*; do [ "$(cat "$n/address")" = "$1" ] && basename "$n"; done; }
nic_if=$(ifname $nic_mac) wire_if=$(ifname $wire_mac)
check host_if "the igb's interface: ${nic_if:-none} ($(cat "/sys/class/net/$nic_if/device/uevent" 2>/dev/null | grep DRIVER))" \
	test "$nic_if" = pvpnic0
ip link set "$wire_if" up
ip link set pvpnic0 up && ip addr add $host_ip/24 dev pvpnic0
ip -br link; ip -br addr
sleep 1
python3 "$here/scripts/nic-wire.py" "$wire_if" $wire_ip $host_ip 14 10 >"$res/wire.log" 2>&1 &
wire=$!
sleep 1
busybox ping -c 5 -W 2 -I pvpnic0 $wire_ip >"$res/ping.log" 2>&1
line=$(grep 'packet loss' "$res/ping.log")
check host_pings_wire "pvpnic0 -> wire: $line" grep -q ' 0% packet loss' <<<"$line"
busybox ping -c 3 -W 2 -s 1400 -I pvpnic0 $wire_ip >"$res/ping-1400.log" 2>&1
line=$(grep 'packet loss' "$res/ping-1400.log")
check host_pings_wire_1400 "pvpnic0 -> wire, 1428-byte packets: $line" grep -q ' 0% packet loss' <<<"$line"
# Checksums the NIC inserts (pvpnic0 offers IP_CSUM): UDP datagrams and
# TCP SYNs to the far end, checked there.
python3 - "$wire_ip" <<'PY'
import socket, sys
for i in range(5):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"pvpnic0")
    u.sendto(b"pvpass-csum %d " % i * 40, (sys.argv[1], 9))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"pvpnic0")
t.settimeout(1.5)
try:
    t.connect((sys.argv[1], 80))
except OSError:
    pass
PY
ethtool -k pvpnic0 2>/dev/null | grep -E 'tx-checksum-ip|rx-checksum' || true
wait $wire
line=$(cat "$res/wire.log")
echo "$line"
check wire_pings_host "wire -> pvpnic0 (10 pings): $line" grep -q 'pongs=10' <<<"$line"
check tx_csum_udp "UDP checksums inserted by the NIC, checked at the far end: $line" \
	grep -q 'udp_ok=5 udp_bad=0' <<<"$line"
check tx_csum_tcp "TCP checksums (SYNs) inserted by the NIC: $line" \
	grep -qE 'tcp_ok=[1-9][0-9]* tcp_bad=0' <<<"$line"
st=/sys/class/net/pvpnic0/statistics
check host_if_counters "pvpnic0: rx $(cat $st/rx_packets) tx $(cat $st/tx_packets) packets, rx_errors $(cat $st/rx_errors) rx_dropped $(cat $st/rx_dropped) tx_dropped $(cat $st/tx_dropped)" \
	test "$(cat $st/rx_errors)" = 0 -a "$(cat $st/tx_dropped)" = 0
grep -a 'pvpnic\|pvpass' /proc/interrupts

# Closed and opened again (the pool stopped, its ring refilled).
ip link set pvpnic0 down && ip link set pvpnic0 up
python3 "$here/scripts/nic-wire.py" "$wire_if" $wire_ip $host_ip 6 >"$res/wire-reopen.log" 2>&1 &
wire=$!
sleep 1
busybox ping -c 3 -W 2 -I pvpnic0 $wire_ip >"$res/ping-reopen.log" 2>&1
wait $wire
line=$(grep 'packet loss' "$res/ping-reopen.log")
check host_if_reopen "pvpnic0 -> wire after down/up: $line" grep -q ' 0% packet loss' <<<"$line"

# From here the wire NIC is in a network namespace with a stack of its own
# (10.0.1.9 and a netserver; scripts/nic-wire.py still answers for
# $wire_ip on raw frames, run in the namespace through `wire`): the host's
# pvpnic0 runs netperf to a real peer across the igb.
wire() { if [ -e /run/netns/wire ]; then ip netns exec wire "$@"; else "$@"; fi; }
if [ -n "$np" ]; then
	if ip netns add wire; then
		ip link set "$wire_if" netns wire
		ip -n wire link set lo up
		ip -n wire addr add 10.0.1.9/24 dev "$wire_if"
		ip -n wire link set "$wire_if" up
		ip netns exec wire "$np/netserver" -4 -D >"$res/wire-netserver.log" 2>&1 &
		sleep 1
		stat() { cat "/sys/class/net/pvpnic0/statistics/$1"; }
		wstat() { ip netns exec wire cat "/sys/class/net/$wire_if/statistics/$1"; }
		for t in TCP_STREAM TCP_MAERTS TCP_RR; do
			tx0=$(stat tx_packets) wrx0=$(wstat rx_packets)
			out=$(timeout 60 "$np/netperf" -4 -H 10.0.1.9 -t $t -l 3 -P 0 -- -o THROUGHPUT,THROUGHPUT_UNITS 2>&1 | tail -n 1)
			check "host_netperf_wire_$t" "pvpnic0 <-> the wire's stack, netperf $t: $out" \
				awk -F, -v v="${out%%,*}" 'BEGIN { exit !(v ~ /^[0-9.]+$/ && v + 0 > 0) }'
			if [ $t = TCP_STREAM ]; then
				# TSO: the host hands pvpnic0 segments of up to 64 KiB
				# (frames counted once), the NIC cuts them to MSS-sized
				# frames on the wire: the wire receives more frames than
				# pvpnic0 sent.
				tx=$(($(stat tx_packets) - tx0)) wrx=$(($(wstat rx_packets) - wrx0))
				check host_tso "pvpnic0 TSO: $tx frames sent, $wrx received on the wire" \
					test "$wrx" -gt $((tx * 3 / 2)) -a "$tx" -gt 0
			fi
		done
	else
		result wire_netns fail "ip netns add wire: no network namespaces in the bed kernel"
	fi
fi

[ -n "$ctl" ] && . "$here/scripts/guest-nic-vms.sh"

# Unloaded under traffic both ways: the far end pings pvpnic0 every 10 ms
# and the host sends UDP through it when rmmod closes the interface and
# quiesces the NIC.
wire python3 "$here/scripts/nic-wire.py" "$wire_if" $wire_ip $host_ip 8 500 0.01 >"$res/wire-unload.log" 2>&1 &
wire=$!
python3 - "$wire_ip" <<'PY' &
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"pvpnic0")
end = time.monotonic() + 6
i = 0
while time.monotonic() < end:
    i += 1
    try:
        u.sendto(b"%08d" % i + b"x" * 992, (sys.argv[1], 9))
    except OSError:
        time.sleep(0.01)
PY
flood=$!
sleep 3
rmmod pvpass
check pvpass_unloads "pvpass gone after rmmod (under traffic)" test ! -d /sys/module/pvpass
wait $wire $flood
line=$(grep '^wire:' "$res/wire-unload.log")
# Flow only: under this flood 1 to 3 datagrams in about 15000 reach the far
# end with the pseudo-header sum instead of the checksum, though the glue
# handed every one over for the NIC to checksum (the removal line's count)
# and its descriptors ask for it; not understood yet (docs/design.md, the
# NIC). The strict checksum checks are the ones above, at a low rate.
check traffic_at_unload "frames both ways until the unload (udp_bad: see guest-nic.sh): $line" \
	grep -qE 'pongs=[1-9].* udp_ok=[1-9]' <<<"$line"
line=$(klog 'pvpnic0: removed')
check tx_csum_offloaded "${line:-no removal line}" grep -qE ' [1-9][0-9]* with the checksum inserted by the NIC' <<<"$line"
line=$(klog '82576 .* released')
check remove_quiesced_log "${line:-no release line: $(klog 'did not quiesce')}" test -n "$line"
regs=$(python3 "$here/scripts/nic-regs.py" "$dev")
echo "$regs"
check remove_quiesced_regs "$(tr '\n' ' ' <<<"$regs")" grep -qx 'quiet=yes' <<<"$regs"

# The stock driver takes the function back.
echo >"$dev/driver_override"
echo "$bdf" >/sys/bus/pci/drivers_probe
check igb_rebinds "driver of $bdf after pvpass: $(drv)" test "$(drv)" = igb

if dmesg | grep -nE 'BUG:|WARNING:|Oops|KASAN|general protection|Call Trace|soft lockup|rcu: INFO|possible circular locking'; then
	result dmesg_clean fail "the kernel log has a warning (dmesg.log)"
else
	result dmesg_clean ok "no BUG/WARNING/Oops in the kernel log"
fi
