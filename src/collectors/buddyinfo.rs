//! `buddyinfo` collector: free blocks per order from `/proc/buddyinfo`, as node_exporter 1.5's
//! `buddyinfo.go` (prometheus/procfs `BuddyInfo`): `node_buddyinfo_blocks{node,size,zone}`.
//!
//! As procfs, a line with fewer than four fields, a differing number of orders between lines
//! or a non-numeric count fails the collector; a node/zone printed twice keeps its last line.

use std::collections::BTreeMap;

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(BuddyInfo)
}

/// Free-block counts by order, keyed by (node, zone).
pub type Buddy = BTreeMap<(String, String), Vec<f64>>;

pub fn parse_buddyinfo(text: &str) -> Result<Buddy, String> {
    let mut out = Buddy::new();
    let mut buckets: Option<usize> = None;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let [_, node, _, zone, sizes @ ..] = parts.as_slice() else {
            return Err(format!("invalid number of fields in line {line:?}"));
        };
        if *buckets.get_or_insert(sizes.len()) != sizes.len() {
            return Err(format!(
                "mismatch in number of buddyinfo buckets in {line:?}"
            ));
        }
        let sizes = sizes
            .iter()
            .map(|s| s.parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("invalid value in line {line:?}"))?;
        out.insert(
            (
                node.trim_end_matches(',').to_string(),
                zone.trim_end_matches(',').to_string(),
            ),
            sizes,
        );
    }
    Ok(out)
}

pub fn family(buddy: &Buddy) -> MetricFamily {
    let mut fam = MetricFamily::gauge(
        "node_buddyinfo_blocks",
        "Count of free blocks according to size.",
    );
    for ((node, zone), sizes) in buddy {
        for (size, v) in sizes.iter().enumerate() {
            let size = size.to_string();
            fam.push(&[("node", node), ("size", &size), ("zone", zone)], *v);
        }
    }
    sort_samples(&mut fam);
    fam
}

struct BuddyInfo;

impl Collector for BuddyInfo {
    fn name(&self) -> &'static str {
        "buddyinfo"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("buddyinfo");
        let buddy = read_parsed(&path, parse_buddyinfo)?;
        Ok(vec![family(&buddy)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn parses() {
        let b = parse_buddyinfo(include_str!(
            "../../tests/fixtures/procmisc/debian12-vm-6.18/proc/buddyinfo"
        ))
        .expect("parses");
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[&("0".to_string(), "Normal".to_string())][..3],
            [10035.0, 3054.0, 1011.0]
        );
        assert!(parse_buddyinfo("Node 0, zone\n").is_err());
        assert!(parse_buddyinfo("Node 0, zone DMA 1 2\nNode 0, zone DMA32 1\n").is_err());
        assert!(parse_buddyinfo("Node 0, zone DMA 1 x\n").is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = BuddyInfo.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-buddyinfo.txt");
    }

    #[test]
    fn live() {
        let fams = BuddyInfo
            .collect(&Paths::default())
            .expect("reads buddyinfo");
        assert!(!fams[0].samples.is_empty());
    }
}
