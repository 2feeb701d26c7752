//! `pcidevice` collector: PCI devices from `/sys/bus/pci/devices`, as node_exporter 1.12's
//! `pcidevice_linux.go` with prometheus/procfs' `PciDevices` parser (off by default).
//!
//! - `node_pcidevice_info{segment,bus,device,function,parent_*,class_id,vendor_id,device_id,
//!   subsystem_vendor_id,subsystem_device_id,revision}` 1 per device; the parent's location is
//!   the directory the device's symlink points into (`*` when that is a `pciXXXX:YY` root).
//! - Per device (labels `segment,bus,device,function`): `max_link_transfers_per_second` and
//!   `current_link_transfers_per_second` (GT/s × 1e9, -1 when absent or `Unknown`),
//!   `max_link_width`, `current_link_width` (-1 when absent), `d3cold_allowed`,
//!   `sriov_drivers_autoprobe`, `sriov_numvfs`, `sriov_totalvfs`, `sriov_vf_total_msix` (0 when
//!   absent), `power_state{state}` (one sample per state of `D0 D1 D2 D3hot D3cold unknown
//!   error`, 1 for the current one; only when `power_state` exists) and `numa_node` (only when
//!   present and not -1).
//! - `--collector.pcidevice.names`: five more info labels (`vendor_name`, `device_name`,
//!   `subsystem_vendor_name`, `subsystem_device_name`, `class_name`) looked up in a pci.ids
//!   file, `--collector.pcidevice.idsfile` or the first of `/usr/share/misc/pci.ids` and
//!   `/usr/share/hwdata/pci.ids` that exists (host paths, not under `--path.rootfs`, as 1.12).
//!   The file is read once, at the first scrape, through a Landlock rule granting exactly it
//!   (SECURITY.md); an unreadable file leaves the tables empty, and then, as 1.12, an unknown
//!   ID is printed without `0x` and a class as `Unknown class (<id>)`.
//! - Absent `/sys/bus/pci/devices`: no data. Any device that cannot be read or parsed fails
//!   the collector without samples (procfs returns the error before any metric is sent).
//!
//! Known differences from 1.12: sysfs attributes are read whole, not cut at 128 bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::options::collector_options;
use super::sysctl::parse_go_int;
use super::{fsio, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// node_exporter 1.12's default pci.ids locations, tried in order.
pub const DEFAULT_PCI_IDS: &[&str] = &["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, not '{s}'")),
    }
}

collector_options! {
    /// Options of the pcidevice collector (`[collector.pcidevice]` in the file).
    pub struct PcideviceOptions {
        /// Path to pci.ids file to use for PCI device identification (granted by Landlock;
        /// a change needs a restart). [default: the first of /usr/share/misc/pci.ids,
        /// /usr/share/hwdata/pci.ids that exists]
        #[arg(id = "collector.pcidevice.idsfile", long = "collector.pcidevice.idsfile", value_name = "FILE",
              value_parser = crate::collector::options::parse_path_or_empty)]
        pub idsfile: Option<PathBuf>,
        /// Enable PCI device name resolution (requires pci.ids file). [default: false]
        #[arg(id = "collector.pcidevice.names", long = "collector.pcidevice.names", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = parse_bool)]
        pub names: Option<bool>,
    }
}

/// The pci.ids file the options name: `idsfile`, or the first default that exists; `None`
/// without `names` (1.12 reads no file then).
pub fn pci_ids_file(o: &PcideviceOptions) -> Option<PathBuf> {
    if !o.names.unwrap_or(false) {
        return None;
    }
    match &o.idsfile {
        Some(p) if !p.as_os_str().is_empty() => Some(p.clone()),
        _ => DEFAULT_PCI_IDS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    }
}

/// A device's location, `segment:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub segment: i32,
    pub bus: i32,
    pub device: i32,
    pub function: i32,
}

