//! `ethtool` collector (off by default, as in node_exporter 1.12): per network interface of
//! `/sys/class/net`, the `SIOCETHTOOL` ioctl on an `AF_INET` datagram socket (opened per
//! scrape), as node_exporter 1.12's `ethtool_linux.go` (which uses github.com/safchain/ethtool):
//!
//! - `ETHTOOL_GDRVINFO`: `node_ethtool_info{bus_info,device,driver,expansion_rom_version,
//!   firmware_version,version} 1`;
//! - `ETHTOOL_GSSET_INFO` (`ETH_SS_STATS`), `ETHTOOL_GSTRINGS` and `ETHTOOL_GSTATS`: the
//!   driver's statistics, one untyped family per statistic, `node_ethtool_<name>` (the name
//!   sanitized, lower-cased, `rx`/`tx` words spelled `received`/`transmitted`; seven common
//!   names get node_exporter's fixed names, e.g. `rx_bytes` ->
//!   `node_ethtool_received_bytes_total`), HELP `Network interface <name>`; statistics whose
//!   names collide after sanitizing are all dropped, as 1.12;
//! - `ETHTOOL_GSET` (the legacy 32-bit link mode masks, as safchain's `CmdGet`):
//!   `node_network_{supported,advertised}_speed_bytes{device,duplex,mode}`,
//!   `node_network_supported_port_info{device,type}`, `node_network_autonegotiate{,_supported,
//!   _advertised}`, `node_network_pause_{supported,advertised}`,
//!   `node_network_asymmetricpause_{supported,advertised}`.
//!
//! All of these requests are unprivileged (the agent has no `CAP_NET_ADMIN`). A request a
//! device does not support (`EOPNOTSUPP`) is logged at debug level, another error at error
//! level, and the device's other requests still run (1.12). Flags:
//! `--collector.ethtool.device-include`, `--collector.ethtool.device-exclude` (both apply when
//! both are set, as 1.12's `deviceFilter`) and `--collector.ethtool.metrics-include` (default
//! `.*`, matched unanchored against the sanitized statistic name). Sandbox: the `ethtool`
//! policy fragment (`policy/fragments/ethtool.json`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use nix::errno::Errno;
use regex::Regex;

use super::options::{collector_options, Pattern};
use super::sysctl::sanitize_metric_name;
use super::{CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the ethtool collector (`[collector.ethtool]` in the file).
    pub struct EthtoolOptions {
        /// Regexp of ethtool devices to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.ethtool.device-include", long = "collector.ethtool.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of ethtool devices to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.ethtool.device-exclude", long = "collector.ethtool.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// Regexp of ethtool stats to include. [default: .*]
        #[arg(id = "collector.ethtool.metrics-include", long = "collector.ethtool.metrics-include", value_name = "REGEX")]
        pub metrics_include: Option<Pattern>,
    }
}

/// What `ETHTOOL_GDRVINFO` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrvInfo {
    pub driver: String,
    pub version: String,
    pub fw_version: String,
    pub bus_info: String,
    pub erom_version: String,
}

/// What `ETHTOOL_GSET` tells (the legacy `struct ethtool_cmd`'s masks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub supported: u32,
    pub advertising: u32,
    pub autoneg: u8,
}

/// One device's answers: each request may fail on its own.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub link: Result<LinkInfo, Errno>,
    pub drv: Result<DrvInfo, Errno>,
    /// Statistic name -> value, in the driver's order (a repeated name: the last one wins, as
    /// in safchain's map).
    pub stats: Result<Vec<(String, u64)>, Errno>,
}

// ethtool_link_mode_bit_indices (linux/ethtool.h) below 32: the legacy masks hold no more.
const AUTONEG: u32 = 6;
const PAUSE: u32 = 13;
const ASYM_PAUSE: u32 = 14;

/// node_exporter's port types: name, bit.
const PORTS: &[(&str, u32)] = &[
    ("TP", 7),
    ("AUI", 8),
    ("MII", 9),
    ("FIBRE", 10),
    ("BNC", 11),
    ("Backplane", 16),
];

