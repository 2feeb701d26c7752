//! `cpufreq` collector: CPU frequencies from `/sys/devices/system/cpu/cpu*/cpufreq`, as
//! node_exporter 1.5's `cpufreq_linux.go` (kHz in sysfs, hertz here):
//!
//! - `node_cpu_frequency_hertz{cpu}` (`cpuinfo_cur_freq`, root-only on most kernels: absent
//!   after the privilege drop, as for node_exporter run as its packaged user),
//!   `node_cpu_frequency_min_hertz`, `node_cpu_frequency_max_hertz` (`cpuinfo_{min,max}_freq`);
//! - `node_cpu_scaling_frequency_hertz`, `node_cpu_scaling_frequency_min_hertz`,
//!   `node_cpu_scaling_frequency_max_hertz` (`scaling_{cur,min,max}_freq`).
//!
//! A file that is missing or unreadable (permission) gives no sample; one that is not a number
//! fails the collector. CPUs without a `cpufreq` directory (virtual machines, as this one) give
//! nothing, and success.
//!
//! node_exporter 1.12 semantics: `node_cpu_scaling_governor{cpu,governor}`, one sample per
//! governor of `scaling_available_governors` (split on spaces, as 1.12), 1 for the one named
//! by `scaling_governor`, 0 for the others; none when `scaling_governor` is empty.
//!
//! Deviation: node_exporter (procfs) also reads `scaling_driver`, `related_cpus` and
//! `scaling_setspeed` without exporting them, and fails when one of its string files is
//! missing; here a missing or unreadable governor file only leaves the governor samples out.

use std::path::Path;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

/// (file, family, help), in output order.
const FILES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
];

/// Parses a frequency file (kHz, decimal) into hertz.
pub fn parse_khz(text: &str) -> Result<f64, String> {
    let t = text.trim();
    t.parse::<u64>()
        .map(|khz| khz as f64 * 1000.0)
        .map_err(|_| format!("not a frequency in kHz: {t:?}"))
}

/// The six values of one CPU's `cpufreq` directory, in [`FILES`] order.
fn read_cpu(dir: &Path) -> Result<[Option<f64>; 6], CollectError> {
    let mut out = [None; 6];
    for (slot, (file, _, _)) in out.iter_mut().zip(FILES) {
        let path = dir.join(file);
        match super::fsio::read_to_string(&path) {
            Ok(t) => *slot = Some(parse_khz(&t).map_err(|m| CollectError::parse(&path, m))?),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => return Err(CollectError::io(&path, e)),
        }
    }
    Ok(out)
}

/// `scaling_governor` and `scaling_available_governors`, trimmed; `None` when either is
/// missing or unreadable (permission).
fn read_governors(dir: &Path) -> Result<Option<(String, String)>, CollectError> {
    let mut out = [String::new(), String::new()];
    for (slot, file) in out
        .iter_mut()
        .zip(["scaling_governor", "scaling_available_governors"])
    {
        let path = dir.join(file);
        match super::fsio::read_to_string(&path) {
            Ok(t) => *slot = t.trim().to_string(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(CollectError::io(&path, e)),
        }
    }
    let [current, available] = out;
    Ok(Some((current, available)))
}

/// node_exporter 1.12's `node_cpu_scaling_governor`: each available governor (split on single
/// spaces, as Go's `strings.SplitSeq`), 1 for the current one; nothing when none is current.
pub fn governor_samples(fam: &mut MetricFamily, cpu: &str, current: &str, available: &str) {
    if current.is_empty() {
        return;
    }
    for g in available.split(' ') {
        fam.push(
            &[("cpu", cpu), ("governor", g)],
            if g == current { 1.0 } else { 0.0 },
        );
    }
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Cpufreq)
}

struct Cpufreq;

impl Collector for Cpufreq {
    fn name(&self) -> &'static str {
        "cpufreq"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let root = paths.sys("devices/system/cpu");
        let mut fams: Vec<MetricFamily> = FILES
            .iter()
            .map(|(_, name, help)| MetricFamily::gauge(*name, *help))
            .collect();
        let mut governor = MetricFamily::gauge(
            "node_cpu_scaling_governor",
            "Current enabled CPU frequency governor.",
        );
        let entries = match crate::collector::read_dir(&root) {
            Ok(e) => e,
            // procfs globs `cpu[0-9]*`: no directory, no match, no error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CollectError::io(&root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::io(&root, e))?;
            let name = entry.file_name();
            let Some(cpu) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else {
                continue;
            };
            if !cpu.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let dir = entry.path().join("cpufreq");
            match crate::collector::metadata(&dir) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CollectError::io(&dir, e)),
            }
            for (fam, v) in fams.iter_mut().zip(read_cpu(&dir)?) {
                if let Some(v) = v {
                    fam.push(&[("cpu", cpu)], v);
                }
            }
            if let Some((current, available)) = read_governors(&dir)? {
                governor_samples(&mut governor, cpu, &current, &available);
            }
        }
        fams.push(governor);
        Ok(nonempty_sorted(fams))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_khz("1699981\n"), Ok(1_699_981_000.0));
        assert!(parse_khz("<unknown>\n").is_err());
        assert!(parse_khz("").is_err());
    }

    /// Two CPUs with cpufreq (the second without the root-only `cpuinfo_cur_freq`) and one
    /// without, against node_exporter 1.5.0's output for the same tree (all but the governor
    /// family, which 1.5 does not have: see `governors_as_node_exporter_112`).
    #[test]
    fn fixture_matches_node_exporter() {
        let mut fams = Cpufreq.collect(&paths()).expect("collects");
        fams.retain(|f| f.name != "node_cpu_scaling_governor");
        assert_eq!(
            encoded(fams),
            golden(&["node_cpu_frequency_", "node_cpu_scaling_frequency"])
        );
    }

    /// node_exporter 1.12's governor family (1.5 has none), on the same tree.
    #[test]
    fn governors_as_node_exporter_112() {
        let fams = Cpufreq.collect(&paths()).expect("collects");
        let gov = fams
            .iter()
            .find(|f| f.name == "node_cpu_scaling_governor")
            .expect("governor family");
        let got: Vec<String> = gov
            .samples
            .iter()
            .map(|s| format!("{:?} {}", s.labels, s.value))
            .collect();
        assert!(!got.is_empty());
        for s in &gov.samples {
            assert!(s.value == 0.0 || s.value == 1.0, "{got:?}");
        }
        let mut fam = MetricFamily::gauge("node_cpu_scaling_governor", "h");
        governor_samples(&mut fam, "0", "powersave", "performance powersave");
        assert_eq!(fam.samples.len(), 2);
        assert_eq!(fam.samples[0].value, 0.0);
        assert_eq!(fam.samples[1].value, 1.0);
        let mut none = MetricFamily::gauge("node_cpu_scaling_governor", "h");
        governor_samples(&mut none, "0", "", "performance powersave");
        assert!(none.samples.is_empty());
    }

    #[test]
    fn live() {
        // True on every host: success, with samples exactly where the kernel has cpufreq
        // (this VM has none: nothing, as node_exporter). The fixture test covers the values.
        let p = Paths::default();
        let fams = Cpufreq.collect(&p).expect("collects");
        let any_cpufreq = crate::collector::read_dir(p.sys("devices/system/cpu"))
            .expect("read /sys/devices/system/cpu")
            .filter_map(Result::ok)
            .any(|e| e.path().join("cpufreq").is_dir());
        assert_eq!(
            fams.iter().any(|f| !f.samples.is_empty()),
            any_cpufreq,
            "{fams:?}"
        );
    }
}
