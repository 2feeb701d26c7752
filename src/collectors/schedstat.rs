//! `schedstat` collector: per-CPU scheduler statistics from `/proc/schedstat`, as
//! node_exporter 1.5's `schedstat_linux.go` (prometheus/procfs `Schedstat`).
//!
//! Only the `cpu<N>` lines are used: fields 7-9 (time running, time waiting, timeslices;
//! nanoseconds since CFS, whatever the kernel documentation says). A missing file
//! (`CONFIG_SCHEDSTATS=n`, as on this project's VM) is node_exporter's `ErrNoData`:
//! `node_scrape_collector_success 0`, so this collector fails then.

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Schedstat)
}

/// One `cpu<N>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub cpu: String,
    pub running_ns: u64,
    pub waiting_ns: u64,
    pub timeslices: u64,
}

/// Parses `/proc/schedstat`. As procfs' regex (`cpu(\d+)` then nine single-space-separated
/// numbers), a line that does not fit is skipped rather than an error.
pub fn parse_schedstat(text: &str) -> Vec<Cpu> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let Some(cpu) = fields.next().filter(|c| is_digits(c)) else {
            continue;
        };
        let nums: Vec<&str> = fields.take(9).collect();
        let &[.., running_ns, waiting_ns, timeslices] = nums.as_slice() else {
            continue;
        };
        if nums.len() != 9 || !nums.iter().all(|n| is_digits(n)) {
            continue;
        }
        let (Ok(running_ns), Ok(waiting_ns), Ok(timeslices)) =
            (running_ns.parse(), waiting_ns.parse(), timeslices.parse())
        else {
            continue;
        };
        out.push(Cpu {
            cpu: cpu.to_string(),
            running_ns,
            waiting_ns,
            timeslices,
        });
    }
    out
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn families(cpus: &[Cpu]) -> Vec<MetricFamily> {
    let mut running = MetricFamily::counter(
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
    );
    let mut waiting = MetricFamily::counter(
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
    );
    let mut slices = MetricFamily::counter(
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
    );
    for c in cpus {
        running.push(&[("cpu", &c.cpu)], c.running_ns as f64 / 1e9);
        waiting.push(&[("cpu", &c.cpu)], c.waiting_ns as f64 / 1e9);
        slices.push(&[("cpu", &c.cpu)], c.timeslices as f64);
    }
    let mut out = vec![running, slices, waiting];
    out.iter_mut().for_each(sort_samples);
    out
}

struct Schedstat;

impl Collector for Schedstat {
    fn name(&self) -> &'static str {
        "schedstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("schedstat");
        let text = super::fsio::read_to_string(&path)
            .map_err(|e| CollectError::io(&path, e).absent_is_no_data())?;
        Ok(families(&parse_schedstat(&text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn parses() {
        let cpus = parse_schedstat(include_str!(
            "../../tests/fixtures/procmisc/node_exporter/proc/schedstat"
        ));
        assert_eq!(
            cpus[1],
            Cpu {
                cpu: "1".into(),
                running_ns: 1_904_686_152_592_476,
                waiting_ns: 364_107_263_788_241,
                timeslices: 5_145_567_945
            }
        );
        assert_eq!(cpus.len(), 2);
        assert!(parse_schedstat("cpu0 1 2 3\ncpux 1 2 3 4 5 6 7 8 9\n").is_empty());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "node_exporter/proc");
        let fams = Schedstat.collect(&paths).expect("collects");
        assert_golden(
            render(fams),
            "procmisc",
            "expected/node_exporter-schedstat.txt",
        );
        // Absent (this VM's kernel has no CONFIG_SCHEDSTATS): ErrNoData, success 0.
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        assert!(Schedstat.collect(&paths).is_err());
    }

    #[test]
    fn live() {
        let r = Schedstat.collect(&Paths::default());
        assert_eq!(r.is_ok(), std::path::Path::new("/proc/schedstat").exists());
    }
}
