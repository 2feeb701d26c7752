//! `netstat` collector: protocol counters from `/proc/net/netstat`, `/proc/net/snmp` and
//! `/proc/net/snmp6`, as node_exporter 1.5's `netstat_linux.go`: one untyped family per field
//! `node_netstat_<Protocol>_<Field>` (HELP `Statistic <Protocol><Field>.`), limited to the
//! fields matching `--collector.netstat.fields` (default node_exporter 1.12's pattern,
//! [`DEFAULT_FIELDS`], which adds `TcpExt_TCPOFOQueue` and `TcpExt_TCPRcvQDrop` to 1.5's;
//! compiled once when the collector is built).
//!
//! `/proc/net/netstat` and `/proc/net/snmp` are required (a missing one fails the collector);
//! `/proc/net/snmp6` is absent on hosts without IPv6 and then skipped. A value that is not a
//! number fails the collector, whatever its field, as in node_exporter.

use super::options::{collector_options, Pattern};
use super::{concat, is_f64, lines, parse_f64, split_byte, two_words, MemoRegex, NameCache};
use crate::collector::FamilyNames;

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// node_exporter 1.12's default `--collector.netstat.fields` (1.5's plus `TcpExt_TCPOFOQueue`
/// and `TcpExt_TCPRcvQDrop`).
pub const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// One field: protocol (`TcpExt`, `Ip6`), field name (`ListenDrops`) and value, checked to be
/// a number but converted only when the field is exported (most are not).
#[derive(Debug, Clone, PartialEq)]
pub struct Stat<'a> {
    pub protocol: &'a str,
    pub name: &'a str,
    pub value: &'a str,
}

impl Stat<'_> {
    /// The value (checked by the parser, so never the NaN fallback).
    pub fn value(&self) -> f64 {
        parse_f64(self.value).unwrap_or(f64::NAN)
    }
}

/// Parses the two-line-per-protocol format of `/proc/net/netstat` and `/proc/net/snmp`
/// (`Proto: Name1 Name2` then `Proto: v1 v2`), fields separated by single spaces.
pub fn parse_netstat(text: &str) -> Result<Vec<Stat<'_>>, String> {
    let mut out = Vec::with_capacity(256);
    let mut lines = lines(text);
    while let Some(names) = lines.next() {
        let values = lines.next().unwrap_or("");
        let mut np = split_byte(names, b' ');
        let mut vp = split_byte(values, b' ');
        let (proto, vproto) = (np.next().unwrap_or(""), vp.next().unwrap_or(""));
        let protocol = proto
            .strip_suffix(':')
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("bad protocol in line {names:?}"))?;
        if vproto != proto {
            return Err(format!(
                "values line {values:?} does not follow {protocol}'s names"
            ));
        }
        loop {
            match (np.next(), vp.next()) {
                (Some(name), Some(value)) => {
                    if !is_f64(value) {
                        return Err(format!("invalid value {value:?} for {protocol} {name}"));
                    }
                    out.push(Stat {
                        protocol,
                        name,
                        value,
                    });
                }
                (None, None) => break,
                _ => return Err(format!("field count mismatch for {protocol}")),
            }
        }
    }
    Ok(out)
}

/// Parses `/proc/net/snmp6`: `Ip6InReceives   178` lines; the protocol ends at the first
/// `6`. Lines with fewer than two fields or no `6` in the name are skipped.
pub fn parse_snmp6(text: &str) -> Result<Vec<Stat<'_>>, String> {
    let mut out = Vec::with_capacity(128);
    for line in lines(text) {
        let (Some(key), Some(value)) = two_words(line) else {
            continue;
        };
        let Some((protocol, name)) =
            memchr::memchr(b'6', key.as_bytes()).and_then(|six| key.split_at_checked(six + 1))
        else {
            continue;
        };
        if !is_f64(value) {
            return Err(format!("invalid value {value:?} for {key}"));
        }
        out.push(Stat {
            protocol,
            name,
            value,
        });
    }
    Ok(out)
}

/// Names and HELP texts by `<protocol> <name>` (a space is in neither).
static NAMES: NameCache = NameCache::new();

