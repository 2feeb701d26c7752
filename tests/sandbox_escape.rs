//! Escape attempts against a live, fully sandboxed agent, made from outside: gdb attaches to
//! the real running binary (started as root, dropped to the agent's user, Landlock + seccomp
//! applied) and makes its main thread call `syscall(2)` with what a compromised agent would
//! try. Each test then checks two things:
//!
//! * the OUTCOME, observed from outside: no connection or datagram reached a socket the test
//!   owns, no new listener or socket belongs to the agent, the log and PID files are intact and
//!   locked, the victim process lives on;
//! * that the injected call was REFUSED: the agent died of SIGSYS (seccomp's `kill_process`,
//!   seen in its exit status) or the call returned -1 and the agent still serves.
//!
//! Each case is a module with one test per mode, named `<case>::<mode>`:
//!
//! * `kernel_landlock_abi`: the default (`--sandbox enforce`) at the kernel's own Landlock ABI;
//! * `landlock_abi_1_seccomp_alone`: Landlock capped at ABI 1 (`--landlock-max-abi 1`, an old
//!   kernel): the seccomp filter must hold alone (network, unix sockets, io_uring, signals);
//! * `control_sandbox_off`: `--sandbox off`, where the same injection must escape: proof that the
//!   gdb script and the observation work, so that a sandboxed pass means something. Cases whose
//!   escape cannot succeed on a test host even without the sandbox (no CAP_NET_RAW, no SCTP, no
//!   x32), or where what holds is how the agent opens a descriptor, have no control.
//!
//! Cases: TCP connect and TCP Fast Open (sendto with MSG_FASTOPEN connects without connect());
//! listen() autobinding an ephemeral port; bind + listen with MPTCP, IPv4/IPv6 TCP on another
//! port, SCTP; AF_PACKET and AF_NETLINK sockets; UDP; unix datagrams to a path or abstract name
//! from a socketpair; the kept NOTIFY_SOCKET descriptor aimed elsewhere (sendto with an address,
//! sendmsg with msg_name, re-connect); unix connect to a path or abstract listener; binding an
//! abstract name; x32 system call numbers; io_uring; O_PATH opens; the log descriptor
//! (ftruncate, dropping O_APPEND, punching holes, pwritev2 RWF_NOAPPEND); the PID file descriptor
//! (write, ftruncate, a shared writable mapping, unlocking, unlinking the file); signals and
//! ptrace to another process of the agent's user (kill, tkill, tgkill, rt_sigqueueinfo,
//! rt_tgsigqueueinfo, pidfd_send_signal, ptrace attach).
//!
//! Needs root, the agent's user and gdb (scripts/test.sh installs it); fails, never skips,
//! without them. Every wait is bounded (`common::WAIT`); nothing asserts how long anything took.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------------------
// How the agent is sandboxed
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The default: enforce, at the kernel's own Landlock ABI.
    Kernel,
    /// Landlock capped at this ABI (`--landlock-max-abi N`, still `--sandbox enforce`): an older
    /// kernel, where the seccomp filter must hold on its own for everything Landlock lacks.
    MaxAbi(u32),
    /// Control: `--sandbox off`. The injected escape must succeed, or the test itself is broken.
    Off,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Kernel => f.write_str("sandbox at the kernel's Landlock ABI"),
            Mode::MaxAbi(n) => write!(f, "sandbox with Landlock capped at ABI {n}"),
            Mode::Off => f.write_str("control, --sandbox off"),
        }
    }
}

/// Path of gdb; fails, never skips, when it is missing.
fn gdb() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
        let p = dir.join("gdb");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "gdb not found: the sandbox escape tests inject system calls into the running agent \
         with gdb; install it (Debian: `apt-get install gdb`; scripts/test.sh installs it)"
    );
}

/// Starts an agent in `mode` (with `env` added to its environment), waits until it serves and
/// checks that it runs as the agent's user with (or, for the control, without) seccomp on every
/// thread.
fn start(dir: &TestDir, mode: Mode, env: &[(&str, &str)]) -> Agent {
    start_with(dir, mode, env, &[])
}

/// [`start`] with extra arguments (e.g. a collector that brings a policy fragment).
fn start_with(dir: &TestDir, mode: Mode, env: &[(&str, &str)], args: &[&str]) -> Agent {
    gdb();
    let mut s = Start::new(dir).args(args.iter().copied());
    for (k, v) in env {
        s = s.env(*k, *v);
    }
    s = match mode {
        Mode::Kernel => s,
        Mode::MaxAbi(n) => s.args(["--landlock-max-abi".to_string(), n.to_string()]),
        Mode::Off => s.args(["--sandbox", "off"]),
    };
    let agent = s.spawn();
    let seccomp = if mode == Mode::Off { "0" } else { "2" };
    let tasks = fs::read_dir(format!("/proc/{}/task", agent.pid())).expect("read task dir");
    for task in tasks {
        let path = task.expect("task entry").path().join("status");
        let status = fs::read_to_string(&path).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert!(
            field("Uid:").iter().all(|u| *u == dir.uid.to_string()),
            "{}: not running as {AGENT_USER} ({:?})\n{}",
            path.display(),
            field("Uid:"),
            agent.diagnostics()
        );
        assert_eq!(
            field("Seccomp:"),
            [seccomp],
            "{}: Seccomp field ({mode})\n{}",
            path.display(),
            agent.diagnostics()
        );
    }
    if let Mode::MaxAbi(n) = mode {
        // The cap must really be in force, or these tests would not test seccomp alone.
        let body = agent.scrape("/metrics");
        let abi = must_value(&body, "monitoring_agent_landlock_enforced_abi", &[]);
        assert!(
            abi <= f64::from(n),
            "--landlock-max-abi {n}: the agent reports a Landlock ruleset of ABI {abi} in force; \
             the cap did not take effect\n{}",
            agent.diagnostics()
        );
    }
    agent
}

// ---------------------------------------------------------------------------------------
// Injecting system calls with gdb
// ---------------------------------------------------------------------------------------

/// Offsets in the scratch page the script maps in the agent.
const ADDR: usize = 0; // a sockaddr, 128 bytes
const DATA: usize = 128; // a payload, 128 bytes
const PAIR: usize = 256; // int[2] from socketpair
const MSG: usize = 512; // struct msghdr (56 bytes), then its iovec at MSG + 64
const AUX: usize = 1024; // siginfo, io_uring_params, a path string

/// `$page + off`, for gdb.
fn at(off: usize) -> String {
    format!("$page+{off}")
}

/// The gdb variable holding an earlier call's result.
fn r(name: &str) -> String {
    format!("$r_{name}")
}

/// A gdb script run against the agent: maps a scratch page, writes bytes into it, makes
/// system calls through libc's `syscall()` and prints each result with errno.
struct Script {
    cmds: Vec<String>,
    /// Names of the system calls, in order.
    planned: Vec<String>,
}

impl Script {
    fn new() -> Script {
        let mut s = Script {
            cmds: vec!["printf \"@@ATTACHED\\n\"".into()],
            planned: Vec::new(),
        };
        // mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0): what malloc
        // does, so every policy allows it; no malloc lock is taken in the stopped process.
        s.call(
            "scratch",
            libc::SYS_mmap,
            &["0", "4096", "3", "0x22", "-1", "0"],
        );
        s.cmds.push(format!("set $page = {}", r("scratch")));
        s
    }

    /// `syscall(nr, args...)`, its result in `$r_<name>`.
    fn call(&mut self, name: &str, nr: libc::c_long, args: &[&str]) -> &mut Self {
        let mut expr = format!("set {} = (long)syscall((long){nr}", r(name));
        for a in args {
            expr.push_str(&format!(", (long)({a})"));
        }
        expr.push(')');
        self.cmds.push(expr);
        self.cmds.push(format!(
            "printf \"@@CALL {name} %ld %d\\n\", {}, *(int*)__errno_location()",
            r(name)
        ));
        self.planned.push(name.to_string());
        self
    }

    /// Writes `bytes` at `off` in the scratch page.
    fn put(&mut self, off: usize, bytes: &[u8]) -> &mut Self {
        let mut chunks = bytes.chunks_exact(8);
        let mut o = off;
        for c in chunks.by_ref() {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.cmds
                .push(format!("set {{unsigned long}}({}) = {v:#x}", at(o)));
            o += 8;
        }
        for b in chunks.remainder() {
            self.cmds
                .push(format!("set {{unsigned char}}({}) = {b}", at(o)));
            o += 1;
        }
        self
    }

    /// Stores the value of the gdb expression `expr` as a 64-bit word at `off` (pointers into
    /// the page, earlier results).
    fn put_word(&mut self, off: usize, expr: &str) -> &mut Self {
        self.cmds
            .push(format!("set {{long}}({}) = (long)({expr})", at(off)));
        self
    }

    /// Loads the int at `off` into `$r_<name>` (e.g. a descriptor socketpair wrote).
    fn load_int(&mut self, name: &str, off: usize) -> &mut Self {
        self.cmds
            .push(format!("set {} = (long)*(int*)({})", r(name), at(off)));
        self.cmds
            .push(format!("printf \"@@VALUE {name} %ld\\n\", {}", r(name)));
        self
    }

    /// The agent copies `n` bytes from `src_off` in the scratch page to the address in the gdb
    /// expression `dst`, with libc's memcpy: a plain memory write, no system call.
    fn memcpy(&mut self, dst: &str, src_off: usize, n: usize) -> &mut Self {
        self.cmds.push(format!(
            "call (void*)memcpy((void*)({dst}), (void*)({}), {n})",
            at(src_off)
        ));
        self
    }

    /// Runs the script against the agent (bounded). When an injected call killed the agent,
    /// reaps it and keeps its exit status.
    fn run(&self, agent: &mut Agent) -> Injection {
        let pid = agent.pid();
        let out = tempfile::tempfile().expect("temp file for gdb's output");
        let mut cmd = Command::new(gdb());
        cmd.args(["-nx", "-batch", "--readnever"])
            .args(["-iex", "set debuginfod enabled off"])
            .args(["-iex", "set auto-load no"])
            .args(["-iex", "set pagination off"])
            // gdb 13 may hit an internal error when the inferior dies under it: no core file.
            .args(["-iex", "maint set internal-error corefile no"])
            .args(["-iex", "maint set internal-error quit yes"])
            .args(["-p", &pid.to_string()]);
        for c in &self.cmds {
            cmd.arg("-ex").arg(c);
        }
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out.try_clone().expect("dup"));
        let mut child = cmd.spawn().expect("spawn gdb");
        let status = wait_child(&mut child, WAIT);
        let transcript = {
            let mut f = out;
            let mut s = String::new();
            f.seek(SeekFrom::Start(0)).expect("seek");
            f.read_to_string(&mut s).expect("read gdb output");
            s
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gdb did not finish within {WAIT:?} (an injected call blocked?)\n--- gdb ---\n\
                 {transcript}\n{}",
                agent.diagnostics()
            );
        }
        assert!(
            transcript.contains("@@ATTACHED"),
            "gdb could not attach to the agent (pid {pid}):\n{transcript}\n{}",
            agent.diagnostics()
        );
        let mut results = BTreeMap::new();
        for line in transcript.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("@@CALL") | Some("@@VALUE") => {}
                _ => continue,
            }
            // After the agent died, gdb's printf of an unset variable stops mid-line: no result.
            let (Some(name), Some(ret)) = (f.next(), f.next().and_then(|v| v.parse::<i64>().ok()))
            else {
                continue;
            };
            let errno: i32 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            results.insert(name.to_string(), (ret, errno));
        }
        // A call without a result: the agent died in it (gdb then says "Program terminated with
        // signal SIGSYS", or, racing with the threads' exits, may lose track of them and abort
        // on an internal error). Give the dying process its bounded time to become a zombie.
        let incomplete = self.planned.iter().any(|n| !results.contains_key(n));
        let gone = if incomplete {
            wait_gone(pid, WAIT)
        } else {
            !alive(pid)
        };
        let died = gone.then(|| agent.wait_exit());
        let inj = Injection {
            pid,
            planned: self.planned.clone(),
            results,
            died,
            transcript,
        };
        let scratch = inj.ret("scratch");
        assert!(
            scratch.is_some_and(|p| p > 0),
            "could not map the scratch page in the agent (mmap: {scratch:?}, agent: {:?}); the \
             test cannot inject anything\n{}",
            inj.died,
            inj.report()
        );
        inj
    }
}

