//! `netdev` collector: per-interface traffic counters from `/proc/net/dev`, under node_exporter
//! 1.12's names (`node_network_receive_bytes_total{device="eth0"}`, …; HELP `Network device
//! statistic receive_bytes.`, counters).
//!
//! node_exporter reads these through rtnetlink by default (`--collector.netdev.netlink`)
//! and renames them to the legacy `/proc/net/dev` names (its `legacy()`); the kernel builds
//! `/proc/net/dev` from the same `rtnl_link_stats64` with the same sums (`drop` = dropped +
//! missed, `frame` = frame + length + over + crc, `carrier` = carrier + aborted + heartbeat +
//! window), so the 16 columns give the same values without a netlink socket. The one family
//! netlink adds, `receive_nohandler`, is not in `/proc/net/dev`: it is read from
//! `/sys/class/net/<dev>/statistics/rx_nohandler` (skipped for a device without that file, as
//! on kernels before 4.6).
//!
//! Devices are filtered with `--collector.netdev.device-include/-exclude` (an empty pattern is
//! no filter, as node_exporter's); the hidden deprecated `device-whitelist`/`device-blacklist`
//! stand for them with a warning, and are refused together with them, as node_exporter 1.12.
//!
//! node_exporter 1.12's other flags:
//! - `--collector.netdev.enable-detailed-metrics`: no `legacy()` renaming and summing. Over
//!   rtnetlink that is one family per `rtnl_link_stats64` field (`receive_errors`,
//!   `receive_dropped`, `receive_missed_errors`, `receive_crc_errors`, `multicast`,
//!   `collisions`, `transmit_carrier_errors`, …: 24 families); from `/proc/net/dev` (this
//!   agent's default, 1.12's `--no-collector.netdev.netlink`) the 16 columns with
//!   `receive_errors`, `receive_dropped`, `transmit_errors`, `transmit_dropped` for `errs` and
//!   `drop`, exactly as 1.12's procfs mode.
//! - `--collector.netdev.label-ifalias`: an `ifalias` label on every counter of a device listed
//!   in `/sys/class/net` (its `ifalias` file, first 128 bytes, trimmed, as procfs'
//!   `SysReadFile`; empty when unreadable); `/sys/class/net` unlistable fails the collector
//!   before anything is sent, as 1.12's `getNetDevLabels`.
//! - `--collector.netdev.address-info`: `node_network_address_info{device,address,netmask,scope}`
//!   (gauge 1) for every address of every device the filter keeps, from an `RTM_GETLINK` and an
//!   `RTM_GETADDR` dump (Go's `net.Interfaces()` and `Addrs()` make the same two requests);
//!   it needs the `netlink-route` policy fragment (user `netdev.address-info`) whatever the
//!   counters are read from.
//!
//! node_exporter 1.12's e2e test (`tests/e2e_node_exporter_112.rs`) expects `lo`'s counters
//! with `--collector.netdev.device-include=lo` although its fixture tree has no `proc/net/dev`
//! and no `sys/class/net/lo`: its netdev reads the live host's interfaces over rtnetlink (its
//! default), whatever `--path.procfs` says. This collector reads `/proc/net/dev` under
//! `--path.procfs`, so on that tree it fails (no file) until the rtnetlink mode (issue 13's
//! netlink work) serves those counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use super::options::{collector_options, parse_bool, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

/// One interface's line of `/proc/net/dev`: the 8 receive then the 8 transmit columns.
#[derive(Debug, Clone, PartialEq)]
pub struct NetDevLine {
    pub name: String,
    pub values: [u64; 16],
}

/// node_exporter 1.12's keys for the 16 columns of `/proc/net/dev`, in file order (its
/// `procNetDevStats`); [`legacy`] renames `*_errors` and `*_dropped` to `errs` and `drop`.
pub const PROC_KEYS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_dropped",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_dropped",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Parses `/proc/net/dev`: two header lines, then `name: 16 numbers` (the name may contain
/// `:`, as an alias `eth0:1`; the last `:` ends it, as in prometheus/procfs).
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDevLine>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let (name, counters) = line
            .rsplit_once(':')
            .ok_or_else(|| format!("no ':' in line {line:?}"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("no interface name in line {line:?}"));
        }
        let mut values = [0u64; 16];
        let mut fields = counters.split_ascii_whitespace();
        for slot in values.iter_mut() {
            let f = fields
                .next()
                .ok_or_else(|| format!("too few fields in line {line:?}"))?;
            *slot = f
                .parse()
                .map_err(|_| format!("bad value {f:?} in line {line:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("too many fields in line {line:?}"));
        }
        out.push(NetDevLine {
            name: name.to_string(),
            values,
        });
    }
    Ok(out)
}

/// One device's counters under node_exporter's keys (`receive_bytes`, ...), as an entry of its
/// `netDevStats`; each key becomes `node_network_<key>_total`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DevStats {
    pub name: String,
    pub counters: BTreeMap<&'static str, u64>,
}

/// node_exporter's `legacy()` (unless `--collector.netdev.enable-detailed-metrics`): the
/// `/proc/net/dev` names and sums (net/core/net-procfs.c) made of the detailed keys. Keys that
/// are absent are left alone, so the procfs keys only have `errors`/`dropped` renamed.
pub fn legacy(m: &mut BTreeMap<&'static str, u64>) {
    fn popz(m: &mut BTreeMap<&'static str, u64>, k: &str) -> u64 {
        m.remove(k).unwrap_or(0)
    }
    let sum = |v: &[u64]| v.iter().fold(0u64, |a, b| a.wrapping_add(*b));
    if let Some(v) = m.remove("receive_errors") {
        m.insert("receive_errs", v);
    }
    if let Some(v) = m.remove("receive_dropped") {
        let missed = popz(m, "receive_missed_errors");
        m.insert("receive_drop", sum(&[v, missed]));
    }
    if let Some(v) = m.remove("receive_fifo_errors") {
        m.insert("receive_fifo", v);
    }
    if let Some(v) = m.remove("receive_frame_errors") {
        let rest = [
            popz(m, "receive_length_errors"),
            popz(m, "receive_over_errors"),
            popz(m, "receive_crc_errors"),
        ];
        m.insert("receive_frame", sum(&[v, rest[0], rest[1], rest[2]]));
    }
    if let Some(v) = m.remove("multicast") {
        m.insert("receive_multicast", v);
    }
    if let Some(v) = m.remove("transmit_errors") {
        m.insert("transmit_errs", v);
    }
    if let Some(v) = m.remove("transmit_dropped") {
        m.insert("transmit_drop", v);
    }
    if let Some(v) = m.remove("transmit_fifo_errors") {
        m.insert("transmit_fifo", v);
    }
    if let Some(v) = m.remove("collisions") {
        m.insert("transmit_colls", v);
    }
    if let Some(v) = m.remove("transmit_carrier_errors") {
        let rest = [
            popz(m, "transmit_aborted_errors"),
            popz(m, "transmit_heartbeat_errors"),
            popz(m, "transmit_window_errors"),
        ];
        m.insert("transmit_carrier", sum(&[v, rest[0], rest[1], rest[2]]));
    }
}

