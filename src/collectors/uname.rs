//! `uname` collector (placeholder until implemented).

use super::{CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

pub struct Uname;

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other("not implemented".into()))
    }
}
