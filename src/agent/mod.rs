//! The agent's shared state: the start-up settings (fixed), the reloadable settings and the
//! collectors built from them (replaced whole by a reload), and the counters behind the
//! agent's own metrics. The server reads it for every request; the runtime's signal loop and
//! the reload module replace its reloadable part.

pub mod scheduler;
pub mod self_metrics;
pub mod share;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{ReloadableSettings, Settings, StartupSettings, WebSettings};
use crate::daemon::logging::{client_event, collector_event};
use crate::exposition::{self, Format, MetricFamily};
use crate::{collector, collectors};
use scheduler::Entry;
use share::{Flights, Seat};

/// Which of the enabled collectors a scrape runs (`collect[]` / `exclude[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// A scrape's answer: the encoded body, gzipped when the client accepts it (and compressing
/// worked). Shared by the concurrent identical scrapes that waited for it ([`share`]).
#[derive(Debug)]
pub struct Answer {
    pub body: bytes::Bytes,
    pub gzipped: bool,
}

/// What makes two scrapes' answers the same bytes: the configuration in force, the format,
/// the encoding and the collector selection.
#[derive(Clone)]
struct AnswerKey {
    current: Arc<Current>,
    format: Format,
    gzip: bool,
    selection: Selection,
}

impl PartialEq for AnswerKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.current, &other.current)
            && self.format == other.format
            && self.gzip == other.gzip
            && self.selection == other.selection
    }
}

/// How long past its own deadline a scrape waits for the answer it joined: the leader is due
/// no later than the follower, and then encodes and compresses.
const FOLLOW_GRACE: Duration = Duration::from_secs(2);

/// The reloadable settings and the collectors built from them, swapped together.
struct Current {
    settings: Arc<ReloadableSettings>,
    entries: Arc<Vec<Entry>>,
}

/// State shared by every request and the signal loop.
pub struct Agent {
    startup: StartupSettings,
    current: RwLock<Arc<Current>>,
    /// Each collector's run, shared by concurrent scrapes and kept across reloads.
    slots: HashMap<&'static str, Arc<scheduler::RunSlot>>,
    /// Families fixed at start-up (sandbox self-report, build info).
    static_families: Vec<MetricFamily>,
    scrapes: AtomicU64,
    collector_failures: AtomicU64,
    collector_no_data: AtomicU64,
    collector_runs_joined: AtomicU64,
    reload_failures: AtomicU64,
    reload_ok: AtomicBool,
    reload_time: AtomicU64,
    in_flight: AtomicU32,
    /// Answers of the metrics handler by status (200, 500, 503), for
    /// `promhttp_metric_handler_requests_total`.
    handler_codes: [AtomicU64; 3],
    /// Duplicate series a scrape dropped (client_golang's gathering errors), for
    /// `promhttp_metric_handler_errors_total{cause="gathering"}`.
    gathering_errors: AtomicU64,
    started: Instant,
    /// `--web.config.file`: TLS, basic auth, headers, rate limit.
    edge: Option<Arc<crate::web::Edge>>,
    /// Scrapes building their answer at once (collect, merge, encode): see [`BUILDS`].
    builds: tokio::sync::Semaphore,
    /// Answers being built, which concurrent identical scrapes wait for ([`share`]).
    answers: Flights<AnswerKey, Arc<Answer>>,
    answers_shared: AtomicU64,
}

/// At most this many scrapes collect and encode at once; more wait for a turn (at most a
/// tenth of their deadline), holding only their connection. Each building scrape holds its families, its
/// body and its compressor (a few hundred KiB): with 64 clients at once the peak memory was
/// that many times over (issue 12), for no gain in throughput on a few cores.
const BUILDS: usize = 4;

impl Agent {
    pub fn new(settings: Settings, static_families: Vec<MetricFamily>) -> Agent {
        let slots = scheduler::slots();
        let Settings {
            startup,
            reloadable,
        } = settings;
        let entries = scheduler::build_entries(&reloadable.collectors, &slots);
        Agent {
            startup,
            current: RwLock::new(Arc::new(Current {
                settings: Arc::new(reloadable),
                entries: Arc::new(entries),
            })),
            slots,
            static_families,
            scrapes: AtomicU64::new(0),
            collector_failures: AtomicU64::new(0),
            collector_no_data: AtomicU64::new(0),
            collector_runs_joined: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            reload_ok: AtomicBool::new(true),
            reload_time: AtomicU64::new(self_metrics::unix_now() as u64),
            in_flight: AtomicU32::new(0),
            handler_codes: Default::default(),
            gathering_errors: AtomicU64::new(0),
            started: Instant::now(),
            edge: None,
            builds: tokio::sync::Semaphore::new(BUILDS),
            answers: Flights::default(),
            answers_shared: AtomicU64::new(0),
        }
    }

