//! `ipvs` collector: IP Virtual Server totals from `/proc/net/ip_vs_stats` and per-backend
//! connection counts and weights from `/proc/net/ip_vs`, as node_exporter 1.5's
//! `ipvs_linux.go` with its default `--collector.ipvs.backend-labels` (all six labels:
//! `local_address`, `local_port`, `remote_address`, `remote_port`, `proto`, `local_mark`).
//! Backends with the same label values are summed, as node_exporter does.
//!
//! Without the `ip_vs` module `ip_vs_stats` is absent: node_exporter returns `ErrNoData`
//! (`success 0`), and so does this collector (an error). Malformed content fails it too.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{read_parsed, CollectError, Collector, Options, Paths};
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

pub fn families(stats: &Stats, backends: &[Backend]) -> Vec<MetricFamily> {
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
    // Sum backends sharing all label values.
    let mut sums: Vec<(&Backend, u64, u64, u64)> = Vec::new();
    for b in backends {
        let same = |o: &Backend| {
            o.local_address == b.local_address
                && o.local_port == b.local_port
                && o.local_mark == b.local_mark
                && o.remote_address == b.remote_address
                && o.remote_port == b.remote_port
                && o.proto == b.proto
        };
        match sums.iter_mut().find(|(o, ..)| same(o)) {
            Some((_, a, i, w)) => {
                *a = a.wrapping_add(b.active);
                *i = i.wrapping_add(b.inactive);
                *w = w.wrapping_add(b.weight);
            }
            None => sums.push((b, b.active, b.inactive, b.weight)),
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
    for (b, a, i, w) in sums {
        let lport = b.local_port.to_string();
        let rport = b.remote_port.to_string();
        let labels = [
            ("local_address", b.local_address.as_str()),
            ("local_mark", b.local_mark.as_str()),
            ("local_port", lport.as_str()),
            ("proto", b.proto.as_str()),
            ("remote_address", b.remote_address.as_str()),
            ("remote_port", rport.as_str()),
        ];
        active.push(&labels, a as f64);
        inactive.push(&labels, i as f64);
        weight.push(&labels, w as f64);
    }
    for mut f in [active, inactive, weight] {
        sort_samples(&mut f);
        out.push(f);
    }
    out
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Ipvs)
}

pub struct Ipvs;

impl Collector for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let stats = read_parsed(&paths.proc("net/ip_vs_stats"), parse_stats)
            .map_err(CollectError::absent_is_no_data)?;
        // Partial output as node_exporter's: the totals are sent before the backends are read.
        let backends = read_parsed(&paths.proc("net/ip_vs"), parse_backends).map_err(|e| {
            let mut totals = families(&stats, &[]);
            totals.retain(|f| !f.samples.is_empty());
            CollectError::partial(totals, e)
        })?;
        Ok(families(&stats, &backends))
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
        let o = crate::collector::run(&Ipvs, &paths);
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
        let fams = Ipvs
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
        assert!(Ipvs
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .is_err());
    }

    #[test]
    fn live() {
        let loaded = Path::new("/proc/net/ip_vs_stats").exists();
        assert_eq!(Ipvs.collect(&Paths::default()).is_ok(), loaded);
    }
}
