#!/usr/bin/env bash
# The checks of scripts/vm-test.sh: one PASS/FAIL line per check, then
# `vm-guest-check: N passed, M failed`; exit 1 when a check fails. Two modes, both as root:
#
#   --systemd     on a disposable Debian with systemd as PID 1 (the VM that vm-test.sh boots):
#                 runs scripts/install.sh on the fresh system, then checks the unit, the scrape,
#                 --check-sandbox, every thread's credentials, a forbidden syscall (SIGSYS), the
#                 journal (each line once, no warning on start/stop), that a refusal does not
#                 restart-loop, and the unit's exposure. It changes the system (installs the
#                 agent, starts and kills it): never run it on a machine you care about.
#   --no-systemd  on any host, e.g. this project's Linux 6.18 (scripts/vm-test.sh --host): starts
#                 the binary as root in the foreground with its PID file, log file and config in
#                 a temporary directory, on a free loopback port, and runs the checks that make
#                 sense without systemd; prints the others as N/A with the reason.
#
# Options: --bin PATH (the agent; default target/release/monitoring-agent of --src),
#          --src DIR (the repository tree; default this script's),
#          --results DIR (writes `counts` there for the caller),
#          --self-test-best-effort (systemd mode: a drop-in adds `--sandbox best-effort` to the
#          unit; proves the harness can pass on a kernel where enforce mode refuses).
# Checks are numbered as in the harness's brief: [1] install, [2] unit active, [3] scrape,
# [4] --check-sandbox, [5] threads, [6] SIGSYS, [7] journal lines once, [8] no warnings,
# [9] facts (kernel, Landlock ABI, systemd), [10] no restart loop, [11] unit exposure,
# [12] the filesystem collector's host view under the unit vs outside it, [13] systemctl
# reload's exit status (good and broken configuration).
set -eEuo pipefail

mode=""
BIN=""
SRC=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=""
self_test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --systemd) mode=systemd ;;
    --no-systemd) mode=nosystemd ;;
    --bin) BIN=$2; shift ;;
    --src) SRC=$2; shift ;;
    --results) RESULTS=$2; shift ;;
    --self-test-best-effort) self_test=1 ;;
    *) echo "vm-guest-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$mode" ]; then
  echo "vm-guest-check: say --systemd (a disposable VM: it installs and kills the agent) or --no-systemd" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "vm-guest-check: run as root (the agent starts as root and drops its privileges)" >&2
  exit 1
fi
BIN=${BIN:-$SRC/target/release/monitoring-agent}
[ -x "$BIN" ] || { echo "vm-guest-check: no agent binary at $BIN (--bin)" >&2; exit 1; }
BIN=$(readlink -f "$BIN")

USER_NAME=monitoring-agent
UNIT=monitoring-agent.service
npass=0
nfail=0
pass() { printf 'PASS  %-5s %s\n' "$1" "$2"; npass=$((npass + 1)); }
fail() { printf 'FAIL  %-5s %s\n' "$1" "$2"; nfail=$((nfail + 1)); }
na() { printf 'N/A   %-5s %s\n' "$1" "$2"; }
info() { printf 'INFO  %-5s %s\n' "$1" "$2"; }
# Indents a command's output under the check it belongs to.
show() { sed 's/^/      | /'; }
section() { printf -- '--- %s\n' "$*"; }

summary() {
  echo "vm-guest-check: $npass passed, $nfail failed"
  if [ -n "$RESULTS" ]; then
    printf 'passed=%d\nfailed=%d\n' "$npass" "$nfail" > "$RESULTS/counts"
  fi
}
finished=0
finish() {
  finished=1
  summary
  [ "$nfail" -eq 0 ]
  exit
}
# A command that fails outside a check is a harness bug: say where, count it, and still write
# the counts, so that the run never ends without a verdict.
T=""
agent_pid=""
trap 'err_line=$LINENO; err_cmd=$BASH_COMMAND' ERR
# shellcheck disable=SC2317 # run by the EXIT trap
on_exit() {
  local rc=$?
  if [ -n "$agent_pid" ]; then kill -KILL "$agent_pid" 2>/dev/null || true; fi
  if [ -n "$T" ]; then rm -rf "$T"; fi
  if [ "$finished" = 0 ]; then
    fail "[harness]" "vm-guest-check.sh stopped early (status $rc) at line ${err_line:-?}: ${err_cmd:-?}"
    summary
    exit 1
  fi
}
trap on_exit EXIT

