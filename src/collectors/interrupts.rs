//! `interrupts` collector: per-CPU interrupt counts from `/proc/interrupts` as
//! `node_interrupts_total{cpu,devices,info,type}`, as node_exporter 1.5's
//! `interrupts_linux.go`.
//!
//! The header's field count is the CPU count; a row with fewer than CPU count + 1 fields after
//! its `name:` is skipped (`ERR`, `MIS`); for numbered IRQs `info` is the controller field and
//! `devices` the rest joined by spaces, otherwise `info` is the rest. A name seen twice keeps
//! its last row.
//!
//! One deliberate difference from 1.5: the row is split at its first `:` before splitting on
//! whitespace (node_exporter's fix in 1.7). 1.5 splits on whitespace only, so on aarch64, where
//! a wide first count is glued to the name (`IPI0:2768808080 ...`), it shifts the columns, hits
//! a non-numeric "count" and fails the whole collector (`success 0`, plus whatever samples its
//! map iteration had sent). On every row with a space after the colon (all x86 rows) both
//! parsers give the same labels and values.
//!
//! node_exporter 1.12's flags:
//! - `--collector.interrupts.name-include` / `--collector.interrupts.name-exclude`: regexps
//!   matched (unanchored) against `TYPE;INFO;DEVICES` (e.g. `29;PCI-MSI-edge;eth0`); a row
//!   matching the exclude pattern or not matching the include pattern is skipped. As in 1.12
//!   both may be given (both apply, although its help calls them mutually exclusive), an
//!   empty pattern is none, and a skipped row's counts are not parsed.
//! - `--collector.interrupts.include-zeros` (default true): `=false` leaves out every sample
//!   whose count is 0.

use std::collections::BTreeMap;

use super::options::{collector_options, parse_bool, Pattern};
use super::{read_parsed, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the interrupts collector (`[collector.interrupts]` in the file).
    pub struct InterruptsOptions {
        /// Regexp of interrupts name to include (matched against TYPE;INFO;DEVICES; mutually
        /// exclusive to --collector.interrupts.name-exclude in node_exporter's words, both
        /// apply when both are given).
        #[arg(id = "collector.interrupts.name-include", long = "collector.interrupts.name-include", value_name = "REGEX")]
        pub name_include: Option<Pattern>,
        /// Regexp of interrupts name to exclude (matched against TYPE;INFO;DEVICES).
        #[arg(id = "collector.interrupts.name-exclude", long = "collector.interrupts.name-exclude", value_name = "REGEX")]
        pub name_exclude: Option<Pattern>,
        /// Include interrupts that have a zero value [default: true].
        #[arg(id = "collector.interrupts.include-zeros", long = "collector.interrupts.include-zeros",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub include_zeros: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.interrupts;
    Box::new(Interrupts(Filter {
        names: DeviceFilter::both(&o.name_include, &o.name_exclude),
        include_zeros: o.include_zeros.unwrap_or(true),
    }))
}

/// What the flags select: rows by `TYPE;INFO;DEVICES`, and whether zero counts are kept.
#[derive(Debug, Clone)]
pub struct Filter {
    pub names: DeviceFilter,
    pub include_zeros: bool,
}

impl Default for Filter {
    /// node_exporter's defaults: every row, zeros included.
    fn default() -> Self {
        Filter {
            names: DeviceFilter::default(),
            include_zeros: true,
        }
    }
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
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let parts: Vec<&str> = rest.split_ascii_whitespace().collect();
        let (Some(values), Some(rest)) = (parts.get(..cpus), parts.get(cpus..)) else {
            continue;
        };
        let Some((first, others)) = rest.split_first() else {
            continue;
        };
        let name = name.trim_start_matches(' ').to_string();
        let (info, devices) = if name.parse::<i64>().is_ok() {
            (first.to_string(), others.join(" "))
        } else {
            (rest.join(" "), String::new())
        };
        out.insert(
            name,
            Row {
                info,
                devices,
                values: values.to_vec(),
            },
        );
    }
    Ok(out)
}

