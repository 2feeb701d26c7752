//! `time` collector (placeholder until implemented).

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

pub struct Time;

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other("not implemented".into()))
    }
}