# [5] Every thread of PID runs as the agent's user with only CAP_NET_BIND_SERVICE, no_new_privs
# and a seccomp filter. Prints one line per deviation.
check_threads() {
  local pid=$1 uid bad=0 n=0 t f
  uid=$(id -u "$USER_NAME")
  for t in /proc/"$pid"/task/*; do
    f=$(cat "$t/status" 2>/dev/null) || continue
    n=$((n + 1))
    local u ce nnp sc
    u=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' <<<"$f")
    ce=$(awk '/^CapEff:/ { print $2 }' <<<"$f")
    nnp=$(awk '/^NoNewPrivs:/ { print $2 }' <<<"$f")
    sc=$(awk '/^Seccomp:/ { print $2 }' <<<"$f")
    if [ "$u" != "$uid $uid $uid $uid" ] || [ "$ce" != 0000000000000400 ] || [ "$nnp" != 1 ] || [ "$sc" != 2 ]; then
      echo "thread ${t##*/}: Uid $u CapEff $ce NoNewPrivs $nnp Seccomp $sc"
      bad=1
    fi
  done
  if [ "$n" -eq 0 ]; then
    echo "no thread found in /proc/$pid/task"
    return 1
  fi
  echo "$n threads, every one: Uid $uid (x4) CapEff 0000000000000400 NoNewPrivs 1 Seccomp 2" >&2
  [ "$bad" -eq 0 ]
}

# [6] Injects fork (syscall 57 on x86_64) into PID with gdb. The agent must die of SIGSYS; the
# caller checks how it ended. gdb's own exit status does not matter (it may complain that the
# process vanished under it); no core file is left behind.
inject_fork() {
  local pid=$1 out=$2
  (
    ulimit -c 0
    cd /tmp
    timeout 180 gdb -p "$pid" -batch -ex 'call (long)syscall(57)' -ex 'kill' >"$out" 2>&1
  ) || true
}

# The kernel's record of the kill (audit type 1326, SECCOMP), when dmesg can be read.
seccomp_audit() {
  dmesg 2>/dev/null | grep -E 'audit.*(type=1326|SECCOMP).*pid=('"$1"')\b' | tail -n 2 || true
}

