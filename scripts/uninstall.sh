#!/usr/bin/env bash
# Removes what scripts/install.sh installed; running it again is harmless. The configuration
# (config.toml, /etc/default/monitoring-agent, the --ip-allow drop-in), the logs and the system
# user stay unless --purge is given.
# ROOT=/some/dir removes below that directory (as install.sh's ROOT).
set -euo pipefail
ROOT="${ROOT:-}"
purge=0
[ "${1:-}" = "--purge" ] && purge=1
if [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root" >&2
  exit 1
fi
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  for u in monitoring-agent.service monitoring-agent.socket monitoring-agent-socket.service; do
    systemctl disable --now "$u" 2>/dev/null || true
  done
fi
rm -f "$ROOT/usr/local/bin/monitoring-agent" \
  "$ROOT/etc/systemd/system/monitoring-agent.service" \
  "$ROOT/etc/systemd/system/monitoring-agent.socket" \
  "$ROOT/etc/systemd/system/monitoring-agent-socket.service" \
  "$ROOT/etc/logrotate.d/monitoring-agent"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
if [ "$purge" = 1 ]; then
  rm -rf "$ROOT/etc/monitoring-agent" "$ROOT/var/log/monitoring-agent"
  rm -f "$ROOT/etc/default/monitoring-agent" "$ROOT/etc/systemd/system/monitoring-agent.service.d/ip-address-allow.conf"
  rmdir "$ROOT/etc/systemd/system/monitoring-agent.service.d" 2>/dev/null || true
  if [ -z "$ROOT" ] && id -u monitoring-agent >/dev/null 2>&1; then
    userdel monitoring-agent
  fi
fi
echo "uninstall.sh: done${purge:+ }$([ "$purge" = 1 ] && echo '(purged configuration, logs and user)')"
