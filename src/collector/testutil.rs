//! Shared by the collectors' unit tests: fixture paths, `Paths` rooted in a fixture, golden
//! files, families encoded as the agent serves them, node_exporter's output as comparable
//! lines, and the hardware group's golden file.

use std::path::PathBuf;

use crate::collector::Paths;
use crate::exposition::{encode, sort_samples, Format, MetricFamily};

/// A file or directory under `tests/fixtures/<group>/`.
pub(crate) fn fixture(group: &str, rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(group)
        .join(rel)
}

/// `Paths` whose procfs is `dir`, the rest the host's.
pub(crate) fn procfs_at(dir: impl Into<PathBuf>) -> Paths {
    Paths {
        procfs: dir.into(),
        ..Paths::default()
    }
}

/// `Paths` whose sysfs is `dir`, the rest the host's.
pub(crate) fn sysfs_at(dir: impl Into<PathBuf>) -> Paths {
    Paths {
        sysfs: dir.into(),
        ..Paths::default()
    }
}

/// `Paths` whose procfs is `tests/fixtures/<group>/<rel>`, the rest the host's.
pub(crate) fn procfs(group: &str, rel: &str) -> Paths {
    procfs_at(fixture(group, rel))
}

/// `Paths` whose sysfs is `tests/fixtures/<group>/<rel>`, the rest the host's.
pub(crate) fn sysfs(group: &str, rel: &str) -> Paths {
    sysfs_at(fixture(group, rel))
}

/// A copy of the fixture tree `tests/fixtures/<group>/<rel>` in a fresh temporary directory
/// (symlinks kept as symlinks), for a test that breaks one of its inputs.
pub(crate) fn fixture_copy(group: &str, rel: &str) -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read fixture dir") {
            let e = e.expect("fixture entry");
            let t = e.file_type().expect("file type");
            let dst = to.join(e.file_name());
            if t.is_symlink() {
                let target = std::fs::read_link(e.path()).expect("readlink");
                std::os::unix::fs::symlink(target, &dst).expect("symlink");
            } else if t.is_dir() {
                copy(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), &dst).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    copy(&fixture(group, rel), dir.path());
    dir
}

/// The names of the families, in order.
pub(crate) fn names(fams: &[MetricFamily]) -> Vec<&str> {
    fams.iter().map(|f| &*f.name).collect()
}

/// The text of a file under `tests/fixtures/<group>/` (a golden file, or an input).
pub(crate) fn fixture_text(group: &str, rel: &str) -> String {
    std::fs::read_to_string(fixture(group, rel)).expect("golden file")
}

/// Asserts that `text` is, byte for byte, the golden file `tests/fixtures/<group>/<rel>`.
#[track_caller]
pub(crate) fn assert_golden(text: String, group: &str, rel: &str) {
    assert_eq!(text, fixture_text(group, rel), "{group}/{rel}");
}

/// The value of the first sample of the family `name`, if there is such a family.
pub(crate) fn first_value(fams: &[MetricFamily], name: &str) -> Option<f64> {
    fams.iter()
        .find(|f| f.name == name)
        .map(|f| f.samples[0].value)
}

/// Each family's name with its first sample's value, in order.
pub(crate) fn first_values(fams: &[MetricFamily]) -> Vec<(&str, f64)> {
    fams.iter()
        .map(|f| (&*f.name, f.samples[0].value))
        .collect()
}

/// The families in the text format, in the order given, samples as they are (what a
/// collector's own order looks like).
pub(crate) fn raw(fams: &[MetricFamily]) -> String {
    encode(fams, Format::Text)
}

/// The families in the text format, sorted by name as the scrape sorts them.
pub(crate) fn render(mut fams: Vec<MetricFamily>) -> String {
    fams.sort_by(|a, b| a.name.cmp(&b.name));
    encode(&fams, Format::Text)
}

/// The families as the exposition layer serves them: sorted by name, samples in
/// client_golang's order.
pub(crate) fn served(mut fams: Vec<MetricFamily>) -> String {
    fams.iter_mut().for_each(sort_samples);
    render(fams)
}

/// Families and node_exporter's output as comparable lines (values as numbers, so that a
/// float printed differently still compares equal).
pub(crate) mod lines {
    use crate::exposition::{MetricFamily, MetricType};

