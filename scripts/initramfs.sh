#!/usr/bin/env bash
# Pack a guest initramfs: <init> as /init, busybox-static, the static
# netperf and netserver from scripts/netperf.sh (cached), guest/channels
# and guest/patterns (built static), and any extra
# <file>:<path in the image> (installed executable). The demo packs
# guest/init; the benchmark bench/guest-init and bench/guest-agent.
# Usage: initramfs.sh <output.cpio.gz> <init> [<file>:<path>]...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1 init=$2
shift 2
np=$(bash "$here/scripts/netperf.sh")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$tmp/bin/busybox"
cp "$np/netperf" "$np/netserver" "$tmp/bin/"
# `ethtool -L` and `ethtool -C` for busybox guests, the UDP payload
# checker, and `ss -ti` of one socket for the benchmark guests
# (guest/channels.c, guest/coalesce.c, guest/patterns.c, guest/tcpinfo.c).
gcc -static -O2 -Wall -o "$tmp/bin/channels" "$here/guest/channels.c"
gcc -static -O2 -Wall -o "$tmp/bin/coalesce" "$here/guest/coalesce.c"
gcc -static -O2 -Wall -o "$tmp/bin/patterns" "$here/guest/patterns.c"
gcc -static -O2 -Wall -o "$tmp/bin/tcpinfo" "$here/guest/tcpinfo.c"
install -m 755 "$init" "$tmp/init"
for extra in "$@"; do
	install -D -m 755 "${extra%%:*}" "$tmp/${extra#*:}"
done
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