free_port() {
  local p hex
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    hex=$(printf '%04X' "$p")
    if ! awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -qx "$hex"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# [9] Facts about the machine under test.
facts() {
  info "[9]" "kernel: $(uname -r)"
  info "[9]" "LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null || echo 'unknown (securityfs not mounted)')"
  if command -v systemd >/dev/null 2>&1 || [ -x /lib/systemd/systemd ]; then
    info "[9]" "systemd: $( (systemctl --version 2>/dev/null || true) | head -1)$([ "$(cat /proc/1/comm)" = systemd ] || echo " (installed; PID 1 is $(cat /proc/1/comm))")"
  fi
  info "[9]" "agent: $("$BIN" --version 2>/dev/null || echo "$BIN")"
}

# =============================================================================================
# Without systemd: the binary in the foreground, everything in a temporary directory.
# =============================================================================================
if [ "$mode" = nosystemd ]; then
  facts
  na "[1]" "install.sh: it installs system-wide and starts the unit; proved in the VM (scripts/vm-test.sh) and with ROOT= by cargo test --test install_scripts"
  na "[2]" "unit active: systemd is not PID 1 here"
  na "[7]" "journal lines once: no journal here; the agent's log file is checked instead ([8])"
  na "[10]" "no restart loop on refusal: a property of the unit under systemd (VM only)"
  na "[11]" "unit exposure: a property of the unit file (VM, and tests/systemd_units.rs)"
  if ! id -u "$USER_NAME" >/dev/null 2>&1; then
    echo "vm-guest-check: creating system user $USER_NAME (as scripts/run.sh does)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$USER_NAME"
  fi
  T=$(mktemp -d /tmp/monitoring-agent-check.XXXXXX)
  chmod 0755 "$T"
  # The PID file's directory belongs to the agent's user (chrony's way), so that the agent can
  # remove its PID file at exit; the log file is opened by root before the drop.
  install -d -o "$USER_NAME" -g "$USER_NAME" -m 0755 "$T/run"
  : > "$T/config.toml"
  PORT=$(free_port) || { fail "[3]" "no free TCP port found"; finish; }
  ARGS=(-c "$T/config.toml" --web.listen-address "127.0.0.1:$PORT" --pid-file "$T/run/monitoring-agent.pid" --log-file "$T/agent.log")
  info "    " "agent: $BIN ${ARGS[*]}"

  # Starts the agent in the background; waits until it serves (0) or dies (1).
  start_agent() {
    "$BIN" "${ARGS[@]}" >>"$T/stderr.log" 2>&1 &
    agent_pid=$!
    for _ in $(seq 1 100); do
      if ! kill -0 "$agent_pid" 2>/dev/null; then
        return 1
      fi
      if [ -s "$T/run/monitoring-agent.pid" ] && curl -fsS -o /dev/null "http://127.0.0.1:$PORT/metrics" 2>/dev/null; then
        return 0
      fi
      sleep 0.2
    done
    return 1
  }

  if ! start_agent; then
    fail "[3]" "the agent did not start serving on 127.0.0.1:$PORT"
    show < "$T/stderr.log"
    fail "[4]" "--check-sandbox: no running agent"
    fail "[5]" "threads: no running agent"
    fail "[6]" "SIGSYS: no running agent"
    fail "[8]" "log file without warnings: the agent did not start"
    finish
  fi
  info "[9]" "$(grep -m1 -o 'sandbox (.*' "$T/agent.log" || echo 'no "sandbox (...)" line in the log file')"

  # [3]
  code=$(curl -sS -o "$T/metrics" -w '%{http_code}' "http://127.0.0.1:$PORT/metrics" || true)
  nodes=$(grep -c '^node_' "$T/metrics" || true)
  if [ "$code" = 200 ] && [ "$nodes" -gt 0 ]; then
    pass "[3]" "GET /metrics: 200, $nodes node_ samples"
  else
    fail "[3]" "GET /metrics: HTTP $code, $nodes node_ samples"
  fi

  # [4]
  set +e
  "$BIN" --check-sandbox "${ARGS[@]:0:6}" >"$T/check-sandbox" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then pass "[4]" "--check-sandbox exits 0"; else fail "[4]" "--check-sandbox exits $rc"; fi
  show < "$T/check-sandbox"

  # [5]
  if why=$(check_threads "$agent_pid" 2>"$T/threads"); then
    pass "[5]" "$(cat "$T/threads")"
  else
    fail "[5]" "a thread is not hardened"
    show <<<"$why"
  fi

  # [8] (log file): a normal start and stop leave no warning.
  kill -TERM "$agent_pid"
  set +e
  wait "$agent_pid"
  rc=$?
  set -e
  agent_pid=""
  warnings=$(grep -E '^[^ ]+ (WARN|ERROR) ' "$T/agent.log" || true)
  note=""
  if [ ! -S /dev/log ] && [ -n "$warnings" ]; then
    # This host has no syslog socket: the agent says so once, rightly. Not an agent defect.
    if grep -q 'syslog unavailable' <<<"$warnings"; then
      warnings=$(grep -v 'syslog unavailable' <<<"$warnings" || true)
      note=" (ignored: 'syslog unavailable', this host has no /dev/log)"
    fi
  fi
  if [ "$rc" -eq 0 ] && [ -z "$warnings" ]; then
    pass "[8]" "start + SIGTERM: exit 0, no warning in the log file$note"
  else
    fail "[8]" "start + SIGTERM: exit $rc, warnings in the log file$note:"
    [ -n "$warnings" ] && show <<<"$warnings"
  fi
  if [ -e "$T/run/monitoring-agent.pid" ]; then
    info "    " "PID file left behind after SIGTERM ($(wc -c < "$T/run/monitoring-agent.pid") bytes)"
  else
    info "    " "PID file removed at exit"
  fi

  # [6]
  if start_agent; then
    pid=$agent_pid
    # (stderr off: bash would print its own "Bad system call" notice for the job)
    {
      inject_fork "$pid" "$T/gdb.out"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    } 2>/dev/null
    if kill -0 "$pid" 2>/dev/null; then
      fail "[6]" "fork injected with gdb: the agent still runs"
      show < "$T/gdb.out"
    else
      set +e
      { wait "$pid"; } 2>/dev/null
      rc=$?
      set -e
      agent_pid=""
      if [ "$rc" -eq $((128 + 31)) ]; then
        pass "[6]" "fork injected with gdb: the agent died of SIGSYS (status $rc = 128+31)"
      else
        fail "[6]" "fork injected with gdb: the agent ended with status $rc, not SIGSYS (159)"
        show < "$T/gdb.out"
      fi
      seccomp_audit "$pid" | show
    fi
  else
    fail "[6]" "SIGSYS: the agent did not start a second time"
    show < "$T/stderr.log"
  fi
  finish
fi

# =============================================================================================
# Under systemd, on a fresh Debian: the project's install path, then the checks.
# =============================================================================================
if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] || [ ! -d /run/systemd/system ]; then
  echo "vm-guest-check: --systemd needs systemd as PID 1 (PID 1 here is $(cat /proc/1/comm))" >&2
  exit 1
