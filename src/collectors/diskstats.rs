//! `diskstats` collector: node_exporter 1.5's `diskstats_linux.go`.
//!
//! - `/proc/diskstats`, as prometheus/procfs 0.8 reads it: up to 20 fields a line, lines with
//!   fewer than 14 (2.6-era partition lines) skipped; devices filtered by
//!   `--collector.diskstats.device-include` / `-exclude` (and 1.12's deprecated alias
//!   `--collector.diskstats.ignored-devices`, refused with `device-exclude`; an include with
//!   a non-empty exclude is refused; an empty pattern is none, as in 1.12).
//! - One counter family per column the kernel prints (11 on any kernel, the four discard
//!   columns since 4.18, the two flush columns since 5.5), under node_exporter's names:
//!   sectors become bytes (×512), milliseconds become seconds; discarded sectors stay sectors,
//!   as in node_exporter.
//! - `node_disk_info{device,major,minor,model,path,revision,rotational,serial,wwn}` for every
//!   device (node_exporter 1.12's label set: `rotational` from
//!   `/sys/block/<dev>/queue/rotational`, "1" or else "0"; `serial` falls back to `ID_SERIAL`),
//!   the labels from udev's database (`--path.udev.data`, file `b<major>:<minor>`; empty when the
//!   file is absent); and from the same file `node_disk_filesystem_info` (when `ID_FS_TYPE` is
//!   set), `node_disk_device_mapper_info` (when `DM_NAME` is set) and
//!   `node_disk_ata_{write_cache,write_cache_enabled,rotation_rate_rpm}` (ATA disks).
//!
//! Reads `/proc/diskstats`, `/sys/block/*/queue/rotational` and the udev data directory
//! (outside `/proc` and `/sys`: the sandbox must allow reading it).

use std::collections::HashMap;

use super::options::{collector_options, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the diskstats collector (`[collector.diskstats]` in the file).
    pub struct DiskstatsOptions {
        /// Regexp of diskstats devices to include (mutually exclusive with device-exclude).
        #[arg(id = "collector.diskstats.device-include", long = "collector.diskstats.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of diskstats devices to exclude [default: node_exporter's].
        #[arg(id = "collector.diskstats.device-exclude", long = "collector.diskstats.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// DEPRECATED alias of --collector.diskstats.device-exclude (as node_exporter 1.12;
        /// mutually exclusive with it).
        #[arg(id = "collector.diskstats.ignored-devices", long = "collector.diskstats.ignored-devices", value_name = "REGEX")]
        pub ignored_devices: Option<Pattern>,
    }
    check(o) {
        // node_exporter 1.12's `newDiskstatsDeviceFilter`: an empty pattern is none.
        let set = |p: &Option<Pattern>| p.as_ref().is_some_and(|p| !p.0.as_str().is_empty());
        if set(&o.ignored_devices) && o.device_exclude.is_some() {
            return Err("--collector.diskstats.ignored-devices and \
                        --collector.diskstats.device-exclude are mutually exclusive".into());
        }
        if set(&o.device_include) && set(&o.device_exclude) {
            return Err("device-exclude & device-include are mutually exclusive".into());
        }
        Ok(())
    }
}

/// The device filter as node_exporter 1.12 builds it: `device-exclude`, else the deprecated
/// `ignored-devices` (with 1.12's warning), else the default; an include drops the
/// exclusion; an empty pattern is none.
fn device_filter(o: &DiskstatsOptions) -> DeviceFilter {
    let nonempty = |p: &Option<Pattern>| p.clone().filter(|p| !p.0.as_str().is_empty());
    let mut exclude = o.device_exclude.clone();
    if let (None, Some(old)) = (&exclude, nonempty(&o.ignored_devices)) {
        log::warn!(
            "--collector.diskstats.ignored-devices is DEPRECATED and will be removed in 2.0.0, use --collector.diskstats.device-exclude"
        );
        exclude = Some(old);
    }
    let exclude = match exclude {
        Some(e) => Some(e),
        None => Some(Pattern(Pattern::or_default(&None, DEFAULT_DEVICE_EXCLUDE))),
    };
    if nonempty(&o.device_include).is_some() {
        return DeviceFilter::both(&o.device_include, &None);
    }
    DeviceFilter::both(&None, &exclude)
}

