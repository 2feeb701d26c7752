//! `zfs` collector: node_exporter 1.12's `zfs_linux.go` over the ZFS on Linux kstats in
//! `/proc/spl/kstat/zfs`.
//!
//! - Every `KSTAT_DATA_UINT64` and (1.12) `KSTAT_DATA_INT64` row of `abdstats`, `arcstats`, `dbufstats`, `dmu_tx`,
//!   `dnodestats`, `fm`, `vdev_cache_stats`, `vdev_mirror_stats`, `xuio_stats`, `zfetchstats` and
//!   `zil` as an untyped `node_zfs_<subsystem>_<name>` (dashes become underscores; the HELP is
//!   the kstat's name, `kstat.zfs.misc.<file>.<name>`). Files a ZFS version lacks are skipped.
//! - Per pool: `node_zfs_zpool_<field>{zpool}` from `<pool>/io`,
//!   `node_zfs_zpool_dataset_<name>{dataset,zpool}` from `<pool>/objset-*`, and
//!   `node_zfs_zpool_state{state,zpool}` from `<pool>/state` (1 for the pool's state among
//!   online, degraded, faulted, offline, removed, unavail, suspended).
//!
//! node_exporter 1.12 semantics, differing from 1.5: `KSTAT_DATA_INT64` rows of the kstat
//! files are exported (e.g. `node_zfs_arc_memory_available_bytes`, which can be negative); a
//! dataset name is the rest of the `dataset_name` line from its first word on, so names with
//! spaces are whole (1.5 kept the first word; unlike 1.12, the word is searched after the
//! type column, see `parse_objset`); the `suspended` state is reported.
//!
//! A value that is not a number fails the collector, keeping the rows read before it, as
//! node_exporter (which sends each row as it parses it).
//!
//! Without `/proc/spl/kstat/zfs` (no ZFS module) the collector fails, as node_exporter's
//! `ErrNoData` does (`node_scrape_collector_success 0`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Zfs)
}

/// Subsystem (metric prefix after `node_`) and kstat file.
const FILES: [(&str, &str); 11] = [
    ("zfs_abd", "abdstats"),
    ("zfs_arc", "arcstats"),
    ("zfs_dbuf", "dbufstats"),
    ("zfs_dmu_tx", "dmu_tx"),
    ("zfs_dnode", "dnodestats"),
    ("zfs_fm", "fm"),
    ("zfs_vdev_cache", "vdev_cache_stats"),
    ("zfs_vdev_mirror", "vdev_mirror_stats"),
    ("zfs_xuio", "xuio_stats"),
    ("zfs_zfetch", "zfetchstats"),
    ("zfs_zil", "zil"),
];

const POOL_STATES: [&str; 7] = [
    "online",
    "degraded",
    "faulted",
    "offline",
    "removed",
    "unavail",
    "suspended",
];

/// `KSTAT_DATA_UINT64`.
const UINT64: &str = "4";
/// `KSTAT_DATA_INT64`, exported from the kstat files since node_exporter 1.12 (not from
/// objsets).
const INT64: &str = "3";

/// The `KSTAT_DATA_UINT64` and `KSTAT_DATA_INT64` rows of a named kstat (`name type data`
/// header), each given to `row` (name, value) as it is parsed, as node_exporter's
/// `parseProcfsFile` sends them: on an error, the rows before it have been given.
pub fn parse_kstat<'a>(text: &'a str, mut row: impl FnMut(&'a str, f64)) -> Result<(), String> {
    let mut started = false;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !started {
            started = parts == ["name", "type", "data"];
            continue;
        }
        match parts[..] {
            [name, UINT64, value, ..] => {
                let v = value.parse::<u64>().map_err(|_| {
                    format!("could not parse expected unsigned integer value for {name:?}")
                })?;
                row(name, v as f64);
            }
            [name, INT64, value, ..] => {
                let v = value.parse::<i64>().map_err(|_| {
                    format!("could not parse expected signed integer value for {name:?}")
                })?;
                row(name, v as f64);
            }
            _ => {}
        }
    }
    if !started {
        return Err("no \"name type data\" header".into());
    }
    Ok(())
}