/// What an injection did.
struct Injection {
    pid: u32,
    planned: Vec<String>,
    /// name → (return value, errno).
    results: BTreeMap<String, (i64, i32)>,
    /// How the agent ended, when an injected call killed it.
    died: Option<ExitStatus>,
    transcript: String,
}

impl Injection {
    fn ret(&self, name: &str) -> Option<i64> {
        self.results.get(name).map(|(r, _)| *r)
    }

    /// The first planned call without a result: the one the agent died in.
    fn killer(&self) -> Option<&str> {
        self.died.as_ref()?;
        self.planned
            .iter()
            .find(|n| !self.results.contains_key(*n))
            .map(String::as_str)
    }

    /// The calls and their results, then how the agent ended, then gdb's transcript.
    fn report(&self) -> String {
        let mut s = format!("injected into pid {}:\n", self.pid);
        for name in &self.planned {
            match self.results.get(name) {
                Some((ret, errno)) if *ret == -1 => s.push_str(&format!(
                    "  {name} = -1 ({})\n",
                    std::io::Error::from_raw_os_error(*errno)
                )),
                Some((ret, _)) => s.push_str(&format!("  {name} = {ret}\n")),
                None => s.push_str(&format!("  {name}: did not return\n")),
            }
        }
        match &self.died {
            Some(st) => s.push_str(&format!("agent ended: {st} (in {:?})\n", self.killer())),
            None => s.push_str("agent still running\n"),
        }
        s.push_str("--- gdb ---\n");
        s.push_str(&self.transcript);
        s
    }
}

/// The verdict of one escape attempt.
///
/// Sandboxed modes: nothing `escaped` (the outcome seen from outside), and every call in
/// `refused` either returned -1 — the agent then still serves — or never returned because the
/// agent died of SIGSYS. The control (`--sandbox off`): the escape happened and the agent lives,
/// which proves the injection and the observation work.
fn verdict(mode: Mode, agent: &Agent, inj: &Injection, refused: &[&str], escaped: Option<String>) {
    if mode == Mode::Off {
        assert!(
            inj.died.is_none(),
            "control ({mode}): the unsandboxed agent died; the injection itself is broken\n{}\n{}",
            inj.report(),
            agent.diagnostics()
        );
        let Some(what) = escaped else {
            panic!(
                "control ({mode}): the injected {refused:?} escaped nothing even without the \
                 sandbox, so the test cannot tell a sandbox that holds from a broken injection\n{}",
                inj.report()
            );
        };
        eprintln!("control ({mode}) escaped as expected: {what}");
        return;
    }
    if let Some(what) = escaped {
        panic!(
            "SANDBOX ESCAPE ({mode}): {what}\n{}\n{}",
            inj.report(),
            agent.diagnostics()
        );
    }
    for call in refused {
        match (inj.ret(call), &inj.died) {
            (Some(-1), _) => {}
            (Some(ret), _) => panic!(
                "({mode}) the injected {call} returned {ret}: the sandbox let it through \
                 (nothing escaped this time, but the call should be refused)\n{}",
                inj.report()
            ),
            (None, Some(st)) => assert_eq!(
                st.signal(),
                Some(libc::SIGSYS),
                "({mode}) the agent died while running injected {:?}, but not of SIGSYS: {st}\n{}\n{}",
                inj.killer(),
                inj.report(),
                agent.diagnostics()
            ),
            (None, None) => panic!(
                "({mode}) the injected {call} never ran and the agent still runs: the gdb \
                 script is broken\n{}",
                inj.report()
            ),
        }
    }
    if let Some(st) = &inj.died {
        assert_eq!(
            st.signal(),
            Some(libc::SIGSYS),
            "({mode}) the agent died of something else than SIGSYS: {st}\n{}\n{}",
            inj.report(),
            agent.diagnostics()
        );
    } else {
        // Refused with -1: the agent must still do its job.
        let resp = agent.get("/");
        assert_eq!(resp.status, 200, "agent after refused injection: {resp:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Addresses and observations
// ---------------------------------------------------------------------------------------

/// `struct sockaddr_in` / `sockaddr_in6` for `addr`.
fn sockaddr_inet(addr: SocketAddr) -> Vec<u8> {
    let mut v = Vec::new();
    match addr {
        SocketAddr::V4(a) => {
            v.extend((libc::AF_INET as u16).to_ne_bytes());
            v.extend(a.port().to_be_bytes());
            v.extend(a.ip().octets());
            v.extend([0u8; 8]);
        }
        SocketAddr::V6(a) => {
            v.extend((libc::AF_INET6 as u16).to_ne_bytes());
            v.extend(a.port().to_be_bytes());
            v.extend(a.flowinfo().to_be_bytes());
            v.extend(a.ip().octets());
            v.extend(a.scope_id().to_ne_bytes());
        }
    }
    v
}

/// `struct sockaddr_un` for a path (NUL-terminated) or, with `abstract_ns`, an abstract name
/// (leading NUL, exact length).
fn sockaddr_unix(name: &[u8], abstract_ns: bool) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    if abstract_ns {
        v.push(0);
        v.extend(name);
    } else {
        v.extend(name);
        v.push(0);
    }
    v
}

/// A unique abstract socket name.
fn abstract_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "monitoring-agent-escape-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A root-owned 0755 directory for the test's pathname sockets, whose sockets are made 0666: the
/// agent's user may send to them, so only the sandbox can stop it.
fn socket_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("monitoring-agent-escape.")
        .tempdir()
        .expect("temp dir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn world_writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).expect("chmod socket");
}

/// A unix datagram socket owned by the test: a root-owned 0666 path, or an abstract name.
struct DgramTarget {
    sock: UnixDatagram,
    /// The `sockaddr_un` the agent is made to send to.
    sockaddr: Vec<u8>,
    /// `NOTIFY_SOCKET`-style name: the path, or `@name`.
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl DgramTarget {
    fn new(abstract_ns: bool) -> DgramTarget {
        if abstract_ns {
            let name = abstract_name();
            let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
            DgramTarget {
                sock: UnixDatagram::bind_addr(&addr).expect("bind abstract datagram socket"),
                sockaddr: sockaddr_unix(name.as_bytes(), true),
                name: format!("@{name}"),
                _dir: None,
            }
        } else {
            let dir = socket_dir();
            let path = dir.path().join("target.sock");
            let sock = UnixDatagram::bind(&path).expect("bind datagram socket");
            world_writable(&path);
            DgramTarget {
                sock,
                sockaddr: sockaddr_unix(path.as_os_str().as_encoded_bytes(), false),
                name: path.display().to_string(),
                _dir: Some(dir),
            }
        }
    }

    /// Every datagram queued so far (no waiting: unix datagrams are delivered synchronously).
    fn received(&self) -> Vec<String> {
        self.sock.set_nonblocking(true).expect("nonblocking");
        let mut v = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => v.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return v,
                Err(e) => panic!("recv on the test's datagram socket: {e}"),
            }
        }
    }

    fn escaped(&self) -> Option<String> {
        let got = self.received();
        (!got.is_empty()).then(|| format!("the test's socket {} received {got:?}", self.name))
    }
}

/// What a TCP listener owned by the test accepted (no waiting: a loopback connect completes
/// the handshake before it returns), with the first bytes the peer sent.
fn tcp_accepted(l: &TcpListener) -> Option<String> {
    l.set_nonblocking(true).expect("nonblocking");
    match l.accept() {
        Ok((mut s, peer)) => {
            s.set_nonblocking(false).expect("blocking");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 256];
            let data = match s.read(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e) => format!("<read: {e}>"),
            };
            Some(format!(
                "the test's listener {} accepted a connection from {peer}, data {data:?}",
                l.local_addr().expect("local_addr")
            ))
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("accept on the test's listener: {e}"),
    }
}

/// The agent's descriptors: fd → link target.
fn agent_fds(pid: u32) -> BTreeMap<i32, String> {
    let mut m = BTreeMap::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return m;
    };
    for e in rd.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(t) = fs::read_link(e.path()) {
            m.insert(fd, t.display().to_string());
        }
    }
    m
}

/// The inode of a `socket:[N]` descriptor link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Inodes of the agent's sockets.
fn agent_socket_inodes(pid: u32) -> BTreeSet<u64> {
    agent_fds(pid)
        .values()
        .filter_map(|t| socket_inode(t))
        .collect()
}

/// The agent's descriptor for `path`.
fn agent_fd_for(agent: &Agent, path: &Path) -> i32 {
    let want = path.display().to_string();
    agent_fds(agent.pid())
        .into_iter()
        .find(|(_, t)| *t == want)
        .map(|(fd, _)| fd)
        .unwrap_or_else(|| {
            panic!(
                "the agent holds no descriptor for {want}: {:?}\n{}",
                agent_fds(agent.pid()),
                agent.diagnostics()
            )
        })
}

/// Listening TCP sockets (IPv4 and IPv6, MPTCP subflows included): inode → local port.
fn tcp_listeners() -> BTreeMap<u64, u16> {
    let mut m = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
                if let Ok(ino) = f[9].parse() {
                    m.insert(ino, port);
                }
            }
        }
    }
    m
}

/// The protocol of the socket behind `/proc/PID/fd/N`, as the kernel names it in the socket
/// inode's `system.sockprotoname` attribute: "TCP", "TCPv6", "MPTCP", "UNIX", "NETLINK",
/// "PACKET", "SCTP", ...
fn socket_protocol(link: &Path) -> Option<String> {
    let c = std::ffi::CString::new(link.as_os_str().as_encoded_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: a NUL-terminated path and attribute name, and a buffer of the given length the
    // kernel writes at most that many bytes into.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    let name = String::from_utf8_lossy(&buf[..n]);
    Some(name.trim_end_matches('\0').to_string())
}

/// The agent's sockets whose inode is not in `before` and whose protocol starts with `proto`,
/// described for a failure message.
fn new_agent_sockets(pid: u32, before: &BTreeSet<u64>, proto: &str) -> Option<String> {
    let mut found = Vec::new();
    for (fd, target) in agent_fds(pid) {
        let Some(ino) = socket_inode(&target) else {
            continue;
        };
        if before.contains(&ino) {
            continue;
        }
        let p = socket_protocol(Path::new(&format!("/proc/{pid}/fd/{fd}"))).unwrap_or_default();
        if p.starts_with(proto) {
            found.push(format!("fd {fd}: {p} socket {ino}"));
        }
    }
    (!found.is_empty()).then(|| format!("the agent holds new {proto} socket(s): {found:?}"))
}

/// [::1] on a port free on both loopbacks.
fn loopback6() -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_port_v4_v6()))
}

/// Whether something listens on `addr`, seen from outside.
fn listening_on(addr: SocketAddr) -> Option<String> {
    let inode = listening_inode(addr.port());
    let connects = accepts(addr);
    (connects || inode.is_some())
        .then(|| format!("{addr} listens (connect: {connects}, LISTEN inode: {inode:?})"))
}

// ---------------------------------------------------------------------------------------
// Generating the tests of each case
// ---------------------------------------------------------------------------------------

/// `tests!(case [test = mode, ...] => run)`: a module `case` with one `#[test]` per mode, each
/// calling `run(mode)`. Tests are named `<case>::<mode>`.
macro_rules! tests {
    ($case:ident [$($test:ident = $mode:expr),+] => $run:expr) => {
        mod $case {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $test() {
                    ($run)($mode)
                }
            )+
        }
    };
}

/// At the kernel's Landlock ABI, with Landlock capped at ABI 1 (seccomp alone), and the control
/// (`--sandbox off`).
macro_rules! all_modes {
    ($case:ident => $run:expr) => {
        tests!($case [
            kernel_landlock_abi = Mode::Kernel,
            landlock_abi_1_seccomp_alone = Mode::MaxAbi(1),
            control_sandbox_off = Mode::Off
        ] => $run);
    };
}

