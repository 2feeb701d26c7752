//! `slabinfo` collector: node_exporter 1.12's `slabinfo_linux.go` over procfs 0.21's
//! `SlabInfo` (off by default, as in 1.12): per slab cache of `/proc/slabinfo` (version 2.1),
//! `node_slabinfo_active_objects`, `_objects`, `_object_size_bytes`, `_objects_per_slab` and
//! `_pages_per_slab`, labelled `slab`.
//!
//! Flags as 1.12: `--collector.slabinfo.slabs-include` (default `.*`) and
//! `--collector.slabinfo.slabs-exclude` (default none); a slab is skipped when it matches the
//! exclude pattern or does not match the include pattern (both apply together, unanchored, as
//! node_exporter's `deviceFilter`).
//!
//! As procfs: the version and `# name` header lines are skipped; every other line, its
//! whitespace runs made single spaces, must be exactly 16 fields with integers where procfs
//! reads them, or the collector fails (all or nothing). The file is readable by root only
//! (mode 0400), so a collector running as the agent's dropped user fails with "permission
//! denied", as node_exporter run as a non-root user does.

use super::options::{collector_options, Pattern};
use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};
use regex::Regex;

collector_options! {
    /// Options of the slabinfo collector (`[collector.slabinfo]` in the file).
    pub struct SlabinfoOptions {
        /// Regexp of slabs to include in slabinfo collector [default: .*].
        #[arg(id = "collector.slabinfo.slabs-include", long = "collector.slabinfo.slabs-include", value_name = "REGEX")]
        pub slabs_include: Option<Pattern>,
        /// Regexp of slabs to exclude in slabinfo collector.
        #[arg(id = "collector.slabinfo.slabs-exclude", long = "collector.slabinfo.slabs-exclude", value_name = "REGEX")]
        pub slabs_exclude: Option<Pattern>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.slabinfo;
    Box::new(Slabinfo {
        include: Some(Pattern::or_default(&o.slabs_include, ".*"))
            .filter(|r| !r.as_str().is_empty()),
        exclude: o
            .slabs_exclude
            .as_ref()
            .map(|p| p.0.clone())
            .filter(|r| !r.as_str().is_empty()),
    })
}

/// One slab cache line (the columns node_exporter exports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slab {
    pub name: String,
    pub active_objects: i64,
    pub objects: i64,
    pub object_size: i64,
    pub objects_per_slab: i64,
    pub pages_per_slab: i64,
}

/// Parses `/proc/slabinfo` as procfs' `parseSlabInfo21`.
pub fn parse_slabinfo(text: &str) -> Result<Vec<Slab>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.contains("slabinfo -") || line.contains("# name") {
            continue;
        }
        // Go's `\s+` → " ", then split on " ": leading or trailing blanks give empty fields.
        let fields: Vec<&str> = line.split(['\t', '\n', '\x0c', '\r', ' ']).collect();
        let mut s: Vec<&str> = Vec::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            // Interior empty pieces come from a run of blanks: one separator.
            if f.is_empty() && i != 0 && i != fields.len() - 1 {
                continue;
            }
            s.push(f);
        }
        let &[name, active, num, size, per_slab, pages, _, _, limit, batch, shared, _, _, sa, sn, avail] =
            s.as_slice()
        else {
            return Err(format!("unable to parse: {line:?}"));
        };
        let int = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("invalid number {v:?} in {line:?}"))
        };
        for v in [limit, batch, shared, sa, sn, avail] {
            int(v)?;
        }
        out.push(Slab {
            name: name.to_string(),
            active_objects: int(active)?,
            objects: int(num)?,
            object_size: int(size)?,
            objects_per_slab: int(per_slab)?,
            pages_per_slab: int(pages)?,
        });
    }
    Ok(out)
}

pub struct Slabinfo {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Slabinfo {
    fn ignored(&self, name: &str) -> bool {
        self.exclude.as_ref().is_some_and(|r| r.is_match(name))
            || self.include.as_ref().is_some_and(|r| !r.is_match(name))
    }

