#!/usr/bin/env bash
# Benchmark (issue 12): monitoring-agent (release build, started as root, dropped, full
# sandbox) against Debian's prometheus-node-exporter, in one run on this host, on the
# collectors both run by default. Measures, side by side:
#   - CPU per scrape with `Accept-Encoding: gzip`, against the compiled floor: scripts/bench/
#     floor.c (built here) pread()ing, through kept-open descriptors, the exact /proc and /sys
#     files of one agent scrape (from strace of that scrape);
#   - idle RSS, and peak RSS under 64 concurrent clients;
#   - scrapes/s with 1 and 8 clients (wrk);
#   - CPU per collector, system calls per scrape (strace -c);
#   - the sandbox's own overhead (the same binary with --sandbox off);
#   - scaling on synthetic trees (scripts/bench/gen-tree.py): 2 to 1,024 CPUs, 1 to 4,096
#     disks, network interfaces and mounts, CPU and bytes per scrape for both, plotted with
#     gnuplot;
# prints PASS/MISS per goal and writes BENCHMARKS.md (keeping the sections of
# scripts/bench-hostile.sh and scripts/bench-auth.sh) and its PNG plots. Not a test: it fails
# only when it cannot measure.
#
# Usage (as root: the agent starts as root and drops to `monitoring-agent`):
#   sudo scripts/bench-vs-node-exporter.sh [--quick]
# --quick: fewer scrapes and shorter wrk runs (a smoke run of the script itself).
# BENCH_AGENT=/path/to/binary skips the cargo build and measures that binary.
# Needs: cargo, cc, curl, strace, python3, wrk, gnuplot (gnuplot-nox), and
# prometheus-node-exporter (Debian package, 1.5).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (the agent starts as root and drops to monitoring-agent)"
id monitoring-agent >/dev/null 2>&1 || die "user monitoring-agent missing (see scripts/install.sh)"
NE=$(command -v prometheus-node-exporter) || die "prometheus-node-exporter missing: apt-get install prometheus-node-exporter"
for t in wrk gnuplot strace cc python3; do
    command -v $t >/dev/null && continue
    pkg=$t; [[ $t == gnuplot ]] && pkg=gnuplot-nox; [[ $t == cc ]] && pkg=gcc
    echo "bench: installing $pkg" >&2
    apt-get install -y "$pkg" >/dev/null || die "$t missing and apt-get install $pkg failed"
done

target=${CARGO_TARGET_DIR:-$root/target}
if [[ -n ${BENCH_AGENT:-} ]]; then
    AGENT=$BENCH_AGENT
else
    echo "== building the release agent" >&2
    cargo build --release --locked --quiet
    AGENT="$target/release/monitoring-agent"
fi
mkdir -p "$target/bench"
cc -O2 -Wall -o "$target/bench/floor" scripts/bench/floor.c
exec python3 scripts/bench/bench.py --agent "$AGENT" --ne "$NE" --floor "$target/bench/floor" --target "$target" \
    --out "$root/BENCHMARKS.md" "$@"
