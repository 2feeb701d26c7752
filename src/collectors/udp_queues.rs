//! `udp_queues` collector: bytes queued in UDP sockets, summed from the `tx_queue:rx_queue`
//! column of `/proc/net/udp` and `/proc/net/udp6`, as node_exporter 1.5's
//! `udp_queues_linux.go`: `node_udp_queues{ip="v4"|"v6",queue="rx"|"tx"}`.
//!
//! A missing `/proc/net/udp` fails the collector (node_exporter's `ErrNoIpv4`, `success 0`).
//! A missing `/proc/net/udp6` (IPv6 disabled) leaves the `v4` samples: node_exporter exports
//! those too but then reports `success 0` (`ErrNoIpv6`); this collector reports success, since
//! the framework has no "samples and failure" outcome. A line with fewer than 10 columns or a
//! bad queue value fails the collector.

use super::{fsio, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// Summed queue lengths of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queues {
    pub tx: u64,
    pub rx: u64,
}

/// Parses `/proc/net/udp{,6}` (header line first) and sums the queues.
pub fn parse_udp(text: &str) -> Result<Queues, String> {
    let mut q = Queues::default();
    for line in text.lines().skip(1) {
        let mut fields = line.split_ascii_whitespace();
        let queues = fields.nth(4);
        let rest = fields.count();
        let Some(queues) = queues.filter(|_| rest >= 5) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("fewer than 10 columns in line {line:?}"));
        };
        let (tx, rx) = queues
            .split_once(':')
            .ok_or_else(|| format!("bad queue column {queues:?}"))?;
        let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| format!("bad queue {s:?}"));
        q.tx = q.tx.wrapping_add(hex(tx)?);
        q.rx = q.rx.wrapping_add(hex(rx)?);
    }
    Ok(q)
}

pub fn families(v4: Queues, v6: Option<Queues>) -> Vec<MetricFamily> {
    let mut fam = MetricFamily::gauge(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
    );
    // Label names sorted (ip, queue) and samples sorted by value, as node_exporter prints.
    for (ip, q) in [("v4", Some(v4)), ("v6", v6)] {
        let Some(q) = q else { continue };
        fam.push(&[("ip", ip), ("queue", "rx")], q.rx as f64);
        fam.push(&[("ip", ip), ("queue", "tx")], q.tx as f64);
    }
    vec![fam]
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(UdpQueues)
}

pub struct UdpQueues;

/// The longest line of `/proc/net/udp` and `udp6`, with room to spare: IPv4 lines are padded
/// to 127 characters and a newline (kernel `udp4_seq_show`), IPv6 ones are about 170
/// (`__ip6_dgram_sock_seq_show`). With it, a table that fits in a page is read once: each
/// read of these files walks the whole UDP hash table ([`fsio::Records`]).
const MAX_RECORD: usize = 512;

impl Collector for UdpQueues {
    fn name(&self) -> &'static str {
        "udp_queues"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let p4 = paths.proc("net/udp");
        let text = fsio::read_records_to_string(&p4, MAX_RECORD)
            .map_err(|e| CollectError::io(&p4, e).absent_is_no_data())?;
        let v4 = parse_udp(&text).map_err(|m| CollectError::parse(&p4, m))?;
        let p6 = paths.proc("net/udp6");
        let v6 = match fsio::read_records_to_string(&p6, MAX_RECORD) {
            Ok(t) => Some(parse_udp(&t).map_err(|m| CollectError::parse(&p6, m))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // Partial output as node_exporter's: v4 is sent before v6 is read.
            Err(e) => {
                return Err(CollectError::partial(
                    families(v4, None),
                    CollectError::io(&p6, e),
                ))
            }
        };
        Ok(families(v4, v6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_output_keeps_what_was_read_before_the_error() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("net/udp6")).expect("mkdir");
        std::fs::write(
            dir.path().join("net/udp"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n",
        )
        .expect("write");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let o = crate::collector::run(&UdpQueues, &paths);
        assert!(o.error.is_some(), "the collector fails");
        assert_eq!(o.families.len(), 1);
        assert!(o.families[0]
            .samples
            .iter()
            .all(|s| s.labels.iter().any(|(_, v)| v == "v4")));
    }
    use crate::collectors::testutil::lines::{parse, render};
    use crate::collectors::testutil::procfs;

    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/udp");

    #[test]
    fn debian12_matches_node_exporter() {
        let fams = UdpQueues
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        let expected = "# HELP node_udp_queues Number of allocated memory in the kernel for UDP datagrams in bytes.
# TYPE node_udp_queues gauge
node_udp_queues{ip=\"v4\",queue=\"rx\"} 0
node_udp_queues{ip=\"v4\",queue=\"tx\"} 0
node_udp_queues{ip=\"v6\",queue=\"rx\"} 0
node_udp_queues{ip=\"v6\",queue=\"tx\"} 0
";
        assert_eq!(render(&fams), parse(expected));
    }

    #[test]
    fn node_exporter_fixture() {
        assert_eq!(parse_udp(NODE_EXPORTER), Ok(Queues { tx: 0x15, rx: 0 }));
        let two = format!(
            "{NODE_EXPORTER}{}",
            NODE_EXPORTER.lines().nth(1).unwrap_or("")
        );
        assert_eq!(parse_udp(&two), Ok(Queues { tx: 42, rx: 0 }));
    }

    #[test]
    fn garbled() {
        let hdr = "sl local rem st q\n";
        assert!(parse_udp(&format!("{hdr}0: a b 07 00000001\n")).is_err());
        assert!(parse_udp(&format!("{hdr}0: a b 07 0000000x:0 0 0 0 0 0\n")).is_err());
        assert!(parse_udp(&format!("{hdr}0: a b 07 00000001 0 0 0 0 0\n")).is_err());
        assert_eq!(
            parse_udp(&format!("{hdr}0: a b 07 00000001:00000002 0 0 0 0 0\n")),
            Ok(Queues { tx: 1, rx: 2 })
        );
    }

    #[test]
    fn without_ipv6_and_without_ipv4() {
        let fams = UdpQueues
            .collect(&procfs("net", "node_exporter-fixture/proc"))
            .expect("v4 only");
        assert_eq!(fams[0].samples.len(), 2);
        assert_eq!(fams[0].samples[1].value, 21.0);
        assert!(UdpQueues.collect(&procfs("net", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        let fams = UdpQueues.collect(&Paths::default()).expect("reads");
        assert_eq!(fams[0].samples.len(), 4);
    }
}
