//! The runtime (step 9): the tokio runtime, built only after the process is sandboxed, the
//! agent's shared state, the scrape, and the signal loop (stop, reload, debug toggle,
//! summary).

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::cli::Cli;
use crate::collectors::{self, Collector};
use crate::config::{ListenAddr, Settings, WebSettings};
use crate::daemon::logging;
use crate::daemon::logging::client_event;
use crate::daemon::notify::Notifier;
use crate::daemon::pidfile::PidFile;
use crate::daemon::Readiness;
use crate::exposition::{self, Format, MetricFamily};
use crate::server::{self, ConnLimits, ScrapeSlot};
use std::time::Duration;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("building the tokio runtime: {0}")]
    Build(#[source] std::io::Error),
    #[error("listening socket {addr}: {source}")]
    Listener {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the {name} handler: {source}")]
    Signal {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Collectors run in a scrape by this many blocking threads, each taking the next collector
/// from a shared queue: a collector that hangs holds up one runner, not the scrape.
const RUNNERS: usize = 4;

/// A collector ready to run, with the flag that marks it as still running (a run that
/// missed its deadline keeps its thread until the kernel answers; the next scrapes skip the
/// collector meanwhile instead of piling threads up behind it).
#[derive(Clone)]
struct Entry {
    name: &'static str,
    collector: Arc<dyn Collector>,
    busy: Arc<AtomicBool>,
}

/// Which of the enabled collectors a scrape runs (`collect[]` / `exclude[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// State shared by every request and the signal loop.
pub struct Agent {
    settings: RwLock<Arc<Settings>>,
    collectors: RwLock<Arc<Vec<Entry>>>,
    busy: HashMap<&'static str, Arc<AtomicBool>>,
    /// Families fixed at start-up (sandbox self-report, build info).
    static_families: Vec<MetricFamily>,
    scrapes: AtomicU64,
    collector_failures: AtomicU64,
    reload_failures: AtomicU64,
    reload_ok: AtomicBool,
    reload_time: AtomicU64,
    in_flight: AtomicU32,
    started: Instant,
}

impl Agent {
    pub fn new(settings: Settings, static_families: Vec<MetricFamily>) -> Agent {
        let busy: HashMap<_, _> = collectors::KNOWN
            .iter()
            .map(|k| (k.name, Arc::new(AtomicBool::new(false))))
            .collect();
        let entries = build_entries(&settings, &busy);
        Agent {
            settings: RwLock::new(Arc::new(settings)),
            collectors: RwLock::new(Arc::new(entries)),
            busy,
            static_families,
            scrapes: AtomicU64::new(0),
            collector_failures: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            reload_ok: AtomicBool::new(true),
            reload_time: AtomicU64::new(unix_now() as u64),
            in_flight: AtomicU32::new(0),
            started: Instant::now(),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn entries(&self) -> Arc<Vec<Entry>> {
        match self.collectors.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_settings(&self, s: Settings) {
        let entries = Arc::new(build_entries(&s, &self.busy));
        match self.collectors.write() {
            Ok(mut g) => *g = entries,
            Err(poisoned) => *poisoned.into_inner() = entries,
        }
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(s),
        }
    }

    pub fn web(&self) -> WebSettings {
        self.settings().web.clone()
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
        let entries = self.entries();
        let names = if collect.is_empty() {
            &exclude
        } else {
            &collect
        };
        if let Some(bad) = names
            .iter()
            .find(|n| !entries.iter().any(|e| e.name == n.as_str()))
        {
            return Err(format!("unknown or disabled collector: {bad}"));
        }
        Ok(if !collect.is_empty() {
            Selection::Only(collect)
        } else if !exclude.is_empty() {
            Selection::Except(exclude)
        } else {
            Selection::All
        })
    }

    /// One scrape: the selected collectors in parallel, each within the deadline (shortened
    /// to Prometheus' own scrape timeout when it sends one), then the meta metrics and the
    /// agent's own, sorted by family name (as node_exporter's registry does) and encoded.
    pub async fn scrape(
        &self,
        format: Format,
        selection: &Selection,
        scrape_timeout: Option<Duration>,
    ) -> String {
        let settings = self.settings();
        let selected: Vec<Entry> = self
            .entries()
            .iter()
            .filter(|e| match selection {
                Selection::All => true,
                Selection::Only(n) => n.iter().any(|x| x == e.name),
                Selection::Except(n) => !n.iter().any(|x| x == e.name),
            })
            .cloned()
            .collect();
        let mut budget = settings.collectors.deadline;
        if let Some(t) = scrape_timeout {
            // Leave Prometheus time to receive the answer.
            budget = budget.min(t.mul_f64(0.9));
        }
        let outcomes = run_collectors(selected, settings.paths.clone(), budget).await;
        for o in &outcomes {
            if let Some(e) = &o.error {
                self.collector_failures.fetch_add(1, Ordering::Relaxed);
                client_event(
                    log::Level::Debug,
                    format_args!("collector {} failed: {e}", o.name),
                );
            }
        }
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut families: Vec<MetricFamily> = Vec::with_capacity(256);
        families.extend(collectors::meta_families(&outcomes));
        for o in outcomes {
            families.extend(o.families);
        }
        families.extend(collectors::process::families());
        families.extend(self.static_families.iter().cloned());
        families.extend(self.own_families(scrapes));
        exposition::merge_families(&mut families, |dropped| {
            client_event(log::Level::Warn, format_args!("scrape: {dropped}"))
        });
        exposition::encode(&families, format)
    }

    fn own_families(&self, scrapes: u64) -> Vec<MetricFamily> {
        vec![
            MetricFamily::counter(
                "monitoring_agent_scrapes_total",
                "Scrapes served since the agent started.",
            )
            .with(&[], scrapes as f64),
            MetricFamily::counter(
                "monitoring_agent_collector_failures_total",
                "Collector runs that failed since the agent started.",
            )
            .with(&[], self.collector_failures.load(Ordering::Relaxed) as f64),
            MetricFamily::gauge(
                "monitoring_agent_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
            )
            .with(
                &[],
                if self.reload_ok.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ),
            MetricFamily::gauge(
                "monitoring_agent_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration load.",
            )
            .with(&[], self.reload_time.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_config_reload_failures_total",
                "Configuration reloads that failed and left the running configuration in place.",
            )
            .with(&[], self.reload_failures.load(Ordering::Relaxed) as f64),
        ]
    }

    fn summary(&self) -> String {
        format!(
            "uptime {}s, scrapes served {}, collector failures {}, config reload failures {}",
            self.started.elapsed().as_secs(),
            self.scrapes.load(Ordering::Relaxed),
            self.collector_failures.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }
}

/// `monitoring_agent_build_info`.
pub fn build_info() -> MetricFamily {
    MetricFamily::gauge(
        "monitoring_agent_build_info",
        "A metric with a constant '1' value labeled by version and target architecture.",
    )
    .with(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("arch", std::env::consts::ARCH),
        ],
        1.0,
    )
}

fn build_entries(settings: &Settings, busy: &HashMap<&'static str, Arc<AtomicBool>>) -> Vec<Entry> {
    settings
        .collectors
        .enabled
        .iter()
        .filter_map(|name| {
            let k = collectors::known(name)?;
            Some(Entry {
                name: k.name,
                collector: Arc::from((k.build)(&settings.collectors.options)),
                busy: busy.get(k.name)?.clone(),
            })
        })
        .collect()
}

/// Runs `entries` on up to [`RUNNERS`] blocking threads and waits for them until `budget`
/// has passed. A collector that has not answered by then, or is still running from an
/// earlier scrape, is reported failed; the others are served.
async fn run_collectors(
    entries: Vec<Entry>,
    paths: collectors::Paths,
    budget: Duration,
) -> Vec<collectors::Outcome> {
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
                collectors::Outcome {
                    name: e.name,
                    families: Vec::new(),
                    error: Some(collectors::CollectError::Other(
                        "still running since an earlier scrape that it made miss its deadline"
                            .into(),
                    )),
                    seconds: 0.0,
                }
            } else {
                let o = collectors::run(e.collector.as_ref(), &paths);
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
    let mut results: Vec<Option<collectors::Outcome>> = (0..n).map(|_| None).collect();
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
                collectors::Outcome {
                    name,
                    families: Vec::new(),
                    error: Some(collectors::CollectError::Other(format!(
                        "deadline of {:.1}s exceeded",
                        budget.as_secs_f64()
                    ))),
                    seconds: budget.as_secs_f64(),
                }
            })
        })
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Listeners by configured address, each with the switch that stops its accept loop.
/// They are all bound at start-up: the sandbox allows no new listener.
struct Listeners {
    running: HashMap<ListenAddr, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// What start-up hands to the runtime.
pub struct Handoff<'a> {
    pub listeners: Vec<(ListenAddr, StdListener)>,
    /// The daemon's report to the launching command.
    pub readiness: &'a mut Readiness,
    /// systemd's notification socket.
    pub notifier: Notifier,
    pub pid_file: Option<PidFile>,
}

/// Runs the server until SIGTERM/SIGINT. Builds the tokio runtime: call only once the
/// process is sandboxed.
pub fn run(agent: Agent, cli: Cli, handoff: Handoff<'_>) -> Result<(), RuntimeError> {
    let Handoff {
        listeners,
        readiness,
        notifier,
        pid_file,
    } = handoff;
    let notifier = Arc::new(notifier);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Collector runners (4 per scrape, queued beyond this) and the odd collector stuck
        // past its deadline; each thread costs a stack and memory (peak RSS is a goal).
        .max_blocking_threads(8)
        .thread_name("agent-worker")
        // Start-up blocked the handled signals (inherited by every thread): each runtime
        // thread takes them again, so the handlers below see them.
        .on_thread_start(|| {
            let _ = crate::handled_signals().thread_unblock();
        })
        .enable_all()
        .build()
        .map_err(RuntimeError::Build)?;
    let agent = Arc::new(agent);
    let result = rt.block_on(async {
        let sig = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| RuntimeError::Signal { name, source })
        };
        let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
        let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
        let mut usr1 = sig(SignalKind::user_defined1(), "SIGUSR1")?;
        let mut usr2 = sig(SignalKind::user_defined2(), "SIGUSR2")?;
        // The handlers exist: signals that arrived during start-up are delivered now.
        let _ = crate::handled_signals().thread_unblock();

        let web = agent.web();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (tracker, mut all_closed) = mpsc::channel::<()>(1);
        let limits = Arc::new(ConnLimits {
            slots: Arc::new(Semaphore::new(web.max_connections as usize)),
            tracker,
            shutdown: shutdown_rx,
        });
        let mut current_max_conns = web.max_connections;
        let mut set = Listeners {
            running: HashMap::new(),
        };
        for (addr, l) in listeners {
            start_listener(&agent, &limits, &mut set, addr, l)?;
        }
        let names: Vec<String> = set.running.keys().map(|a| a.to_string()).collect();
        let status = format!(
            "serving metrics on {} at {}",
            names.join(", "),
            web.telemetry_path.0
        );
        log::info!("{status}");
        readiness.ready();
        notifier.ready(&status);
        if let Some(every) = notifier.watchdog_interval() {
            tokio::spawn(watchdog(agent.clone(), notifier.clone(), every));
        }

        loop {
            tokio::select! {
                _ = term.recv() => { log::info!("SIGTERM received, shutting down"); break; }
                _ = int.recv() => { log::info!("SIGINT received, shutting down"); break; }
                _ = hup.recv() => {
                    notifier.reloading();
                    let status = reload(&agent, &cli, &limits, &mut current_max_conns).await;
                    notifier.ready(&status);
                }
                _ = usr1.recv() => {
                    let on = logging::toggle_debug();
                    log::warn!("SIGUSR1: debug logging {}", if on { "on" } else { "off" });
                }
                _ = usr2.recv() => log::info!("SIGUSR2: {}", agent.summary()),
            }
        }

        // Stop accepting, let in-flight requests finish (bounded), then leave.
        notifier.stopping();
        let grace = agent.web().shutdown_timeout;
        for (stop, _) in set.running.values() {
            let _ = stop.send(true);
        }
        let _ = shutdown_tx.send(true);
        drop(limits);
        if tokio::time::timeout(grace, all_closed.recv())
            .await
            .is_err()
        {
            log::warn!(
                "connections still open after {}s; closing them",
                grace.as_secs()
            );
        }
        Ok(())
    });
    // Blocking scrape threads may still be running: do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    if let Some(p) = pid_file {
        p.remove();
    }
    if result.is_ok() {
        log::info!("stopped");
    }
    result
}

