//! The collector framework: the `Collector` trait and what every collector shares (the
//! injectable roots of [`Paths`], errors that carry the path, the kept-open file reads of
//! [`fsio`], option types and the `collector_options!` macro of [`options`], device and name
//! filters), running one collector and the meta metrics. The collectors themselves, and the
//! registry of them, are in the `collectors` module.

// No panic on input (issue 11): here and in every submodule, indexing and slicing that can
// panic, `unwrap`, `expect` and `panic!` are refused; use `get`, `split_once`,
// `strip_prefix`, slice patterns, `?`. Tests may (clippy.toml). Why this set and not
// `arithmetic_side_effects`: ARCHITECTURE.md, "No panic on input".
#![deny(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod fsio;
pub mod options;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use regex::Regex;

use crate::exposition::MetricFamily;

/// Where the collectors find the operating system (`--path.procfs`, `--path.sysfs`,
/// `--path.rootfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    /// udev's database (`--path.udev.data`), for `node_disk_info` and friends.
    pub udev_data: PathBuf,
    /// `--collector.textfile.directory` (read through Landlock: see SECURITY.md).
    pub textfile_directory: Option<PathBuf>,
    /// Files outside procfs and sysfs that enabled collectors read (each granted by Landlock).
    pub collector_files: CollectorFiles,
}

/// Files and directories outside procfs and sysfs that enabled collectors read, each granted
/// alone by Landlock (SECURITY.md, "Landlock"). Set only for an enabled collector; start-up
/// settings (a change waits for a restart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorFiles {
    /// pcidevice with `--collector.pcidevice.names`: the pci.ids file
    /// (`--collector.pcidevice.idsfile`, or the first of node_exporter's default paths that
    /// exists at start-up).
    pub pci_ids: Option<PathBuf>,
    /// qdisc: `--collector.qdisc.fixtures` (the directory; `results.json` in it is granted).
    pub qdisc_fixtures: Option<PathBuf>,
    /// wifi: `--collector.wifi.fixtures` (the directory, granted whole).
    pub wifi_fixtures: Option<PathBuf>,
    /// runit: `--collector.runit.servicedir` (default `/etc/service`), granted whole.
    pub runit_servicedir: Option<PathBuf>,
    /// runit: the `supervise` directories of the services in that directory at start-up
    /// whose real location lies outside it (canonical paths), each granted alone.
    pub runit_supervise: Vec<PathBuf>,
    /// supervisord: `--collector.supervisord.url` (or `$SUPERVISORD_URL`, or the default); a
    /// host name in it is resolved once, before the sandbox, by `collectors::warm_up`.
    pub supervisord_url: Option<String>,
    /// supervisord: the TCP port of an `http://` URL, the one Landlock lets the agent connect to.
    pub supervisord_tcp_port: Option<u16>,
}

impl CollectorFiles {
    /// The TCP ports Landlock lets the agent connect to: the supervisord collector's, for an
    /// `http://` URL.
    pub fn connect_tcp_ports(&self) -> Vec<u16> {
        self.supervisord_tcp_port.into_iter().collect()
    }

    /// What Landlock must grant for these files: exactly the files read (a directory for the
    /// wifi fixtures, which are a tree of per-interface files).
    pub fn grants(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        v.extend(self.pci_ids.clone());
        v.extend(self.qdisc_fixtures.as_ref().map(|d| d.join("results.json")));
        v.extend(self.wifi_fixtures.clone());
        v.extend(self.runit_servicedir.clone());
        v.extend(self.runit_supervise.iter().cloned());
        v
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            udev_data: PathBuf::from("/run/udev/data"),
            textfile_directory: None,
            collector_files: CollectorFiles::default(),
        }
    }
}

impl Paths {
    /// A path below the procfs root, e.g. `proc("stat")`.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    /// A path below the sysfs root, e.g. `sys("class/net")`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// A host path below the rootfs, e.g. `root("/etc/os-release")` (as node_exporter's
    /// `rootfsFilePath`: the rootfs prefix is stripped from mount points it reports).
    pub fn root(&self, abs: &str) -> PathBuf {
        self.rootfs.join(abs.trim_start_matches('/'))
    }
}

