//! Harness for the integration tests that run the real `monitoring-agent` binary.
//!
//! Every test gets its own temporary directory, prepared as systemd's `RuntimeDirectory=`
//! would prepare the agent's (mode 0755, owned by the agent's user, so that the dropped agent
//! can remove its PID file), and its own free loopback port. Agents are killed and reaped when
//! their [`Agent`] value is dropped, so a failing test leaves nothing running.
//!
//! The tests run as root (the agent starts as root and drops to `monitoring-agent`); they fail,
//! never skip, when that or one of their tools is missing, saying what to run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod tls;
pub mod ttar;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_monitoring-agent");
/// The user the agent drops to by default.
pub const AGENT_USER: &str = "monitoring-agent";
/// Upper bound for anything the agent should do "at once" (start, stop, reload). Never an
/// assertion on duration: only how long we wait before declaring failure.
pub const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------

/// Fails (never skips) unless the tests run as root and the agent's user exists.
pub fn require_root_and_user() -> (u32, u32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these integration tests start the agent as root (it binds, opens its files, then \
         drops to the '{AGENT_USER}' user): run them as root, e.g. `sudo scripts/test.sh` \
         or `sudo -E cargo test --test agent_serve`"
    );
    match nix::unistd::User::from_name(AGENT_USER) {
        Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
        _ => panic!(
            "the agent's user '{AGENT_USER}' does not exist: create it with \
             `useradd --system --no-create-home --home-dir /nonexistent --shell \
             /usr/sbin/nologin {AGENT_USER}` (scripts/test.sh does this)"
        ),
    }
}

/// A program named `name` in `$PATH`, or else in `/usr/bin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A directory for a [`Namespace`]'s files, under cargo's target tmp directory (not under /tmp,
/// which a namespace may replace with a private one), removed when dropped.
pub fn target_tempdir(prefix: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).expect("target tmp dir");
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .expect("temp dir")
}

/// A "host" of a test's own: a PID and mount namespace (`unshare --pid --fork --kill-child
/// --mount --propagation private --mount-proc`) whose PID 1 runs `bash SCRIPT ARGS...`.
/// Dropping it kills unshare, which (`--kill-child`) kills the namespace's PID 1 with SIGKILL,
/// and with it every process in the namespace (without that, agents started in it outlived
/// the test).
pub struct Namespace(Child);

impl Namespace {
    pub fn start<A: AsRef<std::ffi::OsStr>>(script: &Path, args: &[A]) -> Namespace {
        let unshare = find_program("unshare").expect("unshare (util-linux) is needed");
        let child = Command::new(unshare)
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--propagation",
                "private",
                "--mount-proc",
                "bash",
            ])
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the namespace");
        Namespace(child)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Path of `promtool`; fails, never skips, when it is missing.
pub fn promtool() -> PathBuf {
    find_program("promtool").unwrap_or_else(|| {
        panic!(
        "promtool not found: install it (Debian: `apt-get install prometheus`; scripts/test.sh \
         installs it) — the scrape tests check the exposition with `promtool check metrics`"
        )
    })
}

// ---------------------------------------------------------------------------------------
// Per-test directory and port
// ---------------------------------------------------------------------------------------