fn start_listener(
    agent: &Arc<Agent>,
    limits: &Arc<ConnLimits>,
    set: &mut Listeners,
    addr: ListenAddr,
    listener: StdListener,
) -> Result<(), RuntimeError> {
    let l =
        tokio::net::TcpListener::from_std(listener).map_err(|source| RuntimeError::Listener {
            addr: addr.to_string(),
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(
        agent.clone(),
        l,
        limits.clone(),
        stop_rx,
    ));
    set.running.insert(addr, (stop_tx, task));
    Ok(())
}

/// SIGHUP: re-reads the configuration file (command-line flags still override it). An
/// invalid file keeps the running configuration and counts the failure.
async fn reload(
    agent: &Arc<Agent>,
    cli: &Cli,
    limits: &Arc<ConnLimits>,
    current_max_conns: &mut u32,
) -> String {
    let old = agent.settings();
    let mut new = match Settings::load(cli) {
        Ok(s) => s,
        Err(e) => {
            agent.reload_failures.fetch_add(1, Ordering::Relaxed);
            agent.reload_ok.store(false, Ordering::Relaxed);
            log::error!("SIGHUP: configuration not reloaded, keeping the running one: {e}");
            return "reload failed, serving with the previous configuration".into();
        }
    };
    for name in old.restart_only_changes(&new) {
        log::warn!("SIGHUP: the change to {name} takes effect only after a restart");
    }
    new.daemon = old.daemon;
    new.user = old.user.clone();
    new.pid_file = old.pid_file.clone();
    new.log_file = old.log_file.clone();
    new.sandbox = old.sandbox.clone();
    new.paths = old.paths.clone();
    new.config_file = old.config_file.clone();

    // Listeners are start-up only: the sandbox allows no new socket (see
    // Settings::restart_only_changes); with socket activation they are the .socket unit's.
    new.web.systemd_socket = old.web.systemd_socket;
    new.web.listen = old.web.listen.clone();
    if new.web.max_connections != *current_max_conns {
        let (from, to) = (*current_max_conns, new.web.max_connections);
        if to > from {
            limits.slots.add_permits((to - from) as usize);
        } else {
            limits.slots.forget_permits((from - to) as usize);
        }
        *current_max_conns = to;
    }
    logging::set_level(new.log_level);
    let summary = format!(
        "listening on {}, metrics at {}",
        new.web
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        new.web.telemetry_path.0
    );
    agent.store_settings(new);
    agent.reload_ok.store(true, Ordering::Relaxed);
    agent
        .reload_time
        .store(unix_now() as u64, Ordering::Relaxed);
    log::info!("SIGHUP: configuration reloaded; {summary}");
    format!("serving metrics; {summary}")
}

/// Sends `WATCHDOG=1` every `every` while the agent is healthy: this task running shows the
/// event loop turns, and a cheap collector (`loadavg`) answering in time shows the blocking
/// pool and the procfs reads work. A wedged agent stops sending, and systemd restarts it.
async fn watchdog(agent: Arc<Agent>, notifier: Arc<Notifier>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let probe =
        Arc::<dyn Collector>::from(Box::new(collectors::loadavg::LoadAvg) as Box<dyn Collector>);
    let busy = Arc::new(AtomicBool::new(false));
    loop {
        ticker.tick().await;
        if busy.load(Ordering::Acquire) {
            log::warn!("watchdog: the health probe is still blocked; not notifying systemd");
            continue;
        }
        let paths = agent.settings().paths.clone();
        let (p, b) = (probe.clone(), busy.clone());
        b.store(true, Ordering::Release);
        let task = tokio::task::spawn_blocking(move || {
            let r = p.collect(&paths).is_ok();
            b.store(false, Ordering::Release);
            r
        });
        match tokio::time::timeout(every, task).await {
            Ok(Ok(true)) => notifier.watchdog(),
            Ok(_) => log::warn!("watchdog: health probe failed; not notifying systemd"),
            Err(_) => log::warn!("watchdog: health probe timed out; not notifying systemd"),
        }
    }
}