/// Sandboxed modes only: the escape cannot succeed on this host even without the sandbox.
macro_rules! sandboxed_modes {
    ($case:ident => $run:expr) => {
        tests!($case [
            kernel_landlock_abi = Mode::Kernel,
            landlock_abi_1_seccomp_alone = Mode::MaxAbi(1)
        ] => $run);
    };
}

/// Cases Landlock's network and scope layers do not touch (files, descriptors): at the kernel's
/// Landlock ABI, and the control.
macro_rules! kernel_and_control {
    ($case:ident => $run:expr) => {
        tests!($case [
            kernel_landlock_abi = Mode::Kernel,
            control_sandbox_off = Mode::Off
        ] => $run);
    };
}

/// No control: what holds is how the agent opens the descriptor, not the sandbox.
macro_rules! kernel_only {
    ($case:ident => $run:expr) => {
        tests!($case [kernel_landlock_abi = Mode::Kernel] => $run);
    };
}

// ---------------------------------------------------------------------------------------
// 1-2. TCP connections out: connect, TCP Fast Open
// ---------------------------------------------------------------------------------------

/// socket(AF_INET, SOCK_STREAM) + connect() to a listener the test owns.
fn tcp_connect(mode: Mode) {
    let dir = TestDir::new();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    let mut agent = start(&dir, mode, &[]);
    let sa = sockaddr_inet(l.local_addr().expect("addr"));
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call("socket", libc::SYS_socket, &["2", "1", "0"])
        .call(
            "connect",
            libc::SYS_connect,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        );
    let inj = s.run(&mut agent);
    verdict(mode, &agent, &inj, &["connect"], tcp_accepted(&l));
}
all_modes!(tcp_connect => tcp_connect);

/// Enables the TCP Fast Open client (`net.ipv4.tcp_fastopen` bit 0) while any test needs it;
/// the last one out restores the previous value.
struct FastOpenClient;
static FASTOPEN: Mutex<(usize, Option<String>)> = Mutex::new((0, None));
const FASTOPEN_SYSCTL: &str = "/proc/sys/net/ipv4/tcp_fastopen";

impl FastOpenClient {
    fn enable() -> FastOpenClient {
        let mut g = FASTOPEN.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            let old = fs::read_to_string(FASTOPEN_SYSCTL)
                .unwrap_or_else(|e| panic!("{FASTOPEN_SYSCTL}: {e}"));
            let v: u32 = old.trim().parse().expect("tcp_fastopen value");
            if v & 1 == 0 {
                fs::write(FASTOPEN_SYSCTL, "3").expect("enable the TCP Fast Open client");
                g.1 = Some(old);
            }
        }
        g.0 += 1;
        FastOpenClient
    }
}

impl Drop for FastOpenClient {
    fn drop(&mut self) {
        let mut g = FASTOPEN.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            if let Some(old) = g.1.take() {
                let _ = fs::write(FASTOPEN_SYSCTL, old.trim());
            }
        }
    }
}

/// A fresh TCP socket + sendto(MSG_FASTOPEN, address): connects and sends without connect().
fn tcp_fastopen(mode: Mode) {
    let _tfo = FastOpenClient::enable();
    let dir = TestDir::new();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    let mut agent = start(&dir, mode, &[]);
    let sa = sockaddr_inet(l.local_addr().expect("addr"));
    let data = b"TFO-ESCAPE";
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .put(DATA, data)
        .call("socket", libc::SYS_socket, &["2", "1", "0"])
        .call(
            "sendto",
            libc::SYS_sendto,
            &[
                &r("socket"),
                &at(DATA),
                &data.len().to_string(),
                &libc::MSG_FASTOPEN.to_string(),
                &at(ADDR),
                &sa.len().to_string(),
            ],
        );
    let inj = s.run(&mut agent);
    verdict(mode, &agent, &inj, &["sendto"], tcp_accepted(&l));
}
all_modes!(tcp_fastopen => tcp_fastopen);

// ---------------------------------------------------------------------------------------
// 3-4. New listeners: autobind, other protocols, other ports
// ---------------------------------------------------------------------------------------

/// socket + listen() without bind: the kernel binds an ephemeral port (no bind() to check).
fn tcp_listen_autobind(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let pid = agent.pid();
    let before: BTreeSet<u64> = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call("socket", libc::SYS_socket, &["2", "1", "0"]).call(
        "listen",
        libc::SYS_listen,
        &[&r("socket"), "16"],
    );
    let inj = s.run(&mut agent);
    let listeners = tcp_listeners();
    let new: Vec<String> = agent_socket_inodes(pid)
        .difference(&before)
        .filter_map(|i| listeners.get(i).map(|p| format!("port {p} (inode {i})")))
        .collect();
    let escaped = (!new.is_empty()).then(|| format!("the agent has new TCP listener(s): {new:?}"));
    verdict(mode, &agent, &inj, &["listen"], escaped);
}
all_modes!(tcp_listen_autobind => tcp_listen_autobind);

/// socket(family, SOCK_STREAM, proto) + bind(addr) + listen: is anything listening there?
fn bind_listen(mode: Mode, family: i32, proto: i32, addr: SocketAddr) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let sa = sockaddr_inet(addr);
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call(
            "socket",
            libc::SYS_socket,
            &[&family.to_string(), "1", &proto.to_string()],
        )
        .call(
            "bind",
            libc::SYS_bind,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        )
        .call("listen", libc::SYS_listen, &[&r("socket"), "16"]);
    let inj = s.run(&mut agent);
    // A bind() refused still leaves listen() to autobind an ephemeral port: that is
    // tcp_listen_autobind's case; here, the address asked for must stay free.
    verdict(mode, &agent, &inj, &["bind"], listening_on(addr));
}

// MPTCP (IPPROTO_MPTCP = 262) on another port: Landlock's TCP rules do not see it.
all_modes!(mptcp_bind_listen => |m| bind_listen(m, libc::AF_INET, 262, loopback(free_port())));

all_modes!(mptcp6_bind_listen => |m| bind_listen(m, libc::AF_INET6, 262, loopback6()));

// Plain TCP on a port the agent was not configured for.
all_modes!(tcp_bind_listen_other_port => |m| bind_listen(m, libc::AF_INET, 0, loopback(free_port())));

all_modes!(tcp6_bind_listen_other_port => |m| bind_listen(m, libc::AF_INET6, 0, loopback6()));

/// SCTP (IPPROTO_SCTP = 132), one-to-one style (SOCK_STREAM). On a kernel without SCTP the
/// socket() returns -1 EPROTONOSUPPORT, which holds only if the agent survives it (checked).
/// No control: this host may have no SCTP at all.
fn sctp_bind_listen(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let sa = sockaddr_inet(loopback(free_port()));
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call("socket", libc::SYS_socket, &["2", "1", "132"])
        .call(
            "bind",
            libc::SYS_bind,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        )
        .call("listen", libc::SYS_listen, &[&r("socket"), "16"]);
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "SCTP");
    verdict(mode, &agent, &inj, &["socket", "bind"], escaped);
}
sandboxed_modes!(sctp_bind_listen => sctp_bind_listen);

/// AF_PACKET raw socket (ETH_P_ALL). The agent lacks CAP_NET_RAW, so no control.
fn packet_socket(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call("socket", libc::SYS_socket, &["17", "3", "0x300"]);
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "PACKET");
    verdict(mode, &agent, &inj, &["socket"], escaped);
}
sandboxed_modes!(packet_socket => packet_socket);

/// AF_NETLINK (NETLINK_ROUTE, NETLINK_SOCK_DIAG): any user may open these and ask the kernel.
fn netlink_socket(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call("route", libc::SYS_socket, &["16", "3", "0"]).call(
        "sock_diag",
        libc::SYS_socket,
        &["16", "3", "4"],
    );
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "NETLINK");
    verdict(mode, &agent, &inj, &["route", "sock_diag"], escaped);
}
all_modes!(netlink_socket => netlink_socket);

/// A UDP datagram to a socket the test owns.
fn udp_sendto(mode: Mode) {
    let dir = TestDir::new();
    let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let mut agent = start(&dir, mode, &[]);
    let sa = sockaddr_inet(u.local_addr().expect("addr"));
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .put(DATA, b"UDP-ESCAPE")
        .call("socket", libc::SYS_socket, &["2", "2", "0"])
        .call(
            "sendto",
            libc::SYS_sendto,
            &[
                &r("socket"),
                &at(DATA),
                "10",
                "0",
                &at(ADDR),
                &sa.len().to_string(),
            ],
        );
    let inj = s.run(&mut agent);
    u.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    let escaped = match u.recv_from(&mut buf) {
        Ok((n, from)) => Some(format!(
            "the test's UDP socket received {:?} from {from}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv udp: {e}"),
    };
    verdict(mode, &agent, &inj, &["sendto"], escaped);
}
all_modes!(udp_sendto => udp_sendto);

// ---------------------------------------------------------------------------------------
// 5-7. Unix sockets: datagrams to any address, kept descriptors, connections
// ---------------------------------------------------------------------------------------

/// socketpair(AF_UNIX, SOCK_DGRAM) + sendto("READY=1", address of a socket the test owns).
fn unix_dgram_sendto(mode: Mode, abstract_ns: bool) {
    let dir = TestDir::new();
    let target = DgramTarget::new(abstract_ns);
    let mut agent = start(&dir, mode, &[]);
    let mut s = Script::new();
    s.put(ADDR, &target.sockaddr)
        .put(DATA, b"READY=1")
        .call(
            "socketpair",
            libc::SYS_socketpair,
            &["1", "2", "0", &at(PAIR)],
        )
        .load_int("sv0", PAIR)
        .call(
            "sendto",
            libc::SYS_sendto,
            &[
                &r("sv0"),
                &at(DATA),
                "7",
                "0",
                &at(ADDR),
                &target.sockaddr.len().to_string(),
            ],
        );
    let inj = s.run(&mut agent);
    verdict(mode, &agent, &inj, &["sendto"], target.escaped());
}

all_modes!(unix_dgram_sendto_path => |m| unix_dgram_sendto(m, false));

all_modes!(unix_dgram_sendto_abstract => |m| unix_dgram_sendto(m, true));

/// The unix datagram sockets the agent holds (its `NOTIFY_SOCKET` connection, and /dev/log's
/// when syslog is up), by descriptor.
fn agent_dgram_fds(agent: &Agent) -> Vec<i32> {
    let dgram: BTreeSet<u64> = fs::read_to_string("/proc/net/unix")
        .expect("/proc/net/unix")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 6 && f[4] == "0002").then(|| f[6].parse().ok())?
        })
        .collect();
    agent_fds(agent.pid())
        .into_iter()
        .filter(|(_, t)| socket_inode(t).is_some_and(|i| dgram.contains(&i)))
        .map(|(fd, _)| fd)
        .collect()
}

/// How the agent's kept datagram descriptor is made to reach another address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeptFdAbuse {
    /// sendto(fd, "X", 1, 0, other, len).
    SendTo,
    /// sendmsg(fd, {msg_name = other, iov = "X"}, 0).
    SendMsg,
    /// connect(fd, other) then write(fd, "X").
    Reconnect,
}

