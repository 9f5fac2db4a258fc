#!/usr/bin/env bash
# Install everything pvpass needs on a fresh Debian 12 (bookworm) x86-64
# machine, then build the patched kernel (cached) and the module.
# Idempotent: a second run with nothing to do takes seconds.
#
# Sources: Debian bookworm, bookworm-security, bookworm-backports (QEMU 10),
# crates.io (bindgen-cli), PyPI (virtme-ng). The kernel source comes from the
# linux-source-7.2 package of trixie-backports, which is only ever
# `apt-get download`ed and unpacked: that suite is pinned at priority -10 so
# nothing from it can be installed or upgrade the system (see BRIEF.md: an
# unpinned extra suite once replaced libc6). netperf (not in bookworm) is
# built by scripts/netperf.sh from trixie's source package: trixie is listed
# as deb-src only, and pinned at -10 all the same.
set -euo pipefail
log() { echo "setup: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (apt-get, /var/cache/pvpass, KVM)"; exit 1; }

BINDGEN_VERSION=0.73.2
VIRTME_NG_VERSION=1.42
DEB_PACKAGES=(rustc-web rust-web-src rust-web-clippy clang-19 lld-19 llvm-19 libclang-19-dev
	bc bison flex libelf-dev libssl-dev cpio kmod make gcc libc6-dev
	busybox-static iproute2 python3-pip patch xz-utils
	dpkg-dev autoconf automake  # for scripts/netperf.sh
	shellcheck)                 # make check lints scripts/ and bench/
BACKPORTS_PACKAGES=(qemu-system-x86)

sources=/etc/apt/sources.list.d/pvpass.sources
prefs=/etc/apt/preferences.d/pvpass
want_sources='Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
want_prefs='# pvpass: trixie-backports is only for `apt-get download linux-source-7.2`.
Package: *
Pin: release n=trixie-backports
Pin-Priority: -10

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100'

# Source-only entry for netperf, in files of its own: the files above stay
# as they are, so checkouts that lack this entry don't keep rewriting them.
src_sources=/etc/apt/sources.list.d/pvpass-src.sources
src_prefs=/etc/apt/preferences.d/pvpass-src
want_src_sources='Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
want_src_prefs='# pvpass: trixie is listed only as deb-src (netperf source for scripts/netperf.sh).
Package: *
Pin: release n=trixie
Pin-Priority: -10'

updated=0
apt_update() { [ $updated = 1 ] || { log "apt-get update"; apt-get update -q >/dev/null; updated=1; }; }

# Any other file naming trixie-backports unpinned would defeat the pin; the
# pin file above covers every source by release name, so that is enough.
if [ "$(cat "$sources" 2>/dev/null)" != "$want_sources" ] || [ "$(cat "$prefs" 2>/dev/null)" != "$want_prefs" ]; then
	printf '%s\n' "$want_prefs" >"$prefs"
	printf '%s\n' "$want_sources" >"$sources"
	updated=0
	apt_update
fi
if [ "$(cat "$src_sources" 2>/dev/null)" != "$want_src_sources" ] || [ "$(cat "$src_prefs" 2>/dev/null)" != "$want_src_prefs" ]; then
	printf '%s\n' "$want_src_prefs" >"$src_prefs"
	printf '%s\n' "$want_src_sources" >"$src_sources"
	updated=0
	apt_update
fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# QEMU 10 from bookworm-backports (bookworm's 7.2 is too old for the bed).
if ! dpkg-query -W -f '${Version}' qemu-system-x86 2>/dev/null | grep -q 'bpo12'; then
	apt_update
	log "installing ${BACKPORTS_PACKAGES[*]} from bookworm-backports"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-t bookworm-backports "${BACKPORTS_PACKAGES[@]}" >/dev/null
fi

if ! /usr/local/bin/bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION from crates.io"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install -q --locked bindgen-cli \
		--version "$BINDGEN_VERSION" --root /usr/local
fi

# Read the whole output first: with pipefail, grep -q closing the pipe early
# made pip fail with a broken pipe, and the check always reinstalled.
if ! grep -q "^Version: $VIRTME_NG_VERSION\$" <<<"$(python3 -m pip show virtme-ng 2>/dev/null)"; then
	log "installing virtme-ng $VIRTME_NG_VERSION from PyPI"
	# A Debian python3 refuses system-wide pip installs (PEP 668); the
	# machine's own CPython does not need the override.
	python3 -m pip install -q --root-user-action=ignore "virtme-ng==$VIRTME_NG_VERSION" ||
		python3 -m pip install -q --root-user-action=ignore --break-system-packages "virtme-ng==$VIRTME_NG_VERSION"
fi

# The kernel build needs the package lists for the newest linux-source-7.2.
if ! grep -q . <<<"$(apt-cache madison linux-source-7.2 2>/dev/null)"; then apt_update; fi
# scripts/netperf.sh needs trixie's source index unless netperf is cached.
if ! grep -q '^Version:' <<<"$(apt-cache showsrc --only-source netperf 2>/dev/null)"; then apt_update; fi
log "toolchain ready"
