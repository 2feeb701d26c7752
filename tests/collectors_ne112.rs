//! The collectors new in node_exporter 1.12 that read files (`bcachefs`, `drbd`,
//! `kernel_hung`, `slabinfo`, `xfrm`, `cgroups`), run by the real binary under the real
//! sandbox (started as root, dropped to the agent's user, `--sandbox enforce`):
//!
//! - on `tests/fixtures/ne112/kernel-stats` (node_exporter 1.12's e2e fixture files), the
//!   scrape holds exactly node_exporter 1.12's lines for their families (`expected-1.12.prom`:
//!   HELP, TYPE, every series and value as text) and each collector reports success;
//! - on this host, each collector's success follows what the host has: the file present and
//!   readable by the agent's user is success 1 with its values, absent is 0 (no data), and the
//!   root-only `/proc/slabinfo` is 0 with "permission denied", as node_exporter run as non-root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{assert_sandbox_enforced, copy_tree, samples, value, Start, TestDir};

const COLLECTORS: [&str; 6] = [
    "bcachefs",
    "cgroups",
    "drbd",
    "kernel_hung",
    "slabinfo",
    "xfrm",
];
const PREFIXES: [&str; 6] = [
    "node_bcachefs_",
    "node_cgroups_",
    "node_drbd_",
    "node_kernel_hung_",
    "node_slabinfo_",
    "node_xfrm_",
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ne112/kernel-stats")
}

/// The lines of `text` (HELP, TYPE, series) of the families named with one of [`PREFIXES`].
fn our_families(text: &str) -> Vec<String> {
    let name = |l: &str| -> Option<String> {
        let rest = l
            .strip_prefix("# HELP ")
            .or_else(|| l.strip_prefix("# TYPE "))
            .unwrap_or(l);
        let n: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        PREFIXES.iter().any(|p| n.starts_with(p)).then_some(n)
    };
    text.lines()
        .filter(|l| name(l).is_some())
        .map(str::to_string)
        .collect()
}

fn success(body: &str, c: &str) -> Option<f64> {
    value(body, "node_scrape_collector_success", &[("collector", c)])
}

#[test]
fn fixture_tree_under_the_sandbox_is_node_exporter_1_12s_output() {
    let dir = TestDir::new();
    let tree = dir.path().join("tree");
    copy_tree(&fixture_dir(), &tree);
    let mut args: Vec<String> = vec![
        "--collector.disable-defaults".into(),
        "--path.procfs".into(),
        tree.join("proc").display().to_string(),
        "--path.sysfs".into(),
        tree.join("sys").display().to_string(),
        "--sandbox".into(),
        "enforce".into(),
    ];
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    let agent = Start::new(&dir).args(args).spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "the fixture run must be sandboxed", || {
        agent.diagnostics()
    });
    for c in COLLECTORS {
        assert_eq!(
            success(&body, c),
            Some(1.0),
            "collector {c}\n{}",
            agent.diagnostics()
        );
    }
    let expected = std::fs::read_to_string(fixture_dir().join("expected-1.12.prom"))
        .expect("expected-1.12.prom");
    let want = our_families(&expected);
    let got = our_families(&body);
    assert_eq!(want.len(), 783, "the golden file's lines");
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "node_exporter 1.12's lines the agent lacks: {missing:#?}\nlines it has that 1.12 has not: {extra:#?}"
    );
    assert_eq!(got, want, "same lines, same order");
}

#[test]
fn host_under_the_sandbox_each_collector_as_the_host_allows() {
    let dir = TestDir::new();
    // Only these collectors (the log's rate limit would drop lines among the others'), with
    // debug logging: collector failures are logged at that level.
    let mut args: Vec<String> = [
        "--collector.disable-defaults",
        "--sandbox",
        "enforce",
        "--log.level",
        "debug",
    ]
    .map(String::from)
    .to_vec();
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    let hung = Path::new("/proc/sys/kernel/hung_task_detect_count");
    let read_hung = || -> Option<f64> {
        std::fs::read_to_string(hung)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    let hung_before = read_hung();
    let agent = Start::new(&dir).args(args).spawn();
    let body = agent.scrape("/metrics");
    let hung_after = read_hung();
    let diag = || format!("{}\n--- scrape ---\n{body}", agent.diagnostics());
    assert_sandbox_enforced(&body, "the host run must be sandboxed", || {
        agent.diagnostics()
    });
    let want = |present: bool| Some(if present { 1.0 } else { 0.0 });

    // kernel_hung: the counter between two readings of ours, or no data without the file.
    assert_eq!(
        success(&body, "kernel_hung"),
        want(hung.exists()),
        "{}",
        diag()
    );
    if let (Some(lo), Some(hi)) = (hung_before, hung_after) {
        let v = value(&body, "node_kernel_hung_tasks_total", &[]).expect("hung tasks");
        assert!(lo <= v && v <= hi, "{lo} <= {v} <= {hi}");
    }

    // bcachefs and drbd: no data without the kernel module.
    let bcachefs = std::fs::read_dir("/sys/fs/bcachefs")
        .map(|d| d.flatten().any(|e| e.path().is_dir()))
        .unwrap_or(false);
    assert_eq!(success(&body, "bcachefs"), want(bcachefs), "{}", diag());
    let drbd = Path::new("/proc/drbd").exists();
    assert_eq!(success(&body, "drbd"), want(drbd), "{}", diag());

    // cgroups: one series per controller line.
    let cgroups = std::fs::read_to_string("/proc/cgroups").ok();
    assert_eq!(
        success(&body, "cgroups"),
        want(cgroups.is_some()),
        "{}",
        diag()
    );
    if let Some(text) = cgroups {
        let lines = text.lines().filter(|l| !l.starts_with('#')).count();
        let series = samples(&body)
            .iter()
            .filter(|(n, _, _)| n == "node_cgroups_enabled")
            .count();
        assert_eq!(series, lines, "{}", diag());
    }

    // xfrm: all 28 counters when the kernel keeps XFRM statistics.
    let xfrm = Path::new("/proc/net/xfrm_stat").exists();
    assert_eq!(success(&body, "xfrm"), want(xfrm), "{}", diag());
    if xfrm {
        let n = samples(&body)
            .iter()
            .filter(|(n, _, _)| n.starts_with("node_xfrm_"))
            .count();
        assert_eq!(n, 28, "{}", diag());
    }

    // slabinfo: root-only on Linux (0400): the dropped agent cannot read it.
    let mode = std::fs::metadata("/proc/slabinfo")
        .map(|m| m.permissions().mode())
        .expect("/proc/slabinfo exists on Linux with SLUB or SLAB");
    let world_readable = mode & 0o004 != 0;
    assert_eq!(
        success(&body, "slabinfo"),
        want(world_readable),
        "{}",
        diag()
    );
    if !world_readable {
        // The log line is written as the scrape is answered: wait for it.
        let log = agent.wait_log("collector slabinfo failed");
        assert!(
            log.lines().any(|l| l.contains("collector slabinfo failed")
                && l.to_lowercase().contains("permission denied")),
            "the failure names the collector and the cause:\n{log}"
        );
    }
}