/// The agent, started with `NOTIFY_SOCKET` pointing at a socket the test owns, keeps that
/// connected datagram descriptor; through it, the injection aims at ANOTHER test socket.
fn kept_fd(mode: Mode, abuse: KeptFdAbuse, abstract_ns: bool) {
    let dir = TestDir::new();
    let notify = DgramTarget::new(false);
    let other = DgramTarget::new(abstract_ns);
    let mut agent = start(&dir, mode, &[("NOTIFY_SOCKET", &notify.name)]);
    // The agent connected its notification socket and said so.
    notify.sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = notify.sock.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no READY=1 on NOTIFY_SOCKET within {WAIT:?}: {e}\n{}",
            agent.diagnostics()
        )
    });
    assert!(
        buf[..n].starts_with(b"READY=1"),
        "first notification: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let fds = agent_dgram_fds(&agent);
    assert!(
        !fds.is_empty(),
        "the agent holds no unix datagram socket although NOTIFY_SOCKET was set: {:?}\n{}",
        agent_fds(agent.pid()),
        agent.diagnostics()
    );
    let len = other.sockaddr.len().to_string();
    let mut s = Script::new();
    s.put(ADDR, &other.sockaddr).put(DATA, b"X");
    // struct msghdr at MSG, its one iovec at MSG + 64.
    s.put_word(MSG, &at(ADDR))
        .put_word(MSG + 8, &len)
        .put_word(MSG + 16, &at(MSG + 64))
        .put_word(MSG + 24, "1")
        .put_word(MSG + 64, &at(DATA))
        .put_word(MSG + 72, "1");
    let mut refused: Vec<String> = Vec::new();
    for fd in &fds {
        let fd = fd.to_string();
        match abuse {
            KeptFdAbuse::SendTo => {
                let name = format!("sendto_fd{fd}");
                s.call(
                    &name,
                    libc::SYS_sendto,
                    &[&fd, &at(DATA), "1", "0", &at(ADDR), &len],
                );
                refused.push(name);
            }
            KeptFdAbuse::SendMsg => {
                let name = format!("sendmsg_fd{fd}");
                s.call(&name, libc::SYS_sendmsg, &[&fd, &at(MSG), "0"]);
                refused.push(name);
            }
            KeptFdAbuse::Reconnect => {
                let name = format!("connect_fd{fd}");
                s.call(&name, libc::SYS_connect, &[&fd, &at(ADDR), &len]);
                s.call(
                    &format!("write_fd{fd}"),
                    libc::SYS_write,
                    &[&fd, &at(DATA), "1"],
                );
                refused.push(name);
            }
        }
    }
    let inj = s.run(&mut agent);
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    verdict(mode, &agent, &inj, &refused, other.escaped());
}

all_modes!(kept_fd_sendto_path => |m| kept_fd(m, KeptFdAbuse::SendTo, false));

all_modes!(kept_fd_sendto_abstract => |m| kept_fd(m, KeptFdAbuse::SendTo, true));

all_modes!(kept_fd_sendmsg_path => |m| kept_fd(m, KeptFdAbuse::SendMsg, false));

all_modes!(kept_fd_reconnect_path => |m| kept_fd(m, KeptFdAbuse::Reconnect, false));

/// socket(AF_UNIX, SOCK_STREAM) + connect() to a listener the test owns.
fn unix_connect(mode: Mode, abstract_ns: bool) {
    let dir = TestDir::new();
    let sdir = socket_dir();
    let (l, sa) = if abstract_ns {
        let name = abstract_name();
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        (
            UnixListener::bind_addr(&addr).expect("bind abstract listener"),
            sockaddr_unix(name.as_bytes(), true),
        )
    } else {
        let path = sdir.path().join("listener.sock");
        let l = UnixListener::bind(&path).expect("bind listener");
        world_writable(&path);
        (l, sockaddr_unix(path.as_os_str().as_encoded_bytes(), false))
    };
    let mut agent = start(&dir, mode, &[]);
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call("socket", libc::SYS_socket, &["1", "1", "0"])
        .call(
            "connect",
            libc::SYS_connect,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        );
    let inj = s.run(&mut agent);
    l.set_nonblocking(true).expect("nonblocking");
    let escaped = match l.accept() {
        Ok(_) => Some("the test's unix listener accepted a connection".to_string()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) => panic!("accept: {e}"),
    };
    verdict(mode, &agent, &inj, &["connect"], escaped);
}

all_modes!(unix_connect_path => |m| unix_connect(m, false));

all_modes!(unix_connect_abstract => |m| unix_connect(m, true));

/// bind() of an abstract name on a socketpair socket: the agent would squat a name another
/// service means to use (and receive what is sent to it). Landlock's scopes restrict only
/// connecting and sending to abstract sockets, not binding them.
fn unix_abstract_bind(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let name = abstract_name();
    let sa = sockaddr_unix(name.as_bytes(), true);
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call(
            "socketpair",
            libc::SYS_socketpair,
            &["1", "1", "0", &at(PAIR)],
        )
        .load_int("sv0", PAIR)
        .call(
            "bind",
            libc::SYS_bind,
            &[&r("sv0"), &at(ADDR), &sa.len().to_string()],
        );
    let inj = s.run(&mut agent);
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    // Abstract names are per socket type: a stream listener tells whether the name is taken.
    let escaped = match UnixListener::bind_addr(&addr) {
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            Some(format!("the abstract name @{name} is taken by the agent"))
        }
        Err(e) => panic!("bind @{name}: {e}"),
    };
    verdict(mode, &agent, &inj, &["bind"], escaped);
}
all_modes!(unix_abstract_bind => unix_abstract_bind);

// ---------------------------------------------------------------------------------------
// 8. io_uring: every operation of a ring would bypass seccomp
// ---------------------------------------------------------------------------------------

fn io_uring_setup(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let mut s = Script::new();
    // A zeroed struct io_uring_params at AUX.
    s.call("io_uring_setup", libc::SYS_io_uring_setup, &["8", &at(AUX)]);
    let inj = s.run(&mut agent);
    let rings: Vec<i32> = agent_fds(inj.pid)
        .into_iter()
        .filter(|(_, t)| t.contains("io_uring"))
        .map(|(fd, _)| fd)
        .collect();
    let escaped = (!rings.is_empty())
        .then(|| format!("the agent holds an io_uring instance (fds {rings:?})"));
    verdict(mode, &agent, &inj, &["io_uring_setup"], escaped);
}
all_modes!(io_uring_setup => io_uring_setup);

// x32 system call numbers (bit 30 set) share x86_64's audit arch: a filter that matched
// numbers without that bit would let socket() through as 0x40000029. No control: kernels
// usually run with x32 disabled.
#[cfg(target_arch = "x86_64")]
fn x32_socket(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call(
        "x32_socket",
        0x4000_0000 | libc::SYS_socket,
        &["2", "1", "0"],
    );
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "TCP");
    verdict(mode, &agent, &inj, &["x32_socket"], escaped);
}
#[cfg(target_arch = "x86_64")]
sandboxed_modes!(x32_socket => x32_socket);

// ---------------------------------------------------------------------------------------
// 9. O_PATH opens: no Landlock right needed
// ---------------------------------------------------------------------------------------

fn openat_o_path(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    let mut s = Script::new();
    s.put(AUX, b"/etc/shadow\0").call(
        "openat",
        libc::SYS_openat,
        &[
            &libc::AT_FDCWD.to_string(),
            &at(AUX),
            &(libc::O_PATH | libc::O_CLOEXEC).to_string(),
            "0",
        ],
    );
    let inj = s.run(&mut agent);
    let held: Vec<i32> = agent_fds(inj.pid)
        .into_iter()
        .filter(|(_, t)| t == "/etc/shadow")
        .map(|(fd, _)| fd)
        .collect();
    let escaped = (!held.is_empty()).then(|| format!("the agent holds /etc/shadow (fds {held:?})"));
    verdict(mode, &agent, &inj, &["openat"], escaped);
}
kernel_and_control!(openat_o_path => openat_o_path);

// ---------------------------------------------------------------------------------------
// 10. The log file's descriptor: append-only
// ---------------------------------------------------------------------------------------

/// How the injection tries to erase or rewrite the log through the agent's descriptor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogAbuse {
    /// ftruncate(fd, 0).
    Truncate,
    /// fcntl(fd, F_SETFL, 0) drops O_APPEND, lseek(fd, 0, SEEK_SET), write(fd, "XX", 2).
    ClearAppend,
    /// fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 MiB): zeros, same size.
    PunchHole,
    /// pwritev2(fd, "XX", offset 0, RWF_NOAPPEND): writes at offset 0 despite O_APPEND.
    NoAppendWrite,
}

fn log_fd(mode: Mode, abuse: LogAbuse) {
    let dir = TestDir::new();
    let mut agent = start(&dir, mode, &[]);
    agent.wait_log("serving metrics");
    let before = fs::read(dir.log_file()).expect("read log");
    assert!(
        !before.is_empty(),
        "the log is empty\n{}",
        agent.diagnostics()
    );
    let fd = agent_fd_for(&agent, &dir.log_file()).to_string();
    let mut s = Script::new();
    s.put(DATA, b"XX")
        .put_word(MSG + 64, &at(DATA))
        .put_word(MSG + 72, "2");
    let key = match abuse {
        LogAbuse::Truncate => {
            s.call("ftruncate", libc::SYS_ftruncate, &[&fd, "0"]);
            "ftruncate"
        }
        LogAbuse::ClearAppend => {
            s.call(
                "setfl",
                libc::SYS_fcntl,
                &[&fd, &libc::F_SETFL.to_string(), "0"],
            )
            .call("lseek", libc::SYS_lseek, &[&fd, "0", "0"])
            .call("write", libc::SYS_write, &[&fd, &at(DATA), "2"]);
            "setfl"
        }
        LogAbuse::PunchHole => {
            s.call(
                "fallocate",
                libc::SYS_fallocate,
                &[&fd, "3", "0", "1048576"],
            );
            "fallocate"
        }
        LogAbuse::NoAppendWrite => {
            // pwritev2(fd, iov, iovcnt, pos_l, pos_h, flags); RWF_NOAPPEND = 0x20.
            s.call(
                "pwritev2",
                libc::SYS_pwritev2,
                &[&fd, &at(MSG + 64), "1", "0", "0", "0x20"],
            );
            "pwritev2"
        }
    };
    let inj = s.run(&mut agent);
    let after = fs::read(dir.log_file()).expect("read log");
    let escaped = (!after.starts_with(&before)).then(|| {
        format!(
            "the log file was rewritten: it held {} bytes beginning {:?}, it now holds {} bytes \
             beginning {:?}",
            before.len(),
            String::from_utf8_lossy(&before[..before.len().min(40)]),
            after.len(),
            String::from_utf8_lossy(&after[..after.len().min(40)])
        )
    });
    verdict(mode, &agent, &inj, &[key], escaped);
}

kernel_and_control!(log_ftruncate => |m| log_fd(m, LogAbuse::Truncate));

kernel_and_control!(log_clear_append_then_overwrite => |m| log_fd(m, LogAbuse::ClearAppend));

kernel_and_control!(log_punch_hole => |m| log_fd(m, LogAbuse::PunchHole));

kernel_and_control!(log_pwritev2_noappend => |m| log_fd(m, LogAbuse::NoAppendWrite));

// ---------------------------------------------------------------------------------------
// 11. The PID file's descriptor: the lock stays, the content stays
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum PidAbuse {
    /// lseek(fd, 0) + write(fd, "1\n").
    Overwrite,
    /// ftruncate(fd, 0).
    Truncate,
    /// flock(fd, LOCK_UN): a second instance could start.
    Unlock,
    /// unlink(path) of a file outside the PID file's directory, in a directory the agent's
    /// user owns (the agent may remove its own PID file at exit, nothing else).
    Unlink,
    /// mmap(PROT_READ|PROT_WRITE, MAP_SHARED, fd) then a memory write: no write() at all.
    SharedMapping,
}

