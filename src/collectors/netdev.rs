//! `netdev` collector: per-interface traffic counters from `/proc/net/dev`, under node_exporter
//! 1.5's names (`node_network_receive_bytes_total{device="eth0"}`, …; HELP `Network device
//! statistic receive_bytes.`, counters).
//!
//! node_exporter 1.5 reads these through rtnetlink by default (`--collector.netdev.netlink`)
//! and renames them to the legacy `/proc/net/dev` names; the kernel builds `/proc/net/dev` from
//! the same `rtnl_link_stats64` with the same sums (`drop` = dropped + missed, `frame` = frame +
//! length + over + crc, `carrier` = carrier + aborted + heartbeat + window), so the 16 columns
//! give the same values without a netlink socket. The one family netlink adds,
//! `receive_nohandler`, is not in `/proc/net/dev`: it is read from
//! `/sys/class/net/<dev>/statistics/rx_nohandler` (skipped for a device without that file, as
//! on kernels before 4.6).
//!
//! Devices are filtered with `--collector.netdev.device-include/-exclude`.
//!
//! node_exporter 1.12's e2e test (`tests/e2e_node_exporter_112.rs`) expects `lo`'s counters
//! with `--collector.netdev.device-include=lo` although its fixture tree has no `proc/net/dev`
//! and no `sys/class/net/lo`: its netdev reads the live host's interfaces over rtnetlink (its
//! default), whatever `--path.procfs` says. This collector reads `/proc/net/dev` under
//! `--path.procfs`, so on that tree it fails (no file) until the rtnetlink mode (issue 13's
//! netlink work) serves those counters.

use std::path::Path;

use super::options::{collector_options, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

/// One interface's line of `/proc/net/dev`: the 8 receive then the 8 transmit columns.
#[derive(Debug, Clone, PartialEq)]
pub struct NetDevLine {
    pub name: String,
    pub values: [u64; 16],
}

/// node_exporter's names for the 16 columns, in file order.
pub const COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
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

/// The families for the given lines (already filtered), with `nohandler[i]` the
/// `rx_nohandler` of `lines[i]` when known. Samples are sorted by device, as node_exporter's
/// registry sorts them.
pub fn families(lines: &[NetDevLine], nohandler: &[Option<u64>]) -> Vec<MetricFamily> {
    let mut order: Vec<(&NetDevLine, Option<u64>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l, nohandler.get(i).copied().flatten()))
        .collect();
    order.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut out = Vec::with_capacity(17);
    for (col, key) in COLUMNS.iter().enumerate() {
        let mut fam = MetricFamily::counter(
            format!("node_network_{key}_total"),
            format!("Network device statistic {key}."),
        );
        fam.samples.reserve(lines.len());
        for (l, _) in &order {
            if let Some(v) = l.values.get(col) {
                fam.push(&[("device", &l.name)], *v as f64);
            }
        }
        out.push(fam);
    }
    let mut fam = MetricFamily::counter(
        "node_network_receive_nohandler_total",
        "Network device statistic receive_nohandler.",
    );
    for (l, nohandler) in &order {
        if let Some(v) = nohandler {
            fam.push(&[("device", &l.name)], *v as f64);
        }
    }
    if !fam.samples.is_empty() {
        out.push(fam);
    }
    out
}

/// Reads a sysfs file holding one unsigned number; `None` when absent, unreadable or not a
/// number.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    super::fsio::read_to_string(path).ok()?.trim().parse().ok()
}

