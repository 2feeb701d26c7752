//! `nvme` collector: node_exporter 1.12's `nvme_linux.go` over prometheus/procfs'
//! `sysfs.NVMeClass`.
//!
//! `node_nvme_info{cntlid,device,firmware_revision,model,serial,state} 1`, one sample per
//! entry of `/sys/class/nvme`, from that entry's `firmware_rev`, `model`, `serial`, `state`
//! and `cntlid` (each read as procfs' `SysReadFile` does: one `read` of at most 128 bytes,
//! surrounding whitespace trimmed). For each namespace directory (`nvme<C>n<N>`, procfs'
//! pattern `nvme\d+n(\d+)`): `node_nvme_namespace_info{ana_state,device,nsid} 1` and
//! `node_nvme_namespace_{capacity,size,used,logical_block_size}_bytes{device,nsid}` (`size`
//! and `nuse` are in logical blocks; capacity and size are the same number, as in 1.12).
//!
//! node_exporter 1.12 semantics (1.5 had only `node_nvme_info` without `cntlid`): the
//! `cntlid` label, the namespace families, and a controller without `cntlid` fails the
//! collector (as procfs now requires it).
//!
//! Absent `/sys/class/nvme` (no NVMe driver loaded): node_exporter returns `ErrNoData`, which
//! its `execute` reports as `node_scrape_collector_success 0`; so do we (an `Err`). A device
//! missing one of its five files, or a namespace missing `nuse`, `size` or
//! `queue/logical_block_size`, fails the collector, as in procfs.

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

/// One namespace (`<device>/nvme<C>n<N>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// `<N>` of the directory name.
    pub id: String,
    pub used_blocks: u64,
    pub size_blocks: u64,
    pub logical_block_size: u64,
    /// `ana_state`, `unknown` where the file is absent.
    pub ana_state: String,
}

/// One controller's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub firmware_revision: String,
    pub model: String,
    pub serial: String,
    pub state: String,
    /// `cntlid` (node_exporter 1.12).
    pub controller_id: String,
    pub namespaces: Vec<Namespace>,
}

/// procfs' namespace pattern `nvme\d+n(\d+)` (unanchored): the namespace id of a controller's
/// sub-directory name, if it is one.
pub fn namespace_id(name: &str) -> Option<&str> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut rest = name;
    while let Some(i) = rest.find("nvme") {
        let after = rest.get(i + 4..).unwrap_or("");
        let d = digits(after);
        if d > 0 {
            if let Some(ns) = after.get(d..).and_then(|t| t.strip_prefix('n')) {
                let n = digits(ns);
                if n > 0 {
                    return ns.get(..n);
                }
            }
        }
        rest = after;
    }
    None
}

