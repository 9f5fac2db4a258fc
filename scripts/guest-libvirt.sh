#!/bin/bash
# Runs inside the test bed (L1, virtme-ng), on a KVM built WITHOUT the pvpass
# patch series (scripts/kvm-vanilla.sh): pvpass loads and serves its vhost
# transport, virtio-mmio ATTACH is refused with a message, and two stock
# QEMU guests (virtio-net-pci, MSI-X) share the switch and the host port:
#   guest 5, opened as libvirt opens it: two files of /dev/pvpass-vhost-net
#     that nobody names and a multi-queue tap pvp-lv0 (scripts/libvirt-open.py,
#     libvirt's <backend vhost=.../> with <target dev='pvp-lv0'/> and
#     <driver queues='2'/>); its port comes from `pvpassctl vhost-rule add`;
#   guest 3, through `pvpassctl vhost-exec`.
# Each pings the other and the host; the host pings both.
# Results go to $1: libvirt.log, bed.results ("<check> ok|fail <text>"
# lines), consoles.
# Usage: guest-libvirt.sh <results dir> <pvpass.ko> <pvpassctl> <bzImage> <initramfs> <netperf> <kvm module dir>
set -u
res=$1 ko=$2 ctl=$3 kernel=$4 initrd=$5 kvmdir=$7
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bed-guests.sh
. "$here/scripts/bed-guests.sh"
bed_start libvirt "$res" "$ko" "$kvmdir"

# The KVM is the unpatched one: no marker, and pvpass said so at load.
check kvm_unpatched "kvm.ko without the pvpass series (no kvm_pvpass_exports)" \
	bash -c '! grep -qw kvm_pvpass_exports /proc/kallsyms && grep -qw kvm_get_running_vcpu /proc/kallsyms'
check load_message "pvpass says at load that virtio-mmio is unavailable" \
	bash -c 'dmesg | grep -q "KVM has no pvpass patch series"'

common=(-enable-kvm -cpu host -machine "q35,kernel-irqchip=on" -m 256M -nodefaults
	-display none -no-reboot -kernel "$kernel" -initrd "$initrd")

# virtio-mmio needs the series: ATTACH is refused, with the reason.
qemu-system-x86_64 -enable-kvm -machine "q35,kernel-irqchip=on" -m 64M -nodefaults -display none -S &
qm=$!
sleep 2
out=$("$ctl" attach --pid $qm --gpa 0xd0000000 --gsi 7 --mac 52:54:00:00:00:01 --wait 10 2>&1)
rc=$?
echo "$out"
if [ $rc != 0 ] && grep -q "lacks the pvpass patch series" <<<"$out"; then
	result mmio_attach_refused ok "exit $rc: $(head -n1 <<<"$out")"
else
	result mmio_attach_refused fail "exit $rc: $(head -n1 <<<"$out")"
fi
kill $qm 2>/dev/null
wait $qm 2>/dev/null

"$ctl" vhost-rule add --tap pvp-lv0 --mac 52:54:00:00:00:05
line=$("$ctl" vhost-rule list | grep -w pvp-lv0)
if grep -q '52:54:00:00:00:05  default' <<<"$line"; then result rule_listed ok "$line"; else result rule_listed fail "${line:-not listed}"; fi

# Guest 5: as libvirt starts it (no pvpass ioctl on the vhost files).
python3 "$here/scripts/libvirt-open.py" --tap pvp-lv0 --queues 2 --netdev-id n0 -- \
	qemu-system-x86_64 "${common[@]}" -smp 2 \
	-append "console=ttyS0 panic=-1 $bed_args pvpass_ip=10.0.0.5/24 pvpass_peer=10.0.0.3 pvpass_host=$host" \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:05,mq=on,vectors=6,romfile= \
	-serial "file:$res/guest5.console" &
q5=$!
# Guest 3: pvpassctl vhost-exec names its port.
"$ctl" vhost-exec --mac 52:54:00:00:00:03 --netdev-id n0 -- \
	qemu-system-x86_64 "${common[@]}" -smp 1 \
	-append "console=ttyS0 panic=-1 $bed_args pvpass_ip=10.0.0.3/24 pvpass_peer=10.0.0.5 pvpass_host=$host" \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:03,romfile= \
	-serial "file:$res/guest3.console" &
q3=$!

for g in 5 3; do
	for what in peer host; do
		if wait_for "$res/guest$g.console" "pvpass-demo: ping $what .* 0% packet loss" 400; then
			result "guest${g}_ping_$what" ok "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest$g.console" | tr -d '\r')"
		else
			result "guest${g}_ping_$what" fail "$(grep -a -m1 "pvpass-demo: ping $what" "$res/guest$g.console" | tr -d '\r')"
		fi
	done
done
line=$(grep -a -m1 'pvpass-demo: netdev eth0' "$res/guest5.console" | tr -d '\r')
if grep -q 'queues=2 ' <<<"$line"; then result guest5_two_queue_pairs ok "$line"; else result guest5_two_queue_pairs fail "${line:-no netdev line}"; fi
# The tap's two files are two queue pairs (devices) of one port.
"$ctl" list
vids=$("$ctl" list --json | python3 -c 'import json,sys; print(" ".join(str(d["id"]) for d in json.load(sys.stdin) if d["mac"].lower() == "52:54:00:00:00:05"))')
n=$(wc -w <<<"$vids")
if [ "$n" = 2 ]; then result rule_port_queue_pairs ok "devices $vids with the rule's MAC"; else result rule_port_queue_pairs fail "devices with the rule's MAC: ${vids:-none}"; fi
for a in 10.0.0.5 10.0.0.3; do
	out=$(busybox ping -c 5 -i 0.2 -W 2 $a 2>&1 | grep -E 'packets transmitted' | tr '\n' ' ')
	if grep -q ' 0% packet loss' <<<"$out"; then result "host_ping_$a" ok "$out"; else result "host_ping_$a" fail "${out:-no answer}"; fi
done
kill $q5 $q3 2>/dev/null
wait $q5 $q3 2>/dev/null
pins_back
check rule_del "vhost-rule del" "$ctl" vhost-rule del --tap pvp-lv0
