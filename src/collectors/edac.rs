//! `edac` collector: memory error counters from `/sys/devices/system/edac/mc`, as node_exporter
//! 1.5's `edac_linux.go`.
//!
//! For every memory controller `mc<N>`:
//!
//! - `node_edac_correctable_errors_total{controller}` (`ce_count`) and
//!   `node_edac_uncorrectable_errors_total{controller}` (`ue_count`);
//! - `node_edac_csrow_correctable_errors_total{controller,csrow}` and
//!   `node_edac_csrow_uncorrectable_errors_total{controller,csrow}`: `csrow="unknown"` from
//!   `ce_noinfo_count`/`ue_noinfo_count`, then one per `csrow<M>` directory.
//!
//! Any of these files missing or not a number fails the collector, as node_exporter. No EDAC
//! (this VM, most VMs): nothing, success.

use std::path::{Path, PathBuf};

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

fn read_u64(path: &Path) -> Result<f64, CollectError> {
    let t = super::fsio::read_to_string(path).map_err(|e| CollectError::io(path, e))?;
    let t = t.trim();
    t.parse::<u64>()
        .map(|v| v as f64)
        .map_err(|_| CollectError::parse(path, format!("not an unsigned integer: {t:?}")))
}

/// Entries `<prefix><digit>...` of `dir` (Go's glob `<prefix>[0-9]*`), with the leading digits
/// of what follows the prefix (the regex `<prefix>([0-9]*)` of node_exporter).
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>, CollectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CollectError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::io(dir, e))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            out.push((digits, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Edac)
}

struct Edac;

impl Collector for Edac {
    fn name(&self) -> &'static str {
        "edac"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut ce = MetricFamily::counter(
            "node_edac_correctable_errors_total",
            "Total correctable memory errors.",
        );
        let mut ue = MetricFamily::counter(
            "node_edac_uncorrectable_errors_total",
            "Total uncorrectable memory errors.",
        );
        let mut row_ce = MetricFamily::counter(
            "node_edac_csrow_correctable_errors_total",
            "Total correctable memory errors for this csrow.",
        );
        let mut row_ue = MetricFamily::counter(
            "node_edac_csrow_uncorrectable_errors_total",
            "Total uncorrectable memory errors for this csrow.",
        );
        for (mc, dir) in numbered(&paths.sys("devices/system/edac/mc"), "mc")? {
            let c = mc.as_str();
            ce.push(&[("controller", c)], read_u64(&dir.join("ce_count"))?);
            row_ce.push(
                &[("controller", c), ("csrow", "unknown")],
                read_u64(&dir.join("ce_noinfo_count"))?,
            );
            ue.push(&[("controller", c)], read_u64(&dir.join("ue_count"))?);
            row_ue.push(
                &[("controller", c), ("csrow", "unknown")],
                read_u64(&dir.join("ue_noinfo_count"))?,
            );
            for (row, rdir) in numbered(&dir, "csrow")? {
                let labels = [("controller", c), ("csrow", row.as_str())];
                row_ce.push(&labels, read_u64(&rdir.join("ce_count"))?);
                row_ue.push(&labels, read_u64(&rdir.join("ue_count"))?);
            }
        }
        Ok(nonempty_sorted(vec![ce, row_ce, row_ue, ue]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    /// Two controllers, csrows 0 and 10 (label order "0" < "10" < "unknown"), against
    /// node_exporter 1.5.0's output for the same tree.
    #[test]
    fn fixture_matches_node_exporter() {
        let fams = Edac.collect(&paths()).expect("collects");
        assert_eq!(encoded(fams), golden(&["node_edac_"]));
    }

    #[test]
    fn absent_is_empty_success() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(Edac.collect(&p).expect("collects").is_empty());
    }

    #[test]
    fn live() {
        Edac.collect(&Paths::default()).expect("collects");
    }
}
