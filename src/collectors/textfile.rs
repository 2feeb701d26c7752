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
use crate::exposition::{sort_samples, MetricFamily, MetricType, Sample};

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
    let mut l: Vec<(Cow<'static, str>, String)> = labels
        .iter()
        .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
        .collect();
    if let Some((k, v)) = extra {
        let mut s = String::new();
        crate::exposition::write_value(&mut s, v);
        l.push((Cow::Borrowed(k), s));
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
    for (_, fams) in files {
        for f in fams {
            let help = match &f.help {
                Some(h) => h.clone(),
                None => format!(
                    "Metric read from {}",
                    files_of
                        .get(f.name.as_str())
                        .map_or(String::new(), |v| v.join(", "))
                ),
            };
            let names: BTreeSet<&str> = f
                .metrics
                .iter()
                .flat_map(|m| m.labels.iter().map(|(k, _)| k.as_str()))
                .collect();
            let acc = accepted.entry(f.name.clone()).or_insert_with(|| Accepted {
                kind: f.kind,
                help: help.clone(),
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
    }
}

pub fn collector(_: &Options) -> Box<dyn Collector> {
    Box::new(Textfile)
}

/// Reads `Paths::textfile_directory`: a start-up setting (Landlock grants that directory), so
/// a reload cannot point the collector elsewhere.
struct Textfile;

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

/// Reads and parses one file: its families and mtime (whole seconds).
fn read_file(path: &str) -> Result<(Vec<Family>, f64), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("opening {path:?}: {e}"))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| format!("reading {path:?}: {e}"))?;
    let text = std::str::from_utf8(&buf).map_err(|_| format!("{path:?} is not UTF-8"))?;
    let fams =
        parse(text).map_err(|e| format!("failed to parse textfile data from {path:?}: {e}"))?;
    if has_timestamps(&fams) {
        return Err(format!(
            "textfile {path:?} contains unsupported client-side timestamps, skipping entire file"
        ));
    }
    let mtime = f
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| format!("failed to stat {path:?}: {e}"))?;
    let secs = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as f64,
        Err(e) => -(e.duration().as_secs() as f64),
    };
    Ok((fams, secs))
}

/// Lists a directory's `*.prom` names in byte order.
fn prom_files(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    names.sort();
    Ok(names)
}

impl Textfile {
    /// The families and whether any error occurred (logged by the caller's debug channel).
    fn read(dir: Option<&std::path::Path>) -> (Vec<MetricFamily>, bool) {
        let mut errored = false;
        let mut files = Vec::new();
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
                    for name in names {
                        let path = join(dir, &name);
                        match read_file(&path) {
                            Ok((fams, mtime)) => {
                                mtimes.push(&[("file", &path)], mtime);
                                files.push((path, fams));
                            }
                            Err(e) => {
                                errored = true;
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
        // As node_exporter: errors only show in `node_textfile_scrape_error`.
        Ok(Textfile::read(paths.textfile_directory.as_deref()).0)
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
            assert!(text.ends_with("node_textfile_scrape_error 1\n"), "{bad}");
        }
        assert!(!run("b").1);
    }

    #[test]
    fn no_directory_and_missing_directory() {
        assert_eq!(
            render(Textfile.collect(&Paths::default()).expect("always ok")),
            "# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
             # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n"
        );
        let missing = Paths {
            textfile_directory: Some("/nonexistent".into()),
            ..Paths::default()
        };
        let fams = Textfile.collect(&missing).expect("always ok");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].samples[0].value, 1.0);
    }

    #[test]
    fn paths_are_joined_like_go() {
        assert_eq!(join(std::path::Path::new("./d/"), "x.prom"), "d/x.prom");
        assert_eq!(join(std::path::Path::new("/v/l/"), "x.prom"), "/v/l/x.prom");
    }
}