/// node_exporter's default `--collector.diskstats.device-exclude`.
pub const DEFAULT_DEVICE_EXCLUDE: &str = "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.diskstats;
    Box::new(Diskstats {
        filter: device_filter(o),
    })
}

/// One `/proc/diskstats` line.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    /// The counters after the name, as many as the kernel printed (11, 15 or 17).
    pub values: Vec<u64>,
    /// `/sys/block/<dev>/queue/rotational` is 1 (node_exporter 1.12's `rotational` label of
    /// `node_disk_info`; false when unreadable, as 1.12).
    pub rotational: bool,
}

/// Fields after the name that procfs reads (the rest of a longer line is ignored).
const MAX_VALUES: usize = 17;
/// Fewer than this many values: the line is skipped, as procfs does.
const MIN_VALUES: usize = 11;

/// Parses `/proc/diskstats`. A malformed number is an error (procfs' `Sscanf` fails the whole
/// file); a short line is skipped.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStats>, String> {
    let mut out = Vec::with_capacity(16);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let num = |s: &str| format!("bad number {s:?} in line {line:?}");
        let major: u32 = major.parse().map_err(|_| num(major))?;
        let minor: u32 = minor.parse().map_err(|_| num(minor))?;
        let mut values = Vec::with_capacity(MAX_VALUES);
        for v in f.take(MAX_VALUES) {
            values.push(v.parse::<u64>().map_err(|_| num(v))?);
        }
        if values.len() < MIN_VALUES {
            continue;
        }
        out.push(DiskStats {
            major,
            minor,
            name: name.to_string(),
            values,
            rotational: false,
        });
    }
    Ok(out)
}

/// The properties (`E:` lines) of a udev database file.
pub fn parse_udev(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .collect()
}

const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;
const SECTOR: f64 = 512.0;

/// The per-column families: name, help, counter (else gauge), scale.
const COLUMNS: [(&str, &str, bool, f64); MAX_VALUES] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        true,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        true,
        SECTOR,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        true,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        true,
        SECTOR,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        false,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        true,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        true,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        true,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        true,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        true,
        SECONDS_PER_TICK,
    ),
];

/// ATA properties exported as gauges: udev key, family, help.
const ATA: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
];

