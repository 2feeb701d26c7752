//! The collectors that read files outside procfs and sysfs (node_exporter 1.12's pcidevice
//! with `--collector.pcidevice.names`, qdisc and wifi with their `--collector.*.fixtures`) work
//! under the real sandbox, and Landlock grants each such file alone:
//!
//! - `collector_files_work_under_the_real_sandbox`: the real binary, started as root (drops to
//!   `monitoring-agent`, Landlock + seccomp enforced), on a copy of the `ne112` fixture tree
//!   with those flags and lnstat and dmmultipath: every one of them succeeds, the PCI names
//!   come from the given pci.ids file, the qdisc and wifi samples from the JSON fixtures.
//! - `collector_files_are_granted_alone`: the grants the configuration computes
//!   (`collectors::collector_files`, `CollectorFiles::grants`), applied with the agent's
//!   Landlock rules in a forked child: the pci.ids file and `results.json` are readable, their
//!   neighbours and directories are not; the wifi fixture directory is readable, its parent
//!   is not; a disabled collector's file is not granted at all.
//! - `runit_under_the_real_sandbox`: node_exporter 1.12's runit collector on a temporary
//!   service directory laid out as Debian's runit does (a service directory of its own, one
//!   symlinked to a directory outside whose `supervise` is a symlink further out): the real
//!   binary, sandboxed, reads both status files, logs 1.12's deprecation warning; a service
//!   added after start-up whose `supervise` lies outside is skipped (not granted), the
//!   collector still succeeding; a SIGHUP then (the configuration re-read under the sandbox
//!   resolves the services again) logs that the change waits for a restart and the agent lives
//!   on. `collector_files_are_granted_alone` checks its grants too:
//!   the service directory and the outside `supervise` directory, not the directories beside.
//! - `qdisc_live_mode_under_the_real_sandbox`: qdisc without fixtures dumps the host's qdiscs
//!   over the rtnetlink socket it opened before the sandbox: success, the same root qdiscs as
//!   `tc -j qdisc show`, on several scrapes, and the agent holds exactly one netlink socket;
//!   with the default collectors it holds none. (That no new netlink socket can be made under
//!   the sandbox, qdisc enabled or not, is `tests/sandbox_escape.rs`'s `netlink_socket`.)

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use common::{assert_sandbox_enforced, collector_success, copy_tree, must_value, Start, TestDir};
use monitoring_agent::collectors::{self, Options};
use monitoring_agent::sandbox::landlock;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ne112")
}

