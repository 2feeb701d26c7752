//! `zoneinfo` collector: `/proc/zoneinfo` as `node_zoneinfo_*{node,zone}`, as node_exporter
//! 1.5's `zoneinfo_linux.go` (prometheus/procfs `Zoneinfo`).
//!
//! procfs' parser, reproduced: the file is cut into blocks at each `\nNode`; a block's
//! `<N>, zone <name>` line names it; every other line is `key value` and known keys fill the
//! block's fields (a later line overwrites an earlier one). So the per-node statistics the
//! kernel prints under the first zone of each node (`per-node stats`) are attributed to that
//! zone, exactly as node_exporter exports them. A value that does not parse is left out
//! (procfs ignores the parse error); the `protection: (a, b, ...)` array gives
//! `node_zoneinfo_protection_<i>`. A missing file fails the collector.

use super::sysctl::parse_go_int;
use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Zoneinfo)
}

/// procfs' `Zoneinfo` fields in struct order: (file key, metric suffix, HELP, is a counter).
const FIELDS: [(&str, &str, &str, bool); 34] = [
    (
        "nr_free_pages",
        "nr_free_pages",
        "Total number of free pages in the zone",
        false,
    ),
    ("min", "min_pages", "Zone watermark pages_min", false),
    ("low", "low_pages", "Zone watermark pages_low", false),
    ("high", "high_pages", "Zone watermark pages_high", false),
    (
        "scanned",
        "scanned_pages",
        "Pages scanned since last reclaim",
        false,
    ),
    (
        "spanned",
        "spanned_pages",
        "Total pages spanned by the zone, including holes",
        false,
    ),
    (
        "present",
        "present_pages",
        "Physical pages existing within the zone",
        false,
    ),
    (
        "managed",
        "managed_pages",
        "Present pages managed by the buddy system",
        false,
    ),
    (
        "nr_active_anon",
        "nr_active_anon_pages",
        "Number of anonymous pages recently more used",
        false,
    ),
    (
        "nr_inactive_anon",
        "nr_inactive_anon_pages",
        "Number of anonymous pages recently less used",
        false,
    ),
    (
        "nr_isolated_anon",
        "nr_isolated_anon_pages",
        "Temporary isolated pages from anon lru",
        false,
    ),
    (
        "nr_anon_pages",
        "nr_anon_pages",
        "Number of anonymous pages currently used by the system",
        false,
    ),
    (
        "nr_anon_transparent_hugepages",
        "nr_anon_transparent_hugepages",
        "Number of anonymous transparent huge pages currently used by the system",
        false,
    ),
    (
        "nr_active_file",
        "nr_active_file_pages",
        "Number of active pages with file-backing",
        false,
    ),
    (
        "nr_inactive_file",
        "nr_inactive_file_pages",
        "Number of inactive pages with file-backing",
        false,
    ),
    (
        "nr_isolated_file",
        "nr_isolated_file_pages",
        "Temporary isolated pages from file lru",
        false,
    ),
    (
        "nr_file_pages",
        "nr_file_pages",
        "Number of file pages",
        false,
    ),
    (
        "nr_slab_reclaimable",
        "nr_slab_reclaimable_pages",
        "Number of reclaimable slab pages",
        false,
    ),
    (
        "nr_slab_unreclaimable",
        "nr_slab_unreclaimable_pages",
        "Number of unreclaimable slab pages",
        false,
    ),
    (
        "nr_mlock_stack",
        "nr_mlock_stack_pages",
        "mlock()ed pages found and moved off LRU",
        false,
    ),
    (
        "nr_kernel_stack",
        "nr_kernel_stacks",
        "Number of kernel stacks",
        false,
    ),
    (
        "nr_mapped",
        "nr_mapped_pages",
        "Number of mapped pages",
        false,
    ),
    ("nr_dirty", "nr_dirty_pages", "Number of dirty pages", false),
    (
        "nr_writeback",
        "nr_writeback_pages",
        "Number of writeback pages",
        false,
    ),
    (
        "nr_unevictable",
        "nr_unevictable_pages",
        "Number of unevictable pages",
        false,
    ),
    (
        "nr_shmem",
        "nr_shmem_pages",
        "Number of shmem pages (included tmpfs/GEM pages)",
        false,
    ),
    (
        "nr_dirtied",
        "nr_dirtied_total",
        "Page dirtyings since bootup",
        true,
    ),
    (
        "nr_written",
        "nr_written_total",
        "Page writings since bootup",
        true,
    ),
    (
        "numa_hit",
        "numa_hit_total",
        "Allocated in intended node",
        true,
    ),
    (
        "numa_miss",
        "numa_miss_total",
        "Allocated in non intended node",
        true,
    ),
    (
        "numa_foreign",
        "numa_foreign_total",
        "Was intended here, hit elsewhere",
        true,
    ),
    (
        "numa_interleave",
        "numa_interleave_total",
        "Interleaver preferred this zone",
        true,
    ),
    (
        "numa_local",
        "numa_local_total",
        "Allocation from local node",
        true,
    ),
    (
        "numa_other",
        "numa_other_total",
        "Allocation from other node",
        true,
    ),
];

/// One block of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub node: String,
    pub zone: String,
    /// Indexed as [`FIELDS`].
    pub values: [Option<i64>; FIELDS.len()],
    pub protection: Vec<i64>,
}