/// Why a collector produced nothing (or only part of its output).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// node_exporter's `ErrNoData`: the hardware or kernel feature the collector reads is not
    /// there (`/sys/class/nvme` absent: no NVMe driver). Reported `success 0` as node_exporter
    /// does, but counted apart from real errors (SIGUSR2 summary, `debug` log level).
    #[error("no data: {what} (no such hardware or kernel feature)")]
    NoData { what: String },
    /// A collector that failed part-way and keeps the samples it could read, as node_exporter's
    /// collectors that send metrics before returning an error (`success 0`, samples kept).
    #[error("{source} (kept the samples read before the error)")]
    Partial {
        families: Vec<MetricFamily>,
        source: Box<CollectError>,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CollectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    /// node_exporter's `ErrNoData` for an absent path.
    pub fn no_data(what: &Path) -> Self {
        CollectError::NoData {
            what: format!("{} is absent", what.display()),
        }
    }
    /// `error` after `families` were read: the samples are kept, the collector reports failure.
    /// Without samples it is `error` alone.
    pub fn partial(families: Vec<MetricFamily>, error: CollectError) -> Self {
        if families.is_empty() {
            return error;
        }
        CollectError::Partial {
            families,
            source: Box::new(error),
        }
    }
    /// An absent path (`ENOENT`) is no data (no such hardware); any other error stays itself.
    pub fn absent_is_no_data(self) -> Self {
        match self {
            CollectError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                CollectError::NoData {
                    what: format!("{} is absent", path.display()),
                }
            }
            e => e,
        }
    }
    /// Whether this is node_exporter's "no data" rather than a real error.
    pub fn is_no_data(&self) -> bool {
        match self {
            CollectError::NoData { .. } => true,
            CollectError::Partial { source, .. } => source.is_no_data(),
            _ => false,
        }
    }
    pub fn parse(path: &Path, msg: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// Reads a whole file, the error carrying its path.
pub fn read_to_string(path: &Path) -> Result<String, CollectError> {
    fsio::read_to_string(path).map_err(|e| CollectError::io(path, e))
}

/// Reads a whole file and parses it, either error carrying the file's path.
pub fn read_parsed<T, E: Into<String>>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, CollectError> {
    fsio::read_str_with(path, parse)
        .map_err(|e| CollectError::io(path, e))?
        .map_err(|m| CollectError::parse(path, m))
}

/// What [`read_dir`] returns: an iterator like `std::fs::ReadDir`.
pub type DirEntries = std::iter::Map<
    std::vec::IntoIter<fsio::DirEntry>,
    fn(fsio::DirEntry) -> std::io::Result<fsio::DirEntry>,
>;

/// A directory's entries, as `std::fs::read_dir` gives them (`.` and `..` left out), through
/// [`fsio::list_dir`] (procfs and sysfs directories kept open and rewound), answering a
/// procfs or sysfs directory found absent before from [`fsio`]'s negative cache, without a
/// system call.
pub fn read_dir(dir: impl AsRef<Path>) -> std::io::Result<DirEntries> {
    let dir = dir.as_ref();
    if let Some(e) = fsio::missing_error(dir) {
        return Err(e);
    }
    fsio::list_dir(dir)
        .map(|v| {
            v.into_iter()
                .map(Ok as fn(fsio::DirEntry) -> std::io::Result<fsio::DirEntry>)
        })
        .inspect_err(|e| fsio::note_missing(dir, e))
}

/// `std::fs::metadata` (symlinks followed), answering a procfs or sysfs path found absent
/// before from [`fsio`]'s negative cache, without a system call: collectors probe the same
/// absent paths (`cpuN/cpufreq`, `cpuN/thermal_throttle`) on every scrape (issue 12).
pub fn metadata(path: impl AsRef<Path>) -> std::io::Result<std::fs::Metadata> {
    let path = path.as_ref();
    if let Some(e) = fsio::missing_error(path) {
        return Err(e);
    }
    std::fs::metadata(path).inspect_err(|e| fsio::note_missing(path, e))
}

/// `Path::is_dir` through [`metadata`] and so through the negative cache.
pub fn is_dir(path: impl AsRef<Path>) -> bool {
    metadata(path).is_ok_and(|m| m.is_dir())
}

/// The names in a directory, sorted; a name that is not UTF-8 is skipped, a failure to list
/// the directory is an error.
pub fn sorted_names(dir: &Path) -> Result<Vec<String>, CollectError> {
    let mut out = Vec::new();
    for e in read_dir(dir).map_err(|e| CollectError::io(dir, e))? {
        let e = e.map_err(|e| CollectError::io(dir, e))?;
        if let Ok(name) = e.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The names in `dir` that `keep` accepts, sorted, as Go's `filepath.Glob` finds them: an I/O
/// error (no directory, an unreadable one or entry) matches nothing.
pub fn glob_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(rd) = read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect();
    names.sort_unstable();
    names
}

/// A collector: a name (as in `--collector.<name>` and the `collector` label) and a way to
/// read the system.
pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError>;
}

impl PartialEq for DeviceFilter {
    fn eq(&self, o: &Self) -> bool {
        self.include.as_ref().map(Regex::as_str) == o.include.as_ref().map(Regex::as_str)
            && self.exclude.as_ref().map(Regex::as_str) == o.exclude.as_ref().map(Regex::as_str)
    }
}

/// A regular expression applied to names that repeat on every scrape (kernel statistic
/// fields): each name's verdict is remembered, so the automaton runs once per name, not once
/// per scrape (it was the largest user-space cost of a scrape). FxHash: the names are the
/// kernel's (bounded by `MAX`), and SipHash was most of the lookup's cost (issue 12, perf).
#[derive(Debug)]
pub struct MemoRegex {
    re: Regex,
    memo: std::sync::Mutex<Memo>,
}

/// What a [`MemoRegex`] remembers: the verdict by name, and the name and verdict at each
/// position of the last scan (a file keeps its layout from scrape to scrape, so a scan mostly
/// compares its name with the one at the same position, without hashing).
#[derive(Debug, Default)]
struct Memo {
    seen: rustc_hash::FxHashMap<Box<str>, bool>,
    by_position: Vec<(Box<str>, bool)>,
}

impl MemoRegex {
    /// Names remembered at most (by name, and by position); past that the automaton runs
    /// every time.
    const MAX: usize = 4096;

    pub fn new(pattern: &str) -> Result<MemoRegex, regex::Error> {
        Ok(MemoRegex {
            re: Regex::new(pattern)?,
            memo: std::sync::Mutex::new(Memo::default()),
        })
    }

    /// The pattern set by an option, or `default` (a built-in pattern).
    pub fn from_option(p: &Option<options::Pattern>, default: &str) -> MemoRegex {
        MemoRegex {
            re: options::Pattern::or_default(p, default),
            memo: std::sync::Mutex::new(Memo::default()),
        }
    }

    /// One name, out of any scan (the memo by name only).
    pub fn is_match(&self, name: &str) -> bool {
        let mut scan = self.scan();
        scan.lookup(name)
    }

    /// A scan of the names of one file in file order: one lock for the whole scan, and a
    /// name found at the same position as in the last scan is answered by one comparison.
    pub fn scan(&self) -> MemoScan<'_> {
        MemoScan {
            re: &self.re,
            memo: self.memo.lock().ok(),
            pos: 0,
        }
    }
}