fn pid_file(mode: Mode, abuse: PidAbuse) {
    let dir = TestDir::new();
    // A file the agent's user could remove by its permissions alone.
    let elsewhere = TestDir::new();
    let victim = elsewhere.path().join("victim");
    fs::write(&victim, "keep\n").expect("victim file");
    let mut agent = start(&dir, mode, &[]);
    let want = format!("{}\n", agent.pid());
    assert_eq!(dir.pid_file_content().as_deref(), Some(want.as_str()));
    let fd = agent_fd_for(&agent, &dir.pid_file()).to_string();
    let mut s = Script::new();
    s.put(DATA, b"1\n");
    let key = match abuse {
        PidAbuse::Overwrite => {
            s.call("lseek", libc::SYS_lseek, &[&fd, "0", "0"]).call(
                "write",
                libc::SYS_write,
                &[&fd, &at(DATA), "2"],
            );
            "write"
        }
        PidAbuse::Truncate => {
            s.call("ftruncate", libc::SYS_ftruncate, &[&fd, "0"]);
            "ftruncate"
        }
        PidAbuse::Unlock => {
            s.call("flock", libc::SYS_flock, &[&fd, &libc::LOCK_UN.to_string()]);
            "flock"
        }
        PidAbuse::SharedMapping => {
            s.call(
                "mmap",
                libc::SYS_mmap,
                &["0", "4096", "3", &libc::MAP_SHARED.to_string(), &fd, "0"],
            );
            // Into the mapping when there is one, else harmlessly into the scratch page.
            let dst = format!("{0} != -1 ? {0} : {1}", r("mmap"), at(AUX));
            s.memcpy(&dst, DATA, 2);
            "mmap"
        }
        PidAbuse::Unlink => {
            let path = victim.display().to_string();
            s.put(AUX, format!("{path}\0").as_bytes()).call(
                "unlinkat",
                libc::SYS_unlinkat,
                &[&libc::AT_FDCWD.to_string(), &at(AUX), "0"],
            );
            "unlinkat"
        }
    };
    let inj = s.run(&mut agent);
    let content = dir.pid_file_content();
    let mut escaped = (content.as_deref() != Some(want.as_str()))
        .then(|| format!("the PID file now holds {content:?} instead of {want:?}"));
    if !victim.exists() {
        escaped = Some(format!("{} was removed", victim.display()));
    }
    if escaped.is_none() && inj.died.is_none() {
        // Is the lock still held? A second open file description must not get it.
        let f = fs::File::open(dir.pid_file()).expect("open PID file");
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_) => {
                escaped =
                    Some("the PID file is no longer locked: a second agent could start".into())
            }
            Err((_, nix::Error::EWOULDBLOCK)) => {}
            Err((_, e)) => panic!("flock PID file: {e}"),
        }
    }
    verdict(mode, &agent, &inj, &[key], escaped);
}

kernel_only!(pidfile_overwrite => |m| pid_file(m, PidAbuse::Overwrite));

kernel_only!(pidfile_ftruncate => |m| pid_file(m, PidAbuse::Truncate));

kernel_only!(pidfile_shared_mapping => |m| pid_file(m, PidAbuse::SharedMapping));
kernel_and_control!(pidfile_unlock => |m| pid_file(m, PidAbuse::Unlock));

kernel_and_control!(pidfile_unlink => |m| pid_file(m, PidAbuse::Unlink));

// ---------------------------------------------------------------------------------------
// 12. Signals (and ptrace) to another process of the agent's user
// ---------------------------------------------------------------------------------------

/// `sleep 1000` running as the agent's user: what a compromised agent could signal. Killed and
/// reaped on drop.
struct Victim {
    child: Child,
}

impl Victim {
    fn spawn(uid: u32) -> Victim {
        let child = Command::new("setpriv")
            .args([
                "--reuid",
                AGENT_USER,
                "--regid",
                AGENT_USER,
                "--clear-groups",
            ])
            .args(["sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn setpriv (util-linux)");
        let v = Victim { child };
        let pid = v.pid();
        wait_until(
            || format!("pid {pid} to run sleep as {AGENT_USER}"),
            || {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                comm.trim() == "sleep"
                    && status
                        .lines()
                        .any(|l| l.starts_with("Uid:") && l.contains(&format!("\t{uid}\t")))
            },
        );
        v
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What happened to it: killed (a delivered SIGKILL takes effect at once; the bounded wait
    /// only lets the exit complete), or traced.
    fn harmed(&mut self) -> Option<String> {
        if let Some(st) = wait_child(&mut self.child, Duration::from_secs(1)) {
            return Some(format!(
                "the victim (pid {}, {AGENT_USER}) ended: {st}",
                self.pid()
            ));
        }
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim)
            .unwrap_or("0");
        (tracer != "0").then(|| format!("the victim (pid {}) is traced by {tracer}", self.pid()))
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SignalPath {
    Kill,
    Tkill,
    Tgkill,
    RtSigqueueinfo,
    RtTgsigqueueinfo,
    Pidfd,
    PtraceAttach,
}

fn signal_victim(mode: Mode, how: SignalPath) {
    let dir = TestDir::new();
    let mut victim = Victim::spawn(dir.uid);
    let mut agent = start(&dir, mode, &[]);
    let v = victim.pid().to_string();
    let kill = libc::SIGKILL.to_string();
    let mut s = Script::new();
    // siginfo_t at AUX: si_signo = SIGKILL, si_errno = 0, si_code = SI_QUEUE (-1), si_pid,
    // si_uid: what sigqueue(3) sends.
    let mut info = Vec::new();
    info.extend(libc::SIGKILL.to_ne_bytes());
    info.extend(0i32.to_ne_bytes());
    info.extend((-1i32).to_ne_bytes());
    info.extend(0i32.to_ne_bytes());
    info.extend((agent.pid() as i32).to_ne_bytes());
    info.extend(dir.uid.to_ne_bytes());
    s.put(AUX, &info);
    let key = match how {
        SignalPath::Kill => {
            s.call("kill", libc::SYS_kill, &[&v, &kill]);
            "kill"
        }
        SignalPath::Tkill => {
            s.call("tkill", libc::SYS_tkill, &[&v, &kill]);
            "tkill"
        }
        SignalPath::Tgkill => {
            s.call("tgkill", libc::SYS_tgkill, &[&v, &v, &kill]);
            "tgkill"
        }
        SignalPath::RtSigqueueinfo => {
            s.call(
                "rt_sigqueueinfo",
                libc::SYS_rt_sigqueueinfo,
                &[&v, &kill, &at(AUX)],
            );
            "rt_sigqueueinfo"
        }
        SignalPath::RtTgsigqueueinfo => {
            s.call(
                "rt_tgsigqueueinfo",
                libc::SYS_rt_tgsigqueueinfo,
                &[&v, &v, &kill, &at(AUX)],
            );
            "rt_tgsigqueueinfo"
        }
        SignalPath::Pidfd => {
            s.call("pidfd_open", libc::SYS_pidfd_open, &[&v, "0"]).call(
                "pidfd_send_signal",
                libc::SYS_pidfd_send_signal,
                &[&r("pidfd_open"), &kill, "0", "0"],
            );
            "pidfd_send_signal"
        }
        SignalPath::PtraceAttach => {
            s.call(
                "ptrace",
                libc::SYS_ptrace,
                &[&libc::PTRACE_ATTACH.to_string(), &v, "0", "0"],
            );
            "ptrace"
        }
    };
    let inj = s.run(&mut agent);
    let escaped = victim.harmed();
    verdict(mode, &agent, &inj, &[key], escaped);
}

all_modes!(signal_kill => |m| signal_victim(m, SignalPath::Kill));

all_modes!(signal_tkill => |m| signal_victim(m, SignalPath::Tkill));

all_modes!(signal_tgkill => |m| signal_victim(m, SignalPath::Tgkill));

all_modes!(signal_rt_sigqueueinfo => |m| signal_victim(m, SignalPath::RtSigqueueinfo));

all_modes!(signal_rt_tgsigqueueinfo => |m| signal_victim(m, SignalPath::RtTgsigqueueinfo));

all_modes!(signal_pidfd_send_signal => |m| signal_victim(m, SignalPath::Pidfd));

all_modes!(ptrace_attach => |m| signal_victim(m, SignalPath::PtraceAttach));

// ---------------------------------------------------------------------------------------
// Policy fragments (policy/fragments/): the `dbus` fragment of the systemd collector
// ---------------------------------------------------------------------------------------

/// `sockaddr_un` for `path`, padded with zeros to `sizeof(struct sockaddr_un)` (110 bytes):
/// what the systemd collector passes, and the only length the `dbus` fragment allows.
fn sockaddr_unix_full(path: &Path) -> Vec<u8> {
    let mut v = sockaddr_unix(path.as_os_str().as_encoded_bytes(), false);
    v.resize(std::mem::size_of::<libc::sockaddr_un>(), 0);
    v
}

/// SOCK_STREAM | SOCK_CLOEXEC: the socket type the `dbus` fragment allows.
const STREAM_CLOEXEC: &str = "0x80001";

/// A unix stream listener the test owns, at a 0666 path the agent's user may connect to.
fn stream_listener() -> (tempfile::TempDir, PathBuf, UnixListener) {
    let sdir = socket_dir();
    let path = sdir.path().join("bus.sock");
    let l = UnixListener::bind(&path).expect("bind listener");
    world_writable(&path);
    l.set_nonblocking(true).expect("nonblocking");
    (sdir, path, l)
}

fn accepted(l: &UnixListener) -> bool {
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// The systemd collector is not enabled, so its fragment is not in force: exactly the calls
/// the fragment would allow (an AF_UNIX SOCK_STREAM|SOCK_CLOEXEC socket, connect with the full
/// address length) kill the agent.
fn dbus_fragment_not_in_force(mode: Mode) {
    let dir = TestDir::new();
    let (_sdir, path, l) = stream_listener();
    let sa = sockaddr_unix_full(&path);
    let mut agent = start(&dir, mode, &[]);
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call("socket", libc::SYS_socket, &["1", STREAM_CLOEXEC, "0"])
        .call(
            "connect",
            libc::SYS_connect,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        );
    let inj = s.run(&mut agent);
    let escaped = accepted(&l).then(|| "the test's unix listener accepted a connection".into());
    verdict(mode, &agent, &inj, &["socket", "connect"], escaped);
}

all_modes!(dbus_fragment_not_in_force => dbus_fragment_not_in_force);

/// With `--collector.systemd` the `dbus` fragment is in force: its calls work under the full
/// sandbox (the connection reaches the test's listener and the agent lives on), and what the
/// fragment does not allow still kills: connect with the address's own length (how an abstract
/// name would be reached), a datagram socket, an AF_INET socket.
fn dbus_fragment_in_force(mode: Mode) {
    let args = ["--collector.systemd"];
    // No bus at this address: the collector's own connection fails (a warning), which leaves
    // the injected calls as the only connection attempts.
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")];
    let (_sdir, path, l) = stream_listener();
    let sa = sockaddr_unix_full(&path);
    {
        let dir = TestDir::new();
        let mut agent = start_with(&dir, mode, &env, &args);
        let mut s = Script::new();
        s.put(ADDR, &sa)
            .call("socket", libc::SYS_socket, &["1", STREAM_CLOEXEC, "0"])
            .call(
                "connect",
                libc::SYS_connect,
                &[&r("socket"), &at(ADDR), &sa.len().to_string()],
            )
            .call("close", libc::SYS_close, &[&r("socket")]);
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_none() && inj.ret("socket").is_some_and(|fd| fd >= 0),
            "({mode}) the dbus fragment's socket() failed\n{}",
            inj.report()
        );
        assert_eq!(
            inj.ret("connect"),
            Some(0),
            "({mode}) the dbus fragment's connect() failed\n{}",
            inj.report()
        );
        assert!(accepted(&l), "({mode}) no connection reached the listener");
        assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
    }
    let exact = sockaddr_unix(path.as_os_str().as_encoded_bytes(), false);
    let cases: [(&str, &str, Option<usize>); 3] = [
        ("connect_own_length", STREAM_CLOEXEC, Some(exact.len())),
        ("socket_dgram", "0x80002", None),
        ("socket_inet", STREAM_CLOEXEC, None),
    ];
    for (name, ty, connect_len) in cases {
        let dir = TestDir::new();
        let mut agent = start_with(&dir, mode, &env, &args);
        let domain = if name == "socket_inet" { "2" } else { "1" };
        let mut s = Script::new();
        s.put(ADDR, &exact)
            .call("socket", libc::SYS_socket, &[domain, ty, "0"]);
        let refused = match connect_len {
            Some(len) => {
                s.call(
                    "connect",
                    libc::SYS_connect,
                    &[&r("socket"), &at(ADDR), &len.to_string()],
                );
                "connect"
            }
            None => "socket",
        };
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_some(),
            "({mode}) {name}: the agent survived a call the dbus fragment does not allow\n{}",
            inj.report()
        );
        let escaped = accepted(&l).then(|| format!("{name}: the listener accepted a connection"));
        verdict(mode, &agent, &inj, &[refused], escaped);
    }
}

sandboxed_modes!(dbus_fragment_in_force => dbus_fragment_in_force);

// ---------------------------------------------------------------------------------------
// Policy fragments: `netlink-route` (network_route and the netlink modes of netdev, arp,
// netclass) and `netlink-sock-diag` (tcpstat)
// ---------------------------------------------------------------------------------------

/// SOCK_DGRAM | SOCK_CLOEXEC: the socket type the `netlink-*` fragments allow (what
/// netlink_sys::Socket::new passes).
const DGRAM_CLOEXEC: &str = "0x80002";
/// NETLINK_ROUTE, NETLINK_SOCK_DIAG and NETLINK_GENERIC.
const NETLINK_ROUTE: &str = "0";
const NETLINK_SOCK_DIAG: &str = "4";
const NETLINK_GENERIC: &str = "16";

/// An `RTM_GETLINK` dump request: `nlmsghdr` (len 32, type 18, NLM_F_REQUEST|NLM_F_DUMP, seq 1)
/// and an empty `ifinfomsg`.
fn rtm_getlink_dump() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&32u32.to_le_bytes());
    v.extend_from_slice(&18u16.to_le_bytes());
    v.extend_from_slice(&0x301u16.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.resize(32, 0);
    v
}

/// An `RTM_GETADDR` dump request (`--collector.netdev.address-info`): `nlmsghdr` (len 24,
/// type 22, NLM_F_REQUEST|NLM_F_DUMP, seq 1) and an empty `ifaddrmsg` (AF_UNSPEC: both
/// families).
fn rtm_getaddr_dump() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&24u32.to_le_bytes());
    v.extend_from_slice(&22u16.to_le_bytes());
    v.extend_from_slice(&0x301u16.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.resize(24, 0);
    v
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for the IPv4 TCP sockets in any state:
/// `nlmsghdr` (len 72, type 20, NLM_F_REQUEST|NLM_F_DUMP, seq 1) and `inet_diag_req_v2`.
fn sock_diag_tcp4_dump() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&72u32.to_le_bytes());
    v.extend_from_slice(&20u16.to_le_bytes());
    v.extend_from_slice(&0x301u16.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&[2, 6, 0, 0]); // AF_INET, IPPROTO_TCP, no extension
    v.extend_from_slice(&0xfffu32.to_le_bytes()); // TCPF_ALL
    v.resize(72, 0);
    v
}

