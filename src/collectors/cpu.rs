//! `cpu` collector (placeholder until implemented).

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

pub struct Cpu;

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other("not implemented".into()))
    }
}
