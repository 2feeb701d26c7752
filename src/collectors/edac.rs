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
//! - node_exporter 1.12 semantics: per `ch<K>_ce_count` file of a csrow,
//!   `node_edac_channel_correctable_errors_total{controller,csrow,channel,dimm_label}` and,
//!   when `ch<K>_ue_count` is readable, `node_edac_channel_uncorrectable_errors_total` (a
//!   missing one is skipped, as 1.12). `dimm_label` is `ch<K>_dimm_label` trimmed, `#` removed,
//!   `_` put before `csrow` and `channel`; `unknown` when unreadable.
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
    let entries = match crate::collector::read_dir(dir) {
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

/// The families, filled as the files are read.
struct Families {
    ce: MetricFamily,
    ue: MetricFamily,
    row_ce: MetricFamily,
    row_ue: MetricFamily,
    ch_ce: MetricFamily,
    ch_ue: MetricFamily,
}

/// node_exporter 1.12's `dimm_label` of a channel: the file trimmed, `#` removed, `_` before
/// `csrow` and `channel`; `unknown` when unreadable.
pub fn dimm_label(csrow: &Path, channel: &str) -> String {
    match super::fsio::read_to_string(csrow.join(format!("ch{channel}_dimm_label"))) {
        Ok(t) => t
            .trim()
            .replace('#', "")
            .replace("csrow", "_csrow")
            .replace("channel", "_channel"),
        Err(_) => "unknown".to_string(),
    }
}

/// The channel numbers of a csrow directory: files `ch*_ce_count` (node_exporter's glob) whose
/// name holds `ch([0-9]+)_ce_count` (its regexp), sorted as the glob (by file name).
fn channels(csrow: &Path) -> Result<Vec<(String, PathBuf)>, CollectError> {
    static RE: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new("ch([0-9]+)_ce_count").ok());
    let mut out = Vec::new();
    for name in super::sorted_names(csrow)? {
        if !(name.starts_with("ch") && name.ends_with("_ce_count")) {
            continue;
        }
        let Some(ch) = RE
            .as_ref()
            .and_then(|re| re.captures(&name))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string())
        else {
            continue;
        };
        out.push((ch, csrow.join(&name)));
    }
    Ok(out)
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
            ch_ce: MetricFamily::counter(
                "node_edac_channel_correctable_errors_total",
                "Total correctable memory errors for this channel.",
            ),
            ch_ue: MetricFamily::counter(
                "node_edac_channel_uncorrectable_errors_total",
                "Total uncorrectable memory errors for this channel.",
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
                for (channel, ce_file) in channels(&rdir)? {
                    let label = dimm_label(&rdir, &channel);
                    let labels = [
                        ("controller", c),
                        ("csrow", row.as_str()),
                        ("channel", channel.as_str()),
                        ("dimm_label", label.as_str()),
                    ];
                    self.ch_ce.push(&labels, read_u64(&ce_file)?);
                    if let Ok(v) = read_u64(&rdir.join(format!("ch{channel}_ue_count"))) {
                        self.ch_ue.push(&labels, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// The families with samples, sorted by name, samples in client_golang's order.
    fn finish(self) -> Vec<MetricFamily> {
        nonempty_sorted(vec![
            self.ch_ce,
            self.ch_ue,
            self.ce,
            self.row_ce,
            self.row_ue,
            self.ue,
        ])
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

    /// node_exporter 1.12's channel families, on a csrow shaped as its fixture's `csrow2` (no
    /// `ch*_ue_count`: no uncorrectable sample) and `csrow0`.
    #[test]
    fn channels_as_node_exporter_112() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mc = dir.path().join("devices/system/edac/mc/mc0");
        for (row, ue) in [("csrow0", true), ("csrow2", false)] {
            let r = mc.join(row);
            std::fs::create_dir_all(&r).expect("mkdir");
            for f in ["ce_count", "ue_count"] {
                std::fs::write(r.join(f), "0\n").expect("write");
            }
            for ch in ["0", "1"] {
                std::fs::write(r.join(format!("ch{ch}_ce_count")), "0\n").expect("write");
                std::fs::write(
                    r.join(format!("ch{ch}_dimm_label")),
                    format!("mc#0{row}#channel#{ch}\n"),
                )
                .expect("write");
                if ue {
                    std::fs::write(r.join(format!("ch{ch}_ue_count")), "2\n").expect("write");
                }
            }
        }
        for f in ["ce_count", "ce_noinfo_count", "ue_count", "ue_noinfo_count"] {
            std::fs::write(mc.join(f), "0\n").expect("write");
        }
        let fams = Edac
            .collect(&crate::collectors::testutil::sysfs_at(dir.path()))
            .expect("collects");
        let get = |name: &str| -> Vec<String> {
            fams.iter()
                .find(|f| f.name == name)
                .map(|f| {
                    f.samples
                        .iter()
                        .map(|s| {
                            let l: Vec<String> =
                                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            format!("{} {}", l.join(","), s.value)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            get("node_edac_channel_correctable_errors_total"),
            // Labels and samples in exposition order (by label name, then value).
            [
                "channel=0,controller=0,csrow=0,dimm_label=mc0_csrow0_channel0 0",
                "channel=0,controller=0,csrow=2,dimm_label=mc0_csrow2_channel0 0",
                "channel=1,controller=0,csrow=0,dimm_label=mc0_csrow0_channel1 0",
                "channel=1,controller=0,csrow=2,dimm_label=mc0_csrow2_channel1 0",
            ]
        );
        assert_eq!(
            get("node_edac_channel_uncorrectable_errors_total"),
            [
                "channel=0,controller=0,csrow=0,dimm_label=mc0_csrow0_channel0 2",
                "channel=1,controller=0,csrow=0,dimm_label=mc0_csrow0_channel1 2",
            ]
        );
        std::fs::remove_file(mc.join("csrow0/ch1_dimm_label")).expect("rm");
        assert_eq!(dimm_label(&mc.join("csrow0"), "1"), "unknown");
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