/// A `/proc/net/dev` line as node_exporter 1.12's procfs mode keys it, with `rx_nohandler`
/// (from sysfs, when known) as `receive_nohandler`; [`legacy`] applied unless `detailed`.
pub fn proc_stats(line: &NetDevLine, nohandler: Option<u64>, detailed: bool) -> DevStats {
    let mut counters: BTreeMap<&'static str, u64> =
        PROC_KEYS.iter().copied().zip(line.values).collect();
    if !detailed {
        legacy(&mut counters);
    }
    if let Some(v) = nohandler {
        counters.insert("receive_nohandler", v);
    }
    DevStats {
        name: line.name.clone(),
        counters,
    }
}

/// Names and HELP texts by counter key.
static NAMES: super::NameCache = super::NameCache::new();

/// The families of the given devices (already filtered), one per key any device has, in key
/// order; samples sorted by device, as node_exporter's registry sorts them. With `ifalias`
/// (`--collector.netdev.label-ifalias`), a device found there gets its `ifalias` label.
pub fn families(devs: &[DevStats], ifalias: Option<&HashMap<String, String>>) -> Vec<MetricFamily> {
    let mut order: Vec<&DevStats> = devs.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    // Every device has the same keys (the same literals), but in general the union.
    let same = |a: &&'static str, b: &&'static str| std::ptr::eq(*a, *b) || a == b;
    let keys: Vec<&'static str> = match devs.split_first() {
        Some((first, rest))
            if rest.iter().all(|d| {
                d.counters.len() == first.counters.len()
                    && d.counters
                        .keys()
                        .zip(first.counters.keys())
                        .all(|(a, b)| same(a, b))
            }) =>
        {
            first.counters.keys().copied().collect()
        }
        _ => devs
            .iter()
            .flat_map(|d| d.counters.keys().copied())
            .collect::<BTreeSet<&'static str>>()
            .into_iter()
            .collect(),
    };
    // Each device's counters walked once, in key order alongside `keys`.
    let mut walks: Vec<_> = order.iter().map(|d| d.counters.iter().peekable()).collect();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let (name, help) = NAMES.get(key, |key| {
            (
                super::concat(&["node_network_", key, "_total"]),
                super::concat(&["Network device statistic ", key, "."]),
            )
        });
        let mut fam = MetricFamily::counter(name, help);
        fam.samples.reserve(order.len());
        for (d, walk) in order.iter().zip(walks.iter_mut()) {
            let Some((_, v)) = walk.next_if(|(k, _)| same(k, &key)) else {
                continue;
            };
            match ifalias.and_then(|a| a.get(&d.name)) {
                Some(alias) => fam.push(&[("device", &d.name), ("ifalias", alias)], *v as f64),
                None => fam.push(&[("device", &d.name)], *v as f64),
            }
        }
        out.push(fam);
    }
    out
}

/// Reads a sysfs file holding one unsigned number; `None` when absent, unreadable or not a
/// number.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    super::fsio::read_to_string(path).ok()?.trim().parse().ok()
}

/// `--collector.netdev.label-ifalias`: every device directory of `/sys/class/net` with its
/// `ifalias`, as prometheus/procfs' `NetClass` reads it (`SysReadFile`: at most 128 bytes,
/// trimmed; the errors procfs ignores leave it empty).
pub fn ifaliases(paths: &Paths) -> Result<HashMap<String, String>, CollectError> {
    let class = paths.sys("class/net");
    let entries = crate::collector::read_dir(&class).map_err(|e| CollectError::io(&class, e))?;
    let mut out = HashMap::new();
    let mut buf = String::new();
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::io(&class, e))?;
        // `bonding_masters` is a regular file there; interfaces are symlinks.
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = class.join(&name).join("ifalias");
        let alias = if super::netclass::read_attr(&path, &mut buf)? {
            sys_read_file_value(buf.as_bytes())
        } else {
            String::new()
        };
        out.insert(name, alias);
    }
    Ok(out)
}

/// What prometheus/procfs' `SysReadFile` makes of a sysfs file: its first 128 bytes (one
/// `read` of a 128-byte buffer), trimmed.
pub fn sys_read_file_value(bytes: &[u8]) -> String {
    let head = bytes.get(..128).unwrap_or(bytes);
    String::from_utf8_lossy(head).trim().to_string()
}