collector_options! {
    /// Options of the netdev collector (`[collector.netdev]` in the file).
    pub struct NetdevOptions {
        /// Regexp of net devices to include (mutually exclusive with device-exclude).
        #[arg(id = "collector.netdev.device-include", long = "collector.netdev.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of net devices to exclude.
        #[arg(id = "collector.netdev.device-exclude", long = "collector.netdev.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
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
    check(o) { DeviceFilter::exclusive(&o.device_include, &o.device_exclude) }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.netdev;
    Box::new(NetDev {
        filter: DeviceFilter::new(&o.device_include, &o.device_exclude, None),
        netlink: uses_netlink(o),
    })
}

/// Whether `--collector.netdev.netlink` is in force (the `netlink_route` fragment's user
/// `netdev.netlink`).
pub fn uses_netlink(o: &NetdevOptions) -> bool {
    super::netlink::flag(o.netlink, o.no_netlink)
}

pub struct NetDev {
    filter: DeviceFilter,
    netlink: bool,
}

/// `--collector.netdev.netlink`: one line per interface from an `RTM_GETLINK` dump, with the
/// legacy sums node_exporter's `legacy()` makes of `rtnl_link_stats64` (the kernel's own for
/// `/proc/net/dev`), and `rx_nohandler`. Interfaces without statistics are skipped, as
/// node_exporter does; 32-bit `IFLA_STATS` stands in when `IFLA_STATS64` is absent.
pub fn netlink_lines(
    links: &[netlink_packet_route::link::LinkMessage],
) -> (Vec<NetDevLine>, Vec<Option<u64>>) {
    use netlink_packet_route::link::LinkAttribute;
    let mut lines = Vec::new();
    let mut nohandler = Vec::new();
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
        let add = |v: &[u64]| v.iter().fold(0u64, |a, b| a.wrapping_add(*b));
        lines.push(NetDevLine {
            name: name.to_string(),
            values: [
                s.rx_bytes,
                s.rx_packets,
                s.rx_errors,
                add(&[s.rx_dropped, s.rx_missed_errors]),
                s.rx_fifo_errors,
                add(&[
                    s.rx_frame_errors,
                    s.rx_length_errors,
                    s.rx_over_errors,
                    s.rx_crc_errors,
                ]),
                s.rx_compressed,
                s.multicast,
                s.tx_bytes,
                s.tx_packets,
                s.tx_errors,
                s.tx_dropped,
                s.tx_fifo_errors,
                s.collisions,
                add(&[
                    s.tx_carrier_errors,
                    s.tx_aborted_errors,
                    s.tx_heartbeat_errors,
                    s.tx_window_errors,
                ]),
                s.tx_compressed,
            ],
        });
        nohandler.push(Some(s.rx_nohandler));
    }
    (lines, nohandler)
}

impl Collector for NetDev {
    fn name(&self) -> &'static str {
        "netdev"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        if self.netlink {
            let (lines, nohandler) = netlink_lines(&super::netlink::route::links()?);
            let (lines, nohandler): (Vec<_>, Vec<_>) = lines
                .into_iter()
                .zip(nohandler)
                .filter(|(l, _)| !self.filter.ignored(&l.name))
                .unzip();
            return Ok(families(&lines, &nohandler));
        }
        let path = paths.proc("net/dev");
        let mut lines = read_parsed(&path, parse_net_dev)?;
        lines.retain(|l| !self.filter.ignored(&l.name));
        let class = paths.sys("class/net");
        let nohandler: Vec<Option<u64>> = lines
            .iter()
            .map(|l| {
                // A name that could leave the directory is not looked up.
                if l.name.contains('/') || l.name == "." || l.name == ".." {
                    return None;
                }
                read_u64(&class.join(&l.name).join("statistics/rx_nohandler"))
            })
            .collect();
        Ok(families(&lines, &nohandler))
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
        let fams = families(&lines, &[Some(0), None, None, Some(7)]);
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
        let fams = families(&lines, &[]);
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
            netlink: false,
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
            netlink: false,
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
        let c = NetDev {
            filter: DeviceFilter::default(),
            netlink: false,
        };
        let fams = c.collect(&Paths::default()).expect("reads /proc/net/dev");
        assert!(sample(&fams, "node_network_receive_bytes_total", "lo").is_some());
        assert!(sample(&fams, "node_network_receive_nohandler_total", "lo").is_some());
    }

    /// `--collector.netdev.netlink` against `/proc/net/dev` on this host (unsandboxed: the
    /// sandboxed run is tests/netlink_collectors.rs): the same families and devices, and every
    /// counter between the two `/proc/net/dev` reads around the dump (traffic goes on).
    #[test]
    fn live_netlink_matches_proc_net_dev() {
        let proc_c = NetDev {
            filter: DeviceFilter::default(),
            netlink: false,
        };
        let nl_c = NetDev {
            filter: DeviceFilter::default(),
            netlink: true,
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
        let (lines, nohandler) = netlink_lines(&[with64, none]);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].values,
            [1, 0, 0, 5, 0, 22, 0, 12, 0, 0, 0, 0, 0, 13, 38, 0]
        );
        assert_eq!(nohandler, [Some(14)]);
    }
}
