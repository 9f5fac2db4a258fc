#!/bin/bash
# Runs inside the test bed (L1, virtme-ng): live migration of a guest on the
# vhost transport while traffic flows to it. A stock QEMU guest
# (virtio-net-pci, `pvpassctl vhost-exec`) runs netserver and guest/patterns;
# a second QEMU with the same device waits with -incoming. The bed sends a
# TCP stream and patterned UDP datagrams to the guest while QMP `migrate`
# moves it to the second QEMU over a local socket. Checks: the migration
# completes, the stream survives, no datagram arrives corrupted (a frame
# written into a page the destination did not get would be: the device marks
# every page it writes in QEMU's vhost dirty log), the guest goes on
# receiving on the destination, the host reaches it there, and no page stays
# pinned. Results in $1: migrate.log, bed.results, consoles, dmesg.log.
# Usage: guest-migrate.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs> <netperf dir>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5 np=$6
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bed-guests.sh
. "$here/scripts/bed-guests.sh"
bed_start migrate "$res" "$ko"
# For a bed that stops making progress: where pvpass's code is (a QEMU
# monitor's `info registers` gives RIPs to look up here).
grep -i pvpass /proc/kallsyms >"$res/kallsyms-pvpass.txt" 2>/dev/null
qmp() { python3 "$here/scripts/qmp.py" "$@"; }
guest=10.0.0.5 mac=52:54:00:00:00:05
append="console=ttyS0 panic=-1 $bed_args pvpass_ip=$guest/24 pvpass_peer=$host pvpass_host=$host pvpass_patterns=9000:200"
start() { # name, extra qemu args...
	local name=$1; shift
	"$ctl" vhost-exec --mac $mac --netdev-id n0 -- \
		qemu-system-x86_64 -enable-kvm -cpu host -machine "q35,kernel-irqchip=on" -m 256M -smp 1 \
		-nodefaults -display none -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$append" \
		-device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" \
		-serial "file:$res/$name.console" -qmp "unix:/tmp/mig-$name,server=on,wait=off" "$@" &
}
wait_console() { wait_for "$res/$1.console" "$2" "$3"; } # name, regex, seconds
rm -f /tmp/mig.sock
start src
src=$!
start dst -incoming unix:/tmp/mig.sock
dst=$!
if ! wait_console src 'pvpass-demo: patterns: ok' 400; then
	result migrate fail "the source guest never started its receiver; console tail: $(tail -n 3 "$res/src.console" | tr -d '\r' | tr '\n' ' ')"
	exit 1
fi
"$ctl" list
python3 "$here/scripts/patterns-send.py" $guest 9000 120 400 1000 >"$res/send.log" 2>&1 &
sender=$!
# Bounded: a stream whose guest stopped answering would otherwise wait on
# its control connection for as long as TCP keeps it.
timeout 180 "$np/netperf" -4 -H $guest -t TCP_STREAM -l 90 -P 0 -- -o THROUGHPUT,THROUGHPUT_UNITS >"$res/stream.log" 2>&1 &
stream=$!
sleep 15
qmp /tmp/mig-src migrate '{"uri": "unix:/tmp/mig.sock"}'
t0=$SECONDS status=""
while [ $((SECONDS - t0)) -lt 400 ]; do
	status=$(qmp /tmp/mig-src query-migrate | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p' | head -n 1)
	case "$status" in completed | failed | cancelled) break ;; esac
	sleep 2
done
qmp /tmp/mig-src query-migrate
if [ "$status" = completed ]; then
	result migrate ok "QMP migrate over a local socket completed in $((SECONDS - t0)) s while a TCP stream and patterned UDP flowed to the guest"
else
	result migrate fail "migration status '${status:-none}' after $((SECONDS - t0)) s"
fi
"$ctl" list
wait $stream
out=$(tr -d '\r' <"$res/stream.log" | grep -E '^[0-9.]+,' | tail -n 1)
if awk -v v="${out%%,*}" 'BEGIN { exit !(v + 0 > 0) }'; then
	result stream ok "TCP_STREAM bed -> guest across the migration (90 s): ${out%%,*} ${out#*,}"
else
	result stream fail "TCP_STREAM bed -> guest: $(tail -n 3 "$res/stream.log" | tr '\n' ' ')"
fi
wait $sender
cat "$res/send.log"
# The guest's receiver ends by itself (200 s) and prints its final line on
# the destination's console.
wait_console dst 'pvpass-demo: patterns: final' 240
before=$(grep -a 'pvpass-demo: patterns: ok' "$res/src.console" | tail -n 1 | tr -d '\r')
final=$(grep -a 'pvpass-demo: patterns: final' "$res/dst.console" | tail -n 1 | tr -d '\r')
echo "migrate: last on the source: $before"
echo "migrate: final on the destination: $final"
ok_src=$(sed -n 's/.* ok \([0-9]*\) .*/\1/p' <<<"$before")
ok_dst=$(sed -n 's/.* ok \([0-9]*\) .*/\1/p' <<<"$final")
bad=$(sed -n 's/.* bad \([0-9]*\) .*/\1/p' <<<"$final")
if [ -n "$final" ] && [ "${bad:-1}" = 0 ] && [ "${ok_dst:-0}" -gt "${ok_src:-0}" ]; then
	result patterns ok "no datagram corrupted ($final; $ok_src were in before the source's last report, so $((ok_dst - ok_src)) or more came after)"
else
	result patterns fail "source: ${before:-nothing}; destination: ${final:-nothing}"
fi
out=$(busybox ping -c 5 -i 0.2 -W 2 $guest 2>&1 | grep -E 'packets transmitted' | tr '\n' ' ')
if grep -q ' 0% packet loss' <<<"$out"; then result host_ping_after ok "$out"; else result host_ping_after fail "${out:-no answer}"; fi
cat /sys/kernel/debug/pvpass/devices
qmp /tmp/mig-src quit
qmp /tmp/mig-dst quit
wait $src $dst 2>/dev/null
pins_back
