//! `entropy` collector: the kernel's random pool, as node_exporter 1.5's `entropy_linux.go`.
//!
//! - `node_entropy_available_bits` from `/proc/sys/kernel/random/entropy_avail`;
//! - `node_entropy_pool_size_bits` from `/proc/sys/kernel/random/poolsize`.
//!
//! Either file missing or unreadable fails the collector (`success 0`), as node_exporter's
//! `couldn't get entropy_avail` / `couldn't get entropy poolsize`. Partial output as
//! node_exporter's: a missing `poolsize` (procfs' `KernelRandom` leaves it unset) fails after
//! `node_entropy_available_bits` was sent, which is kept; any other error on either file fails
//! `KernelRandom` as a whole, and nothing is kept. node_exporter (through `KernelRandom`) also
//! reads `urandom_min_reseed_secs` and the wakeup thresholds but exports none of them: they are
//! not read here (deviation: one of them unreadable, other than missing, fails node_exporter's
//! collector, not ours).

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Entropy)
}

struct Entropy;

/// Parses one of the `/proc/sys/kernel/random` counters: an unsigned decimal and a newline.
pub fn parse_bits(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse::<u64>()
        .map_err(|_| format!("not an unsigned integer: {t:?}"))
}

fn available_family(available: u64) -> MetricFamily {
    MetricFamily::gauge("node_entropy_available_bits", "Bits of available entropy.")
        .with(&[], available as f64)
}

/// The two families, in node_exporter's order.
pub fn families(available: u64, pool_size: u64) -> Vec<MetricFamily> {
    vec![
        available_family(available),
        MetricFamily::gauge("node_entropy_pool_size_bits", "Bits of entropy pool.")
            .with(&[], pool_size as f64),
    ]
}

fn read_bits(paths: &Paths, rel: &str) -> Result<u64, CollectError> {
    read_parsed(&paths.proc(rel), parse_bits)
}

/// A file that is not there (`ENOENT`), which procfs' `KernelRandom` leaves unset.
fn absent(e: &CollectError) -> bool {
    matches!(e, CollectError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl Collector for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let available = read_bits(paths, "sys/kernel/random/entropy_avail")?;
        let pool_size = match read_bits(paths, "sys/kernel/random/poolsize") {
            Ok(v) => v,
            Err(e) if absent(&e) => {
                return Err(CollectError::partial(vec![available_family(available)], e))
            }
            Err(e) => return Err(e),
        };
        Ok(families(available, pool_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw;

    #[test]
    fn parses_debian12_values() {
        // Linux 6.18 (this VM): since 5.18 both files always read 256.
        assert_eq!(parse_bits("256\n"), Ok(256));
        assert_eq!(parse_bits("4096\n"), Ok(4096));
        assert!(parse_bits("").is_err());
        assert!(parse_bits("-1\n").is_err());
    }

    #[test]
    fn collect_fixture() {
        let fams = Entropy.collect(&hw::paths()).expect("collects");
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].name, "node_entropy_available_bits");
        assert_eq!(fams[0].samples[0].value, 1337.0);
        assert!(fams[0].samples[0].labels.is_empty());
        assert_eq!(fams[1].name, "node_entropy_pool_size_bits");
        assert_eq!(fams[1].samples[0].value, 4096.0);
    }

    #[test]
    fn missing_source_fails() {
        let mut p = hw::paths();
        p.procfs = p.procfs.join("nonexistent");
        assert!(Entropy.collect(&p).is_err());
    }

    /// Partial output as node_exporter's: without `poolsize`, `entropy_avail` is kept and the
    /// collector fails; a `poolsize` that is there but not a number fails procfs'
    /// `KernelRandom` as a whole, so nothing is kept.
    #[test]
    fn partial_output_keeps_available_bits_when_poolsize_is_missing() {
        let tree = crate::collectors::testutil::fixture_copy("hw", "proc");
        let poolsize = tree.path().join("sys/kernel/random/poolsize");
        std::fs::remove_file(&poolsize).expect("remove");
        let paths = crate::collectors::testutil::procfs_at(tree.path());
        let o = crate::collector::run(&Entropy, &paths);
        let err = o.error.expect("the collector fails").to_string();
        assert!(err.contains("poolsize"), "{err}");
        assert_eq!(
            crate::collectors::testutil::names(&o.families),
            ["node_entropy_available_bits"]
        );
        assert_eq!(o.families[0].samples[0].value, 1337.0);

        std::fs::write(&poolsize, "big\n").expect("write");
        let o = crate::collector::run(&Entropy, &paths);
        assert!(o.error.is_some(), "the collector fails");
        assert!(o.families.is_empty(), "nothing kept");
    }

    #[test]
    fn live() {
        // Every Linux kernel has both files: a failure here is a real one, never skipped.
        let p = Paths::default();
        let fams = Entropy.collect(&p).unwrap_or_else(|e| {
            panic!(
                "reading /proc/sys/kernel/random/{{entropy_avail,poolsize}} (every Linux kernel \
                 has them): {e}"
            )
        });
        assert!(fams[1].samples[0].value >= fams[0].samples[0].value);
    }
}
