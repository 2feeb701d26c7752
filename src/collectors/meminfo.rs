//! `meminfo` collector: every `/proc/meminfo` field as a `node_memory_*` gauge, named as
//! node_exporter 1.5's `meminfo_linux.go` names it:
//!
//! - `Active(anon)` → `Active_anon` (the parenthesised part joined with `_`);
//! - a value with a unit (always `kB`) is multiplied by 1024 and the name gets `_bytes`;
//! - a value without a unit (`HugePages_Total`, …) is exported as is, without `_bytes`.
//!
//! Every field the kernel prints is exported, so fields that exist only on some kernels
//! (`MemAvailable` since 3.14, `Zswap`, `SecPageTables`, `Unaccepted`, …) appear exactly where
//! the kernel has them.

use std::borrow::Cow;

use super::{concat, lines, parse_f64, read_parsed, CollectError, Collector, NameCache, Paths};
use crate::exposition::MetricFamily;

/// One field: its family name (`node_memory_MemTotal_bytes`, `node_memory_HugePages_Total`),
/// HELP text and value (bytes for `kB` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: Cow<'static, str>,
    pub help: Cow<'static, str>,
    pub value: f64,
}

const PREFIX: &str = "node_memory_";

/// Names and HELP texts by key (with ` kB` when the value has a unit).
static NAMES: NameCache = NameCache::new();

/// Parses `/proc/meminfo` into fields in file order. Blank lines are skipped (some CentOS 6
/// kernels print one); a line that is not `Key: value [unit]`, a non-numeric value or a key
/// that cannot form a metric name is an error.
pub fn parse_meminfo(text: &str) -> Result<Vec<Field>, String> {
    let mut out = Vec::with_capacity(64);
    let mut cache_key = String::with_capacity(64);
    for line in lines(text) {
        let mut parts = line.split_ascii_whitespace();
        let Some(key) = parts.next() else { continue };
        let (Some(value), unit, None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("invalid line {line:?}"));
        };
        let key = key
            .strip_suffix(':')
            .ok_or_else(|| format!("no ':' after the key in line {line:?}"))?;
        let mut value: f64 =
            parse_f64(value).map_err(|_| format!("bad value {value:?} in line {line:?}"))?;
        cache_key.clear();
        cache_key.push_str(key);
        if unit.is_some() {
            // node_exporter presumes kB for every unit; the kernel prints no other.
            value *= 1024.0;
            cache_key.push_str(" kB");
        }
        let (name, help) = NAMES.get(&cache_key, |_| {
            let mut name = String::with_capacity(PREFIX.len() + key.len() + 6);
            name.push_str(PREFIX);
            push_metric_key(&mut name, key);
            if unit.is_some() {
                name.push_str("_bytes");
            }
            let suffix = name.get(PREFIX.len()..).unwrap_or("");
            let help = concat(&["Memory information field ", suffix, "."]);
            (name, help)
        });
        if !name.get(PREFIX.len()..).is_some_and(is_metric_name) {
            return Err(format!("key {key:?} makes no valid metric name"));
        }
        out.push(Field { name, help, value });
    }
    Ok(out)
}

/// `Active(anon)` → `Active_anon`: node_exporter's `\((.*)\)` → `_${1}` (greedy, so from the
/// first `(` to the last `)`), without a regex.
pub(super) fn metric_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    push_metric_key(&mut out, key);
    out
}

