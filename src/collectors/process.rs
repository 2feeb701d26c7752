//! The agent's own `process_*` metrics, as prometheus/client_golang's process collector exports
//! them for node_exporter (same names, HELP texts and types). Always read from the real
//! `/proc/self` (they describe the agent, not the monitored root), never `--path.procfs`.
//!
//! As in client_golang, a source that cannot be read just leaves its families out: `stat` gives
//! CPU time, memory sizes and start time; `fd/` the open descriptors; `limits` the maxima.

use std::path::Path;
use std::sync::OnceLock;

use nix::unistd::{sysconf, SysconfVar};

use super::stat::parse_stat;
use crate::exposition::MetricFamily;

/// The fields used from `/proc/<pid>/stat`, in kernel units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat {
    /// User and system CPU time, clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot, clock ticks.
    pub starttime: u64,
    /// Virtual memory size, bytes.
    pub vsize: u64,
    /// Resident set size, pages.
    pub rss: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str) -> Result<PidStat, String> {
    let (_, after) = text
        .rsplit_once(')')
        .ok_or_else(|| format!("no ')' after the command name in {text:?}"))?;
    // Fields after the command: [0] is field 3 (state), so field N is at [N - 3].
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        let s = fields
            .get(n - 3)
            .ok_or_else(|| format!("field {n} missing in {text:?}"))?;
        s.parse()
            .map_err(|_| format!("bad field {n} {s:?} in {text:?}"))
    };
    Ok(PidStat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// Soft limits from `/proc/<pid>/limits`; `unlimited` is `u64::MAX`, as procfs reports it
/// (node_exporter shows `process_virtual_memory_max_bytes 1.8446744073709552e+19`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub open_files: u64,
    pub address_space: u64,
}

pub fn parse_limits(text: &str) -> Result<Limits, String> {
    let soft = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| format!("no {name:?} line"))?;
        let value = line
            .split_ascii_whitespace()
            .next()
            .ok_or_else(|| format!("no value for {name:?}"))?;
        if value == "unlimited" {
            return Ok(u64::MAX);
        }
        value
            .parse()
            .map_err(|_| format!("bad value {value:?} for {name:?}"))
    };
    Ok(Limits {
        open_files: soft("Max open files ")?,
        address_space: soft("Max address space ")?,
    })
}

/// Clock ticks per second and page size, from `sysconf`.
fn clk_tck() -> Option<f64> {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => Some(v as f64),
        _ => None,
    }
}

fn page_size() -> Option<f64> {
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(v)) if v > 0 => Some(v as f64),
        _ => None,
    }
}

/// The families from the pieces read, sorted by name as client_golang's output is.
pub fn build(
    stat: Option<&PidStat>,
    start_time: Option<f64>,
    open_fds: Option<usize>,
    limits: Option<&Limits>,
    clk_tck: f64,
    page_size: f64,
) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(7);
    if let Some(s) = stat {
        out.push(
            MetricFamily::counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )
            .with(&[], (s.utime + s.stime) as f64 / clk_tck),
        );
    }
    if let Some(l) = limits {
        out.push(
            MetricFamily::gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )
            .with(&[], l.open_files as f64),
        );
    }
    if let Some(n) = open_fds {
        out.push(
            MetricFamily::gauge("process_open_fds", "Number of open file descriptors.")
                .with(&[], n as f64),
        );
    }
    if let Some(s) = stat {
        out.push(
            MetricFamily::gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )
            .with(&[], s.rss as f64 * page_size),
        );
    }
    if let Some(t) = start_time {
        out.push(
            MetricFamily::gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )
            .with(&[], t),
        );
    }
    if let Some(s) = stat {
        out.push(
            MetricFamily::gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )
            .with(&[], s.vsize as f64),
        );
    }
    if let Some(l) = limits {
        out.push(
            MetricFamily::gauge(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
            )
            .with(&[], l.address_space as f64),
        );
    }
    out
}

/// The process start time never changes: computed once (boot time from `/proc/stat` plus the
/// start offset), then reused, so a scrape reads no more than `stat`, `fd/` and `limits`.
static START_TIME: OnceLock<f64> = OnceLock::new();

fn start_time(stat: &PidStat, clk_tck: f64) -> Option<f64> {
    if let Some(t) = START_TIME.get() {
        return Some(*t);
    }
    let text = super::fsio::read_to_string("/proc/stat").ok()?;
    let btime = parse_stat(&text, false).ok()?.btime?;
    let t = btime as f64 + stat.starttime as f64 / clk_tck;
    Some(*START_TIME.get_or_init(|| t))
}

/// How [`count_fds`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdCount {
    /// `st_size` of the `fd` directory (Linux 6.2 and later: the number of open descriptors).
    Stat(usize),
    /// Listing the directory (older kernels report a size of 0).
    Listing(usize),
}

/// The number of open descriptors: from one `statx` of `dir` where the kernel reports it (a
/// listing costs the kernel ~150-200 µs per scrape with ~130 descriptors open), else by
/// listing it.
fn count_fds_how(dir: &Path) -> Option<FdCount> {
    if let Ok(m) = std::fs::metadata(dir) {
        if let Ok(n @ 1..) = usize::try_from(m.len()) {
            return Some(FdCount::Stat(n));
        }
    }
    Some(FdCount::Listing(
        crate::collector::read_dir(dir).ok()?.count(),
    ))
}

fn count_fds(dir: &Path) -> Option<usize> {
    match count_fds_how(dir)? {
        FdCount::Stat(n) | FdCount::Listing(n) => Some(n),
    }
}