/// procfs' `(\d+), zone\s+(\w+)`, unanchored.
fn node_zone(line: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(i) = line.get(from..).and_then(|rest| rest.find(", zone")) {
        let at = from + i;
        from = at + 1;
        // Every offset below follows ASCII bytes, so `get` never misses a boundary.
        let before = line.get(..at)?;
        let digits = before.bytes().rev().take_while(u8::is_ascii_digit).count();
        let after = line.get(at + 6..)?;
        let ws = after
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r'))
            .count();
        let word = after
            .get(ws..)?
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if digits > 0 && ws > 0 && word > 0 {
            return Some((
                before.get(before.len() - digits..)?,
                after.get(ws..ws + word)?,
            ));
        }
    }
    None
}

impl Default for Zone {
    fn default() -> Self {
        Zone {
            node: String::new(),
            zone: String::new(),
            values: [None; FIELDS.len()],
            protection: Vec::new(),
        }
    }
}

pub fn parse_zoneinfo(text: &str) -> Vec<Zone> {
    let mut out = Vec::new();
    for block in text.split("\nNode") {
        let mut z = Zone::default();
        for line in block.split('\n') {
            if let Some((node, zone)) = node_zone(line) {
                z.node = node.to_string();
                z.zone = zone.to_string();
                continue;
            }
            let trimmed = line.trim();
            if trimmed.starts_with("per-node stats") {
                continue;
            }
            let mut parts = trimmed.split_ascii_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            if key == "protection:" {
                if let Some(p) = parse_protection(line) {
                    z.protection = p;
                }
            } else if let Some(i) = FIELDS.iter().position(|f| f.0 == key) {
                if let Some(slot) = z.values.get_mut(i) {
                    *slot = parse_go_int(value).ok();
                }
            }
        }
        out.push(z);
    }
    out
}

/// `  protection: (0, 2962, 24000)`: the text between the first and second `:`, without its
/// first `(` and `)`, split on `", "`, each a decimal `i64`; any bad element drops the array.
fn parse_protection(line: &str) -> Option<Vec<i64>> {
    let inner = line.split(':').nth(1)?;
    let inner = inner.replacen('(', "", 1).replacen(')', "", 1);
    inner
        .trim()
        .split(", ")
        .map(|s| s.parse::<i64>().ok())
        .collect()
}

pub fn families(zones: &[Zone]) -> Vec<MetricFamily> {
    let mut fams: Vec<Option<MetricFamily>> = vec![None; FIELDS.len()];
    let mut protection: Vec<MetricFamily> = Vec::new();
    for z in zones {
        let labels = [("node", z.node.as_str()), ("zone", z.zone.as_str())];
        for ((v, (_, name, help, counter)), fam) in z.values.iter().zip(FIELDS).zip(&mut fams) {
            let Some(v) = v else { continue };
            let fam = fam.get_or_insert_with(|| {
                let name = format!("node_zoneinfo_{name}");
                if counter {
                    MetricFamily::counter(name, help)
                } else {
                    MetricFamily::gauge(name, help)
                }
            });
            fam.push(&labels, *v as f64);
        }
        for (i, v) in z.protection.iter().enumerate() {
            if protection.len() <= i {
                protection.push(MetricFamily::gauge(
                    format!("node_zoneinfo_protection_{i}"),
                    format!("Protection array {i}. field"),
                ));
            }
            if let Some(f) = protection.get_mut(i) {
                f.push(&labels, *v as f64);
            }
        }
    }
    let mut out: Vec<MetricFamily> = fams.into_iter().flatten().chain(protection).collect();
    out.iter_mut().for_each(sort_samples);
    out
}

struct Zoneinfo;

impl Collector for Zoneinfo {
    fn name(&self) -> &'static str {
        "zoneinfo"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let text = read_to_string(&paths.proc("zoneinfo"))?;
        Ok(families(&parse_zoneinfo(&text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn parses() {
        assert_eq!(node_zone("Node 0, zone      DMA"), Some(("0", "DMA")));
        assert_eq!(node_zone(" 12, zone\tDMA32 x"), Some(("12", "DMA32")));
        assert_eq!(node_zone("Node x, zone DMA"), None);
        assert_eq!(node_zone("Node 0, zone"), None);
        assert_eq!(
            parse_protection("        protection: (0, 2962, 24000)"),
            Some(vec![0, 2962, 24000])
        );
        assert_eq!(parse_protection("        protection: (0, x)"), None);
        let zones = parse_zoneinfo(include_str!(
            "../../tests/fixtures/procmisc/debian12-vm-6.18/proc/zoneinfo"
        ));
        assert_eq!(zones.len(), 5);
        assert_eq!((&*zones[0].node, &*zones[0].zone), ("0", "DMA"));
        // The per-node stats land on the node's first zone, as with procfs.
        assert!(zones[0].values[8].is_some());
        assert!(zones[1].values[8].is_none());
        let z = parse_zoneinfo("Node 0, zone DMA\n  min 0x10\n  low x\n");
        assert_eq!(z[0].values[1], Some(16));
        assert_eq!(z[0].values[2], None);
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = Zoneinfo.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-zoneinfo.txt");
    }

    #[test]
    fn live() {
        let fams = Zoneinfo.collect(&Paths::default()).expect("reads zoneinfo");
        assert!(fams.iter().any(|f| f.name == "node_zoneinfo_managed_pages"));
    }
}