/// A pool's `io` kstat: the header row's names with the next rows' values, each given to `row`
/// (field, value) as it is parsed, as node_exporter's `parsePoolProcfsFile`.
pub fn parse_pool_io<'a>(text: &'a str, mut row: impl FnMut(&'a str, u64)) -> Result<(), String> {
    let mut header: Option<Vec<&str>> = None;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let Some(fields) = &header else {
            if parts.len() >= 12 && parts.first() == Some(&"nread") {
                header = Some(parts);
            }
            continue;
        };
        for (i, field) in fields.iter().enumerate() {
            let v = parts
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("could not parse expected integer value for {field:?}"))?;
            row(field, v);
        }
    }
    Ok(())
}

/// A pool's `objset-*` kstat: its `KSTAT_DATA_UINT64` rows, each given to `row` (dataset name
/// as read so far, name, value) as it is parsed, as node_exporter's `parsePoolObjsetFile`.
pub fn parse_objset<'a>(
    text: &'a str,
    mut row: impl FnMut(&'a str, &'a str, u64),
) -> Result<(), String> {
    let mut dataset = "";
    let mut started = false;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !started {
            started = parts == ["name", "type", "data"];
            continue;
        }
        match parts[..] {
            // 1.12: the rest of the line from the name's first word, so a name with spaces is
            // whole. Deviation: 1.12 takes `line[strings.Index(line, parts[2]):]`, the first
            // occurrence anywhere in the line, which mislabels a pool named e.g. `data`,
            // `name` or `7` (found inside `dataset_name` or the type column); the search here
            // starts after the type column.
            ["dataset_name", kind, first, ..] => {
                let after_type = line
                    .find("dataset_name")
                    .and_then(|i| line.get(i + "dataset_name".len()..))
                    .and_then(|rest| rest.find(kind).map(|j| (rest, j)))
                    .and_then(|(rest, j)| rest.get(j + kind.len()..));
                dataset = after_type
                    .and_then(|rest| rest.find(first).and_then(|i| rest.get(i..)))
                    .unwrap_or(first)
            }
            [name, UINT64, value, ..] => {
                let v = value
                    .parse::<u64>()
                    .map_err(|_| format!("could not parse expected integer value for {name:?}"))?;
                row(dataset, name, v);
            }
            _ => {}
        }
    }
    if !started {
        return Err("no \"name type data\" header".into());
    }
    Ok(())
}

/// Families by name, each built once.
#[derive(Default)]
struct Families(BTreeMap<String, MetricFamily>);

impl Families {
    fn fam(&mut self, name: String, help: String, gauge: bool) -> &mut MetricFamily {
        self.0.entry(name).or_insert_with_key(|name| {
            if gauge {
                MetricFamily::gauge(name.clone(), help)
            } else {
                MetricFamily::untyped(name.clone(), help)
            }
        })
    }

    /// The families, name-sorted, samples sorted by label values.
    fn finish(self) -> Vec<MetricFamily> {
        self.0
            .into_values()
            .map(|mut f| {
                f.samples.sort_by(|a, b| {
                    let va = a.labels.iter().map(|(_, v)| v);
                    let vb = b.labels.iter().map(|(_, v)| v);
                    va.cmp(vb)
                });
                f
            })
            .collect()
    }
}

fn metric_name(s: &str) -> String {
    s.replace('-', "_")
}

