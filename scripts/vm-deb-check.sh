#!/usr/bin/env bash
# The Debian package's life cycle on a real Debian 12 under systemd, run INSIDE a disposable
# guest (scripts/vm-test.sh boots it; never run this on a machine you care about: it installs,
# removes and purges packages and kills services). One PASS/FAIL line per check, then
# `vm-deb-check: N passed, M failed`; exit 1 when a check fails.
#
#   vm-deb-check.sh --deb FIRST.deb --upgrade SECOND.deb [--results DIR]
#
# FIRST and SECOND are two builds of scripts/package.sh, SECOND with a higher version
# (DEB_VERSION=...). The guest needs, preinstalled (it has no network): systemd as PID 1,
# curl, adduser, debconf, and prometheus-node-exporter 1.5 (Debian 12's) with its default
# /etc/default/prometheus-node-exporter, disabled or enabled.
#
# Steps, each with its result:
#  [N1] node_exporter's baseline: started from its package, scraped (a textfile metric placed
#       in /var/lib/prometheus/node-exporter beforehand must show up)
#  [D1] install: `apt-get install ./FIRST.deb` removes prometheus-node-exporter (Conflicts),
#       keeps its settings file, creates the user, migrates ARGS, enables and starts the unit
#       (and not the socket variant)
#  [D2] scrape on :9100 under the unit: node_ samples, the textfile metric from Debian's
#       directory, node_timex_* with the timex collector succeeding
#  [D3] node-mixin parity: every metric node-mixin's alerts, recording rules and dashboards use
#       that node_exporter exposed in [N1] is exposed by the agent under its unit
#  [D4] systemctl reload with a good configuration: same PID, still serving
#  [D5] systemctl reload with a broken configuration: exits non-zero, same PID, still serving, the failure counted
#  [D6] debconf allow list: dpkg-reconfigure with an address list that excludes loopback makes
#       scrapes from loopback go unanswered; `localhost` lets them in; empty removes the drop-in
#  [D7] upgrade to SECOND: new version, restarted, the operator's edits of config.toml (conffile)
#       and /etc/default/monitoring-agent kept
#  [D8] remove: service stopped, binary and units gone, configuration and user kept
#  [D9] purge: configuration, ARGS file, drop-in, logs, user, debconf answer gone
set -uo pipefail

DEB1="" DEB2="" RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) DEB1=$2; shift ;;
    --upgrade) DEB2=$2; shift ;;
    --results) RESULTS=$2; shift ;;
    *) echo "vm-deb-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$DEB1" ] && [ -f "$DEB2" ] || { echo "vm-deb-check: --deb and --upgrade need two .deb files" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "vm-deb-check: run as root" >&2; exit 1; }
if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
  echo "vm-deb-check: needs systemd as PID 1 (a disposable VM)" >&2
  exit 1
fi
DEB1=$(readlink -f "$DEB1")
DEB2=$(readlink -f "$DEB2")