/// A free loopback port: bound on 127.0.0.1:0, read, released.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A free port on the IPv6 loopback as well as the IPv4 one.
pub fn free_port_v4_v6() -> u16 {
    for _ in 0..50 {
        let l4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l4.local_addr().expect("local_addr").port();
        match TcpListener::bind(("::1", port)) {
            Ok(_) => return port,
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                panic!("this host has no IPv6 loopback (::1): the IPv6 listen test needs it ({e})")
            }
            Err(_) => continue,
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1");
}

/// A test's directory: the agent's runtime directory (PID file, log file, config).
pub struct TestDir {
    dir: tempfile::TempDir,
    pub uid: u32,
    pub gid: u32,
}

impl TestDir {
    /// Creates the directory, mode 0755, owned by the agent's user (as systemd's
    /// `RuntimeDirectory=` would).
    pub fn new() -> TestDir {
        let (uid, gid) = require_root_and_user();
        let dir = tempfile::Builder::new()
            .prefix("monitoring-agent-test.")
            .tempdir()
            .expect("create temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown temp dir");
        TestDir { dir, uid, gid }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn pid_file(&self) -> PathBuf {
        self.path().join("agent.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.path().join("agent.log")
    }
    pub fn config_file(&self) -> PathBuf {
        self.path().join("agent.toml")
    }

    /// Writes the configuration file in place (same inode: the sandboxed agent may read this
    /// file, not its directory), world-readable so the dropped agent can re-read it on SIGHUP.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_file();
        write_in_place(&p, text);
        p
    }

    /// Names of the entries in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path())
            .expect("read temp dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    /// The log file's content ("" while it does not exist).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The PID file's content, if it exists.
    pub fn pid_file_content(&self) -> Option<String> {
        fs::read_to_string(self.pid_file()).ok()
    }

    /// The arguments every test passes: PID file and log file in this directory.
    pub fn file_args(&self) -> Vec<String> {
        vec![
            "--pid-file".into(),
            self.pid_file().display().to_string(),
            "--log-file".into(),
            self.log_file().display().to_string(),
        ]
    }
}

/// Truncates and rewrites `path` (keeping its inode), mode 0644.
pub fn write_in_place(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("write config");
    f.sync_all().expect("sync config");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// Runs the binary to completion (bounded) with the given arguments; stdin is /dev/null.
pub fn run(args: &[String]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monitoring-agent");
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let status = wait_child(&mut child, WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`monitoring-agent {}` did not exit within {WAIT:?}; stderr so far:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&err.lock().expect("lock"))
        )
    });
    // The pipes close when the process exits (or when whatever inherited them does).
    let out_bytes = wait_eof(&out);
    let err_bytes = wait_eof(&err);
    Output {
        status,
        stdout: out_bytes,
        stderr: err_bytes,
    }
}

fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut p) = pipe {
        let b = buf.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match p.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => b.lock().expect("lock").extend_from_slice(&chunk[..n]),
                }
            }
            // Dropping `b` here tells `wait_eof` that EOF was reached.
        });
    }
    buf
}

fn wait_eof(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<u8> {
    // The reader thread holds the other reference until EOF.
    let deadline = Instant::now() + WAIT;
    while Arc::strong_count(buf) > 1 && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    assert!(
        Arc::strong_count(buf) == 1,
        "an output pipe of monitoring-agent stayed open after it exited: a descendant \
         inherited it"
    );
    buf.lock().expect("lock").clone()
}

/// Waits for a child to exit, at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat)
            .first()
            .is_some_and(|s| *s != "Z" && *s != "X"),
        Err(_) => false,
    }
}

/// "pid N running", or how it ended when it is an unreaped child (a zombie keeps its wait
/// status in /proc/PID/stat), e.g. "killed by signal 31 (SIGSYS)".
pub fn process_state(pid: u32) -> String {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return format!("pid {pid} gone");
    };
    let f = stat_fields(&stat);
    if f.first() != Some(&"Z") {
        return format!("pid {pid} running (state {})", f.first().unwrap_or(&"?"));
    }
    // exit_code is the last field (52 of the full line).
    let Some(code) = f.last().and_then(|c| c.parse::<i32>().ok()) else {
        return format!("pid {pid} exited");
    };
    let sig = code & 0x7f;
    if sig != 0 {
        let name = Signal::try_from(sig).map_or("?", |s| s.as_str());
        format!("pid {pid} killed by signal {sig} ({name})")
    } else {
        format!("pid {pid} exited with status {}", (code >> 8) & 0xff)
    }
}

/// Fields of `/proc/PID/stat` after the command name: `[state, ppid, pgrp, session,
/// tty_nr, ...]`.
pub fn stat_fields(stat: &str) -> Vec<&str> {
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    after.split_whitespace().collect()
}

/// Waits until `pid` is gone (or a zombie); false if it is still running after `timeout`.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
    true
}

/// Live processes whose command line mentions `needle` (our unique temp dir), other than us.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                v.push((pid, cmd));
            }
        }
    }
    v
}

/// Asserts that no process started for this test directory is still running (bounded wait
/// for one that is exiting).
pub fn assert_nothing_running(dir: &TestDir) {
    let needle = dir.path().display().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for (pid, _) in &left {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
            panic!("processes left running for {needle}: {left:?}");
        }
        thread::sleep(POLL);
    }
}

