//! `textfile` collector: metrics from `*.prom` files in `Paths::textfile_directory`
//! (`--collector.textfile.directory`), as node_exporter 1.5's `textfile.go`.
//!
//! - Files whose name ends in `.prom` are read in name order; anything else is ignored.
//! - Each is parsed as the Prometheus text format by [`parse`], a port of the rules of
//!   prometheus/common's `expfmt.TextParser`. A file that cannot be opened or parsed, or that
//!   carries a client-side timestamp, is skipped whole and sets `node_textfile_scrape_error 1`.
//! - A family without HELP gets `Metric read from <path>[, <path>...]` (every file holding a
//!   family of that name); within one file's family, label names missing from a sample are
//!   added with an empty value (node_exporter's `convertMetricFamily`).
//! - Families are merged across files the way node_exporter's registry does it: the first file
//!   (in name order) to export a name fixes its HELP and type; later samples with another HELP
//!   or type, and samples repeating a label set already exported, are dropped (node_exporter
//!   logs a gathering error for them; `scrape_error` is not set).
//! - `node_textfile_mtime_seconds{file="<dir>/<name>"}` for every file read successfully, and
//!   `node_textfile_scrape_error`, 1 when the directory or a file could not be read or parsed.
//! - Files are opened without blocking and read only if regular (a FIFO, socket, device or
//!   directory named `*.prom` is skipped at once), at most
//!   `--collector.textfile.max-file-bytes` each (default [`DEFAULT_MAX_FILE_BYTES`]: a larger
//!   file is skipped without being read), and at most `--collector.textfile.max-samples`
//!   samples in all (default [`DEFAULT_MAX_SAMPLES`]: the file that would pass the cap and
//!   every later one are skipped, the files before it are kept). Each skipped file sets
//!   `node_textfile_scrape_error 1` and counts in `node_textfile_skipped_files{reason}`
//!   (`unreadable`, `not_regular`, `file_size_limit`, `sample_limit`, `invalid`; a family of
//!   ours, exported only when a file was skipped).
//! - No directory configured: only `node_textfile_scrape_error 0` (node_exporter's default
//!   flag value is empty; Debian's package sets `/var/lib/prometheus/node-exporter`).
//!
//! Known differences from node_exporter 1.5:
//! - The exposition model has no histogram or summary type: such families are exported as
//!   untyped families named as their samples (`x_bucket{..,le}`, `x_sum`, `x_count`;
//!   `x{..,quantile}`, `x_sum`, `x_count`), with the same values and label sets node_exporter
//!   prints (buckets and quantiles sorted, `le`/`quantile` last, the `+Inf` bucket equal to the
//!   count), only the `# TYPE` lines and grouping differ.
//! - The directory is not a glob pattern (1.5 also accepts `dir/*`-style globs): a sandboxed
//!   agent can only read the one directory it was given.
//! - A file that is not valid UTF-8 counts as unparsable.
//! - A textfile family named like another collector's family is not detected here (the
//!   registry of node_exporter drops whichever sample comes second with a different HELP or
//!   type); the runtime merges same-named families.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use super::options::collector_options;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::parse::{parse, Family, Kind, Metric};
use crate::exposition::{sort_samples, LabelValue, MetricFamily, MetricType, Sample};

fn has_timestamps(fams: &[Family]) -> bool {
    fams.iter()
        .any(|f| f.metrics.iter().any(|m| m.timestamp.is_some()))
}

