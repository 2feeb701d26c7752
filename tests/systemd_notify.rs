//! The test plays systemd's part in the notification protocol (`sd_notify(3)`) and in socket
//! activation (`sd_listen_fds(3)`), against the real binary started as root (issue 5):
//!
//! * a unix datagram socket (a path, or an abstract `@name`) is the agent's `NOTIFY_SOCKET`;
//!   every message is received and checked, in order: `READY=1` + `STATUS=` first, `WATCHDOG=1`
//!   at half of `WATCHDOG_USEC`, `RELOADING=1` + `MONOTONIC_USEC=` then `READY=1` around a
//!   SIGHUP, `STOPPING=1` on SIGTERM, then exit 0;
//! * the instant `READY=1` arrives, every thread of the agent is already sandboxed (`Seccomp: 2`,
//!   no_new_privs, the dropped uid/gid, no capability but `CAP_NET_BIND_SERVICE`) and the server
//!   answers;
//! * a wedged agent (its `loadavg` health probe blocked on a FIFO nobody writes) sends no
//!   `WATCHDOG=1` while a healthy twin sends several;
//! * socket activation: a listening socket passed as fd 3 with `LISTEN_FDS=1` and the agent's own
//!   pid in `LISTEN_PID` (set by `/bin/sh` just before it `exec`s the agent) is served with no
//!   capability left at all, both when started as root and when started unprivileged as
//!   `contrib/systemd/monitoring-agent-socket.service` does; `--web.systemd-socket` without a
//!   usable passed socket is refused with a clear error.
//!
//! Waits are bounded (`common::WAIT`); nothing asserts how long anything took.

mod common;

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// `WATCHDOG_USEC` given to the agents: `WATCHDOG=1` is then due every 200 ms.
const WATCHDOG_USEC: u64 = 400_000;
/// `CAP_NET_BIND_SERVICE`, bit 10 of the capability masks in /proc/PID/status.
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
/// The variables of the protocol: never inherited from whatever runs the tests.
const SYSTEMD_VARS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];
/// Runs the agent with `LISTEN_PID` set to its own pid: the shell exports its pid and `exec`s
/// the agent in the same process, keeping the descriptors that are not close-on-exec (fd 3).
const SH_LISTEN_PID: &str = r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#;

// ---------------------------------------------------------------------------------------
// systemd's notification socket
// ---------------------------------------------------------------------------------------

/// The socket systemd would listen on, and every message received on it so far.
struct NotifySocket {
    sock: UnixDatagram,
    /// The value of `NOTIFY_SOCKET` for the agent.
    env: String,
    /// Every message, in arrival order.
    seen: Vec<String>,
    /// Holds the socket's directory (path sockets only).
    _dir: Option<tempfile::TempDir>,
}

impl NotifySocket {
    /// A socket bound to a path in its own temporary directory; the directory (0755) and the
    /// socket (0666) let the dropped agent user send too, although the agent connects before
    /// the drop and never needs it.
    fn path() -> NotifySocket {
        let dir = tempfile::Builder::new()
            .prefix("monitoring-agent-notify.")
            .tempdir()
            .expect("create the notify socket's directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod socket");
        NotifySocket {
            sock,
            env: path.display().to_string(),
            seen: Vec::new(),
            _dir: Some(dir),
        }
    }

    /// A socket in the abstract namespace; the agent is given `@name`.
    fn abstract_ns() -> NotifySocket {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "monitoring-agent-test-notify-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifySocket {
            sock,
            env: format!("@{name}"),
            seen: Vec::new(),
            _dir: None,
        }
    }

    /// The next message, waiting at most `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set_read_timeout");
        let mut buf = vec![0u8; 65536];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8(buf[..n].to_vec())
                    .unwrap_or_else(|e| panic!("a notification is not UTF-8: {e}"));
                self.seen.push(msg.clone());
                Some(msg)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// The next message, whatever it is; fails (with the agent's output) after [`WAIT`], or as
    /// soon as the agent has exited without sending it.
    fn next(&mut self, what: &str, agent: &mut Proc) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.recv(Duration::from_millis(200)) {
                return m;
            }
            let exited = agent
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(st) = exited {
                // Whatever it sent before exiting is queued already.
                if let Some(m) = self.recv(Duration::from_millis(1)) {
                    return m;
                }
                panic!(
                    "the agent exited (code {:?}, signal {:?}) while waiting for {what}; \
                     received so far: {:?}\n{}",
                    st.code(),
                    st.signal(),
                    self.seen,
                    agent.diagnostics()
                );
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "no notification within {WAIT:?} while waiting for {what}; received so \
                     far: {:?}\n{}",
                    self.seen,
                    agent.diagnostics()
                );
            }
        }
    }

    /// The next message that is not `WATCHDOG=1` (the watchdog task runs on its own and may
    /// interleave with anything after the first `READY=1`).
    fn next_event(&mut self, what: &str, agent: &mut Proc) -> String {
        loop {
            let m = self.next(what, agent);
            if !is_watchdog(&m) {
                return m;
            }
        }
    }

    /// Messages already queued, without waiting.
    fn drain(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(m) = self.recv(Duration::from_millis(1)) {
            v.push(m);
        }
        v
    }

    fn watchdogs(&self) -> usize {
        self.seen.iter().filter(|m| is_watchdog(m)).count()
    }
}

