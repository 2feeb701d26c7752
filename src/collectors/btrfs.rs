//! `btrfs` collector: node_exporter 1.5's `btrfs_linux.go` over prometheus/procfs 0.8's
//! `btrfs` package, **sysfs only**.
//!
//! For every mounted Btrfs file system, `/sys/fs/btrfs/<fsid>/` (procfs' glob `*-*`, so the
//! global `features` directory is not one) gives:
//!
//! - `node_btrfs_info{label,uuid} 1` (`label`, and `metadata_uuid` or else the directory name);
//! - `node_btrfs_global_rsv_size_bytes{uuid}` (`allocation/global_rsv_size`);
//! - `node_btrfs_reserved_bytes{block_group_type,uuid}` (`allocation/<type>/bytes_reserved`);
//! - `node_btrfs_used_bytes`, `node_btrfs_size_bytes`, `node_btrfs_allocation_ratio`
//!   `{block_group_type,mode,uuid}` for every layout directory `allocation/<type>/<mode>/`
//!   (ratio 1 for `single`/`raid0`, 2 for `dup`/`raid1`/`raid10`, n/(n-1) for `raid5` and
//!   n/(n-2) for `raid6` with n devices, 0 for any other layout, as procfs computes it);
//! - `node_btrfs_device_size_bytes{device,uuid}` (`devices/<dev>/size` × 512);
//! - node_exporter 1.12: `node_btrfs_commits_total`, `node_btrfs_last_commit_seconds`,
//!   `node_btrfs_max_commit_seconds` and `node_btrfs_commit_seconds_total` `{uuid}` from
//!   `commit_stats` (kernel 6.0+; zeros where the file is absent, as procfs; a malformed line
//!   fails the collector). `raid1c3`/`raid1c4` layouts have ratio 3/4 (procfs ≥ 0.11).
//!
//! **Deviation, by design:** node_exporter 1.4+ also opens every mounted Btrfs file system and
//! queries it with the `BTRFS_IOC_FS_INFO`, `BTRFS_IOC_DEV_INFO` and `BTRFS_IOC_GET_DEV_STATS`
//! ioctls; when that works it adds `node_btrfs_device_unused_bytes` and
//! `node_btrfs_device_errors_total{type}` and gives `node_btrfs_device_size_bytes` an extra
//! `btrfs_dev_uuid` label. The agent is sandboxed (no ioctl, no opening of mount points
//! outside `/proc` and `/sys`), so it always emits what node_exporter emits when those ioctls
//! fail: the sysfs-only families above, `device_size_bytes` labelled `{device,uuid}`.
//!
//! Without Btrfs (no `/sys/fs/btrfs`, or only its `features` directory) there is nothing to
//! read: no samples and success, as node_exporter. As procfs' reader, unreadable value files
//! count 0 (a missing `metadata_uuid`, as on kernels before 5.0, falls back to the directory
//! name); the collector fails only where procfs' error survives its own bookkeeping: an
//! unreadable `allocation/system` directory or file. Files procfs reads but node_exporter does
//! not export (`clone_alignment`, `nodesize`, `bytes_used`, …) are
//! not read.

use std::path::{Path, PathBuf};

use super::nvme::sys_read_file;
use super::{glob_names, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Btrfs)
}

/// Linux sectors are 512 bytes regardless of the device.
const SECTOR_SIZE: u64 = 512;

/// One layout (`raid1`, `single`, …) of an allocation type.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub mode: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub ratio: f64,
}

/// One allocation type (`data`, `metadata`, `system`).
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub reserved_bytes: u64,
    pub layouts: Vec<Layout>,
}

/// What the collector exports of one file system.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub uuid: String,
    pub label: String,
    pub global_rsv_size: u64,
    pub data: Allocation,
    pub metadata: Allocation,
    pub system: Allocation,
    /// `(device name, size in bytes)`, sorted by name.
    pub devices: Vec<(String, u64)>,
    pub commits: CommitStats,
}

