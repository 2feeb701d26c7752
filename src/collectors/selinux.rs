//! `selinux` collector: SELinux state, as node_exporter 1.5's `selinux_linux.go`.
//!
//! - `node_selinux_enabled`: 1 when selinuxfs is present (`<sysfs>/fs/selinux/enforce` can be
//!   read) and this process' context (`<procfs>/self/attr/current`) is not `kernel`, else 0;
//! - only when enabled: `node_selinux_current_mode` (the `enforce` file: 1 enforcing,
//!   0 permissive, -1 when unreadable) and `node_selinux_config_mode` (`SELINUX=` of
//!   `/etc/selinux/config`: 1 enforcing, 0 permissive, -1 disabled or unset/missing).
//!
//! node_exporter gets these through go-selinux (libselinux's logic in Go); here the same files
//! are read directly: no library, no `statfs` of the mount (go-selinux also checks the
//! filesystem magic, which a fixture tree could not pass). A host without SELinux yields
//! `node_selinux_enabled 0` and success, as node_exporter.
//!
//! **`/etc/selinux/config` is read once, before the sandbox** ([`warm_up`], called from
//! `os::warm_up`), below `--path.rootfs` (go-selinux reads the host's `/etc` regardless of
//! rootfs; with a rootfs, reading the host's file below it is the right one for a container).
//! A change to the configured mode shows after a restart; it only takes effect on reboot
//! anyway. The AVC statistics (`node_selinux_avc_*`) of later node_exporter versions are not
//! emitted (not in 1.5).

use std::path::PathBuf;
use std::sync::Mutex;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// `SELINUX=` of the config file, per rootfs, read at start-up.
static CONFIG_MODE: Mutex<Option<(PathBuf, i64)>> = Mutex::new(None);

/// Reads `/etc/selinux/config` below the rootfs while the process may still read `/etc`.
pub fn warm_up(paths: &Paths) {
    let mode = read_config_mode(paths);
    let mut c = CONFIG_MODE.lock().unwrap_or_else(|e| e.into_inner());
    *c = Some((paths.rootfs.clone(), mode));
}

fn read_config_mode(paths: &Paths) -> i64 {
    match super::fsio::read(paths.root("/etc/selinux/config")) {
        Ok(b) => parse_config_mode(&String::from_utf8_lossy(&b)),
        Err(_) => -1,
    }
}

fn config_mode(paths: &Paths) -> i64 {
    let mut c = CONFIG_MODE.lock().unwrap_or_else(|e| e.into_inner());
    match &*c {
        Some((root, mode)) if *root == paths.rootfs => *mode,
        _ => {
            let mode = read_config_mode(paths);
            *c = Some((paths.rootfs.clone(), mode));
            mode
        }
    }
}

/// libselinux's reading of the config: the last `SELINUX=` line wins; `enforcing` is 1,
/// `permissive` 0, anything else (`disabled`, unset) -1.
pub fn parse_config_mode(text: &str) -> i64 {
    let mut mode = -1;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("SELINUX=") {
            let v = v.trim().trim_matches('"');
            mode = match v {
                "enforcing" => 1,
                "permissive" => 0,
                _ => -1,
            };
        }
    }
    mode
}

/// The `enforce` file: `1` or `0`; anything unreadable or unparsable is -1 (go-selinux's
/// `Disabled`).
pub fn parse_enforce(text: &str) -> i64 {
    text.trim().parse::<i64>().unwrap_or(-1)
}

/// Whether a process context means "SELinux is on": go-selinux treats the `kernel` context
/// (and an unreadable one) as disabled.
pub fn context_enabled(context: &str) -> bool {
    let c = context.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    !c.is_empty() && c != "kernel"
}

pub fn families(state: Option<(i64, i64)>) -> Vec<MetricFamily> {
    let enabled = MetricFamily::gauge(
        "node_selinux_enabled",
        "SELinux is enabled, 1 is true, 0 is false",
    );
    match state {
        None => vec![enabled.with(&[], 0.0)],
        Some((config, current)) => vec![
            enabled.with(&[], 1.0),
            MetricFamily::gauge(
                "node_selinux_config_mode",
                "Configured SELinux enforcement mode",
            )
            .with(&[], config as f64),
            MetricFamily::gauge(
                "node_selinux_current_mode",
                "Current SELinux enforcement mode",
            )
            .with(&[], current as f64),
        ],
    }
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Selinux)
}

struct Selinux;

impl Collector for Selinux {
    fn name(&self) -> &'static str {
        "selinux"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let enforce = match super::fsio::read_to_string(paths.sys("fs/selinux/enforce")) {
            Ok(t) => t,
            Err(_) => return Ok(families(None)),
        };
        let context = super::fsio::read(paths.proc("self/attr/current")).unwrap_or_default();
        if !context_enabled(&String::from_utf8_lossy(&context)) {
            return Ok(families(None));
        }
        Ok(families(Some((
            config_mode(paths),
            parse_enforce(&enforce),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::hw;

    #[test]
    fn config_parsing() {
        let cfg = include_str!("../../tests/fixtures/hw/root/etc/selinux/config");
        assert_eq!(parse_config_mode(cfg), 0);
        assert_eq!(parse_config_mode("SELINUX=enforcing\n"), 1);
        assert_eq!(parse_config_mode("SELINUX=disabled\n"), -1);
        assert_eq!(parse_config_mode("# SELINUX=enforcing\n"), -1);
        assert_eq!(parse_config_mode(""), -1);
        assert_eq!(parse_enforce("1"), 1);
        assert_eq!(parse_enforce("0\n"), 0);
        assert_eq!(parse_enforce("x"), -1);
        assert!(context_enabled("system_u:system_r:init_t:s0\0"));
        assert!(!context_enabled("kernel\0"));
        assert!(!context_enabled(""));
    }

    #[test]
    fn collect_fixture_enabled() {
        let fams = Selinux.collect(&hw::paths()).expect("collects");
        let got: Vec<(&str, f64)> = fams
            .iter()
            .map(|f| (&*f.name, f.samples[0].value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("node_selinux_enabled", 1.0),
                ("node_selinux_config_mode", 0.0),
                ("node_selinux_current_mode", 1.0),
            ]
        );
    }

    #[test]
    fn absent_is_disabled_and_success() {
        let mut p = hw::paths();
        p.sysfs = p.sysfs.join("nonexistent");
        let fams = Selinux.collect(&p).expect("collects");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].samples[0].value, 0.0);
    }

    #[test]
    fn live() {
        // True on every host: success; `node_selinux_enabled` first, either 0 alone or 1 with
        // the two modes; and 1 only where there is a selinuxfs (this VM has none: 0). The
        // fixture tests cover an enabled system.
        let p = Paths::default();
        let fams = Selinux.collect(&p).expect("collects");
        assert_eq!(fams[0].name, "node_selinux_enabled", "{fams:?}");
        let enabled = fams[0].samples[0].value;
        assert_eq!(fams.len(), if enabled == 1.0 { 3 } else { 1 }, "{fams:?}");
        assert!(enabled == 0.0 || enabled == 1.0, "{fams:?}");
        assert!(
            enabled == 0.0 || p.sys("fs/selinux/enforce").exists(),
            "enabled without a selinuxfs: {fams:?}"
        );
    }
}
