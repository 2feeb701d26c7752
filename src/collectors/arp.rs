//! `arp` collector: ARP table entries per device from `/proc/net/arp`, as node_exporter 1.5's
//! `arp_linux.go` (`node_arp_entries{device}`, HELP `ARP entries by device`).
//!
//! As prometheus/procfs: the 9-column header and blank lines are skipped, every other line
//! must have 6 columns (a line of another width fails the collector, as does a missing file).
//! node_exporter 1.5's `--collector.arp.device-include/-exclude` have no counterpart in
//! [`Options`] yet: every device is exported (node_exporter's default).

use std::collections::BTreeMap;

use super::{read_parsed, CollectError, Collector, Options, Paths};
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

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Arp)
}

pub struct Arp;

impl Collector for Arp {
    fn name(&self) -> &'static str {
        "arp"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        read_parsed(&paths.proc("net/arp"), |text| {
            parse_arp(text).map(|entries| families(&entries))
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
        let fams = Arp
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_eq!(fams[0].samples.len(), 1);
        assert!(Arp.collect(&procfs("net", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        Arp.collect(&Paths::default()).expect("reads /proc/net/arp");
    }
}
