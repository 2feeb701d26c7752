//! `bcache` collector: node_exporter 1.5's `bcache_linux.go` over prometheus/procfs 0.8's
//! `bcache` package.
//!
//! For every cache set `/sys/fs/bcache/<uuid>/` (procfs' glob `*-*`):
//!
//! - `{uuid}`: `average_key_size_sectors`, `btree_cache_size_bytes`, `cache_available_percent`,
//!   `congested`, `root_usage_percent`, `tree_depth`, and from `internal/`
//!   `active_journal_entries`, `btree_nodes`, `btree_read_average_duration_seconds`,
//!   `cache_read_races_total`;
//! - per backing device `bdev<N>` `{backing_device,uuid}`: `dirty_data_bytes`, from
//!   `writeback_rate_debug` `dirty_target_bytes`, `writeback_rate`,
//!   `writeback_rate_proportional_term`, `writeback_rate_integral_term`, `writeback_change`,
//!   and from its `stats_total/` `bypassed_bytes_total`, `cache_hits_total`,
//!   `cache_misses_total`, `cache_bypass_hits_total`, `cache_bypass_misses_total`,
//!   `cache_miss_collisions_total`, `cache_readaheads_total`;
//! - per cache device `cache<N>` `{cache_device,uuid}`: `io_errors`,
//!   `metadata_written_bytes_total`, `written_bytes_total`, and, only with node_exporter's
//!   `--collector.bcache.priorityStats` (off by default: reading `priority_stats` makes the
//!   kernel walk every bucket), `priority_stats_unused_percent` and
//!   `priority_stats_metadata_percent`.
//!
//! Values are parsed as procfs does, including bcache's "human" form (`20.4G`, where the
//! digits after the point are 1/1024 units printed as hundredths: `.4` is 4/10.24), and
//! node_exporter's units: `btree_read_average_duration_us` is multiplied by 1e-9, as
//! node_exporter 1.5 does (it takes the microseconds for nanoseconds).
//!
//! Without bcache (no `/sys/fs/bcache` or no cache set) there is nothing to read: no samples
//! and success, as node_exporter. Any value file missing or unparsable fails the collector, as
//! in procfs (where an empty file even panics node_exporter). The `stats_five_minute/` and the
//! cache set's own `stats_total/` files, which procfs reads but node_exporter does not export,
//! are not read.
//!
//! `--collector.bcache.priorityStats` (off by default, as node_exporter) adds
//! `node_bcache_priority_stats_unused_percent` and `node_bcache_priority_stats_metadata_percent`
//! per cache device, from its `priority_stats`.

use std::path::{Path, PathBuf};

use super::options::{collector_options, parse_bool};
use super::{glob_names, read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the bcache collector (`[collector.bcache]` in the file; the flag's name is
    /// node_exporter's, the file's key `priorityStats` too).
    pub struct BcacheOptions {
        /// Expose expensive priority stats.
        #[arg(id = "collector.bcache.priorityStats", long = "collector.bcache.priorityStats",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        #[serde(rename = "priorityStats")]
        pub priority_stats: Option<bool>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(Bcache {
        priority_stats: opts.bcache.priority_stats.unwrap_or(false),
    })
}

/// The collector, with node_exporter's `--collector.bcache.priorityStats`.
pub struct Bcache {
    priority_stats: bool,
}

impl Bcache {
    /// A collector that also reads the (expensive) `priority_stats` of cache devices.
    pub fn with_priority_stats(priority_stats: bool) -> Self {
        Bcache { priority_stats }
    }
}

/// procfs' `parsePseudoFloat`: bcache's `bch_hprint` prints the remainder (0..1023) of a
/// 1024-unit as hundredths, so `.4` means 4/10.24.
fn parse_pseudo_float(s: &str) -> Option<f64> {
    let mut parts = s.split('.');
    let int: f64 = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some(int),
        Some(frac) => Some(int + frac.parse::<f64>().ok()? / 10.24),
    }
}

/// procfs' `dehumanize`: a number, optionally with a `k`/`M`/`G`/… (1024-based) suffix; an
/// unknown suffix letter multiplies by 0.
pub fn dehumanize(s: &str) -> Option<u64> {
    let last = *s.as_bytes().last()?;
    if last > b'9' {
        let shift = match last {
            b'k' => 10,
            b'M' => 20,
            b'G' => 30,
            b'T' => 40,
            b'P' => 50,
            b'E' => 60,
            b'Z' => 70,
            b'Y' => 80,
            _ => -1,
        };
        let mul = if shift < 0 { 0.0 } else { 2f64.powi(shift) };
        // A non-ASCII last byte leaves no valid number before it (None), as in Go.
        let mant = parse_pseudo_float(s.get(..s.len() - 1)?)?;
        Some((mant * mul) as u64)
    } else {
        Some(s.parse::<f64>().ok()? as u64)
    }
}

/// procfs' `dehumanizeSigned`.
fn dehumanize_signed(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => Some((dehumanize(rest)? as i64).wrapping_neg()),
        None => Some(dehumanize(s)? as i64),
    }
}

