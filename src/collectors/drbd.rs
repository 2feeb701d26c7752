//! `drbd` collector: node_exporter 1.12's `drbd_linux.go` (off by default, as in 1.12), reading
//! `/proc/drbd` (DRBD 8.x) word by word. A word `<N>:` starts device `drbd<N>`; then, per
//! device (`{device}`):
//!
//! - `ns`, `nr`, `dw`, `dr`, `al`, `bm`, `lo`, `pe`, `ua`, `ap`, `ep`, `oos` as
//!   `node_drbd_network_sent_bytes_total`, `_network_received_bytes_total`,
//!   `_disk_written_bytes_total`, `_disk_read_bytes_total`, `_activitylog_writes_total`,
//!   `_bitmap_writes_total`, `_local_pending`, `_remote_pending`, `_remote_unacknowledged`,
//!   `_application_pending`, `_epochs`, `_out_of_sync_bytes` (KiB values times 1024 where
//!   node_exporter does so: `ns`, `dw`, `dr`, `oos`; `nr` is taken as bytes, as there);
//! - `ro` and `ds` (`local/remote`) as `node_drbd_node_role_is_primary{node}` and
//!   `node_drbd_disk_state_is_up_to_date{node}` (`node="local"` and `"remote"`, 1 when
//!   `Primary` / `UpToDate`);
//! - `cs` as `node_drbd_connected` (1 when `Connected`).
//!
//! Words that are not `key:value` (exactly one colon) or keys it does not know are skipped. A
//! missing file is no data (node_exporter's `ErrNoData`). Partial output, as node_exporter,
//! which sends each value as it reads it: a value that is not a number fails the collector
//! and keeps the samples read before it.
//!
//! Deviation: `ro` or `ds` without a `/` fails the collector here (keeping what came before);
//! node_exporter 1.12 indexes past the end and panics.

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily, MetricType};

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Drbd)
}

/// `/proc/drbd` key, node_exporter's name (without `node_drbd_`), HELP, type and multiplier.
const NUMERICAL: [(&str, &str, &str, MetricType, f64); 12] = [
    ("ns", "network_sent_bytes_total", "Total number of bytes sent via the network.", MetricType::Counter, 1024.0),
    ("nr", "network_received_bytes_total", "Total number of bytes received via the network.", MetricType::Counter, 1.0),
    ("dw", "disk_written_bytes_total", "Net data written on local hard disk; in bytes.", MetricType::Counter, 1024.0),
    ("dr", "disk_read_bytes_total", "Net data read from local hard disk; in bytes.", MetricType::Counter, 1024.0),
    ("al", "activitylog_writes_total", "Number of updates of the activity log area of the meta data.", MetricType::Counter, 1.0),
    ("bm", "bitmap_writes_total", "Number of updates of the bitmap area of the meta data.", MetricType::Counter, 1.0),
    ("lo", "local_pending", "Number of open requests to the local I/O sub-system.", MetricType::Gauge, 1.0),
    ("pe", "remote_pending", "Number of requests sent to the peer, but that have not yet been answered by the latter.", MetricType::Gauge, 1.0),
    ("ua", "remote_unacknowledged", "Number of requests received by the peer via the network connection, but that have not yet been answered.", MetricType::Gauge, 1.0),
    ("ap", "application_pending", "Number of block I/O requests forwarded to DRBD, but not yet answered by DRBD.", MetricType::Gauge, 1.0),
    ("ep", "epochs", "Number of Epochs currently on the fly.", MetricType::Gauge, 1.0),
    ("oos", "out_of_sync_bytes", "Amount of data known to be out of sync; in bytes.", MetricType::Gauge, 1024.0),
];

/// `/proc/drbd` key, node_exporter's name, HELP and the value that counts as 1.
const STRING_PAIR: [(&str, &str, &str, &str); 2] = [
    (
        "ro",
        "node_role_is_primary",
        "Whether the role of the node is in the primary state.",
        "Primary",
    ),
    (
        "ds",
        "disk_state_is_up_to_date",
        "Whether the disk of the node is up to date.",
        "UpToDate",
    ),
];