fn is_watchdog(msg: &str) -> bool {
    msg == "WATCHDOG=1"
}

/// The message's `KEY=value` assignments, in order.
fn assignments(msg: &str) -> Vec<(String, String)> {
    msg.lines()
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("notification line {l:?} is not KEY=value: {msg:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field(msg: &str, key: &str) -> Option<String> {
    assignments(msg)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Asserts `msg` is `READY=1` with a short, one-line, non-empty `STATUS=`; returns the status.
fn assert_ready(msg: &str, agent: &Proc) -> String {
    let a = assignments(msg);
    assert_eq!(
        a.first().map(|(k, v)| (k.as_str(), v.as_str())),
        Some(("READY", "1")),
        "expected READY=1 first in the message, got {msg:?}\n{}",
        agent.diagnostics()
    );
    let status = field(msg, "STATUS")
        .unwrap_or_else(|| panic!("READY=1 without STATUS=: {msg:?}\n{}", agent.diagnostics()));
    assert!(
        !status.trim().is_empty() && status.len() <= 200,
        "STATUS= should be a short human line, got {status:?}"
    );
    status
}

// ---------------------------------------------------------------------------------------
// The agent, started with systemd's environment
// ---------------------------------------------------------------------------------------

/// An agent process started by these tests (possibly through `/bin/sh`, which `exec`s it: same
/// pid), killed and reaped on drop.
struct Proc {
    child: Option<Child>,
    stderr_path: PathBuf,
    log_path: PathBuf,
    argv: Vec<String>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("agent pid")
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        format!(
            "argv: {:?}\n--- stderr ---\n{}\n--- log file ---\n{}",
            self.argv,
            self.stderr(),
            fs::read_to_string(&self.log_path).unwrap_or_default()
        )
    }

    /// Waits (bounded) for the agent to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running agent");
        match wait_child(child, WAIT) {
            Some(st) => st,
            None => panic!(
                "the agent (pid {}) did not exit within {WAIT:?}\n{}",
                child.id(),
                self.diagnostics()
            ),
        }
    }

    fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How to start one agent.
struct Launch<'a> {
    dir: &'a TestDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Pass this listening socket as fd 3 and run through `/bin/sh` so that `LISTEN_PID` is the
    /// agent's pid.
    listen_fd: Option<i32>,
    /// Set `LISTEN_PID` to the agent's pid (through `/bin/sh`) even without a socket.
    listen_pid: bool,
    /// Start as the agent's user with an empty bounding set, as
    /// `contrib/systemd/monitoring-agent-socket.service` (`User=`, `CapabilityBoundingSet=`).
    unprivileged: bool,
    /// A seccomp program installed last before exec (systemd's `SystemCallFilter=`).
    seccomp_eperm: Option<Vec<libc::sock_filter>>,
}

