//! No input crashes the agent (issue 11): property tests that feed every parser mutations of
//! its fixtures and check that nothing panics and that the exposition stays valid.
//!
//! - `mutated_fixture_trees_never_panic_and_encode_valid_expositions`: copies one of the
//!   fixture trees under `tests/fixtures/` (procfs, sysfs, rootfs, udev data, textfile
//!   directory) to a temporary directory, mutates 1 to 25 of its files (truncation, random
//!   bytes, huge and negative numbers, NULs, long lines, multi-byte UTF-8 at slice boundaries,
//!   quotes, backslashes and newlines where label values come from, duplicated and dropped
//!   lines), runs **every** collector of the registry on it through `collector::run`, merges
//!   the families as a scrape does and encodes them in both formats. Each exposition must pass
//!   [`strict`] (an independent, strict reading of the text format: name, label and value
//!   syntax, HELP and TYPE at most once per family and before its samples, samples of a family
//!   together, no series twice) and parse back with the agent's own parser with one sample per
//!   series.
//! - `sample_of_mutated_expositions_passes_promtool`: the same on fewer cases, each exposition
//!   also checked by `promtool check metrics` (a second, independent oracle).
//! - `every_collector_succeeds_on_an_unmutated_tree`: the tree set gives each collector input it
//!   parses, so the mutations reach its parser and not only its "file missing" path (runit's
//!   tree, `tests/fixtures/runit/`, is a service directory: its status files are mutated too).
//! - `mutated_rtnetlink_answers_never_panic`: this host's rtnetlink answers, mutated, through
//!   netlink-packet-route and every collector function that reads them.
//! - `ethtool_answers_never_panic`: arbitrary driver answers (statistic names and values,
//!   driver info strings, link mode masks) through the ethtool collector's exposition.
//! - `ntp_replies_never_panic`: arbitrary bytes and mutated server packets as an NTP reply,
//!   through the ntp collector's parsing, checks, arithmetic and exposition, and sent by a
//!   loopback server to its real query.
//! - the textfile parser, `Accept`/`Accept-Encoding` negotiation, the TOML configuration and
//!   udev's database format on mutated and arbitrary input (the query string and the scrape
//!   timeout header are tested where they are parsed, in `src/server.rs`).
//!
//! A panic anywhere fails the case; proptest then shrinks it and prints the smallest input it
//! found. Failing cases are saved in `tests/robust_inputs.proptest-regressions` (commit that
//! file: the saved cases run first on every later run). `PROPTEST_CASES=N` changes the number
//! of cases of every property (defaults: see `config`).

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use monitoring_agent::collector::{self, Paths};
use monitoring_agent::collectors::{self, Options, KNOWN};
use monitoring_agent::exposition::{self, parse, Format, MetricFamily};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence};

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// `cases` cases unless `PROPTEST_CASES` says otherwise; failures saved beside this file.
fn config(cases: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    // Shrinking re-runs the whole scrape: bound it so a failure is reported in seconds.
    c.max_shrink_iters = 2048;
    c
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

// ---------------------------------------------------------------------------------------
// The fixture trees
// ---------------------------------------------------------------------------------------

/// A fixture tree: a directory with some of `proc/`, `sys/`, `root/` or `rootfs/`,
/// `udev/data/`, `textfile/`, and its regular files (relative paths, sorted).
struct Tree {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

/// Every directory under `tests/fixtures/` that holds a `proc/` or `sys/` tree, and each
/// textfile directory of the procmisc group (as the `textfile/` of an otherwise empty tree).
fn trees() -> &'static [Tree] {
    static TREES: OnceLock<Vec<Tree>> = OnceLock::new();
    TREES.get_or_init(|| {
        let mut dirs = Vec::new();
        find_tree_dirs(&fixtures(), 0, &mut dirs);
        for e in fs::read_dir(fixtures().join("procmisc/textfile")).expect("procmisc/textfile") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            }
        }
        dirs.sort();
        dirs.into_iter()
            .map(|dir| {
                // Only what the collectors read: not the golden files and READMEs beside.
                let roots = paths_of(&dir);
                let mut files = Vec::new();
                regular_files(&dir, Path::new(""), &mut files);
                files.retain(|f| {
                    let abs = dir.join(f);
                    [&roots.procfs, &roots.sysfs, &roots.rootfs, &roots.udev_data]
                        .into_iter()
                        .chain(roots.textfile_directory.as_ref())
                        .chain(roots.collector_files.pci_ids.as_ref())
                        .chain(roots.collector_files.qdisc_fixtures.as_ref())
                        .chain(roots.collector_files.wifi_fixtures.as_ref())
                        .chain(roots.collector_files.runit_servicedir.as_ref())
                        .chain(roots.collector_files.runit_supervise.iter())
                        .any(|r| abs.starts_with(r))
                });
                files.sort();
                Tree { dir, files }
            })
            .collect()
    })
}

/// A tree may hold further trees beside its own roots (`tests/fixtures/ne112/` has `proc/` and
/// `sys/` and the trees `swap/`, `drm/`, `kernel-stats/`): its roots are not searched again.
fn find_tree_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    // runit's fixture tree has only a service directory (`service/`).
    let is_tree = dir.join("proc").is_dir() || dir.join("sys").is_dir() || is_runit_tree(dir);
    if is_tree {
        out.push(dir.to_path_buf());
    }
    if depth >= 2 {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let root = ["proc", "sys", "root", "rootfs", "udev", "textfile"]
            .iter()
            .any(|r| e.file_name() == *r);
        if e.file_type().is_ok_and(|t| t.is_dir()) && !(is_tree && root) {
            find_tree_dirs(&p, depth + 1, out);
        }
    }
}

/// runit's fixture tree (`tests/fixtures/runit/`): a service directory, `service/`.
fn is_runit_tree(dir: &Path) -> bool {
    dir.join("service").is_dir() && !dir.join("textfile").exists()
}

fn regular_files(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(base.join(rel)).expect("fixture dir").flatten() {
        let t = e.file_type().expect("file type");
        let r = rel.join(e.file_name());
        if t.is_dir() {
            regular_files(base, &r, out);
        } else if t.is_file() {
            out.push(r);
        }
    }
}

/// Copies a tree (directories, files, symbolic links kept as links: the fixtures' are
/// relative).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read fixture dir").flatten() {
        let t = e.file_type().expect("file type");
        let dst = to.join(e.file_name());
        if t.is_symlink() {
            symlink(fs::read_link(e.path()).expect("readlink"), &dst).expect("symlink");
        } else if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