/// With the default collectors (netdev and arp in their procfs mode, wifi off) no netlink
/// fragment is in force: exactly the socket the fragments would allow kills the agent, for each
/// protocol. The
/// control shows the injected socket appearing in an unsandboxed agent.
fn netlink_fragments_not_in_force(mode: Mode) {
    for (name, protocol) in [
        ("route", NETLINK_ROUTE),
        ("sock_diag", NETLINK_SOCK_DIAG),
        ("generic", NETLINK_GENERIC),
    ] {
        let dir = TestDir::new();
        let mut agent = start(&dir, mode, &[]);
        if mode != Mode::Off {
            let body = agent.scrape("/metrics");
            for fragment in ["netlink-route", "netlink-sock-diag", "netlink-generic"] {
                assert_eq!(
                    must_value(
                        &body,
                        "monitoring_agent_sandbox_fragment",
                        &[("fragment", fragment)]
                    ),
                    0.0,
                    "({mode}) the {fragment} fragment is in force with the default collectors"
                );
            }
        }
        let pid = agent.pid();
        let before = agent_socket_inodes(pid);
        let mut s = Script::new();
        s.call(name, libc::SYS_socket, &["16", DGRAM_CLOEXEC, protocol]);
        let inj = s.run(&mut agent);
        let escaped = new_agent_sockets(pid, &before, "NETLINK");
        verdict(mode, &agent, &inj, &[name], escaped);
    }
}

all_modes!(netlink_fragments_not_in_force => netlink_fragments_not_in_force);

/// netdev's node_exporter 1.12 flags other than address-info (and address-info switched off)
/// need no fragment: with them the rtnetlink socket still kills the agent; the control shows it
/// appear.
fn netdev_flags_keep_netlink_route_out(mode: Mode) {
    let dir = TestDir::new();
    let mut agent = start_with(
        &dir,
        mode,
        &[],
        &[
            "--collector.netdev.enable-detailed-metrics",
            "--collector.netdev.label-ifalias",
            "--collector.netdev.address-info=false",
            "--collector.netdev.device-blacklist=^nothing$",
        ],
    );
    if mode != Mode::Off {
        let body = agent.scrape("/metrics");
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", "netlink-route")]
            ),
            0.0,
            "({mode}) netlink-route in force without --collector.netdev.address-info"
        );
        assert!(body.contains("node_network_receive_errors_total{device=\"lo\",ifalias="));
    }
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call(
        "route",
        libc::SYS_socket,
        &["16", DGRAM_CLOEXEC, NETLINK_ROUTE],
    );
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "NETLINK");
    verdict(mode, &agent, &inj, &["route"], escaped);
}

all_modes!(netdev_flags_keep_netlink_route_out => netdev_flags_keep_netlink_route_out);

/// Under the full sandbox, an injected dump over the fragment's socket: socket, send the
/// request, receive the first answer, whose first message must be `answer_type` (not
/// `NLMSG_ERROR`), close. The agent lives on and serves.
fn dump_works(mode: Mode, args: &[&str], protocol: &str, request: &[u8], answer_type: i64) {
    let dir = TestDir::new();
    let mut agent = start_with(&dir, mode, &[], args);
    let mut s = Script::new();
    s.put(DATA, request)
        .call("socket", libc::SYS_socket, &["16", DGRAM_CLOEXEC, protocol])
        .call(
            "sendto",
            libc::SYS_sendto,
            &[
                &r("socket"),
                &at(DATA),
                &request.len().to_string(),
                "0",
                "0",
                "0",
            ],
        )
        .call(
            "recvfrom",
            libc::SYS_recvfrom,
            &[&r("socket"), &at(AUX), "3072", "0", "0", "0"],
        )
        .load_int("answer", AUX + 4)
        .call("close", libc::SYS_close, &[&r("socket")]);
    let inj = s.run(&mut agent);
    assert!(
        inj.died.is_none() && inj.ret("socket").is_some_and(|fd| fd >= 0),
        "({mode}, {args:?}) the fragment's socket() failed\n{}",
        inj.report()
    );
    assert_eq!(
        inj.ret("sendto"),
        Some(request.len() as i64),
        "({mode}, {args:?}) sending the dump request failed\n{}",
        inj.report()
    );
    assert!(
        inj.ret("recvfrom").is_some_and(|n| n >= 16),
        "({mode}, {args:?}) no answer to the dump request\n{}",
        inj.report()
    );
    assert_eq!(
        inj.ret("answer").map(|v| v & 0xffff),
        Some(answer_type),
        "({mode}, {args:?}) the kernel's answer is not the dump (2 is NLMSG_ERROR)\n{}",
        inj.report()
    );
    assert_eq!(inj.ret("close"), Some(0));
    assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
}

/// Each injection in a fresh agent started with `args`: must kill it (SIGSYS).
/// An injected call: its name, number and arguments.
type Call<'a> = (&'a str, libc::c_long, &'a [&'a str]);