fi
W=$(mktemp -d /var/tmp/vm-guest-check.XXXXXX)
export SYSTEMD_PAGER="" SYSTEMD_COLORS=0

prop() { systemctl show -p "$1" --value "$UNIT"; }
# The journal entries after cursor $1 (up to priority $2, default debug) that come from the
# unit (its cgroup, or systemd about it) or carry the agent's syslog identifier (a syslog
# datagram whose sender has already exited may not be attributed to the unit), in journal
# order, as `[monotonic] ident[pid]: message`. Filtered here, not with journalctl matches:
# systemd 252's `--after-cursor` with a match skips the first matching entry when the cursor's
# own entry does not match (measured: the first of two duplicate lines went missing).
agent_entries() {
  local c=$1 maxprio=${2:-7}
  # Export format with only the fields used here (a binary field, e.g. an AppArmor label that
  # ends in a newline, could look like the blank line between entries); an entry begins with
  # its __CURSOR= line.
  { journalctl -q --after-cursor="$c" -o export \
    --output-fields=SYSLOG_IDENTIFIER,_PID,SYSLOG_PID,MESSAGE,PRIORITY,_SYSTEMD_UNIT,UNIT,OBJECT_SYSTEMD_UNIT \
    2>/dev/null || true; } | awk -v unit="$UNIT" -v maxprio="$maxprio" '
    function flush() {
      if (cur != "" && (prio == "" ? 6 : prio + 0) <= maxprio + 0 &&
          (ident == "monitoring-agent" || sunit == unit || u == unit || ou == unit))
        printf "[%12.6f] %s[%s]: %s\n", mono / 1e6, ident, (spid != "" ? spid : pid), msg
      cur = ""; mono = 0; ident = ""; pid = ""; spid = ""; msg = ""; prio = ""; sunit = ""; u = ""; ou = ""
    }
    /^__CURSOR=/ { flush(); cur = substr($0, 10) }
    /^__MONOTONIC_TIMESTAMP=/ { mono = substr($0, 23) + 0 }
    /^SYSLOG_IDENTIFIER=/ { ident = substr($0, 19) }
    /^_PID=/ { pid = substr($0, 6) }
    /^SYSLOG_PID=/ { spid = substr($0, 12) }
    /^MESSAGE=/ { msg = substr($0, 9) }
    /^PRIORITY=/ { prio = substr($0, 10) }
    /^_SYSTEMD_UNIT=/ { sunit = substr($0, 15) }
    /^UNIT=/ { u = substr($0, 6) }
    /^OBJECT_SYSTEMD_UNIT=/ { ou = substr($0, 21) }
    END { flush() }'
}
# The messages (text only) that the agent process $2 logged after cursor $1.
agent_messages() { agent_entries "$1" | sed -n "s/^\[[^]]*\] monitoring-agent\[$2\]: //p"; }
cursor() { journalctl -n 0 --show-cursor -q 2>/dev/null | sed -n 's/^-- cursor: //p'; }
jsync() { journalctl --sync 2>/dev/null || true; sleep 0.5; }
# Waits while the unit is changing state (activating, deactivating, reloading), at most $1 s.
settle() {
  local s
  for _ in $(seq 1 $(($1 * 5))); do
    s=$(prop ActiveState)
    case "$s" in activating | deactivating | reloading) sleep 0.2 ;; *) return 0 ;; esac
  done
}
unit_state() {
  systemctl show -p ActiveState -p SubState -p Result -p ExecMainCode -p ExecMainStatus -p NRestarts "$UNIT" | paste -sd' '
}
diagnose() {
  echo "      --- systemctl status $UNIT ---"
  { systemctl status --no-pager -l -n 0 "$UNIT" 2>&1 || true; } | show
  echo "      --- journalctl -u $UNIT (last 25 lines) ---"
  { journalctl -u "$UNIT" -n 25 --no-pager -o short-monotonic 2>&1 || true; } | show
}

