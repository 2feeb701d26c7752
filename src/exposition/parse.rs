//! The Prometheus text format parser: a port of the rules of prometheus/common's
//! `expfmt.TextParser` (the textfile collector's input, and the round trip of our encoder).
//! Errors are returned as text naming the line; nothing here panics on any input.

use std::collections::{BTreeMap, HashSet};

/// A family's type as the text format names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

/// One metric of a parsed family: a sample for counters, gauges and untyped; the grouped
/// samples of one label set for histograms and summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metric {
    /// Label pairs in file order (without `le`/`quantile`).
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub count: u64,
    pub sum: f64,
    /// `(le, cumulative count)` as read.
    pub buckets: Vec<(f64, u64)>,
    /// `(quantile, value)` as read.
    pub quantiles: Vec<(f64, f64)>,
    pub timestamp: Option<i64>,
}

/// A parsed metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    pub kind: Kind,
    pub metrics: Vec<Metric>,
}

/// `family_for` and the groups only hand out indices they pushed: never returned.
const UNKNOWN_FAMILY: &str = "internal error: unknown family index";

#[derive(Default)]
struct Building {
    name: String,
    help: Option<String>,
    kind: Option<Kind>,
    metrics: Vec<Metric>,
    /// Histogram/summary metrics by sorted label set.
    groups: BTreeMap<Vec<(String, String)>, usize>,
}

/// Which part of a histogram/summary a sample line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Plain,
    Sum,
    Count,
    Bucket,
}

fn blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn name_cont(b: u8) -> bool {
    name_start(b) || b.is_ascii_digit()
}

fn label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn label_cont(b: u8) -> bool {
    label_start(b) || b.is_ascii_digit()
}

/// expfmt's `parseFloat`: Go's `strconv.ParseFloat`, refusing `p`, `P` and `_`.
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(['p', 'P', '_']) {
        return None;
    }
    s.parse().ok()
}

/// A cursor over one line (without its `\n`).
struct Line<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn skip_blank(&mut self) {
        while self.peek().is_some_and(blank) {
            self.i += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        // Only ASCII predicates or whole-line ends split here, so this stays on a boundary.
        std::str::from_utf8(self.b.get(start..self.i).unwrap_or_default()).unwrap_or("")
    }
    fn metric_name(&mut self) -> &'a str {
        if !self.peek().is_some_and(name_start) {
            return "";
        }
        self.take_while(name_cont)
    }
    fn until_blank(&mut self) -> &'a str {
        self.take_while(|b| !blank(b))
    }
    fn rest(&mut self) -> &'a str {
        let s = std::str::from_utf8(self.b.get(self.i..).unwrap_or_default()).unwrap_or("");
        self.i = self.b.len();
        s
    }
}

/// Unescapes a HELP text (`\\` and `\n`).
fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(c) => return Err(format!("invalid escape sequence '\\{c}'")),
            None => return Err("unexpected end of input stream".into()),
        }
    }
    Ok(out)
}

/// Parses the Prometheus text format (0.0.4) as prometheus/common's `expfmt.TextParser` of
/// node_exporter 1.5's time: families in order of first appearance; an error names the
/// 1-based line. Families without samples are dropped.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut fams: Vec<Building> = Vec::new();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    for (n, raw) in lines.iter().enumerate() {
        let err = |m: String| format!("text format parsing error in line {}: {m}", n + 1);
        let mut l = Line {
            b: raw.as_bytes(),
            i: 0,
        };
        l.skip_blank();
        let Some(first) = l.peek() else { continue };
        // Only a line that is empty or blank may end the input without a newline.
        if n == last && !ends_with_newline {
            return Err(err("unexpected end of input stream".into()));
        }
        if first == b'#' {
            l.i += 1;
            comment(&mut l, &mut fams, &mut by_name).map_err(err)?;
        } else {
            sample(&mut l, &mut fams, &mut by_name).map_err(err)?;
        }
    }
    Ok(fams
        .into_iter()
        .filter(|f| !f.metrics.is_empty())
        .map(|f| Family {
            name: f.name,
            help: f.help,
            kind: f.kind.unwrap_or(Kind::Untyped),
            metrics: f.metrics,
        })
        .collect())
}