/// The collectors' roots in a (copied) tree, as `--path.*` and
/// `--collector.textfile.directory` would name them.
fn paths_of(dir: &Path) -> Paths {
    let pick = |names: &[&str]| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| dir.join(names[0]))
    };
    let textfile = dir.join("textfile");
    let textfile_directory = if textfile.is_dir() {
        Some(textfile)
    } else if dir.join("proc").is_dir() || dir.join("sys").is_dir() || is_runit_tree(dir) {
        None
    } else {
        // A textfile directory of the procmisc group: the tree is the directory itself.
        Some(dir.to_path_buf())
    };
    // The JSON fixtures of the qdisc and wifi collectors, and a pci.ids file (the ne112
    // group), as their --collector.* flags would name them.
    let some_dir = |n: &str| Some(dir.join(n)).filter(|p| p.is_dir());
    Paths {
        procfs: pick(&["proc"]),
        sysfs: pick(&["sys"]),
        rootfs: pick(&["rootfs", "root"]),
        udev_data: pick(&["udev/data"]),
        textfile_directory,
        collector_files: collector::CollectorFiles {
            pci_ids: Some(dir.join("pci.ids")).filter(|p| p.is_file()),
            qdisc_fixtures: some_dir("qdisc"),
            wifi_fixtures: some_dir("wifi"),
            // runit's service directory (absent but for runit's tree: the collector fails),
            // and the service directory its symlink points into, as the grants would be.
            runit_servicedir: Some(dir.join("service")),
            runit_supervise: some_dir("symlink-service").into_iter().collect(),
            // supervisord's default URL: `localhost` is not resolved here (no warm-up), so the
            // collector fails at once, without touching the network.
            supervisord_url: None,
            supervisord_tcp_port: None,
        },
    }
}

/// Options that make the off-by-default collectors with options read something: the sysctl
/// collector reads nothing unless told which sysctls. Also the optional parts of default
/// collectors, so mutated inputs reach them: node_exporter 1.12's `--collector.cpu.info` (with
/// its include patterns and the cpufreq frequency), `--collector.stat.softirq`,
/// `--collector.bcache.priorityStats`, hwmon's and arp's filters; pcidevice reads pci.ids only with names.
fn options() -> Options {
    let mut o = Options::default();
    let pat = |p: &str| Some(p.parse().expect("pattern"));
    o.cpu.info = Some(true);
    o.cpu.info_flags_include = pat("^(aes|avx.?|constant_tsc)$");
    o.cpu.info_bugs_include = pat("^(cpu_meltdown|spectre_.*|mds)$");
    o.cpu.cpufreq_enabled = Some(true);
    o.stat.softirq = Some(true);
    o.bcache.priority_stats = Some(true);
    o.hwmon.sensor_exclude = pat("^nothing;");
    o.arp.device_exclude = pat("^nope$");
    o.pcidevice.names = Some(true);
    let s = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    o.sysctl.include = s(&[
        "vm.swappiness",
        "kernel.pid_max",
        "kernel.threads-max",
        "fs.file-nr:allocated,unused,max",
        "net.ipv4.tcp_rmem:min,default,max",
    ]);
    o.sysctl.include_info = s(&[
        "kernel.seccomp.actions_avail",
        "net.ipv4.ip_local_port_range",
    ]);
    o
}

/// Every collector of the registry, built once (collectors keep state across scrapes, as in
/// the agent).
fn all_collectors() -> &'static [Box<dyn collector::Collector>] {
    static ALL: OnceLock<Vec<Box<dyn collector::Collector>>> = OnceLock::new();
    ALL.get_or_init(|| {
        let o = options();
        KNOWN.iter().map(|k| (k.build)(&o)).collect()
    })
}

/// One scrape of `paths` by every collector: the outcomes and the merged families, as
/// `Agent::scrape` builds them; a collector's panic is an error naming the collector.
fn scrape(paths: &Paths) -> Result<(Vec<collector::Outcome>, Vec<MetricFamily>), String> {
    let mut outcomes = Vec::new();
    for c in all_collectors() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            collector::run(c.as_ref(), paths)
        }));
        match run {
            Ok(o) => outcomes.push(o),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("collector {} panicked: {msg}", c.name()));
            }
        }
    }
    let mut families = collector::meta_families(&outcomes);
    for o in &outcomes {
        families.extend(o.families.iter().cloned());
    }
    exposition::merge_families(&mut families, |_| {});
    Ok((outcomes, families))
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// Numbers that overflow, underflow or are not numbers at all, put where digits were.
const HOSTILE_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "-9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999999999999999999999",
    "4294967296",
    "-4294967297",
    "1e309",
    "-1e309",
    "1.7976931348623157e308",
    "NaN",
    "+Inf",
    "-Inf",
    "0x",
    "0xffffffffffffffffffff",
    "-0",
    "",
    "-",
    ".",
    "00000000000000000000000000000000000000001",
    "1_000",
];

/// Multi-byte UTF-8 (2, 3 and 4 bytes; line and paragraph separators; bidi override; BOM).
const MULTI_BYTE: &[&str] = &[
    "é", "€", "𝄞", "\u{2028}", "\u{2029}", "\u{202e}", "\u{feff}", "ß̈", "中文",
];

