//! `dmi` collector: `node_dmi_info` from `/sys/class/dmi/id`, as node_exporter 1.5's `dmi.go`.
//!
//! One sample of value 1 labelled with every DMI attribute present among `bios_date`,
//! `bios_release`, `bios_vendor`, `bios_version`, `board_asset_tag`, `board_name`,
//! `board_serial`, `board_vendor`, `board_version`, `chassis_asset_tag`, `chassis_serial`,
//! `chassis_vendor`, `chassis_version`, `product_family`, `product_name`, `product_serial`,
//! `product_sku`, `product_uuid`, `product_version` and `system_vendor` (`sys_vendor`); an empty
//! file gives an empty label, a missing one no label.
//!
//! `product_serial`, `product_uuid`, `board_serial` and `chassis_serial` are readable by root
//! only: the agent reads them after the privilege drop, so they are skipped (no label), exactly
//! as node_exporter running as its packaged unprivileged user. Neither reads them as root on
//! purpose: serial numbers are not something to publish on a metrics endpoint by default.
//!
//! The values only change with a firmware update and reboot, so they are read on the first
//! scrape and kept (node_exporter reads them once at start-up). No `/sys/class/dmi/id`, or no
//! attribute at all (this VM): the collector fails without samples (node_exporter's
//! `ErrNoData`, success 0).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::hwmon::read_trimmed;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// (file, label), in label order.
const ATTRS: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

/// Reads the attributes as procfs' `DMIClass`: regular files only, `modalias`/`uevent` skipped,
/// unreadable (permission) ones skipped, any other error fatal. Returns (label, value) pairs in
/// label order.
pub fn read_dmi(dir: &Path) -> Result<Vec<(&'static str, String)>, CollectError> {
    let mut present = Vec::new();
    for entry in crate::collector::read_dir(dir).map_err(|e| CollectError::io(dir, e))? {
        let entry = entry.map_err(|e| CollectError::io(dir, e))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let Some(&(file, label)) = ATTRS.iter().find(|(f, _)| name.to_str() == Some(*f)) else {
            continue;
        };
        let path = dir.join(file);
        match read_trimmed(&path) {
            Ok(v) => present.push((label, v)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(CollectError::io(&path, e)),
        }
    }
    present.sort_by(|a, b| a.0.cmp(b.0));
    Ok(present)
}

pub fn family(labels: &[(&'static str, String)]) -> MetricFamily {
    let pairs: Vec<(&'static str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    MetricFamily::gauge(
        "node_dmi_info",
        "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, \
         bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, \
         chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, \
         product_name, product_serial, product_sku, product_uuid, product_version, system_vendor \
         if provided by DMI.",
    )
    .with(&pairs, 1.0)
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Dmi {
        cache: Mutex::new(None),
    })
}

type Labels = Vec<(&'static str, String)>;

struct Dmi {
    /// The attributes read on the first successful scrape, per sysfs root.
    cache: Mutex<Option<(PathBuf, Labels)>>,
}

impl Collector for Dmi {
    fn name(&self) -> &'static str {
        "dmi"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let labels = match &*cache {
            Some((root, labels)) if *root == paths.sysfs => labels.clone(),
            _ => {
                let dir = paths.sys("class/dmi/id");
                let labels = match read_dmi(&dir) {
                    Ok(l) => l,
                    Err(CollectError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                };
                *cache = Some((paths.sysfs.clone(), labels.clone()));
                labels
            }
        };
        if labels.is_empty() {
            // node_exporter: "platform does not support Desktop Management Interface (DMI)
            // information", ErrNoData.
            return Err(CollectError::no_data(&paths.sys("class/dmi/id")));
        }
        Ok(vec![family(&labels)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    /// A Dell server's attributes (empty ones, an invalid UTF-8 byte, `chassis_type` not
    /// exported, `modalias`/`uevent`/`power/` skipped), against node_exporter 1.5.0's output.
    #[test]
    fn fixture_matches_node_exporter() {
        let c = collector(&Options::default());
        let fams = c.collect(&paths()).expect("collects");
        assert_eq!(encoded(fams.clone()), golden(&["node_dmi_"]));
        // Second scrape: served from the cache, same answer.
        assert_eq!(c.collect(&paths()).expect("collects"), fams);
    }

    #[test]
    fn absent_fails() {
        let c = collector(&Options::default());
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(c.collect(&p).is_err());
    }
}
