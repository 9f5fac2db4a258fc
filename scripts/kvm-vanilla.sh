#!/usr/bin/env bash
# Build kvm.ko and kvm-amd.ko of the bed kernel WITHOUT the pvpass patch
# series, for the test that pvpass loads and serves its vhost transport on
# an unpatched KVM (scripts/guest-libvirt.sh). Prints the directory that
# holds the two modules.
#
# The bed kernel (scripts/kernel.sh) must be built: the modules are built
# against it, with its .config, from a hard-linked copy of its source with
# the series reverted (only the files the series touches differ). About a
# minute and a half on 2 cores; cached under $PVPASS_CACHE by kernel version
# and config, like the kernel. Nothing depends on the cache being present.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPASS_CACHE:-/var/cache/pvpass}
jobs=${PVPASS_JOBS:-$(($(nproc) + 1))}
. "$here/scripts/lib.sh"
log() { echo "kvm-vanilla: $*" >&2; }

kdir=$(PVPASS_QUIET=1 bash "$here/scripts/kernel.sh" --print-dir) || {
	log "the bed kernel is not built (scripts/kernel.sh)"
	exit 1
}
ksrc=$(readlink -f "$kdir/source")
ver=$(make -s -C "$ksrc" kernelversion)
config_hash=$(sha256sum <"$kdir/.config" | cut -c1-16)
top="$cache/kvm-vanilla-$ver-$config_hash"
want="$ver $config_hash"
if [ -f "$top/.stamp" ] && [ "$(cat "$top/.stamp")" = "$want" ] &&
	[ -f "$top/src/arch/x86/kvm/kvm.ko" ] && [ -f "$top/src/arch/x86/kvm/kvm-amd.ko" ]; then
	echo "$top/src/arch/x86/kvm"
	exit 0
fi

log "building KVM without the pvpass series in $top"
start=$(date +%s)
rm -rf "$top"
mkdir -p "$top/build"
# Hard links: the copy costs no space; patch -R writes the files it changes
# anew, so the patched tree is left as it is.
cp -al "$ksrc" "$top/src"
[ -f "$top/src/.pvpass-patches" ] || { log "$ksrc has no .pvpass-patches"; exit 1; }
patch -d "$top/src" -p1 -R -s --no-backup-if-mismatch <"$top/src/.pvpass-patches"
rm -f "$top/src/.pvpass-patches"
if grep -rq PVPASS "$top/src/virt/kvm" "$top/src/include/linux/kvm_types.h"; then
	log "the series did not revert cleanly"
	exit 1
fi
cp "$kdir/.config" "$kdir/Module.symvers" "$top/build/"
make -s "${PVPASS_KMAKE_VARS[@]}" -C "$top/src" O="$top/build" -j"$jobs" modules_prepare >&2
make -s "${PVPASS_KMAKE_VARS[@]}" -C "$top/src" O="$top/build" -j"$jobs" M=arch/x86/kvm modules >&2
for m in kvm kvm-amd; do
	[ "$(modinfo -F vermagic "$top/src/arch/x86/kvm/$m.ko")" = "$(modinfo -F vermagic "$kdir/arch/x86/kvm/$m.ko")" ] ||
		{ log "$m.ko: vermagic differs from the bed kernel's"; exit 1; }
done
echo "$want" >"$top/.stamp"
log "built in $(($(date +%s) - start)) s"
echo "$top/src/arch/x86/kvm"