impl<'a> Launch<'a> {
    fn new(dir: &'a TestDir, args: Vec<String>) -> Launch<'a> {
        Launch {
            dir,
            args,
            env: Vec::new(),
            listen_fd: None,
            listen_pid: false,
            unprivileged: false,
            seccomp_eperm: None,
        }
    }

    fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_string(), v.into()));
        self
    }

    fn notify(self, n: &NotifySocket) -> Self {
        let v = n.env.clone();
        self.env("NOTIFY_SOCKET", v)
    }

    fn watchdog(self, usec: u64) -> Self {
        self.env("WATCHDOG_USEC", usec.to_string())
    }

    fn spawn(self) -> Proc {
        static N: AtomicU32 = AtomicU32::new(0);
        let stderr_path = self
            .dir
            .path()
            .join(format!("stderr.{}.txt", N.fetch_add(1, Ordering::Relaxed)));
        let stderr = File::create(&stderr_path).expect("create stderr file");
        let through_sh = self.listen_fd.is_some() || self.listen_pid;
        let mut cmd = if through_sh {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(SH_LISTEN_PID).arg(BIN);
            c
        } else {
            Command::new(BIN)
        };
        cmd.args(&self.args);
        for v in SYSTEMD_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let listen_fd = self.listen_fd;
        let drop_to = self.unprivileged.then_some((self.dir.uid, self.dir.gid));
        let filter = self.seccomp_eperm.clone();
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (dup2, fcntl, prctl, setgroups, setresgid, setresuid);
        // it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = listen_fd {
                    if fd == 3 {
                        // Already in place: only clear close-on-exec.
                        let flags = libc::fcntl(3, libc::F_GETFD);
                        if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                        {
                            return Err(io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) < 0 {
                        // dup2 leaves the new descriptor without FD_CLOEXEC.
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = drop_to {
                    // CapabilityBoundingSet= (empty), then User=/Group= with no extra groups.
                    for cap in 0..64 {
                        if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                            && *libc::__errno_location() != libc::EINVAL
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    if libc::setgroups(0, std::ptr::null()) < 0
                        || libc::setresgid(gid, gid, gid) < 0
                        || libc::setresuid(uid, uid, uid) < 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(f) = &filter {
                    // Built on the stack: no allocation after fork.
                    let prog = libc::sock_fprog {
                        len: f.len() as u16,
                        filter: f.as_ptr() as *mut libc::sock_filter,
                    };
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
                        || libc::prctl(
                            libc::PR_SET_SECCOMP,
                            libc::SECCOMP_MODE_FILTER,
                            &prog as *const libc::sock_fprog,
                        ) < 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut argv: Vec<String> = Vec::new();
        if through_sh {
            argv.extend(["/bin/sh".into(), "-c".into(), SH_LISTEN_PID.into()]);
        }
        argv.push(BIN.into());
        argv.extend(self.args.iter().cloned());
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        argv.insert(0, format!("env: {env:?}"));
        let child = cmd.spawn().expect("spawn the agent");
        Proc {
            child: Some(child),
            stderr_path,
            log_path: self.dir.log_file(),
            argv,
        }
    }
}

/// The arguments of a root-started agent listening on `127.0.0.1:port`.
fn listen_args(dir: &TestDir, port: u16) -> Vec<String> {
    let mut v = vec![
        "--web.listen-address".to_string(),
        format!("127.0.0.1:{port}"),
    ];
    v.extend(dir.file_args());
    v
}

/// A free loopback port below 1024 (800-899), bound then released; distinct for each call in
/// this process so that parallel tests do not pick the same one.
fn free_low_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..100 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
        let port = 800 + (i % 100) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 800-899");
}

/// A listening socket on a free loopback port below 1024 (800-899), kept bound.
fn low_listener() -> TcpListener {
    static NEXT: AtomicU32 = AtomicU32::new(50);
    for _ in 0..100 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
        let port = 800 + (i % 100) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l;
        }
    }
    panic!("no free loopback port in 800-899");
}

// ---------------------------------------------------------------------------------------
// What /proc says about the agent's threads
// ---------------------------------------------------------------------------------------

/// The security-relevant lines of one thread's `/proc/PID/task/TID/status`.
#[derive(Debug)]
// `tid` and `name` are read through `Debug`, in failure messages.
#[allow(dead_code)]
struct ThreadState {
    tid: String,
    name: String,
    uids: Vec<u32>,
    gids: Vec<u32>,
    groups: Vec<u32>,
    cap_inh: u64,
    cap_prm: u64,
    cap_eff: u64,
    cap_bnd: u64,
    cap_amb: u64,
    no_new_privs: u32,
    seccomp: u32,
}

fn parse_status(tid: &str, text: &str) -> ThreadState {
    let line = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key}: line in the status of thread {tid}:\n{text}"))
    };
    let ids = |key: &str| -> Vec<u32> {
        line(key)
            .split_whitespace()
            .map(|n| n.parse().expect("numeric id"))
            .collect()
    };
    let hex = |key: &str| u64::from_str_radix(&line(key), 16).expect("hex capability mask");
    ThreadState {
        tid: tid.to_string(),
        name: line("Name"),
        uids: ids("Uid"),
        gids: ids("Gid"),
        groups: ids("Groups"),
        cap_inh: hex("CapInh"),
        cap_prm: hex("CapPrm"),
        cap_eff: hex("CapEff"),
        cap_bnd: hex("CapBnd"),
        cap_amb: hex("CapAmb"),
        no_new_privs: line("NoNewPrivs").parse().expect("NoNewPrivs"),
        seccomp: line("Seccomp").parse().expect("Seccomp"),
    }
}

