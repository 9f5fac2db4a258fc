#!/usr/bin/env bash
# Build netperf and netserver for the demo guests and print the directory
# that holds them. The guests have busybox and no libc, so both are linked
# statically. netperf is not in bookworm and trixie's binary needs glibc
# 2.38, so they are built from trixie's source package (setup.sh lists trixie
# as deb-src only, pinned at -10), with Debian's patches applied by
# dpkg-source -x, the way debian/rules configures it.
#
# Cache layout under $PVPASS_CACHE (default /var/cache/pvpass):
#   netperf-<Debian version>/netperf, netserver, .pvpass-stamp
# The stamp holds the version and this script's hash: a changed recipe
# rebuilds (about a minute). Nothing depends on the cache being present.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPASS_CACHE:-/var/cache/pvpass}
log() { echo "netperf: $*" >&2; }
mkdir -p "$cache"
# Two runs at once (demo and check) must not build into the same dir.
exec 9>"$cache/.netperf.lock"
flock 9

recipe=$(sha256sum <"$here/scripts/netperf.sh" | cut -c1-16)
records=$(apt-cache showsrc --only-source netperf 2>/dev/null || true)
ver=$(awk '/^Version:/ {print $2}' <<<"$records" | sort -V | tail -n1)
if [ -z "$ver" ]; then
	# No source index (offline re-run): reuse the newest complete build.
	dir=$(ls -d "$cache"/netperf-*/ 2>/dev/null | sort -V | tail -n1)
	dir=${dir%/}
	[ -n "$dir" ] && [ -x "$dir/netserver" ] ||
		{ log "no netperf source package listed (run scripts/setup.sh first)"; exit 1; }
	log "no source index; reusing $dir"
	echo "$dir"
	exit 0
fi
dir="$cache/netperf-${ver//:/%3a}"
if [ "$(cat "$dir/.pvpass-stamp" 2>/dev/null)" = "$ver $recipe" ] &&
	[ -x "$dir/netperf" ] && [ -x "$dir/netserver" ]; then
	log "cached: $dir"
	echo "$dir"
	exit 0
fi

work=$(mktemp -d "$cache/netperf-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "fetching the source package netperf=$ver"
if ! apt-get source --download-only -q "netperf=$ver" >fetch.log 2>&1; then
	# Some mirrors (proxies) serve the tarballs but not the .dsc. The
	# Sources record apt verified against the signed InRelease holds the
	# same fields and checksums: fetch the other files through apt with
	# their SHA256 and write the .dsc from the record.
	log "apt-get source failed ($(grep -m1 '^E: ' fetch.log || tail -n1 fetch.log)); using the Sources record"
	uris=$(apt-get source --print-uris -q "netperf=$ver")
	dsc=""
	while read -r uri name _ hash; do
		uri=${uri//\'/}
		case "$name" in
		*.dsc) dsc=$name; continue ;;
		esac
		[ -f "$name" ] && continue
		/usr/lib/apt/apt-helper download-file "$uri" "$name" "$hash" >/dev/null
	done < <(grep "^'" <<<"$uris")
	[ -n "$dsc" ] || { log "no .dsc in apt's list for netperf=$ver"; exit 1; }
	# The record of this version, as a .dsc: Package -> Source, no .dsc line.
	awk -v v="$ver" '
		/^$/ { if (keep) exit; n = 0; delete buf; next }
		{ buf[++n] = $0 }
		$0 == "Version: " v { keep = 1; for (i = 1; i <= n; i++) out(buf[i]); next }
		keep { out($0) }
		function out(l) { if (l ~ /\.dsc$/) return; sub(/^Package:/, "Source:", l); print l }
	' <<<"$records" >"$dsc"
	grep -q '^Source: netperf$' "$dsc" || { log "could not write $dsc from the Sources record"; exit 1; }
fi
dpkg-source -x ./netperf_*.dsc src >dpkg-source.log 2>&1 ||
	{ cat dpkg-source.log >&2; log "dpkg-source -x failed"; exit 1; }

log "building $ver statically (about a minute)"
cd src
# As debian/rules does: autoreconf with upstream's m4 dir, --enable-demo.
# Only src/ is built (the manual needs TeX).
{
	autoreconf -f -i -I src/missing/m4
	CFLAGS=-O2 LDFLAGS=-static ./configure --enable-demo
	make -C src -j"$(nproc)" netperf netserver
} >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; log "build failed"; exit 1; }
for b in netperf netserver; do
	# A dynamic binary would not start in the busybox guests.
	if grep -q 'program interpreter' <<<"$(readelf -l "src/$b")"; then
		log "$b is not static"; exit 1
	fi
	strip "src/$b"
done

rm -rf "$dir.new"
mkdir -p "$dir.new"
cp src/netperf src/netserver "$dir.new/"
echo "$ver $recipe" >"$dir.new/.pvpass-stamp"
rm -rf "$dir"
mv "$dir.new" "$dir"
log "built: $dir"
echo "$dir"