    /// Serves through the web config's edge (TLS, auth): set once, before the runtime starts.
    pub fn with_edge(mut self, edge: Option<Arc<crate::web::Edge>>) -> Agent {
        self.edge = edge;
        self
    }

    /// The web config in force, when `--web.config.file` is given.
    pub fn edge(&self) -> Option<&Arc<crate::web::Edge>> {
        self.edge.as_ref()
    }

    /// The settings fixed at start-up.
    pub fn startup(&self) -> &StartupSettings {
        &self.startup
    }

    fn current(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The reloadable settings in force.
    pub fn settings(&self) -> Arc<ReloadableSettings> {
        self.current().settings.clone()
    }

    pub fn web(&self) -> WebSettings {
        self.settings().web.clone()
    }

    /// Replaces the reloadable settings, and the collectors with them. The start-up settings
    /// cannot change: a reload has no way to pass them.
    pub fn replace(&self, settings: ReloadableSettings) {
        let current = Arc::new(Current {
            entries: Arc::new(scheduler::build_entries(&settings.collectors, &self.slots)),
            settings: Arc::new(settings),
        });
        match self.current.write() {
            Ok(mut g) => *g = current,
            Err(poisoned) => *poisoned.into_inner() = current,
        }
        self.reload_ok.store(true, Ordering::Relaxed);
        self.reload_time
            .store(self_metrics::unix_now() as u64, Ordering::Relaxed);
    }

    /// Counts a reload that kept the running settings.
    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        self.reload_ok.store(false, Ordering::Relaxed);
    }