/// Go's `%0<width>x` of a signed number (the sign counts in the width).
fn go_hex(v: i32, width: usize) -> String {
    let digits = format!("{:x}", v.unsigned_abs());
    if v < 0 {
        format!("-{digits:0>w$}", w = width.saturating_sub(1))
    } else {
        format!("{digits:0>width$}")
    }
}

impl Location {
    /// procfs' `parsePciDeviceLocation`: `0000:00:02.1`.
    pub fn parse(loc: &str) -> Result<Location, String> {
        let bad = || format!("invalid location '{loc}'");
        let parts: Vec<&str> = loc.split(':').collect();
        let &[seg, bus, rest] = parts.as_slice() else {
            return Err(bad());
        };
        let df: Vec<&str> = rest.split('.').collect();
        let &[device, function] = df.as_slice() else {
            return Err(bad());
        };
        let hex = |what: &str, s: &str| {
            i32::from_str_radix(s, 16).map_err(|e| format!("invalid {what}: {s:?}: {e}"))
        };
        Ok(Location {
            segment: hex("segment", seg)?,
            bus: hex("bus", bus)?,
            device: hex("device", device)?,
            function: hex("function", function)?,
        })
    }

    /// The four label values (procfs' `Strings`).
    pub fn strings(&self) -> [String; 4] {
        [
            go_hex(self.segment, 4),
            go_hex(self.bus, 2),
            go_hex(self.device, 2),
            go_hex(self.function, 1),
        ]
    }
}

/// One device (procfs' `PciDevice`, the fields node_exporter uses; SR-IOV offset, stride and
/// VF device are parsed, so a bad value fails as in procfs, but not kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciDevice {
    pub location: Option<Location>,
    pub parent: Option<Location>,
    pub class: u32,
    pub vendor: u32,
    pub device: u32,
    pub subsystem_vendor: u32,
    pub subsystem_device: u32,
    pub revision: u32,
    pub numa_node: Option<i32>,
    pub max_link_speed: Option<f64>,
    pub max_link_width: Option<f64>,
    pub current_link_speed: Option<f64>,
    pub current_link_width: Option<f64>,
    pub sriov_drivers_autoprobe: Option<bool>,
    pub sriov_numvfs: Option<u32>,
    pub sriov_totalvfs: Option<u32>,
    pub sriov_vf_total_msix: Option<u64>,
    pub d3cold_allowed: Option<bool>,
    pub power_state: Option<String>,
}

/// Go's `strconv.ParseUint(s, radix, bits)`: no sign allowed.
fn go_uint(s: &str, radix: u32, max: u64) -> Result<u64, String> {
    if s.starts_with('+') {
        return Err(format!("invalid syntax: {s:?}"));
    }
    let v = u64::from_str_radix(s, radix).map_err(|e| format!("{s:?}: {e}"))?;
    if v > max {
        return Err(format!("{s:?}: value out of range"));
    }
    Ok(v)
}

/// Go's `strconv.ParseInt(s, 10, bits)`.
fn go_int(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let v: i64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v < min || v > max {
        return Err(format!("{s:?}: value out of range"));
    }
    Ok(v)
}

/// An attribute's trimmed text; `None` when the file does not exist.
fn read_attr(dir: &Path, name: &str) -> Result<Option<String>, CollectError> {
    let path = dir.join(name);
    match fsio::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(&path, e)),
    }
}

