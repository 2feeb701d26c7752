//! SIGHUP: re-reads the configuration file (command-line flags still override it) and replaces
//! the reloadable settings as a whole. The start-up settings are never replaced: a change to
//! one of them is named in the log as waiting for a restart. An invalid file keeps the running
//! configuration and counts the failure.
//!
//! `--reload` ([`client`]) is the other end: it sends the SIGHUP and waits for the outcome on
//! the channel the agent made at start-up (`daemon::reload_channel`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::agent::Agent;
use crate::cli::Cli;
use crate::config::{self, ConfigAccess, ConfigError, Settings};
use crate::daemon::logging;
use crate::daemon::reload_channel::ReloadView;
use crate::exit;
use crate::sandbox::fragments::Set;
use crate::server::ConnLimits;

/// What a reload did.
pub struct Outcome {
    pub ok: bool,
    /// The status line for systemd (`STATUS=`).
    pub status: String,
    /// The line `--reload` prints.
    pub message: String,
}

/// Reloads (reload number `generation`); returns the outcome.
pub fn reload(agent: &Arc<Agent>, cli: &Cli, limits: &Arc<ConnLimits>, generation: u64) -> Outcome {
    // The web config (certificates, users) reloads on its own: a broken one keeps the
    // running one, whatever happens to the TOML file.
    if let Some(edge) = agent.edge() {
        edge.reload("SIGHUP");
    }
    let new = match Settings::load(cli) {
        Ok(s) => s,
        Err(e) => {
            agent.reload_failed();
            let why = explain(agent, &e).unwrap_or_else(|| e.to_string());
            log::error!(
                "SIGHUP: configuration not reloaded, keeping the running one (reload {generation}): {why}"
            );
            return Outcome {
                ok: false,
                status: "reload failed, serving with the previous configuration".into(),
                message: format!(
                    "configuration not reloaded, the running one stays in force: {}",
                    logging::sanitize(&why)
                ),
            };
        }
    };
    let mut waiting = Vec::new();
    for name in agent.startup().changes(&new.startup) {
        log::warn!("SIGHUP: the change to {name} takes effect only after a restart");
        waiting.push(name);
    }
    let mut reloadable = new.reloadable;
    let waiting = hold_back(
        agent.startup().fragments,
        &mut reloadable.collectors.enabled,
        &reloadable.collectors.options,
    );
    for (collector, fragments) in &waiting {
        log::warn!(
            "SIGHUP: collector {collector} needs the sandbox policy fragment {} (policy/fragments/), \
             which is not in the seccomp filter installed at start-up: enabling it takes effect \
             only after a restart; not running it until then",
            fragments.describe()
        );
    }
    limits.slots.set_limit(reloadable.web.max_connections);
    logging::set_level(reloadable.log_level);
    let summary = format!(
        "listening on {}, metrics at {}",
        agent
            .startup()
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reloadable.web.telemetry_path.0
    );
    agent.replace(reloadable);
    log::info!("SIGHUP: configuration reloaded (reload {generation}); {summary}");
    let mut message = format!("configuration reloaded; {summary}");
    if !waiting.is_empty() {
        message.push_str(&format!(
            "; waiting for a restart: {}",
            waiting
                .iter()
                .map(|(collector, _)| collector.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Outcome {
        ok: true,
        status: format!("serving metrics; {summary}"),
        message,
    }
}

/// How long `--reload` waits for the outcome.
const CLIENT_WAIT: Duration = Duration::from_secs(30);

/// `monitoring-agent --reload`: signals the instance in the PID file, waits for the outcome of
/// a reload that began after this call, prints it and returns the exit status (0 reloaded,
/// 1 not reloaded or no answer, 2 no running instance to ask).
pub fn client(cli: &Cli) -> i32 {
    match ask(cli) {
        Ok(o) if o.ok => {
            println!("monitoring-agent: reload {}: {}", o.generation, o.message);
            exit::OK
        }
        Ok(o) => {
            eprintln!(
                "monitoring-agent: reload {} failed: {}",
                o.generation, o.message
            );
            exit::FAILURE
        }
        Err((code, why)) => {
            eprintln!("monitoring-agent: --reload: {why}");
            code
        }
    }
}

fn ask(cli: &Cli) -> Result<Answer, (i32, String)> {
    // The PID file: the command line's, else the configuration's (when it loads: a broken
    // one is for the running agent to report), else the default.
    let (pid_file, procfs) = match &cli.pid_file {
        Some(p) => (p.clone(), PathBuf::from("/proc")),
        None => match Settings::load(cli) {
            Ok(s) => (
                s.startup
                    .pid_file
                    .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PID_FILE)),
                s.startup.paths.procfs,
            ),
            Err(_) => (
                PathBuf::from(config::DEFAULT_PID_FILE),
                PathBuf::from("/proc"),
            ),
        },
    };
    let pid = running_pid(&pid_file).map_err(|e| (exit::CONFIG, e))?;
    let view = ReloadView::open(&procfs, pid).map_err(|e| (exit::FAILURE, e.to_string()))?;
    let before = view.started();
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP)
        .map_err(|e| (exit::FAILURE, format!("sending SIGHUP to pid {pid}: {e}")))?;
    let deadline = Instant::now() + CLIENT_WAIT;
    loop {
        if let Some(o) = view.last().filter(|o| o.generation > before) {
            return Ok(Answer {
                generation: o.generation,
                ok: o.ok,
                message: logging::sanitize(&o.message).into_owned(),
            });
        }
        if kill(Pid::from_raw(pid as i32), None).is_err() {
            return Err((
                exit::FAILURE,
                format!("the agent (pid {pid}) exited before reporting the reload; see its log"),
            ));
        }
        if Instant::now() >= deadline {
            return Err((
                exit::FAILURE,
                format!(
                    "no outcome from pid {pid} within {}s (the reload may still be running); see its log",
                    CLIENT_WAIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A finished reload, as the client reports it.
struct Answer {
    generation: u64,
    ok: bool,
    message: String,
}

/// The pid in `pid_file`, when an instance holds the file's lock.
fn running_pid(pid_file: &Path) -> Result<u32, String> {
    let shown = pid_file.display();
    let file = File::open(pid_file).map_err(|e| {
        format!("no running instance: PID file {shown}: {e} (give the instance's --pid-file)")
    })?;
    // The running agent holds an exclusive flock on it; a shared lock we can take means nobody
    // does (a stale file left by a crash).
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_unlocked_on_drop) => {
            return Err(format!(
                "no running instance: PID file {shown} is stale (no process holds its lock)"
            ))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
        Err((_, e)) => return Err(format!("PID file {shown}: checking its lock: {e}")),
    }
    let text = std::fs::read_to_string(pid_file).map_err(|e| format!("PID file {shown}: {e}"))?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| format!("PID file {shown}: no pid in it ({:?})", text.trim()))
}

/// Removes from `enabled` the collectors that need a policy fragment not in `in_force` (their
/// system calls would kill the process); returns them with the fragments they lack.
/// A collector's mode that needs a fragment (`--collector.netdev.netlink`) counts as the
/// collector's need (`crate::collectors::policy_users`).
pub fn hold_back(
    in_force: Set,
    enabled: &mut Vec<&'static str>,
    options: &crate::collectors::Options,
) -> Vec<(&'static str, Set)> {
    let mut held = Vec::new();
    enabled.retain(|c| {
        let needed = Set::for_collectors(&crate::collectors::policy_users(&[*c], options));
        if in_force.contains(needed) {
            true
        } else {
            held.push((*c, Set(needed.0 & !in_force.0)));
            false
        }
    });
    held
}

/// A clearer reason for a configuration file the sandbox or the file's permissions keep the
/// agent from reading than a bare "Permission denied".
fn explain(agent: &Agent, e: &ConfigError) -> Option<String> {
    let ConfigError::Read { path, source } = e else {
        return None;
    };
    if source.kind() != std::io::ErrorKind::PermissionDenied {
        return None;
    }
    let started_with = agent.startup().config_file.as_deref()?;
    Some(match ConfigAccess::of(started_with) {
        ConfigAccess::FileOnly { shared } => format!(
            "config file {}: permission denied by the sandbox: the file was replaced since \
             start-up (editors and configuration management write a new file and rename it \
             over the old one), and the sandbox grants only the original file because it lives \
             in the shared directory {}; restart the agent, or keep the configuration in a \
             directory of its own (e.g. /etc/monitoring-agent/)",
            path.display(),
            shared.display()
        ),
        ConfigAccess::Directory(_) => format!(
            "config file {}: permission denied: the agent's user ({}) cannot read it; make it \
             readable by that user (e.g. owner root, group {}, mode 0640)",
            path.display(),
            agent.startup().user,
            agent.startup().user
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_whose_fragment_is_not_in_force_is_held_back() {
        let mut enabled = vec!["cpu", "systemd", "time"];
        let none = crate::collectors::Options::default();
        let held = hold_back(Set::default(), &mut enabled, &none);
        assert_eq!(enabled, vec!["cpu", "time"]);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].0, "systemd");
        assert_eq!(held[0].1.names(), vec!["dbus"]);

        let mut enabled = vec!["cpu", "systemd"];
        let in_force = Set::for_collectors(&["systemd"]);
        assert!(hold_back(in_force, &mut enabled, &none).is_empty());
        assert_eq!(enabled, vec!["cpu", "systemd"]);

        // A netlink mode switched on by SIGHUP waits like a collector would: netdev itself
        // runs without a fragment, in its netlink mode it needs `netlink-route`.
        let mut netlink = crate::collectors::Options::default();
        netlink.netdev.netlink = Some(true);
        let mut enabled = vec!["cpu", "netdev"];
        assert!(hold_back(Set::default(), &mut enabled, &none).is_empty());
        let held = hold_back(Set::default(), &mut enabled, &netlink);
        assert_eq!(enabled, vec!["cpu"]);
        assert_eq!(held[0].0, "netdev");
        assert_eq!(held[0].1.names(), vec!["netlink-route"]);

        // So does `--collector.netdev.address-info` (`address_info = true` in the file).
        let mut addresses = crate::collectors::Options::default();
        addresses.netdev.address_info = Some(true);
        let mut enabled = vec!["cpu", "netdev"];
        let held = hold_back(Set::default(), &mut enabled, &addresses);
        assert_eq!(enabled, vec!["cpu"]);
        assert_eq!(held[0].0, "netdev");
        assert_eq!(held[0].1.names(), vec!["netlink-route"]);
        let mut enabled = vec!["cpu", "netdev"];
        let in_force = Set::for_collectors(&["network_route"]);
        assert!(hold_back(in_force, &mut enabled, &addresses).is_empty());
    }
}