/// The parsed `writeback_rate_debug` of a backing device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritebackRateDebug {
    pub rate: u64,
    pub dirty: u64,
    pub target: u64,
    pub proportional: i64,
    pub integral: i64,
    pub change: i64,
    pub next_io: i64,
}

/// procfs' `parseWritebackRateDebug`, line by line.
pub fn parse_writeback_rate_debug(text: &str) -> Result<WritebackRateDebug, String> {
    let mut w = WritebackRateDebug::default();
    for line in text.lines() {
        let last = || line.split_ascii_whitespace().last().unwrap_or("");
        let bad = || format!("invalid line {line:?}");
        if line.starts_with("rate:") {
            w.rate = dehumanize(last().trim_end_matches_once("/sec")).ok_or_else(bad)?;
        } else if line.starts_with("dirty:") {
            w.dirty = dehumanize(last()).ok_or_else(bad)?;
        } else if line.starts_with("target:") {
            w.target = dehumanize(last()).ok_or_else(bad)?;
        } else if line.starts_with("proportional:") {
            w.proportional = dehumanize_signed(last()).ok_or_else(bad)?;
        } else if line.starts_with("integral:") {
            w.integral = dehumanize_signed(last()).ok_or_else(bad)?;
        } else if line.starts_with("change:") {
            w.change = dehumanize_signed(last().trim_end_matches_once("/sec")).ok_or_else(bad)?;
        } else if line.starts_with("next io:") {
            w.next_io = last()
                .trim_end_matches_once("ms")
                .parse()
                .map_err(|_| bad())?;
        }
    }
    Ok(w)
}

/// procfs' `parsePriorityStats`: `(unused %, metadata %)`.
pub fn parse_priority_stats(text: &str) -> Result<(u64, u64), String> {
    let (mut unused, mut metadata) = (0, 0);
    for line in text.lines() {
        let slot = if line.starts_with("Unused:") {
            &mut unused
        } else if line.starts_with("Metadata:") {
            &mut metadata
        } else {
            continue;
        };
        let v = line.split_ascii_whitespace().last().unwrap_or("");
        *slot = v
            .trim_end_matches_once("%")
            .parse()
            .map_err(|_| format!("invalid line {line:?}"))?;
    }
    Ok((unused, metadata))
}

/// Go's `strings.TrimSuffix` (one occurrence).
trait TrimOnce {
    fn trim_end_matches_once(&self, suffix: &str) -> &str;
}

impl TrimOnce for str {
    fn trim_end_matches_once(&self, suffix: &str) -> &str {
        self.strip_suffix(suffix).unwrap_or(self)
    }
}

/// Reads a whole value file as procfs' `readValue`: the last byte (the newline) dropped, the
/// rest dehumanized.
fn read_value(path: &Path) -> Result<u64, CollectError> {
    let text = read_to_string(path)?;
    let body = text
        .get(..text.len().saturating_sub(1))
        .filter(|_| !text.is_empty())
        .ok_or_else(|| CollectError::parse(path, "empty file"))?;
    dehumanize(body).ok_or_else(|| CollectError::parse(path, format!("invalid value {body:?}")))
}

/// The seven period counters of a `stats_total/` directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodStats {
    pub bypassed: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_bypass_hits: u64,
    pub cache_bypass_misses: u64,
    pub cache_miss_collisions: u64,
    pub cache_readaheads: u64,
}

/// A backing device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bdev {
    pub name: String,
    pub dirty_data: u64,
    pub writeback: WritebackRateDebug,
    pub total: PeriodStats,
}

/// A cache device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub name: String,
    pub io_errors: u64,
    pub metadata_written: u64,
    pub written: u64,
    /// `(unused %, metadata %)`, when priority stats are read.
    pub priority: Option<(u64, u64)>,
}

