#!/usr/bin/env bash
# Pack guest/init with busybox-static into an initramfs for the demo guests.
# Usage: initramfs.sh <output.cpio.gz>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$tmp/bin/busybox"
cp "$here/guest/init" "$tmp/init"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
