#!/usr/bin/env bash
# The main job (README's first command): install everything, build the
# patched kernel, pvpass.ko and pvpassctl, boot the test bed and run two stock
# QEMU guests that find their NIC served by pvpass in the host kernel, ping
# each other and the host (pvpsw0), run netperf (TCP_STREAM, TCP_RR) to each
# other and to the host; then one guest is killed mid-transfer and the demo
# checks that it is detached and that the other one still works. Then the NIC
# part (scripts/nic-bed.sh): pvpass takes QEMU's igb from the stock driver,
# the host uses it as pvpnic0, and two guests on VMDq pools of their own
# reach each other, the host and the wire through it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. scripts/lib.sh
t_begin=$SECONDS
bash scripts/setup.sh
KDIR=$(bash scripts/kernel.sh)
make -s -C "$here" KDIR="$KDIR" module
(cd tool && cargo build --release --locked -q)
mkdir -p build
# The initramfs carries netperf, built statically by scripts/netperf.sh
# (cached); the bed runs the same netserver for the guests' tests to the host.
np=$(bash scripts/netperf.sh)
bash scripts/initramfs.sh build/demo-initramfs.cpio.gz guest/init
res=$here/build/demo
rm -rf "$res"; mkdir -p "$res"
echo "demo: booting the test bed (patched $(basename "$KDIR") under QEMU TCG), then two nested guests; about 5 minutes"
# /var/cache is a tmpfs in the guest: mount the kernel cache explicitly
# (it holds the netperf build too).
ro=(--rodir "$(dirname "$KDIR")")
case "$np/" in "$(dirname "$KDIR")"/*) ;; *) ro+=(--rodir "$np") ;; esac
# One CPU for the bed: with two, nested SVM under TCG corrupted L2 guests'
# state now and then (oopses with garbage registers, before any pvpass use).
t_bed=$SECONDS
# The bed's console goes to vng.log (--verbose, loglevel 7): if the bed
# hangs, its soft-lockup, hung-task and RCU-stall reports are there. A bed
# that freezes (no heartbeat for 180 s: scripts/lib.sh bed_watch) is booted
# again, up to three boots; a frozen attempt is kept in build/demo.attempt<n>.
for attempt in 1 2 3; do
	bed_watched "$res" 180 timeout 1800 vng --verbose --append "loglevel=7" --run "$KDIR" --disable-kvm --qemu-opts='-cpu max' --memory 4G --cpus 1 \
		--rwdir "$res" "${ro[@]}" \
		--exec "$here/scripts/guest-demo.sh $res $here/pvpass.ko $here/tool/target/release/pvpassctl $KDIR/arch/x86/boot/bzImage $here/build/demo-initramfs.cpio.gz $np" \
		>"$res/vng.log" 2>&1 || true
	[ "$attempt" != 3 ] && [ -f "$res/frozen" ] && [ ! -f "$res/finished" ] || break
	echo "demo: the test bed froze (a known fault of nested SVM under TCG: docs/reliability.md); booting it again"
	rm -rf "$res.attempt$attempt"; mv "$res" "$res.attempt$attempt"; mkdir -p "$res"
done
t_bed=$((SECONDS - t_bed))
if [ ! -f "$res/finished" ]; then
	echo "demo: the test bed did not finish; see $res/vng.log and $res/demo.log" >&2
	tail -n 30 "$res/demo.log" "$res/vng.log" >&2 || true
	exit 1
fi
cat "$res/demo.log"
echo "=== demo summary (test bed: $t_bed s)"
fail() {
	echo "demo: FAILED: $*" >&2
	echo "demo: see $res/ (demo.log, bed.results, guest1.console, guest2.console, attach*.log, dmesg.log)" >&2
	exit 1
}
# con <guest> <regex>: the first matching line of a guest's console.
con() { grep -a -m1 -E "$2" "$res/guest$1.console" | tr -d '\r' || true; }
# bed <check>: "<status> <text>" of a check the bed script made.
bed() { sed -n "s/^$1 //p" "$res/bed.results" 2>/dev/null | head -n 1; }
# positive <line> <test> <kind> <addr>: "<value> <units>" of a netperf result line, if positive.
positive() {
	local val
	val=$(sed -n "s/.*pvpass-demo: netperf $2 $3 $4 \([0-9.]*\) \([^ ]*\).*/\1 \2/p" <<<"$1")
	awk -v v="${val%% *}" 'BEGIN { exit !(v ~ /^[0-9.]+$/ && v + 0 > 0) }' && echo "$val"
}