/// What ends up in label values and HELP texts when a file is copied into them.
const LABEL_HOSTILE: &[&str] = &[
    "\"",
    "\\",
    "\n",
    "\\\"",
    "\\n",
    "\"}\n evil 1\n",
    "{a=\"b\"}",
    "=",
    ",",
    "# HELP x y\n",
    "\r\n",
    "\t",
    " ",
    "\u{0}",
    "\u{1b}[31m",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Keeps the first bytes only (possibly inside a multi-byte character).
    Truncate(Index),
    Empty,
    /// Overwrites bytes from an offset with random ones.
    Overwrite(Index, Vec<u8>),
    /// Inserts random bytes at an offset.
    Insert(Index, Vec<u8>),
    /// Replaces one run of digits (the n-th) with a hostile number.
    Number(Index, &'static str),
    /// Replaces every run of digits with a hostile number.
    AllNumbers(&'static str),
    /// Prefixes every run of digits with a minus sign.
    Negate,
    /// Inserts NUL bytes at an offset.
    Nuls(Index, usize),
    /// Inserts a long line at an offset.
    LongLine(Index, usize, u8),
    /// Inserts a multi-byte character at an offset (inside another one, too).
    MultiByte(Index, &'static str),
    /// Replaces one byte by a multi-byte character: offsets after it move.
    ReplaceByMultiByte(Index, &'static str),
    /// Inserts a multi-byte character at a small absolute offset (where prefixes such as
    /// `0x` or `MemTotal:` are sliced off).
    MultiByteAt(usize, &'static str),
    /// Inserts a multi-byte character after every separator byte (`:`, `=`, a blank, ...):
    /// where a value starts.
    MultiByteAfter(u8, &'static str),
    /// Inserts quotes, backslashes, newlines, braces at an offset.
    LabelHostile(Index, &'static str),
    /// Appends a text to every line (what becomes a label value usually ends a line).
    AppendToLines(&'static str),
    DuplicateLine(Index),
    DropLine(Index),
    /// Repeats the whole file many times.
    Repeat(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let hostile = prop::sample::select(HOSTILE_NUMBERS);
    let multi = prop::sample::select(MULTI_BYTE);
    let label = prop::sample::select(LABEL_HOSTILE);
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Truncate),
        1 => Just(Mutation::Empty),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        4 => (any::<Index>(), hostile.clone()).prop_map(|(i, n)| Mutation::Number(i, n)),
        2 => hostile.prop_map(Mutation::AllNumbers),
        1 => Just(Mutation::Negate),
        1 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Nuls(i, n)),
        1 => (any::<Index>(), 4096usize..262_144, prop::sample::select(&b"a9 \t:,"[..]))
            .prop_map(|(i, n, c)| Mutation::LongLine(i, n, c)),
        3 => (any::<Index>(), multi.clone()).prop_map(|(i, c)| Mutation::MultiByte(i, c)),
        3 => (any::<Index>(), multi.clone()).prop_map(|(i, c)| Mutation::ReplaceByMultiByte(i, c)),
        3 => (0usize..6, multi.clone()).prop_map(|(i, c)| Mutation::MultiByteAt(i, c)),
        3 => (prop::sample::select(&b" :=\t,\n_x-."[..]), multi)
            .prop_map(|(b, c)| Mutation::MultiByteAfter(b, c)),
        3 => (any::<Index>(), label.clone()).prop_map(|(i, s)| Mutation::LabelHostile(i, s)),
        2 => label.prop_map(Mutation::AppendToLines),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => any::<Index>().prop_map(Mutation::DropLine),
        1 => (2usize..64).prop_map(Mutation::Repeat),
    ]
}

/// An offset in `0..=len`.
fn offset(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// Byte ranges of the runs of ASCII digits.
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in b.iter().enumerate() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, b.len()));
    }
    runs
}

fn replace_runs(b: &[u8], runs: &[(usize, usize)], with: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut at = 0;
    for &(s, e) in runs {
        out.extend_from_slice(&b[at..s]);
        out.extend(with(&b[s..e]));
        at = e;
    }
    out.extend_from_slice(&b[at..]);
    out
}

/// Line ranges (without the `\n`).
fn line_ranges(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' {
            out.push((s, i));
            s = i + 1;
        }
    }
    if s < b.len() {
        out.push((s, b.len()));
    }
    out
}

/// Applies a mutation; `cap` bounds how far long lines and repetition grow a file.
fn apply(m: &Mutation, b: &[u8], cap: usize) -> Vec<u8> {
    let insert = |at: usize, what: &[u8]| {
        let mut v = b.to_vec();
        v.splice(at..at, what.iter().copied());
        v
    };
    match m {
        Mutation::Truncate(i) => b[..offset(i, b.len())].to_vec(),
        Mutation::Empty => Vec::new(),
        Mutation::Overwrite(i, bytes) => {
            let at = offset(i, b.len());
            let mut v = b.to_vec();
            for (k, x) in bytes.iter().enumerate() {
                match v.get_mut(at + k) {
                    Some(slot) => *slot = *x,
                    None => v.push(*x),
                }
            }
            v
        }
        Mutation::Insert(i, bytes) => insert(offset(i, b.len()), bytes),
        Mutation::Number(i, n) => {
            let runs = digit_runs(b);
            if runs.is_empty() {
                return insert(offset(i, b.len()), n.as_bytes());
            }
            let pick = runs[i.index(runs.len())];
            replace_runs(b, &[pick], |_| n.as_bytes().to_vec())
        }
        Mutation::AllNumbers(n) => replace_runs(b, &digit_runs(b), |_| n.as_bytes().to_vec()),
        Mutation::Negate => replace_runs(b, &digit_runs(b), |d| {
            let mut v = b"-".to_vec();
            v.extend_from_slice(d);
            v
        }),
        Mutation::Nuls(i, n) => insert(offset(i, b.len()), &vec![0u8; *n]),
        Mutation::LongLine(i, n, c) => {
            let mut line = vec![*c; (*n).min(cap)];
            line.push(b'\n');
            insert(offset(i, b.len()), &line)
        }
        Mutation::MultiByte(i, c) => insert(offset(i, b.len()), c.as_bytes()),
        Mutation::ReplaceByMultiByte(i, c) => {
            if b.is_empty() {
                return c.as_bytes().to_vec();
            }
            let at = i.index(b.len());
            let mut v = b.to_vec();
            v.splice(at..at + 1, c.bytes());
            v
        }
        Mutation::MultiByteAt(i, c) => insert((*i).min(b.len()), c.as_bytes()),
        Mutation::MultiByteAfter(sep, c) => {
            let mut v = Vec::with_capacity(b.len() * 2);
            for x in b {
                v.push(*x);
                if x == sep {
                    v.extend_from_slice(c.as_bytes());
                }
            }
            v
        }
        Mutation::LabelHostile(i, s) => insert(offset(i, b.len()), s.as_bytes()),
        Mutation::AppendToLines(s) => {
            let mut v = Vec::with_capacity(b.len() * 2);
            for (st, e) in line_ranges(b) {
                v.extend_from_slice(&b[st..e]);
                v.extend_from_slice(s.as_bytes());
                v.push(b'\n');
            }
            v
        }
        Mutation::DuplicateLine(i) => {
            let lines = line_ranges(b);
            if lines.is_empty() {
                return b.to_vec();
            }
            let (s, e) = lines[i.index(lines.len())];
            let mut line = b[s..e].to_vec();
            line.push(b'\n');
            insert(s, &line)
        }
        Mutation::DropLine(i) => {
            let lines = line_ranges(b);
            if lines.is_empty() {
                return b.to_vec();
            }
            let (s, e) = lines[i.index(lines.len())];
            let mut v = b[..s].to_vec();
            v.extend_from_slice(b.get(e + 1..).unwrap_or(&[]));
            v
        }
        Mutation::Repeat(n) => b.repeat((*n).min(cap / b.len().max(1)).max(1)),
    }
}

/// A tree, and which of its files get which mutation.
#[derive(Debug, Clone)]
enum Case {
    /// 1 to 25 files, each with its own mutation (as the crash report of issue 11).
    Files {
        tree: Index,
        mutations: Vec<(Index, Mutation)>,
    },
    /// One mutation applied to every file of the tree, its offsets in proportion to each
    /// file's length: every parser sees it in the same case.
    Everywhere { tree: Index, mutation: Mutation },
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        (
            any::<Index>(),
            prop::collection::vec((any::<Index>(), mutation()), 1..=25),
        )
            .prop_map(|(tree, mutations)| Case::Files { tree, mutations }),
        (any::<Index>(), mutation())
            .prop_map(|(tree, mutation)| Case::Everywhere { tree, mutation }),
    ]
}

