//! `filesystem` collector: node_exporter 1.5's `filesystem_linux.go`.
//!
//! - Mounts come from PID 1's mount table (the host's mount namespace): `/proc/1/mountinfo`,
//!   opened by [`warm_up`] before the privilege drop and re-read through that descriptor with
//!   `pread` from offset 0 (the kernel regenerates it on every read). Under the shipped unit
//!   (`ProtectProc=invisible`) PID 1 is visible to the root phase (group 0: procfs's `gid=`
//!   defaults to root's group) but not to the agent's user afterwards, and the agent's own
//!   mount table is systemd's namespace (`ProtectSystem=strict` remounts everything read-only,
//!   `ProtectHome=` covers `/home`, private `/tmp`, `/run/credentials`, ...), not the host's.
//!   Without the kept descriptor: `/proc/1/mountinfo`, `/proc/1/mounts` (fixture trees), then
//!   the agent's own table (`self/mountinfo`, then `mounts`) with a warning.
//! - `_readonly` is the host's flag: the mount's own `ro` or its file system's (mountinfo's
//!   super options), which is what `/proc/1/mounts` shows (node_exporter 1.5).
//! - When the agent runs in another mount namespace than PID 1 (a systemd unit's), a mount
//!   point's path may lead elsewhere in the agent's namespace (a covered `/home`). Each mount
//!   is then checked before its `statfs`: `statx(STATX_MNT_ID)` of the path must land on a
//!   mount of the same file system (the agent's own mountinfo: same `major:minor`); else any
//!   other path of the agent's namespace reaching that file system is used (the numbers
//!   `statfs` gives are the file system's); else the mount is reported with
//!   `device_error 1` and no sizes, never with the sizes of what covers it. The agent's own
//!   mountinfo is kept open and read again only when the kernel reports a change of the
//!   agent's mount table on it (`POLLPRI`), or after a minute ([`own_table`]).
//! - Mount points matching `--collector.filesystem.mount-points-exclude` and file system types
//!   matching `--collector.filesystem.fs-types-exclude` are skipped (node_exporter 1.12's
//!   deprecated alias `--collector.filesystem.ignored-mount-points` is accepted, with a warning,
//!   and refused together with the new name; so is `--collector.filesystem.ignored-fs-types`
//!   for `fs-types-exclude`). 1.12's `--collector.filesystem.mount-points-include` and
//!   `--collector.filesystem.fs-types-include` keep only what they match; given without its
//!   exclude flag, an include drops the default exclusion, and with a non-empty exclude flag
//!   it is refused (mutually exclusive, as 1.12); an empty pattern is none (an explicitly
//!   empty exclude excludes nothing). The rootfs prefix is
//!   stripped from mount points as node_exporter's `rootfsStripPrefix` does (a plain string
//!   prefix), and each mount is `statfs`ed below the rootfs.
//! - Families (labels `device`, `fstype`, `mountpoint`): `node_filesystem_size_bytes`
//!   (`f_blocks * f_bsize`), `_free_bytes` (`f_bfree`), `_avail_bytes` (`f_bavail`), `_files`,
//!   `_files_free`, `_readonly` (the `ro` mount option) and `_device_error`. A mount whose
//!   `statfs` failed gets `device_error 1` and nothing else, as in 1.5.
//!
//! A `statfs` that hangs (stale NFS, dead FUSE daemon) never hangs the scrape: the calls that
//! can hang run on helper threads and the scrape waits at most
//! `--collector.filesystem.mount-timeout`
//! (default [`MOUNT_TIMEOUT`], 1 s; node_exporter's default is 5 s, which equals the whole
//! collector's deadline here: a value that long lets one stuck mount fail the collector for
//! that scrape) for each. A mount that
//! timed out is remembered as stuck (node_exporter's `stuckMounts`): later scrapes report it
//! with `device_error 1` without calling `statfs` again, until the stuck call returns and the
//! helper thread takes the mount off the list. The helper threads are kept between scrapes,
//! so a scrape normally starts none.
//!
//! The calls that cannot hang run on the collector's own thread instead, in mount order,
//! without waking a helper (two thread wake-ups per mount and scrape otherwise): a mount of a
//! type of [`INLINE_STATFS_TYPES`] (ext2/3/4, xfs, btrfs, f2fs, tmpfs, ramfs: the kernel's
//! `->statfs` reads in-memory counters), not in the stuck set, whose path is resolved through
//! mounts of those types only ([`LocalWalk`]: not below, nor under a stack of, an NFS, FUSE,
//! autofs or unknown mount, whose directories can wait on a server or daemon; in the agent's
//! own namespace when it has another one, for every path the mount check may try), and only
//! when the namespace's mountinfo is known. Every other mount (network and cluster file
//! systems, FUSE, virtiofs, overlay, autofs, vfat/exfat, zfs, any unknown type) goes
//! through the helpers as described here; when a scrape has none, no helper is woken.
//!
//! `--collector.filesystem.stat-workers` (node_exporter 1.12, default 4): how many `statfs`
//! calls run at once on the helpers (the inline ones run beside them, on the collector's
//! thread). The helpers' mounts are split into that many lanes (fewer with fewer mounts),
//! each stat'ed in order by one helper thread; the wait per mount is counted from its lane's
//! previous answer, and a stuck mount moves the rest of its lane to a new one, so the other
//! lanes go on. 0 and negative values mean one worker, as 1.12's `max(n, 1)`; above
//! [`MAX_STAT_WORKERS`] (64) the count is capped, node_exporter's workers being goroutines and
//! these OS threads. The whole still runs within the collector's deadline
//! (`--collector.deadline`).
//!
//! Syscalls: `statfs`, `statx` (the mount check), `pread64` (the kept mount table), plus
//! `clone3`/`futex` for the helper threads.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::options::{collector_options, GoDurationOpt, Pattern};
use super::{CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::MetricFamily;

/// How long a scrape waits for one mount's `statfs` before marking the mount stuck.
/// node_exporter waits `--collector.filesystem.mount-timeout` (5 s); we wait less because the
/// whole collector has a 5 s deadline and a healthy `statfs` answers in microseconds, so one
/// stuck mount still leaves time to serve the others.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle helper threads kept for the next scrape at least (one lane suffices when no mount
/// hangs); with more `stat-workers`, one per worker.
const MAX_IDLE_WORKERS: usize = 2;

/// node_exporter 1.12's default `--collector.filesystem.stat-workers`.
pub const DEFAULT_STAT_WORKERS: i64 = 4;

/// The most `statfs` calls run at once, whatever `--collector.filesystem.stat-workers` asks:
/// node_exporter's workers are goroutines, here each is an OS thread kept for the next scrape.
pub const MAX_STAT_WORKERS: usize = 64;

/// The effective worker count for `--collector.filesystem.stat-workers=n`: 1.12's
/// `max(n, 1)` (0 and negative values mean one worker, as in 1.12: not refused), capped at
/// [`MAX_STAT_WORKERS`].
pub fn stat_workers(n: i64) -> usize {
    usize::try_from(n.max(1)).map_or(MAX_STAT_WORKERS, |n| n.min(MAX_STAT_WORKERS))
}

collector_options! {
    /// Options of the filesystem collector (`[collector.filesystem]` in the file).
    pub struct FilesystemOptions {
        /// Regexp of mount points to ignore for the filesystem collector
        /// [default: node_exporter's].
        #[arg(id = "collector.filesystem.mount-points-exclude", long = "collector.filesystem.mount-points-exclude", value_name = "REGEX")]
        pub mount_points_exclude: Option<Pattern>,
        /// Regexp of filesystem types to ignore for the filesystem collector
        /// [default: node_exporter's].
        #[arg(id = "collector.filesystem.fs-types-exclude", long = "collector.filesystem.fs-types-exclude", value_name = "REGEX")]
        pub fs_types_exclude: Option<Pattern>,
        /// DEPRECATED alias of --collector.filesystem.mount-points-exclude (as node_exporter
        /// 1.12; mutually exclusive with it).
        #[arg(id = "collector.filesystem.ignored-mount-points", long = "collector.filesystem.ignored-mount-points", value_name = "REGEX")]
        pub ignored_mount_points: Option<Pattern>,
        /// Regexp of mount points to include for the filesystem collector (mutually exclusive
        /// to a non-empty mount-points-exclude; without it, the default exclusion is dropped).
        #[arg(id = "collector.filesystem.mount-points-include", long = "collector.filesystem.mount-points-include", value_name = "REGEX")]
        pub mount_points_include: Option<Pattern>,
        /// Regexp of filesystem types to include for the filesystem collector (mutually
        /// exclusive to a non-empty fs-types-exclude; without it, the default exclusion is
        /// dropped).
        #[arg(id = "collector.filesystem.fs-types-include", long = "collector.filesystem.fs-types-include", value_name = "REGEX")]
        pub fs_types_include: Option<Pattern>,
        /// DEPRECATED alias of --collector.filesystem.fs-types-exclude (as node_exporter 1.12;
        /// mutually exclusive with it).
        #[arg(id = "collector.filesystem.ignored-fs-types", long = "collector.filesystem.ignored-fs-types", value_name = "REGEX")]
        pub ignored_fs_types: Option<Pattern>,
        /// How long to wait for a mount's statfs before marking it stale (Go duration, e.g.
        /// 500ms) [default: 1s; node_exporter's is 5s, see the collector's docs].
        #[arg(id = "collector.filesystem.mount-timeout", long = "collector.filesystem.mount-timeout", value_name = "DURATION")]
        pub mount_timeout: Option<GoDurationOpt>,
        /// How many stat calls to process simultaneously (as node_exporter 1.12: 0 or less
        /// means 1; here at most 64) [default: 4].
        #[arg(id = "collector.filesystem.stat-workers", long = "collector.filesystem.stat-workers",
              value_name = "N", allow_negative_numbers = true)]
        pub stat_workers: Option<i64>,
    }
    check(o) {
        mount_points(o).check()?;
        fs_types(o).check()?;
        if o.mount_timeout.is_some_and(|d| d.0.is_zero()) {
            return Err("--collector.filesystem.mount-timeout must be more than 0".into());
        }
        Ok(())
    }
}

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// One of node_exporter 1.12's two filter flag sets of this collector (mount points, file
/// system types): `--collector.filesystem.<what>-exclude` (with a default), its deprecated
/// alias `--collector.filesystem.<old>` and `--collector.filesystem.<what>-include`.
struct FilterFlags<'a> {
    what: &'static str,
    old: &'static str,
    exclude: &'a Option<Pattern>,
    alias: &'a Option<Pattern>,
    include: &'a Option<Pattern>,
    default: &'static str,
}

fn mount_points(o: &FilesystemOptions) -> FilterFlags<'_> {
    FilterFlags {
        what: "mount-points",
        old: "ignored-mount-points",
        exclude: &o.mount_points_exclude,
        alias: &o.ignored_mount_points,
        include: &o.mount_points_include,
        default: DEFAULT_MOUNT_POINTS_EXCLUDE,
    }
}

fn fs_types(o: &FilesystemOptions) -> FilterFlags<'_> {
    FilterFlags {
        what: "fs-types",
        old: "ignored-fs-types",
        exclude: &o.fs_types_exclude,
        alias: &o.ignored_fs_types,
        include: &o.fs_types_include,
        default: DEFAULT_FS_TYPES_EXCLUDE,
    }
}

/// The pattern, unless it is empty (node_exporter's flags: an empty string is no pattern).
fn nonempty(p: &Option<Pattern>) -> Option<&Pattern> {
    p.as_ref().filter(|p| !p.0.as_str().is_empty())
}