/// The address of an `RTM_NEWADDR` message as Go's `net` package reads it (`newAddr`):
/// `IFA_LOCAL` when present (point-to-point: `IFA_ADDRESS` is the peer), else `IFA_ADDRESS`;
/// only `AF_INET` and `AF_INET6`.
fn address_of(m: &netlink_packet_route::address::AddressMessage) -> Option<IpAddr> {
    use netlink_packet_route::address::AddressAttribute;
    use netlink_packet_route::AddressFamily;
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    match (m.header.family, ip) {
        (AddressFamily::Inet, IpAddr::V4(_)) | (AddressFamily::Inet6, IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

/// node_exporter 1.12's `scope()`: Go's `IsLoopback`, `IsLinkLocalUnicast`,
/// `IsLinkLocalMulticast` -> `link-local` (so `127.0.0.1` and `::1` are `link-local`),
/// `IsInterfaceLocalMulticast` -> `interface-local`, `IsGlobalUnicast` (private ranges
/// included) -> `global`, else empty.
pub fn scope(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            let link_local_multicast = o[0] == 224 && o[1] == 0 && o[2] == 0;
            if a.is_loopback() || a.is_link_local() || link_local_multicast {
                "link-local"
            } else if !a.is_broadcast() && !a.is_unspecified() && !a.is_multicast() {
                "global"
            } else {
                ""
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let link_local_unicast = s[0] & 0xffc0 == 0xfe80;
            let multicast = s[0] & 0xff00 == 0xff00;
            if a.is_loopback() || link_local_unicast || (multicast && s[0] & 0x0f == 0x02) {
                "link-local"
            } else if multicast && s[0] & 0x0f == 0x01 {
                "interface-local"
            } else if !a.is_unspecified() && !multicast {
                "global"
            } else {
                ""
            }
        }
    }
}

/// One sample of `node_network_address_info`: the address as Go prints it and its prefix
/// length, after Go's `IPNet.String()` / `ParseCIDR` round trip: an IPv4-mapped IPv6 address is
/// the IPv4 address with the mask's last 32 bits; a prefix longer than the family's address is
/// dropped (Go's mask is then nil and the address is skipped).
pub fn address_label(ip: IpAddr, prefix_len: u8) -> Option<(IpAddr, u8)> {
    match ip {
        IpAddr::V4(_) if prefix_len <= 32 => Some((ip, prefix_len)),
        IpAddr::V6(a) if prefix_len <= 128 => match a.to_ipv4_mapped() {
            Some(v4) => Some((IpAddr::V4(v4), prefix_len.saturating_sub(96))),
            None => Some((ip, prefix_len)),
        },
        _ => None,
    }
}

/// `node_network_address_info` (`--collector.netdev.address-info`): every address of every
/// link the filter keeps, labelled `device`, `address`, `netmask` (prefix length), `scope`;
/// addresses of an interface index the link dump does not name are left out (Go's
/// `Interface.Addrs()` matches by index); a repeated label set is kept once.
pub fn address_info(
    links: &[netlink_packet_route::link::LinkMessage],
    addrs: &[netlink_packet_route::address::AddressMessage],
    filter: &DeviceFilter,
) -> MetricFamily {
    let names = super::netlink::route::names(links);
    let mut rows: BTreeSet<(String, String, String, &'static str)> = BTreeSet::new();
    for m in addrs {
        let Some(dev) = names.get(&m.header.index) else {
            continue;
        };
        if filter.ignored(dev) {
            continue;
        }
        let Some((ip, bits)) = address_of(m).and_then(|ip| address_label(ip, m.header.prefix_len))
        else {
            continue;
        };
        rows.insert((dev.clone(), ip.to_string(), bits.to_string(), scope(ip)));
    }
    let mut fam = MetricFamily::gauge(
        "node_network_address_info",
        "node network address by device",
    );
    for (dev, addr, mask, scope) in &rows {
        fam.push(
            &[
                ("address", addr),
                ("device", dev),
                ("netmask", mask),
                ("scope", scope),
            ],
            1.0,
        );
    }
    fam
}

collector_options! {
    /// Options of the netdev collector (`[collector.netdev]` in the file).
    pub struct NetdevOptions {
        /// Regexp of net devices to include (mutually exclusive with device-exclude).
        #[arg(id = "collector.netdev.device-include", long = "collector.netdev.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// DEPRECATED: use --collector.netdev.device-include.
        #[arg(id = "collector.netdev.device-whitelist", long = "collector.netdev.device-whitelist", value_name = "REGEX", hide = true)]
        pub device_whitelist: Option<Pattern>,
        /// Regexp of net devices to exclude.
        #[arg(id = "collector.netdev.device-exclude", long = "collector.netdev.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// DEPRECATED: use --collector.netdev.device-exclude.
        #[arg(id = "collector.netdev.device-blacklist", long = "collector.netdev.device-blacklist", value_name = "REGEX", hide = true)]
        pub device_blacklist: Option<Pattern>,
        /// Collect address-info for every device (node_network_address_info, over rtnetlink:
        /// widens the sandbox by the netlink-route policy fragment).
        #[arg(id = "collector.netdev.address-info", long = "collector.netdev.address-info",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub address_info: Option<bool>,
        /// Use (incompatible) metric names that provide more detailed stats on Linux (with
        /// --collector.netdev.netlink one family per kernel counter; from /proc/net/dev, the
        /// default here, its 16 columns with errors/dropped for errs/drop).
        #[arg(id = "collector.netdev.enable-detailed-metrics", long = "collector.netdev.enable-detailed-metrics",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub enable_detailed_metrics: Option<bool>,
        /// Add ifAlias label (from /sys/class/net/<dev>/ifalias).
        #[arg(id = "collector.netdev.label-ifalias", long = "collector.netdev.label-ifalias",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub label_ifalias: Option<bool>,
        /// Use netlink (RTM_GETLINK) to gather stats instead of /proc/net/dev: the same
        /// families; widens the sandbox by the netlink_route policy fragment. Off by default
        /// (node_exporter 1.12: on), see README. [default: false]
        #[arg(id = "collector.netdev.netlink", long = "collector.netdev.netlink", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = super::netlink::parse_bool, overrides_with = "collector.netdev.no-netlink")]
        pub netlink: Option<bool>,
        /// node_exporter's negation of --collector.netdev.netlink (the default here).
        #[arg(id = "collector.netdev.no-netlink", long = "no-collector.netdev.netlink", value_name = "BOOL",
              num_args = 0, default_missing_value = "true", value_parser = super::netlink::parse_bool,
              hide = true, overrides_with = "collector.netdev.netlink")]
        pub no_netlink: Option<bool>,
    }
    check(o) { device_patterns(o).map(|_| ()) }
}

/// The include and exclude patterns in force, as node_exporter 1.12's `NewNetDevCollector`
/// makes them: an empty pattern is no pattern; `device-whitelist`/`device-blacklist` stand for
/// `device-include`/`device-exclude` when those are not set and are refused beside them; an
/// include and an exclude together are refused.
pub fn device_patterns(o: &NetdevOptions) -> Result<(Option<&Pattern>, Option<&Pattern>), String> {
    fn set(p: &Option<Pattern>) -> Option<&Pattern> {
        p.as_ref().filter(|p| !p.0.as_str().is_empty())
    }
    let mut include = set(&o.device_include);
    let mut exclude = set(&o.device_exclude);
    if let Some(old) = set(&o.device_whitelist) {
        if include.is_some() {
            return Err("--collector.netdev.device-whitelist and \
                        --collector.netdev.device-include are mutually exclusive"
                .into());
        }
        include = Some(old);
    }
    if let Some(old) = set(&o.device_blacklist) {
        if exclude.is_some() {
            return Err("--collector.netdev.device-blacklist and \
                        --collector.netdev.device-exclude are mutually exclusive"
                .into());
        }
        exclude = Some(old);
    }
    if include.is_some() && exclude.is_some() {
        return Err("device-include and device-exclude are mutually exclusive".into());
    }
    Ok((include, exclude))
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.netdev;
    let nonempty = |p: &Option<Pattern>| p.as_ref().is_some_and(|p| !p.0.as_str().is_empty());
    if nonempty(&o.device_whitelist) {
        log::warn!(
            "--collector.netdev.device-whitelist is DEPRECATED and will be removed in 2.0.0, \
             use --collector.netdev.device-include"
        );
    }
    if nonempty(&o.device_blacklist) {
        log::warn!(
            "--collector.netdev.device-blacklist is DEPRECATED and will be removed in 2.0.0, \
             use --collector.netdev.device-exclude"
        );
    }
    // The options were checked at start-up (`Options::check`); a refused pair cannot reach here.
    let (include, exclude) = device_patterns(o).unwrap_or_default();
    Box::new(NetDev {
        filter: DeviceFilter {
            include: include.map(|p| p.0.clone()),
            exclude: exclude.map(|p| p.0.clone()),
        },
        netlink: uses_netlink(o),
        detailed: o.enable_detailed_metrics.unwrap_or(false),
        address_info: uses_address_info(o),
        label_ifalias: o.label_ifalias.unwrap_or(false),
    })
}

/// Whether `--collector.netdev.netlink` is in force (the `netlink_route` fragment's user
/// `netdev.netlink`).
pub fn uses_netlink(o: &NetdevOptions) -> bool {
    super::netlink::flag(o.netlink, o.no_netlink)
}

/// Whether `--collector.netdev.address-info` is on (the `netlink-route` fragment's user
/// `netdev.address-info`: the addresses come from an `RTM_GETADDR` dump in either mode).
pub fn uses_address_info(o: &NetdevOptions) -> bool {
    o.address_info.unwrap_or(false)
}

#[derive(Debug, Default)]
pub struct NetDev {
    pub filter: DeviceFilter,
    pub netlink: bool,
    pub detailed: bool,
    pub address_info: bool,
    pub label_ifalias: bool,
}

/// `--collector.netdev.netlink`: one device per `RTM_GETLINK` answer with statistics, keyed as
/// node_exporter 1.12's `parseNetlinkStats` (the 24 `rtnl_link_stats64` fields it exports),
/// then [`legacy`] unless `detailed` (which gives the `/proc/net/dev` sums, and keeps
/// `receive_nohandler`). Interfaces without statistics are skipped, as node_exporter does;
/// 32-bit `IFLA_STATS` stands in when `IFLA_STATS64` is absent.
pub fn netlink_stats(
    links: &[netlink_packet_route::link::LinkMessage],
    detailed: bool,
) -> Vec<DevStats> {
    use netlink_packet_route::link::LinkAttribute;
    let mut out = Vec::new();
    for l in links {
        let Some(name) = super::netlink::route::name(l) else {
            continue;
        };
        let mut s64 = None;
        let mut s32 = None;
        for a in &l.attributes {
            match a {
                LinkAttribute::Stats64(s) => s64 = Some(*s),
                LinkAttribute::Stats(s) => s32 = Some(*s),
                _ => {}
            }
        }
        let s = match (s64, s32) {
            (Some(s), _) => s,
            (None, Some(s)) => super::netlink::stats64_of(&s),
            (None, None) => continue,
        };
        let mut counters: BTreeMap<&'static str, u64> = [
            ("receive_packets", s.rx_packets),
            ("transmit_packets", s.tx_packets),
            ("receive_bytes", s.rx_bytes),
            ("transmit_bytes", s.tx_bytes),
            ("receive_errors", s.rx_errors),
            ("transmit_errors", s.tx_errors),
            ("receive_dropped", s.rx_dropped),
            ("transmit_dropped", s.tx_dropped),
            ("multicast", s.multicast),
            ("collisions", s.collisions),
            ("receive_length_errors", s.rx_length_errors),
            ("receive_over_errors", s.rx_over_errors),
            ("receive_crc_errors", s.rx_crc_errors),
            ("receive_frame_errors", s.rx_frame_errors),
            ("receive_fifo_errors", s.rx_fifo_errors),
            ("receive_missed_errors", s.rx_missed_errors),
            ("transmit_aborted_errors", s.tx_aborted_errors),
            ("transmit_carrier_errors", s.tx_carrier_errors),
            ("transmit_fifo_errors", s.tx_fifo_errors),
            ("transmit_heartbeat_errors", s.tx_heartbeat_errors),
            ("transmit_window_errors", s.tx_window_errors),
            ("receive_compressed", s.rx_compressed),
            ("transmit_compressed", s.tx_compressed),
            ("receive_nohandler", s.rx_nohandler),
        ]
        .into_iter()
        .collect();
        if !detailed {
            legacy(&mut counters);
        }
        out.push(DevStats {
            name: name.to_string(),
            counters,
        });
    }
    out
}

