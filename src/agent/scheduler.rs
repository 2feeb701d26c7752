//! The collector scheduler: runs the collectors of one scrape on blocking threads (two, one on
//! a single CPU; a few more when some are slow or hung), each within the scrape's deadline. Concurrent scrapes share runs: a scrape that finds a collector
//! already running (for another scrape) joins that run and gets its samples, waiting for it
//! within its own deadline, instead of starting a second one or reporting the collector
//! failed. The same rule keeps a collector that hangs (a stale NFS mount's `statfs`) from
//! piling up threads across scrapes: later scrapes join the hung run and time out at their own
//! deadlines; a new run starts only once the hung one has returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::collector::{self, Collector};
use crate::collectors;
use crate::config::CollectorSettings;
use crate::daemon::logging::client_event;

/// Collectors run in a scrape by at most this many blocking threads, each taking the next
/// collector from the scrape's queue: a collector that hangs holds up one runner, not the
/// scrape.
const RUNNERS: usize = 4;

/// A scrape starts [`first_runners`] runners, which normally run every collector of the scrape
/// between them: a thread handoff per runner, not per collector, and no wake-up of the scrape
/// until the last collector is done (issue 12: the futex calls and context switches of four
/// runners reporting collector by collector were most of a scrape's system time). Whenever this long
/// passes with collectors still waiting in the queue (the running ones are slow or hung), one
/// more runner starts, up to [`RUNNERS`]: a hung collector delays the ones queued behind it
/// by this much, never past their deadline.
const STAGGER: Duration = Duration::from_millis(20);

/// Runners a scrape starts at once: two where there are two CPUs or more, so that a lone
/// scrape's collectors run on two cores and its answer comes in about half the time (one
/// more thread wake-up per scrape); one on a single CPU, where a second runner would only
/// take turns with the first. Computed once, at start-up ([`crate::startup`], before the
/// sandbox: the CPU count comes from the affinity mask and the cgroup's `cpu.max`).
pub fn first_runners() -> usize {
    static FIRST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *FIRST.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 2)))
}

/// What the scrapes that joined a run receive when it ends.
type Published = Option<Arc<collector::Outcome>>;

/// One collector's current run, shared by every scrape (and kept across reloads, so a reload
/// does not start a second run beside a hung one). Holds the sender of the running run, if
/// any: a scrape that finds one subscribes to it instead of running the collector.
#[derive(Default)]
pub struct RunSlot {
    running: Mutex<Option<watch::Sender<Published>>>,
    /// How long the last run took, in microseconds: a scrape queues its slowest collectors
    /// first, so that its runners finish together (longest first).
    last_micros: AtomicU64,
}

/// The slots of every known collector, by name.
pub fn slots() -> HashMap<&'static str, Arc<RunSlot>> {
    collectors::KNOWN
        .iter()
        .map(|k| (k.name, Arc::new(RunSlot::default())))
        .collect()
}

/// What a runner found for one collector: it ran it, or joined the run already going.
enum Claim {
    Mine(RunGuard),
    Joined(watch::Receiver<Published>),
}

impl RunSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<watch::Sender<Published>>> {
        lock(&self.running)
    }

    /// Starts a run, or joins the one already going.
    fn claim(self: &Arc<Self>) -> Claim {
        let mut running = self.lock();
        if let Some(tx) = running.as_ref() {
            return Claim::Joined(tx.subscribe());
        }
        let (tx, _) = watch::channel(None);
        *running = Some(tx);
        Claim::Mine(RunGuard {
            slot: self.clone(),
            done: false,
        })
    }
}

/// The claim of a run: publishing its outcome ends it; dropped unpublished (the collector
/// panicked in a test build), it still frees the slot, and the joined scrapes see the run end
/// without a result.
struct RunGuard {
    slot: Arc<RunSlot>,
    done: bool,
}

