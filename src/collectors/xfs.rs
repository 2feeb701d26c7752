//! `xfs` collector: node_exporter 1.5's `xfs_linux.go` over prometheus/procfs 0.8's parser of
//! `/sys/fs/xfs/<device>/stats/stats` (one directory per mounted XFS file system).
//!
//! 39 counter families `node_xfs_*_total{device}`: extent allocation, allocation and block-map
//! B-trees, block mapping, directory operations, inode cache operations, read/write calls and
//! vnode operations, named and explained as node_exporter does.
//!
//! Without XFS file systems (or without the module) there is nothing to read: no samples and
//! success, as node_exporter.
//!
//! As in procfs, every line but `xpc` must hold 32-bit numbers and every line node_exporter
//! reads must have its documented number of fields; otherwise the collector fails.

use std::path::Path;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Xfs)
}

/// The stats lines procfs checks, with their required field counts (`vnodes`: 7 or 8).
const LINES: [(&str, &[usize]); 13] = [
    ("extent_alloc", &[4]),
    ("abt", &[4]),
    ("blk_map", &[7]),
    ("bmbt", &[4]),
    ("dir", &[4]),
    ("trans", &[3]),
    ("ig", &[7]),
    ("log", &[5]),
    ("rw", &[2]),
    ("attr", &[4]),
    ("icluster", &[3]),
    ("vnodes", &[7, 8]),
    ("buf", &[9]),
];

/// The exported families: stats line, field index, name (after `node_xfs_`), help. (The
/// kernel prints `rw` as writes, then reads.)
const METRICS: [(&str, usize, &str, &str); 39] = [
    ("extent_alloc", 0, "extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem."),
    ("extent_alloc", 1, "extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem."),
    ("extent_alloc", 2, "extent_allocation_extents_freed_total", "Number of extents freed for a filesystem."),
    ("extent_alloc", 3, "extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem."),
    ("abt", 0, "allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem."),
    ("abt", 1, "allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem."),
    ("abt", 2, "allocation_btree_records_inserted_total", "Number of allocation B-tree records inserted for a filesystem."),
    ("abt", 3, "allocation_btree_records_deleted_total", "Number of allocation B-tree records deleted for a filesystem."),
    ("blk_map", 0, "block_mapping_reads_total", "Number of block map for read operations for a filesystem."),
    ("blk_map", 1, "block_mapping_writes_total", "Number of block map for write operations for a filesystem."),
    ("blk_map", 2, "block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem."),
    ("blk_map", 3, "block_mapping_extent_list_insertions_total", "Number of extent list insertions for a filesystem."),
    ("blk_map", 4, "block_mapping_extent_list_deletions_total", "Number of extent list deletions for a filesystem."),
    ("blk_map", 5, "block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem."),
    ("blk_map", 6, "block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem."),
    ("bmbt", 0, "block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem."),
    ("bmbt", 1, "block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem."),
    ("bmbt", 2, "block_map_btree_records_inserted_total", "Number of block map B-tree records inserted for a filesystem."),
    ("bmbt", 3, "block_map_btree_records_deleted_total", "Number of block map B-tree records deleted for a filesystem."),
    ("dir", 0, "directory_operation_lookup_total", "Number of file name directory lookups which miss the operating systems directory name lookup cache."),
    ("dir", 1, "directory_operation_create_total", "Number of times a new directory entry was created for a filesystem."),
    ("dir", 2, "directory_operation_remove_total", "Number of times an existing directory entry was created for a filesystem."),
    ("dir", 3, "directory_operation_getdents_total", "Number of times the directory getdents operation was performed for a filesystem."),
    ("ig", 0, "inode_operation_attempts_total", "Number of times the OS looked for an XFS inode in the inode cache."),
    ("ig", 1, "inode_operation_found_total", "Number of times the OS looked for and found an XFS inode in the inode cache."),
    ("ig", 2, "inode_operation_recycled_total", "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled."),
    ("ig", 3, "inode_operation_missed_total", "Number of times the OS looked for an XFS inode in the cache, but did not find it."),
    ("ig", 4, "inode_operation_duplicates_total", "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process."),
    ("ig", 5, "inode_operation_reclaims_total", "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose."),
    ("ig", 6, "inode_operation_attribute_changes_total", "Number of times the OS explicitly changed the attributes of an XFS inode."),
    ("rw", 1, "read_calls_total", "Number of read(2) system calls made to files in a filesystem."),
    ("rw", 0, "write_calls_total", "Number of write(2) system calls made to files in a filesystem."),
    ("vnodes", 0, "vnode_active_total", "Number of vnodes not on free lists for a filesystem."),
    ("vnodes", 1, "vnode_allocate_total", "Number of times vn_alloc called for a filesystem."),
    ("vnodes", 2, "vnode_get_total", "Number of times vn_get called for a filesystem."),
    ("vnodes", 3, "vnode_hold_total", "Number of times vn_hold called for a filesystem."),
    ("vnodes", 4, "vnode_release_total", "Number of times vn_rele called for a filesystem."),
    ("vnodes", 5, "vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem."),
    ("vnodes", 6, "vnode_remove_total", "Number of times vn_remove called for a filesystem."),
];

