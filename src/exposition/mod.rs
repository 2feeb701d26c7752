//! Exposition: the metric model collectors fill, and its encodings (Prometheus text 0.0.4,
//! OpenMetrics 1.0), content negotiation and gzip.

// No panic on input (issue 11): here and in every submodule, indexing and slicing that can
// panic, `unwrap`, `expect` and `panic!` are refused; use `get`, `split_once`,
// `strip_prefix`, slice patterns, `?`. Tests may (clippy.toml). Why this set and not
// `arithmetic_side_effects`: ARCHITECTURE.md, "No panic on input".
#![deny(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod parse;

use std::borrow::Cow;
use std::fmt::Write as _;

/// A metric family's type, as both text formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
}

/// A label value: kept inline up to 24 bytes (device, CPU and mode names), so most samples
/// allocate nothing for their values (issue 12: `malloc`/`free` of per-sample strings were
/// about 9% of a scrape's CPU).
pub type LabelValue = compact_str::CompactString;

/// A sample's label pairs: up to three inline (most node_exporter families have one to
/// three labels), more on the heap.
pub type Labels = smallvec::SmallVec<[(Cow<'static, str>, LabelValue); 3]>;

/// One sample: its label pairs (name, value) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// A metric family: one name, one HELP text, one type, any number of samples.
///
/// `name` is the name of the samples in the Prometheus text format (so a counter carries its
/// `_total` suffix, as node_exporter's do).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: Cow<'static, str>,
    pub help: Cow<'static, str>,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

impl MetricFamily {
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        kind: MetricType,
    ) -> Self {
        MetricFamily {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    pub fn counter(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, MetricType::Counter)
    }

    pub fn gauge(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, MetricType::Gauge)
    }

    pub fn untyped(name: impl Into<Cow<'static, str>>, help: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, help, MetricType::Untyped)
    }

    /// Adds a sample with the given static label names.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), LabelValue::from(*v)))
                .collect(),
            value,
        });
    }

    /// Builder form of [`MetricFamily::push`].
    pub fn with(mut self, labels: &[(&'static str, &str)], value: f64) -> Self {
        self.push(labels, value);
        self
    }
}

/// Makes one consistent exposition out of every collector's families, as node_exporter's
/// registry does with `ContinueOnError`: families sorted by name (stable, so the first
/// collector wins), families of one name merged when their type and HELP agree (a later one
/// that disagrees is dropped), samples in client_golang's order, and a repeated label set
/// dropped. A family whose name, or a sample whose label name, the text format cannot carry
/// (names built from what a file holds: zfs kstats, sysctl keys, ...) is dropped too, so the
/// exposition stays valid whatever a collector read. `report` hears about each thing dropped.
pub fn merge_families(families: &mut Vec<MetricFamily>, mut report: impl FnMut(String)) {
    families.retain_mut(|f| {
        if !static_or_valid(&f.name, valid_metric_name) {
            if !f.samples.is_empty() {
                report(format!(
                    "dropped {} samples of {:?}: not a valid metric name",
                    f.samples.len(),
                    f.name
                ));
            }
            return false;
        }
        let before = f.samples.len();
        f.samples.retain(|s| valid_label_names(&s.labels));
        if f.samples.len() != before {
            report(format!(
                "dropped {} samples of {}: invalid or repeated label name",
                before - f.samples.len(),
                f.name
            ));
        }
        true
    });
    sort_by_name(families);
    families.dedup_by(|next, kept| {
        if next.name != kept.name {
            return false;
        }
        if next.kind == kept.kind && next.help == kept.help {
            kept.samples.append(&mut next.samples);
        } else if !next.samples.is_empty() {
            report(format!(
                "dropped {} samples of {}: its type or HELP differs from the family's first source",
                next.samples.len(),
                next.name
            ));
        }
        true
    });
    for f in families.iter_mut() {
        if sort_samples_strict(f) {
            // Every sample sorts strictly before the next: no two have the same labels.
            continue;
        }
        let before = f.samples.len();
        f.samples.dedup_by(|next, kept| next.labels == kept.labels);
        if f.samples.len() != before {
            report(format!(
                "dropped {} samples of {} with a label set already collected",
                before - f.samples.len(),
                f.name
            ));
        }
    }
}

/// Sorts families by name, stably (the first collector's family stays first). The stable
/// sort of the families themselves, comparing names byte by byte (most share `node_` and
/// more), was about 130,000 instructions a scrape (issue 12). Each name's first 24 bytes are
/// read once into three big-endian integers, which order as the bytes do (a shorter name is
/// padded with zeros, and a tie goes on to the whole names); (key, name, index) triples are
/// sorted unstably (the index keeps equal names in their first order) and the families then
/// moved once.
fn sort_by_name(families: &mut Vec<MetricFamily>) {
    if families.is_sorted_by(|a, b| a.name <= b.name) {
        return;
    }
    let mut keyed: Vec<([u64; 3], &str, usize)> = families
        .iter()
        .enumerate()
        .map(|(i, f)| (name_key(&f.name), &*f.name, i))
        .collect();
    keyed.sort_unstable();
    let order: Vec<usize> = keyed.into_iter().map(|(_, _, i)| i).collect();
    let mut slots: Vec<Option<MetricFamily>> = families.drain(..).map(Some).collect();
    families.extend(
        order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take)),
    );
}