/// The families for `/proc/drbd`'s text; on a bad value, the error and the families of what
/// came before it.
pub fn parse_drbd(text: &str) -> Result<Vec<MetricFamily>, (Vec<MetricFamily>, String)> {
    let mut numerical: Vec<MetricFamily> = NUMERICAL
        .iter()
        .map(|(_, name, help, kind, _)| {
            MetricFamily::new(format!("node_drbd_{name}"), *help, *kind)
        })
        .collect();
    let mut pairs: Vec<MetricFamily> = STRING_PAIR
        .iter()
        .map(|(_, name, help, _)| MetricFamily::gauge(format!("node_drbd_{name}"), *help))
        .collect();
    let mut connected = MetricFamily::gauge(
        "node_drbd_connected",
        "Whether DRBD is connected to the peer.",
    );
    let mut device = "unknown".to_string();
    let mut error = None;
    for word in text.split_whitespace() {
        let mut parts = word.split(':');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // Go's strconv.ParseUint: decimal digits only, within u64.
        if value.is_empty() && !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = key.parse::<u64>() {
                device = format!("drbd{id}");
                continue;
            }
        }
        if let Some(i) = NUMERICAL.iter().position(|n| n.0 == key) {
            let (Some(fam), Some(n)) = (numerical.get_mut(i), NUMERICAL.get(i)) else {
                continue;
            };
            match value.parse::<f64>() {
                Ok(v) => fam.push(&[("device", &device)], v * n.4),
                Err(_) => {
                    error = Some(format!("invalid value in {word:?}"));
                    break;
                }
            }
            continue;
        }
        if let Some(i) = STRING_PAIR.iter().position(|p| p.0 == key) {
            let (Some(fam), Some(p)) = (pairs.get_mut(i), STRING_PAIR.get(i)) else {
                continue;
            };
            let mut v = value.split('/');
            let (Some(local), Some(remote)) = (v.next(), v.next()) else {
                error = Some(format!("no local/remote pair in {word:?}"));
                break;
            };
            let ok = |s: &str| if s == p.3 { 1.0 } else { 0.0 };
            fam.push(&[("device", &device), ("node", "local")], ok(local));
            fam.push(&[("device", &device), ("node", "remote")], ok(remote));
            continue;
        }
        if key == "cs" {
            let v = if value == "Connected" { 1.0 } else { 0.0 };
            connected.push(&[("device", &device)], v);
        }
    }
    let mut fams = numerical;
    fams.append(&mut pairs);
    fams.push(connected);
    let fams = nonempty_sorted(fams);
    match error {
        None => Ok(fams),
        Some(e) => Err((fams, e)),
    }
}

pub struct Drbd;

impl Collector for Drbd {
    fn name(&self) -> &'static str {
        "drbd"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("drbd");
        let text = read_to_string(&path).map_err(CollectError::absent_is_no_data)?;
        parse_drbd(&text)
            .map_err(|(fams, msg)| CollectError::partial(fams, CollectError::parse(&path, msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{expected_1_12, lines, procfs, procfs_at};

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = Drbd
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        let want = expected_1_12("node_drbd_");
        assert_eq!(want.len(), 2 * 15 + 12 + 2 * 2 + 1);
        assert_eq!(lines::render(&lines::sorted(fams)), want);
    }

    #[test]
    fn devices_and_unknown() {
        let fams =
            parse_drbd("ns:1 0: cs:WFConnection ro:Secondary/Unknown 12: nr:3\n").expect("parses");
        let text = lines::render(&lines::sorted(fams));
        let want = lines::parse(
            "# HELP node_drbd_connected Whether DRBD is connected to the peer.
# TYPE node_drbd_connected gauge
node_drbd_connected{device=\"drbd0\"} 0
# HELP node_drbd_network_received_bytes_total Total number of bytes received via the network.
# TYPE node_drbd_network_received_bytes_total counter
node_drbd_network_received_bytes_total{device=\"drbd12\"} 3
# HELP node_drbd_network_sent_bytes_total Total number of bytes sent via the network.
# TYPE node_drbd_network_sent_bytes_total counter
node_drbd_network_sent_bytes_total{device=\"unknown\"} 1024
# HELP node_drbd_node_role_is_primary Whether the role of the node is in the primary state.
# TYPE node_drbd_node_role_is_primary gauge
node_drbd_node_role_is_primary{device=\"drbd0\",node=\"local\"} 0
node_drbd_node_role_is_primary{device=\"drbd0\",node=\"remote\"} 0
",
        );
        assert_eq!(text, want);
    }

    #[test]
    fn a_bad_value_keeps_what_came_before() {
        let (fams, e) = parse_drbd("1: ns:5 dw:x dr:7\n").expect_err("bad value");
        assert!(e.contains("dw:x"), "{e}");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].samples[0].value, 5120.0);
        assert!(parse_drbd("1: ro:Primary\n").is_err(), "no remote half");
        assert!(parse_drbd("+1: ns:1 a:b:c x").is_ok());
    }

    #[test]
    fn absent_is_no_data_partial_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Drbd.collect(&procfs_at(dir.path())).expect_err("absent");
        assert!(e.is_no_data(), "{e}");
        std::fs::write(dir.path().join("drbd"), "1: ns:5 dw:x\n").expect("write");
        match Drbd.collect(&procfs_at(dir.path())) {
            Err(CollectError::Partial { families, .. }) => assert_eq!(families.len(), 1),
            other => panic!("expected a partial result, got {other:?}"),
        }
    }
}
