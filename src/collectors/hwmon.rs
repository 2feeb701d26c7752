//! `hwmon` collector: hardware sensors from `/sys/class/hwmon`, as node_exporter 1.5's
//! `hwmon_linux.go` (what `lm-sensors` shows).
//!
//! For every chip `/sys/class/hwmon/hwmonN` (a symlink to a directory; anything else is
//! skipped):
//!
//! - the chip label: `<bus>_<device>` from where the `device` link resolves
//!   (`platform_coretemp_0`), else the cleaned `name` file, else the cleaned directory name
//!   (`hwmon4`); cleaned means lower-cased, `[^a-z0-9:_]` → `_`, `_` trimmed;
//! - `node_hwmon_chip_names{chip,chip_name}` when the chip has a `name` file;
//! - the sensor files (`<type><n>[_<property>]`, types `vrm beep_enable update_interval in cpu
//!   fan pwm temp curr power energy humidity intrusion freq`) of the chip directory and of its
//!   `device` directory (older drivers), each read with one `read(2)` of at most 128 bytes
//!   (some drivers answer `EAGAIN`; an unreadable file is skipped);
//! - `node_hwmon_sensor_label{chip,label,sensor}` for every `*_label` file, its text as is
//!   (invalid UTF-8 replaced), as node_exporter 1.5;
//! - one family per type and property, with node_exporter's names, units (millivolts → volts,
//!   millidegrees → °C, microwatts → W, …) and help texts (`node_hwmon_temp_celsius`,
//!   `node_hwmon_fan_rpm`, `node_hwmon_in_volts`, `node_hwmon_pwm`, …); a value that is not a
//!   number is skipped.
//!
//! node_exporter 1.12 semantics: chips that share a label (one parent device with several
//! hwmon nodes) get `_<name>` appended (or `_<hwmonN>` when the `name` is empty or shared
//! too); `--collector.hwmon.chip-include` / `-exclude` filter on that final label,
//! `--collector.hwmon.sensor-include` / `-exclude` on `<chip>;<sensor>`; `freq<n>_input` with a
//! label is `node_hwmon_freq_freq_mhz{chip,sensor=<cleaned label>}` in MHz.
//!
//! A missing `/sys/class/hwmon` fails the collector (node_exporter's `ErrNoData`:
//! `node_scrape_collector_success 0`), as on this VM. Partial output as node_exporter's
//! (current `hwmon_linux.go`): a chip whose directory (or `device` directory) cannot be listed
//! is skipped, the others are still served, and the collector fails with the last such error
//! (chips in name order, as Go's `os.ReadDir`).
//!
//! System calls beyond open/read/close/getdents: `readlink`/`newfstatat` (resolving the chip
//! and `device` links with `realpath`).
//!
//! This module also holds small sysfs helpers used by the other collectors of the same
//! hardware group (`to_valid_utf8`, `read_trimmed`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use super::options::{collector_options, Pattern};
use super::{CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::{sort_samples, MetricFamily};

// ---------------------------------------------------------------------------------------------
// Helpers shared by the hardware collectors.

/// Go's `strings.ToValidUTF8(s, "\u{FFFD}")`: each run of invalid bytes becomes one U+FFFD.
pub(crate) fn to_valid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut in_invalid_run = false;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.is_empty() {
            out.push_str(valid);
            in_invalid_run = false;
        }
        if !chunk.invalid().is_empty() {
            if !in_invalid_run {
                out.push('\u{FFFD}');
            }
            in_invalid_run = true;
        }
    }
    out
}

/// Reads a sysfs attribute as procfs' `SysReadFile` does: the whole (small) file, surrounding
/// whitespace trimmed, invalid UTF-8 replaced.
pub(crate) fn read_trimmed(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::with_capacity(64);
    super::fsio::read_into(path, &mut bytes)?;
    Ok(to_valid_utf8(bytes.trim_ascii()))
}

// ---------------------------------------------------------------------------------------------

const SENSOR_TYPES: [&str; 14] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
    "freq",
];

/// node_exporter's `cleanMetricName`: lower-case, every char outside `[a-z0-9:_]` → `_`, then
/// leading and trailing `_` trimmed.
pub fn clean_name(s: &str) -> String {
    let replaced: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_string()
}