/// The first 24 bytes of a name as three big-endian integers, zero-padded.
fn name_key(name: &str) -> [u64; 3] {
    let mut bytes = [0u8; 24];
    let b = name.as_bytes();
    let n = b.len().min(24);
    if let (Some(dst), Some(src)) = (bytes.get_mut(..n), b.get(..n)) {
        dst.copy_from_slice(src);
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        if let Some(src) = bytes.get(i..i + 8) {
            w.copy_from_slice(src);
        }
        u64::from_be_bytes(w)
    };
    [word(0), word(8), word(16)]
}

/// Bytes allowed in names: bit 0 first byte of a metric name (`[a-zA-Z_:]`), bit 1 later
/// bytes of a metric name (`[a-zA-Z0-9_:]`), bit 2 first byte of a label name (`[a-zA-Z_]`),
/// bit 3 later bytes of a label name (`[a-zA-Z0-9_]`). One load a byte instead of up to
/// five comparisons.
// Evaluated at compile time: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static NAME_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let colon = c == b':';
        t[b] = (alpha || colon) as u8
            | (((alpha || digit || colon) as u8) << 1)
            | ((alpha as u8) << 2)
            | (((alpha || digit) as u8) << 3);
        b += 1;
    }
    t
};

fn name_bytes_ok(name: &str, first_bit: u8, rest_bit: u8) -> bool {
    let class = |b: u8| NAME_BYTES.get(usize::from(b)).copied().unwrap_or(0);
    let mut b = name.bytes();
    b.next().is_some_and(|c| class(c) & first_bit != 0) && b.all(|c| class(c) & rest_bit != 0)
}

/// Whether the text formats can carry `name` as a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_metric_name(name: &str) -> bool {
    name_bytes_ok(name, 1, 2)
}

fn valid_label_name(name: &str) -> bool {
    name_bytes_ok(name, 4, 8)
}

/// A name written in the source (`Cow::Borrowed`, a literal) is taken as valid without a scan:
/// only names built at run time from what a file holds can be invalid. Debug builds (every
/// test) still check the literal ones.
// The `Cow` itself is the point: whether the name is a literal.
#[allow(clippy::ptr_arg)]
fn static_or_valid(name: &Cow<'static, str>, valid: fn(&str) -> bool) -> bool {
    match name {
        Cow::Borrowed(n) => {
            debug_assert!(valid(n), "invalid name literal {n:?}");
            true
        }
        Cow::Owned(n) => valid(n),
    }
}

/// Whether every label name is valid (`[a-zA-Z_][a-zA-Z0-9_]*`) and none repeats.
fn valid_label_names(labels: &[(Cow<'static, str>, LabelValue)]) -> bool {
    labels.iter().enumerate().all(|(i, (k, _))| {
        static_or_valid(k, valid_label_name) && !labels.iter().take(i).any(|(p, _)| p == k)
    })
}

/// Puts a family in node_exporter's order: label names sorted within each sample (as
/// client_golang keeps label pairs), samples sorted as its registry does when it gathers
/// (`internal.MetricSorter`): by label count, then by label values in label-name order,
/// compared as strings (so `cpu="10"` sorts before `cpu="2"`). The one sort every collector
/// and the scrape use.
pub fn sort_samples(fam: &mut MetricFamily) {
    sort_samples_strict(fam);
}

/// [`sort_samples`], telling whether the samples were already in strictly increasing order
/// (then no two have the same label set, and [`merge_families`] need not look for repeats).
fn sort_samples_strict(fam: &mut MetricFamily) -> bool {
    for s in &mut fam.samples {
        if !s.labels.is_sorted_by(|a, b| a.0 <= b.0) {
            s.labels.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    let mut strict = true;
    for pair in fam.samples.windows(2) {
        if let [a, b] = pair {
            match cmp_labels(a, b) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => strict = false,
                std::cmp::Ordering::Greater => {
                    fam.samples.sort_by(cmp_labels);
                    return false;
                }
            }
        }
    }
    strict
}

/// A collector's families ready to serve: those without samples dropped, the others'
/// samples in [`sort_samples`]' order.
pub fn nonempty_sorted(mut fams: Vec<MetricFamily>) -> Vec<MetricFamily> {
    fams.retain(|f| !f.samples.is_empty());
    fams.iter_mut().for_each(sort_samples);
    fams
}

fn cmp_labels(a: &Sample, b: &Sample) -> std::cmp::Ordering {
    a.labels.len().cmp(&b.labels.len()).then_with(|| {
        a.labels
            .iter()
            .map(|(_, v)| v)
            .cmp(b.labels.iter().map(|(_, v)| v))
    })
}

/// The encodings we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics when the client prefers it (by
    /// q-value, ties going to the first listed), the text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version: Option<String> = None;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "q" => q = v.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
            let format = match media.as_str() {
                // OpenMetrics 0.0.1 and 1.0.0 share the wire format we write.
                "application/openmetrics-text"
                    if version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    Format::OpenMetrics
                }
                "text/plain" | "*/*" | "text/*" => Format::Text,
                _ => continue,
            };
            if q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map(|(_, f)| f).unwrap_or(Format::Text)
    }
}

/// Whether an `Accept-Encoding` header allows gzip (q > 0).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    header.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        if !(name.eq_ignore_ascii_case("gzip") || name == "*") {
            return false;
        }
        parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map(|(_, v)| v.trim().parse::<f32>().unwrap_or(0.0) > 0.0)
            .unwrap_or(true)
    })
}