/// Every thread of `pid`, read at once.
fn threads(pid: u32) -> Vec<ThreadState> {
    let mut v = Vec::new();
    let rd = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/task: {e}"));
    for e in rd.flatten() {
        let tid = e.file_name().to_string_lossy().into_owned();
        // A thread may end between the listing and the read.
        if let Ok(text) = fs::read_to_string(e.path().join("status")) {
            v.push(parse_status(&tid, &text));
        }
    }
    assert!(!v.is_empty(), "no thread status readable for pid {pid}");
    v
}

/// Asserts every thread runs sandboxed as the agent's user: all four uids and gids dropped, no
/// supplementary group, no_new_privs, a seccomp filter (mode 2), and no capability in any set
/// but those in `allowed` (which may be 0: none at all).
fn assert_sandboxed(states: &[ThreadState], dir: &TestDir, allowed: u64, agent: &Proc) {
    let bad: Vec<String> = states
        .iter()
        .filter(|t| {
            t.uids.iter().any(|u| *u != dir.uid)
                || t.gids.iter().any(|g| *g != dir.gid)
                || t.groups.iter().any(|g| *g != dir.gid)
                || t.no_new_privs != 1
                || t.seccomp != 2
                || (t.cap_inh | t.cap_prm | t.cap_eff | t.cap_bnd | t.cap_amb) & !allowed != 0
        })
        .map(|t| format!("{t:?}"))
        .collect();
    assert!(
        bad.is_empty(),
        "threads not sandboxed as uid {} gid {} with Seccomp: 2, NoNewPrivs: 1 and capabilities \
         within {allowed:#x}:\n{}\nall threads: {states:#?}\n{}",
        dir.uid,
        dir.gid,
        bad.join("\n"),
        agent.diagnostics()
    );
}

fn monotonic_usec() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000
}

