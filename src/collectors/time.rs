//! `time` collector, as node_exporter 1.5's `time.go`/`time_linux.go`:
//!
//! - `node_time_seconds`: the system time;
//! - `node_time_zone_offset_seconds{time_zone}`: the local zone's abbreviation and UTC offset
//!   (what Go's `time.Now().Zone()` gives: `TZ`, else `/etc/localtime`, else UTC);
//! - `node_time_clocksource_available_info{clocksource,device}` and
//!   `node_time_clocksource_current_info{clocksource,device}` from
//!   `/sys/devices/system/clocksource/clocksource*/`. As in node_exporter, `device` is the
//!   directory's index in lexical order (`clocksource0` → `0` in practice).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{read_to_string, CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

/// One `clocksourceN` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSource {
    pub available: Vec<String>,
    pub current: String,
}

/// Parses a clocksource directory's `available_clocksource` (space-separated) and
/// `current_clocksource` files.
pub fn parse_clocksource(available: &str, current: &str) -> Result<ClockSource, String> {
    let current = current.trim();
    if current.is_empty() || current.contains(char::is_whitespace) {
        return Err(format!("bad current_clocksource {current:?}"));
    }
    Ok(ClockSource {
        available: available
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        current: current.to_string(),
    })
}

/// The two clocksource families, samples sorted by (clocksource, device) as node_exporter's
/// output is.
pub fn clocksource_families(sources: &[ClockSource]) -> [MetricFamily; 2] {
    let mut avail: Vec<(&str, String)> = Vec::new();
    let mut current: Vec<(&str, String)> = Vec::new();
    for (i, cs) in sources.iter().enumerate() {
        for a in &cs.available {
            avail.push((a, i.to_string()));
        }
        current.push((&cs.current, i.to_string()));
    }
    let fill = |mut fam: MetricFamily, mut v: Vec<(&str, String)>| {
        v.sort();
        for (cs, dev) in v {
            fam.push(&[("clocksource", cs), ("device", &dev)], 1.0);
        }
        fam
    };
    [
        fill(
            MetricFamily::gauge(
                "node_time_clocksource_available_info",
                "Available clocksources read from '/sys/devices/system/clocksource'.",
            ),
            avail,
        ),
        fill(
            MetricFamily::gauge(
                "node_time_clocksource_current_info",
                "Current clocksource read from '/sys/devices/system/clocksource'.",
            ),
            current,
        ),
    ]
}

/// `node_time_seconds` and `node_time_zone_offset_seconds`.
pub fn time_families(now: f64, zone: &str, offset: i64) -> [MetricFamily; 2] {
    [
        MetricFamily::gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
        )
        .with(&[], now),
        MetricFamily::gauge(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
        )
        .with(&[("time_zone", zone)], offset as f64),
    ]
}

/// The local time zone's abbreviation and offset from UTC (seconds east) at `secs`.
pub fn local_zone(secs: i64) -> Result<(String, i64), CollectError> {
    let t: libc::time_t = secs;
    // SAFETY: `libc::tm` is a plain C struct of integers and a pointer, for which all-zero bytes
    // are a valid value (the pointer null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call's duration: `t` and `tm` are live locals, and
    // `localtime_r` is the reentrant form, writing only to `tm`.
    let res = unsafe { libc::localtime_r(&t, &mut tm) };
    if res.is_null() {
        return Err(CollectError::Other(format!(
            "localtime_r: {}",
            std::io::Error::last_os_error()
        )));
    }
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc and musl point `tm_zone` at a NUL-terminated abbreviation in their own
        // time zone storage, which stays valid (it is only replaced on a later `tzset` with a
        // changed `TZ`, which this program never does); it is copied out at once.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((zone, tm.tm_gmtoff))
}

