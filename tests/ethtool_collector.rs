//! node_exporter 1.12's `ethtool` collector under the full sandbox (started as root, dropped,
//! Landlock and seccomp with the `ethtool` policy fragment), on this host's `eth0`: its
//! `node_ethtool_info` labels are `ethtool -i eth0`'s, its statistics are `ethtool -S eth0`'s
//! (the same key set, each value between two `ethtool -S` readings taken around the scrape),
//! its autonegotiation gauges are `ethtool eth0`'s, and the include flags narrow it.
//!
//! Needs root, the agent's user, the `ethtool` program and an `eth0` whose driver answers
//! `ETHTOOL_GSTATS` (virtio_net on the CI VM); fails, never skips, without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

fn ethtool(args: &[&str]) -> String {
    let bin =
        find_program("ethtool").expect("the ethtool program (Debian package ethtool) is needed");
    let out = Command::new(bin).args(args).output().expect("run ethtool");
    assert!(out.status.success(), "ethtool {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `key: value` lines of an `ethtool` output (trimmed; lines without `: ` skipped).
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.split_once(": ")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .or_else(|| l.strip_suffix(':').map(|k| (k.to_string(), String::new())))
        })
        .collect()
}

/// `ethtool -S eth0`: statistic -> value.
fn stats() -> BTreeMap<String, f64> {
    ethtool(&["-S", "eth0"])
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_string(), v.parse().expect("number")))
        .collect()
}

/// node_exporter's metric name for a statistic made of `[a-z0-9_]` (virtio_net's): the
/// `rx`/`tx` words spelled out, the seven fixed names as node_exporter pre-declares them.
fn metric_name(stat: &str) -> String {
    let fixed = [
        ("rx_bytes", "received_bytes_total"),
        ("rx_dropped", "received_dropped_total"),
        ("rx_errors", "received_errors_total"),
        ("rx_packets", "received_packets_total"),
        ("tx_bytes", "transmitted_bytes_total"),
        ("tx_errors", "transmitted_errors_total"),
        ("tx_packets", "transmitted_packets_total"),
    ];
    if let Some((_, n)) = fixed.iter().find(|(k, _)| *k == stat) {
        return format!("node_ethtool_{n}");
    }
    assert!(
        stat.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "statistic {stat:?}: this test spells out simple names only"
    );
    let words: Vec<&str> = stat.split('_').collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Go's non-overlapping `(^|_)rx(_|$)`: after a replaced word the next one is not matched.
    let mut after_replacement = false;
    while i < words.len() {
        let w = words[i];
        let r = match w {
            "rx" if !after_replacement => Some("received"),
            "tx" if !after_replacement => Some("transmitted"),
            _ => None,
        };
        after_replacement = r.is_some();
        out.push(r.unwrap_or(w).to_string());
        i += 1;
    }
    format!("node_ethtool_{}", out.join("_"))
}

fn eth0_series(body: &str) -> BTreeMap<String, f64> {
    samples(body)
        .into_iter()
        .filter(|(n, l, _)| {
            n.starts_with("node_ethtool_") && n != "node_ethtool_info" && l == "{device=\"eth0\"}"
        })
        .map(|(n, _, v)| (n, v))
        .collect()
}

#[test]
fn ethtool_on_eth0_under_the_sandbox_matches_the_ethtool_program() {
    require_root_and_user();
    assert!(
        std::path::Path::new("/sys/class/net/eth0").exists(),
        "this test reads the host's eth0, and there is none"
    );
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.ethtool",
        ])
        .spawn();
    let before = stats();
    let body = agent.scrape("/metrics");
    let after = stats();
    assert_sandbox_enforced(&body, "ethtool", || agent.diagnostics());
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "ethtool")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    for (fragment, on) in [
        ("dbus", 0.0),
        ("ethtool", 1.0),
        ("netlink-route", 0.0),
        ("netlink-sock-diag", 0.0),
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

    // ETHTOOL_GDRVINFO: the labels of `ethtool -i eth0`.
    let i = key_values(&ethtool(&["-i", "eth0"]));
    let get = |k: &str| i.get(k).cloned().unwrap_or_default();
    let labels = [
        ("bus_info", get("bus-info")),
        ("device", "eth0".to_string()),
        ("driver", get("driver")),
        ("expansion_rom_version", get("expansion-rom-version")),
        ("firmware_version", get("firmware-version")),
        ("version", get("version")),
    ];
    assert!(
        !get("driver").is_empty(),
        "ethtool -i eth0 names no driver: {i:?}"
    );
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        must_value(&body, "node_ethtool_info", &labels),
        1.0,
        "{body}"
    );

    // ETHTOOL_GSSET_INFO/GSTRINGS/GSTATS: the key set of `ethtool -S eth0`, each value between
    // the readings before and after the scrape.
    assert!(!before.is_empty(), "ethtool -S eth0 reports no statistics");
    let got = eth0_series(&body);
    let expected: BTreeMap<String, String> =
        before.keys().map(|k| (metric_name(k), k.clone())).collect();
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "statistics of eth0: agent vs ethtool -S"
    );
    for (name, stat) in &expected {
        let (lo, hi) = (before[stat], after[stat]);
        let v = got[name];
        assert!(
            lo.min(hi) <= v && v <= lo.max(hi),
            "{name} ({stat}) = {v}, ethtool -S read {lo} before and {hi} after"
        );
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "{name}: no HELP line"
        );
    }

    // ETHTOOL_GSET: the autonegotiation state of `ethtool eth0`.
    let s = key_values(&ethtool(&["eth0"]));
    let yes = |k: &str| {
        let v = s
            .get(k)
            .unwrap_or_else(|| panic!("ethtool eth0 has no {k:?}: {s:?}"));
        if v == "Yes" || v == "on" {
            1.0
        } else {
            0.0
        }
    };
    for (metric, key) in [
        (
            "node_network_autonegotiate_supported",
            "Supports auto-negotiation",
        ),
        (
            "node_network_autonegotiate_advertised",
            "Advertised auto-negotiation",
        ),
        ("node_network_autonegotiate", "Auto-negotiation"),
    ] {
        assert_eq!(
            must_value(&body, metric, &[("device", "eth0")]),
            yes(key),
            "{metric} vs ethtool eth0's {key}"
        );
    }
}

/// `--collector.ethtool.device-include` and `--collector.ethtool.metrics-include` as 1.12:
/// only eth0, only the statistics whose sanitized name matches (unanchored).
#[test]
fn ethtool_include_flags() {
    require_root_and_user();
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.ethtool",
            "--collector.ethtool.device-include=^eth0$",
            "--collector.ethtool.metrics-include=^rx_",
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    let expected: BTreeSet<String> = stats()
        .keys()
        .filter(|k| k.starts_with("rx_"))
        .map(|k| metric_name(k))
        .collect();
    assert!(!expected.is_empty(), "eth0 has no rx_ statistics");
    assert_eq!(
        eth0_series(&body).keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    let devices: BTreeSet<String> = samples(&body)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("node_ethtool_") || n.starts_with("node_network_"))
        .map(|(_, l, _)| l)
        .filter(|l| !l.contains("device=\"eth0\""))
        .collect();
    assert!(devices.is_empty(), "devices other than eth0: {devices:?}");
}
