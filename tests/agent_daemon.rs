//! Daemon mode (`-d`) through the real binary: the launching command returns 0 only once the
//! daemon serves, or fails with the daemon's error; the daemon is detached (not a session
//! leader, no controlling terminal, cwd `/`, stdio on /dev/null, no inherited descriptor),
//! writes its pid to the PID file, removes it on SIGTERM, refuses a second instance and
//! starts again after `kill -9`.

mod common;

use std::fs;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use nix::sys::signal::Signal;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The daemon-mode command line for this test directory.
fn daemon_args(dir: &TestDir, port: u16) -> Vec<String> {
    let mut args = vec![
        "-d".to_string(),
        "--web.listen-address".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(dir.file_args());
    args
}

/// Launches the daemon (bounded; the launching command's stdout and stderr must be closed
/// once it exits, i.e. the daemon kept neither) and adopts it for clean-up.
fn launch(dir: &TestDir, port: u16) -> (std::process::Output, Option<Agent>) {
    let args = daemon_args(dir, port);
    let out = run(&args);
    let agent = dir
        .pid_file_content()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .map(|pid| Agent::adopt_daemon(dir, port, pid, args));
    (out, agent)
}

fn launch_ok(dir: &TestDir, port: u16) -> Agent {
    let (out, agent) = launch(dir, port);
    assert_eq!(
        out.status.code(),
        Some(0),
        "daemon launch failed: {}\nlog:\n{}",
        stderr_of(&out),
        dir.log()
    );
    agent.unwrap_or_else(|| {
        panic!(
            "launch exited 0 but no live daemon pid in the PID file ({:?})\nlog:\n{}",
            dir.pid_file_content(),
            dir.log()
        )
    })
}

fn fd_targets(pid: u32) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = fs::read_link(e.path()).unwrap_or_default();
            (name, target)
        })
        .collect();
    v.sort_by_key(|(n, _)| n.parse::<u32>().unwrap_or(u32::MAX));
    v
}

fn status_field(pid: u32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// A pipe made without O_CLOEXEC, so every child of this test process inherits it.
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: pipe(2) succeeded, so both descriptors are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn daemon_is_detached_and_serving_when_launch_returns() {
    let dir = TestDir::new();
    let port = free_port();
    let (pipe_r, pipe_w) = inheritable_pipe();
    let pipe_ino = fs::metadata(format!("/proc/self/fd/{}", pipe_r.as_raw_fd()))
        .expect("pipe stat")
        .ino();
    let leaked = format!("pipe:[{pipe_ino}]");
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(pipe_w.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(
        flags & libc::FD_CLOEXEC,
        0,
        "the test pipe must be inheritable"
    );

    let daemon = launch_ok(&dir, port);
    drop(pipe_w);
    // Serving already: a single attempt, no polling.
    assert!(
        accepts(loopback(port)),
        "launch returned 0 before the daemon listened\nlog:\n{}",
        dir.log()
    );
    let pid = daemon.pid();
    assert_ne!(pid, std::process::id());

    // Not a session leader, no controlling terminal, not in our session.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let f = stat_fields(&stat);
    let (session, tty_nr): (u32, i64) = (
        f[3].parse().expect("session"),
        f[4].parse().expect("tty_nr"),
    );
    assert_ne!(session, pid, "the daemon is a session leader: {stat}");
    assert_eq!(tty_nr, 0, "the daemon has a controlling terminal: {stat}");
    let my_stat = fs::read_to_string("/proc/self/stat").expect("own stat");
    let my_session: u32 = stat_fields(&my_stat)[3].parse().expect("session");
    assert_ne!(
        session, my_session,
        "the daemon did not start a new session (setsid)"
    );
    let ppid: u32 = f[1].parse().expect("ppid");
    assert_ne!(ppid, std::process::id(), "the daemon is still our child");

    // cwd /, stdio on /dev/null, no inherited descriptor.
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"),
        PathBuf::from("/")
    );
    let fds = fd_targets(pid);
    for n in ["0", "1", "2"] {
        let target = fds
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, t)| t.clone());
        assert_eq!(
            target,
            Some(PathBuf::from("/dev/null")),
            "fd {n}; all fds: {fds:?}"
        );
    }
    assert!(
        !fds.iter().any(|(_, t)| t.to_string_lossy() == leaked),
        "the launching process's descriptor {leaked} leaked into the daemon: {fds:?}"
    );
    // Nothing but what the agent opened itself: sockets, its files, /dev/null, anon inodes,
    // and the page `--reload` reads the outcome of a reload from (a sealed memfd).
    let dir_s = dir.path().display().to_string();
    for (n, t) in &fds {
        let t = t.to_string_lossy();
        assert!(
            t == "/dev/null"
                || t.starts_with("socket:[")
                || t.starts_with("anon_inode:")
                || t.starts_with("/memfd:monitoring-agent-reload")
                || t.starts_with("pipe:[") && *t != leaked
                || t.starts_with(&dir_s)
                || t.starts_with("/proc/")
                || t.starts_with("/sys/"),
            "unexpected descriptor {n} -> {t} in the daemon: {fds:?}"
        );
    }

    // umask restricts group and other write.
    let umask = u32::from_str_radix(&status_field(pid, "Umask"), 8).expect("umask");
    assert_eq!(umask & 0o022, 0o022, "umask {umask:o}");
    // Dropped to the agent's user.
    let uids: Vec<u32> = status_field(pid, "Uid")
        .split_whitespace()
        .map(|u| u.parse().expect("uid"))
        .collect();
    assert!(
        uids.iter().all(|u| *u == dir.uid),
        "daemon uids {uids:?}, want {}",
        dir.uid
    );

    // It serves, and reports itself.
    let body = daemon.scrape("/metrics");
    assert!(value(&body, "node_load1", &[]).is_some(), "{body}");
    daemon.wait_log(&format!("serving metrics on 127.0.0.1:{port}"));
    drop(pipe_r);
}