    pub fn families(&self, slabs: &[Slab]) -> Vec<MetricFamily> {
        let g = MetricFamily::gauge;
        let mut active = g(
            "node_slabinfo_active_objects",
            "The number of objects that are currently active (i.e., in use).",
        );
        let mut objects = g(
            "node_slabinfo_objects",
            "The total number of allocated objects (i.e., objects that are both in use and not in use).",
        );
        let mut size = g(
            "node_slabinfo_object_size_bytes",
            "The size of objects in this slab, in bytes.",
        );
        let mut per_slab = g(
            "node_slabinfo_objects_per_slab",
            "The number of objects stored in each slab.",
        );
        let mut pages = g(
            "node_slabinfo_pages_per_slab",
            "The number of pages allocated for each slab.",
        );
        for s in slabs.iter().filter(|s| !self.ignored(&s.name)) {
            let l = [("slab", s.name.as_str())];
            active.push(&l, s.active_objects as f64);
            objects.push(&l, s.objects as f64);
            size.push(&l, s.object_size as f64);
            per_slab.push(&l, s.objects_per_slab as f64);
            pages.push(&l, s.pages_per_slab as f64);
        }
        nonempty_sorted(vec![active, objects, size, per_slab, pages])
    }
}

impl Collector for Slabinfo {
    fn name(&self) -> &'static str {
        "slabinfo"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let slabs = read_parsed(&paths.proc("slabinfo"), parse_slabinfo)?;
        Ok(self.families(&slabs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{expected_1_12, lines, procfs, procfs_at};

    fn with(include: Option<&str>, exclude: Option<&str>) -> Box<dyn Collector> {
        let mut o = Options::default();
        o.slabinfo.slabs_include = include.map(|s| s.parse().expect("pattern"));
        o.slabinfo.slabs_exclude = exclude.map(|s| s.parse().expect("pattern"));
        collector(&o)
    }

    fn slabs(c: &dyn Collector) -> Vec<String> {
        let fams = c
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        fams.first()
            .map(|f| {
                f.samples
                    .iter()
                    .map(|s| s.labels[0].1.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = with(None, None)
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        let want = expected_1_12("node_slabinfo_");
        assert_eq!(want.len(), 5 * (2 + 4));
        assert_eq!(lines::render(&lines::sorted(fams)), want);
    }

    #[test]
    fn include_and_exclude_apply_together() {
        assert_eq!(
            slabs(&*with(Some("^k"), None)),
            ["kmalloc-8192", "kmem_cache"]
        );
        assert_eq!(slabs(&*with(Some("^k"), Some("cache"))), ["kmalloc-8192"]);
        assert_eq!(
            slabs(&*with(None, Some("TCP|unmap"))),
            ["kmalloc-8192", "kmem_cache"]
        );
        assert_eq!(
            slabs(&*with(Some(""), Some(""))).len(),
            4,
            "empty patterns are unset"
        );
        assert!(slabs(&*with(Some("^nothing$"), None)).is_empty());
    }

    #[test]
    fn parses_as_procfs() {
        let line = "kmem_cache 320 320 256 32 2 : tunables 0 0 0 : slabdata 10 10 0";
        let s = parse_slabinfo(&format!("slabinfo - version: 2.1\n# name <x>\n{line}\n"))
            .expect("parses");
        assert_eq!(s[0].objects_per_slab, 32);
        assert!(
            parse_slabinfo(&format!("{line} \n")).is_err(),
            "trailing blank"
        );
        assert!(
            parse_slabinfo(&format!(" {line}\n")).is_err(),
            "leading blank"
        );
        assert!(
            parse_slabinfo(&format!("{line}\n\n")).is_err(),
            "an empty line"
        );
        assert!(parse_slabinfo(&line.replace("slabdata 10", "slabdata x")).is_err());
        assert!(parse_slabinfo(&line.replace(" 0 :", " 0 1 :")).is_err());
        assert!(parse_slabinfo(&line.replace("  ", "\t \t")).is_ok());
    }

    #[test]
    fn absent_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = with(None, None)
            .collect(&procfs_at(dir.path()))
            .expect_err("absent");
        assert!(!e.is_no_data(), "{e}");
    }
}