/// Pool directories (`<pool>/` entries holding the file `file_prefix*`), sorted.
fn pool_files(base: &Path, matches: impl Fn(&str) -> bool) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    let Ok(pools) = crate::collector::read_dir(base) else {
        return out;
    };
    for pool in pools.filter_map(|e| e.ok()) {
        let Ok(name) = pool.file_name().into_string() else {
            continue;
        };
        let Ok(files) = crate::collector::read_dir(pool.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            if f.file_name().to_str().is_some_and(&matches) {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out.sort();
    out
}

struct Zfs;

impl Collector for Zfs {
    fn name(&self) -> &'static str {
        "zfs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let base = paths.proc("spl/kstat/zfs");
        let _listed = crate::collector::read_dir(&base)
            .map_err(|e| CollectError::io(&base, e).absent_is_no_data())?;
        let mut fams = Families::default();
        // Partial output as node_exporter's: it sends every row as it parses it, so an error
        // keeps the rows read before it (of that file and of the files read before).
        match read(&base, &mut fams) {
            Ok(()) => Ok(fams.finish()),
            Err(e) => Err(CollectError::partial(fams.finish(), e)),
        }
    }
}

/// Reads the kstat files, then each pool's `io`, `objset-*` and `state`, into `fams`, up to the
/// first error. node_exporter reads the kstat files in a Go map's (random) order; here they
/// are read in [`FILES`] order, so what an error keeps is the same on every scrape.
fn read(base: &Path, fams: &mut Families) -> Result<(), CollectError> {
    for (subsystem, file) in FILES {
        let path = base.join(file);
        // Files come with ZFS features: a missing one is fine.
        let Ok(text) = super::fsio::read_to_string(&path) else {
            continue;
        };
        parse_kstat(&text, |name, v| {
            let full = format!("node_{subsystem}_{}", metric_name(name));
            fams.fam(full, format!("kstat.zfs.misc.{file}.{name}"), false)
                .push(&[], v);
        })
        .map_err(|m| CollectError::parse(&path, m))?;
    }
    for (pool, path) in pool_files(base, |f| f == "io") {
        let text = super::read_to_string(&path)?;
        parse_pool_io(&text, |field, v| {
            let full = format!("node_zfs_zpool_{}", metric_name(field));
            fams.fam(full, format!("kstat.zfs.misc.io.{field}"), false)
                .push(&[("zpool", &pool)], v as f64);
        })
        .map_err(|m| CollectError::parse(&path, m))?;
    }
    for (pool, path) in pool_files(base, |f| f.starts_with("objset-")) {
        let text = super::read_to_string(&path)?;
        parse_objset(&text, |dataset, name, v| {
            let full = format!("node_zfs_zpool_dataset_{}", metric_name(name));
            fams.fam(full, format!("kstat.zfs.misc.objset.{name}"), false)
                .push(&[("dataset", dataset), ("zpool", &pool)], v as f64);
        })
        .map_err(|m| CollectError::parse(&path, m))?;
    }
    for (pool, path) in pool_files(base, |f| f == "state") {
        let text = super::read_to_string(&path)?;
        let actual = text.lines().next().unwrap_or("").to_lowercase();
        let fam = fams.fam(
            "node_zfs_zpool_state".into(),
            "kstat.zfs.misc.state".into(),
            true,
        );
        for state in POOL_STATES {
            let v = if actual == state { 1.0 } else { 0.0 };
            fam.push(&[("state", state), ("zpool", &pool)], v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, raw};

    #[test]
    fn matches_node_exporter() {
        let fams = Zfs
            .collect(&procfs("storage", "zfs/proc"))
            .expect("collects");
        // expected.txt is 1.5's output; 1.12 adds the int64 rows (the synthetic zil rows of
        // type 3) and the `suspended` state samples.
        let int64_rows = ["node_zfs_zil_zil_itx_metaslab_slog_count"];
        let as_15: String = raw(&fams)
            .lines()
            .filter(|l| !l.contains("state=\"suspended\""))
            .filter(|l| !int64_rows.iter().any(|p| l.contains(p)))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_golden(as_15, "storage", "zfs/expected.txt");
    }

    #[test]
    fn matches_node_exporter_1_12() {
        let fams = Zfs
            .collect(&procfs("storage", "zfs-1.12/proc"))
            .expect("collects");
        assert_golden(raw(&fams), "storage", "zfs-1.12/expected.txt");
    }

    /// Runs a row-at-a-time parser, returning the rows it gave and its result.
    fn rows<T>(
        parse: impl FnOnce(&mut dyn FnMut(T)) -> Result<(), String>,
    ) -> (Vec<T>, Result<(), String>) {
        let mut out = Vec::new();
        let r = parse(&mut |row| out.push(row));
        (out, r)
    }

    #[test]
    fn parsers() {
        let (r, ok) = rows(|f| {
            parse_kstat("x\nname type data\na-b 4 7\nc 3 1\nd 7 s\n", |n, v| {
                f((n, v))
            })
        });
        assert_eq!((r, ok), (vec![("a-b", 7.0), ("c", 1.0)], Ok(())));
        assert!(rows(|f| parse_kstat("a 4 1\n", |n, v| f((n, v))))
            .1
            .is_err());
        // The rows before a bad one have been given.
        let (r, err) =
            rows(|f| parse_kstat("name type data\na 4 1\nb 4 -1\nc 4 3\n", |n, v| f((n, v))));
        assert_eq!(r, [("a", 1.0)]);
        assert!(err.is_err());
        let (r, ok) = rows(|f| parse_kstat("name type data\nm 3 -5\n", |n, v| f((n, v))));
        assert_eq!((r, ok), (vec![("m", -5.0)], Ok(())));
        assert!(
            rows(|f| parse_kstat("name type data\nm 3 x\n", |n, v| f((n, v))))
                .1
                .is_err()
        );
        let (r, _) = rows(|f| {
            parse_objset(
                "name type data\ndataset_name 7 p/d with  space \nwrites 4 3\n",
                |d, n, v| f((d, n, v)),
            )
        });
        assert_eq!(r, [("p/d with  space ", "writes", 3)]);
        // A pool named like a part of the line before it (1.12 would label it
        // "dataset_name 7 data").
        let (r, _) = rows(|f| {
            parse_objset(
                "name type data\ndataset_name 7 data\nwrites 4 3\n",
                |d, n, v| f((d, n, v)),
            )
        });
        assert_eq!(r, [("data", "writes", 3)]);
        let (r, _) = rows(|f| {
            parse_objset(
                "name type data\ndataset_name 7 7\nwrites 4 3\n",
                |d, n, v| f((d, n, v)),
            )
        });
        assert_eq!(r, [("7", "writes", 3)]);
        let (r, ok) = rows(|f| {
            parse_objset(
                "1 1\nname type data\ndataset_name 7 p/d\nwrites 4 3\n",
                |d, n, v| f((d, n, v)),
            )
        });
        assert_eq!((r, ok), (vec![("p/d", "writes", 3)], Ok(())));
        let io = "12 3\nnread nwritten reads writes wtime wlentime wupdate rtime rlentime rupdate wcnt rcnt\n1 2 3 4 5 6 7 8 9 10 11 12\n";
        let (r, ok) = rows(|f| parse_pool_io(io, |n, v| f((n, v))));
        assert_eq!((r[11], ok), (("rcnt", 12), Ok(())));
        let short = io.replace(" 12\n", "\n");
        let (r, err) = rows(|f| parse_pool_io(&short, |n, v| f((n, v))));
        assert_eq!(r.len(), 11);
        assert!(err.is_err());
    }

    /// Partial output as node_exporter's: a bad value in pool1's `io` keeps every kstat file
    /// read before it and pool1's fields before the bad one; pools read after it, and the
    /// datasets and states, are not read. The collector fails naming the file.
    #[test]
    fn partial_output_keeps_the_rows_read_before_the_error() {
        let tree = crate::collectors::testutil::fixture_copy("storage", "zfs/proc");
        let io = tree.path().join("spl/kstat/zfs/pool1/io");
        let text = std::fs::read_to_string(&io).expect("read");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let last = lines.last_mut().expect("a values row");
        let mut fields: Vec<&str> = last.split_whitespace().collect();
        fields[2] = "x";
        *last = fields.join(" ");
        std::fs::write(&io, lines.join("\n") + "\n").expect("write");
        let o = crate::collector::run(&Zfs, &crate::collectors::testutil::procfs_at(tree.path()));
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("pool1/io"), "{err}");
        let whole = Zfs
            .collect(&procfs("storage", "zfs/proc"))
            .expect("collects");
        let mut kept = 0;
        for f in &o.families {
            let w = whole.iter().find(|w| w.name == f.name).expect("family");
            for s in &f.samples {
                assert!(w.samples.contains(s), "{} {:?}", f.name, s);
                kept += 1;
            }
            assert!(!f.name.starts_with("node_zfs_zpool_dataset_"), "{}", f.name);
            assert_ne!(f.name, "node_zfs_zpool_state");
        }
        // Every kstat file's rows, and pool1's first two fields.
        let kstat = |fams: &[MetricFamily]| {
            fams.iter()
                .filter(|f| !f.name.starts_with("node_zfs_zpool"))
                .map(|f| f.samples.len())
                .sum::<usize>()
        };
        assert!(kstat(&whole) > 0);
        assert_eq!(kstat(&o.families), kstat(&whole));
        let pool_fields: Vec<&str> = o
            .families
            .iter()
            .filter(|f| f.name.starts_with("node_zfs_zpool_"))
            .map(|f| &*f.name)
            .collect();
        assert_eq!(
            pool_fields,
            ["node_zfs_zpool_nread", "node_zfs_zpool_nwritten"]
        );
        assert_eq!(kept, kstat(&whole) + 2);
    }

    #[test]
    fn absent_source_fails() {
        assert!(Zfs.collect(&procfs("storage", "nowhere/proc")).is_err());
    }

    #[test]
    fn live() {
        let p = Paths::default();
        assert_eq!(Zfs.collect(&p).is_ok(), p.proc("spl/kstat/zfs").is_dir());
    }
}
