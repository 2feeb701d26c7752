//! `ksmd` collector: kernel same-page merging from `/sys/kernel/mm/ksm/*`, as node_exporter
//! 1.5's `ksmd_linux.go`: nine files, `full_scans` as the counter `node_ksmd_full_scans_total`,
//! `sleep_millisecs` as `node_ksmd_sleep_seconds`, the rest as gauges under their file names.
//! Any file missing or not an unsigned integer fails the collector (as node_exporter;
//! `CONFIG_KSM=n` included).

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

const FILES: [&str; 9] = [
    "full_scans",
    "merge_across_nodes",
    "pages_shared",
    "pages_sharing",
    "pages_to_scan",
    "pages_unshared",
    "pages_volatile",
    "run",
    "sleep_millisecs",
];

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Ksmd)
}

/// node_exporter's `readUintFromFile`: the trimmed text as a decimal `u64`.
pub fn parse_uint(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse()
        .map_err(|_| format!("invalid unsigned integer {t:?}"))
}

/// The family for one file's value.
pub fn family(file: &'static str, value: u64) -> MetricFamily {
    let help = format!("ksmd '{file}' file.");
    match file {
        "full_scans" => MetricFamily::counter("node_ksmd_full_scans_total", help),
        "sleep_millisecs" => {
            return MetricFamily::gauge("node_ksmd_sleep_seconds", help)
                .with(&[], value as f64 / 1000.0)
        }
        _ => MetricFamily::gauge(format!("node_ksmd_{file}"), help),
    }
    .with(&[], value as f64)
}

struct Ksmd;

impl Collector for Ksmd {
    fn name(&self) -> &'static str {
        "ksmd"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut out = Vec::with_capacity(FILES.len());
        for file in FILES {
            let path = paths.sys(&format!("kernel/mm/ksm/{file}"));
            let v = read_parsed(&path, parse_uint)?;
            out.push(family(file, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, render, sysfs, sysfs_at};

    #[test]
    fn parses() {
        assert_eq!(parse_uint("20\n"), Ok(20));
        assert!(parse_uint("-1\n").is_err());
        assert!(parse_uint("\n").is_err());
        assert_eq!(family("sleep_millisecs", 20).samples[0].value, 0.02);
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = sysfs("procmisc", "debian12-vm-6.18/sys");
        let fams = Ksmd.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-ksmd.txt");
        let none = sysfs_at("/nonexistent");
        assert!(Ksmd.collect(&none).is_err());
    }

    #[test]
    fn live() {
        let r = Ksmd.collect(&Paths::default());
        assert_eq!(
            r.is_ok(),
            std::path::Path::new("/sys/kernel/mm/ksm/run").exists()
        );
    }
}
