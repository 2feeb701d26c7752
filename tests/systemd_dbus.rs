//! The systemd collector against a mock `org.freedesktop.systemd1` on a private `dbus-daemon`
//! (tests/fixtures/systemd/: the mock in Python with dbus-python and GLib, the bus
//! configuration): the exact families and samples for the fixture units, the reconnection when
//! the bus restarts, and the real binary under its full sandbox (started as root, dropped,
//! Landlock, seccomp with the `dbus` policy fragment) serving them and reconnecting after the
//! bus restarted, every thread in seccomp mode 2. A SIGHUP that enables the collector on an
//! agent started without its fragment does not run it and says it waits for a restart.
//!
//! Needs root, the agent's user, `dbus-daemon` (Debian's `dbus`) and `python3-dbus` +
//! `python3-gi` (scripts/test.sh installs them); fails, never skips, without them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Debian's python3-dbus is for the system interpreter, not another python3 on PATH.
const PYTHON: &str = "/usr/bin/python3";

/// What the agent serves for the mock's units with every optional metric enabled: the
/// `node_systemd_*` lines of a scrape, as node_exporter 1.12 computes them from the same D-Bus
/// answers (`-.mount`, `user.slice` excluded by the default pattern, `missing.service` because
/// it is not loaded; task counts of `u64::MAX` not exported; start time 0 for units not active).
const EXPECTED: &str = r#"# HELP node_systemd_service_restart_total Service unit count of Restart triggers
# TYPE node_systemd_service_restart_total counter
node_systemd_service_restart_total{name="broken.service"} 3
node_systemd_service_restart_total{name="monitoring-agent.service"} 0
node_systemd_service_restart_total{name="starting.service"} 1
# HELP node_systemd_socket_accepted_connections_total Total number of accepted socket connections
# TYPE node_systemd_socket_accepted_connections_total counter
node_systemd_socket_accepted_connections_total{name="ssh.socket"} 12
# HELP node_systemd_socket_current_connections Current number of socket connections
# TYPE node_systemd_socket_current_connections gauge
node_systemd_socket_current_connections{name="ssh.socket"} 1
# HELP node_systemd_socket_refused_connections_total Total number of refused socket connections
# TYPE node_systemd_socket_refused_connections_total gauge
node_systemd_socket_refused_connections_total{name="ssh.socket"} 2
# HELP node_systemd_system_running Whether the system is operational (see 'systemctl is-system-running')
# TYPE node_systemd_system_running gauge
node_systemd_system_running 0
# HELP node_systemd_timer_last_trigger_seconds Seconds since epoch of last trigger.
# TYPE node_systemd_timer_last_trigger_seconds gauge
node_systemd_timer_last_trigger_seconds{name="apt-daily.timer"} 1.7000005e+09
# HELP node_systemd_unit_start_time_seconds Start time of the unit since unix epoch in seconds.
# TYPE node_systemd_unit_start_time_seconds gauge
node_systemd_unit_start_time_seconds{name="apt-daily.timer"} 1.700000002e+09
node_systemd_unit_start_time_seconds{name="broken.service"} 0
node_systemd_unit_start_time_seconds{name="monitoring-agent.service"} 1.700000000123456e+09
node_systemd_unit_start_time_seconds{name="ssh.socket"} 1.700000001e+09
node_systemd_unit_start_time_seconds{name="starting.service"} 0
# HELP node_systemd_unit_state Systemd unit
# TYPE node_systemd_unit_state gauge
node_systemd_unit_state{name="apt-daily.timer",state="activating",type=""} 0
node_systemd_unit_state{name="apt-daily.timer",state="active",type=""} 1
node_systemd_unit_state{name="apt-daily.timer",state="deactivating",type=""} 0
node_systemd_unit_state{name="apt-daily.timer",state="failed",type=""} 0
node_systemd_unit_state{name="apt-daily.timer",state="inactive",type=""} 0
node_systemd_unit_state{name="broken.service",state="activating",type="oneshot"} 0
node_systemd_unit_state{name="broken.service",state="active",type="oneshot"} 0
node_systemd_unit_state{name="broken.service",state="deactivating",type="oneshot"} 0
node_systemd_unit_state{name="broken.service",state="failed",type="oneshot"} 1
node_systemd_unit_state{name="broken.service",state="inactive",type="oneshot"} 0
node_systemd_unit_state{name="monitoring-agent.service",state="activating",type="notify"} 0
node_systemd_unit_state{name="monitoring-agent.service",state="active",type="notify"} 1
node_systemd_unit_state{name="monitoring-agent.service",state="deactivating",type="notify"} 0
node_systemd_unit_state{name="monitoring-agent.service",state="failed",type="notify"} 0
node_systemd_unit_state{name="monitoring-agent.service",state="inactive",type="notify"} 0
node_systemd_unit_state{name="ssh.socket",state="activating",type=""} 0
node_systemd_unit_state{name="ssh.socket",state="active",type=""} 1
node_systemd_unit_state{name="ssh.socket",state="deactivating",type=""} 0
node_systemd_unit_state{name="ssh.socket",state="failed",type=""} 0
node_systemd_unit_state{name="ssh.socket",state="inactive",type=""} 0
node_systemd_unit_state{name="starting.service",state="activating",type="simple"} 1
node_systemd_unit_state{name="starting.service",state="active",type="simple"} 0
node_systemd_unit_state{name="starting.service",state="deactivating",type="simple"} 0
node_systemd_unit_state{name="starting.service",state="failed",type="simple"} 0
node_systemd_unit_state{name="starting.service",state="inactive",type="simple"} 0
# HELP node_systemd_unit_tasks_current Current number of tasks per Systemd unit
# TYPE node_systemd_unit_tasks_current gauge
node_systemd_unit_tasks_current{name="monitoring-agent.service"} 5
node_systemd_unit_tasks_current{name="starting.service"} 1
# HELP node_systemd_unit_tasks_max Maximum number of tasks per Systemd unit
# TYPE node_systemd_unit_tasks_max gauge
node_systemd_unit_tasks_max{name="monitoring-agent.service"} 4915
node_systemd_unit_tasks_max{name="starting.service"} 100
# HELP node_systemd_units Summary of systemd unit states
# TYPE node_systemd_units gauge
node_systemd_units{state="activating"} 1
node_systemd_units{state="active"} 5
node_systemd_units{state="deactivating"} 0
node_systemd_units{state="failed"} 1
node_systemd_units{state="inactive"} 1
# HELP node_systemd_version Detected systemd version
# TYPE node_systemd_version gauge
node_systemd_version{version="252.38-1~deb12u1"} 252.38
# HELP node_systemd_virtualization_info Detected virtualization technology
# TYPE node_systemd_virtualization_info gauge
node_systemd_virtualization_info{virtualization_type="kvm"} 1
"#;

