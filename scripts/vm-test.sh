#!/usr/bin/env bash
# Proves monitoring-agent on a real Debian 12 kernel: boots Debian 12 (bookworm) with systemd as
# PID 1 and Debian's own kernel (linux-image-cloud-amd64, 6.1, Landlock ABI 2) in QEMU, runs the
# project's install path inside it (scripts/install.sh), and prints one PASS/FAIL line per check
# of scripts/vm-guest-check.sh, then `vm-test: N passed, M failed`. Exits 1 when any check fails,
# including "the VM did not boot" (never skips).
#
#   scripts/vm-test.sh                 the VM run (as root; installs what it needs with apt-get)
#   scripts/vm-test.sh --host          the same checks on this machine's kernel, without systemd
#                                      (scripts/vm-guest-check.sh --no-systemd)
#   scripts/vm-test.sh --deb           the Debian package's life cycle in the VM
#                                      (scripts/vm-deb-check.sh): two builds of scripts/package.sh,
#                                      the second with a higher version, installed over Debian's
#                                      prometheus-node-exporter, reloaded, upgraded, removed, purged
#   scripts/vm-test.sh --self-test-best-effort
#                                      harness self-test: the guest adds `--sandbox best-effort`
#                                      to the unit with a drop-in, so that the checks can pass on
#                                      ABI 2 with an agent that refuses enforce mode there
#
# Environment:
#   BIN=path        agent binary to test (default: cargo build --release --locked)
#   DEB=path DEB2=path   with --deb: the two packages to test (default: scripts/package.sh, then
#                   DEB_VERSION=<version>+vmtest1 scripts/package.sh)
#   VM_CACHE=dir    where the QEMU root and the guest image are cached, keyed by a hash of what
#                   goes into them (default /var/cache/monitoring-agent-vm); VM_REBUILD=1 rebuilds
#   VM_OUT=dir      where the last run's console log and results are kept (default target/vm-test)
#   VM_TIMEOUT=s    hard limit for the guest, boot to power-off (default 900; 1800 with --deb)
#   VM_MEMORY=MiB, VM_SMP=n         guest size (default 1024, 2)
#   VM_MIRROR, VM_SECURITY_MIRROR   Debian archive URLs (default deb.debian.org's)
#
# How: everything comes from Debian 12 packages. QEMU is Debian 12's qemu-system-x86 (7.2),
# installed with mmdebstrap into a private root under VM_CACHE and run with chroot, so the host's
# own packages are never changed (installing qemu-system-x86 on the host would remove the newer
# qemu-utils this machine image carries). The guest root filesystem is built by
# `mmdebstrap --variant=minbase` into an ext4 image; its kernel and initrd boot directly
# (-kernel/-initrd). TCG only: /dev/kvm may exist but cannot run Debian's kernel on every host.
# The cloud kernel has no 9p, so files travel as tar archives on raw virtio disks: /dev/vdb holds
# the repository tree and the binary, the guest writes its results as a tar to /dev/vdc. A unit
# enabled in the image (vm-test.service) runs scripts/vm-guest-check.sh at boot and powers off.
# No network: -nic none; every check inside the guest talks to its loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

mode=vm
self_test=0
for arg in "$@"; do
  case "$arg" in
    --host) mode=host ;;
    --deb) mode=deb ;;
    --self-test-best-effort) self_test=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "vm-test: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

say() { printf 'vm-test: %s\n' "$*"; }
# Milliseconds since the epoch, and a duration in seconds with one decimal.
now_ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

if [ "$(id -u)" -ne 0 ]; then
  echo "vm-test: run as root (it builds root filesystems, runs chroot, and the agent starts as root)" >&2
  exit 1
fi

t_start=$(now_ms)

