//! `diskstats` collector: not implemented yet (reports `node_scrape_collector_success 0`).

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Pending)
}

struct Pending;

impl Collector for Pending {
    fn name(&self) -> &'static str {
        "diskstats"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other(
            "the diskstats collector is not implemented yet".into(),
        ))
    }
}
