//! `cpu` collector: what node_exporter 1.5's `cpu_linux.go` emits by default.
//!
//! - `node_cpu_seconds_total{cpu,mode}` and `node_cpu_guest_seconds_total{cpu,mode}` from
//!   `/proc/stat`, with node_exporter's guard against counters going backwards (iowait can
//!   decrease on tickless kernels; hotplug resets a CPU's counters);
//! - `node_cpu_isolated{cpu}` from `/sys/devices/system/cpu/isolated` (when present);
//! - `node_cpu_core_throttles_total{core,package}` and `node_cpu_package_throttles_total{package}`
//!   from `/sys/devices/system/cpu/cpu*/thermal_throttle/` (Intel hosts; absent elsewhere).
//!
//! `--collector.cpu.guest=false` (1.12; default true) leaves `node_cpu_guest_seconds_total`
//! out; the guest counters are still guarded against going backwards.
//!
//! Partial output as node_exporter's: the CPU times are kept when the isolated list or the
//! throttle listing fails after them (ARCHITECTURE.md, "Partial output").
//!
//! With `--collector.cpu.info` (off by default, as node_exporter; switched on by either
//! include flag, as 1.12), from `/proc/cpuinfo`, sent first as node_exporter 1.12 does:
//! - `node_cpu_info{package,core,cpu,vendor,family,model,model_name,microcode,stepping,cachesize}`;
//! - `node_cpu_frequency_hertz{package,core,cpu}` (`cpu MHz`), only when the `cpufreq`
//!   collector is enabled too (1.12 asks its collector state);
//! - `node_cpu_flag_info{flag}` and `node_cpu_bug_info{bug}`: the `flags` and `bugs` of the
//!   first CPU matching `--collector.cpu.info.flags-include` / `.bugs-include` (none without).
//!
//! A `/proc/cpuinfo` that cannot be read or parsed fails the collector before anything else is
//! sent (1.12 returns before the CPU times). The parser is procfs' x86 one (`key : value`
//! lines, a `processor` line per CPU); other architectures' layouts give the fields they share.
//!
//! Not emitted: `node_cpu_online` (added in node_exporter 1.9).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::options::{collector_options, parse_bool, Pattern};
use super::stat::{read_stat, CpuTimes};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;
use regex::Regex;

collector_options! {
    /// Options of the cpu collector (`[collector.cpu]` in the file).
    pub struct CpuOptions {
        /// Enables metric cpu_info.
        #[arg(id = "collector.cpu.info", long = "collector.cpu.info",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub info: Option<bool>,
        /// Filter the `flags` field in cpuInfo with a value that must be a regular expression.
        #[arg(id = "collector.cpu.info.flags-include", long = "collector.cpu.info.flags-include", value_name = "REGEX")]
        pub info_flags_include: Option<Pattern>,
        /// Filter the `bugs` field in cpuInfo with a value that must be a regular expression.
        #[arg(id = "collector.cpu.info.bugs-include", long = "collector.cpu.info.bugs-include", value_name = "REGEX")]
        pub info_bugs_include: Option<Pattern>,
        /// Enables metric node_cpu_guest_seconds_total (`--collector.cpu.guest=false` drops
        /// it, as node_exporter 1.12) [default: true].
        #[arg(id = "collector.cpu.guest", long = "collector.cpu.guest",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub guest: Option<bool>,
        /// Not an option: whether the `cpufreq` collector is enabled (set from the enabled
        /// set; `node_cpu_frequency_hertz` depends on it, as in node_exporter 1.12).
        #[arg(skip)]
        #[serde(skip)]
        pub cpufreq_enabled: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(Cpu {
        info: cpu_settings(opts),
        // node_exporter 1.12's `--collector.cpu.guest` defaults to true.
        no_guest: !opts.cpu.guest.unwrap_or(true),
    })
}

/// What `--collector.cpu.info` and its include flags ask for; `None` when off.
fn cpu_settings(opts: &Options) -> Option<InfoSettings> {
    let o = &opts.cpu;
    let flags = o.info_flags_include.as_ref().map(|p| p.0.clone());
    let bugs = o.info_bugs_include.as_ref().map(|p| p.0.clone());
    // As 1.12: either include flag switches the info metrics on.
    let info = o.info.unwrap_or(false) || flags.is_some() || bugs.is_some();
    info.then_some(InfoSettings {
        frequency: o.cpufreq_enabled.unwrap_or(false),
        flags,
        bugs,
    })
}

/// What `--collector.cpu.info` adds.
#[derive(Debug, Clone)]
pub struct InfoSettings {
    /// `node_cpu_frequency_hertz` (the cpufreq collector is enabled).
    pub frequency: bool,
    pub flags: Option<Regex>,
    pub bugs: Option<Regex>,
}

/// One CPU of `/proc/cpuinfo`, the fields node_exporter exports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuInfo {
    pub processor: u32,
    pub vendor: String,
    pub family: String,
    pub model: String,
    pub model_name: String,
    pub stepping: String,
    pub microcode: String,
    pub mhz: f64,
    pub cache_size: String,
    pub physical_id: String,
    pub core_id: String,
    pub flags: Vec<String>,
    pub bugs: Vec<String>,
}

