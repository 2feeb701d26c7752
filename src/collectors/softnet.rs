//! `softnet` collector: per-CPU packet processing counters from `/proc/net/softnet_stat`, as
//! node_exporter 1.12's `softnet_linux.go` (prometheus/procfs' `NetSoftnetStat`):
//! `node_softnet_processed_total`, `node_softnet_dropped_total`,
//! `node_softnet_times_squeezed_total`, `node_softnet_cpu_collision_total` (column 9),
//! `node_softnet_received_rps_total` (column 10, kernels ≥ 2.6.39),
//! `node_softnet_flow_limit_count_total` (column 11, ≥ 4.18) and `node_softnet_backlog_len`
//! (column 12, ≥ 5.14), each labelled `cpu`. A column the kernel does not print reads 0, as in
//! procfs. The `cpu` label is the CPU id of column 13 where the kernel prints it (≥ 5.14),
//! otherwise the line number (1.5 always used the line number and only had the first three
//! families: a node_exporter 1.12 semantic).
//!
//! Each line has at least 9 hexadecimal columns (prometheus/procfs' check); a shorter line, a
//! bad number or a missing file fails the collector.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// One CPU's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Softnet {
    pub processed: u32,
    pub dropped: u32,
    pub time_squeezed: u32,
    pub cpu_collision: u32,
    pub received_rps: u32,
    pub flow_limit_count: u32,
    pub backlog_len: u32,
    /// The CPU id (column 13) or the line number.
    pub index: u32,
}

const MIN_COLUMNS: usize = 9;

/// Parses `/proc/net/softnet_stat`.
pub fn parse_softnet(text: &str) -> Result<Vec<Softnet>, String> {
    let mut out = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        if cols.len() < MIN_COLUMNS {
            return Err(format!(
                "{} columns were detected, but at least {MIN_COLUMNS} were expected",
                cols.len()
            ));
        }
        let hex = |i: usize| -> Result<u32, String> {
            match cols.get(i) {
                None => Ok(0),
                Some(s) => u32::from_str_radix(s, 16)
                    .map_err(|_| format!("bad hex value {s:?} in line {line:?}")),
            }
        };
        // procfs parses the first nine columns as a block: a bad one anywhere fails the line.
        for i in 0..MIN_COLUMNS {
            hex(i)?;
        }
        let index = if cols.len() >= 13 {
            hex(12)?
        } else {
            u32::try_from(line_no).map_err(|_| "too many lines".to_string())?
        };
        out.push(Softnet {
            processed: hex(0)?,
            dropped: hex(1)?,
            time_squeezed: hex(2)?,
            cpu_collision: hex(8)?,
            received_rps: hex(9)?,
            flow_limit_count: hex(10)?,
            backlog_len: if cols.len() >= 13 { hex(11)? } else { 0 },
            index,
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
    let mut collision = MetricFamily::counter(
        "node_softnet_cpu_collision_total",
        "Number of collision occur while obtaining device lock while transmitting",
    );
    let mut rps = MetricFamily::counter(
        "node_softnet_received_rps_total",
        "Number of times cpu woken up received_rps",
    );
    let mut flow = MetricFamily::counter(
        "node_softnet_flow_limit_count_total",
        "Number of times flow limit has been reached",
    );
    let mut backlog = MetricFamily::gauge("node_softnet_backlog_len", "Softnet backlog status");
    for s in stats {
        let cpu = s.index.to_string();
        let l = [("cpu", cpu.as_str())];
        processed.push(&l, s.processed as f64);
        dropped.push(&l, s.dropped as f64);
        squeezed.push(&l, s.time_squeezed as f64);
        collision.push(&l, s.cpu_collision as f64);
        rps.push(&l, s.received_rps as f64);
        flow.push(&l, s.flow_limit_count as f64);
        backlog.push(&l, s.backlog_len as f64);
    }
    let mut out = vec![backlog, collision, dropped, flow, processed, rps, squeezed];
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
                    index: 0,
                    ..Softnet::default()
                },
                Softnet {
                    processed: 0x25e1,
                    index: 1,
                    ..Softnet::default()
                }
            ]
        );
    }

    #[test]
    fn node_exporter_fixture_as_node_exporter_prints_it() {
        // node_exporter 1.12's e2e-output.txt lines for this file.
        let expected = "# HELP node_softnet_backlog_len Softnet backlog status
# TYPE node_softnet_backlog_len gauge
node_softnet_backlog_len{cpu=\"0\"} 0
node_softnet_backlog_len{cpu=\"1\"} 0
node_softnet_backlog_len{cpu=\"2\"} 0
node_softnet_backlog_len{cpu=\"3\"} 0
# HELP node_softnet_cpu_collision_total Number of collision occur while obtaining device lock while transmitting
# TYPE node_softnet_cpu_collision_total counter
node_softnet_cpu_collision_total{cpu=\"0\"} 0
node_softnet_cpu_collision_total{cpu=\"1\"} 0
node_softnet_cpu_collision_total{cpu=\"2\"} 0
node_softnet_cpu_collision_total{cpu=\"3\"} 0
# HELP node_softnet_dropped_total Number of dropped packets
# TYPE node_softnet_dropped_total counter
node_softnet_dropped_total{cpu=\"0\"} 0
node_softnet_dropped_total{cpu=\"1\"} 41
node_softnet_dropped_total{cpu=\"2\"} 0
node_softnet_dropped_total{cpu=\"3\"} 0
# HELP node_softnet_flow_limit_count_total Number of times flow limit has been reached
# TYPE node_softnet_flow_limit_count_total counter
node_softnet_flow_limit_count_total{cpu=\"0\"} 0
node_softnet_flow_limit_count_total{cpu=\"1\"} 0
node_softnet_flow_limit_count_total{cpu=\"2\"} 0
node_softnet_flow_limit_count_total{cpu=\"3\"} 0
# HELP node_softnet_processed_total Number of processed packets
# TYPE node_softnet_processed_total counter
node_softnet_processed_total{cpu=\"0\"} 299641
node_softnet_processed_total{cpu=\"1\"} 916354
node_softnet_processed_total{cpu=\"2\"} 5.577791e+06
node_softnet_processed_total{cpu=\"3\"} 3.113785e+06
# HELP node_softnet_received_rps_total Number of times cpu woken up received_rps
# TYPE node_softnet_received_rps_total counter
node_softnet_received_rps_total{cpu=\"0\"} 0
node_softnet_received_rps_total{cpu=\"1\"} 0
node_softnet_received_rps_total{cpu=\"2\"} 0
node_softnet_received_rps_total{cpu=\"3\"} 0
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
    fn cpu_id_column_names_the_cpu() {
        // Kernel >= 5.14: column 12 is the backlog, column 13 the CPU id (CPU 1 offline here).
        let text = "1 0 0 0 0 0 0 0 2 3 4 5 0\n1 0 0 0 0 0 0 0 0 0 0 0 2\n";
        let s = parse_softnet(text).expect("parses");
        assert_eq!(
            s[0],
            Softnet {
                processed: 1,
                cpu_collision: 2,
                received_rps: 3,
                flow_limit_count: 4,
                backlog_len: 5,
                index: 0,
                ..Softnet::default()
            }
        );
        assert_eq!(s[1].index, 2);
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
        assert_eq!(fams[4].samples[1].value, 9697.0);
        // Kernel >= 5.14 lines: the backlog (column 12) is read, here 0.
        assert_eq!(fams[0].samples[1].labels[0].1, "1");
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