fn still_killed(mode: Mode, args: &[&str], cases: &[(&str, &[Call])]) {
    for (case, calls) in cases {
        let dir = TestDir::new();
        let mut agent = start_with(&dir, mode, &[], args);
        let pid = agent.pid();
        let before = agent_socket_inodes(pid);
        let mut s = Script::new();
        s.put(ADDR, &[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // sockaddr_nl: AF_NETLINK, pid 0
        for (name, nr, a) in *calls {
            s.call(name, *nr, a);
        }
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_some(),
            "({mode}, {args:?}) {case}: the agent survived a call its fragments do not allow\n{}",
            inj.report()
        );
        let last = calls.last().map(|c| c.0).unwrap_or_default();
        // The call under test killed it, not one before it (the socket must be allowed).
        assert_eq!(
            inj.killer(),
            Some(last),
            "({mode}, {args:?}) {case}: the agent died before the call under test\n{}",
            inj.report()
        );
        let escaped = if inj.died.is_none() {
            new_agent_sockets(pid, &before, "NETLINK")
        } else {
            None
        };
        verdict(mode, &agent, &inj, &[last], escaped);
    }
}

/// With a netlink mode on (or `network_route`, or `--collector.netdev.address-info`), the
/// `netlink-route` fragment is in force: an rtnetlink dump works under the full sandbox. Around it, what the fragment does not allow
/// still kills: a NETLINK_SOCK_DIAG socket, a raw netlink socket, bind (joining multicast
/// groups), sendto with a destination address.
fn netlink_route_fragment_in_force(mode: Mode) {
    for args in [
        &["--collector.netdev.netlink"][..],
        &["--collector.arp.netlink"],
        &["--collector.netclass.netlink"],
        &["--collector.network_route"],
        // With the `dbus` fragment too: both add `socket` rules, which must add up (OR-ed).
        &["--collector.network_route", "--collector.systemd"],
        // netdev's address info in its default procfs mode: RTM_GETLINK and RTM_GETADDR.
        &["--collector.netdev.address-info"],
    ] {
        dump_works(mode, args, NETLINK_ROUTE, &rtm_getlink_dump(), 16);
    }
    // The address dump (`RTM_NEWADDR` answers, type 20) of --collector.netdev.address-info.
    dump_works(
        mode,
        &["--collector.netdev.address-info"],
        NETLINK_ROUTE,
        &rtm_getaddr_dump(),
        20,
    );
    let sock = r("socket");
    let addr = at(ADDR);
    still_killed(
        mode,
        &["--collector.netdev.netlink"],
        &[
            (
                "sock_diag_socket",
                &[(
                    "sock_diag",
                    libc::SYS_socket,
                    &["16", DGRAM_CLOEXEC, NETLINK_SOCK_DIAG],
                )],
            ),
            (
                "raw_socket",
                &[("raw", libc::SYS_socket, &["16", "0x80003", NETLINK_ROUTE])],
            ),
            (
                "bind",
                &[
                    (
                        "socket",
                        libc::SYS_socket,
                        &["16", DGRAM_CLOEXEC, NETLINK_ROUTE],
                    ),
                    ("bind", libc::SYS_bind, &[&sock, &addr, "12"]),
                ],
            ),
            (
                "sendto_with_address",
                &[
                    (
                        "socket",
                        libc::SYS_socket,
                        &["16", DGRAM_CLOEXEC, NETLINK_ROUTE],
                    ),
                    (
                        "sendto",
                        libc::SYS_sendto,
                        &[&sock, &addr, "12", "0", &addr, "12"],
                    ),
                ],
            ),
        ],
    );
}

sandboxed_modes!(netlink_route_fragment_in_force => netlink_route_fragment_in_force);

/// With `--collector.tcpstat` the `netlink-sock-diag` fragment is in force: a sock_diag dump
/// works under the full sandbox, and a NETLINK_ROUTE socket still kills.
fn netlink_sock_diag_fragment_in_force(mode: Mode) {
    dump_works(
        mode,
        &["--collector.tcpstat"],
        NETLINK_SOCK_DIAG,
        &sock_diag_tcp4_dump(),
        20,
    );
    still_killed(
        mode,
        &["--collector.tcpstat"],
        &[(
            "route_socket",
            &[(
                "route",
                libc::SYS_socket,
                &["16", DGRAM_CLOEXEC, NETLINK_ROUTE],
            )],
        )],
    );
}

sandboxed_modes!(netlink_sock_diag_fragment_in_force => netlink_sock_diag_fragment_in_force);

// ---------------------------------------------------------------------------------------
// Policy fragment: `ethtool` (the ethtool collector): socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC,
// 0) and ioctl(SIOCETHTOOL)
// ---------------------------------------------------------------------------------------

/// SIOCETHTOOL (0x8946).
const SIOCETHTOOL: &str = "0x8946";

/// A `struct ifreq` for `eth0` at `ADDR` whose `ifr_data` points to an `ETHTOOL_GDRVINFO`
/// request (`struct ethtool_drvinfo`, 196 bytes) at `AUX`.
fn put_drvinfo_request(s: &mut Script) {
    let mut name = b"eth0".to_vec();
    name.resize(16, 0);
    s.put(ADDR, &name)
        .put_word(ADDR + 16, &at(AUX))
        .put(ADDR + 24, &[0u8; 16])
        .put(AUX, &3u32.to_le_bytes())
        .put(AUX + 4, &[0u8; 196 - 4]);
}

/// The first four bytes of eth0's driver name as `ETHTOOL_GDRVINFO` writes them, read as an
/// int (what `load_int` yields), from `ethtool -i eth0`.
fn eth0_driver_int() -> i64 {
    let out = Command::new(common::find_program("ethtool").expect("the ethtool program"))
        .args(["-i", "eth0"])
        .output()
        .expect("ethtool -i eth0");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let driver = text
        .lines()
        .find_map(|l| l.strip_prefix("driver: "))
        .unwrap_or_else(|| panic!("ethtool -i eth0 names no driver: {text}"));
    let mut b = driver.as_bytes().to_vec();
    b.resize(4, 0);
    i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The ethtool collector is not enabled, so its fragment is not in force: exactly the socket
/// the fragment would allow kills the agent, and so does the SIOCETHTOOL ioctl (on the
/// agent's own listening socket). The controls show the socket appearing and the driver
/// information being read in an unsandboxed agent.
fn ethtool_fragment_not_in_force(mode: Mode) {
    {
        let dir = TestDir::new();
        let mut agent = start(&dir, mode, &[]);
        if mode != Mode::Off {
            let body = agent.scrape("/metrics");
            assert_eq!(
                must_value(
                    &body,
                    "monitoring_agent_sandbox_fragment",
                    &[("fragment", "ethtool")]
                ),
                0.0,
                "({mode}) the ethtool fragment is in force with the default collectors"
            );
        }
        let pid = agent.pid();
        let before = agent_socket_inodes(pid);
        let mut s = Script::new();
        s.call("socket", libc::SYS_socket, &["2", DGRAM_CLOEXEC, "0"]);
        let inj = s.run(&mut agent);
        let escaped = new_agent_sockets(pid, &before, "UDP");
        verdict(mode, &agent, &inj, &["socket"], escaped);
    }
    {
        let dir = TestDir::new();
        let mut agent = start(&dir, mode, &[]);
        let listener = agent_fds(agent.pid())
            .into_iter()
            .find(|(_, t)| t.starts_with("socket:"))
            .map(|(fd, _)| fd)
            .unwrap_or_else(|| panic!("the agent holds no socket\n{}", agent.diagnostics()));
        let mut s = Script::new();
        put_drvinfo_request(&mut s);
        s.call(
            "ioctl",
            libc::SYS_ioctl,
            &[&listener.to_string(), SIOCETHTOOL, &at(ADDR)],
        )
        .load_int("driver", AUX + 4);
        let inj = s.run(&mut agent);
        let escaped = (inj.ret("ioctl") == Some(0) && inj.ret("driver") == Some(eth0_driver_int()))
            .then(|| "SIOCETHTOOL read eth0's driver information".to_string());
        verdict(mode, &agent, &inj, &["ioctl"], escaped);
    }
}

all_modes!(ethtool_fragment_not_in_force => ethtool_fragment_not_in_force);

/// With `--collector.ethtool` the `ethtool` fragment is in force: its socket and an
/// `ETHTOOL_GDRVINFO` request work under the full sandbox (eth0's driver name comes back, as
/// `ethtool -i eth0` prints it) and the agent lives on. What the fragment does not allow still
/// kills: another ioctl request on its socket (SIOCGIFCONF, SIOCSIFFLAGS), a stream socket, an
/// AF_INET6 or non-CLOEXEC datagram socket, connect and sendto with an address on its socket.
fn ethtool_fragment_in_force(mode: Mode) {
    let args = ["--collector.ethtool"];
    {
        let dir = TestDir::new();
        let mut agent = start_with(&dir, mode, &[], &args);
        let body = agent.scrape("/metrics");
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", "ethtool")]
            ),
            1.0,
            "({mode}) the ethtool fragment is not in force with --collector.ethtool"
        );
        let mut s = Script::new();
        put_drvinfo_request(&mut s);
        s.call("socket", libc::SYS_socket, &["2", DGRAM_CLOEXEC, "0"])
            .call(
                "ioctl",
                libc::SYS_ioctl,
                &[&r("socket"), SIOCETHTOOL, &at(ADDR)],
            )
            .load_int("driver", AUX + 4)
            .call("close", libc::SYS_close, &[&r("socket")]);
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_none() && inj.ret("socket").is_some_and(|fd| fd >= 0),
            "({mode}) the fragment's socket() failed\n{}",
            inj.report()
        );
        assert_eq!(
            inj.ret("ioctl"),
            Some(0),
            "({mode}) SIOCETHTOOL failed\n{}",
            inj.report()
        );
        assert_eq!(
            inj.ret("driver"),
            Some(eth0_driver_int()),
            "({mode}) ETHTOOL_GDRVINFO did not return eth0's driver\n{}",
            inj.report()
        );
        assert_eq!(inj.ret("close"), Some(0));
        assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
    }
    let sock = r("socket");
    let addr = at(ADDR);
    let inet = ("socket", libc::SYS_socket, &["2", DGRAM_CLOEXEC, "0"][..]);
    still_killed(
        mode,
        &args,
        &[
            (
                "ioctl_siocgifconf",
                &[inet, ("ioctl", libc::SYS_ioctl, &[&sock, "0x8912", &addr])],
            ),
            (
                "ioctl_siocsifflags",
                &[inet, ("ioctl", libc::SYS_ioctl, &[&sock, "0x8914", &addr])],
            ),
            (
                "stream_socket",
                &[("stream", libc::SYS_socket, &["2", "0x80001", "0"])],
            ),
            (
                "inet6_socket",
                &[("inet6", libc::SYS_socket, &["10", DGRAM_CLOEXEC, "0"])],
            ),
            (
                "no_cloexec_socket",
                &[("plain", libc::SYS_socket, &["2", "2", "0"])],
            ),
            (
                "connect",
                &[inet, ("connect", libc::SYS_connect, &[&sock, &addr, "16"])],
            ),
            (
                "sendto_with_address",
                &[
                    inet,
                    (
                        "sendto",
                        libc::SYS_sendto,
                        &[&sock, &addr, "12", "0", &addr, "16"],
                    ),
                ],
            ),
        ],
    );
}

sandboxed_modes!(ethtool_fragment_in_force => ethtool_fragment_in_force);

// ---------------------------------------------------------------------------------------
// Policy fragment `netlink-generic` (the wifi collector's live mode: nl80211)
// ---------------------------------------------------------------------------------------

/// A `CTRL_CMD_GETFAMILY` dump request to the generic netlink controller: `nlmsghdr` (len 20,
/// type GENL_ID_CTRL 0x10, NLM_F_REQUEST|NLM_F_DUMP, seq 1) and `genlmsghdr` (cmd 3, version 1).
/// Answered with every registered family (the controller's own at least), type 0x10.
fn ctrl_getfamily_dump() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&20u32.to_le_bytes());
    v.extend_from_slice(&0x10u16.to_le_bytes());
    v.extend_from_slice(&0x301u16.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&[3, 1, 0, 0]);
    v
}

/// wifi with `--collector.wifi.fixtures` reads files: the `netlink-generic` fragment is not in
/// force and its socket kills the agent (the default collectors' case is in
/// `netlink_fragments_not_in_force`).
fn netlink_generic_fragment_not_in_force_with_fixtures(mode: Mode) {
    let dir = TestDir::new();
    let tree = dir.path().join("wifi");
    copy_tree(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ne112/wifi"
        )),
        &tree,
    );
    let fixtures = tree.display().to_string();
    let mut agent = start_with(
        &dir,
        mode,
        &[],
        &["--collector.wifi", "--collector.wifi.fixtures", &fixtures],
    );
    if mode != Mode::Off {
        let body = agent.scrape("/metrics");
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", "netlink-generic")]
            ),
            0.0,
            "({mode}) the netlink-generic fragment is in force for wifi with fixtures"
        );
    }
    let pid = agent.pid();
    let before = agent_socket_inodes(pid);
    let mut s = Script::new();
    s.call(
        "generic",
        libc::SYS_socket,
        &["16", DGRAM_CLOEXEC, NETLINK_GENERIC],
    );
    let inj = s.run(&mut agent);
    let escaped = new_agent_sockets(pid, &before, "NETLINK");
    verdict(mode, &agent, &inj, &["generic"], escaped);
}

all_modes!(
    netlink_generic_fragment_not_in_force_with_fixtures
        => netlink_generic_fragment_not_in_force_with_fixtures
);

/// With `--collector.wifi` (no fixtures: the live nl80211 mode) the `netlink-generic` fragment
/// is in force: a generic netlink dump works under the full sandbox (also beside the `dbus`
/// and `netlink-route` fragments, whose `socket` rules must add up). Around it, what the
/// fragment does not allow still kills: a NETLINK_ROUTE socket, a raw generic netlink socket,
/// bind (joining multicast groups: scan and event notifications), sendto with a destination
/// address.
fn netlink_generic_fragment_in_force(mode: Mode) {
    for args in [
        &["--collector.wifi"][..],
        &[
            "--collector.wifi",
            "--collector.systemd",
            "--collector.network_route",
        ],
    ] {
        dump_works(mode, args, NETLINK_GENERIC, &ctrl_getfamily_dump(), 0x10);
    }
    let sock = r("socket");
    let addr = at(ADDR);
    still_killed(
        mode,
        &["--collector.wifi"],
        &[
            (
                "route_socket",
                &[(
                    "route",
                    libc::SYS_socket,
                    &["16", DGRAM_CLOEXEC, NETLINK_ROUTE],
                )],
            ),
            (
                "raw_socket",
                &[("raw", libc::SYS_socket, &["16", "0x80003", NETLINK_GENERIC])],
            ),
            (
                "bind",
                &[
                    (
                        "socket",
                        libc::SYS_socket,
                        &["16", DGRAM_CLOEXEC, NETLINK_GENERIC],
                    ),
                    ("bind", libc::SYS_bind, &[&sock, &addr, "12"]),
                ],
            ),
            (
                "sendto_with_address",
                &[
                    (
                        "socket",
                        libc::SYS_socket,
                        &["16", DGRAM_CLOEXEC, NETLINK_GENERIC],
                    ),
                    (
                        "sendto",
                        libc::SYS_sendto,
                        &[&sock, &addr, "12", "0", &addr, "12"],
                    ),
                ],
            ),
        ],
    );
}

sandboxed_modes!(netlink_generic_fragment_in_force => netlink_generic_fragment_in_force);

// ---------------------------------------------------------------------------------------
// Policy fragment `supervisord` (the supervisord collector)
// ---------------------------------------------------------------------------------------

/// The supervisord collector is not enabled, so its fragment is not in force: exactly the
/// calls it would allow (an AF_INET SOCK_STREAM|SOCK_CLOEXEC socket, connect with
/// `sizeof(struct sockaddr_in)`) kill the agent.
fn supervisord_fragment_not_in_force(mode: Mode) {
    let dir = TestDir::new();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    l.set_nonblocking(true).expect("nonblocking");
    let mut agent = start(&dir, mode, &[]);
    let sa = sockaddr_inet(l.local_addr().expect("addr"));
    let mut s = Script::new();
    s.put(ADDR, &sa)
        .call("socket", libc::SYS_socket, &["2", STREAM_CLOEXEC, "0"])
        .call(
            "connect",
            libc::SYS_connect,
            &[&r("socket"), &at(ADDR), &sa.len().to_string()],
        );
    let inj = s.run(&mut agent);
    verdict(mode, &agent, &inj, &["socket", "connect"], tcp_accepted(&l));
}

all_modes!(supervisord_fragment_not_in_force => supervisord_fragment_not_in_force);

