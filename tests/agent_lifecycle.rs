//! The foreground agent's lifecycle through the real binary: PID file and second instance,
//! SIGTERM/SIGINT, SIGHUP reload (a changed setting in effect on the same listener; a broken
//! file keeps the old configuration and is counted), SIGUSR1/SIGUSR2, SIGPIPE, log
//! destinations and level, `kill -9` then restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;

use common::*;
use nix::sys::signal::Signal;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (content, inode, mtime in ns) of the PID file.
fn pid_file_state(dir: &TestDir) -> (String, u64, i128) {
    let m = std::fs::metadata(dir.pid_file()).expect("PID file exists");
    (
        dir.pid_file_content().expect("PID file readable"),
        m.ino(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    )
}

/// Scrapes `path` and returns the body, whatever the status (for polling).
fn try_scrape(agent: &Agent, path: &str) -> Option<String> {
    let r = http(agent.addr(), "GET", path, &[]).ok()?;
    (r.status == 200).then(|| r.text())
}

#[test]
fn pid_file_holds_the_agent_pid() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    assert_eq!(
        dir.pid_file_content().as_deref(),
        Some(format!("{}\n", agent.pid()).as_str()),
        "{}",
        agent.diagnostics()
    );
}

/// A second instance with the same PID file (the very same command) fails at once with
/// "already running (pid N)" and exit 3, and changes nothing: the PID file keeps its content,
/// inode and mtime, the first instance keeps serving.
#[test]
fn second_instance_is_refused_and_changes_nothing() {
    let dir = TestDir::new();
    let first = Start::new(&dir).spawn();
    let before = pid_file_state(&dir);
    assert_eq!(before.0, format!("{}\n", first.pid()));

    // The identical command line.
    let out = run(&first.args);
    assert_eq!(
        out.status.code(),
        Some(3),
        "second instance: {}",
        stderr_of(&out)
    );
    let want = format!("already running (pid {})", first.pid());
    assert!(
        stderr_of(&out).contains(&want),
        "stderr lacks {want:?}: {}",
        stderr_of(&out)
    );
    assert_eq!(
        pid_file_state(&dir),
        before,
        "the second instance changed the PID file"
    );

    // Another port, same PID file: refused before binding anything.
    let other_port = free_port();
    let mut args = vec![
        "--web.listen-address".to_string(),
        format!("127.0.0.1:{other_port}"),
    ];
    args.extend(dir.file_args());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&want), "{}", stderr_of(&out));
    assert!(
        !accepts(loopback(other_port)),
        "the refused instance listens on {other_port}"
    );
    assert_eq!(pid_file_state(&dir), before);

    assert!(
        alive(first.pid()),
        "first instance died\n{}",
        first.diagnostics()
    );
    assert_eq!(first.get("/metrics").status, 200);
    let procs = processes_mentioning(&dir.path().display().to_string());
    assert_eq!(
        procs.len(),
        1,
        "only the first instance should run: {procs:?}"
    );
}

fn assert_clean_stop(sig: Signal, name: &str) {
    let dir = TestDir::new();
    let mut agent = Start::new(&dir).spawn();
    assert!(dir.pid_file().exists());
    // A scrape first, so the stop follows real work.
    agent.scrape("/metrics");
    agent.signal(sig);
    let status = agent.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{name}: exit status {status:?}\n{}",
        agent.diagnostics()
    );
    assert!(
        !dir.pid_file().exists(),
        "{name}: PID file left behind (content {:?})\n{}",
        dir.pid_file_content(),
        agent.diagnostics()
    );
    assert_eq!(
        dir.entries(),
        vec!["agent.log".to_string()],
        "{name}: files left"
    );
    assert!(!accepts(agent.addr()), "{name}: still listening after exit");
    let log = agent.log();
    assert!(
        log.contains(&format!("{name} received")),
        "{name}: log:\n{log}"
    );
    assert!(
        !log.contains("could not remove PID file"),
        "{name}: log:\n{log}"
    );
    assert!(log.contains("stopped"), "{name}: log:\n{log}");
    assert_nothing_running(&dir);
}

#[test]
fn sigterm_exits_0_and_removes_pid_file() {
    assert_clean_stop(Signal::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_exits_0_and_removes_pid_file() {
    assert_clean_stop(Signal::SIGINT, "SIGINT");
}

/// Foreground: the log goes to stderr and to the log file.
#[test]
fn foreground_logs_to_stderr_and_log_file() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let line = format!("serving metrics on 127.0.0.1:{}", agent.port);
    agent.wait_log(&line);
    wait_until(
        || format!("stderr containing {line:?}\n{}", agent.diagnostics()),
        || agent.stderr().contains(&line),
    );
    // The log file is not readable by others (it may hold client addresses).
    let mode = std::fs::metadata(dir.log_file()).expect("log file").mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "log file mode {mode:o}");
}

