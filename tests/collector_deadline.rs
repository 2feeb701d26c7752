//! Per-collector deadlines with a collector source that blocks: `proc/loadavg` of a fixture
//! procfs is a FIFO nobody writes, so the `loadavg` collector blocks in `open(2)` until the
//! test writes to it. The agent runs as in production (root → `monitoring-agent`, sandbox
//! `enforce`) with `--collector.deadline 1`. The test shows that:
//! 1. the scrape returns; `loadavg` reports `node_scrape_collector_success 0` and no samples,
//!    while `stat` and `meminfo` are served;
//! 2. the following scrapes skip the still-running collector at once (its duration is reported
//!    as 0, the debug log says so) instead of piling runners up behind it: the agent's thread
//!    count does not grow by more than a small bound over five scrapes;
//! 3. once the source answers (the test writes a loadavg line into the FIFO and puts a regular
//!    file in its place), a later scrape reports `loadavg` successful again, with its values.
//!
//! A `statfs` that hangs (stale NFS/FUSE mount) is not simulated here: this host offers no FUSE
//! mount to the tests; the filesystem collector's own unit tests cover its stuck-mount logic.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

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

/// A procfs with real `stat` and `meminfo` (from the e2e fixture) and `loadavg` a FIFO.
fn blocking_procfs(dir: &TestDir) -> (std::path::PathBuf, std::path::PathBuf) {
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
    let fifo = proc_.join("loadavg");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .expect("mkfifo proc/loadavg");
    // mkfifo honours the umask: make sure the dropped agent may open it.
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o644)).expect("chmod fifo");
    (proc_, sys)
}

fn scrape(agent: &Agent) -> String {
    agent.scrape("/metrics")
}

#[test]
fn blocked_collector_misses_deadline_is_skipped_then_recovers() {
    let dir = TestDir::new();
    let (proc_, sys) = blocking_procfs(&dir);
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
        "loadavg blocked but reported successful:\n{body}"
    );
    assert!(
        !body.contains("\nnode_load1 ") && !body.contains("\nnode_load5 "),
        "the blocked collector's samples were served:\n{body}"
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

    // 2. Five more scrapes: each returns, each skips the still-running collector at once, and
    //    the runners do not pile up behind it.
    let before = threads(agent.pid());
    for i in 0..5 {
        let b = scrape(&agent);
        assert_eq!(
            ok(&b, "loadavg"),
            0.0,
            "scrape {i}: loadavg not failed:\n{b}"
        );
        assert_eq!(
            must_value(
                &b,
                "node_scrape_collector_duration_seconds",
                &[("collector", "loadavg")]
            ),
            0.0,
            "scrape {i}: the stuck collector was run again rather than skipped:\n{b}"
        );
        assert_eq!(ok(&b, "stat"), 1.0, "scrape {i}: stat not served:\n{b}");
    }
    let after = threads(agent.pid());
    eprintln!("agent threads: {before} after the first scrape, {after} after five more");
    // A pile-up would add one stuck runner per scrape (5); the blocking pool may start a
    // replacement for the one runner the stuck collector holds.
    assert!(
        after <= before + 2,
        "the agent's thread count grew from {before} to {after} over five scrapes: runners \
         pile up behind the stuck collector\n{}",
        agent.diagnostics()
    );
    agent.wait_log("still running since an earlier scrape");

    // 3. Unblock: move the FIFO aside, put a regular loadavg in its place, then write a line
    //    into the FIFO for the collector blocked in open(2).
    let aside = proc_.join("loadavg.fifo");
    fs::rename(proc_.join("loadavg"), &aside).expect("move the FIFO aside");
    write_file(&proc_.join("loadavg"), LOADAVG);
    let deadline = Instant::now() + WAIT;
    let mut w = loop {
        // Non-blocking: fails with ENXIO while no reader has it open.
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&aside)
        {
            Ok(f) => break f,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("no reader on the FIFO within {WAIT:?}: {e}"),
        }
    };
    w.write_all(LOADAVG.as_bytes())
        .expect("write into the FIFO");
    drop(w);

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
}
