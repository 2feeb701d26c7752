#!/usr/bin/env bash
# Benchmark: what hostile connections cost the agent (release build, started as root, dropped,
# sandboxed) and node_exporter, and whether a scrape from another address is still answered.
#
# For each server, from 127.0.0.1, in steps:
#   1. 1,000 idle TCP connections and 300 that trickle a request head one byte a second
#      (the load of tests/edge_hostile.rs);
#   2. the same plus 3,000 more idle ones from 127.0.0.3 (beyond the agent's default
#      web.max_connections, 2048: its fair share and eviction at work).
# At each step: the server's RSS (VmRSS), peak RSS (VmHWM), descriptors in use and its soft
# descriptor limit (/proc/PID/limits), how many hostile sockets it still holds (not closed),
# and one scrape from 127.0.0.2 (curl --interface, Prometheus' 10 s timeout): its status and
# time. The agent's header and idle deadlines are set to 600 s, so that nothing is freed by a
# timeout during the run (node_exporter 1.5 has none).
#
# Usage (as root): sudo scripts/bench-hostile.sh [--write]
#   --write: replace the "Hostile connections" section of BENCHMARKS.md with the results.
# Needs: cargo, curl, python3, prometheus-node-exporter (Debian package, 1.5).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
WRITE=${1:-}

die() { echo "bench-hostile: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (the agent starts as root and drops to monitoring-agent)"
id monitoring-agent >/dev/null 2>&1 || die "user monitoring-agent missing (see scripts/install.sh)"
NE=$(command -v prometheus-node-exporter) || die "prometheus-node-exporter missing: apt-get install prometheus-node-exporter"
for t in curl python3; do command -v $t >/dev/null || die "$t missing (apt-get install $t)"; done
# The hostile client holds up to 4,300 sockets.
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= 5000 )) || die "the hard descriptor limit ($(ulimit -Hn)) is below 5000"

echo "== building the release agent" >&2
cargo build --release --quiet
AGENT="$root/target/release/monitoring-agent"

tmp=$(mktemp -d /tmp/bench-hostile.XXXXXX)
chmod 755 "$tmp"
chown monitoring-agent: "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; die "nothing serves on port $1"; }

# The hostile client: opens sockets on command, trickles, and reports how many the server
# still holds (a socket with nothing to read and no error).
cat >"$tmp/hostile.py" <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
idle, trickle = [], []
lock = threading.Lock()
def connect(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s
head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 2000 + b"\r\n\r\n"
def trickler():
    i = 0
    while True:
        with lock:
            for s in trickle:
                try: s.send(head[i:i + 1])
                except OSError: pass
        i += 1
        time.sleep(1)
threading.Thread(target=trickler, daemon=True).start()
def held(socks):
    n = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"": continue
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "idle":
        new = [connect(cmd[2]) for _ in range(int(cmd[1]))]
        with lock: idle.extend(new)
    elif cmd[0] == "trickle":
        new = [connect(cmd[2]) for _ in range(int(cmd[1]))]
        with lock: trickle.extend(new)
    elif cmd[0] == "held":
        with lock: print(held(idle) + held(trickle), len(idle) + len(trickle), flush=True)
        continue
    print("ok", flush=True)
PY

measure() { # label pid port
    local pid=$2 port=$3
    local rss hwm fds soft held total scrape
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    soft=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
    echo held >&"${H[1]}"; read -r held total <&"${H[0]}"
    scrape=$(curl -s -o /dev/null --interface 127.0.0.2 -m 10 \
        -H 'X-Prometheus-Scrape-Timeout-Seconds: 10' \
        -w '%{http_code} in %{time_total}s' "http://127.0.0.1:$port/metrics" || true)
    echo "| $1 | $rss | $hwm | $fds / $soft | $held of $total | $scrape |"
}

run() { # name pid port
    local name=$1 pid=$2 port=$3
    coproc H { python3 "$tmp/hostile.py" "$port"; }
    pids+=($H_PID)
    measure "$name, no hostile socket" "$pid" "$port"
    echo "idle 1000 127.0.0.1" >&"${H[1]}"; read -r _ <&"${H[0]}"
    echo "trickle 300 127.0.0.1" >&"${H[1]}"; read -r _ <&"${H[0]}"
    sleep 3   # a few trickled bytes each
    measure "$name, 1,000 idle + 300 trickling" "$pid" "$port"
    echo "idle 3000 127.0.0.3" >&"${H[1]}"; read -r _ <&"${H[0]}"
    sleep 1
    measure "$name, + 3,000 idle from 127.0.0.3" "$pid" "$port"
    kill "$H_PID" 2>/dev/null || true
    wait "$H_PID" 2>/dev/null || true
}

rows=()
port=$(free_port)
cat >"$tmp/agent.toml" <<EOF
[web]
header_read_timeout_seconds = 600
idle_timeout_seconds = 600
EOF
# systemd's default soft descriptor limit; the agent raises it to the hard one.
(ulimit -Sn 1024; exec "$AGENT" --web.listen-address "127.0.0.1:$port" --config "$tmp/agent.toml" \
    --pid-file "$tmp/agent.pid" --log-file "$tmp/agent.log" --sandbox enforce) >"$tmp/agent.out" 2>&1 &
AG_PID=$!; pids+=($AG_PID); wait_http "$port"
while IFS= read -r l; do rows+=("$l"); done < <(run monitoring-agent "$AG_PID" "$port")
kill "$AG_PID"; wait "$AG_PID" 2>/dev/null || true

port=$(free_port)
(ulimit -Sn 1024; exec "$NE" --web.listen-address="127.0.0.1:$port") >"$tmp/ne.log" 2>&1 &
NE_PID=$!; pids+=($NE_PID); wait_http "$port"
while IFS= read -r l; do rows+=("$l"); done < <(run node_exporter "$NE_PID" "$port")
kill "$NE_PID"; wait "$NE_PID" 2>/dev/null || true

section=$(cat <<EOF
<!-- bench-hostile:begin -->
## Hostile connections

Measured by \`scripts/bench-hostile.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC: \`$(uname -srvm)\`,
$(nproc) CPUs; monitoring-agent release build (started as root with a soft descriptor limit of
1024, dropped, \`--sandbox enforce\`, default collectors and \`web.max_connections\` (2048),
header and idle deadlines 600 s so that no timeout frees anything); node_exporter
$("$NE" --version 2>&1 | head -1 | awk '{print $3}') with its defaults (also started with a soft
limit of 1024; Go raises it). The scrape comes from 127.0.0.2 (\`curl --interface\`, 10 s
timeout) while the hostile sockets are open; "held" counts the hostile sockets the server has
not closed.

| server, load | RSS (MiB) | peak RSS (MiB) | descriptors / soft limit | hostile sockets held | scrape from 127.0.0.2 |
| --- | ---: | ---: | ---: | ---: | --- |
$(printf '%s\n' "${rows[@]}")

Reproduce with \`sudo scripts/bench-hostile.sh --write\`.
<!-- bench-hostile:end -->
EOF
)
echo "$section"
if [[ "$WRITE" == --write ]]; then
    python3 - "$root/BENCHMARKS.md" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pat = re.compile(r"<!-- bench-hostile:begin -->.*?<!-- bench-hostile:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
    echo "wrote $root/BENCHMARKS.md"
fi
