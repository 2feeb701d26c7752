//! `vmstat` collector: `/proc/vmstat` fields matching node_exporter 1.5's default
//! `--collector.vmstat.fields` (`^(oom_kill|pgpg|pswp|pg.*fault).*`), each an untyped
//! `node_vmstat_<field>`, as `vmstat_linux.go`.
//!
//! As node_exporter, every line's value is parsed (a bad value anywhere fails the collector,
//! even on a field not exported), and a missing file fails it.

use std::sync::LazyLock;

use super::MemoRegex;

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// node_exporter 1.5's default `--collector.vmstat.fields`.
pub const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

static FIELDS: LazyLock<MemoRegex> =
    LazyLock::new(|| MemoRegex::new(DEFAULT_FIELDS).unwrap_or_else(|_| unreachable!("built-in")));

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(VmStat)
}

/// The selected `(field, value)` pairs in file order.
pub fn parse_vmstat<'a>(text: &'a str, fields: &MemoRegex) -> Result<Vec<(&'a str, f64)>, String> {
    let mut out = Vec::with_capacity(8);
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            return Err(format!("invalid line {line:?}"));
        };
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value in line {line:?}"))?;
        if fields.is_match(name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

pub fn families(fields: &[(&str, f64)]) -> Vec<MetricFamily> {
    fields
        .iter()
        .map(|(name, v)| {
            MetricFamily::untyped(
                format!("node_vmstat_{name}"),
                format!("/proc/vmstat information field {name}."),
            )
            .with(&[], *v)
        })
        .collect()
}

struct VmStat;

impl Collector for VmStat {
    fn name(&self) -> &'static str {
        "vmstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("vmstat");
        let text = read_to_string(&path)?;
        let fields = parse_vmstat(&text, &FIELDS).map_err(|m| CollectError::parse(&path, m))?;
        Ok(families(&fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn parses() {
        let text = "nr_free_pages 5\npgfault 10\npgmajfault 2\npgpgin 3\npswpin 0\noom_kill 1\nthp_fault_alloc 4\npgsteal_kswapd 6\n";
        let got = parse_vmstat(text, &FIELDS).expect("parses");
        assert_eq!(
            got,
            [
                ("pgfault", 10.0),
                ("pgmajfault", 2.0),
                ("pgpgin", 3.0),
                ("pswpin", 0.0),
                ("oom_kill", 1.0)
            ]
        );
        // A bad value on any line fails, as node_exporter's ParseFloat before the filter.
        assert!(parse_vmstat("nr_free_pages x\npgfault 1\n", &FIELDS).is_err());
        assert!(parse_vmstat("pgfault\n", &FIELDS).is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = VmStat.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-vmstat.txt");
    }

    #[test]
    fn live() {
        let fams = VmStat.collect(&Paths::default()).expect("reads vmstat");
        assert!(fams.iter().any(|f| f.name == "node_vmstat_pgfault"));
    }
}
