//! SIGHUP reloads, on the real binary under its full sandbox: a reload replaces the reloadable
//! settings as a whole and never a start-up one (config.rs: `StartupSettings`), a configuration
//! replaced by rename stays reloadable where it has a directory of its own, and a change to
//! the connection cap takes effect for connections already open.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// Writes `text` to a new file beside `path` and renames it over `path`, as editors and
/// configuration management do (a new inode).
fn replace_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).expect("write new config");
    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    fs::rename(&tmp, path).expect("rename over the config");
}

/// Sends SIGHUP and waits for the `n`th outcome line ("reloaded" or "not reloaded").
fn reload(agent: &Agent, n: usize) -> String {
    agent.signal(Signal::SIGHUP);
    let mut log = String::new();
    wait_until(
        || format!("reload #{n} in the log\n{}", agent.diagnostics()),
        || {
            log = agent.log();
            log.matches("SIGHUP: configuration").count() >= n
        },
    );
    log
}

fn start_with_config(dir: &TestDir, config: &Path) -> Agent {
    let cfg = config.display().to_string();
    Start::new(dir).args(["-c", &cfg]).spawn()
}

#[test]
fn config_replaced_by_rename_is_reloaded() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/first\"\n");
    let agent = start_with_config(&dir, &cfg);
    assert_eq!(agent.get("/first").status, 200);
    assert!(
        !agent.log().contains("shared directory"),
        "no warning for a config in a directory of its own:\n{}",
        agent.log()
    );

    replace_by_rename(&cfg, "[web]\ntelemetry_path = \"/second\"\n");
    let log = reload(&agent, 1);
    assert!(
        log.contains("SIGHUP: configuration reloaded"),
        "the renamed-over file was read:\n{log}"
    );
    assert_eq!(
        agent.get("/second").status,
        200,
        "the new value is in effect"
    );
    assert_eq!(agent.get("/first").status, 404);

    // Again: the directory, not the first inode, is what the sandbox grants.
    replace_by_rename(&cfg, "[web]\ntelemetry_path = \"/third\"\n");
    reload(&agent, 2);
    assert_eq!(agent.get("/third").status, 200);
}

#[test]
fn config_in_a_shared_directory_warns_and_explains_the_failed_reload() {
    let dir = TestDir::new();
    // /tmp is shared (world-writable, sticky): the sandbox grants the file alone.
    let shared = tempfile::Builder::new()
        .prefix("monitoring-agent-shared-")
        .suffix(".toml")
        .tempfile_in("/tmp")
        .expect("temp config in /tmp");
    let cfg = shared.path().to_path_buf();
    write_in_place(&cfg, "[web]\ntelemetry_path = \"/first\"\n");

    let check = run(&[
        "--check-config".into(),
        "-c".into(),
        cfg.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("shared directory /tmp"),
        "--check-config says it: {err}"
    );

    let agent = start_with_config(&dir, &cfg);
    let log = agent.wait_log("shared directory /tmp");
    assert!(log.contains("WARN"), "{log}");

    replace_by_rename(&cfg, "[web]\ntelemetry_path = \"/second\"\n");
    let log = reload(&agent, 1);
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: configuration not reloaded"))
        .unwrap_or_else(|| panic!("the reload failed visibly:\n{log}"));
    assert!(
        line.contains("replaced since start-up")
            && line.contains("shared directory /tmp")
            && line.contains("restart"),
        "the error names the cause: {line}"
    );
    assert_eq!(agent.get("/first").status, 200, "the old settings stay");
    let body = agent.scrape("/first");
    assert!(body.contains("monitoring_agent_config_reload_failures_total 1"));
    assert!(body.contains("monitoring_agent_config_last_reload_successful 0"));
}

#[test]
fn textfile_directory_change_waits_for_a_restart() {
    let dir = TestDir::new();
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    for d in [first.path(), second.path()] {
        fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    }
    fs::write(first.path().join("a.prom"), "from_first 1\n").expect("prom");
    fs::write(second.path().join("b.prom"), "from_second 2\n").expect("prom");
    let cfg = dir.write_config(&format!(
        "[collector.textfile]\ndirectory = \"{}\"\n",
        first.path().display()
    ));
    let agent = start_with_config(&dir, &cfg);
    let before = agent.scrape("/metrics");
    assert!(before.contains("from_first 1"), "{before}");
    assert!(before.contains("node_textfile_scrape_error 0"));

    dir.write_config(&format!(
        "[collector.textfile]\ndirectory = \"{}\"\n",
        second.path().display()
    ));
    let log = reload(&agent, 1);
    assert!(
        log.contains(
            "SIGHUP: the change to collector.textfile.directory takes effect only after a restart"
        ),
        "{log}"
    );
    let after = agent.scrape("/metrics");
    assert!(
        after.contains("from_first 1"),
        "the collector still reads the first directory"
    );
    assert!(!after.contains("from_second"), "{after}");
    assert!(
        after.contains("node_textfile_scrape_error 0"),
        "the textfile collector works exactly as before:\n{after}"
    );
}

#[test]
fn collectors_are_enabled_and_disabled_at_reload() {
    let dir = TestDir::new();
    let success = |c: &str| format!("node_scrape_collector_success{{collector=\"{c}\"}} 1");
    let cfg = dir.write_config("[collectors]\ndisable = [\"loadavg\"]\n");
    let agent = start_with_config(&dir, &cfg);
    let body = agent.scrape("/metrics");
    assert!(!body.contains(&success("loadavg")), "loadavg disabled");
    assert!(!body.contains("node_load1 "));

    dir.write_config("[collectors]\nenable = [\"buddyinfo\"]\n");
    reload(&agent, 1);
    let body = agent.scrape("/metrics");
    assert!(
        body.contains(&success("loadavg")),
        "loadavg enabled at reload"
    );
    assert!(body.contains("node_load1 "));
    assert!(
        body.contains("node_scrape_collector_success{collector=\"buddyinfo\"}"),
        "an off-by-default collector enabled at reload"
    );

    dir.write_config("[collectors]\ndisable = [\"loadavg\"]\n");
    reload(&agent, 2);
    let body = agent.scrape("/metrics");
    assert!(!body.contains(&success("loadavg")), "disabled again");
    assert!(!body.contains("node_scrape_collector_success{collector=\"buddyinfo\"}"));
}

/// Opens a connection that sends nothing (it holds one of the agent's connection slots until
/// the header-read timeout).
fn idle(agent: &Agent) -> TcpStream {
    TcpStream::connect(agent.addr()).expect("connect")
}

/// Whether a request on a fresh connection is answered within `wait`. Used only in the
/// direction that cannot fail spuriously: "not answered while the cap is full".
fn answered_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 12];
    matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

