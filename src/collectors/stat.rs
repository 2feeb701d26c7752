//! `stat` collector: kernel/system statistics from `/proc/stat`, as node_exporter 1.5's
//! `stat_linux.go` (boot time, context switches, forks, interrupts, runnable/blocked processes).
//!
//! With `--collector.stat.softirq` (node_exporter 1.12, off by default):
//! `node_softirqs_total{vector}` from the `softirq` line, the ten vectors in the kernel's order
//! (hi, timer, net_tx, net_rx, block, block_iopoll, tasklet, sched, hrtimer, rcu). As procfs,
//! a `softirq` line with fewer than the total and ten vectors fails the parse.
//!
//! The `/proc/stat` parser also serves the `cpu` collector (per-CPU times) and the agent's own
//! `process_start_time_seconds` (boot time).

use super::options::{collector_options, parse_bool};
use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// The kernel's `USER_HZ`: `/proc/stat` counts CPU time in these ticks (always 100 on Linux,
/// whatever `CONFIG_HZ` is; node_exporter's procfs library hard-codes it too).
pub const USER_HZ: f64 = 100.0;

/// One CPU's times from a `cpuN` line of `/proc/stat`, in seconds.
///
/// `user`..`idle` exist on every kernel; the later columns were added over time (iowait, irq
/// and softirq in 2.6.0, steal in 2.6.11, guest in 2.6.24, guest_nice in 2.6.33) and are `None`
/// when the line is shorter.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTimes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: Option<f64>,
    pub irq: Option<f64>,
    pub softirq: Option<f64>,
    pub steal: Option<f64>,
    pub guest: Option<f64>,
    pub guest_nice: Option<f64>,
}

/// What the agent uses from `/proc/stat`. Scalar lines are `None` when absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcStat {
    /// Per-CPU times by CPU number, in file order (ascending on every kernel seen). Empty unless
    /// asked for (see [`parse_stat`]).
    pub cpus: Vec<(u32, CpuTimes)>,
    /// `intr`: the total of all interrupts serviced (the first number of the line).
    pub intr: Option<u64>,
    /// `ctxt`: context switches since boot.
    pub ctxt: Option<u64>,
    /// `btime`: boot time, seconds since the epoch.
    pub btime: Option<u64>,
    /// `processes`: forks since boot.
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
    /// `softirq`: the ten per-vector counts after the total, in [`SOFTIRQ_VECTORS`] order.
    pub softirq: Option<[u64; 10]>,
}

/// The vectors of the `softirq` line, in the kernel's (and node_exporter 1.12's) order.
pub const SOFTIRQ_VECTORS: [&str; 10] = [
    "hi",
    "timer",
    "net_tx",
    "net_rx",
    "block",
    "block_iopoll",
    "tasklet",
    "sched",
    "hrtimer",
    "rcu",
];

/// Parses `/proc/stat`. Per-CPU lines are parsed only when `with_cpus` is set (the `stat`
/// collector does not need them; on big hosts they are most of the file). Unknown lines are
/// ignored (new kernels add some); a known line with a missing or non-numeric value is an
/// error.
pub fn parse_stat(text: &str, with_cpus: bool) -> Result<ProcStat, String> {
    let mut st = ProcStat::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let slot = match key {
            "intr" => &mut st.intr,
            "ctxt" => &mut st.ctxt,
            "btime" => &mut st.btime,
            "processes" => &mut st.processes,
            "procs_running" => &mut st.procs_running,
            "procs_blocked" => &mut st.procs_blocked,
            "softirq" => {
                // procfs' Sscanf: the total, then the ten vectors; more are ignored.
                let mut v = [0u64; 11];
                for slot in v.iter_mut() {
                    let f = fields
                        .next()
                        .ok_or_else(|| format!("couldn't parse {line:?} (softirq)"))?;
                    *slot = f
                        .parse()
                        .map_err(|_| format!("couldn't parse {line:?} (softirq)"))?;
                }
                let [_total, vectors @ ..] = v;
                st.softirq = Some(vectors);
                continue;
            }
            _ => {
                if with_cpus {
                    if let Some(id) = key.strip_prefix("cpu") {
                        // `cpu` alone is the all-CPU total, which node_exporter does not export.
                        if !id.is_empty() {
                            let id: u32 = id
                                .parse()
                                .map_err(|_| format!("bad CPU name {key:?} in line {line:?}"))?;
                            st.cpus.push((id, parse_cpu_fields(fields, line)?));
                        }
                    }
                }
                continue;
            }
        };
        let value = fields
            .next()
            .ok_or_else(|| format!("missing value in line {line:?}"))?;
        *slot = Some(
            value
                .parse()
                .map_err(|_| format!("bad value {value:?} in line {line:?}"))?,
        );
    }
    Ok(st)
}