facts
info "[9]" "mode: systemd as PID 1$([ "$self_test" = 1 ] && echo ', SELF-TEST: --sandbox best-effort drop-in')"

if [ "$self_test" = 1 ]; then
  # Harness self-test only: the unit's own command line plus --sandbox best-effort.
  exec_start=$(sed -n 's/^ExecStart=//p' "$SRC/monitoring-agent.service")
  mkdir -p "/etc/systemd/system/$UNIT.d"
  printf '[Service]\nExecStart=\nExecStart=%s --sandbox best-effort\n' "$exec_start" \
    > "/etc/systemd/system/$UNIT.d/90-vm-self-test.conf"
fi

# [1] The install path on a fresh system.
c0=$(cursor)
section "BIN=$BIN scripts/install.sh"
set +e
(cd "$SRC" && BIN="$BIN" ./scripts/install.sh) >"$W/install.log" 2>&1
install_rc=$?
set -e
show < "$W/install.log"
missing=()
for f in /usr/local/bin/monitoring-agent /etc/systemd/system/$UNIT /etc/monitoring-agent/config.toml /etc/logrotate.d/monitoring-agent; do
  [ -e "$f" ] || missing+=("$f")
done
id -u "$USER_NAME" >/dev/null 2>&1 || missing+=("user $USER_NAME")
if [ ${#missing[@]} -eq 0 ] && /usr/local/bin/monitoring-agent --check-config >/dev/null 2>&1; then
  pass "[1]" "install.sh put the binary, unit, config and user in place; --check-config passes"
else
  fail "[1]" "install.sh left out: ${missing[*]:-nothing, but --check-config fails}"
fi
if [ "$install_rc" -eq 0 ]; then
  pass "[1]" "install.sh exits 0"
else
  why="see its output above"
  grep -q 'Job for monitoring-agent.service failed' "$W/install.log" && why="its 'systemctl restart' failed: the unit did not start, see [2]"
  fail "[1]" "install.sh exits $install_rc ($why)"
fi

# [2] The unit is active, in enforce mode.
settle 60
pid=$(prop MainPID)
start_pid=$(prop ExecMainPID)
jsync
agent_messages "$c0" "$start_pid" > "$W/start-lines"
mode_line=$(grep -m1 -o 'sandbox (.*' "$W/start-lines" || true)
want_mode=enforce
[ "$self_test" = 1 ] && want_mode=best-effort
active=0
if [ "$(prop ActiveState)" = active ] && [ "$pid" != 0 ]; then
  active=1
  # The mode it runs in: --sandbox on its command line, else `sandbox =` in the configuration,
  # else the default, enforce. The agent's own summary line must not contradict it.
  cmd_mode=$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -oE -- '--sandbox[= ]+[a-z-]+' | sed 's/.*[= ]//' | tail -1 || true)
  cfg_mode=$(sed -n 's/^[[:space:]]*sandbox[[:space:]]*=[[:space:]]*"\([a-z-]*\)".*/\1/p' /etc/monitoring-agent/config.toml | tail -1)
  run_mode=${cmd_mode:-${cfg_mode:-enforce}}
  if [ "$run_mode" = "$want_mode" ] && { [ -z "$mode_line" ] || [[ "$mode_line" == "sandbox ($want_mode)"* ]]; }; then
    pass "[2]" "systemctl is-active $UNIT: active, sandbox mode $run_mode${mode_line:+; the agent: $mode_line}"
  else
    fail "[2]" "active, but in sandbox mode $run_mode, not $want_mode${mode_line:+; the agent: $mode_line}"
  fi
else
  fail "[2]" "systemctl is-active $UNIT: $(systemctl is-active "$UNIT" || true) ($(unit_state))"
  diagnose
fi
abi_line=$(grep -m1 'Landlock ABI' "$W/start-lines" || true)
info "[9]" "agent on Landlock: ${abi_line:-no line naming the Landlock ABI in the journal}"

# [3] A scrape.
code=$(curl -sS -o "$W/metrics" -w '%{http_code}' http://localhost:9100/metrics 2>"$W/curl.err" || true)
nodes=$(grep -c '^node_' "$W/metrics" 2>/dev/null || true)
if [ "$code" = 200 ] && [ "${nodes:-0}" -gt 0 ]; then
  pass "[3]" "curl localhost:9100/metrics: 200, $nodes node_ samples"
else
  fail "[3]" "curl localhost:9100/metrics: HTTP ${code:-none}, ${nodes:-0} node_ samples $(head -c 200 "$W/curl.err")"
fi

# [4] The operator's check.
set +e
/usr/local/bin/monitoring-agent --check-sandbox >"$W/check-sandbox" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ]; then pass "[4]" "monitoring-agent --check-sandbox exits 0"; else fail "[4]" "monitoring-agent --check-sandbox exits $rc"; fi
show < "$W/check-sandbox"

# [5] Every thread.
if [ "$active" = 1 ]; then
  if why=$(check_threads "$pid" 2>"$W/threads"); then
    pass "[5]" "$(cat "$W/threads")"
  else
    fail "[5]" "a thread of pid $pid is not hardened"
    show <<<"$why"
  fi
else
  fail "[5]" "threads: the unit is not active, no agent to inspect"
fi

# A normal stop, then [7] and [8] over the start (by install.sh) and this stop.
systemctl stop "$UNIT" || true
settle 30
jsync
agent_messages "$c0" "$start_pid" > "$W/agent-lines"
if [ -n "$RESULTS" ]; then
  # For reading after the run: every field of the agent's entries, and its log file.
  journalctl -q --after-cursor="$c0" -u "$UNIT" -o verbose > "$RESULTS/agent-journal-verbose.txt" 2>&1 || true
  cp /var/log/monitoring-agent/monitoring-agent.log "$RESULTS/agent.log" 2>/dev/null || true
fi
dups=$(sort "$W/agent-lines" | uniq -cd | sort -rn || true)
if [ ! -s "$W/agent-lines" ]; then
  fail "[7]" "the journal has no line from the agent (pid $start_pid)"
elif [ -z "$dups" ]; then
  pass "[7]" "journal: each of the agent's $(wc -l < "$W/agent-lines") lines appears once (pid $start_pid, start + stop)"
else
  fail "[7]" "journal: $(wc -l <<<"$dups") of the agent's lines appear more than once (pid $start_pid):"
  head -n 8 <<<"$dups" | show
fi
agent_entries "$c0" 4 > "$W/warnings"
if [ "$active" = 1 ] && [ ! -s "$W/warnings" ]; then
  pass "[8]" "no journal line at priority warning or worse across a start and a stop"
elif [ "$active" = 1 ]; then
  fail "[8]" "$(wc -l < "$W/warnings") journal lines at priority warning or worse on a normal start + stop:"
  show < "$W/warnings"
else
  fail "[8]" "no normal start to judge (the unit did not become active); its warnings:"
  show < "$W/warnings"
fi

# [12] and [13] run after [7] and [8], which judge the journal of a plain start and stop (these
# add an agent outside the unit and a failed reload). The unit is started again for them.
systemctl reset-failed "$UNIT" 2>/dev/null || true
systemctl start "$UNIT" 2>/dev/null || true
settle 60
pid=$(prop MainPID)
active=0
if [ "$(prop ActiveState)" = active ] && [ "$pid" != 0 ]; then active=1; fi
curl -sS -o "$W/metrics" http://localhost:9100/metrics 2>/dev/null || true

# [12] The host's file systems under the unit: the same mount points and read-only flags as the
# same binary started outside the unit; a mount the unit hides (ProtectHome=) is there only with
# node_filesystem_device_error 1, never with what covers it. Also: what the unit's namespace
# itself would have shown (its own mount table), to prove the check can fail.
if [ "$active" = 1 ]; then
  mkdir -p "$W/outside"
  chown "$USER_NAME" "$W/outside"
  "$BIN" --web.listen-address 127.0.0.1:9199 --pid-file "$W/outside/pid" \
    --collector.disable-defaults --collector.filesystem > "$W/outside.log" 2>&1 &
  opid=$!
  for _ in $(seq 1 100); do
    curl -sf -o "$W/outside.metrics" http://127.0.0.1:9199/metrics 2>/dev/null && break
    sleep 0.2
  done
  kill "$opid" 2>/dev/null || true
  wait "$opid" 2>/dev/null || true
  fam() { grep -E "^node_filesystem_$1\{" "$2" | sort || true; }
  labels() { fam device_error "$1" | sed 's/} .*/}/'; }
  hidden='mountpoint="/(home|root|run/user)(/|")'
  ro_unit=$(fam readonly "$W/metrics")
  ro_out=$(fam readonly "$W/outside.metrics" | grep -Ev "$hidden" || true)
  err_bad=$(fam device_error "$W/metrics" | grep -Ev "$hidden" | grep -v ' 0$' || true)
  own_ro=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | head -1)
  info "[12]" "the unit's own mount table has / as: ${own_ro:-?} (what the agent would report without the host view)"
  if [ -s "$W/outside.metrics" ] && [ "$(labels "$W/metrics")" = "$(labels "$W/outside.metrics")" ] \
    && [ "$ro_unit" = "$ro_out" ] && [ -z "$err_bad" ]; then
    pass "[12]" "filesystem under the unit = outside it: $(labels "$W/metrics" | wc -l) mount points, the same readonly flags ($(grep -c ' 0$' <<<"$ro_unit" || true) read-write)"
  else
    fail "[12]" "filesystem samples differ between the unit and outside it"
  fi
  { echo "under the unit:"; fam device_error "$W/metrics"; fam readonly "$W/metrics"; echo "outside:"; fam device_error "$W/outside.metrics"; fam readonly "$W/outside.metrics"; } | show