# --- The agent binary -----------------------------------------------------------------------
t0=$(now_ms)
if [ "$mode" = deb ]; then
  [ "$self_test" = 1 ] && { echo "vm-test: --self-test-best-effort is for the VM run" >&2; exit 2; }
  # Two packages: the upgrade step needs a higher version. package.sh prints the .deb's path
  # on its last line and keeps each version's file apart (target/packages/).
  if [ -z "${DEB:-}" ]; then
    say "building the package (scripts/package.sh)"
    DEB=$(./scripts/package.sh | tail -n 1)
  fi
  if [ -z "${DEB2:-}" ]; then
    version=$(dpkg-deb -f "$DEB" Version)
    say "building the upgrade package (DEB_VERSION=$version+vmtest1 scripts/package.sh)"
    DEB2=$(DEB_VERSION="$version+vmtest1" ./scripts/package.sh | tail -n 1)
  fi
  for d in "$DEB" "$DEB2"; do
    [ -f "$d" ] || { echo "vm-test: package $d not found" >&2; exit 1; }
  done
  DEB=$(readlink -f "$DEB")
  DEB2=$(readlink -f "$DEB2")
  say "testing the packages $(basename "$DEB") then $(basename "$DEB2")"
  BIN=""
elif [ -n "${BIN:-}" ]; then
  [ -x "$BIN" ] || { echo "vm-test: BIN=$BIN is not an executable file" >&2; exit 1; }
  BIN=$(readlink -f "$BIN")
  say "testing the given binary $BIN"
else
  say "building the agent (cargo build --release --locked)"
  cargo build --release --locked
  BIN=$REPO/target/release/monitoring-agent
fi
t_bin=$(secs "$t0" "$(now_ms)")

