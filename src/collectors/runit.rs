//! `runit` collector: node_exporter 1.12's deprecated `runit.go` over
//! `github.com/prometheus-community/go-runit` (off by default, as in 1.12; enabling it logs
//! 1.12's deprecation warning).
//!
//! The services are the directories and symlinks of `--collector.runit.servicedir` (default
//! `/etc/service`, a host path not under `--path.rootfs`, as 1.12), in name order. Per
//! service (labels `service`, and the constant `supervisor="runit"`), from the 20-byte
//! `<servicedir>/<service>/supervise/status` that runsv writes:
//!
//! - `node_service_state`: byte 19 (0 down, 1 run, 2 finish);
//! - `node_service_desired_state`: byte 17, `u` = 1, anything else 0;
//! - `node_service_state_last_change_timestamp_seconds`: bytes 0..8, a big-endian TAI64 label,
//!   minus go-runit's offset `4611686018427387914` (in Go's wrapping `int64` arithmetic);
//! - `node_service_normal_state`: 0 when `supervise/down` exists (`stat`), else 1 (go-runit
//!   looks there, not at runit's `<service>/down`).
//!
//! go-runit reads the file with one `read` of up to 20 bytes and zero-fills a short file; an
//! empty or unreadable file skips the service (logged at debug level, as 1.12). An unlistable
//! service directory fails the collector. A service name that is not UTF-8 is skipped
//! (client_golang would refuse the label value).
//!
//! Sandbox: Landlock grants the service directory read-only and, each alone, the `supervise`
//! directories its services had at start-up that lie outside it (runit's usual
//! `/etc/service/<svc>` -> `/etc/sv/<svc>`, `supervise` -> `/run/runit/supervise/<svc>`
//! symlinks): see [`outside_supervise_dirs`]. A service added later whose `supervise` directory lies outside
//! is skipped (not readable) until a restart.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::options::collector_options;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// node_exporter's default `--collector.runit.servicedir`.
pub const DEFAULT_SERVICE_DIR: &str = "/etc/service";

/// The deprecation warning node_exporter 1.12 logs when the collector is built.
pub const DEPRECATED: &str =
    "This collector is deprecated and will be removed in the next major version release.";

collector_options! {
    /// Options of the runit collector (`[collector.runit]` in the file).
    pub struct RunitOptions {
        /// Path to runit service directory (granted read-only by Landlock; a change needs a
        /// restart). [default: /etc/service]
        #[arg(id = "collector.runit.servicedir", long = "collector.runit.servicedir", value_name = "DIR",
              value_parser = crate::collector::options::parse_path_or_empty)]
        pub servicedir: Option<PathBuf>,
    }
}

/// The service directory the option names (go-runit's default for an empty one).
pub fn service_dir(o: &Option<PathBuf>) -> PathBuf {
    match o {
        Some(p) if !p.as_os_str().is_empty() => p.clone(),
        _ => PathBuf::from(DEFAULT_SERVICE_DIR),
    }
}

/// What Landlock must grant besides `dir` itself: the `supervise` directory of each service
/// found there now whose real location lies outside it (canonical paths, no repeats). A
/// directory that cannot be listed adds nothing.
pub fn outside_supervise_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    let Ok(real_dir) = std::fs::canonicalize(dir) else {
        return v;
    };
    let Ok(names) = services(dir) else {
        return v;
    };
    for name in names {
        if let Ok(sup) = std::fs::canonicalize(dir.join(&name).join("supervise")) {
            if !sup.starts_with(&real_dir) && sup.is_dir() && !v.contains(&sup) {
                v.push(sup);
            }
        }
    }
    v
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    log::warn!("collector runit: {DEPRECATED}");
    Box::new(Runit)
}

/// One service's status, as go-runit's `SvStatus` (the fields 1.12 exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub state: u8,
    pub want: u8,
    pub timestamp: i64,
    pub normally_up: bool,
}

const TAI_OFFSET: i64 = 4611686018427387914;

/// go-runit's decoding of the status bytes read (`buf`: at most 20 are used, a short read is
/// zero-filled as go-runit's buffer is). `None` for an empty read (Go's `io.EOF`).
pub fn parse_status(buf: &[u8], normally_up: bool) -> Option<Status> {
    if buf.is_empty() {
        return None;
    }
    let mut b = [0u8; 20];
    for (d, s) in b.iter_mut().zip(buf) {
        *d = *s;
    }
    let [t0, t1, t2, t3, t4, t5, t6, t7, _, _, _, _, _, _, _, _, _, want, _, state] = b;
    let tai = i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
    Some(Status {
        state,
        want: u8::from(want == b'u'),
        timestamp: tai.wrapping_sub(TAI_OFFSET),
        normally_up,
    })
}

