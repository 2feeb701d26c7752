//! `monitoring-agent migrate-from-node-exporter` against the installed prometheus-node-exporter
//! package (Debian 12's 1.5.0; scripts/test.sh installs it):
//!
//! * its own `/etc/default/prometheus-node-exporter` becomes an `ARGS` the agent accepts
//!   (`--check-config`), pointing the textfile collector at Debian's directory;
//! * every flag its `--help` lists, given at once, is either kept (every one the agent has)
//!   or named in the output with a reason; none is silently lost;
//! * the written file is read back by the same rules systemd uses (see `src/migrate.rs`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const DEFAULTS: &str = "/etc/default/prometheus-node-exporter";

fn require_node_exporter() {
    assert!(
        Path::new(NODE_EXPORTER).is_file() && Path::new(DEFAULTS).is_file(),
        "{NODE_EXPORTER} and {DEFAULTS} are missing: install the Debian package \
         prometheus-node-exporter (scripts/test.sh does)"
    );
}

/// Runs the subcommand; returns (status, stdout, stderr).
fn migrate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::BIN)
        .arg("migrate-from-node-exporter")
        .args(args)
        .output()
        .expect("run monitoring-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The words of the output's `ARGS=`, as systemd would pass them.
fn args_of(text: &str) -> Vec<String> {
    let value = monitoring_agent::migrate::args_value(text).expect("an ARGS= line");
    monitoring_agent::migrate::split_words(&value).expect("ARGS splits")
}

#[test]
fn the_installed_default_file_migrates_to_args_the_agent_accepts() {
    require_node_exporter();
    common::require_root_and_user();
    let (code, out, err) = migrate(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("from {DEFAULTS}")), "{out}");
    let args = args_of(&out);
    assert!(
        args.contains(&"--collector.textfile.directory=/var/lib/prometheus/node-exporter".into()),
        "Debian's textfile directory is not in ARGS: {args:?}\n{out}"
    );
    // The agent starts with exactly these flags (an empty configuration file besides).
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "").expect("config");
    let check = Command::new(common::BIN)
        .arg("--check-config")
        .arg("-c")
        .arg(&cfg)
        .args(&args)
        .output()
        .expect("run --check-config");
    assert!(
        check.status.success(),
        "--check-config refuses the migrated ARGS {args:?}: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // --output writes the same text, atomically, mode 0644.
    let target = dir.path().join("monitoring-agent");
    let (code, _, err) = migrate(&["--output", target.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(&target).expect("written");
    assert_eq!(written, out);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

/// node_exporter's flags from its `--help`: `(name, value)`, the value being its default
/// (Go-quoted in the help) or, for a placeholder, a harmless regex.
fn node_exporter_flags() -> Vec<(String, Option<String>)> {
    let out = Command::new(NODE_EXPORTER)
        .arg("--help")
        .output()
        .expect("run prometheus-node-exporter --help");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flags = Vec::new();
    for line in text.lines() {
        // Flags start in column 2 (`-h, --help`) or 6; wrapped descriptions are indented more.
        if line.len() - line.trim_start().len() > 6 {
            continue;
        }
        let t = line.trim_start();
        let t = t.strip_prefix("-h, ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        // The flag runs to the first double space (Go-quoted defaults have no spaces here).
        // A repeatable flag ends in " ..." (`--web.listen-address=:9100 ...`).
        let spec = rest.split("  ").next().unwrap_or(rest).trim_end();
        let spec = spec.strip_suffix(" ...").unwrap_or(spec);
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => {
                let v = if let Some(q) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    q.replace("\\\\", "\\").replace("\\\"", "\"")
                } else if v
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || "._-".contains(c))
                {
                    // A placeholder such as COLLECTOR.ARP.DEVICE-INCLUDE.
                    "^$".to_string()
                } else {
                    // An unquoted default: 40, info, :9100.
                    v.to_string()
                };
                (n.to_string(), Some(v))
            }
            None => (spec.to_string(), None),
        };
        if ["help", "help-long", "help-man", "version"].contains(&name.as_str()) {
            continue;
        }
        flags.push((name, value));
    }
    assert!(
        flags.len() > 100,
        "read only {} flags from {NODE_EXPORTER} --help:\n{text}",
        flags.len()
    );
    flags
}

#[test]
fn every_node_exporter_flag_is_kept_or_named() {
    require_node_exporter();
    let flags = node_exporter_flags();
    let words: Vec<String> = flags
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("--{n}={v}"),
            None => format!("--{n}"),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let from = dir.path().join("prometheus-node-exporter");
    // Written as an operator would: one ARGS line, quoted for systemd.
    let line = monitoring_agent::migrate::quote_args(&words);
    std::fs::write(&from, format!("# every flag\n{line}\n")).expect("write");
    let (code, out, err) = migrate(&["--from", from.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");

    let comments: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    let ours: BTreeSet<String> = monitoring_agent::cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let args = args_of(&out);
    let mut lost = Vec::new();
    let mut not_kept = Vec::new();
    for (name, _) in &flags {
        let needle = format!("--{name}");
        let named = comments.iter().any(|c| {
            c.split_whitespace().any(|w| {
                w == needle || w.starts_with(&format!("{needle}=")) || w == format!("{needle}:")
            })
        });
        if !named {
            lost.push(name.clone());
        }
        // Every flag the agent has is kept (the unit binds its own port: not
        // --web.systemd-socket).
        if ours.contains(name)
            && name != "web.systemd-socket"
            && !args
                .iter()
                .any(|a| a == &needle || a.starts_with(&format!("{needle}=")))
        {
            not_kept.push(name.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "node_exporter flags neither kept nor named in the output: {lost:?}\n{out}"
    );
    assert!(
        not_kept.is_empty(),
        "node_exporter flags the agent has but the migration dropped: {not_kept:?}\n{out}"
    );
}