fn parse_cpu_fields<'a>(
    fields: impl Iterator<Item = &'a str>,
    line: &str,
) -> Result<CpuTimes, String> {
    let mut v = [None::<f64>; 10];
    for (slot, field) in v.iter_mut().zip(fields) {
        let ticks: u64 = field
            .parse()
            .map_err(|_| format!("bad value {field:?} in line {line:?}"))?;
        *slot = Some(ticks as f64 / USER_HZ);
    }
    let [Some(user), Some(nice), Some(system), Some(idle), iowait, irq, softirq, steal, guest, guest_nice] =
        v
    else {
        return Err(format!("fewer than 4 values in line {line:?}"));
    };
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

/// The `stat` families for a parsed `/proc/stat`, sorted by name; a line the kernel does not
/// have gives no family.
pub fn families(st: &ProcStat) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(6);
    let mut add = |value: Option<u64>, fam: MetricFamily| {
        if let Some(v) = value {
            out.push(fam.with(&[], v as f64));
        }
    };
    add(
        st.btime,
        MetricFamily::gauge("node_boot_time_seconds", "Node boot time, in unixtime."),
    );
    add(
        st.ctxt,
        MetricFamily::counter(
            "node_context_switches_total",
            "Total number of context switches.",
        ),
    );
    add(
        st.processes,
        MetricFamily::counter("node_forks_total", "Total number of forks."),
    );
    add(
        st.intr,
        MetricFamily::counter("node_intr_total", "Total number of interrupts serviced."),
    );
    add(
        st.procs_blocked,
        MetricFamily::gauge(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
        ),
    );
    add(
        st.procs_running,
        MetricFamily::gauge(
            "node_procs_running",
            "Number of processes in runnable state.",
        ),
    );
    out
}

/// Reads and parses `<procfs>/stat`.
pub fn read_stat(paths: &Paths, with_cpus: bool) -> Result<ProcStat, CollectError> {
    let path = paths.proc("stat");
    let text = read_to_string(&path)?;
    parse_stat(&text, with_cpus).map_err(|msg| CollectError::parse(&path, msg))
}

/// `node_softirqs_total{vector}` (node_exporter 1.12's `--collector.stat.softirq`); empty
/// when the kernel has no `softirq` line.
pub fn softirq_family(st: &ProcStat) -> MetricFamily {
    let mut fam = MetricFamily::counter("node_softirqs_total", "Number of softirq calls.");
    if let Some(v) = &st.softirq {
        for (name, value) in SOFTIRQ_VECTORS.iter().zip(v) {
            fam.push(&[("vector", *name)], *value as f64);
        }
    }
    fam
}

collector_options! {
    /// Options of the stat collector (`[collector.stat]` in the file).
    pub struct StatOptions {
        /// Export softirq calls per vector.
        #[arg(id = "collector.stat.softirq", long = "collector.stat.softirq",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub softirq: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(Stat {
        softirq: opts.stat.softirq.unwrap_or(false),
    })
}