# Each guest's stock virtio_net must have bound to the pvpass device with its own MAC.
for i in 1 2; do
	[ -n "$(con $i "pvpass-demo: netdev .* mac=52:54:00:00:00:0$i")" ] ||
		fail "guest $i did not find its NIC"
done
echo "demo: ok: both guests found their pvpass NIC (stock virtio_mmio + virtio_net, registers served in the host kernel)"
for i in 1 2; do
	[ -n "$(con $i "pvpass-demo: ping peer .* 0% packet loss")" ] ||
		fail "guest $i could not ping its peer: $(con $i 'pvpass-demo: ping peer')"
done
echo "demo: ok: guest <-> guest: the guests ping each other through the pvpass switch (0% loss)"
for i in 1 2; do
	[ -n "$(con $i "pvpass-demo: ping host .* 0% packet loss")" ] ||
		fail "guest $i could not ping the host (10.0.0.254 on pvpsw0): $(con $i 'pvpass-demo: ping host')"
done
echo "demo: ok: guest -> host: both guests ping 10.0.0.254 on pvpsw0 (0% loss)"
for i in 1 2; do
	st=$(bed host_ping_guest$i)
	[ "${st%% *}" = ok ] || fail "the host could not ping guest $i: ${st#* }"
done
echo "demo: ok: host -> guest: the host pings both guests from pvpsw0 (0% loss)"
# Guest 2 ran netperf against guest 1's netserver and the bed's. Under TCG
# these numbers are tiny; only success matters here.
for kind in peer host; do
	addr=10.0.0.1; [ $kind = host ] && addr=10.0.0.254
	summary=()
	for t in TCP_STREAM TCP_RR; do
		# The result line (not a failed first attempt's).
		line=$(con 2 "pvpass-demo: netperf $t $kind [^ ]+ ([0-9.]+ |failed:)")
		val=$(positive "$line" $t $kind $addr) ||
			fail "netperf $t guest 2 -> $kind failed: ${line:-no result in $res/guest2.console}"
		grep -q '(attempt 2)' <<<"$line" && val+=" (2nd attempt)"
		summary+=("$t $val")
	done
	[ $kind = peer ] && what="guest 2 -> guest 1" || what="guest 2 -> host"
	echo "demo: ok: netperf $what through the pvpass switch: ${summary[0]}, ${summary[1]} (TCG, nested: not a benchmark)"
done
# A netperf attempt that got no answer within 60 s is tried once more (the
# guest prints the failed one): name each, the run passes without hiding them.
while read -r l; do
	echo "demo: note: a first netperf attempt failed (the second passed; see $res/monitor.log): ${l#*pvpass-demo: }"
done < <(grep -a -h 'pvpass-demo: netperf .* attempt 1 failed' "$res/guest2.console" | tr -d '\r')
# The kill test: the bed killed guest 1's QEMU while guest 2 streamed to it.
st=$(bed kill_detach)
[ "${st%% *}" = ok ] || fail "kill one guest: ${st#* }"
echo "demo: ok: kill one guest: ${st#* }"
grep -q 'OVER the' <<<"$st" && echo "demo: note: the detach took longer than its 2 s target (passes up to 3 s; see $res/dmesg.log for the module's release)"
line=$(con 2 "pvpass-demo: ping survivor-host ")
grep -q ' 0% packet loss' <<<"$line" || fail "after the kill guest 2 could not ping the host: ${line:-no result}"
line=$(con 2 "pvpass-demo: netperf TCP_STREAM survivor-host [^ ]+ ([0-9.]+ |failed:)")
val=$(positive "$line" TCP_STREAM survivor-host 10.0.0.254) ||
	fail "after the kill guest 2 could not stream to the host: ${line:-no result}"
