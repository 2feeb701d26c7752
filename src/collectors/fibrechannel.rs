//! `fibrechannel` collector: Fibre Channel HBAs from `/sys/class/fc_host/<host>`, as
//! node_exporter 1.5's `fibrechannel_linux.go` over prometheus/procfs' `FibreChannelClass`:
//! `node_fibrechannel_info{dev_loss_tmo,fabric_name,fc_host,port_id,port_name,port_state,
//! port_type,speed,supported_classes,supported_speeds,symbolic_name} 1` and 14 counters from
//! `statistics/` (hexadecimal values), labelled `fc_host`. A counter reading
//! `0xffffffffffffffff` is not implemented by the HBA and is not exported; a counter file that
//! is absent counts 0 (procfs 0.8's zero value, which node_exporter 1.5 exports).
//!
//! `port_id`, `port_name` and `fabric_name` lose their `0x` prefix, as in procfs. An absent
//! attribute file gives an empty label (procfs 0.8 failed the whole collector there; later
//! versions, whose fixture has such a host, read it as empty). Without Fibre Channel
//! `/sys/class/fc_host` is absent: node_exporter returns `ErrNoData` (`success 0`), and so does
//! this collector (an error).

use std::path::Path;

use super::{sorted_names, CollectError, Collector, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

/// The info attributes, in label (alphabetical) order, `fc_host` excepted.
const ATTRS: [&str; 10] = [
    "dev_loss_tmo",
    "fabric_name",
    "port_id",
    "port_name",
    "port_state",
    "port_type",
    "speed",
    "supported_classes",
    "supported_speeds",
    "symbolic_name",
];

/// Statistics file, metric suffix, HELP.
const COUNTERS: [(&str, &str, &str); 14] = [
    (
        "dumped_frames",
        "dumped_frames_total",
        "Number of dumped frames",
    ),
    (
        "error_frames",
        "error_frames_total",
        "Number of errors in frames",
    ),
    (
        "invalid_crc_count",
        "invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    ("rx_frames", "rx_frames_total", "Number of frames received"),
    (
        "rx_words",
        "rx_words_total",
        "Number of words received by host port",
    ),
    (
        "tx_frames",
        "tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "tx_words_total",
        "Number of words transmitted by host port",
    ),
    (
        "seconds_since_last_reset",
        "seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "invalid_tx_word_count",
        "invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_sync_count",
        "loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "loss_of_signal_count",
        "loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "nos_count",
        "nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "fcp_packet_aborts",
        "fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
];

/// One host: name, attributes (as [`ATTRS`]) and counters (as [`COUNTERS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub attrs: [String; 10],
    pub counters: [u64; 14],
}

/// A sysfs number as Go's `ParseUint(s, 0, 64)`: `0x` hex, `0o`/leading-`0` octal, decimal.
pub fn parse_uint0(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        u64::from_str_radix(o, 8).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(s.get(1..)?, 8).ok()
    } else {
        s.parse().ok()
    }
}

fn read_host(dir: &Path, name: &str) -> Result<Host, CollectError> {
    let mut attrs: [String; 10] = Default::default();
    for (slot, f) in attrs.iter_mut().zip(ATTRS) {
        let p = dir.join(f);
        let v = match super::fsio::read_to_string(&p) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(CollectError::io(&p, e)),
        };
        let v = v.trim();
        let v = match f {
            // node_exporter drops the first two bytes (`0x`); a value whose second byte is
            // inside a multi-byte character stays whole (issue 11: this slice panicked).
            "port_id" | "port_name" | "fabric_name" if v.len() > 2 => v.get(2..).unwrap_or(v),
            _ => v,
        };
        *slot = v.to_string();
    }
    let stats = dir.join("statistics");
    // procfs lists the directory: a host without one fails.
    let _listed = crate::collector::read_dir(&stats).map_err(|e| CollectError::io(&stats, e))?;
    let mut counters = [0u64; 14];
    for (slot, (file, _, _)) in counters.iter_mut().zip(COUNTERS.iter()) {
        let p = stats.join(file);
        let v = match super::fsio::read_to_string(&p) {
            Ok(v) => v,
            // Absent, or write-only as `reset_statistics` (EINVAL/EOPNOTSUPP on read).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::InvalidInput
                        | std::io::ErrorKind::Unsupported
                ) =>
            {
                continue
            }
            Err(e) => return Err(CollectError::io(&p, e)),
        };
        *slot = parse_uint0(&v)
            .ok_or_else(|| CollectError::parse(&p, format!("bad counter {:?}", v.trim())))?;
    }
    Ok(Host {
        name: name.to_string(),
        attrs,
        counters,
    })
}

/// Reads every host under `class` (`<sysfs>/class/fc_host`), sorted by name.
pub fn read_hosts(class: &Path) -> Result<Vec<Host>, CollectError> {
    sorted_names(class)?
        .iter()
        .map(|n| read_host(&class.join(n), n))
        .collect()
}