/// One file system's stats: the values of each line (absent lines are absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub lines: Vec<(String, Vec<u64>)>,
}

impl Stats {
    /// A field's value; 0 when the kernel did not print it (procfs' zero value).
    pub fn get(&self, key: &str, i: usize) -> u64 {
        self.lines
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.get(i).copied())
            .unwrap_or(0)
    }
}

/// Parses a `stats` file as procfs does.
pub fn parse_stats(text: &str) -> Result<Stats, String> {
    let mut lines = Vec::with_capacity(32);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let rest: Vec<&str> = f.collect();
        if rest.is_empty() {
            continue;
        }
        let values: Vec<u64> = if key == "xpc" {
            if rest.len() != 3 {
                return Err(format!(
                    "incorrect number of values for XFS extended precision stats: {}",
                    rest.len()
                ));
            }
            rest.iter()
                .map(|v| v.parse::<u64>().map_err(|_| format!("bad number {v:?}")))
                .collect::<Result<_, _>>()?
        } else {
            rest.iter()
                .map(|v| {
                    v.parse::<u32>()
                        .map(u64::from)
                        .map_err(|_| format!("bad number {v:?} in line {line:?}"))
                })
                .collect::<Result<_, _>>()?
        };
        if let Some((_, counts)) = LINES.iter().find(|(k, _)| *k == key) {
            if !counts.contains(&values.len()) {
                return Err(format!(
                    "incorrect number of values for XFS {key} stats: {}",
                    values.len()
                ));
            }
        }
        if METRICS.iter().any(|(k, ..)| *k == key) {
            lines.push((key.to_string(), values));
        }
    }
    Ok(Stats { lines })
}

/// The families for `(device, stats)` pairs.
pub fn families(mut devices: Vec<(String, Stats)>) -> Vec<MetricFamily> {
    devices.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<MetricFamily> = METRICS
        .iter()
        .map(|(key, i, name, help)| {
            let mut fam = MetricFamily::counter(format!("node_xfs_{name}"), *help);
            for (dev, s) in &devices {
                fam.push(&[("device", dev)], s.get(key, *i) as f64);
            }
            fam
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, CollectError> {
    match crate::collector::read_dir(dir) {
        Ok(rd) => Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CollectError::io(dir, e)),
    }
}

struct Xfs;

impl Collector for Xfs {
    fn name(&self) -> &'static str {
        "xfs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let root = paths.sys("fs/xfs");
        let mut devices = Vec::new();
        for name in read_dir_names(&root)? {
            // procfs' glob `fs/xfs/*/stats/stats`: the global `fs/xfs/stats/stats` is not a
            // match (its directory holds the file directly).
            let path = root.join(&name).join("stats/stats");
            let text = match super::fsio::read_to_string(&path) {
                Ok(t) => t,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(CollectError::io(&path, e)),
            };
            let stats = parse_stats(&text).map_err(|m| CollectError::parse(&path, m))?;
            devices.push((name, stats));
        }
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        Ok(families(devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture_text, raw, sysfs};

    #[test]
    fn matches_node_exporter() {
        let fams = Xfs.collect(&sysfs("storage", "xfs/sys")).expect("collects");
        assert_golden(raw(&fams), "storage", "xfs/expected.txt");
    }

    #[test]
    fn host_format_parses() {
        // The global stats file of this host's 6.18 kernel (all zeros, every modern line).
        let text = fixture_text("storage", "xfs/sys/fs/xfs/stats/stats");
        let s = parse_stats(&text).expect("parses");
        assert_eq!(s.get("vnodes", 6), 0);
        let old = fixture_text("storage", "xfs/sys/fs/xfs/sda1/stats/stats");
        let s = parse_stats(&old).expect("parses");
        assert_eq!(s.get("extent_alloc", 0), 92447);
        assert_eq!(s.get("ig", 6), 22);
        assert_eq!(s.get("vnodes", 0), 92601);
        assert_eq!((s.get("rw", 0), s.get("rw", 1)), (107_739, 94_045));
    }

    #[test]
    fn garbled() {
        assert!(parse_stats("rw 1\n").is_err());
        assert!(parse_stats("vnodes 1 2 3\n").is_err());
        assert!(parse_stats("rw 1 4294967296\n").is_err());
        assert!(parse_stats("qm 1 x\n").is_err());
        assert!(parse_stats("xpc 1 2\n").is_err());
        assert!(parse_stats("xpc 1 2 18446744073709551615\n").is_ok());
        assert!(parse_stats("debug\n").is_ok());
    }

    #[test]
    fn absent_source_is_empty() {
        assert!(Xfs
            .collect(&sysfs("storage", "nowhere/sys"))
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn live() {
        // This host has the xfs module but no XFS mount: nothing, and success.
        assert!(Xfs.collect(&Paths::default()).is_ok());
    }
}
