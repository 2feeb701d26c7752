//! The log file under rotation and on a full disk (issue 11, "Operations"), on the real binary
//! under its full sandbox:
//!
//! * copy-and-truncate rotation (logrotate's `copytruncate`, the only rotation the sandboxed
//!   agent allows): no hole of NULs, every line whole, nothing lost between the copy and the
//!   new file, lines continue after it; also while the agent logs as fast as it can;
//! * a full file system under the log file: the agent keeps serving and reloading, counts the
//!   lines it could not write (`monitoring_agent_log_write_errors_total`), and says in the
//!   file how many it lost once there is room again.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

/// `monitoring-agent --reload --pid-file FILE`; asserts exit 0.
fn reload_ok(pid_file: &Path) {
    let out = run(&[
        "--reload".into(),
        "--pid-file".into(),
        pid_file.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "--reload: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reload numbers of the "configuration reloaded (reload N)" lines, in file order.
fn reload_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split("configuration reloaded (reload ").nth(1))
        .filter_map(|r| r.split(')').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Every line is whole: a timestamp, a level, a message; no NUL anywhere. A line a full disk
/// cut short (part of it written) is ended with the agent's mark when the disk takes lines
/// again, and is the only exception.
fn assert_whole(text: &str, what: &str) {
    assert!(!text.contains('\0'), "{what} has NUL bytes:\n{text:?}");
    let mark = monitoring_agent::daemon::logging::CUT_MARK.trim_end_matches('\n');
    for l in text.lines().filter(|l| !l.ends_with(mark)) {
        let mut f = l.splitn(3, ' ');
        let (Some(ts), Some(_level)) = (f.next(), f.next()) else {
            panic!("{what}: a broken line {l:?}");
        };
        assert!(
            ts.len() == 24 && ts.starts_with("20") && ts.ends_with('Z'),
            "{what}: a line that does not start with a timestamp: {l:?}"
        );
    }
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{what}: a cut last line"
    );
}

/// logrotate's `copytruncate`: copy the file, then truncate it in place.
fn copytruncate(log: &Path, copy: &Path) {
    fs::copy(log, copy).expect("copy the log");
    fs::OpenOptions::new()
        .write(true)
        .open(log)
        .and_then(|f| f.set_len(0))
        .expect("truncate the log");
}

#[test]
fn copytruncate_rotation_loses_nothing_and_leaves_no_holes() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/metrics\"\n");
    let cfg_arg = cfg.display().to_string();
    let agent = Start::new(&dir).args(["-c", &cfg_arg]).spawn();
    let (log, pid_file) = (dir.log_file(), dir.pid_file());

    // Between reloads (each --reload returns once its line is written): the copy has
    // exactly the lines before, the file exactly the lines after.
    for _ in 0..5 {
        reload_ok(&pid_file);
    }
    let copy = dir.path().join("agent.log.1");
    copytruncate(&log, &copy);
    for _ in 0..5 {
        reload_ok(&pid_file);
    }
    let (old, new) = (
        fs::read_to_string(&copy).expect("copy"),
        fs::read_to_string(&log).expect("log"),
    );
    assert_whole(&old, "the copy");
    assert_whole(&new, "the truncated file");
    assert_eq!(reload_numbers(&old), [1, 2, 3, 4, 5], "{old}");
    assert_eq!(reload_numbers(&new), [6, 7, 8, 9, 10], "{new}");
    assert!(
        fs::metadata(&log).expect("meta").len() == new.len() as u64,
        "the file is exactly its lines (no hole before them)"
    );

    // While the agent logs as fast as SIGHUPs come: every rotated piece is whole, has no
    // NUL, and its reload numbers only grow, continuing after the previous piece's.
    let stop = Arc::new(AtomicBool::new(false));
    let hup = {
        let stop = stop.clone();
        let pid = agent.pid();
        std::thread::spawn(move || {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                signal(pid, nix::sys::signal::Signal::SIGHUP);
                sent += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            sent
        })
    };
    // The file still holds reloads 6 to 10: the first piece starts with them.
    let mut last = 5u64;
    let mut rotated_lines = 0usize;
    for i in 0..20 {
        wait_until(
            || format!("new lines in the log\n{}", agent.diagnostics()),
            || fs::metadata(&log).map(|m| m.len() > 0).unwrap_or(false),
        );
        let piece = dir.path().join(format!("agent.log.r{i}"));
        copytruncate(&log, &piece);
        let text = fs::read_to_string(&piece).expect("piece");
        assert_whole(&text, &format!("rotated piece {i}"));
        let numbers = reload_numbers(&text);
        for n in &numbers {
            assert!(*n > last, "piece {i}: reload {n} after {last}:\n{text}");
            last = *n;
        }
        rotated_lines += text.lines().count();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = hup.join().expect("SIGHUP thread");
    assert!(sent > 0 && rotated_lines > 0);
    reload_ok(&pid_file);
    let rest = fs::read_to_string(&log).expect("log");
    assert_whole(&rest, "the file after the last rotation");
    let numbers = reload_numbers(&rest);
    assert!(
        numbers.last().is_some_and(|n| *n > last),
        "lines continue after the rotations:\n{rest}"
    );
    assert_eq!(agent.get("/metrics").status, 200);
}

/// The agent in a mount namespace of its own where the log directory is a tiny tmpfs; killed
/// on drop.
struct Isolated(Child);

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sh -c SCRIPT` in the agent's mount namespace; returns its stdout.
fn in_agent_ns(pid: u32, script: &str) -> String {
    let out = Command::new(find_program("nsenter").expect("nsenter (util-linux)"))
        .args(["-t", &pid.to_string(), "-m", "sh", "-c", script])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_full_disk_is_counted_and_the_agent_keeps_serving() {
    let dir = TestDir::new();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).expect("mkdir logs");
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/metrics\"\n");
    let port = free_port();
    let pid_file = dir.pid_file();
    let child = Command::new(find_program("unshare").expect("unshare (util-linux)"))
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs -o size=64k,mode=0755 agentlogs "$1" && exec "$2" --web.listen-address "127.0.0.1:$3" --pid-file "$4" --log-file "$1/agent.log" -c "$5""#,
        )
        .arg("sh")
        .arg(&logs)
        .arg(BIN)
        .arg(port.to_string())
        .arg(&pid_file)
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent in its namespace");
    let agent = Isolated(child);
    let pid = agent.0.id();
    wait_until(
        || format!("the agent on port {port}"),
        || accepts(loopback(port)),
    );
    let scrape = || {
        let r = http(loopback(port), "GET", "/metrics", &[]).expect("scrape");
        assert_eq!(r.status, 200, "{r:?}");
        r.text()
    };
    let errors = |body: &str| {
        must_value(
            body,
            "monitoring_agent_log_write_errors_total",
            &[("destination", "file")],
        )
    };
    assert_eq!(errors(&scrape()), 0.0);

    // Fill the file system (dd stops at ENOSPC).
    let log_path = logs.join("agent.log");
    in_agent_ns(
        pid,
        &format!(
            "dd if=/dev/zero of={}/fill bs=4k 2>/dev/null; sync",
            logs.display()
        ),
    );
    // The log's last page may still take a few lines: reload until three have failed.
    let mut body = scrape();
    for _ in 0..200 {
        if errors(&body) >= 3.0 {
            break;
        }
        reload_ok(&pid_file);
        body = scrape();
    }
    assert!(
        errors(&body) >= 3.0,
        "200 reloads on a full disk and fewer than 3 write errors counted:\n{body}"
    );

    // Room again: the next line says how many were lost, then logging goes on.
    in_agent_ns(pid, &format!("rm -f {}/fill", logs.display()));
    reload_ok(&pid_file);
    let text = in_agent_ns(pid, &format!("cat {}", log_path.display()));
    assert_whole(&text, "the log after the full disk");
    let lost_line = text
        .lines()
        .find(|l| l.contains("log lines could not be written to this file"))
        .unwrap_or_else(|| panic!("no line about the lost lines:\n{text}"));
    let lost: f64 = lost_line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(lost >= 3.0, "{lost_line}");
    assert!(
        reload_numbers(&text).last().is_some_and(|n| *n >= 4),
        "logging goes on:\n{text}"
    );
    assert_eq!(
        errors(&scrape()),
        errors(&body),
        "no new error once there is room"
    );
}

/// `--log.format` (node_exporter's promslog formats) shapes every line of the log file: logfmt
/// `time=... level=... msg=...`, JSON objects with `time`, `level` and `msg`.
#[test]
fn log_format_logfmt_and_json() {
    for (format, check) in [
        (
            "logfmt",
            (|l: &str| l.starts_with("time=") && l.contains(" level=") && l.contains(" msg="))
                as fn(&str) -> bool,
        ),
        ("json", |l: &str| {
            l.starts_with("{\"time\":\"") && l.contains(",\"level\":\"") && l.ends_with("\"}")
        }),
    ] {
        let dir = TestDir::new();
        let agent = Start::new(&dir)
            .arg(format!("--log.format={format}"))
            .spawn();
        let _ = agent.scrape("/metrics");
        drop(agent);
        let log = dir.log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("starting")),
            "{format}: no start-up line in {log}"
        );
        for l in &lines {
            assert!(check(l), "{format}: line not in the format: {l:?}");
        }
    }
}
