//! `pressure` collector: pressure stall information from `/proc/pressure/{cpu,io,memory}`, as
//! node_exporter 1.5's `pressure_linux.go` (prometheus/procfs `PSIStatsForResource`).
//!
//! 1.5 exports the `some` total of `cpu` and both totals of `io` and `memory`, in seconds
//! (`total` is in microseconds; converted as `total / 1000.0 / 1000.0`, the same float
//! operations as node_exporter, so values print identically). `/proc/pressure/irq` (kernel 6.1+)
//! and the `cpu` `full` line are not exported by 1.5.
//!
//! A missing file (kernel < 4.20, `CONFIG_PSI=n`) or `EOPNOTSUPP` (`psi=0`) is node_exporter's
//! `ErrNoData`, which reports `node_scrape_collector_success 0`: this collector fails then too.
//! (node_exporter keeps the resources read before the missing one; a failed collector here
//! exports nothing.)

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
        let mut out = Vec::with_capacity(5);
        for res in ["cpu", "io", "memory"] {
            let path = paths.proc(&format!("pressure/{res}"));
            let psi = read_parsed(&path, parse_psi).map_err(CollectError::absent_is_no_data)?;
            let need = |v: Option<u64>, kind: &str| {
                v.map(seconds)
                    .ok_or_else(|| CollectError::parse(&path, format!("no {kind:?} line")))
            };
            match res {
                "cpu" => out.push(
                    MetricFamily::counter(
                        "node_pressure_cpu_waiting_seconds_total",
                        "Total time in seconds that processes have waited for CPU time",
                    )
                    .with(&[], need(psi.some, "some")?),
                ),
                "io" => {
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_io_waiting_seconds_total",
                            "Total time in seconds that processes have waited due to IO congestion",
                        )
                        .with(&[], need(psi.some, "some")?),
                    );
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_io_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to IO congestion",
                        )
                        .with(&[], need(psi.full, "full")?),
                    );
                }
                _ => {
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_memory_waiting_seconds_total",
                            "Total time in seconds that processes have waited for memory",
                        )
                        .with(&[], need(psi.some, "some")?),
                    );
                    out.push(
                        MetricFamily::counter(
                            "node_pressure_memory_stalled_seconds_total",
                            "Total time in seconds no process could make progress due to memory congestion",
                        )
                        .with(&[], need(psi.full, "full")?),
                    );
                }
            }
        }
        Ok(out)
    }
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
        // node_exporter's fixtures lack `memory`: ErrNoData there, a failure here.
        assert!(Pressure
            .collect(&procfs("procmisc", "node_exporter/proc"))
            .is_err());
    }
}
