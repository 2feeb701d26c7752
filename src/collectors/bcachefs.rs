//! `bcachefs` collector: node_exporter 1.12's `bcachefs_linux.go` over prometheus/procfs 0.21's
//! `bcachefs` package (on by default, as in 1.12).
//!
//! For every filesystem directory `/sys/fs/bcachefs/<uuid>/`:
//!
//! - `{uuid}`: `node_bcachefs_info` (1), `node_bcachefs_btree_cache_size_bytes`
//!   (`btree_cache_size`);
//! - `{uuid,algorithm}` from `compression_stats`: `compression_compressed_bytes`,
//!   `compression_uncompressed_bytes`;
//! - `{uuid,error_type}` from `errors`: `errors_total`;
//! - one counter family per file of `counters/`: `node_bcachefs_<name>_total{uuid}` (the name
//!   as node_exporter's `SanitizeMetricName` makes it), its "since filesystem creation" value;
//! - `{uuid,type}` from `btree_write_stats`: `btree_writes_total`,
//!   `btree_write_average_size_bytes`;
//! - per member device `dev-<N>/` (`device="<N>"`): `device_info{label,state}` (1),
//!   `device_bucket_size_bytes`, `device_buckets`, `device_durability`,
//!   `device_io_done_bytes_total{operation,data_type}` (`io_done`),
//!   `device_io_errors_total{type}` (`io_errors`, the "since filesystem creation" section).
//!
//! Values are read as procfs does: bcachefs' human sizes (`2.05G`, `512k`: a float times a
//! power of 1024, truncated to an integer); a missing file is zero or empty (procfs ignores
//! it), a missing `label`, `state` or unreadable `bucket_size` too; any other unreadable or
//! unparsable value fails the collector (all or nothing: it reads everything before it sends).
//! Without `/sys/fs/bcachefs`, or with no filesystem in it, the collector reports no data
//! (node_exporter's `ErrNoData`, `success 0`).
//!
//! Deviations: a human size whose float is negative is 0 and one beyond 2^64 saturates (Go's
//! conversion is implementation-defined there); a line of more than 64 KiB (1 MiB for
//! `compression_stats` and `btree_write_stats`) is read, where procfs' scanner fails.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use super::{fsio, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Bcachefs)
}

/// One filesystem, as procfs' `bcachefs.Stats` (the fields node_exporter exports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsStats {
    pub uuid: String,
    pub btree_cache_size_bytes: u64,
    /// algorithm → (compressed, uncompressed) bytes.
    pub compression: BTreeMap<String, (u64, u64)>,
    /// error type → count.
    pub errors: BTreeMap<String, u64>,
    /// counter file name → value since filesystem creation.
    pub counters: BTreeMap<String, u64>,
    /// write type → (count, average size in bytes).
    pub btree_writes: BTreeMap<String, (u64, u64)>,
    /// device number (the `<N>` of `dev-<N>`) → its statistics.
    pub devices: BTreeMap<String, Device>,
}

/// One member device, as procfs' `bcachefs.DeviceStats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Device {
    pub label: String,
    pub state: String,
    pub bucket_size_bytes: u64,
    pub buckets: u64,
    pub durability: u64,
    /// (operation, data type) → bytes.
    pub io_done: BTreeMap<(String, String), u64>,
    /// error type → count since filesystem creation.
    pub io_errors: BTreeMap<String, u64>,
}

/// procfs' `parseHumanReadableBytes`: a float with an optional power-of-1024 suffix
/// (`k`, `M`, `G`, `T`, `P`, `E`, either case), truncated to an integer.
pub fn parse_human_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty string".into());
    }
    let (num, exp) = match s.chars().last() {
        Some('k' | 'K') => (s.get(..s.len() - 1), 1),
        Some('m' | 'M') => (s.get(..s.len() - 1), 2),
        Some('g' | 'G') => (s.get(..s.len() - 1), 3),
        Some('t' | 'T') => (s.get(..s.len() - 1), 4),
        Some('p' | 'P') => (s.get(..s.len() - 1), 5),
        Some('e' | 'E') => (s.get(..s.len() - 1), 6),
        _ => (Some(s), 0),
    };
    let num = num.unwrap_or_default().trim();
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid human-readable size {s:?}"))?;
    // `as` saturates: negative (and NaN) → 0, beyond 2^64 → u64::MAX.
    Ok((v * 1024f64.powi(exp)) as u64)
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("invalid integer {s:?}"))
}

