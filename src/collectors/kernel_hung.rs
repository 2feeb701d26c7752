//! `kernel_hung` collector: node_exporter 1.12's `kernel_hung_linux.go` over procfs 0.21's
//! `KernelHung` (on by default, as in 1.12): `node_kernel_hung_tasks_total`, the count of
//! tasks the hung-task detector has reported since boot
//! (`/proc/sys/kernel/hung_task_detect_count`, kernels ≥ 6.11 with
//! `CONFIG_DETECT_HUNG_TASK`).
//!
//! Without that file the collector reports no data (node_exporter's `ErrNoData`); a value that
//! is not an unsigned integer fails it.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(KernelHung)
}

/// The file's value, as procfs' `strconv.ParseUint` of the trimmed text.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid count {t:?}"));
    }
    t.parse().map_err(|_| format!("invalid count {t:?}"))
}

pub fn families(count: u64) -> Vec<MetricFamily> {
    vec![MetricFamily::counter(
        "node_kernel_hung_tasks_total",
        "Total number of tasks that have been detected as hung since the system booted.",
    )
    .with(&[], count as f64)]
}

pub struct KernelHung;

impl Collector for KernelHung {
    fn name(&self) -> &'static str {
        "kernel_hung"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("sys/kernel/hung_task_detect_count");
        let n = read_parsed(&path, parse_count).map_err(CollectError::absent_is_no_data)?;
        Ok(families(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{expected_1_12, lines, procfs, procfs_at};

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = KernelHung
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        let want = expected_1_12("node_kernel_hung_");
        assert_eq!(want.len(), 3);
        assert_eq!(lines::render(&fams), want);
    }

    #[test]
    fn values() {
        assert_eq!(parse_count("42\n"), Ok(42));
        assert_eq!(parse_count(" 0 "), Ok(0));
        assert!(parse_count("+1").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("18446744073709551616").is_err());
    }

    #[test]
    fn absent_is_no_data_garbled_fails() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = KernelHung
            .collect(&procfs_at(dir.path()))
            .expect_err("absent");
        assert!(e.is_no_data(), "{e}");
        std::fs::create_dir_all(dir.path().join("sys/kernel")).expect("mkdir");
        std::fs::write(dir.path().join("sys/kernel/hung_task_detect_count"), "x\n").expect("w");
        let e = KernelHung
            .collect(&procfs_at(dir.path()))
            .expect_err("garbled");
        assert!(!e.is_no_data(), "{e}");
    }
}
