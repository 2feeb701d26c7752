//! `ksmd` collector: kernel same-page merging from `/sys/kernel/mm/ksm/*`, as node_exporter
//! 1.12's `ksmd_linux.go`: ten files, `full_scans` as the counter `node_ksmd_full_scans_total`,
//! `general_profit` as `node_ksmd_general_profit_bytes` (new in 1.12), `sleep_millisecs` as
//! `node_ksmd_sleep_seconds`, the rest as gauges under their file names, with 1.12's help
//! texts. As 1.12, an absent file is skipped (so `CONFIG_KSM=n` exports nothing and succeeds;
//! 1.5 failed the collector); a file that is not an unsigned integer fails it.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

const FILES: [&str; 10] = [
    "full_scans",
    "general_profit",
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

/// The family for one file's value, with node_exporter 1.12's help texts (from the kernel's
/// admin guide).
pub fn family(file: &'static str, value: u64) -> MetricFamily {
    let v = value as f64;
    let (name, help, v): (&str, &str, f64) = match file {
        "full_scans" => {
            return MetricFamily::counter(
                "node_ksmd_full_scans_total",
                "How many times all mergeable areas have been scanned.",
            )
            .with(&[], v)
        }
        "general_profit" => (
            "node_ksmd_general_profit_bytes",
            "How effective is KSM. ksm_saved_pages * sizeof(page) - (all_rmap_items) * sizeof(rmap_item)",
            v,
        ),
        "merge_across_nodes" => (
            "node_ksmd_merge_across_nodes",
            "Specifies if pages from different NUMA nodes can be merged.",
            v,
        ),
        "pages_shared" => (
            "node_ksmd_pages_shared",
            "How many shared pages are being used.",
            v,
        ),
        "pages_sharing" => (
            "node_ksmd_pages_sharing",
            "How many more sites are sharing them i.e. how much saved.",
            v,
        ),
        "pages_to_scan" => (
            "node_ksmd_pages_to_scan",
            "How many pages to scan before ksmd goes to sleep.",
            v,
        ),
        "pages_unshared" => (
            "node_ksmd_pages_unshared",
            "How many pages unique but repeatedly checked for merging.",
            v,
        ),
        "pages_volatile" => (
            "node_ksmd_pages_volatile",
            "How many pages changing too fast to be placed in a tree.",
            v,
        ),
        "run" => (
            "node_ksmd_run",
            "The status of ksmd. stopped = 0, running = 1",
            v,
        ),
        _ => (
            "node_ksmd_sleep_seconds",
            "How many seconds ksmd should sleep before next scan.",
            v / 1000.0,
        ),
    };
    MetricFamily::gauge(name, help).with(&[], v)
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
            // 1.12: an absent file is skipped (1.5 failed the collector).
            match read_parsed(&path, parse_uint).map_err(CollectError::absent_is_no_data) {
                Ok(v) => out.push(family(file, v)),
                Err(CollectError::NoData { .. }) => continue,
                Err(e) => return Err(CollectError::partial(out, e)),
            }
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
        // node_exporter 1.12's e2e tree and its e2e-output.txt lines, byte for byte.
        let fams = Ksmd
            .collect(&sysfs("procmisc", "node_exporter-1.12/sys"))
            .expect("collects");
        assert_golden(
            render(fams),
            "procmisc",
            "expected/node_exporter-1.12-ksmd.txt",
        );
        // The dev VM's tree against 1.5's output: the same samples, 1.12 adds
        // general_profit_bytes and changed the help texts.
        let paths = sysfs("procmisc", "debian12-vm-6.18/sys");
        let fams: Vec<_> = Ksmd
            .collect(&paths)
            .expect("collects")
            .into_iter()
            .filter(|f| f.name != "node_ksmd_general_profit_bytes")
            .collect();
        let no_help = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("# HELP"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            no_help(&render(fams)),
            no_help(&crate::collectors::testutil::fixture_text(
                "procmisc",
                "expected/debian12-ksmd.txt"
            ))
        );
        assert!(fams_have_profit(&paths));
        // 1.12: absent files are skipped, nothing there is an empty success.
        let none = sysfs_at("/nonexistent");
        assert!(Ksmd.collect(&none).expect("skips absent files").is_empty());
    }

    fn fams_have_profit(paths: &Paths) -> bool {
        Ksmd.collect(paths)
            .expect("collects")
            .iter()
            .any(|f| f.name == "node_ksmd_general_profit_bytes")
    }

    #[test]
    fn live() {
        let fams = Ksmd.collect(&Paths::default()).expect("collects");
        assert_eq!(
            fams.iter().any(|f| f.name == "node_ksmd_run"),
            std::path::Path::new("/sys/kernel/mm/ksm/run").exists()
        );
    }
}