impl FilterFlags<'_> {
    /// node_exporter 1.12's refusals (`newMountPointsFilter`, `newFSTypeFilter`): the alias
    /// with the exclude flag, and an include with a non-empty exclude flag given.
    fn check(&self) -> Result<(), String> {
        let (what, old) = (self.what, self.old);
        if nonempty(self.alias).is_some() && self.exclude.is_some() {
            return Err(format!(
                "--collector.filesystem.{old} and --collector.filesystem.{what}-exclude are \
                 mutually exclusive"
            ));
        }
        if nonempty(self.include).is_some() && nonempty(self.exclude).is_some() {
            return Err(format!(
                "--collector.filesystem.{what}-exclude and --collector.filesystem.{what}-include \
                 are mutually exclusive"
            ));
        }
        Ok(())
    }

    /// The filter, as 1.12 builds it: the exclude flag, else the alias (warning that it is
    /// deprecated), else the default; an include flag drops the exclusion unless the
    /// exclude flag was given; an empty pattern is none.
    fn filter(&self) -> DeviceFilter {
        let given = self.exclude.is_some();
        let mut exclude = match self.exclude {
            Some(p) => Some(p.clone()),
            None => Some(Pattern(Pattern::or_default(&None, self.default))),
        };
        if let Some(old) = nonempty(self.alias) {
            if !given {
                log::warn!(
                    "--collector.filesystem.{} is DEPRECATED and will be removed in 2.0.0, use --collector.filesystem.{}-exclude",
                    self.old,
                    self.what
                );
                exclude = Some(old.clone());
            }
        }
        if nonempty(self.include).is_some() && !given {
            exclude = None;
        }
        DeviceFilter::both(self.include, &exclude)
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.filesystem;
    STATTER.set_timeout(o.mount_timeout.map_or(MOUNT_TIMEOUT, |d| d.0));
    STATTER.set_workers(o.stat_workers.unwrap_or(DEFAULT_STAT_WORKERS));
    Box::new(Filesystem {
        mount_points: mount_points(o).filter(),
        fs_types: fs_types(o).filter(),
    })
}

/// A file system's device number, mountinfo's `major:minor`.
pub type Dev = (u32, u32);

/// One line of `/proc/mounts` or `/proc/PID/mountinfo`, as node_exporter 1.5's
/// `filesystemLabels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    /// With `\040` and `\011` decoded and the rootfs prefix stripped.
    pub mount_point: String,
    pub fs_type: String,
    /// The mount's own options (mountinfo: the per-mount ones).
    pub options: String,
    /// mountinfo only: the file system itself is read-only (super options `ro`).
    pub super_read_only: bool,
    /// mountinfo only.
    pub info: Option<MountInfo>,
}

/// What mountinfo adds to a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u64,
    pub parent: u64,
    pub dev: Dev,
    /// The mount point as the table's namespace sees it (decoded, rootfs prefix kept).
    pub path: String,
}

impl Mount {
    /// `ro` as `/proc/mounts` shows it: the mount's flag or its file system's.
    fn read_only(&self) -> bool {
        self.super_read_only || super::split_byte(&self.options, b',').any(|o| o == "ro")
    }
}

/// node_exporter's decoding of mount points: `\040` and `\011` only.
fn decode(mp: &str) -> String {
    if memchr::memchr(b'\\', mp.as_bytes()).is_some() {
        mp.replace("\\040", " ").replace("\\011", "\t")
    } else {
        mp.to_string()
    }
}

/// Parses `/proc/PID/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS
/// [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS`. A line that does not have this shape is an
/// error, as a short `/proc/mounts` line is.
pub fn parse_mountinfo(text: &str, rootfs: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::with_capacity(32);
    for line in super::lines(text) {
        let bad = || format!("malformed mountinfo line: {line:?}");
        let mut f = line.split_ascii_whitespace();
        let (Some(id), Some(parent), Some(dev), Some(_root), Some(mp), Some(options)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad());
        };
        // Optional fields up to the "-" separator.
        if !f.by_ref().any(|x| x == "-") {
            return Err(bad());
        }
        let (Some(fs_type), Some(source), Some(super_options)) = (f.next(), f.next(), f.next())
        else {
            return Err(bad());
        };
        let (Ok(id), Ok(parent)) = (id.parse::<u64>(), parent.parse::<u64>()) else {
            return Err(bad());
        };
        let dev = super::split_once_byte(dev, b':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(bad)?;
        let path = decode(mp);
        out.push(Mount {
            device: source.to_string(),
            mount_point: strip_rootfs(path.clone(), rootfs),
            fs_type: fs_type.to_string(),
            options: options.to_string(),
            super_read_only: super::split_byte(super_options, b',').any(|o| o == "ro"),
            info: Some(MountInfo {
                id,
                parent,
                dev,
                path,
            }),
        });
    }
    Ok(out)
}

/// Parses `/proc/mounts` (fstab(5) format). A line with fewer than 4 fields is an error, as in
/// node_exporter.
pub fn parse_mounts(text: &str, rootfs: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::with_capacity(32);
    for line in super::lines(text) {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mp), Some(fs_type), Some(options)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("malformed mount point information: {line:?}"));
        };
        out.push(Mount {
            device: device.to_string(),
            mount_point: strip_rootfs(decode(mp), rootfs),
            fs_type: fs_type.to_string(),
            options: options.to_string(),
            super_read_only: false,
            info: None,
        });
    }
    Ok(out)
}

/// node_exporter's `rootfsStripPrefix`: a string prefix, `"/"` when nothing is left.
fn strip_rootfs(mp: String, rootfs: &str) -> String {
    if rootfs == "/" {
        return mp;
    }
    match mp.strip_prefix(rootfs) {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => mp,
    }
}

/// What `statfs` tells, already in node_exporter's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsStats {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

fn real_statfs(path: &Path) -> io::Result<FsStats> {
    let s = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
    let bsize = s.block_size() as f64;
    Ok(FsStats {
        size: s.blocks() as f64 * bsize,
        free: s.blocks_free() as f64 * bsize,
        avail: s.blocks_available() as f64 * bsize,
        files: s.files() as f64,
        files_free: s.files_free() as f64,
    })
}

type StatfsFn = dyn Fn(&Path) -> io::Result<FsStats> + Send + Sync;

/// File system types whose `statfs` runs on the scrape's own thread, without a helper thread
/// or a timeout: their `->statfs` reads counters the kernel keeps in memory, and cannot wait
/// for a network peer or a user-space daemon (kernel sources, `fs/*/super.c`):
/// - `ext2` (`ext2_statfs`: in-memory group descriptors and per-CPU counters under a
///   spinlock), `ext3` and `ext4` (both `ext4_statfs`: per-CPU counters and the in-memory
///   superblock), `f2fs` (`f2fs_statfs`: in-memory counters), `xfs` (`xfs_fs_statfs`:
///   per-CPU counters and the in-memory superblock), `btrfs` (`btrfs_statfs`: the in-memory
///   space infos and device list, under spinlocks and RCU);
/// - `tmpfs` (`shmem_statfs`) and `ramfs` (`simple_statfs`): memory only.
///
/// The one disk read left: on ext4, f2fs and xfs, a mount whose root directory inherits a
/// project quota with limits enabled reports that quota, whose record is read from the file
/// system's own device the first time (then cached). A device, not a network file system or
/// a daemon: the same wait any local read has.
///
/// Everything else keeps its helper thread and its timeout: network and cluster file systems
/// (`nfs`, `nfs4`, `cifs`, `smb3`, `ceph`, `glusterfs`, `lustre`, `afs`, `9p`, ...), FUSE
/// (`fuse`, `fuseblk`, `fuse.*`: a daemon answers) and `virtiofs`, `overlay` (its `statfs`
/// is its upper layer's, which may be any of those), `autofs` (walking into it can wait for
/// the automount daemon), `vfat`/`exfat` (the first `statfs` may scan the allocation table
/// on the device), out-of-tree ones (`zfs`) and any type not named here.
pub const INLINE_STATFS_TYPES: &[&str] = &[
    "btrfs", "ext2", "ext3", "ext4", "f2fs", "ramfs", "tmpfs", "xfs",
];

/// Whether a mount of this file system type is `statfs`ed on the scrape's own thread
/// ([`INLINE_STATFS_TYPES`], exact names: `fuse.sshfs` is FUSE); anything else, unknown types
/// included, goes through the helper threads.
pub fn inline_statfs(fs_type: &str) -> bool {
    INLINE_STATFS_TYPES.contains(&fs_type)
}

/// The mount points of the namespace the agent walks (its own, where each `statfs` path is
/// resolved) whose file system is not in [`INLINE_STATFS_TYPES`]. Resolving a path that
/// crosses one of them, or ends on one (a mount stacked on top), can wait on it (an NFS
/// directory revalidated, an automount triggered): such a path never runs inline, whatever
/// the type of the mount it leads to. The path components between mounts are pinned in the
/// dentry cache (a mount point holds its dentry, which holds its parents), so a walk through
/// local file systems reads no disk. The table is the one read at the start of the scrape: a
/// mount made on such a path in the microseconds before its call is met as any file read
/// would meet it.
pub struct LocalWalk<'a> {
    not_local: Vec<&'a str>,
}

impl<'a> LocalWalk<'a> {
    /// From that namespace's mountinfo; `None` when a mount has no path there (a `mounts`
    /// table), as nothing can be known of the walks then.
    pub fn new(walked: &'a [Mount]) -> Option<Self> {
        let mut not_local = Vec::new();
        for m in walked {
            let info = m.info.as_ref()?;
            if !inline_statfs(&m.fs_type) {
                not_local.push(info.path.as_str());
            }
        }
        Some(LocalWalk { not_local })
    }

