//! The netlink collectors under the full sandbox (started as root, dropped, Landlock and
//! seccomp with the `netlink-route` and `netlink-sock-diag` policy fragments): their output
//! checked against this host's procfs and against node_exporter 1.5 (Debian's
//! `prometheus-node-exporter`, which reads `network_route`, `tcpstat` and netclass's netlink
//! mode over netlink too), `--check-sandbox` and `monitoring_agent_sandbox_fragment` listing
//! the fragments, and the default configuration keeping every netlink fragment out; also
//! node_exporter 1.12's `swap` and `drm` collectors under the sandbox, and `perf` refused.
//!
//! Needs root, the agent's user and `prometheus-node-exporter`; fails, never skips, without
//! them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `/proc/net/dev` as node_exporter's legacy names: device -> name -> value.
fn proc_net_dev() -> BTreeMap<String, BTreeMap<String, f64>> {
    const COLUMNS: [&str; 16] = [
        "receive_bytes",
        "receive_packets",
        "receive_errs",
        "receive_drop",
        "receive_fifo",
        "receive_frame",
        "receive_compressed",
        "receive_multicast",
        "transmit_bytes",
        "transmit_packets",
        "transmit_errs",
        "transmit_drop",
        "transmit_fifo",
        "transmit_colls",
        "transmit_carrier",
        "transmit_compressed",
    ];
    let text = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev");
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let (name, rest) = line.rsplit_once(':').expect("name: counters");
        let values: BTreeMap<String, f64> = COLUMNS
            .iter()
            .zip(rest.split_whitespace())
            .map(|(c, v)| {
                (
                    format!("node_network_{c}_total"),
                    v.parse().expect("number"),
                )
            })
            .collect();
        out.insert(name.trim().to_string(), values);
    }
    out
}

/// `/proc/net/arp` entries per device.
fn proc_net_arp() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string("/proc/net/arp").expect("/proc/net/arp");
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        if let Some(dev) = line.split_whitespace().nth(5) {
            *out.entry(dev.to_string()).or_insert(0.0) += 1.0;
        }
    }
    out
}

/// The `device` label's value of a label string as written (`{device="eth0",...}`).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = labels.get(start..)?;
    rest.get(..rest.find('"')?)
}

/// node_exporter 1.5 with the given collectors only, killed on drop.
struct NodeExporter {
    child: Child,
    addr: SocketAddr,
}