/// Reads `clocksource[0-9]*` directories in lexical order (node_exporter's glob). No
/// clocksource directory (no sysfs) means none; a clocksource directory without its files is an
/// error, as in node_exporter.
fn read_clocksources(dir: &Path) -> Result<Vec<ClockSource>, CollectError> {
    let entries = match crate::collector::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CollectError::io(dir, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("clocksource")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    names.sort_unstable();
    names
        .iter()
        .map(|name| {
            let d = dir.join(name);
            let available = read_to_string(&d.join("available_clocksource"))?;
            let current_path = d.join("current_clocksource");
            let current = read_to_string(&current_path)?;
            parse_clocksource(&available, &current)
                .map_err(|msg| CollectError::parse(&current_path, msg))
        })
        .collect()
}

pub struct Time;

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| CollectError::Other(format!("system time before 1970: {e}")))?;
        let (zone, offset) = local_zone(now.as_secs() as i64)?;
        let [seconds, zone] = time_families(now.as_secs_f64(), &zone, offset);
        let sources = read_clocksources(&paths.sys("devices/system/clocksource"))?;
        let [available, current] = clocksource_families(&sources);
        // Sorted by name, as node_exporter's output; empty families are left out.
        Ok([available, current, seconds, zone]
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "tests/fixtures/hosts/debian12-vm-6.18/sys/devices/system/clocksource";

    fn labels(fam: &MetricFamily) -> Vec<(String, String)> {
        fam.samples
            .iter()
            .map(|s| (s.labels[0].1.to_string(), s.labels[1].1.to_string()))
            .collect()
    }

    #[test]
    fn debian12_clocksource() {
        let cs = parse_clocksource(
            include_str!(
                "../../tests/fixtures/hosts/debian12-vm-6.18/sys/devices/system/clocksource/clocksource0/available_clocksource"
            ),
            include_str!(
                "../../tests/fixtures/hosts/debian12-vm-6.18/sys/devices/system/clocksource/clocksource0/current_clocksource"
            ),
        )
        .expect("parses");
        assert_eq!(cs.available, ["tsc", "kvm-clock"]);
        assert_eq!(cs.current, "tsc");
        let [avail, current] = clocksource_families(&[cs]);
        let l = |a: &str, b: &str| (a.to_string(), b.to_string());
        // Sorted by clocksource name, as node_exporter's output.
        assert_eq!(labels(&avail), [l("kvm-clock", "0"), l("tsc", "0")]);
        assert_eq!(labels(&current), [l("tsc", "0")]);
        assert_eq!(avail.samples[0].labels[0].0, "clocksource");
        assert_eq!(avail.samples[0].labels[1].0, "device");
        assert_eq!(
            current.help,
            "Current clocksource read from '/sys/devices/system/clocksource'."
        );
    }

    #[test]
    fn garbled_clocksource() {
        assert!(parse_clocksource("tsc\n", "\n").is_err());
        assert!(parse_clocksource("tsc\n", "tsc hpet\n").is_err());
        assert!(parse_clocksource("", "tsc\n").is_ok());
    }

    #[test]
    fn fixture_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sources = read_clocksources(&root.join(HOST)).expect("reads");
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].current, "tsc");
        assert!(read_clocksources(Path::new("/nonexistent/clocksource"))
            .expect("absent is empty")
            .is_empty());
        // A clocksource directory without its files is an error.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("clocksource0")).expect("mkdir");
        assert!(read_clocksources(dir.path()).is_err());
    }

    #[test]
    fn zone() {
        let [secs, zone] = time_families(1_700_000_000.25, "CET", 3600);
        assert_eq!(secs.samples[0].value, 1_700_000_000.25);
        assert_eq!(zone.samples[0].labels[0].0, "time_zone");
        assert_eq!(zone.samples[0].labels[0].1, "CET");
        assert_eq!(zone.samples[0].value, 3600.0);
        assert_eq!(zone.help, "System time zone offset in seconds.");
    }

    #[test]
    fn live() {
        let fams = Time.collect(&Paths::default()).expect("collects");
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        for want in ["node_time_seconds", "node_time_zone_offset_seconds"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // Every Linux kernel has clocksource0 in sysfs: its absence fails loudly.
        assert!(
            Path::new("/sys/devices/system/clocksource/clocksource0").is_dir(),
            "/sys/devices/system/clocksource/clocksource0 is missing (is sysfs mounted?): the \
             live check of the time collector needs it"
        );
        assert!(names.contains(&"node_time_clocksource_current_info"));
        assert!(names.contains(&"node_time_clocksource_available_info"));
        let now = fams
            .iter()
            .find(|f| f.name == "node_time_seconds")
            .map(|f| f.samples[0].value)
            .unwrap_or(0.0);
        assert!(now > 1.6e9);
        let (zone, offset) = local_zone(now as i64).expect("zone");
        assert!(!zone.is_empty());
        assert!(offset.abs() <= 14 * 3600);
    }
}
