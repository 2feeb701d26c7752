#!/usr/bin/env bash
# Installs monitoring-agent from this checkout, as root; running it again changes nothing
# that is already in place (an existing configuration is never overwritten).
#   binary      /usr/local/bin/monitoring-agent
#   units       /etc/systemd/system/monitoring-agent.service (enabled and started when systemd
#               runs), monitoring-agent.socket + monitoring-agent-socket.service (installed only)
#   config      /etc/monitoring-agent/config.toml (from contrib/config.example.toml)
#   user        monitoring-agent (system user, no home, no login shell)
#   logs        /var/log/monitoring-agent, rotated by /etc/logrotate.d/monitoring-agent
# ROOT=/some/dir installs below that directory instead (for packaging and tests; no user is
# created and systemd is not touched then). BIN=path installs that binary instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${ROOT:-}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root" >&2
  exit 1
fi
BIN="${BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release --locked
  BIN=target/release/monitoring-agent
fi

install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/logrotate.d" "$ROOT/etc/monitoring-agent"
install -d -m 0750 "$ROOT/var/log/monitoring-agent"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/monitoring-agent"
install -m 0644 monitoring-agent.service "$ROOT/etc/systemd/system/monitoring-agent.service"
install -m 0644 contrib/systemd/monitoring-agent.socket "$ROOT/etc/systemd/system/monitoring-agent.socket"
install -m 0644 contrib/systemd/monitoring-agent-socket.service "$ROOT/etc/systemd/system/monitoring-agent-socket.service"
install -m 0644 contrib/logrotate/monitoring-agent "$ROOT/etc/logrotate.d/monitoring-agent"
# The agent's user comes before the configuration check: `--check-config` resolves the
# configured user (`monitoring-agent` by default), which fails on a fresh system without it.
# With ROOT= no user is created (packaging creates it in its own maintainer scripts).
if [ -z "$ROOT" ] && ! id -u monitoring-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin monitoring-agent
fi
if [ ! -e "$ROOT/etc/monitoring-agent/config.toml" ]; then
  install -m 0644 contrib/config.example.toml "$ROOT/etc/monitoring-agent/config.toml"
else
  echo "install.sh: keeping the existing $ROOT/etc/monitoring-agent/config.toml"
fi
"$ROOT/usr/local/bin/monitoring-agent" --check-config -c "$ROOT/etc/monitoring-agent/config.toml"

if [ -n "$ROOT" ]; then
  echo "install.sh: installed below $ROOT (no user created, systemd untouched)"
  exit 0
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable monitoring-agent.service
  systemctl restart monitoring-agent.service
  systemctl --no-pager --lines=0 status monitoring-agent.service || true
else
  echo "install.sh: systemd is not running here; start the agent with:"
  echo "  /usr/local/bin/monitoring-agent -d --log-file /var/log/monitoring-agent/monitoring-agent.log"
fi
