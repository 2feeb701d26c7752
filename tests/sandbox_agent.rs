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
        .args(["-c", &cfg_arg, "--log.level", "debug"])
        .spawn();
    let pid = agent.pid();
    // Once serving, under the filter, the start-up pages are released with madvise
    // (runtime::release_startup_pages; the policy's madvise rule names it): the agent says
    // how much and lives on (the exit status below would be SIGSYS's otherwise).
    agent.wait_log("bytes of start-up mappings");
    let released = agent
        .log()
        .lines()
        .find_map(|l| {
            l.split("released ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .expect("the released line");
    assert!(released > 0, "nothing released:\n{}", agent.log());
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
    // process_open_fds under the filter and Landlock (statx of /proc/self/fd on Linux 6.2+,
    // a listing before): as many as the agent holds (the scrape's connection may come and go).
    let open_fds: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("process_open_fds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_open_fds in\n{body}"));
    let listed = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the agent's descriptors")
        .count() as f64;
    assert!(
        (open_fds - listed).abs() <= 2.0 && open_fds >= 3.0,
        "process_open_fds {open_fds}, /proc/{pid}/fd lists {listed}"
    );

    // Directory listings under the filter and Landlock: the first scrape opened
    // /sys/class/net and kept it, this one rewinds it (lseek to 0, getdents64:
    // collector::fsio::list_dir); both list every interface.
    let interfaces = std::fs::read_dir("/sys/class/net")
        .expect("list /sys/class/net")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .count();
    assert!(interfaces >= 1, "no interface in /sys/class/net");
    // The second scrape also asks the filesystem collector's kept /proc/self/mountinfo
    // whether the agent's mount table changed (ppoll: the policy's rule names it) instead of
    // reading it again; the agent lives on (SIGSYS otherwise) and the collector succeeds.
    for body in [body.clone(), agent.scrape("/metrics")] {
        assert!(
            body.contains("node_scrape_collector_success{collector=\"netclass\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("node_scrape_collector_success{collector=\"filesystem\"} 1"),
            "{body}"
        );
        let listed = body
            .lines()
            .filter(|l| l.starts_with("node_network_info{"))
            .count();
        assert_eq!(listed, interfaces, "node_network_info lines:\n{body}");
    }

    // The scheduler's second runner (agent::scheduler::SecondRunner): a thread started by
    // the first scrape, under the filter (socketpair of a connected AF_UNIX stream pair,
    // clone3), and woken through that pair by every scrape since. With one CPU a scrape
    // starts a single runner and the thread is never made.
    let comms: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        comms.iter().filter(|c| *c == "agent-runner").count(),
        usize::from(cpus >= 2),
        "{cpus} CPUs, threads {comms:?}"
    );

    // Signals that exercise logging and the summary under the filter.
    agent.signal(Signal::SIGUSR1);
    agent.wait_log("SIGUSR1: debug logging on");
    agent.signal(Signal::SIGUSR2);
    agent.wait_log("SIGUSR2: uptime");

    // Reload on the same privileged port: the listener is kept, nothing is bound again.
    agent.signal(Signal::SIGHUP);
    agent.wait_log("SIGHUP: configuration reloaded");
    let r = http(loopback(port), "GET", "/metrics", &[]).expect("scrape after reload");
    assert_eq!(r.status, 200);

    // Another address: listeners are start-up only (the sandbox allows no socket, bind or
    // listen), so the change waits for a restart and the listener stays.
    write_in_place(
        &cfg,
        &format!("[web]\nlisten_addresses = [\"127.0.0.2:{port}\"]\n"),
    );
    agent.signal(Signal::SIGHUP);
    agent.wait_log("the change to web.listen_addresses takes effect only after a restart");
    let r = http(loopback(port), "GET", "/metrics", &[]).expect("still serving");
    assert_eq!(r.status, 200);
    let other: SocketAddr = format!("127.0.0.2:{port}").parse().expect("addr");
    assert!(!accepts(other), "no listener appeared on {other}");
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
            &format!("127.0.0.1:{port}"),
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

/// Debian 12's kernel offers Landlock ABI 2, Ubuntu 22.04's ABI 1: reproduced here with the
/// hidden `--landlock-max-abi`, the agent starts in enforce mode, says in its start-up line
/// which layers seccomp compensates, reports them in its metrics, and `--check-sandbox`
/// exits 0 naming them.
#[test]
fn older_landlock_abi_starts_in_enforce_mode_with_compensated_layers() {
    for (abi, net) in [("1", "seccomp"), ("2", "seccomp"), ("4", "landlock")] {
        let dir = TestDir::new();
        let agent = Start::new(&dir).args(["--landlock-max-abi", abi]).spawn();
        let log = agent.wait_log("sandbox (enforce):");
        let line = log
            .lines()
            .find(|l| l.contains("sandbox (enforce):"))
            .expect("the start-up line");
        assert!(
            line.contains(&format!("in force {abi})"))
                && line.contains("compensated by seccomp")
                && line.contains(&format!("landlock_net={net} "))
                && line.contains("landlock_scope=seccomp"),
            "ABI {abi}: {line}"
        );
        let body = agent.scrape("/metrics");
        assert!(
            body.contains(&format!("monitoring_agent_landlock_enforced_abi {abi}")),
            "ABI {abi}"
        );
        for layer in ["landlock_fs", "landlock_net", "landlock_scope"] {
            assert!(
                body.contains(&format!(
                    "monitoring_agent_sandbox_enforced{{layer=\"{layer}\"}} 1"
                )),
                "ABI {abi}: {layer} holds"
            );
        }
        let out = check_sandbox(&dir, &agent);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ABI {abi}: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let compensated: &[&str] = if net == "seccomp" {
            &["landlock_fs", "landlock_net", "landlock_scope"]
        } else {
            &["landlock_fs", "landlock_scope"]
        };
        for layer in compensated {
            assert!(
                text.lines().any(|l| l.contains(layer)
                    && l.contains("COMPENSATED")
                    && l.contains("seccomp")),
                "ABI {abi}: {layer} in {text}"
            );
        }
        assert!(text.contains("compensated by seccomp"), "ABI {abi}: {text}");
        assert!(
            assert_every_thread(agent.pid(), dir.uid, dir.gid, "0000000000000400") >= 1,
            "ABI {abi}"
        );
    }
}

/// `--sandbox strict` refuses an ABI that lacks a layer, with exit 4 and one line naming it.
#[test]
fn strict_mode_refuses_an_older_abi() {
    let dir = TestDir::new();
    let out = run(&[
        "--sandbox".into(),
        "strict".into(),
        "--landlock-max-abi".into(),
        "2".into(),
        "--pid-file".into(),
        dir.pid_file().display().to_string(),
        "-p".into(),
        free_port().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("landlock_fs") && err.contains("strict"),
        "{err}"
    );
    assert!(!dir.pid_file().exists(), "no PID file left behind");
}

/// `monitoring-agent --check-sandbox` against a running test agent.
fn check_sandbox(dir: &TestDir, agent: &Agent) -> std::process::Output {
    Command::new(BIN)
        .args([
            "--check-sandbox",
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &agent.addr().to_string(),
        ])
        .output()
        .expect("check runs")
}

#[test]
fn check_sandbox_reports_missing_layers() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).arg("--sandbox=off").spawn();
    let out = check_sandbox(&dir, &agent);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