/// expfmt's `setOrCreateCurrentMF`: the family a name belongs to (a `_sum`/`_count`/`_bucket`
/// of an existing summary or histogram joins it), and which part the name is.
fn family_for(
    name: &str,
    fams: &mut Vec<Building>,
    by_name: &mut BTreeMap<String, usize>,
) -> (usize, Part) {
    if let Some(&i) = by_name.get(name) {
        return (i, Part::Plain);
    }
    for (suffix, part, kinds) in [
        ("_sum", Part::Sum, &[Kind::Summary, Kind::Histogram][..]),
        ("_count", Part::Count, &[Kind::Summary, Kind::Histogram][..]),
        ("_bucket", Part::Bucket, &[Kind::Histogram][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(&i) = by_name.get(base) {
                if fams
                    .get(i)
                    .is_some_and(|f| f.kind.is_some_and(|k| kinds.contains(&k)))
                {
                    return (i, part);
                }
            }
        }
    }
    fams.push(Building {
        name: name.to_string(),
        ..Building::default()
    });
    by_name.insert(name.to_string(), fams.len() - 1);
    (fams.len() - 1, Part::Plain)
}

fn comment(
    l: &mut Line<'_>,
    fams: &mut Vec<Building>,
    by_name: &mut BTreeMap<String, usize>,
) -> Result<(), String> {
    l.skip_blank();
    let keyword = l.until_blank();
    if l.peek().is_none() || (keyword != "HELP" && keyword != "TYPE") {
        return Ok(());
    }
    l.skip_blank();
    let name = l.metric_name();
    match l.peek() {
        None => return Ok(()),
        Some(b) if !blank(b) => return Err("invalid metric name in comment".into()),
        _ => {}
    }
    let (i, _) = family_for(name, fams, by_name);
    l.skip_blank();
    if l.peek().is_none() {
        return Ok(());
    }
    let f = fams.get_mut(i).ok_or(UNKNOWN_FAMILY)?;
    if keyword == "HELP" {
        if f.help.is_some() {
            return Err(format!("second HELP line for metric name {:?}", f.name));
        }
        f.help = Some(unescape_help(l.rest())?);
    } else {
        if f.kind.is_some() {
            return Err(format!(
                "second TYPE line for metric name {:?}, or TYPE reported after samples",
                f.name
            ));
        }
        let t = l.rest();
        f.kind = Some(match t.to_ascii_uppercase().as_str() {
            "COUNTER" => Kind::Counter,
            "GAUGE" => Kind::Gauge,
            "UNTYPED" => Kind::Untyped,
            "HISTOGRAM" => Kind::Histogram,
            "SUMMARY" => Kind::Summary,
            _ => return Err(format!("unknown metric type {t:?}")),
        });
    }
    Ok(())
}

fn sample(
    l: &mut Line<'_>,
    fams: &mut Vec<Building>,
    by_name: &mut BTreeMap<String, usize>,
) -> Result<(), String> {
    let name = l.metric_name();
    if name.is_empty() {
        return Err("invalid metric name".into());
    }
    let (fi, part) = family_for(name, fams, by_name);
    let fam = fams.get_mut(fi).ok_or(UNKNOWN_FAMILY)?;
    let kind = *fam.kind.get_or_insert(Kind::Untyped);
    let fam_name = fam.name.clone();
    l.skip_blank();
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut special: Option<f64> = None;
    if l.peek() == Some(b'{') {
        l.i += 1;
        loop {
            l.skip_blank();
            if l.peek() == Some(b'}') {
                l.i += 1;
                break;
            }
            let lname = if l.peek().is_some_and(label_start) {
                l.take_while(label_cont)
            } else {
                ""
            };
            if lname.is_empty() {
                return Err(format!("invalid label name for metric {fam_name:?}"));
            }
            if lname == "__name__" {
                return Err("label name \"__name__\" is reserved".into());
            }
            if !seen.insert(lname.to_string()) {
                return Err(format!("duplicate label names for metric {fam_name:?}"));
            }
            l.skip_blank();
            if l.peek() != Some(b'=') {
                return Err(format!(
                    "expected '=' after label name, found {:?}",
                    l.peek()
                ));
            }
            l.i += 1;
            l.skip_blank();
            if l.peek() != Some(b'"') {
                return Err("expected '\"' at start of label value".into());
            }
            l.i += 1;
            let value = label_value(l)?;
            let special_name = match kind {
                Kind::Summary => "quantile",
                Kind::Histogram => "le",
                _ => "",
            };
            if lname == special_name {
                special = Some(strconv_parse_float(&value).ok_or_else(|| {
                    format!("expected float as value for {lname:?} label, got {value:?}")
                })?);
            } else {
                labels.push((lname.to_string(), value));
            }
            l.skip_blank();
            match l.peek() {
                Some(b',') => l.i += 1,
                Some(b'}') => {
                    l.i += 1;
                    break;
                }
                None => return Err("unexpected end of input stream".into()),
                Some(_) => return Err("unexpected end of label value".into()),
            }
        }
        l.skip_blank();
    }
    let token = l.until_blank();
    let value =
        parse_float(token).ok_or_else(|| format!("expected float as value, got {token:?}"))?;
    let timestamp = if l.peek().is_some() {
        l.skip_blank();
        let t = l.until_blank();
        let ts = t
            .parse::<i64>()
            .map_err(|_| format!("expected integer as timestamp, got {t:?}"))?;
        if l.peek().is_some() {
            return Err(format!("spurious string after timestamp: {:?}", l.rest()));
        }
        Some(ts)
    } else {
        None
    };
    let f = fams.get_mut(fi).ok_or(UNKNOWN_FAMILY)?;
    let m = match kind {
        Kind::Summary | Kind::Histogram => {
            let mut key = labels.clone();
            key.sort();
            let idx = *f.groups.entry(key).or_insert_with(|| {
                f.metrics.push(Metric {
                    labels,
                    ..Metric::default()
                });
                f.metrics.len() - 1
            });
            let m = f.metrics.get_mut(idx).ok_or(UNKNOWN_FAMILY)?;
            match (part, special) {
                (Part::Count, _) => m.count = value as u64,
                (Part::Sum, _) => m.sum = value,
                (Part::Bucket, Some(le)) if kind == Kind::Histogram => {
                    m.buckets.push((le, value as u64))
                }
                (Part::Plain, Some(q)) if kind == Kind::Summary => m.quantiles.push((q, value)),
                _ => {}
            }
            m
        }
        _ => {
            f.metrics.push(Metric {
                labels,
                value,
                ..Metric::default()
            });
            f.metrics.last_mut().ok_or("unreachable")?
        }
    };
    if timestamp.is_some() {
        m.timestamp = timestamp;
    }
    Ok(())
}

/// Go's `strconv.ParseFloat` (for `le`/`quantile`; unlike sample values, `_` is not refused
/// by expfmt there, but Go rejects it in decimal floats anyway).
fn strconv_parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse().ok()
}