/// One cache set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub uuid: String,
    /// average_key_size, btree_cache_size, cache_available_percent, congested,
    /// root_usage_percent, tree_depth, in that order.
    pub top: [u64; 6],
    /// active_journal_entries, btree_nodes, btree_read_average_duration_us, cache_read_races.
    pub internal: [u64; 4],
    pub bdevs: Vec<Bdev>,
    pub caches: Vec<Cache>,
}

const TOP: [&str; 6] = [
    "average_key_size",
    "btree_cache_size",
    "cache_available_percent",
    "congested",
    "root_usage_percent",
    "tree_depth",
];
const INTERNAL: [&str; 4] = [
    "active_journal_entries",
    "btree_nodes",
    "btree_read_average_duration_us",
    "cache_read_races",
];

/// Go's `filepath.Glob(dir/<prefix>[0-9]*)`, sorted.
fn glob_numbered(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(rd) = crate::collector::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(prefix)
                .and_then(|r| r.bytes().next())
                .is_some_and(|b| b.is_ascii_digit())
        })
        .collect();
    v.sort_unstable();
    v
}

/// Reads one cache set directory.
pub fn read_set(dir: &Path, priority_stats: bool) -> Result<Stats, CollectError> {
    let mut top = [0; 6];
    for (slot, f) in top.iter_mut().zip(TOP) {
        *slot = read_value(&dir.join(f))?;
    }
    let mut internal = [0; 4];
    let idir = dir.join("internal");
    for (slot, f) in internal.iter_mut().zip(INTERNAL) {
        *slot = read_value(&idir.join(f))?;
    }
    let mut bdevs = Vec::new();
    for name in glob_numbered(dir, "bdev") {
        let bdir = dir.join(&name);
        let dirty_data = read_value(&bdir.join("dirty_data"))?;
        let wpath = bdir.join("writeback_rate_debug");
        let wtext = read_to_string(&wpath)?;
        let writeback =
            parse_writeback_rate_debug(&wtext).map_err(|m| CollectError::parse(&wpath, m))?;
        let t = bdir.join("stats_total");
        let total = PeriodStats {
            bypassed: read_value(&t.join("bypassed"))?,
            cache_bypass_hits: read_value(&t.join("cache_bypass_hits"))?,
            cache_bypass_misses: read_value(&t.join("cache_bypass_misses"))?,
            cache_hits: read_value(&t.join("cache_hits"))?,
            cache_miss_collisions: read_value(&t.join("cache_miss_collisions"))?,
            cache_misses: read_value(&t.join("cache_misses"))?,
            cache_readaheads: read_value(&t.join("cache_readaheads"))?,
        };
        bdevs.push(Bdev {
            name,
            dirty_data,
            writeback,
            total,
        });
    }
    let mut caches = Vec::new();
    for name in glob_numbered(dir, "cache") {
        let cdir = dir.join(&name);
        let io_errors = read_value(&cdir.join("io_errors"))?;
        let metadata_written = read_value(&cdir.join("metadata_written"))?;
        let written = read_value(&cdir.join("written"))?;
        let priority = if priority_stats {
            let p = cdir.join("priority_stats");
            let text = read_to_string(&p)?;
            Some(parse_priority_stats(&text).map_err(|m| CollectError::parse(&p, m))?)
        } else {
            None
        };
        caches.push(Cache {
            name,
            io_errors,
            metadata_written,
            written,
            priority,
        });
    }
    Ok(Stats {
        uuid: dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        top,
        internal,
        bdevs,
        caches,
    })
}

fn gauge(name: &'static str, help: &'static str) -> MetricFamily {
    MetricFamily::gauge(name, help)
}

fn counter(name: &'static str, help: &'static str) -> MetricFamily {
    MetricFamily::counter(name, help)
}