    pub fn try_scrape_slot(&self, max: u32) -> Option<ScrapeSlot<'_>> {
        ScrapeSlot::try_take(&self.in_flight, max)
    }

    /// Checks a scrape's `collect[]` / `exclude[]` names against the enabled collectors, as
    /// node_exporter does (an unknown or disabled name, or both parameters: a client error).
    pub fn selection(
        &self,
        collect: Vec<String>,
        exclude: Vec<String>,
    ) -> Result<Selection, String> {
        if !collect.is_empty() && !exclude.is_empty() {
            return Err("collect[] and exclude[] cannot be used together".into());
        }
        let current = self.current();
        let names = if collect.is_empty() {
            &exclude
        } else {
            &collect
        };
        if let Some(bad) = names
            .iter()
            .find(|n| !current.entries.iter().any(|e| e.name == n.as_str()))
        {
            return Err(format!("unknown or disabled collector: {}", printable(bad)));
        }
        Ok(if !collect.is_empty() {
            Selection::Only(collect)
        } else if !exclude.is_empty() {
            Selection::Except(exclude)
        } else {
            Selection::All
        })
    }

    /// A scrape's answer. A scrape that arrives while an identical one (same configuration,
    /// format, encoding and selection, due no later than this one) is being built waits for
    /// that answer and serves the same bytes ([`share`]); otherwise it builds its own, which
    /// the identical scrapes arriving meanwhile then share.
    pub async fn answer(
        &self,
        format: Format,
        gzip: bool,
        selection: Selection,
        scrape_timeout: Option<Duration>,
    ) -> Arc<Answer> {
        let current = self.current();
        let mut budget = current.settings.collectors.deadline;
        if let Some(t) = scrape_timeout {
            // Leave Prometheus time to receive the answer.
            budget = budget.min(t.mul_f64(0.9));
        }
        let due = tokio::time::Instant::now() + budget;
        let key = AnswerKey {
            current,
            format,
            gzip,
            selection,
        };
        loop {
            match self.answers.seat(key.clone(), due) {
                Seat::Lead(lead) => {
                    let answer = Arc::new(self.build(&key, due).await);
                    lead.land(answer.clone());
                    return answer;
                }
                Seat::Follow(follow) => {
                    if let Some(answer) = follow.answer(due + FOLLOW_GRACE).await {
                        self.answers_shared.fetch_add(1, Ordering::Relaxed);
                        self.scrapes.fetch_add(1, Ordering::Relaxed);
                        return answer;
                    }
                    if tokio::time::Instant::now() >= due {
                        // Waited out (never seen: the leader is due first): answer alone.
                        return Arc::new(self.build(&key, due).await);
                    }
                    // The leader's client went away and its build with it: seat again.
                }
            }
        }
    }

    /// Builds an answer: collects, encodes, and compresses when the client accepts gzip.
    async fn build(&self, key: &AnswerKey, due: tokio::time::Instant) -> Answer {
        let body = self
            .scrape(&key.current, key.format, &key.selection, due)
            .await;
        if !key.gzip {
            return Answer {
                body: bytes::Bytes::from(body),
                gzipped: false,
            };
        }
        match exposition::gzip(body.as_bytes()) {
            Ok(z) => {
                exposition::recycle(body);
                Answer {
                    body: bytes::Bytes::from(z),
                    gzipped: true,
                }
            }
            Err(e) => {
                log::warn!("gzip failed, sending uncompressed: {e}");
                Answer {
                    body: bytes::Bytes::from(body),
                    gzipped: false,
                }
            }
        }
    }

    /// One scrape: the selected collectors in parallel, each within the deadline `due`
    /// (shortened to Prometheus' own scrape timeout when it sends one), then the meta metrics
    /// and the agent's own, sorted by family name (as node_exporter's registry does) and
    /// encoded.
    async fn scrape(
        &self,
        current: &Current,
        format: Format,
        selection: &Selection,
        due: tokio::time::Instant,
    ) -> String {
        let selected: Vec<Entry> = current
            .entries
            .iter()
            .filter(|e| match selection {
                Selection::All => true,
                Selection::Only(n) => n.iter().any(|x| x == e.name),
                Selection::Except(n) => !n.iter().any(|x| x == e.name),
            })
            .cloned()
            .collect();
        let budget = due.saturating_duration_since(tokio::time::Instant::now());
        // The wait for a turn counts against the deadline, and lasts at most a tenth of it:
        // scrapes that hold their turn for long are waiting for hung collectors (which they
        // join), and a scrape must not lose every collector to them; past that wait it goes
        // on without a turn.
        let waiting = Instant::now();
        let _turn = tokio::time::timeout(budget / 10, self.builds.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        let budget = budget.saturating_sub(waiting.elapsed());
        let outcomes =
            scheduler::run_collectors(selected, self.startup.paths.clone(), budget).await;
        for o in &outcomes {
            if o.joined {
                self.collector_runs_joined.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(e) = &o.error {
                if e.is_no_data() {
                    self.collector_no_data.fetch_add(1, Ordering::Relaxed);
                    collector_event(
                        o.name,
                        log::Level::Debug,
                        format_args!("collector {} returned no data: {e}", o.name),
                    );
                } else {
                    self.collector_failures.fetch_add(1, Ordering::Relaxed);
                    collector_event(
                        o.name,
                        log::Level::Debug,
                        format_args!("collector {} failed: {e}", o.name),
                    );
                }
            }
        }
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut families: Vec<MetricFamily> = Vec::with_capacity(256);
        families.extend(collector::meta_families(&outcomes));
        for o in outcomes {
            families.extend(o.families);
        }
        if !current.settings.web.disable_exporter_metrics {
            families.extend(collectors::process::families());
            families.extend(self.promhttp_families());
        }
        families.extend(self.static_families.iter().cloned());
        families.extend(self.own_families(scrapes));
        if let Some(edge) = &self.edge {
            families.extend(edge.families());
        }
        exposition::merge_families(&mut families, |dropped| {
            self.gathering_errors.fetch_add(1, Ordering::Relaxed);
            client_event(log::Level::Warn, format_args!("scrape: {dropped}"))
        });
        exposition::encode(&families, format)
    }

    /// The SIGUSR2 summary. A collector run that found no such hardware or kernel feature
    /// (node_exporter's `ErrNoData`) is counted apart from a real failure.
    pub fn summary(&self) -> String {
        format!(
            "uptime {}s, scrapes served {}, collector failures {}, collector runs without \
             hardware (no data) {}, config reload failures {}",
            self.started.elapsed().as_secs(),
            self.scrapes.load(Ordering::Relaxed),
            self.collector_failures.load(Ordering::Relaxed),
            self.collector_no_data.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }
}

/// Counts in-flight scrapes against `--web.max-requests`.
pub struct ScrapeSlot<'a>(&'a AtomicU32);

impl<'a> ScrapeSlot<'a> {
    pub fn try_take(counter: &'a AtomicU32, max: u32) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ScrapeSlot(counter))
    }
}

impl Drop for ScrapeSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Client input fit to echo in a page or a log line: printable ASCII only (everything else
/// escaped as `\u{..}`, quotes and backslashes escaped too), at most 64 characters kept.
pub fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_default).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}
