#!/usr/bin/env bash
# Optional bench step of the set-up (only `make bench` runs it, after
# scripts/setup.sh): gnuplot for bench/results/bench.png, from Debian
# bookworm. The report still writes its CSV and table without it.
set -euo pipefail
log() { echo "bench-setup: $*" >&2; }
if ! command -v gnuplot >/dev/null 2>&1; then
	log "installing gnuplot-nox (bookworm) for the plot"
	apt-get update -q >/dev/null || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null ||
		log "gnuplot-nox did not install: no PNG plot (the CSV and the table still come)"
fi
