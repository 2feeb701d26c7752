//! `rapl` collector: Intel/AMD RAPL energy counters from `/sys/class/powercap`, as node_exporter
//! 1.5's `rapl_linux.go` (default, without `--collector.rapl.enable-zone-label`).
//!
//! - `node_rapl_<zone>_joules_total{index,path}` (counter, joules) for every powercap entry that
//!   has a `name` file: `package-0` → zone `package`, index 0; a name without a `-<n>` suffix
//!   (`core`, `dram`) is indexed by how often it was seen before; the zone is sanitized for the
//!   metric name (`package-0-die-0` → `package_0_die_0`); `path` is
//!   `<sysfs>/class/powercap/<entry>`.
//!
//! **Permissions:** since Linux 5.10 `energy_uj` is readable by root only (CVE-2020-8694). After
//! the privilege drop its read fails with `EACCES` and the collector fails without samples, as
//! node_exporter 1.5 does when not run as root (its `ErrNoData`: `node_scrape_collector_success
//! 0`, logged at debug level). Operators who want RAPL as an unprivileged agent can relax the
//! mode with a udev rule. A missing `/sys/class/powercap` (this VM) fails the same way.
//!
//! `--collector.rapl.enable-zone-label` (node_exporter 1.12, off by default): one family
//! instead, `node_rapl_joules_total{index,path,rapl_zone}` ("Current RAPL value in joules"),
//! `rapl_zone` being the zone's name as procfs gives it (`package`, `core`, `dram`; not
//! sanitized: `package-0-die-0` stays so). Same zones, indexes, paths and values.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::options::{collector_options, parse_bool};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

/// procfs' `getIndexAndName`: `package-1` → (1, `package`); other names take the count of
/// earlier zones with the same name as index.
pub fn index_and_name<'a>(counts: &HashMap<String, u64>, name: &'a str) -> (u64, &'a str) {
    let mut parts = name.split('-');
    if let (Some(base), Some(idx), None) = (parts.next(), parts.next(), parts.next()) {
        if let Ok(i) = idx.parse::<u64>() {
            return (i, base);
        }
    }
    (counts.get(name).copied().unwrap_or(0), name)
}

/// node_exporter's `SanitizeMetricName`: every match of `_*[^0-9A-Za-z_]+_*` becomes one `_`.
pub fn sanitize(name: &str) -> String {
    let b = name.as_bytes();
    let bad = |c: u8| !(c.is_ascii_alphanumeric() || c == b'_');
    let run = |from: usize, f: &dyn Fn(u8) -> bool| {
        let rest = b.get(from..).unwrap_or_default();
        from + rest.iter().take_while(|&&c| f(c)).count()
    };
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let j = run(i, &|c| c == b'_');
        if b.get(j).is_some_and(|&c| bad(c)) {
            let k = run(j, &bad);
            i = run(k, &|c| c == b'_');
            out.push('_');
        } else {
            // Not a match here: keep this byte (char boundaries: bad bytes never get here).
            out.push(c as char);
            i += 1;
        }
    }
    out
}

fn read_u64(path: &Path) -> Result<u64, CollectError> {
    let t = super::fsio::read_to_string(path).map_err(|e| CollectError::io(path, e))?;
    let t = t.trim();
    t.parse::<u64>()
        .map_err(|_| CollectError::parse(path, format!("not an unsigned integer: {t:?}")))
}

collector_options! {
    /// Options of the rapl collector (`[collector.rapl]` in the file).
    pub struct RaplOptions {
        /// Enables the rapl_zone label: one node_rapl_joules_total family instead of one
        /// family per zone (node_exporter's help text for this flag is a copy of another's).
        #[arg(id = "collector.rapl.enable-zone-label", long = "collector.rapl.enable-zone-label",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub enable_zone_label: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(Rapl {
        zone_label: opts.rapl.enable_zone_label.unwrap_or(false),
    })
}

/// The collector; `zone_label` from `--collector.rapl.enable-zone-label`.
#[derive(Default)]
pub struct Rapl {
    pub zone_label: bool,
}