pub fn families(hosts: &[Host]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "node_fibrechannel_info",
        "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
    );
    let mut counters: Vec<MetricFamily> = COUNTERS
        .iter()
        .map(|(_, m, h)| MetricFamily::counter(format!("node_fibrechannel_{m}"), *h))
        .collect();
    for h in hosts {
        let a = &h.attrs;
        info.push(
            &[
                ("dev_loss_tmo", &a[0]),
                ("fabric_name", &a[1]),
                ("fc_host", &h.name),
                ("port_id", &a[2]),
                ("port_name", &a[3]),
                ("port_state", &a[4]),
                ("port_type", &a[5]),
                ("speed", &a[6]),
                ("supported_classes", &a[7]),
                ("supported_speeds", &a[8]),
                ("symbolic_name", &a[9]),
            ],
            1.0,
        );
        for (fam, v) in counters.iter_mut().zip(h.counters) {
            if v != u64::MAX {
                fam.push(&[("fc_host", &h.name)], v as f64);
            }
        }
    }
    let mut out = vec![info];
    out.append(&mut counters);
    nonempty_sorted(out)
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(FibreChannel)
}

pub struct FibreChannel;

impl Collector for FibreChannel {
    fn name(&self) -> &'static str {
        "fibrechannel"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(families(
            &read_hosts(&paths.sys("class/fc_host")).map_err(CollectError::absent_is_no_data)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::sysfs;

    fn sample(fams: &[MetricFamily], name: &str, host: &str) -> Option<f64> {
        fams.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "fc_host" && v == host))
            .map(|s| s.value)
    }

    #[test]
    fn node_exporter_fixture() {
        let fams = FibreChannel
            .collect(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("collects");
        let info = fams
            .iter()
            .find(|f| f.name == "node_fibrechannel_info")
            .expect("info");
        // Sorted by label values, `dev_loss_tmo` first: host1's empty one sorts first.
        let host0: Vec<String> = info.samples[1]
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            host0,
            [
                "dev_loss_tmo=30",
                "fabric_name=0",
                "fc_host=host0",
                "port_id=000002",
                "port_name=1000e0071bce95f2",
                "port_state=Online",
                "port_type=Point-To-Point (direct nport connection)",
                "speed=16 Gbit",
                "supported_classes=Class 3",
                "supported_speeds=4 Gbit, 8 Gbit, 16 Gbit",
                "symbolic_name=Emulex SN1100E2P FV12.4.270.3 DV12.4.0.0. HN:gotest. OS:Linux",
            ]
        );
        assert_eq!(info.samples[0].labels[7].1, "8 Gbit");
        assert_eq!(info.samples[0].labels[0].1, "");
        let s = |n: &str, h: &str| sample(&fams, &format!("node_fibrechannel_{n}"), h);
        // Unimplemented counters (all ones) are left out.
        assert_eq!(s("dumped_frames_total", "host0"), None);
        assert_eq!(s("dumped_frames_total", "host1"), Some(0.0));
        assert_eq!(s("fcp_packet_aborts_total", "host0"), Some(19.0));
        assert_eq!(s("fcp_packet_aborts_total", "host1"), None);
        assert_eq!(s("loss_of_signal_total", "host1"), Some(272.0));
        assert_eq!(s("nos_total", "host0"), Some(18.0));
        assert_eq!(s("invalid_tx_words_total", "host1"), Some(128.0));
        assert_eq!(s("seconds_since_last_reset_total", "host0"), Some(7.0));
        assert_eq!(s("rx_words_total", "host1"), Some(64.0));
        let c = fams
            .iter()
            .find(|f| f.name == "node_fibrechannel_rx_frames_total")
            .expect("rx_frames");
        assert_eq!(c.help, "Number of frames received");
        assert_eq!(c.kind, crate::exposition::MetricType::Counter);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_uint0("0x13\n"), Some(19));
        assert_eq!(parse_uint0("0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_uint0("30"), Some(30));
        assert_eq!(parse_uint0("010"), Some(8));
        assert_eq!(parse_uint0("0"), Some(0));
        assert_eq!(parse_uint0("N/A"), None);
    }

    /// Issue 11: the agent aborted on `&v[2..]` of a `port_id` whose second byte is inside a
    /// multi-byte character; such a value is now kept whole.
    #[test]
    fn multi_byte_port_id_is_kept_whole() {
        let tmp = tempfile::tempdir().expect("tmp");
        let host = tmp.path().join("class/fc_host/host0");
        std::fs::create_dir_all(host.join("statistics")).expect("mkdir");
        std::fs::write(host.join("port_id"), "\u{202e}x0\n").expect("write");
        std::fs::write(host.join("port_name"), "é00aa\n").expect("write");
        std::fs::write(host.join("fabric_name"), "0x10\n").expect("write");
        let hosts = read_hosts(&tmp.path().join("class/fc_host")).expect("reads");
        let attrs = &hosts[0].attrs;
        // 0x10 loses its prefix; é (two bytes) is cut whole; the 3-byte U+202E cannot be.
        for v in ["10", "00aa", "\u{202e}x0"] {
            assert!(attrs.iter().any(|a| a == v), "{v:?} in {attrs:?}");
        }
        assert_eq!(parse_uint0("0é"), None);
    }

    #[test]
    fn absent() {
        assert!(FibreChannel
            .collect(&sysfs("net", "debian12-vm-6.18/sys"))
            .is_err());
    }

    #[test]
    fn live() {
        let present = Path::new("/sys/class/fc_host").exists();
        assert_eq!(FibreChannel.collect(&Paths::default()).is_ok(), present);
    }
}
