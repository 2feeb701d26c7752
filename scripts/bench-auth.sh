#!/usr/bin/env bash
# Basic auth is no CPU weapon: the agent's CPU while clients send 100 wrong-password requests
# a second (from one address, then spread over 50 loopback addresses), and the scrape latency a
# valid client sees meanwhile. Run as root (the agent starts as root and drops), on an idle
# machine; prints the figures for BENCHMARKS.md. Needs curl. Release build by default.
#   scripts/bench-auth.sh [BINARY] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/monitoring-agent}
secs=${2:-20}
[ -x "$bin" ] || { echo "bench-auth: build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
chmod 755 "$work"
port=$((20000 + RANDOM % 20000))
# exporter-toolkit's test user dave/dave123 (bcrypt cost 10).
cat > "$work/web.yml" <<'YML'
basic_auth_users:
  dave: $2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq
YML
"$bin" --web.listen-address "127.0.0.1:$port" --pid-file "$work/agent.pid" \
  --web.config.file "$work/web.yml" --log.level warn 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
hz=$(getconf CLK_TCK)

# A valid client scrapes once a second from 127.0.0.2; prints the median and worst latency.
scrape_loop() {
  local out=$1
  for _ in $(seq "$secs"); do
    curl -s -o /dev/null --interface 127.0.0.2 -u dave:dave123 -w '%{time_total}\n' \
      "http://127.0.0.1:$port/metrics" >> "$out"
    sleep 1
  done
}

# $1: number of source addresses (127.0.1.1 ...); 100 wrong-password requests a second.
attack() {
  local addrs=$1 n=$((secs * 100)) i=0
  while [ $i -lt $n ]; do
    for _ in $(seq 10); do
      src="127.0.1.$(( (i % addrs) + 1 ))"
      curl -s -o /dev/null --interface "$src" -u "dave:wrong$i" "http://127.0.0.1:$port/metrics" &
      i=$((i + 1))
    done
    sleep 0.1
  done
  wait || true
}

report() {
  local name=$1 t0=$2 t1=$3 lat=$4
  local cpu
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$secs" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}')
  local med max
  med=$(sort -n "$lat" | awk '{a[NR]=$1} END{printf "%.1f", a[int((NR+1)/2)]*1000}')
  max=$(sort -n "$lat" | tail -1 | awk '{printf "%.1f", $1*1000}')
  echo "$name: agent CPU ${cpu}% of one core; valid scrape latency median ${med} ms, worst ${max} ms"
}

: > "$work/idle.lat"; t0=$(cpu_ticks); scrape_loop "$work/idle.lat"; t1=$(cpu_ticks)
report "no attack" "$t0" "$t1" "$work/idle.lat"
: > "$work/one.lat"; t0=$(cpu_ticks); attack 1 & apid=$!; scrape_loop "$work/one.lat"; wait "$apid" || true; t1=$(cpu_ticks)
report "100 wrong passwords/s from 1 address" "$t0" "$t1" "$work/one.lat"
: > "$work/many.lat"; t0=$(cpu_ticks); attack 50 & apid=$!; scrape_loop "$work/many.lat"; wait "$apid" || true; t1=$(cpu_ticks)
report "100 wrong passwords/s from 50 addresses" "$t0" "$t1" "$work/many.lat"
curl -s -u dave:dave123 "http://127.0.0.1:$port/metrics" | grep -E '^monitoring_agent_basic_auth' || true