/// A copy of a fixture tree that cases mutate in place and restore afterwards (one per tree
/// and test thread: copying and deleting a whole tree per case cost more than the scrape).
/// Like the agent, which re-reads the same paths on every scrape, the collectors see the
/// same paths change between cases.
struct Copy {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

thread_local! {
    static COPIES: std::cell::RefCell<HashMap<usize, Copy>> =
        std::cell::RefCell::new(HashMap::new());
}

/// Where the copies live: memory (`/dev/shm`) when there is one, since a case rewrites files
/// and the disk's write-back made most of a case's time; else the target directory.
fn scratch() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if tempfile::tempdir_in(&shm).is_ok() {
        shm
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    }
}

/// The originals of the files a case mutated; written back when dropped (after a panic too).
struct Restore {
    saved: Vec<(PathBuf, Vec<u8>)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (p, b) in self.saved.drain(..).rev() {
            let _ = fs::write(&p, b);
        }
    }
}

/// Mutates the case's tree (in this thread's copy of it); returns the copy's directory, the
/// guard that restores it, the tree's name and what was done (for the failure message).
fn prepare(case: &Case) -> (PathBuf, Restore, String, Vec<String>) {
    let all = trees();
    let (Case::Files { tree, .. } | Case::Everywhere { tree, .. }) = case;
    let which = tree.index(all.len());
    let tree = &all[which];
    let dir = COPIES.with(|c| {
        c.borrow_mut()
            .entry(which)
            .or_insert_with(|| {
                let tmp = tempfile::tempdir_in(scratch()).expect("tempdir");
                let dir = tmp.path().join("tree");
                copy_tree(&tree.dir, &dir);
                Copy { _tmp: tmp, dir }
            })
            .dir
            .clone()
    });
    // 1 MiB crosses every buffer size a reader uses; a mutation of every file stays smaller
    // (16 KiB: past a page and the 128-byte sysfs reads) so a case writes little.
    let cap = match case {
        Case::Files { .. } => 1 << 20,
        Case::Everywhere { .. } => 16 << 10,
    };
    let mut restore = Restore { saved: Vec::new() };
    let mut mutate = |rel: &Path, m: &Mutation| {
        let p = dir.join(rel);
        let before = fs::read(&p).expect("read copy");
        fs::write(&p, apply(m, &before, cap)).expect("write mutation");
        restore.saved.push((p, before));
    };
    let mut done = Vec::new();
    match case {
        _ if tree.files.is_empty() => {}
        Case::Files { mutations, .. } => {
            for (i, m) in mutations {
                let rel = &tree.files[i.index(tree.files.len())];
                mutate(rel, m);
                done.push(format!("{}: {m:?}", rel.display()));
            }
        }
        Case::Everywhere { mutation, .. } => {
            for rel in &tree.files {
                mutate(rel, mutation);
            }
            done.push(format!("every file: {mutation:?}"));
        }
    }
    (dir, restore, tree.dir.display().to_string(), done)
}

// ---------------------------------------------------------------------------------------
// A strict reading of the text format
// ---------------------------------------------------------------------------------------

/// Checks an exposition strictly and independently of the agent's parser: every line is a
/// HELP, TYPE or sample line with valid names, label names, escaped label values and a float
/// value; a family's HELP and TYPE appear at most once and before its samples; a family's
/// samples are together; no series (name and label set) twice. OpenMetrics: ends with exactly
/// one `# EOF`. Returns the number of samples.
fn strict(text: &str, format: Format) -> Result<usize, String> {
    let body = match format {
        Format::Text => text,
        Format::OpenMetrics => text
            .strip_suffix("# EOF\n")
            .ok_or("OpenMetrics exposition does not end with # EOF")?,
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("exposition does not end with a newline".into());
    }
    let mut help: HashSet<String> = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut with_samples: HashSet<String> = HashSet::new();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut samples = 0;
    for (n, line) in body.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let (kw, rest) = rest
                .split_once(' ')
                .ok_or_else(|| err("bare comment".into()))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !metric_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            let family = family_of(name, format, &types);
            if with_samples.contains(&family) {
                return Err(err(format!("{kw} after samples of {family}")));
            }
            match kw {
                "HELP" => {
                    check_help(arg).map_err(&err)?;
                    if !help.insert(name.to_string()) {
                        return Err(err(format!("second HELP for {name}")));
                    }
                }
                "TYPE" => {
                    let ok: &[&str] = match format {
                        Format::Text => &["counter", "gauge", "untyped", "histogram", "summary"],
                        Format::OpenMetrics => &[
                            "counter",
                            "gauge",
                            "unknown",
                            "histogram",
                            "summary",
                            "info",
                            "stateset",
                            "gaugehistogram",
                        ],
                    };
                    if !ok.contains(&arg) {
                        return Err(err(format!("unknown type {arg:?}")));
                    }
                    if types.insert(name.to_string(), arg.to_string()).is_some() {
                        return Err(err(format!("second TYPE for {name}")));
                    }
                }
                "UNIT" if format == Format::OpenMetrics => {}
                _ => return Err(err(format!("unknown comment keyword {kw:?}"))),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("comment without a space".into()));
        }
        let (name, labels, value) = split_sample(line).map_err(&err)?;
        if !metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let parsed_labels = check_labels(labels).map_err(&err)?;
        check_value(value).map_err(&err)?;
        let family = family_of(name, format, &types);
        if current.as_deref() != Some(family.as_str()) {
            if closed.contains(&family) {
                return Err(err(format!("samples of {family} are not together")));
            }
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            current = Some(family.clone());
        }
        with_samples.insert(family);
        let key = format!("{name}{parsed_labels:?}");
        if !series.insert(key) {
            return Err(err(format!("series {name} twice")));
        }
        samples += 1;
    }
    Ok(samples)
}

/// The family a sample or comment name belongs to (OpenMetrics counters: without `_total`).
fn family_of(name: &str, format: Format, types: &HashMap<String, String>) -> String {
    if format == Format::OpenMetrics {
        if let Some(base) = name.strip_suffix("_total") {
            if types.get(base).is_some_and(|t| t == "counter") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

fn metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn check_help(s: &str) -> Result<(), String> {
    let mut c = s.chars();
    while let Some(x) = c.next() {
        match x {
            '\\' => match c.next() {
                Some('\\' | 'n' | '"') => {}
                other => return Err(format!("bad escape in HELP: \\{other:?}")),
            },
            '\n' => return Err("newline in HELP".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Splits `name{labels} value` (labels may be empty), respecting quotes in label values.
fn split_sample(line: &str) -> Result<(&str, &str, &str), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    let rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '}' if !in_quotes => {
                    let labels = &inner[..i];
                    let value = inner[i + 1..]
                        .strip_prefix(' ')
                        .ok_or("no space before the value")?;
                    return Ok((name, labels, value));
                }
                _ => {}
            }
        }
        Err("unterminated label set".into())
    } else {
        Ok((name, "", &rest[1..]))
    }
}

/// Checks `a="x",b="y"` and returns the pairs (unescaped), label names unique.
fn check_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
            }
        };
        out.push((name.to_string(), value));
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            if rest.is_empty() {
                // A trailing comma is valid in the text format.
                break;
            }
        } else if !rest.is_empty() {
            return Err(format!("junk after a label value: {rest:?}"));
        }
    }
    out.sort();
    Ok(out)
}

