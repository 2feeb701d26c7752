#!/usr/bin/env bash
# Regenerates tests/fixtures/e2e/expected.prom: what monitoring-agent serves for the committed
# fixture tree tests/fixtures/e2e/{proc,sys,rootfs,udev,textfile}, normalised exactly as
# tests/e2e_golden.rs normalises a scrape (the test binary does the work: its ignored helper
# `regenerate_expected_prom`, which refuses to run without E2E_GOLDEN_REGENERATE=1; no ordinary
# test run ever writes the file). Then runs the test `expected_prom_matches_node_exporter`,
# which compares what was written with node_exporter 1.5.0's scrape of the same tree and
# fails on any difference not documented in KNOWN_DIFFERENCES.
#
# Also writes, for review only, tests/fixtures/e2e/node_exporter-1.5.0.prom: what Debian's
# prometheus-node-exporter 1.5.0 serves for the same tree and the collectors it has (same
# normalisation), and prints a short summary of the differences between the two.
#
# Usage (as root, like the tests: the agent drops to the `monitoring-agent` user):
#   sudo scripts/regenerate-golden.sh            # agent output + node_exporter reference
#   sudo scripts/regenerate-golden.sh --no-ne    # agent output only
#
# Review `git diff tests/fixtures/e2e/expected.prom` before committing it: every changed line
# is a change of the agent's output for unchanged input.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
fixture="$root/tests/fixtures/e2e"
with_ne=1
[[ "${1:-}" == "--no-ne" ]] && with_ne=0

if [[ $(id -u) -ne 0 ]]; then
    echo "regenerate-golden.sh: run as root (the agent starts as root and drops to monitoring-agent)" >&2
    exit 1
fi

# 1. The agent: the ignored helper writes expected.prom.
E2E_GOLDEN_REGENERATE=1 cargo test --test e2e_golden -- --ignored --exact regenerate_expected_prom --nocapture
echo "wrote $fixture/expected.prom ($(wc -l <"$fixture/expected.prom") lines)"
# ...judged against node_exporter 1.5.0 on the same tree (fails on an undocumented difference).
cargo test --test e2e_golden -- --exact expected_prom_matches_node_exporter

[[ $with_ne -eq 1 ]] || exit 0

# 2. node_exporter on the same tree, for comparison.
ne=$(command -v prometheus-node-exporter || true)
if [[ -z "$ne" ]]; then
    echo "prometheus-node-exporter not found: apt-get install prometheus-node-exporter (or pass --no-ne)" >&2
    exit 1
fi
# The collectors of the golden test that node_exporter 1.5 has (it has no cpu_vulnerabilities,
# softirqs or watchdog collector). Keep in sync with COLLECTORS in tests/e2e_golden.rs.
ne_collectors="arp bcache bonding btrfs buddyinfo conntrack cpu cpufreq diskstats dmi edac entropy
fibrechannel filefd hwmon infiniband interrupts ipvs ksmd loadavg mdadm meminfo meminfo_numa
mountstats netclass netdev netstat nfs nfsd nvme os powersupplyclass pressure rapl schedstat
selinux sockstat softnet stat tapestats textfile thermal_zone udp_queues vmstat xfs zfs zoneinfo"
tmp=$(mktemp -d)
trap 'kill "${ne_pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Same readable copy as the test makes (the checkout may sit below a 0700 directory).
cp -a "$fixture/." "$tmp/tree"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Upstream's netdev default (Debian's package excludes ^lo$ by default; the agent follows
# upstream).
# --no-collector.netdev.netlink: read the tree's proc/net/dev, not the live host over rtnetlink
# (as the test runs it).
args=(--web.listen-address="127.0.0.1:$port" --collector.disable-defaults
      --collector.netdev.device-exclude='^$' --no-collector.netdev.netlink
      --path.procfs="$tmp/tree/proc" --path.sysfs="$tmp/tree/sys" --path.rootfs="$tmp/tree/rootfs"
      --path.udev.data="$tmp/tree/udev/data" --collector.textfile.directory="$tmp/tree/textfile")
for c in $ne_collectors; do args+=("--collector.$c"); done
"$ne" "${args[@]}" >"$tmp/ne.log" 2>&1 &
ne_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/ne.prom" && break
    sleep 0.1
done
[[ -s "$tmp/ne.prom" ]] || { echo "node_exporter did not serve:"; cat "$tmp/ne.log"; exit 1; }
kill "$ne_pid"; wait "$ne_pid" 2>/dev/null || true
E2E_GOLDEN_NORMALISE="$tmp/ne.prom" E2E_GOLDEN_TREE="$tmp/tree" \
    cargo test --test e2e_golden -- --ignored --exact normalise_file --nocapture >/dev/null
cp "$tmp/ne.prom.normalised" "$fixture/node_exporter-1.5.0.prom"
echo "wrote $fixture/node_exporter-1.5.0.prom ($(wc -l <"$fixture/node_exporter-1.5.0.prom") lines)"

# 3. Summary: families only one of them has, and the differing lines of shared families.
echo
echo "== agent (expected.prom) vs node_exporter 1.5.0 (node_exporter-1.5.0.prom), same tree =="
python3 - "$fixture/expected.prom" "$fixture/node_exporter-1.5.0.prom" <<'EOF'
import collections, re, sys
def load(p):
    fam = collections.defaultdict(set)
    for l in open(p):
        l = l.rstrip('\n')
        n = l.split()[2] if l.startswith('# ') else re.split(r'[{ ]', l)[0]
        fam[n].add(l)
    return fam
a, b = load(sys.argv[1]), load(sys.argv[2])
print('families only the agent has:', ' '.join(sorted(set(a) - set(b))) or '-')
print('families only node_exporter has:', ' '.join(sorted(set(b) - set(a))) or '-')
for n in sorted(set(a) & set(b)):
    if a[n] != b[n]:
        da, db = sorted(a[n] - b[n]), sorted(b[n] - a[n])
        print(f"{n}: {len(da)} line(s) only in the agent's, {len(db)} only in node_exporter's")
        for l in da[:5]: print('  agent:', l)
        for l in db[:5]: print('  NE:   ', l)
EOF
