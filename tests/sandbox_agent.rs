//! The real agent, started as root on a port below 1024: what every thread shows once it
//! serves, that a reload can still move the listener to another address on the same
//! privileged port (the reason `CAP_NET_BIND_SERVICE` is kept) but not to another port, that
//! signals and scrapes never trip the seccomp filter, and the operator's `--check-sandbox`.
//! Also: started as an ordinary user, the sandbox still applies.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;

/// A free TCP port below 1024 on 127.0.0.1 and 127.0.0.2.
fn free_privileged_port() -> u16 {
    for port in (700..1000).rev() {
        let a = TcpListener::bind(("127.0.0.1", port));
        let b = TcpListener::bind(("127.0.0.2", port));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
    panic!("no free port in 700..1000 on 127.0.0.1 and 127.0.0.2");
}

/// `(field, value)` pairs of one thread's status file.
fn status_fields(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// Asserts the hardened state on every thread of `pid`; returns the number of threads.
fn assert_every_thread(pid: u32, uid: u32, gid: u32, cap: &str) -> usize {
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(Result::ok)
        .collect();
    assert!(!tasks.is_empty());
    let ids = |v: u32| format!("{v} {v} {v} {v}");
    for t in &tasks {
        let f = status_fields(&t.path().join("status"));
        let get = |k: &str| {
            f.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let tid = t.file_name().to_string_lossy().into_owned();
        assert_eq!(get("Uid"), ids(uid), "thread {tid} Uid");
        assert_eq!(get("Gid"), ids(gid), "thread {tid} Gid");
        assert_eq!(get("Groups"), "", "thread {tid} Groups");
        assert_eq!(get("CapPrm"), cap, "thread {tid} CapPrm");
        assert_eq!(get("CapEff"), cap, "thread {tid} CapEff");
        assert_eq!(get("CapInh"), "0000000000000000", "thread {tid} CapInh");
        assert_eq!(get("CapAmb"), "0000000000000000", "thread {tid} CapAmb");
        assert_eq!(get("NoNewPrivs"), "1", "thread {tid} NoNewPrivs");
        assert_eq!(get("Seccomp"), "2", "thread {tid} Seccomp");
        if cap != "0000000000000000" || uid != 0 {
            let bnd = get("CapBnd");
            assert!(
                bnd == cap || (cap == "0000000000000000" && !bnd.is_empty()),
                "thread {tid} CapBnd {bnd}"
            );
        }
    }
    tasks.len()
}

fn sandbox_layers(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.starts_with("monitoring_agent_sandbox_enforced{"))
        .map(str::to_string)
        .collect()
}

#[test]
fn root_start_below_1024_is_hardened_and_reloads_on_the_same_port() {
    let dir = TestDir::new();
    let port = free_privileged_port();
    let cfg = dir.write_config(&format!(
        "[web]\nlisten_addresses = [\"127.0.0.1:{port}\"]\n"
    ));
    let cfg_arg = cfg.display().to_string();
    let agent = Start::new(&dir)
        .port(port)
        .no_listen_arg()
        .args(["-c", &cfg_arg])
        .spawn();
    let pid = agent.pid();
    let threads = assert_every_thread(pid, dir.uid, dir.gid, "0000000000000400");
    // CapBnd exactly CAP_NET_BIND_SERVICE, started as root.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(st.contains("CapBnd:\t0000000000000400"), "{st}");

    let body = agent.scrape("/metrics");
    let layers = sandbox_layers(&body);
    assert_eq!(layers.len(), 7, "{layers:?}");
    assert!(layers.iter().all(|l| l.ends_with(" 1")), "{layers:?}");
    assert!(
        body.contains("monitoring_agent_landlock_abi "),
        "landlock ABI reported"
    );

    // Signals that exercise logging and the summary under the filter.
    agent.signal(Signal::SIGUSR1);
    agent.wait_log("SIGUSR1: debug logging on");
    agent.signal(Signal::SIGUSR2);
    agent.wait_log("SIGUSR2: uptime");

    // Reload: the same privileged port on another address needs a new bind after the drop.
    write_in_place(
        &cfg,
        &format!("[web]\nlisten_addresses = [\"127.0.0.2:{port}\"]\n"),
    );
    agent.signal(Signal::SIGHUP);
    agent.wait_log(&format!("now listening on 127.0.0.2:{port}"));
    let moved: SocketAddr = format!("127.0.0.2:{port}").parse().expect("addr");
    let r = http(moved, "GET", "/metrics", &[]).expect("scrape on the moved listener");
    assert_eq!(r.status, 200);
    assert!(
        !accepts(loopback(port)),
        "the old address no longer listens"
    );

    // Another port: refused, the listener stays.
    write_in_place(
        &cfg,
        &format!("[web]\nlisten_addresses = [\"127.0.0.2:{}\"]\n", port - 1),
    );
    agent.signal(Signal::SIGHUP);
    agent.wait_log("a port change needs a restart");
    let r = http(moved, "GET", "/metrics", &[]).expect("still serving");
    assert_eq!(r.status, 200);
    // The hardened state holds on every thread, also those started since.
    assert!(assert_every_thread(pid, dir.uid, dir.gid, "0000000000000400") >= 1);
    let _ = threads;

    // The operator's check, against this instance.
    let out = Command::new(BIN)
        .args([
            "--check-sandbox",
            "-c",
            &cfg_arg,
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &format!("127.0.0.2:{port}"),
        ])
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for layer in [
        "privileges_dropped",
        "no_new_privs",
        "capabilities",
        "seccomp",
        "landlock_fs",
        "landlock_net",
        "landlock_scope",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(layer) && l.contains("ENFORCED")),
            "{layer} in {text}"
        );
    }

    let mut agent = agent;
    agent.signal(Signal::SIGTERM);
    let st = agent.wait_exit();
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st:?} (signal {:?}: SIGSYS would be 31)\n{}",
        st.signal(),
        agent.diagnostics()
    );
}

#[test]
fn check_sandbox_reports_missing_layers() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).arg("--sandbox=off").spawn();
    let out = Command::new(BIN)
        .args([
            "--check-sandbox",
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &format!("127.0.0.1:{}", agent.port),
        ])
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for layer in ["seccomp", "landlock_fs", "landlock_net", "landlock_scope"] {
        assert!(
            text.lines()
                .any(|l| l.contains(layer) && l.contains("MISSING")),
            "{layer} in {text}"
        );
    }
    // The privilege drop itself is never optional when started as root.
    assert!(
        text.lines()
            .any(|l| l.contains("privileges_dropped") && l.contains("ENFORCED")),
        "{text}"
    );
}

#[test]
fn started_as_an_ordinary_user_the_sandbox_still_applies() {
    let dir = TestDir::new();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--pid-file",
            &dir.pid_file().display().to_string(),
        ])
        .uid(dir.uid)
        .gid(dir.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn as the agent's user");
    wait_until(
        || format!("agent (as uid {}) listening on {port}", dir.uid),
        || accepts(loopback(port)) || !alive(child.id()),
    );
    assert!(alive(child.id()), "the unprivileged agent exited");
    let body = http(loopback(port), "GET", "/metrics", &[])
        .expect("scrape")
        .text();
    let layers = sandbox_layers(&body);
    assert!(
        layers.iter().all(|l| l.ends_with(" 1")) && layers.len() == 7,
        "{layers:?}"
    );
    assert_every_thread(child.id(), dir.uid, dir.gid, "0000000000000000");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .expect("kill");
    let st = wait_child(&mut child, WAIT).expect("exits");
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(!dir.pid_file().exists(), "PID file removed by its owner");
}
