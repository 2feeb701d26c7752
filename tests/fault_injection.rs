//! Fault injection on fixture trees given through `--path.procfs`, `--path.sysfs`,
//! `--path.rootfs` and the textfile directory, against the real binary as in production (root,
//! then the `monitoring-agent` user, sandbox `enforce`). Faults: files that vanish between
//! listing and reading, EACCES (root-owned files mode 000: the dropped agent cannot read
//! them), FIFOs and sockets in `/sys` and in the textfile directory, a 1 GiB textfile file
//! and 100,000 textfile files (the size and sample caps), symlink loops, and a `/proc` file
//! that grows while it is read (a writer thread appends to it during the scrapes, past the
//! per-file read cap).
//!
//! Every case: each scrape is served (200), the collectors whose inputs are not touched
//! report what they reported on the clean tree, no collector ever misses its deadline (a
//! FIFO opened blocking would hang its collector until the deadline: `--collector.deadline`
//! is set high so that would show as a "missed its deadline" line, never as a fast failure),
//! and the agent stays alive with bounded memory.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::{alive, collector_success, copy_tree, must_value, value, Agent, Start, TestDir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e")
}

/// Starts the agent, default collectors, on `tree` (a copy of the e2e fixture tree).
fn start(dir: &TestDir, tree: &Path, extra: &[&str]) -> Agent {
    let arg = |p: &str| tree.join(p).display().to_string();
    Start::new(dir)
        .args([
            "--sandbox",
            "enforce",
            "--log.level",
            "debug",
            // A collector blocked by a FIFO would sit out this whole deadline and be logged
            // as missing it; every fault here must fail (or be skipped) at once instead.
            "--collector.deadline",
            "60",
        ])
        .args(["--path.procfs".to_string(), arg("proc")])
        .args(["--path.sysfs".to_string(), arg("sys")])
        .args(["--path.rootfs".to_string(), arg("rootfs")])
        .args(["--path.udev.data".to_string(), arg("udev/data")])
        .args([
            "--collector.textfile.directory".to_string(),
            arg("textfile"),
        ])
        .args(extra.iter().map(|s| s.to_string()))
        .spawn()
}

fn peak_rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod fifo");
}

/// A bound unix socket at `path` (kept open by the returned listener).
fn socket(path: &Path) -> std::os::unix::net::UnixListener {
    let _ = fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)
        .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).expect("chmod socket");
    l
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// The first regular file in `dir` (symlinks followed), by name.
fn first_file(dir: &Path) -> PathBuf {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no file in {}", dir.display()))
}

fn skipped(body: &str, reason: &str) -> f64 {
    value(body, "node_textfile_skipped_files", &[("reason", reason)]).unwrap_or(0.0)
}