/// The optional metrics' flags, all on.
const ALL_FLAGS: [&str; 4] = [
    "--collector.systemd",
    "--collector.systemd.enable-task-metrics",
    "--collector.systemd.enable-restarts-metrics",
    "--collector.systemd.enable-start-time-metrics",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/systemd")
        .join(name)
}

/// Fails (never skips) when the mock cannot run here.
fn require_tools() {
    let daemon = find_program("dbus-daemon");
    assert!(
        daemon.is_some(),
        "dbus-daemon not found: these tests serve a mock systemd on a private bus; install \
         Debian's `dbus` package (scripts/test.sh does)"
    );
    let ok = Command::new(PYTHON)
        .args([
            "-c",
            "import dbus, dbus.mainloop.glib; from gi.repository import GLib",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import dbus and gi: install Debian's `python3-dbus` and `python3-gi` \
         (scripts/test.sh does)"
    );
}

/// A private dbus-daemon with the mock systemd on it, in a root-owned 0755 directory (the
/// dropped agent must reach the socket).
struct MockBus {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    mock: Option<Child>,
}

impl MockBus {
    fn start() -> MockBus {
        require_tools();
        let dir = tempfile::Builder::new()
            .prefix("monitoring-agent-dbus.")
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let conf = fs::read_to_string(fixture("bus.conf")).expect("bus.conf");
        let listen = format!("unix:path={}", dir.path().join("bus").display());
        fs::write(
            dir.path().join("bus.conf"),
            conf.replace("@LISTEN@", &listen),
        )
        .expect("write bus.conf");
        let mut bus = MockBus {
            dir,
            daemon: None,
            mock: None,
        };
        bus.up();
        bus
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// Starts dbus-daemon and the mock; returns once the mock owns its name.
    fn up(&mut self) {
        let _ = fs::remove_file(self.socket());
        let daemon = Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("bus.conf").display()
            ))
            .arg("--nofork")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dbus-daemon");
        self.daemon = Some(daemon);
        let deadline = Instant::now() + WAIT;
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "dbus-daemon made no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut mock = Command::new(PYTHON)
            .arg(fixture("mock_systemd.py"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the mock systemd");
        let stdout = mock.stdout.take().expect("mock stdout");
        self.mock = Some(mock);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        assert_eq!(line.trim(), "ready", "the mock systemd did not start");
    }

    /// Stops the mock and the daemon (dbus restarting, as far as a client can tell).
    fn down(&mut self) {
        for c in [self.mock.take(), self.daemon.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MockBus {
    fn drop(&mut self) {
        self.down();
    }
}

/// The `node_systemd_*` lines of a scrape (HELP and TYPE included), one per line.
fn systemd_lines(body: &str) -> String {
    let mut s = String::new();
    for l in body
        .lines()
        .filter(|l| l.contains(" node_systemd_") || l.starts_with("node_systemd_"))
    {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn assert_seccomp_everywhere(agent: &Agent, uid: u32) {
    let tasks = fs::read_dir(format!("/proc/{}/task", agent.pid())).expect("task dir");
    let mut n = 0;
    for t in tasks {
        let status = fs::read_to_string(t.expect("task").path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(
            field("Seccomp:"),
            ["2"],
            "a thread without seccomp\n{}",
            agent.diagnostics()
        );
        assert!(
            field("Uid:").iter().all(|u| *u == uid.to_string()),
            "a thread not running as the agent's user\n{}",
            agent.diagnostics()
        );
        n += 1;
    }
    assert!(n > 1, "expected the runtime's threads too");
}

/// The real binary, started as root with the collector on, under the full sandbox (drop,
/// Landlock at the kernel's ABI, seccomp with the `dbus` fragment): the exact samples, every
/// thread in seccomp mode 2; then dbus restarts and the collector connects again under the
/// sandbox (the fragment's socket + connect) and serves the same samples, and the agent lives.
#[test]
fn real_binary_under_full_sandbox_serves_and_reconnects() {
    let mut bus = MockBus::start();
    let dir = TestDir::new();
    let mut agent = Start::new(&dir)
        .args(ALL_FLAGS)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    assert_eq!(systemd_lines(&body), EXPECTED, "{}", agent.diagnostics());
    assert_eq!(
        must_value(
            &body,
            "monitoring_agent_sandbox_fragment",
            &[("fragment", "dbus")]
        ),
        1.0
    );
    assert!(
        agent.log().contains("policy fragments: dbus"),
        "{}",
        agent.diagnostics()
    );
    assert!(
        agent
            .log()
            .contains("systemd collector: connected to the system bus"),
        "the first connection is made before the sandbox\n{}",
        agent.diagnostics()
    );
    assert_seccomp_everywhere(&agent, dir.uid);
    let check = check_sandbox(&dir, &agent);
    assert!(
        check
            .lines()
            .any(|l| l.trim() == "policy fragments    dbus (for systemd, logind)"),
        "--check-sandbox does not list the dbus fragment:\n{check}"
    );

    // dbus goes away: the collector fails, the scrape does not.
    bus.down();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        0.0
    );
    // dbus is back: the next scrape connects again, under seccomp and Landlock.
    bus.up();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    assert_eq!(systemd_lines(&body), EXPECTED, "{}", agent.diagnostics());
    assert!(
        agent.try_exit().is_none(),
        "the agent died\n{}",
        agent.diagnostics()
    );
    assert_seccomp_everywhere(&agent, dir.uid);
}

/// The same with Landlock capped at ABI 1 (an old kernel): the seccomp filter with its
/// fragment carries the reconnection alone.
#[test]
fn reconnects_with_landlock_abi_1() {
    let mut bus = MockBus::start();
    let dir = TestDir::new();
    let mut agent = Start::new(&dir)
        .args(ALL_FLAGS)
        .args(["--landlock-max-abi", "1"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    assert_eq!(systemd_lines(&agent.scrape("/metrics")), EXPECTED);
    bus.down();
    bus.up();
    let body = agent.scrape("/metrics");
    assert_eq!(systemd_lines(&body), EXPECTED, "{}", agent.diagnostics());
    assert!(
        agent.try_exit().is_none(),
        "the agent died\n{}",
        agent.diagnostics()
    );
}

/// Started while the bus is down: start-up goes on (warning), and the first scrape after the
/// bus came up connects, under the sandbox.
#[test]
fn bus_down_at_start_up_is_not_fatal() {
    let mut bus = MockBus::start();
    bus.down();
    let dir = TestDir::new();
    let mut agent = Start::new(&dir)
        .args(ALL_FLAGS)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    assert!(
        agent.log().contains("cannot connect to the system bus now"),
        "{}",
        agent.diagnostics()
    );
    bus.up();
    let body = agent.scrape("/metrics");
    assert_eq!(systemd_lines(&body), EXPECTED, "{}", agent.diagnostics());
    assert!(
        agent.try_exit().is_none(),
        "the agent died\n{}",
        agent.diagnostics()
    );
}

/// Defaults: no fragment in force, and no systemd collector.
#[test]
fn default_collectors_have_no_fragment() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "monitoring_agent_sandbox_fragment",
            &[("fragment", "dbus")]
        ),
        0.0
    );
    assert!(
        agent.log().contains("policy fragments: none"),
        "{}",
        agent.diagnostics()
    );
    assert!(!body.contains("collector=\"systemd\""));
    let check = check_sandbox(&dir, &agent);
    assert!(
        check
            .lines()
            .any(|l| l.trim() == "policy fragments    none"),
        "--check-sandbox:\n{check}"
    );
}

/// SIGHUP enabling the collector on an agent started without its fragment: the collector does
/// not run (its socket and connect would kill the process) and the log says it waits for a
/// restart; the agent lives and serves. A restart with the same file runs it.
#[test]
fn sighup_cannot_enable_a_collector_whose_fragment_is_not_in_force() {
    let bus = MockBus::start();
    let dir = TestDir::new();
    let cfg = dir.write_config("[collectors]\n");
    let mut agent = Start::new(&dir)
        .args(["--config".to_string(), cfg.display().to_string()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    dir.write_config("[collectors]\nenable = [\"systemd\"]\n");
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let log = agent.wait_log("SIGHUP: configuration reloaded");
    assert!(
        log.contains(
            "SIGHUP: collector systemd needs the sandbox policy fragment dbus (policy/fragments/), \
             which is not in the seccomp filter installed at start-up: enabling it takes effect \
             only after a restart; not running it until then"
        ),
        "{log}"
    );
    for _ in 0..2 {
        let body = agent.scrape("/metrics");
        assert!(
            !body.contains("collector=\"systemd\""),
            "systemd ran\n{body}"
        );
        assert!(!body.contains("node_systemd_"), "systemd ran\n{body}");
    }
    assert!(
        agent.try_exit().is_none(),
        "the agent died\n{}",
        agent.diagnostics()
    );
    drop(agent);

    // After a restart the same file enables it, with its fragment.
    let dir2 = TestDir::new();
    let cfg2 = dir2.write_config("[collectors]\nenable = [\"systemd\"]\n");
    let agent = Start::new(&dir2)
        .args(["--config".to_string(), cfg2.display().to_string()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
}

/// `monitoring-agent --check-sandbox` against a running test agent: its standard output.
fn check_sandbox(dir: &TestDir, agent: &Agent) -> String {
    let out = Command::new(BIN)
        .args([
            "--check-sandbox",
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &agent.addr().to_string(),
        ])
        .output()
        .expect("check runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `node_logind_sessions` as node_exporter 1.12 computes it from the mock's answers: seats
/// `seat0` and the empty seat; sessions 1 and 2 (seat0, local, x11, user), c1 (seat0, local,
/// wayland, greeter), 3 (remote, tty, user), 4 (remote, tty, class `manager` counted as
/// `other`); session 5's properties cannot be read, so it is not counted. Every other of the
/// 2 × 7 × 5 × 2 combinations is 0.
fn logind_expected(seat: &str, remote: &str, kind: &str, class: &str) -> f64 {
    match (seat, remote, kind, class) {
        ("seat0", "false", "x11", "user") => 2.0,
        ("seat0", "false", "wayland", "greeter")
        | ("", "true", "tty", "user")
        | ("", "true", "tty", "other") => 1.0,
        _ => 0.0,
    }
}

fn assert_logind_sessions(body: &str, agent: &Agent) {
    assert_eq!(
        must_value(
            body,
            "node_scrape_collector_success",
            &[("collector", "logind")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    let mut n = 0;
    for remote in ["true", "false"] {
        for kind in [
            "other",
            "unspecified",
            "tty",
            "x11",
            "wayland",
            "mir",
            "web",
        ] {
            for class in ["other", "user", "greeter", "lock-screen", "background"] {
                for seat in ["seat0", ""] {
                    let labels = [
                        ("class", class),
                        ("remote", remote),
                        ("seat", seat),
                        ("type", kind),
                    ];
                    assert_eq!(
                        must_value(body, "node_logind_sessions", &labels),
                        logind_expected(seat, remote, kind, class),
                        "{labels:?}"
                    );
                    n += 1;
                }
            }
        }
    }
    let served = body
        .lines()
        .filter(|l| l.starts_with("node_logind_sessions{"))
        .count();
    assert_eq!(served, n, "exactly the 140 combinations are served");
}

/// The logind collector on its own, the real binary under the full sandbox: it needs the
/// `dbus` fragment (which lists it), connects before the sandbox, serves node_exporter's
/// counts, and connects again under seccomp after dbus restarted.
#[test]
fn logind_under_full_sandbox_serves_sessions_and_reconnects() {
    let mut bus = MockBus::start();
    let dir = TestDir::new();
    let mut agent = Start::new(&dir)
        .args(["--collector.logind"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    let body = agent.scrape("/metrics");
    assert_logind_sessions(&body, &agent);
    assert_eq!(
        must_value(
            &body,
            "monitoring_agent_sandbox_fragment",
            &[("fragment", "dbus")]
        ),
        1.0
    );
    assert!(
        agent
            .log()
            .contains("logind collector: connected to the system bus"),
        "the first connection is made before the sandbox\n{}",
        agent.diagnostics()
    );
    assert!(
        !body.contains("node_systemd_"),
        "the systemd collector stays off"
    );
    bus.down();
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "logind")]
        ),
        0.0
    );
    bus.up();
    let body = agent.scrape("/metrics");
    assert_logind_sessions(&body, &agent);
    assert!(
        agent.try_exit().is_none(),
        "the agent died\n{}",
        agent.diagnostics()
    );
    assert_seccomp_everywhere(&agent, dir.uid);
}

/// Both D-Bus collectors together share the one connection: both succeed.
#[test]
fn systemd_and_logind_share_the_bus() {
    let bus = MockBus::start();
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args(ALL_FLAGS)
        .args(["--collector.logind"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .spawn();
    let body = agent.scrape("/metrics");
    assert_logind_sessions(&body, &agent);
    assert_eq!(systemd_lines(&body), EXPECTED, "{}", agent.diagnostics());
    assert!(
        agent
            .log()
            .contains("systemd and logind collector: connected to the system bus"),
        "{}",
        agent.diagnostics()
    );
}
