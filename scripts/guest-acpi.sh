#!/bin/bash
# Runs inside the test bed (L1, virtme-ng): one virtio-mmio guest that finds
# its pvpass device through an ACPI table instead of its kernel command line
# (the way to reach guest kernels built without VIRTIO_MMIO_CMDLINE_DEVICES,
# such as Debian 12's). `pvpassctl acpi-table` writes an SSDT declaring the
# window 0xd0000000 and GSI 7 as an "LNRO0005" device, QEMU passes it with
# -acpitable file=, the guest's command line has no virtio_mmio.device=;
# `pvpassctl attach` attaches it as in the demo. Checks: the guest loaded the
# table and bound virtio_net, it pings the host port and the host pings it,
# the device's counters moved, the pins are returned. Results go to $1:
# acpi.log, bed.results ("<check> ok|fail <text>" lines), the console.
# Usage: guest-acpi.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bed-guests.sh
. "$here/scripts/bed-guests.sh"
bed_start acpi "$res" "$ko"
guest=10.0.0.1
console=$res/guest.console

# The table: one device, the window and GSI the attach below uses.
aml=$res/pvpass-acpi.aml
out=$("$ctl" acpi-table --gpa 0xd0000000 --gsi 7 -o "$aml" 2>&1)
rc=$?
check acpi_table "exit $rc: $out" \
	test $rc = 0 -a "$(head -c 4 "$aml" 2>/dev/null)" = SSDT -a "$(stat -c %s "$aml" 2>/dev/null)" = 104

# The guest: as guest 1 of guest-vhost.sh, but no virtio_mmio.device= on its
# command line (its peer is the host port).
cmdline="console=ttyS0 panic=-1 $bed_args pvpass_ip=$guest/24 pvpass_peer=$host pvpass_host=$host pvpass_coalesce=2000,16,0,1"
qemu-system-x86_64 -enable-kvm -cpu host -machine "q35,kernel-irqchip=on" -m 256M -smp 1 -nodefaults \
	-display none -no-reboot -kernel "$kernel" -initrd "$initrd" -acpitable "file=$aml" \
	-append "$cmdline" -serial "file:$console" -qmp "unix:/tmp/aqmp,server=on,wait=off" -S &
q=$!
attach_mmio "$ctl" $q attach
a=$attach_pid id=$attach_id
line=$(grep -m1 '^attached ' "$res/attach.log")
check attach "${line:-no attached line (id ${id:-none})}" \
	grep -q 'gpa=0xd0000000 gsi=7 trigger=edge' <<<"$line"
python3 "$here/scripts/qmp.py" /tmp/aqmp cont

wait_console() { wait_for "$console" "$@"; } # regex, seconds
first() { grep -a -m1 -E "$1" "$console" 2>/dev/null | tr -d '\r'; }
# A guest that never came up costs no further waits (the bed's timeout).
up=400
wait_console 'pvpass-demo: guest up' 400 || up=1
ssdt=$(first 'ACPI: SSDT .*PVPASS')
check guest_acpi_table "${ssdt:-the guest did not list an SSDT of PVPASS}" test -n "$ssdt"
wait_console 'pvpass-demo: (virtio|netdev|ping|done)' $((up < 60 ? up : 60))
bound=$(first 'pvpass-demo: virtio .* driver=virtio_net')
cmd=$(first 'Command line:')
check guest_virtio_net "${bound:-no virtio device bound to virtio_net: $(first 'pvpass-demo: virtio')}; ${cmd:-no command line}" \
	test -n "$bound" -a -n "$cmd" -a "${cmd/virtio_mmio.device/}" = "$cmd"
wait_console 'pvpass-demo: ping host .*packet loss' $up
line=$(first 'pvpass-demo: ping host ')
check guest_ping_host "${line:-no ping line}" grep -q ' 0% packet loss' <<<"$line"

# The guest's `ethtool -C eth0 rx-usecs 2000 rx-frames 16` (guest/coalesce.c
# sends what ethtool would: the other two as read, tx-frames 1 being
# virtio_net's "transmit NAPI on"): receive interrupts held back for up to
# 2 ms or 16 frames, from the host's pings below on.
# The whole line (a CI run read it while the console had half of it).
wait_console 'pvpass-demo: coalesce set .*tx-frames [0-9]+' $((up < 60 ? up : 60))
line=$(first 'pvpass-demo: coalesce set .*tx-frames [0-9]+')
check guest_coalesce "${line:-no coalesce line}" grep -q 'rx-usecs 2000 rx-frames 16 tx-usecs 0 tx-frames 1' <<<"$line"

# The guest stays up 30 s after that: first answer, then 5 pings.
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ] && ! busybox ping -c 1 -W 2 $guest >/dev/null 2>&1; do :; done
out=$(busybox ping -c 5 -i 0.2 -W 2 $guest 2>&1 | grep -E 'packets transmitted' | tr '\n' ' ')
check host_ping_guest "${out:-no answer}" grep -q ' 0% packet loss' <<<"$out"

# The device raised interrupts on the table's GSI and moved frames both ways.
stats=$("$ctl" stats "${id:-0}" --json 2>&1)
echo "acpi: stats of ${id:-?}: $stats"
n() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$stats"; }
irqs=$(n interrupts) tx=$(n tx_frames) rx=$(n rx_frames)
check device_counters "id ${id:-none}: interrupts=${irqs:-?} tx_frames=${tx:-?} rx_frames=${rx:-?}" \
	test "${irqs:-0}" -gt 0 -a "${tx:-0}" -gt 0 -a "${rx:-0}" -gt 0
# The guest's coalescing reached the device: its control commands were
# taken, and the pings' receive interrupts were held back.
cc=$(n ctrl_commands) ce=$(n ctrl_errors) ci=$(n coalesced_irqs) ct=$(n coal_timer_irqs)
check coalescing_applied "ctrl_commands=${cc:-?} ctrl_errors=${ce:-?} coalesced_irqs=${ci:-?} coal_timer_irqs=${ct:-?}" \
	test "${cc:-0}" -gt 0 -a "${ce:-1}" = 0 -a "${ci:-0}" -gt 0
cat /sys/kernel/debug/pvpass/devices 2>/dev/null

kill $q 2>/dev/null
wait $q 2>/dev/null
end=$((SECONDS + 10))
while kill -0 $a 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
kill $a 2>/dev/null
pins_back
tail -n 2 "$res/attach.log"