/// client_golang's order of metrics in a family: by label count, then label values in
/// label-name order.
fn cmp_labels(a: &[(String, String)], b: &[(String, String)]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|((_, x), (_, y))| x.cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

fn out_sample(
    labels: &[(String, String)],
    extra: Option<(&'static str, f64)>,
    value: f64,
) -> Sample {
    let mut l: crate::exposition::Labels = labels
        .iter()
        .map(|(k, v)| (Cow::Owned(k.clone()), LabelValue::from(v.as_str())))
        .collect();
    if let Some((k, v)) = extra {
        let mut s = String::new();
        crate::exposition::write_value(&mut s, v);
        l.push((Cow::Borrowed(k), LabelValue::from(s)));
    }
    Sample { labels: l, value }
}

/// What the registry has accepted for one name.
struct Accepted {
    kind: Kind,
    help: String,
    /// Label sets already exported.
    seen: HashSet<Vec<(String, String)>>,
    /// Metrics in arrival order, each with its labels completed and sorted by name.
    metrics: Vec<Metric>,
}

/// Merges the parsed files (`(path, families)`, in the order read) as node_exporter 1.5 does
/// (see the module doc) into exposition families.
pub fn merge(files: &[(String, Vec<Family>)]) -> Vec<MetricFamily> {
    let mut files_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, fams) in files {
        for f in fams {
            let v = files_of.entry(&f.name).or_default();
            if v.last() != Some(&path.as_str()) {
                v.push(path);
            }
        }
    }
    let mut accepted: BTreeMap<String, Accepted> = BTreeMap::new();
    // The default HELP of each name, made once (it lists every file holding the name: made
    // and copied per file, it was quadratic in the number of files).
    let default_help: BTreeMap<&str, String> = files_of
        .iter()
        .map(|(n, v)| (*n, format!("Metric read from {}", v.join(", "))))
        .collect();
    for (_, fams) in files {
        for f in fams {
            let help: &str = match &f.help {
                Some(h) => h,
                None => default_help.get(f.name.as_str()).map_or("", String::as_str),
            };
            let names: BTreeSet<&str> = f
                .metrics
                .iter()
                .flat_map(|m| m.labels.iter().map(|(k, _)| k.as_str()))
                .collect();
            let acc = accepted.entry(f.name.clone()).or_insert_with(|| Accepted {
                kind: f.kind,
                help: help.to_string(),
                seen: HashSet::new(),
                metrics: Vec::new(),
            });
            if acc.help != help || acc.kind != f.kind {
                continue;
            }
            for m in &f.metrics {
                let mut labels = m.labels.clone();
                for n in &names {
                    if !labels.iter().any(|(k, _)| k == n) {
                        labels.push((n.to_string(), String::new()));
                    }
                }
                labels.sort();
                if !acc.seen.insert(labels.clone()) {
                    continue;
                }
                acc.metrics.push(Metric {
                    labels,
                    ..m.clone()
                });
            }
        }
    }
    let mut out = Vec::with_capacity(accepted.len());
    for (name, mut acc) in accepted {
        acc.metrics.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
        let fam = |suffix: &str| {
            let t = match acc.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                _ => MetricType::Untyped,
            };
            MetricFamily::new(format!("{name}{suffix}"), acc.help.clone(), t)
        };
        match acc.kind {
            Kind::Counter | Kind::Gauge | Kind::Untyped => {
                let mut f = fam("");
                f.samples = acc
                    .metrics
                    .iter()
                    .map(|m| out_sample(&m.labels, None, m.value))
                    .collect();
                out.push(f);
            }
            Kind::Histogram => {
                let (mut b, mut s, mut c) = (fam("_bucket"), fam("_sum"), fam("_count"));
                for m in &acc.metrics {
                    // Const histograms keep one count per bound and drop `+Inf`; the
                    // encoder adds `+Inf` with the total count.
                    let mut bounds: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
                    for (le, n) in &m.buckets {
                        if *le != f64::INFINITY {
                            bounds.insert(order_key(*le), (*le, *n));
                        }
                    }
                    for (le, n) in bounds.values() {
                        b.samples
                            .push(out_sample(&m.labels, Some(("le", *le)), *n as f64));
                    }
                    b.samples.push(out_sample(
                        &m.labels,
                        Some(("le", f64::INFINITY)),
                        m.count as f64,
                    ));
                    s.samples.push(out_sample(&m.labels, None, m.sum));
                    c.samples.push(out_sample(&m.labels, None, m.count as f64));
                }
                out.extend([b, s, c]);
            }
            Kind::Summary => {
                let (mut q, mut s, mut c) = (fam(""), fam("_sum"), fam("_count"));
                for m in &acc.metrics {
                    let mut qs: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
                    for (quantile, v) in &m.quantiles {
                        qs.insert(order_key(*quantile), (*quantile, *v));
                    }
                    for (quantile, v) in qs.values() {
                        q.samples
                            .push(out_sample(&m.labels, Some(("quantile", *quantile)), *v));
                    }
                    s.samples.push(out_sample(&m.labels, None, m.sum));
                    c.samples.push(out_sample(&m.labels, None, m.count as f64));
                }
                out.extend([q, s, c]);
            }
        }
    }
    out
}

