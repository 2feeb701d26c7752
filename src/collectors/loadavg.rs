//! `loadavg` collector: `node_load1`, `node_load5`, `node_load15` from `/proc/loadavg`, as
//! node_exporter 1.5's `loadavg.go`/`loadavg_linux.go`.

use super::{read_parsed, CollectError, Collector, Paths};
use crate::exposition::MetricFamily;

/// The 1, 5 and 15 minute load averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loads {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Parses `/proc/loadavg` (`0.06 0.27 0.15 1/81 6037`): the first three fields.
pub fn parse_loadavg(text: &str) -> Result<Loads, String> {
    let mut fields = text.split_ascii_whitespace();
    let mut next = || -> Result<f64, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("fewer than 3 fields in {text:?}"))?;
        field
            .parse()
            .map_err(|_| format!("bad load {field:?} in {text:?}"))
    };
    Ok(Loads {
        load1: next()?,
        load5: next()?,
        load15: next()?,
    })
}

/// The families, sorted by name as node_exporter's output is.
pub fn families(l: &Loads) -> Vec<MetricFamily> {
    vec![
        MetricFamily::gauge("node_load1", "1m load average.").with(&[], l.load1),
        MetricFamily::gauge("node_load15", "15m load average.").with(&[], l.load15),
        MetricFamily::gauge("node_load5", "5m load average.").with(&[], l.load5),
    ]
}

pub struct LoadAvg;

impl Collector for LoadAvg {
    fn name(&self) -> &'static str {
        "loadavg"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("loadavg");
        let l = read_parsed(&path, parse_loadavg)?;
        Ok(families(&l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian12() {
        let l = parse_loadavg(include_str!(
            "../../tests/fixtures/hosts/debian12-vm-6.18/proc/loadavg"
        ))
        .expect("parses");
        assert_eq!(
            l,
            Loads {
                load1: 0.06,
                load5: 0.27,
                load15: 0.15
            }
        );
        let fams = families(&l);
        let got: Vec<_> = fams
            .iter()
            .map(|f| (&*f.name, &*f.help, f.samples[0].value))
            .collect();
        assert_eq!(
            got,
            [
                ("node_load1", "1m load average.", 0.06),
                ("node_load15", "15m load average.", 0.15),
                ("node_load5", "5m load average.", 0.27),
            ]
        );
    }

    #[test]
    fn garbled() {
        assert!(parse_loadavg("").is_err());
        assert!(parse_loadavg("0.1 0.2\n").is_err());
        assert!(parse_loadavg("0.1 x 0.3 1/2 3\n").is_err());
    }

    #[test]
    fn live() {
        let fams = LoadAvg
            .collect(&Paths::default())
            .expect("reads /proc/loadavg");
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        assert_eq!(names, ["node_load1", "node_load15", "node_load5"]);
        assert!(fams.iter().all(|f| f.samples[0].value >= 0.0));
    }
}