UNIT=monitoring-agent.service
NE=prometheus-node-exporter.service
URL=http://127.0.0.1:9100/metrics
W=$(mktemp -d /var/tmp/vm-deb-check.XXXXXX)
export SYSTEMD_PAGER="" SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive
npass=0 nfail=0
pass() { printf 'PASS  %-5s %s\n' "$1" "$2"; npass=$((npass + 1)); }
fail() { printf 'FAIL  %-5s %s\n' "$1" "$2"; nfail=$((nfail + 1)); }
info() { printf 'INFO  %-5s %s\n' "$1" "$2"; }
show() { sed 's/^/      | /'; }
check() { # check ID "what" COMMAND...: PASS when the command succeeds
  local id=$1 what=$2
  shift 2
  if "$@" >/dev/null 2>&1; then pass "$id" "$what"; else fail "$id" "$what"; fi
}
finish() {
  echo "vm-deb-check: $npass passed, $nfail failed"
  [ -n "$RESULTS" ] && printf 'passed=%d\nfailed=%d\n' "$npass" "$nfail" > "$RESULTS/counts"
  [ "$nfail" -eq 0 ]
  exit
}
prop() { systemctl show -p "$1" --value "$UNIT"; }
settle() { # waits while the unit changes state, at most $1 s
  local s
  for _ in $(seq 1 $(($1 * 5))); do
    s=$(prop ActiveState)
    case "$s" in activating | deactivating | reloading) sleep 0.2 ;; *) return 0 ;; esac
  done
}
scrape() { # scrape FILE: 0 when HTTP 200
  local code
  code=$(curl -sS -m 5 -o "$1" -w '%{http_code}' "$URL" 2>/dev/null || true)
  [ "$code" = 200 ]
}
wait_scrape() { # wait_scrape FILE: until a scrape answers (at most 30 s)
  for _ in $(seq 1 150); do scrape "$1" && return 0; sleep 0.2; done
  return 1
}
families() { grep -v '^#' "$1" | sed 's/[{ ].*//' | sort -u; }
pkg_status() { dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' '; }
diagnose() {
  systemctl status --no-pager -l -n 0 "$UNIT" 2>&1 | show
  journalctl -u "$UNIT" -n 20 --no-pager -o short-monotonic 2>&1 | show
}

info "[0]" "kernel $(uname -r), $(systemctl --version | head -1), packages: $(dpkg-deb -f "$DEB1" Version) then $(dpkg-deb -f "$DEB2" Version)"

# --- [N1] node_exporter's baseline --------------------------------------------------------------
# The guest has no network card (QEMU -nic none) and Debian's node_exporter leaves out lo: a
# dummy interface gives both exporters a device for node_network_*.
if ip link add vmdummy0 type dummy 2>/dev/null && ip link set vmdummy0 up 2>/dev/null; then
  info "[N1]" "network: dummy interface vmdummy0 up (for node_network_*)"
else
  info "[N1]" "network: no dummy interface (module dummy missing?); node_network_* will be N/A"
fi
install -d -m 0755 /var/lib/prometheus/node-exporter
printf '# HELP vm_deb_check_textfile A metric from the textfile directory.\n# TYPE vm_deb_check_textfile gauge\nvm_deb_check_textfile 42\n' \
  > /var/lib/prometheus/node-exporter/vm_deb_check.prom
if [ "$(pkg_status prometheus-node-exporter)" != ii ]; then
  fail "[N1]" "prometheus-node-exporter is not installed in the guest image (status $(pkg_status prometheus-node-exporter))"
  finish
fi
cp /etc/default/prometheus-node-exporter "$W/ne-defaults"
info "[N1]" "/etc/default/prometheus-node-exporter: $(grep -c . "$W/ne-defaults") lines, $(grep '^ARGS=' "$W/ne-defaults")"
systemctl start "$NE" 2>/dev/null
if wait_scrape "$W/ne.metrics" && grep -q '^vm_deb_check_textfile 42' "$W/ne.metrics"; then
  pass "[N1]" "node_exporter $(dpkg-query -W -f '${Version}' prometheus-node-exporter) serves :9100: $(grep -c '^node_' "$W/ne.metrics") node_ samples, $(families "$W/ne.metrics" | grep -c '^node_') families, the textfile metric, $(grep -c '^node_timex_' "$W/ne.metrics") node_timex_ samples"
else
  fail "[N1]" "node_exporter did not serve its baseline (or missed the textfile metric)"
  systemctl status --no-pager -n 10 "$NE" 2>&1 | show
fi

# --- [D1] install -------------------------------------------------------------------------------
cp "$DEB1" "$W/first.deb"
apt-get install -y --no-install-recommends "$W/first.deb" > "$W/install.log" 2>&1
rc=$?
show < "$W/install.log"
settle 60
if [ "$rc" -eq 0 ] && [ "$(pkg_status monitoring-agent)" = ii ]; then
  pass "[D1]" "apt-get install ./$(basename "$DEB1"): exit 0, monitoring-agent installed"
