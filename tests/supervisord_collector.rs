//! node_exporter 1.12's supervisord collector under the full sandbox (root start, drop to the
//! agent's user, Landlock + seccomp with the `supervisord` policy fragment), against a small
//! XML-RPC server this test runs with Python's `xmlrpc.server` (the marshaller supervisord
//! uses), serving `supervisor.getAllProcessInfo`:
//!
//! - `http_url_with_a_host_name`: `http://localhost:PORT/RPC2` (the name resolved before the
//!   sandbox): every process's samples, on several scrapes; the fragment is reported in force;
//!   1.12's deprecation warning is logged.
//! - `unix_url`: `unix:///PATH` to the server on a unix socket.
//! - `environment_url_and_server_down`: `SUPERVISORD_URL` stands for the flag; with the server
//!   gone the collector fails (`success 0`) and the agent serves on.
//!
//! Needs root, the agent's user and `/usr/bin/python3` (scripts/test.sh installs Debian's
//! python3 with python3-dbus); fails, never skips, without them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{assert_sandbox_enforced, collector_success, must_value, Start, TestDir};

const PYTHON: &str = "/usr/bin/python3";

const SERVER: &str = r#"
import os, socket, sys
from xmlrpc.server import SimpleXMLRPCServer, SimpleXMLRPCRequestHandler

class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

class UnixHandler(Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY: not on a unix socket

class UnixServer(SimpleXMLRPCServer):
    address_family = socket.AF_UNIX

def info():
    return [
        dict(name="web", group="apps", start=1700000000, stop=0, now=1700000500, state=20,
             statename="RUNNING", spawnerr="", exitstatus=0, logfile="", stdout_logfile="",
             stderr_logfile="", pid=4242, description="pid 4242"),
        dict(name="worker_00", group="workers", start=1699990000, stop=1699999000,
             now=1700000500, state=100, statename="EXITED", spawnerr="", exitstatus=3,
             logfile="", stdout_logfile="", stderr_logfile="", pid=0, description=""),
    ]

if sys.argv[1] == "unix":
    server = UnixServer(sys.argv[2], requestHandler=UnixHandler, logRequests=False)
    os.chmod(sys.argv[2], 0o666)
else:
    server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Handler, logRequests=False)
server.register_function(info, "supervisor.getAllProcessInfo")
print(server.server_address if sys.argv[1] == "unix" else server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The Python server; killed on drop.
struct Server {
    child: Child,
    /// The TCP port, or the socket path.
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} is needed (scripts/test.sh installs Debian's python3)"
        );
        let mut child = Command::new(PYTHON)
            .arg("-c")
            .arg(SERVER)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the XML-RPC server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's address");
        assert!(!line.trim().is_empty(), "the XML-RPC server did not start");
        Server {
            child,
            addr: line.trim().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check_samples(body: &str) {
    let v = |name: &str, group: &str, proc_name: &str| {
        must_value(body, name, &[("group", group), ("name", proc_name)])
    };
    assert_eq!(v("node_supervisord_up", "apps", "web"), 1.0);
    assert_eq!(v("node_supervisord_state", "apps", "web"), 20.0);
    assert_eq!(v("node_supervisord_exit_status", "apps", "web"), 0.0);
    assert_eq!(
        v("node_supervisord_start_time_seconds", "apps", "web"),
        1_700_000_000.0
    );
    assert_eq!(v("node_supervisord_up", "workers", "worker_00"), 0.0);
    assert_eq!(v("node_supervisord_state", "workers", "worker_00"), 100.0);
    assert_eq!(
        v("node_supervisord_exit_status", "workers", "worker_00"),
        3.0
    );
    assert!(
        !body.contains(r#"node_supervisord_start_time_seconds{group="workers""#),
        "a start time for a process that is not running:\n{body}"
    );
}

#[test]
fn http_url_with_a_host_name() {
    let server = Server::start(&["tcp"]);
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults".to_string(),
            "--collector.supervisord".into(),
            format!(
                "--collector.supervisord.url=http://localhost:{}/RPC2",
                server.addr
            ),
        ])
        .spawn();
    for _ in 0..3 {
        let body = agent.scrape("/metrics");
        assert_sandbox_enforced(&body, "supervisord", || agent.diagnostics());
        assert_eq!(
            collector_success(&body).get("supervisord"),
            Some(&1.0),
            "{}",
            agent.diagnostics()
        );
        check_samples(&body);
        assert!(
            body.lines()
                .any(|l| l.contains("fragment") && l.contains("supervisord")),
            "the supervisord fragment is not reported in force:\n{body}"
        );
    }
    assert!(
        agent.diagnostics().contains(
            "This collector is deprecated and will be removed in the next major version release."
        ),
        "no deprecation warning:\n{}",
        agent.diagnostics()
    );
}

#[test]
fn unix_url() {
    let sdir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(
        sdir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let path = sdir.path().join("supervisor.sock");
    let _server = Server::start(&["unix", path.to_str().expect("utf-8")]);
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults".to_string(),
            "--collector.supervisord".into(),
            format!("--collector.supervisord.url=unix://{}", path.display()),
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "supervisord unix", || agent.diagnostics());
    assert_eq!(
        collector_success(&body).get("supervisord"),
        Some(&1.0),
        "{}",
        agent.diagnostics()
    );
    check_samples(&body);
}

#[test]
fn environment_url_and_server_down() {
    let server = Server::start(&["tcp"]);
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults",
            "--collector.supervisord",
            // The collector's error is logged at debug level.
            "--log.level=debug",
        ])
        .env(
            "SUPERVISORD_URL",
            format!("http://127.0.0.1:{}/RPC2", server.addr),
        )
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "supervisord env", || agent.diagnostics());
    assert_eq!(
        collector_success(&body).get("supervisord"),
        Some(&1.0),
        "{}",
        agent.diagnostics()
    );
    check_samples(&body);
    drop(server);
    let body = agent.scrape("/metrics");
    assert_eq!(collector_success(&body).get("supervisord"), Some(&0.0));
    assert!(!body.contains("node_supervisord_up{"), "{body}");
    assert!(
        agent.diagnostics().contains("unable to call supervisord"),
        "{}",
        agent.diagnostics()
    );
    assert_eq!(agent.get("/").status, 200, "the agent stopped serving");
}