/// A label value after its opening quote, up to the closing one: `\\`, `\"`, `\n` escapes.
fn label_value(l: &mut Line<'_>) -> Result<String, String> {
    let rest = std::str::from_utf8(l.b.get(l.i..).unwrap_or_default())
        .map_err(|_| "invalid UTF-8".to_string())?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                l.i += i + 1;
                return Ok(out);
            }
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, c)) => return Err(format!("invalid escape sequence '\\{c}'")),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unexpected end of input stream".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fams(text: &str) -> Vec<Family> {
        parse(text).expect("parses")
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_samples_help_type_and_escapes() {
        let f = fams(
            "# A comment\n#\n\n  # HELP x Some \\\\ help\\n2nd line\n# TYPE x Gauge\n\
             x{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",} -1.5e3\n\
             y  {  k = \"v\" }  NaN\nz +Inf\n",
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "x");
        assert_eq!(f[0].help.as_deref(), Some("Some \\ help\n2nd line"));
        assert_eq!(f[0].kind, Kind::Gauge);
        assert_eq!(
            f[0].metrics[0].labels,
            labels(&[("a", "q\"uote"), ("b", "back\\slash"), ("c", "new\nline")])
        );
        assert_eq!(f[0].metrics[0].value, -1500.0);
        assert_eq!(f[1].kind, Kind::Untyped);
        assert_eq!(f[1].help, None);
        assert!(f[1].metrics[0].value.is_nan());
        assert_eq!(f[2].metrics[0].value, f64::INFINITY);
        // Empty HELP/TYPE lines are ignored, not errors; families without samples vanish.
        let f = fams("# HELP a\n# TYPE a\n# HELP b text\nc 1\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].help, None);
        assert!(fams("").is_empty());
        assert!(fams("  \n\t\n").is_empty());
        // A final blank line without newline is fine.
        assert_eq!(fams("a 1\n  ").len(), 1);
    }

    #[test]
    fn bad_lines() {
        for bad in [
            "a 1",                      // no final newline
            "a 1\r\n",                  // CR is not whitespace
            "a\n",                      // no value
            "a x\n",                    // not a float
            "a 1 \n",                   // blank after the value: an empty timestamp
            "a 1 2 3\n",                // spurious string after timestamp
            "a 0x1p3\n",                // expfmt refuses p and _
            "1a 1\n",                   // invalid metric name
            "a{1=\"x\"} 1\n",           // invalid label name
            "a{x=\"1\",x=\"2\"} 1\n",   // duplicate label names
            "a{__name__=\"b\"} 1\n",    // reserved label name
            "a{x \"1\"} 1\n",           // no '='
            "a{x=1} 1\n",               // unquoted value
            "a{x=\"\\q\"} 1\n",         // invalid escape
            "a{x=\"1\" y=\"2\"} 1\n",   // no comma
            "a{x=\"1\n",                // unterminated value
            "# HELP a x\n# HELP a y\n", // second HELP
            "# TYPE a gauge\n# TYPE a counter\n",
            "a 1\n# TYPE a counter\n", // TYPE after samples
            "# TYPE a counter extra\n",
            "# TYPE a foo\n",
            "# HELP a{ x\n", // invalid metric name in comment
            "# HELP a bad \\q\n",
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            "# TYPE s summary\ns{quantile=\"x\"} 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse("ok 1\nbad line here\n").expect_err("fails");
        assert_eq!(
            e,
            "text format parsing error in line 2: expected float as value, got \"line\""
        );
    }
}