/// procfs' `parsePciDevice`: the device directory `dir` (the symlink
/// `/sys/bus/pci/devices/<name>`) whose target is `target`.
pub fn parse_device(dir: &Path, target: &Path) -> Result<PciDevice, CollectError> {
    let perr = |msg: String| CollectError::parse(dir, msg);
    let base = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".to_string())
    };
    let loc_str = base(Some(target));
    let parent_str = base(target.parent());
    let location = Location::parse(&loc_str).map_err(perr)?;
    let parent = if parent_str.starts_with("pci") {
        None
    } else {
        Some(
            Location::parse(&parent_str)
                .map_err(|e| perr(format!("parent device location {parent_str:?}: {e}")))?,
        )
    };
    let mut d = PciDevice {
        location: Some(location),
        parent,
        ..PciDevice::default()
    };
    for f in [
        "class",
        "vendor",
        "device",
        "subsystem_vendor",
        "subsystem_device",
        "revision",
    ] {
        let path = dir.join(f);
        let s = fsio::read_to_string(&path).map_err(|e| CollectError::io(&path, e))?;
        let s = s.trim();
        let v = parse_go_int(s)
            .ok()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| perr(format!("failed to parse {f} {s:?}")))?;
        // Go's uint32(int64): the low 32 bits.
        let v = v as u32;
        match f {
            "class" => d.class = v,
            "vendor" => d.vendor = v,
            "device" => d.device = v,
            "subsystem_vendor" => d.subsystem_vendor = v,
            "subsystem_device" => d.subsystem_device = v,
            _ => d.revision = v,
        }
    }
    for f in [
        "max_link_speed",
        "max_link_width",
        "current_link_speed",
        "current_link_width",
        "numa_node",
    ] {
        let Some(s) = read_attr(dir, f)? else {
            continue;
        };
        if s.is_empty() || s.starts_with("Unknown") {
            continue;
        }
        match f {
            "max_link_speed" | "current_link_speed" => {
                // "8.0 GT/s PCIe"
                let Some((num, unit)) = s.split_once(' ') else {
                    return Err(perr(format!("invalid value for {f} {s:?}")));
                };
                if unit != "GT/s PCIe" {
                    return Err(perr(format!("unknown unit for {f} {s:?}")));
                }
                let v: f64 = num
                    .trim()
                    .parse()
                    .map_err(|e| perr(format!("failed to parse {f} {s:?}: {e}")))?;
                if f == "max_link_speed" {
                    d.max_link_speed = Some(v);
                } else {
                    d.current_link_speed = Some(v);
                }
            }
            "max_link_width" | "current_link_width" => {
                let v = go_int(&s, i64::MIN, i64::MAX)
                    .map_err(|e| perr(format!("failed to parse {f}: {e}")))?
                    as f64;
                if f == "max_link_width" {
                    d.max_link_width = Some(v);
                } else {
                    d.current_link_width = Some(v);
                }
            }
            _ => {
                let v = go_int(&s, i32::MIN.into(), i32::MAX.into())
                    .map_err(|e| perr(format!("failed to parse {f}: {e}")))?;
                d.numa_node = i32::try_from(v).ok();
            }
        }
    }
    let u32max = u64::from(u32::MAX);
    for f in [
        "sriov_drivers_autoprobe",
        "sriov_numvfs",
        "sriov_offset",
        "sriov_stride",
        "sriov_totalvfs",
        "sriov_vf_device",
        "sriov_vf_total_msix",
        "d3cold_allowed",
        "power_state",
    ] {
        let Some(s) = read_attr(dir, f)? else {
            continue;
        };
        if s.is_empty() {
            continue;
        }
        let e = |e: String| perr(format!("failed to parse {f}: {e}"));
        match f {
            "sriov_drivers_autoprobe" => {
                d.sriov_drivers_autoprobe =
                    Some(go_int(&s, i32::MIN.into(), i32::MAX.into()).map_err(e)? != 0)
            }
            "d3cold_allowed" => {
                d.d3cold_allowed =
                    Some(go_int(&s, i32::MIN.into(), i32::MAX.into()).map_err(e)? != 0)
            }
            "sriov_numvfs" => {
                d.sriov_numvfs = u32::try_from(go_uint(&s, 10, u32max).map_err(e)?).ok()
            }
            "sriov_totalvfs" => {
                d.sriov_totalvfs = u32::try_from(go_uint(&s, 10, u32max).map_err(e)?).ok()
            }
            "sriov_offset" | "sriov_stride" => {
                go_uint(&s, 10, u32max).map_err(e)?;
            }
            "sriov_vf_device" => {
                go_uint(&s, 16, u32max).map_err(e)?;
            }
            "sriov_vf_total_msix" => {
                d.sriov_vf_total_msix = Some(go_uint(&s, 10, u64::MAX).map_err(e)?)
            }
            _ => d.power_state = Some(s),
        }
    }
    Ok(d)
}

