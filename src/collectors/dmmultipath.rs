//! `dmmultipath` collector: device-mapper multipath devices from `/sys/block/dm-*`, as
//! node_exporter 1.12's `dmmultipath_linux.go` with prometheus/procfs' `DMMultipathDevices`
//! (on by default, as in 1.12).
//!
//! - A `dm-*` block device is a multipath device when its `dm/uuid` starts with `mpath-` (no
//!   `dm/uuid`: not a device-mapper device, skipped).
//! - Per device (labels `device` = `dm/name`, `sysfs_name` = `dm-N`):
//!   `node_dmmultipath_device_info{uuid}` 1, `device_active` (0 when `dm/suspended` is 1),
//!   `device_size_bytes` (`size` × 512), `device_paths`, `device_paths_active` (paths whose
//!   `/sys/block/<path>/device/state` is `running` or `live`) and `device_paths_failed` (the
//!   others); per path (`slaves/<path>`): `node_dmmultipath_path_state{device,path,state}` 1.
//! - As 1.12, a missing or unreadable file anywhere (`ENOENT`, `EACCES`) is "no data" (no
//!   samples, no error counted); a bad number fails the collector. No `/sys/block`: no data.

use std::path::Path;

use super::{fsio, sorted_names, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// One multipath device (procfs' `DMMultipathDevice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub sysfs_name: String,
    pub uuid: String,
    pub suspended: bool,
    pub size_bytes: u64,
    /// `(path device, state)`.
    pub paths: Vec<(String, String)>,
}

/// A missing or forbidden file is no data, as 1.12's `errors.Is(err, os.ErrNotExist) ||
/// errors.Is(err, os.ErrPermission)` on procfs' wrapped errors.
fn io_err(path: &Path, e: std::io::Error) -> CollectError {
    let kind = e.kind();
    let err = CollectError::io(path, e);
    if matches!(
        kind,
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) {
        CollectError::NoData {
            what: err.to_string(),
        }
    } else {
        err
    }
}

fn read_trimmed(path: &Path) -> Result<String, CollectError> {
    fsio::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| io_err(path, e))
}

fn read_uint(path: &Path) -> Result<u64, CollectError> {
    let s = read_trimmed(path)?;
    if s.starts_with('+') {
        return Err(CollectError::parse(path, format!("invalid number {s:?}")));
    }
    s.parse()
        .map_err(|e| CollectError::parse(path, format!("invalid number {s:?}: {e}")))
}

/// Lists a directory's names (sorted), a missing or forbidden directory being no data.
fn names(dir: &Path) -> Result<Vec<String>, CollectError> {
    sorted_names(dir).map_err(|e| match e {
        CollectError::Io { path, source } => io_err(&path, source),
        e => e,
    })
}

/// procfs' `DMMultipathDevices` under the sysfs root `sys`.
pub fn devices(sys: &Path) -> Result<Vec<Device>, CollectError> {
    let block = sys.join("block");
    let mut out = Vec::new();
    for entry in names(&block)? {
        if !entry.starts_with("dm-") {
            continue;
        }
        let dm = block.join(&entry).join("dm");
        let uuid_path = dm.join("uuid");
        let uuid = match fsio::read_to_string(&uuid_path) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&uuid_path, e)),
        };
        if !uuid.starts_with("mpath-") {
            continue;
        }
        let name = read_trimmed(&dm.join("name"))?;
        let suspended = read_uint(&dm.join("suspended"))? == 1;
        let sectors = read_uint(&block.join(&entry).join("size"))?;
        let slaves = block.join(&entry).join("slaves");
        let mut paths = Vec::new();
        let slave_names = match sorted_names(&slaves) {
            Ok(n) => n,
            Err(CollectError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Vec::new()
            }
            Err(CollectError::Io { path, source }) => return Err(io_err(&path, source)),
            Err(e) => return Err(e),
        };
        for p in slave_names {
            let state = read_trimmed(&block.join(&p).join("device/state"))?;
            paths.push((p, state));
        }
        out.push(Device {
            name,
            sysfs_name: entry,
            uuid,
            suspended,
            size_bytes: sectors.wrapping_mul(512),
            paths,
        });
    }
    Ok(out)
}

