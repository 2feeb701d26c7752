//! `qdisc` collector: queueing discipline statistics of the root qdisc of each network
//! device, as node_exporter 1.12's `qdisc_linux.go` (off by default).
//!
//! - Per root qdisc (parent handle 0), labels `device` and `kind`: `node_qdisc_bytes_total`,
//!   `packets_total`, `drops_total`, `requeues_total`, `overlimits_total` (counters),
//!   `current_queue_length` and `backlog` (gauges).
//! - `--collector.qdisc.device-include` / `--collector.qdisc.device-exclude` (mutually
//!   exclusive; the hidden 1.12 spellings `--collector.qdisk.device-include`/`-exclude` are
//!   accepted as deprecated aliases) filter by device name.
//! - `--collector.qdisc.fixtures=<dir>` (for 1.12's end-to-end test): the
//!   qdiscs are read from `<dir>/results.json`, a JSON array of ema/qdisc's `QdiscInfo`
//!   (`IfaceName`, `Parent`, `Kind`, `Bytes`, `Packets`, `Drops`, `Requeues`, `Overlimits`,
//!   `Qlen`, `Backlog`, ...), decoded as Go's encoding/json does ([`super::gojson`]). Landlock
//!   grants exactly that file (SECURITY.md). Any read or decode error fails the collector.
//! - Without fixtures 1.12 dumps the qdiscs over rtnetlink (`RTM_GETQDISC`). That live mode is
//!   **not built yet** in this agent: the collector fails on every scrape with an error saying
//!   so (it never reports made-up values).

use std::path::PathBuf;

use super::options::{collector_options, Pattern};
use super::{gojson, read_to_string, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

collector_options! {
    /// Options of the qdisc collector (`[collector.qdisc]` in the file).
    pub struct QdiscOptions {
        /// test fixtures to use for qdisc collector end-to-end testing: a directory holding
        /// results.json (granted by Landlock; a change needs a restart). Without it the collector
        /// fails: its live rtnetlink mode is not built yet.
        #[arg(id = "collector.qdisc.fixtures", long = "collector.qdisc.fixtures", value_name = "DIR")]
        pub fixtures: Option<PathBuf>,
        /// Regexp of qdisc devices to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.qdisc.device-include", long = "collector.qdisc.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of qdisc devices to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.qdisc.device-exclude", long = "collector.qdisc.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// DEPRECATED: Use collector.qdisc.device-include.
        #[arg(id = "collector.qdisk.device-include", long = "collector.qdisk.device-include", value_name = "REGEX", hide = true)]
        pub qdisk_device_include: Option<Pattern>,
        /// DEPRECATED: Use collector.qdisc.device-exclude.
        #[arg(id = "collector.qdisk.device-exclude", long = "collector.qdisk.device-exclude", value_name = "REGEX", hide = true)]
        pub qdisk_device_exclude: Option<Pattern>,
    }
    check(o) {
        if o.qdisk_device_include.is_some() && o.device_include.is_some() {
            return Err("--collector.qdisk.device-include and --collector.qdisc.device-include are mutually exclusive".into());
        }
        if o.qdisk_device_exclude.is_some() && o.device_exclude.is_some() {
            return Err("--collector.qdisk.device-exclude and --collector.qdisc.device-exclude are mutually exclusive".into());
        }
        DeviceFilter::exclusive(
            &o.device_include.clone().or(o.qdisk_device_include.clone()),
            &o.device_exclude.clone().or(o.qdisk_device_exclude.clone()),
        )
    }
}

/// One qdisc (the fields of ema/qdisc's `QdiscInfo` node_exporter uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QdiscInfo {
    pub iface_name: String,
    pub parent: u32,
    pub kind: String,
    pub bytes: u64,
    pub packets: u32,
    pub drops: u32,
    pub requeues: u32,
    pub overlimits: u32,
    pub qlen: u32,
    pub backlog: u32,
}

fn u32_field(o: &gojson::Obj<'_>, name: &str) -> Result<u32, String> {
    // `uint` with 32 bits never exceeds u32::MAX.
    o.uint(name, 32)
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Decodes `results.json` as 1.12's `testQdiscGet` (`json.Unmarshal` into
/// `[]qdisc.QdiscInfo`).
pub fn parse_fixture(text: &str) -> Result<Vec<QdiscInfo>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in gojson::array(&v)? {
        let Some(o) = gojson::object(item)? else {
            out.push(QdiscInfo::default());
            continue;
        };
        // Fields 1.12 ignores are still type-checked, as json.Unmarshal does.
        o.uint("Handle", 32)?;
        for f in ["GcFlows", "Throttled", "FlowsPlimit"] {
            o.uint(f, 64)?;
        }
        out.push(QdiscInfo {
            iface_name: o.string("IfaceName")?,
            parent: u32_field(&o, "Parent")?,
            kind: o.string("Kind")?,
            bytes: o.uint("Bytes", 64)?,
            packets: u32_field(&o, "Packets")?,
            drops: u32_field(&o, "Drops")?,
            requeues: u32_field(&o, "Requeues")?,
            overlimits: u32_field(&o, "Overlimits")?,
            qlen: u32_field(&o, "Qlen")?,
            backlog: u32_field(&o, "Backlog")?,
        });
    }
    Ok(out)
}