/// A scan in progress (see [`MemoRegex::scan`]); holds the memo's lock until dropped.
pub struct MemoScan<'a> {
    re: &'a Regex,
    memo: Option<std::sync::MutexGuard<'a, Memo>>,
    pos: usize,
}

impl MemoScan<'_> {
    /// Whether the next name of the scan matches.
    pub fn is_match(&mut self, name: &str) -> bool {
        let Some(memo) = self.memo.as_deref_mut() else {
            return self.re.is_match(name);
        };
        let pos = self.pos;
        self.pos += 1;
        if let Some((n, v)) = memo.by_position.get(pos) {
            if **n == *name {
                return *v;
            }
        }
        let v = Self::by_name(self.re, memo, name);
        if let Some(slot) = memo.by_position.get_mut(pos) {
            *slot = (name.into(), v);
        } else if pos == memo.by_position.len() && pos < MemoRegex::MAX {
            memo.by_position.push((name.into(), v));
        }
        v
    }

    /// [`MemoScan::is_match`] of `<a>_<b>`, compared in parts with the name remembered at
    /// this position (built in `buf` only when it differs).
    pub fn is_match_joined(&mut self, a: &str, b: &str, buf: &mut String) -> bool {
        if let Some(memo) = self.memo.as_deref() {
            if let Some((n, v)) = memo.by_position.get(self.pos) {
                let n = n.as_bytes();
                if n.len() == a.len() + 1 + b.len()
                    && n.starts_with(a.as_bytes())
                    && n.get(a.len()) == Some(&b'_')
                    && n.ends_with(b.as_bytes())
                {
                    self.pos += 1;
                    return *v;
                }
            }
        }
        buf.clear();
        buf.push_str(a);
        buf.push('_');
        buf.push_str(b);
        self.is_match(buf)
    }

    /// A name out of the scan's order (the memo by name only).
    fn lookup(&mut self, name: &str) -> bool {
        match self.memo.as_deref_mut() {
            Some(memo) => Self::by_name(self.re, memo, name),
            None => self.re.is_match(name),
        }
    }

    fn by_name(re: &Regex, memo: &mut Memo, name: &str) -> bool {
        if let Some(v) = memo.seen.get(name) {
            return *v;
        }
        let v = re.is_match(name);
        if memo.seen.len() < MemoRegex::MAX {
            memo.seen.insert(name.into(), v);
        }
        v
    }
}

