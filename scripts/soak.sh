#!/usr/bin/env bash
# Soak: the real release binary under mixed load, signals and log rotation for DURATION, with
# its memory, descriptors, errors and collector failures recorded and checked against goals.
#
# Usage (as root): scripts/soak.sh [--write] DURATION     DURATION: 60s, 10m, 1h or seconds
#   --write  put the report in RELIABILITY.md and RELIABILITY-rss-fds.png at the top of the
#            repository (the committed report comes from a 10-minute run); without it, the
#            report, the plot, the samples and the logs go to target/soak/ only.
#   BIN=PATH use this agent binary; otherwise `cargo build --release --locked` builds it.
#
# What runs, all on 127.0.0.1, bounded by a hard timeout (DURATION + 150 s), and stopped at
# the end, on a failure or on Ctrl-C (trap):
#   - the agent, started as root with --sandbox enforce (it drops to the monitoring-agent
#     user and sandboxes itself), default collectors, a configuration file, a PID file and a
#     log file;
#   - wrk, 2 threads and 32 connections, cycling through plain text, gzip, OpenMetrics (with
#     and without gzip) and collect[] requests (scripts/soak.lua);
#   - a curl scraper once a second (full scrape, plain text and OpenMetrics with gzip by
#     turns) that checks every collector's node_scrape_collector_success;
#   - SIGHUP every second, the configuration's web.max_requests switching between 24 and 40
#     before each (so that reloads change the limit and wrk's 32 connections meet the designed
#     503 half of the time); SIGUSR1 every 13 s, SIGUSR2 every 7 s; log rotation every 30 s
#     the way contrib/logrotate does it (copytruncate: copy, then truncate the file in place);
#   - a sampler: VmRSS (/proc/PID/status) and the descriptor count (/proc/PID/fd; sockets
#     among them) every second.
# Before the load: one lone scrape (the baseline: the collectors that succeed alone), then 5 s
# idle. After it: 5 s idle, a final scrape, `monitoring-agent --reload`, SIGTERM.
#
# Goals (a 10-minute run is the reference; CI runs 60 s with the same goals):
#   1. no unexpected error: every response 2xx or the designed 503; no socket error or timeout;
#      no reload failure, no log write error, no NUL byte in the log or its rotated copies;
#   2. no collector failure beyond the baseline (a collector that succeeded alone reported
#      success 0, in the curl scraper's or in wrk's uncompressed responses);
#   3. RSS growth under 5% after warm-up: the median VmRSS of the last 10 s of the load against
#      the median of the 10 s from the warm-up point (20% of the load, at least 30 s, at most
#      half of it);
#   4. descriptors flat: idle after the load, the agent holds no more descriptors than idle
#      before it (all connections closed: whatever scrapes, reloads and rotations opened was
#      closed again), and under load the floor (the minimum over 10 s: the kept descriptors
#      and the 32 connections, without the transient ones) of the last 10 s is no higher than
#      the floor of the 10 s at warm-up;
#   5. the agent alive at the end: it answers the final scrape and `--reload`, and exits 0 on
#      SIGTERM.
# Prints `soak: N passed, M failed` (the goals), names every goal missed, and exits 1 when one
# is. Needs: cargo (unless BIN), curl, wrk, gnuplot (gnuplot-nox), iproute2 (ss).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# After the arguments are read, a run that cannot go on also prints the summary line (every goal
# unverified, so failed), for scripts/test.sh's closing total.
GOALS=5
SUMMARY_ON_DIE=0
die() {
  echo "soak: $*" >&2
  (( SUMMARY_ON_DIE )) && echo "soak: 0 passed, $GOALS failed"
  exit 2
}
usage() { die "usage: scripts/soak.sh [--write] DURATION (60s, 10m, 1h or seconds)"; }

WRITE=0
DURATION_ARG=
for a in "$@"; do
  case "$a" in
    --write) WRITE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) [[ -z "$DURATION_ARG" ]] || usage; DURATION_ARG=$a ;;
  esac
done
[[ -n "$DURATION_ARG" ]] || usage
case "$DURATION_ARG" in
  *[0-9]s) D=${DURATION_ARG%s} ;;
  *[0-9]m) D=$(( ${DURATION_ARG%m} * 60 )) ;;
  *[0-9]h) D=$(( ${DURATION_ARG%h} * 3600 )) ;;
  *) D=$DURATION_ARG ;;
