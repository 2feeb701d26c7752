//! `arp` collector: ARP table entries per device from `/proc/net/arp`, as node_exporter 1.5's
//! `arp_linux.go` (`node_arp_entries{device}`, HELP `ARP entries by device`).
//!
//! As prometheus/procfs: the 9-column header and blank lines are skipped, every other line
//! must have 6 columns (a line of another width fails the collector, as does a missing file).
//! `--collector.arp.device-include` / `--collector.arp.device-exclude` (node_exporter 1.12's
//! names) leave devices out after counting, in both modes; both apply when both are set, as
//! 1.12.

use std::collections::BTreeMap;

use super::options::{collector_options, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the arp collector (`[collector.arp]` in the file).
    pub struct ArpOptions {
        /// Regexp of arp devices to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.arp.device-include", long = "collector.arp.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of arp devices to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.arp.device-exclude", long = "collector.arp.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// Use netlink (RTM_GETNEIGH) to gather stats instead of /proc/net/arp: the same
        /// family; widens the sandbox by the netlink-route policy fragment. Off by default
        /// (node_exporter 1.12: on), see README. [default: false]
        #[arg(id = "collector.arp.netlink", long = "collector.arp.netlink", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = super::netlink::parse_bool, overrides_with = "collector.arp.no-netlink")]
        pub netlink: Option<bool>,
        /// node_exporter's negation of --collector.arp.netlink (the default here).
        #[arg(id = "collector.arp.no-netlink", long = "no-collector.arp.netlink", value_name = "BOOL",
              num_args = 0, default_missing_value = "true", value_parser = super::netlink::parse_bool,
              hide = true, overrides_with = "collector.arp.netlink")]
        pub no_netlink: Option<bool>,
    }
}

/// Whether `--collector.arp.netlink` is in force (the `netlink-route` fragment's user
/// `arp.netlink`).
pub fn uses_netlink(o: &ArpOptions) -> bool {
    super::netlink::flag(o.netlink, o.no_netlink)
}

/// `NUD_NOARP`: entries /proc/net/arp leaves out, and node_exporter's netlink mode too.
const NUD_NOARP: u16 = 0x40;

/// `--collector.arp.netlink`: IPv4 neighbours per interface name from `RTM_GETNEIGH`, without
/// `NUD_NOARP` entries (node_exporter 1.12's `getTotalArpEntriesRTNL`). `names` maps interface
/// indexes to names (from `RTM_GETLINK`); an entry of an unknown index counts under "".
pub fn count_neighbours(
    neighbours: &[netlink_packet_route::neighbour::NeighbourMessage],
    names: &std::collections::HashMap<u32, String>,
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for n in neighbours {
        if n.header.family != netlink_packet_route::AddressFamily::Inet
            || u16::from(n.header.state) & NUD_NOARP != 0
        {
            continue;
        }
        let name = names.get(&n.header.ifindex).cloned().unwrap_or_default();
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// Counts entries per device (sorted by device name).
pub fn parse_arp(text: &str) -> Result<BTreeMap<&str, u32>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut n = 0;
        let mut last = "";
        for f in line.split_ascii_whitespace() {
            n += 1;
            last = f;
        }
        match n {
            0 | 9 => continue,
            6 => *out.entry(last).or_insert(0) += 1,
            _ => return Err(format!("{n} columns were detected, but 6 were expected")),
        }
    }
    Ok(out)
}

pub fn families(entries: &BTreeMap<&str, u32>) -> Vec<MetricFamily> {
    let mut fam = MetricFamily::gauge("node_arp_entries", "ARP entries by device");
    for (dev, n) in entries {
        fam.push(&[("device", dev)], *n as f64);
    }
    vec![fam]
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.arp;
    let filter = DeviceFilter {
        include: o.device_include.as_ref().map(|p| p.0.clone()),
        exclude: o.device_exclude.as_ref().map(|p| p.0.clone()),
    };
    if uses_netlink(o) {
        Box::new(ArpNetlink { filter })
    } else {
        Box::new(Arp { filter })
    }
}

