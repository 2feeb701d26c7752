//! `nvme` collector: node_exporter 1.5's `nvme_linux.go` over prometheus/procfs 0.8's
//! `sysfs.NVMeClass`.
//!
//! One family, `node_nvme_info{device,firmware_revision,model,serial,state} 1`, one sample per
//! entry of `/sys/class/nvme`, from that entry's `firmware_rev`, `model`, `serial` and `state`
//! (each read as procfs' `SysReadFile` does: one `read` of at most 128 bytes, surrounding
//! whitespace trimmed).
//!
//! Absent `/sys/class/nvme` (no NVMe driver loaded): node_exporter returns `ErrNoData`, which
//! its `execute` reports as `node_scrape_collector_success 0`; so do we (an `Err`). A device
//! missing one of the four files fails the collector, as in procfs.

use std::path::Path;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Nvme)
}

/// procfs' `util.SysReadFile`: at most the first 128 bytes of the file (it does one `read(2)`
/// into a 128-byte buffer), whitespace trimmed. Read through [`fsio`](super::fsio), which keeps
/// sysfs files open between scrapes. Invalid UTF-8 is replaced rather than rejected.
pub(crate) fn sys_read_file(path: &Path) -> std::io::Result<String> {
    let mut buf = Vec::new();
    super::fsio::read_into(path, &mut buf)?;
    buf.truncate(128);
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

/// One controller's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub firmware_revision: String,
    pub model: String,
    pub serial: String,
    pub state: String,
}

/// Reads every entry of `class/nvme` (sorted by name).
fn read_class(dir: &Path) -> Result<Vec<Device>, CollectError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CollectError::io(dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let base = dir.join(&name);
        let read = |attr: &str| {
            let p = base.join(attr);
            sys_read_file(&p).map_err(|e| CollectError::io(&p, e))
        };
        out.push(Device {
            firmware_revision: read("firmware_rev")?,
            model: read("model")?,
            serial: read("serial")?,
            state: read("state")?,
            name,
        });
    }
    Ok(out)
}

/// The family for a set of devices.
pub fn families(devices: &[Device]) -> Vec<MetricFamily> {
    let mut fam = MetricFamily::gauge(
        "node_nvme_info",
        "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
    );
    for d in devices {
        fam.push(
            &[
                ("device", &d.name),
                ("firmware_revision", &d.firmware_revision),
                ("model", &d.model),
                ("serial", &d.serial),
                ("state", &d.state),
            ],
            1.0,
        );
    }
    vec![fam]
}

struct Nvme;

impl Collector for Nvme {
    fn name(&self) -> &'static str {
        "nvme"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let devices =
            read_class(&paths.sys("class/nvme")).map_err(CollectError::absent_is_no_data)?;
        Ok(families(&devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, raw, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter() {
        let fams = Nvme
            .collect(&sysfs("storage2", "nvme/sys"))
            .expect("collects");
        assert_eq!(
            fams[0].samples[0].labels,
            vec![
                ("device".into(), "nvme0".to_string()),
                ("firmware_revision".into(), "1B2QEXP7".to_string()),
                ("model".into(), "Samsung SSD 970 PRO 512GB".to_string()),
                ("serial".into(), "S680HF8N190894I".to_string()),
                ("state".into(), "live".to_string()),
            ]
        );
        assert_golden(raw(&fams), "storage2", "nvme/expected.txt");
    }

    #[test]
    fn absent_class_fails_like_node_exporter() {
        // node_exporter: ErrNoData → node_scrape_collector_success 0.
        assert!(Nvme.collect(&sysfs("storage2", "no-such-dir")).is_err());
    }

    #[test]
    fn missing_attribute_fails() {
        let dir = std::env::temp_dir().join(format!("nvme-test-{}", std::process::id()));
        let dev = dir.join("class/nvme/nvme9");
        std::fs::create_dir_all(&dev).expect("mkdir");
        for (f, v) in [
            ("firmware_rev", "X\n"),
            ("model", "M  \n"),
            ("serial", "S\n"),
        ] {
            std::fs::write(dev.join(f), v).expect("write");
        }
        assert!(Nvme.collect(&sysfs_at(dir.clone())).is_err());
        std::fs::write(dev.join("state"), "live\n").expect("write");
        let fams = Nvme.collect(&sysfs_at(dir.clone())).expect("collects");
        assert_eq!(fams[0].samples[0].labels[2].1, "M");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sys_read_file_reads_at_most_128_bytes() {
        let p = std::env::temp_dir().join(format!("nvme-long-{}", std::process::id()));
        std::fs::write(&p, format!(" {}\n", "a".repeat(300))).expect("write");
        assert_eq!(sys_read_file(&p).expect("reads"), "a".repeat(127));
        let _ = std::fs::remove_file(&p);
    }
}
