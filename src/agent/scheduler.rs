//! The collector scheduler: runs the collectors of one scrape on a few blocking threads, each
//! within the scrape's deadline, and keeps a collector that hangs (a stale NFS mount's
//! `statfs`) from piling up threads across scrapes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::collector::{self, Collector};
use crate::collectors;
use crate::config::CollectorSettings;
use crate::daemon::logging::client_event;

/// Collectors run in a scrape by this many blocking threads, each taking the next collector
/// from a shared queue: a collector that hangs holds up one runner, not the scrape.
const RUNNERS: usize = 4;

/// A collector ready to run, with the flag that marks it as still running (a run that
/// missed its deadline keeps its thread until the kernel answers; the next scrapes skip the
/// collector meanwhile instead of piling threads up behind it).
#[derive(Clone)]
pub struct Entry {
    pub name: &'static str,
    collector: Arc<dyn Collector>,
    busy: Arc<AtomicBool>,
}

/// The enabled collectors, each with its shared "still running" flag.
pub fn build_entries(
    settings: &CollectorSettings,
    busy: &HashMap<&'static str, Arc<AtomicBool>>,
) -> Vec<Entry> {
    settings
        .enabled
        .iter()
        .filter_map(|name| {
            let k = collectors::known(name)?;
            Some(Entry {
                name: k.name,
                collector: Arc::from((k.build)(&settings.options)),
                busy: busy.get(k.name)?.clone(),
            })
        })
        .collect()
}

/// Runs `entries` on up to [`RUNNERS`] blocking threads and waits for them until `budget`
/// has passed. A collector that has not answered by then, or is still running from an
/// earlier scrape, is reported failed; the others are served.
pub async fn run_collectors(
    entries: Vec<Entry>,
    paths: collector::Paths,
    budget: Duration,
) -> Vec<collector::Outcome> {
    let n = entries.len();
    let deadline = tokio::time::Instant::now() + budget;
    let queue = Arc::new(entries);
    let paths = Arc::new(paths);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..n.min(RUNNERS) {
        let (queue, paths, next, tx) = (queue.clone(), paths.clone(), next.clone(), tx.clone());
        tokio::task::spawn_blocking(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(e) = queue.get(i) else { break };
            let outcome = if e.busy.swap(true, Ordering::AcqRel) {
                collector::Outcome {
                    name: e.name,
                    families: Vec::new(),
                    error: Some(collector::CollectError::Other(
                        "still running since an earlier scrape that it made miss its deadline"
                            .into(),
                    )),
                    seconds: 0.0,
                }
            } else {
                let o = collector::run(e.collector.as_ref(), &paths);
                e.busy.store(false, Ordering::Release);
                o
            };
            if tx.send((i, outcome)).is_err() {
                // The scrape gave up waiting; nobody reads further results.
                break;
            }
        });
    }
    drop(tx);
    let mut results: Vec<Option<collector::Outcome>> = (0..n).map(|_| None).collect();
    while let Ok(Some((i, o))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(o);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let name = queue.get(i).map_or("unknown", |e| e.name);
                client_event(
                    log::Level::Warn,
                    format_args!(
                        "collector {name} missed its deadline of {:.1}s; scraped without it",
                        budget.as_secs_f64()
                    ),
                );
                collector::Outcome {
                    name,
                    families: Vec::new(),
                    error: Some(collector::CollectError::Other(format!(
                        "deadline of {:.1}s exceeded",
                        budget.as_secs_f64()
                    ))),
                    seconds: budget.as_secs_f64(),
                }
            })
        })
        .collect()
}