impl Collector for Rapl {
    fn name(&self) -> &'static str {
        "rapl"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let dir = paths.sys("class/powercap");
        let mut entries: Vec<_> = crate::collector::read_dir(&dir)
            .map_err(|e| CollectError::io(&dir, e).absent_is_no_data())?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut fams: BTreeMap<String, MetricFamily> = BTreeMap::new();
        for entry in entries {
            let zone = dir.join(&entry);
            let Ok(raw) = super::fsio::read_to_string(zone.join("name")) else {
                continue;
            };
            let (index, name) = index_and_name(&counts, raw.trim());
            let name = name.to_string();
            // Saturating: `package-18446744073709551615` overflowed (issue 11).
            counts.insert(name.clone(), index.saturating_add(1));
            // procfs reads the range first: its failure fails the collector too.
            read_u64(&zone.join("max_energy_range_uj"))?;
            let uj = read_u64(&zone.join("energy_uj"))?;
            let path = zone.display().to_string();
            let joules = uj as f64 / 1_000_000.0;
            if self.zone_label {
                fams.entry("node_rapl_joules_total".to_string())
                    .or_insert_with_key(|k| {
                        MetricFamily::counter(k.clone(), "Current RAPL value in joules")
                    })
                    .push(
                        &[
                            ("index", &index.to_string()),
                            ("path", &path),
                            ("rapl_zone", &name),
                        ],
                        joules,
                    );
                continue;
            }
            let metric = format!("node_rapl_{}_joules_total", sanitize(&name));
            fams.entry(metric)
                .or_insert_with_key(|k| {
                    MetricFamily::counter(k.clone(), format!("Current RAPL {name} value in joules"))
                })
                .push(&[("index", &index.to_string()), ("path", &path)], joules);
        }
        Ok(fams
            .into_values()
            .map(|mut f| {
                sort_samples(&mut f);
                f
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw::*;

    #[test]
    fn names() {
        let mut c = HashMap::new();
        assert_eq!(index_and_name(&c, "package-0"), (0, "package"));
        assert_eq!(index_and_name(&c, "dram"), (0, "dram"));
        c.insert("dram".to_string(), 1);
        assert_eq!(index_and_name(&c, "dram"), (1, "dram"));
        assert_eq!(
            index_and_name(&c, "package-0-die-0"),
            (0, "package-0-die-0")
        );
        assert_eq!(sanitize("package-0-die-0"), "package_0_die_0");
        assert_eq!(sanitize("a_-_b"), "a_b");
        assert_eq!(sanitize("psys"), "psys");
        assert_eq!(sanitize("x.."), "x_");
        assert_eq!(sanitize("a-_-b"), "a__b");
        assert_eq!(sanitize("é"), "_");
    }

    /// Two packages with core and dram sub-zones, an MMIO zone and the control-type directory
    /// (no `name`: skipped), against node_exporter 1.5.0's output for the same tree.
    #[test]
    fn fixture_matches_node_exporter() {
        let fams = Rapl::default().collect(&paths()).expect("collects");
        assert_eq!(encoded(fams), golden(&["node_rapl_"]));
    }

    /// Issue 11: a zone named `package-<u64::MAX>` overflowed the per-name count (a panic in
    /// debug builds).
    #[test]
    fn largest_index_does_not_overflow() {
        let tmp = tempfile::tempdir().expect("tmp");
        for (zone, name) in [("z0", "package-18446744073709551615"), ("z1", "package")] {
            let z = tmp.path().join("class/powercap").join(zone);
            std::fs::create_dir_all(&z).expect("mkdir");
            std::fs::write(z.join("name"), name).expect("write");
            std::fs::write(z.join("max_energy_range_uj"), "10").expect("write");
            std::fs::write(z.join("energy_uj"), "5").expect("write");
        }
        let p = crate::collectors::testutil::sysfs_at(tmp.path());
        let fams = Rapl::default().collect(&p).expect("collects");
        assert_eq!(fams.iter().map(|f| f.samples.len()).sum::<usize>(), 2);
    }

    /// `--collector.rapl.enable-zone-label`: the same zones in one family, the zone's name
    /// as label; node_exporter 1.12's fixture tree's two zones as its e2e output has them
    /// without the flag.
    #[test]
    fn zone_label() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/node_exporter_1.12");
        let tmp = tempfile::tempdir().expect("tmp");
        // The powercap zones of node_exporter 1.12's sys.ttar, as its e2e output shows them.
        for (zone, name, uj) in [
            ("intel-rapl:0", "package-0", "240422366267"),
            ("intel-rapl:0:0", "core", "118821284256"),
        ] {
            let z = tmp.path().join("class/powercap").join(zone);
            std::fs::create_dir_all(&z).expect("mkdir");
            std::fs::write(z.join("name"), format!("{name}\n")).expect("write");
            std::fs::write(z.join("max_energy_range_uj"), "262143328850\n").expect("write");
            std::fs::write(z.join("energy_uj"), format!("{uj}\n")).expect("write");
        }
        let expected = std::fs::read_to_string(root.join("e2e-output.txt")).expect("e2e");
        assert!(expected.contains("node_rapl_package_joules_total{index=\"0\",path=\"collector/fixtures/sys/class/powercap/intel-rapl:0\"} 240422.366267"));
        assert!(expected.contains("node_rapl_core_joules_total{index=\"0\",path=\"collector/fixtures/sys/class/powercap/intel-rapl:0:0\"} 118821.284256"));
        let p = crate::collectors::testutil::sysfs_at(tmp.path());
        let plain = Rapl::default().collect(&p).expect("collects");
        assert_eq!(
            crate::collectors::testutil::names(&plain),
            [
                "node_rapl_core_joules_total",
                "node_rapl_package_joules_total"
            ]
        );
        let o = Options {
            rapl: toml::from_str("enable_zone_label = true\n").expect("toml"),
            ..Options::default()
        };
        let fams = collector(&o).collect(&p).expect("collects");
        assert_eq!(
            crate::collectors::testutil::names(&fams),
            ["node_rapl_joules_total"]
        );
        let dir = tmp.path().join("class/powercap").display().to_string();
        let got: Vec<(Vec<String>, f64)> = fams[0]
            .samples
            .iter()
            .map(|s| {
                (
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    s.value,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    vec![
                        "index=0".to_string(),
                        format!("path={dir}/intel-rapl:0"),
                        "rapl_zone=package".to_string()
                    ],
                    240422.366267
                ),
                (
                    vec![
                        "index=0".to_string(),
                        format!("path={dir}/intel-rapl:0:0"),
                        "rapl_zone=core".to_string()
                    ],
                    118821.284256
                ),
            ]
        );
        assert_eq!(fams[0].help, "Current RAPL value in joules");
        // The flag parses as node_exporter's boolean.
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "monitoring-agent",
            "--collector.rapl.enable-zone-label",
        ])
        .expect("parses");
        assert_eq!(cli.collector.rapl.enable_zone_label, Some(true));
    }

    #[test]
    fn absent_fails() {
        let mut p = paths();
        p.sysfs = p.sysfs.join("nonexistent");
        assert!(Rapl::default().collect(&p).is_err());
    }
}