/// Receives until `n` `WATCHDOG=1` messages in all have arrived; fails on anything else.
fn wait_watchdogs(n: &mut NotifySocket, count: usize, agent: &mut Proc) {
    while n.watchdogs() < count {
        let m = n.next(&format!("{count} WATCHDOG=1 messages"), agent);
        assert!(
            is_watchdog(&m),
            "unexpected notification {m:?} while only WATCHDOG=1 was due; all: {:?}",
            n.seen
        );
    }
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// The whole protocol on a path socket, in order: READY=1 (sandboxed and serving by then),
/// WATCHDOG=1 repeatedly, RELOADING=1 + MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on
/// SIGTERM, exit 0. The agent listens on a port below 1024, kept through
/// CAP_NET_BIND_SERVICE, the only capability left.
#[test]
fn notify_protocol_in_order_and_sandboxed_at_ready() {
    let dir = TestDir::new();
    let port = free_low_port();
    let mut n = NotifySocket::path();
    let mut agent = Launch::new(&dir, listen_args(&dir, port))
        .notify(&n)
        .watchdog(WATCHDOG_USEC)
        .spawn();

    // READY=1 must be the very first message.
    let first = n.next("READY=1", &mut agent);
    // Read every thread's state at once, before anything else.
    let at_ready = threads(agent.pid());
    let status = assert_ready(&first, &agent);
    assert_sandboxed(&at_ready, &dir, CAP_NET_BIND_SERVICE, &agent);
    assert!(
        at_ready
            .iter()
            .any(|t| t.cap_eff & CAP_NET_BIND_SERVICE != 0),
        "CAP_NET_BIND_SERVICE is not effective in any thread: {at_ready:#?}"
    );
    // ... and the server already answers.
    let r = http(loopback(port), "GET", "/", &[])
        .unwrap_or_else(|e| panic!("GET / right after READY=1: {e}\n{}", agent.diagnostics()));
    assert_eq!(r.status, 200, "GET / right after READY=1: {r:?}");
    assert!(
        status.contains(&format!("127.0.0.1:{port}")),
        "STATUS= should say where the agent serves (127.0.0.1:{port}): {status:?}"
    );

    // The watchdog keeps notifying (due every WATCHDOG_USEC/2).
    wait_watchdogs(&mut n, 3, &mut agent);

    // SIGHUP: RELOADING=1 with our CLOCK_MONOTONIC, then READY=1 again.
    let before = monotonic_usec();
    agent.signal(Signal::SIGHUP);
    let reloading = n.next_event("RELOADING=1", &mut agent);
    let after = monotonic_usec();
    let a = assignments(&reloading);
    assert_eq!(
        a.first().map(|(k, v)| (k.as_str(), v.as_str())),
        Some(("RELOADING", "1")),
        "after SIGHUP expected RELOADING=1, got {reloading:?}; all: {:?}",
        n.seen
    );
    let mono: u64 = field(&reloading, "MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {reloading:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("MONOTONIC_USEC is not a number in {reloading:?}: {e}"));
    assert!(
        (before..=after).contains(&mono),
        "MONOTONIC_USEC={mono} is not CLOCK_MONOTONIC at the time of the reload (between {before} \
         and {after}): systemd would reject it"
    );
    let ready_again = n.next_event("READY=1 after the reload", &mut agent);
    assert_ready(&ready_again, &agent);
    let r = http(loopback(port), "GET", "/", &[])
        .unwrap_or_else(|e| panic!("GET / after the reload: {e}\n{}", agent.diagnostics()));
    assert_eq!(r.status, 200, "GET / after the reload: {r:?}");

    // The watchdog still notifies after the reload.
    let so_far = n.watchdogs();
    wait_watchdogs(&mut n, so_far + 2, &mut agent);

    // SIGTERM: STOPPING=1, then exit 0.
    agent.signal(Signal::SIGTERM);
    let stopping = n.next_event("STOPPING=1", &mut agent);
    assert_eq!(
        assignments(&stopping)
            .first()
            .map(|(k, v)| (k.clone(), v.clone())),
        Some(("STOPPING".into(), "1".into())),
        "after SIGTERM expected STOPPING=1, got {stopping:?}; all: {:?}",
        n.seen
    );
    let st = agent.wait_exit();
    assert_eq!(
        st.code(),
        Some(0),
        "exit status after SIGTERM: {st:?}\n{}",
        agent.diagnostics()
    );
    n.drain();

    // The order of everything but the watchdog's messages.
    let events: Vec<String> = n
        .seen
        .iter()
        .filter(|m| !is_watchdog(m))
        .map(|m| m.lines().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        events,
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
        "notifications out of order; all received: {:?}",
        n.seen
    );
    assert!(
        !is_watchdog(&n.seen[0]),
        "WATCHDOG=1 before READY=1: {:?}",
        n.seen
    );
}

/// `NOTIFY_SOCKET=@name` (abstract namespace), as systemd may pass it: READY=1 when sandboxed
/// (Landlock scopes abstract sockets, but the one connected before the sandbox keeps working),
/// WATCHDOG=1, and STOPPING=1 on SIGTERM.
#[test]
fn notify_abstract_socket() {
    let dir = TestDir::new();
    let port = free_port();
    let mut n = NotifySocket::abstract_ns();
    let mut agent = Launch::new(&dir, listen_args(&dir, port))
        .notify(&n)
        .watchdog(WATCHDOG_USEC)
        .spawn();
    let first = n.next("READY=1", &mut agent);
    let at_ready = threads(agent.pid());
    assert_ready(&first, &agent);
    assert_sandboxed(&at_ready, &dir, CAP_NET_BIND_SERVICE, &agent);
    wait_watchdogs(&mut n, 2, &mut agent);
    agent.signal(Signal::SIGTERM);
    let stopping = n.next_event("STOPPING=1", &mut agent);
    assert!(
        stopping.starts_with("STOPPING=1"),
        "after SIGTERM expected STOPPING=1, got {stopping:?}; all: {:?}",
        n.seen
    );
    let st = agent.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}\n{}", agent.diagnostics());
}

/// A procfs root for `--path.procfs`, readable by the agent's user (Landlock grants it
/// read-only), whose `loadavg` is either a regular file or a FIFO nobody writes (opening it
/// blocks forever: the watchdog's health probe wedges).
fn procfs_root(dir: &TestDir, wedged: bool) -> PathBuf {
    let root = dir.path().join("proc");
    fs::create_dir(&root).expect("create procfs root");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod procfs root");
    let loadavg = root.join("loadavg");
    if wedged {
        nix::unistd::mkfifo(&loadavg, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo loadavg");
        // mkfifo honours the umask: make sure the agent's user may open it.
        fs::set_permissions(&loadavg, fs::Permissions::from_mode(0o644)).expect("chmod fifo");
    } else {
        write_in_place(&loadavg, "0.06 0.27 0.15 1/81 6037\n");
    }
    // The rest is the host's, for whatever else the agent reads under its procfs root.
    for name in ["stat", "meminfo", "uptime", "version", "cpuinfo"] {
        let _ = std::os::unix::fs::symlink(Path::new("/proc").join(name), root.join(name));
    }
    root
}

/// A wedged agent (its `loadavg` probe blocked on a FIFO) sends no WATCHDOG=1 at all, so that
/// systemd restarts it; over the same window a healthy twin, identical but for a readable
/// `loadavg`, sends several. The window is counted in the twin's messages, not in seconds: it
/// spans more than four WATCHDOG_USEC intervals.
#[test]
fn wedged_agent_stops_watchdog_notifications() {
    let wedged_dir = TestDir::new();
    let healthy_dir = TestDir::new();
    let mut wn = NotifySocket::path();
    let mut hn = NotifySocket::path();

    let wedged_port = free_port();
    let mut args = listen_args(&wedged_dir, wedged_port);
    args.push("--path.procfs".into());
    args.push(procfs_root(&wedged_dir, true).display().to_string());
    let mut wedged = Launch::new(&wedged_dir, args)
        .notify(&wn)
        .watchdog(WATCHDOG_USEC)
        .spawn();
    let first = wn.next("READY=1 from the wedged agent", &mut wedged);
    assert_ready(&first, &wedged);

    // Started after the wedged one: its window is contained in the wedged agent's.
    let healthy_port = free_port();
    let mut args = listen_args(&healthy_dir, healthy_port);
    args.push("--path.procfs".into());
    args.push(procfs_root(&healthy_dir, false).display().to_string());
    let mut healthy = Launch::new(&healthy_dir, args)
        .notify(&hn)
        .watchdog(WATCHDOG_USEC)
        .spawn();
    let first = hn.next("READY=1 from the healthy agent", &mut healthy);
    assert_ready(&first, &healthy);
    // 10 notifications at WATCHDOG_USEC/2 each: 5 watchdog intervals.
    wait_watchdogs(&mut hn, 10, &mut healthy);

    let from_wedged = wn.drain();
    assert!(
        wn.watchdogs() == 0,
        "the wedged agent (loadavg probe blocked) still sent WATCHDOG=1 while the healthy one \
         sent {}: systemd would never restart it; received: {:?}\n{}",
        hn.watchdogs(),
        wn.seen,
        wedged.diagnostics()
    );
    assert!(
        from_wedged.is_empty(),
        "unexpected notifications from the wedged agent: {from_wedged:?}"
    );
    // The wedged agent is still alive (only its probe is stuck): the watchdog is what catches it.
    assert!(
        alive(wedged.pid()),
        "the wedged agent exited\n{}",
        wedged.diagnostics()
    );
    let log = fs::read_to_string(wedged_dir.log_file()).unwrap_or_default();
    assert!(
        log.contains("watchdog"),
        "the wedged agent should log why it withholds WATCHDOG=1:\n{}",
        wedged.diagnostics()
    );
}

/// A full scrape of `/metrics` on `port`; on failure, says whether the agent died and how (a
/// seccomp kill shows as signal 31, SIGSYS).
fn full_scrape(agent: &mut Proc, port: u16) -> String {
    match http(loopback(port), "GET", "/metrics", &[]) {
        Ok(r) if r.status == 200 => r.text(),
        other => {
            let exit = agent
                .child
                .as_mut()
                .and_then(|c| wait_child(c, Duration::from_secs(2)));
            panic!(
                "full scrape of /metrics on port {port} failed: {other:?}; the agent {}\n{}",
                match exit {
                    Some(st) => format!(
                        "exited: code {:?}, signal {:?} (31 = SIGSYS: killed by its seccomp \
                         filter; `dmesg | grep type=1326` names the syscall)",
                        st.code(),
                        st.signal()
                    ),
                    None => "is still running".to_string(),
                },
                agent.diagnostics()
            )
        }
    }
}

/// Socket activation as root: the test binds a port below 1024 and passes it as fd 3
/// (LISTEN_FDS=1, LISTEN_PID = the agent's pid) with `--web.systemd-socket`. The agent serves
/// on that very socket, keeps no capability at all (CapPrm, CapEff, CapBnd, CapAmb, CapInh all
/// 0) yet is sandboxed (Seccomp 2, dropped uid), READY=1 comes once that holds, and a full
/// scrape is served.
#[test]
fn socket_activation_as_root_keeps_no_capability() {
    let dir = TestDir::new();
    let listener = low_listener();
    let port = listener.local_addr().expect("local_addr").port();
    let inode = fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .map(|m| m.ino())
        .expect("inode of the passed socket");
    let mut n = NotifySocket::path();
    let mut args = vec!["--web.systemd-socket".to_string()];
    args.extend(dir.file_args());
    let mut launch = Launch::new(&dir, args)
        .notify(&n)
        .watchdog(WATCHDOG_USEC)
        .env("LISTEN_FDS", "1");
    launch.listen_fd = Some(listener.as_raw_fd());
    let mut agent = launch.spawn();
    // The agent holds the socket now; ours goes.
    drop(listener);

    let first = n.next("READY=1", &mut agent);
    let at_ready = threads(agent.pid());
    let status = assert_ready(&first, &agent);
    assert_sandboxed(&at_ready, &dir, 0, &agent);
    assert!(
        status.contains(&port.to_string()),
        "STATUS= should name the passed socket's address (port {port}): {status:?}"
    );

    // It serves on the passed socket, holds that socket, and nothing else listens there.
    let r = http(loopback(port), "GET", "/", &[])
        .unwrap_or_else(|e| panic!("GET / on the passed socket: {e}\n{}", agent.diagnostics()));
    assert_eq!(r.status, 200, "GET / on the passed socket: {r:?}");
    let target = format!("socket:[{inode}]");
    let holds = fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .expect("read the agent's fds")
        .flatten()
        .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target));
    assert!(
        holds,
        "the agent does not hold the passed socket {target}\n{}",
        agent.diagnostics()
    );
    assert_eq!(
        listening_inode(port),
        Some(inode),
        "something else than the passed socket listens on port {port}"
    );
    wait_watchdogs(&mut n, 2, &mut agent);

    // A full scrape (every default collector) on the passed socket.
    let body = full_scrape(&mut agent, port);
    must_value(&body, "node_load1", &[]);
    must_value(
        &body,
        "monitoring_agent_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    // Still no capability, after serving.
    assert_sandboxed(&threads(agent.pid()), &dir, 0, &agent);

    agent.signal(Signal::SIGTERM);
    let stopping = n.next_event("STOPPING=1", &mut agent);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    let st = agent.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}\n{}", agent.diagnostics());
}

