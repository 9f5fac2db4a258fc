# shellcheck shell=bash
# The bed's side of guest/init's kill test (pvpass_killtest=1), sourced by
# scripts/guest-demo.sh and guest-nic-vms.sh (inside the bed):
#   control_start <port> <words log>: the control port (bed-control.py):
#       every connection carries one line from the guest, logged with the
#       time to <words log>, and gets back one line, what `say` set last
#       ("wait" at first). The guest asks every 2 s while it waits, so it is
#       never a passive receiver here, and a lost word is simply asked for
#       again. Sets $ctlpid.
#   say <word...>: what the guest gets from now on when it asks.
#   await <word> <seconds>: the first line the guest sent that starts with
#       <word> (printed without the reply), within the deadline.
control_start() {
	words=$2 reply=/tmp/pvpass-bed-reply.$1
	echo wait >"$reply"
	: >"$words"
	python3 "$(dirname "${BASH_SOURCE[0]}")/bed-control.py" "$1" "$words" "$reply" &
	# shellcheck disable=SC2034 # for the scripts that source this
	ctlpid=$!
}
say() { echo "$*" >"$reply.new" && mv "$reply.new" "$reply"; }
await() {
	local end=$((SECONDS + $2)) l
	while :; do
		l=$(grep -m1 -E "^[^ ]+ [^ ]+ $1( |$)" "$words")
		[ -n "$l" ] && { l=${l#* }; l=${l#* }; echo "${l% -> *}"; return 0; }
		[ $SECONDS -lt $end ] || return 1
		sleep 0.5
	done
}
