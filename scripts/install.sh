#!/usr/bin/env bash
# Installs monitoring-agent on a host without the Debian package (on Debian and Ubuntu, install
# the .deb instead: scripts/package.sh, README "Install"). As root:
#
#   scripts/install.sh [--ip-allow "LIST" | --ip-allow any]
#
#   binary      /usr/local/bin/monitoring-agent
#   units       /etc/systemd/system/monitoring-agent.service (enabled and started when systemd
#               runs), monitoring-agent.socket + monitoring-agent-socket.service (installed only),
#               their ExecStart= pointing at /usr/local/bin
#   config      /etc/monitoring-agent/config.toml (from contrib/config.example.toml; never
#               overwritten), /etc/default/monitoring-agent (ARGS=, the unit's extra flags;
#               never overwritten)
#   user        monitoring-agent (system user, no home, no login shell)
#   logs        /var/log/monitoring-agent, rotated by /etc/logrotate.d/monitoring-agent
#   --ip-allow  who may scrape: writes the drop-in
#               /etc/systemd/system/monitoring-agent.service.d/ip-address-allow.conf
#               (IPAddressDeny=any, IPAddressAllow=LIST); `--ip-allow any` removes it. Without
#               the option an existing choice stays; with none, any address may scrape.
#
# Safe to run from configuration management:
# - nothing is replaced until the new binary has accepted the configuration that will be in
#   force (config.toml and the ARGS of /etc/default/monitoring-agent): a refused configuration
#   leaves every installed file as it was and exits 1;
# - a file is written only when its content differs; the service is restarted only when the
#   binary, a unit or the drop-in changed (started when it is not running); the last line says
#   `install.sh: changed: ...` or `install.sh: nothing changed`.
#
# ROOT=/some/dir installs below that directory instead (tests, staging; no user is created and
# systemd is not touched). BIN=path installs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${ROOT:-}"
say() { printf 'install.sh: %s\n' "$*"; }

