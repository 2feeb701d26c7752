#!/usr/bin/env bash
# Builds the agent and runs it in the foreground as root on port 9100, the way the product
# runs: it binds the port and opens its files as root, then drops to the `monitoring-agent`
# system user (created here if missing, with no home and no login shell) keeping only
# CAP_NET_BIND_SERVICE, under Landlock and seccomp. Extra arguments go to the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/run.sh: not root: running unprivileged (no user switch; the sandbox still applies)" >&2
  exec ./target/release/monitoring-agent "$@"
fi
if ! id -u monitoring-agent >/dev/null 2>&1; then
  echo "scripts/run.sh: creating system user monitoring-agent" >&2
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin monitoring-agent
fi
exec ./target/release/monitoring-agent "$@"