impl RunGuard {
    /// Ends the run: frees the slot (the next scrape starts a new run) and hands the outcome to
    /// the scrapes that joined it. Without joiners nothing is copied.
    fn publish(mut self, outcome: &collector::Outcome) {
        self.done = true;
        self.slot
            .last_micros
            .store((outcome.seconds * 1e6) as u64, Ordering::Relaxed);
        let tx = self.slot.lock().take();
        if let Some(tx) = tx {
            if tx.receiver_count() > 0 {
                let _ = tx.send(Some(Arc::new(outcome.clone())));
            }
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.done {
            self.slot.lock().take();
        }
    }
}

/// A collector ready to run, with the slot it shares with every other scrape.
#[derive(Clone)]
pub struct Entry {
    pub name: &'static str,
    collector: Arc<dyn Collector>,
    slot: Arc<RunSlot>,
}

impl Entry {
    #[cfg(test)]
    pub fn new(name: &'static str, collector: Arc<dyn Collector>, slot: Arc<RunSlot>) -> Self {
        Entry {
            name,
            collector,
            slot,
        }
    }
}

/// The enabled collectors, each with its shared run slot.
pub fn build_entries(
    settings: &CollectorSettings,
    slots: &HashMap<&'static str, Arc<RunSlot>>,
) -> Vec<Entry> {
    settings
        .enabled
        .iter()
        .filter_map(|name| {
            let k = collectors::known(name)?;
            Some(Entry {
                name: k.name,
                collector: Arc::from((k.build)(&settings.options)),
                slot: slots.get(k.name)?.clone(),
            })
        })
        .collect()
}

/// What a runner leaves for its scrape for one collector.
enum Report {
    Ran(collector::Outcome),
    Joined(watch::Receiver<Published>),
}

/// One scrape's queue of collectors, shared by its runners, and what they report.
struct Scrape {
    queue: Vec<Entry>,
    /// Queue indices in the order runners take them: the slowest last time first.
    order: Vec<usize>,
    paths: collector::Paths,
    /// The next queue index to take.
    next: AtomicUsize,
    /// Collectors not yet reported; the runner that reports the last one wakes the scrape.
    remaining: AtomicUsize,
    /// By queue index. A runner writes its report here as soon as it has it, so the scrape
    /// finds at its deadline every collector done by then, whichever runner ran it.
    reports: Mutex<Vec<Option<Report>>>,
    done: tokio::sync::Notify,
    /// The scrape stopped waiting (deadline): runners take no further collector.
    abandoned: AtomicBool,
}

impl Scrape {
    fn reports(&self) -> std::sync::MutexGuard<'_, Vec<Option<Report>>> {
        lock(&self.reports)
    }

    /// Whether a collector is still waiting in the queue for a runner.
    fn queued(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.queue.len()
    }

    /// A runner: takes collectors from the queue until it is empty or the scrape gave up.
    fn run(&self) {
        while !self.abandoned.load(Ordering::Relaxed) {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = self.order.get(k) else { break };
            let Some(e) = self.queue.get(i) else { break };
            // Claimed when a runner takes it, not when the scrape starts: a collector this
            // scrape never reaches (its runners all stuck) is never marked running.
            let report = match e.slot.claim() {
                Claim::Joined(rx) => Report::Joined(rx),
                Claim::Mine(guard) => {
                    let o = collector::run(e.collector.as_ref(), &self.paths);
                    guard.publish(&o);
                    Report::Ran(o)
                }
            };
            if let Some(r) = self.reports().get_mut(i) {
                *r = Some(report);
            }
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.done.notify_one();
            }
        }
    }
}