else
  fail "[D1]" "apt-get install ./$(basename "$DEB1"): exit $rc, status $(pkg_status monitoring-agent)"
fi
ne_status=$(pkg_status prometheus-node-exporter)
if [ "$ne_status" = rc ] && [ -f /etc/default/prometheus-node-exporter ]; then
  pass "[D1]" "prometheus-node-exporter removed by the Conflicts (status rc), its settings file kept"
else
  fail "[D1]" "prometheus-node-exporter status '$ne_status' (expected rc: removed, configuration kept)"
fi
check "[D1]" "user monitoring-agent created (adduser --system): $(getent passwd monitoring-agent)" getent passwd monitoring-agent
if grep -q 'from /etc/default/prometheus-node-exporter' /etc/default/monitoring-agent 2>/dev/null &&
  grep -q '^ARGS=".*--collector.textfile.directory=/var/lib/prometheus/node-exporter' /etc/default/monitoring-agent; then
  pass "[D1]" "/etc/default/monitoring-agent migrated from prometheus-node-exporter's (textfile directory: Debian's)"
else
  fail "[D1]" "/etc/default/monitoring-agent was not migrated"
fi
show < /etc/default/monitoring-agent 2>/dev/null
if [ "$(systemctl is-enabled "$UNIT" 2>/dev/null)" = enabled ] && [ "$(prop ActiveState)" = active ]; then
  pass "[D1]" "$UNIT enabled and active (pid $(prop MainPID))"
else
  fail "[D1]" "$UNIT: $(systemctl is-enabled "$UNIT" 2>&1), $(prop ActiveState)"
  diagnose
fi
socket_state="$(systemctl is-enabled monitoring-agent.socket 2>&1) / $(systemctl is-active monitoring-agent.socket 2>&1)"
if [ "$socket_state" = "disabled / inactive" ]; then
  pass "[D1]" "monitoring-agent.socket installed, disabled and inactive"
else
  fail "[D1]" "monitoring-agent.socket: $socket_state (expected disabled / inactive)"
fi
pid=$(prop MainPID)
args=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
info "[D1]" "running: $args"

# --- [D2] scrape under the unit -----------------------------------------------------------------
if wait_scrape "$W/agent.metrics"; then
  timex=$(grep -c '^node_timex_' "$W/agent.metrics")
  ok_timex=$(grep -c '^node_scrape_collector_success{collector="timex"} 1' "$W/agent.metrics")
  pass "[D2]" "curl $URL: 200, $(grep -c '^node_' "$W/agent.metrics") node_ samples, $(families "$W/agent.metrics" | grep -c '^node_') families"
  if grep -q '^vm_deb_check_textfile 42' "$W/agent.metrics"; then
    pass "[D2]" "the textfile metric from /var/lib/prometheus/node-exporter is served"
  else
    fail "[D2]" "the textfile metric from /var/lib/prometheus/node-exporter is missing"
    grep '^node_textfile' "$W/agent.metrics" | show
  fi
  if [ "$timex" -gt 0 ] && [ "$ok_timex" = 1 ]; then
    pass "[D2]" "node_timex_* under the unit: $timex samples (node_exporter under Debian's unit: $(grep -c '^node_timex_' "$W/ne.metrics")), timex collector succeeds"
  else
    fail "[D2]" "node_timex_* under the unit: $timex samples, timex success line: $ok_timex"
    grep 'collector="timex"' "$W/agent.metrics" | show
  fi
else
  fail "[D2]" "curl $URL: no answer from the agent"
  diagnose
fi

