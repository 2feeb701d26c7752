//! `meminfo` collector (placeholder until implemented).

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

pub struct MemInfo;

impl Collector for MemInfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other("not implemented".into()))
    }
}