esac
if ! [[ "$D" =~ ^[0-9]+$ ]] || (( D < 30 )); then die "DURATION must be at least 30 s (got '$DURATION_ARG')"; fi
SUMMARY_ON_DIE=1

[[ $(id -u) -eq 0 ]] || die "run as root (the agent starts as root and drops to monitoring-agent)"
id monitoring-agent >/dev/null 2>&1 || die "user monitoring-agent missing (scripts/test.sh or scripts/install.sh creates it)"
for t in curl wrk gnuplot ss; do
  command -v "$t" >/dev/null || die "$t missing (apt-get install curl wrk gnuplot-nox iproute2)"
done

if [[ -z "${BIN:-}" ]]; then
  echo "soak: building the release binary (cargo build --release --locked)" >&2
  cargo build --release --locked --quiet --bin monitoring-agent
  # cargo's target directory (CARGO_TARGET_DIR or the configuration may move it).
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [[ -n "$target_dir" ]] || die "cannot find cargo's target directory"
  BIN="$target_dir/release/monitoring-agent"
fi
[[ -x "$BIN" ]] || die "BIN=$BIN is not an executable"

out="$root/target/soak"
mkdir -p "$out"
rm -f "$out"/*
# The agent's files: its user must be able to remove the PID file at exit.
run=$(mktemp -d /tmp/soak.XXXXXX)
chmod 755 "$run"
mkdir "$run/etc"
chown monitoring-agent: "$run"

# ---- clean-up: everything started here is stopped, on success, failure, Ctrl-C or timeout.
pids=()
AGENT_PID=
# A background job: the loop first (so that it does not report its child's death as an error),
# then the child it was waiting for (curl, sleep), by their process ids.
stop_job() {
  local kids
  kids=$(pgrep -P "$1" || true)
  kill -TERM "$1" 2>/dev/null || true
  [[ -z "$kids" ]] || kill -TERM $kids 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_job "$p"; done
  if [[ -n "$AGENT_PID" ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AGENT_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; echo "soak: 0 passed, $GOALS failed"; exit 130' INT
trap 'echo "soak: hard timeout or SIGTERM: stopping everything" >&2; echo "soak: 0 passed, $GOALS failed"; exit 124' TERM

now() { echo "${EPOCHREALTIME}"; }
T0=$(now)
elapsed() { awk -v a="$T0" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }
# A background job's stderr (the shell's "Terminated" when it is stopped) goes to a file.
bg() { "$@" 2>>"$out/jobs.stderr" & pids+=($!); }

# The hard timeout: the whole run, idle phases and shutdown included.
( sleep $(( D + 150 )); kill -TERM $$ ) 2>/dev/null &
pids+=($!)

port=
for _ in $(seq 50); do
  p=$(( 20000 + RANDOM % 40000 ))
  if ! ss -Htln "sport = :$p" | grep -q .; then port=$p; break; fi
done
[[ -n "$port" ]] || die "no free port found"
url="http://127.0.0.1:$port/metrics"

# The configuration: web.max_requests is rewritten in place before each SIGHUP (same length,
# same inode: Landlock follows inodes, and a reader never sees a half-written file).
conf="$run/etc/config.toml"
printf '[web]\nmax_requests = 40\n' >"$conf"
set_max_requests() { printf '%s' "$1" | dd of="$conf" bs=1 seek=21 conv=notrunc status=none; }

echo "soak: agent $BIN on 127.0.0.1:$port for ${D}s; files in $run, report in $out" >&2
"$BIN" --web.listen-address "127.0.0.1:$port" --config "$conf" --sandbox enforce \
  --pid-file "$run/agent.pid" --log-file "$run/agent.log" >"$out/agent.stderr" 2>&1 &
AGENT_PID=$!
up=0
for _ in $(seq 300); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/"; then up=1; break; fi
  kill -0 "$AGENT_PID" 2>/dev/null || break
  sleep 0.1
done
(( up )) || { cat "$out/agent.stderr" >&2; die "the agent did not start serving"; }

# ---- the sampler: elapsed seconds, VmRSS (KiB), descriptors.
echo "elapsed_s,rss_kib,fds,sockets" >"$out/samples.csv"
# The background loops run without errexit: a descriptor closed while find reads the directory
# (it does under load) must not end the sampler.
sampler() {
  set +e
  local rss fds
  while kill -0 "$AGENT_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status" 2>/dev/null) || break
    fds=$(find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null |
      awk '{ n++ } /^socket:/ { s++ } END { printf "%d,%d", n, s }')
    echo "$(elapsed),$rss,$fds" >>"$out/samples.csv"
    sleep 1
  done
}
bg sampler

# ---- the lone-scrape baseline: the collectors that succeed with nothing else running.
curl -sf -m 30 -o "$out/baseline.prom" "$url" || die "the baseline scrape failed"
baseline=$(awk '/^node_scrape_collector_success\{/ && $2 + 0 == 1 {
  match($0, /collector="[^"]+"/); print substr($0, RSTART + 11, RLENGTH - 12) }' "$out/baseline.prom" | sort)
failed_alone=$(awk '/^node_scrape_collector_success\{/ && $2 + 0 == 0 {
  match($0, /collector="[^"]+"/); print substr($0, RSTART + 11, RLENGTH - 12) }' "$out/baseline.prom" | sort)
[[ -n "$baseline" ]] || die "no collector succeeded in the baseline scrape"
echo "$baseline" >"$out/baseline-collectors.txt"
echo "soak: baseline: $(wc -l <<<"$baseline") collectors succeed alone; failing alone: $(paste -sd" " <<<"$failed_alone")" >&2
sleep 1
IDLE_BEFORE_START=$(elapsed)
sleep 5
LOAD_START=$(elapsed)

# ---- the load. The loops below end when $stop exists.
stop="$run/stop"
# The curl scraper: one line per second, `elapsed status failures-beyond-baseline names`; on a
# 503 it tries again 0.2 s later (at most 4 times) and logs each 503.
scraper() {
  set +e
  local i=0 body code bad names args
  while [[ ! -e "$stop" ]]; do
    i=$((i + 1))
    if (( i % 2 )); then args=(); else args=(--compressed -H 'Accept: application/openmetrics-text; version=1.0.0'); fi
    for _ in 1 2 3 4 5; do
      body=$(mktemp "$out/scrape.XXXXXX")
      code=$(curl -s -m 15 "${args[@]}" -o "$body" -w '%{http_code}' "$url" || true)
      [[ "$code" == 503 ]] || break
      echo "$(elapsed) 503 - -"
      rm -f "$body"
      sleep 0.2
    done
    if [[ "$code" == 200 ]]; then
      names=$(awk 'NR == FNR { ok[$1] = 1; next }
        /^node_scrape_collector_success\{/ { match($0, /collector="[^"]+"/); c = substr($0, RSTART + 11, RLENGTH - 12); seen[c] = 1
          if ($2 + 0 != 1 && (c in ok)) printf "%s,", c }
        END { for (c in ok) if (!(c in seen)) printf "%s(missing),", c }' "$out/baseline-collectors.txt" "$body")
      bad=$(tr -cd , <<<"$names" | wc -c)
      echo "$(elapsed) 200 $bad ${names:--}"
    elif [[ "$code" != 503 ]]; then
      echo "$(elapsed) ${code:-000} - -"
    fi
    rm -f "$body"
    sleep 1
  done
}
bg scraper >"$out/scraper.log"
SCRAPER_PID=$!

mapfile -t baseline_list <<<"$baseline"
wrk -t 2 -c 32 -d "${D}s" --timeout 10s -s "$root/scripts/soak.lua" "$url" -- "${baseline_list[@]}" \
  >"$out/wrk.out" 2>&1 &
WRK_PID=$!
pids+=("$WRK_PID")

# Signals: SIGHUP every second (max_requests 24 and 40 by turns), SIGUSR1 every 13 s, SIGUSR2
# every 7 s. One line per signal sent.
signaller() {
  set +e
  local i=0
  while [[ ! -e "$stop" ]] && kill -0 "$AGENT_PID" 2>/dev/null; do
    i=$((i + 1))
    if (( i % 2 )); then set_max_requests 24; else set_max_requests 40; fi
    kill -HUP "$AGENT_PID" && echo "HUP"
    (( i % 13 )) || { kill -USR1 "$AGENT_PID" && echo "USR1"; }
    (( i % 7 )) || { kill -USR2 "$AGENT_PID" && echo "USR2"; }
    sleep 1
  done
}
bg signaller >"$out/signals.log"
SIGNALLER_PID=$!

# Rotation as logrotate's copytruncate: copy the file, then truncate it in place.
rotator() {
  set +e
  local n=0
  while :; do
    for _ in $(seq 30); do [[ -e "$stop" ]] && return; sleep 1; done
    n=$((n + 1))
    cp "$run/agent.log" "$out/agent.log.$n" && truncate -s 0 "$run/agent.log" && echo "$(elapsed) rotation $n"
  done
}
bg rotator >"$out/rotations.log"
ROTATOR_PID=$!

wait "$WRK_PID" || echo "soak: wrk exited with status $?" >&2
LOAD_END=$(elapsed)
# Stop the load generators at the end of an iteration (a rotation, a scrape is never cut in
# two); the sampler runs on through the idle phase.
touch "$stop"
for p in "$SCRAPER_PID" "$SIGNALLER_PID" "$ROTATOR_PID"; do
  wait "$p" 2>/dev/null || true
done
sleep 5
IDLE_AFTER_START=$(elapsed)
sleep 5
IDLE_AFTER_END=$(elapsed)

# ---- the end: alive? final scrape, --reload, SIGTERM.
final_code=$(curl -s -m 15 -o "$out/final.prom" -w '%{http_code}' "$url" || echo 000)
reload_out=$("$BIN" --reload --pid-file "$run/agent.pid" 2>&1) && reload_rc=0 || reload_rc=$?
echo "$reload_out" >"$out/reload.out"
alive=0
kill -0 "$AGENT_PID" 2>/dev/null && [[ "$final_code" == 200 ]] && (( reload_rc == 0 )) && alive=1
sleep 1.5   # two more samples
kill -TERM "$AGENT_PID" 2>/dev/null || true
agent_rc=0
wait "$AGENT_PID" || agent_rc=$?
[[ "$alive" == 1 && "$agent_rc" == 0 ]] || alive=0
AGENT_PID=
cp "$run/agent.log" "$out/agent.log.final" 2>/dev/null || true

# ---- figures.
wrkv() { awk -v k="$1" '$1 == "wrk-soak" && $2 == k { $1 = ""; $2 = ""; sub(/^ +/, ""); print; found = 1 }
  END { if (!found) print "?" }' "$out/wrk.out"; }
requests=$(wrkv requests)
s2xx=$(wrkv status_2xx); s503=$(wrkv status_503); sother=$(wrkv status_other)
sock=$(wrkv socket_errors); sockd=$(wrkv socket_errors_detail)
[[ "$requests" =~ ^[0-9]+$ ]] || { cat "$out/wrk.out" >&2; die "wrk gave no summary"; }

scrapes=$(awk '$2 == 200' "$out/scraper.log" | wc -l)
scraper_503=$(awk '$2 == 503' "$out/scraper.log" | wc -l)
scraper_err=$(awk '$2 != 200 && $2 != 503' "$out/scraper.log" | wc -l)
scraper_bad=$(awk '$2 == 200 { s += $3 } END { print s + 0 }' "$out/scraper.log")
wrk_bad=$(wrkv collector_failures)
bad_names=$( { awk '$2 == 200 && $3 > 0 { print $4 }' "$out/scraper.log" | tr , '\n'; wrkv collector_failure_names | tr ' ' '\n'; } |
  { grep -v '^-\?$' || true; } | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')

metric() { awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? "?" : v + 0) }' "$out/final.prom"; }
reload_failures=$(metric monitoring_agent_config_reload_failures_total)
log_write_errors=$(metric 'monitoring_agent_log_write_errors_total{destination="file"}')
hups=$(grep -c '^HUP' "$out/signals.log" || true)
usr1=$(grep -c '^USR1' "$out/signals.log" || true)
usr2=$(grep -c '^USR2' "$out/signals.log" || true)
rotations=$(wc -l <"$out/rotations.log")
logs=("$out"/agent.log.*)
nul_bytes=$(cat "${logs[@]}" | tr -cd '\000' | wc -c)
# Reloads the agent did: the generation --reload reports (its own reload included).
reloads=$(sed -n 's/^monitoring-agent: reload \([0-9]*\):.*/\1/p' "$out/reload.out")
reloads=${reloads:-?}
# Each reload's line, by its number, in the rotated copies and the last file: those written
# between a copy and its truncation are lost (copytruncate's known window).
reload_lines=$(cat "${logs[@]}" | grep -o 'SIGHUP: configuration reloaded (reload [0-9]*)' | sort -u | wc -l)
usr2_lines=$(cat "${logs[@]}" | grep -c 'SIGUSR2: ' || true)

