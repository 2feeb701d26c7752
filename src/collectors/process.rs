//! The agent's own `process_*` metrics (placeholder until implemented).

use crate::exposition::MetricFamily;

/// `process_*` families for the running agent, read from `/proc/self`.
pub fn families() -> Vec<MetricFamily> {
    Vec::new()
}