    /// One line of the text format: `# HELP`/`# TYPE` lines with no value, series with theirs.
    pub type Line = (String, Option<f64>);

    /// Renders families (in the given order, samples as they are) without escaping.
    pub fn render(fams: &[MetricFamily]) -> Vec<Line> {
        let mut out = Vec::new();
        for f in fams {
            if f.samples.is_empty() {
                continue;
            }
            out.push((format!("# HELP {} {}", f.name, f.help), None));
            let t = match f.kind {
                MetricType::Counter => "counter",
                MetricType::Gauge => "gauge",
                MetricType::Untyped => "untyped",
            };
            out.push((format!("# TYPE {} {t}", f.name), None));
            for s in &f.samples {
                let mut series = f.name.to_string();
                if !s.labels.is_empty() {
                    let l: Vec<String> = s
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{v}\""))
                        .collect();
                    series = format!("{series}{{{}}}", l.join(","));
                }
                out.push((series, Some(s.value)));
            }
        }
        out
    }

    /// Parses node_exporter's output (as `curl` printed it) into [`Line`]s.
    pub fn parse(text: &str) -> Vec<Line> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                if l.starts_with('#') {
                    (l.to_string(), None)
                } else {
                    let (series, v) = l.rsplit_once(' ').expect("series and value");
                    (series.to_string(), Some(v.parse().expect("value")))
                }
            })
            .collect()
    }

    /// Sorts families by name, as the agent's registry does before encoding.
    pub fn sorted(mut fams: Vec<MetricFamily>) -> Vec<MetricFamily> {
        fams.sort_by(|a, b| a.name.cmp(&b.name));
        fams
    }
}

/// The fixture tree of the hardware group and node_exporter 1.5.0's output for it.
pub(crate) mod hw {
    use crate::collector::Paths;
    use crate::exposition::MetricFamily;
    use std::path::PathBuf;

    pub fn base() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hw")
    }

    pub fn paths() -> Paths {
        let b = base();
        Paths {
            procfs: b.join("proc"),
            sysfs: b.join("sys"),
            rootfs: b.join("root"),
            udev_data: b.join("udev"),
            textfile_directory: None,
            collector_files: Default::default(),
        }
    }

    /// The families of `node_exporter-1.5.0.prom` whose names start with one of `prefixes`, in
    /// text format, `@SYSFS@` replaced by the fixture's sysfs root.
    pub fn golden(prefixes: &[&str]) -> String {
        let text =
            std::fs::read_to_string(base().join("node_exporter-1.5.0.prom")).expect("fixture file");
        let sysfs = paths().sysfs.display().to_string();
        let mut out = String::new();
        let mut keep = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                keep = prefixes.iter().any(|p| rest.starts_with(p));
            }
            if keep {
                out.push_str(&line.replace("@SYSFS@", &sysfs));
                out.push('\n');
            }
        }
        out
    }

    /// Encodes families as the runtime serves them (sorted by name).
    pub fn encoded(fams: Vec<MetricFamily>) -> String {
        super::render(fams)
    }
}

/// node_exporter 1.12's output (its e2e-output.txt) for the families whose names start with
/// `prefix`, from `tests/fixtures/ne112/kernel-stats/expected-1.12.prom`, as comparable lines.
pub(crate) fn expected_1_12(prefix: &str) -> Vec<lines::Line> {
    let text = fixture_text("ne112", "kernel-stats/expected-1.12.prom");
    let mut keep = false;
    let mut out = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            keep = rest.starts_with(prefix);
        }
        if keep {
            out.push_str(l);
            out.push('\n');
        }
    }
    lines::parse(&out)
}

/// This thread's count of read system calls so far (`syscr` of `/proc/thread-self/io`), read
/// in exactly one read (the file is one record, generated whole by the first read), so that
/// what reading it adds does not depend on how long its numbers have grown.
pub(crate) fn reads_so_far() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let n = std::fs::File::open("/proc/thread-self/io")
        .and_then(|mut f| f.read(&mut buf))
        .expect("read /proc/thread-self/io");
    std::str::from_utf8(&buf[..n])
        .expect("utf-8")
        .lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscr: line")
}
