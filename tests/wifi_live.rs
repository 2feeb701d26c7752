//! The `wifi` collector's live mode (nl80211 over generic netlink) in the real binary under the
//! full sandbox (started as root, dropped, Landlock and seccomp with the `netlink-generic`
//! policy fragment): on a host without nl80211 (no cfg80211: the family is not registered, as
//! on the test VM and the CI host) every scrape is node_exporter 1.12's ErrNoData
//! (`node_scrape_collector_success` 0, counted in `monitoring_agent_collector_no_data_total`,
//! not as a failure), the agent lives on with every thread in seccomp filter mode; with
//! `--collector.wifi.fixtures` the fragment is not in force.
//!
//! Needs root, the agent's user and a host without cfg80211; fails, never skips, without them.

mod common;

use std::fs;

use common::*;

/// `Seccomp:` of every thread of `pid` (`/proc/<pid>/task/*/status`).
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

fn fragment(body: &str, name: &str) -> f64 {
    must_value(
        body,
        "monitoring_agent_sandbox_fragment",
        &[("fragment", name)],
    )
}

#[test]
fn live_mode_without_nl80211_is_no_data_under_the_sandbox() {
    assert!(
        !std::path::Path::new("/sys/module/cfg80211").exists(),
        "this test needs a host without cfg80211 (no nl80211 family): cfg80211 is loaded here"
    );
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.wifi",
        ])
        .spawn();
    let first = agent.scrape("/metrics");
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "wifi live mode", || agent.diagnostics());
    assert_eq!(
        fragment(&body, "netlink-generic"),
        1.0,
        "{}",
        agent.diagnostics()
    );
    assert_eq!(fragment(&body, "netlink-route"), 0.0);
    assert!(
        agent.log().contains("policy fragments: netlink-generic"),
        "{}",
        agent.diagnostics()
    );
    for b in [&first, &body] {
        assert_eq!(
            must_value(b, "node_scrape_collector_success", &[("collector", "wifi")]),
            0.0,
            "{}",
            agent.diagnostics()
        );
        assert!(!b.contains("node_wifi_"), "samples without nl80211:\n{b}");
    }
    // Both scrapes ran the collector, both no data; none counted as a failure.
    assert!(
        must_value(&body, "monitoring_agent_collector_no_data_total", &[]) >= 2.0,
        "{body}"
    );
    assert_eq!(
        must_value(&body, "monitoring_agent_collector_failures_total", &[]),
        0.0,
        "{}",
        agent.diagnostics()
    );
    // Alive and serving, every thread in seccomp filter mode (2).
    assert!(alive(agent.pid()), "{}", agent.diagnostics());
    assert_eq!(agent.get("/").status, 200);
    let modes = seccomp_of_every_thread(agent.pid());
    assert!(
        !modes.is_empty() && modes.iter().all(|m| m == "2"),
        "threads' seccomp modes: {modes:?}\n{}",
        agent.diagnostics()
    );
    assert!(!agent.log().contains("SIGSYS"), "{}", agent.diagnostics());
}

/// With fixtures the collector reads files: the `netlink-generic` fragment is not in force and
/// the fixtures' samples come through the sandbox.
#[test]
fn fixtures_keep_the_fragment_out() {
    let dir = TestDir::new();
    let tree = dir.path().join("wifi");
    copy_tree(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ne112/wifi"
        )),
        &tree,
    );
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.wifi",
            "--collector.wifi.fixtures",
            &tree.display().to_string(),
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "wifi fixtures", || agent.diagnostics());
    assert_eq!(fragment(&body, "netlink-generic"), 0.0);
    assert!(
        agent.log().contains("policy fragments: none"),
        "{}",
        agent.diagnostics()
    );
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "wifi")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    assert_eq!(
        must_value(
            &body,
            "node_wifi_interface_frequency_hertz",
            &[("device", "wlan0")]
        ),
        2.412e9
    );
}