/// Family names and HELP texts made from a key (a file's field name, a counter's key), built
/// on first use and kept for the life of the process, so a scrape hands out borrowed
/// `&'static str`s instead of formatting two strings per family. Process-wide (a collector
/// rebuilt on reload finds its names there) and bounded: past [`NameCache::MAX`] keys, names
/// are built on every call instead. Only valid metric names are kept (see [`NameCache::get`]).
pub struct NameCache {
    names: std::sync::Mutex<Option<rustc_hash::FxHashMap<&'static str, Names>>>,
}

type Names = (&'static str, &'static str);

/// A family's name and HELP text.
pub type FamilyNames = (
    std::borrow::Cow<'static, str>,
    std::borrow::Cow<'static, str>,
);

impl NameCache {
    /// Keys remembered at most.
    pub const MAX: usize = 4096;

    pub const fn new() -> NameCache {
        NameCache {
            names: std::sync::Mutex::new(None),
        }
    }

    /// The name and HELP text for `key`, `build` called for a key not seen before.
    pub fn get(&self, key: &str, build: impl FnOnce(&str) -> (String, String)) -> FamilyNames {
        use std::borrow::Cow;
        let Ok(mut guard) = self.names.lock() else {
            let (n, h) = build(key);
            return (Cow::Owned(n), Cow::Owned(h));
        };
        let map = guard.get_or_insert_with(Default::default);
        if let Some((n, h)) = map.get(key) {
            return (Cow::Borrowed(*n), Cow::Borrowed(*h));
        }
        let (n, h) = build(key);
        // A borrowed name is taken as valid by the exposition without a scan (it stands for
        // a literal): a name that a file made invalid is handed out owned, never kept, so
        // the merge checks it and drops it.
        if map.len() >= Self::MAX || !crate::exposition::valid_metric_name(&n) {
            return (Cow::Owned(n), Cow::Owned(h));
        }
        // Kept for the life of the process, at most `MAX` keys (see above).
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let (n, h) = (leak(n), leak(h));
        map.insert(leak(key.to_string()), (n, h));
        (Cow::Borrowed(n), Cow::Borrowed(h))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.names
            .lock()
            .map(|m| m.as_ref().map_or(0, |m| m.len()))
            .unwrap_or(0)
    }
}

impl Default for NameCache {
    fn default() -> Self {
        Self::new()
    }
}

/// `parts` concatenated, without the formatting machinery.
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// `s.parse::<f64>()`, faster for the plain integers procfs and sysfs print: a run of ASCII
/// digits (optionally after `-`) that fits a `u64` is converted exactly as the parser would
/// (both round to nearest, ties to even); anything else goes to the parser.
pub fn parse_f64(s: &str) -> Result<f64, std::num::ParseFloatError> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if !digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit()) {
        // At most 19 digits: below 10^19 < 2^64, no overflow.
        let n = digits
            .bytes()
            .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        let v = n as f64;
        return Ok(if neg { -v } else { v });
    }
    s.parse()
}

/// Whether `s.parse::<f64>()` would succeed, without building the value when `s` is a plain
/// integer (the kernel's counters).
pub fn is_f64(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())) || s.parse::<f64>().is_ok()
}

/// `s.split_once(b)` for an ASCII byte, by a plain byte loop: the standard library's char
/// searcher costs ~150 instructions a call, too much for the short fields of procfs lines.
pub fn split_once_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    debug_assert!(b.is_ascii());
    let i = s.bytes().position(|c| c == b)?;
    // `b` is ASCII: `i` and `i + 1` are boundaries.
    let (head, tail) = s.split_at_checked(i)?;
    Some((head, tail.get(1..)?))
}

