//! The runtime (step 9): the tokio runtime, built only after the process is sandboxed, the
//! accept loops on the listeners bound at start-up, and the signal loop (stop, reload, debug
//! toggle, summary) with systemd's notifications and watchdog.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::agent::Agent;
use crate::cli::Cli;
use crate::collector::Collector;
use crate::collectors;
use crate::config::ListenAddr;
use crate::daemon::logging;
use crate::daemon::notify::Notifier;
use crate::daemon::pidfile::PidFile;
use crate::daemon::reload_channel::ReloadChannel;
use crate::daemon::Readiness;
use crate::server::{self, ConnLimits, ConnSlots};

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
    /// Where each reload's outcome goes for `--reload`.
    pub reload_channel: Option<ReloadChannel>,
    pub pid_file: Option<PidFile>,
    /// The soft descriptor limit (`RLIMIT_NOFILE`), raised at start-up: it bounds the
    /// connections held.
    pub nofile: u64,
}

/// Runs the server until SIGTERM/SIGINT. Builds the tokio runtime: call only once the
/// process is sandboxed.
pub fn run(agent: Agent, cli: Cli, handoff: Handoff<'_>) -> Result<(), RuntimeError> {
    let Handoff {
        listeners,
        readiness,
        notifier,
        pid_file,
        nofile,
        reload_channel,
    } = handoff;
    let notifier = Arc::new(notifier);
    let rt = tokio::runtime::Builder::new_multi_thread()
        // One worker: the collectors run on the blocking threads, the worker only speaks HTTP,
        // encodes and compresses. A second worker was woken (a futex wake and a context
        // switch) for most tasks the first spawned, on every scrape (issue 12, perf).
        .worker_threads(1)
        // Collector runners (4 per scrape, queued beyond this) and the odd collector stuck
        // past its deadline; each thread costs a stack and memory (peak RSS is a goal).
        .max_blocking_threads(8)
        .thread_name("agent-worker")
        // Start-up blocked the handled signals, and the runtime's threads inherit that mask and
        // keep it: only this thread unblocks them, once the handlers below exist. A worker that
        // unblocked them on its start would take a signal sent in between with its default
        // action (SIGHUP, SIGUSR1 and SIGUSR2 terminate), before any handler is installed.
        // Process-directed signals go to a thread that does not block them: this one.
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
        let capacity = server::connection_capacity(nofile);
        if web.max_connections as usize > capacity {
            log::warn!(
                "web.max_connections {} is more than the descriptor limit ({nofile}) leaves \
                 room for: at most {capacity} connections are held",
                web.max_connections
            );
        }
        let limits = Arc::new(ConnLimits {
            slots: Arc::new(ConnSlots::new(web.max_connections, capacity)),
            tracker,
            shutdown: shutdown_rx,
        });
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
        release_startup_pages();
        if let Some(every) = notifier.watchdog_interval() {
            tokio::spawn(watchdog(agent.clone(), notifier.clone(), every));
        }

        // Reloads so far (the channel's generation counter when there is one).
        let mut generation = 0u64;
        loop {
            tokio::select! {
                _ = term.recv() => { log::info!("SIGTERM received, shutting down"); break; }
                _ = int.recv() => { log::info!("SIGINT received, shutting down"); break; }
                _ = hup.recv() => {
                    generation += 1;
                    if let Some(c) = &reload_channel {
                        generation = c.begin();
                    }
                    notifier.reloading();
                    let outcome = crate::reload::reload(&agent, &cli, &limits, generation);
                    if let Some(c) = &reload_channel {
                        c.finish(generation, outcome.ok, &outcome.message);
                    }
                    notifier.ready(&outcome.status);
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

/// Start-up is over: unmaps the pages of the program and its libraries that only start-up
/// touched (issue 12: they were most of the idle RSS; clap, the configuration, the privilege
/// drop and the sandbox run once). Only read-only file mappings without a private copy of any
/// page (`Anonymous: 0 kB` in `/proc/self/smaps`: never written, so every page is the file's
/// own, in the page cache) are released, with `MADV_DONTNEED`; a page used again later is
/// faulted back in from the page cache. Relocated data (RELRO: read-only but written by the
/// loader, so its pages are private copies) is never touched. Returns the bytes released.
fn release_startup_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    // The mapping being read: start, length, and whether it may be released.
    let mut current: Option<(usize, usize, bool)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                let perms = fields.next().unwrap_or("");
                let path = fields.nth(3).unwrap_or("");
                let candidate = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
                current = Some((lo, hi.saturating_sub(lo), candidate));
                continue;
            }
        }
        match first {
            "Anonymous:" if fields.next() != Some("0") => {
                if let Some(c) = current.as_mut() {
                    c.2 = false;
                }
            }
            // The last line of each mapping.
            "VmFlags:" => {
                if let Some((start, len, true)) = current.take() {
                    // SAFETY: the range is one whole mapping of this process, read-only and
                    // file-backed with no private page (checked above), so dropping its pages
                    // loses nothing: the next access faults the same bytes back in from the
                    // file. No Rust object lives in it (it is code and read-only file data).
                    let r = unsafe {
                        rustix::mm::madvise(
                            start as *mut std::ffi::c_void,
                            len,
                            rustix::mm::Advice::LinuxDontNeed,
                        )
                    };
                    if r.is_ok() {
                        released += len;
                    }
                }
            }
            _ => {}
        }
    }
    log::debug!("released {released} bytes of start-up mappings");
    released
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
        let paths = agent.startup().paths.clone();
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
