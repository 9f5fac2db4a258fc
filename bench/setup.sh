#!/usr/bin/env bash
# Optional bench step of the set-up (only `make bench` runs it, after
# scripts/setup.sh), from Debian bookworm: gnuplot for bench/results/bench.png
# and linux-perf for the profile of one run per configuration. Without them
# the benchmark still runs and writes its CSV and table.
set -euo pipefail
log() { echo "bench-setup: $*" >&2; }
want=()
command -v gnuplot >/dev/null 2>&1 || want+=(gnuplot-nox)
command -v perf >/dev/null 2>&1 || want+=(linux-perf)
if [ ${#want[@]} -gt 0 ]; then
	log "installing ${want[*]} (bookworm) for the plot and the profiles"
	apt-get update -q >/dev/null || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null ||
		log "${want[*]} did not install: no plot or no profiles (the CSV and the table still come)"
fi
