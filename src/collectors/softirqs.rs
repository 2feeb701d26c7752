//! `softirqs` collector: per-CPU softirq counts from `/proc/softirqs` as
//! `node_softirqs_functions_total{cpu,type}`.
//!
//! node_exporter 1.5 has no such collector (it was added in 1.7, `softirqs_linux.go` with
//! prometheus/procfs `Softirqs`; 1.5 only has `--collector.stat.softirq`, which exports
//! `node_softirqs_total{vector}` from `/proc/stat`): this follows the newer one. Only the ten
//! softirq kinds procfs knows are exported; other lines are skipped. An empty or missing file,
//! or a non-numeric count, fails the collector.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

const KINDS: [&str; 10] = [
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
];

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Softirqs)
}

/// `(kind, per-CPU counts)` for the known kinds, in file order.
pub fn parse_softirqs(text: &str) -> Result<Vec<(&'static str, Vec<u64>)>, String> {
    let mut lines = text.lines();
    if lines.next().is_none() {
        return Err("softirqs empty".into());
    }
    let mut out = Vec::with_capacity(KINDS.len());
    for line in lines {
        let mut parts = line.split_ascii_whitespace();
        let Some(name) = parts.next() else { continue };
        let Some(kind) = name
            .strip_suffix(':')
            .and_then(|n| KINDS.iter().find(|k| **k == n))
        else {
            continue;
        };
        let counts = parts
            .map(|c| c.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("bad count in line {line:?}"))?;
        if counts.is_empty() {
            continue;
        }
        out.retain(|(k, _)| k != kind);
        out.push((*kind, counts));
    }
    Ok(out)
}

pub fn family(rows: &[(&'static str, Vec<u64>)]) -> MetricFamily {
    let mut fam = MetricFamily::counter("node_softirqs_functions_total", "Softirq counts per CPU.");
    for (kind, counts) in rows {
        for (cpu, v) in counts.iter().enumerate() {
            fam.push(&[("cpu", &cpu.to_string()), ("type", kind)], *v as f64);
        }
    }
    sort_samples(&mut fam);
    fam
}

struct Softirqs;

impl Collector for Softirqs {
    fn name(&self) -> &'static str {
        "softirqs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("softirqs");
        let rows = read_parsed(&path, parse_softirqs)?;
        Ok(vec![family(&rows)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{procfs, render};

    #[test]
    fn parses() {
        let rows = parse_softirqs(include_str!(
            "../../tests/fixtures/procmisc/debian12-vm-6.18/proc/softirqs"
        ))
        .expect("parses");
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[1], ("TIMER", vec![21547, 18840]));
        assert_eq!(rows[9], ("RCU", vec![43193, 48590]));
        assert!(parse_softirqs("").is_err());
        assert!(parse_softirqs("CPU0\nHI: x\n").is_err());
        assert_eq!(parse_softirqs("CPU0\nNEW: 1\nHI:\n"), Ok(vec![]));
    }

    #[test]
    fn fixture() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let text = render(Softirqs.collect(&paths).expect("collects"));
        assert!(text.starts_with(
            "# HELP node_softirqs_functions_total Softirq counts per CPU.\n\
             # TYPE node_softirqs_functions_total counter\n\
             node_softirqs_functions_total{cpu=\"0\",type=\"BLOCK\"} 0\n"
        ));
        assert!(text.contains("node_softirqs_functions_total{cpu=\"1\",type=\"BLOCK\"} 85055\n"));
        assert_eq!(text.lines().count(), 2 + 20);
    }

    #[test]
    fn live() {
        let fams = Softirqs.collect(&Paths::default()).expect("reads softirqs");
        assert!(fams[0].samples.len() >= 10);
    }
}
