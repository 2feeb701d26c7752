//! `monitoring-agent --check-sandbox`: the operator's check of a running instance. Reads its
//! PID file, judges every thread's `/proc/PID/task/*/status` (user, no_new_privs,
//! capabilities, seccomp), and asks the instance itself for the Landlock layers, which `/proc`
//! does not show (`monitoring_agent_sandbox_enforced`). Prints one line per layer; any layer
//! not enforced makes the exit status non-zero.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::config::{ListenAddr, Settings};
use crate::sandbox::verify::{self, Verdict};

/// The layers the agent reports about itself and `/proc` cannot show.
const SELF_REPORTED: [&str; 3] = ["landlock_fs", "landlock_net", "landlock_scope"];

/// Runs the check; returns the exit status (0 all enforced, 1 a layer missing, 2 the
/// instance could not be found).
pub fn run(settings: &Settings) -> i32 {
    let Some(pid_file) = &settings.pid_file else {
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
    let mut verdicts = match verify::threads(&settings.paths.procfs, pid) {
        Ok(t) => verify::judge(&t),
        Err(e) => {
            eprintln!("monitoring-agent: process {pid}: {e}");
            return crate::exit::CONFIG;
        }
    };
    verdicts.extend(self_reported(settings));
    println!("monitoring-agent pid {pid} ({}):", pid_file.display());
    for v in &verdicts {
        println!(
            "  {:<19} {:<8} {}",
            v.layer,
            if v.ok { "ENFORCED" } else { "MISSING" },
            v.detail
        );
    }
    if verdicts.iter().all(|v| v.ok) {
        println!("all layers enforced");
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

/// Scrapes the instance's own report of the Landlock layers.
fn self_reported(settings: &Settings) -> Vec<Verdict> {
    let body = settings
        .web
        .listen
        .first()
        .ok_or_else(|| "no listen address configured".to_string())
        .and_then(|a| scrape(a, &settings.web.telemetry_path.0));
    SELF_REPORTED
        .iter()
        .map(|layer| match &body {
            Ok(text) => {
                let key = format!("monitoring_agent_sandbox_enforced{{layer=\"{layer}\"}} ");
                match text.lines().find_map(|l| l.strip_prefix(key.as_str())) {
                    Some(v) => Verdict {
                        layer,
                        ok: v.trim() == "1",
                        detail: format!("reported by the agent: {}", v.trim()),
                    },
                    None => Verdict {
                        layer,
                        ok: false,
                        detail: "not reported by the agent".into(),
                    },
                }
            }
            Err(e) => Verdict {
                layer,
                ok: false,
                detail: format!("unknown: could not ask the agent ({e})"),
            },
        })
        .collect()
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
