#!/usr/bin/env bash
# Pack guest/init with busybox-static, netperf and netserver (static builds
# from scripts/netperf.sh) into an initramfs for the demo guests.
# Usage: initramfs.sh <output.cpio.gz>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
np=$(bash "$here/scripts/netperf.sh")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$tmp/bin/busybox"
cp "$np/netperf" "$np/netserver" "$tmp/bin/"
cp "$here/guest/init" "$tmp/init"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