/// `--log.level warn`: info lines are not written, warnings are.
#[test]
fn log_level_is_honoured() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).args(["--log.level", "warn"]).spawn();
    agent.scrape("/metrics");
    agent.signal(Signal::SIGUSR1); // logged as a warning
    let log = agent.wait_log("SIGUSR1: debug logging on");
    let info: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(info.is_empty(), "info lines at --log.level warn:\n{log}");
}

/// SIGHUP with a changed setting: it takes effect, on the very same listening socket.
#[test]
fn sighup_applies_changed_setting_on_same_listener() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/before\"\n");
    let agent = Start::new(&dir)
        .args(["-c", &cfg.display().to_string()])
        .spawn();
    assert_eq!(agent.get("/before").status, 200);
    assert_eq!(agent.get("/after").status, 404);
    let listener = listening_inode(agent.port).expect("listening socket in /proc/net/tcp");
    // A connection opened before the reload, used after it.
    let mut early = TcpStream::connect(agent.addr()).expect("connect");

    write_in_place(&cfg, "# moved\n[web]\ntelemetry_path = \"/after\"\n");
    agent.signal(Signal::SIGHUP);
    wait_until(
        || format!("/after served after SIGHUP\n{}", agent.diagnostics()),
        || try_scrape(&agent, "/after").is_some(),
    );
    assert_eq!(agent.get("/before").status, 404, "old path still served");
    assert!(agent.get("/").text().contains("href=\"/after\""));
    assert_eq!(
        listening_inode(agent.port),
        Some(listener),
        "the listening socket was replaced by the reload"
    );
    let r = http_on(&mut early, agent.addr(), "GET", "/after", &[]).unwrap_or_else(|e| {
        panic!(
            "connection opened before SIGHUP: {e}\n{}",
            agent.diagnostics()
        )
    });
    assert_eq!(r.status, 200, "{r:?}");

    let body = agent.scrape("/after");
    assert_eq!(
        must_value(&body, "monitoring_agent_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(
        must_value(&body, "monitoring_agent_config_reload_failures_total", &[]),
        0.0
    );
    agent.wait_log("SIGHUP: configuration reloaded");
    assert!(alive(agent.pid()));
    assert_eq!(dir.pid_file_content(), Some(format!("{}\n", agent.pid())));
}

/// Command-line flags still override the re-read file.
#[test]
fn sighup_keeps_command_line_overrides() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/file-one\"\n");
    let agent = Start::new(&dir)
        .args([
            "-c",
            &cfg.display().to_string(),
            "--web.telemetry-path",
            "/flag",
        ])
        .spawn();
    assert_eq!(agent.get("/flag").status, 200);
    write_in_place(
        &cfg,
        "log_level = \"debug\"\n[web]\ntelemetry_path = \"/file-two\"\n",
    );
    agent.signal(Signal::SIGHUP);
    agent.wait_log("SIGHUP: configuration reloaded");
    assert_eq!(agent.get("/flag").status, 200);
    assert_eq!(agent.get("/file-two").status, 404);
}

/// Waits until the agent, still serving `/before`, counts `n` failed reloads, and checks that
/// it reports the last one as failed; `what` names the wait in a failure.
fn failed_reloads(agent: &Agent, n: f64, what: &str) {
    let last = std::cell::RefCell::new(String::new());
    wait_until(
        || format!("{what}\n{}\n{}", last.borrow(), agent.diagnostics()),
        || {
            *last.borrow_mut() = try_scrape(agent, "/before").unwrap_or_default();
            value(
                &last.borrow(),
                "monitoring_agent_config_reload_failures_total",
                &[],
            ) == Some(n)
        },
    );
    assert_eq!(
        must_value(
            &last.borrow(),
            "monitoring_agent_config_last_reload_successful",
            &[]
        ),
        0.0
    );
}

/// SIGHUP with a broken file: the old configuration keeps serving on the same listener, the
/// error is logged with its line and column, and the failure is counted; a later valid file
/// is applied and clears the failure gauge.
#[test]
fn sighup_with_broken_file_keeps_serving_and_counts_failure() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/before\"\n");
    let cfg_s = cfg.display().to_string();
    let agent = Start::new(&dir).args(["-c", &cfg_s]).spawn();
    let body = agent.scrape("/before");
    assert_eq!(
        must_value(&body, "monitoring_agent_config_reload_failures_total", &[]),
        0.0
    );
    let listener = listening_inode(agent.port).expect("listening socket");

    // A syntax error.
    write_in_place(&cfg, "[web\ntelemetry_path = \"/after\"\n");
    agent.signal(Signal::SIGHUP);
    failed_reloads(&agent, 1.0, "reload failure counted");
    assert_eq!(agent.get("/after").status, 404);
    assert_eq!(listening_inode(agent.port), Some(listener));
    let log = agent.wait_log("configuration not reloaded");
    assert!(
        log.contains(&format!("config file {cfg_s}, line 1, column")),
        "the reload error should name the file, line and column:\n{log}"
    );

    // An invalid value: counted as well.
    write_in_place(
        &cfg,
        "[web]\ntelemetry_path = \"/after\"\nmax_requests = 0\n",
    );
    agent.signal(Signal::SIGHUP);
    failed_reloads(&agent, 2.0, "second reload failure counted");
    assert!(alive(agent.pid()));

    // A valid file again: applied, gauge back to 1, the counter keeps its count.
    write_in_place(&cfg, "[web]\ntelemetry_path = \"/after\"\n");
    agent.signal(Signal::SIGHUP);
    wait_until(
        || format!("/after served\n{}", agent.diagnostics()),
        || try_scrape(&agent, "/after").is_some(),
    );
    let body = agent.scrape("/after");
    assert_eq!(
        must_value(&body, "monitoring_agent_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(
        must_value(&body, "monitoring_agent_config_reload_failures_total", &[]),
        2.0
    );
    assert_eq!(listening_inode(agent.port), Some(listener));
}

