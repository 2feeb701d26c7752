//! `thermal_zone` collector: `/sys/class/thermal`, as node_exporter 1.5's
//! `thermal_zone_linux.go`:
//!
//! - `node_thermal_zone_temp{type,zone}` in °C, for every `thermal_zone<N>` (its `type`,
//!   `policy` and `temp` files);
//! - `node_cooling_device_cur_state{name,type}` and `node_cooling_device_max_state{name,type}`
//!   for every `cooling_device<N>` (`cur_state` may be -1, e.g. intel_powerclamp).
//!
//! As node_exporter 1.5 (procfs 0.8): a zone whose `temp` read fails with `ENODATA` (a disabled
//! zone) is skipped; any other missing or unreadable file fails the collector; a zone in
//! `disabled` mode whose temperature can be read is still exported. Deviation: `EAGAIN`
//! (some drivers while the sensor wakes up) also skips the zone or device, as later procfs
//! versions do, instead of failing the scrape. No `/sys/class/thermal`: nothing, success.
//! Partial output as node_exporter's: a cooling device failing keeps the zone temperatures
//! (sent before the cooling devices are read).

use std::path::Path;

use super::hwmon::read_trimmed;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

/// Whether an I/O error means "skip this zone/device" rather than "fail".
fn skippable(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::EAGAIN))
}

/// The entries of the thermal class directory, listed once for both of node_exporter's globs
/// (zones and cooling devices: one `openat` and `getdents64` a scrape fewer where the
/// directory is empty, as on most VMs): the entries' names. Absent: none.
fn listing(dir: &Path) -> Result<Vec<String>, CollectError> {
    let entries = match crate::collector::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CollectError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::io(dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Entries `<prefix><digits...>` of `dir`'s listing, as (number part, path), like procfs'
/// `filepath.Glob("<prefix>[0-9]*")`.
fn numbered(dir: &Path, listing: &[String], prefix: &str) -> Vec<(String, std::path::PathBuf)> {
    let mut out: Vec<_> = listing
        .iter()
        .filter_map(|name| {
            let n = name.strip_prefix(prefix)?;
            n.starts_with(|c: char| c.is_ascii_digit())
                .then(|| (n.to_string(), dir.join(name)))
        })
        .collect();
    out.sort();
    out
}

enum Read<T> {
    Value(T),
    Skip,
}

fn read_file(path: &Path) -> Result<Read<String>, CollectError> {
    match read_trimmed(path) {
        Ok(s) => Ok(Read::Value(s)),
        Err(e) if skippable(&e) => Ok(Read::Skip),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

fn read_int(path: &Path) -> Result<Read<i64>, CollectError> {
    Ok(match read_file(path)? {
        Read::Value(s) => Read::Value(
            s.parse::<i64>()
                .map_err(|_| CollectError::parse(path, format!("not an integer: {s:?}")))?,
        ),
        Read::Skip => Read::Skip,
    })
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(ThermalZone)
}

struct ThermalZone;

impl Collector for ThermalZone {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let class = paths.sys("class/thermal");
        let names = listing(&class)?;
        let mut temp = MetricFamily::gauge("node_thermal_zone_temp", "Zone temperature in Celsius");
        'zones: for (zone, dir) in numbered(&class, &names, "thermal_zone") {
            let mut vals = Vec::with_capacity(2);
            for f in ["type", "policy"] {
                match read_file(&dir.join(f))? {
                    Read::Value(v) => vals.push(v),
                    Read::Skip => continue 'zones,
                }
            }
            let Read::Value(t) = read_int(&dir.join("temp"))? else {
                continue;
            };
            let kind = vals.first().map_or("", String::as_str);
            temp.push(&[("type", kind), ("zone", &zone)], t as f64 / 1000.0);
        }
        let mut cur = MetricFamily::gauge(
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
        );
        let mut max = MetricFamily::gauge(
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
        );
        // Partial output as node_exporter's: the zone temperatures are sent before the cooling
        // devices are read (all of them, then sent), so an error there keeps the temperatures.
        if let Err(e) = read_cooling_devices(&class, &names, &mut cur, &mut max) {
            return Err(CollectError::partial(nonempty_sorted(vec![temp]), e));
        }
        Ok(nonempty_sorted(vec![temp, cur, max]))
    }
}

/// Every `cooling_device<N>` into `cur` and `max`; on an error, neither is complete (the
/// caller drops both, as procfs' `ClassCoolingDeviceStats` returns nothing on an error).
fn read_cooling_devices(
    class: &Path,
    names: &[String],
    cur: &mut MetricFamily,
    max: &mut MetricFamily,
) -> Result<(), CollectError> {
    for (name, dir) in numbered(class, names, "cooling_device") {
        let Read::Value(kind) = read_file(&dir.join("type"))? else {
            continue;
        };
        let Read::Value(m) = read_int(&dir.join("max_state"))? else {
            continue;
        };
        let Read::Value(c) = read_int(&dir.join("cur_state"))? else {
            continue;
        };
        let labels = [("name", name.as_str()), ("type", kind.as_str())];
        cur.push(&labels, c as f64);
        max.push(&labels, m as f64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    /// Three zones (one in `disabled` mode, still exported as by 1.5, one below zero) and two
    /// cooling devices (one at -1), against node_exporter 1.5.0's output for the same tree.
    #[test]
    fn fixture_matches_node_exporter() {
        let fams = ThermalZone.collect(&paths()).expect("collects");
        assert_eq!(
            encoded(fams),
            golden(&["node_thermal_zone_", "node_cooling_device_"])
        );
    }

    #[test]
    fn absent_is_empty_success() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(ThermalZone.collect(&p).expect("collects").is_empty());
    }

    /// Partial output as node_exporter's: a cooling device whose `cur_state` is not a number
    /// fails the collector, the zone temperatures read before are kept, no cooling device is.
    #[test]
    fn partial_output_keeps_the_zones_when_a_cooling_device_fails() {
        let tree = crate::collectors::testutil::fixture_copy("hw", "sys");
        let cur = tree
            .path()
            .join("devices/virtual/thermal/cooling_device1/cur_state");
        std::fs::write(&cur, "warm\n").expect("write");
        let o = crate::collector::run(
            &ThermalZone,
            &crate::collectors::testutil::sysfs_at(tree.path()),
        );
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("cooling_device1/cur_state"), "{err}");
        let whole = ThermalZone.collect(&paths()).expect("collects");
        let temp = whole
            .iter()
            .find(|f| f.name == "node_thermal_zone_temp")
            .expect("zones");
        assert_eq!(o.families, std::slice::from_ref(temp));
        assert_eq!(temp.samples.len(), 3);
    }

    #[test]
    fn live() {
        // This VM: an empty /sys/class/thermal, nothing and success (as node_exporter).
        ThermalZone.collect(&Paths::default()).expect("collects");
    }
}