#[derive(Default)]
pub struct Arp {
    pub filter: DeviceFilter,
}

/// The arp collector in its netlink mode.
#[derive(Default)]
pub struct ArpNetlink {
    pub filter: DeviceFilter,
}

impl Collector for ArpNetlink {
    fn name(&self) -> &'static str {
        "arp"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        use super::netlink::route;
        let names = route::names(&route::links()?);
        let neigh = route::neighbours(netlink_packet_route::AddressFamily::Inet)?;
        let counts = count_neighbours(&neigh, &names);
        let entries: BTreeMap<&str, u32> = counts
            .iter()
            .filter(|(k, _)| !self.filter.ignored(k))
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        Ok(families(&entries))
    }
}

impl Collector for Arp {
    fn name(&self) -> &'static str {
        "arp"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        read_parsed(&paths.proc("net/arp"), |text| {
            parse_arp(text).map(|mut entries| {
                entries.retain(|dev, _| !self.filter.ignored(dev));
                families(&entries)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::lines::{parse, render};
    use crate::collectors::testutil::procfs;

    const DEBIAN12: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/arp");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/arp");

    #[test]
    fn debian12_matches_node_exporter() {
        let fams = families(&parse_arp(DEBIAN12).expect("parses"));
        let expected = "# HELP node_arp_entries ARP entries by device
# TYPE node_arp_entries gauge
node_arp_entries{device=\"eth0\"} 1
";
        assert_eq!(render(&fams), parse(expected));
    }

    #[test]
    fn node_exporter_fixture() {
        let e = parse_arp(NODE_EXPORTER).expect("parses");
        assert_eq!(
            e.into_iter().collect::<Vec<_>>(),
            [("eth0", 3), ("eth1", 3)]
        );
    }

    #[test]
    fn garbled_and_empty() {
        assert!(parse_arp("1.2.3.4 0x1 0x2 aa:bb eth0\n").is_err());
        assert!(parse_arp("").expect("empty").is_empty());
        let only_header =
            "IP address       HW type     Flags       HW address            Mask     Device\n";
        assert!(parse_arp(only_header).expect("header").is_empty());
        // An empty table still yields the (empty) family: nothing is printed.
        assert!(families(&BTreeMap::new())[0].samples.is_empty());
    }

    #[test]
    fn fixture_tree_and_absent() {
        let fams = Arp::default()
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_eq!(fams[0].samples.len(), 1);
        assert!(Arp::default().collect(&procfs("net", "nowhere")).is_err());
    }

    /// node_exporter 1.12's `/proc/net/arp` fixture with its e2e flag
    /// `--collector.arp.device-exclude=nope`: the `nope` device is left out.
    #[test]
    fn device_filter_node_exporter_112() {
        let p = Paths {
            procfs: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/node_exporter_1.12/proc"),
            ..Paths::default()
        };
        let devices = |arp: Arp| -> Vec<String> {
            arp.collect(&p).expect("collects")[0]
                .samples
                .iter()
                .map(|s| s.labels[0].1.to_string())
                .collect()
        };
        let all = devices(Arp::default());
        assert!(all.iter().any(|d| d == "nope"), "{all:?}");
        let re = |s: &str| Some(regex::Regex::new(s).expect("regex"));
        let excluded = devices(Arp {
            filter: DeviceFilter {
                include: None,
                exclude: re("nope"),
            },
        });
        assert!(!excluded.iter().any(|d| d == "nope"));
        assert_eq!(excluded.len() + 1, all.len());
        let included = devices(Arp {
            filter: DeviceFilter {
                include: re("^nope$"),
                exclude: None,
            },
        });
        assert_eq!(included, ["nope"]);
    }

    #[test]
    fn live() {
        Arp::default()
            .collect(&Paths::default())
            .expect("reads /proc/net/arp");
    }
}

#[cfg(test)]
mod netlink_tests {
    use super::*;
    use netlink_packet_route::neighbour::{NeighbourMessage, NeighbourState};
    use netlink_packet_route::AddressFamily;
    use std::collections::HashMap;

    fn neigh(family: AddressFamily, ifindex: u32, state: NeighbourState) -> NeighbourMessage {
        let mut n = NeighbourMessage::default();
        n.header.family = family;
        n.header.ifindex = ifindex;
        n.header.state = state;
        n
    }

    /// As 1.12's getTotalArpEntriesRTNL: IPv4 only, NUD_NOARP entries left out, counted per
    /// interface name.
    #[test]
    fn counts_ipv4_neighbours_without_noarp() {
        let names: HashMap<u32, String> = [(1, "lo".into()), (2, "eth0".into())].into();
        let dump = [
            neigh(AddressFamily::Inet, 2, NeighbourState::Reachable),
            neigh(AddressFamily::Inet, 2, NeighbourState::Stale),
            neigh(AddressFamily::Inet, 2, NeighbourState::Permanent),
            neigh(AddressFamily::Inet, 1, NeighbourState::Noarp),
            neigh(AddressFamily::Inet6, 2, NeighbourState::Reachable),
            neigh(AddressFamily::Inet, 9, NeighbourState::Failed),
        ];
        let got = count_neighbours(&dump, &names);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("".to_string(), 1), ("eth0".to_string(), 3)]
        );
    }

    #[test]
    fn the_flag() {
        let on = |netlink, no_netlink| {
            uses_netlink(&ArpOptions {
                netlink,
                no_netlink,
                ..ArpOptions::default()
            })
        };
        assert!(!on(None, None));
        assert!(on(Some(true), None));
        assert!(!on(Some(false), None));
        assert!(!on(Some(true), Some(true)));
        assert!(collector(&Options::default()).name() == "arp");
    }

    /// node_exporter's spellings on the command line; the later of the two flags wins.
    #[test]
    fn command_line() {
        let parse = |args: &[&str]| {
            let cli = crate::cli::Cli::parse_args(
                std::iter::once("monitoring-agent").chain(args.iter().copied()),
            )
            .expect("parses");
            (
                uses_netlink(&cli.collector.arp),
                super::super::netdev::uses_netlink(&cli.collector.netdev),
                super::super::netclass::uses_netlink(&cli.collector.netclass),
            )
        };
        assert_eq!(parse(&[]), (false, false, false));
        assert_eq!(
            parse(&[
                "--collector.arp.netlink",
                "--collector.netdev.netlink=true",
                "--collector.netclass.netlink"
            ]),
            (true, true, true)
        );
        assert_eq!(
            parse(&["--no-collector.arp.netlink"]),
            (false, false, false)
        );
        assert_eq!(
            parse(&["--collector.arp.netlink", "--no-collector.arp.netlink"]),
            (false, false, false)
        );
        assert_eq!(
            parse(&["--no-collector.arp.netlink", "--collector.arp.netlink"]),
            (true, false, false)
        );
        assert_eq!(
            parse(&["--collector.netdev.netlink=false"]),
            (false, false, false)
        );
    }

    /// Unsandboxed: the netlink mode's counts equal /proc/net/arp's when the table held still.
    #[test]
    fn live_netlink_matches_proc_net_arp() {
        let proc_before = Arp::default().collect(&Paths::default()).expect("reads");
        let nl = ArpNetlink::default()
            .collect(&Paths::default())
            .expect("dumps");
        let proc_after = Arp::default().collect(&Paths::default()).expect("reads");
        let text = |f: Vec<MetricFamily>| crate::collectors::testutil::render(f);
        let (b, n, a) = (text(proc_before), text(nl), text(proc_after));
        if b == a {
            assert_eq!(n, b);
        }
    }
}
