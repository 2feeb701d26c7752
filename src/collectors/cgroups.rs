//! `cgroups` collector: node_exporter 1.12's `cgroups_linux.go` over procfs 0.21's
//! `CgroupSummarys` (off by default, as in 1.12): per controller line of `/proc/cgroups`,
//! `node_cgroups_cgroups{subsys_name}` (its `num_cgroups`) and
//! `node_cgroups_enabled{subsys_name}` (its `enabled` column; node_exporter gives both the
//! same HELP text, kept here).
//!
//! As procfs: lines starting with `#` are skipped; any other line needs at least 4 fields, the
//! 2nd to 4th integers, or the collector fails (all or nothing). A missing file is an error
//! (`success 0`), not "no data", as in 1.12.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Cgroups)
}

/// One controller line: name, hierarchy, number of cgroups, enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSummary {
    pub subsys_name: String,
    pub hierarchy: i64,
    pub cgroups: i64,
    pub enabled: i64,
}

/// Parses `/proc/cgroups` as procfs' `parseCgroupSummary`.
pub fn parse_cgroups(text: &str) -> Result<Vec<CgroupSummary>, String> {
    let int = |s: &str, what: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("unable to parse {what} from {s:?}"))
    };
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let &[name, hierarchy, cgroups, enabled, ..] = f.as_slice() else {
            return Err(format!(
                "4+ fields required, found {} fields in cgroup info string: {line:?}",
                f.len()
            ));
        };
        out.push(CgroupSummary {
            subsys_name: name.to_string(),
            hierarchy: int(hierarchy, "hierarchy ID")?,
            cgroups: int(cgroups, "cgroup num")?,
            enabled: int(enabled, "enabled")?,
        });
    }
    Ok(out)
}

pub fn families(rows: &[CgroupSummary]) -> Vec<MetricFamily> {
    const HELP: &str = "Current cgroup number of the subsystem.";
    let mut cgroups = MetricFamily::gauge("node_cgroups_cgroups", HELP);
    let mut enabled = MetricFamily::gauge("node_cgroups_enabled", HELP);
    for r in rows {
        let l = [("subsys_name", r.subsys_name.as_str())];
        cgroups.push(&l, r.cgroups as f64);
        enabled.push(&l, r.enabled as f64);
    }
    nonempty_sorted(vec![cgroups, enabled])
}

pub struct Cgroups;

impl Collector for Cgroups {
    fn name(&self) -> &'static str {
        "cgroups"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let rows = read_parsed(&paths.proc("cgroups"), parse_cgroups)?;
        Ok(families(&rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{expected_1_12, lines, procfs, procfs_at};

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = Cgroups
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        let want = expected_1_12("node_cgroups_");
        assert_eq!(want.len(), 2 * (2 + 12));
        assert_eq!(lines::render(&fams), want);
    }

    #[test]
    fn parses_as_procfs() {
        let rows =
            parse_cgroups("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu 3 172 1 extra\n")
                .expect("parses");
        assert_eq!(
            rows,
            [CgroupSummary {
                subsys_name: "cpu".into(),
                hierarchy: 3,
                cgroups: 172,
                enabled: 1
            }]
        );
        assert!(parse_cgroups("cpu 3 172\n").is_err());
        assert!(parse_cgroups("cpu 3 x 1\n").is_err());
        assert!(
            parse_cgroups("cpu 3 1 1\n\n").is_err(),
            "an empty line has no fields"
        );
        assert_eq!(parse_cgroups(""), Ok(vec![]));
    }

    #[test]
    fn absent_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Cgroups.collect(&procfs_at(dir.path())).expect_err("absent");
        assert!(!e.is_no_data(), "{e}");
    }

    #[test]
    fn live() {
        let fams = Cgroups
            .collect(&Paths::default())
            .expect("reads /proc/cgroups");
        assert_eq!(fams.len(), 2);
    }
}