/// The arguments of `contrib/systemd/monitoring-agent-socket.service`'s `ExecStart=`, the
/// binary dropped and the log file moved into the test's directory.
fn contrib_unit_args(dir: &TestDir) -> Vec<String> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/systemd/monitoring-agent-socket.service");
    let text = fs::read_to_string(&unit).unwrap_or_else(|e| panic!("{}: {e}", unit.display()));
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= in {}", unit.display()));
    let mut words = exec.split_whitespace().map(str::to_string);
    let bin = words.next().expect("ExecStart= names the binary");
    assert!(bin.ends_with("/monitoring-agent"), "ExecStart= runs {bin}");
    let log = dir.log_file().display().to_string();
    words
        .map(|w| w.replace("/var/log/monitoring-agent/monitoring-agent.log", &log))
        .collect()
}

/// System calls of systemd's `@privileged` set that exist on this architecture: the socket
/// unit's `SystemCallFilter=~@privileged` (with `SystemCallErrorNumber=EPERM`) makes each fail
/// with EPERM. The `@chown`, `@clock`, `@module`, `@reboot`, `@swap` members are included.
fn privileged_syscalls() -> Vec<libc::c_long> {
    vec![
        libc::SYS_capset,
        libc::SYS_setgroups,
        libc::SYS_setresuid,
        libc::SYS_setreuid,
        libc::SYS_setuid,
        libc::SYS_setfsuid,
        libc::SYS_chroot,
        libc::SYS_bpf,
        libc::SYS_acct,
        libc::SYS_pivot_root,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
        libc::SYS_open_by_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_fanotify_mark,
        libc::SYS_quotactl,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_clock_adjtime,
        libc::SYS_clock_settime,
        libc::SYS_settimeofday,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_kexec_load,
        libc::SYS_swapon,
        libc::SYS_swapoff,
    ]
}

