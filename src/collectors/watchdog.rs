//! `watchdog` collector: hardware and software watchdogs from `/sys/class/watchdog`.
//!
//! Not in node_exporter 1.5: this follows the collector added later (node_exporter 1.7,
//! `collector/watchdog.go`, with procfs' `WatchdogClass`), names and help texts included. For
//! every `watchdog<N>`:
//!
//! - `node_watchdog_bootstatus`, `node_watchdog_fw_version`, `node_watchdog_nowayout`,
//!   `node_watchdog_timeleft_seconds`, `node_watchdog_timeout_seconds`,
//!   `node_watchdog_pretimeout_seconds`, `node_watchdog_access_cs0` (`{name}`), each when its
//!   file exists;
//! - `node_watchdog_info{identity,name,options,pretimeout_governor,state,status}` 1, a missing
//!   file giving an empty label.
//!
//! A file that exists but cannot be read, or a numeric one that is not a number, fails the
//! collector; so does a missing `/sys/class/watchdog` (node_exporter's `ErrNoData`, success 0).
//! An empty class directory (this VM): nothing, success.

use std::collections::BTreeMap;
use std::path::Path;

use super::hwmon::read_trimmed;
use super::powersupplyclass::parse_int0;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// Numeric attributes: (file, metric, help).
const NUMERIC: [(&str, &str, &str); 7] = [
    (
        "bootstatus",
        "node_watchdog_bootstatus",
        "Value of /sys/class/watchdog/<watchdog>/bootstatus",
    ),
    (
        "fw_version",
        "node_watchdog_fw_version",
        "Value of /sys/class/watchdog/<watchdog>/fw_version",
    ),
    (
        "nowayout",
        "node_watchdog_nowayout",
        "Value of /sys/class/watchdog/<watchdog>/nowayout",
    ),
    (
        "timeleft",
        "node_watchdog_timeleft_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeleft",
    ),
    (
        "timeout",
        "node_watchdog_timeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/timeout",
    ),
    (
        "pretimeout",
        "node_watchdog_pretimeout_seconds",
        "Value of /sys/class/watchdog/<watchdog>/pretimeout",
    ),
    (
        "access_cs0",
        "node_watchdog_access_cs0",
        "Value of /sys/class/watchdog/<watchdog>/access_cs0",
    ),
];

/// Text attributes, in `node_watchdog_info` label order (alphabetical, `name` added).
const TEXT: [&str; 5] = [
    "identity",
    "options",
    "pretimeout_governor",
    "state",
    "status",
];

/// Reads an attribute: `Ok(None)` when the file does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, CollectError> {
    match read_trimmed(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Watchdog)
}

struct Watchdog;

impl Collector for Watchdog {
    fn name(&self) -> &'static str {
        "watchdog"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let class = paths.sys("class/watchdog");
        let mut fams: BTreeMap<&'static str, MetricFamily> = BTreeMap::new();
        let mut info = MetricFamily::gauge(
            "node_watchdog_info",
            "Info of /sys/class/watchdog/<watchdog>",
        );
        let entries = crate::collector::read_dir(&class)
            .map_err(|e| CollectError::io(&class, e).absent_is_no_data())?;
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::io(&class, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            for (file, metric, help) in NUMERIC {
                let path = dir.join(file);
                if let Some(v) = read_opt(&path)? {
                    let n = parse_int0(&v).ok_or_else(|| {
                        CollectError::parse(&path, format!("not an integer: {v:?}"))
                    })?;
                    fams.entry(metric)
                        .or_insert_with(|| MetricFamily::gauge(metric, help))
                        .push(&[("name", &name)], n as f64);
                }
            }
            let mut text: [String; TEXT.len()] = Default::default();
            for (slot, file) in text.iter_mut().zip(TEXT) {
                *slot = read_opt(&dir.join(file))?.unwrap_or_default();
            }
            let [identity, options, pretimeout_governor, state, status] = &text;
            info.push(
                &[
                    ("identity", identity),
                    ("name", &name),
                    ("options", options),
                    ("pretimeout_governor", pretimeout_governor),
                    ("state", state),
                    ("status", status),
                ],
                1.0,
            );
        }
        let mut out: Vec<MetricFamily> = fams.into_values().collect();
        if !info.samples.is_empty() {
            out.push(info);
        }
        out.iter_mut().for_each(sort_samples);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    fn lines(fams: Vec<MetricFamily>) -> String {
        encoded(fams)
    }

    /// procfs' watchdog fixture values: a software watchdog with every attribute, and one with
    /// only `state`. Expected text written from node_exporter's current `watchdog.go` (samples
    /// sorted by label values in label order, so the empty `identity` comes first).
    #[test]
    fn fixture() {
        let fams = Watchdog.collect(&paths()).expect("collects");
        let want = "\
# HELP node_watchdog_access_cs0 Value of /sys/class/watchdog/<watchdog>/access_cs0
# TYPE node_watchdog_access_cs0 gauge
node_watchdog_access_cs0{name=\"watchdog0\"} 0
# HELP node_watchdog_bootstatus Value of /sys/class/watchdog/<watchdog>/bootstatus
# TYPE node_watchdog_bootstatus gauge
node_watchdog_bootstatus{name=\"watchdog0\"} 1
# HELP node_watchdog_fw_version Value of /sys/class/watchdog/<watchdog>/fw_version
# TYPE node_watchdog_fw_version gauge
node_watchdog_fw_version{name=\"watchdog0\"} 2
# HELP node_watchdog_info Info of /sys/class/watchdog/<watchdog>
# TYPE node_watchdog_info gauge
node_watchdog_info{identity=\"\",name=\"watchdog1\",options=\"\",pretimeout_governor=\"\",state=\"inactive\",status=\"\"} 1
node_watchdog_info{identity=\"Software Watchdog\",name=\"watchdog0\",options=\"0x8380\",pretimeout_governor=\"noop\",state=\"active\",status=\"0x8000\"} 1
# HELP node_watchdog_nowayout Value of /sys/class/watchdog/<watchdog>/nowayout
# TYPE node_watchdog_nowayout gauge
node_watchdog_nowayout{name=\"watchdog0\"} 0
# HELP node_watchdog_pretimeout_seconds Value of /sys/class/watchdog/<watchdog>/pretimeout
# TYPE node_watchdog_pretimeout_seconds gauge
node_watchdog_pretimeout_seconds{name=\"watchdog0\"} 120
# HELP node_watchdog_timeleft_seconds Value of /sys/class/watchdog/<watchdog>/timeleft
# TYPE node_watchdog_timeleft_seconds gauge
node_watchdog_timeleft_seconds{name=\"watchdog0\"} 300
# HELP node_watchdog_timeout_seconds Value of /sys/class/watchdog/<watchdog>/timeout
# TYPE node_watchdog_timeout_seconds gauge
node_watchdog_timeout_seconds{name=\"watchdog0\"} 60
";
        assert_eq!(lines(fams), want);
    }

    #[test]
    fn absent_fails() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(Watchdog.collect(&p).is_err());
    }
}
