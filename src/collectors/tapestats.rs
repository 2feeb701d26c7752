//! `tapestats` collector: node_exporter 1.5's `tapestats_linux.go` over prometheus/procfs 0.8's
//! `sysfs.SCSITapeClass`.
//!
//! For every `st<N>` entry of `/sys/class/scsi_tape` (the rewinding device; the `nst*` and
//! mode variants `st0a`, `st0l`, … share its counters and are skipped, as procfs does), the ten
//! files of its `stats/` directory become `node_tape_*{device}`: `io_now` (gauge),
//! `io_time_seconds_total`, `io_others_total`, `read_bytes_total`, `reads_completed_total`,
//! `read_time_seconds_total`, `residual_total`, `written_bytes_total`,
//! `writes_completed_total`, `write_time_seconds_total` (counters; nanoseconds converted to
//! seconds). A counter file the kernel does not provide counts 0.
//!
//! Absent `/sys/class/scsi_tape` (no `st` driver): node_exporter returns `ErrNoData`, reported
//! as `node_scrape_collector_success 0`; so do we (an `Err`). An unreadable `stats` directory or
//! a value that is not an unsigned number (Go's `ParseUint(s, 0, 64)`: decimal, `0x`, `0o`,
//! `0b` or a leading-`0` octal) fails the collector, as in procfs.
//!
//! `--collector.tapestats.ignored-devices` (node_exporter 1.12; default `^$`, which never
//! matches an `st<N>` name): a regexp, unanchored, on the device name; matching devices are
//! left out after every device was read (procfs reads the whole class first). As 1.12 it is a
//! plain regexp, not a device filter: an empty value matches every device.

use std::path::Path;

use regex::Regex;

use super::nvme::sys_read_file;
use super::options::{collector_options, Pattern};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// node_exporter's default `--collector.tapestats.ignored-devices`.
pub const DEFAULT_IGNORED_DEVICES: &str = "^$";

collector_options! {
    /// Options of the tapestats collector (`[collector.tapestats]` in the file).
    pub struct TapestatsOptions {
        /// Regexp of devices to ignore for tapestats [default: ^$].
        #[arg(id = "collector.tapestats.ignored-devices", long = "collector.tapestats.ignored-devices", value_name = "REGEX")]
        pub ignored_devices: Option<Pattern>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    match &opts.tapestats.ignored_devices {
        Some(p) => Box::new(Tapestats::ignoring(p.0.clone())),
        // The default `^$` never matches a device name: no pattern to run.
        None => Box::new(Tapestats { ignored: None }),
    }
}

/// The collector, with node_exporter's `--collector.tapestats.ignored-devices` pattern.
pub struct Tapestats {
    ignored: Option<Regex>,
}

impl Tapestats {
    /// A collector skipping the devices whose name matches `pattern`.
    pub fn ignoring(pattern: Regex) -> Self {
        Tapestats {
            ignored: Some(pattern),
        }
    }
}

/// The counters of one tape device, in `stats/` file order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub in_flight: u64,
    pub io_ns: u64,
    pub other_cnt: u64,
    pub read_byte_cnt: u64,
    pub read_cnt: u64,
    pub read_ns: u64,
    pub resid_cnt: u64,
    pub write_byte_cnt: u64,
    pub write_cnt: u64,
    pub write_ns: u64,
}