/// The second runner of a scrape: one dedicated thread, woken by a byte written to a connected
/// `AF_UNIX` stream pair instead of through tokio's blocking pool (a futex).
///
/// Why (issue 12, one client scraping in a loop, 2 CPUs): the runtime worker that takes the
/// request wakes two runners and then waits. `perf sched timehist` showed that in about one
/// scrape in four the kernel queued the second runner behind the first, on the same CPU,
/// while the worker's CPU went idle: the scrape's collectors then ran one after the other
/// (`sch delay` 0.9-1.5 ms, and the second runner found the queue empty). A write to a unix
/// stream socket wakes its reader synchronously (`WF_SYNC`: the waker is about to sleep), and
/// the kernel then places the reader on the waker's CPU, the one the worker leaves. Measured,
/// 6 interleaved rounds of `wrk -t1 -c1 -d5s`: 755 scrapes/s through the blocking pool, 800
/// with this thread (5 of 6 rounds faster).
///
/// The thread runs one scrape's share at a time. While it is busy (another scrape's
/// collectors, or one that hangs) the scrape starts a blocking task instead, as before: a
/// hung collector holds this thread as it would hold a blocking-pool thread, and no scrape
/// waits for it. It is started at the first scrape that offers it work (the pair and the
/// thread need no system call the sandbox forbids: `socketpair` is allowed for a connected
/// `AF_UNIX` stream pair), and never where it could not be started.
struct SecondRunner {
    /// The worker's end; the thread blocks reading the other.
    wake: std::os::unix::net::UnixStream,
    /// The scrape to run, set before the wake-up byte is written.
    job: Mutex<Option<Arc<Scrape>>>,
    /// Set by the scrape that hands it a job, cleared by the thread when it is done with it.
    busy: AtomicBool,
}

impl SecondRunner {
    /// The thread, started on first use; `None` if the pair or the thread could not be made.
    fn get() -> Option<&'static SecondRunner> {
        static SECOND: std::sync::OnceLock<Option<SecondRunner>> = std::sync::OnceLock::new();
        SECOND
            .get_or_init(|| {
                let (wake, mut woken) = std::os::unix::net::UnixStream::pair().ok()?;
                std::thread::Builder::new()
                    .name("agent-runner".into())
                    .spawn(move || {
                        use std::io::Read;
                        let mut byte = [0u8; 1];
                        // The first byte is written once `SECOND` is set. The worker's end
                        // lives as long as the process, so the read ends only with it.
                        while woken.read(&mut byte).is_ok_and(|n| n == 1) {
                            let Some(Some(me)) = SECOND.get() else { break };
                            let job = lock(&me.job).take();
                            if let Some(scrape) = job {
                                scrape.run();
                            }
                            me.busy.store(false, Ordering::Release);
                        }
                    })
                    .ok()?;
                Some(SecondRunner {
                    wake,
                    job: Mutex::new(None),
                    busy: AtomicBool::new(false),
                })
            })
            .as_ref()
    }

    /// Hands `scrape` to the thread if it is free; false if the scrape must start a blocking
    /// task instead.
    fn offer(scrape: &Arc<Scrape>) -> bool {
        use std::io::Write;
        let Some(me) = Self::get() else { return false };
        if me
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        *lock(&me.job) = Some(scrape.clone());
        if (&me.wake).write(&[1]).is_ok_and(|n| n == 1) {
            return true;
        }
        lock(&me.job).take();
        me.busy.store(false, Ordering::Release);
        false
    }
}

