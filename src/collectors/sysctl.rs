//! `sysctl` collector: selected `/proc/sys` values, as node_exporter's `sysctl_linux.go`
//! (added in 1.4.0, so present in 1.5; this follows the 1.5 code, which the newest release
//! still matches). Off by default; configured by `SysctlOptions::include`
//! (`--collector.sysctl.include`) and `SysctlOptions::include_info`
//! (`--collector.sysctl.include-info`).
//!
//! An entry is `name` or `name:key1,key2,...`; `name` is dotted (`net.ipv4.tcp_rmem`) and read
//! from `/proc/sys/<name with dots as slashes>` (prometheus/procfs `SysctlInts`/`SysctlStrings`:
//! one `read` of at most 128 bytes, trimmed, split on whitespace).
//!
//! - Numeric (`include`): one value → untyped `node_sysctl_<name>` (name sanitised: runs of
//!   characters outside `[0-9A-Za-z_]`, with the underscores around them, become one `_`),
//!   HELP `sysctl <name>`; several values without keys → the same family with an `index`
//!   label; with keys (as many as values) → `node_sysctl_<name>_<key>`, HELP
//!   `sysctl <name>, field <i>`. Values are parsed as Go's `strconv.ParseInt(s, 0, 64)`.
//! - Info (`include-info`): gauge `node_sysctl_info{index,name,value} 1`, one sample per value.
//!
//! As node_exporter, the first entry that cannot be read or parsed (missing file, no value,
//! keys not matching the value count, keys on an info entry) fails the whole collector.
//! node_exporter still exports the entries before the failing one; here a failed collector
//! exports nothing.

use std::io::Read;

use super::options::collector_options;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::sort_samples;
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the sysctl collector (`[collector.sysctl]` in the file).
    pub struct SysctlOptions {
        /// Sysctl to export as a number, as NAME or NAME:LABEL,... for multi-value ones.
        /// Repeatable.
        #[arg(id = "collector.sysctl.include", long = "collector.sysctl.include", value_name = "SYSCTL")]
        pub include: Option<Vec<String>>,
        /// Sysctl to export as an info metric's label. Repeatable.
        #[arg(id = "collector.sysctl.include-info", long = "collector.sysctl.include-info", value_name = "SYSCTL")]
        pub include_info: Option<Vec<String>>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.sysctl;
    let numeric = o.include.iter().flatten().map(|s| Entry::new(s, true));
    let info = o
        .include_info
        .iter()
        .flatten()
        .map(|s| Entry::new(s, false));
    Box::new(Sysctl {
        entries: numeric.chain(info).collect(),
    })
}

/// One configured sysctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub numeric: bool,
    pub name: String,
    pub keys: Vec<String>,
    /// `node_sysctl_<sanitised name>`, computed once.
    metric: String,
}

impl Entry {
    pub fn new(include: &str, numeric: bool) -> Entry {
        let (name, keys) = match include.split_once(':') {
            Some((n, k)) => (n, k.split(',').map(str::to_string).collect()),
            None => (include, Vec::new()),
        };
        Entry {
            numeric,
            name: name.to_string(),
            keys,
            metric: format!("node_sysctl_{}", sanitize_metric_name(name)),
        }
    }

    /// `/proc/sys/...` relative to the procfs root.
    fn rel_path(&self) -> String {
        format!("sys/{}", self.name.replace('.', "/"))
    }
}

