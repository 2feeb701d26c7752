//! `os` collector: the operating system's identity from `os-release`, as node_exporter 1.5's
//! `os_release.go`.
//!
//! - `node_os_info{build_id,id,id_like,image_id,image_version,name,pretty_name,variant,
//!   variant_id,version,version_codename,version_id} 1` (a key missing from the file gives an
//!   empty label value, as node_exporter);
//! - `node_os_version{id,id_like,name}`: the leading `major[.minor]` of `VERSION_ID` as a number,
//!   only when it is above 0 (so `VERSION_ID=rolling` gives no sample).
//!
//! The file is `<rootfs>/etc/os-release`, or `<rootfs>/usr/lib/os-release` when the first does
//! not exist. Neither existing fails the collector (node_exporter's `ErrNoData`, which it counts
//! as `node_scrape_collector_success 0`); an unreadable or malformed file too.
//!
//! **Read once, before the sandbox.** Both paths are outside `/proc` and `/sys`, which is all
//! the sandbox lets the agent read, so [`warm_up`] reads and parses the file at start-up (before
//! privileges are dropped and Landlock is applied) and every scrape serves that copy.
//! node_exporter re-reads the file when its mtime changes; here **a change to `os-release` (a
//! distribution upgrade) shows only after the agent restarts**. A `--path.rootfs` that differs
//! from the one seen at start-up (a reload) is read on first use, which the sandbox normally
//! refuses: the collector then fails until a restart.

use std::path::PathBuf;
use std::sync::Mutex;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// The `os-release` fields node_exporter 1.5 exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub name: String,
    pub id: String,
    pub id_like: String,
    pub pretty_name: String,
    pub variant: String,
    pub variant_id: String,
    pub version: String,
    pub version_id: String,
    pub version_codename: String,
    pub build_id: String,
    pub image_id: String,
    pub image_version: String,
}

/// What the start-up read produced, per rootfs.
#[derive(Debug, Clone)]
enum Loaded {
    Release(Box<OsRelease>),
    /// Neither file exists.
    Missing,
    /// A file exists but could not be read or parsed.
    Failed(String),
}

static CACHE: Mutex<Option<(PathBuf, Loaded)>> = Mutex::new(None);

/// Reads and caches `os-release` below `paths.rootfs`. Called once at start-up, before the
/// sandbox closes everything outside `/proc` and `/sys`. Also loads what the `selinux`
/// collector needs from `/etc` (see [`super::selinux::warm_up`]).
pub fn warm_up(paths: &Paths) {
    let loaded = load(paths);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *cache = Some((paths.rootfs.clone(), loaded));
    drop(cache);
    super::selinux::warm_up(paths);
}

fn load(paths: &Paths) -> Loaded {
    for file in ["/etc/os-release", "/usr/lib/os-release"] {
        let path = paths.root(file);
        match super::fsio::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return match parse_os_release(&text) {
                    Ok(r) => Loaded::Release(Box::new(r)),
                    Err(m) => Loaded::Failed(format!("parsing {}: {m}", path.display())),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Loaded::Failed(format!("reading {}: {e}", path.display())),
        }
    }
    Loaded::Missing
}

/// Parses an `os-release` file the way node_exporter's env-file parser does: `KEY=value`
/// lines, blank lines and `#` comments ignored, an optional `export ` prefix, values double
/// quoted (with `\\`, `\"`, `\$`, `` \` `` escapes), single quoted (literal) or bare (backslash
/// escapes, an inline ` #` comment and surrounding blanks removed). A line without `=` or with an
/// invalid key is an error, as there.
pub fn parse_os_release(text: &str) -> Result<OsRelease, String> {
    let mut r = OsRelease::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: no '=' in {raw:?}", n + 1))?;
        let key = key.trim_end();
        if !is_key(key) {
            return Err(format!("line {}: invalid key {key:?}", n + 1));
        }
        let value = parse_value(value.trim_start()).map_err(|m| format!("line {}: {m}", n + 1))?;
        let slot = match key {
            "NAME" => &mut r.name,
            "ID" => &mut r.id,
            "ID_LIKE" => &mut r.id_like,
            "PRETTY_NAME" => &mut r.pretty_name,
            "VARIANT" => &mut r.variant,
            "VARIANT_ID" => &mut r.variant_id,
            "VERSION" => &mut r.version,
            "VERSION_ID" => &mut r.version_id,
            "VERSION_CODENAME" => &mut r.version_codename,
            "BUILD_ID" => &mut r.build_id,
            "IMAGE_ID" => &mut r.image_id,
            "IMAGE_VERSION" => &mut r.image_version,
            _ => continue,
        };
        *slot = value;
    }
    Ok(r)
}