/// A classic BPF seccomp program answering EPERM to `nrs` on the native architecture and
/// allowing everything else, as systemd's `SystemCallFilter=~...` + `SystemCallErrorNumber=EPERM`.
fn eperm_filter(nrs: &[libc::c_long]) -> Vec<libc::sock_filter> {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let n = nrs.len();
    assert!(n < 250);
    let mut f = vec![
        stmt(LD_W_ABS, 4), // seccomp_data.arch
        libc::sock_filter {
            code: JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH,
        },
        stmt(RET_K, ALLOW),
        stmt(LD_W_ABS, 0), // seccomp_data.nr
    ];
    for (i, nr) in nrs.iter().enumerate() {
        f.push(libc::sock_filter {
            code: JEQ_K,
            jt: (n - i) as u8,
            jf: 0,
            k: *nr as u32,
        });
    }
    f.push(stmt(RET_K, ALLOW));
    f.push(stmt(RET_K, ERRNO | libc::EPERM as u32));
    f
}

/// Starts the agent as `contrib/systemd/monitoring-agent-socket.service` would: the agent's
/// user (`User=`), no supplementary group, an empty bounding set (`CapabilityBoundingSet=`),
/// no_new_privs (`NoNewPrivileges=yes`), its `@privileged` system calls answered with EPERM
/// (`SystemCallFilter=~@privileged`, `SystemCallErrorNumber=EPERM`), the listening socket on a
/// port below 1024 bound by "systemd" (the test) as fd 3. Checks READY=1, no capability,
/// sandboxed, a full scrape served, STOPPING=1 and exit 0.
fn run_as_contrib_socket_unit(dir: &TestDir, args: Vec<String>) {
    let listener = low_listener();
    let port = listener.local_addr().expect("local_addr").port();
    let mut n = NotifySocket::path();
    let mut launch = Launch::new(dir, args)
        .notify(&n)
        .watchdog(WATCHDOG_USEC)
        .env("LISTEN_FDS", "1");
    launch.listen_fd = Some(listener.as_raw_fd());
    launch.unprivileged = true;
    launch.seccomp_eperm = Some(eperm_filter(&privileged_syscalls()));
    let mut agent = launch.spawn();
    drop(listener);

    let first = n.next("READY=1", &mut agent);
    let at_ready = threads(agent.pid());
    assert_ready(&first, &agent);
    assert_sandboxed(&at_ready, dir, 0, &agent);
    let body = full_scrape(&mut agent, port);
    must_value(&body, "node_load1", &[]);
    agent.signal(Signal::SIGTERM);
    let stopping = n.next_event("STOPPING=1", &mut agent);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    let st = agent.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}\n{}", agent.diagnostics());
}