/// The families for the fields matching `pattern`, one per `<protocol>_<name>` (the last
/// occurrence wins, as node_exporter's maps do). `stats` in file order (the pattern's memo
/// answers by position).
pub fn families(stats: &[Stat<'_>], pattern: &MemoRegex) -> Vec<MetricFamily> {
    let mut picked: Vec<(FamilyNames, &Stat<'_>)> = Vec::with_capacity(64);
    let mut key = String::with_capacity(64);
    let mut scan = pattern.scan();
    for s in stats {
        if scan.is_match_joined(s.protocol, s.name, &mut key) {
            key.clear();
            key.push_str(s.protocol);
            key.push(' ');
            key.push_str(s.name);
            let names = NAMES.get(&key, |_| {
                (
                    concat(&["node_netstat_", s.protocol, "_", s.name]),
                    concat(&["Statistic ", s.protocol, s.name, "."]),
                )
            });
            picked.push((names, s));
        }
    }
    drop(scan);
    picked.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
    let mut out: Vec<MetricFamily> = Vec::with_capacity(picked.len());
    for ((name, help), s) in picked {
        if let Some(last) = out.last_mut() {
            if last.name == name {
                if let Some(sample) = last.samples.first_mut() {
                    sample.value = s.value();
                }
                continue;
            }
        }
        out.push(MetricFamily::untyped(name, help).with(&[], s.value()));
    }
    out
}

collector_options! {
    /// Options of the netstat collector (`[collector.netstat]` in the file).
    pub struct NetstatOptions {
        /// Regexp of fields to return for netstat collector [default: node_exporter 1.12's].
        #[arg(id = "collector.netstat.fields", long = "collector.netstat.fields", value_name = "REGEX")]
        pub fields: Option<Pattern>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(NetStat {
        fields: MemoRegex::from_option(&opts.netstat.fields, DEFAULT_FIELDS),
    })
}

pub struct NetStat {
    fields: MemoRegex,
}

impl Collector for NetStat {
    fn name(&self) -> &'static str {
        "netstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let netstat_path = paths.proc("net/netstat");
        let netstat = read_to_string(&netstat_path)?;
        let snmp_path = paths.proc("net/snmp");
        let snmp = read_to_string(&snmp_path)?;
        let snmp6_path = paths.proc("net/snmp6");
        let snmp6 = match super::fsio::read_to_string(&snmp6_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(CollectError::io(&snmp6_path, e)),
        };
        let mut stats =
            parse_netstat(&netstat).map_err(|m| CollectError::parse(&netstat_path, m))?;
        stats.extend(parse_netstat(&snmp).map_err(|m| CollectError::parse(&snmp_path, m))?);
        stats.extend(parse_snmp6(&snmp6).map_err(|m| CollectError::parse(&snmp6_path, m))?);
        Ok(families(&stats, &self.fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::first_value as value;
    use crate::collectors::testutil::{procfs, procfs_at};
    use crate::exposition::MetricType;

    const NETSTAT: &str =
        include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/netstat");
    const SNMP: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/snmp");
    const SNMP6: &str = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/snmp6");
    const NE_NETSTAT: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/netstat");
    const NE_SNMP: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/snmp");
    const NE_SNMP6: &str =
        include_str!("../../tests/fixtures/net/node_exporter-fixture/proc/net/snmp6");

    fn pattern() -> MemoRegex {
        MemoRegex::new(DEFAULT_FIELDS).expect("pattern")
    }

    fn all(netstat: &str, snmp: &str, snmp6: &str) -> Vec<MetricFamily> {
        let mut s = parse_netstat(netstat).expect("netstat");
        s.extend(parse_netstat(snmp).expect("snmp"));
        s.extend(parse_snmp6(snmp6).expect("snmp6"));
        families(&s, &pattern())
    }

    /// The family names node_exporter 1.5 printed on this host (same kernel, same files).
    const DEBIAN12_NAMES: [&str; 42] = [
        "node_netstat_Icmp6_InErrors",
        "node_netstat_Icmp6_InMsgs",
        "node_netstat_Icmp6_OutMsgs",
        "node_netstat_Icmp_InErrors",
        "node_netstat_Icmp_InMsgs",
        "node_netstat_Icmp_OutMsgs",
        "node_netstat_Ip6_InOctets",
        "node_netstat_Ip6_OutOctets",
        "node_netstat_IpExt_InOctets",
        "node_netstat_IpExt_OutOctets",
        "node_netstat_Ip_Forwarding",
        "node_netstat_TcpExt_ListenDrops",
        "node_netstat_TcpExt_ListenOverflows",
        "node_netstat_TcpExt_SyncookiesFailed",
        "node_netstat_TcpExt_SyncookiesRecv",
        "node_netstat_TcpExt_SyncookiesSent",
        "node_netstat_TcpExt_TCPOFOQueue",
        "node_netstat_TcpExt_TCPRcvQDrop",
        "node_netstat_TcpExt_TCPSynRetrans",
        "node_netstat_TcpExt_TCPTimeouts",
        "node_netstat_Tcp_ActiveOpens",
        "node_netstat_Tcp_CurrEstab",
        "node_netstat_Tcp_InErrs",
        "node_netstat_Tcp_InSegs",
        "node_netstat_Tcp_OutRsts",
        "node_netstat_Tcp_OutSegs",
        "node_netstat_Tcp_PassiveOpens",
        "node_netstat_Tcp_RetransSegs",
        "node_netstat_Udp6_InDatagrams",
        "node_netstat_Udp6_InErrors",
        "node_netstat_Udp6_NoPorts",
        "node_netstat_Udp6_OutDatagrams",
        "node_netstat_Udp6_RcvbufErrors",
        "node_netstat_Udp6_SndbufErrors",
        "node_netstat_UdpLite6_InErrors",
        "node_netstat_UdpLite_InErrors",
        "node_netstat_Udp_InDatagrams",
        "node_netstat_Udp_InErrors",
        "node_netstat_Udp_NoPorts",
        "node_netstat_Udp_OutDatagrams",
        "node_netstat_Udp_RcvbufErrors",
        "node_netstat_Udp_SndbufErrors",
    ];

    #[test]
    fn debian12() {
        let fams = all(NETSTAT, SNMP, SNMP6);
        let mut names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        let mut expected = DEBIAN12_NAMES.to_vec();
        names.sort();
        expected.sort();
        assert_eq!(names, expected);
        let f = fams
            .iter()
            .find(|f| f.name == "node_netstat_TcpExt_ListenDrops")
            .expect("ListenDrops");
        assert_eq!(f.help, "Statistic TcpExtListenDrops.");
        assert_eq!(f.kind, MetricType::Untyped);
        assert!(f.samples[0].labels.is_empty());
        assert_eq!(
            value(&fams, "node_netstat_IpExt_InOctets"),
            Some(123040270.0)
        );
        assert_eq!(
            value(&fams, "node_netstat_IpExt_OutOctets"),
            Some(7447994.0)
        );
        assert_eq!(value(&fams, "node_netstat_Ip_Forwarding"), Some(2.0));
        assert_eq!(value(&fams, "node_netstat_Icmp6_InErrors"), Some(1.0));
        let ip6 = fams
            .iter()
            .find(|f| f.name == "node_netstat_Ip6_InOctets")
            .expect("Ip6");
        assert_eq!(ip6.help, "Statistic Ip6InOctets.");
    }

    #[test]
    fn debian12_names_help_and_types_match_node_exporter() {
        use crate::collectors::testutil::lines::{parse, render, sorted};
        let headers = |lines: Vec<(String, Option<f64>)>| -> Vec<String> {
            lines
                .into_iter()
                .map(|(l, v)| match v {
                    None => l,
                    Some(_) => format!("sample {l}"),
                })
                .collect()
        };
        // 1.5's output: without the two TcpExt fields 1.12's default pattern adds.
        let ours = headers(render(&sorted(
            all(NETSTAT, SNMP, SNMP6)
                .into_iter()
                .filter(|f| {
                    f.name != "node_netstat_TcpExt_TCPOFOQueue"
                        && f.name != "node_netstat_TcpExt_TCPRcvQDrop"
                })
                .collect(),
        )));
        let theirs = headers(parse(include_str!(
            "../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-netstat.txt"
        )));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn node_exporter_fixture() {
        let fams = all(NE_NETSTAT, NE_SNMP, NE_SNMP6);
        // Values as in the fixture files.
        assert_eq!(
            value(&fams, "node_netstat_TcpExt_SyncookiesSent"),
            Some(0.0)
        );
        assert_eq!(
            value(&fams, "node_netstat_TcpExt_ListenOverflows"),
            Some(0.0)
        );
        assert_eq!(value(&fams, "node_netstat_Tcp_ActiveOpens"), Some(3556.0));
        assert_eq!(value(&fams, "node_netstat_Tcp_InSegs"), Some(5.7252008e+07));
        assert_eq!(
            value(&fams, "node_netstat_IpExt_InOctets"),
            Some(6286396970.0)
        );
        assert_eq!(value(&fams, "node_netstat_Ip6_InOctets"), Some(460.0));
        assert_eq!(value(&fams, "node_netstat_Udp6_InDatagrams"), Some(0.0));
        assert_eq!(value(&fams, "node_netstat_Icmp6_OutMsgs"), Some(8.0));
        assert_eq!(value(&fams, "node_netstat_Udp6_RcvbufErrors"), Some(9.0));
        assert_eq!(value(&fams, "node_netstat_Udp6_SndbufErrors"), Some(8.0));
        // Not in the default field set.
        assert_eq!(value(&fams, "node_netstat_Tcp_RtoMin"), None);
        assert_eq!(value(&fams, "node_netstat_TcpExt_DelayedACKs"), None);
    }

    #[test]
    fn every_field_with_a_catch_all_pattern() {
        let any = MemoRegex::new(".*").expect("regex");
        let mut s = parse_netstat(SNMP).expect("snmp");
        s.extend(parse_snmp6(SNMP6).expect("snmp6"));
        let fams = families(&s, &any);
        assert!(value(&fams, "node_netstat_Icmp6_OutType135").is_some());
        assert!(value(&fams, "node_netstat_UdpLite6_InDatagrams").is_some());
        assert!(value(&fams, "node_netstat_Tcp_RtoAlgorithm").is_some());
        assert_eq!(value(&fams, "node_netstat_Tcp_MaxConn"), Some(-1.0));
    }

    #[test]
    fn garbled() {
        assert!(parse_netstat("Tcp: A B\nTcp: 1\n").is_err());
        assert!(parse_netstat("Tcp: A B\nTcp: 1 x\n").is_err());
        assert!(parse_netstat("Tcp: A\n").is_err());
        assert!(parse_netstat("Tcp: A\nUdp: 1\n").is_err());
        assert!(parse_netstat("\n\n").is_err());
        assert!(parse_snmp6("Ip6InReceives x\n").is_err());
        assert_eq!(parse_netstat(""), Ok(vec![]));
        assert_eq!(parse_snmp6("Foo 1\nBar\n\n"), Ok(vec![]));
    }

    #[test]
    fn fields_option() {
        let mut opts = Options::default();
        opts.netstat.fields = Some("^Tcp_InSegs$".parse().expect("pattern"));
        let fams = collector(&opts)
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        assert_eq!(names, ["node_netstat_Tcp_InSegs"]);
    }

    #[test]
    fn fixture_tree_and_absent_files() {
        let c = collector(&Options::default());
        let fams = c
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_eq!(fams.len(), DEBIAN12_NAMES.len());

        // No IPv6: snmp6 absent is fine.
        let tmp = tempdir("netstat");
        std::fs::create_dir_all(tmp.join("net")).expect("mkdir");
        std::fs::write(tmp.join("net/netstat"), NETSTAT).expect("write");
        std::fs::write(tmp.join("net/snmp"), SNMP).expect("write");
        let paths = procfs_at(&tmp);
        let fams = c.collect(&paths).expect("collects");
        assert_eq!(value(&fams, "node_netstat_Ip6_InOctets"), None);
        assert!(value(&fams, "node_netstat_Tcp_InSegs").is_some());
        // No snmp: failure.
        std::fs::remove_file(tmp.join("net/snmp")).expect("rm");
        assert!(c.collect(&paths).is_err());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ma-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tempdir");
        d
    }

    #[test]
    fn live() {
        let fams = collector(&Options::default())
            .collect(&Paths::default())
            .expect("reads /proc/net");
        assert!(value(&fams, "node_netstat_Tcp_InSegs").is_some());
        assert!(value(&fams, "node_netstat_IpExt_InOctets").is_some());
    }
}