/// With `--collector.supervisord` (an `http://` URL on a port the test listens on) the
/// `supervisord` fragment is in force: a TCP connect to that port works under the full
/// sandbox, and so does its unix-socket form. A connect to another TCP port is refused by
/// Landlock at the kernel's ABI (EACCES, the agent lives); with Landlock capped at ABI 1 it
/// succeeds: the documented cost on kernels without Landlock's network rules (SECURITY.md).
/// What the fragment does not allow still kills: a datagram socket, connect with another
/// address length, setsockopt other than SO_RCVTIMEO/SO_SNDTIMEO.
fn supervisord_fragment_in_force(mode: Mode) {
    let allowed = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    allowed.set_nonblocking(true).expect("nonblocking");
    let other = TcpListener::bind("127.0.0.1:0").expect("bind listener");
    other.set_nonblocking(true).expect("nonblocking");
    let port = allowed.local_addr().expect("addr").port();
    let url = format!("--collector.supervisord.url=http://127.0.0.1:{port}/RPC2");
    // With Landlock capped, `start_with` scrapes once to check the cap: the collector then
    // connects to the URL's listener, which never answers (a short deadline keeps that scrape
    // short). That connection is accepted and dropped by `start_sup`, so every connection the
    // listeners see afterwards is an injected one.
    let args = [
        "--collector.supervisord",
        url.as_str(),
        "--collector.deadline",
        "1",
    ];
    let start_sup = |dir: &TestDir| {
        let agent = start_with(dir, mode, &[], &args);
        while tcp_accepted(&allowed).is_some() {}
        agent
    };
    let (_sdir, path, ul) = stream_listener();
    let unix_sa = sockaddr_unix_full(&path);
    for (target, want_ok) in [
        (&allowed, true),
        (&other, matches!(mode, Mode::MaxAbi(n) if n < 4)),
    ] {
        let dir = TestDir::new();
        let mut agent = start_sup(&dir);
        let sa = sockaddr_inet(target.local_addr().expect("addr"));
        let mut s = Script::new();
        s.put(ADDR, &sa)
            .call("socket", libc::SYS_socket, &["2", STREAM_CLOEXEC, "0"])
            .call(
                "connect",
                libc::SYS_connect,
                &[&r("socket"), &at(ADDR), &sa.len().to_string()],
            )
            .call("close", libc::SYS_close, &[&r("socket")]);
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_none() && inj.ret("socket").is_some_and(|fd| fd >= 0),
            "({mode}) the supervisord fragment's socket() failed\n{}",
            inj.report()
        );
        let accepted = tcp_accepted(target).is_some();
        if want_ok {
            assert_eq!(
                inj.ret("connect"),
                Some(0),
                "({mode}) connect to the URL's port failed\n{}",
                inj.report()
            );
            assert!(accepted, "({mode}) no connection reached the listener");
        } else {
            assert!(
                inj.died.is_none() && inj.ret("connect") == Some(-1),
                "({mode}) connect to a port other than the URL's was not refused (Landlock)\n{}",
                inj.report()
            );
            assert!(!accepted, "({mode}) a connection reached the other port");
        }
        assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
    }
    {
        let dir = TestDir::new();
        let mut agent = start_sup(&dir);
        let mut s = Script::new();
        s.put(ADDR, &unix_sa)
            .call("socket", libc::SYS_socket, &["1", STREAM_CLOEXEC, "0"])
            .call(
                "connect",
                libc::SYS_connect,
                &[&r("socket"), &at(ADDR), &unix_sa.len().to_string()],
            )
            .call("close", libc::SYS_close, &[&r("socket")]);
        let inj = s.run(&mut agent);
        assert_eq!(
            inj.ret("connect"),
            Some(0),
            "({mode}) the supervisord fragment's unix connect failed\n{}",
            inj.report()
        );
        assert!(
            accepted(&ul),
            "({mode}) no connection reached the unix listener"
        );
        assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
    }
    let sa = sockaddr_inet(allowed.local_addr().expect("addr"));
    let sock = r("socket");
    let addr = at(ADDR);
    let len17 = (sa.len() + 1).to_string();
    let cases: [(&str, &[Call]); 3] = [
        (
            "socket_dgram",
            &[("dgram", libc::SYS_socket, &["2", "0x80002", "0"])],
        ),
        (
            "connect_other_length",
            &[
                ("socket", libc::SYS_socket, &["2", STREAM_CLOEXEC, "0"]),
                ("connect", libc::SYS_connect, &[&sock, &addr, &len17]),
            ],
        ),
        (
            "setsockopt_rcvbuf",
            &[
                ("socket", libc::SYS_socket, &["2", STREAM_CLOEXEC, "0"]),
                // SOL_SOCKET, SO_RCVBUF
                (
                    "setsockopt",
                    libc::SYS_setsockopt,
                    &[&sock, "1", "8", &addr, "4"],
                ),
            ],
        ),
    ];
    for (case, calls) in cases {
        let dir = TestDir::new();
        let mut agent = start_sup(&dir);
        let mut s = Script::new();
        s.put(ADDR, &sa);
        for (name, nr, a) in calls {
            s.call(name, *nr, a);
        }
        let inj = s.run(&mut agent);
        let last = calls.last().map(|c| c.0).unwrap_or_default();
        assert_eq!(
            inj.killer(),
            Some(last),
            "({mode}) {case}: not killed by the call under test\n{}",
            inj.report()
        );
        let escaped = tcp_accepted(&allowed).map(|c| format!("{case}: {c}"));
        verdict(mode, &agent, &inj, &[last], escaped);
    }
}

sandboxed_modes!(supervisord_fragment_in_force => supervisord_fragment_in_force);

// ---------------------------------------------------------------------------------------
// Policy fragment `ntp` (the ntp collector): socket(AF_INET or AF_INET6,
// SOCK_DGRAM|SOCK_CLOEXEC, 0), connect with addrlen 128, setsockopt IP_TTL and SO_RCVTIMEO
// ---------------------------------------------------------------------------------------

/// `sizeof(struct sockaddr_storage)`: the only connect length the `ntp` fragment allows.
const SOCKADDR_STORAGE: &str = "128";

/// A `struct sockaddr_storage` holding `addr` (zero-padded to 128 bytes).
fn sockaddr_storage(addr: SocketAddr) -> Vec<u8> {
    let mut v = sockaddr_inet(addr);
    v.resize(128, 0);
    v
}

/// The ntp collector is not enabled, so its fragment is not in force: exactly the sockets the
/// fragment would allow kill the agent (IPv4 and IPv6). The controls show each socket appearing
/// in an unsandboxed agent.
fn ntp_fragment_not_in_force(mode: Mode) {
    for (family, proto) in [("2", "UDP"), ("10", "UDPv6")] {
        let dir = TestDir::new();
        let mut agent = start(&dir, mode, &[]);
        if mode != Mode::Off {
            let body = agent.scrape("/metrics");
            assert_eq!(
                must_value(
                    &body,
                    "monitoring_agent_sandbox_fragment",
                    &[("fragment", "ntp")]
                ),
                0.0,
                "({mode}) the ntp fragment is in force with the default collectors"
            );
        }
        let pid = agent.pid();
        let before = agent_socket_inodes(pid);
        let mut s = Script::new();
        s.call("socket", libc::SYS_socket, &[family, DGRAM_CLOEXEC, "0"]);
        let inj = s.run(&mut agent);
        let escaped = new_agent_sockets(pid, &before, proto);
        verdict(mode, &agent, &inj, &["socket"], escaped);
    }
}

all_modes!(ntp_fragment_not_in_force => ntp_fragment_not_in_force);

/// With `--collector.ntp` the `ntp` fragment is in force: its socket, connect (to a UDP
/// socket of the test, with the length of a `sockaddr_storage`), IP_TTL and an address-less
/// send work under the full sandbox (the datagram arrives), for IPv4 and IPv6, and the agent
/// lives on. The same connect length on a unix socket is refused by the kernel (EINVAL), so
/// the fragment reaches no unix socket name. What the fragment does not allow still kills: a
/// TCP (stream) socket, connect with `sizeof(struct sockaddr_in)`, sendto with an address,
/// bind, another socket option.
fn ntp_fragment_in_force(mode: Mode) {
    let args = ["--collector.ntp"];
    for (family, bind) in [("2", "127.0.0.1:0"), ("10", "[::1]:0")] {
        let dir = TestDir::new();
        let mut agent = start_with(&dir, mode, &[], &args);
        let body = agent.scrape("/metrics");
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", "ntp")]
            ),
            1.0,
            "({mode}) the ntp fragment is not in force with --collector.ntp"
        );
        let u = UdpSocket::bind(bind).expect("bind udp");
        u.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut s = Script::new();
        s.put(ADDR, &sockaddr_storage(u.local_addr().expect("addr")))
            .put(DATA, b"NTP-FRAGMENT")
            .put(AUX, &1i32.to_ne_bytes())
            .call("socket", libc::SYS_socket, &[family, DGRAM_CLOEXEC, "0"])
            .call(
                "connect",
                libc::SYS_connect,
                &[&r("socket"), &at(ADDR), SOCKADDR_STORAGE],
            )
            .call(
                "ttl",
                libc::SYS_setsockopt,
                &[&r("socket"), "0", "2", &at(AUX), "4"],
            )
            .call(
                "send",
                libc::SYS_sendto,
                &[&r("socket"), &at(DATA), "12", "0", "0", "0"],
            )
            .call("close", libc::SYS_close, &[&r("socket")])
            // The same connect length on a unix socket (the base policy's socketpair).
            .call(
                "pair",
                libc::SYS_socketpair,
                &["1", STREAM_CLOEXEC, "0", &at(PAIR)],
            )
            .load_int("unix", PAIR)
            .put(MSG, &sockaddr_unix(b"monitoring-agent-ntp", true))
            .call(
                "unix_connect",
                libc::SYS_connect,
                &[&r("unix"), &at(MSG), SOCKADDR_STORAGE],
            );
        let inj = s.run(&mut agent);
        assert!(
            inj.died.is_none() && inj.ret("socket").is_some_and(|fd| fd >= 0),
            "({mode}) the fragment's socket() failed\n{}",
            inj.report()
        );
        for call in ["connect", "ttl", "close"] {
            assert_eq!(inj.ret(call), Some(0), "({mode}) {call}\n{}", inj.report());
        }
        assert_eq!(inj.ret("send"), Some(12), "({mode})\n{}", inj.report());
        let mut buf = [0u8; 64];
        let (n, from) = u.recv_from(&mut buf).expect("the agent's datagram");
        assert_eq!(&buf[..n], b"NTP-FRAGMENT", "from {from}");
        assert_eq!(inj.ret("unix_connect"), Some(-1), "{}", inj.report());
        assert_eq!(
            inj.results.get("unix_connect").map(|(_, e)| *e),
            Some(libc::EINVAL),
            "({mode}) connect(128) on a unix socket\n{}",
            inj.report()
        );
        assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
    }
    let sock = r("socket");
    let addr = at(ADDR);
    let inet = ("socket", libc::SYS_socket, &["2", DGRAM_CLOEXEC, "0"][..]);
    still_killed(
        mode,
        &args,
        &[
            (
                "tcp_socket",
                &[("stream", libc::SYS_socket, &["2", STREAM_CLOEXEC, "0"])],
            ),
            (
                "tcp6_socket",
                &[("stream6", libc::SYS_socket, &["10", STREAM_CLOEXEC, "0"])],
            ),
            (
                "no_cloexec_socket",
                &[("plain", libc::SYS_socket, &["2", "2", "0"])],
            ),
            (
                "connect_sockaddr_in_length",
                &[inet, ("connect", libc::SYS_connect, &[&sock, &addr, "16"])],
            ),
            (
                "sendto_with_address",
                &[
                    inet,
                    (
                        "sendto",
                        libc::SYS_sendto,
                        &[&sock, &addr, "12", "0", &addr, "16"],
                    ),
                ],
            ),
            (
                "bind",
                &[inet, ("bind", libc::SYS_bind, &[&sock, &addr, "16"])],
            ),
            (
                "setsockopt_so_broadcast",
                &[
                    inet,
                    (
                        "setsockopt",
                        libc::SYS_setsockopt,
                        &[&sock, "1", "6", &addr, "4"],
                    ),
                ],
            ),
        ],
    );
}

sandboxed_modes!(ntp_fragment_in_force => ntp_fragment_in_force);