/// node_exporter's speed table restricted to the bits a 32-bit mask can hold (1.12 tests
/// `uint32 & (1<<bit)`, always 0 for the higher bits; its `2500baseT` is bit 47): bit, Mb/s,
/// duplex, PHY.
const SPEEDS: &[(u32, u32, &str, &str)] = &[
    (0, 10, "half", "T"),
    (1, 10, "full", "T"),
    (2, 100, "half", "T"),
    (3, 100, "full", "T"),
    (4, 1000, "half", "T"),
    (5, 1000, "full", "T"),
    (12, 10000, "full", "T"),
    (17, 1000, "full", "KX"),
    (18, 10000, "full", "KX4"),
    (19, 10000, "full", "KR"),
    (20, 10000, "full", "R_FEC"),
    (21, 20000, "full", "MLD2"),
    (22, 20000, "full", "KR2"),
    (23, 40000, "full", "KR4"),
    (24, 40000, "full", "CR4"),
    (25, 40000, "full", "SR4"),
    (26, 40000, "full", "LR4"),
    (27, 56000, "full", "KR4"),
    (28, 56000, "full", "CR4"),
    (29, 56000, "full", "SR4"),
    (30, 56000, "full", "LR4"),
    (31, 25000, "full", "CR"),
];

/// node_exporter's pre-populated descriptions: key (a sanitized statistic name or a link
/// entry), metric name, HELP.
const ENTRIES: &[(&str, &str, &str)] = &[
    (
        "rx_bytes",
        "node_ethtool_received_bytes_total",
        "Network interface bytes received",
    ),
    (
        "rx_dropped",
        "node_ethtool_received_dropped_total",
        "Number of received frames dropped",
    ),
    (
        "rx_errors",
        "node_ethtool_received_errors_total",
        "Number of received frames with errors",
    ),
    (
        "rx_packets",
        "node_ethtool_received_packets_total",
        "Network interface packets received",
    ),
    (
        "tx_bytes",
        "node_ethtool_transmitted_bytes_total",
        "Network interface bytes sent",
    ),
    (
        "tx_errors",
        "node_ethtool_transmitted_errors_total",
        "Number of sent frames with errors",
    ),
    (
        "tx_packets",
        "node_ethtool_transmitted_packets_total",
        "Network interface packets sent",
    ),
    (
        "supported_port",
        "node_network_supported_port_info",
        "Type of ports or PHYs supported by network device",
    ),
    (
        "supported_speed",
        "node_network_supported_speed_bytes",
        "Combination of speeds and features supported by network device",
    ),
    (
        "supported_autonegotiate",
        "node_network_autonegotiate_supported",
        "If this port device supports autonegotiate",
    ),
    (
        "supported_pause",
        "node_network_pause_supported",
        "If this port device supports pause frames",
    ),
    (
        "supported_asymmetricpause",
        "node_network_asymmetricpause_supported",
        "If this port device supports asymmetric pause frames",
    ),
    (
        "advertised_speed",
        "node_network_advertised_speed_bytes",
        "Combination of speeds and features offered by network device",
    ),
    (
        "advertised_autonegotiate",
        "node_network_autonegotiate_advertised",
        "If this port device offers autonegotiate",
    ),
    (
        "advertised_pause",
        "node_network_pause_advertised",
        "If this port device offers pause capability",
    ),
    (
        "advertised_asymmetricpause",
        "node_network_asymmetricpause_advertised",
        "If this port device offers asymmetric pause capability",
    ),
    (
        "autonegotiate",
        "node_network_autonegotiate",
        "If this port is using autonegotiate",
    ),
];

const INFO_HELP: &str = "A metric with a constant '1' value labeled by bus_info, device, driver, expansion_rom_version, firmware_version, version.";

fn entry(key: &str) -> Option<(&'static str, &'static str)> {
    ENTRIES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, n, h)| (*n, *h))
}

static RX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("(^|_)rx(_|$)").unwrap_or_else(|_| unreachable!("built-in")));
static TX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("(^|_)tx(_|$)").unwrap_or_else(|_| unreachable!("built-in")));

/// node_exporter's `buildEthtoolFQName`.
pub fn fq_name(metric: &str) -> String {
    let lower = sanitize_metric_name(metric).to_lowercase();
    let name = lower.trim_start_matches('_');
    let name = RX.replace_all(name, "${1}received${2}");
    let name = TX.replace_all(&name, "${1}transmitted${2}");
    format!("node_ethtool_{name}")
}