ip_allow=""
ip_allow_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    --ip-allow)
      [ $# -ge 2 ] || { say "--ip-allow needs a value (a list, or any)" >&2; exit 2; }
      ip_allow=$2
      ip_allow_given=1
      shift
      ;;
    --ip-allow=*)
      ip_allow=${1#--ip-allow=}
      ip_allow_given=1
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      say "unknown argument $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done
if [ "$ip_allow_given" = 1 ] && [ "$ip_allow" != any ] &&
  ! printf '%s' "$ip_allow" | grep -Eq '^[0-9A-Za-z.:/ -]+$'; then
  say "--ip-allow: \"$ip_allow\" is not a list of addresses, prefixes and keywords" >&2
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  say "run as root" >&2
  exit 1
fi
if [ -z "$ROOT" ] && dpkg-query -W -f '${Status}' monitoring-agent 2>/dev/null | grep -q 'install ok installed'; then
  say "the Debian package monitoring-agent is installed: upgrade it with apt or dpkg, not with this script" >&2
  exit 1
fi
if [ -z "$ROOT" ] && [ -e /etc/debian_version ]; then
  say "note: on Debian and Ubuntu the .deb (scripts/package.sh) is the supported way; continuing"
fi

BIN="${BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release --locked
  BIN=target/release/monitoring-agent
fi

# The agent's user comes first: --check-config resolves it (not a file that is replaced).
if [ -z "$ROOT" ] && ! id -u monitoring-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin monitoring-agent
  say "created the system user monitoring-agent"
fi

# --- Stage everything, then check the configuration with the new binary ----------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$BIN" "$stage/monitoring-agent"
for u in monitoring-agent.service contrib/systemd/monitoring-agent.socket contrib/systemd/monitoring-agent-socket.service; do
  sed 's#/usr/bin/monitoring-agent#/usr/local/bin/monitoring-agent#g' "$u" > "$stage/$(basename "$u")"
done
cp contrib/logrotate/monitoring-agent "$stage/logrotate"
cfg="$ROOT/etc/monitoring-agent/config.toml"
defaults="$ROOT/etc/default/monitoring-agent"
check_cfg=$cfg
[ -e "$cfg" ] || check_cfg=contrib/config.example.toml
check_defaults=$defaults
if [ ! -e "$defaults" ]; then
  cat > "$stage/default" <<'EOF'
# /etc/default/monitoring-agent: command-line flags that monitoring-agent.service appends to
# its command line (EnvironmentFile=, $ARGS), e.g. ARGS="--collector.textfile.directory=/srv/prom".
# Flags override /etc/monitoring-agent/config.toml; apply a change with
# `systemctl restart monitoring-agent`. `monitoring-agent --help` lists every flag.
ARGS=""
EOF
  check_defaults=$stage/default
fi
# ARGS as the unit will pass them (systemd splits an unquoted $ARGS at whitespace).
args=$(
  ARGS=""
  # shellcheck disable=SC1090
  . "$check_defaults"
  printf '%s' "$ARGS"
)
read -r -a argv <<<"$args" || true
if ! out=$("$stage/monitoring-agent" --check-config -c "$check_cfg" "${argv[@]}" 2>&1); then
  say "the new binary refuses the configuration ($check_cfg, ARGS of $check_defaults):" >&2
  printf '  %s\n' "$out" >&2
  say "nothing was changed" >&2
  exit 1
fi
say "$out"

# --- Install what differs ---------------------------------------------------------------------
changed=()
restart_needed=0
# put SOURCE DEST MODE LABEL: writes DEST (atomically) only when its content differs.
put() {
  local src=$1 dst=$2 mode=$3 label=$4
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    if [ "$(stat -c %a "$dst")" != "$mode" ]; then
      chmod "$mode" "$dst"
      changed+=("$label(mode)")
    fi
    return 1
  fi
  install -d -m 0755 "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst.install-tmp"
  mv -f "$dst.install-tmp" "$dst"
  changed+=("$label")
  return 0
}
[ -d "$ROOT/var/log/monitoring-agent" ] || { install -d -m 0750 "$ROOT/var/log/monitoring-agent"; changed+=(logdir); }
put "$stage/monitoring-agent" "$ROOT/usr/local/bin/monitoring-agent" 755 binary && restart_needed=1
units_changed=0
put "$stage/monitoring-agent.service" "$ROOT/etc/systemd/system/monitoring-agent.service" 644 unit && { units_changed=1; restart_needed=1; }
put "$stage/monitoring-agent.socket" "$ROOT/etc/systemd/system/monitoring-agent.socket" 644 socket-unit && units_changed=1
put "$stage/monitoring-agent-socket.service" "$ROOT/etc/systemd/system/monitoring-agent-socket.service" 644 socket-service-unit && units_changed=1
put "$stage/logrotate" "$ROOT/etc/logrotate.d/monitoring-agent" 644 logrotate || true
if [ -e "$cfg" ]; then
  say "keeping the existing $cfg"
else
  put contrib/config.example.toml "$cfg" 644 config || true
fi
if [ -e "$defaults" ]; then
  say "keeping the existing $defaults"
else
  put "$stage/default" "$defaults" 644 defaults || true
fi
dropin_dir="$ROOT/etc/systemd/system/monitoring-agent.service.d"
dropin="$dropin_dir/ip-address-allow.conf"
if [ "$ip_allow_given" = 1 ] && [ "$ip_allow" = any ]; then
  if [ -e "$dropin" ]; then
    rm -f "$dropin"
    rmdir "$dropin_dir" 2>/dev/null || true
    changed+=(ip-allow)
    units_changed=1
    restart_needed=1
  fi
elif [ "$ip_allow_given" = 1 ]; then
  printf '%s\n' \
    "# Written by scripts/install.sh --ip-allow: who may scrape (other addresses' scrapes are" \
    "# dropped unanswered). Change it with install.sh --ip-allow \"LIST\" (or any)." \
    "# The empty IPAddressAllow= first drops the unit's own default list (the lists add up)." \
    "[Service]" "IPAddressDeny=any" "IPAddressAllow=" "IPAddressAllow=$ip_allow" > "$stage/ip-allow"
  put "$stage/ip-allow" "$dropin" 644 ip-allow && { units_changed=1; restart_needed=1; }
fi

finish() {
  if [ ${#changed[@]} -eq 0 ]; then
    say "nothing changed"
  else
    say "changed: ${changed[*]}"
  fi
}
if [ -n "$ROOT" ]; then
  say "installed below $ROOT (no user created, systemd untouched)"
  finish
  exit 0
fi
if [ -d /run/systemd/system ]; then
  [ "$units_changed" = 1 ] && systemctl daemon-reload
  if ! systemctl --quiet is-enabled monitoring-agent.service 2>/dev/null; then
    systemctl --quiet enable monitoring-agent.service
    changed+=(enabled)
  fi
  if ! systemctl --quiet is-active monitoring-agent.service; then
    systemctl start monitoring-agent.service
    changed+=(started)
  elif [ "$restart_needed" = 1 ]; then
    systemctl restart monitoring-agent.service
    changed+=(restarted)
  fi
  systemctl --no-pager --lines=0 status monitoring-agent.service || true
else
  say "systemd is not running here; start the agent with:"
  say "  /usr/local/bin/monitoring-agent -d --log-file /var/log/monitoring-agent/monitoring-agent.log"
fi
finish
