//! `ipvs` collector: IP Virtual Server totals from `/proc/net/ip_vs_stats` and per-backend
//! connection counts and weights from `/proc/net/ip_vs`, as node_exporter 1.5's
//! `ipvs_linux.go` with its default `--collector.ipvs.backend-labels` (all six labels:
//! `local_address`, `local_port`, `remote_address`, `remote_port`, `proto`, `local_mark`).
//! Backends with the same label values are summed, as node_exporter does.
//!
//! `--collector.ipvs.backend-labels` (node_exporter 1.12): a comma-separated subset of those
//! six labels; the backend families carry only these, and backends are summed over the
//! labels left out (1.12 keys its sums by the kept values joined with `-`, and so does this
//! collector). The order in the flag does not matter, empty items are ignored, an empty list
//! keeps no label (one sum over all backends), and an unknown label is refused at start-up
//! (`unknown IPVS backend labels: "a, b"`, as 1.12's collector fails to build). The totals
//! have no labels and are unchanged.
//!
//! Without the `ip_vs` module `ip_vs_stats` is absent: node_exporter returns `ErrNoData`
//! (`success 0`), and so does this collector (an error). Malformed content fails it too.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::options::collector_options;
use super::{read_parsed, CollectError, Collector, Options, Paths};

/// node_exporter's `fullIpvsBackendLabels`, in its order (the default of
/// `--collector.ipvs.backend-labels`).
pub const BACKEND_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

collector_options! {
    /// Options of the ipvs collector (`[collector.ipvs]` in the file).
    pub struct IpvsOptions {
        /// Comma separated list for IPVS backend stats labels; backends are summed over the
        /// labels left out [default: local_address,local_port,remote_address,remote_port,proto,local_mark].
        #[arg(id = "collector.ipvs.backend-labels", long = "collector.ipvs.backend-labels", value_name = "LABELS")]
        pub backend_labels: Option<String>,
    }
    check(o) {
        match &o.backend_labels {
            Some(l) => parse_labels(l).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// node_exporter 1.12's `parseIpvsLabels`: the known labels named in `list`, in
/// [`BACKEND_LABELS`] order; unknown ones are an error naming them, sorted.
pub fn parse_labels(list: &str) -> Result<Vec<&'static str>, String> {
    let named: std::collections::BTreeSet<&str> =
        list.split(',').filter(|l| !l.is_empty()).collect();
    let unknown: Vec<&str> = named
        .iter()
        .copied()
        .filter(|l| !BACKEND_LABELS.contains(l))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown IPVS backend labels: {:?}",
            unknown.join(", ")
        ));
    }
    Ok(BACKEND_LABELS
        .into_iter()
        .filter(|l| named.contains(l))
        .collect())
}
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// The totals of `/proc/net/ip_vs_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub connections: u64,
    pub incoming_packets: u64,
    pub outgoing_packets: u64,
    pub incoming_bytes: u64,
    pub outgoing_bytes: u64,
}

/// Parses `/proc/net/ip_vs_stats`: the third line holds the five hexadecimal totals.
pub fn parse_stats(text: &str) -> Result<Stats, String> {
    let mut lines = text.splitn(4, '\n');
    let (_, _, Some(third), Some(_)) = (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err("ip_vs_stats corrupt: too short".into());
    };
    let f: Vec<&str> = third.split_ascii_whitespace().collect();
    let &[connections, incoming_packets, outgoing_packets, incoming_bytes, outgoing_bytes] =
        f.as_slice()
    else {
        return Err("ip_vs_stats corrupt: unexpected number of fields".into());
    };
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| format!("bad hex value {s:?}"));
    Ok(Stats {
        connections: hex(connections)?,
        incoming_packets: hex(incoming_packets)?,
        outgoing_packets: hex(outgoing_packets)?,
        incoming_bytes: hex(incoming_bytes)?,
        outgoing_bytes: hex(outgoing_bytes)?,
    })
}

/// One backend line with the service it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub local_address: String,
    pub local_port: u16,
    pub local_mark: String,
    pub remote_address: String,
    pub remote_port: u16,
    pub proto: String,
    pub weight: u64,
    pub active: u64,
    pub inactive: u64,
}

/// `C0A80016:0CEA` or `[2620:0000:…:0001]:0050` → address and port, as procfs' `parseIPPort`.
fn ip_port(s: &str) -> Result<(String, u16), String> {
    let ip = match s.len() {
        13 => {
            // `get`: a multi-byte character may straddle byte 8 (issue 11).
            let v = s
                .get(..8)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad address {s:?}"))?;
            Ipv4Addr::from(v).to_string()
        }
        46 => s
            .get(1..40)
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .ok_or_else(|| format!("bad IPv6 address {s:?}"))?
            .to_string(),
        _ => return Err(format!("unexpected IP:Port {s:?}")),
    };
    let port = s
        .get(s.len() - 4..)
        .and_then(|p| u16::from_str_radix(p, 16).ok())
        .ok_or_else(|| format!("bad port in {s:?}"))?;
    Ok((ip, port))
}

