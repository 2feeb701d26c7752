//! `lnstat` collector: the per-CPU network cache counters of `/proc/net/stat/*` (`arp_cache`,
//! `ndisc_cache`, `nf_conntrack`, `rt_cache`, ...), as node_exporter 1.12's
//! `lnstat_linux.go` with prometheus/procfs' `NetStat` parser: one counter family
//! `node_lnstat_<column>_total` per column of a file's header line, labelled `subsystem` (the
//! file's name) and `cpu` (the data line's number from 0), HELP `linux network cache stats`.
//!
//! - The first line of each file names the columns; every later line is one CPU's values in
//!   hexadecimal. A column name repeated in the header gets both columns' values, numbered on
//!   (procfs appends them to one list).
//! - A bad hexadecimal value fails the collector (procfs returns the error); a line with more
//!   values than the header has names fails it too (procfs would index past its header list
//!   and panic: node_exporter would crash).
//! - No `/proc/net/stat` directory: no samples and success, as procfs' glob finds nothing. A
//!   directory entry that is itself a directory is skipped (procfs reads nothing from it).

use std::collections::BTreeMap;

use super::{glob_names, read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// One file's counters: column name -> the values of each data line in order.
pub type NetStat = BTreeMap<String, Vec<u64>>;

/// Parses one `/proc/net/stat/<name>` file (procfs' `parseNetstat`).
pub fn parse_netstat(text: &str) -> Result<NetStat, String> {
    let mut lines = text.lines();
    let headers: Vec<&str> = lines
        .next()
        .map(|l| l.split_ascii_whitespace().collect())
        .unwrap_or_default();
    let mut stats = NetStat::new();
    for line in lines {
        for (num, counter) in line.split_ascii_whitespace().enumerate() {
            let value = u64::from_str_radix(counter, 16)
                .map_err(|e| format!("bad hexadecimal value {counter:?}: {e}"))?;
            let Some(header) = headers.get(num) else {
                return Err(format!(
                    "line {line:?} has more values than the header has names ({})",
                    headers.len()
                ));
            };
            stats.entry((*header).to_string()).or_default().push(value);
        }
    }
    Ok(stats)
}

/// The families of every file, `(file name, counters)`.
pub fn families(files: &[(String, NetStat)]) -> Vec<MetricFamily> {
    let mut fams: BTreeMap<&str, MetricFamily> = BTreeMap::new();
    for (subsystem, stats) in files {
        for (header, values) in stats {
            let fam = fams.entry(header).or_insert_with(|| {
                MetricFamily::counter(
                    format!("node_lnstat_{header}_total"),
                    "linux network cache stats",
                )
            });
            for (cpu, v) in values.iter().enumerate() {
                fam.push(
                    &[("subsystem", subsystem), ("cpu", &cpu.to_string())],
                    *v as f64,
                );
            }
        }
    }
    nonempty_sorted(fams.into_values().collect())
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Lnstat)
}

pub struct Lnstat;

impl Collector for Lnstat {
    fn name(&self) -> &'static str {
        "lnstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let dir = paths.proc("net/stat");
        let mut files = Vec::new();
        for name in glob_names(&dir, |_| true) {
            let path = dir.join(&name);
            if path.is_dir() {
                continue;
            }
            files.push((name, read_parsed(&path, parse_netstat)?));
        }
        Ok(families(&files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, procfs_at};

    #[test]
    fn node_exporter_112_e2e_fixture() {
        let fams = Lnstat
            .collect(&procfs_at(fixture("ne112", "proc")))
            .expect("collects");
        assert_eq!(
            crate::collectors::ne112::render(&fams),
            crate::collectors::ne112::expected("node_lnstat_")
        );
    }

    #[test]
    fn repeated_header_numbers_on_and_bad_input_fails() {
        let s = parse_netstat("a a b\n1 2 3\n").expect("parses");
        assert_eq!(s.get("a"), Some(&vec![1, 2]));
        assert_eq!(s.get("b"), Some(&vec![3]));
        assert!(parse_netstat("a b\n1 2 3\n").is_err());
        assert!(parse_netstat("a b\n1 zz\n").is_err());
        assert_eq!(parse_netstat("").expect("empty"), NetStat::new());
    }

    #[test]
    fn no_directory_is_no_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fams = Lnstat.collect(&procfs_at(dir.path())).expect("collects");
        assert!(fams.is_empty());
    }
}