else
  fail "[12]" "host view: the unit is not active"
fi

# [13] `systemctl reload` tells the truth (ExecReload= is `monitoring-agent --reload`): exit 0
# with a good configuration, non-zero with a broken one (the agent keeps serving the old one).
if [ "$active" = 1 ]; then
  c13=$(cursor)
  set +e
  systemctl reload "$UNIT" > "$W/reload-good" 2>&1
  rc_good=$?
  cp /etc/monitoring-agent/config.toml "$W/config.toml.orig"
  printf '\nno_such_setting = true\n' >> /etc/monitoring-agent/config.toml
  systemctl reload "$UNIT" > "$W/reload-bad" 2>&1
  rc_bad=$?
  cp "$W/config.toml.orig" /etc/monitoring-agent/config.toml
  systemctl reload "$UNIT" > "$W/reload-again" 2>&1
  rc_again=$?
  set -e
  settle 30
  jsync
  why=$(journalctl -q --after-cursor="$c13" -u "$UNIT" -o cat 2>/dev/null | grep -m1 'failed: configuration not reloaded' || true)
  if [ "$rc_good" = 0 ] && [ "$rc_bad" != 0 ] && [ "$rc_again" = 0 ] && [ "$(prop MainPID)" = "$pid" ] && [ -n "$why" ]; then
    pass "[13]" "systemctl reload: good config exit 0, broken config exit $rc_bad ($why), repaired exit 0; same pid $pid"
  else
    fail "[13]" "systemctl reload: good $rc_good, broken $rc_bad, repaired $rc_again (expected 0, non-zero, 0); pid $pid -> $(prop MainPID); journal: ${why:-no failure line}"
    cat "$W/reload-good" "$W/reload-bad" | show
  fi
