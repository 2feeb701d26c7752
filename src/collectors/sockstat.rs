//! `sockstat` collector: socket counts from `/proc/net/sockstat` and `/proc/net/sockstat6`, as
//! node_exporter 1.5's `sockstat_linux.go`: `node_sockstat_sockets_used` and one gauge per
//! protocol and key (`node_sockstat_TCP_inuse`, `node_sockstat_FRAG6_memory`, …, HELP
//! `Number of <PROTO> sockets in state <key>.`), plus `<PROTO>_mem_bytes` (`mem` pages times
//! the page size) wherever `mem` is printed.
//!
//! Only the keys node_exporter knows are exported (`inuse`, `orphan`, `tw`, `alloc`, `mem`,
//! `memory`). Either file may be absent (IPv4 or IPv6 disabled): it is then skipped; a
//! malformed line fails the collector.

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// The keys node_exporter exports, in its order.
const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// One protocol line: name and the known keys' values (indexed as [`KEYS`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Protocol {
    pub name: String,
    pub values: [Option<i64>; 6],
}

/// A parsed sockstat file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sockstat {
    /// `sockets: used N` (IPv4 file only).
    pub used: Option<i64>,
    pub protocols: Vec<Protocol>,
}

/// Parses `/proc/net/sockstat{,6}`: `PROTO: key value key value…` lines (single spaces), as
/// prometheus/procfs does: at least one pair per line, values integers.
pub fn parse_sockstat(text: &str) -> Result<Sockstat, String> {
    let mut out = Sockstat::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some((proto, pairs)) = fields
            .split_first()
            .filter(|_| fields.len() >= 3 && fields.len() % 2 == 1)
        else {
            return Err(format!("malformed sockstat line {line:?}"));
        };
        let proto = proto.strip_suffix(':').unwrap_or(proto);
        let mut values = [None; 6];
        let mut used = None;
        for kv in pairs.chunks_exact(2) {
            let &[key, value] = kv else { continue };
            let v: i64 = value
                .parse()
                .map_err(|_| format!("bad value {value:?} in line {line:?}"))?;
            if proto == "sockets" {
                if key == "used" {
                    used = Some(v);
                }
            } else if let Some(slot) = KEYS
                .iter()
                .position(|k| *k == key)
                .and_then(|i| values.get_mut(i))
            {
                *slot = Some(v);
            }
        }
        if proto == "sockets" {
            // procfs reads a missing `used` as 0.
            out.used = Some(used.unwrap_or(0));
        } else {
            out.protocols.push(Protocol {
                name: proto.to_string(),
                values,
            });
        }
    }
    Ok(out)
}

/// The families for the IPv4 and IPv6 files (either may be absent). A family printed twice
/// (never by a real kernel) keeps its last value.
pub fn families(v4: Option<&Sockstat>, v6: Option<&Sockstat>, page_size: i64) -> Vec<MetricFamily> {
    let mut out: Vec<MetricFamily> = Vec::with_capacity(24);
    let mut add = |name: String, help: String, v: i64| {
        if let Some(s) = out
            .iter_mut()
            .find(|f| f.name == name)
            .and_then(|f| f.samples.first_mut())
        {
            s.value = v as f64;
        } else {
            out.push(MetricFamily::gauge(name, help).with(&[], v as f64));
        }
    };
    if let Some(used) = v4.and_then(|s| s.used) {
        add(
            "node_sockstat_sockets_used".into(),
            "Number of IPv4 sockets in use.".into(),
            used,
        );
    }
    for s in [v4, v6].into_iter().flatten() {
        for p in &s.protocols {
            let inuse = Some(p.values[0].unwrap_or(0));
            let mem_bytes = p.values[4].map(|m| m.wrapping_mul(page_size));
            let all = std::iter::once(inuse)
                .chain(p.values[1..].iter().copied())
                .chain(std::iter::once(mem_bytes));
            for (key, v) in KEYS.iter().chain(std::iter::once(&"mem_bytes")).zip(all) {
                let Some(v) = v else { continue };
                add(
                    format!("node_sockstat_{}_{key}", p.name),
                    format!("Number of {} sockets in state {key}.", p.name),
                    v,
                );
            }
        }
    }
    out
}