/// `process_*` families for the running agent, read from `/proc/self`.
pub fn families() -> Vec<MetricFamily> {
    let (Some(clk_tck), Some(page_size)) = (clk_tck(), page_size()) else {
        return Vec::new();
    };
    let stat = super::fsio::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_pid_stat(&t).ok());
    let start = stat.as_ref().and_then(|s| start_time(s, clk_tck));
    let fds = count_fds(Path::new("/proc/self/fd"));
    let limits = super::fsio::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| parse_limits(&t).ok());
    build(
        stat.as_ref(),
        start,
        fds,
        limits.as_ref(),
        clk_tck,
        page_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = include_str!("../../tests/fixtures/hosts/debian12-vm-6.18/proc/self/stat");
    const LIMITS: &str =
        include_str!("../../tests/fixtures/hosts/debian12-vm-6.18/proc/self/limits");

    #[test]
    fn debian12_stat() {
        // 6038 (cat) R ... utime 0, stime 0, starttime 38999, vsize 3133440, rss 379
        let s = parse_pid_stat(STAT).expect("parses");
        assert_eq!(
            s,
            PidStat {
                utime: 0,
                stime: 0,
                starttime: 38_999,
                vsize: 3_133_440,
                rss: 379
            }
        );
    }

    #[test]
    fn odd_command_names() {
        let line = "42 (a b) (c)) S 1 42 42 0 -1 4194560 10 0 0 0 7 3 0 0 20 0 1 0 500 1000 20 18446744073709551615\n";
        let s = parse_pid_stat(line).expect("parses");
        assert_eq!(
            (s.utime, s.stime, s.starttime, s.vsize, s.rss),
            (7, 3, 500, 1000, 20)
        );
        assert!(parse_pid_stat("42 (x) S 1 2\n").is_err());
        assert!(parse_pid_stat("garbage").is_err());
    }

    #[test]
    fn debian12_limits() {
        let l = parse_limits(LIMITS).expect("parses");
        assert_eq!(
            l,
            Limits {
                open_files: 20_000,
                address_space: u64::MAX
            }
        );
        assert!(parse_limits("Limit Soft Hard\n").is_err());
        assert!(
            parse_limits("Max open files  lots  lots  files\nMax address space 1 1 bytes\n")
                .is_err()
        );
    }

    #[test]
    fn build_all() {
        let s = parse_pid_stat(STAT).expect("parses");
        let l = parse_limits(LIMITS).expect("parses");
        let fams = build(
            Some(&s),
            Some(1_795_478_058.99),
            Some(7),
            Some(&l),
            100.0,
            4096.0,
        );
        assert_eq!(
            crate::collectors::testutil::first_values(&fams),
            [
                ("process_cpu_seconds_total", 0.0),
                ("process_max_fds", 20_000.0),
                ("process_open_fds", 7.0),
                ("process_resident_memory_bytes", 379.0 * 4096.0),
                ("process_start_time_seconds", 1_795_478_058.99),
                ("process_virtual_memory_bytes", 3_133_440.0),
                ("process_virtual_memory_max_bytes", 1.8446744073709552e19),
            ]
        );
        assert_eq!(fams[0].kind, crate::exposition::MetricType::Counter);
        assert_eq!(
            fams[0].help,
            "Total user and system CPU time spent in seconds."
        );
        // Unreadable sources leave their families out.
        let partial = build(None, None, Some(3), None, 100.0, 4096.0);
        assert_eq!(partial.len(), 1);
        assert_eq!(partial[0].name, "process_open_fds");
    }

    /// The kernel's (major, minor) from its release (`uname -r`).
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let mut next = || parts.next().and_then(|p| p.parse().ok()).expect("version");
        (next(), next())
    }

    #[test]
    fn open_fds_from_stat_equal_the_listing() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let dir = std::path::PathBuf::from(format!("/proc/{}/fd", child.id()));
        let list = || std::fs::read_dir(&dir).expect("list fd").count();
        // The child may still be in exec when `spawn` returns: the kernel resumes the parent
        // before it closes the close-on-exec descriptors, so the table can shrink once. A
        // count taken between two equal listings is compared; a changed table is retried.
        let mut seen = None;
        for _ in 0..100 {
            let before = list();
            let how = count_fds_how(&dir);
            let counted = count_fds(&dir);
            if list() == before {
                seen = Some((before, how, counted));
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let (listed, how, counted) = seen.expect("the child's descriptor table never held still");
        assert!(listed >= 3, "{listed}");
        // Linux 6.2 reports the count in st_size: that path must be the one taken there.
        let expect = if kernel_version() >= (6, 2) {
            FdCount::Stat(listed)
        } else {
            FdCount::Listing(listed)
        };
        assert_eq!(how, Some(expect));
        assert_eq!(counted, Some(listed));
        assert_eq!(count_fds(Path::new("/proc/self/no-such-dir")), None);
    }

    #[test]
    fn live() {
        let fams = families();
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "process_cpu_seconds_total",
                "process_max_fds",
                "process_open_fds",
                "process_resident_memory_bytes",
                "process_start_time_seconds",
                "process_virtual_memory_bytes",
                "process_virtual_memory_max_bytes",
            ]
        );
        let v = |n: &str| {
            fams.iter()
                .find(|f| f.name == n)
                .map(|f| f.samples[0].value)
                .unwrap_or(-1.0)
        };
        assert!(v("process_resident_memory_bytes") > 0.0);
        assert!(v("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let start = v("process_start_time_seconds");
        assert!(
            start > now - 3600.0 && start <= now + 1.0,
            "start {start} now {now}"
        );
    }
}
