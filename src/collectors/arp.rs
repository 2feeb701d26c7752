//! `arp` collector: ARP table entries per device from `/proc/net/arp`, as node_exporter 1.5's
//! `arp_linux.go` (`node_arp_entries{device}`, HELP `ARP entries by device`).
//!
//! As prometheus/procfs: the 9-column header and blank lines are skipped, every other line
//! must have 6 columns (a line of another width fails the collector, as does a missing file).
//! `--collector.arp.device-include` / `--collector.arp.device-exclude` (node_exporter 1.12's
//! names) leave devices out after counting; both apply when both are set, as 1.12.
//!
//! `--[no-]collector.arp.netlink` (node_exporter 1.12, default true) chooses between the
//! kernel's neighbour table over rtnetlink and `/proc/net/arp`. With `--no-collector.arp.netlink`
//! the collector reads `/proc/net/arp`, as 1.12; the rtnetlink path is the `netlink` work of
//! issue 13 and, until it lands, the flag's default also reads `/proc/net/arp`.

use std::collections::BTreeMap;

use super::options::{collector_options, parse_bool, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

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

collector_options! {
    /// Options of the arp collector (`[collector.arp]` in the file).
    pub struct ArpOptions {
        /// Regexp of arp devices to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.arp.device-include", long = "collector.arp.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of arp devices to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.arp.device-exclude", long = "collector.arp.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// Use netlink to gather stats instead of /proc/net/arp [default: true].
        #[arg(id = "collector.arp.netlink", long = "collector.arp.netlink",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub netlink: Option<bool>,
        /// Read /proc/net/arp instead of netlink (node_exporter's negation of
        /// --collector.arp.netlink).
        #[arg(id = "no-collector.arp.netlink", long = "no-collector.arp.netlink",
              num_args = 0, default_missing_value = "true", value_parser = parse_bool,
              conflicts_with = "collector.arp.netlink")]
        #[serde(skip)]
        pub no_netlink: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.arp;
    Box::new(Arp {
        filter: DeviceFilter {
            include: o.device_include.as_ref().map(|p| p.0.clone()),
            exclude: o.device_exclude.as_ref().map(|p| p.0.clone()),
        },
        netlink: o.no_netlink != Some(true) && o.netlink.unwrap_or(true),
    })
}

#[derive(Default)]
pub struct Arp {
    pub filter: DeviceFilter,
    /// `--collector.arp.netlink` (the default) rather than `--no-collector.arp.netlink`.
    pub netlink: bool,
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
                .map(|s| s.labels[0].1.clone())
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
            netlink: false,
        });
        assert!(!excluded.iter().any(|d| d == "nope"));
        assert_eq!(excluded.len() + 1, all.len());
        let included = devices(Arp {
            filter: DeviceFilter {
                include: re("^nope$"),
                exclude: None,
            },
            netlink: false,
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
