//! `vmstat` collector: `/proc/vmstat` fields matching `--collector.vmstat.fields` (default
//! node_exporter's, unchanged from 1.5 to 1.12: `^(oom_kill|pgpg|pswp|pg.*fault).*`), each an untyped
//! `node_vmstat_<field>`, as `vmstat_linux.go`.
//!
//! As node_exporter, every line's value is parsed (a bad value anywhere fails the collector,
//! even on a field not exported), and a missing file fails it.

use super::options::{collector_options, Pattern};
use super::{concat, is_f64, lines, parse_f64, split_once_byte, MemoRegex, NameCache};

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// node_exporter's default `--collector.vmstat.fields` (the same in 1.5 and 1.12).
pub const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

collector_options! {
    /// Options of the vmstat collector (`[collector.vmstat]` in the file).
    pub struct VmstatOptions {
        /// Regexp of fields to return for vmstat collector [default: node_exporter's].
        #[arg(id = "collector.vmstat.fields", long = "collector.vmstat.fields", value_name = "REGEX")]
        pub fields: Option<Pattern>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(VmStat {
        fields: MemoRegex::from_option(&opts.vmstat.fields, DEFAULT_FIELDS),
    })
}

/// The selected `(field, value)` pairs in file order (every value checked, only the selected
/// ones converted).
pub fn parse_vmstat<'a>(text: &'a str, fields: &MemoRegex) -> Result<Vec<(&'a str, f64)>, String> {
    let mut out = Vec::with_capacity(8);
    let mut scan = fields.scan();
    for line in lines(text) {
        // The kernel prints `name value`; anything else goes the general way.
        let (name, value) = match split_once_byte(line, b' ') {
            Some((n, v)) if is_word(n) && is_word(v) => (n, v),
            _ => {
                let mut parts = line.split_ascii_whitespace();
                let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                    return Err(format!("invalid line {line:?}"));
                };
                (name, value)
            }
        };
        if scan.is_match(name) {
            let value = parse_f64(value).map_err(|_| format!("bad value in line {line:?}"))?;
            out.push((name, value));
        } else if !is_f64(value) {
            return Err(format!("bad value in line {line:?}"));
        }
    }
    Ok(out)
}

/// Non-empty, without ASCII whitespace.
fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace())
}

/// Names and HELP texts by field.
static NAMES: NameCache = NameCache::new();

pub fn families(fields: &[(&str, f64)]) -> Vec<MetricFamily> {
    fields
        .iter()
        .map(|(name, v)| {
            let (full, help) = NAMES.get(name, |name| {
                (
                    concat(&["node_vmstat_", name]),
                    concat(&["/proc/vmstat information field ", name, "."]),
                )
            });
            MetricFamily::untyped(full, help).with(&[], *v)
        })
        .collect()
}

struct VmStat {
    fields: MemoRegex,
}

impl Collector for VmStat {
    fn name(&self) -> &'static str {
        "vmstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("vmstat");
        let text = read_to_string(&path)?;
        let fields =
            parse_vmstat(&text, &self.fields).map_err(|m| CollectError::parse(&path, m))?;
        Ok(families(&fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, procfs, render};

    fn fields() -> MemoRegex {
        MemoRegex::new(DEFAULT_FIELDS).expect("pattern")
    }

    fn vm() -> VmStat {
        VmStat { fields: fields() }
    }

    #[test]
    fn fields_option() {
        let mut opts = Options::default();
        opts.vmstat.fields = Some("^nr_free".parse().expect("pattern"));
        let c = collector(&opts);
        let fams = c
            .collect(&procfs("procmisc", "debian12-vm-6.18/proc"))
            .expect("collects");
        assert!(!fams.is_empty());
        assert!(fams
            .iter()
            .all(|f| f.name.starts_with("node_vmstat_nr_free")));
    }

    #[test]
    fn parses() {
        let text = "nr_free_pages 5\npgfault 10\npgmajfault 2\npgpgin 3\npswpin 0\noom_kill 1\nthp_fault_alloc 4\npgsteal_kswapd 6\n";
        let got = parse_vmstat(text, &fields()).expect("parses");
        assert_eq!(
            got,
            [
                ("pgfault", 10.0),
                ("pgmajfault", 2.0),
                ("pgpgin", 3.0),
                ("pswpin", 0.0),
                ("oom_kill", 1.0)
            ]
        );
        // A bad value on any line fails, as node_exporter's ParseFloat before the filter.
        assert!(parse_vmstat("nr_free_pages x\npgfault 1\n", &fields()).is_err());
        assert!(parse_vmstat("pgfault\n", &fields()).is_err());
        // Lines that are not `name value` go the general (whitespace-split) way.
        let odd = "pgfault\t7\n  pgmajfault   8 9\npgpgin 1.5e3\r\noom_kill -2\n";
        assert_eq!(
            parse_vmstat(odd, &fields()).expect("parses"),
            [
                ("pgfault", 7.0),
                ("pgmajfault", 8.0),
                ("pgpgin", 1500.0),
                ("oom_kill", -2.0)
            ]
        );
        assert!(parse_vmstat("pgfault 1x\n", &fields()).is_err());
    }

    #[test]
    fn fixture_matches_node_exporter() {
        let paths = procfs("procmisc", "debian12-vm-6.18/proc");
        let fams = vm().collect(&paths).expect("collects");
        assert_golden(render(fams), "procmisc", "expected/debian12-vmstat.txt");
    }

    #[test]
    fn live() {
        let fams = vm().collect(&Paths::default()).expect("reads vmstat");
        assert!(fams.iter().any(|f| f.name == "node_vmstat_pgfault"));
    }
}
