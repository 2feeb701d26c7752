//! `pressure` collector: pressure stall information from `/proc/pressure/{cpu,io,memory}`, as
//! node_exporter 1.5's `pressure_linux.go` (prometheus/procfs `PSIStatsForResource`).
//!
//! It exports the `some` total of `cpu`, both totals of `io` and `memory` and (node_exporter
//! 1.12) the `full` total of `irq` (kernel 6.1+, no `some` line), in seconds (`total` is in
//! microseconds; converted as `total / 1000.0 / 1000.0`, the same float operations as
//! node_exporter, so values print identically). The `cpu` `full` line is not exported.
//!
//! As 1.12: an absent resource file is skipped, and only when none is there (kernel < 4.20,
//! `CONFIG_PSI=n`) is it node_exporter's `ErrNoData` (`node_scrape_collector_success 0`); 1.5
//! failed on the first absent file. `EOPNOTSUPP` (`psi=0`) or a file without its `some`/`full`
//! line is `ErrNoData`, keeping the resources read before it.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Pressure)
}

/// The `total=` values (microseconds) of one resource's `some` and `full` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Psi {
    pub some: Option<u64>,
    pub full: Option<u64>,
}

/// Parses a `/proc/pressure/<resource>` file. Lines other than `some`/`full` are ignored (as
/// procfs does, for future kinds); a `some`/`full` line not of the form
/// `avg10=F avg60=F avg300=F total=N` is an error.
pub fn parse_psi(text: &str) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let slot = match fields.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        let mut total = None;
        for (i, key) in ["avg10=", "avg60=", "avg300=", "total="].iter().enumerate() {
            let v = fields
                .next()
                .and_then(|f| f.strip_prefix(key))
                .ok_or_else(|| format!("bad PSI line {line:?}"))?;
            if i < 3 {
                v.parse::<f64>()
                    .map_err(|_| format!("bad {key} in PSI line {line:?}"))?;
            } else {
                total = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("bad total in PSI line {line:?}"))?,
                );
            }
        }
        *slot = total;
    }
    Ok(psi)
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1000.0 / 1000.0
}

struct Pressure;

impl Collector for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut out = Vec::with_capacity(6);
        for res in ["cpu", "io", "memory", "irq"] {
            let path = paths.proc(&format!("pressure/{res}"));
            let psi = match read_parsed(&path, parse_psi).map_err(CollectError::absent_is_no_data) {
                Ok(psi) => psi,
                // 1.12: an absent resource file is skipped (irq needs kernel 6.1+).
                Err(CollectError::NoData { .. }) => continue,
                Err(e) if is_not_supported(&e) => {
                    return Err(CollectError::partial(
                        out,
                        CollectError::NoData {
                            what: format!("{} (psi=0)", path.display()),
                        },
                    ))
                }
                Err(e) => return Err(CollectError::partial(out, e)),
            };
            // IRQ pressure has no `some` line, CPU's `full` line is not exported.
            let (some, full) = match (res, psi.some, psi.full) {
                ("irq", _, Some(full)) => (0, full),
                ("cpu", Some(some), _) => (some, 0),
                (_, Some(some), Some(full)) => (some, full),
                _ => {
                    return Err(CollectError::partial(
                        out,
                        CollectError::NoData {
                            what: format!("{} has no some/full data", path.display()),
                        },
                    ))
                }
            };
            let (some, full) = (seconds(some), seconds(full));
            match res {
                "cpu" => out.push(
                    MetricFamily::counter(
                        "node_pressure_cpu_waiting_seconds_total",
                        "Total time in seconds that processes have waited for CPU time",
                    )
                    .with(&[], some),
                ),
                "io" => {
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_io_waiting_seconds_total",
                            "Total time in seconds that processes have waited due to IO congestion",
                        )
                        .with(&[], some),
                    );
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_io_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to IO congestion",
                        )
                        .with(&[], full),
                    );
                }
                "memory" => {
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_memory_waiting_seconds_total",
                            "Total time in seconds that processes have waited for memory",
                        )
                        .with(&[], some),
                    );
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_memory_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to memory congestion",
                        )
                        .with(&[], full),
                    );
                }
                _ => out.push(
                    MetricFamily::counter(
                        "node_pressure_irq_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to IRQ congestion",
                    )
                    .with(&[], full),
                ),
            }
        }
        if out.is_empty() {
            return Err(CollectError::NoData {
                what: format!("{} has no resource files", paths.proc("pressure").display()),
            });
        }
        Ok(out)
    }
}

/// `EOPNOTSUPP` (booted with `psi=0`): node_exporter's `ErrNoData`.
fn is_not_supported(e: &CollectError) -> bool {
    matches!(e, CollectError::Io { source, .. } if source.raw_os_error() == Some(95))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn parses() {
        let io = include_str!("../../tests/fixtures/procmisc/debian12-vm-6.18/proc/pressure/io");
        assert_eq!(
            parse_psi(io),
            Ok(Psi {
                some: Some(10_009_235),
                full: Some(7_351_311)
            })
        );
        // An old kernel's cpu file has no `full` line; unknown kinds are skipped.
        assert_eq!(
            parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nirq x\n"),
            Ok(Psi {
                some: Some(5),
                full: None
            })
        );
        assert!(parse_psi("some avg10=0.00 avg60=0.00 total=5\n").is_err());
        assert!(parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=-5\n").is_err());
        assert!(parse_psi("full avg10=x avg60=0.00 avg300=0.00 total=5\n").is_err());
        // The same float steps as node_exporter: 7076890 µs prints as 7.076890000000001.
        assert_eq!(seconds(7_076_890).to_string(), "7.076890000000001");
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let fams = Pressure
            .collect(&procfs("procmisc", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-pressure.txt");
        // node_exporter's older fixtures lack `memory`: 1.12 skips an absent resource file.
        let fams = Pressure
            .collect(&procfs("procmisc", "node_exporter/proc"))
            .expect("collects what is there");
        assert!(fams.iter().all(|f| !f.name.contains("memory")));
        assert!(matches!(
            Pressure.collect(&procfs("procmisc", "nowhere")),
            Err(CollectError::NoData { .. })
        ));
    }

    #[test]
    fn irq_has_only_full() {
        // node_exporter 1.12's fixture (collector/fixtures/proc/pressure/irq).
        let psi = parse_psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=8494\n").expect("parses");
        assert_eq!(
            psi,
            Psi {
                some: None,
                full: Some(8494)
            }
        );
        assert_eq!(seconds(8494).to_string(), "0.008494");
    }
}