impl NodeExporter {
    fn start(args: &[&str]) -> NodeExporter {
        let bin = find_program("prometheus-node-exporter").unwrap_or_else(|| {
            panic!(
                "prometheus-node-exporter not found: this test compares the netlink collectors \
                 with Debian's node_exporter 1.5; install it with `apt-get install \
                 prometheus-node-exporter` (scripts/test.sh does)"
            )
        });
        let port = free_port();
        let addr = loopback(port);
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus-node-exporter");
        let deadline = Instant::now() + WAIT;
        while !accepts(addr) {
            assert!(Instant::now() < deadline, "node_exporter did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        NodeExporter { child, addr }
    }

    fn scrape(&self) -> String {
        let body = http(self.addr, "GET", "/metrics", &[]).expect("scrape node_exporter");
        assert_eq!(body.status, 200);
        body.text()
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `monitoring-agent --check-sandbox` against a running test agent: its standard output.
fn check_sandbox(dir: &TestDir, agent: &Agent) -> String {
    let out = Command::new(BIN)
        .args([
            "--check-sandbox",
            "--pid-file",
            &dir.pid_file().display().to_string(),
            "--web.listen-address",
            &agent.addr().to_string(),
        ])
        .output()
        .expect("check runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Samples of the families whose names start with `prefix`: "name{labels}" -> value.
fn series(body: &str, prefix: &str) -> BTreeMap<String, f64> {
    samples(body)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with(prefix))
        .map(|(n, l, v)| (format!("{n}{l}"), v))
        .collect()
}

const NETLINK_ARGS: [&str; 10] = [
    "--collector.disable-defaults",
    "--collector.netdev",
    "--collector.netdev.netlink",
    "--collector.arp",
    "--collector.arp.netlink",
    "--collector.netclass",
    "--collector.netclass.netlink",
    "--collector.network_route",
    "--collector.tcpstat",
    "--sandbox=enforce",
];

#[test]
fn netlink_collectors_under_the_sandbox_match_the_host_and_node_exporter() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).args(NETLINK_ARGS).spawn();
    let ne = NodeExporter::start(&[
        "--collector.network_route",
        "--collector.tcpstat",
        "--collector.netclass",
        "--collector.netclass.netlink",
    ]);

    let dev_before = proc_net_dev();
    let arp_before = proc_net_arp();
    let body = agent.scrape("/metrics");
    let dev_after = proc_net_dev();
    let arp_after = proc_net_arp();
    let ne_body = ne.scrape();

    assert_sandbox_enforced(&body, "netlink collectors", || agent.diagnostics());
    for c in ["arp", "netclass", "netdev", "network_route", "tcpstat"] {
        assert_eq!(
            must_value(&body, "node_scrape_collector_success", &[("collector", c)]),
            1.0,
            "collector {c} failed under the sandbox\n{}",
            agent.diagnostics()
        );
    }
    for (fragment, on) in [
        ("dbus", 0.0),
        ("netlink-route", 1.0),
        ("netlink-sock-diag", 1.0),
    ] {
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", fragment)]
            ),
            on,
            "fragment {fragment}"
        );
    }
    assert!(
        agent
            .log()
            .contains("policy fragments: netlink-route, netlink-sock-diag"),
        "{}",
        agent.diagnostics()
    );
    let check = check_sandbox(&dir, &agent);
    assert!(
        check.lines().any(|l| l.trim()
            == "policy fragments    netlink-route (for arp.netlink, netclass.netlink, \
                netdev.address-info, netdev.netlink, network_route); netlink-sock-diag (for \
                tcpstat)"),
        "--check-sandbox does not list the netlink fragments:\n{check}"
    );

    // netdev over RTM_GETLINK: every /proc/net/dev device and counter, each between the two
    // reads of /proc/net/dev around the scrape (traffic goes on), plus rx_nohandler.
    let netdev = series(&body, "node_network_");
    for (dev, counters) in &dev_before {
        for (name, lo) in counters {
            let key = format!("{name}{{device=\"{dev}\"}}");
            let got = *netdev
                .get(&key)
                .unwrap_or_else(|| panic!("netlink netdev lacks {key}\n{body}"));
            let hi = dev_after[dev][name];
            assert!(
                *lo <= got && got <= hi,
                "{key}: netlink {got}, /proc/net/dev {lo}..{hi}"
            );
        }
        assert!(netdev.contains_key(&format!(
            "node_network_receive_nohandler_total{{device=\"{dev}\"}}"
        )));
    }
    let all = samples(&body);
    let devices: BTreeSet<&str> = all
        .iter()
        .filter(|(n, _, _)| n == "node_network_receive_bytes_total")
        .filter_map(|(_, l, _)| label(l, "device"))
        .collect();
    assert_eq!(
        devices,
        dev_before
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );

    // arp over RTM_GETNEIGH: the same counts as /proc/net/arp (when the table held still).
    if arp_before == arp_after {
        let arp: BTreeMap<String, f64> = samples(&body)
            .into_iter()
            .filter(|(n, _, _)| n == "node_arp_entries")
            .map(|(_, l, v)| (label(&l, "device").unwrap_or_default().to_string(), v))
            .collect();
        assert_eq!(arp, arp_before, "netlink arp vs /proc/net/arp");
    }

    // network_route: exactly node_exporter 1.5's (both dump RTM_GETROUTE).
    let routes = series(&body, "node_network_route");
    let ne_routes = series(&ne_body, "node_network_route");
    assert!(!routes.is_empty());
    assert_eq!(
        routes, ne_routes,
        "network_route: agent vs node_exporter 1.5"
    );

    // netclass over RTM_GETLINK: node_exporter 1.5's netlink mode, but for what 1.5 takes from
    // the ethtool generic-netlink family (speed, duplex: not allowed, README) and the families
    // 1.12 added (read from sysfs: address_assign_type, device_id, name_assign_type).
    let skip = ["node_network_speed_bytes", "node_network_info"];
    let ours: BTreeMap<String, f64> = samples(&body)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("node_network_") && !skip.contains(&n.as_str()))
        .map(|(n, l, v)| (format!("{n}{l}"), v))
        .collect();
    let mut compared = 0;
    for (n, l, v) in samples(&ne_body) {
        if !n.starts_with("node_network_")
            || n.starts_with("node_network_route")
            || skip.contains(&n.as_str())
        {
            continue;
        }
        let key = format!("{n}{l}");
        assert_eq!(ours.get(&key), Some(&v), "netclass netlink {key}");
        compared += 1;
    }
    assert!(compared > 0, "no netclass sample compared");
    let info = |b: &str| -> BTreeSet<String> {
        samples(b)
            .into_iter()
            .filter(|(n, _, _)| n == "node_network_info")
            .map(|(_, l, _)| {
                ["address", "broadcast", "device", "ifalias", "operstate"]
                    .iter()
                    .map(|k| format!("{k}={:?}", label(&l, k).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    assert_eq!(info(&body), info(&ne_body), "node_network_info but duplex");

    // tcpstat over sock_diag: the states node_exporter 1.5 sees (listening sockets, at least
    // the two exporters'), and 1.12's queued-bytes pseudo-states.
    let states = |b: &str| -> BTreeMap<String, f64> {
        samples(b)
            .into_iter()
            .filter(|(n, _, _)| n == "node_tcp_connection_states")
            .map(|(_, l, v)| (label(&l, "state").unwrap_or_default().to_string(), v))
            .collect()
    };
    let (ours, theirs) = (states(&body), states(&ne_body));
    assert!(ours.get("listen").is_some_and(|n| *n >= 2.0), "{ours:?}");
    assert!(theirs.contains_key("listen"), "{theirs:?}");
    assert!(ours.contains_key("rx_queued_bytes") && ours.contains_key("tx_queued_bytes"));
}

/// The defaults read procfs/sysfs: no netlink fragment, and still the netdev and arp samples.
#[test]
fn defaults_keep_netlink_out() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).arg("--sandbox=enforce").spawn();
    let body = agent.scrape("/metrics");
    for fragment in ["dbus", "netlink-route", "netlink-sock-diag"] {
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", fragment)]
            ),
            0.0,
            "fragment {fragment} with the defaults"
        );
    }
    for c in ["arp", "netdev", "netclass"] {
        assert_eq!(
            must_value(&body, "node_scrape_collector_success", &[("collector", c)]),
            1.0
        );
    }
    assert!(body.contains("node_network_receive_bytes_total{device=\"lo\"}"));
    assert!(agent.log().contains("policy fragments: none"));
    let check = check_sandbox(&dir, &agent);
    assert!(
        check
            .lines()
            .any(|l| l.trim() == "policy fragments    none"),
        "--check-sandbox:\n{check}"
    );
}

/// perf stays unsupported (SECURITY.md, "Collectors left out on purpose"): its flags are
/// refused as unknown, before anything starts.
#[test]
fn perf_is_refused() {
    for flag in [
        "--collector.perf",
        "--collector.perf.cpus=0",
        "--collector.perf.tracepoint=sched:sched_switch",
    ] {
        let out = Command::new(BIN)
            .args([flag, "--check-config"])
            .output()
            .expect("run the agent");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("unexpected argument"), "{flag}: {err}");
    }
}

