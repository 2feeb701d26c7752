//! `swap` collector (off by default, as in node_exporter 1.12): one series per swap area of
//! `/proc/swaps`, as node_exporter 1.12's `swap_linux.go`:
//! `node_swap_size_bytes`, `node_swap_used_bytes` and `node_swap_priority`, each labelled
//! `{device, swap_type}` (the file's `Filename` and `Type`; sizes are KiB in the file).
//!
//! As prometheus/procfs: the first line is the header; every other line needs at least five
//! fields with integer size, used and priority, or the collector fails; a missing file fails it.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// One line of `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub filename: String,
    pub kind: String,
    /// KiB.
    pub size: i64,
    /// KiB.
    pub used: i64,
    pub priority: i64,
}

/// Parses `/proc/swaps`.
pub fn parse_swaps(text: &str) -> Result<Vec<Swap>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [filename, kind, size, used, priority, ..] = f.as_slice() else {
            return Err(format!("too few fields in swap string: {line}"));
        };
        let int = |what: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("invalid swap {what}: {v}"))
        };
        out.push(Swap {
            filename: filename.to_string(),
            kind: kind.to_string(),
            size: int("size", size)?,
            used: int("used", used)?,
            priority: int("priority", priority)?,
        });
    }
    Ok(out)
}

pub fn families(swaps: &[Swap]) -> Vec<MetricFamily> {
    let mut size = MetricFamily::gauge("node_swap_size_bytes", "Swap device size in bytes.");
    let mut used = MetricFamily::gauge("node_swap_used_bytes", "Swap device used in bytes.");
    let mut prio = MetricFamily::gauge("node_swap_priority", "Swap device priority.");
    for s in swaps {
        let labels = [
            ("device", s.filename.as_str()),
            ("swap_type", s.kind.as_str()),
        ];
        size.push(&labels, s.size as f64 * 1024.0);
        used.push(&labels, s.used as f64 * 1024.0);
        prio.push(&labels, s.priority as f64);
    }
    vec![prio, size, used]
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(SwapCollector)
}

pub struct SwapCollector;

impl Collector for SwapCollector {
    fn name(&self) -> &'static str {
        "swap"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        read_parsed(&paths.proc("swaps"), |t| {
            parse_swaps(t).map(|s| families(&s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::procfs;

    #[test]
    fn node_exporter_fixture() {
        let fams = SwapCollector
            .collect(&procfs("swap", "node_exporter-1.12/proc"))
            .expect("collects");
        let text = crate::collectors::testutil::render(fams);
        assert_eq!(
            text,
            "# HELP node_swap_priority Swap device priority.
# TYPE node_swap_priority gauge
node_swap_priority{device=\"/dev/zram0\",swap_type=\"partition\"} 100
# HELP node_swap_size_bytes Swap device size in bytes.
# TYPE node_swap_size_bytes gauge
node_swap_size_bytes{device=\"/dev/zram0\",swap_type=\"partition\"} 8.589930496e+09
# HELP node_swap_used_bytes Swap device used in bytes.
# TYPE node_swap_used_bytes gauge
node_swap_used_bytes{device=\"/dev/zram0\",swap_type=\"partition\"} 77824
"
        );
    }

    #[test]
    fn garbled_empty_and_absent() {
        assert!(parse_swaps("h\n/dev/sda2 partition 1 2\n").is_err());
        assert!(parse_swaps("h\n/dev/sda2 partition x 2 3\n").is_err());
        assert!(parse_swaps("Filename Type Size Used Priority\n")
            .expect("header only")
            .is_empty());
        assert!(SwapCollector.collect(&procfs("swap", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        SwapCollector
            .collect(&Paths::default())
            .expect("reads /proc/swaps");
    }
}