/// `s.split(b)` for an ASCII byte (every piece, empty ones too), as [`split_once_byte`].
pub fn split_byte(s: &str, b: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_byte(r, b) {
            Some((head, tail)) => {
                rest = Some(tail);
                Some(head)
            }
            None => rest.take(),
        }
    })
}

/// The first two items of `s.split_ascii_whitespace()`, by a plain byte loop.
pub fn two_words(s: &str) -> (Option<&str>, Option<&str>) {
    fn word(s: &str) -> Option<(&str, &str)> {
        let start = s.bytes().position(|b| !b.is_ascii_whitespace())?;
        let rest = s.get(start..)?;
        let end = rest
            .bytes()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        // ASCII whitespace bytes: `start` and `end` are boundaries.
        Some((rest.get(..end)?, rest.get(end..)?))
    }
    match word(s) {
        Some((a, rest)) => (Some(a), word(rest).map(|(b, _)| b)),
        None => (None, None),
    }
}

/// `text.lines()` (split at `\n`, the `\r` of a `\r\n` removed, no empty last line), through
/// `memchr` rather than the standard library's char searcher (a scrape splits thousands of
/// short lines).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => {
                // `\n` is ASCII: `i` and `i + 1` are boundaries.
                let (line, tail) = rest.split_at_checked(i)?;
                rest = tail.get(1..)?;
                Some(line.strip_suffix('\r').unwrap_or(line))
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// A device include/exclude pair as node_exporter's `deviceFilter`: with an include pattern,
/// only matching devices; otherwise all but those matching the exclude pattern.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
}

impl DeviceFilter {
    /// From a collector's include and exclude options; `default_exclude` applies when
    /// neither is set.
    pub fn new(
        include: &Option<options::Pattern>,
        exclude: &Option<options::Pattern>,
        default_exclude: Option<&str>,
    ) -> DeviceFilter {
        match (include, exclude) {
            (Some(i), _) => DeviceFilter {
                include: Some(i.0.clone()),
                exclude: None,
            },
            (None, Some(e)) => DeviceFilter {
                include: None,
                exclude: Some(e.0.clone()),
            },
            (None, None) => DeviceFilter {
                include: None,
                exclude: default_exclude.map(|d| options::Pattern::or_default(&None, d)),
            },
        }
    }

    /// node_exporter's `newDeviceFilter(exclude, include)` itself: an empty pattern is no
    /// pattern, and both apply when both are set (collectors whose flags 1.12 does not make
    /// exclusive: infiniband, interrupts).
    pub fn both(
        include: &Option<options::Pattern>,
        exclude: &Option<options::Pattern>,
    ) -> DeviceFilter {
        let set = |p: &Option<options::Pattern>| {
            p.as_ref()
                .filter(|p| !p.0.as_str().is_empty())
                .map(|p| p.0.clone())
        };
        DeviceFilter {
            include: set(include),
            exclude: set(exclude),
        }
    }

    /// node_exporter refuses both an include and an exclude pattern.
    pub fn exclusive(
        include: &Option<options::Pattern>,
        exclude: &Option<options::Pattern>,
    ) -> Result<(), String> {
        if include.is_some() && exclude.is_some() {
            return Err("device-include and device-exclude are mutually exclusive".into());
        }
        Ok(())
    }

    /// node_exporter's `deviceFilter.ignored`: matched by the exclude pattern, or not matched
    /// by the include pattern (both apply when both are set).
    pub fn ignored(&self, name: &str) -> bool {
        self.exclude.as_ref().is_some_and(|e| e.is_match(name))
            || self.include.as_ref().is_some_and(|i| !i.is_match(name))
    }
}

/// The outcome of one collector's run in a scrape: its samples (also those of a partial
/// failure) and its error. Cloned for every scrape that joined the run.
#[derive(Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub families: Vec<MetricFamily>,
    pub error: Option<Arc<CollectError>>,
    pub seconds: f64,
    /// This scrape joined a run another scrape started (the samples are that run's).
    pub joined: bool,
}