/// node_exporter 1.12's `swap` and `drm` (no netlink, no fragment) under the full sandbox:
/// `/proc/swaps` of this host, and the drm fixture tree as `--path.sysfs` (the card's `device`
/// link resolved under seccomp and Landlock).
#[test]
fn swap_and_drm_under_the_sandbox() {
    let dir = TestDir::new();
    // A copy the dropped agent can read wherever the checkout lives.
    let tree = dir.path().join("sys");
    copy_tree(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/drm/procfs/sys"
        )),
        &tree,
    );
    let sysfs = tree.display().to_string();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.swap",
            "--collector.drm",
            "--path.sysfs",
            &sysfs,
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "swap and drm", || agent.diagnostics());
    for c in ["swap", "drm"] {
        assert_eq!(
            must_value(&body, "node_scrape_collector_success", &[("collector", c)]),
            1.0,
            "{c}\n{}",
            agent.diagnostics()
        );
    }
    assert_eq!(
        must_value(&body, "node_drm_gpu_busy_percent", &[("card", "card0")]),
        4.0
    );
    // One series per swap area of this host (none is fine: the collector still succeeds).
    let swaps = std::fs::read_to_string("/proc/swaps").expect("/proc/swaps");
    let areas = swaps
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let series = samples(&body)
        .iter()
        .filter(|(n, _, _)| n == "node_swap_size_bytes")
        .count();
    assert_eq!(series, areas);
    for fragment in ["dbus", "netlink-route", "netlink-sock-diag"] {
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", fragment)]
            ),
            0.0
        );
    }
}