/// Parses `/proc/net/ip_vs`.
pub fn parse_backends(text: &str) -> Result<Vec<Backend>, String> {
    let mut out = Vec::new();
    let mut proto = String::new();
    let mut local_mark = String::new();
    let mut local_address = String::new();
    let mut local_port = 0u16;
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(first), Some(second)) = (f.first(), f.get(1)) else {
            continue;
        };
        match *first {
            "IP" | "Prot" => {}
            _ if *second == "RemoteAddress:Port" => {}
            "TCP" | "UDP" => {
                proto = first.to_string();
                local_mark.clear();
                (local_address, local_port) = ip_port(second)?;
            }
            "FWM" => {
                proto = first.to_string();
                local_mark = second.to_string();
                local_address.clear();
                local_port = 0;
            }
            "->" => {
                let &[_, _, _, weight, active, inactive, ..] = f.as_slice() else {
                    continue;
                };
                let (remote_address, remote_port) = ip_port(second)?;
                let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
                out.push(Backend {
                    local_address: local_address.clone(),
                    local_port,
                    local_mark: local_mark.clone(),
                    remote_address,
                    remote_port,
                    proto: proto.clone(),
                    weight: num(weight)?,
                    active: num(active)?,
                    inactive: num(inactive)?,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Backend {
    /// The value of one of [`BACKEND_LABELS`].
    fn label(&self, name: &str) -> String {
        match name {
            "local_address" => self.local_address.clone(),
            "local_port" => self.local_port.to_string(),
            "remote_address" => self.remote_address.clone(),
            "remote_port" => self.remote_port.to_string(),
            "proto" => self.proto.clone(),
            "local_mark" => self.local_mark.clone(),
            _ => String::new(),
        }
    }
}

/// The families with every backend label (node_exporter's default).
pub fn families(stats: &Stats, backends: &[Backend]) -> Vec<MetricFamily> {
    families_with(stats, backends, &BACKEND_LABELS)
}

/// The families with the backend labels `labels` (a subset of [`BACKEND_LABELS`], in its
/// order), backends summed over the others.
pub fn families_with(
    stats: &Stats,
    backends: &[Backend],
    labels: &[&'static str],
) -> Vec<MetricFamily> {
    let total = |name: &'static str, help: &'static str, v: u64| {
        MetricFamily::counter(name, help).with(&[], v as f64)
    };
    let mut out = vec![
        total(
            "node_ipvs_connections_total",
            "The total number of connections made.",
            stats.connections,
        ),
        total(
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
            stats.incoming_packets,
        ),
        total(
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
            stats.outgoing_packets,
        ),
        total(
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
            stats.incoming_bytes,
        ),
        total(
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
            stats.outgoing_bytes,
        ),
    ];
    // Sum backends sharing the kept labels' values, keyed as 1.12 keys them (the values
    // joined with `-`; the last backend's values label the sum).
    let mut sums: Vec<(String, Vec<String>, u64, u64, u64)> = Vec::new();
    for b in backends {
        let kv: Vec<String> = labels.iter().map(|l| b.label(l)).collect();
        let key = kv.join("-");
        match sums.iter_mut().find(|(k, ..)| *k == key) {
            Some((_, values, a, i, w)) => {
                *values = kv;
                *a = a.wrapping_add(b.active);
                *i = i.wrapping_add(b.inactive);
                *w = w.wrapping_add(b.weight);
            }
            None => sums.push((key, kv, b.active, b.inactive, b.weight)),
        }
    }
    let mut active = MetricFamily::gauge(
        "node_ipvs_backend_connections_active",
        "The current active connections by local and remote address.",
    );
    let mut inactive = MetricFamily::gauge(
        "node_ipvs_backend_connections_inactive",
        "The current inactive connections by local and remote address.",
    );
    let mut weight = MetricFamily::gauge(
        "node_ipvs_backend_weight",
        "The current backend weight by local and remote address.",
    );
    for (_, values, a, i, w) in sums {
        // Labels sorted by name, as the exposition writes them.
        let mut pairs: Vec<(&'static str, &str)> = labels
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        pairs.sort_unstable_by_key(|(k, _)| *k);
        active.push(&pairs, a as f64);
        inactive.push(&pairs, i as f64);
        weight.push(&pairs, w as f64);
    }
    for mut f in [active, inactive, weight] {
        sort_samples(&mut f);
        out.push(f);
    }
    out
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    // The check refused unknown labels at start-up; the default is every label.
    let labels = opts
        .ipvs
        .backend_labels
        .as_deref()
        .and_then(|l| parse_labels(l).ok())
        .unwrap_or_else(|| BACKEND_LABELS.to_vec());
    Box::new(Ipvs { labels })
}

/// The collector, with the backend labels it keeps.
pub struct Ipvs {
    pub labels: Vec<&'static str>,
}

impl Default for Ipvs {
    fn default() -> Self {
        Ipvs {
            labels: BACKEND_LABELS.to_vec(),
        }
    }
}

impl Collector for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let stats = read_parsed(&paths.proc("net/ip_vs_stats"), parse_stats)
            .map_err(CollectError::absent_is_no_data)?;
        // Partial output as node_exporter's: the totals are sent before the backends are read.
        let backends = read_parsed(&paths.proc("net/ip_vs"), parse_backends).map_err(|e| {
            let mut totals = families_with(&stats, &[], &self.labels);
            totals.retain(|f| !f.samples.is_empty());
            CollectError::partial(totals, e)
        })?;
        Ok(families_with(&stats, &backends, &self.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_output_keeps_what_was_read_before_the_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/e2e/proc/net/ip_vs_stats");
        std::fs::create_dir_all(dir.path().join("net")).expect("mkdir");
        std::fs::copy(&src, dir.path().join("net/ip_vs_stats")).expect("copy");
        // net/ip_vs is a directory: reading it fails after the totals were read.
        std::fs::create_dir_all(dir.path().join("net/ip_vs")).expect("mkdir");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let o = crate::collector::run(&Ipvs::default(), &paths);
        assert!(o.error.is_some(), "the collector fails");
        assert!(o
            .families
            .iter()
            .any(|f| f.name == "node_ipvs_connections_total"));
        assert!(o.families.iter().all(|f| f.name.ends_with("_total")));
    }
    use crate::collectors::testutil::lines::{parse, render, sorted};
    use crate::collectors::testutil::procfs;
    use std::path::Path;

    #[test]
    fn node_exporter_fixture_matches_its_expected_output() {
        let fams = Ipvs::default()
            .collect(&procfs("net", "node_exporter-fixture/proc"))
            .expect("collects");
        let expected =
            include_str!("../../tests/fixtures/net/node_exporter-fixture/ip_vs_result.txt");
        assert_eq!(render(&sorted(fams)), parse(expected));
    }

    /// Issue 11: a 13-byte address whose 8th byte is inside a multi-byte character was
    /// sliced at byte 8 and panicked; now it is a parse error.
    #[test]
    fn multi_byte_address_is_an_error_not_a_panic() {
        assert!(ip_port("C0A8001é:0CEA").is_err());
        assert!(ip_port("C0A80016:0CEA").is_ok());
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
                    Prot LocalAddress:Port Scheduler Flags\n\
                    TCP  C0A8001€:0CEA wlc\n";
        assert!(parse_backends(text).is_err());
    }

    #[test]
    fn ipv6_and_summing() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sh
  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      0          0
  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      3          4
";
        let b = parse_backends(text).expect("parses");
        assert_eq!(b[0].local_address, "2620::1");
        assert_eq!(b[0].local_port, 80);
        assert_eq!(b[0].remote_address, "2620::2");
        let fams = families(&Stats::default(), &b);
        let w = fams
            .iter()
            .find(|f| f.name == "node_ipvs_backend_weight")
            .expect("weight");
        assert_eq!(w.samples.len(), 1);
        assert_eq!(w.samples[0].value, 2.0);
    }

    #[test]
    fn garbled_and_absent() {
        assert!(parse_stats("a\nb\n").is_err());
        assert!(parse_stats("a\nb\n1 2 3\n\n").is_err());
        assert!(parse_stats("a\nb\n1 2 3 4 zz\n\n").is_err());
        assert!(parse_backends("TCP  C0A80016:0CE wlc\n").is_err());
        assert!(
            parse_backends("TCP  C0A80016:0CEA wlc\n  -> C0A85216:0CEA Tunnel x 1 2\n").is_err()
        );
        assert!(Ipvs::default()
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .is_err());
    }

    /// `--collector.ipvs.backend-labels` on node_exporter 1.12's fixture: for several subsets,
    /// the served backend samples are 1.12's e2e-output samples (all six labels) summed over
    /// the labels left out.
    #[test]
    fn backend_labels_node_exporter_112() {
        use std::collections::BTreeMap;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter_1.12");
        let expected = std::fs::read_to_string(root.join("e2e-output.txt")).expect("e2e");
        let paths = crate::collectors::testutil::procfs_at(root.join("proc"));
        let label_re = regex::Regex::new(r#"([a-z_]+)="([^"]*)""#).expect("re");
        for (flag, kept) in [
            ("proto", vec!["proto"]),
            (
                "remote_port,local_address",
                vec!["local_address", "remote_port"],
            ),
            (",local_mark,,proto", vec!["local_mark", "proto"]),
            ("", vec![]),
            (
                "local_address,local_port,remote_address,remote_port,proto,local_mark",
                vec![
                    "local_address",
                    "local_mark",
                    "local_port",
                    "proto",
                    "remote_address",
                    "remote_port",
                ],
            ),
        ] {
            let mut o = Options::default();
            o.ipvs.backend_labels = Some(flag.to_string());
            assert!(o.check().is_ok(), "{flag}");
            let fams = collector(&o).collect(&paths).expect("collects");
            for fam in [
                "node_ipvs_backend_connections_active",
                "node_ipvs_backend_connections_inactive",
                "node_ipvs_backend_weight",
            ] {
                // 1.12's samples, summed over the labels not kept.
                let mut want: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
                for line in expected.lines() {
                    let Some(rest) = line.strip_prefix(&format!("{fam}{{")) else {
                        continue;
                    };
                    let (labels, value) = rest.rsplit_once("} ").expect("sample");
                    let key: Vec<(String, String)> = label_re
                        .captures_iter(labels)
                        .map(|c| (c[1].to_string(), c[2].to_string()))
                        .filter(|(k, _)| kept.contains(&k.as_str()))
                        .collect();
                    *want.entry(key).or_default() += value.parse::<f64>().expect("value");
                }
                let f = fams.iter().find(|f| f.name == fam).expect("family");
                let got: BTreeMap<Vec<(String, String)>, f64> = f
                    .samples
                    .iter()
                    .map(|s| {
                        (
                            s.labels
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            s.value,
                        )
                    })
                    .collect();
                assert_eq!(got.len(), f.samples.len(), "{flag}: one sample per key");
                assert_eq!(got, want, "{flag} {fam}");
            }
            // The totals keep their single unlabelled sample.
            let total = fams
                .iter()
                .find(|f| f.name == "node_ipvs_connections_total")
                .expect("total");
            assert_eq!(total.samples.len(), 1);
        }
        // With `proto` only: FWM's two backends (weights 100 and 20) are one sample.
        let mut o = Options::default();
        o.ipvs.backend_labels = Some("proto".into());
        let fams = collector(&o).collect(&paths).expect("collects");
        let w = fams
            .iter()
            .find(|f| f.name == "node_ipvs_backend_weight")
            .expect("weight");
        let fwm = w
            .samples
            .iter()
            .find(|s| s.labels[0].1 == "FWM")
            .expect("FWM");
        assert_eq!(fwm.value, 120.0);
    }

    /// node_exporter 1.12's own unit test of the flag (`TestIPVSCollectorResponse`): its
    /// expected outputs for the default and three `--collector.ipvs.backend-labels` values.
    #[test]
    fn backend_labels_match_node_exporter_112_outputs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter_1.12");
        let paths = crate::collectors::testutil::procfs_at(root.join("proc"));
        for (labels, file) in [
            (None, "ip_vs_result.txt"),
            (Some(""), "ip_vs_result_lbs_none.txt"),
            (Some("local_port"), "ip_vs_result_lbs_local_port.txt"),
            (
                Some("local_address,local_port"),
                "ip_vs_result_lbs_local_address_local_port.txt",
            ),
        ] {
            let o = Options {
                ipvs: IpvsOptions {
                    backend_labels: labels.map(String::from),
                },
                ..Options::default()
            };
            let fams = collector(&o).collect(&paths).expect("collects");
            let expected = std::fs::read_to_string(root.join(file)).expect("expected output");
            assert_eq!(render(&sorted(fams)), parse(&expected), "{file}");
        }
    }

    #[test]
    fn unknown_backend_labels_are_refused() {
        assert_eq!(
            parse_labels("proto,zone,,foo").unwrap_err(),
            r#"unknown IPVS backend labels: "foo, zone""#
        );
        // 1.12 does not trim: " proto" is not a label.
        assert!(parse_labels("local_port, proto").is_err());
        assert_eq!(
            parse_labels("proto,local_address").expect("ok"),
            ["local_address", "proto"]
        );
        let o = Options {
            ipvs: toml::from_str("backend_labels = \"proto,nope\"\n").expect("toml"),
            ..Options::default()
        };
        let err = o.check().unwrap_err();
        assert!(err.contains("ipvs") && err.contains("nope"), "{err}");
    }

    #[test]
    fn live() {
        let loaded = Path::new("/proc/net/ip_vs_stats").exists();
        assert_eq!(Ipvs::default().collect(&Paths::default()).is_ok(), loaded);
    }
}