fn check_value(s: &str) -> Result<(), String> {
    let v = s.split(' ').next().unwrap_or("");
    let ok = match v {
        "NaN" | "+Inf" | "-Inf" => true,
        _ => {
            v.bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                && v.parse::<f64>().is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad value {v:?}"))
    }
}

/// The exposition of `families` in both formats, each checked strictly and parsed back by the
/// agent's parser (text format) with one sample per series.
fn check_expositions(families: &[MetricFamily]) -> Result<String, String> {
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    let text = exposition::encode(families, Format::Text);
    let n = strict(&text, Format::Text).map_err(|e| format!("text format: {e}"))?;
    if n != samples {
        return Err(format!(
            "text format: {n} sample lines for {samples} samples"
        ));
    }
    let parsed = parse::parse(&text).map_err(|e| format!("our parser refuses it: {e}"))?;
    let back: usize = parsed.iter().map(|f| f.metrics.len()).sum();
    if back != samples {
        return Err(format!("our parser reads {back} samples of {samples}"));
    }
    let om = exposition::encode(families, Format::OpenMetrics);
    strict(&om, Format::OpenMetrics).map_err(|e| format!("OpenMetrics: {e}"))?;
    Ok(text)
}

/// Runs one case: no panic (a panic fails the case), and valid expositions.
fn run_case(case: &Case) -> Result<String, TestCaseError> {
    let (dir, _restore, tree, done) = prepare(case);
    scrape(&paths_of(&dir))
        .and_then(|(_, families)| check_expositions(&families))
        .map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\ntree: {tree}\nmutations:\n  {}",
                done.join("\n  ")
            ))
        })
}

// ---------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn mutated_fixture_trees_never_panic_and_encode_valid_expositions(case in case()) {
        run_case(&case)?;
    }
}

proptest! {
    #![proptest_config(config(16))]
    #[test]
    fn sample_of_mutated_expositions_passes_promtool(case in case()) {
        let text = run_case(&case)?;
        promtool_accepts(&text).map_err(TestCaseError::fail)?;
    }
}

