//! `filesystem` collector: node_exporter 1.5's `filesystem_linux.go`.
//!
//! - Mounts come from `/proc/1/mounts` (the host's mount namespace), falling back to
//!   `/proc/mounts` when that file cannot be opened (hidepid; under Landlock a process outside
//!   the sandbox may answer EACCES, where node_exporter only falls back on ENOENT).
//! - Mount points matching `--collector.filesystem.mount-points-exclude` and file system types
//!   matching `--collector.filesystem.fs-types-exclude` are skipped; the rootfs prefix is
//!   stripped from mount points as node_exporter's `rootfsStripPrefix` does (a plain string
//!   prefix), and each mount is `statfs`ed below the rootfs.
//! - Families (labels `device`, `fstype`, `mountpoint`): `node_filesystem_size_bytes`
//!   (`f_blocks * f_bsize`), `_free_bytes` (`f_bfree`), `_avail_bytes` (`f_bavail`), `_files`,
//!   `_files_free`, `_readonly` (the `ro` mount option) and `_device_error`. A mount whose
//!   `statfs` failed gets `device_error 1` and nothing else, as in 1.5.
//!
//! A `statfs` that hangs (stale NFS, dead FUSE daemon) never hangs the scrape: the calls run
//! on helper threads and the scrape waits at most [`MOUNT_TIMEOUT`] for each. A mount that
//! timed out is remembered as stuck (node_exporter's `stuckMounts`): later scrapes report it
//! with `device_error 1` without calling `statfs` again, until the stuck call returns and the
//! helper thread takes the mount off the list. The helper threads are kept between scrapes,
//! so a scrape normally starts none.
//!
//! Syscalls: `statfs` (plus `clone3`/`futex` for the helper threads).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use regex::Regex;

use super::options::{collector_options, Pattern};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// How long a scrape waits for one mount's `statfs` before marking the mount stuck.
/// node_exporter waits `--collector.filesystem.mount-timeout` (5 s); we wait less because the
/// whole collector has a 5 s deadline and a healthy `statfs` answers in microseconds, so one
/// stuck mount still leaves time to serve the others.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle helper threads kept for the next scrape (one suffices when no mount hangs).
const MAX_IDLE_WORKERS: usize = 2;

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
    }
}

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.filesystem;
    Box::new(Filesystem {
        mount_points_exclude: Pattern::or_default(
            &o.mount_points_exclude,
            DEFAULT_MOUNT_POINTS_EXCLUDE,
        ),
        fs_types_exclude: Pattern::or_default(&o.fs_types_exclude, DEFAULT_FS_TYPES_EXCLUDE),
    })
}

/// One line of `/proc/mounts`, as node_exporter 1.5's `filesystemLabels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    /// With `\040` and `\011` decoded and the rootfs prefix stripped.
    pub mount_point: String,
    pub fs_type: String,
    pub options: String,
}

