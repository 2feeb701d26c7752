//! `interrupts` collector: per-CPU interrupt counts from `/proc/interrupts` as
//! `node_interrupts_total{cpu,devices,info,type}`, as node_exporter 1.5's
//! `interrupts_linux.go`.
//!
//! 1.5's parser, reproduced exactly: the header's field count is the CPU count; a row with
//! fewer than CPU count + 2 fields is skipped (`ERR`, `MIS`); the name is the first field
//! minus its last character; for numbered IRQs `info` is the controller field and `devices`
//! the rest joined by spaces, otherwise `info` is the rest. A name seen twice keeps its last
//! row. 1.5 splits on whitespace only, so where aarch64 kernels glue the first count to the
//! name (`IPI0:2768808080 ...`) it exports the same shifted labels node_exporter 1.5 does
//! (fixed upstream in 1.7 by splitting on the first `:`).

use std::collections::BTreeMap;

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::collectors::textfile::sort_samples;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Interrupts)
}

/// One row: its `info` and `devices` labels and the per-CPU counts as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub info: String,
    pub devices: String,
    pub values: Vec<&'a str>,
}

pub fn parse_interrupts(text: &str) -> Result<BTreeMap<String, Row<'_>>, String> {
    let mut lines = text.lines();
    let cpus = lines
        .next()
        .ok_or("interrupts empty")?
        .split_ascii_whitespace()
        .count();
    let mut out = BTreeMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        if parts.len() < cpus + 2 {
            continue;
        }
        let first = parts[0];
        let name = first
            .char_indices()
            .last()
            .map_or("", |(i, _)| &first[..i])
            .to_string();
        let rest = &parts[cpus + 1..];
        let (info, devices) = if name.parse::<i64>().is_ok() {
            (rest[0].to_string(), rest[1..].join(" "))
        } else {
            (rest.join(" "), String::new())
        };
        out.insert(
            name,
            Row {
                info,
                devices,
                values: parts[1..=cpus].to_vec(),
            },
        );
    }
    Ok(out)
}

pub fn family(rows: &BTreeMap<String, Row<'_>>) -> Result<MetricFamily, String> {
    let mut fam = MetricFamily::counter("node_interrupts_total", "Interrupt details.");
    for (name, row) in rows {
        for (cpu, v) in row.values.iter().enumerate() {
            let v: f64 = v
                .parse()
                .map_err(|_| format!("invalid value {v:?} in interrupts"))?;
            fam.push(
                &[
                    ("cpu", &cpu.to_string()),
                    ("devices", &row.devices),
                    ("info", &row.info),
                    ("type", name),
                ],
                v,
            );
        }
    }
    sort_samples(&mut fam);
    Ok(fam)
}

struct Interrupts;

impl Collector for Interrupts {
    fn name(&self) -> &'static str {
        "interrupts"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("interrupts");
        let text = read_to_string(&path)?;
        let rows = parse_interrupts(&text).map_err(|m| CollectError::parse(&path, m))?;
        Ok(vec![family(&rows).map_err(|m| CollectError::parse(&path, m))?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::textfile::render;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/procmisc");

    fn at(tree: &str) -> Paths {
        Paths {
            procfs: format!("{FIXTURES}/{tree}/proc").into(),
            ..Paths::default()
        }
    }

    #[test]
    fn parses() {
        let rows = parse_interrupts(include_str!(
            "../../tests/fixtures/procmisc/debian12-vm-6.18/proc/interrupts"
        ))
        .expect("parses");
        assert_eq!(
            rows["28"],
            Row {
                info: "PCI-MSIX-0000:00:01.0".into(),
                devices: "0-edge virtio0-config".into(),
                values: vec!["0", "0"]
            }
        );
        assert_eq!(rows["LOC"].info, "Local timer interrupts");
        assert_eq!(rows["LOC"].devices, "");
        // `ERR:` and `MIS:` have one count for all CPUs: skipped.
        assert!(!rows.contains_key("ERR"));
        assert!(parse_interrupts("").is_err());
        let bad = parse_interrupts("CPU0\n 1: x IO-APIC timer\n").expect("parses");
        assert!(family(&bad).is_err());
    }

    #[test]
    fn fixtures_match_node_exporter() {
        for (tree, expected) in [
            (
                "debian12-vm-6.18",
                include_str!("../../tests/fixtures/procmisc/expected/debian12-interrupts.txt"),
            ),
            (
                "node_exporter",
                include_str!("../../tests/fixtures/procmisc/expected/node_exporter-interrupts.txt"),
            ),
        ] {
            let fams = Interrupts.collect(&at(tree)).expect("collects");
            assert_eq!(render(fams), expected, "{tree}");
        }
    }

    #[test]
    fn live() {
        let fams = Interrupts.collect(&Paths::default()).expect("reads interrupts");
        assert!(!fams[0].samples.is_empty());
    }
}