/// A total order on floats matching `<` for the non-NaN values bounds and quantiles take.
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

collector_options! {
    /// Options of the textfile collector (`[collector.textfile]` in the file). The directory
    /// is a start-up setting: the configuration moves it into `Paths::textfile_directory`,
    /// which Landlock grants, and the collector reads it from there.
    pub struct TextfileOptions {
        /// Directory to read text files with metrics from (*.prom). Readable through the
        /// sandbox; a change needs a restart.
        #[arg(id = "collector.textfile.directory", long = "collector.textfile.directory", value_name = "DIR")]
        pub directory: Option<PathBuf>,
        /// Largest *.prom file read, in bytes; a larger file is skipped
        /// (node_textfile_skipped_files{reason="file_size_limit"}) [default: 16 MiB].
        #[arg(id = "collector.textfile.max-file-bytes", long = "collector.textfile.max-file-bytes", value_name = "BYTES")]
        pub max_file_bytes: Option<u64>,
        /// Most samples read from all *.prom files of a scrape; the file that would pass it and
        /// those after it are skipped (node_textfile_skipped_files{reason="sample_limit"})
        /// [default: 100000].
        #[arg(id = "collector.textfile.max-samples", long = "collector.textfile.max-samples", value_name = "N")]
        pub max_samples: Option<u64>,
    }
}

/// Default of `--collector.textfile.max-file-bytes`: far above any real textfile (a few KB to
/// a few MB), far below what would strain the agent's memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 << 20;
/// Default of `--collector.textfile.max-samples`: a whole node scrape is 1,000 to 3,000.
pub const DEFAULT_MAX_SAMPLES: u64 = 100_000;

pub fn collector(o: &Options) -> Box<dyn Collector> {
    Box::new(Textfile {
        limits: Limits {
            max_file_bytes: o.textfile.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
            max_samples: o.textfile.max_samples.unwrap_or(DEFAULT_MAX_SAMPLES),
        },
    })
}

/// The caps on what one scrape reads.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_file_bytes: u64,
    max_samples: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_samples: DEFAULT_MAX_SAMPLES,
        }
    }
}

/// Reads `Paths::textfile_directory`: a start-up setting (Landlock grants that directory), so
/// a reload cannot point the collector elsewhere.
struct Textfile {
    limits: Limits,
}

/// `filepath.Join(dir, name)` for the `file` label and HELP texts (`.` components dropped).
fn join(dir: &std::path::Path, name: &str) -> String {
    let mut p = PathBuf::new();
    for c in dir.components() {
        if c != std::path::Component::CurDir {
            p.push(c);
        }
    }
    p.push(name);
    p.to_string_lossy().into_owned()
}

/// Why a file was skipped: the `reason` label of `node_textfile_skipped_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    /// Could not be opened or read: gone since the listing, EACCES, a symlink loop.
    Unreadable,
    /// A FIFO, socket, device or directory: never opened blocking, never read.
    NotRegular,
    /// Larger than `--collector.textfile.max-file-bytes`.
    FileSizeLimit,
    /// Would take the scrape past `--collector.textfile.max-samples` (it and later files).
    SampleLimit,
    /// Not UTF-8, not the text format, or with client-side timestamps.
    Invalid,
}

impl Skip {
    fn label(self) -> &'static str {
        match self {
            Skip::Unreadable => "unreadable",
            Skip::NotRegular => "not_regular",
            Skip::FileSizeLimit => "file_size_limit",
            Skip::SampleLimit => "sample_limit",
            Skip::Invalid => "invalid",
        }
    }
}

