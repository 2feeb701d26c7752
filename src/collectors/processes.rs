//! `processes` collector: process and thread counts by state from every `/proc/<pid>/stat`
//! and `/proc/<pid>/task/<tid>/stat`, as node_exporter 1.5's `processes_linux.go`
//! (prometheus/procfs `AllProcs` and `Proc.Stat`). Off by default.
//!
//! - `node_processes_pids`, `node_processes_state{state}`, `node_processes_threads` (the sum of
//!   every process' `num_threads`), `node_processes_threads_state{thread_state}` (each task's
//!   state; the main thread counts with its process' state, as node_exporter, without
//!   re-reading it);
//! - `node_processes_max_threads` (`/proc/sys/kernel/threads-max`) and
//!   `node_processes_max_processes` (`/proc/sys/kernel/pid_max`).
//!
//! A process or thread that vanishes between listing and reading (`ENOENT`, `ESRCH`) is
//! skipped; any other read error or a malformed `stat` fails the collector, as does a missing
//! limit file (keeping, as node_exporter, what it sends before reading that file). Only `stat`
//! files are read: they are readable for every process without ptrace access (the kernel
//! blanks the few ptrace-guarded fields, none used here), so this works under the sandbox's
//! Landlock domain, where `/proc/<pid>/io` or `environ` would not.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Processes)
}

/// The two fields used from a `stat` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    pub state: &'a str,
    pub num_threads: i64,
}

/// Parses `/proc/<pid>/stat`: fields are counted after the last `)` (the command name may hold
/// spaces and parentheses); state is field 3, `num_threads` field 20.
pub fn parse_stat(text: &str) -> Result<Stat<'_>, String> {
    let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
        return Err(format!("unexpected stat format {text:?}"));
    };
    if close < open {
        return Err(format!("unexpected stat format {text:?}"));
    }
    let mut fields = text
        .get(close + 1..)
        .unwrap_or_default()
        .split_ascii_whitespace();
    let state = fields
        .next()
        .ok_or_else(|| format!("no state in {text:?}"))?;
    let num_threads = fields
        .nth(16)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad num_threads in {text:?}"))?;
    Ok(Stat { state, num_threads })
}

/// The counts of one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub pids: u64,
    pub threads: i64,
    pub states: BTreeMap<String, u64>,
    pub thread_states: BTreeMap<String, u64>,
}

impl Counts {
    pub fn families(&self, max_threads: u64, max_pids: u64) -> Vec<MetricFamily> {
        let by = |name: &'static str,
                  help: &'static str,
                  label: &'static str,
                  m: &BTreeMap<String, u64>| {
            let mut fam = MetricFamily::gauge(name, help);
            for (state, n) in m {
                fam.push(&[(label, state)], *n as f64);
            }
            fam
        };
        vec![
            MetricFamily::gauge("node_processes_max_processes", "Number of max PIDs limit")
                .with(&[], max_pids as f64),
            MetricFamily::gauge(
                "node_processes_max_threads",
                "Limit of threads in the system",
            )
            .with(&[], max_threads as f64),
            MetricFamily::gauge("node_processes_pids", "Number of PIDs")
                .with(&[], self.pids as f64),
            by(
                "node_processes_state",
                "Number of processes in each state.",
                "state",
                &self.states,
            ),
            MetricFamily::gauge("node_processes_threads", "Allocated threads in system")
                .with(&[], self.threads as f64),
            by(
                "node_processes_threads_state",
                "Number of threads in each state.",
                "thread_state",
                &self.thread_states,
            ),
        ]
    }
}

/// Whether a read error means the process or thread is gone (skipped, not an error).
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads a file into `buf` (cleared first); `Ok(false)` when it vanished.
fn read_into(path: &Path, buf: &mut String) -> Result<bool, CollectError> {
    buf.clear();
    let r = super::fsio::open_regular(path)
        .and_then(|f| f.take(super::fsio::MAX_FILE_BYTES).read_to_string(buf));
    match r {
        Ok(_) => Ok(true),
        Err(e) if vanished(&e) => Ok(false),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// Numeric entries of a directory (procfs' `AllProcs`); `None` when it vanished.
fn numeric_entries(dir: &Path) -> Result<Option<Vec<u64>>, CollectError> {
    let rd = match crate::collector::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(CollectError::io(dir, e)),
    };
    let mut out = Vec::with_capacity(256);
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(CollectError::io(dir, e)),
        };
        if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(Some(out))
}