/// Whether something accepts TCP connections on `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// Polls `cond` until it holds, at most [`WAIT`]; panics with `what()` otherwise.
pub fn wait_until(what: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {WAIT:?} waiting for: {}", what());
        }
        thread::sleep(POLL);
    }
}

/// The inode of the socket listening on TCP `port` (IPv4 or IPv6), from /proc/net/tcp*.
pub fn listening_inode(port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            if f.len() > 9 && f[1].ends_with(&want) && f[3] == "0A" {
                return f[9].parse().ok();
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// A running agent
// ---------------------------------------------------------------------------------------

/// A `monitoring-agent` started by a test, killed and reaped on drop.
pub struct Agent {
    child: Option<Child>,
    /// Daemon mode: the daemon's pid (not our child).
    daemon_pid: Option<u32>,
    stderr: Arc<Mutex<Vec<u8>>>,
    pub port: u16,
    pub args: Vec<String>,
    /// The test directory's path (to recognise our processes in /proc).
    tag: String,
    log_file: PathBuf,
}

/// How to start an agent.
pub struct Start<'a> {
    pub dir: &'a TestDir,
    pub port: u16,
    /// Arguments added after the defaults (`--web.listen-address 127.0.0.1:PORT`, PID file,
    /// log file).
    pub extra: Vec<String>,
    /// When false, no `--web.listen-address` is passed (the test passes its own).
    pub listen_arg: bool,
    /// Environment variables set for the agent (on top of the tests' own environment).
    pub env: Vec<(String, String)>,
    /// The soft `RLIMIT_NOFILE` the agent starts with (the hard limit is kept).
    pub nofile_soft: Option<u64>,
    /// The agent's working directory (the test's own when `None`).
    pub current_dir: Option<PathBuf>,
}

impl<'a> Start<'a> {
    pub fn new(dir: &'a TestDir) -> Start<'a> {
        Start {
            dir,
            port: free_port(),
            extra: Vec::new(),
            listen_arg: true,
            env: Vec::new(),
            nofile_soft: None,
            current_dir: None,
        }
    }
    /// Starts the agent in `dir` (for relative paths in its arguments).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.extra.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn no_listen_arg(mut self) -> Self {
        self.listen_arg = false;
        self
    }
    /// Starts the agent with this soft descriptor limit (as systemd's default 1024).
    pub fn nofile_soft(mut self, soft: u64) -> Self {
        self.nofile_soft = Some(soft);
        self
    }
    /// Sets an environment variable for the agent (e.g. `NOTIFY_SOCKET`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The full argument list.
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.listen_arg {
            v.push("--web.listen-address".into());
            v.push(format!("127.0.0.1:{}", self.port));
        }
        v.extend(self.dir.file_args());
        v.extend(self.extra.iter().cloned());
        v
    }

    /// Starts the agent in the foreground and waits until its port accepts connections.
    pub fn spawn(self) -> Agent {
        let agent = self.spawn_no_wait();
        agent.wait_listening();
        agent
    }

    /// Starts the agent in the foreground without waiting.
    pub fn spawn_no_wait(self) -> Agent {
        let args = self.argv();
        let mut cmd = Command::new(BIN);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        if let Some(soft) = self.nofile_soft {
            use nix::sys::resource::{getrlimit, setrlimit, Resource};
            use std::os::unix::process::CommandExt;
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monitoring-agent");
        let stderr = collect(child.stderr.take());
        Agent {
            child: Some(child),
            daemon_pid: None,
            stderr,
            port: self.port,
            args,
            tag: self.dir.path().display().to_string(),
            log_file: self.dir.log_file(),
        }
    }
}

impl Agent {
    /// The agent's pid (the foreground child, or the daemon).
    pub fn pid(&self) -> u32 {
        self.daemon_pid
            .or_else(|| self.child.as_ref().map(Child::id))
            .expect("agent pid")
    }

    /// Wraps a daemon started by a launching command, for cleanup and helpers.
    pub fn adopt_daemon(dir: &TestDir, port: u16, pid: u32, args: Vec<String>) -> Agent {
        Agent {
            child: None,
            daemon_pid: Some(pid),
            stderr: Arc::new(Mutex::new(Vec::new())),
            port,
            args,
            tag: dir.path().display().to_string(),
            log_file: dir.log_file(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// What the agent wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// The log file's content.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Stderr and log file, for failure messages.
    pub fn diagnostics(&self) -> String {
        let pid = self
            .daemon_pid
            .or_else(|| self.child.as_ref().map(Child::id));
        format!(
            "args: {:?}\nprocess: {}\n--- stderr ---\n{}\n--- log file ---\n{}",
            self.args,
            pid.map_or("none".into(), process_state),
            self.stderr(),
            self.log()
        )
    }

    /// Whether the foreground child has exited (and its status), without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits until the agent serves HTTP on its port; fails with the agent's output if it
    /// exits first or never serves.
    ///
    /// "Serving" means an HTTP response, not an accepted connection: the socket is bound and
    /// listening (so the kernel accepts) before the runtime and its signal handlers exist, and
    /// a signal sent in that window would meet the start-up dispositions.
    pub fn wait_listening(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok() {
                if let Ok(r) = http(self.addr(), "GET", "/", &[]) {
                    assert_eq!(r.status, 200, "landing page: {r:?}\n{}", self.diagnostics());
                    return;
                }
            }
            if let Some(child) = self.child.as_ref() {
                // try_wait needs &mut; peek through /proc instead.
                if !alive(child.id()) {
                    panic!(
                        "monitoring-agent exited before listening on {}\n{}",
                        self.addr(),
                        self.diagnostics()
                    );
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "monitoring-agent did not listen on {} within {WAIT:?}\n{}",
                    self.addr(),
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
    }

    /// Waits (bounded) for the foreground agent to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("foreground agent");
        match wait_child(child, WAIT) {
            Some(st) => st,
            None => panic!(
                "monitoring-agent (pid {}) did not exit within {WAIT:?}\n{}",
                child.id(),
                self.diagnostics()
            ),
        }
    }

    /// Waits (bounded) until the log file contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut log = String::new();
        wait_until(
            || format!("log line containing {needle:?}\n{}", self.diagnostics()),
            || {
                log = self.log();
                log.contains(needle)
            },
        );
        log
    }

    /// One HTTP request to the agent.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        http(self.addr(), method, path, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.diagnostics()))
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    /// GET the path, asserting 200, and return the body as text.
    pub fn scrape(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {r:?}\n{}", self.diagnostics());
        r.text()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = self.daemon_pid.take() {
            // Only if it still is our daemon (the pid could have been reused).
            let ours = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&self.tag))
                .unwrap_or(false);
            if ours && alive(pid) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                wait_gone(pid, WAIT);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(2000).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body (start)", &shown)
            .finish()
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is UTF-8")
    }
    /// The body, gunzipped.
    pub fn gunzip(&self) -> String {
        let mut d = flate2::read::GzDecoder::new(&self.body[..]);
        let mut s = String::new();
        d.read_to_string(&mut s).expect("gzip body decodes");
        s
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    http_on(&mut s, addr, method, path, headers)
}

/// Sends one request on an existing connection and reads the response to EOF.
pub fn http_on(
    s: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send request: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read response: {e} (got {} bytes)", raw.len()))?;
    parse_response(&raw, method == "HEAD")
}

/// Parses a complete HTTP/1.1 response (read to EOF).
pub fn parse_response(raw: &[u8], head_request: bool) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| format!("head not UTF-8: {e}"))?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 {
        if !rest.is_empty() {
            return Err(format!(
                "{} bytes after the head of a response that has no body",
                rest.len()
            ));
        }
        return Ok(resp);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        resp.body = dechunk(rest)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() != len {
            return Err(format!(
                "Content-Length {len} but {} body bytes before EOF",
                rest.len()
            ));
        }
        resp.body = rest.to_vec();
    } else {
        resp.body = rest.to_vec();
    }
    Ok(resp)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_line = std::str::from_utf8(&data[..nl]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        data = &data[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// Exposition checks
// ---------------------------------------------------------------------------------------

/// Runs `promtool check metrics` on a Prometheus text-format body. Parse errors (exit 1)
/// always fail. Lint problems (exit 3) fail too, except on `node_*` names: those are
/// node_exporter's own names (`node_memory_MemTotal_bytes`, `node_netstat_Tcp_InSegs`,
/// `node_entropy_available_bits`, ...), kept on purpose by a drop-in replacement, and
/// node_exporter's output gets the same lint. The agent's own names must be lint-clean.
pub fn assert_promtool_ok(body: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = body.to_string();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool output");
    let _ = writer.join();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    if code == Some(0) {
        return;
    }
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("node_"))
        .collect();
    // promtool exits 3 for lint problems only, 1 for errors (parse failures).
    assert!(
        code == Some(3) && unexpected.is_empty(),
        "promtool check metrics failed (exit {code:?}):\n{}\n--- body (start) ---\n{}",
        unexpected.join("\n"),
        body.chars().take(4000).collect::<String>()
    );
}

/// Metric families declared by `# TYPE` lines: name → type.
pub fn types(body: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                let prev = m.insert(n.to_string(), t.to_string());
                assert!(prev.is_none(), "family {n} declared twice");
            }
        }
    }
    m
}

/// Samples as (name, labels as written, value).
pub fn samples(body: &str) -> Vec<(String, String, f64)> {
    let mut v = Vec::new();
    for l in body.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let (series, value) = match l.rfind('}') {
            Some(i) => (&l[..=i], l[i + 1..].trim()),
            None => {
                let mut it = l.splitn(2, ' ');
                (it.next().unwrap_or(""), it.next().unwrap_or("").trim())
            }
        };
        let value = value.split_whitespace().next().unwrap_or("");
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("sample value {v:?} in line {l:?}")),
        };
        v.push((name.to_string(), labels.to_string(), value));
    }
    v
}