/// Parses `/proc/cpuinfo` as procfs' x86 parser: the first non-empty line must be a
/// `processor` line; each `processor` line starts a CPU; `key : value` lines fill it (the key
/// trimmed, the value after the first `": "`); lines without `:` are skipped.
pub fn parse_cpuinfo(text: &str) -> Result<Vec<CpuInfo>, String> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("");
    let parse_proc = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("not a processor number: {v:?}"))
    };
    let Some(("processor", v)) = first.split_once(": ").map(|(k, v)| (k.trim(), v)) else {
        return Err(format!("cannot parse line: {first:?}"));
    };
    let mut cpus = vec![CpuInfo {
        processor: parse_proc(v)?,
        ..CpuInfo::default()
    }];
    for line in lines {
        if !line.contains(':') {
            continue;
        }
        let (key, value) = line.split_once(": ").unwrap_or((line, ""));
        let key = key.trim().trim_end_matches(':').trim();
        if key == "processor" {
            cpus.push(CpuInfo {
                processor: parse_proc(value)?,
                ..CpuInfo::default()
            });
            continue;
        }
        let Some(cpu) = cpus.last_mut() else { continue };
        let value = value.to_string();
        match key {
            "vendor" | "vendor_id" => cpu.vendor = value,
            "cpu family" => cpu.family = value,
            "model" => cpu.model = value,
            "model name" => cpu.model_name = value,
            "stepping" => cpu.stepping = value,
            "microcode" => cpu.microcode = value,
            "cpu MHz" => {
                cpu.mhz = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("not a frequency: {value:?}"))?
            }
            "cache size" => cpu.cache_size = value,
            "physical id" => cpu.physical_id = value,
            "core id" => cpu.core_id = value,
            "flags" => cpu.flags = value.split_whitespace().map(String::from).collect(),
            "bugs" => cpu.bugs = value.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    Ok(cpus)
}

/// `node_cpu_info`, `node_cpu_frequency_hertz` (when `s.frequency`), `node_cpu_flag_info` and
/// `node_cpu_bug_info` (first CPU, filtered), as node_exporter 1.12.
pub fn info_families(cpus: &[CpuInfo], s: &InfoSettings) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge("node_cpu_info", "CPU information from /proc/cpuinfo.");
    let mut freq = MetricFamily::gauge(
        "node_cpu_frequency_hertz",
        "CPU frequency in hertz from /proc/cpuinfo.",
    );
    for c in cpus {
        let cpu = c.processor.to_string();
        info.push(
            &[
                ("package", c.physical_id.as_str()),
                ("core", &c.core_id),
                ("cpu", &cpu),
                ("vendor", &c.vendor),
                ("family", &c.family),
                ("model", &c.model),
                ("model_name", &c.model_name),
                ("microcode", &c.microcode),
                ("stepping", &c.stepping),
                ("cachesize", &c.cache_size),
            ],
            1.0,
        );
        if s.frequency {
            freq.push(
                &[
                    ("package", c.physical_id.as_str()),
                    ("core", &c.core_id),
                    ("cpu", &cpu),
                ],
                c.mhz * 1e6,
            );
        }
    }
    let mut flags = MetricFamily::gauge(
        "node_cpu_flag_info",
        "The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
    );
    let mut bugs = MetricFamily::gauge(
        "node_cpu_bug_info",
        "The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
    );
    if let Some(first) = cpus.first() {
        for (fam, label, values, filter) in [
            (&mut flags, "flag", &first.flags, &s.flags),
            (&mut bugs, "bug", &first.bugs, &s.bugs),
        ] {
            let Some(re) = filter else { continue };
            for v in values.iter().filter(|v| re.is_match(v)) {
                fam.push(&[(label, v.as_str())], 1.0);
            }
        }
    }
    vec![bugs, flags, freq, info]
}

