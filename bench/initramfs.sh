#!/usr/bin/env bash
# Pack the benchmark guests' initramfs: bench/guest-init as /init,
# bench/guest-agent as /bin/bench-agent, busybox-static, and the static
# netperf/netserver from scripts/netperf.sh (cached).
# Usage: bench/initramfs.sh <output.cpio.gz>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
np=$(bash "$here/scripts/netperf.sh")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$tmp/bin/busybox"
cp "$np/netperf" "$np/netserver" "$tmp/bin/"
install -m 755 "$here/bench/guest-init" "$tmp/init"
install -m 755 "$here/bench/guest-agent" "$tmp/bin/bench-agent"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
