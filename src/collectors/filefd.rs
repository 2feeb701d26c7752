//! `filefd` collector: `node_filefd_allocated` and `node_filefd_maximum` from
//! `/proc/sys/fs/file-nr`, as node_exporter 1.5's `filefd_linux.go`.
//!
//! The file is one line of three tab-separated numbers (allocated, free — always 0 since
//! 2.6 —, maximum). As node_exporter, a missing or malformed file fails the collector.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(FileFd)
}

/// Allocated and maximum file handles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileNr {
    pub allocated: f64,
    pub maximum: f64,
}

/// Parses `/proc/sys/fs/file-nr`: node_exporter splits the trimmed text on tabs and wants
/// at least three parts.
pub fn parse_file_nr(text: &str) -> Result<FileNr, String> {
    let parts: Vec<&str> = text.trim().split('\t').collect();
    let (Some(allocated), Some(maximum)) = (parts.first(), parts.get(2)) else {
        return Err(format!("unexpected number of file stats in {text:?}"));
    };
    let num = |s: &str| {
        s.parse::<f64>()
            .map_err(|_| format!("invalid value {s:?} in file-nr"))
    };
    Ok(FileNr {
        allocated: num(allocated)?,
        maximum: num(maximum)?,
    })
}

pub fn families(f: &FileNr) -> Vec<MetricFamily> {
    vec![
        MetricFamily::gauge(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
        )
        .with(&[], f.allocated),
        MetricFamily::gauge(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
        )
        .with(&[], f.maximum),
    ]
}

struct FileFd;

impl Collector for FileFd {
    fn name(&self) -> &'static str {
        "filefd"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("sys/fs/file-nr");
        let f = read_parsed(&path, parse_file_nr)?;
        Ok(families(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, procfs_at, render};

    #[test]
    fn parses() {
        assert_eq!(
            parse_file_nr("584\t0\t2466174\n"),
            Ok(FileNr {
                allocated: 584.0,
                maximum: 2_466_174.0
            })
        );
        assert!(parse_file_nr("584 0 2466174\n").is_err());
        assert!(parse_file_nr("584\t0\n").is_err());
        assert!(parse_file_nr("x\t0\t1\n").is_err());
        assert!(parse_file_nr("").is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = FileFd.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-filefd.txt");
        let none = procfs_at("/nonexistent");
        assert!(FileFd.collect(&none).is_err());
    }

    #[test]
    fn live() {
        let fams = FileFd.collect(&Paths::default()).expect("reads file-nr");
        assert!(fams[1].samples[0].value > 0.0);
    }
}