/// An I/O error's reason: a socket fails `open` with `ENXIO`; `fsio::open_regular` refuses
/// other non-regular files with `InvalidInput`; the read cap answers `InvalidData`.
fn io_skip(e: &std::io::Error) -> Skip {
    if e.raw_os_error() == Some(libc::ENXIO) || e.kind() == std::io::ErrorKind::InvalidInput {
        Skip::NotRegular
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        Skip::FileSizeLimit
    } else {
        Skip::Unreadable
    }
}

/// Samples a file's families make (buckets and quantiles each count, as do `_sum`/`_count`).
fn sample_count(fams: &[Family]) -> u64 {
    fams.iter()
        .flat_map(|f| &f.metrics)
        .map(|m| match (m.buckets.is_empty(), m.quantiles.is_empty()) {
            (true, true) => 1,
            _ => (m.buckets.len() + m.quantiles.len() + 2) as u64,
        })
        .sum()
}

/// Reads and parses one file: its families and mtime (whole seconds). Opened without blocking
/// and only if regular (`fsio::open_regular`), read up to the size cap.
fn read_file(path: &str, max_bytes: u64) -> Result<(Vec<Family>, f64), (Skip, String)> {
    let io = |what: &str, e: std::io::Error| (io_skip(&e), format!("{what} {path:?}: {e}"));
    let mut f =
        super::fsio::open_regular(std::path::Path::new(path)).map_err(|e| io("opening", e))?;
    let meta = f.metadata().map_err(|e| io("failed to stat", e))?;
    if meta.len() > max_bytes {
        return Err(io("reading", super::fsio::too_large(max_bytes)));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    super::fsio::read_capped(&mut f, max_bytes, &mut buf).map_err(|e| io("reading", e))?;
    let text =
        std::str::from_utf8(&buf).map_err(|_| (Skip::Invalid, format!("{path:?} is not UTF-8")))?;
    let fams = parse(text).map_err(|e| {
        (
            Skip::Invalid,
            format!("failed to parse textfile data from {path:?}: {e}"),
        )
    })?;
    if has_timestamps(&fams) {
        return Err((
            Skip::Invalid,
            format!(
                "textfile {path:?} contains unsupported client-side timestamps, skipping entire file"
            ),
        ));
    }
    let mtime = meta.modified().map_err(|e| io("failed to stat", e))?;
    let secs = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as f64,
        Err(e) => -(e.duration().as_secs() as f64),
    };
    Ok((fams, secs))
}

/// Lists a directory's `*.prom` names in byte order.
fn prom_files(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = crate::collector::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    names.sort();
    Ok(names)
}

impl Textfile {
    /// The families and whether any error occurred (logged by the caller's debug channel).
    #[cfg(test)]
    fn read(dir: Option<&std::path::Path>) -> (Vec<MetricFamily>, bool) {
        Textfile::read_limited(dir, Limits::default())
    }