impl Mount {
    fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Parses `/proc/mounts` (fstab(5) format). A line with fewer than 4 fields is an error, as in
/// node_exporter.
pub fn parse_mounts(text: &str, rootfs: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::with_capacity(32);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mp), Some(fs_type), Some(options)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("malformed mount point information: {line:?}"));
        };
        let mp = if mp.contains('\\') {
            mp.replace("\\040", " ").replace("\\011", "\t")
        } else {
            mp.to_string()
        };
        out.push(Mount {
            device: device.to_string(),
            mount_point: strip_rootfs(mp, rootfs),
            fs_type: fs_type.to_string(),
            options: options.to_string(),
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
    timeout: Duration,
    /// Mount points whose `statfs` timed out and has not returned yet.
    stuck: Mutex<HashSet<String>>,
    /// Idle helper threads, each waiting on its channel.
    idle: Mutex<Vec<mpsc::Sender<Batch>>>,
    /// Helper threads started so far (for tests and curiosity).
    spawned: AtomicUsize,
}

/// Work for one helper thread: stat these mounts in order, report each result, stop when
/// abandoned.
struct Batch {
    items: Vec<(usize, String, PathBuf)>,
    results: mpsc::Sender<(usize, io::Result<FsStats>)>,
    /// Set (under the `stuck` lock) when the scrape stopped waiting for this batch.
    abandoned: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Statter {
    pub fn new(statfs: Box<StatfsFn>, timeout: Duration) -> Self {
        Statter {
            statfs,
            timeout,
            stuck: Mutex::new(HashSet::new()),
            idle: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
        }
    }

    /// Whether `mount_point` is currently remembered as stuck.
    pub fn is_stuck(&self, mount_point: &str) -> bool {
        lock(&self.stuck).contains(mount_point)
    }

    /// `statfs` of each `(mount point, path)`, in order. Never waits more than the timeout
    /// for any one call; mounts already stuck are answered [`StatOutcome::Stuck`] at once.
    pub fn stat_all(
        &'static self,
        mounts: &[(&str, PathBuf)],
    ) -> Result<Vec<StatOutcome>, CollectError> {
        let mut out: Vec<Option<StatOutcome>> = (0..mounts.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, String, PathBuf)> = Vec::with_capacity(mounts.len());
        {
            let stuck = lock(&self.stuck);
            for (i, (mp, path)) in mounts.iter().enumerate() {
                if stuck.contains(*mp) {
                    log::debug!("mount point {mp}: still not answering, skipped");
                    set(&mut out, i, StatOutcome::Stuck);
                } else {
                    pending.push((i, (*mp).to_string(), path.clone()));
                }
            }
        }
        while !pending.is_empty() {
            let (tx, rx) = mpsc::channel();
            let abandoned = Arc::new(AtomicBool::new(false));
            let order: Vec<(usize, String)> =
                pending.iter().map(|(i, mp, _)| (*i, mp.clone())).collect();
            self.dispatch(Batch {
                items: std::mem::take(&mut pending),
                results: tx,
                abandoned: abandoned.clone(),
            })?;
            for (pos, (i, mp)) in order.iter().enumerate() {
                let got = match rx.recv_timeout(self.timeout) {
                    Ok(r) => Some(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let mut stuck = lock(&self.stuck);
                        // The helper sends under this lock: either its answer is in the
                        // channel now, or it will see `abandoned` and unmark the mount.
                        match rx.try_recv() {
                            Ok(r) => Some(r),
                            Err(_) => {
                                abandoned.store(true, Ordering::SeqCst);
                                if stuck.insert(mp.clone()) {
                                    log::warn!(
                                        "mount point {mp}: statfs timed out, skipping until it answers"
                                    );
                                }
                                None
                            }
                        }
                    }
                    // The helper died (a panicking statfs): count this mount as failed.
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        abandoned.store(true, Ordering::SeqCst);
                        let died = io::Error::other("statfs helper thread died");
                        set(&mut out, *i, StatOutcome::Failed(died));
                        pending = requeue(mounts, order.get(pos + 1..).unwrap_or_default());
                        break;
                    }
                };
                match got {
                    Some((j, r)) => {
                        let outcome = match r {
                            Ok(s) => StatOutcome::Ok(s),
                            Err(e) => StatOutcome::Failed(e),
                        };
                        set(&mut out, j, outcome);
                    }
                    None => {
                        set(&mut out, *i, StatOutcome::Stuck);
                        pending = requeue(mounts, order.get(pos + 1..).unwrap_or_default());
                        break;
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(StatOutcome::Stuck))
            .collect())
    }

    /// Hands a batch to an idle helper thread, or to a new one.
    fn dispatch(&'static self, batch: Batch) -> Result<(), CollectError> {
        let idle = lock(&self.idle).pop();
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
            for (k, (i, mp, path)) in batch.items.into_iter().enumerate() {
                let r = (self.statfs)(&path);
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
        if idle.len() >= MAX_IDLE_WORKERS {
            return false;
        }
        idle.push(me.clone());
        true
    }
}

/// Records mount `i`'s outcome (`i` is always an index of `out`; `get_mut` keeps that from
/// being a panic if it ever were not).
fn set(out: &mut [Option<StatOutcome>], i: usize, v: StatOutcome) {
    if let Some(slot) = out.get_mut(i) {
        *slot = Some(v);
    }
}

/// The mounts still to stat after a stuck one.
fn requeue(mounts: &[(&str, PathBuf)], rest: &[(usize, String)]) -> Vec<(usize, String, PathBuf)> {
    rest.iter()
        .filter_map(|(i, mp)| mounts.get(*i).map(|(_, p)| (*i, mp.clone(), p.clone())))
        .collect()
}

static STATTER: LazyLock<Statter> =
    LazyLock::new(|| Statter::new(Box::new(real_statfs), MOUNT_TIMEOUT));

struct Filesystem {
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
}

/// Reads the mount table: `/proc/1/mounts`, else `/proc/mounts`.
fn read_mounts(paths: &Paths) -> Result<String, CollectError> {
    let first = paths.proc("1/mounts");
    match super::fsio::read_to_string(&first) {
        Ok(t) => Ok(t),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            log::debug!("reading {}: {e}; falling back to mounts", first.display());
            super::read_to_string(&paths.proc("mounts"))
        }
        Err(e) => Err(CollectError::io(&first, e)),
    }
}

/// The mounts to report: not excluded, one per (device, mount point, type), first wins (as
/// node_exporter's registry keeps the first of duplicate series).
fn select<'a>(
    mounts: &'a [Mount],
    mount_points_exclude: &Regex,
    fs_types_exclude: &Regex,
) -> Vec<&'a Mount> {
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::with_capacity(mounts.len());
    mounts
        .iter()
        .filter(|m| {
            !mount_points_exclude.is_match(&m.mount_point)
                && !fs_types_exclude.is_match(&m.fs_type)
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
        let text = read_mounts(paths)?;
        let rootfs = paths.rootfs.to_string_lossy();
        let mounts = parse_mounts(&text, &rootfs)
            .map_err(|msg| CollectError::parse(&paths.proc("1/mounts"), msg))?;
        let selected = select(&mounts, &self.mount_points_exclude, &self.fs_types_exclude);
        let targets: Vec<(&str, PathBuf)> = selected
            .iter()
            .map(|m| (m.mount_point.as_str(), paths.root(&m.mount_point)))
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

    const DEBIAN12: &str =
        include_str!("../../tests/fixtures/storage/debian12-vm-6.18/proc/1/mounts");

    fn fixture_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage")
    }

    fn default_collector() -> Filesystem {
        Filesystem {
            mount_points_exclude: Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE).expect("re"),
            fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).expect("re"),
        }
    }

    fn leak(s: Statter) -> &'static Statter {
        Box::leak(Box::new(s))
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
            }
        );
        let sel = select(
            &mounts,
            &Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE).expect("re"),
            &Regex::new(DEFAULT_FS_TYPES_EXCLUDE).expect("re"),
        );
        let mps: Vec<&str> = sel.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(mps, ["/", "/mnt/sandboxing/model_tools_env/v1/python"]);
        assert!(sel[1].read_only());
        assert!(!sel[0].read_only());
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
        let re_none = Regex::new("^$").expect("re");
        let sel = select(&m, &re_none, &re_none);
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
        let targets: Vec<(&str, PathBuf)> = ["/a", "/stale", "/gone", "/bb"]
            .iter()
            .map(|m| (*m, PathBuf::from(m)))
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
        let mut polls = 0u32;
        while statter.is_stuck("/stale") {
            // A liveness bound (a minute of polling), not a speed requirement.
            polls += 1;
            assert!(
                polls < 60_000,
                "never unmarked after the blocked call returned"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
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
        let targets = vec![("/", PathBuf::from("/")), ("/x", PathBuf::from("/x"))];
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
        let text = read_mounts(&paths).expect("falls back");
        assert!(text.starts_with("/dev/vda"));
        let empty = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            procfs: empty.path().to_path_buf(),
            ..Paths::default()
        };
        assert!(read_mounts(&paths).is_err());
    }

    /// The live mount table: true on every Linux host (whatever its root file system, which
    /// the default exclusions may drop, as `overlay` in a container): the collector reads and
    /// parses it, and reports every selected mount exactly once, with or without statistics.
    #[test]
    fn live() {
        let paths = Paths::default();
        let c = default_collector();
        let fams = c.collect(&paths).expect("collects");
        let text = read_mounts(&paths).expect("reads the live mount table");
        let mounts = parse_mounts(&text, "/").expect("parses the live mount table");
        let selected = select(&mounts, &c.mount_points_exclude, &c.fs_types_exclude);
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