/// SCSI `running` and NVMe `live` are healthy paths (1.12's `isPathActive`).
pub fn is_path_active(state: &str) -> bool {
    state == "running" || state == "live"
}

pub fn families(devices: &[Device]) -> Vec<MetricFamily> {
    let g = MetricFamily::gauge;
    let mut info = g(
        "node_dmmultipath_device_info",
        "Non-numeric information about a DM-multipath device.",
    );
    let mut active = g(
        "node_dmmultipath_device_active",
        "Whether the multipath device-mapper device is active (1) or suspended (0).",
    );
    let mut size = g(
        "node_dmmultipath_device_size_bytes",
        "Size of the multipath device in bytes, read from /sys/block/<dm>/size.",
    );
    let mut paths = g(
        "node_dmmultipath_device_paths",
        "Number of paths for a multipath device.",
    );
    let mut paths_active = g(
        "node_dmmultipath_device_paths_active",
        "Number of paths in active state (SCSI running or NVMe live) for a multipath device.",
    );
    let mut paths_failed = g(
        "node_dmmultipath_device_paths_failed",
        "Number of paths not in active state for a multipath device.",
    );
    let mut path_state = g(
        "node_dmmultipath_path_state",
        "Reports the underlying device state for a multipath path, as read from /sys/block/<dev>/device/state.",
    );
    for d in devices {
        let l = [
            ("device", d.name.as_str()),
            ("sysfs_name", d.sysfs_name.as_str()),
        ];
        info.push(
            &[
                ("device", &d.name),
                ("sysfs_name", &d.sysfs_name),
                ("uuid", &d.uuid),
            ],
            1.0,
        );
        active.push(&l, if d.suspended { 0.0 } else { 1.0 });
        size.push(&l, d.size_bytes as f64);
        let mut n_active = 0.0;
        let mut n_failed = 0.0;
        for (p, state) in &d.paths {
            if is_path_active(state) {
                n_active += 1.0;
            } else {
                n_failed += 1.0;
            }
            path_state.push(&[("device", &d.name), ("path", p), ("state", state)], 1.0);
        }
        paths.push(&l, d.paths.len() as f64);
        paths_active.push(&l, n_active);
        paths_failed.push(&l, n_failed);
    }
    nonempty_sorted(vec![
        active,
        info,
        paths,
        paths_active,
        paths_failed,
        size,
        path_state,
    ])
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(DmMultipath)
}

pub struct DmMultipath;

impl Collector for DmMultipath {
    fn name(&self) -> &'static str {
        "dmmultipath"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(families(&devices(&paths.sysfs)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::{fixture, fixture_copy, sysfs_at};

    #[test]
    fn node_exporter_112_e2e_fixture() {
        let fams = DmMultipath
            .collect(&sysfs_at(fixture("ne112", "sys")))
            .expect("collects");
        assert_eq!(ne112::render(&fams), ne112::expected("node_dmmultipath_"));
    }

    #[test]
    fn missing_state_is_no_data_and_bad_number_fails() {
        let dir = fixture_copy("ne112", "sys");
        std::fs::remove_file(dir.path().join("block/sdi/device/state")).expect("rm");
        let e = DmMultipath
            .collect(&sysfs_at(dir.path()))
            .expect_err("no data");
        assert!(e.is_no_data(), "{e}");
        let dir = fixture_copy("ne112", "sys");
        std::fs::write(dir.path().join("block/dm-5/size"), "many\n").expect("write");
        let e = DmMultipath
            .collect(&sysfs_at(dir.path()))
            .expect_err("fails");
        assert!(!e.is_no_data(), "{e}");
    }

    #[test]
    fn no_multipath_device_is_no_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("block/sda")).expect("mkdir");
        let fams = DmMultipath
            .collect(&sysfs_at(dir.path()))
            .expect("collects");
        assert!(fams.is_empty());
        assert!(is_path_active("live") && !is_path_active("offline"));
    }
}
