//! The foreground agent's lifecycle through the real binary: PID file and second instance,
//! SIGTERM/SIGINT, SIGHUP reload (a changed setting in effect on the same listener; a broken
//! file keeps the old configuration and is counted), SIGUSR1/SIGUSR2, a broken pipe, log
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
/// Signals sent while the agent starts (once it has blocked them, which is what it can do
/// after exec) are held until the runtime's handlers exist, never taken with their default
/// action (SIGUSR2 terminates): a runtime worker used to unblock them before the handlers
/// were installed, and a SIGUSR2 in that window killed the agent.
#[test]
fn signals_during_start_up_wait_for_the_handlers() {
    for round in 0..5 {
        let dir = TestDir::new();
        let mut agent = Start::new(&dir).spawn_no_wait();
        let pid = agent.pid();
        // SigBlk has SIGUSR2 (signal 12, bit 11) once start-up blocked the handled signals.
        let blocked = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|st| {
                    st.lines()
                        .find_map(|l| l.strip_prefix("SigBlk:"))
                        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                })
                .is_some_and(|mask| mask & (1 << 11) != 0)
        };
        let mut waited = 0;
        while !blocked() {
            assert!(
                agent.try_exit().is_none(),
                "round {round}: exited before blocking signals\n{}",
                agent.diagnostics()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
            waited += 1;
            assert!(waited < 30_000, "round {round}: never blocked SIGUSR2");
        }
        // SIGUSR2 all through start-up, until the agent serves (and a little after).
        let mut sent = 0;
        let mut serving_for = 0;
        while serving_for < 20 {
            if agent.try_exit().is_some() {
                break;
            }
            agent.signal(Signal::SIGUSR2);
            sent += 1;
            if try_scrape(&agent, "/").is_some() {
                serving_for += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let exit = agent.try_exit();
        assert!(
            exit.is_none(),
            "round {round}: the agent died after {sent} SIGUSR2 during start-up: {exit:?}\n{}",
            agent.diagnostics()
        );
        agent.scrape("/metrics");
        agent.signal(Signal::SIGTERM);
        assert_eq!(agent.wait_exit().code(), Some(0), "{}", agent.diagnostics());
    }
}

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

/// The SIGUSR2 summary counts collectors that found no such hardware (node_exporter's
/// `ErrNoData`) apart from real failures: on an empty sysfs and procfs, `nvme` has no data,
/// and `meminfo` (whose file is not there either, but which has no "no data" case) fails.
#[test]
fn sigusr2_separates_no_hardware_from_failures() {
    let dir = TestDir::new();
    let root = dir.path().join("empty");
    std::fs::create_dir_all(&root).expect("mkdir");
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults",
            "--collector.nvme",
            "--collector.meminfo",
            "--path.sysfs",
        ])
        .arg(root.display().to_string())
        .arg("--path.procfs")
        .arg(root.display().to_string())
        .spawn();
    let body = agent.scrape("/metrics");
    assert_eq!(
        common::must_value(&body, "monitoring_agent_collector_failures_total", &[]),
        1.0,
        "{body}"
    );
    assert_eq!(
        common::must_value(&body, "monitoring_agent_collector_no_data_total", &[]),
        1.0,
        "{body}"
    );
    agent.signal(Signal::SIGUSR2);
    let log = agent.wait_log("SIGUSR2: uptime ");
    let line = log
        .lines()
        .find(|l| l.contains("SIGUSR2: uptime "))
        .unwrap_or("");
    assert!(line.contains("collector failures 1,"), "{line}");
    assert!(line.contains("(no data) 1,"), "{line}");
}

/// A real broken pipe: the agent's stderr is a pipe whose reader has gone (a foreground agent
/// piped into a pager or `head` that quit). Each log line the agent then writes there fails
/// with EPIPE, and the kernel raises SIGPIPE with it; the agent has SIGPIPE set aside (ignored
/// or caught), drops the stderr copy of the line, keeps logging to its file, and serves on.
///
/// Sending SIGPIPE with kill (what this test did before) proved nothing: Rust's runtime ignores
/// SIGPIPE before main. Nor does a client hanging up: tokio sends on sockets with
/// MSG_NOSIGNAL (seen with strace: `sendto(..., MSG_NOSIGNAL)`), so a reset connection never
/// raises SIGPIPE; pipes (stderr) are where the agent can meet it.
#[test]
fn stderr_reader_gone_broken_pipe_does_not_stop_the_agent() {
    let dir = TestDir::new();
    let start = Start::new(&dir).args(["--log.level", "debug"]);
    let port = start.port;
    let args = start.argv();
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    let mut child = std::process::Command::new(BIN)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(writer))
        .spawn()
        .expect("spawn monitoring-agent");
    let pid = child.id();
    // Kill the child if an assertion fails below.
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let reap = Reap(&mut child);
    let addr = loopback(port);
    let log = || std::fs::read_to_string(dir.log_file()).unwrap_or_default();
    wait_until(
        || format!("the agent serving on {addr}\nlog:\n{}", log()),
        || accepts(addr),
    );
    // The agent did write to the pipe while it had a reader.
    let mut stderr = std::fs::File::from(reader);
    let mut first = [0u8; 64];
    let n = stderr.read(&mut first).expect("read the agent's stderr");
    assert!(n > 0, "nothing on the agent's stderr");

    // SIGPIPE is not at its default action, which would kill the agent at its next write to
    // stderr: ignored or caught, process-wide.
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex mask"))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    };
    let sigpipe_bit = 1u64 << (libc::SIGPIPE - 1);
    assert_ne!(
        (mask("SigIgn:") | mask("SigCgt:")) & sigpipe_bit,
        0,
        "SIGPIPE at its default action: a closed stderr would kill the agent\n{status}"
    );

    // The reader goes away: from now on every write to stderr is a broken pipe.
    drop(stderr);
    for round in 0..3 {
        // Each of these logs a line (to stderr and the log file).
        signal(pid, Signal::SIGUSR2);
        let r = http(addr, "GET", "/metrics", &[])
            .unwrap_or_else(|e| panic!("round {round}: scrape: {e}\nlog:\n{}", log()));
        assert_eq!(r.status, 200, "round {round}\nlog:\n{}", log());
        assert!(alive(pid), "round {round}: the agent died\nlog:\n{}", log());
    }
    // The SIGUSR2 lines reached the log file: they were written after the pipe broke.
    wait_until(
        || format!("three SIGUSR2 lines in the log\n{}", log()),
        || count_lines(&log(), "SIGUSR2: uptime") >= 3,
    );
    assert!(
        reap.0.try_wait().expect("try_wait").is_none(),
        "the agent exited\nlog:\n{}",
        log()
    );
    signal(pid, Signal::SIGTERM);
    let st = wait_child(reap.0, WAIT).expect("the agent exits on SIGTERM");
    assert_eq!(st.code(), Some(0), "{st:?}\nlog:\n{}", log());
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