pub fn family(rows: &BTreeMap<String, Row<'_>>, filter: &Filter) -> Result<MetricFamily, String> {
    let mut fam = MetricFamily::counter("node_interrupts_total", "Interrupt details.");
    for (name, row) in rows {
        // 1.12 filters before parsing: a skipped row's counts are never read.
        let filter_name = format!("{name};{};{}", row.info, row.devices);
        if filter.names.ignored(&filter_name) {
            log::debug!("ignoring interrupt name {filter_name}");
            continue;
        }
        for (cpu, v) in row.values.iter().enumerate() {
            let v: f64 = v
                .parse()
                .map_err(|_| format!("invalid value {v:?} in interrupts"))?;
            if !filter.include_zeros && v == 0.0 {
                continue;
            }
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

#[derive(Default)]
pub struct Interrupts(pub Filter);

impl Collector for Interrupts {
    fn name(&self) -> &'static str {
        "interrupts"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        read_parsed(&paths.proc("interrupts"), |text| {
            Ok::<_, String>(vec![family(&parse_interrupts(text)?, &self.0)?])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

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
        assert!(family(&bad, &Filter::default()).is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let fams = Interrupts::default()
            .collect(&procfs("procmisc", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-interrupts.txt");
    }

    #[test]
    fn aarch64_glued_name() {
        // node_exporter 1.5 fails on this file (see the module doc); every row it parses right
        // comes out the same here, and the glued `IPI0` row is read correctly.
        let text = render(
            Interrupts::default()
                .collect(&procfs("procmisc", "node_exporter/proc"))
                .expect("collects"),
        );
        let expected =
            include_str!("../../tests/fixtures/procmisc/expected/node_exporter-interrupts.txt");
        for line in expected.lines().filter(|l| !l.contains("IPI0")) {
            assert!(text.contains(&format!("{line}\n")), "{line}");
        }
        assert!(text.contains(
            "node_interrupts_total{cpu=\"0\",devices=\"\",info=\"Rescheduling interrupts\",type=\"IPI0\"} 2.76880808e+09\n"
        ));
        assert!(text.contains(
            "node_interrupts_total{cpu=\"0\",devices=\"3 Edge ACPI:Event\",info=\"ARMH0061:00\",type=\"50\"} 0\n"
        ));
        assert_eq!(text.lines().count(), 2 + 8 * 11);
    }

    /// node_exporter 1.12's `/proc/interrupts` fixture (4 CPUs, 28 rows: the 112
    /// `node_interrupts_total` samples of its `e2e-output.txt`, 38 of them 0).
    fn ne112() -> Paths {
        crate::collectors::testutil::procfs_at(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/node_exporter_1.12/proc"),
        )
    }

    fn collect_with(f: Filter) -> Vec<(String, String, f64)> {
        let fams = Interrupts(f).collect(&ne112()).expect("collects");
        let label = |s: &crate::exposition::Sample, k: &str| {
            s.labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        fams[0]
            .samples
            .iter()
            .map(|s| (label(s, "type"), label(s, "devices"), s.value))
            .collect()
    }

    fn pattern(p: &str) -> Option<crate::collectors::options::Pattern> {
        Some(p.parse().expect("pattern"))
    }

    #[test]
    fn node_exporter_112_flags() {
        let all = collect_with(Filter::default());
        assert_eq!(all.len(), 112);
        assert_eq!(all.iter().filter(|s| s.2 == 0.0).count(), 38);

        // --collector.interrupts.include-zeros=false: the 38 zero samples go, no other.
        let nonzero = collect_with(Filter {
            include_zeros: false,
            ..Filter::default()
        });
        assert_eq!(nonzero.len(), 112 - 38);
        assert!(nonzero.iter().all(|s| s.2 != 0.0));
        // The timer (IRQ 0) counts 18 on CPU0 and 0 elsewhere: one sample left.
        assert_eq!(nonzero.iter().filter(|s| s.0 == "0").count(), 1);

        // name-include matches TYPE;INFO;DEVICES, unanchored: `i8042` is IRQs 1 and 12.
        let o = InterruptsOptions {
            name_include: pattern(";i8042$"),
            ..InterruptsOptions::default()
        };
        let f = Filter {
            names: DeviceFilter::both(&o.name_include, &o.name_exclude),
            include_zeros: true,
        };
        let got = collect_with(f);
        assert_eq!(got.len(), 2 * 4);
        assert!(got.iter().all(|s| s.1 == "i8042"), "{got:?}");
        // The type is matched too: `^NMI;` is the non-maskable interrupts row.
        let o = InterruptsOptions {
            name_include: pattern("^NMI;"),
            ..InterruptsOptions::default()
        };
        let got = collect_with(Filter {
            names: DeviceFilter::both(&o.name_include, &o.name_exclude),
            include_zeros: true,
        });
        assert_eq!(
            got.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["NMI"; 4]
        );

        // name-exclude: every row whose info says APIC goes (IRQs 0-23 and the "APIC ..." rows).
        let o = InterruptsOptions {
            name_exclude: pattern("APIC"),
            ..InterruptsOptions::default()
        };
        let got = collect_with(Filter {
            names: DeviceFilter::both(&o.name_include, &o.name_exclude),
            include_zeros: true,
        });
        assert!(got.len() < 112 && !got.is_empty());
        assert!(got
            .iter()
            .all(|s| !["0", "1", "8", "9", "12", "16", "23"].contains(&s.0.as_str())));
        // Both (1.12 applies both) and an empty pattern (none): the xhci row only.
        let o = InterruptsOptions {
            name_include: pattern("MSI"),
            name_exclude: pattern("dmar|ahci|i915|iwlwifi|mei|snd"),
            ..InterruptsOptions::default()
        };
        let got = collect_with(Filter {
            names: DeviceFilter::both(&o.name_include, &o.name_exclude),
            include_zeros: true,
        });
        assert_eq!(
            got.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
            ["xhci_hcd"; 4]
        );
        let empty = DeviceFilter::both(&pattern(""), &pattern(""));
        assert!(!empty.ignored("anything"));

        // A filtered-out row is never parsed (1.12 filters first): no error for its garbage.
        let bad =
            parse_interrupts("CPU0\n 1: x IO-APIC timer\n 2: 5 IO-APIC ok\n").expect("parses");
        let f = Filter {
            names: DeviceFilter::both(&None, &pattern("timer")),
            include_zeros: true,
        };
        assert_eq!(
            family(&bad, &f).expect("only row 2 is read").samples.len(),
            1
        );
    }

    #[test]
    fn options_from_flags_and_file() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "monitoring-agent",
            "--collector.interrupts.include-zeros=false",
            "--collector.interrupts.name-include=eth",
        ])
        .expect("parses");
        let o = &cli.collector.interrupts;
        assert_eq!(o.include_zeros, Some(false));
        assert_eq!(o.name_include, pattern("eth"));
        let file: InterruptsOptions =
            toml::from_str("include_zeros = false\nname_exclude = \"^LOC;\"\n").expect("toml");
        assert_eq!(file.include_zeros, Some(false));
        assert_eq!(file.name_exclude, pattern("^LOC;"));
    }

    #[test]
    fn live() {
        let fams = Interrupts::default()
            .collect(&Paths::default())
            .expect("reads interrupts");
        assert!(!fams[0].samples.is_empty());
    }
}