# --- [D3] node-mixin parity ---------------------------------------------------------------------
# The metrics node-mixin (node_exporter's docs/node-mixin, current master) uses in its alerts
# (alerts.libsonnet: filesystem, network, conntrack, textfile, clock, RAID, file descriptors,
# CPU, load, memory, disk I/O, bonding, and NodeSystemdServiceFailed/Crashlooping on the
# systemd collector, which Debian's node_exporter enables), recording rules and dashboards.
MIXIN="node_bonding_active node_bonding_slaves node_boot_time_seconds node_context_switches_total
node_cpu_seconds_total node_disk_io_time_seconds_total node_disk_io_time_weighted_seconds_total
node_disk_read_bytes_total node_disk_read_time_seconds_total node_disk_reads_completed_total
node_disk_write_time_seconds_total node_disk_writes_completed_total node_disk_written_bytes_total
node_filefd_allocated node_filefd_maximum node_filesystem_avail_bytes node_filesystem_files
node_filesystem_files_free node_filesystem_readonly node_filesystem_size_bytes node_forks_total
node_intr_total node_load1 node_load15 node_load5 node_md_disks node_md_disks_required
node_md_state node_memory_Buffers_bytes node_memory_Cached_bytes node_memory_MemAvailable_bytes
node_memory_MemFree_bytes node_memory_MemTotal_bytes node_memory_Slab_bytes
node_memory_SwapFree_bytes node_memory_SwapTotal_bytes node_netstat_Tcp_CurrEstab
node_network_info node_network_receive_bytes_total node_network_receive_drop_total
node_network_receive_errs_total node_network_receive_packets_total
node_network_transmit_bytes_total node_network_transmit_drop_total
node_network_transmit_errs_total node_network_transmit_packets_total node_network_up
node_nf_conntrack_entries node_nf_conntrack_entries_limit node_os_info node_procs_blocked
node_procs_running node_textfile_scrape_error node_time_seconds node_timex_maxerror_seconds
node_timex_offset_seconds node_timex_sync_status node_uname_info node_vmstat_pgmajfault
node_vmstat_pgpgin node_vmstat_pgpgout node_vmstat_pswpin node_vmstat_pswpout
node_systemd_unit_state node_systemd_service_restart_total node_cpu_guest_seconds_total
node_memory_HardwareCorrupted_bytes node_hwmon_temp_celsius node_hwmon_temp_crit_alarm_celsius
node_hwmon_temp_max_celsius node_nvme_info node_os_version"
if [ -s "$W/ne.metrics" ] && [ -s "$W/agent.metrics" ]; then
  families "$W/ne.metrics" > "$W/ne.families"
  families "$W/agent.metrics" > "$W/agent.families"
  exposed=() missing=() absent=()
  for m in $MIXIN; do
    if grep -qx "$m" "$W/ne.families"; then
      if grep -qx "$m" "$W/agent.families"; then exposed+=("$m"); else missing+=("$m"); fi
    else
      absent+=("$m")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    pass "[D3]" "node-mixin: all ${#exposed[@]} metrics node_exporter exposes here are exposed by the agent under its unit"
  else
    fail "[D3]" "node-mixin: node_exporter exposes, the agent under its unit does not: ${missing[*]} (${#exposed[@]} others match)"
  fi
  info "[D3]" "node-mixin metrics node_exporter does not expose on this VM either (N/A): ${absent[*]:-none}"
  other=$(comm -23 <(grep '^node_' "$W/ne.families") <(grep '^node_' "$W/agent.families") | paste -sd' ')
  info "[D3]" "all node_ families node_exporter has and the agent lacks here: ${other:-none}"
else
  fail "[D3]" "no two scrapes to compare"
fi

