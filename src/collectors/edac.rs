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
//! Any of these files missing or not a number fails the collector, as node_exporter, keeping the
//! counters read before it (node_exporter sends each as it reads it). No EDAC
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
        let mut fams = Families::new();
        // Partial output as node_exporter's: it sends each counter as it reads it, so an error
        // keeps every counter read before it.
        match fams.read(&paths.sys("devices/system/edac/mc")) {
            Ok(()) => Ok(fams.finish()),
            Err(e) => Err(CollectError::partial(fams.finish(), e)),
        }
    }
}

/// The four families, filled as the files are read.
struct Families {
    ce: MetricFamily,
    ue: MetricFamily,
    row_ce: MetricFamily,
    row_ue: MetricFamily,
}

impl Families {
    fn new() -> Families {
        Families {
            ce: MetricFamily::counter(
                "node_edac_correctable_errors_total",
                "Total correctable memory errors.",
            ),
            ue: MetricFamily::counter(
                "node_edac_uncorrectable_errors_total",
                "Total uncorrectable memory errors.",
            ),
            row_ce: MetricFamily::counter(
                "node_edac_csrow_correctable_errors_total",
                "Total correctable memory errors for this csrow.",
            ),
            row_ue: MetricFamily::counter(
                "node_edac_csrow_uncorrectable_errors_total",
                "Total uncorrectable memory errors for this csrow.",
            ),
        }
    }

    /// Reads every controller under `mc_dir`, in node_exporter's order, up to the first error.
    fn read(&mut self, mc_dir: &Path) -> Result<(), CollectError> {
        for (mc, dir) in numbered(mc_dir, "mc")? {
            let c = mc.as_str();
            self.ce
                .push(&[("controller", c)], read_u64(&dir.join("ce_count"))?);
            self.row_ce.push(
                &[("controller", c), ("csrow", "unknown")],
                read_u64(&dir.join("ce_noinfo_count"))?,
            );
            self.ue
                .push(&[("controller", c)], read_u64(&dir.join("ue_count"))?);
            self.row_ue.push(
                &[("controller", c), ("csrow", "unknown")],
                read_u64(&dir.join("ue_noinfo_count"))?,
            );
            for (row, rdir) in numbered(&dir, "csrow")? {
                let labels = [("controller", c), ("csrow", row.as_str())];
                self.row_ce.push(&labels, read_u64(&rdir.join("ce_count"))?);
                self.row_ue.push(&labels, read_u64(&rdir.join("ue_count"))?);
            }
        }
        Ok(())
    }

    /// The families with samples, sorted by name, samples in client_golang's order.
    fn finish(self) -> Vec<MetricFamily> {
        nonempty_sorted(vec![self.ce, self.row_ce, self.row_ue, self.ue])
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

    /// Partial output as node_exporter's: controller 1's `ue_count` is not a number, so
    /// controller 0 and the counters of controller 1 read before it are kept, and the
    /// collector fails.
    #[test]
    fn partial_output_keeps_the_counters_read_before_the_error() {
        let tree = crate::collectors::testutil::fixture_copy("hw", "sys");
        let mc = tree.path().join("devices/system/edac/mc");
        std::fs::write(mc.join("mc1/ue_count"), "lots\n").expect("write");
        let o = crate::collector::run(&Edac, &crate::collectors::testutil::sysfs_at(tree.path()));
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("mc1/ue_count"), "{err}");
        let controllers = |name: &str| -> Vec<(String, String)> {
            o.families
                .iter()
                .find(|f| f.name == name)
                .map(|f| {
                    f.samples
                        .iter()
                        .map(|s| {
                            let l: Vec<&str> = s.labels.iter().map(|(_, v)| v.as_str()).collect();
                            (l.join("/"), s.value.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        // Controller 0 whole; controller 1 up to its ce_noinfo_count.
        assert_eq!(
            controllers("node_edac_correctable_errors_total")
                .iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>(),
            ["0", "1"]
        );
        assert_eq!(
            controllers("node_edac_uncorrectable_errors_total")
                .iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>(),
            ["0"]
        );
        assert!(controllers("node_edac_csrow_correctable_errors_total")
            .iter()
            .any(|(l, _)| l == "1/unknown"));
        assert!(!controllers("node_edac_csrow_uncorrectable_errors_total")
            .iter()
            .any(|(l, _)| l.starts_with("1/")));
        // Every kept sample is the one the unbroken tree gives.
        let whole = Edac.collect(&paths()).expect("collects");
        for f in &o.families {
            let w = whole.iter().find(|w| w.name == f.name).expect("family");
            for s in &f.samples {
                assert!(w.samples.contains(s), "{} {:?}", f.name, s);
            }
        }
    }

    #[test]
    fn live() {
        Edac.collect(&Paths::default()).expect("collects");
    }
}
