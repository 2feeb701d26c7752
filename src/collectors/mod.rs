//! The collectors: one file per collector, each reading the operating system fresh on every
//! scrape and returning metric families under node_exporter's names; parsing is pure (text in,
//! values out), I/O happens in `collect` through [`Paths`]. This module is their registry
//! ([`KNOWN`]), the table of their options ([`Options`]) and what they read before the
//! sandbox ([`warm_up`]). The framework they share is [`crate::collector`], re-exported here
//! for them.

// No panic on input (issue 11): here and in every submodule, indexing and slicing that can
// panic, `unwrap`, `expect` and `panic!` are refused; use `get`, `split_once`,
// `strip_prefix`, slice patterns, `?`. Tests may (clippy.toml). Why this set and not
// `arithmetic_side_effects`: ARCHITECTURE.md, "No panic on input".
#![deny(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[cfg(test)]
pub(crate) use crate::collector::testutil;
pub use crate::collector::{
    concat, fsio, glob_names, is_f64, lines, options, parse_f64, read_parsed, read_to_string,
    sorted_names, split_byte, split_once_byte, two_words, CollectError, Collector, DeviceFilter,
    MemoRegex, NameCache, Paths,
};
pub use filesystem::{DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE};

/// A known collector: its name, whether node_exporter enables it by default, and how to
/// build it from the options.
pub struct Known {
    pub name: &'static str,
    pub default_on: bool,
    pub build: fn(&Options) -> Box<dyn Collector>,
}

macro_rules! known {
    ($($name:ident: $on:expr => $build:expr),* $(,)?) => {
        &[$(Known { name: stringify!($name), default_on: $on, build: $build }),*]
    };
}

/// Every collector this build knows, sorted by name.
pub const KNOWN: &[Known] = known! {
    arp: true => arp::collector,
    bcache: true => bcache::collector,
    bcachefs: true => bcachefs::collector,
    bonding: true => bonding::collector,
    btrfs: true => btrfs::collector,
    buddyinfo: false => buddyinfo::collector,
    cgroups: false => cgroups::collector,
    conntrack: true => conntrack::collector,
    cpu: true => cpu::collector,
    cpu_vulnerabilities: false => cpu_vulnerabilities::collector,
    cpufreq: true => cpufreq::collector,
    diskstats: true => diskstats::collector,
    dmi: true => dmi::collector,
    dmmultipath: true => dmmultipath::collector,
    drbd: false => drbd::collector,
    drm: false => drm::collector,
    edac: true => edac::collector,
    entropy: true => entropy::collector,
    ethtool: false => ethtool::collector,
    fibrechannel: true => fibrechannel::collector,
    filefd: true => filefd::collector,
    filesystem: true => filesystem::collector,
    hwmon: true => hwmon::collector,
    infiniband: true => infiniband::collector,
    interrupts: false => interrupts::collector,
    ipvs: true => ipvs::collector,
    kernel_hung: true => kernel_hung::collector,
    ksmd: false => ksmd::collector,
    lnstat: false => lnstat::collector,
    loadavg: true => |_| Box::new(loadavg::LoadAvg),
    logind: false => logind::collector,
    mdadm: true => mdadm::collector,
    meminfo: true => |_| Box::new(meminfo::MemInfo),
    meminfo_numa: false => meminfo_numa::collector,
    mountstats: false => mountstats::collector,
    netclass: true => netclass::collector,
    netdev: true => netdev::collector,
    netstat: true => netstat::collector,
    network_route: false => network_route::collector,
    nfs: true => nfs::collector,
    nfsd: true => nfsd::collector,
    ntp: false => ntp::collector,
    nvme: true => nvme::collector,
    nvmesubsystem: false => nvmesubsystem::collector,
    os: true => os::collector,
    pcidevice: false => pcidevice::collector,
    powersupplyclass: true => powersupplyclass::collector,
    pressure: true => pressure::collector,
    processes: false => processes::collector,
    qdisc: false => qdisc::collector,
    rapl: true => rapl::collector,
    runit: false => runit::collector,
    schedstat: true => schedstat::collector,
    selinux: true => selinux::collector,
    slabinfo: false => slabinfo::collector,
    sockstat: true => sockstat::collector,
    softirqs: false => softirqs::collector,
    softnet: true => softnet::collector,
    stat: true => stat::collector,
    supervisord: false => supervisord::collector,
    swap: false => swap::collector,
    sysctl: false => sysctl::collector,
    systemd: false => systemd::collector,
    tapestats: true => tapestats::collector,
    tcpstat: false => tcpstat::collector,
    textfile: true => textfile::collector,
    thermal_zone: true => thermal_zone::collector,
    time: true => |_| Box::new(time::Time),
    timex: true => timex::collector,
    udp_queues: true => udp_queues::collector,
    uname: true => |_| Box::new(uname::Uname),
    vmstat: true => vmstat::collector,
    watchdog: true => watchdog::collector,
    wifi: false => wifi::collector,
    xfrm: false => xfrm::collector,
    xfs: true => xfs::collector,
    zfs: true => zfs::collector,
    zoneinfo: false => zoneinfo::collector,
};