/// The socket unit's own `ExecStart=` command line is accepted and the agent becomes ready.
#[test]
fn contrib_socket_unit_exec_start_runs() {
    let dir = TestDir::new();
    let args = contrib_unit_args(&dir);
    run_as_contrib_socket_unit(&dir, args);
}

/// The same sandbox as the socket unit's, with only the flags it needs (`--web.systemd-socket`
/// and the log file; started unprivileged, the agent has no PID file by default): it starts,
/// sandboxes itself without any privileged system call, and serves with no capability.
#[test]
fn socket_activation_unprivileged_under_the_units_sandbox() {
    let dir = TestDir::new();
    let args = vec![
        "--web.systemd-socket".to_string(),
        "--log-file".to_string(),
        dir.log_file().display().to_string(),
    ];
    run_as_contrib_socket_unit(&dir, args);
}

/// `--web.systemd-socket` without a usable passed socket: the agent refuses to start with a
/// clear error on stderr (the journal) naming what is missing, exits non-zero (not killed by a
/// signal), and never says READY=1.
#[test]
fn systemd_socket_flag_without_passed_socket_is_refused() {
    let dir = TestDir::new();
    let devnull = File::open("/dev/null").expect("open /dev/null");
    // (what, LISTEN_PID = the agent's pid, LISTEN_FDS, fd 3, expected in the error)
    type Case<'a> = (&'a str, bool, Option<&'a str>, Option<i32>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no LISTEN_FDS nor LISTEN_PID",
            false,
            None,
            None,
            "LISTEN_PID",
        ),
        (
            "LISTEN_PID but no LISTEN_FDS",
            true,
            None,
            None,
            "LISTEN_FDS",
        ),
        ("LISTEN_FDS=0", true, Some("0"), None, "LISTEN_FDS"),
        (
            "LISTEN_PID of another process",
            false,
            Some("1"),
            None,
            "LISTEN_PID",
        ),
        (
            "fd 3 is not a socket",
            true,
            Some("1"),
            Some(devnull.as_raw_fd()),
            "descriptor 3",
        ),
        ("fd 3 is not open", true, Some("1"), None, "descriptor 3"),
    ];
    let mut failures = Vec::new();
    for (what, own_pid, fds, fd3, expected) in cases {
        let mut n = NotifySocket::path();
        let mut args = vec!["--web.systemd-socket".to_string()];
        args.extend(dir.file_args());
        let mut launch = Launch::new(&dir, args).notify(&n);
        if let Some(v) = fds {
            launch = launch.env("LISTEN_FDS", v);
        }
        if what == "LISTEN_PID of another process" {
            launch = launch.env("LISTEN_PID", "1");
        }
        launch.listen_pid = own_pid;
        launch.listen_fd = fd3;
        let mut agent = launch.spawn();
        let st = agent.wait_exit();
        let stderr = agent.stderr();
        let ready = n.drain().into_iter().any(|m| m.starts_with("READY=1"));
        let ok = st.code().is_some_and(|c| c != 0)
            && stderr.contains(expected)
            && stderr.contains("socket activation")
            && !ready;
        if !ok {
            failures.push(format!(
                "{what}: exit {:?} (signal {:?}), READY=1 sent: {ready}, expected a stderr line \
                 mentioning \"socket activation\" and {expected:?}\n{}",
                st.code(),
                st.signal(),
                agent.diagnostics()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "--web.systemd-socket without a usable passed socket:\n\n{}",
        failures.join("\n\n")
    );
    drop(devnull);
}