/// The families for a set of cache sets.
pub fn families(sets: &[Stats]) -> Vec<MetricFamily> {
    let mut top = [
        gauge("node_bcache_average_key_size_sectors", "Average data per key in the btree (sectors)."),
        gauge("node_bcache_btree_cache_size_bytes", "Amount of memory currently used by the btree cache."),
        gauge("node_bcache_cache_available_percent", "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data)."),
        gauge("node_bcache_congested", "Congestion."),
        gauge("node_bcache_root_usage_percent", "Percentage of the root btree node in use (tree depth increases if too high)."),
        gauge("node_bcache_tree_depth", "Depth of the btree."),
    ];
    let mut internal = [
        gauge("node_bcache_active_journal_entries", "Number of journal entries that are newer than the index."),
        gauge("node_bcache_btree_nodes", "Total nodes in the btree."),
        gauge("node_bcache_btree_read_average_duration_seconds", "Average btree read duration."),
        counter("node_bcache_cache_read_races_total", "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed."),
    ];
    let mut bdev = [
        gauge("node_bcache_dirty_data_bytes", "Amount of dirty data for this backing device in the cache."),
        gauge("node_bcache_dirty_target_bytes", "Current dirty data target threshold for this backing device in bytes."),
        gauge("node_bcache_writeback_rate", "Current writeback rate for this backing device in bytes."),
        gauge("node_bcache_writeback_rate_proportional_term", "Current result of proportional controller, part of writeback rate"),
        gauge("node_bcache_writeback_rate_integral_term", "Current result of integral controller, part of writeback rate"),
        gauge("node_bcache_writeback_change", "Last writeback rate change step for this backing device."),
        counter("node_bcache_bypassed_bytes_total", "Amount of IO (both reads and writes) that has bypassed the cache."),
        counter("node_bcache_cache_hits_total", "Hits counted per individual IO as bcache sees them."),
        counter("node_bcache_cache_misses_total", "Misses counted per individual IO as bcache sees them."),
        counter("node_bcache_cache_bypass_hits_total", "Hits for IO intended to skip the cache."),
        counter("node_bcache_cache_bypass_misses_total", "Misses for IO intended to skip the cache."),
        counter("node_bcache_cache_miss_collisions_total", "Instances where data insertion from cache miss raced with write (data already present)."),
        counter("node_bcache_cache_readaheads_total", "Count of times readahead occurred."),
    ];
    let mut cache = [
        gauge(
            "node_bcache_io_errors",
            "Number of errors that have occurred, decayed by io_error_halflife.",
        ),
        counter(
            "node_bcache_metadata_written_bytes_total",
            "Sum of all non data writes (btree writes and all other metadata).",
        ),
        counter(
            "node_bcache_written_bytes_total",
            "Sum of all data that has been written to the cache.",
        ),
    ];
    let mut priority = [
        gauge(
            "node_bcache_priority_stats_unused_percent",
            "The percentage of the cache that doesn't contain any data.",
        ),
        gauge(
            "node_bcache_priority_stats_metadata_percent",
            "Bcache's metadata overhead.",
        ),
    ];
    for s in sets {
        let uuid = s.uuid.as_str();
        for (f, v) in top.iter_mut().zip(s.top) {
            f.push(&[("uuid", uuid)], v as f64);
        }
        for (i, (f, v)) in internal.iter_mut().zip(s.internal).enumerate() {
            // node_exporter treats the microseconds of btree_read_average_duration_us as
            // nanoseconds.
            let v = if i == 2 { v as f64 * 1e-9 } else { v as f64 };
            f.push(&[("uuid", uuid)], v);
        }
        for b in &s.bdevs {
            let w = &b.writeback;
            let t = &b.total;
            let values = [
                b.dirty_data as f64,
                w.target as f64,
                w.rate as f64,
                w.proportional as f64,
                w.integral as f64,
                w.change as f64,
                t.bypassed as f64,
                t.cache_hits as f64,
                t.cache_misses as f64,
                t.cache_bypass_hits as f64,
                t.cache_bypass_misses as f64,
                t.cache_miss_collisions as f64,
                t.cache_readaheads as f64,
            ];
            for (f, v) in bdev.iter_mut().zip(values) {
                f.push(&[("backing_device", &b.name), ("uuid", uuid)], v);
            }
        }
        for c in &s.caches {
            let labels = [("cache_device", c.name.as_str()), ("uuid", uuid)];
            let values = [c.io_errors, c.metadata_written, c.written];
            for (f, v) in cache.iter_mut().zip(values) {
                f.push(&labels, v as f64);
            }
            if let Some((unused, metadata)) = c.priority {
                priority[0].push(&labels, unused as f64);
                priority[1].push(&labels, metadata as f64);
            }
        }
    }
    top.into_iter()
        .chain(internal)
        .chain(bdev)
        .chain(cache)
        .chain(priority)
        .collect()
}