    /// Whether resolving `path` (absolute) meets only mounts of [`INLINE_STATFS_TYPES`]: no
    /// other mount has `path` or one of its ancestors as its mount point.
    pub fn is_local(&self, path: &Path) -> bool {
        let Some(p) = path.to_str().filter(|p| p.starts_with('/')) else {
            return false;
        };
        !self.not_local.iter().any(|m| {
            *m == "/"
                || p.strip_prefix(m)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// What to `statfs` for one mount: its path, and, when the agent runs in another mount
/// namespace than the table it reports, how to make sure that path reaches the same file
/// system.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub check: Option<Arc<SameFs>>,
    /// The `statfs` (and the check's `statx`) runs on the scrape's own thread: a file system
    /// of [`INLINE_STATFS_TYPES`] reached through such file systems only ([`LocalWalk`]).
    /// Else a helper thread runs it, bounded by the timeout.
    pub inline: bool,
}

impl From<PathBuf> for Target {
    fn from(path: PathBuf) -> Self {
        Target {
            path,
            check: None,
            inline: false,
        }
    }
}

/// A host mount's file system, and where the agent's own namespace has it.
#[derive(Debug)]
pub struct SameFs {
    /// The host mount's `major:minor`.
    pub dev: Dev,
    /// Other mount points of the agent's namespace with that file system.
    pub others: Vec<PathBuf>,
    /// The agent's own mounts: mount id to file system.
    pub own: Arc<HashMap<u64, Dev>>,
}

impl SameFs {
    /// The path of the agent's namespace to `statfs` for this file system: `path` when it
    /// reaches it (the mount `statx` lands on has the same `major:minor`), else the first of
    /// `others` that does. An error when none does: the namespace hides the file system.
    pub fn path_for<'a>(&'a self, path: &'a Path) -> io::Result<&'a Path> {
        for p in std::iter::once(path).chain(self.others.iter().map(PathBuf::as_path)) {
            if self.reaches(p) {
                return Ok(p);
            }
        }
        Err(io::Error::other(format!(
            "{} leads to another file system in the agent's mount namespace (hidden by it, e.g. \
             ProtectHome=), and no other path there reaches {}:{}",
            path.display(),
            self.dev.0,
            self.dev.1
        )))
    }

    fn reaches(&self, path: &Path) -> bool {
        match mount_id(path) {
            Ok(id) => self.own.get(&id) == Some(&self.dev),
            Err(e) => {
                log::debug!("statx {}: {e}", path.display());
                false
            }
        }
    }
}

/// The id of the mount `path` is on (`statx` with `STATX_MNT_ID`, Linux 5.8+).
fn mount_id(path: &Path) -> io::Result<u64> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let st = statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID).map_err(io::Error::from)?;
    if st.stx_mask & StatxFlags::MNT_ID.bits() == 0 {
        return Err(io::Error::other(
            "the kernel reports no mount id (before Linux 5.8)",
        ));
    }
    Ok(st.stx_mnt_id)
}

/// The outcome of one mount's `statfs` in a scrape.
#[derive(Debug)]
pub enum StatOutcome {
    Ok(FsStats),
    /// `statfs` failed.
    Failed(io::Error),
    /// `statfs` did not answer in time, now or in an earlier scrape.
    Stuck,
}

/// Runs `statfs` calls on helper threads, remembering the mounts whose call hangs.
pub struct Statter {
    statfs: Box<StatfsFn>,
    /// The wait per mount, in nanoseconds (`--collector.filesystem.mount-timeout`).
    timeout_ns: std::sync::atomic::AtomicU64,
    /// Mount points whose `statfs` timed out and has not returned yet.
    stuck: Mutex<HashSet<String>>,
    /// Idle helper threads, each waiting on its channel.
    idle: Mutex<Vec<mpsc::Sender<Batch>>>,
    /// Helper threads started so far (for tests and curiosity).
    spawned: AtomicUsize,
    /// How many `statfs` calls run at once (`--collector.filesystem.stat-workers`).
    workers: AtomicUsize,
}

/// Work for one helper thread: stat these mounts in order, report each result, stop when
/// abandoned.
struct Batch {
    items: Vec<(usize, String, Target)>,
    results: mpsc::Sender<(usize, io::Result<FsStats>)>,
    /// Set (under the `stuck` lock) when the scrape stopped waiting for this batch.
    abandoned: Arc<AtomicBool>,
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Statter {
    pub fn new(statfs: Box<StatfsFn>, timeout: Duration) -> Self {
        Statter {
            statfs,
            timeout_ns: std::sync::atomic::AtomicU64::new(duration_ns(timeout)),
            stuck: Mutex::new(HashSet::new()),
            idle: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
            workers: AtomicUsize::new(1),
        }
    }

    /// Sets how many `statfs` calls run at once: node_exporter's `max(n, 1)`, at most
    /// [`MAX_STAT_WORKERS`] (the collector is built again on reload).
    pub fn set_workers(&self, n: i64) {
        self.workers.store(stat_workers(n), Ordering::Relaxed);
    }

    fn workers(&self) -> usize {
        self.workers.load(Ordering::Relaxed).max(1)
    }

    /// Sets the wait per mount (the collector is built again on reload).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ns
            .store(duration_ns(timeout), Ordering::Relaxed);
    }

    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.load(Ordering::Relaxed))
    }

    /// Whether `mount_point` is currently remembered as stuck.
    pub fn is_stuck(&self, mount_point: &str) -> bool {
        lock(&self.stuck).contains(mount_point)
    }

    /// `statfs` of each `(mount point, target)`. Mounts already stuck are answered
    /// [`StatOutcome::Stuck`] at once, without a call. The [`Target::inline`] ones are then
    /// stat'ed on the calling thread, in order. The others on up to `workers` helper threads
    /// at once (`--collector.filesystem.stat-workers`): they are split into that many lanes,
    /// each stat'ed in order by one thread, started before the inline calls so that both run
    /// side by side. Never waits more than the timeout for any one of those calls (counted
    /// from the lane's previous answer); a call that takes longer marks its mount stuck and
    /// the rest of its lane goes on in a new lane. Without such mounts no helper thread is
    /// woken or started.
    pub fn stat_all(
        &'static self,
        mounts: &[(&str, Target)],
    ) -> Result<Vec<StatOutcome>, CollectError> {
        let mut out: Vec<Option<StatOutcome>> = (0..mounts.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, String, Target)> = Vec::new();
        let mut inline: Vec<usize> = Vec::with_capacity(mounts.len());
        {
            let stuck = lock(&self.stuck);
            for (i, (mp, target)) in mounts.iter().enumerate() {
                if !stuck.is_empty() && stuck.contains(*mp) {
                    // Before the type: a mount point stuck under an earlier (remote) mount is
                    // never stat'ed on this thread.
                    log::debug!("mount point {mp}: still not answering, skipped");
                    set(&mut out, i, StatOutcome::Stuck);
                } else if target.inline {
                    inline.push(i);
                } else {
                    pending.push((i, (*mp).to_string(), target.clone()));
                }
            }
        }
        if pending.is_empty() {
            self.stat_inline(mounts, &inline, &mut out);
            return Ok(finish(out));
        }
        let (tx, rx) = mpsc::channel();
        let mut lanes: Vec<Lane> = Vec::new();
        // Which lane stats mount `i` now.
        let mut lane_of: Vec<usize> = vec![0; mounts.len()];
        let workers = self.workers().min(pending.len()).max(1);
        let per_lane = pending.len().div_ceil(workers).max(1);
        let mut chunks: Vec<Vec<(usize, String, Target)>> = Vec::new();
        let mut rest = pending.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(per_lane).collect());
        }
        // One thread per lane: the idle helpers are taken for the lanes all at once, so that
        // a helper finishing its lane early does not take another (the lanes run side by
        // side, and the scrape leaves one helper per worker behind).
        let mut idle = {
            let mut pool = lock(&self.idle);
            let keep = pool.len().saturating_sub(chunks.len());
            pool.split_off(keep)
        };
        for chunk in chunks {
            // No idle helper left for this lane: a new one (not one that finished an earlier
            // lane of this scrape meanwhile).
            let worker = Worker::Given(idle.pop());
            self.open_lane(chunk, worker, &tx, &mut lanes, &mut lane_of)?;
        }
        self.stat_inline(mounts, &inline, &mut out);
        let timeout = self.timeout();
        while let Some(next) = lanes
            .iter()
            .filter(|l| !l.order.is_empty())
            .map(|l| l.deadline)
            .min()
        {
            let wait = next.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(wait) {
                Ok((j, r)) => accept(&mut lanes, &lane_of, &mut out, j, r, timeout),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let mut requeued = Vec::new();
                    {
                        let mut stuck = lock(&self.stuck);
                        // Helpers send under this lock: every answer given so far is in the
                        // channel now; a lane abandoned below sends nothing more (its helper
                        // sees `abandoned` and unmarks the mount when its call returns).
                        while let Ok((j, r)) = rx.try_recv() {
                            accept(&mut lanes, &lane_of, &mut out, j, r, timeout);
                        }
                        let now = std::time::Instant::now();
                        for lane in lanes.iter_mut().filter(|l| !l.order.is_empty()) {
                            if lane.deadline > now {
                                continue;
                            }
                            lane.abandoned.store(true, Ordering::SeqCst);
                            let mut order = std::mem::take(&mut lane.order).into_iter();
                            if let Some((i, mp)) = order.next() {
                                if stuck.insert(mp.clone()) {
                                    log::warn!(
                                        "mount point {mp}: statfs timed out, skipping until it answers"
                                    );
                                }
                                set(&mut out, i, StatOutcome::Stuck);
                            }
                            let rest: Vec<(usize, String)> = order.collect();
                            if !rest.is_empty() {
                                requeued.push(requeue(mounts, &rest));
                            }
                        }
                    }
                    for chunk in requeued {
                        self.open_lane(chunk, Worker::Any, &tx, &mut lanes, &mut lane_of)?;
                    }
                }
                // Not while `tx` is held here.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(finish(out))
    }

    /// The `statfs` of the mounts `which` (indexes of `mounts`), in order, on this thread.
    fn stat_inline(
        &self,
        mounts: &[(&str, Target)],
        which: &[usize],
        out: &mut [Option<StatOutcome>],
    ) {
        for &i in which {
            if let Some((_, target)) = mounts.get(i) {
                let outcome = match self.stat_one(target) {
                    Ok(s) => StatOutcome::Ok(s),
                    Err(e) => StatOutcome::Failed(e),
                };
                set(out, i, outcome);
            }
        }
    }

    /// One mount's `statfs`, after the check's `statx` when it has one. A panicking statfs
    /// (tests only: release builds abort) counts as failed.
    fn stat_one(&self, target: &Target) -> io::Result<FsStats> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &target.check {
            None => (self.statfs)(&target.path),
            Some(same) => same.path_for(&target.path).and_then(|p| (self.statfs)(p)),
        }))
        .unwrap_or_else(|_| Err(io::Error::other("statfs panicked")))
    }

    /// Starts a lane: hands `items` to the helper thread `worker` names; answers come on
    /// `tx`.
    fn open_lane(
        &'static self,
        items: Vec<(usize, String, Target)>,
        worker: Worker,
        tx: &mpsc::Sender<(usize, io::Result<FsStats>)>,
        lanes: &mut Vec<Lane>,
        lane_of: &mut [usize],
    ) -> Result<(), CollectError> {
        let abandoned = Arc::new(AtomicBool::new(false));
        let order: std::collections::VecDeque<(usize, String)> =
            items.iter().map(|(i, mp, _)| (*i, mp.clone())).collect();
        for (i, _) in &order {
            if let Some(slot) = lane_of.get_mut(*i) {
                *slot = lanes.len();
            }
        }
        self.dispatch(
            Batch {
                items,
                results: tx.clone(),
                abandoned: abandoned.clone(),
            },
            worker,
        )?;
        lanes.push(Lane {
            order,
            abandoned,
            deadline: std::time::Instant::now() + self.timeout(),
        });
        Ok(())
    }

    /// Hands a batch to the helper thread `worker` names, or to a new one.
    fn dispatch(&'static self, batch: Batch, worker: Worker) -> Result<(), CollectError> {
        let idle = match worker {
            Worker::Given(w) => w,
            Worker::Any => lock(&self.idle).pop(),
        };
        let batch = match idle {
            Some(worker) => match worker.send(batch) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(b)) => b,
            },
            None => batch,
        };
        let (tx, rx) = mpsc::channel::<Batch>();
        tx.send(batch)
            .map_err(|_| CollectError::Other("statfs helper channel closed".into()))?;
        std::thread::Builder::new()
            .name("statfs".into())
            .spawn(move || self.work(tx, rx))
            .map_err(|e| CollectError::Other(format!("starting a statfs helper thread: {e}")))?;
        self.spawned.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A helper thread: runs batches until the idle pool is full.
    fn work(&'static self, me: mpsc::Sender<Batch>, rx: mpsc::Receiver<Batch>) {
        while let Ok(batch) = rx.recv() {
            let n = batch.items.len();
            let mut parked = false;
            for (k, (i, mp, target)) in batch.items.into_iter().enumerate() {
                // The check's statx runs here too: on a dead NFS server it can hang as well.
                // A panic leaves the thread serving.
                let r = self.stat_one(&target);
                let mut stuck = lock(&self.stuck);
                if batch.abandoned.load(Ordering::SeqCst) {
                    // The scrape gave up on this call: it marked the mount stuck, and the
                    // rest of the batch went to another thread.
                    if stuck.remove(&mp) {
                        log::info!("mount point {mp}: statfs answered again, monitoring resumes");
                    }
                    break;
                }
                if k + 1 == n {
                    // Back in the pool before the scrape hears the last answer, so that the
                    // next scrape finds this thread idle (a batch sent meanwhile waits in the
                    // channel).
                    parked = self.park(&me);
                }
                let _ = batch.results.send((i, r));
            }
            if !parked && !self.park(&me) {
                return;
            }
        }
    }

    /// Puts a helper thread back in the idle pool, unless the pool is full.
    fn park(&self, me: &mpsc::Sender<Batch>) -> bool {
        let mut idle = lock(&self.idle);
        if idle.len() >= self.workers().max(MAX_IDLE_WORKERS) {
            return false;
        }
        idle.push(me.clone());
        true
    }
}

/// Which helper thread takes a lane.
enum Worker {
    /// This idle one (taken from the pool), or a new one.
    Given(Option<mpsc::Sender<Batch>>),
    /// Any idle one, or a new one.
    Any,
}

/// One lane of a scrape's `statfs` calls: the mounts its helper has still to answer, in
/// order, and when the first of them times out.
struct Lane {
    order: std::collections::VecDeque<(usize, String)>,
    abandoned: Arc<AtomicBool>,
    deadline: std::time::Instant,
}

/// Records an answer for mount `j` and restarts its lane's clock (the lane's next call starts
/// now).
fn accept(
    lanes: &mut [Lane],
    lane_of: &[usize],
    out: &mut [Option<StatOutcome>],
    j: usize,
    r: io::Result<FsStats>,
    timeout: Duration,
) {
    let outcome = match r {
        Ok(s) => StatOutcome::Ok(s),
        Err(e) => StatOutcome::Failed(e),
    };
    set(out, j, outcome);
    if let Some(lane) = lane_of.get(j).and_then(|l| lanes.get_mut(*l)) {
        if lane.order.front().is_some_and(|(i, _)| *i == j) {
            lane.order.pop_front();
        } else {
            lane.order.retain(|(i, _)| *i != j);
        }
        lane.deadline = std::time::Instant::now() + timeout;
    }
}

/// The outcomes in mount order; a mount without one (never: every index is answered) counts
/// as stuck.
fn finish(out: Vec<Option<StatOutcome>>) -> Vec<StatOutcome> {
    out.into_iter()
        .map(|o| o.unwrap_or(StatOutcome::Stuck))
        .collect()
}

/// Records mount `i`'s outcome (`i` is always an index of `out`; `get_mut` keeps that from
/// being a panic if it ever were not).
fn set(out: &mut [Option<StatOutcome>], i: usize, v: StatOutcome) {
    if let Some(slot) = out.get_mut(i) {
        *slot = Some(v);
    }
}