    fn read_limited(dir: Option<&std::path::Path>, limits: Limits) -> (Vec<MetricFamily>, bool) {
        let mut errored = false;
        let mut skipped: BTreeMap<Skip, u64> = BTreeMap::new();
        let mut files = Vec::new();
        let mut samples = 0u64;
        let mut mtimes = MetricFamily::gauge(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
        );
        if let Some(dir) = dir {
            match prom_files(dir) {
                Err(e) => {
                    errored = true;
                    log::debug!("textfile: failed to read directory {}: {e}", dir.display());
                }
                Ok(names) => {
                    let total = names.len() as u64;
                    for (done, name) in names.into_iter().enumerate() {
                        let path = join(dir, &name);
                        match read_file(&path, limits.max_file_bytes) {
                            Ok((fams, mtime)) => {
                                let n = sample_count(&fams);
                                if samples.saturating_add(n) > limits.max_samples {
                                    let left = total - done as u64;
                                    log::debug!(
                                        "textfile: {path:?} would pass the cap of {} samples; \
                                         it and {} later files are skipped",
                                        limits.max_samples,
                                        left - 1
                                    );
                                    *skipped.entry(Skip::SampleLimit).or_default() += left;
                                    errored = true;
                                    break;
                                }
                                samples += n;
                                mtimes.push(&[("file", &path)], mtime);
                                files.push((path, fams));
                            }
                            Err((why, e)) => {
                                errored = true;
                                *skipped.entry(why).or_default() += 1;
                                log::debug!("textfile: {e}");
                            }
                        }
                    }
                }
            }
        }
        let mut out = merge(&files);
        if !mtimes.samples.is_empty() {
            sort_samples(&mut mtimes);
            out.push(mtimes);
        }
        if !skipped.is_empty() {
            let mut fam = MetricFamily::gauge(
                "node_textfile_skipped_files",
                "Textfiles skipped in this scrape, by reason: unreadable, not_regular, \
                 file_size_limit, sample_limit, invalid (monitoring-agent).",
            );
            for (why, n) in &skipped {
                fam.push(&[("reason", why.label())], *n as f64);
            }
            out.push(fam);
        }
        out.push(
            MetricFamily::gauge(
                "node_textfile_scrape_error",
                "1 if there was an error opening or reading a file, 0 otherwise",
            )
            .with(&[], if errored { 1.0 } else { 0.0 }),
        );
        (out, errored)
    }
}

impl Collector for Textfile {
    fn name(&self) -> &'static str {
        "textfile"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        // As node_exporter: errors only show in `node_textfile_scrape_error` (and here in
        // `node_textfile_skipped_files`); the files read are kept.
        Ok(Textfile::read_limited(paths.textfile_directory.as_deref(), self.limits).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::render;

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/procmisc/textfile"
    );

    fn fams(text: &str) -> Vec<Family> {
        parse(text).expect("parses")
    }

    #[test]
    fn timestamps_are_parsed_then_refused() {
        let f = fams("a 1 1234567\n");
        assert_eq!(f[0].metrics[0].timestamp, Some(1_234_567));
        assert!(has_timestamps(&f));
        assert!(!has_timestamps(&fams("a 1\n")));
    }