/// `commit_stats` (kernel 6.0+; all 0 where the file is absent, as procfs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub last_commit_ms: u64,
    pub max_commit_ms: u64,
    pub total_commit_ms: u64,
}

/// Parses `commit_stats` as procfs' `readCommitStats`: every line `<key> <value>` with an
/// unsigned value, unknown keys skipped.
pub fn parse_commit_stats(text: &str) -> Result<CommitStats, String> {
    let mut c = CommitStats::default();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let &[key, value] = parts.as_slice() else {
            return Err(format!("invalid commit_stats line {line:?}"));
        };
        let value: u64 = value
            .parse()
            .map_err(|_| format!("error parsing commit_stats line {line:?}"))?;
        match key {
            "commits" => c.commits = value,
            "last_commit_ms" => c.last_commit_ms = value,
            "max_commit_ms" => c.max_commit_ms = value,
            "total_commit_ms" => c.total_commit_ms = value,
            _ => {}
        }
    }
    Ok(c)
}

/// procfs' `reader`: remembers the first error (other than a missing file); once one is
/// remembered, numeric reads yield 0.
struct Reader {
    dir: PathBuf,
    err: Option<CollectError>,
}

impl Reader {
    fn new(dir: PathBuf) -> Self {
        Reader { dir, err: None }
    }

    fn read_file(&mut self, rel: &str) -> String {
        let p = self.dir.join(rel);
        match sys_read_file(&p) {
            Ok(s) => s,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.err = Some(CollectError::io(&p, e));
                }
                String::new()
            }
        }
    }

    fn read_value(&mut self, rel: &str) -> u64 {
        let s = self.read_file(rel);
        if self.err.is_some() {
            return 0;
        }
        s.parse().unwrap_or(0)
    }

    /// Directory entries as `(name, is a directory (not following symlinks))`, sorted.
    fn list(&mut self, rel: &str) -> Vec<(String, bool)> {
        let p = self.dir.join(rel);
        match crate::collector::read_dir(&p) {
            Ok(rd) => {
                let mut v: Vec<(String, bool)> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| {
                        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                        (e.file_name().to_string_lossy().into_owned(), is_dir)
                    })
                    .collect();
                v.sort_unstable();
                v
            }
            Err(e) => {
                self.err = Some(CollectError::io(&p, e));
                Vec::new()
            }
        }
    }
}

fn ratio(mode: &str, devices: usize) -> f64 {
    let n = devices as f64;
    match mode {
        "single" | "raid0" => 1.0,
        "dup" | "raid1" | "raid10" => 2.0,
        "raid1c3" => 3.0,
        "raid1c4" => 4.0,
        "raid5" => n / (n - 1.0),
        "raid6" => n / (n - 2.0),
        _ => 0.0,
    }
}

/// procfs' `readAllocationStats` for `allocation/<kind>`, with its own error state.
fn read_allocation(
    fs_dir: &Path,
    kind: &str,
    devices: usize,
) -> (Allocation, Option<CollectError>) {
    let mut r = Reader::new(fs_dir.join("allocation").join(kind));
    let reserved_bytes = r.read_value("bytes_reserved");
    let mut layouts = Vec::new();
    for (mode, is_dir) in r.list("") {
        if !is_dir {
            continue;
        }
        let total_bytes = r.read_value(&format!("{mode}/total_bytes"));
        let used_bytes = r.read_value(&format!("{mode}/used_bytes"));
        layouts.push(Layout {
            ratio: ratio(&mode, devices),
            mode,
            total_bytes,
            used_bytes,
        });
    }
    (
        Allocation {
            reserved_bytes,
            layouts,
        },
        r.err,
    )
}