/// The service names in `dir`: directories and symlinks (not followed), sorted by name as
/// Go's `os.ReadDir`.
pub fn services(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() || t.is_symlink() {
            v.push(e.file_name());
        }
    }
    v.sort();
    Ok(v)
}

/// go-runit's `status()`: one read of at most 20 bytes.
fn read_status(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 20];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    Ok(buf.get(..n).unwrap_or_default().to_vec())
}

/// One service's status, or why it is skipped.
pub fn service_status(dir: &Path, name: &std::ffi::OsStr) -> Result<Status, String> {
    let sup = dir.join(name).join("supervise");
    let path = sup.join("status");
    let buf = read_status(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // go-runit's NormallyUp: any stat error counts as "no down file".
    let normally_up = std::fs::metadata(sup.join("down")).is_err();
    parse_status(&buf, normally_up).ok_or_else(|| format!("{}: EOF", path.display()))
}

/// The four families of 1.12, for (service name, status) in order.
pub fn families(services: &[(String, Status)]) -> Vec<MetricFamily> {
    let mut state = MetricFamily::gauge("node_service_state", "State of runit service.");
    let mut desired = MetricFamily::gauge(
        "node_service_desired_state",
        "Desired state of runit service.",
    );
    let mut normal = MetricFamily::gauge(
        "node_service_normal_state",
        "Normal state of runit service.",
    );
    let mut stamp = MetricFamily::gauge(
        "node_service_state_last_change_timestamp_seconds",
        "Unix timestamp of the last runit service state change.",
    );
    for (name, s) in services {
        let l: &[(&'static str, &str)] = &[("service", name), ("supervisor", "runit")];
        state.push(l, f64::from(s.state));
        desired.push(l, f64::from(s.want));
        stamp.push(l, s.timestamp as f64);
        normal.push(l, if s.normally_up { 1.0 } else { 0.0 });
    }
    nonempty_sorted(vec![desired, normal, state, stamp])
}

pub struct Runit;

impl Collector for Runit {
    fn name(&self) -> &'static str {
        "runit"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let dir = paths
            .collector_files
            .runit_servicedir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVICE_DIR));
        let names = services(&dir).map_err(|source| CollectError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for name in names {
            let Some(label) = name.to_str() else {
                log::debug!("runit: skipping service {name:?}: not UTF-8");
                continue;
            };
            match service_status(&dir, &name) {
                Ok(s) => out.push((label.to_string(), s)),
                Err(e) => log::debug!("runit: Couldn't get status of service {label}: {e}"),
            }
        }
        Ok(families(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, lines};

    fn paths_for(dir: &Path) -> Paths {
        let mut p = Paths::default();
        p.collector_files.runit_servicedir = Some(dir.to_path_buf());
        p
    }

    /// A status file as runsv writes it (runit's `sv.c`/`runsv.c` layout): TAI64N label,
    /// pid little-endian, paused, want, term flag, state.
    fn status_bytes(unix: i64, pid: u32, want: u8, state: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(unix.wrapping_add(TAI_OFFSET)).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // nanoseconds
        b.extend_from_slice(&pid.to_le_bytes());
        b.extend_from_slice(&[0, want, 0, state]);
        b
    }

    #[test]
    fn go_runit_fixture() {
        // go-runit's own fixture (MIT, see tests/fixtures/runit/README.md): pid 123, up, want
        // up, changed 2013-11-02 10:02:53 UTC; `symlink-service` links to a directory outside.
        let dir = fixture("runit", "service");
        let names = services(&dir).expect("list");
        assert_eq!(names, [OsString::from("foo"), "symlink-service".into()]);
        let fams = Runit.collect(&paths_for(&dir)).expect("collects");
        let got = lines::render(&fams);
        let want: Vec<lines::Line> = [
            ("# HELP node_service_desired_state Desired state of runit service.", None),
            ("# TYPE node_service_desired_state gauge", None),
            (r#"node_service_desired_state{service="foo",supervisor="runit"}"#, Some(1.0)),
            (r#"node_service_desired_state{service="symlink-service",supervisor="runit"}"#, Some(1.0)),
            ("# HELP node_service_normal_state Normal state of runit service.", None),
            ("# TYPE node_service_normal_state gauge", None),
            (r#"node_service_normal_state{service="foo",supervisor="runit"}"#, Some(1.0)),
            (r#"node_service_normal_state{service="symlink-service",supervisor="runit"}"#, Some(1.0)),
            ("# HELP node_service_state State of runit service.", None),
            ("# TYPE node_service_state gauge", None),
            (r#"node_service_state{service="foo",supervisor="runit"}"#, Some(1.0)),
            (r#"node_service_state{service="symlink-service",supervisor="runit"}"#, Some(1.0)),
            ("# HELP node_service_state_last_change_timestamp_seconds Unix timestamp of the last runit service state change.", None),
            ("# TYPE node_service_state_last_change_timestamp_seconds gauge", None),
            (r#"node_service_state_last_change_timestamp_seconds{service="foo",supervisor="runit"}"#, Some(1383386573.0)),
            (r#"node_service_state_last_change_timestamp_seconds{service="symlink-service",supervisor="runit"}"#, Some(1383386573.0)),
        ]
        .into_iter()
        .map(|(l, v)| (l.to_string(), v))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn status_decoding_as_go_runit() {
        let s = parse_status(&status_bytes(1_700_000_000, 4242, b'd', 2), true).expect("s");
        assert_eq!(
            s,
            Status {
                state: 2,
                want: 0,
                timestamp: 1_700_000_000,
                normally_up: true
            }
        );
        // Neither 'u' nor 'd': go-runit leaves Want at 0.
        let s = parse_status(&status_bytes(5, 1, b'x', 7), false).expect("s");
        assert_eq!((s.want, s.state, s.normally_up), (0, 7, false));
        // A short read is zero-filled: TAI 0 minus the offset, state 0.
        let s = parse_status(&[0], true).expect("s");
        assert_eq!((s.timestamp, s.state, s.want), (-TAI_OFFSET, 0, 0));
        // An empty file is go-runit's io.EOF.
        assert_eq!(parse_status(&[], true), None);
        // A TAI label past int64 wraps as Go's arithmetic does.
        let s = parse_status(&[0xff; 20], true).expect("s");
        assert_eq!(s.timestamp, (-1i64).wrapping_sub(TAI_OFFSET));
        // Bytes past the 20th are not read.
        let mut long = status_bytes(9, 1, b'u', 1);
        long.extend_from_slice(b"trailing");
        assert_eq!(parse_status(&long, true).expect("s").timestamp, 9);
    }

    #[test]
    fn services_and_errors() {
        let t = tempfile::tempdir().expect("tmp");
        let d = t.path();
        let mk = |name: &str, bytes: Option<Vec<u8>>| {
            std::fs::create_dir_all(d.join(name).join("supervise")).expect("mkdir");
            if let Some(b) = bytes {
                std::fs::write(d.join(name).join("supervise/status"), b).expect("write");
            }
        };
        mk("b-down", Some(status_bytes(100, 7, b'd', 0)));
        std::fs::write(d.join("b-down/supervise/down"), "").expect("down");
        mk("a-up", Some(status_bytes(200, 8, b'u', 1)));
        mk("c-empty", Some(Vec::new()));
        mk("d-missing", None);
        std::fs::write(d.join("regular-file"), "not a service").expect("file");
        std::os::unix::fs::symlink("/nonexistent/dangling", d.join("e-dangling")).expect("ln");
        let fams = Runit.collect(&paths_for(d)).expect("collects");
        let text: Vec<String> = lines::render(&fams)
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(l, v)| format!("{l} {}", v.unwrap_or_default()))
            .collect();
        assert_eq!(
            text,
            [
                r#"node_service_desired_state{service="a-up",supervisor="runit"} 1"#,
                r#"node_service_desired_state{service="b-down",supervisor="runit"} 0"#,
                r#"node_service_normal_state{service="a-up",supervisor="runit"} 1"#,
                r#"node_service_normal_state{service="b-down",supervisor="runit"} 0"#,
                r#"node_service_state{service="a-up",supervisor="runit"} 1"#,
                r#"node_service_state{service="b-down",supervisor="runit"} 0"#,
                r#"node_service_state_last_change_timestamp_seconds{service="a-up",supervisor="runit"} 200"#,
                r#"node_service_state_last_change_timestamp_seconds{service="b-down",supervisor="runit"} 100"#,
            ]
        );
        // An unlistable directory fails the collector (not "no data").
        let e = Runit
            .collect(&paths_for(&d.join("absent")))
            .expect_err("absent dir");
        assert!(!e.is_no_data(), "{e}");
        // No service at all: success, no samples.
        let empty = tempfile::tempdir().expect("tmp");
        assert!(Runit
            .collect(&paths_for(empty.path()))
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn grants_the_dir_and_outside_supervise_dirs() {
        let t = tempfile::tempdir().expect("tmp");
        let svc = t.path().join("service");
        let sv = t.path().join("sv");
        let run = t.path().join("run");
        for d in [
            &svc,
            &sv.join("x"),
            &run.join("x"),
            &svc.join("inside/supervise"),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::os::unix::fs::symlink(run.join("x"), sv.join("x/supervise")).expect("ln");
        std::os::unix::fs::symlink(sv.join("x"), svc.join("x")).expect("ln");
        let real = |p: &Path| std::fs::canonicalize(p).expect("canonical");
        assert_eq!(outside_supervise_dirs(&svc), [real(&run.join("x"))]);
        assert!(outside_supervise_dirs(&t.path().join("absent")).is_empty());
    }
}
