//! TLS under the real sandbox: the agent started as root, dropped and sandboxed, reads its
//! web config, certificate, key and CA as its user under Landlock; every thread stays at
//! Seccomp 2 while it serves TLS (HTTP/1.1 and HTTP/2), rotates certificates (by rename, on
//! SIGHUP and on its own), refuses a broken rotation, and closes stalled handshakes. Real
//! clients: curl (`--http2`) and a real Prometheus (TLS + basic auth, and mutual TLS).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{basic, Client, Pki};
use common::*;
use nix::sys::signal::Signal;

fn web_dir(dir: &TestDir) -> Pki {
    let web = dir.path().join("web");
    fs::create_dir(&web).expect("mkdir web");
    fs::set_permissions(&web, fs::Permissions::from_mode(0o750)).expect("chmod web dir");
    // root:monitoring-agent 0750 for the directory, 0640 for the keys: the documented setup.
    std::os::unix::fs::chown(&web, Some(0), Some(dir.gid)).expect("chown web dir");
    let pki = Pki::new(&web);
    pki.client_cert("prometheus");
    protect(&pki, dir.gid);
    pki
}

fn protect(pki: &Pki, gid: u32) {
    for e in fs::read_dir(&pki.dir).expect("read web dir") {
        let p = e.expect("entry").path();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).expect("chown");
        let mode = if p.extension().is_some_and(|x| x == "key") {
            0o640
        } else {
            0o644
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    fs::write(path, text).expect("write");
    path.to_path_buf()
}

fn seccomp_of_every_thread(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(Result::ok)
        .map(|t| {
            let s = fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:"))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        })
        .collect()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
}

/// Moves a new certificate and key into place by rename (certbot's and cert-manager's way).
fn rotate(pki: &Pki, cn: &str, gid: u32) {
    pki.server_cert("next", cn);
    protect(pki, gid);
    fs::rename(pki.path("next.key"), pki.path("server.key")).expect("rename key");
    fs::rename(pki.path("next.crt"), pki.path("server.crt")).expect("rename cert");
}

#[test]
fn sandboxed_tls_agent_serves_rotates_and_stays_at_seccomp_2() {
    let dir = TestDir::new();
    let pki = web_dir(&dir);
    let cfg = write(
        &pki.path("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).expect("chmod");
    std::os::unix::fs::chown(&cfg, Some(0), Some(dir.gid)).expect("chown");
    let a = Start::new(&dir)
        .args(["--web.config.file".to_string(), cfg.display().to_string()])
        .spawn_no_wait();
    let client = Client::with_ca(&pki);
    client.wait_serving(a.addr(), || a.diagnostics());

    // Every thread: Seccomp 2, after TLS scrapes over HTTP/1.1 and HTTP/2.
    let r = client.get(a.addr(), "/metrics", &[]).expect("TLS scrape");
    assert_eq!(r.response.status, 200);
    assert!(r.response.text().contains("node_cpu_seconds_total"));
    assert_eq!(r.server_cn, "server");
    let curl = Command::new(find_program("curl").expect("curl (Debian package curl)"))
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(pki.path("tls-ca-chain.pem"))
        .arg(format!("https://localhost:{}/metrics", a.port))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "2 200",
        "curl --http2: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    // Plain HTTP on the TLS port: no metrics.
    if let Ok(r) = http(a.addr(), "GET", "/metrics", &[]) {
        assert!(!r.text().contains("node_cpu_seconds_total"), "{r:?}");
    }

    // Rotation by rename, then SIGHUP: new connections get the new certificate.
    rotate(&pki, "rotated-by-sighup", dir.gid);
    a.signal(Signal::SIGHUP);
    wait_until(
        || a.diagnostics(),
        || {
            client
                .get(a.addr(), "/", &[])
                .is_ok_and(|r| r.server_cn == "rotated-by-sighup")
        },
    );
    // Rotation by rename without a signal: noticed by the change check on a new connection.
    rotate(&pki, "rotated-quietly", dir.gid);
    wait_until(
        || a.diagnostics(),
        || {
            client
                .get(a.addr(), "/", &[])
                .is_ok_and(|r| r.server_cn == "rotated-quietly")
        },
    );
    // A broken rotation (a key that does not match) keeps the old certificate and is counted.
    pki.client_cert("wrong");
    protect(&pki, dir.gid);
    fs::rename(pki.path("wrong.key"), pki.path("server.key")).expect("rename");
    a.signal(Signal::SIGHUP);
    wait_until(
        || a.diagnostics(),
        || {
            client.get(a.addr(), "/metrics", &[]).is_ok_and(|r| {
                metric(
                    &r.response.text(),
                    "monitoring_agent_tls_reload_failures_total",
                ) >= 1.0
            })
        },
    );
    let r = client.get(a.addr(), "/", &[]).expect("still serving");
    assert_eq!(r.server_cn, "rotated-quietly", "the old certificate stays");
    assert!(
        a.log()
            .contains("web config not reloaded, keeping the running one"),
        "{}",
        a.log()
    );
    assert!(
        a.log().contains("does not match the certificate"),
        "{}",
        a.log()
    );

    let seccomp = seccomp_of_every_thread(a.pid());
    assert!(
        seccomp.len() >= 2 && seccomp.iter().all(|s| s == "2"),
        "{seccomp:?}\n{}",
        a.diagnostics()
    );
    assert!(alive(a.pid()), "{}", a.diagnostics());
}

/// The key unreadable by the agent's user: start-up fails once sandboxed (not at the first
/// rotation), naming the file and the permissions it needs.
#[test]
fn a_key_the_agents_user_cannot_read_fails_start_up_naming_the_fix() {
    let dir = TestDir::new();
    let pki = web_dir(&dir);
    fs::set_permissions(pki.path("server.key"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let cfg = write(
        &pki.path("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let mut a = Start::new(&dir)
        .args(["--web.config.file".to_string(), cfg.display().to_string()])
        .spawn_no_wait();
    let st = a.wait_exit();
    assert_eq!(st.code(), Some(2), "{}", a.diagnostics());
    let text = a.diagnostics();
    assert!(
        text.contains("server.key") && text.contains("0640"),
        "{text}"
    );
}

/// A TLS connection that never finishes its handshake is closed after the header timeout,
/// and a client from another address is served meanwhile.
#[test]
fn stalled_tls_handshakes_are_closed() {
    let dir = TestDir::new();
    let pki = web_dir(&dir);
    let cfg = write(
        &pki.path("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let toml = dir.write_config("[web]\nheader_read_timeout_seconds = 1\n");
    let a = Start::new(&dir)
        .args(["--web.config.file".to_string(), cfg.display().to_string()])
        .args(["--config".to_string(), toml.display().to_string()])
        .spawn_no_wait();
    let client = Client::with_ca(&pki);
    client.wait_serving(a.addr(), || a.diagnostics());
    // 40 connections (below web.max_connections): half send nothing, half the first bytes of
    // a ClientHello.
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = TcpStream::connect(a.addr()).expect("connect");
            if i % 2 == 1 {
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                    .expect("partial hello");
            }
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            s
        })
        .collect();
    // Served meanwhile.
    assert_eq!(
        client
            .get(a.addr(), "/", &[])
            .expect("served")
            .response
            .status,
        200
    );
    for (i, s) in stalled.iter_mut().enumerate() {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "stalled connection {i} was not closed by the agent: {other:?}\n{}",
                a.diagnostics()
            ),
        }
    }
}

const PROM_WAIT: Duration = Duration::from_secs(60);

struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn poll(&mut self, path: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PROM_WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "prometheus exited ({st:?}): {}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = http(loopback(self.port), "GET", path, &[]) {
                last = r.text();
                if r.status == 200 && ok(&last) {
                    return last;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "timed out waiting on GET {path}: {last}\n--- prometheus log ---\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// A real Prometheus scrapes one agent over TLS with basic auth, and another over mutual TLS:
/// both targets up, `node_cpu_seconds_total` ingested from each.
#[test]
fn real_prometheus_scrapes_over_tls_with_basic_auth_and_mutual_tls() {
    let prom_bin = find_program("prometheus").unwrap_or_else(|| {
        panic!("the `prometheus` server was not found: install the Debian package `prometheus` (scripts/test.sh does)")
    });
    let dir = TestDir::new();
    let pki = web_dir(&dir);
    let basic_cfg = write(
        &pki.path("basic.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  dave: $2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq\n",
    );
    let mtls_cfg = write(
        &pki.path("mtls.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls-ca-chain.pem\n",
    );
    let dir2 = TestDir::new();
    let a = Start::new(&dir)
        .args([
            "--web.config.file".to_string(),
            basic_cfg.display().to_string(),
        ])
        .spawn_no_wait();
    let b = Start::new(&dir2)
        .args([
            "--web.config.file".to_string(),
            mtls_cfg.display().to_string(),
        ])
        .spawn_no_wait();
    Client::with_ca(&pki).wait_serving(a.addr(), || a.diagnostics());
    let mtls_client = Client {
        cert: Some((pki.path("prometheus.pem"), pki.path("prometheus.key"))),
        ..Client::with_ca(&pki)
    };
    mtls_client.wait_serving(b.addr(), || b.diagnostics());
    // Without credentials: refused by each.
    let r = Client::with_ca(&pki)
        .get(a.addr(), "/metrics", &[])
        .expect("get");
    assert_eq!(r.response.status, 401);
    assert!(Client::with_ca(&pki)
        .get(b.addr(), "/metrics", &[])
        .is_err());
    assert_eq!(
        Client::with_ca(&pki)
            .get(
                a.addr(),
                "/metrics",
                &[("Authorization", &basic("dave", "dave123"))]
            )
            .expect("get")
            .response
            .status,
        200
    );

    let pdir = tempfile::Builder::new()
        .prefix("monitoring-agent-prometheus-tls.")
        .tempdir()
        .expect("tmp");
    let ca = pki.path("tls-ca-chain.pem");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: tls_basic_auth\n  scheme: https\n  tls_config:\n    ca_file: {ca}\n    server_name: localhost\n\
         \x20 basic_auth:\n    username: dave\n    password: dave123\n  static_configs:\n  - targets: ['127.0.0.1:{pa}']\n\
         - job_name: mutual_tls\n  scheme: https\n  tls_config:\n    ca_file: {ca}\n    server_name: localhost\n    cert_file: {cert}\n    key_file: {key}\n\
         \x20 static_configs:\n  - targets: ['127.0.0.1:{pb}']\n",
        ca = ca.display(),
        pa = a.port,
        pb = b.port,
        cert = pki.path("prometheus.pem").display(),
        key = pki.path("prometheus.key").display(),
    );
    let cfg_path = write(&pdir.path().join("prometheus.yml"), &config);
    let port = free_port();
    let log = pdir.path().join("prometheus.log");
    let out = fs::File::create(&log).expect("log");
    let child = Command::new(prom_bin)
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            pdir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("dup")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn prometheus");
    let mut prom = Prometheus { child, port, log };
    for job in ["tls_basic_auth", "mutual_tls"] {
        prom.poll(
            &format!("/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D"),
            |b| b.contains("\"value\":[") && b.contains("\"1\"]"),
        );
        prom.poll(
            &format!("/api/v1/query?query=count(node_cpu_seconds_total%7Bjob%3D%22{job}%22%7D)"),
            |b| b.contains("\"value\":[") && !b.contains("\"0\"]"),
        );
    }
    assert!(alive(a.pid()) && alive(b.pid()));
}