/// Reads one `/sys/fs/btrfs/<fsid>` directory.
pub fn read_fs(dir: &Path) -> Result<Stats, CollectError> {
    let mut r = Reader::new(dir.to_path_buf());
    let mut devices = Vec::new();
    for (name, _) in r.list("devices") {
        let size = SECTOR_SIZE.wrapping_mul(r.read_value(&format!("devices/{name}/size")));
        devices.push((name, size));
    }
    let label = r.read_file("label");
    let mut uuid = r.read_file("metadata_uuid");
    // Unused, but an unreadable `features` directory zeroes what procfs reads next.
    r.list("features");
    let global_rsv_size = r.read_value("allocation/global_rsv_size");
    let n = devices.len();
    let (data, _) = read_allocation(dir, "data", n);
    let (metadata, _) = read_allocation(dir, "metadata", n);
    // procfs assigns each allocation reader's error to the file system's in turn, so only the
    // last one (`system`) decides.
    let (system, err) = read_allocation(dir, "system", n);
    // Read last by procfs: its error, if any, is the one reported.
    let commit_path = dir.join("commit_stats");
    let commits = match std::fs::read_to_string(&commit_path) {
        Ok(text) => parse_commit_stats(&text).map_err(|m| CollectError::parse(&commit_path, m))?,
        // Absent before kernel 6.0: zeros.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CommitStats::default(),
        Err(e) => return Err(CollectError::io(&commit_path, e)),
    };
    if let Some(e) = err {
        return Err(e);
    }
    if uuid.is_empty() {
        uuid = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(Stats {
        uuid,
        label,
        global_rsv_size,
        data,
        metadata,
        system,
        devices,
        commits,
    })
}

/// The families for a set of file systems.
pub fn families(all: &[Stats]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge("node_btrfs_info", "Filesystem information");
    let mut rsv = MetricFamily::gauge(
        "node_btrfs_global_rsv_size_bytes",
        "Size of global reserve.",
    );
    let mut reserved = MetricFamily::gauge(
        "node_btrfs_reserved_bytes",
        "Amount of space reserved for a data type",
    );
    let mut used = MetricFamily::gauge(
        "node_btrfs_used_bytes",
        "Amount of used space by a layout/data type",
    );
    let mut size = MetricFamily::gauge(
        "node_btrfs_size_bytes",
        "Amount of space allocated for a layout/data type",
    );
    let mut ratio = MetricFamily::gauge(
        "node_btrfs_allocation_ratio",
        "Data allocation ratio for a layout/data type",
    );
    let mut dev = MetricFamily::gauge(
        "node_btrfs_device_size_bytes",
        "Size of a device that is part of the filesystem.",
    );
    let mut commits = MetricFamily::counter(
        "node_btrfs_commits_total",
        "The total number of commits that have occurred.",
    );
    let mut last_commit = MetricFamily::gauge(
        "node_btrfs_last_commit_seconds",
        "Duration of the most recent commit, in seconds.",
    );
    let mut max_commit = MetricFamily::gauge(
        "node_btrfs_max_commit_seconds",
        "Duration of the slowest commit, in seconds.",
    );
    let mut commit_seconds = MetricFamily::counter(
        "node_btrfs_commit_seconds_total",
        "Sum of the duration of all commits, in seconds.",
    );
    for s in all {
        let uuid = s.uuid.as_str();
        info.push(&[("label", &s.label), ("uuid", uuid)], 1.0);
        rsv.push(&[("uuid", uuid)], s.global_rsv_size as f64);
        let c = &s.commits;
        commits.push(&[("uuid", uuid)], c.commits as f64);
        last_commit.push(&[("uuid", uuid)], c.last_commit_ms as f64 / 1000.0);
        max_commit.push(&[("uuid", uuid)], c.max_commit_ms as f64 / 1000.0);
        commit_seconds.push(&[("uuid", uuid)], c.total_commit_ms as f64 / 1000.0);
        for (kind, a) in [
            ("data", &s.data),
            ("metadata", &s.metadata),
            ("system", &s.system),
        ] {
            reserved.push(
                &[("block_group_type", kind), ("uuid", uuid)],
                a.reserved_bytes as f64,
            );
            for l in &a.layouts {
                let labels = [
                    ("block_group_type", kind),
                    ("mode", &l.mode),
                    ("uuid", uuid),
                ];
                used.push(&labels, l.used_bytes as f64);
                size.push(&labels, l.total_bytes as f64);
                ratio.push(&labels, l.ratio);
            }
        }
        for (name, bytes) in &s.devices {
            dev.push(&[("device", name), ("uuid", uuid)], *bytes as f64);
        }
    }
    vec![
        ratio,
        commit_seconds,
        commits,
        dev,
        rsv,
        info,
        last_commit,
        max_commit,
        reserved,
        size,
        used,
    ]
}

struct Btrfs;

impl Collector for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let root = paths.sys("fs/btrfs");
        // Go's filepath.Glob ignores I/O errors: an unreadable or missing directory matches
        // nothing.
        let names = glob_names(&root, |n| n.contains('-'));
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let all = names
            .iter()
            .map(|n| read_fs(&root.join(n)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(families(&all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture, raw, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter() {
        let mut fams = Btrfs
            .collect(&sysfs("storage2", "btrfs/sys"))
            .expect("collects");
        // The exposition layer sorts samples as client_golang does; so does this test.
        fams.iter_mut().for_each(crate::exposition::sort_samples);
        // expected.txt is node_exporter 1.5's output; the commit families are 1.12's, checked
        // against 1.12's e2e-output.txt lines for the same tree.
        let (commit, old): (Vec<_>, Vec<_>) =
            fams.into_iter().partition(|f| f.name.contains("commit"));
        assert_golden(raw(&old), "storage2", "btrfs/expected.txt");
        let expected_112 =
            "# HELP node_btrfs_commit_seconds_total Sum of the duration of all commits, in seconds.
# TYPE node_btrfs_commit_seconds_total counter
node_btrfs_commit_seconds_total{uuid=\"0abb23a9-579b-43e6-ad30-227ef47fcb9d\"} 47836.09
node_btrfs_commit_seconds_total{uuid=\"7f07c59f-6136-449c-ab87-e1cf2328731b\"} 0
# HELP node_btrfs_commits_total The total number of commits that have occurred.
# TYPE node_btrfs_commits_total counter
node_btrfs_commits_total{uuid=\"0abb23a9-579b-43e6-ad30-227ef47fcb9d\"} 258051
node_btrfs_commits_total{uuid=\"7f07c59f-6136-449c-ab87-e1cf2328731b\"} 0
# HELP node_btrfs_last_commit_seconds Duration of the most recent commit, in seconds.
# TYPE node_btrfs_last_commit_seconds gauge
node_btrfs_last_commit_seconds{uuid=\"0abb23a9-579b-43e6-ad30-227ef47fcb9d\"} 1
node_btrfs_last_commit_seconds{uuid=\"7f07c59f-6136-449c-ab87-e1cf2328731b\"} 0
# HELP node_btrfs_max_commit_seconds Duration of the slowest commit, in seconds.
# TYPE node_btrfs_max_commit_seconds gauge
node_btrfs_max_commit_seconds{uuid=\"0abb23a9-579b-43e6-ad30-227ef47fcb9d\"} 51.462
node_btrfs_max_commit_seconds{uuid=\"7f07c59f-6136-449c-ab87-e1cf2328731b\"} 0
";
        assert_eq!(raw(&commit), expected_112);
    }

    #[test]
    fn commit_stats() {
        assert_eq!(
            parse_commit_stats("commits 3\nlast_commit_ms 1000\nnew_key 5\n"),
            Ok(CommitStats {
                commits: 3,
                last_commit_ms: 1000,
                ..CommitStats::default()
            })
        );
        assert!(parse_commit_stats("commits\n").is_err());
        assert!(parse_commit_stats("commits -1\n").is_err());
    }

    #[test]
    fn parses_fixture_exactly() {
        let s = read_fs(&fixture(
            "storage2",
            "btrfs/sys/fs/btrfs/7f07c59f-6136-449c-ab87-e1cf2328731b",
        ))
        .expect("reads");
        assert_eq!(s.label, "");
        assert_eq!(s.global_rsv_size, 16_777_216);
        assert_eq!(s.devices.len(), 4);
        assert_eq!(s.devices[0], ("loop22".to_string(), 20_971_520 * 512));
        assert_eq!(
            s.data.layouts,
            vec![Layout {
                mode: "raid5".into(),
                total_bytes: 644_087_808,
                used_bytes: 0,
                ratio: 4.0 / 3.0,
            }]
        );
        assert_eq!(s.metadata.layouts[0].ratio, 2.0);
        let fams = families(&[s]);
        let info = fams
            .iter()
            .find(|f| f.name == "node_btrfs_info")
            .expect("info");
        assert_eq!(
            info.samples[0]
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect::<Vec<_>>(),
            vec![
                ("label".into(), String::new()),
                (
                    "uuid".into(),
                    "7f07c59f-6136-449c-ab87-e1cf2328731b".to_string()
                ),
            ]
        );
        let used = fams
            .iter()
            .find(|f| f.name == "node_btrfs_used_bytes")
            .expect("used");
        let names: Vec<&str> = used.samples[0].labels.iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, ["block_group_type", "mode", "uuid"]);
    }

    #[test]
    fn quirks_of_procfs() {
        let dir = std::env::temp_dir().join(format!("btrfs-test-{}", std::process::id()));
        let fs = dir.join("fs/btrfs/aaaa-bbbb");
        std::fs::create_dir_all(fs.join("allocation/system/raid1c3")).expect("mkdir");
        std::fs::create_dir_all(fs.join("devices/sda")).expect("mkdir");
        std::fs::write(fs.join("devices/sda/size"), "garbage\n").expect("write");
        std::fs::write(fs.join("allocation/system/raid1c3/total_bytes"), "7\n").expect("write");
        std::fs::write(fs.join("allocation/global_rsv_size"), "5\n").expect("write");
        // No metadata_uuid, no data/metadata directories, an unparsable size, a raid1c3
        // layout (ratio 3, procfs >= 0.11): all tolerated, as procfs does; without `features`, global_rsv_size reads 0.
        let fams = Btrfs.collect(&sysfs_at(dir.clone())).expect("collects");
        let text = raw(&fams);
        assert!(text.contains("node_btrfs_info{label=\"\",uuid=\"aaaa-bbbb\"} 1\n"));
        assert!(text.contains("node_btrfs_global_rsv_size_bytes{uuid=\"aaaa-bbbb\"} 0\n"));
        assert!(
            text.contains("node_btrfs_device_size_bytes{device=\"sda\",uuid=\"aaaa-bbbb\"} 0\n")
        );
        assert!(text.contains(
            "node_btrfs_allocation_ratio{block_group_type=\"system\",mode=\"raid1c3\",uuid=\"aaaa-bbbb\"} 3\n"
        ));
        assert!(text.contains(
            "node_btrfs_size_bytes{block_group_type=\"system\",mode=\"raid1c3\",uuid=\"aaaa-bbbb\"} 7\n"
        ));
        // Without allocation/system procfs' error survives: the collector fails.
        std::fs::remove_dir_all(fs.join("allocation/system")).expect("rm");
        assert!(Btrfs.collect(&sysfs_at(dir.clone())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn absent_is_empty_success() {
        assert!(Btrfs
            .collect(&sysfs("storage2", "no-such-dir"))
            .expect("success")
            .is_empty());
    }

    #[test]
    fn live_host() {
        // This VM has /sys/fs/btrfs/features only (module loaded, nothing mounted): no samples,
        // success, as node_exporter 1.5 on the same host.
        let fams = Btrfs.collect(&Paths::default()).expect("collects");
        for f in &fams {
            for s in &f.samples {
                assert!(s.labels.iter().any(|(k, _)| k == "uuid"));
            }
        }
    }
}