/// Splits a sensor file name as node_exporter's `^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$`
/// (with the regex engine's backtracking): `temp1_input` → (`temp`, 1, `input`),
/// `update_interval` → (`update_interval`, 0, ``). `None` when it does not match.
pub fn explode_sensor_filename(name: &str) -> Option<(&str, u64, &str)> {
    let b = name.as_bytes();
    let type_end = b.iter().take_while(|c| !c.is_ascii_digit()).count();
    if type_end == 0 {
        return None;
    }
    // The offsets below follow ASCII digits and `_`: `get` never misses a boundary.
    let (prefix, after) = (name.get(..type_end)?, name.get(type_end..)?);
    let digits_end = after.bytes().take_while(|c| c.is_ascii_digit()).count();
    let (digits, rest) = (after.get(..digits_end)?, after.get(digits_end..)?);
    let prop_ok = |r: &str| r.is_empty() || (r.len() > 1 && r.starts_with('_'));
    if prop_ok(rest) {
        let id = if digits.is_empty() {
            0
        } else {
            digits.parse::<u64>().ok()?
        };
        return Some((prefix, id, rest.get(1..).unwrap_or("")));
    }
    // Backtracking: a shorter type ending just before an `_` of the non-digit prefix, no id.
    for (i, _) in prefix
        .match_indices('_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if i > 0 && name.len() > i + 1 {
            return Some((name.get(..i)?, 0, name.get(i + 1..)?));
        }
    }
    None
}

/// Sensor → property → raw value (the file's text without newlines).
type SensorData = BTreeMap<String, HashMap<String, String>>;

/// One `read(2)` of at most 128 bytes, as node_exporter's `sysReadFile` (a driver answering
/// `EAGAIN` fails the read instead of spinning).
fn sys_read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = super::fsio::open_regular(path)?;
    let mut buf = vec![0u8; 128];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn collect_sensor_data(dir: &Path, data: &mut SensorData) -> std::io::Result<()> {
    for entry in crate::collector::read_dir(dir)? {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some((stype, num, prop)) = explode_sensor_filename(fname) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&stype) {
            continue;
        }
        let Ok(raw) = sys_read_file(&entry.path()) else {
            continue;
        };
        let value = to_valid_utf8(&raw).trim_matches('\n').to_string();
        data.entry(format!("{stype}{num}"))
            .or_default()
            .insert(prop.to_string(), value);
    }
    Ok(())
}

/// node_exporter's `hwmonName`: the chip label.
fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let dev_name = dev.file_name().map(|n| clean_name(&n.to_string_lossy()));
        let dev_type = dev
            .parent()
            .and_then(Path::file_name)
            .map(|n| clean_name(&n.to_string_lossy()));
        match (dev_type, dev_name) {
            (Some(t), Some(n)) if !t.is_empty() && !n.is_empty() => {
                return Some(format!("{t}_{n}"))
            }
            (_, Some(n)) if !n.is_empty() => return Some(n),
            _ => {}
        }
    }
    if let Some(n) = human_chip_name(dir) {
        return Some(n);
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let n = clean_name(&real.file_name()?.to_string_lossy());
    (!n.is_empty()).then_some(n)
}

/// node_exporter's `hwmonHumanReadableChipName`: the cleaned `name` file.
fn human_chip_name(dir: &Path) -> Option<String> {
    let raw = super::fsio::read(dir.join("name")).ok()?;
    let n = clean_name(&String::from_utf8_lossy(&raw));
    (!n.is_empty()).then_some(n)
}

/// Builds the families of all chips. `chips` holds (chip label, human-readable name, sensor
/// data).
#[derive(Default)]
struct Families(BTreeMap<String, MetricFamily>);

