# shellcheck shell=bash disable=SC2034
# Sourced by the scripts: the toolchain the kernel's Rust support needs.
# Debian's rustc-web (1.96, with rust-web-src) is /usr/bin/rustc; the rustup
# toolchain earlier on PATH has no rust-src and cannot build kernel Rust.
PVPASS_KMAKE_VARS=(LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc HOSTRUSTC=/usr/bin/rustc BINDGEN=/usr/local/bin/bindgen)
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

# A frozen bed: nested SVM under QEMU TCG now and then stops delivering the
# bed's own timer interrupt and the bed halts for good (docs/reliability.md).
# The bed writes <results dir>/heartbeat every 5 s (bed_heartbeat, on the
# bed's side); bed_watch, on the host, in the background while vng runs:
# once the heartbeat is <stall> s old (or missing <stall> s after the
# start), and the bed has not written "finished", it marks <res>/frozen and
# kills that bed's QEMU (found by its 9p export of <res>), so that the
# caller can boot it again instead of waiting for its timeout.
bed_watch() { # results dir, stall seconds
	local res=$1 stall=$2 start hb
	start=$(date +%s)
	while sleep 10; do
		[ -f "$res/finished" ] && return 0
		hb=$(stat -c %Y "$res/heartbeat" 2>/dev/null) || hb=$start
		if [ $(($(date +%s) - hb)) -gt "$stall" ]; then
			echo "bed: no heartbeat for $stall s: the test bed froze (docs/reliability.md); killing it" >&2
			touch "$res/frozen"
			pkill -f "path=$res,security_model" || true
			return 0
		fi
	done
}

# bed_watched <results dir> <stall seconds> <command...>: run the command
# (timeout ... vng ...) with bed_watch beside it; returns its status.
bed_watched() {
	local res=$1 stall=$2 w rc=0
	shift 2
	rm -f "$res/frozen" "$res/heartbeat"
	bed_watch "$res" "$stall" &
	w=$!
	"$@" || rc=$?
	kill "$w" 2>/dev/null || true
	wait "$w" 2>/dev/null || true
	return $rc
}
