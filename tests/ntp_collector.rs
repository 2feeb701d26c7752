//! node_exporter 1.12's deprecated `ntp` collector under the full sandbox (started as root,
//! dropped, Landlock and seccomp with the `ntp` policy fragment), against a small NTP server
//! this test runs on loopback (a thread answering RFC 5905 server packets with the values the
//! test chooses): the samples, the query's version and IP TTL as the server received them, the
//! deprecation warning, and 1.12's refusal of a non-loopback server without
//! `--collector.ntp.server-is-local`.
//!
//! Needs root and the agent's user; fails, never skips, without them.

mod common;

use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};

/// The local clock as an NTP timestamp (seconds since 1900, 32.32 fixed point).
fn ntp_now(shift_ms: i64) -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let ns = d.as_nanos() as i128 + i128::from(shift_ms) * 1_000_000;
    let sec = (ns / 1_000_000_000) as u64 + 2_208_988_800;
    let frac = (((ns % 1_000_000_000) as u64) << 32) / 1_000_000_000;
    (sec << 32) | frac
}

/// What the server saw of one query: the first byte (leap, version, mode) and the IP TTL.
#[derive(Debug, Clone, Copy)]
struct Seen {
    li_vn_mode: u8,
    ttl: Option<i32>,
}

/// A loopback NTP server: stratum 2, leap as set, root delay 0.5 s (0x0000_8000), root
/// dispersion 0.25 s (0x0000_4000), reference time 10 s ago, its clock `shift_ms` ahead of
/// the local one.
struct Server {
    port: u16,
    shift_ms: Arc<AtomicI64>,
    leap: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    seen: mpsc::Receiver<Seen>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the test's NTP server");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        setsockopt(&sock, sockopt::Ipv4RecvTtl, &true).expect("IP_RECVTTL");
        let port = sock.local_addr().expect("addr").port();
        let shift_ms = Arc::new(AtomicI64::new(0));
        let leap = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, seen) = mpsc::channel();
        let (s2, l2, st2) = (shift_ms.clone(), leap.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st2.load(Ordering::SeqCst) {
                let mut buf = [0u8; 512];
                let mut cmsg = nix::cmsg_space!(i32);
                let (n, from, ttl) = {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let Ok(msg) = recvmsg::<SockaddrIn>(
                        sock.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::empty(),
                    ) else {
                        continue;
                    };
                    let ttl = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::Ipv4Ttl(t) => Some(t),
                            _ => None,
                        })
                    });
                    (msg.bytes, msg.address.expect("sender"), ttl)
                };
                let rec = ntp_now(s2.load(Ordering::SeqCst));
                if n < 48 {
                    continue;
                }
                tx.send(Seen {
                    li_vn_mode: buf[0],
                    ttl,
                })
                .ok();
                let leap = l2.load(Ordering::SeqCst) as u8;
                let mut r = [0u8; 48];
                r[0] = (leap << 6) | (buf[0] & 0x38) | 4;
                r[1] = 2;
                r[2] = 6;
                r[3] = 0xe9;
                r[4..8].copy_from_slice(&0x0000_8000u32.to_be_bytes());
                r[8..12].copy_from_slice(&0x0000_4000u32.to_be_bytes());
                r[12..16].copy_from_slice(&[127, 0, 0, 1]);
                let shift = s2.load(Ordering::SeqCst);
                r[16..24].copy_from_slice(&ntp_now(shift - 10_000).to_be_bytes());
                r[24..32].copy_from_slice(&buf[40..48]);
                r[32..40].copy_from_slice(&rec.to_be_bytes());
                r[40..48].copy_from_slice(&ntp_now(shift).to_be_bytes());
                let to =
                    std::net::SocketAddr::from(std::net::SocketAddrV4::new(from.ip(), from.port()));
                sock.send_to(&r, to).expect("reply");
            }
        });
        Server {
            port,
            shift_ms,
            leap,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn last_seen(&self) -> Seen {
        let mut last = None;
        while let Ok(s) = self.seen.try_recv() {
            last = Some(s);
        }
        last.expect("the test's NTP server received no query")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_agent(dir: &TestDir, port: u16, extra: &[&str]) -> Agent {
    let mut args = vec![
        "--sandbox=enforce".to_string(),
        "--collector.disable-defaults".to_string(),
        "--collector.ntp".to_string(),
        "--collector.ntp.server=127.0.0.1".to_string(),
        format!("--collector.ntp.server-port={port}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Start::new(dir).args(args).spawn()
}

#[test]
fn ntp_under_the_sandbox_against_a_loopback_server() {
    require_root_and_user();
    let server = Server::start();
    let dir = TestDir::new();
    let agent = start_agent(&dir, server.port, &[]);
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "ntp", || agent.diagnostics());
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "ntp")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    for (fragment, on) in [
        ("dbus", 0.0),
        ("ethtool", 0.0),
        ("netlink-route", 0.0),
        ("ntp", 1.0),
    ] {
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", fragment)]
            ),
            on,
            "{fragment}"
        );
    }
    // The fragment in force in the start-up line and in --check-sandbox (which reads the
    // running agent's report).
    assert!(
        agent.log().contains("policy fragments: ntp"),
        "{}",
        agent.diagnostics()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monitoring-agent"))
        .args([
            "--check-sandbox",
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &agent.addr().to_string(),
        ])
        .output()
        .expect("--check-sandbox runs");
    let check = String::from_utf8_lossy(&out.stdout);
    assert!(
        check
            .lines()
            .any(|l| l.trim() == "policy fragments    ntp (for ntp)"),
        "--check-sandbox does not list the ntp fragment:\n{check}"
    );
    // 1.12's query: version 4, mode 3 (client), IP TTL 1.
    let seen = server.last_seen();
    assert_eq!(seen.li_vn_mode, 0x23, "{seen:?}");
    assert_eq!(seen.ttl, Some(1), "{seen:?}");

    let v = |name: &str| must_value(&body, name, &[]);
    assert_eq!(v("node_ntp_stratum"), 2.0);
    assert_eq!(v("node_ntp_leap"), 0.0);
    assert_eq!(v("node_ntp_root_delay_seconds"), 0.5);
    assert_eq!(v("node_ntp_root_dispersion_seconds"), 0.25);
    let rtt = v("node_ntp_rtt_seconds");
    assert!((0.0..0.5).contains(&rtt), "rtt {rtt}");
    let offset = v("node_ntp_offset_seconds");
    assert!(offset.abs() < 0.25, "offset {offset}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let reft = v("node_ntp_reference_timestamp_seconds");
    assert!(
        (now - 10.0 - reft).abs() < 5.0,
        "reference time {reft}, now {now}"
    );
    // Root distance (rtt + 0.5)/2 + 0.25 < 3.46608 s, no minimum error: sane.
    assert_eq!(v("node_ntp_sanity"), 1.0, "{body}");

    // The server's clock 2 s ahead: the offset shows it, and the minimum error (its transmit
    // time after the reply's arrival) exceeds the 1 ms tolerance: not sane.
    server.shift_ms.store(2_000, Ordering::SeqCst);
    let body = agent.scrape("/metrics");
    let v = |name: &str| must_value(&body, name, &[]);
    let offset = v("node_ntp_offset_seconds");
    assert!((offset - 2.0).abs() < 0.25, "offset {offset}");
    assert_eq!(v("node_ntp_sanity"), 0.0, "{body}");
    // A leap second announced: leap 1, and one second more of tolerance is not enough for
    // 2 s.
    server.leap.store(1, Ordering::SeqCst);
    let body = agent.scrape("/metrics");
    assert_eq!(must_value(&body, "node_ntp_leap", &[]), 1.0);
    assert_eq!(must_value(&body, "node_ntp_sanity", &[]), 0.0);
    // Leap 3 (not in sync): a valid reply, never sane.
    server.leap.store(3, Ordering::SeqCst);
    server.shift_ms.store(0, Ordering::SeqCst);
    let body = agent.scrape("/metrics");
    assert_eq!(must_value(&body, "node_ntp_leap", &[]), 3.0);
    assert_eq!(must_value(&body, "node_ntp_sanity", &[]), 0.0);

    // 1.12 logs that the collector is deprecated.
    let log = format!("{}{}", agent.log(), agent.stderr());
    assert!(
        log.contains(
            "This collector is deprecated and will be removed in the next major version release."
        ),
        "no deprecation warning:\n{log}"
    );
    assert!(agent.get("/").status == 200, "the agent stopped serving");
}

#[test]
fn ntp_flags_reach_the_query_and_no_server_fails_the_collector_only() {
    require_root_and_user();
    let server = Server::start();
    let dir = TestDir::new();
    let agent = start_agent(
        &dir,
        server.port,
        &[
            "--collector.ntp.ip-ttl=5",
            "--collector.ntp.protocol-version=3",
            "--collector.ntp.max-distance=100ms",
        ],
    );
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "ntp", || agent.diagnostics());
    let seen = server.last_seen();
    assert_eq!(seen.li_vn_mode, 0x1b, "version 3, mode 3: {seen:?}");
    assert_eq!(seen.ttl, Some(5), "{seen:?}");
    // Root distance >= 0.5 s > 100ms: not sane.
    assert_eq!(must_value(&body, "node_ntp_sanity", &[]), 0.0);
    assert_eq!(must_value(&body, "node_ntp_stratum", &[]), 2.0);
    drop(server);

    // Nobody answers (the port is closed now): the collector fails, the scrape does not,
    // and the agent lives on.
    let body = agent.scrape("/metrics");
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "ntp")]
        ),
        0.0
    );
    assert!(!body.contains("node_ntp_stratum"), "{body}");
    assert!(agent.get("/").status == 200, "the agent stopped serving");
}

/// 1.12's `NewNtpCollector` refusals: the agent does not start with them.
#[test]
fn ntp_refuses_what_1_12_refuses() {
    for (args, msg) in [
        (
            vec!["--collector.ntp", "--collector.ntp.server=192.0.2.1"],
            "only IP address of local NTP server is valid for --collector.ntp.server",
        ),
        (
            vec!["--collector.ntp", "--collector.ntp.protocol-version=5"],
            "invalid NTP protocol version 5; must be 2, 3, or 4",
        ),
        (
            vec!["--collector.ntp", "--collector.ntp.server-port=0"],
            "invalid NTP port number 0; must be between 1 and 65535 inclusive",
        ),
        (
            vec![
                "--collector.ntp",
                "--collector.ntp.server=ntp.example",
                "--collector.ntp.server-is-local",
            ],
            "host names are not supported",
        ),
    ] {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("--web.listen-address=127.0.0.1:1".into());
        let out = run(&v);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // Not enabled: not checked (1.12 builds no collector then). --check-config style: the
    // flags parse and the agent's configuration check passes.
    let out = run(&[
        "--collector.ntp.server=192.0.2.1".to_string(),
        "--check-config".to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