else
  fail "[13]" "systemctl reload: the unit is not active"
fi

# [6] One forbidden syscall kills the agent with SIGSYS (the unit restarts it afterwards).
systemctl reset-failed "$UNIT" 2>/dev/null || true
systemctl start "$UNIT" 2>/dev/null || true
settle 60
pid=$(prop MainPID)
if [ "$(prop ActiveState)" = active ] && [ "$pid" != 0 ]; then
  c6=$(cursor)
  inject_fork "$pid" "$W/gdb.out"
  for _ in $(seq 1 100); do
    [ "$(prop ExecMainPID)" = "$pid" ] && [ "$(prop MainPID)" = 0 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  code=$(prop ExecMainCode)
  status=$(prop ExecMainStatus)
  jsync
  sys_line=$(agent_entries "$c6" | grep -m1 -o 'Main process exited.*status=31/SYS' || true)
  if [ "$(prop ExecMainPID)" = "$pid" ] && [ "$status" = 31 ]; then
    pass "[6]" "fork injected with gdb into pid $pid: killed by SIGSYS (ExecMainCode=$code ExecMainStatus=31)${sys_line:+; journal: $sys_line}"
  elif [ -n "$sys_line" ]; then
    pass "[6]" "fork injected with gdb into pid $pid: journal: $sys_line"
  else
    fail "[6]" "fork injected with gdb into pid $pid: not killed by SIGSYS ($(unit_state))"
    show < "$W/gdb.out"
  fi
  seccomp_audit "$pid" | show
else
  fail "[6]" "SIGSYS: the unit is not active, nothing to inject into ($(unit_state))"
fi
systemctl stop "$UNIT" 2>/dev/null || true
settle 30

# [10] A refusal (here: an invalid configuration, exit 2) leaves the unit failed instead of
# restarting it every RestartSec= forever.
printf 'no_such_setting = true\n' > /etc/monitoring-agent/vm-invalid.toml
mkdir -p "/run/systemd/system/$UNIT.d"
exec_start=$(sed -n "s/^ExecStart=//p" "/etc/systemd/system/$UNIT")
printf '[Service]\nExecStart=\nExecStart=%s -c /etc/monitoring-agent/vm-invalid.toml\n' "$exec_start" \
  > "/run/systemd/system/$UNIT.d/99-vm-invalid-config.conf"
systemctl daemon-reload
systemctl reset-failed "$UNIT" 2>/dev/null || true
systemctl start "$UNIT" 2>/dev/null || true
restart_sec=$(prop RestartUSec)
sleep 8 # RestartSec=5s plus a margin: a restart would have happened by now
settle 30
state=$(unit_state)
if [ "$(prop ActiveState)" = failed ] && [ "$(prop NRestarts)" = 0 ] && [ "$(prop ExecMainStatus)" = 2 ]; then
  pass "[10]" "invalid config: exit 2, unit failed, no restart after 8 s (RestartSec=$restart_sec; $state)"
else
  fail "[10]" "invalid config: expected failed with ExecMainStatus=2 and NRestarts=0 after 8 s, got: $state"
  { systemctl cat "$UNIT" 2>/dev/null | grep -E '^(Restart|RestartPreventExitStatus|ExecStart)' || true; } | show
fi
rm -f "/run/systemd/system/$UNIT.d/99-vm-invalid-config.conf" /etc/monitoring-agent/vm-invalid.toml
systemctl daemon-reload
systemctl stop "$UNIT" 2>/dev/null || true
systemctl reset-failed "$UNIT" 2>/dev/null || true

# [11] The unit's exposure score (tests/systemd_units.rs holds it at 2.0 or lower).
exposure=$(systemd-analyze security --offline=true "/etc/systemd/system/$UNIT" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
  pass "[11]" "systemd-analyze security --offline=true: exposure $exposure (at most 2.0)"
else
  fail "[11]" "systemd-analyze security --offline=true: exposure ${exposure:-unknown}, more than 2.0"
fi

if [ -n "$RESULTS" ]; then
  # The journal's own files, for `journalctl --directory=...` on the host after the run.
  jsync
  mkdir -p "$RESULTS/journal"
  cp -a /run/log/journal/. /var/log/journal/. "$RESULTS/journal/" 2>/dev/null || true
fi

finish