impl NetDev {
    /// The counters of the devices the filter keeps; with the link dump in netlink mode.
    fn stats(
        &self,
        paths: &Paths,
    ) -> Result<
        (
            Vec<DevStats>,
            Option<Vec<netlink_packet_route::link::LinkMessage>>,
        ),
        CollectError,
    > {
        if self.netlink {
            let links = super::netlink::route::links()?;
            let mut devs = netlink_stats(&links, self.detailed);
            devs.retain(|d| !self.filter.ignored(&d.name));
            return Ok((devs, Some(links)));
        }
        let path = paths.proc("net/dev");
        let mut lines = read_parsed(&path, parse_net_dev)?;
        lines.retain(|l| !self.filter.ignored(&l.name));
        let class = paths.sys("class/net");
        let devs = lines
            .iter()
            .map(|l| {
                // A name that could leave the directory is not looked up.
                let nohandler = if l.name.contains('/') || l.name == "." || l.name == ".." {
                    None
                } else {
                    read_u64(&class.join(&l.name).join("statistics/rx_nohandler"))
                };
                proc_stats(l, nohandler, self.detailed)
            })
            .collect();
        Ok((devs, None))
    }
}

impl Collector for NetDev {
    fn name(&self) -> &'static str {
        "netdev"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let (devs, links) = self.stats(paths)?;
        // 1.12 reads the labels before it sends anything: their failure exports nothing.
        let aliases = if self.label_ifalias {
            Some(ifaliases(paths)?)
        } else {
            None
        };
        let mut fams = families(&devs, aliases.as_ref());
        if self.address_info {
            // 1.12 sends the counters, then fails on `net.Interfaces()` (RTM_GETLINK): the
            // counters are kept.
            let links = match links {
                Some(l) => l,
                None => match super::netlink::route::links() {
                    Ok(l) => l,
                    Err(e) => return Err(CollectError::partial(fams, e)),
                },
            };
            // Go's `Interface.Addrs()` errors are ignored (`addrs, _ := ifs.Addrs()`): no
            // addresses, success stays 1.
            let addrs = super::netlink::route::addresses().unwrap_or_else(|e| {
                log::debug!("netdev: no address info: {e}");
                Vec::new()
            });
            let fam = address_info(&links, &addrs, &self.filter);
            if !fam.samples.is_empty() {
                fams.push(fam);
            }
        }
        Ok(fams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::fixture;
    use crate::exposition::{sort_samples, MetricType};
    use regex::Regex;

    const DEBIAN12: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/dev");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/dev");