#[test]
fn shrinking_max_connections_applies_to_open_connections() {
    let dir = TestDir::new();
    // Long header timeout: the idle connections stay until the test closes them.
    let cfg = dir.write_config("[web]\nmax_connections = 4\nheader_read_timeout_seconds = 120\n");
    let agent = start_with_config(&dir, &cfg);
    let mut held: Vec<TcpStream> = (0..3).map(|_| idle(&agent)).collect();
    // All three are accepted: a scrape on a fourth connection still fits under 4.
    assert_eq!(agent.get("/metrics").status, 200);

    dir.write_config("[web]\nmax_connections = 2\nheader_read_timeout_seconds = 120\n");
    reload(&agent, 1);
    // Three open, cap two: closing one leaves two open, which is the cap: a new connection
    // must wait (a semaphore that could only forget its one free permit would let it in).
    drop(held.pop());
    let mut waiting = TcpStream::connect(agent.addr()).expect("connect");
    waiting
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    assert!(
        !answered_within(&mut waiting, Duration::from_secs(2)),
        "a connection beyond the lowered cap was served"
    );
    // One more closes: the waiting connection gets its slot and its answer.
    drop(held.pop());
    assert!(
        answered_within(&mut waiting, WAIT),
        "the waiting connection was never served\n{}",
        agent.diagnostics()
    );
    drop(held);
    let mut agent = agent;
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit().code(), Some(0));
}

/// `monitoring-agent --reload ARGS`, run to completion: (exit status, stdout, stderr).
fn reload_command(args: &[&str]) -> (i32, String, String) {
    let mut v = vec!["--reload".to_string()];
    v.extend(args.iter().map(|a| a.to_string()));
    let out = run(&v);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--reload` (the unit's `ExecReload=`) tells the truth: 0 and the reload's line when the
/// configuration was reloaded; 1 and the reason when it was not (the agent keeps serving with
/// the previous one); 2 and "no running instance" when there is none to ask (no PID file, or
/// a stale one).
#[test]
fn reload_command_reports_the_outcome() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/first\"\n");
    let agent = start_with_config(&dir, &cfg);
    let pid_file = dir.pid_file().display().to_string();

    write_in_place(&cfg, "[web]\ntelemetry_path = \"/second\"\n");
    let (code, out, err) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("reload 1: configuration reloaded; listening on 127.0.0.1:")
            && out.contains("metrics at /second"),
        "{out}"
    );
    assert_eq!(agent.get("/second").status, 200);

    write_in_place(
        &cfg,
        "[web]\ntelemetry_path = \"/third\"\nno_such_setting = 1\n",
    );
    let (code, out, err) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(
        code, 1,
        "a failed reload exits 1\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains(
            "reload 2 failed: configuration not reloaded, the running one stays in force:"
        ) && err.contains("no_such_setting"),
        "{err}"
    );
    assert_eq!(
        agent.get("/second").status,
        200,
        "still serving the previous one"
    );
    assert!(agent.log().contains("(reload 2)"), "{}", agent.log());

    // Repaired: a later reload succeeds again and is told apart from the failed one.
    write_in_place(&cfg, "[web]\ntelemetry_path = \"/fourth\"\n");
    let (code, out, _) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(code, 0);
    assert!(out.contains("reload 3: configuration reloaded"), "{out}");

    // The PID file from the configuration when not given on the command line.
    write_in_place(
        &cfg,
        &format!("pid_file = {pid_file:?}\n[web]\ntelemetry_path = \"/fourth\"\n"),
    );
    let cfg_arg = cfg.display().to_string();
    let (code, out, err) = reload_command(&["-c", &cfg_arg]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("reload 4: configuration reloaded"), "{out}");

    drop(agent);
    let (code, _, err) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--reload: no running instance: PID file"),
        "{err}"
    );
    fs::write(dir.pid_file(), "4194000\n").expect("stale pid file");
    let (code, _, err) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is stale (no process holds its lock)"),
        "{err}"
    );
}

/// Concurrent `--reload`s each get the outcome of a reload that began after they were
/// called, never an older one: every one exits 0 with a generation above those already done.
#[test]
fn concurrent_reload_commands_each_get_an_outcome() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/metrics\"\n");
    let _agent = start_with_config(&dir, &cfg);
    let pid_file = dir.pid_file().display().to_string();
    let (code, out, _) = reload_command(&["--pid-file", &pid_file]);
    assert_eq!(code, 0, "{out}");
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let p = pid_file.clone();
            std::thread::spawn(move || reload_command(&["--pid-file", &p]))
        })
        .collect();
    for h in handles {
        let (code, out, err) = h.join().expect("thread");
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        let generation: u64 = out
            .split("reload ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no generation in {out:?}"));
        assert!(generation >= 2, "an outcome older than the call: {out}");
    }
}