impl Counters {
    fn slot(&mut self, file: &str) -> Option<&mut u64> {
        Some(match file {
            "in_flight" => &mut self.in_flight,
            "io_ns" => &mut self.io_ns,
            "other_cnt" => &mut self.other_cnt,
            "read_byte_cnt" => &mut self.read_byte_cnt,
            "read_cnt" => &mut self.read_cnt,
            "read_ns" => &mut self.read_ns,
            "resid_cnt" => &mut self.resid_cnt,
            "write_byte_cnt" => &mut self.write_byte_cnt,
            "write_cnt" => &mut self.write_cnt,
            "write_ns" => &mut self.write_ns,
            _ => return None,
        })
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (without `_` digit separators, which sysfs never prints).
pub fn parse_uint_base0(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r, 2)
    } else if s.len() > 1 && s.starts_with('0') {
        (s.get(1..).unwrap_or_default(), 8)
    } else {
        (s, 10)
    };
    // from_str_radix accepts a leading '+', ParseUint does not.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `^st[0-9]+$`, procfs' filter of `class/scsi_tape` entries.
fn is_st_device(name: &str) -> bool {
    name.strip_prefix("st")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_counters(stats: &Path) -> Result<Counters, CollectError> {
    let rd = crate::collector::read_dir(stats).map_err(|e| CollectError::io(stats, e))?;
    let mut c = Counters::default();
    for entry in rd {
        let entry = entry.map_err(|e| CollectError::io(stats, e))?;
        let name = entry.file_name();
        let Some(slot) = name.to_str().and_then(|n| c.slot(n)) else {
            continue;
        };
        let path = entry.path();
        let text = sys_read_file(&path).map_err(|e| CollectError::io(&path, e))?;
        *slot = parse_uint_base0(&text)
            .ok_or_else(|| CollectError::parse(&path, format!("invalid value {text:?}")))?;
    }
    Ok(c)
}

/// Reads the `st<N>` devices of `class/scsi_tape`, sorted by name.
fn read_class(dir: &Path) -> Result<Vec<(String, Counters)>, CollectError> {
    let rd = crate::collector::read_dir(dir).map_err(|e| CollectError::io(dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_st_device(n))
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .map(|n| {
            let c = read_counters(&dir.join(&n).join("stats"))?;
            Ok((n, c))
        })
        .collect()
}

/// The families for a set of tapes.
pub fn families(tapes: &[(String, Counters)]) -> Vec<MetricFamily> {
    type Get = fn(&Counters) -> f64;
    const NS: f64 = 0.000000001;
    let defs: [(&str, &str, bool, Get); 10] = [
        ("node_tape_io_now", "The number of I/Os currently outstanding to this device.", false, |c| c.in_flight as f64),
        ("node_tape_io_others_total", "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total", true, |c| c.other_cnt as f64),
        ("node_tape_io_time_seconds_total", "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.", true, |c| c.io_ns as f64 * NS),
        ("node_tape_read_bytes_total", "The number of bytes read from the tape drive.", true, |c| c.read_byte_cnt as f64),
        ("node_tape_read_time_seconds_total", "The amount of time spent waiting for read requests to complete.", true, |c| c.read_ns as f64 * NS),
        ("node_tape_reads_completed_total", "The number of read requests issued to the tape drive.", true, |c| c.read_cnt as f64),
        ("node_tape_residual_total", "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.", true, |c| c.resid_cnt as f64),
        ("node_tape_write_time_seconds_total", "The amount of time spent waiting for write requests to complete.", true, |c| c.write_ns as f64 * NS),
        ("node_tape_writes_completed_total", "The number of write requests issued to the tape drive.", true, |c| c.write_cnt as f64),
        ("node_tape_written_bytes_total", "The number of bytes written to the tape drive.", true, |c| c.write_byte_cnt as f64),
    ];
    defs.iter()
        .map(|(name, help, counter, get)| {
            let mut fam = if *counter {
                MetricFamily::counter(*name, *help)
            } else {
                MetricFamily::gauge(*name, *help)
            };
            for (dev, c) in tapes {
                fam.push(&[("device", dev)], get(c));
            }
            fam
        })
        .collect()
}

impl Collector for Tapestats {
    fn name(&self) -> &'static str {
        "tapestats"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut tapes =
            read_class(&paths.sys("class/scsi_tape")).map_err(CollectError::absent_is_no_data)?;
        if let Some(re) = &self.ignored {
            tapes.retain(|(n, _)| !re.is_match(n));
        }
        Ok(families(&tapes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture, raw, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter() {
        let c = Tapestats { ignored: None };
        let fams = c
            .collect(&sysfs("storage2", "tapestats/sys"))
            .expect("collects");
        // Only st0: nst0, st0a, st0l, st0m, nst0a, ... are skipped.
        assert!(fams.iter().all(|f| f.samples.len() == 1));
        assert_eq!(
            fams[0].samples[0]
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect::<Vec<_>>(),
            vec![("device".into(), "st0".to_string())]
        );
        assert_golden(raw(&fams), "storage2", "tapestats/expected.txt");
    }

    #[test]
    fn counters_parse_exactly() {
        let c = read_counters(&fixture(
            "storage2",
            "tapestats/sys/class/scsi_tape/st0/stats",
        ))
        .expect("reads");
        assert_eq!(
            c,
            Counters {
                in_flight: 1,
                io_ns: 9_247_011_087_720,
                other_cnt: 1409,
                read_byte_cnt: 979_383_912,
                read_cnt: 3741,
                read_ns: 33_788_355_744,
                resid_cnt: 19,
                write_byte_cnt: 1_496_246_784_000,
                write_cnt: 53_772_916,
                write_ns: 5_233_597_394_395,
            }
        );
    }

    #[test]
    fn ignored_devices() {
        let c = Tapestats::ignoring(Regex::new("^st0$").expect("re"));
        let fams = c
            .collect(&sysfs("storage2", "tapestats/sys"))
            .expect("collects");
        assert!(fams.iter().all(|f| f.samples.is_empty()));
    }

    /// The flag and the file's key reach the collector: `st0` (the only rewinding device of
    /// node_exporter's fixture) is left out, `^$` and other names keep it, an empty pattern
    /// (a regexp matching everything, as in 1.12) drops it.
    #[test]
    fn ignored_devices_option() {
        use clap::Parser;
        let count = |o: &Options| -> usize {
            collector(o)
                .collect(&sysfs("storage2", "tapestats/sys"))
                .expect("collects")
                .iter()
                .map(|f| f.samples.len())
                .sum()
        };
        let mut o = Options::default();
        assert_eq!(count(&o), 10);
        let cli = crate::cli::Cli::try_parse_from([
            "monitoring-agent",
            "--collector.tapestats.ignored-devices=^st0$",
        ])
        .expect("parses");
        assert_eq!(count(&cli.collector), 0);
        o.tapestats = toml::from_str("ignored_devices = \"^st1\"\n").expect("toml");
        assert_eq!(count(&o), 10);
        o.tapestats.ignored_devices = Some(DEFAULT_IGNORED_DEVICES.parse().expect("re"));
        assert_eq!(count(&o), 10);
        o.tapestats.ignored_devices = Some("".parse().expect("re"));
        assert_eq!(count(&o), 0);
    }

    #[test]
    fn names_and_numbers() {
        assert!(is_st_device("st0") && is_st_device("st12"));
        assert!(!is_st_device("nst0") && !is_st_device("st0a") && !is_st_device("st"));
        assert_eq!(parse_uint_base0("42"), Some(42));
        assert_eq!(parse_uint_base0("0x1f"), Some(31));
        assert_eq!(parse_uint_base0("010"), Some(8));
        assert_eq!(parse_uint_base0("0"), Some(0));
        assert_eq!(parse_uint_base0("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "+1", "-1", "1.5", "18446744073709551616", "09", "0x"] {
            assert_eq!(parse_uint_base0(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbled_value_fails() {
        let dir = std::env::temp_dir().join(format!("tape-test-{}", std::process::id()));
        let stats = dir.join("class/scsi_tape/st3/stats");
        std::fs::create_dir_all(&stats).expect("mkdir");
        std::fs::write(stats.join("read_cnt"), "12\n").expect("write");
        let c = Tapestats { ignored: None };
        let fams = c.collect(&sysfs_at(dir.clone())).expect("collects");
        // Missing counter files count 0.
        assert_eq!(fams[5].name, "node_tape_reads_completed_total");
        assert_eq!(fams[5].samples[0].value, 12.0);
        assert_eq!(fams[0].samples[0].value, 0.0);
        std::fs::write(stats.join("io_ns"), "n/a\n").expect("write");
        assert!(c.collect(&sysfs_at(dir.clone())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn absent_class_fails_like_node_exporter() {
        let c = Tapestats { ignored: None };
        assert!(c.collect(&sysfs("storage2", "no-such-dir")).is_err());
    }
}