/// node_exporter's `SanitizeMetricName`: `_*[^0-9A-Za-z_]+_*` → `_`.
pub fn sanitize_metric_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            pending += 1;
        } else if c.is_ascii_alphanumeric() {
            out.extend(std::iter::repeat_n('_', pending));
            pending = 0;
            out.push(c);
        } else {
            pending = 0;
            out.push('_');
            while chars
                .next_if(|c| !c.is_ascii_alphanumeric() && *c != '_')
                .is_some()
            {}
            while chars.next_if(|c| *c == '_').is_some() {}
        }
    }
    out.extend(std::iter::repeat_n('_', pending));
    out
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`/`0o`/`0b` prefixes or a leading
/// `0` for octal, underscores allowed between digits.
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid integer {s:?}");
    let (neg, body) = match (s.strip_prefix('-'), s.strip_prefix('+')) {
        (Some(body), _) => (true, body),
        (None, Some(body)) => (false, body),
        (None, None) => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower.get(1..).unwrap_or_default(), true)
    } else {
        (10, lower.as_str(), false)
    };
    let digits = if digits.contains('_') {
        if !underscores_ok(digits, prefixed) {
            return Err(bad());
        }
        digits.replace('_', "")
    } else {
        digits.to_string()
    };
    if digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    let mag = u64::from_str_radix(&digits, radix).map_err(|_| bad())?;
    if neg {
        if mag > i64::MAX as u64 + 1 {
            return Err(bad());
        }
        Ok((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).map_err(|_| bad())
    }
}

/// Go's `underscoreOK` on the digits after a prefix (`prefixed`: a base prefix or octal `0`
/// preceded them, which counts as a digit).
fn underscores_ok(digits: &str, prefixed: bool) -> bool {
    let mut saw = if prefixed { '0' } else { '^' };
    for c in digits.chars() {
        if c.is_ascii_hexdigit() {
            saw = '0';
        } else if c == '_' {
            if saw != '0' {
                return false;
            }
            saw = '_';
        } else {
            if saw == '_' {
                return false;
            }
            saw = '!';
        }
    }
    saw != '_'
}

/// procfs' `util.SysReadFile`: one `read` of at most 128 bytes, trimmed.
fn sys_read(path: &std::path::Path) -> Result<String, CollectError> {
    let mut f = super::fsio::open_regular(path).map_err(|e| CollectError::io(path, e))?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf).map_err(|e| CollectError::io(path, e))?;
    let read = buf.get(..n).unwrap_or_default();
    Ok(String::from_utf8_lossy(read).trim().to_string())
}

/// Turns one entry's text into samples, adding to `out` (numeric families) or `info`.
pub fn entry_families(
    e: &Entry,
    text: &str,
    out: &mut Vec<MetricFamily>,
    info: &mut MetricFamily,
) -> Result<(), String> {
    let values: Vec<&str> = text.split_whitespace().collect();
    if values.is_empty() {
        return Err(format!("sysctl {} has no values", e.name));
    }
    if !e.numeric {
        if values.len() > 1 && !e.keys.is_empty() {
            return Err("mapped sysctl string values not supported".into());
        }
        if values.len() == 1 && !e.keys.is_empty() {
            return Err(format!(
                "sysctl {} has only one value, but expected {:?}",
                e.name, e.keys
            ));
        }
        for (i, v) in values.iter().enumerate() {
            info.push(
                &[("index", &i.to_string()), ("name", &e.name), ("value", v)],
                1.0,
            );
        }
        return Ok(());
    }
    let nums = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse_go_int(v)
                .map(|n| n as f64)
                .map_err(|m| format!("field {i} in sysctl {} is not a valid int: {m}", e.name))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    let help = |suffix: String| format!("sysctl {}{suffix}", e.name);
    match (nums.len(), e.keys.len()) {
        (1, 0) => out.push(
            MetricFamily::untyped(e.metric.clone(), help(String::new()))
                .with(&[], nums.first().copied().unwrap_or_default()),
        ),
        (1, _) => {
            return Err(format!(
                "sysctl {} has only one value, but expected {:?}",
                e.name, e.keys
            ))
        }
        (_, 0) => {
            let mut fam = MetricFamily::untyped(e.metric.clone(), help(String::new()));
            for (i, v) in nums.iter().enumerate() {
                fam.push(&[("index", &i.to_string())], *v);
            }
            sort_samples(&mut fam);
            out.push(fam);
        }
        (n, k) if n != k => {
            return Err(format!(
                "sysctl {} has {n} keys but only {k} defined in flag",
                e.name
            ))
        }
        _ => {
            for (i, (key, v)) in e.keys.iter().zip(&nums).enumerate() {
                out.push(
                    MetricFamily::untyped(
                        format!("{}_{key}", e.metric),
                        help(format!(", field {i}")),
                    )
                    .with(&[], *v),
                );
            }
        }
    }
    Ok(())
}

struct Sysctl {
    entries: Vec<Entry>,
}

impl Collector for Sysctl {
    fn name(&self) -> &'static str {
        "sysctl"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut out = Vec::with_capacity(self.entries.len() + 1);
        let mut info = MetricFamily::gauge("node_sysctl_info", "sysctl info");
        for e in &self.entries {
            let path = paths.proc(&e.rel_path());
            let text = sys_read(&path)?;
            entry_families(e, &text, &mut out, &mut info)
                .map_err(|m| CollectError::parse(&path, m))?;
        }
        if !info.samples.is_empty() {
            sort_samples(&mut info);
            out.push(info);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    #[test]
    fn go_ints() {
        for (s, v) in [
            ("60", 60),
            ("-1", -1),
            ("+7", 7),
            ("0x1F", 31),
            ("017", 15),
            ("0o17", 15),
            ("0b101", 5),
            ("0", 0),
            ("1_000", 1000),
            ("0x_1f", 31),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_go_int(s), Ok(v), "{s}");
        }
        for s in [
            "",
            "x",
            "08",
            "1__0",
            "_1",
            "1_",
            "9223372036854775808",
            "18446744073709551615",
            "--1",
            "0x",
            "1.5",
        ] {
            assert!(parse_go_int(s).is_err(), "{s}");
        }
    }

    #[test]
    fn sanitizes() {
        assert_eq!(
            sanitize_metric_name("net.ipv4.tcp_rmem"),
            "net_ipv4_tcp_rmem"
        );
        assert_eq!(sanitize_metric_name("fs.file-nr"), "fs_file_nr");
        assert_eq!(sanitize_metric_name("a__.b"), "a_b");
        assert_eq!(sanitize_metric_name("a._.b"), "a__b");
        assert_eq!(sanitize_metric_name("a_b__"), "a_b__");
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        let mut info = MetricFamily::gauge("node_sysctl_info", "sysctl info");
        let num = |s: &str| Entry::new(s, true);
        assert!(entry_families(&num("a"), "", &mut out, &mut info).is_err());
        assert!(entry_families(&num("a:x,y"), "1", &mut out, &mut info).is_err());
        assert!(entry_families(&num("a:x,y"), "1 2 3", &mut out, &mut info).is_err());
        assert!(entry_families(&num("a"), "1 x", &mut out, &mut info).is_err());
        assert!(entry_families(&Entry::new("a:x,y", false), "1 2", &mut out, &mut info).is_err());
        assert!(out.is_empty() && info.samples.is_empty());
    }

    fn opts(include: &[&str], info: &[&str]) -> Options {
        Options {
            sysctl: SysctlOptions {
                include: Some(include.iter().map(|s| s.to_string()).collect()),
                include_info: Some(info.iter().map(|s| s.to_string()).collect()),
            },
            ..Options::default()
        }
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let c = collector(&opts(
            &[
                "vm.swappiness",
                "net.ipv4.ip_local_port_range:low,high",
                "net.ipv4.tcp_rmem",
            ],
            &[
                "kernel.seccomp.actions_avail",
                "net.ipv4.ip_local_port_range",
            ],
        ));
        let fams = c.collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-sysctl.txt");
        let missing = collector(&opts(&["vm.swappiness", "kernel.nope"], &[]));
        assert!(missing.collect(&paths).is_err());
        // Nothing configured: no samples, success.
        assert!(collector(&opts(&[], &[]))
            .collect(&paths)
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn live() {
        let c = collector(&opts(&["kernel.pid_max"], &["kernel.ostype"]));
        let fams = c.collect(&Paths::default()).expect("reads /proc/sys");
        assert_eq!(fams[0].name, "node_sysctl_kernel_pid_max");
        assert_eq!(fams[1].samples[0].labels[2].1, "Linux");
    }
}