/// Lines after the header of a table file (`compression_stats`, `btree_write_stats`), each
/// with its fields when it has at least 3 (procfs skips shorter lines).
fn table_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
}

/// `compression_stats`: after a header line, `<algorithm>[:] <compressed> <uncompressed>
/// [<average extent size>]` in human sizes.
pub fn parse_compression(text: &str) -> Result<BTreeMap<String, (u64, u64)>, String> {
    let mut out = BTreeMap::new();
    for f in table_rows(text) {
        let (Some(alg), Some(c), Some(u)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        let comp = parse_human_bytes(c)?;
        let uncomp = parse_human_bytes(u)?;
        if let Some(avg) = f.get(3) {
            parse_human_bytes(avg)?;
        }
        out.insert(alg.trim_end_matches(':').to_string(), (comp, uncomp));
    }
    Ok(out)
}

/// `errors`: `<type> <count> [<timestamp>]` per line (shorter lines skipped).
pub fn parse_errors(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(count)) = (f.first(), f.get(1)) else {
            continue;
        };
        let count = parse_u64(count)?;
        if let Some(ts) = f.get(2) {
            parse_u64(ts)?;
        }
        out.insert((*name).to_string(), count);
    }
    Ok(out)
}

/// A file of `counters/`: `since mount: <v>` and `since filesystem creation: <v>` (human
/// sizes); the second is the value exported (0 when only the first is there). Neither line is
/// an error.
pub fn parse_counter(text: &str) -> Result<u64, String> {
    let mut seen = false;
    let mut creation = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("since mount:") {
            parse_human_bytes(v)?;
            seen = true;
        } else if let Some(v) = line.strip_prefix("since filesystem creation:") {
            creation = parse_human_bytes(v)?;
            seen = true;
        }
    }
    if !seen {
        return Err("counter file format not recognized".into());
    }
    Ok(creation)
}

/// `btree_write_stats`: after a header line, `<type>: <count> <average size>`.
pub fn parse_btree_writes(text: &str) -> Result<BTreeMap<String, (u64, u64)>, String> {
    let mut out = BTreeMap::new();
    for f in table_rows(text) {
        let (Some(kind), Some(n), Some(size)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        let n = parse_u64(n)?;
        let size = parse_human_bytes(size)?;
        out.insert(kind.trim_end_matches(':').to_string(), (n, size));
    }
    Ok(out)
}

/// A device's `io_done`: `read:` and `write:` sections of `<data type> : <bytes>` lines.
pub fn parse_io_done(text: &str) -> Result<BTreeMap<(String, String), u64>, String> {
    let mut out = BTreeMap::new();
    let mut op: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "read:" || line == "write:" {
            op = line.strip_suffix(':');
            continue;
        }
        let Some(op) = op else { continue };
        let Some((kind, v)) = line.split_once(':') else {
            continue;
        };
        out.insert(
            (op.to_string(), kind.trim().to_string()),
            parse_u64(v.trim())?,
        );
    }
    Ok(out)
}

/// A device's `io_errors`: the `<type>: <count>` lines of the section "IO errors since
/// filesystem creation" (the next "IO errors since ..." header ends it).
pub fn parse_io_errors(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let mut in_creation = false;
    for line in text.lines() {
        if line.starts_with("IO errors since filesystem creation") {
            in_creation = true;
            continue;
        }
        if line.starts_with("IO errors since ") {
            break;
        }
        if !in_creation {
            continue;
        }
        let Some((kind, v)) = line.trim().split_once(':') else {
            continue;
        };
        out.insert(kind.trim().to_string(), parse_u64(v.trim())?);
    }
    Ok(out)
}