/// Looks a collector up by name.
pub fn known(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name == name)
}

/// Loads, before the sandbox closes the filesystem, what collectors need later and cannot
/// read once sandboxed: the time zone (glibc reads `/etc/localtime` on first use and would
/// silently fall back to UTC under Landlock), the OS release files (`/etc/os-release`) and
/// `/proc/self/mountstats` (readable by root only).
pub fn warm_up(paths: &Paths) {
    let _ = time::local_zone(0);
    os::warm_up(paths);
    // /proc/self/mountstats is 0400 root once privileges are dropped: opened now, re-read
    // through the kept descriptor.
    mountstats::warm_up(paths);
    // PID 1's mount table: hidden from the agent's user under hidepid (systemd's
    // ProtectProc=invisible), and the agent's own is the unit's namespace, not the host's.
    filesystem::warm_up(paths);
    // supervisord's host name: no name service under the sandbox.
    if let Some(u) = &paths.collector_files.supervisord_url {
        supervisord::warm_up(&supervisord::parse_url(u));
    }
}

/// Start-up, after the privilege drop and before the sandbox (on the single start-up thread):
/// the connections enabled collectors make as the agent's user. The system bus for `systemd`
/// (later reconnections happen under the sandbox, allowed by the collector's policy fragment);
/// the rtnetlink socket of `qdisc`'s live mode (kept for the process's life).
pub fn connect_before_sandbox(enabled: &[&str]) {
    // `systemd` and `logind` share one connection to the system bus.
    let on_bus: Vec<&str> = ["systemd", "logind"]
        .into_iter()
        .filter(|c| enabled.contains(c))
        .collect();
    if !on_bus.is_empty() {
        systemd::connect_before_sandbox(&on_bus.join(" and "));
    }
    // qdisc's live mode: its rtnetlink socket (no policy fragment: only `sendto` without an
    // address and `recvfrom` on it afterwards, both in the base policy).
    if enabled.contains(&"qdisc") {
        qdisc::connect_before_sandbox();
    }
}

/// The files outside procfs and sysfs that the enabled collectors read, each granted by
/// Landlock: the pci.ids file of `pcidevice` with names, the fixtures of `qdisc` and `wifi`,
/// `runit`'s service directory; and `supervisord`'s URL (its TCP port granted by Landlock).
/// The fixture options move out of `options` (start-up settings, as the textfile directory).
pub fn collector_files(
    enabled: &std::collections::BTreeSet<&'static str>,
    options: &mut Options,
) -> crate::collector::CollectorFiles {
    let nonempty = |p: Option<std::path::PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let qdisc = nonempty(options.qdisc.fixtures.take());
    let wifi = nonempty(options.wifi.fixtures.take());
    let runit_dir = runit::service_dir(&options.runit.servicedir.take());
    let runit_dir = enabled.contains("runit").then_some(runit_dir);
    // A start-up setting (Landlock's TCP port, the name resolved before the sandbox): it
    // moves out of the options, as the fixtures.
    let supervisord_url = enabled
        .contains("supervisord")
        .then(|| supervisord::url(&options.supervisord));
    options.supervisord.url = None;
    // What stays in the options: whether wifi reads fixtures or asks nl80211 (the
    // `netlink-generic` policy fragment, [`policy_users`]).
    options.wifi.with_fixtures = Some(wifi.is_some());
    crate::collector::CollectorFiles {
        pci_ids: enabled
            .contains("pcidevice")
            .then(|| pcidevice::pci_ids_file(&options.pcidevice))
            .flatten(),
        qdisc_fixtures: qdisc.filter(|_| enabled.contains("qdisc")),
        wifi_fixtures: wifi.filter(|_| enabled.contains("wifi")),
        runit_supervise: runit_dir
            .as_deref()
            .map(runit::outside_supervise_dirs)
            .unwrap_or_default(),
        runit_servicedir: runit_dir,
        supervisord_tcp_port: supervisord_url
            .as_deref()
            .and_then(|u| supervisord::parse_url(u).tcp_port()),
        supervisord_url,
    }
}

/// The modes of a collector that need a policy fragment of their own (fragments name them as
/// their users, beside collector names): the netlink modes, off by default, `netdev`'s
/// `--collector.netdev.address-info` (an `RTM_GETADDR` dump, off by default) and `wifi`'s live
/// nl80211 mode (`wifi` without `--collector.wifi.fixtures`).
pub const MODES: &[&str] = &[
    "arp.netlink",
    "netclass.netlink",
    "netdev.address-info",
    "netdev.netlink",
    "wifi.nl80211",
];

