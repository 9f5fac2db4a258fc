#!/bin/bash
# Runs inside the test bed (L1, virtme-ng): a stock QEMU guest on the vhost
# transport (virtio-net-pci, MSI-X, two queue pairs: `vhostfds=` opened on
# /dev/pvpass-vhost-net by `pvpassctl vhost-exec --queues 2`, two vCPUs) and
# a virtio-mmio guest on the same switch; each pings the other and the host
# port, the vhost guest then goes down to one queue pair (what `ethtool -L
# eth0 combined 1` does) and pings both again, and the host pings both.
# Results go to $1: vhost.log, bed.results ("<check> ok|fail <text>"
# lines), consoles.
# Usage: guest-vhost.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bed-guests.sh
. "$here/scripts/bed-guests.sh"
bed_start vhost "$res" "$ko"
common=(-enable-kvm -cpu host -machine "q35,kernel-irqchip=on" -m 256M -nodefaults
	-display none -no-reboot -kernel "$kernel" -initrd "$initrd")

# Guest 1: virtio-mmio, attached as in the demo.
qemu-system-x86_64 "${common[@]}" -smp 1 \
	-append "console=ttyS0 $(cat "$here/guest/cmdline") panic=-1 $bed_args pvpass_ip=10.0.0.1/24 pvpass_peer=10.0.0.3 pvpass_host=$host" \
	-serial "file:$res/guest1.console" -qmp "unix:/tmp/vqmp1,server=on,wait=off" -S &
q1=$!
attach_mmio "$ctl" $q1 attach1
python3 "$here/scripts/qmp.py" /tmp/vqmp1 cont

# Guest 3: stock QEMU, virtio-net-pci on the vhost transport (no -S, no
# attach): pvpassctl opens two vhost files (one a queue pair, one port),
# names the port and execs QEMU with
# -netdev tap,id=n0,fds=...,vhost=on,vhostfds=.... Two vCPUs: Linux uses as
# many queue pairs as it has CPUs.
"$ctl" vhost-exec --mac 52:54:00:00:00:03 --netdev-id n0 --queues 2 -- \
	qemu-system-x86_64 "${common[@]}" -smp 2 \
	-append "console=ttyS0 panic=-1 $bed_args pvpass_ip=10.0.0.3/24 pvpass_peer=10.0.0.1 pvpass_host=$host pvpass_channels=1" \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:03,mq=on,vectors=6,romfile= \
	-serial "file:$res/guest3.console" &
q3=$!

wait_console() { wait_for "$res/guest$1.console" "$2" "$3"; } # guest, regex, seconds
for g in 1 3; do
	for what in peer host; do
		if wait_console $g "pvpass-demo: ping $what .* 0% packet loss" 400; then
			result "guest${g}_ping_$what" ok "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest$g.console" | tr -d '\r')"
		else
			result "guest${g}_ping_$what" fail "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest$g.console" | tr -d '\r')"
		fi
	done
done
grep -a "pvpass-demo: virtio\|pvpass-demo: netdev\|pvpass-demo: channels" "$res/guest3.console" | tr -d '\r'
# Multiqueue: the guest saw two queue pairs, went down to one, and kept
# talking to both.
line=$(grep -a -m1 'pvpass-demo: netdev eth0' "$res/guest3.console" | tr -d '\r')
if grep -q 'queues=2 ' <<<"$line"; then result guest3_two_queue_pairs ok "$line"; else result guest3_two_queue_pairs fail "${line:-no netdev line}"; fi
line=$(grep -a -m1 'pvpass-demo: channels set' "$res/guest3.console" | tr -d '\r')
if grep -q 'combined 1 max 2' <<<"$line"; then result guest3_channels ok "$line"; else result guest3_channels fail "${line:-no channels line}"; fi
for what in peer-after-channels host-after-channels; do
	if wait_console 3 "pvpass-demo: ping $what .* 0% packet loss" 120; then
		result "guest3_ping_$what" ok "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest3.console" | tr -d '\r')"
	else
		result "guest3_ping_$what" fail "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest3.console" | tr -d '\r')"
	fi
done
# Both queue pairs are listed (one device each), and between them the
# counters moved both ways.
"$ctl" list
vids=$("$ctl" list --json | python3 -c 'import json,sys; print(" ".join(str(d["id"]) for d in json.load(sys.stdin) if d["mac"].lower() == "52:54:00:00:00:03"))')
tx=0 rx=0 n=0
for vid in $vids; do
	stats=$("$ctl" stats "$vid" --json 2>&1)
	echo "vhost: stats of $vid: $stats"
	t=$(sed -n 's/.*"tx_frames":\([0-9]*\).*/\1/p' <<<"$stats") r=$(sed -n 's/.*"rx_frames":\([0-9]*\).*/\1/p' <<<"$stats")
	tx=$((tx + ${t:-0})) rx=$((rx + ${r:-0})) n=$((n + 1))
done
if [ $n = 2 ] && [ $tx -gt 0 ] && [ $rx -gt 0 ]; then
	result vhost_listed ok "pvpassctl list shows the vhost NIC's 2 queue pairs ($vids); tx_frames=$tx rx_frames=$rx"
else
	result vhost_listed fail "vhost queue pairs listed: ${vids:-none}; tx_frames=$tx rx_frames=$rx"
fi
for a in 10.0.0.1 10.0.0.3; do
	out=$(busybox ping -c 5 -i 0.2 -W 2 $a 2>&1 | grep -E 'packets transmitted' | tr '\n' ' ')
	if grep -q ' 0% packet loss' <<<"$out"; then result "host_ping_$a" ok "$out"; else result "host_ping_$a" fail "${out:-no answer}"; fi
done
cat /sys/kernel/debug/pvpass/devices 2>/dev/null
kill $q1 $q3 2>/dev/null
wait $q3 2>/dev/null
pins_back