#[test]
fn collector_files_work_under_the_real_sandbox() {
    let dir = TestDir::new();
    let tree = dir.path().join("tree");
    copy_tree(&fixtures(), &tree);
    // The pci.ids file in a directory of its own, with a decoy beside it.
    let ids = dir.path().join("ids");
    fs::create_dir(&ids).expect("mkdir ids");
    fs::copy(tree.join("pci.ids"), ids.join("pci.ids")).expect("copy pci.ids");
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults".to_string(),
            format!("--path.procfs={}", tree.join("proc").display()),
            format!("--path.sysfs={}", tree.join("sys").display()),
            "--collector.lnstat".into(),
            "--collector.dmmultipath".into(),
            "--collector.pcidevice".into(),
            "--collector.pcidevice.names".into(),
            format!(
                "--collector.pcidevice.idsfile={}",
                ids.join("pci.ids").display()
            ),
            "--collector.qdisc".into(),
            format!(
                "--collector.qdisc.fixtures={}",
                tree.join("qdisc").display()
            ),
            "--collector.wifi".into(),
            format!("--collector.wifi.fixtures={}", tree.join("wifi").display()),
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "collector files", || agent.diagnostics());
    let success = collector_success(&body);
    for c in ["lnstat", "dmmultipath", "pcidevice", "qdisc", "wifi"] {
        assert_eq!(
            success.get(c),
            Some(&1.0),
            "collector {c} failed under the sandbox:\n{}",
            agent.diagnostics()
        );
    }
    // Names from the granted pci.ids (read once, under the sandbox, at the first scrape).
    assert!(
        body.contains(r#"vendor_name="Micron/Crucial Technology""#)
            && body.contains(r#"class_name="NVM Express""#),
        "no PCI names in the scrape:\n{body}"
    );
    assert_eq!(
        must_value(
            &body,
            "node_qdisc_bytes_total",
            &[("device", "eth0"), ("kind", "pfifo_fast")]
        ),
        83.0
    );
    assert_eq!(
        must_value(
            &body,
            "node_wifi_station_signal_dbm",
            &[("device", "wlan0"), ("mac_address", "01:02:03:04:05:06")]
        ),
        -26.0
    );
    assert_eq!(
        must_value(
            &body,
            "node_lnstat_hits_total",
            &[("cpu", "1"), ("subsystem", "arp_cache")]
        ),
        17.0
    );
    assert_eq!(
        must_value(
            &body,
            "node_dmmultipath_device_paths_failed",
            &[("device", "mpathA"), ("sysfs_name", "dm-5")]
        ),
        1.0
    );
}

/// runsv's 20-byte status: TAI64N label, pid (little-endian), paused, want, term, state.
fn runit_status(unix: i64, pid: u32, want: u8, state: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(unix + 4611686018427387914).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(&[0, want, 0, state]);
    b
}

/// A runit layout under `t`: `service/inside` (a directory), `service/linked` -> `sv/linked`,
/// whose `supervise` -> `run/linked`; `run/other/status` beside it, not a service.
fn runit_layout(t: &Path) {
    for d in [
        "service/inside/supervise",
        "sv/linked",
        "run/linked",
        "run/other",
    ] {
        fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    std::os::unix::fs::symlink(t.join("run/linked"), t.join("sv/linked/supervise")).expect("ln");
    std::os::unix::fs::symlink(t.join("sv/linked"), t.join("service/linked")).expect("ln");
    fs::write(t.join("sv/linked/run"), "#!/bin/sh\n").expect("run script");
    fs::write(
        t.join("service/inside/supervise/status"),
        runit_status(1_600_000_000, 10, b'u', 1),
    )
    .expect("status");
    fs::write(t.join("service/inside/supervise/down"), "").expect("down");
    fs::write(
        t.join("run/linked/status"),
        runit_status(1_700_000_000, 11, b'd', 0),
    )
    .expect("status");
    fs::write(t.join("run/other/status"), runit_status(1, 1, b'u', 1)).expect("status");
}

#[test]
fn runit_under_the_real_sandbox() {
    let dir = TestDir::new();
    let t = dir.path().join("runit");
    runit_layout(&t);
    let agent = Start::new(&dir)
        .args([
            "--collector.disable-defaults".to_string(),
            "--collector.runit".into(),
            format!(
                "--collector.runit.servicedir={}",
                t.join("service").display()
            ),
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "runit", || agent.diagnostics());
    assert_eq!(
        collector_success(&body).get("runit"),
        Some(&1.0),
        "{}",
        agent.diagnostics()
    );
    let v = |name: &str, svc: &str| {
        must_value(&body, name, &[("service", svc), ("supervisor", "runit")])
    };
    assert_eq!(v("node_service_state", "inside"), 1.0);
    assert_eq!(v("node_service_desired_state", "inside"), 1.0);
    assert_eq!(v("node_service_normal_state", "inside"), 0.0);
    assert_eq!(
        v("node_service_state_last_change_timestamp_seconds", "inside"),
        1_600_000_000.0
    );
    assert_eq!(v("node_service_state", "linked"), 0.0);
    assert_eq!(v("node_service_desired_state", "linked"), 0.0);
    assert_eq!(v("node_service_normal_state", "linked"), 1.0);
    assert_eq!(
        v("node_service_state_last_change_timestamp_seconds", "linked"),
        1_700_000_000.0
    );
    assert!(
        agent.diagnostics().contains(
            "This collector is deprecated and will be removed in the next major version release."
        ),
        "no deprecation warning:\n{}",
        agent.diagnostics()
    );
    // A service linked in after start-up, its supervise directory outside: not granted, so
    // skipped; the others are still read and the collector succeeds.
    std::os::unix::fs::symlink(t.join("run/other"), t.join("sv/other")).expect("ln");
    fs::create_dir(t.join("service/other")).expect("mkdir");
    std::os::unix::fs::symlink(t.join("run/other"), t.join("service/other/supervise")).expect("ln");
    let body = agent.scrape("/metrics");
    assert_eq!(collector_success(&body).get("runit"), Some(&1.0));
    assert!(body.contains(r#"node_service_state{service="linked",supervisor="runit"} 0"#));
    assert!(
        !body.contains(r#"service="other""#),
        "a supervise directory outside the grants was read:\n{body}"
    );
    // SIGHUP re-reads the configuration under the sandbox, which lists the service directory
    // and resolves the `supervise` links again: the new grant it would need waits for a
    // restart (logged), the agent lives on and still reads the granted services.
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    agent.wait_log("takes effect only after a restart");
    let body = agent.scrape("/metrics");
    assert_eq!(
        collector_success(&body).get("runit"),
        Some(&1.0),
        "{}",
        agent.diagnostics()
    );
    assert!(body.contains(r#"node_service_state{service="inside",supervisor="runit"} 1"#));
    assert!(!body.contains(r#"service="other""#));
}

/// Runs `body` in a forked child; returns its exit code.
fn in_child(body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `body` and then `_exit`s.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit normally: {other:?}"),
        },
    }
}

/// Writes to stderr without std's locks (another harness thread may hold them at fork time).
fn say(msg: &str) {
    // SAFETY: writing a valid, live buffer of the given length to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

fn check(what: &str, allowed: bool, r: std::io::Result<impl Sized>) -> bool {
    match (allowed, r) {
        (true, Ok(_)) => true,
        (false, Err(e)) if e.kind() == ErrorKind::PermissionDenied => true,
        (a, Err(e)) => {
            say(&format!(
                "{what}: expected {}, got {e}\n",
                if a { "success" } else { "EACCES" }
            ));
            false
        }
        (_, Ok(_)) => {
            say(&format!("{what}: expected EACCES, it succeeded\n"));
            false
        }
    }
}

#[test]
fn collector_files_are_granted_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    for d in ["ids", "qdisc", "wifi/wlan0"] {
        fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    for f in [
        "ids/pci.ids",
        "ids/neighbour",
        "qdisc/results.json",
        "qdisc/neighbour",
        "wifi/interfaces.json",
        "wifi/wlan0/bss.json",
        "outside",
    ] {
        fs::write(t.join(f), "x").expect("write");
    }
    runit_layout(&t.join("runit"));
    let mut o = Options::default();
    o.runit.servicedir = Some(t.join("runit/service"));
    o.pcidevice.names = Some(true);
    o.pcidevice.idsfile = Some(t.join("ids/pci.ids"));
    o.qdisc.fixtures = Some(t.join("qdisc"));
    o.wifi.fixtures = Some(t.join("wifi"));
    let enabled: BTreeSet<&'static str> = ["pcidevice", "qdisc", "wifi", "runit"].into();
    let files = collectors::collector_files(&enabled, &mut o.clone());
    let real = |p: PathBuf| fs::canonicalize(p).expect("canonical");
    assert_eq!(
        files.grants(),
        [
            t.join("ids/pci.ids"),
            t.join("qdisc/results.json"),
            t.join("wifi"),
            t.join("runit/service"),
            real(t.join("runit/run/linked")),
        ]
    );
    // Disabled collectors (and pcidevice without names) are granted nothing.
    let none: BTreeSet<&'static str> = ["cpu"].into();
    assert!(collectors::collector_files(&none, &mut o.clone())
        .grants()
        .is_empty());
    let mut no_names = o.clone();
    no_names.pcidevice.names = None;
    let only_pci: BTreeSet<&'static str> = ["pcidevice"].into();
    assert!(collectors::collector_files(&only_pci, &mut no_names)
        .grants()
        .is_empty());

    let rules = landlock::Rules {
        read_only: [PathBuf::from("/proc"), PathBuf::from("/sys")]
            .into_iter()
            .chain(files.grants())
            .collect(),
        ..landlock::Rules::default()
    };
    let p = |rel: &str| -> PathBuf { t.join(rel) };
    let read = |p: &Path| fs::read(p);
    let code = in_child(|| {
        if let Err(e) = landlock::restrict(&rules, true) {
            say(&format!("landlock::restrict: {e}\n"));
            return 2;
        }
        let checks = [
            check("read pci.ids", true, read(&p("ids/pci.ids"))),
            check("read pci.ids' neighbour", false, read(&p("ids/neighbour"))),
            check("list pci.ids' directory", false, fs::read_dir(p("ids"))),
            check("read results.json", true, read(&p("qdisc/results.json"))),
            check(
                "read results.json's neighbour",
                false,
                read(&p("qdisc/neighbour")),
            ),
            check("list the qdisc directory", false, fs::read_dir(p("qdisc"))),
            check(
                "read wifi/interfaces.json",
                true,
                read(&p("wifi/interfaces.json")),
            ),
            check(
                "read wifi/wlan0/bss.json",
                true,
                read(&p("wifi/wlan0/bss.json")),
            ),
            check("read outside", false, read(&p("outside"))),
            check(
                "read runit service/inside's status",
                true,
                read(&p("runit/service/inside/supervise/status")),
            ),
            check(
                "list the runit service directory",
                true,
                fs::read_dir(p("runit/service")),
            ),
            check(
                "read runit service/linked's status (outside, granted)",
                true,
                read(&p("runit/service/linked/supervise/status")),
            ),
            check(
                "read runit service/linked's run script (sv/, not granted)",
                false,
                read(&p("runit/service/linked/run")),
            ),
            check(
                "read run/other/status (beside the granted supervise)",
                false,
                read(&p("runit/run/other/status")),
            ),
            check("list runit's run/", false, fs::read_dir(p("runit/run"))),
            check("list the fixtures' parent", false, fs::read_dir(t)),
        ];
        if checks.iter().all(|ok| *ok) {
            0
        } else {
            4
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

/// The agent's netlink sockets: its descriptors' socket inodes found in `/proc/net/netlink`.
fn netlink_sockets(pid: u32) -> usize {
    let netlink: BTreeSet<u64> = fs::read_to_string("/proc/net/netlink")
        .expect("/proc/net/netlink")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the agent's descriptors")
        .filter_map(|e| {
            let t = fs::read_link(e.ok()?.path()).ok()?;
            let t = t.to_str()?;
            t.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .filter(|i| netlink.contains(i))
        .count()
}

#[test]
fn qdisc_live_mode_under_the_real_sandbox() {
    let tc = common::find_program("tc").expect("tc (iproute2, installed by scripts/test.sh)");
    let out = std::process::Command::new(tc)
        .args(["-j", "qdisc", "show"])
        .output()
        .expect("tc -j qdisc show");
    assert!(out.status.success(), "tc: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tc's JSON");
    let want: BTreeSet<(String, String)> = v
        .as_array()
        .expect("an array")
        .iter()
        .filter(|q| q["root"] == serde_json::Value::Bool(true))
        .map(|q| {
            (
                q["dev"].as_str().expect("dev").to_string(),
                q["kind"].as_str().expect("kind").to_string(),
            )
        })
        .collect();
    assert!(!want.is_empty(), "tc shows no root qdisc: {v}");

    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args(["--collector.disable-defaults", "--collector.qdisc"])
        .spawn();
    for _ in 0..3 {
        let body = agent.scrape("/metrics");
        assert_sandbox_enforced(&body, "qdisc live", || agent.diagnostics());
        assert_eq!(
            collector_success(&body).get("qdisc"),
            Some(&1.0),
            "{}",
            agent.diagnostics()
        );
        let got: BTreeSet<(String, String)> = body
            .lines()
            .filter_map(|l| l.strip_prefix("node_qdisc_packets_total{device=\""))
            .filter_map(|l| {
                let (dev, rest) = l.split_once("\",kind=\"")?;
                let (kind, _) = rest.split_once('"')?;
                Some((dev.to_string(), kind.to_string()))
            })
            .collect();
        assert_eq!(got, want, "the agent's root qdiscs (left), tc's (right)");
    }
    assert_eq!(netlink_sockets(agent.pid()), 1, "{}", agent.diagnostics());
    drop(agent);

    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    agent.scrape("/metrics");
    assert_eq!(netlink_sockets(agent.pid()), 0, "default collectors");
}
