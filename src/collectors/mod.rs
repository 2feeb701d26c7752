//! Collectors: each reads the operating system fresh on every scrape and returns metric
//! families under node_exporter's names. Parsing is pure (text in, values out); I/O happens in
//! `collect` through the injectable roots of [`Paths`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::exposition::MetricFamily;

/// Where the collectors find the operating system (`--path.procfs`, `--path.sysfs`,
/// `--path.rootfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

impl Paths {
    /// A path below the procfs root, e.g. `proc("stat")`.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    /// A path below the sysfs root, e.g. `sys("class/net")`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
}

/// Why a collector produced nothing (or only part of its output).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CollectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn parse(path: &Path, msg: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// Reads a whole file, the error carrying its path.
pub fn read_to_string(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::io(path, e))
}

/// A collector: a name (as in `--collector.<name>` and the `collector` label) and a way to
/// read the system.
pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError>;
}

/// Every collector this build knows, in output order, with whether it is on by default.
pub fn registry() -> Vec<(Box<dyn Collector>, bool)> {
    vec![
        (Box::new(cpu::Cpu), true),
        (Box::new(loadavg::LoadAvg), true),
        (Box::new(meminfo::MemInfo), true),
        (Box::new(stat::Stat), true),
        (Box::new(time::Time), true),
        (Box::new(uname::Uname), true),
    ]
}

/// Loads, before the sandbox closes the filesystem, what collectors need later and cannot
/// read once sandboxed: the time zone (glibc reads `/etc/localtime` on first use and would
/// silently fall back to UTC under Landlock).
pub fn warm_up() {
    let _ = time::local_zone(0);
}

/// Names of all collectors, for CLI/config validation.
pub fn known_names() -> Vec<&'static str> {
    registry().iter().map(|(c, _)| c.name()).collect()
}

/// The outcome of one collector's run in a scrape.
pub struct Outcome {
    pub name: &'static str,
    pub families: Vec<MetricFamily>,
    pub error: Option<CollectError>,
    pub seconds: f64,
}

/// Runs one collector, timing it.
pub fn run(collector: &dyn Collector, paths: &Paths) -> Outcome {
    let start = Instant::now();
    let result = collector.collect(paths);
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(families) => Outcome {
            name: collector.name(),
            families,
            error: None,
            seconds,
        },
        Err(e) => Outcome {
            name: collector.name(),
            families: Vec::new(),
            error: Some(e),
            seconds,
        },
    }
}

/// node_exporter's per-collector meta metrics for a set of outcomes.
pub fn meta_families(outcomes: &[Outcome]) -> Vec<MetricFamily> {
    let mut duration = MetricFamily::gauge(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
    );
    let mut success = MetricFamily::gauge(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
    );
    for o in outcomes {
        duration.push(&[("collector", o.name)], o.seconds);
        success.push(
            &[("collector", o.name)],
            if o.error.is_none() { 1.0 } else { 0.0 },
        );
    }
    vec![duration, success]
}

pub mod cpu;
pub mod loadavg;
pub mod meminfo;
pub mod process;
pub mod stat;
pub mod time;
pub mod uname;
