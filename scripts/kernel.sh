#!/usr/bin/env bash
# Fetch, patch, configure and build the pvpass test-bed kernel, with a cache
# outside the repo.
#
#   scripts/kernel.sh            build (or reuse) and print the build dir
#   PVPASS_KASAN=1 scripts/kernel.sh   the KASAN variant (its own build dir)
#   scripts/kernel.sh --print-dir      print the build dir if it is built, else fail
#
# Cache layout under $PVPASS_CACHE (default /var/cache/pvpass):
#   linux-source-7.2_<ver>_all.deb    the downloaded package
#   src-<ver>/                        pristine source, then patches applied;
#                                     .pvpass-patches holds the applied series
#   build-<ver>-<config hash>/        O= build dir; .pvpass-stamp holds
#                                     <ver> <config hash> <patch hash> once built
# A changed patch series is reverted and re-applied in place, so make only
# rebuilds the objects whose sources changed. A matching stamp means nothing
# to do (seconds). Nothing here ever depends on the cache being present.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPASS_CACHE:-/var/cache/pvpass}
jobs=${PVPASS_JOBS:-$(($(nproc) + 1))}
. "$here/scripts/lib.sh"
mkdir -p "$cache"
log() { echo "kernel: $*" >&2; }

# Pick the newest linux-source-7.2 that the (pinned, priority < 0) trixie-backports
# suite serves, unless PVPASS_KVER pins one. Versions there get dropped over time.
pick_version() {
	if [ -n "${PVPASS_KVER:-}" ]; then echo "$PVPASS_KVER"; return; fi
	local v
	v=$(apt-cache madison linux-source-7.2 2>/dev/null | awk '{print $3}' | sort -V | tail -n1)
	if [ -z "$v" ]; then
		# Offline re-run: reuse the newest package already downloaded.
		v=$(ls "$cache"/linux-source-7.2_*_all.deb 2>/dev/null | sed 's/.*linux-source-7.2_//; s/_all.deb//' | sort -V | tail -n1)
	fi
	[ -n "$v" ] || { log "no linux-source-7.2 package found (run scripts/setup.sh first)"; exit 1; }
	echo "$v"
}

pkgver=$(pick_version)
ver=${pkgver%%-*}                       # 7.2.12-1~bpo13+1 -> 7.2.12
deb="$cache/linux-source-7.2_${pkgver}_all.deb"
deb=${deb//:/%3a}
src="$cache/src-$ver"

if [ ! -f "$src/Makefile" ]; then
	if [ ! -f "$deb" ]; then
		log "downloading linux-source-7.2=$pkgver"
		(cd "$cache" && apt-get download -q "linux-source-7.2=$pkgver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
		ls "$cache"/linux-source-7.2_*"${ver}"*_all.deb >/dev/null
		deb=$(ls "$cache"/linux-source-7.2_*"${ver}"*_all.deb | head -n1)
	fi
	log "unpacking $ver"
	tmp=$(mktemp -d "$cache/unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	tar -xf "$tmp"/usr/src/linux-source-7.2.tar.xz -C "$tmp"
	rm -rf "$src"
	mv "$tmp/linux-source-7.2" "$src"
	rm -rf "$tmp"
fi

# --- patches: keep the applied series in sync with patches/ -----------------
patches=("$here"/patches/*.patch)
patch_hash=$(cat "${patches[@]}" | sha256sum | cut -c1-16)
applied="$src/.pvpass-patches"
if [ ! -f "$applied" ] || [ "$(sha256sum <"$applied" | cut -c1-16)" != "$patch_hash" ]; then
	if [ -f "$applied" ]; then
		log "reverting the previously applied patch series"
		patch -d "$src" -p1 -R -s <"$applied"
	fi
	log "applying ${#patches[@]} patches"
	for p in "${patches[@]}"; do
		patch -d "$src" -p1 -s --no-backup-if-mismatch <"$p"
	done
	cat "${patches[@]}" >"$applied"
fi

# --- config -------------------------------------------------------------------
fragments=("$here/kernel/pvpass.config")
variant=""
if [ "${PVPASS_KASAN:-0}" = 1 ]; then fragments+=("$here/kernel/kasan.config"); variant="-kasan"; fi
config_hash=$(cat "${fragments[@]}" | sha256sum | cut -c1-16)
build="$cache/build-$ver$variant-$config_hash"
stamp="$build/.pvpass-stamp"
want="$ver $config_hash $patch_hash"

if [ "${1:-}" = --print-dir ]; then
	# For the Makefile's default KDIR: the build dir if it is complete.
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || exit 1
	echo "$build"
	exit 0
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$build/arch/x86/boot/bzImage" ]; then
	log "cached: $build"
	echo "$build"
	exit 0
fi

mkdir -p "$build"
if [ ! -f "$build/.config" ]; then
	log "configuring $build"
	make -s "${PVPASS_KMAKE_VARS[@]}" -C "$src" O="$build" tinyconfig >&2
	"$src"/scripts/kconfig/merge_config.sh -m -O "$build" "$build/.config" "${fragments[@]}" >/dev/null
	make -s "${PVPASS_KMAKE_VARS[@]}" -C "$src" O="$build" olddefconfig >&2
	# merge_config only warns; fail here if a required option did not stick.
	missing=0
	while IFS= read -r line; do
		case "$line" in CONFIG_*=y|CONFIG_*=m) ;; *) continue ;; esac
		grep -qx "$line" "$build/.config" || { log "config: $line did not stick"; missing=1; }
	done < <(cat "${fragments[@]}")
	if [ "$missing" = 1 ]; then
		rm -f "$build/.config"
		make "${PVPASS_KMAKE_VARS[@]}" -C "$src" rustavailable >&2 || true
		exit 1
	fi
fi

log "building $ver in $build with -j$jobs (about 20 minutes from scratch on 2 cores)"
start=$(date +%s)
make -s "${PVPASS_KMAKE_VARS[@]}" -C "$src" O="$build" -j"$jobs" bzImage modules >&2
make -s "${PVPASS_KMAKE_VARS[@]}" -C "$src" O="$build" headers >&2
echo "$want" >"$stamp"
log "built in $(($(date +%s) - start)) s"
echo "$build"
