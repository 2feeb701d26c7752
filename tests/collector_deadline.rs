//! Per-collector deadlines with a collector source that hangs like a file on a stale NFS or
//! dead FUSE mount: the test holds every `open(2)` of the fixture procfs' `loadavg` (a
//! regular file) with a fanotify permission event (`FAN_OPEN_PERM`) and answers none until
//! it lets the file go. The agent runs as in production (root → `monitoring-agent`, sandbox
//! `enforce`) with `--collector.deadline 1`. The test shows that:
//! 1. the scrape returns; `loadavg` reports `node_scrape_collector_success 0` and no samples,
//!    while `stat` and `meminfo` are served;
//! 2. the following scrapes join the hung run rather than start another: the file sees no new
//!    `open` (the fanotify group counts every one), each scrape times out at its own deadline,
//!    and the agent's thread count does not grow by more than a small bound over five scrapes;
//! 3. once the source answers, a later scrape reports `loadavg` successful again, with its
//!    values, from a new run.
//!
//! (A FIFO can no longer stand in for a hung file: the collectors open without blocking and
//! refuse anything but regular files; tests/fault_injection.rs checks that.)

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
};

use common::{must_value, value, Agent, Start, TestDir, WAIT};

const LOADAVG: &str = "0.21 0.35 0.45 1/300 1234\n";

