//! `softnet` collector: per-CPU packet processing counters from `/proc/net/softnet_stat`, as
//! node_exporter 1.5's `softnet_linux.go`: `node_softnet_processed_total`,
//! `node_softnet_dropped_total` and `node_softnet_times_squeezed_total`, labelled `cpu` with
//! the line number (as 1.5 does; the later columns, e.g. the CPU id kernels ≥ 5.10 print, are
//! not used).
//!
//! Each line has at least 9 hexadecimal columns (prometheus/procfs' check); a shorter line, a
//! bad number or a missing file fails the collector.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// One CPU's line: processed, dropped, time_squeezed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softnet {
    pub processed: u32,
    pub dropped: u32,
    pub time_squeezed: u32,
}

const MIN_COLUMNS: usize = 9;

/// Parses `/proc/net/softnet_stat`.
pub fn parse_softnet(text: &str) -> Result<Vec<Softnet>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        if cols.len() < MIN_COLUMNS {
            return Err(format!(
                "{} columns were detected, but at least {MIN_COLUMNS} were expected",
                cols.len()
            ));
        }
        let hex = |s: &str| {
            u32::from_str_radix(s, 16).map_err(|_| format!("bad hex value {s:?} in line {line:?}"))
        };
        let &[processed, dropped, time_squeezed, ..] = cols.as_slice() else {
            continue;
        };
        out.push(Softnet {
            processed: hex(processed)?,
            dropped: hex(dropped)?,
            time_squeezed: hex(time_squeezed)?,
        });
    }
    Ok(out)
}

pub fn families(stats: &[Softnet]) -> Vec<MetricFamily> {
    let mut processed = MetricFamily::counter(
        "node_softnet_processed_total",
        "Number of processed packets",
    );
    let mut dropped =
        MetricFamily::counter("node_softnet_dropped_total", "Number of dropped packets");
    let mut squeezed = MetricFamily::counter(
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
    );
    for (cpu, s) in stats.iter().enumerate() {
        let cpu = cpu.to_string();
        processed.push(&[("cpu", &cpu)], s.processed as f64);
        dropped.push(&[("cpu", &cpu)], s.dropped as f64);
        squeezed.push(&[("cpu", &cpu)], s.time_squeezed as f64);
    }
    let mut out = vec![dropped, processed, squeezed];
    for f in &mut out {
        sort_samples(f);
    }
    out
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(SoftnetCollector)
}

pub struct SoftnetCollector;

impl Collector for SoftnetCollector {
    fn name(&self) -> &'static str {
        "softnet"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("net/softnet_stat");
        let stats = read_parsed(&path, parse_softnet)?;
        Ok(families(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::lines::{parse, render};
    use crate::collectors::testutil::procfs;

    const DEBIAN12: &str =
        include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/softnet_stat");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/softnet_stat");

    #[test]
    fn debian12() {
        let s = parse_softnet(DEBIAN12).expect("parses");
        assert_eq!(
            s,
            [
                Softnet {
                    processed: 0xe42,
                    dropped: 0,
                    time_squeezed: 0
                },
                Softnet {
                    processed: 0x25e1,
                    dropped: 0,
                    time_squeezed: 0
                }
            ]
        );
    }

    #[test]
    fn node_exporter_fixture_as_node_exporter_prints_it() {
        // This file's values as node_exporter prints them (hex columns in decimal).
        let expected = "# HELP node_softnet_dropped_total Number of dropped packets
# TYPE node_softnet_dropped_total counter
node_softnet_dropped_total{cpu=\"0\"} 0
node_softnet_dropped_total{cpu=\"1\"} 41
node_softnet_dropped_total{cpu=\"2\"} 0
node_softnet_dropped_total{cpu=\"3\"} 0
# HELP node_softnet_processed_total Number of processed packets
# TYPE node_softnet_processed_total counter
node_softnet_processed_total{cpu=\"0\"} 299641
node_softnet_processed_total{cpu=\"1\"} 916354
node_softnet_processed_total{cpu=\"2\"} 5.577791e+06
node_softnet_processed_total{cpu=\"3\"} 3.113785e+06
# HELP node_softnet_times_squeezed_total Number of times processing packets ran out of quota
# TYPE node_softnet_times_squeezed_total counter
node_softnet_times_squeezed_total{cpu=\"0\"} 1
node_softnet_times_squeezed_total{cpu=\"1\"} 10
node_softnet_times_squeezed_total{cpu=\"2\"} 85
node_softnet_times_squeezed_total{cpu=\"3\"} 50
";
        let fams = families(&parse_softnet(NODE_EXPORTER).expect("parses"));
        assert_eq!(render(&fams), parse(expected));
    }

    #[test]
    fn many_cpus_sort_as_strings() {
        let line = "00000001 00000000 00000000 0 0 0 0 0 0\n";
        let fams = families(&parse_softnet(&line.repeat(11)).expect("parses"));
        let cpus: Vec<_> = fams[0]
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        assert_eq!(cpus[..3], ["0", "1", "10"]);
    }

    #[test]
    fn garbled() {
        assert!(parse_softnet("00000001 00000000 00000000\n").is_err());
        assert!(parse_softnet("0000000g 0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse_softnet("100000000 0 0 0 0 0 0 0 0\n").is_err());
        assert_eq!(parse_softnet(""), Ok(vec![]));
    }

    #[test]
    fn fixture_tree_and_absent() {
        let fams = SoftnetCollector
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_eq!(fams[1].samples[1].value, 9697.0);
        assert!(SoftnetCollector.collect(&procfs("net", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        let fams = SoftnetCollector
            .collect(&Paths::default())
            .expect("reads softnet_stat");
        assert!(!fams[0].samples.is_empty());
    }
}