#[test]
fn daemon_sigterm_removes_pid_file() {
    let dir = TestDir::new();
    let port = free_port();
    let daemon = launch_ok(&dir, port);
    let pid = daemon.pid();
    assert_eq!(dir.pid_file_content(), Some(format!("{pid}\n")));
    daemon.scrape("/metrics");
    daemon.signal(Signal::SIGTERM);
    assert!(
        wait_gone(pid, WAIT),
        "daemon {pid} still running after SIGTERM\nlog:\n{}",
        dir.log()
    );
    let log = dir.log();
    assert!(
        !dir.pid_file().exists(),
        "PID file left behind; log:\n{log}"
    );
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
    assert!(!log.contains("could not remove PID file"), "{log}");
    assert!(!accepts(loopback(port)));
    assert_nothing_running(&dir);
}

/// Start-up failure (port in use): the launching command exits non-zero with the daemon's
/// error, and nothing is left running; once the port is free the same command works.
#[test]
fn daemon_start_failure_is_reported_by_launcher() {
    let dir = TestDir::new();
    let blocker = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = blocker.local_addr().expect("addr").port();
    let (out, agent) = launch(&dir, port);
    drop(agent);
    let err = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "launch with port {port} in use: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(
        lines[0].contains(&format!("127.0.0.1:{port}")) && lines[0].contains("in use"),
        "the launcher should print the daemon's bind error: {err}"
    );
    assert_nothing_running(&dir);
    assert!(out.stdout.is_empty());

    drop(blocker);
    let daemon = launch_ok(&dir, port);
    assert_eq!(daemon.get("/metrics").status, 200);
}

/// Other start-up failures in daemon mode are reported the same way (the log file cannot be
/// opened: its directory does not exist).
#[test]
fn daemon_log_file_failure_is_reported_by_launcher() {
    let dir = TestDir::new();
    let port = free_port();
    let bad_log = dir.path().join("missing-dir").join("agent.log");
    let args = vec![
        "-d".to_string(),
        "--web.listen-address".into(),
        format!("127.0.0.1:{port}"),
        "--pid-file".into(),
        dir.pid_file().display().to_string(),
        "--log-file".into(),
        bad_log.display().to_string(),
    ];
    let out = run(&args);
    let err = stderr_of(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&bad_log.display().to_string()), "{err}");
    assert!(!accepts(loopback(port)));
    assert_nothing_running(&dir);
}

#[test]
fn daemon_second_instance_is_refused() {
    let dir = TestDir::new();
    let port = free_port();
    let daemon = launch_ok(&dir, port);
    let pid = daemon.pid();
    // `launch` adopts the live daemon named by the PID file: the first one, kept to the end.
    let (out, _first_again) = launch(&dir, port);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("already running (pid {pid})")),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(dir.pid_file_content(), Some(format!("{pid}\n")));
    assert!(alive(pid));
    assert_eq!(daemon.get("/metrics").status, 200);
}

#[test]
fn daemon_kill_9_then_restart() {
    let dir = TestDir::new();
    let port = free_port();
    let first = launch_ok(&dir, port);
    let old = first.pid();
    first.signal(Signal::SIGKILL);
    assert!(wait_gone(old, WAIT), "daemon survived SIGKILL");
    assert_eq!(
        dir.pid_file_content(),
        Some(format!("{old}\n")),
        "stale PID file expected"
    );
    drop(first);

    let second = launch_ok(&dir, port);
    assert_ne!(second.pid(), old);
    assert_eq!(dir.pid_file_content(), Some(format!("{}\n", second.pid())));
    assert_eq!(second.get("/metrics").status, 200);
}