/// [`metric_key`], appended to `out`.
fn push_metric_key(out: &mut String, key: &str) {
    if let (Some(open), Some(close)) = (key.find('('), key.rfind(')')) {
        // `(` and `)` are ASCII: these offsets are boundaries, `get` only satisfies the lint.
        if let (Some(a), Some(b), Some(c)) = (
            key.get(..open),
            key.get(open + 1..close),
            key.get(close + 1..),
        ) {
            out.push_str(a);
            out.push('_');
            out.push_str(b);
            out.push_str(c);
            return;
        }
    }
    out.push_str(key);
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The families, sorted by name (byte order, as node_exporter's output is). A key the kernel
/// prints twice keeps its last value, as node_exporter's map does.
pub fn families(fields: Vec<Field>) -> Vec<MetricFamily> {
    let mut fields = fields;
    // Stable sort keeps file order among equal names, so the last of a run is the last printed.
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<MetricFamily> = Vec::with_capacity(fields.len());
    for Field { name, help, value } in fields {
        if let Some(last) = out.last_mut() {
            if last.name == name {
                if let Some(s) = last.samples.first_mut() {
                    s.value = value;
                }
                continue;
            }
        }
        // node_exporter types a field ending in `_total` as a counter (none does today).
        let fam = if name.ends_with("_total") {
            MetricFamily::counter(name, help)
        } else {
            MetricFamily::gauge(name, help)
        };
        out.push(fam.with(&[], value));
    }
    out
}

pub struct MemInfo;

impl Collector for MemInfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("meminfo");
        let fields = read_parsed(&path, parse_meminfo)?;
        Ok(families(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::first_value as value;
    use crate::exposition::MetricType;

    const DEBIAN12: &str = include_str!("../../tests/fixtures/hosts/debian12-vm-6.18/proc/meminfo");
    const PROCFS: &str = include_str!("../../tests/fixtures/hosts/procfs-fixture/proc/meminfo");

    #[test]
    fn debian12() {
        let fields = parse_meminfo(DEBIAN12).expect("parses");
        assert_eq!(fields.len(), DEBIAN12.lines().count());
        assert_eq!(
            fields[0],
            Field {
                name: "node_memory_MemTotal_bytes".into(),
                help: "Memory information field MemTotal_bytes.".into(),
                value: 24_683_656.0 * 1024.0
            }
        );
        let fams = families(fields);
        assert_eq!(
            value(&fams, "node_memory_MemAvailable_bytes"),
            Some(24_467_988.0 * 1024.0)
        );
        assert_eq!(
            value(&fams, "node_memory_Active_anon_bytes"),
            Some(1520.0 * 1024.0)
        );
        assert_eq!(
            value(&fams, "node_memory_Inactive_file_bytes"),
            Some(15_308.0 * 1024.0)
        );
        assert_eq!(
            value(&fams, "node_memory_VmallocTotal_bytes"),
            Some(34_359_738_367.0 * 1024.0)
        );
        // Unitless: no `_bytes`, no scaling.
        assert_eq!(value(&fams, "node_memory_HugePages_Total"), Some(0.0));
        assert_eq!(value(&fams, "node_memory_HugePages_Total_bytes"), None);
        // Recent-kernel fields come through as they are.
        assert_eq!(value(&fams, "node_memory_SecPageTables_bytes"), Some(0.0));
        assert_eq!(value(&fams, "node_memory_Zswapped_bytes"), Some(0.0));

        let total = fams
            .iter()
            .find(|f| f.name == "node_memory_MemTotal_bytes")
            .expect("MemTotal");
        assert_eq!(total.help, "Memory information field MemTotal_bytes.");
        assert_eq!(total.kind, MetricType::Gauge);
        assert!(total.samples[0].labels.is_empty());
        // Sorted by name, byte order (`Active_anon` < `Active_bytes` < `Active_file`).
        let names: Vec<_> = fams.iter().map(|f| &*f.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(
            &names[..3],
            [
                "node_memory_Active_anon_bytes",
                "node_memory_Active_bytes",
                "node_memory_Active_file_bytes"
            ]
        );
    }

    #[test]
    fn procfs_fixture_old_kernel() {
        let fams = families(parse_meminfo(PROCFS).expect("parses"));
        assert_eq!(fams.len(), 42);
        assert_eq!(
            value(&fams, "node_memory_MemTotal_bytes"),
            Some(16_042_172_416.0)
        );
        assert_eq!(
            value(&fams, "node_memory_DirectMap2M_bytes"),
            Some(16_039_936.0 * 1024.0)
        );
        assert_eq!(value(&fams, "node_memory_NFS_Unstable_bytes"), Some(0.0));
        assert_eq!(
            value(&fams, "node_memory_Committed_AS_bytes"),
            Some(530_844.0 * 1024.0)
        );
        // A pre-3.14 kernel: no MemAvailable, and nothing invented for it.
        assert_eq!(value(&fams, "node_memory_MemAvailable_bytes"), None);
    }

    #[test]
    fn names() {
        assert_eq!(metric_key("Active(anon)"), "Active_anon");
        assert_eq!(metric_key("Inactive(file)"), "Inactive_file");
        assert_eq!(metric_key("MemTotal"), "MemTotal");
        assert!(is_metric_name("Active_anon_bytes"));
        assert!(!is_metric_name("Foo-Bar"));
        assert!(!is_metric_name(""));
    }

    #[test]
    fn blank_lines_and_duplicates() {
        let fams = families(parse_meminfo("A:  1 kB\n\nA:  2 kB\nB:  3\n").expect("parses"));
        assert_eq!(
            crate::collectors::testutil::first_values(&fams),
            [("node_memory_A_bytes", 2048.0), ("node_memory_B", 3.0)]
        );
    }

    #[test]
    fn garbled() {
        assert!(parse_meminfo("MemTotal:\n").is_err());
        assert!(parse_meminfo("MemTotal: abc kB\n").is_err());
        assert!(parse_meminfo("MemTotal 12 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 12 kB extra\n").is_err());
        assert!(parse_meminfo("Mem-Total: 12 kB\n").is_err());
    }

    #[test]
    fn live() {
        let fams = MemInfo
            .collect(&Paths::default())
            .expect("reads /proc/meminfo");
        for name in [
            "node_memory_MemTotal_bytes",
            "node_memory_MemFree_bytes",
            "node_memory_MemAvailable_bytes",
            "node_memory_Active_anon_bytes",
            "node_memory_HugePages_Total",
        ] {
            assert!(value(&fams, name).is_some(), "{name} missing");
        }
        assert!(value(&fams, "node_memory_MemTotal_bytes").unwrap_or(0.0) > 1e6);
    }
}