grep -q '(attempt 2)' <<<"$line" && val+=", 2nd attempt"
st=$(bed survivor_host_ping)
[ "${st%% *}" = ok ] || fail "after the kill the host could not ping guest 2: ${st#* }"
echo "demo: ok: survivor: after the kill guest 2 pings the host (0% loss) and streams to it ($val); the host pings guest 2 (0% loss)"
st=$(bed pinned_pages)
case "${st%% *}" in
ok) echo "demo: ok: pinned pages back to baseline: ${st#* }" ;;
na) echo "demo: pinned-page count: not available in this module" ;;
*) fail "pinned pages not back to baseline: ${st#* }" ;;
esac
# The bed kernel must have stayed sound through all of it (the kill too).
if grep -E 'BUG:|WARNING:|Oops|general protection' "$res/dmesg.log" >&2; then
	fail "the bed kernel logged the lines above"
fi
echo "demo: ok: no BUG/WARNING/Oops in the bed kernel log"

# The NIC part: its own bed (QEMU's igb and a "wire" NIC on one hub).
echo "demo: the NIC part: pvpass drives an igb (82576) shared by the host and two guests; about 5 minutes"
t_nic=$SECONDS
nres=$here/build/demo-nic
bash scripts/nic-bed.sh "$nres" "$here/pvpass.ko" "$here/tool/target/release/pvpassctl" \
	"$KDIR/arch/x86/boot/bzImage" "$here/build/demo-initramfs.cpio.gz" "$np" >"$nres.log" 2>&1 || true
nic() { sed -n "s/^$1 //p" "$nres/bed.results" 2>/dev/null | head -n 1; }
nic_ok() { # <message> <checks...>: all ok, else the first failure
	local msg=$1 c st; shift
	for c in "$@"; do
		st=$(nic "$c")
		[ "${st%% *}" = ok ] || fail "NIC: $c: ${st:-no result (see $nres.log, $nres/nic.log)}"
	done
	echo "demo: ok: NIC: $msg"
}
nic_ok "pvpass took the igb from the stock driver by driver_override: $(nic probe_mac | sed 's/.*taken: //')" \
	pvpass_binds probe_mac probe_link_up host_if
nic_ok "the host's pvpnic0 pings the wire and the wire pings it; the NIC inserts TCP/UDP checksums" \
	host_pings_wire wire_pings_host tx_csum_udp tx_csum_tcp
nic_ok "two guests attached with --backend pvpnic0, each on a VMDq pool of its own ($(nic pools_assigned | cut -d: -f2-))" \
	vm_attach_vma vm_attach_vmb pools_assigned
nic_ok "guest B -> guest A through the NIC's own switch, both guests <-> pvpnic0, the wire -> guest A: 0% loss" \
	guest_pings_guest guest_pings_host guest_b_pings_host host_pings_10.0.1.3 host_pings_10.0.1.4 wire_pings_guest
nic_ok "steering by MAC in hardware: $(nic steering | cut -d' ' -f2-)" steering
nic_ok "netperf B -> A: $(nic netperf_TCP_STREAM_peer | sed 's/.*peer 10.0.1.3 //'), $(nic netperf_TCP_RR_peer | sed 's/.*peer 10.0.1.3 //') (TCG, nested: not a benchmark)" \
	netperf_TCP_STREAM_peer netperf_TCP_RR_peer
nic_ok "zero-copy transmit: $(nic pool2_zero_copy | cut -d' ' -f2- | sed 's/^B.s pool: //')" device_tx_pending pool2_zero_copy
nic_ok "zero-copy receive: $(nic pool1_rx_zero_copy | cut -d' ' -f2- | sed 's/^A.s pool: //'), into the buffers guest A posted" \
	pool1_rx_zero_copy device_rx_zero_copy
nic_ok "guest A killed while B streamed to it: its pool freed and its pins returned; B still pings and streams to the host; all pins back at the end" \
	killed_guest_pool_freed killed_guest_pins survivor_pings_host survivor_streams pools_free pinned_pages
nic_ok "rmmod under traffic leaves the NIC quiesced, the stock igb takes it back, kernel log clean" \
	remove_quiesced_regs igb_rebinds dmesg_clean
if grep -q ' fail ' "$nres/bed.results" 2>/dev/null; then
	fail "NIC: $(grep -m1 ' fail ' "$nres/bed.results")"
fi
echo "demo: NIC part: $(grep -c ' ok ' "$nres/bed.results") checks passed in $((SECONDS - t_nic)) s"
echo "demo: passed in $((SECONDS - t_begin)) s"