#[derive(Default)]
pub struct Stat {
    /// `--collector.stat.softirq`.
    pub softirq: bool,
}

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let st = read_stat(paths, false)?;
        let mut fams = families(&st);
        if self.softirq {
            let fam = softirq_family(&st);
            if !fam.samples.is_empty() {
                fams.push(fam);
                fams.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        Ok(fams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN12: &str = include_str!("../../tests/fixtures/hosts/debian12-vm-6.18/proc/stat");
    const NODE_EXPORTER: &str =
        include_str!("../../tests/fixtures/hosts/node_exporter-fixture/proc/stat");

    fn names(fams: &[MetricFamily]) -> Vec<&str> {
        fams.iter().map(|f| &*f.name).collect()
    }

    #[test]
    fn debian12_scalars() {
        let st = parse_stat(DEBIAN12, false).expect("parses");
        assert!(st.cpus.is_empty(), "CPU lines skipped when not asked for");
        assert_eq!(st.btime, Some(1_795_477_669));
        assert_eq!(st.ctxt, Some(209_482));
        assert_eq!(st.processes, Some(6_038));
        assert_eq!(st.intr, Some(147_375));
        assert_eq!(st.procs_running, Some(1));
        assert_eq!(st.procs_blocked, Some(0));
    }

    #[test]
    fn debian12_cpus() {
        let st = parse_stat(DEBIAN12, true).expect("parses");
        assert_eq!(st.cpus.len(), 2);
        let (id, c1) = st.cpus[1];
        assert_eq!(id, 1);
        // cpu1 7582 0 1738 29292 193 0 36 26 0 0
        assert_eq!(c1.user, 75.82);
        assert_eq!(c1.system, 17.38);
        assert_eq!(c1.idle, 292.92);
        assert_eq!(c1.iowait, Some(1.93));
        assert_eq!(c1.softirq, Some(0.36));
        assert_eq!(c1.steal, Some(0.26));
        assert_eq!(c1.guest_nice, Some(0.0));
    }

    #[test]
    fn node_exporter_fixture() {
        let st = parse_stat(NODE_EXPORTER, true).expect("parses");
        assert_eq!(st.cpus.len(), 8);
        assert_eq!(st.btime, Some(1_418_183_276));
        assert_eq!(st.ctxt, Some(38_014_093));
        assert_eq!(st.processes, Some(26_442));
        assert_eq!(st.intr, Some(8_885_917));
        assert_eq!(st.procs_running, Some(2));
        assert_eq!(st.procs_blocked, Some(0));
        // cpu7 29098 268 10164 1139282 555 0 31 0 9 8
        let (id, c7) = st.cpus[7];
        assert_eq!(id, 7);
        assert_eq!(c7.user, 290.98);
        assert_eq!(c7.nice, 2.68);
        assert_eq!(c7.idle, 11392.82);
        assert_eq!(c7.guest, Some(0.09));
        assert_eq!(c7.guest_nice, Some(0.08));

        let fams = families(&st);
        assert_eq!(
            names(&fams),
            [
                "node_boot_time_seconds",
                "node_context_switches_total",
                "node_forks_total",
                "node_intr_total",
                "node_procs_blocked",
                "node_procs_running",
            ]
        );
        assert_eq!(fams[0].samples[0].value, 1_418_183_276.0);
        assert_eq!(fams[3].samples[0].value, 8_885_917.0);
        use crate::exposition::MetricType::{Counter, Gauge};
        let kinds: Vec<_> = fams.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Gauge, Counter, Counter, Counter, Gauge, Gauge]);
        assert_eq!(fams[0].help, "Node boot time, in unixtime.");
    }

    /// node_exporter 1.12's `/proc/stat` fixture: `node_softirqs_total` as its e2e output.
    #[test]
    fn softirq_vectors_node_exporter_112() {
        let text = include_str!("../../tests/fixtures/node_exporter_1.12/proc/stat");
        let st = parse_stat(text, false).expect("parses");
        let fam = softirq_family(&st);
        let got: Vec<(String, f64)> = fam
            .samples
            .iter()
            .map(|s| (s.labels[0].1.to_string(), s.value))
            .collect();
        let want = [
            ("hi", 250191.0),
            ("timer", 1481983.0),
            ("net_tx", 1647.0),
            ("net_rx", 211099.0),
            ("block", 186066.0),
            ("block_iopoll", 0.0),
            ("tasklet", 1783454.0),
            ("sched", 622196.0),
            ("hrtimer", 12499.0),
            ("rcu", 508444.0),
        ];
        assert_eq!(got.len(), want.len());
        for ((g, gv), (w, wv)) in got.iter().zip(want) {
            assert_eq!((g.as_str(), *gv), (w, wv));
        }
        assert!(parse_stat("softirq 1 2 3\n", false).is_err());
        assert_eq!(parse_stat("ctxt 1\n", false).expect("parses").softirq, None);
        let on = Stat { softirq: true };
        let off = Stat::default();
        let paths = Paths {
            procfs: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/node_exporter_1.12/proc"),
            ..Paths::default()
        };
        let has = |fams: Vec<MetricFamily>| fams.iter().any(|f| f.name == "node_softirqs_total");
        assert!(has(on.collect(&paths).expect("collects")));
        assert!(!has(off.collect(&paths).expect("collects")));
    }

    #[test]
    fn old_kernel_short_cpu_lines() {
        // 2.6.9-era line: no steal/guest columns (OpenVZ guests look like this too).
        let st = parse_stat(
            "cpu  1 2 3 4 5 6 7\ncpu0 100 200 300 400 500 600 700\n",
            true,
        )
        .expect("parses");
        let c = st.cpus[0].1;
        assert_eq!(c.user, 1.0);
        assert_eq!(c.softirq, Some(7.0));
        assert_eq!(c.steal, None);
        assert_eq!(c.guest, None);
        assert_eq!(st.btime, None);
        assert!(families(&st).is_empty());
    }

    #[test]
    fn garbled_is_an_error() {
        assert!(parse_stat("ctxt\n", false).is_err());
        assert!(parse_stat("btime abc\n", false).is_err());
        assert!(parse_stat("cpu0 1 2 x 4\n", true).is_err());
        assert!(parse_stat("cpu0 1 2\n", true).is_err());
        assert!(parse_stat("cpuX 1 2 3 4\n", true).is_err());
        // ... but CPU lines are not looked at when not needed, and unknown lines are ignored.
        assert!(parse_stat("cpu0 1 2\nnew_field 12\n\n", false).is_ok());
    }

    #[test]
    fn live() {
        let fams = Stat::default()
            .collect(&Paths::default())
            .expect("reads /proc/stat");
        assert_eq!(
            names(&fams),
            [
                "node_boot_time_seconds",
                "node_context_switches_total",
                "node_forks_total",
                "node_intr_total",
                "node_procs_blocked",
                "node_procs_running",
            ]
        );
        assert!(fams[0].samples[0].value > 1e9);
    }

    #[test]
    fn missing_file_is_an_error() {
        let paths = Paths {
            procfs: "/nonexistent".into(),
            ..Paths::default()
        };
        assert!(matches!(
            Stat::default().collect(&paths),
            Err(CollectError::Io { .. })
        ));
    }
}
