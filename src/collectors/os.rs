//! `os` collector: not implemented yet (reports `node_scrape_collector_success 0`).

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// Reads what this collector needs before the sandbox closes `/etc` (not implemented yet).
pub fn warm_up(_paths: &Paths) {}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Pending)
}

struct Pending;

impl Collector for Pending {
    fn name(&self) -> &'static str {
        "os"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other(
            "the os collector is not implemented yet".into(),
        ))
    }
}