/// `ip -o addr show` as (device, address, prefix length): what the kernel's `RTM_GETADDR`
/// dump holds, through iproute2 (point-to-point: the local address, the peer's prefix).
fn ip_addresses() -> BTreeSet<(String, String, String)> {
    let ip = find_program("ip")
        .unwrap_or_else(|| panic!("`ip` not found: install iproute2 (scripts/test.sh does)"));
    let out = Command::new(ip)
        .args(["-o", "addr", "show"])
        .output()
        .expect("run ip -o addr show");
    assert!(out.status.success(), "ip -o addr show failed");
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let dev = f[1]
            .split('@')
            .next()
            .expect("device")
            .trim_end_matches(':');
        let (addr, prefix) = match f[3].split_once('/') {
            Some((a, p)) => (a.to_string(), p.to_string()),
            None => {
                assert_eq!(f[4], "peer", "{line}");
                let (_, p) = f[5].split_once('/').expect("peer/prefix");
                (f[3].to_string(), p.to_string())
            }
        };
        set.insert((dev.to_string(), addr, prefix));
    }
    set
}

/// node_exporter 1.12's last netdev flags under the full sandbox. In the default procfs mode:
/// `--collector.netdev.address-info` (brings `netlink-route`, and only it) lists every address
/// `ip -o addr` does, `127.0.0.1/8` and `::1/128` on `lo` as `link-local`;
/// `--collector.netdev.enable-detailed-metrics` gives 1.12's procfs names; `label-ifalias` the
/// sysfs alias on every counter; the deprecated `device-blacklist` filters (with its warning).
/// In the netlink mode with `device-whitelist=^lo$`: only `lo`, with the 24 detailed families.
/// And the deprecated names are refused beside the new ones, with 1.12's messages.
#[test]
fn netdev_flags_under_the_sandbox() {
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.netdev",
            "--collector.netdev.address-info",
            "--collector.netdev.enable-detailed-metrics",
            "--collector.netdev.label-ifalias",
            "--collector.netdev.device-blacklist=^nothing-here$",
        ])
        .spawn();
    let before = ip_addresses();
    let body = agent.scrape("/metrics");
    let after = ip_addresses();
    assert_sandbox_enforced(&body, "netdev flags", || agent.diagnostics());
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "netdev")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    for (fragment, on) in [
        ("dbus", 0.0),
        ("netlink-route", 1.0),
        ("netlink-sock-diag", 0.0),
        ("netlink-generic", 0.0),
        ("ethtool", 0.0),
    ] {
        assert_eq!(
            must_value(
                &body,
                "monitoring_agent_sandbox_fragment",
                &[("fragment", fragment)]
            ),
            on,
            "fragment {fragment}"
        );
    }
    let check = check_sandbox(&dir, &agent);
    assert!(
        check.lines().any(|l| l.trim()
            == "policy fragments    netlink-route (for arp.netlink, netclass.netlink, \
                netdev.address-info, netdev.netlink, network_route)"),
        "--check-sandbox:\n{check}"
    );
    assert!(
        agent.log().contains(
            "--collector.netdev.device-blacklist is DEPRECATED and will be removed in 2.0.0, \
             use --collector.netdev.device-exclude"
        ),
        "{}",
        agent.diagnostics()
    );

    // Address info: exactly the kernel's addresses (when they held still), lo's two included.
    let all = samples(&body);
    let info: BTreeSet<(String, String, String, String)> = all
        .iter()
        .filter(|(n, _, _)| n == "node_network_address_info")
        .map(|(_, l, v)| {
            assert_eq!(*v, 1.0);
            let get = |k: &str| {
                label(l, k)
                    .unwrap_or_else(|| panic!("{k} in {l}"))
                    .to_string()
            };
            (get("device"), get("address"), get("netmask"), get("scope"))
        })
        .collect();
    for want in [
        ("lo", "127.0.0.1", "8", "link-local"),
        ("lo", "::1", "128", "link-local"),
    ] {
        let want = (
            want.0.to_string(),
            want.1.to_string(),
            want.2.to_string(),
            want.3.to_string(),
        );
        assert!(info.contains(&want), "{want:?} not in {info:?}");
    }
    if before == after {
        let ours: BTreeSet<(String, String, String)> = info
            .iter()
            .map(|(d, a, m, _)| (d.clone(), a.clone(), m.clone()))
            .collect();
        assert_eq!(ours, before, "node_network_address_info vs ip -o addr");
    }

    // Detailed procfs names, with the alias label.
    let alias = std::fs::read_to_string("/sys/class/net/lo/ifalias")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let lo = [("device", "lo"), ("ifalias", alias.as_str())];
    for name in [
        "node_network_receive_errors_total",
        "node_network_receive_dropped_total",
        "node_network_transmit_errors_total",
        "node_network_transmit_dropped_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_colls_total",
    ] {
        assert!(value(&body, name, &lo).is_some(), "{name} {lo:?}\n{body}");
    }
    for name in [
        "node_network_receive_errs_total",
        "node_network_receive_drop_total",
        "node_network_receive_missed_errors_total",
    ] {
        assert!(!body.contains(name), "{name} with detailed procfs metrics");
    }
    let devices: BTreeSet<&str> = all
        .iter()
        .filter(|(n, _, _)| n == "node_network_receive_bytes_total")
        .filter_map(|(_, l, _)| label(l, "device"))
        .collect();
    assert_eq!(
        devices,
        proc_net_dev()
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    drop(agent);

    // Netlink mode, detailed, with the deprecated include.
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args([
            "--sandbox=enforce",
            "--collector.disable-defaults",
            "--collector.netdev",
            "--collector.netdev.netlink",
            "--collector.netdev.enable-detailed-metrics",
            "--collector.netdev.device-whitelist=^lo$",
        ])
        .spawn();
    let body = agent.scrape("/metrics");
    assert_sandbox_enforced(&body, "netdev netlink detailed", || agent.diagnostics());
    assert_eq!(
        must_value(
            &body,
            "node_scrape_collector_success",
            &[("collector", "netdev")]
        ),
        1.0,
        "{}",
        agent.diagnostics()
    );
    let fams: BTreeSet<String> = samples(&body)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("node_network_"))
        .map(|(n, l, _)| {
            assert_eq!(label(&l, "device"), Some("lo"), "{n}{l}");
            n
        })
        .collect();
    assert_eq!(fams.len(), 24, "{fams:?}");
    for name in [
        "node_network_receive_missed_errors_total",
        "node_network_receive_crc_errors_total",
        "node_network_multicast_total",
        "node_network_collisions_total",
        "node_network_transmit_window_errors_total",
        "node_network_receive_nohandler_total",
    ] {
        assert!(fams.contains(name), "{name} not in {fams:?}");
    }
    assert!(agent
        .log()
        .contains("--collector.netdev.device-whitelist is DEPRECATED"));
    drop(agent);

    // Refused beside the new names, before anything starts.
    for (flags, msg) in [
        (
            [
                "--collector.netdev.device-whitelist=a",
                "--collector.netdev.device-include=b",
            ],
            "--collector.netdev.device-whitelist and --collector.netdev.device-include are \
             mutually exclusive",
        ),
        (
            [
                "--collector.netdev.device-blacklist=a",
                "--collector.netdev.device-exclude=b",
            ],
            "--collector.netdev.device-blacklist and --collector.netdev.device-exclude are \
             mutually exclusive",
        ),
        (
            [
                "--collector.netdev.device-whitelist=a",
                "--collector.netdev.device-blacklist=b",
            ],
            "device-include and device-exclude are mutually exclusive",
        ),
    ] {
        let out = Command::new(BIN)
            .args(flags)
            .arg("--check-config")
            .output()
            .expect("run the agent");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(msg), "{flags:?}: {err}");
    }
}
