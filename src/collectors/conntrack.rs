//! `conntrack` collector: netfilter connection tracking from
//! `/proc/sys/net/netfilter/nf_conntrack_{count,max}` and the per-CPU statistics of
//! `/proc/net/stat/nf_conntrack` (summed over CPUs), as node_exporter 1.5's
//! `conntrack_linux.go`: `node_nf_conntrack_entries`, `node_nf_conntrack_entries_limit` and
//! eight `node_nf_conntrack_stat_*` gauges.
//!
//! Without the `nf_conntrack` module the files are absent: node_exporter then returns
//! `ErrNoData` (`success 0`), and so does this collector (an error). The statistics columns
//! are found by their header names (`found`, `invalid`, …, `search_restart`); a kernel
//! missing one of them fails the collector, as node_exporter (which wants exactly 17 columns)
//! fails there too.

use super::{read_parsed, read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// The statistics exported: header column, metric suffix, HELP.
const STATS: [(&str, &str, &str); 8] = [
    (
        "found",
        "found",
        "Number of searched entries which were successful.",
    ),
    (
        "invalid",
        "invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    ("insert", "insert", "Number of entries inserted into the list."),
    (
        "insert_failed",
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// Parses `/proc/net/stat/nf_conntrack` and sums each of [`STATS`] over the CPU lines
/// (hexadecimal values).
pub fn parse_conntrack_stat(text: &str) -> Result<[u64; 8], String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split_ascii_whitespace()
        .collect();
    let mut idx = [0usize; 8];
    for (slot, (col, _, _)) in idx.iter_mut().zip(STATS.iter()) {
        *slot = header
            .iter()
            .position(|h| h == col)
            .ok_or_else(|| format!("no {col:?} column in the header"))?;
    }
    let mut sums = [0u64; 8];
    for line in lines {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() != header.len() {
            return Err(format!(
                "{} fields in a line, {} in the header",
                fields.len(),
                header.len()
            ));
        }
        for (sum, &i) in sums.iter_mut().zip(idx.iter()) {
            let f = fields.get(i).copied().unwrap_or("");
            let v = u64::from_str_radix(f, 16).map_err(|_| format!("bad hex value {f:?}"))?;
            *sum = sum.wrapping_add(v);
        }
    }
    Ok(sums)
}

pub fn families(count: u64, max: u64, stats: &[u64; 8]) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(10);
    out.push(
        MetricFamily::gauge(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
        )
        .with(&[], count as f64),
    );
    out.push(
        MetricFamily::gauge(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
        )
        .with(&[], max as f64),
    );
    for ((_, suffix, help), v) in STATS.iter().zip(stats) {
        out.push(
            MetricFamily::gauge(format!("node_nf_conntrack_stat_{suffix}"), *help)
                .with(&[], *v as f64),
        );
    }
    out
}

fn read_uint(path: &std::path::Path) -> Result<u64, CollectError> {
    let text = read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| CollectError::parse(path, format!("not an unsigned integer: {text:?}")))
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Conntrack)
}

pub struct Conntrack;

impl Collector for Conntrack {
    fn name(&self) -> &'static str {
        "conntrack"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let count = read_uint(&paths.proc("sys/net/netfilter/nf_conntrack_count"))
            .map_err(CollectError::absent_is_no_data)?;
        // Partial output as node_exporter's: what was read before an error is kept.
        let mut kept = families(count, 0, &[0; 8]);
        kept.truncate(1);
        let max = read_uint(&paths.proc("sys/net/netfilter/nf_conntrack_max"))
            .map_err(|e| CollectError::partial(kept, e))?;
        let path = paths.proc("net/stat/nf_conntrack");
        let stats = read_parsed(&path, parse_conntrack_stat).map_err(|e| {
            let mut kept = families(count, max, &[0; 8]);
            kept.truncate(2);
            CollectError::partial(kept, e)
        })?;
        Ok(families(count, max, &stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_output_keeps_entries_and_limit() {
        let dir = tempfile::tempdir().expect("tmp");
        let nf = dir.path().join("sys/net/netfilter");
        std::fs::create_dir_all(&nf).expect("mkdir");
        std::fs::write(nf.join("nf_conntrack_count"), "123\n").expect("write");
        std::fs::write(nf.join("nf_conntrack_max"), "65536\n").expect("write");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        // No net/stat/nf_conntrack: node_exporter has sent entries and limit by then.
        let o = crate::collector::run(&Conntrack, &paths);
        assert!(o.error.is_some());
        let names: Vec<&str> = o.families.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "node_nf_conntrack_entries",
                "node_nf_conntrack_entries_limit"
            ]
        );
        assert_eq!(o.families[1].samples[0].value, 65536.0);
    }
    use crate::collectors::testutil::lines::{parse, render, sorted};
    use crate::collectors::testutil::procfs;

    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/stat/nf_conntrack");

    #[test]
    fn debian12_matches_node_exporter() {
        let fams = Conntrack
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        let expected = include_str!(
            "../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-conntrack.txt"
        );
        assert_eq!(render(&sorted(fams)), parse(expected));
    }

    #[test]
    fn node_exporter_fixture() {
        // Sums over the fixture's CPU lines.
        let s = parse_conntrack_stat(NODE_EXPORTER).expect("parses");
        let names: Vec<_> = STATS.iter().map(|s| s.0).collect();
        let got: Vec<_> = names.iter().zip(s.iter()).collect();
        assert_eq!(
            got,
            [
                (&"found", &0),
                (&"invalid", &53),
                (&"ignore", &89_738),
                (&"insert", &0),
                (&"insert_failed", &0),
                (&"drop", &0),
                (&"early_drop", &0),
                (&"search_restart", &7),
            ]
        );
    }

    #[test]
    fn garbled_and_old_kernels() {
        assert!(parse_conntrack_stat("").is_err());
        // A kernel without `search_restart`.
        assert!(parse_conntrack_stat(
            "entries found invalid ignore insert insert_failed drop early_drop\n0 0 0 0 0 0 0 0\n"
        )
        .is_err());
        let hdr =
            "entries found invalid ignore insert insert_failed drop early_drop search_restart\n";
        assert!(parse_conntrack_stat(&format!("{hdr}0 0 0\n")).is_err());
        assert!(parse_conntrack_stat(&format!("{hdr}0 0 0 0 0 0 0 0 zz\n")).is_err());
        assert_eq!(
            parse_conntrack_stat(&format!("{hdr}0 1 2 3 4 5 6 7 a\n0 1 2 3 4 5 6 7 a\n")),
            Ok([2, 4, 6, 8, 10, 12, 14, 20])
        );
    }

    #[test]
    fn module_not_loaded() {
        assert!(Conntrack.collect(&procfs("net", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        // This host has nf_conntrack loaded.
        let fams = Conntrack.collect(&Paths::default()).expect("reads");
        assert_eq!(fams.len(), 10);
    }
}