# --- [D4] reload, good configuration ------------------------------------------------------------
cfg=/etc/monitoring-agent/config.toml
cp "$cfg" "$W/config.orig"
printf '\n# vm-deb-check: an operator edit\n' >> "$cfg"
sed -i 's/^# max_requests = 40$/max_requests = 30/' "$cfg"
pid=$(prop MainPID)
systemctl reload "$UNIT" > "$W/reload.log" 2>&1
rc=$?
settle 30
if [ "$rc" -eq 0 ] && [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" = "$pid" ] && scrape "$W/after-reload.metrics"; then
  pass "[D4]" "systemctl reload (good config): exit 0, active, same pid $pid, scrape 200"
else
  fail "[D4]" "systemctl reload (good config): exit $rc, $(prop ActiveState), pid $pid -> $(prop MainPID)"
  show < "$W/reload.log"
fi

# --- [D5] reload, broken configuration ----------------------------------------------------------
cp "$cfg" "$W/config.good"
printf 'no_such_setting = true\n' >> "$cfg"
systemctl reload "$UNIT" > "$W/reload-bad.log" 2>&1
rc=$?
settle 30
failures=""
if scrape "$W/after-bad.metrics"; then
  failures=$(sed -n 's/^monitoring_agent_config_reload_failures_total \([0-9]*\).*/\1/p' "$W/after-bad.metrics")
fi
if [ "$rc" -ne 0 ] && [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" = "$pid" ] && [ "${failures:-0}" -ge 1 ]; then
  pass "[D5]" "systemctl reload (broken config): exit $rc (ExecReload= reports the failure), still active, same pid, old configuration serving, monitoring_agent_config_reload_failures_total $failures"
else
  fail "[D5]" "systemctl reload (broken config): exit $rc, $(prop ActiveState), pid $pid -> $(prop MainPID), reload failures '${failures}'"
  show < "$W/reload-bad.log"
fi
journalctl -u "$UNIT" -n 3 --no-pager -o cat 2>/dev/null | show
cp "$W/config.good" "$cfg"
systemctl reload "$UNIT" >/dev/null 2>&1
settle 30

# --- [D6] the debconf allow list ----------------------------------------------------------------
reconfigure() { # reconfigure "LIST"
  echo "monitoring-agent monitoring-agent/ip-address-allow string $1" | debconf-set-selections
  dpkg-reconfigure -fnoninteractive monitoring-agent > "$W/reconfigure.log" 2>&1
  settle 60
}
dropin=/etc/systemd/system/monitoring-agent.service.d/ip-address-allow.conf
reconfigure "192.0.2.1"
if [ -f "$dropin" ] && [ "$(prop ActiveState)" = active ] && ! scrape "$W/denied.metrics"; then
  pass "[D6]" "allow list 192.0.2.1: drop-in written, IPAddressAllow=$(prop IPAddressAllow), a scrape from loopback goes unanswered"
else
  fail "[D6]" "allow list 192.0.2.1: drop-in $( [ -f "$dropin" ] && echo present || echo absent), $(prop ActiveState), loopback scrape answered: $(scrape /dev/null && echo yes || echo no)"
  show < "$W/reconfigure.log"
fi
reconfigure "localhost"
if [ "$(prop ActiveState)" = active ] && wait_scrape "$W/allowed.metrics"; then
  pass "[D6]" "allow list localhost: scrape from loopback answered"
else
  fail "[D6]" "allow list localhost: no answer ($(prop ActiveState))"
fi
exposure=$(systemd-analyze security "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
info "[D6]" "systemd-analyze security $UNIT (with the allow-list drop-in): ${exposure:-unknown}"
reconfigure ""
if [ ! -e "$dropin" ] && [ "$(prop ActiveState)" = active ] && wait_scrape "$W/open.metrics"; then
  pass "[D6]" "empty allow list: drop-in removed, scrape answered"
else
  fail "[D6]" "empty allow list: drop-in $( [ -e "$dropin" ] && echo present || echo absent), $(prop ActiveState)"
fi
exposure=$(systemd-analyze security "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
info "[D6]" "systemd-analyze security $UNIT (no allow list): ${exposure:-unknown}"

# --- [D7] upgrade -------------------------------------------------------------------------------
printf '# vm-deb-check: an operator edit of ARGS\n' >> /etc/default/monitoring-agent
cp /etc/default/monitoring-agent "$W/defaults.edited"
cp "$cfg" "$W/config.edited"
pid=$(prop MainPID)
cp "$DEB2" "$W/second.deb"
apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold "$W/second.deb" > "$W/upgrade.log" 2>&1
rc=$?
show < "$W/upgrade.log"
settle 60
new_version=$(dpkg-query -W -f '${Version}' monitoring-agent)
if [ "$rc" -eq 0 ] && [ "$new_version" = "$(dpkg-deb -f "$DEB2" Version)" ]; then
  pass "[D7]" "upgrade: exit 0, version $new_version"
else
  fail "[D7]" "upgrade: exit $rc, version $new_version"
fi
if [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$pid" ] && wait_scrape "$W/upgraded.metrics"; then
  pass "[D7]" "restarted on upgrade (pid $pid -> $(prop MainPID)), serving"
else
  fail "[D7]" "after upgrade: $(prop ActiveState), pid $pid -> $(prop MainPID)"
  diagnose
fi
if cmp -s "$cfg" "$W/config.edited" && cmp -s /etc/default/monitoring-agent "$W/defaults.edited"; then
  pass "[D7]" "the operator's config.toml and /etc/default/monitoring-agent are untouched"
else
  fail "[D7]" "the upgrade changed config.toml or /etc/default/monitoring-agent"
fi

# --- [D8] remove --------------------------------------------------------------------------------
apt-get remove -y monitoring-agent > "$W/remove.log" 2>&1
rc=$?
show < "$W/remove.log"
gone=()
for f in /usr/bin/monitoring-agent /lib/systemd/system/$UNIT /lib/systemd/system/monitoring-agent.socket; do
  [ -e "$f" ] && gone+=("$f still there")
done
state=$(systemctl is-active "$UNIT" 2>&1)
if [ "$rc" -eq 0 ] && [ ${#gone[@]} -eq 0 ] && [ "$state" != active ] && ! scrape /dev/null; then
  pass "[D8]" "remove: exit 0, service $state, binary and units gone, port closed"
else
  fail "[D8]" "remove: exit $rc, service $state, ${gone[*]:-files gone}"
fi
if [ -f "$cfg" ] && [ -f /etc/default/monitoring-agent ] && getent passwd monitoring-agent >/dev/null; then
  pass "[D8]" "remove keeps config.toml, /etc/default/monitoring-agent and the user (status $(pkg_status monitoring-agent))"
else
  fail "[D8]" "remove lost configuration or the user"
fi

# --- [D9] purge ---------------------------------------------------------------------------------
apt-get purge -y monitoring-agent > "$W/purge.log" 2>&1
rc=$?
show < "$W/purge.log"
left=()
for f in /etc/monitoring-agent /etc/default/monitoring-agent /etc/systemd/system/monitoring-agent.service.d /var/log/monitoring-agent /etc/logrotate.d/monitoring-agent; do
  [ -e "$f" ] && left+=("$f")
done
getent passwd monitoring-agent >/dev/null && left+=("user monitoring-agent")
debconf-show monitoring-agent 2>/dev/null | grep -q . && left+=("debconf answers")
find /etc/systemd/system -name 'monitoring-agent*' 2>/dev/null | grep -q . && left+=("$(find /etc/systemd/system -name 'monitoring-agent*' | paste -sd' ')")
if [ "$rc" -eq 0 ] && [ ${#left[@]} -eq 0 ] && [ -z "$(pkg_status monitoring-agent)" ]; then
  pass "[D9]" "purge: exit 0, nothing of the package left (configuration, ARGS, drop-in, logs, user, debconf, unit links)"
else
  fail "[D9]" "purge: exit $rc, status '$(pkg_status monitoring-agent)', left: ${left[*]:-nothing}"
fi
if [ -f /etc/default/prometheus-node-exporter ] && [ -f /var/lib/prometheus/node-exporter/vm_deb_check.prom ]; then
  pass "[D9]" "purge left what is not the package's: prometheus-node-exporter's settings, the textfile directory's files"
else
  fail "[D9]" "purge removed something that was not the package's"
fi
finish