/// Sorted directory entry names.
fn sorted_entries(dir: &Path) -> Result<Vec<String>, CollectError> {
    let rd = crate::collector::read_dir(dir).map_err(|e| CollectError::io(dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Reads one namespace directory as procfs does: `nuse`, `size` and
/// `queue/logical_block_size` must be readable (a value that is not a number reads 0),
/// `ana_state` may be absent.
fn read_namespace(dir: &Path, id: &str) -> Result<Namespace, CollectError> {
    let read = |attr: &str| {
        let p = dir.join(attr);
        sys_read_file(&p).map_err(|e| CollectError::io(&p, e))
    };
    let num = |attr: &str| read(attr).map(|v| v.parse::<u64>().unwrap_or(0));
    Ok(Namespace {
        id: id.to_string(),
        used_blocks: num("nuse")?,
        size_blocks: num("size")?,
        logical_block_size: num("queue/logical_block_size")?,
        ana_state: read("ana_state").unwrap_or_else(|_| "unknown".to_string()),
    })
}

/// Reads every entry of `class/nvme` (sorted by name).
fn read_class(dir: &Path) -> Result<Vec<Device>, CollectError> {
    let names = sorted_entries(dir)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let base = dir.join(&name);
        let read = |attr: &str| {
            let p = base.join(attr);
            sys_read_file(&p).map_err(|e| CollectError::io(&p, e))
        };
        let firmware_revision = read("firmware_rev")?;
        let model = read("model")?;
        let serial = read("serial")?;
        let state = read("state")?;
        let controller_id = read("cntlid")?;
        let mut namespaces = Vec::new();
        for sub in sorted_entries(&base)? {
            if let Some(id) = namespace_id(&sub) {
                namespaces.push(read_namespace(&base.join(&sub), id)?);
            }
        }
        out.push(Device {
            firmware_revision,
            model,
            serial,
            state,
            controller_id,
            namespaces,
            name,
        });
    }
    Ok(out)
}

/// The families for a set of devices.
pub fn families(devices: &[Device]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "node_nvme_info",
        "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
    );
    let mut ns_info = MetricFamily::gauge(
        "node_nvme_namespace_info",
        "Information about NVMe namespaces. Value is always 1",
    );
    let mut capacity = MetricFamily::gauge(
        "node_nvme_namespace_capacity_bytes",
        "Capacity of the NVMe namespace in bytes. Computed as namespace_size * namespace_logical_block_size",
    );
    let mut size = MetricFamily::gauge(
        "node_nvme_namespace_size_bytes",
        "Size of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/size",
    );
    let mut used = MetricFamily::gauge(
        "node_nvme_namespace_used_bytes",
        "Used space of the NVMe namespace in bytes. Available in /sys/class/nvme/<device>/<namespace>/nuse",
    );
    let mut lbs = MetricFamily::gauge(
        "node_nvme_namespace_logical_block_size_bytes",
        "Logical block size of the NVMe namespace in bytes. Usually 4Kb. Available in /sys/class/nvme/<device>/<namespace>/queue/logical_block_size",
    );
    for d in devices {
        info.push(
            &[
                ("cntlid", &d.controller_id),
                ("device", &d.name),
                ("firmware_revision", &d.firmware_revision),
                ("model", &d.model),
                ("serial", &d.serial),
                ("state", &d.state),
            ],
            1.0,
        );
        for ns in &d.namespaces {
            let l = [("device", d.name.as_str()), ("nsid", ns.id.as_str())];
            ns_info.push(
                &[
                    ("ana_state", &ns.ana_state),
                    ("device", &d.name),
                    ("nsid", &ns.id),
                ],
                1.0,
            );
            // procfs multiplies in uint64 (wrapping).
            let bytes = |blocks: u64| blocks.wrapping_mul(ns.logical_block_size) as f64;
            capacity.push(&l, bytes(ns.size_blocks));
            size.push(&l, bytes(ns.size_blocks));
            used.push(&l, bytes(ns.used_blocks));
            lbs.push(&l, ns.logical_block_size as f64);
        }
    }
    let mut out = vec![info, capacity, ns_info, lbs, size, used];
    for f in &mut out {
        crate::exposition::sort_samples(f);
    }
    out
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
            fams[0].samples[0]
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect::<Vec<_>>(),
            vec![
                ("cntlid".into(), "1997".to_string()),
                ("device".into(), "nvme0".to_string()),
                ("firmware_revision".into(), "1B2QEXP7".to_string()),
                ("model".into(), "Samsung SSD 970 PRO 512GB".to_string()),
                ("serial".into(), "S680HF8N190894I".to_string()),
                ("state".into(), "live".to_string()),
            ]
        );
        // node_exporter 1.12's e2e-output.txt lines for this tree (nvme/expected.txt is 1.5's).
        assert_golden(raw(&fams), "storage2", "nvme/expected-1.12.txt");
    }

    #[test]
    fn namespace_pattern() {
        assert_eq!(namespace_id("nvme0n1"), Some("1"));
        assert_eq!(namespace_id("nvme12n34p1"), Some("34"));
        assert_eq!(namespace_id("xnvme1n2"), Some("2"));
        assert_eq!(namespace_id("nvme0c0n1"), None);
        assert_eq!(namespace_id("nvmen1"), None);
        assert_eq!(namespace_id("nvme1n"), None);
        assert_eq!(namespace_id("power"), None);
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
            ("cntlid", "1\n"),
        ] {
            std::fs::write(dev.join(f), v).expect("write");
        }
        assert!(Nvme.collect(&sysfs_at(dir.clone())).is_err());
        std::fs::write(dev.join("state"), "live\n").expect("write");
        let fams = Nvme.collect(&sysfs_at(dir.clone())).expect("collects");
        assert_eq!(fams[0].samples[0].labels[3].1, "M");
        // A namespace: `ana_state` may be absent, the others not; a non-number reads 0.
        let ns = dev.join("nvme9n2");
        std::fs::create_dir_all(ns.join("queue")).expect("mkdir");
        std::fs::write(ns.join("nuse"), "x\n").expect("write");
        std::fs::write(ns.join("size"), "10\n").expect("write");
        assert!(Nvme.collect(&sysfs_at(dir.clone())).is_err());
        std::fs::write(ns.join("queue/logical_block_size"), "512\n").expect("write");
        let fams = Nvme.collect(&sysfs_at(dir.clone())).expect("collects");
        let text = raw(&fams);
        assert!(text.contains(
            "node_nvme_namespace_info{ana_state=\"unknown\",device=\"nvme9\",nsid=\"2\"} 1\n"
        ));
        assert!(text.contains("node_nvme_namespace_size_bytes{device=\"nvme9\",nsid=\"2\"} 5120\n"));
        assert!(text.contains("node_nvme_namespace_used_bytes{device=\"nvme9\",nsid=\"2\"} 0\n"));
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