/// `promtool check metrics`: exit 0 (clean) or 3 (lint findings only, e.g. a textfile metric
/// without a unit suffix) passes, anything else (1: a parse error) fails.
fn promtool_accepts(text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(common::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = text.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool output");
    let _ = writer.join();
    match out.status.code() {
        Some(0 | 3) => Ok(()),
        code => Err(format!(
            "promtool check metrics: exit {code:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The tree set reaches every collector's parser: on at least one unmutated tree, each
/// collector of the registry succeeds and produces samples (except `time`, `timex` and
/// `uname`, which ask the kernel, not files, for what they export; they must still succeed).
#[test]
fn every_collector_succeeds_on_an_unmutated_tree() {
    let mut produced: BTreeSet<&str> = BTreeSet::new();
    let mut succeeded: BTreeSet<&str> = BTreeSet::new();
    for t in trees() {
        let (outcomes, _) = scrape(&paths_of(&t.dir))
            .and_then(|(o, f)| check_expositions(&f).map(|_| (o, f)))
            .unwrap_or_else(|e| panic!("unmutated tree {}: {e}", t.dir.display()));
        for o in outcomes {
            if o.error.is_none() {
                succeeded.insert(o.name);
                if o.families.iter().any(|f| !f.samples.is_empty()) {
                    produced.insert(o.name);
                }
            }
        }
    }
    // The systemd and logind collectors read D-Bus, not files: no fixture tree can feed them
    // (their input is checked against a mock systemd and logind in tests/systemd_dbus.rs). They
    // still run on every mutated tree above, where they must fail cleanly, not panic. The
    // ethtool collector lists /sys/class/net but reads the kernel's SIOCETHTOOL answers (of
    // this host's devices of the same names): its parsing of hostile driver answers is
    // `ethtool_answers_never_panic` below, its real input tests/ethtool_collector.rs.
    // The supervisord collector reads an XML-RPC answer from a socket: its parser is
    // `supervisord_answers_never_panic` below, its real input tests/supervisord_collector.rs.
    // The ntp collector asks an NTP server over UDP (here 127.0.0.1:123, where nothing need
    // answer: it fails cleanly); hostile replies are `ntp_replies_never_panic` below, a real
    // server tests/ntp_collector.rs.
    const NOT_FROM_FILES: &[&str] = &["ethtool", "logind", "ntp", "supervisord", "systemd"];
    let missing: Vec<&str> = KNOWN
        .iter()
        .map(|k| k.name)
        .filter(|n| !NOT_FROM_FILES.contains(n))
        .filter(|n| !produced.contains(n) && !succeeded.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "no fixture tree makes these collectors succeed: {missing:?}"
    );
    let silent: Vec<&str> = KNOWN
        .iter()
        .map(|k| k.name)
        .filter(|n| !NOT_FROM_FILES.contains(n))
        .filter(|n| !produced.contains(n))
        .collect();
    assert!(
        silent.is_empty(),
        "these collectors succeed but export no sample on any fixture tree: {silent:?}"
    );
    assert!(
        trees().len() >= 20,
        "fixture trees found: {}",
        trees().len()
    );
}

// The textfile parser on its own: arbitrary text, and mutated exposition files.

fn textfile_inputs() -> Vec<Vec<u8>> {
    let mut v = vec![fs::read(fixtures().join("e2e/expected.prom")).expect("expected.prom")];
    for t in trees() {
        for f in &t.files {
            if f.extension().is_some_and(|e| e == "prom") {
                v.push(fs::read(t.dir.join(f)).expect("fixture"));
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn textfile_parser_never_panics_on_mutated_files(
        which in any::<Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        static INPUTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        let inputs = INPUTS.get_or_init(textfile_inputs);
        let mut b = inputs[which.index(inputs.len())].clone();
        for m in &muts {
            b = apply(m, &b, 1 << 20);
        }
        let _ = parse::parse(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn textfile_parser_never_panics_on_arbitrary_text(s in ".{0,400}") {
        let _ = parse::parse(&s);
        let _ = parse::parse(&format!("{s}\n"));
        let _ = parse::parse(&format!("# TYPE x histogram\nx{{{s}}} 1\n"));
    }

    #[test]
    fn textfile_parser_never_panics_on_sample_shaped_lines(
        name in "[a-z_:]{0,8}(_sum|_count|_bucket)?",
        labels in r#"(\{([a-z_]{0,4}="[^"\n]{0,6}(\\.)?"?,?){0,4}\}?)?"#,
        value in r"[-+]?([0-9]{0,25}(\.[0-9]{0,4})?(e[-+]?[0-9]{0,4})?|NaN|Inf)",
        ts in "( -?[0-9]{0,25})?",
        kind in "(counter|gauge|untyped|histogram|summary|x)",
    ) {
        let line = format!("{name}{labels} {value}{ts}\n");
        let _ = parse::parse(&line);
        let _ = parse::parse(&format!("# TYPE {name} {kind}\n{line}{line}"));
    }
}

// HTTP headers: Accept and Accept-Encoding.

proptest! {
    #![proptest_config(config(512))]
    #[test]
    fn accept_headers_never_panic(
        s in r#"([a-zA-Z*/+-]{0,30}(;\s*[a-z]{0,8}=[^,;]{0,12}){0,3},?\s*){0,5}"#,
        any_text in ".{0,200}",
    ) {
        let _ = Format::negotiate(Some(&s));
        let _ = Format::negotiate(Some(&any_text));
        let _ = exposition::accepts_gzip(Some(&s));
        let _ = exposition::accepts_gzip(Some(&any_text));
    }
}

// The TOML configuration file.

/// A configuration file that sets every key (the shipped example, uncommented).
const FULL_CONFIG: &str = r#"daemon = false
user = "monitoring-agent"
pid_file = "/run/monitoring-agent/monitoring-agent.pid"
log_file = ""
log_level = "info"
log_format = "json"
sandbox = "enforce"

[web]
listen_addresses = [":9100", "127.0.0.1:9101", "[::1]:9102"]
telemetry_path = "/metrics"
max_requests = 40
max_connections = 64
header_read_timeout_seconds = 10
idle_timeout_seconds = 60
shutdown_timeout_seconds = 10
max_header_bytes = 16384
disable_exporter_metrics = false

[paths]
procfs = "/proc"
sysfs = "/sys"
rootfs = "/"
udev_data = "/run/udev/data"

[collectors]
enable = ["processes", "interrupts", "ntp"]
disable = ["zfs"]
disable_defaults = false
deadline_seconds = 5.0

[collector.filesystem]
mount_points_exclude = "^/(dev|proc|sys)($|/)"
fs_types_exclude = "^(autofs|proc|sysfs)$"
mount_timeout = "500ms"
stat_workers = 4
[collector.cpu]
guest = false
[collector.infiniband]
device_include = "^mlx"
device_exclude = "_1$"
[collector.interrupts]
include_zeros = false
name_include = "eth"
name_exclude = "^LOC;"
[collector.ipvs]
backend_labels = "local_address,proto"
[collector.rapl]
enable_zone_label = true
[collector.tapestats]
ignored_devices = "^nst"
[collector.netstat]
fields = "^Tcp_.*"
[collector.vmstat]
fields = "^pg"
[collector.diskstats]
device_exclude = "^(ram|loop|fd)\\d+$"
[collector.arp]
netlink = false
[collector.netdev]
device_include = "^eth"
netlink = false
address_info = false
enable_detailed_metrics = false
label_ifalias = false
[collector.netclass]
ignored_devices = "^$"
netlink = false
rtnl_with_stats = false
[collector.powersupplyclass]
ignored_supplies = "^$"
[collector.slabinfo]
slabs_include = "^(kmalloc|dentry)"
slabs_exclude = "-rcl-"
[collector.sysctl]
include = ["vm.swappiness", "net.ipv4.tcp_rmem:min,default,max"]
include_info = ["kernel.ostype"]
[collector.textfile]
directory = "/var/lib/monitoring-agent/textfile"
[collector.ntp]
server = "127.0.0.1"
server_port = 123
protocol_version = 4
server_is_local = false
ip_ttl = 1
max_distance = "3.46608s"
local_offset_tolerance = "1ms"
"#;

fn load_config(text: &[u8]) {
    let mut f = tempfile::NamedTempFile::new_in(scratch()).expect("tmp");
    std::io::Write::write_all(&mut f, text).expect("write config");
    let p = f.path().to_str().expect("utf-8 path").to_string();
    let cli = monitoring_agent::cli::Cli::parse_args(["monitoring-agent", "-c", &p])
        .expect("command line");
    // Either settings or an error naming the file: never a panic.
    let _ = monitoring_agent::config::Settings::load(&cli);
}

#[test]
fn the_full_config_loads() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    std::io::Write::write_all(&mut f, FULL_CONFIG.as_bytes()).expect("write config");
    let p = f.path().to_str().expect("utf-8 path").to_string();
    let cli = monitoring_agent::cli::Cli::parse_args(["monitoring-agent", "-c", &p])
        .expect("command line");
    monitoring_agent::config::Settings::load(&cli).expect("the base of the mutations is valid");
}

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn config_file_never_panics(muts in prop::collection::vec(mutation(), 1..6)) {
        let mut b = FULL_CONFIG.as_bytes().to_vec();
        for m in &muts {
            b = apply(m, &b, 1 << 20);
        }
        load_config(&b);
    }

    #[test]
    fn config_values_never_panic(
        key in prop::sample::select(&[
            "web.max_requests", "web.max_connections", "web.header_read_timeout_seconds",
            "web.idle_timeout_seconds", "web.shutdown_timeout_seconds", "web.max_header_bytes",
            "collectors.deadline_seconds", "web.listen_addresses", "web.telemetry_path",
            "log_level", "sandbox", "paths.procfs", "collector.diskstats.device_exclude",
            "collector.ntp.server", "collector.ntp.server_port", "collector.ntp.ip_ttl",
            "collector.ntp.max_distance",
        ][..]),
        value in prop::sample::select(&[
            "-1", "0", "1e309", "-1e309", "nan", "inf", "-inf", "18446744073709551616",
            "9223372036854775807", "1.8e19", "4294967296", "1e-320", "\"\"", "\"\\u0000\"",
            "[\"\"]", "[\":0\", \"[::1\"]", "[\"é:9\"]", "\"/é\"", "\"(\"", "\"\\\\\"",
            "\"x\\ny\"", "[]", "{}", "true",
        ][..]),
    ) {
        let (table, k) = key.rsplit_once('.').unwrap_or(("", key));
        let text = if table.is_empty() {
            format!("{k} = {value}\n")
        } else {
            format!("[{table}]\n{k} = {value}\n")
        };
        load_config(text.as_bytes());
    }
}

// udev's database (`E:` lines; `node_disk_info` and friends).

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn udev_data_never_panics(
        which in any::<Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
        arbitrary in ".{0,300}",
    ) {
        static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        let files = FILES.get_or_init(|| {
            let dir = fixtures().join("storage/node_exporter/udev/data");
            let mut v: Vec<Vec<u8>> = fs::read_dir(&dir)
                .expect("udev fixture")
                .flatten()
                .map(|e| fs::read(e.path()).expect("udev file"))
                .collect();
            v.sort();
            v
        });
        let mut b = files[which.index(files.len())].clone();
        for m in &muts {
            b = apply(m, &b, 1 << 20);
        }
        let _ = collectors::diskstats::parse_udev(&String::from_utf8_lossy(&b));
        let _ = collectors::diskstats::parse_udev(&arbitrary);
    }
}

// pcidevice's pci.ids parser (read once per collector, so the tree mutations above reach it
// only on the first scrape) and its name lookups, on mutated and arbitrary input.

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn pci_ids_never_panics(
        muts in prop::collection::vec(mutation(), 1..6),
        arbitrary in "([C\t]{0,3}[0-9a-f ]{0,8}( {2}[^\n]{0,10})?\n){0,12}",
        class in ".{0,8}",
    ) {
        static FILE: OnceLock<Vec<u8>> = OnceLock::new();
        let file = FILE.get_or_init(|| fs::read(fixtures().join("ne112/pci.ids")).expect("pci.ids"));
        let mut b = file.clone();
        for m in &muts {
            b = apply(m, &b, 1 << 20);
        }
        for text in [String::from_utf8_lossy(&b).into_owned(), arbitrary] {
            let ids = collectors::pcidevice::parse_pci_ids(&text);
            let _ = ids.class_name(&class);
            let _ = ids.vendor_name(&class);
            let _ = ids.device_name(&class, &class);
            let _ = ids.subsystem_name(&class, &class, &class, &class);
        }
    }
}

// ---------------------------------------------------------------------------------------
// supervisord's XML-RPC answers (and the HTTP answer around them)
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn supervisord_answers_never_panic(
        muts in prop::collection::vec(mutation(), 1..6),
        arbitrary in "(<[a-zA-Z0-9/]{0,12}>|[^<]{0,6}|&[a-z#0-9]{0,5};){0,40}",
        head in "HTTP/1\\.[01] [0-9]{3} [A-Za-z ]{0,8}\r\n([A-Za-z-]{1,16}: [ -~]{0,12}\r\n){0,4}\r\n",
    ) {
        use collectors::supervisord;
        static FILE: OnceLock<Vec<u8>> = OnceLock::new();
        let file = FILE.get_or_init(|| {
            fs::read(fixtures().join("supervisord/getAllProcessInfo.xml")).expect("fixture")
        });
        let mut b = file.clone();
        for m in &muts {
            b = apply(m, &b, 1 << 20);
        }
        for xml in [b.clone(), arbitrary.clone().into_bytes()] {
            if let Ok(v) = supervisord::parse_response(&xml) {
                if let Ok(p) = supervisord::processes(&v) {
                    // Two processes may share a name and group (or carry them over, as
                    // 1.12): the scrape's merge drops the repeated series, as node_exporter's
                    // registry does.
                    let mut fams = supervisord::families(&p);
                    exposition::merge_families(&mut fams, |_| {});
                    check_expositions(&fams).map_err(TestCaseError::fail)?;
                }
            }
            let mut answer = head.clone().into_bytes();
            answer.extend_from_slice(&xml);
            let _ = supervisord::http_body(&answer);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Netlink answers (network_route, tcpstat, the netlink modes of netdev, arp and netclass,
// netdev's address info)
// ---------------------------------------------------------------------------------------

/// This host's rtnetlink answers (links, addresses, IPv4 neighbours, routes), serialised back to the
/// bytes the kernel sent: the seeds the mutations start from.
fn rtnetlink_answers() -> &'static [Vec<u8>] {
    use monitoring_agent::collectors::netlink::route;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage as M};
    static ANSWERS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let mut msgs: Vec<M> = Vec::new();
        msgs.extend(
            route::links()
                .expect("RTM_GETLINK")
                .into_iter()
                .map(M::NewLink),
        );
        msgs.extend(
            route::addresses()
                .expect("RTM_GETADDR")
                .into_iter()
                .map(M::NewAddress),
        );
        msgs.extend(
            route::neighbours(AddressFamily::Inet)
                .expect("RTM_GETNEIGH")
                .into_iter()
                .map(M::NewNeighbour),
        );
        msgs.extend(
            route::routes()
                .expect("RTM_GETROUTE")
                .into_iter()
                .map(M::NewRoute),
        );
        assert!(!msgs.is_empty(), "no rtnetlink answer on this host");
        msgs.into_iter()
            .map(|m| {
                let mut p =
                    NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(m));
                p.finalize();
                let mut b = vec![0; p.buffer_len()];
                p.serialize(&mut b);
                b
            })
            .collect()
    })
}

/// A link named `eth0` with the given index (for address answers).
fn netdev_link(index: u32) -> netlink_packet_route::link::LinkMessage {
    let mut m = netlink_packet_route::link::LinkMessage::default();
    m.header.index = index;
    m.attributes = vec![netlink_packet_route::link::LinkAttribute::IfName(
        "eth0".into(),
    )];
    m
}

proptest! {
    #![proptest_config(config(512))]
    /// A mutated rtnetlink answer is parsed by netlink-packet-route as the collectors parse the
    /// kernel's, then goes through every collector function that reads such a message; neither
    /// may panic, and the families must encode validly.
    #[test]
    fn mutated_rtnetlink_answers_never_panic(
        which in any::<Index>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        use monitoring_agent::collectors::{arp, netclass_rtnl, netdev, network_route};
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::RouteNetlinkMessage as M;
        let answers = rtnetlink_answers();
        let mut bytes = answers[which.index(answers.len())].clone();
        for m in &muts {
            bytes = apply(m, &bytes, 1 << 16);
        }
        let Ok(msg) = NetlinkMessage::<M>::deserialize(&bytes) else {
            return Ok(());
        };
        let NetlinkPayload::InnerMessage(inner) = msg.payload else {
            return Ok(());
        };
        // Each collector's families apart: netdev's and netclass's with-stats families share
        // names, as in node_exporter (the two are not meant to run together).
        let mut outputs: Vec<Vec<MetricFamily>> = Vec::new();
        match inner {
            M::NewLink(l) => {
                let links = [l];
                for detailed in [false, true] {
                    let devs = netdev::netlink_stats(&links, detailed);
                    let aliases = [("lo".to_string(), "a\"\n\\".to_string())].into();
                    outputs.push(netdev::families(&devs, Some(&aliases)));
                }
                let any = regex::Regex::new("^$").expect("regex");
                outputs.push(netclass_rtnl::families(&links, &any, true, &|_, _| Some(1.0)));
            }
            M::NewAddress(a) => {
                let names = [netdev_link(a.header.index)];
                let filter = monitoring_agent::collectors::DeviceFilter::default();
                outputs.push(vec![netdev::address_info(&names, &[a], &filter)]);
            }
            M::NewNeighbour(n) => {
                let names = [(n.header.ifindex, "eth0".to_string())].into();
                let counts = arp::count_neighbours(&[n], &names);
                let entries = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                outputs.push(arp::families(&entries));
            }
            M::NewRoute(r) => {
                outputs.push(network_route::families(network_route::routes(
                    &[r],
                    &Default::default(),
                )));
            }
            _ => {}
        }
        for families in &outputs {
            check_expositions(families).map_err(TestCaseError::fail)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// ethtool answers: what drivers return over SIOCETHTOOL, arbitrary
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Any statistic names (any characters, clashing after sanitizing, repeated), values,
    /// driver info strings and link masks: no panic, valid expositions.
    #[test]
    fn ethtool_answers_never_panic(
        stats in proptest::collection::vec(("\\PC{0,32}", any::<u64>()), 0..40),
        strings in proptest::collection::vec("\\PC{0,32}", 5),
        masks in (any::<u32>(), any::<u32>(), any::<u8>()),
        failing in any::<bool>(),
        pattern in prop_oneof![Just(".*"), Just("^rx_"), Just("x")],
    ) {
        use monitoring_agent::collectors::ethtool::{families, Device, DrvInfo, LinkInfo};
        use nix::errno::Errno;
        let d = Device {
            name: "eth0".into(),
            link: if failing { Err(Errno::EOPNOTSUPP) } else {
                Ok(LinkInfo { supported: masks.0, advertising: masks.1, autoneg: masks.2 })
            },
            drv: Ok(DrvInfo {
                driver: strings[0].clone(),
                version: strings[1].clone(),
                fw_version: strings[2].clone(),
                bus_info: strings[3].clone(),
                erom_version: strings[4].clone(),
            }),
            stats: if failing { Err(Errno::EPERM) } else { Ok(stats) },
        };
        let re = regex::Regex::new(pattern).expect("regex");
        let mut fams = families(&[d.clone(), Device { name: "eth1".into(), ..d }], &re);
        exposition::merge_families(&mut fams, |_| {});
        check_expositions(&fams).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------
// ntp replies: what a hostile or broken NTP server may send
// ---------------------------------------------------------------------------------------

/// A well-formed server reply (mode 4, stratum 2) to the query whose transmit time is `sent`.
fn ntp_reply(sent: u64) -> Vec<u8> {
    let mut r = vec![0u8; 48];
    r[0] = 0x24;
    r[1] = 2;
    r[4..8].copy_from_slice(&0x0000_8000u32.to_be_bytes());
    r[16..24].copy_from_slice(&0xe8f0_1200_0000_0000u64.to_be_bytes());
    r[24..32].copy_from_slice(&sent.to_be_bytes());
    r[32..40].copy_from_slice(&0xe8f0_1234_0000_0000u64.to_be_bytes());
    r[40..48].copy_from_slice(&0xe8f0_1234_0001_0000u64.to_be_bytes());
    r
}

proptest! {
    #![proptest_config(config(512))]

    /// Any reply bytes (arbitrary, or a valid reply with bytes overwritten, cut or extended),
    /// any local send and receive times, any flags: parsing, checking, the computation,
    /// sanity and the exposition never panic; every reply of 48 bytes or more parses.
    #[test]
    fn ntp_replies_never_panic(
        arbitrary in proptest::collection::vec(any::<u8>(), 0..120),
        patches in proptest::collection::vec((0usize..64, any::<u8>()), 0..16),
        cut in 0usize..80,
        sent in any::<u64>(),
        org in any::<u64>(),
        dst in any::<u64>(),
        tolerance_ns in any::<u64>(),
        distance_ns in any::<u64>(),
    ) {
        use monitoring_agent::collectors::ntp::{
            check_reply, families, sanity, Header, NtpOptions, Response, Settings,
        };
        let mut mutated = ntp_reply(sent);
        mutated.resize(64, 0);
        for (at, b) in &patches {
            mutated[*at] = *b;
        }
        mutated.truncate(cut);
        let mut settings = Settings::of(&NtpOptions::default());
        settings.offset_tolerance = std::time::Duration::from_nanos(tolerance_ns);
        settings.max_distance = std::time::Duration::from_nanos(distance_ns);
        let mut leap = None;
        for bytes in [&arbitrary, &mutated] {
            match Header::parse(bytes) {
                Ok(h) => {
                    prop_assert!(bytes.len() >= 48);
                    let _ = check_reply(&h, sent);
                    let r = Response::from_reply(&h, org, dst);
                    let sane = sanity(&r, &settings, &mut leap);
                    let _ = r.validate();
                    let fams = families(&r, sane);
                    prop_assert_eq!(fams.len(), 8);
                    check_expositions(&fams).map_err(TestCaseError::fail)?;
                }
                Err(_) => prop_assert!(bytes.len() < 48),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A loopback server answering the collector's real query with hostile bytes (arbitrary,
    /// or a reply echoing the query with bytes overwritten, cut or extended to 8 KiB and
    /// more): the query returns a reply or an error, never panics.
    #[test]
    fn ntp_query_against_hostile_replies_never_panics(
        arbitrary in proptest::collection::vec(any::<u8>(), 0..100),
        patches in proptest::collection::vec((0usize..48, any::<u8>()), 0..8),
        len in prop_oneof![Just(0usize), 1usize..48, Just(48usize), 49usize..200, Just(9000usize)],
        echo in any::<bool>(),
    ) {
        use monitoring_agent::collectors::ntp::{query, Header, Response};
        let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = server.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 128];
            let (n, from) = server.recv_from(&mut buf).expect("the query");
            assert_eq!(n, 48);
            let mut r = if echo {
                let sent = u64::from_be_bytes(buf[40..48].try_into().expect("8 bytes"));
                ntp_reply(sent)
            } else {
                arbitrary
            };
            for (at, b) in &patches {
                if let Some(x) = r.get_mut(*at) {
                    *x = *b;
                }
            }
            r.resize(len, 0xa5);
            server.send_to(&r, from).expect("reply");
        });
        let got = query(addr, 4, 1, std::time::Duration::from_secs(5));
        t.join().expect("server thread");
        if let Ok((h, org, dst)) = got {
            prop_assert!(len >= 48);
            let _ = Response::from_reply(&h, org, dst);
            let _: Header = h;
        }
    }
}