    #[test]
    fn histograms_and_summaries() {
        let f = fams(
            "# TYPE h histogram\nh_bucket{z=\"q\",le=\"1.0\"} 2\nh_bucket{le=\"0.5\",z=\"q\"} 1\n\
             h_sum{z=\"q\"} 3.5\nh_count{z=\"q\"} 7.9\n\
             # TYPE s summary\ns 9\ns{quantile=\"0.9\"} 2\ns{quantile=\"0.1\"} 1\ns_sum 4\ns_count 3\n",
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].kind, Kind::Histogram);
        assert_eq!(f[0].metrics.len(), 1);
        assert_eq!(f[0].metrics[0].buckets, [(1.0, 2), (0.5, 1)]);
        assert_eq!(f[0].metrics[0].count, 7);
        assert_eq!(f[1].metrics[0].quantiles, [(0.9, 2.0), (0.1, 1.0)]);
        let text = render(merge(&[("f".into(), f)]));
        assert_eq!(
            text,
            "# HELP h_bucket Metric read from f\n# TYPE h_bucket untyped\n\
             h_bucket{z=\"q\",le=\"0.5\"} 1\nh_bucket{z=\"q\",le=\"1\"} 2\n\
             h_bucket{z=\"q\",le=\"+Inf\"} 7\n\
             # HELP h_count Metric read from f\n# TYPE h_count untyped\nh_count{z=\"q\"} 7\n\
             # HELP h_sum Metric read from f\n# TYPE h_sum untyped\nh_sum{z=\"q\"} 3.5\n\
             # HELP s Metric read from f\n# TYPE s untyped\n\
             s{quantile=\"0.1\"} 1\ns{quantile=\"0.9\"} 2\n\
             # HELP s_count Metric read from f\n# TYPE s_count untyped\ns_count 3\n\
             # HELP s_sum Metric read from f\n# TYPE s_sum untyped\ns_sum 4\n"
        );
        // `_sum` of a name that is not a summary/histogram is its own family.
        assert_eq!(fams("x 1\nx_sum 2\n").len(), 2);
    }

    #[test]
    fn merge_rules() {
        let files = vec![
            (
                "d/1.prom".to_string(),
                fams("# HELP m First.\n# TYPE m counter\nm{a=\"1\"} 1\n"),
            ),
            (
                "d/2.prom".to_string(),
                fams("# HELP m Second.\n# TYPE m counter\nm{a=\"2\"} 2\n# TYPE g gauge\ng 1\n"),
            ),
            (
                "d/3.prom".to_string(),
                fams(
                    "# TYPE g counter\ng{x=\"y\"} 2\nm{a=\"1\"} 5\n\
                     dupl{a=\"1\"} 1\ndupl{a=\"1\"} 2\nlbl{b=\"1\"} 1\nlbl{a=\"2\"} 2\n",
                ),
            ),
        ];
        assert_eq!(
            render(merge(&files)),
            "# HELP dupl Metric read from d/3.prom\n# TYPE dupl untyped\ndupl{a=\"1\"} 1\n\
             # HELP g Metric read from d/2.prom, d/3.prom\n# TYPE g gauge\ng 1\n\
             # HELP lbl Metric read from d/3.prom\n# TYPE lbl untyped\n\
             lbl{a=\"\",b=\"1\"} 1\nlbl{a=\"2\",b=\"\"} 2\n\
             # HELP m First.\n# TYPE m counter\nm{a=\"1\"} 1\n"
        );
        // Dynamic names and label names are owned.
        let m = merge(&files);
        assert!(matches!(m[0].name, Cow::Owned(_)));
        assert!(matches!(m[0].samples[0].labels[0].0, Cow::Owned(_)));
    }

    fn run(case: &str) -> (String, bool) {
        let dir = PathBuf::from(format!("{DIR}/{case}"));
        let (fams, err) = Textfile::read(Some(&dir));
        let text = render(fams).replace(&format!("{DIR}/"), "@DIR@/");
        let text = text
            .lines()
            .map(|l| match l.split_once("} ") {
                Some((head, _)) if l.starts_with("node_textfile_mtime_seconds{") => {
                    format!("{head}}} @MTIME@\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        (text, err)
    }

    /// Our output against node_exporter 1.5's on the same directory: identical sample lines;
    /// identical HELP/TYPE lines except for histograms and summaries (see the module doc).
    fn compare(case: &str, expected: &str) {
        let (ours, _) = run(case);
        let samples = |t: &str| {
            let mut v: Vec<String> = t
                .lines()
                .filter(|l| !l.starts_with('#'))
                // Ours alone: why files were skipped.
                .filter(|l| !l.starts_with("node_textfile_skipped_files"))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        assert_eq!(samples(&ours), samples(expected), "{case}");
        let mut grouped = HashSet::new();
        for l in expected.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                if rest.ends_with(" histogram") || rest.ends_with(" summary") {
                    grouped.insert(rest.split(' ').next().unwrap_or("").to_string());
                }
            }
        }
        for l in expected.lines().filter(|l| l.starts_with('#')) {
            let name = l.split(' ').nth(2).unwrap_or("");
            if !grouped.contains(name) {
                assert!(ours.contains(&format!("{l}\n")), "{case}: {l}");
            }
        }
    }

    #[test]
    fn fixtures_match_node_exporter() {
        compare(
            "a",
            include_str!("../../tests/fixtures/procmisc/textfile/a.expected"),
        );
        compare(
            "b",
            include_str!("../../tests/fixtures/procmisc/textfile/b.expected"),
        );
        compare(
            "c1",
            include_str!("../../tests/fixtures/procmisc/textfile/c1.expected"),
        );
        compare(
            "c3",
            include_str!("../../tests/fixtures/procmisc/textfile/c3.expected"),
        );
        compare(
            "c6",
            include_str!("../../tests/fixtures/procmisc/textfile/c6.expected"),
        );
        compare(
            "empty",
            include_str!("../../tests/fixtures/procmisc/textfile/empty.expected"),
        );
        for bad in ["c2", "c4", "c5", "c7"] {
            let (text, err) = run(bad);
            assert!(err, "{bad}");
            assert!(text.contains("\nnode_textfile_scrape_error 1\n"), "{bad}");
            assert!(text.contains("node_textfile_skipped_files{"), "{bad}");
        }
        assert!(!run("b").1);
    }

    #[test]
    fn no_directory_and_missing_directory() {
        assert_eq!(
            render(Textfile { limits: Limits::default() }.collect(&Paths::default()).expect("always ok")),
            "# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
             # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n"
        );
        let missing = Paths {
            textfile_directory: Some("/nonexistent".into()),
            ..Paths::default()
        };
        let fams = Textfile {
            limits: Limits::default(),
        }
        .collect(&missing)
        .expect("always ok");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].samples[0].value, 1.0);
    }

    #[test]
    fn hostile_files_are_skipped_and_the_good_ones_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("a_good.prom"), "a 1\n").expect("write");
        nix::unistd::mkfifo(
            &d.join("b_fifo.prom"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
        let _sock = std::os::unix::net::UnixListener::bind(d.join("c_sock.prom")).expect("bind");
        std::os::unix::fs::symlink(d.join("d_loop.prom"), d.join("d_loop.prom")).expect("link");
        std::fs::create_dir(d.join("e_dir.prom")).expect("mkdir");
        let big = std::fs::File::create(d.join("f_big.prom")).expect("create");
        big.set_len(1 << 30).expect("sparse 1 GiB");
        std::fs::write(d.join("g_bad.prom"), "not the format {\n").expect("write");
        std::fs::write(d.join("h_good.prom"), "h 2\n").expect("write");
        let (fams, err) = Textfile::read(Some(d));
        assert!(err);
        let text = render(fams);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"a 1") && lines.contains(&"h 2"), "{text}");
        for (reason, n) in [
            ("unreadable", 1),
            ("not_regular", 3),
            ("file_size_limit", 1),
            ("invalid", 1),
        ] {
            let line = format!("node_textfile_skipped_files{{reason=\"{reason}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(!text.contains("reason=\"sample_limit\""), "{text}");
        assert!(text.contains("node_textfile_scrape_error 1\n"));
    }

    #[test]
    fn the_sample_cap_keeps_the_files_before_it() {
        let dir = tempfile::tempdir().expect("tmp");
        for i in 0..10 {
            std::fs::write(
                dir.path().join(format!("f{i}.prom")),
                format!("m{{i=\"{i}\"}} 1\nn{{i=\"{i}\"}} 2\n"),
            )
            .expect("write");
        }
        let limits = Limits {
            max_samples: 7,
            ..Limits::default()
        };
        let (fams, err) = Textfile::read_limited(Some(dir.path()), limits);
        assert!(err);
        let text = render(fams);
        assert_eq!(
            text.matches("\nm{").count(),
            3,
            "three files of two samples: {text}"
        );
        assert!(text.contains("node_textfile_skipped_files{reason=\"sample_limit\"} 7\n"));
        // Within the caps nothing is skipped.
        let limits = Limits {
            max_samples: 20,
            max_file_bytes: 64,
        };
        let (fams, err) = Textfile::read_limited(Some(dir.path()), limits);
        assert!(!err);
        assert!(!render(fams).contains("node_textfile_skipped_files"));
        let limits = Limits {
            max_samples: 20,
            max_file_bytes: 10,
        };
        let (fams, _) = Textfile::read_limited(Some(dir.path()), limits);
        assert!(render(fams).contains("{reason=\"file_size_limit\"} 10\n"));
    }

    #[test]
    fn paths_are_joined_like_go() {
        assert_eq!(join(std::path::Path::new("./d/"), "x.prom"), "d/x.prom");
        assert_eq!(join(std::path::Path::new("/v/l/"), "x.prom"), "/v/l/x.prom");
    }
}