/// The families of one scrape, `devices` already filtered.
pub fn families(devices: &[Device], metrics: &Regex) -> Vec<MetricFamily> {
    let mut fams: BTreeMap<String, MetricFamily> = BTreeMap::new();
    fn gauge(
        fams: &mut BTreeMap<String, MetricFamily>,
        key: &str,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        if let Some((name, help)) = entry(key) {
            fams.entry(name.to_string())
                .or_insert_with(|| MetricFamily::gauge(name, help))
                .push(labels, v);
        }
    }
    let mut untyped: Vec<(String, &'static str, String, String, f64)> = Vec::new();
    for d in devices {
        let dev = d.name.as_str();
        match &d.link {
            Ok(l) => {
                for (prefix, modes) in [("supported", l.supported), ("advertised", l.advertising)] {
                    let key = format!("{prefix}_speed");
                    for (bit, speed, duplex, phy) in SPEEDS {
                        if modes & (1 << bit) != 0 {
                            let mode = format!("{speed}base{phy}");
                            gauge(
                                &mut fams,
                                &key,
                                &[("device", dev), ("duplex", duplex), ("mode", &mode)],
                                f64::from(*speed) * 1_000_000.0 / 8.0,
                            );
                        }
                    }
                    if prefix == "supported" {
                        for (t, bit) in PORTS {
                            if modes & (1 << bit) != 0 {
                                gauge(
                                    &mut fams,
                                    "supported_port",
                                    &[("device", dev), ("type", t)],
                                    1.0,
                                );
                            }
                        }
                    }
                    for (what, bit) in [
                        ("autonegotiate", AUTONEG),
                        ("pause", PAUSE),
                        ("asymmetricpause", ASYM_PAUSE),
                    ] {
                        let v = if modes & (1 << bit) != 0 { 1.0 } else { 0.0 };
                        gauge(
                            &mut fams,
                            &format!("{prefix}_{what}"),
                            &[("device", dev)],
                            v,
                        );
                    }
                }
                gauge(
                    &mut fams,
                    "autonegotiate",
                    &[("device", dev)],
                    f64::from(l.autoneg),
                );
            }
            Err(e) => report("link info", dev, *e),
        }
        match &d.drv {
            Ok(i) => fams
                .entry("node_ethtool_info".into())
                .or_insert_with(|| MetricFamily::gauge("node_ethtool_info", INFO_HELP))
                .push(
                    &[
                        ("bus_info", &i.bus_info),
                        ("device", dev),
                        ("driver", &i.driver),
                        ("expansion_rom_version", &i.erom_version),
                        ("firmware_version", &i.fw_version),
                        ("version", &i.version),
                    ],
                    1.0,
                ),
            Err(e) => report("driver info", dev, *e),
        }
        let stats = match &d.stats {
            Ok(s) => s,
            Err(e) => {
                report("stats", dev, *e);
                continue;
            }
        };
        // As a Go map: a repeated raw name keeps its last value.
        let raw: BTreeMap<&str, u64> = stats.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // Full name -> sanitized name, None once two statistics claim it (all dropped).
        let mut by_fq: BTreeMap<String, Option<(String, u64)>> = BTreeMap::new();
        for (metric, v) in raw {
            let name = sanitize_metric_name(metric);
            if !metrics.is_match(&name) {
                continue;
            }
            let fq = fq_name(&name);
            match by_fq.get_mut(&fq) {
                Some(slot) => {
                    log::debug!("ethtool: dropping duplicate metric name {fq} of device {dev}");
                    *slot = None;
                }
                None => {
                    by_fq.insert(fq, Some((name, v)));
                }
            }
        }
        for (fq, slot) in by_fq {
            let Some((name, v)) = slot else { continue };
            let (fam, help) = match entry(&name) {
                Some((n, h)) => (n.to_string(), h.to_string()),
                None => (fq, format!("Network interface {name}")),
            };
            untyped.push((fam, "device", dev.to_string(), help, v as f64));
        }
    }
    for (name, label, dev, help, v) in untyped {
        fams.entry(name.clone())
            .or_insert_with(|| MetricFamily::untyped(name, help))
            .push(&[(label, &dev)], v);
    }
    fams.into_values().collect()
}

/// 1.12's logging of a failed request: `EOPNOTSUPP` (the device does not do it) at debug
/// level, anything else at error level.
fn report(what: &str, dev: &str, e: Errno) {
    if e == Errno::EOPNOTSUPP {
        log::debug!("ethtool {what} error on device {dev}: {e}");
    } else {
        log::error!("ethtool {what} error on device {dev}: {e}");
    }
}

/// The `SIOCETHTOOL` requests, on one `AF_INET` datagram socket.
pub mod ioctl {
    use std::os::fd::{AsRawFd, OwnedFd};

    use nix::errno::Errno;
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

    use super::{DrvInfo, LinkInfo};

    nix::ioctl_readwrite_bad!(siocethtool, libc::SIOCETHTOOL, libc::ifreq);

    const ETHTOOL_GSET: u32 = 0x01;
    const ETHTOOL_GDRVINFO: u32 = 0x03;
    const ETHTOOL_GSTRINGS: u32 = 0x1b;
    const ETHTOOL_GSTATS: u32 = 0x1d;
    const ETHTOOL_GSSET_INFO: u32 = 0x37;
    const ETH_SS_STATS: u32 = 1;
    const ETH_GSTRING_LEN: usize = 32;
    /// `sizeof(struct ethtool_drvinfo)` and `sizeof(struct ethtool_cmd)`.
    const DRVINFO_LEN: usize = 196;
    const CMD_LEN: usize = 44;
    /// Beyond this many statistics a device is refused (safchain's limit is of this order).
    const MAX_STATS: usize = 1 << 16;

    /// The socket of one scrape.
    pub struct Ethtool(OwnedFd);

    fn u32_at(b: &[u8], off: usize) -> u32 {
        b.get(off..off + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_ne_bytes)
            .unwrap_or(0)
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        b.get(off..off + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_ne_bytes)
            .unwrap_or(0)
    }

    /// A NUL-padded C string field (safchain trims the NULs).
    fn cstr(b: &[u8], off: usize, len: usize) -> String {
        let f = b.get(off..off + len).unwrap_or_default();
        let end = f.iter().position(|c| *c == 0).unwrap_or(f.len());
        String::from_utf8_lossy(f.get(..end).unwrap_or_default()).into_owned()
    }

    fn command(cmd: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len.max(4)];
        if let Some(h) = b.get_mut(..4) {
            h.copy_from_slice(&cmd.to_ne_bytes());
        }
        b
    }

    impl Ethtool {
        /// `socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, 0)`, what the `ethtool` fragment allows.
        pub fn open() -> Result<Ethtool, Errno> {
            socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map(Ethtool)
        }

        /// One `SIOCETHTOOL` request on `dev`; `buf` is the command structure (its first
        /// `u32` the command) and must be as large as the kernel's answer.
        fn call(&self, dev: &str, buf: &mut [u8]) -> Result<(), Errno> {
            let name = dev.as_bytes();
            if name.len() >= libc::IFNAMSIZ || name.contains(&0) {
                return Err(Errno::ENODEV);
            }
            let mut ifr_name = [0 as libc::c_char; libc::IFNAMSIZ];
            for (d, s) in ifr_name.iter_mut().zip(name) {
                *d = *s as libc::c_char;
            }
            let mut ifr = libc::ifreq {
                ifr_name,
                ifr_ifru: libc::__c_anonymous_ifr_ifru {
                    ifru_data: buf.as_mut_ptr().cast(),
                },
            };
            // SAFETY: `ifr` is a valid `struct ifreq` with a NUL-terminated name, and its
            // `ifr_data` points to `buf`, which lives through the call and is at least as large
            // as what the kernel writes for this command (each caller sizes it).
            unsafe { siocethtool(self.0.as_raw_fd(), &mut ifr) }.map(|_| ())
        }

        pub fn driver_info(&self, dev: &str) -> Result<DrvInfo, Errno> {
            let mut b = command(ETHTOOL_GDRVINFO, DRVINFO_LEN);
            self.call(dev, &mut b)?;
            Ok(DrvInfo {
                driver: cstr(&b, 4, 32),
                version: cstr(&b, 36, 32),
                fw_version: cstr(&b, 68, 32),
                bus_info: cstr(&b, 100, 32),
                erom_version: cstr(&b, 132, 32),
            })
        }

        pub fn link_info(&self, dev: &str) -> Result<LinkInfo, Errno> {
            let mut b = command(ETHTOOL_GSET, CMD_LEN);
            self.call(dev, &mut b)?;
            Ok(LinkInfo {
                supported: u32_at(&b, 4),
                advertising: u32_at(&b, 8),
                autoneg: b.get(18).copied().unwrap_or(0),
            })
        }

        /// The number of statistics (`ETHTOOL_GSSET_INFO` for `ETH_SS_STATS`); `EOPNOTSUPP`
        /// when the driver has no such set.
        fn stats_count(&self, dev: &str) -> Result<usize, Errno> {
            // cmd, reserved, sset_mask (u64), then one u32 per set asked for.
            let mut b = command(ETHTOOL_GSSET_INFO, 20);
            if let Some(m) = b.get_mut(8..16) {
                m.copy_from_slice(&(1u64 << ETH_SS_STATS).to_ne_bytes());
            }
            self.call(dev, &mut b)?;
            if u64_at(&b, 8) & (1 << ETH_SS_STATS) == 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            Ok(u32_at(&b, 16) as usize)
        }

        /// The driver's statistics (`ETHTOOL_GSTRINGS` and `ETHTOOL_GSTATS`), in its order.
        pub fn stats(&self, dev: &str) -> Result<Vec<(String, u64)>, Errno> {
            let n = self.stats_count(dev)?;
            if n == 0 {
                return Ok(Vec::new());
            }
            if n > MAX_STATS {
                return Err(Errno::E2BIG);
            }
            // The kernel writes as many entries as the driver counts at the time of each
            // request, not as many as asked: room for the count growing in between (a change
            // of channels) as ethtool(8) and safchain have none.
            let room = n * 2 + 1024;
            let mut s = command(ETHTOOL_GSTRINGS, 12 + room * ETH_GSTRING_LEN);
            if let Some(m) = s.get_mut(4..8) {
                m.copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
            }
            if let Some(m) = s.get_mut(8..12) {
                m.copy_from_slice(&(n as u32).to_ne_bytes());
            }
            self.call(dev, &mut s)?;
            let n_strings = (u32_at(&s, 8) as usize).min(room);
            let mut v = command(ETHTOOL_GSTATS, 8 + room * 8);
            if let Some(m) = v.get_mut(4..8) {
                m.copy_from_slice(&(n as u32).to_ne_bytes());
            }
            self.call(dev, &mut v)?;
            let n_stats = (u32_at(&v, 4) as usize).min(room);
            Ok((0..n_strings.min(n_stats))
                .map(|i| {
                    (
                        cstr(&s, 12 + i * ETH_GSTRING_LEN, ETH_GSTRING_LEN),
                        u64_at(&v, 8 + i * 8),
                    )
                })
                .collect())
        }
    }
}