fn threads(pid: u32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: line")
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A procfs with real `stat` and `meminfo` (from the e2e fixture) and a `loadavg`.
fn procfs(dir: &TestDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e/proc");
    let root = dir.path().join("tree");
    let proc_ = root.join("proc");
    let sys = root.join("sys");
    for d in [&root, &proc_, &sys] {
        fs::create_dir_all(d).expect("mkdir");
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for f in ["stat", "meminfo"] {
        let text = fs::read_to_string(src.join(f)).expect("fixture file");
        write_file(&proc_.join(f), &text);
    }
    write_file(&proc_.join("loadavg"), LOADAVG);
    (proc_, sys)
}

/// Holds every `open(2)` of one file (fanotify `FAN_OPEN_PERM`) until released, counting them.
struct Gate {
    opens: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Gate {
    fn hold(path: &Path) -> Gate {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY,
        )
        .expect(
            "fanotify_init(FAN_CLASS_CONTENT): needs root and CONFIG_FANOTIFY_ACCESS_PERMISSIONS",
        );
        fan.mark(
            MarkFlags::FAN_MARK_ADD,
            MaskFlags::FAN_OPEN_PERM,
            nix::fcntl::AT_FDCWD,
            Some(path),
        )
        .unwrap_or_else(|e| panic!("fanotify_mark {}: {e}", path.display()));
        let opens = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, r, s) = (opens.clone(), released.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            let allow = |e: &nix::sys::fanotify::FanotifyEvent| {
                if let Some(fd) = e.fd() {
                    let _ = fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW));
                }
            };
            while !s.load(Ordering::SeqCst) {
                match fan.read_events() {
                    Ok(events) => {
                        for e in events {
                            o.fetch_add(1, Ordering::SeqCst);
                            held.push(e);
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => thread::sleep(Duration::from_millis(10)),
                    Err(e) => panic!("fanotify read: {e}"),
                }
                if r.load(Ordering::SeqCst) {
                    for e in held.drain(..) {
                        allow(&e);
                    }
                }
            }
            for e in held.drain(..) {
                allow(&e);
            }
        });
        Gate {
            opens,
            released,
            stop,
            thread: Some(thread),
        }
    }
    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn scrape(agent: &Agent) -> String {
    agent.scrape("/metrics")
}

#[test]
fn hung_collector_misses_deadline_is_joined_not_rerun_then_recovers() {
    let dir = TestDir::new();
    let (proc_, sys) = procfs(&dir);
    let gate = Gate::hold(&proc_.join("loadavg"));
    let agent = Start::new(&dir)
        .args([
            "--sandbox",
            "enforce",
            "--log.level",
            "debug",
            "--collector.deadline",
            "1",
            "--collector.disable-defaults",
            "--collector.loadavg",
            "--collector.stat",
            "--collector.meminfo",
            "--path.procfs",
        ])
        .arg(proc_.display().to_string())
        .arg("--path.sysfs")
        .arg(sys.display().to_string())
        .spawn();

    // 1. The first scrape returns (bounded by the HTTP client's timeout), without loadavg.
    let body = scrape(&agent);
    let ok = |b: &str, c: &str| must_value(b, "node_scrape_collector_success", &[("collector", c)]);
    assert_eq!(
        ok(&body, "loadavg"),
        0.0,
        "loadavg hung but reported successful:\n{body}"
    );
    assert!(
        !body.contains("\nnode_load1 ") && !body.contains("\nnode_load5 "),
        "the hung collector's samples were served:\n{body}"
    );
    assert_eq!(ok(&body, "stat"), 1.0, "stat not served:\n{body}");
    assert_eq!(ok(&body, "meminfo"), 1.0, "meminfo not served:\n{body}");
    assert!(
        value(&body, "node_boot_time_seconds", &[]).is_some(),
        "{body}"
    );
    assert!(
        value(&body, "node_memory_MemTotal_bytes", &[]).is_some(),
        "{body}"
    );
    agent.wait_log("collector loadavg missed its deadline");
    assert_eq!(gate.opens(), 1, "one run, hung in open(2)");

    // 2. Five more scrapes: each returns at its own deadline, each joins the hung run (no
    //    new open of the file), and the runners do not pile up behind it.
    let before = threads(agent.pid());
    for i in 0..5 {
        let b = scrape(&agent);
        assert_eq!(
            ok(&b, "loadavg"),
            0.0,
            "scrape {i}: loadavg not failed:\n{b}"
        );
        assert_eq!(ok(&b, "stat"), 1.0, "scrape {i}: stat not served:\n{b}");
    }
    assert_eq!(
        gate.opens(),
        1,
        "later scrapes started new runs of the hung collector instead of joining it\n{}",
        agent.diagnostics()
    );
    let joined = must_value(
        &scrape(&agent),
        "monitoring_agent_collector_runs_joined_total",
        &[],
    );
    assert_eq!(
        joined, 0.0,
        "a joined run that timed out is no joined result"
    );
    let after = threads(agent.pid());
    eprintln!("agent threads: {before} after the first scrape, {after} after six more");
    // A pile-up would add one stuck runner per scrape; the blocking pool may start a
    // replacement for the one runner the hung collector holds.
    assert!(
        after <= before + 2,
        "the agent's thread count grew from {before} to {after} over six scrapes: runners \
         pile up behind the hung collector\n{}",
        agent.diagnostics()
    );
    assert!(
        !agent.log().contains("still running since"),
        "no scrape is told a collector failed merely because another scrape runs it"
    );

    // 3. Let the file answer: the hung run returns; a later scrape runs loadavg afresh.
    gate.release();
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let b = scrape(&agent);
        if ok(&b, "loadavg") == 1.0 {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "loadavg still failing {WAIT:?} after its source answered:\n{b}\n{}",
            agent.diagnostics()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(must_value(&body, "node_load1", &[]), 0.21, "{body}");
    assert_eq!(must_value(&body, "node_load15", &[]), 0.45, "{body}");
    assert_eq!(ok(&body, "stat"), 1.0, "{body}");
    // That scrape may have joined the hung run as it returned; with the collector idle, the
    // next scrape starts a run of its own.
    let opened = gate.opens();
    let body = scrape(&agent);
    assert_eq!(ok(&body, "loadavg"), 1.0, "{body}");
    assert_eq!(
        gate.opens(),
        opened + 1,
        "a new run once the hung one returned"
    );
}
