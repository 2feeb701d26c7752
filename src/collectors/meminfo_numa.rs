//! `meminfo_numa` collector: per-NUMA-node memory from
//! `/sys/devices/system/node/node<N>/{meminfo,numastat}`, as node_exporter 1.5's
//! `meminfo_numa_linux.go`.
//!
//! `meminfo` lines (`Node 0 Active(anon):  1520 kB`) become gauges
//! `node_memory_numa_<Key>{node}` (`Active(anon)` → `Active_anon`; `kB` values × 1024, but —
//! unlike `meminfo` — no `_bytes` suffix); `numastat` lines become counters
//! `node_memory_numa_<key>_total{node}`. No node directory (a non-NUMA kernel) gives no
//! samples and success; a node without either file, or a malformed line, fails the collector.

use std::collections::BTreeMap;

use super::meminfo::metric_key;
use super::{read_parsed, read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(MeminfoNuma)
}

/// One value: metric-name suffix, node, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub node: String,
    pub value: f64,
}

/// Parses a node's `meminfo`.
pub fn parse_meminfo(text: &str) -> Result<Vec<Field>, String> {
    let mut out = Vec::with_capacity(48);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let (&[_, node, name, value], unit) = (
            parts.get(..4).unwrap_or_default(),
            parts.get(4..).unwrap_or_default(),
        ) else {
            return Err(format!("invalid line in meminfo: {line}"));
        };
        let mut value: f64 = value
            .parse()
            .map_err(|_| format!("invalid value in meminfo line {line:?}"))?;
        match unit {
            [] => {}
            ["kB"] => value *= 1024.0,
            _ => return Err(format!("invalid line in meminfo: {line}")),
        }
        out.push(Field {
            name: metric_key(name.trim_end_matches(':')),
            node: node.to_string(),
            value,
        });
    }
    Ok(out)
}

/// Parses a node's `numastat` (`numa_hit 16259562`): names get `_total`.
pub fn parse_numastat(text: &str, node: &str) -> Result<Vec<Field>, String> {
    let mut out = Vec::with_capacity(6);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let [name, value] = parts.as_slice() else {
            return Err(format!("line scan did not return 2 fields: {line}"));
        };
        let value: f64 = value
            .parse()
            .map_err(|_| format!("invalid value in numastat line {line:?}"))?;
        out.push(Field {
            name: format!("{name}_total"),
            node: node.to_string(),
            value,
        });
    }
    Ok(out)
}

/// The families, gauges from `meminfo`, counters from `numastat`.
pub fn families(gauges: Vec<Field>, counters: Vec<Field>) -> Vec<MetricFamily> {
    let mut fams: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for (fields, counter) in [(gauges, false), (counters, true)] {
        for f in fields {
            let fam = fams.entry(f.name.clone()).or_insert_with(|| {
                let name = format!("node_memory_numa_{}", f.name);
                let help = format!("Memory information field {}.", f.name);
                if counter {
                    MetricFamily::counter(name, help)
                } else {
                    MetricFamily::gauge(name, help)
                }
            });
            fam.push(&[("node", &f.node)], f.value);
        }
    }
    fams.into_values()
        .map(|mut f| {
            sort_samples(&mut f);
            f
        })
        .collect()
}

struct MeminfoNuma;

impl Collector for MeminfoNuma {
    fn name(&self) -> &'static str {
        "meminfo_numa"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let base = paths.sys("devices/system/node");
        // node_exporter globs `node[0-9]*` and takes the number from `node([0-9]*)`; an
        // unreadable directory globs to nothing.
        let mut nodes: Vec<(String, String)> = crate::collector::read_dir(&base)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                let rest = name.strip_prefix("node")?;
                rest.starts_with(|c: char| c.is_ascii_digit()).then(|| {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    (rest.get(..digits).unwrap_or(rest).to_string(), name.clone())
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.1.cmp(&b.1));
        let (mut gauges, mut counters) = (Vec::new(), Vec::new());
        for (node, dir) in &nodes {
            let path = base.join(dir).join("meminfo");
            gauges.extend(read_parsed(&path, parse_meminfo)?);
            let path = base.join(dir).join("numastat");
            counters.extend(
                parse_numastat(&read_to_string(&path)?, node)
                    .map_err(|m| CollectError::parse(&path, m))?,
            );
        }
        Ok(families(gauges, counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, render, sysfs, sysfs_at};

    #[test]
    fn parses() {
        let f = parse_meminfo("Node 1 Active(anon):  1520 kB\nNode 1 HugePages_Total:     0\n")
            .expect("parses");
        assert_eq!(
            f,
            [
                Field {
                    name: "Active_anon".into(),
                    node: "1".into(),
                    value: 1520.0 * 1024.0
                },
                Field {
                    name: "HugePages_Total".into(),
                    node: "1".into(),
                    value: 0.0
                }
            ]
        );
        assert!(parse_meminfo("Node 0 MemTotal:\n").is_err());
        assert!(parse_meminfo("Node 0 MemTotal: 1 MB\n").is_err());
        assert!(parse_meminfo("Node 0 MemTotal: x kB\n").is_err());
        assert_eq!(
            parse_numastat("numa_hit 5\n", "2").expect("parses")[0].name,
            "numa_hit_total"
        );
        assert!(parse_numastat("numa_hit 5 6\n", "2").is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = sysfs("procmisc", "debian12-vm-6.18/sys");
        let fams = MeminfoNuma.collect(&paths).expect("collects");
        assert_golden(
            render(fams),
            "procmisc",
            "expected/debian12-meminfo_numa.txt",
        );
        let none = sysfs_at("/nonexistent");
        assert!(MeminfoNuma.collect(&none).expect("no nodes").is_empty());
    }

    #[test]
    fn live() {
        // True on every host: success, and per-node memory exactly where the kernel has NUMA
        // nodes in sysfs (the fixture test covers the values).
        let fams = MeminfoNuma.collect(&Paths::default()).expect("reads");
        assert_eq!(
            fams.iter().any(|f| f.name == "node_memory_numa_MemTotal"),
            std::path::Path::new("/sys/devices/system/node/node0").exists(),
            "{fams:?}"
        );
    }
}