# --- Host mode: the guest checks on this kernel, without systemd ------------------------------
if [ "$mode" = host ]; then
  [ "$self_test" = 1 ] && { echo "vm-test: --self-test-best-effort is for the VM run" >&2; exit 2; }
  results=$(mktemp -d)
  trap 'rm -rf "$results"' EXIT
  set +e
  bash scripts/vm-guest-check.sh --no-systemd --bin "$BIN" --src "$REPO" --results "$results"
  rc=$?
  set -e
  passed=0 failed=1
  if [ -f "$results/counts" ]; then
    passed=$(sed -n 's/^passed=\([0-9]*\)$/\1/p' "$results/counts")
    failed=$(sed -n 's/^failed=\([0-9]*\)$/\1/p' "$results/counts")
  fi
  [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  say "timings: binary ${t_bin}s, total $(secs "$t_start" "$(now_ms)")s"
  echo "vm-test: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
fi

# --- VM mode ---------------------------------------------------------------------------------
VM_CACHE=${VM_CACHE:-/var/cache/monitoring-agent-vm}
VM_OUT=${VM_OUT:-$REPO/target/vm-test}
# The package's life cycle installs, upgrades and purges under TCG: give it longer (measured:
# about 850 s of guest time on a 2-core host loaded by parallel builds).
if [ "$mode" = deb ]; then VM_TIMEOUT=${VM_TIMEOUT:-1800}; else VM_TIMEOUT=${VM_TIMEOUT:-900}; fi
VM_MEMORY=${VM_MEMORY:-1024}
VM_SMP=${VM_SMP:-2}
VM_MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
VM_SECURITY_MIRROR=${VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
# Full sources lines: the release, its updates and its security archive (the current kernel).
SOURCES=("deb $VM_MIRROR $SUITE main" "deb $VM_MIRROR $SUITE-updates main"
  "deb $VM_SECURITY_MIRROR $SUITE-security main")

# What the guest needs: systemd as PID 1 and its tools, Debian's cloud kernel, and what the
# checks use (curl to scrape, gdb to inject a syscall, procps, iproute2, capsh, useradd). For
# the package checks (--deb): the package's dependencies (adduser, debconf) and Debian's own
# prometheus-node-exporter, which the package replaces (disabled in the image: the sandbox checks
# use its port, and vm-deb-check.sh starts it itself for its baseline).
GUEST_PACKAGES=(systemd systemd-sysv dbus udev kmod linux-image-cloud-amd64 curl gdb procps
  iproute2 libcap2-bin passwd adduser debconf prometheus-node-exporter)
GUEST_IMAGE_SIZE=2G

# Runs at boot from vm-test.service: unpacks the payload from /dev/vdb, runs the checks of the
# payload's scripts/vm-guest-check.sh, writes the results as a tar to /dev/vdc. The unit then
# powers the machine off (which ends QEMU). /run is noexec here: work under /var/tmp.
# shellcheck disable=SC2016 # expanded in the guest
GUEST_RUNNER='#!/bin/bash
set -uo pipefail
w=/var/tmp/vm-test
rm -rf "$w" && mkdir -p "$w/results"
cut -d" " -f1 /proc/uptime > "$w/results/boot-seconds"
if tar -x -f /dev/vdb -C "$w" && [ -f "$w/vm-env" ]; then
  # shellcheck disable=SC1091
  . "$w/vm-env"
  echo "vm-test-runner: running the guest checks"
  if [ -n "${GUEST_DEBS:-}" ]; then
    # shellcheck disable=SC2086 # two paths
    set -- $GUEST_DEBS
    timeout -k 10 "${GUEST_TIMEOUT:-600}" bash "$w/src/scripts/vm-deb-check.sh" \
      --deb "$w/$1" --upgrade "$w/$2" --results "$w/results" 2>&1 | tee "$w/results/checks.log"
  else
    timeout -k 10 "${GUEST_TIMEOUT:-600}" bash "$w/src/scripts/vm-guest-check.sh" --systemd \
      --bin "$w/bin/monitoring-agent" --src "$w/src" --results "$w/results" ${GUEST_ARGS:-} 2>&1 |
      tee "$w/results/checks.log"
  fi
  echo "${PIPESTATUS[0]}" > "$w/results/rc"
else
  echo "vm-test-runner: cannot read the payload on /dev/vdb" | tee "$w/results/error"
fi
cut -d" " -f1 /proc/uptime > "$w/results/end-seconds"
journalctl -b -o short-monotonic --no-pager > "$w/results/journal.txt" 2>&1
dmesg > "$w/results/dmesg.txt" 2>&1
tar -c -f /dev/vdc -C "$w" results && sync
echo "vm-test-runner: results written to /dev/vdc"
'
GUEST_UNIT='[Unit]
Description=monitoring-agent VM test: checks from /dev/vdb, results to /dev/vdc, then power off
After=multi-user.target
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vm-test-runner
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=1h

[Install]
WantedBy=multi-user.target
'

hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
# Removes a build directory that an interrupted mmdebstrap may have left with the host's /proc,
# /sys or /dev mounted inside: those are unmounted first, and rm never crosses into another file
# system (a bind-mounted /dev must never be emptied).
clean_dir() {
  local d m
  for d in "$@"; do
    [ -e "$d" ] || continue
    findmnt -rn -o TARGET | grep -F "$(readlink -f "$d")/" | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$d"
  done
}

# Host tools: mmdebstrap (builds both roots), e2fsprogs (mkfs.ext4 -d), tar. Installed with
# apt-get when missing, without recommends (none is needed in mmdebstrap's root mode).
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v tar >/dev/null || need+=(tar)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$VM_CACHE" "$VM_OUT"
# One build at a time per cache (a concurrent run waits, then finds the cache built).
exec 9>"$VM_CACHE/.lock"
flock 9

# --- QEMU: Debian 12's qemu-system-x86 in a private root ---------------------------------------
QEMU_KEY=$(hash_of qemu-v1 "$SUITE" "${SOURCES[@]}" qemu-system-x86)
QROOT=$VM_CACHE/qemu-$QEMU_KEY
t0=$(now_ms)
t_qemu=cached
if [ "${VM_REBUILD:-0}" = 1 ] || [ ! -x "$QROOT/usr/bin/qemu-system-x86_64" ]; then
  say "building the QEMU root $QROOT (mmdebstrap, Debian 12 qemu-system-x86)"
  clean_dir "$QROOT" "$QROOT.tmp"
  if ! mmdebstrap --variant=essential --mode=root --include=qemu-system-x86 \
    "$SUITE" "$QROOT.tmp" "${SOURCES[@]}" >"$VM_OUT/mmdebstrap-qemu.log" 2>&1; then
    tail -20 "$VM_OUT/mmdebstrap-qemu.log" | sed 's/^/  | /'
    say "FAIL: could not build the QEMU root (log: $VM_OUT/mmdebstrap-qemu.log)"
    echo "vm-test: 0 passed, 1 failed"
    exit 1
  fi
  mv "$QROOT.tmp" "$QROOT"
  t_qemu="$(secs "$t0" "$(now_ms)")s"
fi

# --- The guest image: Debian 12 minbase, systemd, the cloud kernel ----------------------------
IMAGE_KEY=$(hash_of image-v1 "$SUITE" "${SOURCES[@]}" "${GUEST_PACKAGES[@]}" "$GUEST_RUNNER" \
  "$GUEST_UNIT" "$GUEST_IMAGE_SIZE")
IMG=$VM_CACHE/image-$IMAGE_KEY
t0=$(now_ms)
t_image=cached
if [ "${VM_REBUILD:-0}" = 1 ] || [ ! -f "$IMG/root.img" ]; then
  say "building the guest image $IMG (mmdebstrap --variant=minbase: ${GUEST_PACKAGES[*]})"
  clean_dir "$IMG" "$IMG.tmp"
  mkdir -p "$IMG.tmp"
  rootfs=$IMG.tmp/rootfs
  packages=$(IFS=,; echo "${GUEST_PACKAGES[*]}")
  if ! mmdebstrap --variant=minbase --mode=root --include="$packages" \
    "$SUITE" "$rootfs" "${SOURCES[@]}" >"$VM_OUT/mmdebstrap-image.log" 2>&1; then
    tail -20 "$VM_OUT/mmdebstrap-image.log" | sed 's/^/  | /'
    say "FAIL: could not build the guest image (log: $VM_OUT/mmdebstrap-image.log)"
    echo "vm-test: 0 passed, 1 failed"
    exit 1
  fi
  echo vm-test > "$rootfs/etc/hostname"
  # A fixed machine id: no first-boot logic (systemd-firstboot would prompt on the console).
  echo 6d6f6e69746f72696e672d6167656e74 > "$rootfs/etc/machine-id"
  printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$rootfs/etc/fstab"
  printf '%s' "$GUEST_RUNNER" > "$rootfs/usr/local/sbin/vm-test-runner"
  chmod 0755 "$rootfs/usr/local/sbin/vm-test-runner"
  printf '%s' "$GUEST_UNIT" > "$rootfs/etc/systemd/system/vm-test.service"
  mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/vm-test.service "$rootfs/etc/systemd/system/multi-user.target.wants/"
  # No login prompts on the console: nobody logs in.
  ln -sf /dev/null "$rootfs/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$rootfs/etc/systemd/system/getty@tty1.service"
  # Debian's node_exporter is installed but not started at boot (the port is the agent's).
  chroot "$rootfs" systemctl disable prometheus-node-exporter.service >/dev/null 2>&1 || true
  rm -f "$rootfs"/etc/systemd/system/*.wants/prometheus-node-exporter*
  # shellcheck disable=SC2016 # dpkg-query's format
  chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' > "$IMG.tmp/packages.txt"
  kernel=$(find "$rootfs/boot" -name 'vmlinuz-*' | sort | tail -1)
  initrd=$(find "$rootfs/boot" -name 'initrd.img-*' | sort | tail -1)
  if [ -z "$kernel" ] || [ -z "$initrd" ]; then
    say "FAIL: the guest image has no kernel or initrd in /boot"
    echo "vm-test: 0 passed, 1 failed"
    exit 1
  fi
  cp "$kernel" "$IMG.tmp/vmlinuz"
  cp "$initrd" "$IMG.tmp/initrd.img"
  basename "$kernel" | sed 's/^vmlinuz-//' > "$IMG.tmp/kernel-version"
  mkfs.ext4 -q -F -L vm-root -d "$rootfs" "$IMG.tmp/root.img" "$GUEST_IMAGE_SIZE" >/dev/null
  clean_dir "$rootfs"
  mv "$IMG.tmp" "$IMG"
  t_image="$(secs "$t0" "$(now_ms)")s"
  # Images of other package lists or runner versions are not used any more.
  for old in "$VM_CACHE"/image-*; do
    [ "$old" = "$IMG" ] || clean_dir "$old"
  done
fi
flock -u 9
say "guest image: Debian $SUITE, kernel $(cat "$IMG/kernel-version"), $(wc -l < "$IMG/packages.txt") packages"

# --- One run: payload in, boot, results out ---------------------------------------------------
# The run directory lives inside the QEMU root, where the chroot'ed QEMU sees it.
RUN=$(mktemp -d "$QROOT/vmrun.XXXXXX")
RUN_IN=/${RUN#"$QROOT"/}
trap 'rm -rf "$RUN"' EXIT
# The cached image is only read: QEMU writes the guest's changes to a temporary overlay
# (snapshot=on). A hard link costs nothing (same filesystem); a sparse copy otherwise.
ln "$IMG/root.img" "$RUN/root.img" 2>/dev/null || cp --sparse=always "$IMG/root.img" "$RUN/root.img"
cp "$IMG/vmlinuz" "$IMG/initrd.img" "$RUN/"

# The payload: the repository tree (what install.sh needs), minus build output and git, the
# binary, and the guest's settings.
mkdir -p "$RUN/payload/src" "$RUN/payload/bin"
tar -C "$REPO" --exclude=./target --exclude=./.git --exclude=./.vm-cache -cf - . | tar -C "$RUN/payload/src" -xf -
guest_debs=""
if [ "$mode" = deb ]; then
  mkdir -p "$RUN/payload/debs"
  cp "$DEB" "$DEB2" "$RUN/payload/debs/"
  guest_debs="debs/$(basename "$DEB") debs/$(basename "$DEB2")"
else
  install -m 0755 "$BIN" "$RUN/payload/bin/monitoring-agent"
fi
guest_args=""
[ "$self_test" = 1 ] && guest_args="--self-test-best-effort"
printf 'GUEST_TIMEOUT=%s\nGUEST_ARGS=%q\nGUEST_DEBS=%q\n' "$((VM_TIMEOUT - 60))" "$guest_args" \
  "$guest_debs" > "$RUN/payload/vm-env"
tar -C "$RUN/payload" -cf "$RUN/in.tar" .
rm -rf "$RUN/payload"
truncate -s 64M "$RUN/out.img"

say "booting Debian $SUITE in QEMU (TCG, ${VM_SMP} CPUs, ${VM_MEMORY} MiB, timeout ${VM_TIMEOUT}s); console: $VM_OUT/console.log"
# -accel tcg: KVM cannot be relied on (nested hosts). -cpu max: TCG's richest CPU, as is:
# measured, `-cpu max,svm=off,vmx=off` broke the guest's systemd (mount units "finished, but
# there is no mount", namespacing EBUSY). -nodefaults: no CD-ROM, floppy, VGA or NIC to probe;
# -nic none: no network at all. -no-reboot: a guest panic (panic=1) ends QEMU.
# snapshot=on: the cached root image is never written.
t0=$(now_ms)
set +e
timeout --kill-after=10 "$VM_TIMEOUT" chroot "$QROOT" /usr/bin/qemu-system-x86_64 \
  -accel tcg -machine pc -cpu max -smp "$VM_SMP" -m "$VM_MEMORY" \
  -nodefaults -display none -monitor none -nic none -no-reboot \
  -serial "file:$RUN_IN/console.log" \
  -kernel "$RUN_IN/vmlinuz" -initrd "$RUN_IN/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw panic=1 systemd.show_status=auto" \
  -drive "file=$RUN_IN/root.img,format=raw,if=virtio,snapshot=on" \
  -drive "file=$RUN_IN/in.tar,format=raw,if=virtio,readonly=on" \
  -drive "file=$RUN_IN/out.img,format=raw,if=virtio" \
  >"$RUN/qemu.log" 2>&1
qemu_rc=$?
set -e
t_vm=$(secs "$t0" "$(now_ms)")

# Keep the run's artefacts for reading after the run.
rm -rf "$VM_OUT/results"
cp "$RUN/qemu.log" "$VM_OUT/qemu.log"
[ -f "$RUN/console.log" ] && cp "$RUN/console.log" "$VM_OUT/console.log"
tar -x -f "$RUN/out.img" -C "$VM_OUT" 2>/dev/null || true

passed=0 failed=0
host_fail() {
  echo "FAIL  [vm]  $*"
  failed=$((failed + 1))
}
console_tail() {
  echo "      --- last lines of the console ($VM_OUT/console.log) ---"
  tail -n 40 "$VM_OUT/console.log" 2>/dev/null | sed 's/^/      | /'
  if [ -s "$VM_OUT/qemu.log" ]; then
    echo "      --- QEMU's output ---"
    tail -n 20 "$VM_OUT/qemu.log" | sed 's/^/      | /'
  fi
}

if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
  host_fail "the guest did not power off within VM_TIMEOUT=${VM_TIMEOUT}s (QEMU killed)"
  console_tail
elif [ "$qemu_rc" -ne 0 ]; then
  host_fail "QEMU exited with status $qemu_rc before the guest powered off"
  console_tail
fi
if [ -f "$VM_OUT/results/checks.log" ]; then
  echo "PASS  [vm]  Debian $SUITE booted with systemd as PID 1 and reported (${t_vm}s boot to power-off)"
  passed=$((passed + 1))
  echo
  cat "$VM_OUT/results/checks.log"
  echo
  g_passed=0 g_failed=0
  if [ -f "$VM_OUT/results/counts" ]; then
    g_passed=$(sed -n 's/^passed=\([0-9]*\)$/\1/p' "$VM_OUT/results/counts")
    g_failed=$(sed -n 's/^failed=\([0-9]*\)$/\1/p' "$VM_OUT/results/counts")
  else
    host_fail "the guest checks ended without their counts (killed by the guest timeout?)"
  fi
  passed=$((passed + g_passed))
  failed=$((failed + g_failed))
  if [ "$(cat "$VM_OUT/results/rc" 2>/dev/null)" != 0 ] && [ "$g_failed" -eq 0 ]; then
    host_fail "the guest checks exited with status $(cat "$VM_OUT/results/rc" 2>/dev/null)"
  fi
  say "guest journal: $VM_OUT/results/journal.txt, kernel log: $VM_OUT/results/dmesg.txt"
else
  reason="the guest wrote no results to /dev/vdc"
  [ -f "$VM_OUT/results/error" ] && reason="$reason: $(cat "$VM_OUT/results/error")"
  host_fail "$reason"
  [ "$qemu_rc" -eq 0 ] && console_tail
fi

boot=$(cat "$VM_OUT/results/boot-seconds" 2>/dev/null || echo '?')
say "timings: binary ${t_bin}s, QEMU root ${t_qemu}, guest image ${t_image}, guest boot to test ${boot}s, VM run ${t_vm}s, total $(secs "$t_start" "$(now_ms)")s"
echo "vm-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