impl Outcome {
    /// A collector that produced nothing, for `why`.
    pub fn failed(name: &'static str, why: &str, seconds: f64) -> Outcome {
        Outcome {
            name,
            families: Vec::new(),
            error: Some(Arc::new(CollectError::Other(why.to_string()))),
            seconds,
            joined: false,
        }
    }
}

/// Runs one collector, timing it. A partial failure keeps its samples.
pub fn run(collector: &dyn Collector, paths: &Paths) -> Outcome {
    let start = Instant::now();
    let result = collector.collect(paths);
    let seconds = start.elapsed().as_secs_f64();
    let (families, error) = match result {
        Ok(families) => (families, None),
        Err(CollectError::Partial { families, source }) => (families, Some(*source)),
        Err(e) => (Vec::new(), Some(e)),
    };
    Outcome {
        name: collector.name(),
        families,
        error: error.map(Arc::new),
        seconds,
        joined: false,
    }
}

/// node_exporter's per-collector meta metrics for a set of outcomes.
pub fn meta_families(outcomes: &[Outcome]) -> Vec<MetricFamily> {
    let mut duration = MetricFamily::gauge(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
    );
    let mut success = MetricFamily::gauge(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
    );
    for o in outcomes {
        duration.push(&[("collector", o.name)], o.seconds);
        success.push(
            &[("collector", o.name)],
            if o.error.is_none() { 1.0 } else { 0.0 },
        );
    }
    vec![duration, success]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_share_the_negative_cache() {
        let absent = Path::new("/sys/devices/system/cpu/no-such-cpu/cpufreq");
        assert!(!is_dir(absent));
        assert!(
            fsio::known_missing(absent),
            "a sysfs probe's miss is remembered"
        );
        assert_eq!(
            metadata(absent).expect_err("absent").kind(),
            std::io::ErrorKind::NotFound
        );
        assert!(is_dir("/sys/devices/system/cpu"));
        assert!(!fsio::known_missing(Path::new("/sys/devices/system/cpu")));
        assert!(read_dir("/sys/devices/system/cpu/no-such-cpu").is_err());
        assert!(fsio::known_missing(Path::new(
            "/sys/devices/system/cpu/no-such-cpu"
        )));
    }

    #[test]
    fn memo_regex_gives_the_regex_verdicts() {
        let m = MemoRegex::new("^(pg.*fault|oom_kill)").expect("pattern");
        for _ in 0..2 {
            assert!(m.is_match("pgmajfault"));
            assert!(m.is_match("oom_kill"));
            assert!(!m.is_match("nr_free_pages"));
        }
        assert_eq!(m.memo.lock().expect("lock").seen.len(), 3);
    }

    #[test]
    fn memo_scan_gives_the_regex_verdicts_whatever_the_order() {
        let m = MemoRegex::new("^(pg.*fault|oom_kill)").expect("pattern");
        let names = ["pgmajfault", "nr_free_pages", "oom_kill", "pgfault"];
        let expect = |n: &str| n.starts_with("pg") && n.contains("fault") || n == "oom_kill";
        // Same layout twice, then a shifted one, one longer, one shorter.
        let layouts: [&[&str]; 5] = [
            &names,
            &names,
            &names[1..],
            &[
                "x",
                "pgmajfault",
                "nr_free_pages",
                "oom_kill",
                "pgfault",
                "oom_kill",
            ],
            &names[..2],
        ];
        for layout in layouts {
            let mut scan = m.scan();
            for n in layout {
                assert_eq!(scan.is_match(n), expect(n), "{n} in {layout:?}");
            }
        }
        let memo = m.memo.lock().expect("lock");
        assert_eq!(memo.seen.len(), 5);
        assert_eq!(memo.by_position.len(), 6);
    }

    #[test]
    fn memo_scan_joined_names() {
        let m = MemoRegex::new("^(pg.*_fault|oom_kill)$").expect("pattern");
        let layouts: [&[(&str, &str)]; 3] = [
            &[
                ("pg", "fault"),
                ("oom", "kill"),
                ("oom", "kil"),
                ("pgm", "fault"),
            ],
            &[
                ("pg", "fault"),
                ("oom", "kill"),
                ("oom", "kil"),
                ("pgm", "fault"),
            ],
            &[
                ("oo", "m_kill"),
                ("pg", "fault"),
                ("oom", "kill"),
                ("p", "gm_fault"),
            ],
        ];
        let mut buf = String::new();
        for layout in layouts {
            let mut scan = m.scan();
            for (a, b) in layout {
                let joined = format!("{a}_{b}");
                let expect = m.re.is_match(&joined);
                assert_eq!(scan.is_match_joined(a, b, &mut buf), expect, "{joined}");
            }
        }
    }

    #[test]
    fn memo_is_bounded() {
        let m = MemoRegex::new("^a").expect("pattern");
        for round in 0..2 {
            let mut scan = m.scan();
            for i in 0..MemoRegex::MAX + 10 {
                assert!(scan.is_match(&format!("a{round}_{i}")));
                assert!(!scan.is_match(&format!("{round}_{i}")));
            }
        }
        let memo = m.memo.lock().expect("lock");
        assert_eq!(memo.seen.len(), MemoRegex::MAX);
        assert_eq!(memo.by_position.len(), MemoRegex::MAX);
    }

    #[test]
    fn name_cache_builds_once_and_is_bounded() {
        let cache = NameCache::new();
        let mut built = 0;
        for _ in 0..3 {
            let (n, h) = cache.get("pgfault", |k| {
                built += 1;
                (concat(&["node_vmstat_", k]), concat(&["field ", k, "."]))
            });
            assert_eq!((&*n, &*h), ("node_vmstat_pgfault", "field pgfault."));
            assert!(matches!(n, std::borrow::Cow::Borrowed(_)));
        }
        assert_eq!(built, 1);
        for i in 0..NameCache::MAX + 5 {
            let k = format!("k{i}");
            let (n, _) = cache.get(&k, |k| (concat(&["n_", k]), String::new()));
            assert_eq!(n, format!("n_k{i}"));
        }
        assert_eq!(cache.len(), NameCache::MAX);
    }

    #[test]
    fn name_cache_hands_invalid_names_out_owned_and_keeps_none() {
        // The exposition scans owned names only: one a hostile file made invalid must stay
        // owned so that the merge drops it.
        let cache = NameCache::new();
        for _ in 0..2 {
            let (n, _) = cache.get("I\u{2028}mp6_InErrors", |k| {
                (concat(&["node_netstat_", k]), String::new())
            });
            assert!(matches!(n, std::borrow::Cow::Owned(_)), "{n:?}");
        }
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn parse_f64_is_the_standard_parser() {
        let cases = [
            "0",
            "-0",
            "1",
            "-1",
            "007",
            "123456789",
            "9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "9999999999999999999",
            "-9223372036854775809",
            "1.5",
            "1e3",
            "+5",
            "",
            "-",
            "x",
            " 1",
            "1 ",
            "NaN",
            "inf",
            "--1",
            "0x10",
            "4294967295",
            "12345678901234567",
        ];
        for c in cases {
            let ours = parse_f64(c);
            let std = c.parse::<f64>();
            assert_eq!(ours.is_ok(), std.is_ok(), "{c:?}");
            assert_eq!(is_f64(c), std.is_ok(), "{c:?}");
            if let (Ok(a), Ok(b)) = (ours, std) {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn byte_splits_are_str_splits() {
        for t in [
            "",
            " ",
            "a",
            "a b",
            " a  b ",
            "Tcp: 1 2 3",
            "é ü",
            "a:b:c",
            "::",
        ] {
            for b in [b' ', b':'] {
                let c = char::from(b);
                assert_eq!(split_once_byte(t, b), t.split_once(c), "{t:?} {c:?}");
                assert_eq!(
                    split_byte(t, b).collect::<Vec<_>>(),
                    t.split(c).collect::<Vec<_>>(),
                    "{t:?} {c:?}"
                );
            }
        }
    }

    #[test]
    fn two_words_is_split_ascii_whitespace() {
        for t in [
            "",
            " ",
            "a",
            " a ",
            "a b",
            "Ip6InReceives \t 178",
            "a  b c",
            "\té\x0cü x",
            "a\u{a0}b c",
        ] {
            let mut w = t.split_ascii_whitespace();
            assert_eq!(two_words(t), (w.next(), w.next()), "{t:?}");
        }
    }

    #[test]
    fn lines_is_str_lines() {
        for t in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a\r\nb\r\n",
            "\n\na\n\n",
            "a\r",
            "\r\n",
            "é\nü\r\n",
        ] {
            assert_eq!(
                lines(t).collect::<Vec<_>>(),
                t.lines().collect::<Vec<_>>(),
                "{t:?}"
            );
        }
    }
}
