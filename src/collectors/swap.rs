//! `swap` collector: node_exporter 1.12's `swap_linux.go` over prometheus/procfs' `Swaps`
//! (off by default, as there).
//!
//! Per line of `/proc/swaps` after the header: `node_swap_size_bytes`,
//! `node_swap_used_bytes` (the file's KiB times 1024) and `node_swap_priority`, labelled
//! `device` (the file name as the kernel prints it) and `swap_type`. A line with fewer than
//! five fields or a field that is not an integer fails the collector, as procfs does; an
//! absent file fails it too (node_exporter has no `ErrNoData` here).

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Swap)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub device: String,
    pub kind: String,
    /// KiB.
    pub size: i64,
    /// KiB.
    pub used: i64,
    pub priority: i64,
}

/// procfs' `parseSwaps`: the first line is the header.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [device, kind, size, used, priority, ..] = f.as_slice() else {
            return Err(format!("too few fields in swap string: {line:?}"));
        };
        let int = |what: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|e| format!("invalid swap {what}: {v:?}: {e}"))
        };
        out.push(Entry {
            device: (*device).to_string(),
            kind: (*kind).to_string(),
            size: int("size", size)?,
            used: int("used", used)?,
            priority: int("priority", priority)?,
        });
    }
    Ok(out)
}

/// The families, in node_exporter's order of emission.
pub fn families(entries: &[Entry]) -> Vec<MetricFamily> {
    let mut size = MetricFamily::gauge("node_swap_size_bytes", "Swap device size in bytes.");
    let mut used = MetricFamily::gauge("node_swap_used_bytes", "Swap device used in bytes.");
    let mut prio = MetricFamily::gauge("node_swap_priority", "Swap device priority.");
    for e in entries {
        let labels = [
            ("device", e.device.as_str()),
            ("swap_type", e.kind.as_str()),
        ];
        // Go's `int` arithmetic: `swap.Size*1024` wraps on overflow.
        size.push(&labels, e.size.wrapping_mul(1024) as f64);
        used.push(&labels, e.used.wrapping_mul(1024) as f64);
        prio.push(&labels, e.priority as f64);
    }
    vec![size, used, prio]
}

struct Swap;

impl Collector for Swap {
    fn name(&self) -> &'static str {
        "swap"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("swaps");
        let text = read_to_string(&path)?;
        let entries = parse(&text).map_err(|msg| CollectError::parse(&path, msg))?;
        Ok(families(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn matches_node_exporter_112() {
        let fams = Swap
            .collect(&procfs("ne112", "swap/proc"))
            .expect("collects");
        assert_golden(render(fams), "ne112", "swap/expected.txt");
    }

    #[test]
    fn header_only_is_no_sample() {
        let e = parse("Filename\tType\tSize\tUsed\tPriority\n").expect("parses");
        assert!(e.is_empty());
    }

    #[test]
    fn bad_lines_fail_as_procfs() {
        let h = "Filename Type Size Used Priority\n";
        assert!(parse(&format!("{h}/dev/sda2 partition 100 0\n")).is_err());
        assert!(parse(&format!("{h}/dev/sda2 partition 1x 0 -2\n")).is_err());
        let e = parse(&format!("{h}/swapfile file 1024 12 -2 extra\n")).expect("parses");
        assert_eq!(e[0].priority, -2);
        assert_eq!(e[0].kind, "file");
    }

    #[test]
    fn absent_file_fails() {
        let dir = std::env::temp_dir().join("swap-test-no-such-proc");
        assert!(Swap
            .collect(&crate::collectors::testutil::procfs_at(dir))
            .is_err());
    }
}