impl Collector for Bcache {
    fn name(&self) -> &'static str {
        "bcache"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let root: PathBuf = paths.sys("fs/bcache");
        // Go's filepath.Glob ignores I/O errors: no directory, no cache sets.
        let names = glob_names(&root, |n| n.contains('-'));
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let sets = names
            .iter()
            .map(|n| read_set(&root.join(n), self.priority_stats))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(families(&sets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture, served, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter() {
        let fams = Bcache::with_priority_stats(false)
            .collect(&sysfs("storage2", "bcache/sys"))
            .expect("collects");
        assert_golden(served(fams), "storage2", "bcache/expected.txt");
    }

    #[test]
    fn matches_node_exporter_with_priority_stats() {
        let fams = Bcache::with_priority_stats(true)
            .collect(&sysfs("storage2", "bcache/sys"))
            .expect("collects");
        assert_golden(
            served(fams),
            "storage2",
            "bcache/expected-priority-stats.txt",
        );
    }

    #[test]
    fn reads_the_set_exactly() {
        let s = read_set(
            &fixture(
                "storage2",
                "bcache/sys/fs/bcache/deaddd54-c735-46d5-868e-f331c5fd7c74",
            ),
            true,
        )
        .expect("reads");
        assert_eq!(s.top, [0, 0, 100, 0, 0, 0]);
        assert_eq!(s.internal, [1, 0, 1305, 0]);
        assert_eq!(s.bdevs.len(), 1);
        let b = &s.bdevs[0];
        assert_eq!(b.name, "bdev0");
        // 20.4G: 20 + 4/10.24 GiB.
        assert_eq!(b.dirty_data, 21_894_266_880);
        // The backing device's own stats_total (the set's says 546 hits).
        assert_eq!(b.total.cache_hits, 1000);
        assert_eq!(b.total.cache_misses, 7);
        assert_eq!(b.total.cache_readaheads, 13);
        assert_eq!(
            b.writeback,
            WritebackRateDebug {
                rate: 1_150_976,
                dirty: 21_894_266_880,
                target: 21_894_266_880,
                proportional: 437_748,
                integral: 808_960,
                change: 329_204,
                next_io: 17,
            }
        );
        assert_eq!(s.caches[0].name, "cache0");
        assert_eq!(s.caches[0].metadata_written, 512);
        assert_eq!(s.caches[0].priority, Some((99, 0)));
    }

    #[test]
    fn human_values() {
        assert_eq!(dehumanize("0"), Some(0));
        assert_eq!(dehumanize("512"), Some(512));
        assert_eq!(dehumanize("1.9k"), Some(1924));
        assert_eq!(dehumanize("1.1M"), Some(1_150_976));
        assert_eq!(dehumanize("3x"), Some(0));
        assert_eq!(dehumanize(""), None);
        assert_eq!(dehumanize("k"), None);
        assert_eq!(dehumanize("1.k"), None);
        assert_eq!(dehumanize_signed("-427.5k"), Some(-437_748));
        let w = parse_writeback_rate_debug(
            "rate:\t\t512/sec\ndirty:\t\t0\ntarget:\t\t1.9k\nproportional:\t-427.5k\n\
             integral:\t-3\nchange:\t\t-1.1M/sec\nnext io:\t-17ms\n",
        )
        .expect("parses");
        assert_eq!(
            (
                w.rate,
                w.target,
                w.proportional,
                w.integral,
                w.change,
                w.next_io
            ),
            (512, 1924, -437_748, -3, -1_150_976, -17)
        );
        assert!(parse_writeback_rate_debug("rate:\t\tfast\n").is_err());
        assert!(parse_priority_stats("Unused:\t\tmany%\n").is_err());
    }

    #[test]
    fn broken_set_fails() {
        let dir = std::env::temp_dir().join(format!("bcache-test-{}", std::process::id()));
        let set = dir.join("fs/bcache/aaaa-bbbb");
        std::fs::create_dir_all(set.join("internal")).expect("mkdir");
        for f in TOP {
            std::fs::write(set.join(f), "1\n").expect("write");
        }
        for f in INTERNAL {
            std::fs::write(set.join("internal").join(f), "2\n").expect("write");
        }
        let c = Bcache::with_priority_stats(false);
        let fams = c.collect(&sysfs_at(dir.clone())).expect("collects");
        assert_eq!(fams.iter().filter(|f| !f.samples.is_empty()).count(), 10);
        std::fs::write(set.join("congested"), "").expect("write");
        assert!(c.collect(&sysfs_at(dir.clone())).is_err());
        std::fs::remove_file(set.join("congested")).expect("rm");
        assert!(c.collect(&sysfs_at(dir.clone())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn absent_is_empty_success() {
        let c = Bcache::with_priority_stats(false);
        assert!(c
            .collect(&sysfs("storage2", "no-such-dir"))
            .expect("success")
            .is_empty());
    }
}