/// The mounts still to stat after a stuck one.
fn requeue(mounts: &[(&str, Target)], rest: &[(usize, String)]) -> Vec<(usize, String, Target)> {
    rest.iter()
        .filter_map(|(i, mp)| mounts.get(*i).map(|(_, p)| (*i, mp.clone(), p.clone())))
        .collect()
}

static STATTER: LazyLock<Statter> =
    LazyLock::new(|| Statter::new(Box::new(real_statfs), MOUNT_TIMEOUT));

struct Filesystem {
    mount_points: DeviceFilter,
    fs_types: DeviceFilter,
}

/// PID 1's `mountinfo`, opened by [`warm_up`] while the agent may still see PID 1.
static KEPT: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Whether the fallback to the agent's own mount table was reported already.
static OWN_TABLE_WARNED: AtomicBool = AtomicBool::new(false);

/// Opens `<procfs>/1/mountinfo` for every later scrape. Call before dropping privileges:
/// afterwards `hidepid` (systemd's `ProtectProc=invisible`) hides PID 1 from the agent's user.
pub fn warm_up(paths: &Paths) {
    let path = paths.proc("1/mountinfo");
    match File::open(&path) {
        Ok(file) => {
            if let Ok(mut kept) = KEPT.lock() {
                *kept = Some((path, file));
            }
        }
        Err(e) => log::debug!(
            "{}: {e}; the filesystem collector opens it per scrape",
            path.display()
        ),
    }
}

/// The kept table's text, when it is the one asked for and still reads.
fn read_kept(path: &Path) -> Option<String> {
    let mut kept = KEPT.lock().ok()?;
    let (p, file) = kept.as_ref()?;
    if p != path {
        return None;
    }
    match super::fsio::pread_to_string(file) {
        Ok(text) => Some(text),
        Err(e) => {
            log::warn!("{}: {e}; reading it afresh from now on", path.display());
            *kept = None;
            None
        }
    }
}

/// A mount table and where it came from.
struct Table {
    text: String,
    path: PathBuf,
    /// mountinfo (else fstab format, `/proc/.../mounts`).
    mountinfo: bool,
    /// PID 1's (else the agent's own).
    host: bool,
}

impl Table {
    fn parse(&self, rootfs: &str) -> Result<Vec<Mount>, CollectError> {
        let parsed = if self.mountinfo {
            parse_mountinfo(&self.text, rootfs)
        } else {
            parse_mounts(&self.text, rootfs)
        };
        parsed.map_err(|msg| CollectError::parse(&self.path, msg))
    }
}

/// Reads the host's mount table: PID 1's `mountinfo` through the kept descriptor, else
/// `1/mountinfo` or `1/mounts` opened now; when PID 1 is not visible (hidepid, or a
/// process outside the sandbox answering EACCES under Landlock, where node_exporter only falls
/// back on ENOENT), the agent's own (`self/mountinfo`, `mounts`), with a warning.
fn read_table(paths: &Paths) -> Result<Table, CollectError> {
    let pid1 = paths.proc("1/mountinfo");
    if let Some(text) = read_kept(&pid1) {
        return Ok(Table {
            text,
            path: pid1,
            mountinfo: true,
            host: true,
        });
    }
    let mut last = None;
    for (rel, mountinfo, host) in [
        ("1/mountinfo", true, true),
        ("1/mounts", false, true),
        ("self/mountinfo", true, false),
        ("mounts", false, false),
    ] {
        let path = paths.proc(rel);
        match super::fsio::read_to_string(&path) {
            Ok(text) => {
                if !host && !OWN_TABLE_WARNED.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "filesystem: PID 1's mount table is not readable ({}); reporting the \
                         agent's own mount namespace, which may differ from the host's",
                        last.as_ref()
                            .map_or_else(String::new, |e: &CollectError| e.to_string())
                    );
                }
                return Ok(Table {
                    text,
                    path,
                    mountinfo,
                    host,
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                log::debug!(
                    "reading {}: {e}; trying the next mount table",
                    path.display()
                );
                last = Some(CollectError::io(&path, e));
            }
            Err(e) => return Err(CollectError::io(&path, e)),
        }
    }
    Err(last.unwrap_or_else(|| CollectError::Other("no mount table".into())))
}

/// The agent's own mounts: by mount id, and as listed.
type OwnNamespace = (Arc<HashMap<u64, Dev>>, Vec<Mount>);

/// The mount namespace the agent resolves `statfs` paths in, compared with the reported
/// table's.
enum AgentNamespace {
    /// The reported table's.
    Same,
    /// Another one: what each mount's path must be checked against ([`SameFs`]).
    Other(OwnNamespace),
    /// Not known (its table unreadable): paths are used as they are, as node_exporter does.
    Unknown,
}

/// The agent's own mount namespace, compared with the reported (host's mountinfo) table's:
/// the same when it has the same mount ids (they are unique system-wide, a new namespace
/// has new ones).
fn own_namespace(paths: &Paths, host: &[Mount]) -> AgentNamespace {
    let path = paths.proc("self/mountinfo");
    let text = own_table(&path);
    // The usual case, the same namespace, told from the mount ids alone (the first field of
    // each line) without parsing the whole table.
    if let Ok(t) = &text {
        if let Some(ids) = mount_ids(t) {
            if host.iter().all(|m| {
                m.info
                    .as_ref()
                    .is_some_and(|i| ids.binary_search(&i.id).is_ok())
            }) {
                return AgentNamespace::Same;
            }
        }
    }
    let own = match text
        .map_err(|e| e.to_string())
        .and_then(|t| parse_mountinfo(&t, "/"))
    {
        Ok(own) => own,
        Err(e) => {
            log::debug!("{}: {e}; mount points are not checked", path.display());
            return AgentNamespace::Unknown;
        }
    };
    let ids: HashSet<u64> = own
        .iter()
        .filter_map(|m| m.info.as_ref().map(|i| i.id))
        .collect();
    if host
        .iter()
        .all(|m| m.info.as_ref().is_some_and(|i| ids.contains(&i.id)))
    {
        return AgentNamespace::Same;
    }
    let by_id = own
        .iter()
        .filter_map(|m| m.info.as_ref().map(|i| (i.id, i.dev)))
        .collect();
    AgentNamespace::Other((Arc::new(by_id), own))
}

/// The agent's own mount table, kept with the descriptor it was read through.
struct OwnTable {
    path: PathBuf,
    file: File,
    text: String,
    read: Instant,
}

/// The agent's own `mountinfo`, re-read only when its mount namespace changed.
static OWN: Mutex<Option<OwnTable>> = Mutex::new(None);

/// The longest the kept own table is trusted without a change reported.
const OWN_TABLE_MAX_AGE: Duration = Duration::from_secs(60);

/// The agent's own `mountinfo` (`path`: `<procfs>/self/mountinfo`). It only tells the
/// namespace check which mounts the agent sees, and it changes only when a mount is made,
/// moved or removed in the agent's namespace, which the kernel reports on the table's open
/// descriptor as `POLLPRI` (kernel `mounts_poll`: the namespace's event count against the
/// one the descriptor last saw). So it is read once and then only after such a report (a
/// `ppoll` with a zero timeout), or at the latest after [`OWN_TABLE_MAX_AGE`]: reading it
/// costs the kernel about as much as PID 1's table (about 40 µs for 30 mounts here, some 3%
/// of a scrape's CPU; issue 12). A table that is not on procfs (a fixture tree) is read
/// every time.
fn own_table(path: &Path) -> io::Result<String> {
    let mut own = OWN.lock().map_err(|_| io::Error::other("poisoned"))?;
    own_table_in(&mut own, path)
}

/// [`own_table`] with the kept table in `own`.
fn own_table_in(own: &mut Option<OwnTable>, path: &Path) -> io::Result<String> {
    if let Some(t) = own.as_mut().filter(|t| t.path == path) {
        let fresh = t.read.elapsed() < OWN_TABLE_MAX_AGE;
        match changed(&t.file) {
            Ok(false) if fresh => return Ok(t.text.clone()),
            Ok(_) => {
                if let Ok(text) = super::fsio::pread_to_string(&t.file) {
                    t.text.clone_from(&text);
                    t.read = Instant::now();
                    return Ok(text);
                }
            }
            Err(_) => {}
        }
        *own = None;
    }
    let file = super::fsio::open_regular(path)?;
    let text = super::fsio::pread_to_string(&file)?;
    let on_procfs = nix::sys::statfs::fstatfs(&file)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    if on_procfs {
        *own = Some(OwnTable {
            path: path.to_owned(),
            file,
            text: text.clone(),
            read: Instant::now(),
        });
    }
    Ok(text)
}

/// Whether the mount table behind `file` changed since it was opened or last asked: the
/// kernel's `POLLPRI` (with `POLLERR`) on a `mountinfo` descriptor.
fn changed(file: &File) -> io::Result<bool> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
    ppoll(&mut fds, Some(nix::sys::time::TimeSpec::new(0, 0)), None)?;
    Ok(fds[0]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)))
}

/// The mount ids of a mountinfo table (its lines' first fields), sorted; `None` when a line
/// has none.
fn mount_ids(text: &str) -> Option<Vec<u64>> {
    let mut ids = super::lines(text)
        .map(|l| {
            let l = l.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let end = l.bytes().position(|b| b.is_ascii_whitespace())?;
            l.get(..end)?.parse::<u64>().ok()
        })
        .collect::<Option<Vec<u64>>>()?;
    ids.sort_unstable();
    Some(ids)
}

/// Most other paths tried for one hidden file system.
const MAX_OTHER_PATHS: usize = 4;

/// The check for one host mount in the agent's namespace.
fn same_fs(m: &Mount, path: &Path, own: &OwnNamespace) -> Option<Arc<SameFs>> {
    let dev = m.info.as_ref()?.dev;
    let others = own
        .1
        .iter()
        .filter_map(|o| o.info.as_ref())
        .filter(|o| o.dev == dev && Path::new(&o.path) != path)
        .map(|o| PathBuf::from(&o.path))
        .take(MAX_OTHER_PATHS)
        .collect();
    Some(Arc::new(SameFs {
        dev,
        others,
        own: own.0.clone(),
    }))
}

/// The mounts to report: not excluded, one per (device, mount point, type), first wins (as
/// node_exporter's registry keeps the first of duplicate series).
fn select<'a>(
    mounts: &'a [Mount],
    mount_points: &DeviceFilter,
    fs_types: &DeviceFilter,
) -> Vec<&'a Mount> {
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::with_capacity(mounts.len());
    mounts
        .iter()
        .filter(|m| {
            !mount_points.ignored(&m.mount_point)
                && !fs_types.ignored(&m.fs_type)
                && seen.insert((&m.device, &m.mount_point, &m.fs_type))
        })
        .collect()
}

