#!/usr/bin/env bash
# Runs the whole test suite on Debian, as root (the privilege, sandbox and daemon tests need it):
# cargo test, then scripts/vm-test.sh on this kernel and on Debian 12's own kernel in QEMU.
# Installs what the tests use (promtool, node_exporter, wrk, gdb, strace, capsh, lintian,
# dbus-daemon and python3-dbus for the mock systemd of tests/systemd_dbus.rs, gnuplot for the
# soak's plot) when
# missing, creates the agent's system user when missing, builds the Debian package
# (scripts/package.sh, a release build) for tests/package_deb.rs, then runs every test and a
# 60-second soak (scripts/soak.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: must run as root: the privilege-drop, sandbox and daemon tests start the agent as root" >&2
  exit 1
fi

pkgs=(prometheus prometheus-node-exporter wrk gdb strace libcap2-bin procps iproute2 passwd lintian man-db binutils dbus python3-dbus python3-gi openssl curl gnuplot-nox ethtool)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  # Packages must not start their services here: our tests start what they need themselves.
  cleanup_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    cleanup_policy=1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  [ "$cleanup_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# The agent drops to this user after start-up (see README, "The agent's user").
if ! id -u monitoring-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin monitoring-agent
fi

# The Landlock ABI the sandbox tests expect from the kernel. CI states it (.ci/run: 7, Linux
# 6.18's, the project's reference machine), so that a kernel offering less fails the sandbox
# tests instead of passing them silently. Unstated, it is the running kernel's own, asked with
# landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) (system call 444 on x86_64
# and aarch64; perl is Essential on Debian); a kernel without Landlock answers -1: ABI 0.
kernel_landlock_abi() {
  case "$(uname -m)" in
    x86_64|aarch64) ;;
    *) echo "scripts/test.sh: cannot ask the Landlock ABI on $(uname -m); state MONITORING_AGENT_EXPECT_LANDLOCK_ABI" >&2
       return 1 ;;
  esac
  perl -e 'my $v = syscall(444, 0, 0, 1); print(($v < 0 ? 0 : $v), "\n")'
}
if [ -n "${MONITORING_AGENT_EXPECT_LANDLOCK_ABI:-}" ]; then
  echo "scripts/test.sh: expecting Landlock ABI $MONITORING_AGENT_EXPECT_LANDLOCK_ABI (stated by MONITORING_AGENT_EXPECT_LANDLOCK_ABI)"
else
  MONITORING_AGENT_EXPECT_LANDLOCK_ABI=$(kernel_landlock_abi)
  echo "scripts/test.sh: expecting Landlock ABI $MONITORING_AGENT_EXPECT_LANDLOCK_ABI (the kernel's own; state MONITORING_AGENT_EXPECT_LANDLOCK_ABI to pin it)"
fi
export MONITORING_AGENT_EXPECT_LANDLOCK_ABI

cargo build --locked --all-targets
# The package tests/package_deb.rs inspects and runs lintian on. If this fails, that test runs
# package.sh itself and fails with its output.
if deb=$(./scripts/package.sh | tail -n 1); then
  export MONITORING_AGENT_DEB="$deb"
  echo "scripts/test.sh: package $MONITORING_AGENT_DEB"
else
  echo "scripts/test.sh: scripts/package.sh failed; tests/package_deb.rs will say why" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: one failing test binary does not hide the failures of the others.
cargo test --locked --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The soak (scripts/soak.sh): the release binary (built by package.sh above) for 60 s under
# wrk, signals and log rotation, checked against its goals; prints `soak: N passed, M failed`
# (one per goal). Its report stays in target/soak/: RELIABILITY.md reports the 10-minute run.
./scripts/soak.sh 60s 2>&1 | tee -a "$log"
soak_status=${PIPESTATUS[0]}
[ "$soak_status" -eq 0 ] || status=$soak_status
# The sandbox on real kernels (scripts/vm-test.sh): this machine's own kernel without systemd,
# then Debian 12's own kernel (6.1, Landlock ABI 2) under systemd 252 in QEMU, then the Debian
# package's life cycle in that VM (install, reload, upgrade, remove, purge). Each prints
# `vm-test: N passed, M failed`; a VM that cannot boot is a failure, never a skip. The release
# binary was built by package.sh above (vm-test.sh builds it otherwise).
for mode in --host --vm --deb; do
  args=()
  [ "$mode" = --vm ] || args=("$mode")
  # --deb: the package built above, and a second one with a higher version for the upgrade.
  DEB=${MONITORING_AGENT_DEB:-} ./scripts/vm-test.sh "${args[@]}" 2>&1 | tee -a "$log"
  vm_status=${PIPESTATUS[0]}
  [ "$vm_status" -eq 0 ] || status=$vm_status
done
set -e
# One closing line for the whole suite, summed over every test binary, the soak's goals and the
# VM checks.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^(vm-test|soak): [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
