//! `zfs` collector: node_exporter 1.5's `zfs_linux.go` over the ZFS on Linux kstats in
//! `/proc/spl/kstat/zfs`.
//!
//! - Every `KSTAT_DATA_UINT64` row of `abdstats`, `arcstats`, `dbufstats`, `dmu_tx`,
//!   `dnodestats`, `fm`, `vdev_cache_stats`, `vdev_mirror_stats`, `xuio_stats`, `zfetchstats` and
//!   `zil` as an untyped `node_zfs_<subsystem>_<name>` (dashes become underscores; the HELP is
//!   the kstat's name, `kstat.zfs.misc.<file>.<name>`). Files a ZFS version lacks are skipped.
//! - Per pool: `node_zfs_zpool_<field>{zpool}` from `<pool>/io`,
//!   `node_zfs_zpool_dataset_<name>{dataset,zpool}` from `<pool>/objset-*`, and
//!   `node_zfs_zpool_state{state,zpool}` from `<pool>/state` (1 for the pool's state among
//!   online, degraded, faulted, offline, removed, unavail).
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

const POOL_STATES: [&str; 6] = [
    "online", "degraded", "faulted", "offline", "removed", "unavail",
];

/// `KSTAT_DATA_UINT64`, the only kstat type node_exporter 1.5 exports.
const UINT64: &str = "4";

/// The `KSTAT_DATA_UINT64` rows of a named kstat (`name type data` header): (name, value).
pub fn parse_kstat(text: &str) -> Result<Vec<(&str, u64)>, String> {
    let mut started = false;
    let mut out = Vec::with_capacity(64);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !started {
            started = parts == ["name", "type", "data"];
            continue;
        }
        if let [name, UINT64, value, ..] = parts[..] {
            let v = value
                .parse::<u64>()
                .map_err(|_| format!("could not parse expected integer value for {name:?}"))?;
            out.push((name, v));
        }
    }
    if !started {
        return Err("no \"name type data\" header".into());
    }
    Ok(out)
}

/// A pool's `io` kstat: the header row's names with the next row's values.
pub fn parse_pool_io(text: &str) -> Result<Vec<(&str, u64)>, String> {
    let mut header: Option<Vec<&str>> = None;
    let mut out = Vec::with_capacity(12);
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
            out.push((*field, v));
        }
    }
    Ok(out)
}

/// A dataset name and its `(name, value)` rows.
pub type Objset<'a> = (String, Vec<(&'a str, u64)>);

/// A pool's `objset-*` kstat: the dataset name and its `KSTAT_DATA_UINT64` rows.
pub fn parse_objset(text: &str) -> Result<Objset<'_>, String> {
    let mut dataset = String::new();
    let mut started = false;
    let mut out = Vec::with_capacity(8);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if !started {
            started = parts == ["name", "type", "data"];
            continue;
        }
        match parts[..] {
            ["dataset_name", _, name, ..] => dataset = name.to_string(),
            [name, UINT64, value, ..] => {
                let v = value
                    .parse::<u64>()
                    .map_err(|_| format!("could not parse expected integer value for {name:?}"))?;
                out.push((name, v));
            }
            _ => {}
        }
    }
    if !started {
        return Err("no \"name type data\" header".into());
    }
    Ok((dataset, out))
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
    let Ok(pools) = std::fs::read_dir(base) else {
        return out;
    };
    for pool in pools.filter_map(|e| e.ok()) {
        let Ok(name) = pool.file_name().into_string() else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(pool.path()) else {
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
        std::fs::read_dir(&base).map_err(|e| CollectError::io(&base, e).absent_is_no_data())?;
        let mut fams = Families::default();
        for (subsystem, file) in FILES {
            let path = base.join(file);
            // Files come with ZFS features: a missing one is fine.
            let Ok(text) = super::fsio::read_to_string(&path) else {
                continue;
            };
            for (name, v) in parse_kstat(&text).map_err(|m| CollectError::parse(&path, m))? {
                let full = format!("node_{subsystem}_{}", metric_name(name));
                fams.fam(full, format!("kstat.zfs.misc.{file}.{name}"), false)
                    .push(&[], v as f64);
            }
        }
        for (pool, path) in pool_files(&base, |f| f == "io") {
            let text = super::read_to_string(&path)?;
            for (field, v) in parse_pool_io(&text).map_err(|m| CollectError::parse(&path, m))? {
                let full = format!("node_zfs_zpool_{}", metric_name(field));
                fams.fam(full, format!("kstat.zfs.misc.io.{field}"), false)
                    .push(&[("zpool", &pool)], v as f64);
            }
        }
        for (pool, path) in pool_files(&base, |f| f.starts_with("objset-")) {
            let text = super::read_to_string(&path)?;
            let (dataset, rows) = parse_objset(&text).map_err(|m| CollectError::parse(&path, m))?;
            for (name, v) in rows {
                let full = format!("node_zfs_zpool_dataset_{}", metric_name(name));
                fams.fam(full, format!("kstat.zfs.misc.objset.{name}"), false)
                    .push(&[("dataset", &dataset), ("zpool", &pool)], v as f64);
            }
        }
        for (pool, path) in pool_files(&base, |f| f == "state") {
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
        Ok(fams.finish())
    }
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
        assert_golden(raw(&fams), "storage", "zfs/expected.txt");
    }

    #[test]
    fn parsers() {
        let rows = parse_kstat("x\nname type data\na-b 4 7\nc 3 1\nd 7 s\n").expect("parses");
        assert_eq!(rows, [("a-b", 7)]);
        assert!(parse_kstat("a 4 1\n").is_err());
        assert!(parse_kstat("name type data\na 4 -1\n").is_err());
        let (ds, rows) =
            parse_objset("1 1\nname type data\ndataset_name 7 p/d\nwrites 4 3\n").expect("parses");
        assert_eq!((ds.as_str(), rows), ("p/d", vec![("writes", 3)]));
        let io = "12 3\nnread nwritten reads writes wtime wlentime wupdate rtime rlentime rupdate wcnt rcnt\n1 2 3 4 5 6 7 8 9 10 11 12\n";
        let rows = parse_pool_io(io).expect("parses");
        assert_eq!(rows[11], ("rcnt", 12));
        assert!(parse_pool_io(&io.replace(" 12\n", "\n")).is_err());
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