/// node_exporter's `NetClassDevices`: the entries of `/sys/class/net` but regular files
/// (`bonding_masters`), sorted.
pub fn net_class_devices(paths: &Paths) -> Result<Vec<String>, CollectError> {
    let dir = paths.sys("class/net");
    let rd = crate::collector::read_dir(&dir).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        ) {
            CollectError::NoData {
                what: format!("{}: {e}", dir.display()),
            }
        } else {
            CollectError::io(&dir, e)
        }
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| CollectError::io(&dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

pub struct Ethtool {
    filter: DeviceFilter,
    metrics: Regex,
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.ethtool;
    Box::new(Ethtool {
        filter: DeviceFilter {
            include: o.device_include.as_ref().map(|p| p.0.clone()),
            exclude: o.device_exclude.as_ref().map(|p| p.0.clone()),
        },
        metrics: Pattern::or_default(&o.metrics_include, ".*"),
    })
}

impl Collector for Ethtool {
    fn name(&self) -> &'static str {
        "ethtool"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let names = net_class_devices(paths)?;
        if names.is_empty() {
            return Err(CollectError::Other("no network devices found".into()));
        }
        let e = ioctl::Ethtool::open()
            .map_err(|e| CollectError::Other(format!("ethtool: opening an AF_INET socket: {e}")))?;
        let devices: Vec<Device> = names
            .into_iter()
            .filter(|n| !self.filter.ignored(n))
            .map(|name| Device {
                link: e.link_info(&name),
                drv: e.driver_info(&name),
                stats: e.stats(&name),
                name,
            })
            .collect();
        Ok(families(&devices, &self.metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::testutil::{fixture_text, lines, served};

    /// node_exporter's `EthtoolFixture.DriverInfo`: `ethtool -i` output; absent: EOPNOTSUPP.
    fn fixture_driver(dev: &str) -> Result<DrvInfo, Errno> {
        let path = crate::collector::testutil::fixture("ethtool", &format!("{dev}/driver"));
        let text = std::fs::read_to_string(path).map_err(|_| Errno::EOPNOTSUPP)?;
        let mut d = DrvInfo::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut it = line.trim_matches(' ').splitn(2, ": ");
            let (k, v) = (it.next().unwrap_or(""), it.next().unwrap_or("").to_string());
            match k {
                "driver" => d.driver = v,
                "version" => d.version = v,
                "firmware-version" => d.fw_version = v,
                "bus-info" => d.bus_info = v,
                "expansion-rom-version" => d.erom_version = v,
                _ => {}
            }
        }
        Ok(d)
    }

    /// `EthtoolFixture.Stats`: `ethtool -S` output; `ERROR: n` fails with errno n.
    fn fixture_stats(dev: &str) -> Result<Vec<(String, u64)>, Errno> {
        let path = crate::collector::testutil::fixture("ethtool", &format!("{dev}/statistics"));
        let text = std::fs::read_to_string(path).map_err(|_| Errno::EOPNOTSUPP)?;
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with("NIC statistics:") {
                continue;
            }
            let (k, v) = line.trim_matches(' ').split_once(": ").expect("key: value");
            let v: u64 = v.parse().expect("number");
            if k == "ERROR" {
                return Err(Errno::from_raw(v as i32));
            }
            out.push((k.to_string(), v));
        }
        Ok(out)
    }

    fn modes(line: &str) -> u32 {
        let mut out = 0;
        for m in line.split(' ') {
            let bit = match m {
                "10baseT/Half" => 0,
                "10baseT/Full" => 1,
                "100baseT/Half" => 2,
                "100baseT/Full" => 3,
                "1000baseT/Half" => 4,
                "1000baseT/Full" => 5,
                "10000baseT/Full" => 12,
                _ => continue,
            };
            out |= 1 << bit;
        }
        out
    }

    /// `EthtoolFixture.LinkInfo`: `ethtool` output.
    fn fixture_link(dev: &str) -> Result<LinkInfo, Errno> {
        let path = crate::collector::testutil::fixture("ethtool", &format!("{dev}/settings"));
        let text = std::fs::read_to_string(path).map_err(|_| Errno::EOPNOTSUPP)?;
        let mut l = LinkInfo::default();
        let (mut sup, mut adv) = (false, false);
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with("Settings for") {
                continue;
            }
            let line = line.trim_matches([' ', '\t']);
            if (sup || adv) && line.contains(':') {
                sup = false;
                adv = false;
            }
            if adv {
                l.advertising |= modes(line);
                continue;
            } else if sup {
                l.supported |= modes(line);
                continue;
            }
            let mut it = line.splitn(2, ": ");
            let (k, v) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let pause = match v {
                "Symmetric" => 1 << PAUSE,
                "Receive-only" => 1 << ASYM_PAUSE,
                _ => 0,
            };
            match k {
                "Supported pause frame use" => l.supported |= pause,
                "Advertised pause frame use" => l.advertising |= pause,
                "Supported ports" => {
                    for p in v.split(' ').map(|p| p.trim_matches([' ', '\t'])) {
                        match p {
                            "TP" => l.supported |= 1 << 7,
                            "MII" => l.supported |= 1 << 9,
                            _ => {}
                        }
                    }
                }
                "Supported link modes" => {
                    l.supported |= modes(v);
                    sup = true;
                }
                "Advertised link modes" => {
                    l.advertising |= modes(v);
                    adv = true;
                }
                "Supports auto-negotiation" if v == "Yes" => l.supported |= 1 << AUTONEG,
                "Advertised auto-negotiation" if v == "Yes" => l.advertising |= 1 << AUTONEG,
                "Auto-negotiation" if v == "on" => l.autoneg = 1,
                _ => {}
            }
        }
        Ok(l)
    }

    /// The devices of node_exporter's fixture sysfs (`fixtures/sys/class/net`) and their
    /// ethtool fixtures, as its test sees them.
    fn fixture_devices() -> Vec<Device> {
        ["bond0", "dmz", "eth0", "int"]
            .into_iter()
            .map(|n| Device {
                name: n.into(),
                link: fixture_link(n),
                drv: fixture_driver(n),
                stats: fixture_stats(n),
            })
            .collect()
    }

    #[test]
    fn node_exporter_1_12_test_output() {
        let all = Regex::new(".*").expect("regex");
        let got = served(families(&fixture_devices(), &all));
        let expected = fixture_text("ethtool", "expected-1.12.prom");
        assert_eq!(lines::parse(&got), lines::parse(&expected), "{got}");
    }

    #[test]
    fn build_fq_name_as_1_12() {
        for (metric, expected) in [
            ("port.rx_errors", "node_ethtool_port_received_errors"),
            ("rx_errors", "node_ethtool_received_errors"),
            ("Queue[0] AllocFails", "node_ethtool_queue_0_allocfails"),
            (
                "Tx LPI entry count",
                "node_ethtool_transmitted_lpi_entry_count",
            ),
            (
                "port.VF_admin_queue_requests",
                "node_ethtool_port_vf_admin_queue_requests",
            ),
            ("[3]: tx_bytes", "node_ethtool_3_transmitted_bytes"),
            ("     err", "node_ethtool_err"),
        ] {
            assert_eq!(fq_name(metric), expected, "{metric}");
        }
    }

    #[test]
    fn metrics_include_and_duplicates() {
        let only_tx = Regex::new("^tx_").expect("regex");
        let fams = families(&fixture_devices(), &only_tx);
        let stat_names: Vec<&str> = fams
            .iter()
            .filter(|f| f.kind == crate::exposition::MetricType::Untyped)
            .map(|f| f.name.as_ref())
            .collect();
        assert_eq!(
            stat_names,
            [
                "node_ethtool_transmitted_aborted",
                "node_ethtool_transmitted_errors_total",
                "node_ethtool_transmitted_multi_collisions",
                "node_ethtool_transmitted_packets_total",
                "node_ethtool_transmitted_single_collisions",
                "node_ethtool_transmitted_underrun",
            ]
        );
        // Three names that sanitize alike: all dropped; a fourth, distinct, kept.
        let d = Device {
            name: "x".into(),
            link: Err(Errno::EOPNOTSUPP),
            drv: Err(Errno::EPERM),
            stats: Ok(vec![
                ("a b".into(), 1),
                ("a-b".into(), 2),
                ("a_b".into(), 3),
                ("c".into(), 4),
            ]),
        };
        let all = Regex::new(".*").expect("regex");
        let got = lines::render(&families(&[d], &all));
        assert_eq!(
            got,
            lines::parse(
                "# HELP node_ethtool_c Network interface c\n# TYPE node_ethtool_c untyped\nnode_ethtool_c{device=\"x\"} 4\n"
            )
        );
    }

    #[test]
    fn net_class_devices_skip_files_and_absent_is_no_data() {
        let p = crate::collector::Paths {
            sysfs: std::path::PathBuf::from("/nonexistent-sysfs"),
            ..crate::collector::testutil::hw::paths()
        };
        assert!(matches!(
            net_class_devices(&p),
            Err(CollectError::NoData { .. })
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let net = dir.path().join("class/net");
        std::fs::create_dir_all(net.join("eth0")).expect("mkdir");
        std::fs::write(net.join("bonding_masters"), "bond0\n").expect("write");
        let p = crate::collector::Paths {
            sysfs: dir.path().to_path_buf(),
            ..crate::collector::testutil::hw::paths()
        };
        assert_eq!(net_class_devices(&p).expect("lists"), ["eth0"]);
    }
}