/// Builds the families from the (already filtered) disks and a lookup of each disk's udev
/// file content.
pub fn families(
    disks: &mut [DiskStats],
    udev: impl Fn(u32, u32) -> Option<String>,
) -> Vec<MetricFamily> {
    // node_exporter's output is sorted by label values: here the device name.
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    let mut cols: Vec<MetricFamily> = COLUMNS
        .iter()
        .map(|(name, help, counter, _)| {
            if *counter {
                MetricFamily::counter(*name, *help)
            } else {
                MetricFamily::gauge(*name, *help)
            }
        })
        .collect();
    let mut info = MetricFamily::gauge("node_disk_info", "Info of /sys/block/<block_device>.");
    let mut fs_info =
        MetricFamily::gauge("node_disk_filesystem_info", "Info about disk filesystem.");
    let mut dm_info = MetricFamily::gauge(
        "node_disk_device_mapper_info",
        "Info about disk device mapper.",
    );
    let mut ata: Vec<MetricFamily> = ATA
        .iter()
        .map(|(_, name, help)| MetricFamily::gauge(*name, *help))
        .collect();
    for d in disks.iter() {
        let dev = d.name.as_str();
        let text = udev(d.major, d.minor);
        let props = text.as_deref().map(parse_udev).unwrap_or_default();
        let get = |k: &str| props.get(k).copied().unwrap_or("");
        // The serial printed on the disk label, else the short one, else (node_exporter 1.12,
        // virtio and MMC devices) `ID_SERIAL`.
        let serial = [
            get("SCSI_IDENT_SERIAL"),
            get("ID_SERIAL_SHORT"),
            get("ID_SERIAL"),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("");
        let (major, minor) = (d.major.to_string(), d.minor.to_string());
        info.push(
            &[
                ("device", dev),
                ("major", &major),
                ("minor", &minor),
                ("model", get("ID_MODEL")),
                ("path", get("ID_PATH")),
                ("revision", get("ID_REVISION")),
                ("rotational", if d.rotational { "1" } else { "0" }),
                ("serial", serial),
                ("wwn", get("ID_WWN")),
            ],
            1.0,
        );
        for ((fam, col), v) in cols.iter_mut().zip(&COLUMNS).zip(&d.values) {
            fam.push(&[("device", dev)], *v as f64 * col.3);
        }
        let fs_type = get("ID_FS_TYPE");
        if !fs_type.is_empty() {
            fs_info.push(
                &[
                    ("device", dev),
                    ("type", fs_type),
                    ("usage", get("ID_FS_USAGE")),
                    ("uuid", get("ID_FS_UUID")),
                    ("version", get("ID_FS_VERSION")),
                ],
                1.0,
            );
        }
        let dm_name = get("DM_NAME");
        if !dm_name.is_empty() {
            dm_info.push(
                &[
                    ("device", dev),
                    ("lv_layer", get("DM_LV_LAYER")),
                    ("lv_name", get("DM_LV_NAME")),
                    ("name", dm_name),
                    ("uuid", get("DM_UUID")),
                    ("vg_name", get("DM_VG_NAME")),
                ],
                1.0,
            );
        }
        if !get("ID_ATA").is_empty() {
            for (fam, (key, _, _)) in ata.iter_mut().zip(&ATA) {
                if let Some(v) = props.get(key).and_then(|s| s.parse::<f64>().ok()) {
                    fam.push(&[("device", dev)], v);
                }
            }
        }
    }
    let mut out = cols;
    out.push(info);
    out.push(fs_info);
    out.push(dm_info);
    out.extend(ata);
    out.retain(|f| !f.samples.is_empty());
    out
}

struct Diskstats {
    filter: DeviceFilter,
}

impl Collector for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("diskstats");
        let mut disks = read_parsed(&path, parse_diskstats)?;
        disks.retain(|d| !self.filter.ignored(&d.name));
        for d in disks.iter_mut() {
            let p = paths.sys("block").join(&d.name).join("queue/rotational");
            d.rotational = super::fsio::read_to_string(&p).is_ok_and(|t| t.trim() == "1");
        }
        Ok(families(&mut disks, |major, minor| {
            let p = paths.udev_data.join(format!("b{major}:{minor}"));
            match super::fsio::read_to_string(&p) {
                Ok(t) => Some(t),
                // A device without a udev file (a volume udev does not manage) is asked
                // again a minute later, not on every scrape (issue 12).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    super::fsio::note_missing_anywhere(&p, &e);
                    None
                }
                Err(e) => {
                    log::debug!("reading {}: {e}", p.display());
                    None
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const DEBIAN12: &str =
        include_str!("../../tests/fixtures/storage/debian12-vm-6.18/proc/diskstats");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/storage/node_exporter/proc/diskstats");

    fn fixture(rel: &str) -> PathBuf {
        crate::collectors::testutil::fixture("storage", rel)
    }

    fn find<'a>(fams: &'a [MetricFamily], name: &str) -> Option<&'a MetricFamily> {
        fams.iter().find(|f| f.name == name)
    }

    fn value(fams: &[MetricFamily], name: &str, dev: &str) -> Option<f64> {
        find(fams, name)?
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "device" && v == dev))
            .map(|s| s.value)
    }

    fn labels(fams: &[MetricFamily], name: &str, dev: &str) -> Vec<(String, String)> {
        find(fams, name)
            .and_then(|f| {
                f.samples
                    .iter()
                    .find(|s| s.labels.iter().any(|(k, v)| k == "device" && v == dev))
            })
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// node_exporter 1.12's device flags on its `/proc/diskstats` fixture: the deprecated
    /// `ignored-devices`, include against exclude, empty patterns.
    #[test]
    fn device_flags_node_exporter_112() {
        use crate::collector::options::Merge;
        use clap::Parser;
        let text = include_str!("../../tests/fixtures/node_exporter_1.12/proc/diskstats");
        let disks = parse_diskstats(text).expect("parses");
        let kept = |args: &[&str]| -> Result<Vec<String>, String> {
            let mut argv = vec!["monitoring-agent"];
            argv.extend_from_slice(args);
            let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            cli.collector.diskstats.check()?;
            let f = device_filter(&cli.collector.diskstats);
            Ok(disks
                .iter()
                .filter(|d| !f.ignored(&d.name))
                .map(|d| d.name.clone())
                .collect())
        };
        let default = kept(&[]).expect("ok");
        assert!(default.contains(&"sda".to_string()) && !default.contains(&"sda1".to_string()));
        // The alias alone replaces the default exclusion.
        let alias = kept(&["--collector.diskstats.ignored-devices=^sd"]).expect("ok");
        assert!(alias.iter().all(|d| !d.starts_with("sd")), "{alias:?}");
        assert!(alias.contains(&"dm-0".to_string()), "{alias:?}");
        assert_eq!(
            kept(&["--collector.diskstats.device-exclude=^sd"]).expect("ok"),
            alias
        );
        assert!(kept(&[
            "--collector.diskstats.ignored-devices=^sd",
            "--collector.diskstats.device-exclude=^x"
        ])
        .expect_err("exclusive")
        .contains("ignored-devices"));
        // An include with an explicitly empty exclude is accepted; with a non-empty one not.
        assert_eq!(
            kept(&[
                "--collector.diskstats.device-include=^sda$",
                "--collector.diskstats.device-exclude="
            ])
            .expect("ok"),
            ["sda"]
        );
        assert!(kept(&[
            "--collector.diskstats.device-include=^sda$",
            "--collector.diskstats.device-exclude=^x"
        ])
        .is_err());
        // An empty exclude excludes nothing (1.12's empty pattern), not everything.
        assert_eq!(
            kept(&["--collector.diskstats.device-exclude="])
                .expect("ok")
                .len(),
            disks.len()
        );
    }

    #[test]
    fn debian12() {
        let disks = parse_diskstats(DEBIAN12).expect("parses");
        assert_eq!(disks.len(), 10);
        let vda = disks.iter().find(|d| d.name == "vda").expect("vda");
        assert_eq!((vda.major, vda.minor), (254, 0));
        assert_eq!(vda.values.len(), 17);
        assert_eq!(vda.values[0], 108_553);
        assert_eq!(vda.values[16], 2208);

        let mut kept: Vec<DiskStats> = disks
            .into_iter()
            .filter(|d| {
                !DeviceFilter::new(&None, &None, Some(DEFAULT_DEVICE_EXCLUDE)).ignored(&d.name)
            })
            .collect();
        let names: Vec<&str> = kept.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda", "zram0"]);
        let fams = families(&mut kept, |_, _| None);
        assert_eq!(fams.len(), 18);
        assert_eq!(
            value(&fams, "node_disk_read_bytes_total", "vda"),
            Some(6_116_170.0 * 512.0)
        );
        assert_eq!(
            value(&fams, "node_disk_io_time_weighted_seconds_total", "vda"),
            Some(160.058)
        );
        assert_eq!(
            value(&fams, "node_disk_discarded_sectors_total", "vda"),
            Some(7_121_672.0)
        );
        assert_eq!(
            value(&fams, "node_disk_flush_requests_time_seconds_total", "vda"),
            Some(2.208)
        );
        assert_eq!(value(&fams, "node_disk_io_now", "vda"), Some(0.0));
        assert_eq!(
            labels(&fams, "node_disk_info", "vda"),
            pairs(&[
                ("device", "vda"),
                ("major", "254"),
                ("minor", "0"),
                ("model", ""),
                ("path", ""),
                ("revision", ""),
                ("rotational", "0"),
                ("serial", ""),
                ("wwn", ""),
            ])
        );
        let io_now = find(&fams, "node_disk_io_now").expect("io_now");
        assert_eq!(io_now.kind, crate::exposition::MetricType::Gauge);
        assert_eq!(io_now.help, "The number of I/Os currently in progress.");
    }

    #[test]
    fn node_exporter_fixture_columns() {
        let mut disks = parse_diskstats(NODE_EXPORTER).expect("parses");
        assert_eq!(disks.len(), 51);
        let f = DeviceFilter::default();
        disks.retain(|d| !f.ignored(&d.name));
        let fams = families(&mut disks, |_, _| None);
        // 11 columns: no discard or flush families for sda.
        assert_eq!(
            value(&fams, "node_disk_reads_completed_total", "sda"),
            Some(25_354_637.0)
        );
        assert_eq!(
            value(&fams, "node_disk_discards_completed_total", "sda"),
            None
        );
        // 15 columns (4.18+): discards, no flush.
        assert_eq!(
            value(&fams, "node_disk_discarded_sectors_total", "sdb"),
            Some(1_925_173_784.0)
        );
        assert_eq!(
            value(&fams, "node_disk_discard_time_seconds_total", "sdb"),
            Some(11.13)
        );
        assert_eq!(value(&fams, "node_disk_flush_requests_total", "sdb"), None);
        // 17 columns (5.5+): flush too.
        assert_eq!(
            value(&fams, "node_disk_flush_requests_total", "sdc"),
            Some(1555.0)
        );
        assert_eq!(
            value(&fams, "node_disk_flush_requests_time_seconds_total", "sdc"),
            Some(1.944)
        );
        // Sorted by device.
        let devs: Vec<&str> = find(&fams, "node_disk_info")
            .expect("info")
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_str())
            .collect();
        let mut sorted = devs.clone();
        sorted.sort();
        assert_eq!(devs, sorted);
    }

    #[test]
    fn udev_labels() {
        let paths = Paths {
            procfs: fixture("node_exporter/proc"),
            udev_data: fixture("node_exporter/udev/data"),
            ..Paths::default()
        };
        let fams = Diskstats {
            filter: DeviceFilter::new(&None, &None, Some(DEFAULT_DEVICE_EXCLUDE)),
        }
        .collect(&paths)
        .expect("collects");
        assert_eq!(
            labels(&fams, "node_disk_info", "sda"),
            pairs(&[
                ("device", "sda"),
                ("major", "8"),
                ("minor", "0"),
                ("model", "TOSHIBA_KSDB4U86"),
                ("path", "pci-0000:3b:00.0-sas-phy7-lun-0"),
                ("revision", "0102"),
                ("rotational", "0"),
                ("serial", "2160A0D5FVGG"),
                ("wwn", "0x7c72382b8de36a64"),
            ])
        );
        // No SCSI_IDENT_SERIAL: ID_SERIAL_SHORT.
        assert_eq!(
            labels(&fams, "node_disk_info", "nvme0n1"),
            pairs(&[
                ("device", "nvme0n1"),
                ("major", "259"),
                ("minor", "0"),
                ("model", "SAMSUNG EHFTF55LURSY-000Y9"),
                ("path", "pci-0000:02:00.0-nvme-1"),
                ("revision", "4NBTUY95"),
                ("rotational", "0"),
                ("serial", "S252B6CU1HG3M1"),
                ("wwn", "eui.p3vbbiejx5aae2r3"),
            ])
        );
        assert_eq!(
            labels(&fams, "node_disk_filesystem_info", "sda"),
            pairs(&[
                ("device", "sda"),
                ("type", "LVM2_member"),
                ("usage", "raid"),
                ("uuid", "cVVv6j-HSA2-IY33-1Jmj-dO2H-YL7w-b4Oxqw"),
                ("version", "LVM2 001"),
            ])
        );
        // Empty ID_FS_TYPE: no filesystem info.
        assert!(labels(&fams, "node_disk_filesystem_info", "nvme0n1").is_empty());
        assert!(labels(&fams, "node_disk_filesystem_info", "vda").is_empty());
        assert_eq!(
            labels(&fams, "node_disk_device_mapper_info", "dm-0"),
            pairs(&[
                ("device", "dm-0"),
                ("lv_layer", ""),
                ("lv_name", ""),
                ("name", "nvme0n1_crypt"),
                (
                    "uuid",
                    "CRYPT-LUKS2-jolaulot80fy9zsiobkxyxo7y2dqeho2-nvme0n1_crypt"
                ),
                ("vg_name", ""),
            ])
        );
        assert_eq!(
            value(&fams, "node_disk_ata_rotation_rate_rpm", "sda"),
            Some(7200.0)
        );
        assert_eq!(value(&fams, "node_disk_ata_write_cache", "sda"), Some(1.0));
        assert_eq!(
            value(&fams, "node_disk_ata_write_cache_enabled", "sda"),
            Some(0.0)
        );
        // sdb and sdc share 8:0 with sda in this fixture, hence the same udev file.
        assert_eq!(
            find(&fams, "node_disk_ata_write_cache").map(|f| f.samples.len()),
            Some(3)
        );
        // Default filter: partitions gone, dm and mmcblk kept.
        assert!(value(&fams, "node_disk_reads_completed_total", "sda1").is_none());
        assert!(value(&fams, "node_disk_reads_completed_total", "dm-5").is_some());
        assert!(value(&fams, "node_disk_reads_completed_total", "mmcblk0p1").is_some());
    }

    /// A device without a udev file is not asked for it again at the next scrape: the miss is
    /// remembered (for fsio's cache lifetime), even off procfs and sysfs.
    #[test]
    fn a_missing_udev_file_is_remembered() {
        let udev = tempfile::tempdir().expect("tmp");
        let paths = Paths {
            procfs: fixture("node_exporter/proc"),
            udev_data: udev.path().to_path_buf(),
            ..Paths::default()
        };
        let collector = Diskstats {
            filter: DeviceFilter::new(&None, &None, Some(DEFAULT_DEVICE_EXCLUDE)),
        };
        let model = |fams: &[MetricFamily]| {
            labels(fams, "node_disk_info", "sda")
                .into_iter()
                .find(|(k, _)| k == "model")
                .map(|(_, v)| v)
        };
        let fams = collector.collect(&paths).expect("collects");
        assert_eq!(
            model(&fams).as_deref(),
            Some(""),
            "no udev file, an empty model"
        );
        let file = udev.path().join("b8:0");
        assert!(crate::collector::fsio::known_missing(&file));
        std::fs::write(&file, "E:ID_MODEL=later\n").expect("write");
        let fams = collector.collect(&paths).expect("collects");
        assert_eq!(
            model(&fams).as_deref(),
            Some(""),
            "the miss is remembered, the file not read yet"
        );
    }

    #[test]
    fn garbled() {
        assert!(parse_diskstats("8 0 sda 1 2 x 4 5 6 7 8 9 10 11\n").is_err());
        assert!(parse_diskstats("8 0 sda -1 2 3 4 5 6 7 8 9 10 11\n").is_err());
        // Short (2.6 partition format) and empty lines are skipped.
        assert_eq!(
            parse_diskstats("8 1 sda1 1 2 3 4\n\n").expect("parses"),
            vec![]
        );
    }

    #[test]
    fn absent_source_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        assert!(Diskstats {
            filter: DeviceFilter::default()
        }
        .collect(&paths)
        .is_err());
    }

    #[test]
    fn live() {
        let fams = Diskstats {
            filter: DeviceFilter::new(&None, &None, Some(DEFAULT_DEVICE_EXCLUDE)),
        }
        .collect(&Paths::default())
        .expect("reads /proc/diskstats");
        assert!(find(&fams, "node_disk_info").is_some());
        assert!(find(&fams, "node_disk_reads_completed_total").is_some());
    }
}