thread_local! {
    /// Each thread's deflate state, reset for every body: allocating and clearing a new one
    /// per scrape (a few hundred KiB) cost as much as compressing (issue 12).
    static DEFLATE: std::cell::RefCell<Option<flate2::Compress>> =
        const { std::cell::RefCell::new(None) };
}

/// Gzips an encoded body: level 1 of the zlib-rs backend, the cheapest per byte of the levels
/// and backends measured on a real scrape (issue 12: `BENCHMARKS.md`, "gzip"), with the
/// compressor reused by each thread.
///
/// libdeflate (crate `libdeflater` 1.26, whole body in one call, reused `Compressor`) was
/// measured against this on a real 60,793-byte scrape body, interleaved, 6 rounds of 3,000
/// bodies each, CPU time per body: zlib-rs level 1 105-128 us (13,929 bytes out), libdeflate
/// level 1 158-199 us (10,937 bytes), level 2 267-338 us (10,630 bytes). libdeflate
/// compresses 21% smaller but costs about 45% more CPU, so zlib-rs stays (issue 12 counts
/// CPU per scrape; the body is a few KiB either way).
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    DEFLATE.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| std::io::Error::other("gzip re-entered on one thread"))?;
        let deflate =
            slot.get_or_insert_with(|| flate2::Compress::new(flate2::Compression::fast(), false));
        deflate.reset();
        let mut out = Vec::with_capacity(body.len() / 4 + 64);
        // RFC 1952 header: magic, deflate, no flags, no time, no extra flags, OS unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        loop {
            let done = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            let rest = body.get(done..).unwrap_or_default();
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(4096));
            }
            match deflate.compress_vec(rest, &mut out, flate2::FlushCompress::Finish)? {
                flate2::Status::StreamEnd => break,
                flate2::Status::Ok | flate2::Status::BufError => {}
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(body);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        Ok(out)
    })
}

