//! `textfile` collector: not implemented yet (reports `node_scrape_collector_success 0`).

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// Sorts a family's samples as client_golang's registry does before exposition: by label
/// count, then label values in order (labels are expected sorted by name, as client_golang
/// keeps them).
pub(crate) fn sort_samples(fam: &mut MetricFamily) {
    fam.samples.sort_by(|a, b| {
        a.labels.len().cmp(&b.labels.len()).then_with(|| {
            a.labels
                .iter()
                .zip(&b.labels)
                .map(|((_, x), (_, y))| x.cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
}

/// Test helper: the families in the text format, sorted by name as the runtime sorts them.
#[cfg(test)]
pub(crate) fn render(mut fams: Vec<MetricFamily>) -> String {
    fams.sort_by(|a, b| a.name.cmp(&b.name));
    crate::exposition::encode(&fams, crate::exposition::Format::Text)
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Pending)
}

struct Pending;

impl Collector for Pending {
    fn name(&self) -> &'static str {
        "textfile"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Err(CollectError::Other(
            "the textfile collector is not implemented yet".into(),
        ))
    }
}