/// A mutex's contents, poisoned or not (a runner that panicked leaves nothing half-written).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The order runners take a scrape's collectors in: the slowest of their last runs first
/// (longest processing time first: the runners end close together, and a lone scrape waits
/// for the slowest collector, not for the slowest plus whatever was queued behind it); ties,
/// and collectors never run, keep their configured order.
fn queue_order(entries: &[Entry]) -> Vec<usize> {
    // The durations are read once, before sorting: other scrapes' runs update them
    // concurrently, and a key that changes during the sort breaks its total order (the
    // standard sort panics on that: the soak test's concurrent scrapes hit it).
    let mut keyed: Vec<(std::cmp::Reverse<u64>, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                std::cmp::Reverse(e.slot.last_micros.load(Ordering::Relaxed)),
                i,
            )
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Runs `entries` on blocking threads ([`first_runners`], and up to [`RUNNERS`] when
/// collectors are slow: [`STAGGER`]) and waits for them until `budget` has passed. A collector already running for
/// another scrape is joined: this scrape waits for that run (within its own budget) and
/// reports its outcome. A collector that has not answered by the deadline is reported failed;
/// the others are served.
pub async fn run_collectors(
    entries: Vec<Entry>,
    paths: collector::Paths,
    budget: Duration,
) -> Vec<collector::Outcome> {
    let n = entries.len();
    let deadline = tokio::time::Instant::now() + budget;
    let order = queue_order(&entries);
    let scrape = Arc::new(Scrape {
        queue: entries,
        order,
        paths,
        next: AtomicUsize::new(0),
        remaining: AtomicUsize::new(n),
        reports: Mutex::new((0..n).map(|_| None).collect()),
        done: tokio::sync::Notify::new(),
        abandoned: AtomicBool::new(false),
    });
    let mut runners = 0;
    // No collector selected: nothing to wait for.
    while scrape.remaining.load(Ordering::Acquire) > 0 {
        let start = if runners == 0 { first_runners() } else { 1 };
        for k in 0..start {
            if runners < RUNNERS && scrape.queued() {
                // The second of a scrape's first runners goes to the dedicated thread when
                // it is free; every other runner is a blocking task.
                if k != 1 || !SecondRunner::offer(&scrape) {
                    let s = scrape.clone();
                    tokio::task::spawn_blocking(move || s.run());
                }
                runners += 1;
            }
        }
        let more = runners < RUNNERS;
        let wake = if more {
            deadline.min(tokio::time::Instant::now() + STAGGER)
        } else {
            deadline
        };
        if tokio::time::timeout_at(wake, scrape.done.notified())
            .await
            .is_ok()
            || tokio::time::Instant::now() >= deadline
        {
            break;
        }
    }
    scrape.abandoned.store(true, Ordering::Relaxed);
    let reports: Vec<Option<Report>> = std::mem::take(&mut *scrape.reports());
    let mut results: Vec<Option<collector::Outcome>> = Vec::with_capacity(n);
    let mut joined = Vec::new();
    for (i, report) in reports.into_iter().enumerate() {
        match report {
            Some(Report::Ran(o)) => results.push(Some(o)),
            Some(Report::Joined(rx)) => {
                joined.push((i, rx));
                results.push(None);
            }
            None => results.push(None),
        }
    }
    let queue = &scrape.queue;
    // The runs joined share this scrape's deadline: waiting for them one after the other
    // waits no longer than waiting for all at once.
    for (i, mut rx) in joined {
        let name = queue.get(i).map_or("unknown", |e| e.name);
        let outcome = match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => v.as_ref().map(|o| collector::Outcome {
                joined: true,
                ..(**o).clone()
            }),
            Ok(Err(_)) => Some(collector::Outcome::failed(
                name,
                "the run this scrape joined ended without a result",
                0.0,
            )),
            Err(_) => None,
        };
        if let Some(slot) = results.get_mut(i) {
            *slot = outcome;
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
                collector::Outcome::failed(
                    name,
                    &format!("deadline of {:.1}s exceeded", budget.as_secs_f64()),
                    budget.as_secs_f64(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::{CollectError, Paths};
    use crate::exposition::MetricFamily;
    use std::sync::atomic::AtomicU32;
    use std::sync::Condvar;

    /// A collector that counts its runs and blocks until the test opens its gate; its one
    /// sample is the number of the run that produced it.
    struct Gated {
        runs: AtomicU32,
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Gated {
        fn new() -> Arc<Gated> {
            Arc::new(Gated {
                runs: AtomicU32::new(0),
                open: Mutex::new(false),
                cv: Condvar::new(),
            })
        }
        fn set(&self, open: bool) {
            *self.open.lock().expect("lock") = open;
            self.cv.notify_all();
        }
        fn runs(&self) -> u32 {
            self.runs.load(Ordering::SeqCst)
        }
    }

    impl Collector for Gated {
        fn name(&self) -> &'static str {
            "gated"
        }
        fn collect(&self, _: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            let mut open = self.open.lock().expect("lock");
            while !*open {
                open = self.cv.wait(open).expect("wait");
            }
            Ok(vec![
                MetricFamily::gauge("gated_run", "run").with(&[], f64::from(run))
            ])
        }
    }

    struct Quick;
    impl Collector for Quick {
        fn name(&self) -> &'static str {
            "quick"
        }
        fn collect(&self, _: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
            Ok(vec![MetricFamily::gauge("quick", "q").with(&[], 1.0)])
        }
    }

    fn entries(g: &Arc<Gated>, slot: &Arc<RunSlot>) -> Vec<Entry> {
        vec![
            Entry::new("gated", g.clone(), slot.clone()),
            Entry::new("quick", Arc::new(Quick), Arc::new(RunSlot::default())),
        ]
    }

    fn value(o: &collector::Outcome) -> Option<f64> {
        o.families.first()?.samples.first().map(|s| s.value)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Waits (bounded by a generous liveness limit) until `cond` holds.
    fn wait(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("never happened: {what}");
    }

    #[test]
    fn concurrent_scrapes_join_one_run_and_get_its_samples() {
        let rt = runtime();
        let g = Gated::new();
        let slot = Arc::new(RunSlot::default());
        let budget = Duration::from_secs(60);
        let scrapes: Vec<_> = (0..8)
            .map(|_| rt.spawn(run_collectors(entries(&g, &slot), Paths::default(), budget)))
            .collect();
        // Every scrape has claimed or joined before the one run may finish.
        wait("the first run starts", || g.runs() == 1);
        wait("the other seven scrapes join it", || {
            slot.lock()
                .as_ref()
                .is_some_and(|tx| tx.receiver_count() == 7)
        });
        g.set(true);
        let mut joined = 0;
        for s in scrapes {
            let outcomes = rt.block_on(s).expect("scrape");
            assert_eq!(outcomes.len(), 2);
            for o in &outcomes {
                assert!(o.error.is_none(), "{}: {:?}", o.name, o.error);
            }
            assert_eq!(value(&outcomes[0]), Some(1.0), "the samples of run 1");
            joined += usize::from(outcomes[0].joined);
        }
        assert_eq!(joined, 7, "seven scrapes joined the first one's run");
        assert_eq!(g.runs(), 1, "eight scrapes, one run");
        assert!(slot.lock().is_none(), "the slot is free again");
        // The next scrape starts a run of its own.
        let o = rt.block_on(run_collectors(entries(&g, &slot), Paths::default(), budget));
        assert_eq!(value(&o[0]), Some(2.0));
        assert_eq!(g.runs(), 2);
    }

    #[test]
    fn a_hung_run_is_joined_not_repeated_and_each_scrape_keeps_its_deadline() {
        let rt = runtime();
        let g = Gated::new();
        let slot = Arc::new(RunSlot::default());
        let short = Duration::from_millis(200);
        for _ in 0..5 {
            let o = rt.block_on(run_collectors(entries(&g, &slot), Paths::default(), short));
            assert!(
                o[0].error.is_some(),
                "the hung collector is reported failed"
            );
            assert!(o[0].families.is_empty());
            assert!(o[1].error.is_none(), "the other collector is served");
            assert_eq!(value(&o[1]), Some(1.0));
        }
        assert_eq!(g.runs(), 1, "later scrapes joined the hung run");
        // A joiner waiting when the hung run returns gets its samples.
        let joiner = rt.spawn(run_collectors(
            entries(&g, &slot),
            Paths::default(),
            Duration::from_secs(60),
        ));
        wait("the scrape joins the hung run", || {
            slot.lock()
                .as_ref()
                .is_some_and(|tx| tx.receiver_count() == 1)
        });
        g.set(true);
        let o = rt.block_on(joiner).expect("scrape");
        assert!(o[0].error.is_none());
        assert_eq!(value(&o[0]), Some(1.0));
        assert_eq!(g.runs(), 1);
    }

    #[test]
    fn the_slowest_collectors_are_queued_first() {
        let slot = |micros: u64| {
            let s = Arc::new(RunSlot::default());
            s.last_micros.store(micros, Ordering::Relaxed);
            s
        };
        let es = vec![
            Entry::new("a", Arc::new(Quick), slot(10)),
            Entry::new("b", Arc::new(Quick), slot(900)),
            Entry::new("c", Arc::new(Quick), slot(0)),
            Entry::new("d", Arc::new(Quick), slot(300)),
            Entry::new("e", Arc::new(Quick), slot(0)),
        ];
        assert_eq!(queue_order(&es), [1, 3, 0, 2, 4]);
        // A run records its duration for the next scrape's order.
        let s = Arc::new(RunSlot::default());
        let Claim::Mine(guard) = s.claim() else {
            panic!("a free slot is claimed")
        };
        guard.publish(&collector::Outcome::failed("x", "test", 0.25));
        assert_eq!(s.last_micros.load(Ordering::Relaxed), 250_000);
    }

    /// A collector that waits until the other one of its pair has started too, and notes the
    /// thread it ran on: a scrape of a pair ends only when two runners run it at once.
    struct Meet {
        barrier: Arc<std::sync::Barrier>,
        threads: Arc<Mutex<Vec<String>>>,
    }
    impl Collector for Meet {
        fn name(&self) -> &'static str {
            "meet"
        }
        fn collect(&self, _: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
            self.barrier.wait();
            let name = std::thread::current().name().unwrap_or("").to_string();
            self.threads.lock().expect("lock").push(name);
            Ok(vec![])
        }
    }

    #[test]
    fn the_second_runner_is_the_dedicated_thread() {
        assert_eq!(
            first_runners(),
            2,
            "this test needs 2 CPUs or more (a scrape starts one runner on one CPU)"
        );
        let rt = runtime();
        let threads = Arc::new(Mutex::new(Vec::new()));
        // Other tests hold the thread at times (a gated collector that it took, for a
        // second): then the scrape starts a blocking task instead, and a later scrape offers
        // it again (bounded by a generous liveness limit, as `wait`).
        let mut attempts = 0;
        while !threads
            .lock()
            .expect("lock")
            .iter()
            .any(|t| t == "agent-runner")
        {
            attempts += 1;
            assert!(attempts <= 1000, "no scrape ran on agent-runner");
            if attempts > 1 {
                std::thread::sleep(Duration::from_millis(10));
            }
            threads.lock().expect("lock").clear();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let pair: Vec<Entry> = (0..2)
                .map(|_| {
                    let c = Meet {
                        barrier: barrier.clone(),
                        threads: threads.clone(),
                    };
                    Entry::new("meet", Arc::new(c), Arc::new(RunSlot::default()))
                })
                .collect();
            let out = rt.block_on(run_collectors(
                pair,
                Paths::default(),
                Duration::from_secs(60),
            ));
            assert!(out.iter().all(|o| o.error.is_none()), "both collectors ran");
            let seen = threads.lock().expect("lock").clone();
            assert_eq!(seen.len(), 2, "{seen:?}");
            if seen.iter().any(|t| t == "agent-runner") {
                // The other runner is a blocking task of the runtime, not the same thread.
                assert!(seen.iter().any(|t| t != "agent-runner"), "{seen:?}");
            }
        }
    }

    #[test]
    fn a_run_that_ends_without_result_frees_its_slot() {
        let slot = Arc::new(RunSlot::default());
        let Claim::Mine(guard) = slot.claim() else {
            panic!("a free slot is claimed")
        };
        let Claim::Joined(rx) = slot.claim() else {
            panic!("a running slot is joined")
        };
        drop(guard);
        assert!(slot.lock().is_none());
        assert!(rx.has_changed().is_err(), "the joiner sees the run end");
        assert!(matches!(slot.claim(), Claim::Mine(_)));
    }
}