[[ "$reload_failures" =~ ^[0-9]+$ ]] || reload_failures=1
[[ "$log_write_errors" =~ ^[0-9]+$ ]] || log_write_errors=0
unexpected=$(( sother + sock + scraper_err + reload_failures + log_write_errors + nul_bytes ))
collector_failures=$(( scraper_bad + ${wrk_bad//[!0-9]/0} ))

# RSS and descriptors from the samples (elapsed_s, rss_kib, fds).
WARM=$(awk -v s="$LOAD_START" -v e="$LOAD_END" 'BEGIN { l = e - s; w = l * 0.2; if (w < 30) w = 30; if (w > l / 2) w = l / 2; printf "%.1f", s + w }')
stats=$(awk -F, -v s="$LOAD_START" -v w="$WARM" -v e="$LOAD_END" -v ib="$IDLE_BEFORE_START" -v ia="$IDLE_AFTER_START" -v iae="$IDLE_AFTER_END" '
  function median(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : -1 }
  NR == 1 { next }
  { t = $1; r = $2; f = $3 }
  t >= w && t < w + 10 { wf = (wf == "" || f < wf) ? f : wf }
  t >= e - 10 && t < e { ef = (ef == "" || f < ef) ? f : ef }
  t >= ib && t < s { ib_fd = (ib_fd == "" || f > ib_fd) ? f : ib_fd; ib_rss = r }
  t >= w && t < w + 10 { wr[++nw] = r; if (first_w == "") first_w = r }
  t >= e - 10 && t < e { er[++ne] = r; last_e = r }
  t >= s && t < e { if (lmin == "" || f < lmin) lmin = f; if (f > lmax) lmax = f
    if (t < w) { if (f > pre_max) pre_max = f } else { if (f > post_max) post_max = f }
    if (r > rss_peak) rss_peak = r
    if (t >= w) { if (pw_min == "" || r < pw_min) pw_min = r; if (r > pw_max) pw_max = r } }
  t >= ia && t < iae { ia_fd = (ia_fd == "" || f > ia_fd) ? f : ia_fd; ia_rss = r }
  t >= ib && t < s { nib++ }
  t >= ia && t < iae { nia++ }
  END { ok = nw >= 5 && ne >= 5 && nib >= 2 && nia >= 2
    printf "%d %d %d %d %s %s %s %s %s %s %s %s %s %d %d %d %d %d %d %d %d %d\n", median(wr, nw), median(er, ne), first_w, last_e,
          lmin, lmax, pre_max, post_max, ib_fd, ia_fd, rss_peak, wf, ef, ok, nw, ne, nib, nia, ib_rss, ia_rss, pw_min, pw_max }' "$out/samples.csv")
read -r rss_warm rss_end rss_warm1 rss_end1 fd_min fd_max fd_pre_max fd_post_max fd_idle_before fd_idle_after rss_peak fd_floor_warm fd_floor_end samples_ok n_warm n_end n_idle_before n_idle_after rss_idle_before rss_idle_after rss_post_min rss_post_max <<<"$stats"
# Too few samples in a window (a sampler that stopped) fails the RSS and descriptor goals.
samples_note="samples in the windows: warm-up $n_warm, end $n_end, idle before $n_idle_before, after $n_idle_after"
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%+.2f", (a > 0 ? (b - a) * 100 / a : 999) }')
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- goals.
passed=0; failed=0; missed=()
goal() { # name ok
  if [[ "$2" == 1 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); missed+=("$1"); fi
}
ok() { if eval "$1"; then echo 1; else echo 0; fi; }
g_err=$(ok '(( unexpected == 0 ))')
g_col=$(ok '(( collector_failures == 0 ))')
g_rss=$(ok '(( samples_ok )) && [[ "$growth" =~ ^[-+][0-9]+\.[0-9]+$ ]] && awk -v g="$growth" "BEGIN { exit !(g + 0 < 5) }"')
g_fd=$(ok '(( samples_ok && fd_idle_after <= fd_idle_before && fd_floor_end <= fd_floor_warm ))')
goal "unexpected errors: $unexpected (want 0)" "$g_err"
goal "collector failures beyond the baseline: $collector_failures (want 0)${bad_names:+: $bad_names}" "$g_col"
goal "RSS growth after warm-up: ${growth}% (want under 5%; $samples_note)" "$g_rss"
goal "descriptors: idle $fd_idle_before before and $fd_idle_after after the load; under load, floor $fd_floor_warm at warm-up and $fd_floor_end at the end (want flat: after <= before, end <= warm-up; $samples_note)" "$g_fd"
goal "agent alive at the end: final scrape $final_code, --reload exit $reload_rc, exit status on SIGTERM $agent_rc (want 200, 0, 0)" "$alive"
verdict() { [[ "$1" == 1 ]] && echo met || echo "**missed**"; }

# ---- the plot.
png="$out/RELIABILITY-rss-fds.png"
gnuplot <<EOF
set terminal pngcairo size 960,480 font ",10"
set output "$png"
set datafile separator ","
set key right center box opaque
set xlabel "seconds since start"
set ylabel "RSS (MiB)"
set y2label "open descriptors"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
set arrow from $LOAD_START, graph 0 to $LOAD_START, graph 1 nohead dt 2 lc rgb "gray40"
set arrow from $WARM, graph 0 to $WARM, graph 1 nohead dt 2 lc rgb "dark-orange"
set arrow from $LOAD_END, graph 0 to $LOAD_END, graph 1 nohead dt 2 lc rgb "gray40"
set label "load" at $LOAD_START, graph 0.3 offset 0.5,0
set label "warm-up" at $WARM, graph 0.3 offset 0.5,0 tc rgb "dark-orange"
set label "idle" at $LOAD_END, graph 0.3 offset 0.5,0
set title "monitoring-agent soak, ${D} s of load: RSS and descriptors"
plot "$out/samples.csv" every ::1 using 1:(\$2/1024) axes x1y1 with lines lw 2 lc rgb "#1f77b4" title "RSS (MiB)", \
     "" every ::1 using 1:3 axes x1y2 with steps lw 1 lc rgb "#d62728" title "descriptors"
EOF

# ---- the report.
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
if git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then dirty=" (with uncommitted changes)"; fi
cat >"$out/RELIABILITY.md" <<EOF
# Reliability

A soak of the real release binary, written by \`scripts/soak.sh\` (this run:
\`scripts/soak.sh ${DURATION_ARG}\`). CI runs a 60-second version of it (\`scripts/test.sh\`);
this file reports the last run made with \`--write\`.

**Run:** $(date -u '+%Y-%m-%d %H:%M') UTC, commit \`$commit\`$dirty, \`$(uname -srm)\`, $(nproc) CPUs
shared with other work (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end).

**Setup:** the agent started as root with \`--sandbox enforce\` (it drops to \`monitoring-agent\`,
applies Landlock and seccomp), on 127.0.0.1, default collectors, a configuration file, PID
and log files. Before the load, one lone scrape gives the baseline: the $(wc -l <<<"$baseline") collectors
that succeed alone (failing alone, no such hardware here: $( [[ -n "$failed_alone" ]] && echo "$failed_alone" | paste -sd, | sed 's/,/, /g' || echo none)).

**Load, for ${D} s:**
- wrk, 2 threads, 32 connections, cycling through plain text, gzip, OpenMetrics, OpenMetrics
  with gzip, and \`collect[]\` filters (\`scripts/soak.lua\`); after a 503 a thread backs off 50 ms;
- a curl scraper once a second (full scrapes, plain and OpenMetrics with gzip by turns)
  checking every collector's \`node_scrape_collector_success\`;
- SIGHUP every second, the configuration's \`web.max_requests\` switching between 24 and 40
  before each (so wrk's 32 connections meet the designed 503 half of the time); SIGUSR1 every
  13 s, SIGUSR2 every 7 s;
- log rotation every 30 s as \`contrib/logrotate\` does it (copytruncate: copy, then truncate);
- VmRSS and the descriptor count sampled every second.

## Figures

| figure | value |
| --- | ---: |
| load duration | ${D} s |
| requests (wrk) | $requests |
| 2xx responses (wrk) | $s2xx (gzip $(wrkv gzip), OpenMetrics $(wrkv openmetrics)) |
| designed 503 (over \`web.max_requests\`; wrk + curl scraper) | $s503 + $scraper_503 |
| wrk latency p50 / p99 / max | $(wrkv latency_p50_ms) / $(wrkv latency_p99_ms) / $(wrkv latency_max_ms) ms |
| curl scrapes checked | $scrapes |
| wrk bodies checked for collector failures (uncompressed 2xx) | $(wrkv bodies_checked) |
| **unexpected errors** | **$unexpected** |
| &nbsp;&nbsp;other non-2xx (wrk; curl scraper) | $sother$( [[ "$(wrkv other_codes)" != - ]] && echo " (codes:$(wrkv other_codes))" ); $scraper_err |
| &nbsp;&nbsp;socket errors and timeouts (wrk) | $sock ($sockd) |
| &nbsp;&nbsp;reload failures (\`monitoring_agent_config_reload_failures_total\`) | $reload_failures |
| &nbsp;&nbsp;log write errors (\`monitoring_agent_log_write_errors_total\`) | $log_write_errors |
| &nbsp;&nbsp;NUL bytes in the log and its rotated copies | $nul_bytes |
| **collector failures beyond the baseline** (curl scraper + wrk) | **$collector_failures**$( [[ -n "$bad_names" ]] && echo " ($bad_names)") |
| RSS at warm-up (median of 10 s from $(awk -v w="$WARM" -v s="$LOAD_START" 'BEGIN { printf "%.0f", w - s }') s into the load; first sample) | $(mib "$rss_warm") MiB ($(mib "$rss_warm1") MiB) |
| RSS at the end of the load (median of the last 10 s; last sample) | $(mib "$rss_end") MiB ($(mib "$rss_end1") MiB) |
| **RSS growth after warm-up** | **${growth}%** |
| RSS peak under load; min / max after warm-up (the second-to-second band) | $(mib "$rss_peak") MiB; $(mib "$rss_post_min") / $(mib "$rss_post_max") MiB |
| RSS idle, before / after the load (last sample of each idle phase) | $(mib "$rss_idle_before") / $(mib "$rss_idle_after") MiB |
| descriptors under load, min / max | $fd_min / $fd_max |
| descriptors under load, max before / after warm-up | $fd_pre_max / $fd_post_max |
| descriptors under load, floor (minimum) of the 10 s at warm-up / of the last 10 s | $fd_floor_warm / $fd_floor_end |
| descriptors idle, before / after the load | $fd_idle_before / $fd_idle_after |
| SIGHUP sent / reloads done (the generation \`--reload\` reported at the end, its own included) | $hups / $reloads |
| reloads found in the logs, by number (copytruncate loses what is written between copy and truncate) | $reload_lines |
| SIGUSR1 / SIGUSR2 sent (SIGUSR2 summary lines in the logs) | $usr1 / $usr2 ($usr2_lines) |
| log rotations done | $rotations |
| agent alive at the end (final scrape; \`--reload\`; exit status on SIGTERM) | $( (( alive )) && echo yes || echo **no** ) ($final_code; exit $reload_rc; exit $agent_rc) |

## Goals

| goal | result |
| --- | --- |
| zero unexpected errors | $(verdict "$g_err") |
| zero collector failures beyond the lone-scrape baseline | $(verdict "$g_col") |
| RSS growth under 5% after warm-up | $(verdict "$g_rss") |
| descriptors flat (idle after the load <= idle before it; under load, the floor at the end <= the floor at warm-up) | $(verdict "$g_fd") |
| agent alive at the end | $(verdict "$alive") |

![RSS and descriptors over time](RELIABILITY-rss-fds.png)

Reproduce: \`sudo scripts/soak.sh 10m\` (report in \`target/soak/\`; \`--write\` replaces this
file and the plot).
EOF

if (( WRITE )); then
  cp "$out/RELIABILITY.md" "$root/RELIABILITY.md"
  cp "$png" "$root/RELIABILITY-rss-fds.png"
  echo "soak: wrote $root/RELIABILITY.md and $root/RELIABILITY-rss-fds.png" >&2
fi
echo "soak: report $out/RELIABILITY.md, plot $png, samples $out/samples.csv" >&2
for m in "${missed[@]}"; do echo "soak: goal missed: $m" >&2; done
echo "soak: $passed passed, $failed failed"
(( failed == 0 ))