#[test]
fn faulty_trees_never_block_a_scrape_nor_touch_other_collectors() {
    let dir = TestDir::new();
    let tree = dir.path().join("tree");
    copy_tree(&fixture(), &tree);
    let agent = start(&dir, &tree, &[]);
    let clean = collector_success(&agent.scrape("/metrics"));
    assert_eq!(clean.get("textfile"), Some(&1.0), "{clean:?}");
    assert_eq!(clean.get("loadavg"), Some(&1.0), "{clean:?}");
    assert_eq!(clean.get("vmstat"), Some(&1.0), "{clean:?}");

    // The textfile directory: a good file, and one of each fault.
    let tf = tree.join("textfile");
    write(&tf.join("zz_good.prom"), "fault_injection_good 1\n");
    mkfifo(&tf.join("fifo.prom"));
    let _tf_sock = socket(&tf.join("sock.prom"));
    fs::File::create(tf.join("big.prom"))
        .and_then(|f| f.set_len(1 << 30))
        .expect("a sparse 1 GiB file");
    std::os::unix::fs::symlink("loop.prom", tf.join("loop.prom")).expect("symlink loop");
    write(&tf.join("secret.prom"), "secret 1\n");
    fs::set_permissions(tf.join("secret.prom"), fs::Permissions::from_mode(0o000))
        .expect("chmod 000");

    // /sys: a FIFO, a socket and symlink loops where collectors read.
    let sys = tree.join("sys");
    mkfifo(&sys.join("class/thermal/cooling_device0/cur_state"));
    let watchdog_file = first_file(&sys.join("class/watchdog/watchdog0"));
    let _sys_sock = socket(&watchdog_file);
    std::os::unix::fs::symlink("hwmon9", sys.join("class/hwmon/hwmon9")).expect("symlink loop");
    std::os::unix::fs::symlink("loop0", sys.join("class/net/loop0")).expect("symlink loop");
    std::os::unix::fs::symlink("nvme9", sys.join("class/nvme/nvme9")).expect("symlink loop");

    // /proc: a root-owned file the dropped agent may not read.
    let proc_ = tree.join("proc");
    fs::set_permissions(proc_.join("loadavg"), fs::Permissions::from_mode(0o000))
        .expect("chmod 000");

    // While the scrapes run: textfile files appear and vanish, and /proc/vmstat grows (a
    // writer appends valid lines until the file is past the agent's per-file read cap).
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, tf) = (stop.clone(), tf.clone());
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = tf.join(format!("churn{}.prom", i % 50));
                let _ = fs::write(&p, format!("churn{{n=\"{i}\"}} 1\n"));
                let _ = fs::remove_file(tf.join(format!("churn{}.prom", (i + 25) % 50)));
                i += 1;
            }
        })
    };
    let vmstat = proc_.join("vmstat");
    let grower = {
        let (stop, vmstat) = (stop.clone(), vmstat.clone());
        thread::spawn(move || {
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(&vmstat)
                .expect("open vmstat");
            let chunk = "fault_injection_growing 1\n".repeat(40_000);
            while !stop.load(Ordering::SeqCst) && f.metadata().expect("stat").len() < (48 << 20) {
                f.write_all(chunk.as_bytes()).expect("append");
            }
        })
    };

    // Collectors whose inputs the faults touch; every other one must answer as on the clean
    // tree.
    let touched = [
        "textfile",
        "thermal_zone",
        "watchdog",
        "hwmon",
        "netclass",
        "nvme",
        "loadavg",
        "vmstat",
    ];
    let mut last = String::new();
    for i in 0..12 {
        let body = agent.scrape("/metrics");
        let seen = collector_success(&body);
        let untouched = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            m.iter()
                .filter(|(k, _)| !touched.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        assert_eq!(
            untouched(&seen),
            untouched(&clean),
            "scrape {i}: collectors the faults do not touch changed\n{}",
            agent.diagnostics()
        );
        assert_eq!(
            seen.get("loadavg"),
            Some(&0.0),
            "EACCES fails loadavg: {body}"
        );
        // The textfile collector keeps its good files and says why the others were skipped.
        assert_eq!(seen.get("textfile"), Some(&1.0), "{body}");
        assert_eq!(must_value(&body, "fault_injection_good", &[]), 1.0);
        assert_eq!(must_value(&body, "node_textfile_scrape_error", &[]), 1.0);
        assert_eq!(
            skipped(&body, "not_regular"),
            2.0,
            "FIFO and socket: {body}"
        );
        assert_eq!(skipped(&body, "file_size_limit"), 1.0, "1 GiB: {body}");
        assert!(
            skipped(&body, "unreadable") >= 2.0,
            "loop and EACCES (and vanished churn files): {body}"
        );
        assert!(body.contains("\nsecret") || !body.contains("\nsecret 1"));
        last = body;
    }
    stop.store(true, Ordering::SeqCst);
    churn.join().expect("churn thread");
    grower.join().expect("grower thread");
    // The grown /proc file is past the cap now: vmstat fails, at once, and says why.
    let body = agent.scrape("/metrics");
    let seen = collector_success(&body);
    assert_eq!(
        seen.get("vmstat"),
        Some(&0.0),
        "vmstat past the read cap: {last}"
    );
    agent.wait_log("larger than 33554432 bytes");
    assert_eq!(seen.get("stat"), clean.get("stat"));

    let log = agent.log();
    assert!(
        !log.contains("missed its deadline"),
        "a collector blocked on a fault:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(alive(agent.pid()), "{}", agent.diagnostics());
    let peak = peak_rss_kib(agent.pid());
    eprintln!("agent peak RSS: {peak} KiB");
    assert!(
        peak < 256 * 1024,
        "peak RSS {peak} KiB: a file was read past the caps"
    );
}

#[test]
fn a_hundred_thousand_textfiles_stop_at_the_sample_cap() {
    let dir = TestDir::new();
    let tree = dir.path().join("tree");
    copy_tree(&fixture(), &tree);
    let tf = tree.join("textfile");
    for e in fs::read_dir(&tf).expect("read_dir") {
        fs::remove_file(e.expect("entry").path()).expect("empty the directory");
    }
    // 100,000 files of two samples each: 200,000 samples against a cap of 20,000 (the default
    // cap, 100,000, would take 50,000 files, too slow for a debug build within the test
    // client's timeout; the unit tests check the default).
    for i in 0..100_000u32 {
        fs::write(
            tf.join(format!("f{i:06}.prom")),
            format!(
                "# HELP many_a a\nmany_a{{i=\"{i}\"}} 1\n# HELP many_b b\nmany_b{{i=\"{i}\"}} 2\n"
            ),
        )
        .expect("write");
    }
    let agent = start(
        &dir,
        &tree,
        &[
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.stat",
            "--collector.textfile.max-samples",
            "20000",
        ],
    );
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "textfile")]
        ),
        1.0
    );
    assert_eq!(must_value(&body, "node_textfile_scrape_error", &[]), 1.0);
    assert_eq!(
        skipped(&body, "sample_limit"),
        90_000.0,
        "the files past the cap skipped"
    );
    let kept = body.lines().filter(|l| l.starts_with("many_a{")).count();
    assert_eq!(kept, 10_000, "the files before the cap are kept");
    assert!(value(&body, "many_a", &[("i", "9999")]).is_some());
    assert!(value(&body, "many_a", &[("i", "10000")]).is_none());
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "stat")]
        ),
        1.0
    );
    // A lower cap from the command line.
    drop(agent);
    let agent = start(
        &dir,
        &tree,
        &[
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.textfile.max-samples",
            "10",
        ],
    );
    let body = agent.scrape("/metrics");
    assert_eq!(
        skipped(&body, "sample_limit"),
        99_995.0,
        "{}",
        agent.diagnostics()
    );
    assert!(!agent.log().contains("missed its deadline"));
    assert!(alive(agent.pid()));
}