/// The value of the one sample named `name` whose labels contain every `label="value"` pair
/// given.
pub fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(body)
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, _, v)| v)
        .collect();
    match found.len() {
        0 => None,
        1 => Some(found[0]),
        n => panic!("{n} samples of {name} match {labels:?}"),
    }
}

/// Like [`value`], but fails with the body when the sample is missing.
/// Asserts that the scrape `body` reports each sandbox layer a test run depends on
/// (Landlock's file system rules, seccomp, the privilege drop, `no_new_privs`) as enforced;
/// `run` names the run in the failure, `diagnostics` is the agent's output.
pub fn assert_sandbox_enforced(body: &str, run: &str, diagnostics: impl Fn() -> String) {
    for layer in [
        "landlock_fs",
        "seccomp",
        "privileges_dropped",
        "no_new_privs",
    ] {
        assert_eq!(
            must_value(
                body,
                "monitoring_agent_sandbox_enforced",
                &[("layer", layer)]
            ),
            1.0,
            "sandbox layer {layer} not enforced: {run}\n{}",
            diagnostics()
        );
    }
}

pub fn must_value(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(body, name, labels).unwrap_or_else(|| {
        panic!(
            "no sample {name}{labels:?} in the scrape:\n{}",
            body.chars().take(6000).collect::<String>()
        )
    })
}

/// Counts the lines of `text` that contain `needle`.
pub fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The file's inode, for "unchanged" checks.
pub fn inode(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Copies `src` to `dst` recursively: directories 0755, files 0644, symlinks as symlinks (the
/// sysfs fixtures use relative links), so the dropped, Landlocked agent can read the copy.
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    for e in fs::read_dir(src).unwrap_or_else(|e| panic!("read_dir {}: {e}", src.display())) {
        let e = e.expect("dir entry");
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().expect("file type");
        if ft.is_symlink() {
            let target = fs::read_link(&from).expect("readlink");
            std::os::unix::fs::symlink(&target, &to)
                .unwrap_or_else(|err| panic!("symlink {}: {err}", to.display()));
        } else if ft.is_dir() {
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).unwrap_or_else(|err| panic!("copy {}: {err}", from.display()));
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
        }
    }
}

/// `node_scrape_collector_success` of a scrape, by collector.
pub fn collector_success(body: &str) -> BTreeMap<String, f64> {
    samples(body)
        .into_iter()
        .filter(|(name, _, _)| name == "node_scrape_collector_success")
        .map(|(_, labels, v)| {
            let c = labels
                .split("collector=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string();
            (c, v)
        })
        .collect()
}