/// `node_cpu_seconds_total` modes, in output order (alphabetical, as node_exporter's output).
const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];

/// One CPU's counters as exported: the 8 modes in [`MODES`] order, then guest user and guest
/// nice. Columns a kernel lacks are 0, as node_exporter exports them.
type Counters = [f64; 10];
const IDLE: usize = 0;
const GUEST_USER: usize = 8;
const GUEST_NICE: usize = 9;

fn counters(t: &CpuTimes) -> Counters {
    let z = |v: Option<f64>| v.unwrap_or(0.0);
    [
        t.idle,
        z(t.iowait),
        z(t.irq),
        t.nice,
        z(t.softirq),
        z(t.steal),
        t.system,
        t.user,
        z(t.guest),
        z(t.guest_nice),
    ]
}

/// If idle jumps back by this many seconds, node_exporter assumes a hotplug event and starts the
/// CPU afresh.
const JUMP_BACK_SECONDS: f64 = 3.0;

/// node_exporter's `updateCPUStats`: a counter that went backwards keeps its previous value; an
/// idle counter that went back by [`JUMP_BACK_SECONDS`] or more resets the CPU.
fn monotonic(prev: Option<&Counters>, new: &Counters) -> Counters {
    let mut out = prev.copied().unwrap_or_default();
    if out[IDLE] - new[IDLE] >= JUMP_BACK_SECONDS {
        out = Counters::default();
    }
    for (o, n) in out.iter_mut().zip(new) {
        if *n >= *o {
            *o = *n;
        }
    }
    out
}

/// Last exported counters, per procfs root: tests against fixture trees, running in parallel,
/// never disturb each other nor the real one, and the memory outlives a SIGHUP that rebuilds the
/// collectors (a counter never goes backwards across a reload). Only configured roots are keys.
static LAST: Mutex<BTreeMap<PathBuf, HashMap<u32, Counters>>> = Mutex::new(BTreeMap::new());

/// Applies [`monotonic`] against the remembered counters and remembers the result. CPUs no longer
/// in `/proc/stat` are forgotten (and not exported, unlike node_exporter 1.5 which kept
/// exporting their last values).
fn guard(procfs: &Path, cpus: &[(u32, CpuTimes)]) -> Vec<(u32, Counters)> {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let prev = last.remove(procfs).unwrap_or_default();
    let mut next = HashMap::with_capacity(cpus.len());
    let out: Vec<_> = cpus
        .iter()
        .map(|(id, t)| {
            let c = monotonic(prev.get(id), &counters(t));
            next.insert(*id, c);
            (*id, c)
        })
        .collect();
    last.insert(procfs.to_path_buf(), next);
    out
}

/// `node_cpu_seconds_total` and `node_cpu_guest_seconds_total`, samples by numeric CPU id.
pub fn time_families(cpus: &[(u32, Counters)]) -> [MetricFamily; 2] {
    let mut cpus: Vec<_> = cpus.to_vec();
    cpus.sort_by_key(|(id, _)| *id);
    let mut seconds = MetricFamily::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    let mut guest = MetricFamily::counter(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    );
    seconds.samples.reserve(cpus.len() * MODES.len());
    guest.samples.reserve(cpus.len() * 2);
    for (id, c) in &cpus {
        let cpu = id.to_string();
        for (mode, v) in MODES.iter().zip(c) {
            seconds.push(&[("cpu", &cpu), ("mode", mode)], *v);
        }
        guest.push(&[("cpu", &cpu), ("mode", "nice")], c[GUEST_NICE]);
        guest.push(&[("cpu", &cpu), ("mode", "user")], c[GUEST_USER]);
    }
    [guest, seconds]
}

/// Parses a kernel CPU list (`/sys/devices/system/cpu/isolated`: `0-3,8,10-11`, or empty) into
/// sorted, deduplicated CPU numbers.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        if part.is_empty() {
            continue;
        }
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("bad CPU number {s:?} in {text:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("bad CPU range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `node_cpu_isolated`, one sample per isolated CPU (none when no CPU is isolated).
pub fn isolated_family(cpus: &[u32]) -> MetricFamily {
    let mut fam = MetricFamily::gauge(
        "node_cpu_isolated",
        "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
    );
    for id in cpus {
        fam.push(&[("cpu", &id.to_string())], 1.0);
    }
    fam
}

/// What one `cpuN` directory says about thermal throttling. A value is `None` when its file is
/// missing or unreadable, which node_exporter silently skips.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ThrottleReading {
    pub package: Option<u64>,
    pub core: Option<u64>,
    pub core_throttles: Option<u64>,
    pub package_throttles: Option<u64>,
}