pub fn families(qdiscs: &[QdiscInfo], filter: &DeviceFilter) -> Vec<MetricFamily> {
    let c = MetricFamily::counter;
    let g = MetricFamily::gauge;
    let mut bytes = c("node_qdisc_bytes_total", "Number of bytes sent.");
    let mut packets = c("node_qdisc_packets_total", "Number of packets sent.");
    let mut drops = c("node_qdisc_drops_total", "Number of packets dropped.");
    let mut requeues = c(
        "node_qdisc_requeues_total",
        "Number of packets dequeued, not transmitted, and requeued.",
    );
    let mut overlimits = c(
        "node_qdisc_overlimits_total",
        "Number of overlimit packets.",
    );
    let mut qlen = g(
        "node_qdisc_current_queue_length",
        "Number of packets currently in queue to be sent.",
    );
    let mut backlog = g(
        "node_qdisc_backlog",
        "Number of bytes currently in queue to be sent.",
    );
    for q in qdiscs {
        // Only root qdiscs.
        if q.parent != 0 || filter.ignored(&q.iface_name) {
            continue;
        }
        let l = [("device", q.iface_name.as_str()), ("kind", q.kind.as_str())];
        bytes.push(&l, q.bytes as f64);
        packets.push(&l, f64::from(q.packets));
        drops.push(&l, f64::from(q.drops));
        requeues.push(&l, f64::from(q.requeues));
        overlimits.push(&l, f64::from(q.overlimits));
        qlen.push(&l, f64::from(q.qlen));
        backlog.push(&l, f64::from(q.backlog));
    }
    nonempty_sorted(vec![
        backlog, bytes, qlen, drops, overlimits, packets, requeues,
    ])
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.qdisc;
    let include = o.device_include.clone().or(o.qdisk_device_include.clone());
    let exclude = o.device_exclude.clone().or(o.qdisk_device_exclude.clone());
    if o.qdisk_device_include.is_some() || o.qdisk_device_exclude.is_some() {
        log::warn!(
            "--collector.qdisk.device-include/-exclude are DEPRECATED and will be removed in \
             node_exporter 2.0.0, use --collector.qdisc.device-include/-exclude"
        );
    }
    Box::new(Qdisc {
        filter: DeviceFilter::new(&include, &exclude, None),
    })
}

pub struct Qdisc {
    filter: DeviceFilter,
}

/// The error of the live mode, which this agent does not have yet.
pub const LIVE_MODE_MISSING: &str = "qdisc: live mode (rtnetlink RTM_GETQDISC dump) is not \
     built yet in this agent; only --collector.qdisc.fixtures is supported";

impl Collector for Qdisc {
    fn name(&self) -> &'static str {
        "qdisc"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let Some(dir) = &paths.collector_files.qdisc_fixtures else {
            return Err(CollectError::Other(LIVE_MODE_MISSING.into()));
        };
        let path = dir.join("results.json");
        let text = read_to_string(&path)?;
        let qdiscs = parse_fixture(&text).map_err(|m| CollectError::parse(&path, m))?;
        Ok(families(&qdiscs, &self.filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::fixture;

    fn paths() -> Paths {
        let mut p = Paths::default();
        p.collector_files.qdisc_fixtures = Some(fixture("ne112", "qdisc"));
        p
    }

    #[test]
    fn node_exporter_112_e2e_fixture_and_flags() {
        // end-to-end-test.sh: --collector.qdisc.device-include=(wlan0|eth0).
        let mut o = Options::default();
        o.qdisc.device_include = Some("(wlan0|eth0)".parse().expect("pattern"));
        let fams = collector(&o).collect(&paths()).expect("collects");
        assert_eq!(ne112::render(&fams), ne112::expected("node_qdisc_"));
        o.qdisc.device_include = Some("^eth".parse().expect("pattern"));
        let fams = collector(&o).collect(&paths()).expect("collects");
        assert!(fams.iter().all(|f| f.samples.len() == 1));
    }

    #[test]
    fn only_root_qdiscs_and_bad_json_fails() {
        let q = parse_fixture(r#"[{"IfaceName":"a","Parent":1},{"ifacename":"b","kind":"fq"}]"#)
            .expect("parses");
        let fams = families(&q, &DeviceFilter::default());
        assert_eq!(fams.len(), 7);
        assert!(fams.iter().all(|f| f.samples.len() == 1));
        assert!(parse_fixture(r#"[{"Bytes":"1"}]"#).is_err());
        assert!(parse_fixture(r#"{"Bytes":1}"#).is_err());
        assert!(parse_fixture("[").is_err());
    }

    #[test]
    fn live_mode_fails_saying_it_is_not_built() {
        let e = collector(&Options::default())
            .collect(&Paths::default())
            .expect_err("no live mode");
        assert!(e.to_string().contains("not built yet"), "{e}");
        assert!(!e.is_no_data());
    }

    #[test]
    fn deprecated_alias_and_exclusivity() {
        let mut o = QdiscOptions {
            qdisk_device_include: Some("eth0".parse().expect("pattern")),
            ..Default::default()
        };
        use crate::collector::options::Merge;
        assert!(o.check().is_ok());
        o.device_include = Some("x".parse().expect("pattern"));
        assert!(o.check().is_err());
        o.device_include = None;
        o.device_exclude = Some("x".parse().expect("pattern"));
        assert!(o.check().is_err());
    }
}