impl Families {
    fn push(
        &mut self,
        name: String,
        help: impl FnOnce() -> String,
        counter: bool,
        labels: &[(&'static str, &str)],
        v: f64,
    ) {
        let fam = self.0.entry(name).or_insert_with_key(|name| {
            if counter {
                MetricFamily::counter(name.clone(), help())
            } else {
                MetricFamily::gauge(name.clone(), help())
            }
        });
        fam.push(labels, v);
    }
}

/// The families for one chip's sensor data, added to `out`; sensors whose `<chip>;<sensor>`
/// the filter ignores are left out (node_exporter 1.12's sensor filter).
fn chip_families(
    out: &mut Families,
    chip: &str,
    human: Option<&str>,
    data: &SensorData,
    sensors: &DeviceFilter,
) {
    if let Some(h) = human {
        out.push(
            "node_hwmon_chip_names".into(),
            || "Annotation metric for human-readable chip names".into(),
            false,
            &[("chip", chip), ("chip_name", h)],
            1.0,
        );
    }
    for (sensor, props) in data {
        if sensors.ignored(&format!("{chip};{sensor}")) {
            continue;
        }
        let Some((stype, _, _)) = explode_sensor_filename(sensor) else {
            continue;
        };
        let labels = [("chip", chip), ("sensor", sensor.as_str())];
        if let Some(label) = props.get("label") {
            out.push(
                "node_hwmon_sensor_label".into(),
                || "Label for given chip and sensor".into(),
                false,
                &[("chip", chip), ("label", label), ("sensor", sensor)],
                1.0,
            );
        }
        let plain = props.get("");
        match stype {
            "beep_enable" => {
                let v = if plain.map(String::as_str) == Some("1") {
                    1.0
                } else {
                    0.0
                };
                out.push(
                    "node_hwmon_beep_enabled".into(),
                    || "Hardware beep enabled".into(),
                    false,
                    &labels,
                    v,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = plain.and_then(|p| parse_go_float(p)) {
                    out.push(
                        "node_hwmon_voltage_regulator_version".into(),
                        || "Hardware voltage regulator".into(),
                        false,
                        &labels,
                        v,
                    );
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = plain.and_then(|p| parse_go_float(p)) {
                    out.push(
                        "node_hwmon_update_interval_seconds".into(),
                        || "Hardware monitor update interval".into(),
                        false,
                        &labels,
                        v * 0.001,
                    );
                }
                continue;
            }
            _ => {}
        }
        let prefix = format!("node_hwmon_{stype}");
        for (element, value) in props {
            if element == "label" {
                continue;
            }
            let mut name = prefix.clone();
            if element == "input" {
                if plain.is_some() {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                name.push_str(&clean_name(element));
            }
            let Some(v) = parse_go_float(value) else {
                continue;
            };
            let el = element.as_str();
            let (name, help, counter, v): (String, String, bool, f64) =
                if el == "fault" || el == "alarm" {
                    (
                        name,
                        format!("Hardware sensor {el} status ({stype})"),
                        false,
                        v,
                    )
                } else if el == "beep" {
                    (
                        name + "_enabled",
                        "Hardware monitor sensor has beeping enabled".into(),
                        false,
                        v,
                    )
                } else if stype == "in" || stype == "cpu" {
                    (
                        name + "_volts",
                        format!("Hardware monitor for voltage ({el})"),
                        false,
                        v * 0.001,
                    )
                } else if stype == "temp" && el != "type" {
                    let el = if el.is_empty() { "input" } else { el };
                    (
                        name + "_celsius",
                        format!("Hardware monitor for temperature ({el})"),
                        false,
                        v * 0.001,
                    )
                } else if stype == "curr" {
                    (
                        name + "_amps",
                        format!("Hardware monitor for current ({el})"),
                        false,
                        v * 0.001,
                    )
                } else if stype == "energy" {
                    (
                        name + "_joule_total",
                        format!("Hardware monitor for joules used so far ({el})"),
                        true,
                        v / 1_000_000.0,
                    )
                } else if stype == "power" && el == "accuracy" {
                    (
                        name,
                        "Hardware monitor power meter accuracy, as a ratio".into(),
                        false,
                        v / 1_000_000.0,
                    )
                } else if stype == "power"
                    && matches!(
                        el,
                        "average_interval" | "average_interval_min" | "average_interval_max"
                    )
                {
                    (
                        name + "_seconds",
                        format!("Hardware monitor power usage update interval ({el})"),
                        false,
                        v * 0.001,
                    )
                } else if stype == "power" {
                    (
                        name + "_watt",
                        format!("Hardware monitor for power usage in watts ({el})"),
                        false,
                        v / 1_000_000.0,
                    )
                } else if stype == "humidity" {
                    (
                        name,
                        format!(
                        "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get \
                         the humidity as a percentage) ({el})"
                    ),
                        false,
                        v / 1_000_000.0,
                    )
                } else if stype == "freq" {
                    // node_exporter 1.12: `freq<n>_input` only, with a label, exported as
                    // MHz under the cleaned label as `sensor`.
                    if el == "input" {
                        if let Some(label) = props.get("label") {
                            let sensor = clean_name(label);
                            out.push(
                                name + "_freq_mhz",
                                || "Hardware monitor for GPU frequency in MHz".into(),
                                false,
                                &[("chip", chip), ("sensor", sensor.as_str())],
                                v / 1_000_000.0,
                            );
                        }
                    }
                    continue;
                } else if stype == "fan" && matches!(el, "input" | "min" | "max" | "target") {
                    (
                        name + "_rpm",
                        format!("Hardware monitor for fan revolutions per minute ({el})"),
                        false,
                        v,
                    )
                } else {
                    (
                        name,
                        format!("Hardware monitor {stype} element {el}"),
                        false,
                        v,
                    )
                };
            out.push(name, || help, counter, &labels, v);
        }
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the values sysfs prints: decimal numbers, `inf`,
/// `nan` (any case); no surrounding blanks.
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(char::is_whitespace)
    {
        return None;
    }
    s.parse::<f64>().ok()
}

collector_options! {
    /// Options of the hwmon collector (`[collector.hwmon]` in the file).
    pub struct HwmonOptions {
        /// Regexp of hwmon chip to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.hwmon.chip-include", long = "collector.hwmon.chip-include", value_name = "REGEX")]
        pub chip_include: Option<Pattern>,
        /// Regexp of hwmon chip to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.hwmon.chip-exclude", long = "collector.hwmon.chip-exclude", value_name = "REGEX")]
        pub chip_exclude: Option<Pattern>,
        /// Regexp of hwmon sensor to include (mutually exclusive to sensor-exclude).
        #[arg(id = "collector.hwmon.sensor-include", long = "collector.hwmon.sensor-include", value_name = "REGEX")]
        pub sensor_include: Option<Pattern>,
        /// Regexp of hwmon sensor to exclude (mutually exclusive to sensor-include).
        #[arg(id = "collector.hwmon.sensor-exclude", long = "collector.hwmon.sensor-exclude", value_name = "REGEX")]
        pub sensor_exclude: Option<Pattern>,
    }
}

/// node_exporter's `newDeviceFilter(exclude, include)`: both patterns apply when both are set.
fn both(include: &Option<Pattern>, exclude: &Option<Pattern>) -> DeviceFilter {
    DeviceFilter {
        include: include.as_ref().map(|p| p.0.clone()),
        exclude: exclude.as_ref().map(|p| p.0.clone()),
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.hwmon;
    Box::new(Hwmon {
        chips: both(&o.chip_include, &o.chip_exclude),
        sensors: both(&o.sensor_include, &o.sensor_exclude),
    })
}

#[derive(Default)]
struct Hwmon {
    chips: DeviceFilter,
    sensors: DeviceFilter,
}

impl Collector for Hwmon {
    fn name(&self) -> &'static str {
        "hwmon"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let class = paths.sys("class/hwmon");
        let entries = crate::collector::read_dir(&class)
            .map_err(|e| CollectError::io(&class, e).absent_is_no_data())?;
        let mut dirs = Vec::new();
        for entry in entries {
            dirs.push(entry.map_err(|e| CollectError::io(&class, e))?.path());
        }
        dirs.sort_unstable();
        // Pass 1 (node_exporter 1.12): every chip directory with its device-derived label and
        // its `name` file, to tell apart chips that share a parent device (asus-nb-wmi's two
        // hwmon nodes, a wifi card's one per radio).
        let mut chips = Vec::new();
        for dir in dirs {
            // Follows a symlink; anything that is not (or does not lead to) a directory is
            // skipped.
            if !crate::collector::is_dir(&dir) {
                continue;
            }
            let Some(base) = chip_name(&dir) else {
                continue;
            };
            let name_file = super::fsio::read(dir.join("name"))
                .map(|raw| String::from_utf8_lossy(&raw).trim().to_string())
                .unwrap_or_default();
            chips.push((dir, base, name_file));
        }
        let mut base_count: HashMap<&str, usize> = HashMap::new();
        let mut name_count: HashMap<(&str, &str), usize> = HashMap::new();
        for (_, base, name_file) in &chips {
            *base_count.entry(base).or_default() += 1;
            *name_count.entry((base, name_file)).or_default() += 1;
        }
        // Pass 2: a unique label per chip (a colliding label gets the chip's `name`, or its
        // `hwmonN` when that is empty or shared too), then the chip filter on that label.
        let mut out = Families::default();
        let mut last_error = None;
        for (dir, base, name_file) in &chips {
            let mut chip = base.clone();
            if base_count.get(base.as_str()).copied().unwrap_or(0) > 1 {
                let mut suffix = clean_name(name_file);
                if suffix.is_empty()
                    || name_count
                        .get(&(base.as_str(), name_file.as_str()))
                        .copied()
                        .unwrap_or(0)
                        > 1
                {
                    suffix = dir
                        .file_name()
                        .map(|n| clean_name(&n.to_string_lossy()))
                        .unwrap_or_default();
                }
                chip = format!("{base}_{suffix}");
            }
            if self.chips.ignored(&chip) {
                continue;
            }
            let mut data = SensorData::new();
            if let Err(e) = collect_sensor_data(dir, &mut data) {
                last_error = Some(CollectError::io(dir, e));
                continue;
            }
            let device = dir.join("device");
            if crate::collector::metadata(&device).is_ok() {
                if let Err(e) = collect_sensor_data(&device, &mut data) {
                    last_error = Some(CollectError::io(&device, e));
                    continue;
                }
            }
            let human = human_chip_name(dir);
            chip_families(&mut out, &chip, human.as_deref(), &data, &self.sensors);
        }
        let fams = out
            .0
            .into_values()
            .map(|mut f| {
                sort_samples(&mut f);
                f
            })
            .collect();
        match last_error {
            None => Ok(fams),
            Some(e) => Err(CollectError::partial(fams, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;
    use regex::Regex;

    #[test]
    fn filenames() {
        assert_eq!(
            explode_sensor_filename("temp1_input"),
            Some(("temp", 1, "input"))
        );
        assert_eq!(explode_sensor_filename("in0_min"), Some(("in", 0, "min")));
        assert_eq!(explode_sensor_filename("pwm1"), Some(("pwm", 1, "")));
        assert_eq!(
            explode_sensor_filename("update_interval"),
            Some(("update_interval", 0, ""))
        );
        assert_eq!(
            explode_sensor_filename("power1_average_interval_max"),
            Some(("power", 1, "average_interval_max"))
        );
        assert_eq!(explode_sensor_filename("temp01"), Some(("temp", 1, "")));
        // Backtracking of the regex: `temp_x1y` is type `temp`, property `x1y`.
        assert_eq!(
            explode_sensor_filename("temp_x1y"),
            Some(("temp", 0, "x1y"))
        );
        assert_eq!(explode_sensor_filename("in0x"), None);
        assert_eq!(explode_sensor_filename("temp1_"), None);
        assert_eq!(explode_sensor_filename("1abc"), None);
        assert_eq!(explode_sensor_filename(""), None);
    }

    #[test]
    fn cleaning_and_utf8() {
        assert_eq!(clean_name("applesmc.768"), "applesmc_768");
        assert_eq!(clean_name("coretemp\n"), "coretemp");
        assert_eq!(clean_name("__A-b__"), "a_b");
        assert_eq!(to_valid_utf8(b"a\xff\xfeb"), "a\u{FFFD}b");
        assert_eq!(to_valid_utf8(b"a\xffb\xffc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(to_valid_utf8("ok é".as_bytes()), "ok é");
        assert_eq!(parse_go_float("1150"), Some(1150.0));
        assert_eq!(parse_go_float("N/A"), None);
        assert_eq!(parse_go_float(" 1"), None);
    }

    /// The fixture tree (five chips modelled on real ones: applesmc, coretemp with sensors in
    /// the device directory, acpitz without device, an nct6779 super-I/O with every sensor type,
    /// a nameless chip) against node_exporter 1.5.0's output for the same tree.
    #[test]
    fn fixture_matches_node_exporter() {
        let fams = Hwmon::default().collect(&paths()).expect("collects");
        assert_eq!(encoded(fams), golden(&["node_hwmon_"]));
    }

    /// Partial output as node_exporter's: a chip whose `device` is a file (listing it fails)
    /// is skipped, every other chip is kept, and the collector fails naming it.
    #[test]
    fn partial_output_keeps_the_other_chips() {
        let tree = crate::collectors::testutil::fixture_copy("hw", "sys");
        let broken = tree.path().join("devices/virtual/hwmon/hwmon9");
        std::fs::create_dir_all(&broken).expect("mkdir");
        std::fs::write(broken.join("name"), "broken\n").expect("write");
        std::fs::write(broken.join("temp1_input"), "42000\n").expect("write");
        std::fs::write(broken.join("device"), "not a directory\n").expect("write");
        std::os::unix::fs::symlink(
            "../../devices/virtual/hwmon/hwmon9",
            tree.path().join("class/hwmon/hwmon9"),
        )
        .expect("symlink");
        let o = crate::collector::run(
            &Hwmon::default(),
            &crate::collectors::testutil::sysfs_at(tree.path()),
        );
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("hwmon9/device"), "{err}");
        let whole = Hwmon::default().collect(&paths()).expect("collects");
        assert_eq!(
            o.families, whole,
            "every other chip, as on the unbroken tree"
        );
    }

    /// node_exporter 1.12's chip labels: two hwmon nodes of one device (its fixture's
    /// asus-nb-wmi) get their `name` appended; the chip filter sees the final label; a labelled
    /// `freq1_input` is MHz under the cleaned label.
    #[test]
    fn shared_device_chips_node_exporter_112() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let dev = root.join("devices/platform/asus-nb-wmi");
        std::fs::create_dir_all(&dev).expect("mkdir");
        let class = root.join("class/hwmon");
        for (h, name) in [("hwmon2", "asus"), ("hwmon3", "asus_wmi_sensors")] {
            let d = root.join("devices/virtual/hwmon").join(h);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("name"), format!("{name}\n")).expect("write");
            std::fs::write(d.join("pwm1_enable"), "2\n").expect("write");
            std::os::unix::fs::symlink(&dev, d.join("device")).expect("symlink");
            std::fs::create_dir_all(&class).expect("mkdir");
            std::os::unix::fs::symlink(&d, class.join(h)).expect("symlink");
        }
        let gpu = root.join("devices/virtual/hwmon/hwmon4");
        std::fs::create_dir_all(&gpu).expect("mkdir");
        std::fs::write(gpu.join("freq1_input"), "214000000\n").expect("write");
        std::fs::write(gpu.join("freq1_label"), "sclk\n").expect("write");
        std::os::unix::fs::symlink(&gpu, class.join("hwmon4")).expect("symlink");
        let paths = crate::collectors::testutil::sysfs_at(root);
        let series = |h: Hwmon| -> Vec<String> {
            let mut out = Vec::new();
            for f in h.collect(&paths).expect("collects") {
                for s in f.samples {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push(format!("{}{{{}}} {}", f.name, l.join(","), s.value));
                }
            }
            out
        };
        let all = series(Hwmon::default());
        for want in [
            "node_hwmon_pwm_enable{chip=platform_asus_nb_wmi_asus,sensor=pwm1} 2",
            "node_hwmon_pwm_enable{chip=platform_asus_nb_wmi_asus_wmi_sensors,sensor=pwm1} 2",
            "node_hwmon_chip_names{chip=platform_asus_nb_wmi_asus_wmi_sensors,chip_name=asus_wmi_sensors} 1",
            "node_hwmon_freq_freq_mhz{chip=hwmon4,sensor=sclk} 214",
            "node_hwmon_sensor_label{chip=hwmon4,label=sclk,sensor=freq1} 1",
        ] {
            assert!(all.iter().any(|s| s == want), "{want} not in {all:#?}");
        }
        let re = |s: &str| Some(Regex::new(s).expect("regex"));
        let only = series(Hwmon {
            chips: DeviceFilter {
                include: re("^platform_asus_nb_wmi_asus$"),
                exclude: None,
            },
            sensors: DeviceFilter::default(),
        });
        assert!(
            only.iter()
                .all(|s| s.contains("chip=platform_asus_nb_wmi_asus,")),
            "{only:#?}"
        );
        let no_pwm = series(Hwmon {
            chips: DeviceFilter::default(),
            sensors: DeviceFilter {
                include: None,
                exclude: re(";pwm1$"),
            },
        });
        assert!(!no_pwm.iter().any(|s| s.contains("pwm")), "{no_pwm:#?}");
    }

    #[test]
    fn absent_class_fails() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(Hwmon::default().collect(&p).is_err());
    }
}
