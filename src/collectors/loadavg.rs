//! `loadavg` collector (placeholder until implemented).

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

pub struct LoadAvg;

impl Collector for LoadAvg {
    fn name(&self) -> &'static str {
        "loadavg"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other("not implemented".into()))
    }
}