/// `readUintFromFile`: a trimmed unsigned decimal, else `None`.
pub fn parse_uint(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// node_exporter's aggregation: CPUs without a package or core id are skipped; a core's count is
/// the first one read among its CPUs (hyperthreads share it), a package's likewise. Returns
/// `(core throttles by (package, core), package throttles by package)`.
pub fn aggregate_throttles(
    readings: &[ThrottleReading],
) -> (BTreeMap<(u64, u64), u64>, BTreeMap<u64, u64>) {
    let mut cores = BTreeMap::new();
    let mut packages = BTreeMap::new();
    for r in readings {
        let (Some(package), Some(core)) = (r.package, r.core) else {
            continue;
        };
        if let Some(n) = r.core_throttles {
            cores.entry((package, core)).or_insert(n);
        }
        if let Some(n) = r.package_throttles {
            packages.entry(package).or_insert(n);
        }
    }
    (cores, packages)
}

/// `node_cpu_core_throttles_total` and `node_cpu_package_throttles_total`.
pub fn throttle_families(
    cores: &BTreeMap<(u64, u64), u64>,
    packages: &BTreeMap<u64, u64>,
) -> [MetricFamily; 2] {
    let mut core_fam = MetricFamily::counter(
        "node_cpu_core_throttles_total",
        "Number of times this CPU core has been throttled.",
    );
    for ((package, core), n) in cores {
        core_fam.push(
            &[
                ("core", &core.to_string()),
                ("package", &package.to_string()),
            ],
            *n as f64,
        );
    }
    let mut package_fam = MetricFamily::counter(
        "node_cpu_package_throttles_total",
        "Number of times this CPU package has been throttled.",
    );
    for (package, n) in packages {
        package_fam.push(&[("package", &package.to_string())], *n as f64);
    }
    [core_fam, package_fam]
}

/// Reads `cpu[0-9]*/` under the sysfs CPU directory, in the order node_exporter's glob does
/// (lexical). Only CPUs with a `thermal_throttle` directory are read further: without it no
/// count can exist, so the result is the same as node_exporter's, for far fewer reads on the
/// (many) hosts without thermal throttle support. A missing CPU directory means no readings.
fn read_throttles(cpu_dir: &Path) -> Result<Vec<ThrottleReading>, CollectError> {
    let entries = match crate::collector::read_dir(cpu_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CollectError::io(cpu_dir, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    names.sort_unstable();
    let read = |p: PathBuf| {
        super::fsio::read_to_string(p)
            .ok()
            .as_deref()
            .and_then(parse_uint)
    };
    let mut out = Vec::new();
    for name in names {
        let dir = cpu_dir.join(&name);
        let throttle = dir.join("thermal_throttle");
        if !crate::collector::is_dir(&throttle) {
            continue;
        }
        out.push(ThrottleReading {
            package: read(dir.join("topology/physical_package_id")),
            core: read(dir.join("topology/core_id")),
            core_throttles: read(throttle.join("core_throttle_count")),
            package_throttles: read(throttle.join("package_throttle_count")),
        });
    }
    Ok(out)
}

/// Reads the isolated CPU list; a missing file (kernels before 4.x, some containers) means none.
fn read_isolated(path: &Path) -> Result<Vec<u32>, CollectError> {
    match super::fsio::read_to_string(path) {
        Ok(text) => parse_cpu_list(&text).map_err(|msg| CollectError::parse(path, msg)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// The cpu collector; `info` set by `--collector.cpu.info`, `no_guest` by
/// `--collector.cpu.guest=false`.
#[derive(Default)]
pub struct Cpu {
    pub info: Option<InfoSettings>,
    pub no_guest: bool,
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        // 1.12 sends the cpuinfo families first and stops at their error; what was sent
        // before an error is kept (partial output).
        let mut sent: Vec<MetricFamily> = Vec::new();
        if let Some(s) = &self.info {
            let path = paths.proc("cpuinfo");
            let text = super::read_to_string(&path)?;
            let cpus = parse_cpuinfo(&text).map_err(|m| CollectError::parse(&path, m))?;
            sent.extend(info_families(&cpus, s));
        }
        let done = |mut sent: Vec<MetricFamily>| {
            sent.retain(|f| !f.samples.is_empty());
            sent.sort_by(|a, b| a.name.cmp(&b.name));
            sent
        };
        let stat = match read_stat(paths, true) {
            Ok(s) => s,
            Err(e) => return Err(CollectError::partial(done(sent), e)),
        };
        let cpus = guard(&paths.procfs, &stat.cpus);
        let [guest, seconds] = time_families(&cpus);
        // 1.12's `--collector.cpu.guest=false`: no node_cpu_guest_seconds_total (the guard
        // above still follows the guest counters, as 1.12's does).
        if !self.no_guest {
            sent.push(guest);
        }
        sent.push(seconds);
        // Partial output as node_exporter's: the CPU times are sent before the isolated CPUs
        // and the throttles; an error there keeps what was read before it.
        match read_isolated(&paths.sys("devices/system/cpu/isolated")) {
            Ok(cpus) => sent.push(isolated_family(&cpus)),
            Err(e) => return Err(CollectError::partial(done(sent), e)),
        };
        let readings = match read_throttles(&paths.sys("devices/system/cpu")) {
            Ok(r) => r,
            Err(e) => return Err(CollectError::partial(done(sent), e)),
        };
        let (cores, packages) = aggregate_throttles(&readings);
        sent.extend(throttle_families(&cores, &packages));
        // Sorted by name, as node_exporter's output; empty families are left out.
        Ok(done(sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::stat::parse_stat;

    /// node_exporter 1.12's `/proc/cpuinfo` fixture with its e2e flags: the samples of its
    /// `e2e-output.txt`.
    #[test]
    fn cpu_info_node_exporter_112() {
        let text = include_str!("../../tests/fixtures/node_exporter_1.12/proc/cpuinfo");
        let cpus = parse_cpuinfo(text).expect("parses");
        assert_eq!(cpus.len(), 8);
        let s = InfoSettings {
            frequency: true,
            flags: Some(Regex::new("^(aes|avx.?|constant_tsc)$").expect("regex")),
            bugs: Some(Regex::new("^(cpu_meltdown|spectre_.*|mds)$").expect("regex")),
        };
        let fams = info_families(&cpus, &s);
        let values = |name: &str| -> Vec<String> {
            let f = fams.iter().find(|f| f.name == name).expect("family");
            f.samples
                .iter()
                .map(|s| {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{} {}", l.join(","), s.value)
                })
                .collect()
        };
        assert_eq!(
            values("node_cpu_flag_info"),
            [
                "flag=constant_tsc 1",
                "flag=aes 1",
                "flag=avx 1",
                "flag=avx2 1"
            ]
        );
        assert_eq!(
            values("node_cpu_bug_info"),
            [
                "bug=cpu_meltdown 1",
                "bug=spectre_v1 1",
                "bug=spectre_v2 1",
                "bug=mds 1"
            ]
        );
        assert_eq!(
            values("node_cpu_info")[0],
            "package=0,core=0,cpu=0,vendor=GenuineIntel,family=6,model=142,\
             model_name=Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz,microcode=0xb4,stepping=10,\
             cachesize=8192 KB 1"
        );
        assert_eq!(
            values("node_cpu_frequency_hertz")[1],
            format!("package=0,core=1,cpu=1 {}", 800.037 * 1e6)
        );
        // Without cpufreq enabled, no frequency; without include patterns, no flags or bugs.
        let bare = info_families(
            &cpus,
            &InfoSettings {
                frequency: false,
                flags: None,
                bugs: None,
            },
        );
        for f in &bare {
            assert_eq!(
                f.samples.is_empty(),
                f.name != "node_cpu_info",
                "{}",
                f.name
            );
        }
        assert!(parse_cpuinfo("vendor_id : x\n").is_err());
        assert!(parse_cpuinfo("processor : 0\ncpu MHz : fast\n").is_err());
    }

    /// `--collector.cpu.info.flags-include` alone switches the info families on, as 1.12.
    #[test]
    fn include_flag_enables_info() {
        let mut o = Options::default();
        assert!(cpu_settings(&o).is_none());
        o.cpu.info_flags_include = Some("^aes$".parse().expect("pattern"));
        let s = cpu_settings(&o).expect("info on");
        assert!(s.flags.is_some() && s.bugs.is_none() && !s.frequency);
        o.cpu.cpufreq_enabled = Some(true);
        assert!(cpu_settings(&o).expect("info on").frequency);
    }

    const DEBIAN12: &str = include_str!("../../tests/fixtures/hosts/debian12-vm-6.18/proc/stat");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/hosts/node_exporter-fixture/proc/stat");

    fn sample(fam: &MetricFamily, labels: &[(&str, &str)]) -> Option<f64> {
        fam.samples
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && s.labels
                        .iter()
                        .zip(labels)
                        .all(|((k, v), (wk, wv))| k == wk && v == wv)
            })
            .map(|s| s.value)
    }

    fn fresh(text: &str) -> Vec<(u32, Counters)> {
        let st = parse_stat(text, true).expect("parses");
        st.cpus
            .iter()
            .map(|(id, t)| (*id, monotonic(None, &counters(t))))
            .collect()
    }

    #[test]
    fn node_exporter_fixture() {
        let [guest, seconds] = time_families(&fresh(NODE_EXPORTER));
        assert_eq!(seconds.samples.len(), 8 * 8);
        assert_eq!(guest.samples.len(), 8 * 2);
        // cpu0 44490 19 21045 1087069 220 1 3410 0 2 1
        assert_eq!(
            sample(&seconds, &[("cpu", "0"), ("mode", "user")]),
            Some(444.9)
        );
        assert_eq!(
            sample(&seconds, &[("cpu", "0"), ("mode", "idle")]),
            Some(10870.69)
        );
        assert_eq!(
            sample(&seconds, &[("cpu", "0"), ("mode", "softirq")]),
            Some(34.1)
        );
        assert_eq!(
            sample(&seconds, &[("cpu", "7"), ("mode", "nice")]),
            Some(2.68)
        );
        assert_eq!(
            sample(&guest, &[("cpu", "7"), ("mode", "user")]),
            Some(0.09)
        );
        assert_eq!(
            sample(&guest, &[("cpu", "7"), ("mode", "nice")]),
            Some(0.08)
        );
        // Order: numeric CPU, then mode alphabetically.
        let first: Vec<_> = seconds.samples[..9]
            .iter()
            .map(|s| (s.labels[0].1.as_str(), s.labels[1].1.as_str()))
            .collect();
        assert_eq!(
            first,
            [
                ("0", "idle"),
                ("0", "iowait"),
                ("0", "irq"),
                ("0", "nice"),
                ("0", "softirq"),
                ("0", "steal"),
                ("0", "system"),
                ("0", "user"),
                ("1", "idle"),
            ]
        );
        assert_eq!(seconds.help, "Seconds the CPUs spent in each mode.");
        assert_eq!(
            guest.help,
            "Seconds the CPUs spent in guests (VMs) for each mode."
        );
    }

    #[test]
    fn debian12() {
        let [guest, seconds] = time_families(&fresh(DEBIAN12));
        assert_eq!(seconds.samples.len(), 2 * 8);
        // cpu1 7582 0 1738 29292 193 0 36 26 0 0
        assert_eq!(
            sample(&seconds, &[("cpu", "1"), ("mode", "user")]),
            Some(75.82)
        );
        assert_eq!(
            sample(&seconds, &[("cpu", "1"), ("mode", "steal")]),
            Some(0.26)
        );
        assert_eq!(
            sample(&seconds, &[("cpu", "1"), ("mode", "iowait")]),
            Some(1.93)
        );
        assert_eq!(sample(&guest, &[("cpu", "1"), ("mode", "user")]), Some(0.0));
    }

    #[test]
    fn sorting_is_numeric() {
        let text = "cpu10 1 1 1 1\ncpu2 2 2 2 2\n";
        let [_, seconds] = time_families(&fresh(text));
        assert_eq!(seconds.samples[0].labels[0].1, "2");
        assert_eq!(seconds.samples[8].labels[0].1, "10");
        // Missing columns (old kernels) are exported as 0, as node_exporter does.
        assert_eq!(
            sample(&seconds, &[("cpu", "2"), ("mode", "steal")]),
            Some(0.0)
        );
    }

    #[test]
    fn counters_never_go_backwards() {
        let a: Counters = [100.0, 5.0, 1.0, 1.0, 1.0, 1.0, 10.0, 20.0, 0.0, 0.0];
        // iowait dipped (tickless kernel), the rest moved on.
        let mut b = a;
        b[1] = 4.5;
        b[7] = 21.0;
        let c = monotonic(Some(&a), &b);
        assert_eq!(c[1], 5.0);
        assert_eq!(c[7], 21.0);
        // Idle jumped back by 3s or more: hotplug, start afresh.
        let mut d = a;
        d[IDLE] = 2.0;
        d[7] = 0.5;
        let e = monotonic(Some(&a), &d);
        assert_eq!(e, d);
    }

    #[test]
    fn guard_remembers_per_root() {
        let root = Path::new("/test-guard-root");
        let st1 = parse_stat("cpu0 100 0 100 10000 50\n", true).expect("parses");
        let st2 = parse_stat("cpu0 101 0 100 10001 40\n", true).expect("parses");
        let first = guard(root, &st1.cpus);
        let second = guard(root, &st2.cpus);
        assert_eq!(first[0].1[1], 0.5);
        assert_eq!(second[0].1[1], 0.5, "iowait held at its previous value");
        assert_eq!(second[0].1[7], 1.01);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("\n"), Ok(vec![]));
        assert_eq!(parse_cpu_list(""), Ok(vec![]));
        assert_eq!(parse_cpu_list("2,0-1,8-9\n"), Ok(vec![0, 1, 2, 8, 9]));
        assert!(parse_cpu_list("a-b").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        let fam = isolated_family(&[1, 3]);
        assert_eq!(sample(&fam, &[("cpu", "3")]), Some(1.0));
        assert_eq!(fam.samples.len(), 2);
    }

    #[test]
    fn throttle_aggregation() {
        let r = |package, core, c, p| ThrottleReading {
            package,
            core,
            core_throttles: c,
            package_throttles: p,
        };
        let readings = [
            // cpu0 and its hyperthread cpu4 on core 0; cpu4's core count is ignored.
            r(Some(0), Some(0), Some(46), Some(7)),
            r(Some(0), Some(1), Some(0), Some(99)),
            r(Some(1), Some(0), None, None),
            r(Some(1), Some(0), Some(3), Some(12)),
            r(None, Some(2), Some(5), Some(5)),
            r(Some(0), Some(0), Some(47), Some(8)),
        ];
        let (cores, packages) = aggregate_throttles(&readings);
        assert_eq!(
            cores.into_iter().collect::<Vec<_>>(),
            [((0, 0), 46), ((0, 1), 0), ((1, 0), 3)]
        );
        assert_eq!(packages.into_iter().collect::<Vec<_>>(), [(0, 7), (1, 12)]);
        assert_eq!(parse_uint(" 12\n"), Some(12));
        assert_eq!(parse_uint("-1\n"), None);
    }

    #[test]
    fn throttles_from_a_sysfs_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let put = |rel: &str, v: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, v).expect("write");
        };
        for (cpu, core, count) in [
            (0, 0, "46\n"),
            (1, 1, "0\n"),
            (2, 0, "47\n"),
            (10, 1, "9\n"),
        ] {
            put(&format!("cpu{cpu}/topology/physical_package_id"), "0\n");
            put(&format!("cpu{cpu}/topology/core_id"), &format!("{core}\n"));
            put(
                &format!("cpu{cpu}/thermal_throttle/core_throttle_count"),
                count,
            );
            put(
                &format!("cpu{cpu}/thermal_throttle/package_throttle_count"),
                "12\n",
            );
        }
        // Not CPUs, or no thermal_throttle: ignored.
        put("cpufreq/policy0/x", "1");
        put("cpu3/topology/core_id", "3\n");
        let (cores, packages) = aggregate_throttles(&read_throttles(dir.path()).expect("reads"));
        // Glob order is lexical: cpu1 (core 1, "0") comes before cpu10 (core 1, "9").
        assert_eq!(
            cores.into_iter().collect::<Vec<_>>(),
            [((0, 0), 46), ((0, 1), 0)]
        );
        assert_eq!(packages.into_iter().collect::<Vec<_>>(), [(0, 12)]);
        let [c, p] = throttle_families(&BTreeMap::from([((0, 1), 5)]), &BTreeMap::from([(0, 12)]));
        assert_eq!(sample(&c, &[("core", "1"), ("package", "0")]), Some(5.0));
        assert_eq!(sample(&p, &[("package", "0")]), Some(12.0));
        assert_eq!(c.help, "Number of times this CPU core has been throttled.");
    }

    /// `--collector.cpu.guest` (node_exporter 1.12, default true) on 1.12's `/proc/stat`
    /// fixture: `=false` drops node_cpu_guest_seconds_total and nothing else.
    #[test]
    fn guest_flag_node_exporter_112() {
        use clap::Parser;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter_1.12");
        let paths = Paths {
            procfs: root.join("proc"),
            sysfs: root.join("no-sys"),
            ..Paths::default()
        };
        let run = |args: &[&str]| -> Vec<MetricFamily> {
            let mut argv = vec!["monitoring-agent"];
            argv.extend_from_slice(args);
            let cli = crate::cli::Cli::try_parse_from(argv).expect("parses");
            collector(&cli.collector).collect(&paths).expect("collects")
        };
        let with = run(&[]);
        assert_eq!(
            crate::collectors::testutil::names(&with),
            ["node_cpu_guest_seconds_total", "node_cpu_seconds_total"]
        );
        // 1.12's e2e output has 8 CPUs x 2 guest modes.
        assert_eq!(with[0].samples.len(), 16);
        assert_eq!(run(&["--collector.cpu.guest"]), with);
        assert_eq!(run(&["--collector.cpu.guest=true"]), with);
        let without = run(&["--collector.cpu.guest=false"]);
        assert_eq!(
            crate::collectors::testutil::names(&without),
            ["node_cpu_seconds_total"]
        );
        assert_eq!(without[0], with[1]);
        // The file's key.
        let o = Options {
            cpu: toml::from_str("guest = false\n").expect("toml"),
            ..Options::default()
        };
        let fams = collector(&o).collect(&paths).expect("collects");
        assert_eq!(
            crate::collectors::testutil::names(&fams),
            ["node_cpu_seconds_total"]
        );
    }

    #[test]
    fn fixture_tree_without_thermal_throttle() {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/debian12-vm-6.18");
        let paths = Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: root.clone(),
            ..Paths::default()
        };
        let fams = Cpu::default().collect(&paths).expect("collects");
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            ["node_cpu_guest_seconds_total", "node_cpu_seconds_total"]
        );
        assert_eq!(
            sample(&fams[1], &[("cpu", "0"), ("mode", "user")]),
            Some(70.07)
        );
        // No sysfs at all: the /proc/stat part still works.
        let bare = Paths {
            sysfs: root.join("no-such-sys"),
            ..paths
        };
        assert_eq!(Cpu::default().collect(&bare).expect("collects").len(), 2);
    }

    /// Partial output as node_exporter's: the CPU times read before a broken isolated-CPU list
    /// are kept, the collector fails (`success 0`) naming the file.
    #[test]
    fn partial_output_keeps_the_cpu_times_before_a_broken_isolated_list() {
        let tree = crate::collectors::testutil::fixture_copy("hosts", "debian12-vm-6.18");
        let isolated = tree.path().join("sys/devices/system/cpu/isolated");
        std::fs::write(&isolated, "0-x\n").expect("write");
        let paths = Paths {
            procfs: tree.path().join("proc"),
            sysfs: tree.path().join("sys"),
            ..Paths::default()
        };
        let o = crate::collector::run(&Cpu::default(), &paths);
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("isolated"), "{err}");
        assert_eq!(
            crate::collectors::testutil::names(&o.families),
            ["node_cpu_guest_seconds_total", "node_cpu_seconds_total"]
        );
        assert_eq!(
            sample(&o.families[1], &[("cpu", "1"), ("mode", "user")]),
            Some(75.82)
        );
        // The same tree with the list repaired: success, the same samples.
        std::fs::write(&isolated, "\n").expect("write");
        assert_eq!(
            Cpu::default().collect(&paths).expect("collects"),
            o.families
        );
    }

    #[test]
    fn live() {
        let fams = Cpu::default()
            .collect(&Paths::default())
            .expect("reads /proc/stat");
        let seconds = fams
            .iter()
            .find(|f| f.name == "node_cpu_seconds_total")
            .expect("node_cpu_seconds_total");
        assert!(fams
            .iter()
            .any(|f| f.name == "node_cpu_guest_seconds_total"));
        assert!(sample(seconds, &[("cpu", "0"), ("mode", "idle")]).is_some());
        assert_eq!(seconds.samples.len() % 8, 0);
    }
}