/// SIGUSR1 toggles debug logging: debug messages (a malformed request) appear once it is on.
#[test]
fn sigusr1_toggles_debug_logging() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    agent.signal(Signal::SIGUSR1);
    agent.wait_log("SIGUSR1: debug logging on");

    // A malformed request is logged at debug level.
    let mut s = TcpStream::connect(agent.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"NOT-HTTP \x01\x02\r\n\r\n")
        .expect("send garbage");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let log = agent.wait_log("connection from 127.0.0.1:");
    let debug_line = log
        .lines()
        .find(|l| l.contains("connection from 127.0.0.1:"))
        .unwrap_or("");
    assert!(debug_line.contains("DEBUG"), "{debug_line}");

    agent.signal(Signal::SIGUSR1);
    agent.wait_log("SIGUSR1: debug logging off");
    assert!(alive(agent.pid()));
}

/// SIGUSR2 logs a one-line summary: uptime and scrapes served.
#[test]
fn sigusr2_logs_summary() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    agent.scrape("/metrics");
    agent.scrape("/metrics");
    agent.signal(Signal::SIGUSR2);
    let log = agent.wait_log("SIGUSR2: uptime ");
    let line = log
        .lines()
        .find(|l| l.contains("SIGUSR2: uptime "))
        .unwrap_or("");
    assert!(line.contains("scrapes served 2"), "{line}");
    assert!(alive(agent.pid()));
    assert_eq!(agent.get("/metrics").status, 200);
}

/// SIGPIPE (sent with kill, and provoked by clients that hang up mid-response) never kills
/// the agent.
#[test]
fn sigpipe_does_not_kill_the_agent() {
    let dir = TestDir::new();
    let mut agent = Start::new(&dir).spawn();
    agent.signal(Signal::SIGPIPE);
    agent.signal(Signal::SIGPIPE);
    // Clients that send a request and reset the connection without reading.
    for _ in 0..20 {
        let s = TcpStream::connect(agent.addr()).expect("connect");
        let mut s2 = s.try_clone().expect("clone");
        let _ = s2.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        // SO_LINGER 0: close sends a reset.
        let _ = nix::sys::socket::setsockopt(
            &s,
            nix::sys::socket::sockopt::Linger,
            &libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        );
        drop(s);
        drop(s2);
    }
    assert!(alive(agent.pid()), "killed\n{}", agent.diagnostics());
    assert!(
        agent.try_exit().is_none(),
        "exited\n{}",
        agent.diagnostics()
    );
    assert_eq!(agent.get("/metrics").status, 200);
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit().code(), Some(0), "{}", agent.diagnostics());
}

/// `kill -9` leaves a stale PID file; the same command starts again over it.
#[test]
fn kill_9_then_restart_with_same_pid_file() {
    let dir = TestDir::new();
    let mut first = Start::new(&dir).spawn();
    let old_pid = first.pid();
    first.scrape("/metrics");
    first.signal(Signal::SIGKILL);
    let st = first.wait_exit();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    assert_eq!(
        dir.pid_file_content(),
        Some(format!("{old_pid}\n")),
        "kill -9 should leave the PID file behind (the test relies on it being stale)"
    );
    let args = first.args.clone();
    drop(first);

    let second = Start::new(&dir)
        .port(
            args[1]
                .rsplit(':')
                .next()
                .expect("port")
                .parse()
                .expect("port"),
        )
        .spawn();
    assert_eq!(second.args, args, "not the same command");
    assert_ne!(second.pid(), old_pid);
    assert_eq!(dir.pid_file_content(), Some(format!("{}\n", second.pid())));
    assert_eq!(second.get("/metrics").status, 200);
    let mut second = second;
    second.signal(Signal::SIGTERM);
    assert_eq!(
        second.wait_exit().code(),
        Some(0),
        "{}",
        second.diagnostics()
    );
    assert!(!dir.pid_file().exists());
}