/// Walks `<procfs>/<pid>/stat` and `<procfs>/<pid>/task/<tid>/stat`.
pub fn count(procfs: &Path) -> Result<Counts, CollectError> {
    let mut c = Counts::default();
    let pids = numeric_entries(procfs)?.unwrap_or_default();
    let mut buf = String::with_capacity(512);
    let mut tbuf = String::with_capacity(512);
    let mut path = procfs.to_path_buf();
    for pid in pids {
        path.push(pid.to_string());
        path.push("stat");
        let found = read_into(&path, &mut buf)?;
        path.pop();
        if !found {
            path.pop();
            continue;
        }
        let st = parse_stat(&buf).map_err(|m| CollectError::parse(&path.join("stat"), m))?;
        c.pids += 1;
        *c.states.entry(st.state.to_string()).or_default() += 1;
        // Saturating: a `num_threads` near i64::MAX overflowed (a debug-build panic; issue 11).
        c.threads = c.threads.saturating_add(st.num_threads);
        path.push("task");
        for tid in numeric_entries(&path)?.unwrap_or_default() {
            if tid == pid {
                *c.thread_states.entry(st.state.to_string()).or_default() += 1;
                continue;
            }
            path.push(tid.to_string());
            path.push("stat");
            let found = read_into(&path, &mut tbuf)?;
            if found {
                let t = parse_stat(&tbuf).map_err(|m| CollectError::parse(&path, m))?;
                *c.thread_states.entry(t.state.to_string()).or_default() += 1;
            }
            path.pop();
            path.pop();
        }
        path.pop();
        path.pop();
    }
    Ok(c)
}

fn read_uint(path: &Path) -> Result<u64, CollectError> {
    let text = read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| CollectError::parse(path, format!("invalid unsigned integer {text:?}")))
}

struct Processes;

impl Collector for Processes {
    fn name(&self) -> &'static str {
        "processes"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let counts = count(&paths.procfs)?;
        // Partial output as node_exporter's: it sends the thread count, reads `threads-max`,
        // sends it and the states, then reads `pid_max` and sends the PID count and limit. An
        // error keeps what was sent before it.
        let sent_before = |max_threads: u64, kept: &[&str]| {
            counts
                .families(max_threads, 0)
                .into_iter()
                .filter(|f| kept.contains(&&*f.name) && !f.samples.is_empty())
                .collect::<Vec<_>>()
        };
        let max_threads = read_uint(&paths.proc("sys/kernel/threads-max"))
            .map_err(|e| CollectError::partial(sent_before(0, &["node_processes_threads"]), e))?;
        let max_pids = read_uint(&paths.proc("sys/kernel/pid_max")).map_err(|e| {
            let kept = [
                "node_processes_max_threads",
                "node_processes_state",
                "node_processes_threads",
                "node_processes_threads_state",
            ];
            CollectError::partial(sent_before(max_threads, &kept), e)
        })?;
        Ok(counts.families(max_threads, max_pids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, procfs_at, render};

    #[test]
    fn parses() {
        let st = parse_stat(include_str!(
            "../../tests/fixtures/procmisc/debian12-vm-6.18/proc/1/stat"
        ))
        .expect("parses");
        assert_eq!(
            st,
            Stat {
                state: "S",
                num_threads: 11
            }
        );
        let odd = "42 (a) b (c)) R 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 3 0 1 2 3 4 5\n";
        assert_eq!(
            parse_stat(odd),
            Ok(Stat {
                state: "R",
                num_threads: 3
            })
        );
        assert!(parse_stat("42 no parens").is_err());
        assert!(parse_stat("42 (x) S 1 2").is_err());
    }

    /// Issue 11: two processes claiming `i64::MAX` threads overflowed the sum (a panic in
    /// debug builds); it saturates.
    #[test]
    fn thread_sum_saturates() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fields = |n: &str| format!("1 (x) S{} {n}\n", " 0".repeat(16));
        for pid in ["1", "2"] {
            let d = tmp.path().join(pid);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("stat"), fields("9223372036854775807")).expect("write");
        }
        let c = count(tmp.path()).expect("counts");
        assert_eq!((c.pids, c.threads), (2, i64::MAX));
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = Processes.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-processes.txt");
        let none = procfs_at("/nonexistent");
        assert!(Processes.collect(&none).is_err());
    }

    /// Partial output as node_exporter's, at each of its two steps: without `threads-max`
    /// only the thread count (sent before) is kept; without `pid_max`, everything but the PID
    /// count and limit (sent after). The kept samples are those of the whole tree.
    #[test]
    fn partial_output_keeps_what_was_sent_before_each_limit() {
        let whole = Processes
            .collect(&procfs("procmisc", "debian12-vm-6.18/proc"))
            .expect("collects");
        for (missing, kept) in [
            ("threads-max", &["node_processes_threads"][..]),
            (
                "pid_max",
                &[
                    "node_processes_max_threads",
                    "node_processes_state",
                    "node_processes_threads",
                    "node_processes_threads_state",
                ][..],
            ),
        ] {
            let tree =
                crate::collectors::testutil::fixture_copy("procmisc", "debian12-vm-6.18/proc");
            std::fs::remove_file(tree.path().join("sys/kernel").join(missing)).expect("remove");
            let o = crate::collector::run(&Processes, &procfs_at(tree.path()));
            let err = o.error.expect("the collector fails").to_string();
            assert!(err.contains(missing), "{err}");
            assert_eq!(crate::collectors::testutil::names(&o.families), kept);
            for f in &o.families {
                assert!(whole.contains(f), "{f:?}");
            }
        }
    }

    #[test]
    fn live() {
        let fams = Processes.collect(&Paths::default()).expect("walks /proc");
        let pids = fams
            .iter()
            .find(|f| f.name == "node_processes_pids")
            .expect("pids");
        assert!(pids.samples[0].value >= 1.0);
    }
}