thread_local! {
    /// A body buffer given back by [`recycle`], for the thread's next [`encode`].
    static BODY: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// Gives an encoded body back once it has been compressed, for the next [`encode`] on this
/// thread: freeing a buffer of 64 KiB or more makes glibc consolidate its free lists, which
/// was a visible part of every scrape (issue 12). Bodies above 1 MiB are freed.
pub fn recycle(body: String) {
    if body.capacity() <= 1 << 20 {
        BODY.with(|b| b.set(Some(body)));
    }
}

/// Encodes families in the given format. Families are written in the order given; samples of a
/// family stay together, as both formats require.
pub fn encode(families: &[MetricFamily], format: Format) -> String {
    let mut out = BODY
        .with(|b| b.take())
        .unwrap_or_else(|| String::with_capacity(64 * 1024));
    out.clear();
    for fam in families {
        if fam.samples.is_empty() {
            continue;
        }
        encode_family(&mut out, fam, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn encode_family(out: &mut String, fam: &MetricFamily, format: Format) {
    // An OpenMetrics counter whose name lacks `_total`: its samples get the suffix, written
    // after the name (no per-family string).
    let (family_name, total_suffix) = match (format, fam.kind) {
        (Format::OpenMetrics, MetricType::Counter) => match fam.name.strip_suffix("_total") {
            Some(base) => (base, ""),
            None => (&*fam.name, "_total"),
        },
        _ => (&*fam.name, ""),
    };
    // The type with the line's space and newline: one copy instead of three.
    let type_line = match (fam.kind, format) {
        (MetricType::Counter, _) => " counter\n",
        (MetricType::Gauge, _) => " gauge\n",
        (MetricType::Untyped, Format::Text) => " untyped\n",
        (MetricType::Untyped, Format::OpenMetrics) => " unknown\n",
    };
    out.push_str("# HELP ");
    out.push_str(family_name);
    out.push(' ');
    escape_help(out, &fam.help, format);
    out.push_str("\n# TYPE ");
    out.push_str(family_name);
    out.push_str(type_line);
    for s in &fam.samples {
        out.push_str(&fam.name);
        if !total_suffix.is_empty() {
            out.push_str(total_suffix);
        }
        let mut labels = s.labels.iter();
        if let Some((k, v)) = labels.next() {
            out.push('{');
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            for (k, v) in labels {
                out.push_str("\",");
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(out, v);
            }
            out.push_str("\"} ");
        } else {
            out.push(' ');
        }
        write_value(out, s.value);
        out.push('\n');
    }
}

fn escape_help(out: &mut String, help: &str, format: Format) {
    // Almost every HELP text needs no escape: one scan, one copy (issue 12).
    let needs_escape = match format {
        Format::Text => memchr::memchr2(b'\\', b'\n', help.as_bytes()).is_some(),
        Format::OpenMetrics => memchr::memchr3(b'\\', b'\n', b'"', help.as_bytes()).is_some(),
    };
    if !needs_escape {
        out.push_str(help);
        return;
    }
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    // Almost every label value needs no escape: one scan, one copy (issue 12). Most are a
    // few bytes (device, CPU and mode names), where a plain loop beats memchr's setup.
    let b = v.as_bytes();
    let needs_escape = if b.len() <= 24 {
        has_escape_short(b)
    } else {
        memchr::memchr3(b'\\', b'\n', b'"', b).is_some()
    };
    if !needs_escape {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Whether a short byte string holds `\\`, `\n` or `"`: eight bytes at a time (the usual
/// "has a zero byte" test on the word xor each wanted byte), the rest one by one.
fn has_escape_short(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut chunks = b.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        if has_zero(x ^ (ONES * u64::from(b'\\')))
            || has_zero(x ^ (ONES * u64::from(b'\n')))
            || has_zero(x ^ (ONES * u64::from(b'"')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| matches!(c, b'\\' | b'\n' | b'"'))
}

/// Writes a value the way Go's `strconv.FormatFloat(v, 'g', -1, 64)` does (what node_exporter's
/// client library uses): shortest round-trip digits, exponent form when the decimal exponent is
/// below -4 or at least 6 (`2.5055301632e+10`, `1e-07`), plain form otherwise.
pub(crate) fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Integers below 2^53 (most samples: counters, byte and page counts) without going
    // through float formatting: every such integer is exactly a double and its neighbours are
    // at most 1 apart, so its decimal digits, trailing zeros dropped, are the shortest that
    // round-trip, as Go's `'g', -1` picks them.
    // `as i64` truncates exactly below 2^53; comparing back tells an integer (cheaper than
    // `fract`, a call to libm's `trunc`).
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.abs() < EXACT && (v as i64) as f64 == v {
        write_integer(out, v);
        return;
    }
    write_shortest(out, v);
}

/// [`write_value`] for a finite nonzero `v` that is not an integer below 2^53: its shortest
/// round-trip digits (zmij, Schubfach: the same digits as Go's and Rust's shortest, the
/// nearest to `v` among the shortest) computed once and laid out in Go's `'g', -1` form.
/// Formatting through `core::fmt` twice (`{v:e}` for the exponent, then `{v}`) was about
/// 1,300 instructions a value (issue 12).
fn write_shortest(out: &mut String, v: f64) {
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(v);
    // Most values: no tie possible, and zmij's layout is Go's but for the exponent's width.
    // zmij writes `1.5e+300`, `1e-7` from an exponent of 16 or -6 on (Go's form there, with
    // the exponent widened to two digits) and plain decimals in between, which are Go's
    // form for exponents -4 to 5.
    if exact_decimal(v).is_none() {
        if let Some((mantissa, exp)) = text.split_once('e') {
            out.push_str(mantissa);
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ("e-", d),
                None => ("e+", exp.strip_prefix('+').unwrap_or(exp)),
            };
            out.push_str(sign);
            if digits.len() < 2 {
                out.push('0');
            }
            out.push_str(digits);
            return;
        }
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let go_plain = match unsigned.strip_prefix("0.") {
            // 0.000d (exponent -4) at most.
            Some(fraction) => !fraction.starts_with("0000"),
            // d to dddddd before the point (exponent 0 to 5).
            None => unsigned.find('.').is_some_and(|point| point <= 6),
        };
        if go_plain {
            out.push_str(text);
            return;
        }
    }
    // Otherwise, whatever layout zmij picked (`1.5e+300`, `1e-7`, `123.456`, `0.00001`,
    // `1234567.5`), read back the significant digits and the decimal exponent of the first.
    let mut digits = [0u8; 24];
    let mut n = 0usize; // significant digits kept, leading zeros skipped
    let mut int_digits: Option<i32> = None; // digits before the point, once it is seen
    let mut seen = 0i32; // digits seen, leading zeros included
    let mut leading_zeros = 0i32;
    let mut exp = 0i32;
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'0'..=b'9' => {
                seen += 1;
                if n == 0 && b == b'0' {
                    leading_zeros += 1;
                } else if let Some(d) = digits.get_mut(n) {
                    *d = b;
                    n += 1;
                }
            }
            b'.' => int_digits = Some(seen),
            b'e' | b'E' => {
                let mut neg = false;
                for b in bytes.by_ref() {
                    match b {
                        b'-' => neg = true,
                        b'0'..=b'9' => exp = exp * 10 + i32::from(b - b'0'),
                        _ => {}
                    }
                }
                if neg {
                    exp = -exp;
                }
            }
            _ => {}
        }
    }
    // Digits past the 24th can only be zeros of a long integer part: they count in `seen`.
    while n > 1 && digits.get(n - 1) == Some(&b'0') {
        n -= 1;
    }
    if is_tie(v, n) {
        write_shortest_fmt(out, v);
        return;
    }
    let digits = digits.get(..n).unwrap_or_default();
    let exp = int_digits.unwrap_or(seen) - 1 - leading_zeros + exp;
    if v.is_sign_negative() {
        out.push('-');
    }
    // ASCII bytes, a handful a piece: pushed one by one (a `str` per piece cost a UTF-8
    // check and a `memcpy` call each).
    let mut push = |d: &[u8]| out.extend(d.iter().map(|&b| char::from(b)));
    if !(-4..6).contains(&exp) {
        // d[.ddd]e±XX
        let (first, rest) = digits.split_at(n.min(1));
        push(first);
        if !rest.is_empty() {
            push(b".");
            push(rest);
        }
        push(if exp < 0 { b"e-" } else { b"e+" });
        let a = exp.unsigned_abs();
        if a < 10 {
            push(b"0");
        }
        push(itoa::Buffer::new().format(a).as_bytes());
    } else if exp < 0 {
        // 0.000ddd
        push(b"0.");
        push(b"000".get(..(-exp - 1) as usize).unwrap_or_default());
        push(digits);
    } else {
        // ddd.ddd or ddd000 (exp < 6, so at most 5 zeros)
        let int_len = exp as usize + 1;
        if n <= int_len {
            push(digits);
            push(b"00000".get(..int_len - n).unwrap_or_default());
        } else {
            let (int, frac) = digits.split_at(int_len);
            push(int);
            push(b".");
            push(frac);
        }
    }
}

/// Whether `v`'s exact value lies halfway between the two `n`-digit numbers nearest to it,
/// both of which read back as `v`. zmij (like Go's strconv) then keeps the one with an even
/// last digit; `core::fmt`, which this writer always matched, takes the larger magnitude.
/// Only a value whose exact decimal form has `n + 1` significant digits can be such a tie:
/// `m * 2^-k` (m odd) is `m * 5^k` units of `10^-k`, which ends in 5.
fn is_tie(v: f64, n: usize) -> bool {
    exact_decimal(v).is_some_and(|exact| exact.ilog10() as usize == n)
}

/// `v`'s exact value as an integer count of `10^-k` (`m * 5^k` for `v = m * 2^-k`, m odd)
/// when `v` is not an integer and that count fits in 64 bits; `None` otherwise (then no tie
/// is possible: a tie needs an exact form of at most 18 digits).
fn exact_decimal(v: f64) -> Option<u64> {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: hundreds of exact digits.
        return None;
    }
    let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
    let tz = mant.trailing_zeros();
    let k = 1075 - biased - tz as i32;
    // An integer (k <= 0) has no fractional 5 to round; 5^26 alone has 19 digits.
    if !(1..=25).contains(&k) {
        return None;
    }
    (mant >> tz).checked_mul(5u64.pow(k.unsigned_abs()))
}

/// The `core::fmt` path for the rare ties [`is_tie`] finds: shortest digits with `{v:e}`
/// (rounding half away from zero), laid out as in [`write_shortest`].
#[cold]
fn write_shortest_fmt(out: &mut String, v: f64) {
    let start = out.len();
    let _ = write!(out, "{v:e}");
    let tail = out.get(start..).unwrap_or_default();
    let Some(e_at) = tail.find('e') else { return };
    let exp: i32 = tail
        .get(e_at + 1..)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exp) {
        out.truncate(start + e_at);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        let _ = write!(out, "{a}");
    } else {
        out.truncate(start);
        let _ = write!(out, "{v}");
    }
}

/// [`write_value`] for a nonzero integer-valued `v` below 2^53 in magnitude.
fn write_integer(out: &mut String, v: f64) {
    let neg = v < 0.0;
    // Exact: |v| < 2^53.
    let n = v.abs() as u64;
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    if neg {
        out.push('-');
    }
    let exp = digits.len() - 1;
    if exp < 6 {
        out.push_str(digits);
        return;
    }
    let significant = digits.trim_end_matches('0');
    let mut chars = significant.chars();
    if let Some(first) = chars.next() {
        out.push(first);
    }
    let rest = chars.as_str();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push_str("e+");
    if exp < 10 {
        out.push('0');
    }
    out.push_str(itoa::Buffer::new().format(exp));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the encoder writes, the parser reads back unchanged: names, HELP texts, types,
    /// label values with quotes, backslashes, newlines and non-ASCII text, and values
    /// including the special floats.
    #[test]
    fn text_encoding_round_trips_through_the_parser() {
        use parse::Kind;
        let tricky = [
            "plain",
            "q\"uote",
            "back\\slash",
            "new\nline",
            "ünï €",
            "",
            "a,b=c}",
            "a label value longer than sixteen bytes with a \" quote",
            "a label value longer than sixteen bytes, plain",
        ];
        let mut g = MetricFamily::gauge("rt_gauge", "A gauge \\ with\nnewline in HELP.");
        for (i, v) in tricky.iter().enumerate() {
            g.push(&[("label", v)], i as f64 - 2.5);
        }
        let c = MetricFamily::counter("rt_total", "Counter.")
            .with(&[("a", "1"), ("b", "2")], 1e21)
            .with(&[("a", "1"), ("b", "3")], f64::INFINITY);
        let u = MetricFamily::untyped("rt_untyped", "Untyped.")
            .with(&[], f64::NEG_INFINITY)
            .with(&[("x", "nan")], f64::NAN);
        let fams = vec![g.clone(), c.clone(), u.clone()];
        let text = encode(&fams, Format::Text);
        let parsed = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.len(), 3, "{text}");
        for (ours, back) in fams.iter().zip(&parsed) {
            assert_eq!(back.name, ours.name);
            assert_eq!(back.help.as_deref(), Some(&*ours.help));
            let kind = match ours.kind {
                MetricType::Counter => Kind::Counter,
                MetricType::Gauge => Kind::Gauge,
                _ => Kind::Untyped,
            };
            assert_eq!(back.kind, kind);
            assert_eq!(back.metrics.len(), ours.samples.len());
            for (s, m) in ours.samples.iter().zip(&back.metrics) {
                let labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(m.labels, labels);
                assert!(
                    m.value == s.value || (m.value.is_nan() && s.value.is_nan()),
                    "{} vs {}",
                    m.value,
                    s.value
                );
            }
        }
    }

    fn fams() -> Vec<MetricFamily> {
        vec![
            MetricFamily::counter("node_forks_total", "Total number of forks.").with(&[], 1234.0),
            MetricFamily::gauge("node_load1", "1m load average.").with(&[], 0.25),
            MetricFamily::gauge("node_uname_info", "Labeled \"system\" info.\\")
                .with(&[("release", "6.1\n\"x\"\\")], 1.0),
            MetricFamily::untyped(
                "node_vmstat_pgfault",
                "/proc/vmstat information field pgfault.",
            )
            .with(&[], 7.0),
            MetricFamily::counter("node_odd", "A counter without suffix.").with(&[], 2.5),
            MetricFamily::gauge("node_empty", "Never written."),
        ]
    }

    #[test]
    fn text_format_exact() {
        let text = encode(&fams(), Format::Text);
        assert_eq!(
            text,
            "# HELP node_forks_total Total number of forks.\n\
             # TYPE node_forks_total counter\n\
             node_forks_total 1234\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1 0.25\n\
             # HELP node_uname_info Labeled \"system\" info.\\\\\n\
             # TYPE node_uname_info gauge\n\
             node_uname_info{release=\"6.1\\n\\\"x\\\"\\\\\"} 1\n\
             # HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n\
             # TYPE node_vmstat_pgfault untyped\n\
             node_vmstat_pgfault 7\n\
             # HELP node_odd A counter without suffix.\n\
             # TYPE node_odd counter\n\
             node_odd 2.5\n"
        );
    }

    #[test]
    fn openmetrics_exact() {
        let text = encode(&fams(), Format::OpenMetrics);
        assert_eq!(
            text,
            "# HELP node_forks Total number of forks.\n\
             # TYPE node_forks counter\n\
             node_forks_total 1234\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1 0.25\n\
             # HELP node_uname_info Labeled \\\"system\\\" info.\\\\\n\
             # TYPE node_uname_info gauge\n\
             node_uname_info{release=\"6.1\\n\\\"x\\\"\\\\\"} 1\n\
             # HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n\
             # TYPE node_vmstat_pgfault unknown\n\
             node_vmstat_pgfault 7\n\
             # HELP node_odd A counter without suffix.\n\
             # TYPE node_odd counter\n\
             node_odd_total 2.5\n\
             # EOF\n"
        );
    }

    #[test]
    fn special_values() {
        let mut s = String::new();
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -3.0,
            1e-7,
            1.5e300,
            25055301632.0,
            123456.0,
            1234567.0,
            0.0001,
            0.25,
            0.0,
            -1234567.0,
            1e6,
            100.0,
            9007199254740991.0,
            9007199254740992.0,
            1e21,
            -0.5,
            123.456,
            1e15 + 0.5,
        ] {
            write_value(&mut s, v);
            s.push(' ');
        }
        // The same strings Go's strconv.FormatFloat(v, 'g', -1, 64) gives.
        assert_eq!(
            s,
            "NaN +Inf -Inf -3 1e-07 1.5e+300 2.5055301632e+10 123456 1.234567e+06 0.0001 0.25 0 \
             -1.234567e+06 1e+06 100 9.007199254740991e+15 9.007199254740992e+15 1e+21 -0.5 \
             123.456 1.0000000000000005e+15 "
        );
    }

    /// The value writer before issue 12's rewrite (Rust's `{v:e}` for the exponent, then
    /// `{v}`), kept as the reference the new one must match byte for byte.
    fn write_value_reference(out: &mut String, v: f64) {
        if v.is_nan() {
            out.push_str("NaN");
            return;
        }
        if v.is_infinite() {
            out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
            return;
        }
        if v == 0.0 {
            out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
            return;
        }
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.fract() == 0.0 && v.abs() < EXACT {
            write_integer(out, v);
            return;
        }
        // The old path for everything else: `core::fmt`'s shortest digits, laid out in
        // Go's form (the writer keeps it for ties).
        write_shortest_fmt(out, v);
    }

    /// The single-pass value writer gives exactly the old writer's bytes: random bit
    /// patterns (every exponent, subnormals, NaN payloads), random values of every magnitude,
    /// integers around 2^53, the -4..6 exponent borders and their neighbours, negatives.
    #[test]
    fn write_value_matches_the_reference() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut values: Vec<f64> = vec![
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            5e-324,
            2.2250738585072014e-308,
            1e-4,
            9.999999999999999e-5,
            1e6,
            999999.9999999999,
            999999.5,
            0.1,
            0.2,
            0.30000000000000004,
            1.0 / 3.0,
            123.456,
            1e15 + 0.5,
            // Ties between two shortest candidates (core::fmt rounds them up).
            1.5e15 + 0.25,
            8_388_608.0 + 1.0 / 1024.0,
            0.000_976_562_5,
            1e16,
            1e21,
            1e22,
            1e23,
            -0.0,
            0.0,
        ];
        let two53 = 9_007_199_254_740_992.0f64;
        for d in -64i64..=64 {
            values.push(two53 + d as f64);
            values.push(2.0 * two53 + 2.0 * d as f64);
        }
        for e in -325..=309 {
            let p: f64 = format!("1e{e}").parse().expect("float");
            for x in [
                p,
                p * 1.5,
                p * 9.999,
                p * 0.9999999999999999,
                p * 1.0000000000000002,
            ] {
                values.push(x);
                values.push(f64::from_bits(x.to_bits().wrapping_add(1)));
                values.push(f64::from_bits(x.to_bits().wrapping_sub(1)));
            }
        }
        for _ in 0..300_000 {
            values.push(f64::from_bits(next()));
        }
        for _ in 0..100_000 {
            // Uniform in [0, 1) scaled across the plain-form range and beyond.
            let unit = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let scale = 10f64.powi((next() % 30) as i32 - 12);
            values.push(unit * scale);
            // Few digits, as counters divided by 10^n are (kB -> bytes, ms -> s).
            values.push((next() % 100_000) as f64 / 10f64.powi((next() % 12) as i32));
        }
        // The tie path is exercised: 1500000000000000.25 sits halfway between the 17-digit
        // ...0002 and ...0003 (core::fmt, and so this writer, picks ...0003).
        assert!(is_tie(1.5e15 + 0.25, 17));
        assert!(!is_tie(0.25, 2));
        let (mut ours, mut reference) = (String::new(), String::new());
        for v in values.iter().flat_map(|&v| [v, -v]) {
            ours.clear();
            reference.clear();
            write_value(&mut ours, v);
            write_value_reference(&mut reference, v);
            assert_eq!(ours, reference, "bits {:#018x}", v.to_bits());
        }
    }

    /// `merge_families` before issue 12's rewrite, the reference for the one in use.
    fn merge_families_reference(families: &mut Vec<MetricFamily>, mut report: impl FnMut(String)) {
        fn valid_labels(labels: &[(Cow<'static, str>, LabelValue)]) -> bool {
            labels.iter().enumerate().all(|(i, (k, _))| {
                let mut b = k.bytes();
                b.next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                    && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
                    && !labels.iter().take(i).any(|(p, _)| p == k)
            })
        }
        fn valid_name(name: &str) -> bool {
            let mut b = name.bytes();
            b.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        }
        families.retain_mut(|f| {
            if !valid_name(&f.name) {
                if !f.samples.is_empty() {
                    report(format!(
                        "dropped {} samples of {:?}: not a valid metric name",
                        f.samples.len(),
                        f.name
                    ));
                }
                return false;
            }
            let before = f.samples.len();
            f.samples.retain(|s| valid_labels(&s.labels));
            if f.samples.len() != before {
                report(format!(
                    "dropped {} samples of {}: invalid or repeated label name",
                    before - f.samples.len(),
                    f.name
                ));
            }
            true
        });
        families.sort_by(|a, b| a.name.cmp(&b.name));
        families.dedup_by(|next, kept| {
            if next.name != kept.name {
                return false;
            }
            if next.kind == kept.kind && next.help == kept.help {
                kept.samples.append(&mut next.samples);
            } else if !next.samples.is_empty() {
                report(format!(
                    "dropped {} samples of {}: its type or HELP differs from the family's first source",
                    next.samples.len(),
                    next.name
                ));
            }
            true
        });
        for f in families.iter_mut() {
            for s in &mut f.samples {
                s.labels.sort_by(|a, b| a.0.cmp(&b.0));
            }
            f.samples.sort_by(cmp_labels);
            let before = f.samples.len();
            f.samples.dedup_by(|next, kept| next.labels == kept.labels);
            if f.samples.len() != before {
                report(format!(
                    "dropped {} samples of {} with a label set already collected",
                    before - f.samples.len(),
                    f.name
                ));
            }
        }
    }

    /// The merge gives the old merge's families, in the same order, with the same samples and
    /// the same reports, on random inputs: repeated names (same or different type and HELP),
    /// invalid metric and label names (built at run time), repeated label names, repeated
    /// label sets, sorted and unsorted samples, static and built names mixed.
    #[test]
    fn merge_families_matches_the_reference() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        // Short names and long ones sharing their first 24 bytes (the sort's key) or more.
        const NAMES: [&str; 13] = [
            "node_a",
            "node_b",
            "node_a_total",
            "9bad",
            "node_c",
            "a:b",
            "node_b",
            "x-y",
            "node_netstat_Tcp_ActiveOpens",
            "node_netstat_Tcp_ActiveOpens_total",
            "node_netstat_Tcp_Active",
            "node_netstat_Tcp_ActiveO",
            "node_netstat_Tcp_ActiveN",
        ];
        const LABELS: [&str; 5] = ["cpu", "mode", "bad-label", "device", "_x"];
        const VALUES: [&str; 4] = ["0", "1", "10", "2"];
        for round in 0..3000 {
            let mut fams = Vec::new();
            for _ in 0..next(12) {
                let name = NAMES[next(NAMES.len() as u64) as usize];
                // Half the families carry a literal name, half one built at run time (only
                // built names can be invalid).
                let name: Cow<'static, str> = if next(2) == 0 && valid_metric_name(name) {
                    Cow::Borrowed(name)
                } else {
                    Cow::Owned(name.to_string())
                };
                let help = if next(4) == 0 { "other" } else { "help" };
                // Mostly one type, so that families of one name merge.
                let kind = match next(6) {
                    0 => MetricType::Gauge,
                    1 => MetricType::Untyped,
                    _ => MetricType::Counter,
                };
                let mut f = MetricFamily::new(name, help, kind);
                for _ in 0..next(8) {
                    let mut labels = Labels::new();
                    for _ in 0..next(4) {
                        let k = LABELS[next(LABELS.len() as u64) as usize];
                        let k: Cow<'static, str> = if k == "bad-label" || next(2) == 0 {
                            Cow::Owned(k.to_string())
                        } else {
                            Cow::Borrowed(k)
                        };
                        let v = VALUES[next(VALUES.len() as u64) as usize];
                        labels.push((k, v.into()));
                    }
                    f.samples.push(Sample {
                        labels,
                        value: next(100) as f64,
                    });
                }
                fams.push(f);
            }
            let mut ours = fams.clone();
            let mut reference = fams;
            let (mut our_reports, mut ref_reports) = (Vec::new(), Vec::new());
            merge_families(&mut ours, |r| our_reports.push(r));
            merge_families_reference(&mut reference, |r| ref_reports.push(r));
            assert_eq!(ours, reference, "round {round}");
            assert_eq!(our_reports, ref_reports, "round {round}");
        }
    }

    /// The word-at-a-time escape check agrees with a plain scan on every length up to 24 and
    /// every position of each byte that needs escaping (and of its neighbours in value).
    #[test]
    fn short_escape_check_matches_a_scan() {
        for len in 0..=24 {
            for pos in 0..len.max(1) {
                for special in [
                    b'\\', b'\n', b'"', b'[', b']', b'\t', b'!', b'#', 0x80, 0xff, 0,
                ] {
                    let mut v = vec![b'a'; len];
                    if let Some(c) = v.get_mut(pos) {
                        *c = special;
                    }
                    let scan = v.iter().any(|&c| matches!(c, b'\\' | b'\n' | b'"'));
                    assert_eq!(has_escape_short(&v), scan, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn samples_sorted_like_client_golang() {
        let mut f = MetricFamily::counter("node_cpu_seconds_total", "x");
        f.push(&[("mode", "user"), ("cpu", "1")], 1.0);
        f.push(&[("cpu", "0"), ("mode", "user")], 2.0);
        f.push(&[("cpu", "0"), ("mode", "idle")], 3.0);
        sort_samples(&mut f);
        let text = encode(&[f], Format::Text);
        assert_eq!(
            text.lines().skip(2).collect::<Vec<_>>(),
            [
                "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 3",
                "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 2",
                "node_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 1",
            ]
        );
    }

    #[test]
    fn merging_keeps_the_first_source() {
        let mut fams = vec![
            MetricFamily::gauge("node_load1", "1m load average.").with(&[], 0.5),
            MetricFamily::counter("node_load1", "from a textfile").with(&[], 9.0),
            MetricFamily::gauge("a_metric", "x").with(&[("k", "1")], 1.0),
            MetricFamily::gauge("a_metric", "x")
                .with(&[("k", "0")], 2.0)
                .with(&[("k", "1")], 3.0),
        ];
        let mut dropped = Vec::new();
        merge_families(&mut fams, |d| dropped.push(d));
        assert_eq!(
            encode(&fams, Format::Text),
            "# HELP a_metric x\n# TYPE a_metric gauge\na_metric{k=\"0\"} 2\na_metric{k=\"1\"} 1\n\
             # HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.5\n"
        );
        assert_eq!(dropped.len(), 2, "{dropped:?}");
    }

    /// Found by tests/robust_inputs.rs: a `"` in a zfs kstat name reached the exposition as
    /// `node_zfs_abd_"scatter_order_9`, which no parser accepts.
    #[test]
    fn merging_drops_names_the_text_format_cannot_carry() {
        let mut bad_label = MetricFamily::gauge("ok_metric", "x").with(&[("k", "1")], 1.0);
        bad_label.samples.push(Sample {
            labels: smallvec::smallvec![(Cow::Owned("bad-label".into()), "v".into())],
            value: 2.0,
        });
        bad_label.samples.push(Sample {
            labels: smallvec::smallvec![("k".into(), "2".into()), ("k".into(), "3".into())],
            value: 3.0,
        });
        // Names built at run time (`Cow::Owned`), as a collector builds them from a file.
        let built = |name: &str| MetricFamily::gauge(name.to_string(), "x").with(&[], 1.0);
        let mut fams = vec![
            built("node_zfs_abd_\"scatter_order_9"),
            built(""),
            built("9lives"),
            built("é"),
            bad_label,
        ];
        let mut dropped = Vec::new();
        merge_families(&mut fams, |d| dropped.push(d));
        assert_eq!(
            encode(&fams, Format::Text),
            "# HELP ok_metric x\n# TYPE ok_metric gauge\nok_metric{k=\"1\"} 1\n"
        );
        assert_eq!(dropped.len(), 5, "{dropped:?}");
        assert!(valid_metric_name("node:rule_x9"));
    }

    #[test]
    fn gzip_round_trips_and_reuses_the_compressor() {
        use std::io::Read as _;
        let text = encode(&fams(), Format::Text).repeat(200);
        for body in [text.as_bytes(), b"", text.as_bytes()] {
            let z = gzip(body).expect("gzip");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(z.as_slice())
                .read_to_end(&mut back)
                .expect("valid gzip");
            assert_eq!(back, body);
        }
    }

    /// What we send decodes with the reference tool too, not only with flate2: `gzip -dc`
    /// gives back the body (and fails on a wrong CRC or length).
    #[test]
    fn gzip_output_decodes_with_gzip_tool() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let text = encode(&fams(), Format::Text).repeat(300);
        for body in [text.as_bytes(), b""] {
            let z = gzip(body).expect("gzip");
            let mut child = Command::new("gzip")
                .arg("-dc")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("this test needs the gzip tool (Debian package gzip, Essential)");
            let mut stdin = child.stdin.take().expect("stdin");
            let writer = std::thread::spawn(move || stdin.write_all(&z));
            let out = child.wait_with_output().expect("gzip -dc");
            writer.join().expect("writer").expect("write to gzip");
            assert!(out.status.success(), "gzip -dc: {:?}", out.status);
            assert_eq!(out.stdout, body);
        }
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        // What Prometheus 2.42 sends.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Format::Text
        );
        assert_eq!(Format::negotiate(Some("garbage;;;q=x")), Format::Text);
        assert!(accepts_gzip(Some("gzip, deflate")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