fn is_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn parse_value(v: &str) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    match v.chars().next() {
        Some('"') => {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated double-quoted value".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('\\' | '"' | '$' | '`')) => out.push(c),
                        Some('\n') | None => {}
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                    },
                    Some(c) => out.push(c),
                }
            }
            trailing(chars.as_str())?;
        }
        Some('\'') => {
            chars.next();
            let rest = chars.as_str();
            let (quoted, after) = rest
                .split_once('\'')
                .ok_or_else(|| "unterminated single-quoted value".to_string())?;
            out.push_str(quoted);
            trailing(after)?;
        }
        _ => {
            let bare = v.split_once(" #").map_or(v, |(bare, _)| bare);
            let mut it = bare.trim_end().chars();
            while let Some(c) = it.next() {
                if c == '\\' {
                    if let Some(n) = it.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
        }
    }
    Ok(out)
}

/// After a closing quote only blanks or a comment may follow.
fn trailing(rest: &str) -> Result<(), String> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected text after the closing quote: {rest:?}"))
    }
}

/// node_exporter's `^[0-9]+\.?[0-9]*` on `VERSION_ID`, as a number (0 when it does not match).
pub fn major_minor(version_id: &str) -> f64 {
    let b = version_id.as_bytes();
    let mut end = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if end == 0 {
        return 0.0;
    }
    if b.get(end) == Some(&b'.') {
        end += 1;
        end += b
            .get(end..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
    }
    version_id
        .get(..end)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The families for a parsed release, as node_exporter 1.5 emits them.
pub fn families(r: &OsRelease) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(2);
    out.push(
        MetricFamily::gauge(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, \
             image_version, name, pretty_name, variant, variant_id, version, version_codename, \
             version_id.",
        )
        .with(
            &[
                ("build_id", &r.build_id),
                ("id", &r.id),
                ("id_like", &r.id_like),
                ("image_id", &r.image_id),
                ("image_version", &r.image_version),
                ("name", &r.name),
                ("pretty_name", &r.pretty_name),
                ("variant", &r.variant),
                ("variant_id", &r.variant_id),
                ("version", &r.version),
                ("version_codename", &r.version_codename),
                ("version_id", &r.version_id),
            ],
            1.0,
        ),
    );
    let version = major_minor(&r.version_id);
    if version > 0.0 {
        out.push(
            MetricFamily::gauge(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
            )
            .with(
                &[("id", &r.id), ("id_like", &r.id_like), ("name", &r.name)],
                version,
            ),
        );
    }
    out
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Os)
}

struct Os;

impl Collector for Os {
    fn name(&self) -> &'static str {
        "os"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let loaded = {
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            match &*cache {
                Some((root, loaded)) if *root == paths.rootfs => loaded.clone(),
                _ => {
                    // Not warmed up for this rootfs (tests, or a reload that changed
                    // --path.rootfs): read now, once.
                    let loaded = load(paths);
                    *cache = Some((paths.rootfs.clone(), loaded.clone()));
                    loaded
                }
            }
        };
        match loaded {
            Loaded::Release(r) => Ok(families(&r)),
            // node_exporter's ErrNoData: neither /etc/os-release nor /usr/lib/os-release.
            Loaded::Missing => Err(CollectError::no_data(&paths.root("/etc/os-release"))),
            Loaded::Failed(m) => Err(CollectError::Other(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN12: &str = include_str!("../../tests/fixtures/hw/root/usr/lib/os-release");

    fn labels(f: &MetricFamily) -> Vec<(String, String)> {
        f.samples[0]
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn debian12() {
        let r = parse_os_release(DEBIAN12).expect("parses");
        assert_eq!(
            r,
            OsRelease {
                name: "Debian GNU/Linux".into(),
                id: "debian".into(),
                pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
                version: "12 (bookworm)".into(),
                version_id: "12".into(),
                version_codename: "bookworm".into(),
                ..Default::default()
            }
        );
        let fams = families(&r);
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].name, "node_os_info");
        let want: Vec<(String, String)> = [
            ("build_id", ""),
            ("id", "debian"),
            ("id_like", ""),
            ("image_id", ""),
            ("image_version", ""),
            ("name", "Debian GNU/Linux"),
            ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
            ("variant", ""),
            ("variant_id", ""),
            ("version", "12 (bookworm)"),
            ("version_codename", "bookworm"),
            ("version_id", "12"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels(&fams[0]), want);
        assert_eq!(fams[1].name, "node_os_version");
        assert_eq!(fams[1].samples[0].value, 12.0);
        assert_eq!(
            labels(&fams[1]),
            vec![
                ("id".to_string(), "debian".to_string()),
                ("id_like".to_string(), String::new()),
                ("name".to_string(), "Debian GNU/Linux".to_string()),
            ]
        );
    }

    #[test]
    fn ubuntu_style_and_quoting() {
        // Ubuntu 22.04's file (as node_exporter's fixture), plus quoting edge cases.
        let text = "PRETTY_NAME=\"Ubuntu 22.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n\
                    VERSION=\"22.04.1 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\n\
                    ID_LIKE=debian\n# comment\n\nexport VARIANT='Server $x'\n\
                    BUILD_ID=\"a\\\"b\\\\c\"  # trailing\nIMAGE_ID=bare\\ value # note\n";
        let r = parse_os_release(text).expect("parses");
        assert_eq!(r.version_id, "22.04");
        assert_eq!(r.id_like, "debian");
        assert_eq!(r.variant, "Server $x");
        assert_eq!(r.build_id, "a\"b\\c");
        assert_eq!(r.image_id, "bare value");
        let fams = families(&r);
        assert_eq!(fams[1].samples[0].value, 22.04);
    }

    #[test]
    fn malformed() {
        assert!(parse_os_release("NAME\n").is_err());
        assert!(parse_os_release("NAME=\"x\n").is_err());
        assert!(parse_os_release("1X=y\n").is_err());
        assert!(parse_os_release("NAME=\"a\" b\n").is_err());
    }

    #[test]
    fn version_numbers() {
        assert_eq!(major_minor("12"), 12.0);
        assert_eq!(major_minor("22.04"), 22.04);
        assert_eq!(major_minor("8.6.2"), 8.6);
        assert_eq!(major_minor("7."), 7.0);
        assert_eq!(major_minor("rolling"), 0.0);
        assert_eq!(major_minor(""), 0.0);
        let r = OsRelease {
            version_id: "rolling".into(),
            ..Default::default()
        };
        assert_eq!(families(&r).len(), 1);
    }

    #[test]
    fn collect_fixture_falls_back_to_usr_lib() {
        // The fixture has only usr/lib/os-release (as a host whose /etc/os-release is missing).
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hw");
        let paths = Paths {
            rootfs: base.join("root"),
            ..Paths::default()
        };
        warm_up(&paths);
        let fams = Os.collect(&paths).expect("collects");
        assert_eq!(fams[0].samples[0].labels[1].1, "debian");
        // Served from the cache: still there when the file is gone from view.
        let missing = Paths {
            rootfs: base.join("nonexistent"),
            ..Paths::default()
        };
        assert!(Os.collect(&missing).is_err());
    }

    #[test]
    fn live() {
        let p = Paths::default();
        assert!(
            p.root("/etc/os-release").exists() || p.root("/usr/lib/os-release").exists(),
            "neither /etc/os-release nor /usr/lib/os-release on this host (Debian's base-files \
             ships them): the live check of the os collector needs one"
        );
        assert!(matches!(load(&p), Loaded::Release(_)));
    }
}