fn read_optional(path: &std::path::Path) -> Result<Option<Sockstat>, CollectError> {
    match super::fsio::read_to_string(path) {
        Ok(text) => parse_sockstat(&text)
            .map(Some)
            .map_err(|m| CollectError::parse(path, m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    let page_size = match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(v)) if v > 0 => v,
        _ => 4096,
    };
    Box::new(SockStat { page_size })
}

pub struct SockStat {
    page_size: i64,
}

impl Collector for SockStat {
    fn name(&self) -> &'static str {
        "sockstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let v4 = read_optional(&paths.proc("net/sockstat"))?;
        let v6 = read_optional(&paths.proc("net/sockstat6"))?;
        Ok(families(v4.as_ref(), v6.as_ref(), self.page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::first_value as value;
    use crate::collectors::testutil::lines::{parse, render, sorted};
    use crate::collectors::testutil::procfs;

    const V4: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/sockstat");
    const V6: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/sockstat6");
    const RHE4: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/sockstat_rhe4");

    #[test]
    fn debian12() {
        let v4 = parse_sockstat(V4).expect("v4");
        let v6 = parse_sockstat(V6).expect("v6");
        assert_eq!(v4.used, Some(17));
        assert_eq!(
            v4.protocols[0],
            Protocol {
                name: "TCP".into(),
                values: [Some(4), Some(0), Some(560), Some(4), Some(0), None],
            }
        );
        let fams = families(Some(&v4), Some(&v6), 4096);
        assert_eq!(value(&fams, "node_sockstat_sockets_used"), Some(17.0));
        assert_eq!(value(&fams, "node_sockstat_TCP_tw"), Some(560.0));
        assert_eq!(value(&fams, "node_sockstat_TCP6_inuse"), Some(0.0));
        assert_eq!(value(&fams, "node_sockstat_FRAG6_memory"), Some(0.0));
        assert_eq!(value(&fams, "node_sockstat_UDP_mem_bytes"), Some(0.0));
        assert_eq!(value(&fams, "node_sockstat_UDPLITE_mem"), None);
        // The same family set node_exporter 1.5 printed on this host.
        let expected = parse(include_str!(
            "../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-sockstat.txt"
        ));
        let names = |l: Vec<(String, Option<f64>)>| -> Vec<String> {
            l.into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(s, _)| s)
                .collect()
        };
        assert_eq!(names(render(&sorted(fams))), names(expected));
    }

    #[test]
    fn mem_bytes_uses_the_page_size() {
        let v4 = parse_sockstat("TCP: inuse 1 mem 3\n").expect("parses");
        let fams = families(Some(&v4), None, 4096);
        assert_eq!(value(&fams, "node_sockstat_TCP_mem"), Some(3.0));
        assert_eq!(value(&fams, "node_sockstat_TCP_mem_bytes"), Some(12288.0));
        let f = fams
            .iter()
            .find(|f| f.name == "node_sockstat_TCP_mem_bytes")
            .expect("mem_bytes");
        assert_eq!(f.help, "Number of TCP sockets in state mem_bytes.");
        // No `sockets:` line: no sockets_used.
        assert_eq!(value(&fams, "node_sockstat_sockets_used"), None);
    }

    #[test]
    fn node_exporter_rhel4_fixture() {
        // An old kernel without `memory` for FRAG and with the mem column for TCP.
        let s = parse_sockstat(RHE4).expect("parses");
        let fams = families(Some(&s), None, 4096);
        assert_eq!(value(&fams, "node_sockstat_sockets_used"), Some(229.0));
        assert_eq!(value(&fams, "node_sockstat_TCP_inuse"), Some(4.0));
        assert_eq!(value(&fams, "node_sockstat_TCP_mem"), Some(1.0));
        assert_eq!(value(&fams, "node_sockstat_TCP_mem_bytes"), Some(4096.0));
        assert_eq!(value(&fams, "node_sockstat_FRAG_memory"), Some(0.0));
    }

    #[test]
    fn garbled() {
        assert!(parse_sockstat("TCP: inuse\n").is_err());
        assert!(parse_sockstat("TCP: inuse x\n").is_err());
        assert!(parse_sockstat("TCP: inuse 1 tw\n").is_err());
        assert!(parse_sockstat("\n").is_err());
        assert_eq!(parse_sockstat(""), Ok(Sockstat::default()));
    }

    #[test]
    fn absent_files() {
        let c = collector(&Options::default());
        let paths = procfs("net", "nowhere");
        assert_eq!(c.collect(&paths).expect("absent is fine").len(), 0);
        let paths = procfs("net", "debian12-vm-6.18/proc");
        assert_eq!(c.collect(&paths).expect("collects").len(), 20);
    }

    #[test]
    fn live() {
        let fams = collector(&Options::default())
            .collect(&Paths::default())
            .expect("reads");
        assert!(value(&fams, "node_sockstat_sockets_used").is_some());
        assert!(value(&fams, "node_sockstat_TCP_inuse").is_some());
    }
}