/// A file's text, `None` when it does not exist (procfs ignores missing files).
fn read_opt(path: &Path) -> Result<Option<String>, CollectError> {
    match fsio::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// A missing file parses as `T::default()`; a parse error carries the path.
fn parse_opt<T: Default>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, CollectError> {
    match read_opt(path)? {
        Some(text) => parse(&text).map_err(|m| CollectError::parse(path, m)),
        None => Ok(T::default()),
    }
}

/// The sub-directories of `dir` (not following symbolic links, as Go's `DirEntry.IsDir`),
/// sorted.
fn subdirs(dir: &Path) -> Result<Vec<String>, CollectError> {
    let mut out = Vec::new();
    for e in crate::collector::read_dir(dir).map_err(|e| CollectError::io(dir, e))? {
        let e = e.map_err(|e| CollectError::io(dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if let Ok(name) = e.file_name().into_string() {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads one filesystem directory as procfs' `GetStats`.
pub fn read_fs(dir: &Path, uuid: &str) -> Result<FsStats, CollectError> {
    let p = dir.join("btree_cache_size");
    let btree_cache_size_bytes = match read_opt(&p)? {
        Some(t) if !t.trim().is_empty() => {
            parse_human_bytes(&t).map_err(|m| CollectError::parse(&p, m))?
        }
        _ => 0,
    };
    let compression = parse_opt(&dir.join("compression_stats"), parse_compression)?;
    let errors = parse_opt(&dir.join("errors"), parse_errors)?;
    let counters = read_counters(&dir.join("counters"))?;
    let btree_writes = parse_opt(&dir.join("btree_write_stats"), parse_btree_writes)?;
    let mut devices = BTreeMap::new();
    for name in subdirs(dir)? {
        let Some(n) = name.strip_prefix("dev-") else {
            continue;
        };
        devices.insert(n.to_string(), read_device(&dir.join(&name))?);
    }
    Ok(FsStats {
        uuid: uuid.to_string(),
        btree_cache_size_bytes,
        compression,
        errors,
        counters,
        btree_writes,
        devices,
    })
}

/// `counters/`: every file (not directory) is one counter; no directory, no counters.
fn read_counters(dir: &Path) -> Result<BTreeMap<String, u64>, CollectError> {
    let mut out = BTreeMap::new();
    let rd = match crate::collector::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CollectError::io(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| CollectError::io(dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let p = dir.join(&name);
        // A counter file gone since the listing is a zero, as procfs' openIfExists.
        let v = match read_opt(&p)? {
            Some(text) => parse_counter(&text).map_err(|m| CollectError::parse(&p, m))?,
            None => 0,
        };
        out.insert(name, v);
    }
    Ok(out)
}

/// procfs' `readSysfsFile`: the trimmed text, or empty on any error.
fn sysfs_text(path: &Path) -> String {
    fsio::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// procfs' `readUintFile`: missing is 0, unreadable or unparsable an error.
fn read_uint(path: &Path) -> Result<u64, CollectError> {
    match read_opt(path)? {
        Some(t) => parse_u64(t.trim()).map_err(|m| CollectError::parse(path, m)),
        None => Ok(0),
    }
}

fn read_device(dir: &Path) -> Result<Device, CollectError> {
    let bucket = sysfs_text(&dir.join("bucket_size"));
    let bucket_size_bytes = if bucket.is_empty() {
        0
    } else {
        parse_human_bytes(&bucket).map_err(|m| CollectError::parse(&dir.join("bucket_size"), m))?
    };
    Ok(Device {
        label: sysfs_text(&dir.join("label")),
        state: sysfs_text(&dir.join("state")),
        bucket_size_bytes,
        buckets: read_uint(&dir.join("nbuckets"))?,
        durability: read_uint(&dir.join("durability"))?,
        io_done: parse_opt(&dir.join("io_done"), parse_io_done)?,
        io_errors: parse_opt(&dir.join("io_errors"), parse_io_errors)?,
    })
}

/// node_exporter's metric families for the filesystems read.
pub fn families(stats: &[FsStats]) -> Vec<MetricFamily> {
    let g = MetricFamily::gauge;
    let c = MetricFamily::counter;
    let mut info = g("node_bcachefs_info", "Filesystem information.");
    let mut cache = g(
        "node_bcachefs_btree_cache_size_bytes",
        "Btree cache memory usage in bytes.",
    );
    let mut compressed = g(
        "node_bcachefs_compression_compressed_bytes",
        "Compressed size by algorithm.",
    );
    let mut uncompressed = g(
        "node_bcachefs_compression_uncompressed_bytes",
        "Uncompressed size by algorithm.",
    );
    let mut errors = c("node_bcachefs_errors_total", "Error count by error type.");
    let mut writes = c(
        "node_bcachefs_btree_writes_total",
        "Number of btree writes by type.",
    );
    let mut write_size = g(
        "node_bcachefs_btree_write_average_size_bytes",
        "Average btree write size by type.",
    );
    let mut dev_info = g("node_bcachefs_device_info", "Device information.");
    let mut dev_bucket = g(
        "node_bcachefs_device_bucket_size_bytes",
        "Bucket size in bytes.",
    );
    let mut dev_buckets = g("node_bcachefs_device_buckets", "Total number of buckets.");
    let mut dev_durability = g(
        "node_bcachefs_device_durability",
        "Device durability setting.",
    );
    let mut dev_io_done = c(
        "node_bcachefs_device_io_done_bytes_total",
        "IO bytes by operation type and data type.",
    );
    let mut dev_io_errors = c(
        "node_bcachefs_device_io_errors_total",
        "IO errors by error type.",
    );
    let mut counters: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for s in stats {
        let uuid = s.uuid.as_str();
        info.push(&[("uuid", uuid)], 1.0);
        cache.push(&[("uuid", uuid)], s.btree_cache_size_bytes as f64);
        for (alg, (comp, uncomp)) in &s.compression {
            let l = [("uuid", uuid), ("algorithm", alg.as_str())];
            compressed.push(&l, *comp as f64);
            uncompressed.push(&l, *uncomp as f64);
        }
        for (kind, n) in &s.errors {
            errors.push(&[("uuid", uuid), ("error_type", kind)], *n as f64);
        }
        for (name, v) in &s.counters {
            let metric = format!(
                "node_bcachefs_{}_total",
                super::sysctl::sanitize_metric_name(name)
            );
            counters
                .entry(metric.clone())
                .or_insert_with(|| {
                    MetricFamily::counter(
                        metric,
                        format!("Bcachefs counter {name} since filesystem creation."),
                    )
                })
                .push(&[("uuid", uuid)], *v as f64);
        }
        for (kind, (n, size)) in &s.btree_writes {
            let l = [("uuid", uuid), ("type", kind.as_str())];
            writes.push(&l, *n as f64);
            write_size.push(&l, *size as f64);
        }
        for (dev, d) in &s.devices {
            let l = [("uuid", uuid), ("device", dev.as_str())];
            dev_info.push(
                &[
                    ("uuid", uuid),
                    ("device", dev),
                    ("label", &d.label),
                    ("state", &d.state),
                ],
                1.0,
            );
            dev_bucket.push(&l, d.bucket_size_bytes as f64);
            dev_buckets.push(&l, d.buckets as f64);
            dev_durability.push(&l, d.durability as f64);
            for ((op, kind), v) in &d.io_done {
                dev_io_done.push(
                    &[
                        ("uuid", uuid),
                        ("device", dev),
                        ("operation", op),
                        ("data_type", kind),
                    ],
                    *v as f64,
                );
            }
            for (kind, v) in &d.io_errors {
                dev_io_errors.push(
                    &[("uuid", uuid), ("device", dev), ("type", kind)],
                    *v as f64,
                );
            }
        }
    }
    let mut out = vec![
        info,
        cache,
        compressed,
        uncompressed,
        errors,
        writes,
        write_size,
        dev_info,
        dev_bucket,
        dev_buckets,
        dev_durability,
        dev_io_done,
        dev_io_errors,
    ];
    out.extend(counters.into_values());
    nonempty_sorted(out)
}

pub struct Bcachefs;

impl Collector for Bcachefs {
    fn name(&self) -> &'static str {
        "bcachefs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let base = paths.sys("fs/bcachefs");
        let read = || -> Result<Vec<FsStats>, CollectError> {
            subdirs(&base)?
                .iter()
                .map(|uuid| read_fs(&base.join(uuid), uuid))
                .collect()
        };
        // procfs' errors are Go's unwrapped *PathError: node_exporter's os.IsNotExist turns
        // an absent directory (no bcachefs, or a filesystem unmounted mid-read) into no data.
        let stats = read().map_err(CollectError::absent_is_no_data)?;
        if stats.is_empty() {
            return Err(CollectError::no_data(&base));
        }
        Ok(families(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{
        expected_1_12, fixture, fixture_copy, lines, sysfs, sysfs_at,
    };

    const UUID: &str = "deadbeef-1234-5678-9012-abcdefabcdef";

    fn fs_dir() -> std::path::PathBuf {
        fixture("ne112", "kernel-stats/sys/fs/bcachefs").join(UUID)
    }

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = Bcachefs
            .collect(&sysfs("ne112", "kernel-stats/sys"))
            .expect("collects");
        let got = lines::render(&lines::sorted(fams));
        let want = expected_1_12("node_bcachefs_");
        assert_eq!(want.len(), 305 + 2 * (13 + 130), "the 1.12 golden lines");
        assert_eq!(got, want);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(parse_human_bytes("2.05G"), Ok(2_201_170_739));
        assert_eq!(parse_human_bytes("512k"), Ok(524_288));
        assert_eq!(parse_human_bytes(" 697 "), Ok(697));
        assert_eq!(parse_human_bytes("1.26k"), Ok(1290));
        assert_eq!(parse_human_bytes("1E"), Ok(1 << 60));
        assert_eq!(parse_human_bytes("100000E"), Ok(u64::MAX));
        assert_eq!(parse_human_bytes("-1"), Ok(0));
        assert!(parse_human_bytes("").is_err());
        assert!(parse_human_bytes("G").is_err());
        assert!(parse_human_bytes("12X").is_err());
        assert!(parse_human_bytes("1.5€").is_err());
    }

    #[test]
    fn tables() {
        let c = parse_compression("type compressed uncompressed avg\nlz4: 1k 2k 3k\nshort 1\n")
            .expect("parses");
        assert_eq!(c.get("lz4"), Some(&(1024, 2048)));
        assert_eq!(c.len(), 1);
        assert!(parse_compression("h\nlz4 1k 2k x\n").is_err());
        let w = parse_btree_writes("   nr size\ninitial: 3 100k\n").expect("parses");
        assert_eq!(w.get("initial"), Some(&(3, 102_400)));
        assert!(parse_btree_writes("h\ninitial: 3.5 1k\n").is_err());
        let e = parse_errors("a 1 17\nb 2\nc\n").expect("parses");
        assert_eq!(e, BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
        assert!(parse_errors("a 1 x\n").is_err());
        assert!(parse_errors("a -1\n").is_err());
    }

    #[test]
    fn counters() {
        assert_eq!(
            parse_counter("since mount: 475G\nsince filesystem creation: 44.5T\n"),
            Ok(48_928_267_436_032)
        );
        assert_eq!(parse_counter("since mount: 7\n"), Ok(0));
        assert!(parse_counter("garbage\n").is_err());
        assert!(parse_counter("since mount: x\n").is_err());
    }

    #[test]
    fn device_files() {
        let d = parse_io_done("junk: 1\nread:\nsb : 5\nwrite:\nsb :6\nnocolon\n").expect("ok");
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(&("write".into(), "sb".into())), Some(&6));
        assert!(parse_io_done("read:\nsb: x\n").is_err());
        let e = parse_io_errors(
            "IO errors since filesystem creation\n  read: 3\n  write:1\nIO errors since 8 y ago\n  read: 9\n",
        )
        .expect("ok");
        assert_eq!(e, BTreeMap::from([("read".into(), 3), ("write".into(), 1)]));
        assert_eq!(parse_io_errors("  read: 3\n"), Ok(BTreeMap::new()));
    }

    #[test]
    fn missing_files_are_zero_bad_ones_fail() {
        let dir = fixture_copy("ne112", "kernel-stats/sys");
        let fs = dir.path().join("fs/bcachefs").join(UUID);
        for f in [
            "btree_cache_size",
            "errors",
            "dev-4/nbuckets",
            "dev-4/label",
        ] {
            std::fs::remove_file(fs.join(f)).expect("rm");
        }
        std::fs::remove_dir_all(fs.join("counters")).expect("rm counters");
        let s = read_fs(&fs, UUID).expect("missing files are zero");
        assert_eq!(s.btree_cache_size_bytes, 0);
        assert!(s.errors.is_empty() && s.counters.is_empty());
        assert_eq!(s.devices["4"].buckets, 0);
        assert_eq!(s.devices["4"].label, "");
        std::fs::write(fs.join("dev-4/durability"), "one\n").expect("write");
        let e = Bcachefs.collect(&sysfs_at(dir.path())).expect_err("fails");
        assert!(!e.is_no_data(), "{e}");
        assert!(e.to_string().contains("durability"), "{e}");
    }

    #[test]
    fn no_bcachefs_is_no_data() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Bcachefs.collect(&sysfs_at(dir.path())).expect_err("no dir");
        assert!(e.is_no_data(), "{e}");
        std::fs::create_dir_all(dir.path().join("fs/bcachefs")).expect("mkdir");
        let e = Bcachefs
            .collect(&sysfs_at(dir.path()))
            .expect_err("empty dir");
        assert!(e.is_no_data(), "{e}");
    }

    #[test]
    fn fixture_reads_as_procfs() {
        let s = read_fs(&fs_dir(), UUID).expect("reads");
        assert_eq!(s.devices.len(), 5);
        assert_eq!(s.counters.len(), 130);
        assert_eq!(
            s.errors["extent_io_opts_not_set"],
            11_299_659_571_772_285_102
        );
        assert_eq!(s.devices["6"].state, "[rw] ro evacuating spare");
    }
}