/// The pci.ids tables (1.12's `loadPCIIds`).
#[derive(Debug, Default, PartialEq)]
pub struct PciIds {
    pub vendors: HashMap<String, String>,
    pub devices: HashMap<String, HashMap<String, String>>,
    pub subsystems: HashMap<String, HashMap<String, String>>,
    pub classes: HashMap<String, String>,
    pub subclasses: HashMap<String, String>,
    pub prog_ifs: HashMap<String, String>,
}

/// Go's `strings.SplitN(line, "  ", 2)` when it gives two parts, trimmed.
fn id_name(line: &str) -> Option<(&str, &str)> {
    line.split_once("  ").map(|(a, b)| (a.trim(), b.trim()))
}

/// Parses a pci.ids file as 1.12's `loadPCIIds` does (its quirks included).
pub fn parse_pci_ids(text: &str) -> PciIds {
    let mut ids = PciIds::default();
    let (mut vendor, mut device, mut base_class, mut subclass) =
        (String::new(), String::new(), String::new(), String::new());
    let mut in_class = false;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("C ") {
            if let Some((id, name)) = id_name(line) {
                let id = id.strip_prefix('C').unwrap_or(id).trim();
                ids.classes.insert(id.to_string(), name.to_string());
                base_class = id.to_string();
                in_class = true;
            }
            continue;
        }
        let one_tab = line.starts_with('\t') && !line.starts_with("\t\t");
        if one_tab && in_class {
            if let Some((id, name)) = id_name(line.trim_start_matches('\t')) {
                if !base_class.is_empty() {
                    let full = format!("{base_class}{id}");
                    ids.subclasses.insert(full.clone(), name.to_string());
                    subclass = full;
                }
            }
            continue;
        }
        if line.starts_with("\t\t") && !line.starts_with("\t\t\t") && in_class {
            if let Some((id, name)) = id_name(line.get(2..).unwrap_or("")) {
                if !subclass.is_empty() {
                    ids.prog_ifs
                        .insert(format!("{subclass}{id}"), name.to_string());
                }
            }
            continue;
        }
        if !line.starts_with('\t') {
            if let Some((id, name)) = id_name(line) {
                vendor = id.to_string();
                ids.vendors.insert(vendor.clone(), name.to_string());
                device.clear();
                in_class = false;
            }
            continue;
        }
        if one_tab {
            if let Some((id, name)) = id_name(line.get(1..).unwrap_or("")) {
                if !vendor.is_empty() {
                    device = id.to_string();
                    ids.devices
                        .entry(vendor.clone())
                        .or_default()
                        .insert(device.clone(), name.to_string());
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("\t\t") {
            if let Some((id, name)) = id_name(rest) {
                if !vendor.is_empty() && !device.is_empty() {
                    let map = ids
                        .subsystems
                        .entry(format!("{vendor}:{device}"))
                        .or_default();
                    if let [sv, sd] = id.split_whitespace().collect::<Vec<_>>().as_slice() {
                        map.insert(format!("{sv}:{sd}"), name.to_string());
                    }
                }
            }
        }
    }
    ids
}

fn strip0x(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

impl PciIds {
    pub fn vendor_name(&self, vendor_id: &str) -> String {
        let v = strip0x(vendor_id).to_lowercase();
        self.vendors.get(&v).cloned().unwrap_or(v)
    }
    pub fn device_name(&self, vendor_id: &str, device_id: &str) -> String {
        let v = strip0x(vendor_id).to_lowercase();
        let d = strip0x(device_id).to_lowercase();
        self.devices
            .get(&v)
            .and_then(|m| m.get(&d))
            .cloned()
            .unwrap_or(d)
    }
    pub fn subsystem_name(&self, vendor: &str, device: &str, sv: &str, sd: &str) -> String {
        let key = format!("{}:{}", strip0x(vendor), strip0x(device));
        let sub = format!("{}:{}", strip0x(sv), strip0x(sd));
        self.subsystems
            .get(&key)
            .and_then(|m| m.get(&sub))
            .cloned()
            .unwrap_or_else(|| strip0x(sd).to_string())
    }
    pub fn class_name(&self, class_id: &str) -> String {
        let c = strip0x(class_id).to_lowercase();
        for (len, table) in [
            (6, &self.prog_ifs),
            (4, &self.subclasses),
            (2, &self.classes),
        ] {
            if let Some(name) = c.get(..len).and_then(|k| table.get(k)) {
                return name.clone();
            }
        }
        format!("Unknown class ({c})")
    }
}

const POWER_STATES: [&str; 7] = ["D0", "D1", "D2", "D3hot", "D3cold", "unknown", "error"];

/// The families of `devices` (names looked up in `ids` when given).
pub fn families(devices: &[PciDevice], ids: Option<&PciIds>) -> Vec<MetricFamily> {
    let g = MetricFamily::gauge;
    let mut info = g(
        "node_pcidevice_info",
        "Non-numeric data from /sys/bus/pci/devices/<location>, value is always 1.",
    );
    let mut max_ts = g(
        "node_pcidevice_max_link_transfers_per_second",
        "Value of maximum link's transfers per second (T/s)",
    );
    let mut max_w = g(
        "node_pcidevice_max_link_width",
        "Value of maximum link's width (number of lanes)",
    );
    let mut cur_ts = g(
        "node_pcidevice_current_link_transfers_per_second",
        "Value of current link's transfers per second (T/s)",
    );
    let mut cur_w = g(
        "node_pcidevice_current_link_width",
        "Value of current link's width (number of lanes)",
    );
    let mut power = g(
        "node_pcidevice_power_state",
        "PCIe device power state, one of: D0, D1, D2, D3hot, D3cold, unknown or error.",
    );
    let mut d3cold = g(
        "node_pcidevice_d3cold_allowed",
        "Whether the PCIe device supports D3cold power state (0/1).",
    );
    let mut autoprobe = g(
        "node_pcidevice_sriov_drivers_autoprobe",
        "Whether SR-IOV drivers autoprobe is enabled for the device (0/1).",
    );
    let mut numvfs = g(
        "node_pcidevice_sriov_numvfs",
        "Number of Virtual Functions (VFs) currently enabled for SR-IOV.",
    );
    let mut totalvfs = g(
        "node_pcidevice_sriov_totalvfs",
        "Total number of Virtual Functions (VFs) supported by the device.",
    );
    let mut msix = g(
        "node_pcidevice_sriov_vf_total_msix",
        "Total number of MSI-X vectors for Virtual Functions.",
    );
    let mut numa = g(
        "node_pcidevice_numa_node",
        "NUMA node number for the PCI device. -1 indicates unknown or not available.",
    );
    for d in devices {
        let Some(loc) = d.location else { continue };
        let [seg, bus, dev, func] = loc.strings();
        let [pseg, pbus, pdev, pfunc] = match d.parent {
            Some(p) => p.strings(),
            None => ["*", "*", "*", "*"].map(String::from),
        };
        let class_id = format!("0x{:06x}", d.class);
        let vendor_id = format!("0x{:04x}", d.vendor);
        let device_id = format!("0x{:04x}", d.device);
        let sv_id = format!("0x{:04x}", d.subsystem_vendor);
        let sd_id = format!("0x{:04x}", d.subsystem_device);
        let revision = format!("0x{:02x}", d.revision);
        let mut labels: Vec<(&'static str, &str)> = vec![
            ("segment", &seg),
            ("bus", &bus),
            ("device", &dev),
            ("function", &func),
            ("parent_segment", &pseg),
            ("parent_bus", &pbus),
            ("parent_device", &pdev),
            ("parent_function", &pfunc),
            ("class_id", &class_id),
            ("vendor_id", &vendor_id),
            ("device_id", &device_id),
            ("subsystem_vendor_id", &sv_id),
            ("subsystem_device_id", &sd_id),
            ("revision", &revision),
        ];
        let names = ids.map(|ids| {
            [
                ids.vendor_name(&vendor_id),
                ids.device_name(&vendor_id, &device_id),
                ids.vendor_name(&sv_id),
                ids.subsystem_name(&vendor_id, &device_id, &sv_id, &sd_id),
                ids.class_name(&class_id),
            ]
        });
        if let Some([vn, dn, svn, sdn, cn]) = &names {
            labels.extend([
                ("vendor_name", vn.as_str()),
                ("device_name", dn.as_str()),
                ("subsystem_vendor_name", svn.as_str()),
                ("subsystem_device_name", sdn.as_str()),
                ("class_name", cn.as_str()),
            ]);
        }
        info.push(&labels, 1.0);
        let l = [
            ("segment", seg.as_str()),
            ("bus", bus.as_str()),
            ("device", dev.as_str()),
            ("function", func.as_str()),
        ];
        let or_neg = |v: Option<f64>| v.unwrap_or(-1.0);
        max_ts.push(&l, d.max_link_speed.map_or(-1.0, |v| v * 1e9));
        max_w.push(&l, or_neg(d.max_link_width));
        cur_ts.push(&l, d.current_link_speed.map_or(-1.0, |v| v * 1e9));
        cur_w.push(&l, or_neg(d.current_link_width));
        let flag = |b: Option<bool>| if b == Some(true) { 1.0 } else { 0.0 };
        d3cold.push(&l, flag(d.d3cold_allowed));
        autoprobe.push(&l, flag(d.sriov_drivers_autoprobe));
        numvfs.push(&l, d.sriov_numvfs.map_or(0.0, f64::from));
        totalvfs.push(&l, d.sriov_totalvfs.map_or(0.0, f64::from));
        msix.push(&l, d.sriov_vf_total_msix.map_or(0.0, |v| v as f64));
        if let Some(state) = &d.power_state {
            for s in POWER_STATES {
                let mut pl = l.to_vec();
                pl.push(("state", s));
                power.push(&pl, if s == state { 1.0 } else { 0.0 });
            }
        }
        if let Some(n) = d.numa_node.filter(|n| *n != -1) {
            numa.push(&l, f64::from(n));
        }
    }
    nonempty_sorted(vec![
        info, max_ts, max_w, cur_ts, cur_w, d3cold, autoprobe, numvfs, totalvfs, msix, power, numa,
    ])
}

pub fn collector(o: &Options) -> Box<dyn Collector> {
    Box::new(Pcidevice {
        names: o.pcidevice.names.unwrap_or(false),
        ids: OnceLock::new(),
    })
}

pub struct Pcidevice {
    names: bool,
    /// The pci.ids tables, read at the first scrape with names on.
    ids: OnceLock<PciIds>,
}

impl Pcidevice {
    fn ids(&self, paths: &Paths) -> &PciIds {
        self.ids.get_or_init(|| {
            let Some(path) = &paths.collector_files.pci_ids else {
                log::debug!("pcidevice: no pci.ids file found; names are printed as IDs");
                return PciIds::default();
            };
            match fsio::read_to_string(path) {
                Ok(text) => parse_pci_ids(&text),
                Err(e) => {
                    log::debug!("pcidevice: cannot read {}: {e}", path.display());
                    PciIds::default()
                }
            }
        })
    }
}

impl Collector for Pcidevice {
    fn name(&self) -> &'static str {
        "pcidevice"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let dir = paths.sys("bus/pci/devices");
        let rd = crate::collector::read_dir(&dir)
            .map_err(|e| CollectError::io(&dir, e).absent_is_no_data())?;
        let mut devices: BTreeMap<Location, PciDevice> = BTreeMap::new();
        for e in rd {
            let e = e.map_err(|e| CollectError::io(&dir, e))?;
            let path = e.path();
            let target = std::fs::read_link(&path).map_err(|e| CollectError::io(&path, e))?;
            let d = parse_device(&path, &target)?;
            if let Some(loc) = d.location {
                devices.insert(loc, d);
            }
        }
        let devices: Vec<PciDevice> = devices.into_values().collect();
        let ids = self.names.then(|| self.ids(paths));
        Ok(families(&devices, ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::{fixture, fixture_text, sysfs_at};

    fn paths() -> Paths {
        sysfs_at(fixture("ne112", "sys"))
    }

    #[test]
    fn node_exporter_112_e2e_fixture() {
        let c = Pcidevice {
            names: false,
            ids: OnceLock::new(),
        };
        let fams = c.collect(&paths()).expect("collects");
        assert_eq!(ne112::render(&fams), ne112::expected("node_pcidevice_"));
    }

    #[test]
    fn names_as_node_exporter_112_test() {
        // pcidevice_linux_test.go: --collector.pcidevice.names with its fixtures/pci.ids.
        let mut p = paths();
        p.collector_files.pci_ids = Some(fixture("ne112", "pci.ids"));
        let c = Pcidevice {
            names: true,
            ids: OnceLock::new(),
        };
        let fams = c.collect(&p).expect("collects");
        // The file is a commented exposition (GatherAndCompare's input): compare its samples.
        let samples = |text: &str| -> Vec<String> {
            let mut v: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("node_"))
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        let want = samples(&fixture_text("ne112", "pcidevice-names-output.txt"));
        let got = samples(&ne112::render(&fams));
        assert_eq!(got, want);
    }

    #[test]
    fn names_without_a_file_print_ids_as_1_12() {
        let ids = PciIds::default();
        assert_eq!(ids.vendor_name("0x1AF4"), "1af4");
        assert_eq!(ids.device_name("0x1af4", "0x1000"), "1000");
        assert_eq!(
            ids.subsystem_name("0x1af4", "0x1000", "0x1af4", "0x0001"),
            "0001"
        );
        assert_eq!(ids.class_name("0x020000"), "Unknown class (020000)");
    }

    #[test]
    fn locations() {
        let l = Location::parse("0000:45:00.0").expect("parses");
        assert_eq!(l.strings(), ["0000", "45", "00", "0"].map(String::from));
        assert!(Location::parse("0000:45").is_err());
        assert!(Location::parse("0000:45:00").is_err());
        assert!(Location::parse("0000:zz:00.0").is_err());
        assert_eq!(go_hex(-1, 4), "-001");
    }

    #[test]
    fn bad_attribute_fails_and_absent_directory_is_no_data() {
        let dir = crate::collectors::testutil::fixture_copy("ne112", "sys");
        let dev = dir
            .path()
            .join("devices/pci0000:00/0000:00:02.1/0000:01:00.0");
        std::fs::write(dev.join("max_link_speed"), "8.0 GB/s\n").expect("write");
        let c = Pcidevice {
            names: false,
            ids: OnceLock::new(),
        };
        assert!(c.collect(&sysfs_at(dir.path())).is_err());
        let empty = tempfile::tempdir().expect("tempdir");
        let e = c.collect(&sysfs_at(empty.path())).expect_err("no data");
        assert!(e.is_no_data(), "{e}");
    }
}