    /// The legacy families of `/proc/net/dev` lines, `nohandler[i]` for `lines[i]`.
    fn proc_families(lines: &[NetDevLine], nohandler: &[Option<u64>]) -> Vec<MetricFamily> {
        let devs: Vec<DevStats> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| proc_stats(l, nohandler.get(i).copied().flatten(), false))
            .collect();
        families(&devs, None)
    }

    fn sample(fams: &[MetricFamily], name: &str, dev: &str) -> Option<f64> {
        fams.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels.len() == 1 && s.labels[0].0 == "device" && s.labels[0].1 == dev)
            .map(|s| s.value)
    }

    #[test]
    fn debian12() {
        let lines = parse_net_dev(DEBIAN12).expect("parses");
        let names: Vec<_> = lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert_eq!(
            lines[3].values,
            [115984934, 5850, 0, 0, 0, 0, 0, 0, 374948, 4537, 0, 0, 0, 0, 0, 0]
        );
        let fams = proc_families(&lines, &[Some(0), None, None, Some(7)]);
        assert_eq!(fams.len(), 17);
        let rx = &fams[0];
        assert_eq!(rx.name, "node_network_receive_bytes_total");
        assert_eq!(rx.help, "Network device statistic receive_bytes.");
        assert_eq!(rx.kind, MetricType::Counter);
        let devs: Vec<_> = rx.samples.iter().map(|s| s.labels[0].1.as_str()).collect();
        assert_eq!(devs, ["eth0", "ifb0", "ifb1", "lo"]);
        assert_eq!(
            sample(&fams, "node_network_receive_bytes_total", "eth0"),
            Some(115984934.0)
        );
        assert_eq!(
            sample(&fams, "node_network_transmit_packets_total", "eth0"),
            Some(4537.0)
        );
        assert_eq!(
            sample(&fams, "node_network_receive_packets_total", "lo"),
            Some(7497.0)
        );
        assert_eq!(
            sample(&fams, "node_network_receive_nohandler_total", "eth0"),
            Some(7.0)
        );
        assert_eq!(
            sample(&fams, "node_network_receive_nohandler_total", "ifb0"),
            None
        );
    }

    #[test]
    fn node_exporter_fixture() {
        let lines = parse_net_dev(NODE_EXPORTER).expect("parses");
        assert_eq!(lines.len(), 8);
        let fams = proc_families(&lines, &[]);
        // No rx_nohandler known: no such family.
        assert_eq!(fams.len(), 16);
        assert_eq!(
            sample(&fams, "node_network_receive_bytes_total", "veth4B09XN"),
            Some(648.0)
        );
        assert_eq!(
            sample(&fams, "node_network_receive_bytes_total", "eth0"),
            Some(68210035552.0)
        );
        assert_eq!(
            sample(&fams, "node_network_transmit_packets_total", "wlan0"),
            Some(11726200.0)
        );
        assert_eq!(
            sample(&fams, "node_network_transmit_bytes_total", "lxcbr0"),
            Some(2630299.0)
        );
        // An alias: the name ends at the last ':'.
        assert_eq!(
            sample(&fams, "node_network_transmit_bytes_total", "ibr10:30"),
            Some(0.0)
        );
        let devs: Vec<_> = fams[0]
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        assert_eq!(
            devs,
            [
                "docker0",
                "eth0",
                "ibr10:30",
                "lo",
                "lxcbr0",
                "tun0",
                "veth4B09XN",
                "wlan0"
            ]
        );
    }

    #[test]
    fn garbled() {
        let hdr = "a\nb\n";
        assert!(parse_net_dev(&format!("{hdr}eth0 1 2 3\n")).is_err());
        assert!(parse_net_dev(&format!("{hdr}eth0: 1 2 3\n")).is_err());
        assert!(parse_net_dev(&format!("{hdr}eth0: {}\n", "1 ".repeat(17))).is_err());
        assert!(parse_net_dev(&format!("{hdr}eth0: x{}\n", " 1".repeat(15))).is_err());
        assert!(parse_net_dev(&format!("{hdr}: {}\n", "1 ".repeat(16))).is_err());
        assert_eq!(parse_net_dev(hdr), Ok(vec![]));
        assert_eq!(parse_net_dev(""), Ok(vec![]));
    }

    /// This host's captured `/proc` and `/sys`.
    fn debian12_tree() -> Paths {
        Paths {
            procfs: fixture("net", "debian12-vm-6.18/proc"),
            sysfs: fixture("net", "debian12-vm-6.18/sys"),
            ..Paths::default()
        }
    }

    /// Debian's default: every device but `lo`.
    fn excluding_lo() -> NetDev {
        NetDev {
            filter: DeviceFilter {
                include: None,
                exclude: Some(Regex::new("^lo$").expect("regex")),
            },
            ..NetDev::default()
        }
    }

    #[test]
    fn filter_and_fixture_tree() {
        let paths = debian12_tree();
        let c = excluding_lo();
        let fams = c.collect(&paths).expect("collects");
        assert_eq!(fams.len(), 17);
        let devs: Vec<_> = fams[0]
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        assert_eq!(devs, ["eth0", "ifb0", "ifb1"]);
        assert_eq!(
            sample(&fams, "node_network_receive_nohandler_total", "eth0"),
            Some(0.0)
        );
        let c = NetDev {
            filter: DeviceFilter {
                include: Some(Regex::new("^if").expect("regex")),
                exclude: None,
            },
            ..NetDev::default()
        };
        let fams = c.collect(&paths).expect("collects");
        assert_eq!(fams[0].samples.len(), 2);

        let missing = Paths {
            procfs: fixture("net", "debian12-vm-6.18/nowhere"),
            ..Paths::default()
        };
        assert!(c.collect(&missing).is_err());
    }

    #[test]
    fn debian12_matches_node_exporter() {
        // node_exporter 1.5 (Debian's build excludes `lo` by default) scraped on this host
        // while the fixture tree was copied.
        use crate::collectors::testutil::lines::{parse, render, sorted};
        let paths = debian12_tree();
        let c = excluding_lo();
        let fams = c.collect(&paths).expect("collects");
        let expected =
            include_str!("../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-netdev.txt");
        assert_eq!(render(&sorted(fams)), parse(expected));
    }

    #[test]
    fn sorting_is_by_string() {
        let mut fam = MetricFamily::counter("x", "x")
            .with(&[("cpu", "2")], 0.0)
            .with(&[("cpu", "10")], 0.0)
            .with(&[("cpu", "1")], 0.0);
        sort_samples(&mut fam);
        let got: Vec<_> = fam.samples.iter().map(|s| s.labels[0].1.as_str()).collect();
        assert_eq!(got, ["1", "10", "2"]);
    }

    #[test]
    fn live() {
        let c = NetDev::default();
        let fams = c.collect(&Paths::default()).expect("reads /proc/net/dev");
        assert!(sample(&fams, "node_network_receive_bytes_total", "lo").is_some());
        assert!(sample(&fams, "node_network_receive_nohandler_total", "lo").is_some());
    }

    /// `--collector.netdev.netlink` against `/proc/net/dev` on this host (unsandboxed: the
    /// sandboxed run is tests/netlink_collectors.rs): the same families and devices, and every
    /// counter between the two `/proc/net/dev` reads around the dump (traffic goes on).
    #[test]
    fn live_netlink_matches_proc_net_dev() {
        let proc_c = NetDev::default();
        let nl_c = NetDev {
            netlink: true,
            ..NetDev::default()
        };
        let before = proc_c
            .collect(&Paths::default())
            .expect("reads /proc/net/dev");
        let during = nl_c.collect(&Paths::default()).expect("dumps RTM_GETLINK");
        let after = proc_c
            .collect(&Paths::default())
            .expect("reads /proc/net/dev");
        let names = |f: &[MetricFamily]| f.iter().map(|f| f.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&before), names(&during));
        for (i, fam) in during.iter().enumerate() {
            let devs: Vec<_> = fam.samples.iter().map(|s| s.labels[0].1.clone()).collect();
            let proc_devs: Vec<_> = before[i]
                .samples
                .iter()
                .map(|s| s.labels[0].1.clone())
                .collect();
            assert_eq!(devs, proc_devs, "{}", fam.name);
            for s in &fam.samples {
                let dev = &s.labels[0].1;
                let lo = sample(&before, &fam.name, dev).expect("before");
                let hi = sample(&after, &fam.name, dev).expect("after");
                assert!(
                    lo <= s.value && s.value <= hi,
                    "{}{{device={dev}}}: netlink {} not within /proc/net/dev's {lo}..{hi}",
                    fam.name,
                    s.value
                );
            }
        }
    }

    /// The legacy sums of node_exporter's `legacy()` (and of the kernel's `/proc/net/dev`).
    #[test]
    fn netlink_legacy_sums() {
        use netlink_packet_route::link::{LinkAttribute, LinkMessage, Stats64};
        let mut s = Stats64::default();
        s.rx_bytes = 1;
        s.rx_dropped = 2;
        s.rx_missed_errors = 3;
        s.rx_frame_errors = 4;
        s.rx_length_errors = 5;
        s.rx_over_errors = 6;
        s.rx_crc_errors = 7;
        s.tx_carrier_errors = 8;
        s.tx_aborted_errors = 9;
        s.tx_heartbeat_errors = 10;
        s.tx_window_errors = 11;
        s.multicast = 12;
        s.collisions = 13;
        s.rx_nohandler = 14;
        let mut with64 = LinkMessage::default();
        with64.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Stats64(s),
        ];
        let mut none = LinkMessage::default();
        none.attributes = vec![LinkAttribute::IfName("nostats".into())];
        let devs = netlink_stats(&[with64, none], false);
        assert_eq!(devs.len(), 1);
        let got: Vec<(&str, u64)> = devs[0].counters.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            got,
            [
                ("receive_bytes", 1),
                ("receive_compressed", 0),
                ("receive_drop", 5),
                ("receive_errs", 0),
                ("receive_fifo", 0),
                ("receive_frame", 22),
                ("receive_multicast", 12),
                ("receive_nohandler", 14),
                ("receive_packets", 0),
                ("transmit_bytes", 0),
                ("transmit_carrier", 38),
                ("transmit_colls", 13),
                ("transmit_compressed", 0),
                ("transmit_drop", 0),
                ("transmit_errs", 0),
                ("transmit_fifo", 0),
                ("transmit_packets", 0),
            ]
        );
    }

    /// node_exporter 1.12's `netdev_linux_test.go` interface `enp0s0f0` (every counter set;
    /// prometheus/node_exporter, Apache-2.0).
    fn enp0s0f0() -> netlink_packet_route::link::LinkMessage {
        use netlink_packet_route::link::{LinkAttribute, LinkMessage, Stats64};
        let mut s = Stats64::default();
        s.rx_packets = 226;
        s.tx_packets = 803;
        s.rx_bytes = 231424;
        s.tx_bytes = 822272;
        s.rx_errors = 14;
        s.tx_errors = 2;
        s.rx_dropped = 10;
        s.tx_dropped = 17;
        s.multicast = 285;
        s.collisions = 30;
        s.rx_length_errors = 5;
        s.rx_over_errors = 3;
        s.rx_crc_errors = 1;
        s.rx_frame_errors = 4;
        s.rx_fifo_errors = 6;
        s.rx_missed_errors = 21;
        s.tx_aborted_errors = 22;
        s.tx_carrier_errors = 7;
        s.tx_fifo_errors = 24;
        s.tx_heartbeat_errors = 9;
        s.tx_window_errors = 19;
        s.rx_compressed = 23;
        s.tx_compressed = 20;
        s.rx_nohandler = 62;
        let mut m = LinkMessage::default();
        m.attributes = vec![
            LinkAttribute::IfName("enp0s0f0".into()),
            LinkAttribute::Stats64(s),
        ];
        m
    }

    /// 1.12's `TestNetDevLegacyMetricValues`, then the same counters with
    /// `--collector.netdev.enable-detailed-metrics` (`TestNetDevMetricValues`): 24 families
    /// under the `rtnl_link_stats64` names, no sums.
    #[test]
    fn netlink_legacy_and_detailed_values_of_node_exporter_112() {
        let legacy = netlink_stats(&[enp0s0f0()], false);
        let want_legacy: BTreeMap<&str, u64> = [
            ("receive_packets", 226),
            ("transmit_packets", 803),
            ("receive_bytes", 231424),
            ("transmit_bytes", 822272),
            ("receive_errs", 14),
            ("transmit_errs", 2),
            ("receive_drop", 10 + 21),
            ("transmit_drop", 17),
            ("receive_multicast", 285),
            ("transmit_colls", 30),
            ("receive_frame", 5 + 3 + 1 + 4),
            ("receive_fifo", 6),
            ("transmit_carrier", 22 + 7 + 9 + 19),
            ("transmit_fifo", 24),
            ("receive_compressed", 23),
            ("transmit_compressed", 20),
            ("receive_nohandler", 62),
        ]
        .into_iter()
        .collect();
        assert_eq!(legacy[0].counters, want_legacy);

        let detailed = netlink_stats(&[enp0s0f0()], true);
        let want: BTreeMap<&str, u64> = [
            ("receive_packets", 226),
            ("transmit_packets", 803),
            ("receive_bytes", 231424),
            ("transmit_bytes", 822272),
            ("receive_errors", 14),
            ("transmit_errors", 2),
            ("receive_dropped", 10),
            ("transmit_dropped", 17),
            ("multicast", 285),
            ("collisions", 30),
            ("receive_length_errors", 5),
            ("receive_over_errors", 3),
            ("receive_crc_errors", 1),
            ("receive_frame_errors", 4),
            ("receive_fifo_errors", 6),
            ("receive_missed_errors", 21),
            ("transmit_aborted_errors", 22),
            ("transmit_carrier_errors", 7),
            ("transmit_fifo_errors", 24),
            ("transmit_heartbeat_errors", 9),
            ("transmit_window_errors", 19),
            ("receive_compressed", 23),
            ("transmit_compressed", 20),
            ("receive_nohandler", 62),
        ]
        .into_iter()
        .collect();
        assert_eq!(detailed[0].counters, want);
        let fams = families(&detailed, None);
        assert_eq!(fams.len(), 24);
        assert_eq!(
            sample(
                &fams,
                "node_network_receive_missed_errors_total",
                "enp0s0f0"
            ),
            Some(21.0)
        );
        assert_eq!(
            sample(&fams, "node_network_multicast_total", "enp0s0f0"),
            Some(285.0)
        );
        assert_eq!(
            sample(&fams, "node_network_collisions_total", "enp0s0f0"),
            Some(30.0)
        );
        let f = fams
            .iter()
            .find(|f| f.name == "node_network_transmit_window_errors_total")
            .expect("family");
        assert_eq!(f.help, "Network device statistic transmit_window_errors.");
        assert_eq!(f.kind, MetricType::Counter);
    }

    /// From `/proc/net/dev`, `--collector.netdev.enable-detailed-metrics` is 1.12's procfs mode
    /// without `legacy()`: the 16 columns, `errs`/`drop` as `errors`/`dropped`, the rest as
    /// they are; `receive_nohandler` stays (from sysfs).
    #[test]
    fn procfs_detailed_names() {
        let lines = parse_net_dev(NODE_EXPORTER).expect("parses");
        let devs: Vec<DevStats> = lines.iter().map(|l| proc_stats(l, None, true)).collect();
        let fams = families(&devs, None);
        let names: Vec<&str> = fams.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_network_receive_bytes_total",
                "node_network_receive_compressed_total",
                "node_network_receive_dropped_total",
                "node_network_receive_errors_total",
                "node_network_receive_fifo_total",
                "node_network_receive_frame_total",
                "node_network_receive_multicast_total",
                "node_network_receive_packets_total",
                "node_network_transmit_bytes_total",
                "node_network_transmit_carrier_total",
                "node_network_transmit_colls_total",
                "node_network_transmit_compressed_total",
                "node_network_transmit_dropped_total",
                "node_network_transmit_errors_total",
                "node_network_transmit_fifo_total",
                "node_network_transmit_packets_total",
            ]
        );
        // The same values as the legacy names.
        let legacy = proc_families(&lines, &[]);
        for (d, l) in [
            ("receive_dropped", "receive_drop"),
            ("receive_errors", "receive_errs"),
            ("transmit_dropped", "transmit_drop"),
            ("transmit_errors", "transmit_errs"),
        ] {
            for dev in ["eth0", "wlan0", "lo"] {
                let got = sample(&fams, &format!("node_network_{d}_total"), dev);
                assert!(got.is_some());
                assert_eq!(
                    got,
                    sample(&legacy, &format!("node_network_{l}_total"), dev)
                );
            }
        }
        let with_nohandler = proc_stats(&lines[0], Some(3), true);
        assert_eq!(with_nohandler.counters.get("receive_nohandler"), Some(&3));
    }

    /// `--collector.netdev.label-ifalias` on a copy of this host's tree: every counter of a
    /// device in `/sys/class/net` gets `ifalias` (empty when the file is empty or absent), the
    /// first 128 bytes trimmed; a device only in `/proc/net/dev` gets none; no
    /// `/sys/class/net` fails the collector.
    #[test]
    fn label_ifalias() {
        use crate::collectors::testutil::fixture_copy;
        let tree = fixture_copy("net", "debian12-vm-6.18");
        let class = tree.path().join("sys/class/net");
        std::fs::write(class.join("eth0/ifalias"), "uplink to sw1 \n").expect("write");
        let long = "x".repeat(127) + "yz";
        // What procfs' 128-byte read keeps of it.
        let cut = "x".repeat(127) + "y";
        std::fs::write(class.join("ifb0/ifalias"), format!("{long}\n")).expect("write");
        let _ = std::fs::remove_file(class.join("ifb1/ifalias"));
        std::fs::remove_dir_all(class.join("lo")).expect("remove lo");
        std::fs::write(class.join("bonding_masters"), "\n").expect("write");
        let paths = Paths {
            procfs: tree.path().join("proc"),
            sysfs: tree.path().join("sys"),
            ..Paths::default()
        };
        let c = NetDev {
            label_ifalias: true,
            ..NetDev::default()
        };
        let fams = c.collect(&paths).expect("collects");
        let labels = |name: &str| -> Vec<Vec<(String, String)>> {
            fams.iter()
                .find(|f| f.name == name)
                .expect("family")
                .samples
                .iter()
                .map(|s| {
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .collect()
        };
        let l = |d: &str, a: Option<&str>| {
            let mut v = vec![("device".to_string(), d.to_string())];
            if let Some(a) = a {
                v.push(("ifalias".to_string(), a.to_string()));
            }
            v
        };
        let want = vec![
            l("eth0", Some("uplink to sw1")),
            l("ifb0", Some(&cut)),
            l("ifb1", Some("")),
            l("lo", None),
        ];
        assert_eq!(labels("node_network_receive_bytes_total"), want);
        assert_eq!(labels("node_network_transmit_carrier_total"), want);
        // Without the flag, no ifalias label.
        let plain = NetDev::default().collect(&paths).expect("collects");
        assert!(plain
            .iter()
            .all(|f| f.samples.iter().all(|s| s.labels.len() == 1)));

        std::fs::remove_dir_all(&class).expect("remove class/net");
        assert!(c.collect(&paths).is_err());
        assert!(NetDev::default().collect(&paths).is_ok());
    }

    #[test]
    fn sys_read_file_value_is_procfs_sysreadfile() {
        assert_eq!(sys_read_file_value(b"  a b \n"), "a b");
        assert_eq!(sys_read_file_value(b"\n"), "");
        let long = [b'a'; 200];
        assert_eq!(sys_read_file_value(&long).len(), 128);
    }

    /// Go's `IsLoopback`, `IsLinkLocalUnicast`, `IsLinkLocalMulticast`,
    /// `IsInterfaceLocalMulticast` and `IsGlobalUnicast`, as 1.12's `scope()` combines them.
    #[test]
    fn scopes_as_go() {
        for (ip, want) in [
            ("127.0.0.1", "link-local"),
            ("127.1.2.3", "link-local"),
            ("::1", "link-local"),
            ("169.254.3.4", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("224.0.0.251", "link-local"),
            ("ff02::1", "link-local"),
            ("ff12::1", "link-local"),
            ("ff01::1", "interface-local"),
            ("10.1.2.3", "global"),
            ("192.168.1.1", "global"),
            ("8.8.8.8", "global"),
            ("fd00::1", "global"),
            ("2001:db8::1", "global"),
            ("fec0::1", "global"),
            ("224.0.1.1", ""),
            ("239.1.1.1", ""),
            ("255.255.255.255", ""),
            ("0.0.0.0", ""),
            ("::", ""),
            ("ff05::2", ""),
        ] {
            assert_eq!(scope(ip.parse().expect("ip")), want, "{ip}");
        }
    }

    fn link(index: u32, name: &str) -> netlink_packet_route::link::LinkMessage {
        use netlink_packet_route::link::{LinkAttribute, LinkMessage};
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes = vec![LinkAttribute::IfName(name.into())];
        m
    }

    fn addr(
        index: u32,
        prefix_len: u8,
        attrs: Vec<netlink_packet_route::address::AddressAttribute>,
    ) -> netlink_packet_route::address::AddressMessage {
        use netlink_packet_route::address::{AddressAttribute, AddressMessage};
        use netlink_packet_route::AddressFamily;
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = prefix_len;
        m.header.family = match attrs.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        }) {
            Some(IpAddr::V6(_)) => AddressFamily::Inet6,
            _ => AddressFamily::Inet,
        };
        m.attributes = attrs;
        m
    }

    /// `node_network_address_info` from link and address dumps as the kernel sends them
    /// (IPv4: `IFA_ADDRESS` then `IFA_LOCAL`; point-to-point: `IFA_ADDRESS` is the peer),
    /// filtered by the device filter (1.12, not 1.5), sorted.
    #[test]
    fn address_info_from_dumps() {
        use netlink_packet_route::address::AddressAttribute as A;
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let links = [
            link(1, "lo"),
            link(2, "eth0"),
            link(3, "tun0"),
            link(4, "veth0"),
        ];
        let addrs = [
            addr(
                1,
                8,
                vec![A::Address(ip("127.0.0.1")), A::Local(ip("127.0.0.1"))],
            ),
            addr(1, 128, vec![A::Address(ip("::1"))]),
            addr(
                2,
                24,
                vec![A::Address(ip("192.168.1.10")), A::Local(ip("192.168.1.10"))],
            ),
            addr(2, 64, vec![A::Address(ip("fe80::5054:ff:fe12:3456"))]),
            addr(2, 64, vec![A::Address(ip("2001:db8:0:0:1:0:0:1"))]),
            // Point-to-point: the peer in IFA_ADDRESS, the local address in IFA_LOCAL.
            addr(
                3,
                32,
                vec![A::Address(ip("10.8.0.2")), A::Local(ip("10.8.0.1"))],
            ),
            // IPv4-mapped: Go prints the IPv4 address, with the mask's last 32 bits.
            addr(3, 120, vec![A::Address(ip("::ffff:192.0.2.1"))]),
            // Excluded by the filter.
            addr(
                4,
                24,
                vec![A::Address(ip("172.17.0.1")), A::Local(ip("172.17.0.1"))],
            ),
            // An index no link names; a prefix longer than the address.
            addr(9, 24, vec![A::Local(ip("10.9.9.9"))]),
            addr(2, 33, vec![A::Local(ip("10.9.9.8"))]),
        ];
        let filter = DeviceFilter {
            include: None,
            exclude: Some(Regex::new("^veth").expect("regex")),
        };
        let fam = address_info(&links, &addrs, &filter);
        assert_eq!(fam.name, "node_network_address_info");
        assert_eq!(fam.help, "node network address by device");
        assert_eq!(fam.kind, MetricType::Gauge);
        let got: Vec<String> = fam
            .samples
            .iter()
            .map(|s| {
                assert_eq!(s.value, 1.0);
                s.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(
            got,
            [
                "address=192.168.1.10,device=eth0,netmask=24,scope=global",
                "address=2001:db8::1:0:0:1,device=eth0,netmask=64,scope=global",
                "address=fe80::5054:ff:fe12:3456,device=eth0,netmask=64,scope=link-local",
                "address=127.0.0.1,device=lo,netmask=8,scope=link-local",
                "address=::1,device=lo,netmask=128,scope=link-local",
                "address=10.8.0.1,device=tun0,netmask=32,scope=global",
                "address=192.0.2.1,device=tun0,netmask=24,scope=global",
            ]
        );
    }

    /// 1.12's `NewNetDevCollector`: the deprecated names stand for the new ones, are refused
    /// beside them, and an include with an exclude is refused however spelt; empty is unset.
    #[test]
    fn deprecated_filter_flags() {
        let p = |s: &str| Some(s.parse::<Pattern>().expect("pattern"));
        let o = NetdevOptions {
            device_whitelist: p("^eth"),
            ..NetdevOptions::default()
        };
        let (i, e) = device_patterns(&o).expect("accepted");
        assert_eq!(i.map(|p| p.0.as_str()), Some("^eth"));
        assert!(e.is_none());
        let o = NetdevOptions {
            device_blacklist: p("^lo$"),
            ..NetdevOptions::default()
        };
        let (i, e) = device_patterns(&o).expect("accepted");
        assert!(i.is_none());
        assert_eq!(e.map(|p| p.0.as_str()), Some("^lo$"));
        let c = collector(&Options {
            netdev: o,
            ..Options::default()
        });
        let fams = c.collect(&debian12_tree()).expect("collects");
        assert!(sample(&fams, "node_network_receive_bytes_total", "lo").is_none());
        assert!(sample(&fams, "node_network_receive_bytes_total", "eth0").is_some());

        for (o, msg) in [
            (
                NetdevOptions {
                    device_whitelist: p("a"),
                    device_include: p("b"),
                    ..NetdevOptions::default()
                },
                "--collector.netdev.device-whitelist and --collector.netdev.device-include are \
                 mutually exclusive",
            ),
            (
                NetdevOptions {
                    device_blacklist: p("a"),
                    device_exclude: p("b"),
                    ..NetdevOptions::default()
                },
                "--collector.netdev.device-blacklist and --collector.netdev.device-exclude are \
                 mutually exclusive",
            ),
            (
                NetdevOptions {
                    device_whitelist: p("a"),
                    device_blacklist: p("b"),
                    ..NetdevOptions::default()
                },
                "device-include and device-exclude are mutually exclusive",
            ),
            (
                NetdevOptions {
                    device_whitelist: p("a"),
                    device_exclude: p("b"),
                    ..NetdevOptions::default()
                },
                "device-include and device-exclude are mutually exclusive",
            ),
        ] {
            assert_eq!(device_patterns(&o).map(|_| ()), Err(msg.to_string()));
            use crate::collector::options::Merge;
            assert!(o.check().is_err());
        }
        // Empty patterns are unset, as node_exporter's empty string flags.
        let o = NetdevOptions {
            device_whitelist: p(""),
            device_include: p("x"),
            device_exclude: p(""),
            ..NetdevOptions::default()
        };
        let (i, e) = device_patterns(&o).expect("accepted");
        assert_eq!(i.map(|p| p.0.as_str()), Some("x"));
        assert!(e.is_none());
    }

    /// The sandbox users: address-info brings `netlink-route` in either mode; the other new
    /// flags bring nothing.
    #[test]
    fn policy_users_of_the_flags() {
        use crate::sandbox::fragments::Set;
        let users = |o: NetdevOptions| {
            let o = Options {
                netdev: o,
                ..Options::default()
            };
            Set::for_collectors(&crate::collectors::policy_users(&["netdev"], &o)).names()
        };
        assert!(users(NetdevOptions {
            enable_detailed_metrics: Some(true),
            label_ifalias: Some(true),
            device_whitelist: Some("x".parse().expect("pattern")),
            ..NetdevOptions::default()
        })
        .is_empty());
        assert_eq!(
            users(NetdevOptions {
                address_info: Some(true),
                ..NetdevOptions::default()
            }),
            ["netlink-route"]
        );
        assert!(users(NetdevOptions {
            address_info: Some(false),
            ..NetdevOptions::default()
        })
        .is_empty());
    }

    /// This host's loopback over RTM_GETADDR (unsandboxed: the sandboxed run is
    /// tests/netlink_collectors.rs): `127.0.0.1/8` and `::1/128`, `link-local`.
    #[test]
    fn live_address_info_on_loopback() {
        let c = NetDev {
            address_info: true,
            filter: DeviceFilter {
                include: Some(Regex::new("^lo$").expect("regex")),
                exclude: None,
            },
            ..NetDev::default()
        };
        let fams = c.collect(&Paths::default()).expect("collects");
        let fam = fams
            .iter()
            .find(|f| f.name == "node_network_address_info")
            .expect("address info");
        let got: Vec<Vec<&str>> = fam
            .samples
            .iter()
            .map(|s| s.labels.iter().map(|(_, v)| v.as_str()).collect())
            .collect();
        assert!(
            got.contains(&vec!["127.0.0.1", "lo", "8", "link-local"]),
            "{got:?}"
        );
        assert!(
            got.contains(&vec!["::1", "lo", "128", "link-local"]),
            "{got:?}"
        );
        assert!(got.iter().all(|l| l[1] == "lo"), "{got:?}");
    }
}
