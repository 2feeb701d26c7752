//! `monitoring-agent --check-sandbox`: the operator's check of a running instance. Reads its
//! PID file, judges every thread's `/proc/PID/task/*/status` (user, no_new_privs,
//! capabilities, seccomp), and asks the instance itself for the Landlock layers, which `/proc`
//! does not show (`monitoring_agent_sandbox_enforced`). Prints one line per layer; any layer
//! not enforced makes the exit status non-zero. A layer the seccomp filter enforces in place of
//! a Landlock feature the kernel lacks is shown as COMPENSATED and counts as enforced.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::config::{ListenAddr, Settings};
use crate::sandbox::verify::{self, Verdict};
use crate::sandbox::By;

/// The layers the agent reports about itself and `/proc` cannot show.
const SELF_REPORTED: [&str; 3] = ["landlock_fs", "landlock_net", "landlock_scope"];

/// Runs the check; returns the exit status (0 all enforced, 1 a layer missing, 2 the
/// instance could not be found).
pub fn run(settings: &Settings) -> i32 {
    let Some(pid_file) = &settings.startup.pid_file else {
        eprintln!("monitoring-agent: --check-sandbox needs the instance's PID file (--pid-file)");
        return crate::exit::CONFIG;
    };
    let pid = match read_pid(pid_file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("monitoring-agent: {e}");
            return crate::exit::CONFIG;
        }
    };
    let mut verdicts = match verify::threads(&settings.startup.paths.procfs, pid) {
        Ok(t) => verify::judge(&t),
        Err(e) => {
            eprintln!("monitoring-agent: process {pid}: {e}");
            return crate::exit::CONFIG;
        }
    };
    verdicts.extend(self_reported(settings));
    println!("monitoring-agent pid {pid} ({}):", pid_file.display());
    let fragments = fragments_in_force(settings);
    for v in &verdicts {
        println!(
            "  {:<19} {:<11} {}",
            v.layer,
            match (v.ok, v.compensated) {
                (true, false) => "ENFORCED",
                (true, true) => "COMPENSATED",
                (false, _) => "MISSING",
            },
            v.detail
        );
    }
    println!("  policy fragments    {fragments}");
    if verdicts.iter().all(|v| v.ok) {
        let compensated: Vec<&str> = verdicts
            .iter()
            .filter(|v| v.compensated)
            .map(|v| v.layer)
            .collect();
        if compensated.is_empty() {
            println!("all layers enforced");
        } else {
            println!(
                "all layers enforced; compensated by seccomp: {}",
                compensated.join(", ")
            );
        }
        crate::exit::OK
    } else {
        println!("some layers are NOT enforced");
        crate::exit::FAILURE
    }
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            format!(
                "{}: no running instance (no pid in the file)",
                path.display()
            )
        })
}

/// The policy fragments (policy/fragments/) in the instance's seccomp filter, from its own
/// report (`monitoring_agent_sandbox_fragment`): `dbus (systemd)`, `none`, or why unknown.
fn fragments_in_force(settings: &Settings) -> String {
    let body = settings
        .startup
        .listen
        .first()
        .ok_or_else(|| "no listen address configured".to_string())
        .and_then(|a| scrape(a, &settings.reloadable.web.telemetry_path.0));
    match body {
        Ok(text) => fragments_from_report(&text),
        Err(e) => format!("unknown: could not ask the agent ({e})"),
    }
}

/// Parses `monitoring_agent_sandbox_fragment{fragment="NAME"} 1` lines.
fn fragments_from_report(text: &str) -> String {
    let on: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("monitoring_agent_sandbox_fragment{fragment=\""))
        .filter_map(|l| l.strip_suffix("\"} 1"))
        .map(|name| {
            let users = crate::sandbox::fragments::FRAGMENTS
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.collectors.join(", "))
                .unwrap_or_default();
            format!("{name} (for {users})")
        })
        .collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join("; ")
    }
}

/// Scrapes the instance's own report of the Landlock layers.
fn self_reported(settings: &Settings) -> Vec<Verdict> {
    let body = settings
        .startup
        .listen
        .first()
        .ok_or_else(|| "no listen address configured".to_string())
        .and_then(|a| scrape(a, &settings.reloadable.web.telemetry_path.0));
    SELF_REPORTED
        .iter()
        .map(|layer| match &body {
            Ok(text) => self_report(text, layer),
            Err(e) => Verdict {
                layer,
                ok: false,
                compensated: false,
                detail: format!("unknown: could not ask the agent ({e})"),
            },
        })
        .collect()
}

/// The verdict on `layer` from the agent's own metrics: `monitoring_agent_sandbox_enforced`
/// says whether it holds, `monitoring_agent_sandbox_layer_info` who enforces it.
fn self_report(text: &str, layer: &'static str) -> Verdict {
    let key = format!("monitoring_agent_sandbox_enforced{{layer=\"{layer}\"}} ");
    let Some(value) = text.lines().find_map(|l| l.strip_prefix(key.as_str())) else {
        return Verdict {
            layer,
            ok: false,
            compensated: false,
            detail: "not reported by the agent".into(),
        };
    };
    let layer_label = format!("layer=\"{layer}\"");
    let by = text
        .lines()
        .filter_map(|l| l.strip_prefix("monitoring_agent_sandbox_layer_info{"))
        .filter_map(|l| l.strip_suffix("} 1"))
        .filter(|labels| labels.split(',').any(|kv| kv == layer_label))
        .find_map(|labels| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix("enforced_by=\""))
                .and_then(|v| v.strip_suffix('"'))
        })
        .and_then(By::from_label);
    let abi = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or_else(|| "?".to_string(), |v| v.to_string())
    };
    let ok = value.trim() == "1";
    Verdict {
        layer,
        ok,
        compensated: ok && by.is_some_and(By::compensated),
        detail: match by {
            Some(by) if by.compensated() => format!(
                "enforced by {} (the Landlock ruleset in force, ABI {}, lacks features of \
                 this layer; the kernel offers ABI {})",
                by.label(),
                abi("monitoring_agent_landlock_enforced_abi "),
                abi("monitoring_agent_landlock_abi "),
            ),
            Some(by) => format!("enforced by {}", by.label()),
            None => format!("reported by the agent: {}", value.trim()),
        },
    }
}

fn scrape(addr: &ListenAddr, path: &str) -> Result<String, String> {
    let target = match addr {
        ListenAddr::Any(port) => SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
        ListenAddr::Addr(a) => *a,
    };
    let timeout = Duration::from_secs(5);
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("{target}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )
    .map_err(|e| format!("{target}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{target}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{target}: malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{target}: {}",
            head.lines().next().unwrap_or("no status line")
        ));
    }
    Ok(body.to_string())
}