/// The families for the selected mounts and their outcomes.
pub fn families(mounts: &[&Mount], outcomes: &[StatOutcome]) -> Vec<MetricFamily> {
    let mut rows: Vec<(&Mount, &StatOutcome)> = mounts.iter().copied().zip(outcomes).collect();
    // node_exporter's output is sorted by label values (device, fstype, mountpoint).
    rows.sort_by(|a, b| {
        (&a.0.device, &a.0.fs_type, &a.0.mount_point).cmp(&(
            &b.0.device,
            &b.0.fs_type,
            &b.0.mount_point,
        ))
    });
    let mut size = MetricFamily::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut free = MetricFamily::gauge(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    );
    let mut avail = MetricFamily::gauge(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut files = MetricFamily::gauge("node_filesystem_files", "Filesystem total file nodes.");
    let mut files_free = MetricFamily::gauge(
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    );
    let mut ro = MetricFamily::gauge("node_filesystem_readonly", "Filesystem read-only status.");
    let mut err = MetricFamily::gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    for (m, o) in rows {
        let l = [
            ("device", m.device.as_str()),
            ("fstype", m.fs_type.as_str()),
            ("mountpoint", m.mount_point.as_str()),
        ];
        let StatOutcome::Ok(s) = o else {
            err.push(&l, 1.0);
            continue;
        };
        err.push(&l, 0.0);
        size.push(&l, s.size);
        free.push(&l, s.free);
        avail.push(&l, s.avail);
        files.push(&l, s.files);
        files_free.push(&l, s.files_free);
        ro.push(&l, if m.read_only() { 1.0 } else { 0.0 });
    }
    vec![avail, err, files, files_free, free, ro, size]
}

impl Filesystem {
    fn collect_with(
        &self,
        paths: &Paths,
        statter: &'static Statter,
    ) -> Result<Vec<MetricFamily>, CollectError> {
        let table = read_table(paths)?;
        let rootfs = paths.rootfs.to_string_lossy();
        let mounts = table.parse(&rootfs)?;
        let selected = select(&mounts, &self.mount_points, &self.fs_types);
        let ns = if table.host && table.mountinfo {
            own_namespace(paths, &mounts)
        } else if table.mountinfo {
            // The agent's own table: the namespace it walks.
            AgentNamespace::Same
        } else {
            AgentNamespace::Unknown
        };
        // The mounts of the namespace the paths are resolved in: which of them run inline.
        let walk = match &ns {
            AgentNamespace::Same => LocalWalk::new(&mounts),
            AgentNamespace::Other(own) => LocalWalk::new(&own.1),
            AgentNamespace::Unknown => None,
        };
        let own = match &ns {
            AgentNamespace::Other(own) => Some(own),
            _ => None,
        };
        let targets: Vec<(&str, Target)> = selected
            .iter()
            .map(|m| {
                let path = paths.root(&m.mount_point);
                let check = own.and_then(|own| same_fs(m, &path, own));
                let inline = inline_statfs(&m.fs_type)
                    && walk.as_ref().is_some_and(|w| {
                        // Every path the check may try is resolved here too.
                        w.is_local(&path)
                            && check
                                .as_ref()
                                .is_none_or(|c| c.others.iter().all(|o| w.is_local(o)))
                    });
                (
                    m.mount_point.as_str(),
                    Target {
                        path,
                        check,
                        inline,
                    },
                )
            })
            .collect();
        let outcomes = statter.stat_all(&targets)?;
        for (m, o) in selected.iter().zip(&outcomes) {
            if let StatOutcome::Failed(e) = o {
                log::debug!("statfs {}: {e}", paths.root(&m.mount_point).display());
            }
        }
        Ok(families(&selected, &outcomes))
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        self.collect_with(paths, &STATTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE};
    use std::collections::HashMap;

    #[test]
    fn the_own_mount_table_is_read_again_only_after_the_kernel_reports_a_change() {
        use crate::collector::testutil::reads_so_far;
        // On a thread of its own with a mount namespace of its own (mounts made there are
        // seen by no other test), as root: `/proc/thread-self/mountinfo` is that namespace's.
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a tmpfs in a mount namespace of its own: run it as root"
        );
        std::thread::spawn(|| {
            use nix::mount::{mount, umount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private");
            let dir = tempfile::tempdir().expect("tmp");
            let path = Path::new("/proc/thread-self/mountinfo");
            let mut own = None;
            let before = own_table_in(&mut own, path).expect("read");
            assert!(own.is_some(), "a procfs table is kept");
            let reads = reads_so_far();
            let again = own_table_in(&mut own, path).expect("again");
            // One read: the counter's own (none for the table).
            assert_eq!(
                reads_so_far() - reads,
                1,
                "the table was read again unchanged"
            );
            assert_eq!(again, before);

            mount(
                Some("owntable-test"),
                dir.path(),
                Some("tmpfs"),
                MsFlags::empty(),
                Some("size=1m"),
            )
            .expect("mount a tmpfs");
            let after = own_table_in(&mut own, path).expect("after the mount");
            assert!(
                after.contains(" owntable-test ") && !before.contains(" owntable-test "),
                "the new mount is not in the table read after it:\n{after}"
            );
            umount(dir.path()).expect("umount");
            let gone = own_table_in(&mut own, path).expect("after the umount");
            assert!(!gone.contains(" owntable-test "), "{gone}");

            // A table off procfs (a fixture) is read every time, not kept.
            let fixture = dir.path().join("mountinfo");
            std::fs::write(&fixture, "1 2 0:3 / / rw - ext4 /dev/x rw\n").expect("write");
            let mut own = None;
            own_table_in(&mut own, &fixture).expect("fixture");
            assert!(own.is_none());
        })
        .join()
        .expect("the namespace thread");
    }

    #[test]
    fn node_exporter_1_12_flags() {
        use crate::collector::options::Merge;
        let p = |s: &str| Some(s.parse::<Pattern>().expect("pattern"));
        // The deprecated alias alone is accepted; with the new name it is refused, as 1.12.
        let alias = FilesystemOptions {
            ignored_mount_points: p("^/only$"),
            ..FilesystemOptions::default()
        };
        assert_eq!(alias.check(), Ok(()));
        let exclude = |o: &FilesystemOptions| {
            mount_points(o)
                .filter()
                .exclude
                .map(|r| r.as_str().to_string())
        };
        assert_eq!(exclude(&alias).as_deref(), Some("^/only$"));
        assert_eq!(
            exclude(&FilesystemOptions::default()).as_deref(),
            Some(DEFAULT_MOUNT_POINTS_EXCLUDE)
        );
        let both = FilesystemOptions {
            mount_points_exclude: p("^/x$"),
            ..alias.clone()
        };
        assert!(both
            .check()
            .expect_err("exclusive")
            .contains("mutually exclusive"));
        let zero = FilesystemOptions {
            mount_timeout: Some("0s".parse().expect("duration")),
            ..FilesystemOptions::default()
        };
        assert!(zero.check().is_err());
        assert!("5".parse::<GoDurationOpt>().is_err());
        assert_eq!(
            "500ms".parse::<GoDurationOpt>().map(|d| d.0),
            Ok(Duration::from_millis(500))
        );
        // The statter follows the option; the default is MOUNT_TIMEOUT.
        let statter = Statter::new(Box::new(real_statfs), MOUNT_TIMEOUT);
        assert_eq!(statter.timeout(), MOUNT_TIMEOUT);
        statter.set_timeout(Duration::from_millis(250));
        assert_eq!(statter.timeout(), Duration::from_millis(250));
        // Building the collector applies the option to the scrape's statter, and the default
        // again without it (as a reload does).
        let mut opts = Options::default();
        opts.filesystem.mount_timeout = Some("1500ms".parse().expect("duration"));
        let _ = collector(&opts);
        assert_eq!(STATTER.timeout(), Duration::from_millis(1500));
        let _ = collector(&Options::default());
        assert_eq!(STATTER.timeout(), MOUNT_TIMEOUT);
        // The same for --collector.filesystem.stat-workers (default 1.12's 4). Here, in the
        // one test that builds the collector: the statter is the process's.
        assert_eq!(STATTER.workers(), 4);
        opts.filesystem.stat_workers = Some(-1);
        let _ = collector(&opts);
        assert_eq!(STATTER.workers(), 1);
        opts.filesystem.stat_workers = Some(7);
        let _ = collector(&opts);
        assert_eq!(STATTER.workers(), 7);
        let _ = collector(&Options::default());
        assert_eq!(STATTER.workers(), 4);
    }

    /// node_exporter 1.12's include flags and deprecated aliases on its fixture's mount
    /// table (`proc/1/mountinfo`): `mount-points-include`, `fs-types-include`,
    /// `ignored-fs-types`, and an explicitly empty exclude (no exclusion).
    #[test]
    fn include_flags_node_exporter_112() {
        use crate::collector::options::Merge;
        let text = include_str!("../../tests/fixtures/node_exporter_1.12/proc/1/mountinfo");
        let mounts = parse_mountinfo(text, "/").expect("parses");
        let selected = |args: &[&str]| -> Result<Vec<String>, String> {
            use clap::Parser;
            let mut argv = vec!["monitoring-agent"];
            argv.extend_from_slice(args);
            let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            let o = &cli.collector.filesystem;
            o.check()?;
            let sel = select(&mounts, &mount_points(o).filter(), &fs_types(o).filter());
            Ok(sel.iter().map(|m| m.mount_point.clone()).collect())
        };
        let default = selected(&[]).expect("default");
        assert_eq!(default.len(), 8, "{default:?}");
        assert!(default.contains(&"/".to_string()) && !default.contains(&"/sys".to_string()));
        // An include without the exclude flag drops the default mount point exclusion (the
        // default type exclusion stays): /run and below, tmpfs and fuse.
        let run = selected(&["--collector.filesystem.mount-points-include=^/run"]).expect("ok");
        assert_eq!(
            run,
            ["/run", "/run/lock", "/run/user/1000", "/run/user/1000/gvfs"],
            "{run:?}"
        );
        // With an explicitly empty exclude too: the same.
        assert_eq!(
            selected(&[
                "--collector.filesystem.mount-points-include=^/run",
                "--collector.filesystem.mount-points-exclude="
            ])
            .expect("ok"),
            run
        );
        // With a non-empty exclude: refused, as 1.12.
        let err = selected(&[
            "--collector.filesystem.mount-points-include=^/run",
            "--collector.filesystem.mount-points-exclude=^/x",
        ])
        .expect_err("exclusive");
        assert!(err.contains("mount-points-include"), "{err}");
        // fs-types-include: only ext*, and the default exclusion of /sys, /proc... stays.
        let ext = selected(&["--collector.filesystem.fs-types-include=^ext"]).expect("ok");
        assert_eq!(ext.len(), 4, "{ext:?}");
        assert!(ext.contains(&"/boot".to_string()));
        // An explicitly empty exclude is no exclusion (not "everything"): sysfs, proc, ...
        let all = selected(&[
            "--collector.filesystem.mount-points-exclude=",
            "--collector.filesystem.fs-types-exclude=",
        ])
        .expect("ok");
        assert_eq!(all.len(), mounts.len(), "{all:?}");
        // The deprecated ignored-fs-types: alone it is the exclusion; with fs-types-exclude
        // it is refused.
        let no_tmpfs = selected(&["--collector.filesystem.ignored-fs-types=^(tmpfs|sysfs|proc)$"])
            .expect("ok");
        for tmpfs in ["/run", "/run/lock", "/run/user/1000"] {
            assert!(!no_tmpfs.contains(&tmpfs.to_string()), "{no_tmpfs:?}");
        }
        // The alias replaces the default exclusion: rpc_pipefs (in the default) is back.
        assert!(
            no_tmpfs.contains(&"/run/rpc_pipefs".to_string()),
            "{no_tmpfs:?}"
        );
        assert!(no_tmpfs.contains(&"/".to_string()));
        assert!(selected(&[
            "--collector.filesystem.ignored-fs-types=^tmpfs$",
            "--collector.filesystem.fs-types-exclude=^x$"
        ])
        .expect_err("exclusive")
        .contains("ignored-fs-types"));
        // The file's keys.
        let file: FilesystemOptions =
            toml::from_str("mount_points_include = \"^/boot$\"\nfs_types_include = \"^ext2$\"\n")
                .expect("toml");
        let sel = select(
            &mounts,
            &mount_points(&file).filter(),
            &fs_types(&file).filter(),
        );
        assert_eq!(sel.len(), 1);
    }

    /// `--collector.filesystem.stat-workers`: node_exporter 1.12's `max(n, 1)` (0 and
    /// negative values are accepted and mean 1), capped here; the flag and the file's key
    /// reach the scrape's statter, the default being 1.12's 4.
    #[test]
    fn stat_workers_option() {
        use clap::Parser;
        assert_eq!(stat_workers(4), 4);
        assert_eq!(stat_workers(1), 1);
        assert_eq!(stat_workers(0), 1);
        assert_eq!(stat_workers(-3), 1);
        assert_eq!(stat_workers(i64::MIN), 1);
        assert_eq!(stat_workers(1000), MAX_STAT_WORKERS);
        assert_eq!(stat_workers(i64::MAX), MAX_STAT_WORKERS);
        for (arg, want) in [("8", 8), ("0", 1), ("-2", 1)] {
            let cli = crate::cli::Cli::try_parse_from([
                "monitoring-agent".to_string(),
                format!("--collector.filesystem.stat-workers={arg}"),
            ])
            .expect("parses");
            assert_eq!(cli.collector.check(), Ok(()));
            let o = cli.collector.filesystem.stat_workers;
            assert_eq!(
                stat_workers(o.unwrap_or(DEFAULT_STAT_WORKERS)),
                want,
                "{arg}"
            );
        }
        // `--flag -2` (a separate word) parses too, as kingpin's.
        let cli = crate::cli::Cli::try_parse_from([
            "monitoring-agent",
            "--collector.filesystem.stat-workers",
            "-2",
        ])
        .expect("parses");
        assert_eq!(cli.collector.filesystem.stat_workers, Some(-2));
        assert!(crate::cli::Cli::try_parse_from([
            "monitoring-agent",
            "--collector.filesystem.stat-workers=four",
        ])
        .is_err());
        let file: FilesystemOptions = toml::from_str("stat_workers = 2\n").expect("toml");
        assert_eq!(file.stat_workers, Some(2));
    }

    /// A statfs that holds every call until `want` calls are in flight at once (or a liveness
    /// bound passes), recording the most seen at once.
    fn concurrent_statfs(want: usize) -> (Box<StatfsFn>, Arc<AtomicUsize>) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let most2 = most.clone();
        let f = move |_: &Path| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most2.fetch_max(now, Ordering::SeqCst);
            // Liveness bound only (two seconds of polling); the assertion is on `most`.
            for _ in 0..2000 {
                if most2.load(Ordering::SeqCst) >= want {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(fixed(1.0))
        };
        (Box::new(f), most)
    }

    #[test]
    fn stat_workers_run_calls_concurrently() {
        let names: Vec<String> = (0..9).map(|i| format!("/m{i}")).collect();
        let targets: Vec<(&str, Target)> = names
            .iter()
            .map(|m| (m.as_str(), PathBuf::from(m).into()))
            .collect();
        for workers in [1, 3] {
            let (f, most) = concurrent_statfs(workers);
            let statter = leak(Statter::new(f, Duration::from_secs(30)));
            statter.set_workers(workers as i64);
            let out = statter.stat_all(&targets).expect("runs");
            assert!(out.iter().all(|o| matches!(o, StatOutcome::Ok(_))));
            // Exactly `workers` calls at once: never more, and with 9 mounts, that many.
            assert_eq!(most.load(Ordering::SeqCst), workers, "workers {workers}");
            assert_eq!(statter.spawned.load(Ordering::Relaxed), workers);
            // The threads are kept: the next scrape starts none.
            let out = statter.stat_all(&targets).expect("runs");
            assert!(out.iter().all(|o| matches!(o, StatOutcome::Ok(_))));
            assert_eq!(statter.spawned.load(Ordering::Relaxed), workers);
        }
        // Fewer mounts than workers: one lane per mount.
        let (f, most) = concurrent_statfs(2);
        let statter = leak(Statter::new(f, Duration::from_secs(30)));
        statter.set_workers(8);
        let out = statter
            .stat_all(targets.get(..2).expect("two"))
            .expect("runs");
        assert_eq!(out.len(), 2);
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 2);
    }

    /// With several workers a hung mount is isolated as with one: its lane's later mounts go
    /// on in a new lane, the other lanes are not held, the mount is remembered as stuck and
    /// answered again once its call returns.
    #[test]
    fn stuck_mount_with_several_workers() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let statter = leak(Statter::new(
            Box::new(move |p: &Path| {
                if p == Path::new("/m1") {
                    let _ = lock(&release_rx).recv();
                }
                Ok(fixed(p.to_string_lossy().len() as f64))
            }),
            Duration::from_millis(200),
        ));
        statter.set_workers(2);
        let names = ["/m0", "/m1", "/m22", "/m333", "/m4444", "/m55555"];
        let targets: Vec<(&str, Target)> = names
            .iter()
            .map(|m| (*m, PathBuf::from(m).into()))
            .collect();
        // Lanes [/m0 /m1 /m22] and [/m333 /m4444 /m55555]: /m1 hangs, /m22 is requeued.
        let out = statter.stat_all(&targets).expect("runs");
        assert!(matches!(out[1], StatOutcome::Stuck));
        for (i, o) in out.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert!(
                matches!(o, StatOutcome::Ok(s) if s.size == names[i].len() as f64),
                "{i}: {o:?}"
            );
        }
        assert!(statter.is_stuck("/m1"));
        // Next scrape: /m1 skipped without a call, the rest served.
        let out = statter.stat_all(&targets).expect("runs");
        assert!(matches!(out[1], StatOutcome::Stuck));
        assert_eq!(
            out.iter()
                .filter(|o| matches!(o, StatOutcome::Ok(_)))
                .count(),
            5
        );
        drop(release_tx);
        wait_unstuck(statter, "/m1");
        let out = statter.stat_all(&targets).expect("runs");
        assert!(out.iter().all(|o| matches!(o, StatOutcome::Ok(_))));
    }

    /// A target of a local type (as `collect_with` marks it).
    fn inline_target(p: &str) -> Target {
        Target {
            inline: true,
            ..PathBuf::from(p).into()
        }
    }

    /// A statfs recording the thread each path was stat'ed on.
    type Threads = Arc<Mutex<Vec<(String, std::thread::ThreadId)>>>;

    fn recording_statfs() -> (Box<StatfsFn>, Threads) {
        let seen: Threads = Arc::default();
        let seen2 = seen.clone();
        let f = move |p: &Path| {
            lock(&seen2).push((
                p.to_string_lossy().into_owned(),
                std::thread::current().id(),
            ));
            Ok(fixed(p.to_string_lossy().len() as f64))
        };
        (Box::new(f), seen)
    }

    /// Mounts of local types are stat'ed on the calling thread, in order: no helper thread is
    /// started (nor woken: the pool stays empty), whatever the worker count. A mount already
    /// stuck is never stat'ed inline.
    #[test]
    fn local_types_are_statted_on_the_calling_thread() {
        let (f, seen) = recording_statfs();
        let statter = leak(Statter::new(f, Duration::from_secs(30)));
        statter.set_workers(4);
        let targets: Vec<(&str, Target)> = ["/", "/run", "/data", "/stuck"]
            .iter()
            .map(|m| (*m, inline_target(m)))
            .collect();
        lock(&statter.stuck).insert("/stuck".to_string());
        let me = std::thread::current().id();
        for _ in 0..3 {
            lock(&seen).clear();
            let out = statter.stat_all(&targets).expect("runs");
            assert!(matches!(out[0], StatOutcome::Ok(s) if s.size == 1.0));
            assert!(matches!(out[1], StatOutcome::Ok(s) if s.size == 4.0));
            assert!(matches!(out[2], StatOutcome::Ok(s) if s.size == 5.0));
            assert!(matches!(out[3], StatOutcome::Stuck));
            assert_eq!(
                *lock(&seen),
                [
                    ("/".to_string(), me),
                    ("/run".to_string(), me),
                    ("/data".to_string(), me)
                ],
                "in order, on this thread, the stuck one not asked"
            );
        }
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 0);
        assert!(lock(&statter.idle).is_empty());
        // A failing inline statfs is a failed mount, as on a helper.
        let statter = leak(Statter::new(
            Box::new(|_: &Path| Err(io::Error::from_raw_os_error(libc::EACCES))),
            Duration::from_secs(30),
        ));
        let out = statter.stat_all(&targets[..1]).expect("runs");
        assert!(
            matches!(&out[0], StatOutcome::Failed(e) if e.raw_os_error() == Some(libc::EACCES))
        );
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 0);
    }

    /// Local and remote mounts in one scrape with several workers: the remote ones still run
    /// side by side on the helpers (as many at once as workers), the local ones on the calling
    /// thread.
    #[test]
    fn mixed_mounts_run_remote_ones_concurrently() {
        let want = 3;
        let (remote, most) = concurrent_statfs(want);
        let seen: Threads = Arc::default();
        let seen2 = seen.clone();
        let f = move |p: &Path| {
            let key = p.to_string_lossy().into_owned();
            lock(&seen2).push((key.clone(), std::thread::current().id()));
            if key.starts_with("/remote") {
                remote(p)
            } else {
                Ok(fixed(1.0))
            }
        };
        let statter = leak(Statter::new(Box::new(f), Duration::from_secs(30)));
        statter.set_workers(want as i64);
        let targets: Vec<(&str, Target)> = vec![
            ("/", inline_target("/")),
            ("/remote0", PathBuf::from("/remote0").into()),
            ("/run", inline_target("/run")),
            ("/remote1", PathBuf::from("/remote1").into()),
            ("/remote2", PathBuf::from("/remote2").into()),
            ("/data", inline_target("/data")),
        ];
        let out = statter.stat_all(&targets).expect("runs");
        assert!(out.iter().all(|o| matches!(o, StatOutcome::Ok(_))));
        assert_eq!(
            most.load(Ordering::SeqCst),
            want,
            "the remote calls at once"
        );
        assert_eq!(statter.spawned.load(Ordering::Relaxed), want);
        let me = std::thread::current().id();
        let seen = lock(&seen).clone();
        for (p, t) in &seen {
            assert_eq!(*t == me, !p.starts_with("/remote"), "{p}: {seen:?}");
        }
        assert_eq!(seen.len(), targets.len());
    }

    #[test]
    fn statfs_inline_by_type() {
        for t in [
            "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "ramfs",
        ] {
            assert!(inline_statfs(t), "{t}");
        }
        for t in [
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "ceph",
            "9p",
            "virtiofs",
            "glusterfs",
            "lustre",
            "afs",
            "fuse",
            "fuseblk",
            "fuse.sshfs",
            "fuse.ext4",
            "ext4.fuse",
            "overlay",
            "autofs",
            "zfs",
            "vfat",
            "exfat",
            "EXT4",
            "ext4 ",
            "",
            "some-new-fs",
        ] {
            assert!(!inline_statfs(t), "{t}");
        }
    }

    /// A path is resolved inline only through mounts of local types: not below (nor on) a
    /// network, FUSE, autofs or unknown mount, nor where such a mount is stacked.
    #[test]
    fn local_walk_crosses_only_local_mounts() {
        let text = "20 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    21 20 0:30 / /run rw - tmpfs tmpfs rw\n\
                    22 20 0:40 / /nfs rw - nfs4 srv:/x rw\n\
                    23 22 8:2 / /nfs/disk rw - ext4 /dev/vdb rw\n\
                    24 20 8:3 / /data rw - xfs /dev/vdc rw\n\
                    25 24 0:41 / /data rw - fuse.sshfs u@h: rw\n\
                    26 20 0:42 / /auto rw - autofs map rw\n\
                    27 26 8:4 / /auto/disk rw - ext4 /dev/vdd rw\n\
                    28 20 8:5 / /srv rw - btrfs /dev/vde rw\n";
        let mounts = parse_mountinfo(text, "/").expect("parses");
        let w = LocalWalk::new(&mounts).expect("mountinfo");
        for p in ["/", "/run", "/srv", "/srv/x", "/nfsx", "/datax", "/run/nfs"] {
            assert!(w.is_local(Path::new(p)), "{p}");
        }
        for p in [
            "/nfs",
            "/nfs/disk",
            "/data",
            "/data/",
            "/data/x",
            "/auto",
            "/auto/disk",
            "run",
            "",
        ] {
            assert!(!w.is_local(Path::new(p)), "{p}");
        }
        // Not local at the root: nothing is.
        let root = parse_mountinfo("1 0 0:1 / / rw - overlay overlay rw\n", "/").expect("parses");
        let w = LocalWalk::new(&root).expect("mountinfo");
        assert!(!w.is_local(Path::new("/")));
        assert!(!w.is_local(Path::new("/anything")));
        // A table without paths (`/proc/mounts`): nothing is known, nothing is inline.
        let fstab = parse_mounts("/dev/vda / ext4 rw 0 0\n", "/").expect("parses");
        assert!(LocalWalk::new(&fstab).is_none());
    }

    /// The collector on a mount table mixing local and remote types, with two workers: local
    /// mounts reached through local ones only are stat'ed on the scrape's thread; NFS, FUSE,
    /// an ext4 below the NFS mount, an xfs under a stacked FUSE mount and an overlay go
    /// through the helpers. The NFS mount hangs: it is reported `device_error 1` and stuck,
    /// every other mount (local and remote) is served, the next scrape skips it without a
    /// call, and it is served again once its call returns.
    #[test]
    fn hung_remote_mount_is_isolated_beside_inline_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = "20 1 8:1 / / rw - ext4 /dev/vda rw\n\
                     21 20 0:30 / /run rw - tmpfs tmpfs rw\n\
                     22 20 0:40 / /nfs rw - nfs4 srv:/x rw\n\
                     23 22 8:2 / /nfs/disk rw - ext4 /dev/vdb rw\n\
                     24 20 0:41 / /sshfs rw - fuse.sshfs u@h: rw\n\
                     25 20 8:3 / /data rw - xfs /dev/vdc rw\n\
                     26 20 0:42 / /stacked rw - xfs /dev/vdd rw\n\
                     27 26 0:43 / /stacked rw - fuse.sshfs v@h: rw\n\
                     28 20 0:44 / /ovl rw - overlay overlay rw\n";
        for d in ["1", "self"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
            std::fs::write(dir.path().join(d).join("mountinfo"), table).expect("write");
        }
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let seen: Threads = Arc::default();
        let seen2 = seen.clone();
        let statter = leak(Statter::new(
            Box::new(move |p: &Path| {
                let key = p.to_string_lossy().into_owned();
                lock(&seen2).push((key.clone(), std::thread::current().id()));
                if key == "/nfs" {
                    let _ = lock(&release_rx).recv();
                }
                Ok(fixed(key.len() as f64))
            }),
            Duration::from_millis(200),
        ));
        statter.set_workers(2);
        let c = Filesystem {
            mount_points: DeviceFilter::default(),
            fs_types: DeviceFilter::default(),
        };
        let me = std::thread::current().id();
        let device_error = |fams: &[MetricFamily]| -> Vec<(String, f64)> {
            samples(fams, "node_filesystem_device_error")
                .into_iter()
                .map(|(l, v)| {
                    let mp = l.rsplit("mountpoint=").next().unwrap_or("").to_string();
                    (mp, v)
                })
                .collect()
        };
        let all = [
            "/",
            "/run",
            "/nfs",
            "/nfs/disk",
            "/sshfs",
            "/data",
            "/stacked",
            "/stacked",
            "/ovl",
        ];
        let served = |hung: f64| -> Vec<(String, f64)> {
            let mut want: Vec<(String, f64)> = all
                .iter()
                .map(|m| (m.to_string(), if *m == "/nfs" { hung } else { 0.0 }))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            want
        };
        let sorted = |mut v: Vec<(String, f64)>| {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };

        // 1st scrape: /nfs hangs; everything else is served.
        let fams = c.collect_with(&paths, statter).expect("collects");
        assert_eq!(sorted(device_error(&fams)), served(1.0));
        assert!(statter.is_stuck("/nfs"));
        let on = |seen: &[(String, std::thread::ThreadId)], p: &str| -> Vec<bool> {
            seen.iter()
                .filter(|(k, _)| k == p)
                .map(|(_, t)| *t == me)
                .collect()
        };
        {
            let seen = lock(&seen);
            for p in ["/", "/run", "/data"] {
                assert_eq!(on(&seen, p), [true], "{p} inline: {seen:?}");
            }
            for p in ["/nfs", "/nfs/disk", "/sshfs", "/ovl"] {
                assert_eq!(on(&seen, p), [false], "{p} on a helper: {seen:?}");
            }
            assert_eq!(on(&seen, "/stacked"), [false, false], "{seen:?}");
        }
        // Two lanes; the rest of the hung one goes to an idle helper or a new one.
        let spawned = statter.spawned.load(Ordering::Relaxed);
        assert!((2..=3).contains(&spawned), "{spawned}");

        // 2nd scrape: /nfs skipped without a call, the rest served (the local ones still on
        // this thread; the remote ones on the helpers, a new one for a lane if the hung
        // helper was the pool's second).
        lock(&seen).clear();
        let fams = c.collect_with(&paths, statter).expect("collects");
        assert_eq!(sorted(device_error(&fams)), served(1.0));
        {
            let seen = lock(&seen);
            assert!(on(&seen, "/nfs").is_empty(), "{seen:?}");
            assert_eq!(on(&seen, "/"), [true]);
            assert_eq!(on(&seen, "/nfs/disk"), [false]);
        }

        // The hung call returns: the mount is unmarked and served again.
        drop(release_tx);
        wait_unstuck(statter, "/nfs");
        let fams = c.collect_with(&paths, statter).expect("collects");
        assert_eq!(sorted(device_error(&fams)), served(0.0));
    }

    /// When every selected mount is local, a scrape wakes no helper: the collector on a
    /// table of ext4 and tmpfs mounts starts none (the agent's own namespace being another
    /// one whose paths reach them: the check runs inline too).
    #[test]
    fn local_only_scrape_starts_no_helper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = "20 1 8:1 / / rw - ext4 /dev/vda rw\n21 20 0:30 / /run rw - tmpfs tmpfs rw\n";
        // Another namespace (other mount ids): each path is checked with statx there. `/`
        // gets the live root's mount id, so the check passes for it; `/run` has no mount
        // there of its file system: device_error 1 without a statfs.
        let root_id = mount_id(Path::new("/")).expect("statx mnt id");
        let own = format!(
            "{root_id} 1 8:1 / / rw - ext4 /dev/vda rw\n{} {root_id} 0:99 / /other rw - tmpfs tmpfs rw\n",
            root_id + 1000
        );
        for (d, t) in [("1", host), ("self", own.as_str())] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
            std::fs::write(dir.path().join(d).join("mountinfo"), t).expect("write");
        }
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let (f, seen) = recording_statfs();
        let statter = leak(Statter::new(f, Duration::from_secs(30)));
        statter.set_workers(4);
        let fams = default_collector()
            .collect_with(&paths, statter)
            .expect("collects");
        assert_eq!(
            samples(&fams, "node_filesystem_device_error"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 0.0),
                ("device=tmpfs,fstype=tmpfs,mountpoint=/run".to_string(), 1.0),
            ]
        );
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 0);
        let me = std::thread::current().id();
        assert_eq!(*lock(&seen), [("/".to_string(), me)]);
        // The same table in the agent's own namespace: both statted, on this thread.
        std::fs::write(dir.path().join("self/mountinfo"), host).expect("write");
        lock(&seen).clear();
        let fams = default_collector()
            .collect_with(&paths, statter)
            .expect("collects");
        assert_eq!(
            samples(&fams, "node_filesystem_device_error"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 0.0),
                ("device=tmpfs,fstype=tmpfs,mountpoint=/run".to_string(), 0.0),
            ]
        );
        assert_eq!(
            *lock(&seen),
            [("/".to_string(), me), ("/run".to_string(), me)]
        );
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 0);
    }

    const DEBIAN12: &str =
        include_str!("../../tests/fixtures/storage/debian12-vm-6.18/proc/1/mounts");

    fn fixture_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage")
    }

    fn default_collector() -> Filesystem {
        Filesystem {
            mount_points: DeviceFilter::new(&None, &None, Some(DEFAULT_MOUNT_POINTS_EXCLUDE)),
            fs_types: DeviceFilter::new(&None, &None, Some(DEFAULT_FS_TYPES_EXCLUDE)),
        }
    }

    fn leak(s: Statter) -> &'static Statter {
        Box::leak(Box::new(s))
    }

    /// Waits until the helper has unmarked `mount` after its blocked call returned.
    fn wait_unstuck(statter: &Statter, mount: &str) {
        let mut polls = 0u32;
        while statter.is_stuck(mount) {
            // A liveness bound (a minute of polling), not a speed requirement.
            polls += 1;
            assert!(
                polls < 60_000,
                "{mount} never unmarked after the blocked call returned"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn fixed(size: f64) -> FsStats {
        FsStats {
            size,
            free: size / 2.0,
            avail: size / 4.0,
            files: 100.0,
            files_free: 50.0,
        }
    }

    /// Samples of a family as (labels joined, value).
    fn samples(fams: &[MetricFamily], name: &str) -> Vec<(String, f64)> {
        fams.iter()
            .find(|f| f.name == name)
            .map(|f| {
                f.samples
                    .iter()
                    .map(|s| {
                        let l: Vec<String> =
                            s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        (l.join(","), s.value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn parse_debian12() {
        let mounts = parse_mounts(DEBIAN12, "/").expect("parses");
        assert_eq!(mounts.len(), DEBIAN12.lines().count());
        assert_eq!(
            mounts[5],
            Mount {
                device: "/dev/vda".into(),
                mount_point: "/".into(),
                fs_type: "ext4".into(),
                options: "rw,relatime,discard,resv_strict,resuid=65534,resgid=65534".into(),
                super_read_only: false,
                info: None,
            }
        );
        let c = default_collector();
        let sel = select(&mounts, &c.mount_points, &c.fs_types);
        let mps: Vec<&str> = sel.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(mps, ["/", "/mnt/sandboxing/model_tools_env/v1/python"]);
        assert!(sel[1].read_only());
        assert!(!sel[0].read_only());
    }

    /// proc(5)'s example plus what the unit's namespace shows: optional fields, a per-mount
    /// `ro` on a read-write file system (ProtectSystem=strict's remount), a read-only file
    /// system mounted `rw`-per-mount, an escaped mount point.
    #[test]
    fn parse_mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 36 8:2 / / ro,relatime shared:1 - ext4 /dev/sda2 rw\n\
                    41 36 8:3 / /srv/my\\040disk rw - iso9660 /dev/sr0 ro\n\
                    42 36 0:40 / /tmp rw,nosuid - tmpfs tmpfs rw,size=10k\n";
        let m = parse_mountinfo(text, "/").expect("parses");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].device, "/dev/root");
        assert_eq!(m[0].mount_point, "/mnt/parent");
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(
            m[0].info,
            Some(MountInfo {
                id: 36,
                parent: 35,
                dev: (98, 0),
                path: "/mnt/parent".into()
            })
        );
        assert!(!m[0].read_only());
        assert!(m[1].read_only(), "a per-mount ro is read-only");
        assert!(m[2].read_only(), "a read-only file system is read-only");
        assert_eq!(m[2].mount_point, "/srv/my disk");
        assert!(!m[3].read_only());
        // The rootfs prefix is stripped from the label, kept in the namespace's path.
        let m = parse_mountinfo("50 1 8:1 / /host/data rw - xfs /dev/sdb1 rw\n", "/host")
            .expect("parses");
        assert_eq!(m[0].mount_point, "/data");
        assert_eq!(
            m[0].info.as_ref().map(|i| i.path.as_str()),
            Some("/host/data")
        );
        for bad in [
            "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 ext3 /dev/root rw\n",
            "36 35 98:0 /mnt1 /mnt/parent rw - ext3 /dev/root\n",
            "x 35 98:0 / / rw - ext3 /dev/root rw\n",
            "36 35 98 / / rw - ext3 /dev/root rw\n",
            "36 35\n",
        ] {
            assert!(parse_mountinfo(bad, "/").is_err(), "{bad:?}");
        }
    }

    /// The descriptor kept by `warm_up` is what later scrapes read: re-read from offset 0
    /// (fresh content), even once the path itself is gone.
    #[test]
    fn kept_table_is_reread_through_the_descriptor() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("1")).expect("mkdir");
        let info = dir.path().join("1/mountinfo");
        std::fs::write(&info, "40 1 8:2 / / rw - ext4 /dev/sda2 rw\n").expect("write");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        warm_up(&paths);
        // Rewritten in place (the same file): the kept descriptor reads the new content.
        std::fs::write(&info, "40 1 8:2 / / ro - ext4 /dev/sda2 rw\n").expect("rewrite");
        let table = read_table(&paths).expect("reads");
        assert!(table.host && table.mountinfo);
        assert!(table.text.contains(" / ro "), "{}", table.text);
        // The path goes away (as PID 1 does for the agent's user under hidepid).
        std::fs::remove_file(&info).expect("rm");
        let table = read_table(&paths).expect("reads through the descriptor");
        assert!(table.text.contains(" / ro "), "{}", table.text);
        *KEPT.lock().expect("lock") = None;
    }

    /// The mount check on the live namespace: `/` reaches the file system mounted there; a
    /// file system this namespace does not have is refused rather than replaced by whatever
    /// the path leads to.
    #[test]
    fn mount_ids_are_the_first_fields() {
        let text = "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n7 30 0:5 / /dev rw - devtmpfs udev rw\n";
        assert_eq!(mount_ids(text), Some(vec![7, 30]));
        assert_eq!(mount_ids(""), Some(vec![]));
        assert_eq!(mount_ids("x 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
        assert_eq!(mount_ids("30\n"), None);
        let live = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let mut parsed: Vec<u64> = parse_mountinfo(&live, "/")
            .expect("parses")
            .iter()
            .filter_map(|m| m.info.as_ref().map(|i| i.id))
            .collect();
        parsed.sort_unstable();
        assert_eq!(mount_ids(&live), Some(parsed));
    }

    #[test]
    fn same_fs_check_on_the_live_namespace() {
        let own = parse_mountinfo(
            &std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
            "/",
        )
        .expect("parses");
        let by_id: HashMap<u64, Dev> = own
            .iter()
            .filter_map(|m| m.info.as_ref().map(|i| (i.id, i.dev)))
            .collect();
        let id = mount_id(Path::new("/")).expect("statx mnt id");
        let root_dev = by_id[&id];
        let own = (Arc::new(by_id), own);
        let root = own
            .1
            .iter()
            .find(|m| m.info.as_ref().is_some_and(|i| i.id == id))
            .expect("/");
        let check = same_fs(root, Path::new("/"), &own).expect("mountinfo");
        assert_eq!(check.dev, root_dev);
        assert_eq!(
            check.path_for(Path::new("/")).expect("reaches"),
            Path::new("/")
        );
        let elsewhere = SameFs {
            dev: (u32::MAX, u32::MAX),
            others: vec![PathBuf::from("/")],
            own: own.0.clone(),
        };
        let e = elsewhere
            .path_for(Path::new("/"))
            .expect_err("not this namespace's");
        assert!(e.to_string().contains("another file system"), "{e}");
        // Hidden at its own path, reachable at another one: that one is used.
        let other = SameFs {
            dev: root_dev,
            others: vec![PathBuf::from("/no/such/path"), PathBuf::from("/")],
            own: own.0.clone(),
        };
        assert_eq!(
            other
                .path_for(Path::new("/no/such/mount"))
                .expect("another path"),
            Path::new("/")
        );
    }

    #[test]
    fn escapes_rootfs_and_malformed() {
        let m = parse_mounts(
            "/dev/sdb1 /host/media/my\\040disk\\011x vfat rw 0 0\nproc /host proc rw 0 0\n/dev/x /other ext4 ro 0 0\n",
            "/host",
        )
        .expect("parses");
        assert_eq!(m[0].mount_point, "/media/my disk\tx");
        assert_eq!(m[1].mount_point, "/");
        assert_eq!(m[2].mount_point, "/other");
        assert!(m[2].read_only());
        assert!(parse_mounts("/dev/sda1 / ext4\n", "/").is_err());
        assert!(parse_mounts("\n", "/").is_err());
    }

    #[test]
    fn duplicates_first_wins() {
        let m = parse_mounts(
            "tmpfs /t tmpfs rw 0 0\ntmpfs /t tmpfs ro 0 0\ntmpfs /u tmpfs rw 0 0\n",
            "/",
        )
        .expect("parses");
        let none = DeviceFilter::default();
        let sel = select(&m, &none, &none);
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].options, "rw");
    }

    #[test]
    fn families_exact() {
        let mounts = parse_mounts(
            "/dev/vdb /data xfs ro,relatime 0 0\n/dev/vda / ext4 rw 0 0\nnfs:/x /nfs nfs4 rw 0 0\n",
            "/",
        )
        .expect("parses");
        let sel: Vec<&Mount> = mounts.iter().collect();
        let outcomes = [
            StatOutcome::Ok(fixed(8.0)),
            StatOutcome::Ok(fixed(4.0)),
            StatOutcome::Stuck,
        ];
        let fams = families(&sel, &outcomes);
        let names: Vec<&str> = fams.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "node_filesystem_avail_bytes",
                "node_filesystem_device_error",
                "node_filesystem_files",
                "node_filesystem_files_free",
                "node_filesystem_free_bytes",
                "node_filesystem_readonly",
                "node_filesystem_size_bytes",
            ]
        );
        assert_eq!(
            samples(&fams, "node_filesystem_device_error"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 0.0),
                (
                    "device=/dev/vdb,fstype=xfs,mountpoint=/data".to_string(),
                    0.0
                ),
                ("device=nfs:/x,fstype=nfs4,mountpoint=/nfs".to_string(), 1.0),
            ]
        );
        assert_eq!(
            samples(&fams, "node_filesystem_readonly"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 0.0),
                (
                    "device=/dev/vdb,fstype=xfs,mountpoint=/data".to_string(),
                    1.0
                ),
            ]
        );
        assert_eq!(
            samples(&fams, "node_filesystem_size_bytes"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 4.0),
                (
                    "device=/dev/vdb,fstype=xfs,mountpoint=/data".to_string(),
                    8.0
                ),
            ]
        );
        assert_eq!(samples(&fams, "node_filesystem_avail_bytes")[0].1, 1.0);
        assert_eq!(samples(&fams, "node_filesystem_free_bytes")[0].1, 2.0);
        assert_eq!(samples(&fams, "node_filesystem_files")[0].1, 100.0);
        assert_eq!(samples(&fams, "node_filesystem_files_free")[0].1, 50.0);
        let help: HashMap<&str, &str> = fams.iter().map(|f| (&*f.name, &*f.help)).collect();
        assert_eq!(
            help["node_filesystem_avail_bytes"],
            "Filesystem space available to non-root users in bytes."
        );
        assert_eq!(
            help["node_filesystem_files_free"],
            "Filesystem total free file nodes."
        );
    }

    /// The stuck-mount logic with an injected `statfs` that blocks on `/stale` until released.
    /// Asserts behaviour, never a measured duration: the scrape returns while the `/stale`
    /// call is still blocked (the call has not left the injected function), reports it stuck
    /// (`device_error 1`, no size), serves the other mounts, then skips `/stale` without a new
    /// call or thread until the blocked call returns.
    #[test]
    fn stuck_mount_is_skipped_until_it_answers() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let calls2 = calls.clone();
        // Set once the blocked `/stale` call has returned from the injected statfs.
        let stale_returned = Arc::new(AtomicBool::new(false));
        let stale_returned2 = stale_returned.clone();
        let statter = leak(Statter::new(
            Box::new(move |p: &Path| {
                let key = p.to_string_lossy().into_owned();
                *lock(&calls2).entry(key.clone()).or_default() += 1;
                if key == "/stale" {
                    let _ = lock(&release_rx).recv();
                    stale_returned2.store(true, Ordering::SeqCst);
                }
                if key == "/gone" {
                    return Err(io::Error::from_raw_os_error(libc::ENOENT));
                }
                Ok(fixed(key.len() as f64))
            }),
            Duration::from_millis(200),
        ));
        let targets: Vec<(&str, Target)> = ["/a", "/stale", "/gone", "/bb"]
            .iter()
            .map(|m| (*m, PathBuf::from(m).into()))
            .collect();
        let count = |k: &str| lock(&calls).get(k).copied().unwrap_or(0);

        // 1st scrape: /stale times out, the others are served.
        let out = statter.stat_all(&targets).expect("runs");
        assert!(
            !stale_returned.load(Ordering::SeqCst),
            "stat_all returned only after the blocked statfs did: it waited for it"
        );
        assert!(matches!(out[0], StatOutcome::Ok(s) if s.size == 2.0));
        assert!(matches!(out[1], StatOutcome::Stuck));
        assert!(
            matches!(&out[2], StatOutcome::Failed(e) if e.raw_os_error() == Some(libc::ENOENT))
        );
        assert!(matches!(out[3], StatOutcome::Ok(s) if s.size == 3.0));
        assert!(statter.is_stuck("/stale"));
        assert_eq!(count("/stale"), 1);
        let spawned = statter.spawned.load(Ordering::Relaxed);
        assert_eq!(spawned, 2, "one helper stuck, one for the rest");
        // What a scrape serves for it: device_error 1 and no size series.
        let mounts = parse_mounts(
            "/dev/a /a ext4 rw 0 0\n/dev/s /stale nfs4 rw 0 0\n/dev/g /gone ext4 rw 0 0\n/dev/b /bb ext4 rw 0 0\n",
            "/",
        )
        .expect("parses");
        let sel: Vec<&Mount> = mounts.iter().collect();
        let fams = families(&sel, &out);
        assert_eq!(
            samples(&fams, "node_filesystem_device_error"),
            [
                ("device=/dev/a,fstype=ext4,mountpoint=/a".to_string(), 0.0),
                ("device=/dev/b,fstype=ext4,mountpoint=/bb".to_string(), 0.0),
                (
                    "device=/dev/g,fstype=ext4,mountpoint=/gone".to_string(),
                    1.0
                ),
                (
                    "device=/dev/s,fstype=nfs4,mountpoint=/stale".to_string(),
                    1.0
                ),
            ]
        );
        assert_eq!(
            samples(&fams, "node_filesystem_size_bytes"),
            [
                ("device=/dev/a,fstype=ext4,mountpoint=/a".to_string(), 2.0),
                ("device=/dev/b,fstype=ext4,mountpoint=/bb".to_string(), 3.0),
            ]
        );

        // 2nd scrape: /stale is skipped without being asked again (it could not answer: its
        // one call is still blocked), no new thread.
        let out = statter.stat_all(&targets).expect("runs");
        assert!(!stale_returned.load(Ordering::SeqCst));
        assert!(matches!(out[1], StatOutcome::Stuck));
        assert!(matches!(out[3], StatOutcome::Ok(_)));
        assert_eq!(count("/stale"), 1);
        assert_eq!(count("/a"), 2);
        assert_eq!(statter.spawned.load(Ordering::Relaxed), spawned);

        // The blocked call returns: the helper unmarks the mount...
        drop(release_tx); // the blocked call returns, and later ones do not block
        wait_unstuck(statter, "/stale");
        assert!(stale_returned.load(Ordering::SeqCst));
        // ...and the next scrape serves it again (the released helper is reused).
        let out = statter.stat_all(&targets).expect("runs");
        assert!(matches!(out[1], StatOutcome::Ok(s) if s.size == 6.0));
        assert_eq!(count("/stale"), 2);
        assert_eq!(statter.spawned.load(Ordering::Relaxed), spawned);
    }

    #[test]
    fn helpers_are_reused() {
        let statter = leak(Statter::new(
            Box::new(|_: &Path| Ok(fixed(1.0))),
            Duration::from_secs(1),
        ));
        let targets: Vec<(&str, Target)> = vec![
            ("/", PathBuf::from("/").into()),
            ("/x", PathBuf::from("/x").into()),
        ];
        for _ in 0..20 {
            let out = statter.stat_all(&targets).expect("runs");
            assert!(out.iter().all(|o| matches!(o, StatOutcome::Ok(_))));
        }
        assert_eq!(statter.spawned.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn collect_fixture_tree() {
        let root = fixture_root().join("debian12-vm-6.18");
        let paths = Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: PathBuf::from("/"),
            udev_data: root.join("run/udev/data"),
            textfile_directory: None,
            collector_files: Default::default(),
        };
        let statter = leak(Statter::new(
            Box::new(|p: &Path| {
                if p == Path::new("/") {
                    Ok(fixed(10.0))
                } else {
                    Err(io::Error::from_raw_os_error(libc::EACCES))
                }
            }),
            Duration::from_secs(1),
        ));
        let fams = default_collector()
            .collect_with(&paths, statter)
            .expect("collects");
        assert_eq!(
            samples(&fams, "node_filesystem_device_error"),
            [
                ("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 0.0),
                (
                    "device=model_tools_unavailable,fstype=tmpfs,mountpoint=/mnt/sandboxing/model_tools_env/v1/python"
                        .to_string(),
                    1.0
                ),
            ]
        );
        assert_eq!(
            samples(&fams, "node_filesystem_size_bytes"),
            [("device=/dev/vda,fstype=ext4,mountpoint=/".to_string(), 10.0)]
        );
    }

    #[test]
    fn fallback_to_proc_mounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mounts"), "/dev/vda / ext4 rw 0 0\n").expect("write");
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let table = read_table(&paths).expect("falls back");
        assert!(table.text.starts_with("/dev/vda"));
        assert!(!table.host && !table.mountinfo);
        let empty = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            procfs: empty.path().to_path_buf(),
            ..Paths::default()
        };
        assert!(read_table(&paths).is_err());
    }

    /// The live mount table: true on every Linux host (whatever its root file system, which
    /// the default exclusions may drop, as `overlay` in a container): the collector reads and
    /// parses it, and reports every selected mount exactly once, with or without statistics.
    #[test]
    fn live() {
        let paths = Paths::default();
        let c = default_collector();
        let fams = c.collect(&paths).expect("collects");
        let table = read_table(&paths).expect("reads the live mount table");
        assert!(table.host && table.mountinfo, "PID 1's mountinfo, as root");
        let mounts = table.parse("/").expect("parses the live mount table");
        let selected = select(&mounts, &c.mount_points, &c.fs_types);
        let mut want: Vec<String> = selected
            .iter()
            .map(|m| {
                format!(
                    "device={},fstype={},mountpoint={}",
                    m.device, m.fs_type, m.mount_point
                )
            })
            .collect();
        want.sort();
        let mut got: Vec<String> = samples(&fams, "node_filesystem_device_error")
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        got.sort();
        assert_eq!(got, want);
    }
}