/// Who needs which sandbox policy fragment (`policy/fragments/`): the enabled collectors'
/// names, `<name>.netlink` for a collector in its netlink mode (`netlink-route`),
/// `netdev.address-info` for `--collector.netdev.address-info` (`netlink-route`), and
/// `wifi.nl80211` for `wifi` without fixtures (`netlink-generic`).
pub fn policy_users(enabled: &[&'static str], o: &Options) -> Vec<&'static str> {
    let mut v = enabled.to_vec();
    for c in enabled {
        let mode = match *c {
            "arp" if arp::uses_netlink(&o.arp) => "arp.netlink",
            "netclass" if netclass::uses_netlink(&o.netclass) => "netclass.netlink",
            "netdev" if netdev::uses_netlink(&o.netdev) => "netdev.netlink",
            "wifi" if wifi::uses_nl80211(&o.wifi) => "wifi.nl80211",
            _ => continue,
        };
        v.push(mode);
    }
    if enabled.contains(&"netdev") && netdev::uses_address_info(&o.netdev) {
        v.push("netdev.address-info");
    }
    v
}

crate::collector::options::options_table! {
    /// Every collector's options: flattened into the command line, and the file's
    /// `[collector]` table (`[collector.<name>]` per collector). Each type is declared in its
    /// collector's file.
    arp: arp::ArpOptions,
    bcache: bcache::BcacheOptions,
    cpu: cpu::CpuOptions,
    diskstats: diskstats::DiskstatsOptions,
    ethtool: ethtool::EthtoolOptions,
    filesystem: filesystem::FilesystemOptions,
    hwmon: hwmon::HwmonOptions,
    infiniband: infiniband::InfinibandOptions,
    interrupts: interrupts::InterruptsOptions,
    ipvs: ipvs::IpvsOptions,
    netclass: netclass::NetclassOptions,
    netdev: netdev::NetdevOptions,
    netstat: netstat::NetstatOptions,
    ntp: ntp::NtpOptions,
    pcidevice: pcidevice::PcideviceOptions,
    powersupplyclass: powersupplyclass::PowersupplyOptions,
    qdisc: qdisc::QdiscOptions,
    rapl: rapl::RaplOptions,
    runit: runit::RunitOptions,
    slabinfo: slabinfo::SlabinfoOptions,
    stat: stat::StatOptions,
    supervisord: supervisord::SupervisordOptions,
    sysctl: sysctl::SysctlOptions,
    systemd: systemd::SystemdOptions,
    tapestats: tapestats::TapestatsOptions,
    textfile: textfile::TextfileOptions,
    vmstat: vmstat::VmstatOptions,
    wifi: wifi::WifiOptions,
}

pub mod arp;
pub mod bcache;
pub mod bcachefs;
pub mod bonding;
pub mod btrfs;
pub mod buddyinfo;
pub mod cgroups;
pub mod conntrack;
pub mod cpu;
pub mod cpu_vulnerabilities;
pub mod cpufreq;
pub mod diskstats;
pub mod dmi;
pub mod dmmultipath;
pub mod drbd;
pub mod drm;
pub mod edac;
pub mod entropy;
pub mod ethtool;
pub mod fibrechannel;
pub mod filefd;
pub mod filesystem;
pub mod gojson;
pub mod hwmon;
pub mod infiniband;
pub mod interrupts;
pub mod ipvs;
pub mod kernel_hung;
pub mod ksmd;
pub mod lnstat;
pub mod loadavg;
pub mod logind;
pub mod mdadm;
pub mod meminfo;
pub mod meminfo_numa;
pub mod mountstats;
#[cfg(test)]
mod ne112;
pub mod netclass;
pub mod netclass_rtnl;
pub mod netdev;
pub mod netlink;
pub mod netstat;
pub mod network_route;
pub mod nfs;
pub mod nfsd;
pub mod ntp;
pub mod nvme;
pub mod nvmesubsystem;
pub mod os;
pub mod pcidevice;
pub mod powersupplyclass;
pub mod pressure;
pub mod process;
pub mod processes;
pub mod qdisc;
pub mod rapl;
pub mod runit;
pub mod schedstat;
pub mod selinux;
pub mod slabinfo;
pub mod sockstat;
pub mod softirqs;
pub mod softnet;
pub mod stat;
pub mod supervisord;
pub mod swap;
pub mod sysctl;
pub mod systemd;
pub mod tapestats;
pub mod tcpstat;
pub mod textfile;
pub mod thermal_zone;
pub mod time;
pub mod timex;
pub mod udp_queues;
pub mod uname;
pub mod vmstat;
pub mod watchdog;
pub mod wifi;
pub mod wifi_nl80211;
pub mod xfrm;
pub mod xfs;
pub mod zfs;
pub mod zoneinfo;
