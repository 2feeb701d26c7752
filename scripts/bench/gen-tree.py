#!/usr/bin/env python3
"""Synthetic /proc, /sys and rootfs trees for the scaling benchmark (issue 12).

    gen-tree.py ROOT --cpus N --disks N --ifaces N --mounts N

Writes ROOT/proc, ROOT/sys, ROOT/rootfs and ROOT/udev (empty), enough for the collectors whose
cost grows with the number of items: cpu, stat, schedstat, softnet, cpufreq (per CPU),
diskstats (per disk), netdev and netclass (per network interface), filesystem (per mount:
ROOT/proc/1/mounts lists ext4 mounts below ROOT/rootfs, real directories, so both exporters
statfs them). The same tree is given to the agent and to node_exporter with --path.procfs,
--path.sysfs, --path.rootfs and --path.udev.data. Values are fixed, plausible numbers: only
the shape (how many items) matters here."""
import argparse
import os


def w(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def letters(i):
    """0 -> a, 25 -> z, 26 -> aa: device names no default exclude pattern drops."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--disks", type=int, default=1)
    ap.add_argument("--ifaces", type=int, default=1)
    ap.add_argument("--mounts", type=int, default=1)
    a = ap.parse_args()
    proc, sys_, rootfs = (os.path.join(a.root, d) for d in ("proc", "sys", "rootfs"))
    os.makedirs(os.path.join(a.root, "udev"), exist_ok=True)

    # --- CPUs
    stat = ["cpu  %d 10 %d 900000 500 0 300 0 0 0" % (1000 * a.cpus, 400 * a.cpus)]
    for c in range(a.cpus):
        stat.append("cpu%d %d 10 %d 900000 500 0 300 0 0 0" % (c, 1000 + c, 400 + c))
    stat += [
        "intr 123456 " + " ".join(["0"] * 64),
        "ctxt 987654321",
        "btime 1700000000",
        "processes 123456",
        "procs_running 2",
        "procs_blocked 0",
        "softirq 1000 1 2 3 4 5 6 7 8 9 10",
    ]
    w(os.path.join(proc, "stat"), "\n".join(stat) + "\n")
    sched = ["version 15", "timestamp 4300000000"]
    for c in range(a.cpus):
        sched.append("cpu%d 0 0 0 0 0 0 %d %d %d" % (c, 100000 + c, 2000 + c, 3000 + c))
    w(os.path.join(proc, "schedstat"), "\n".join(sched) + "\n")
    # Linux 5.10+'s 13 columns: processed, dropped, time_squeezed, five zeros, cpu_collision,
    # received_rps, flow_limit_count, backlog_len, then the CPU's index (both exporters label
    # the line with it).
    w(os.path.join(proc, "net/softnet_stat"),
      "".join("%08x 00000000 00000001 00000000 00000000 00000000 00000000 00000000 "
              "00000000 00000000 00000000 00000000 %08x\n" % (1000 + c, c) for c in range(a.cpus)))
    cpu_root = os.path.join(sys_, "devices/system/cpu")
    rng = "0-%d\n" % (a.cpus - 1) if a.cpus > 1 else "0\n"
    for f in ("online", "possible", "present"):
        w(os.path.join(cpu_root, f), rng)
    w(os.path.join(cpu_root, "isolated"), "\n")
    for c in range(a.cpus):
        d = os.path.join(cpu_root, "cpu%d" % c)
        w(os.path.join(d, "topology/physical_package_id"), "%d\n" % (c // 64))
        w(os.path.join(d, "topology/core_id"), "%d\n" % (c % 64))
        w(os.path.join(d, "thermal_throttle/core_throttle_count"), "0\n")
        w(os.path.join(d, "thermal_throttle/package_throttle_count"), "0\n")
        for f, v in (("cpuinfo_cur_freq", "2400000"), ("cpuinfo_max_freq", "3600000"),
                     ("cpuinfo_min_freq", "800000"), ("scaling_cur_freq", "2400000"),
                     ("scaling_max_freq", "3600000"), ("scaling_min_freq", "800000"),
                     ("scaling_governor", "performance"),
                     # node_exporter 1.5 (procfs 0.8) fails the collector without these.
                     ("scaling_available_governors", "performance powersave"),
                     ("scaling_driver", "acpi-cpufreq"), ("related_cpus", str(c)),
                     ("scaling_setspeed", "<unsupported>")):
            w(os.path.join(d, "cpufreq", f), v + "\n")

    # --- disks
    w(os.path.join(proc, "diskstats"), "".join(
        "%4d %7d vd%s %d 10 %d 30 %d 50 %d 70 0 %d %d 0 0 0 0 5 6\n"
        % (252, i, letters(i), 1000 + i, 20000 + i, 400 + i, 6000 + i, 80 + i, 90 + i)
        for i in range(a.disks)))
    os.makedirs(os.path.join(sys_, "block"), exist_ok=True)

    # --- network interfaces
    dev = ["Inter-|   Receive                                                |  Transmit",
           " face |bytes    packets errs drop fifo frame compressed multicast|"
           "bytes    packets errs drop fifo colls carrier compressed"]
    for i in range(a.ifaces):
        dev.append("eth%d: %d %d 0 0 0 0 0 0 %d %d 0 0 0 0 0 0"
                   % (i, 100000 + i, 1000 + i, 200000 + i, 2000 + i))
    w(os.path.join(proc, "net/dev"), "\n".join(dev) + "\n")
    for i in range(a.ifaces):
        d = os.path.join(sys_, "class/net/eth%d" % i)
        attrs = {
            "addr_assign_type": "0", "addr_len": "6",
            "address": "52:54:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255),
            "broadcast": "ff:ff:ff:ff:ff:ff", "carrier": "1", "carrier_changes": "2",
            "carrier_up_count": "1", "carrier_down_count": "1", "dev_id": "0x0",
            "dormant": "0", "duplex": "full", "flags": "0x1003", "ifalias": "",
            "ifindex": str(i + 2), "iflink": str(i + 2), "link_mode": "0", "mtu": "1500",
            "name_assign_type": "4", "netdev_group": "0", "operstate": "up",
            "speed": "1000", "tx_queue_len": "1000", "type": "1",
            "statistics/rx_nohandler": "0",
        }
        for k, v in attrs.items():
            w(os.path.join(d, k), v + "\n")

    # --- mounts
    mounts = ["/dev/root / ext4 rw,relatime 0 0"]
    os.makedirs(rootfs, exist_ok=True)
    for i in range(a.mounts):
        mp = "/mnt/m%d" % i
        os.makedirs(rootfs + mp, exist_ok=True)
        mounts.append("/dev/vd%s %s ext4 rw,relatime 0 0" % (letters(i), mp))
    w(os.path.join(proc, "1/mounts"), "\n".join(mounts) + "\n")


main()
