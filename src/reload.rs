//! SIGHUP: re-reads the configuration file (command-line flags still override it) and replaces
//! the reloadable settings as a whole. The start-up settings are never replaced: a change to
//! one of them is named in the log as waiting for a restart. An invalid file keeps the running
//! configuration and counts the failure.

use std::sync::Arc;

use crate::agent::Agent;
use crate::cli::Cli;
use crate::config::{ConfigAccess, ConfigError, Settings};
use crate::daemon::logging;
use crate::sandbox::fragments::Set;
use crate::server::ConnLimits;

/// Reloads; returns the status line for systemd.
pub fn reload(agent: &Arc<Agent>, cli: &Cli, limits: &Arc<ConnLimits>) -> String {
    let new = match Settings::load(cli) {
        Ok(s) => s,
        Err(e) => {
            agent.reload_failed();
            let why = explain(agent, &e).unwrap_or_else(|| e.to_string());
            log::error!("SIGHUP: configuration not reloaded, keeping the running one: {why}");
            return "reload failed, serving with the previous configuration".into();
        }
    };
    for name in agent.startup().changes(&new.startup) {
        log::warn!("SIGHUP: the change to {name} takes effect only after a restart");
    }
    let mut reloadable = new.reloadable;
    let waiting = hold_back(
        agent.startup().fragments,
        &mut reloadable.collectors.enabled,
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
    log::info!("SIGHUP: configuration reloaded; {summary}");
    format!("serving metrics; {summary}")
}

/// Removes from `enabled` the collectors that need a policy fragment not in `in_force` (their
/// system calls would kill the process); returns them with the fragments they lack.
pub fn hold_back(in_force: Set, enabled: &mut Vec<&'static str>) -> Vec<(&'static str, Set)> {
    let mut held = Vec::new();
    enabled.retain(|c| {
        let needed = Set::for_collectors(&[*c]);
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
        let held = hold_back(Set::default(), &mut enabled);
        assert_eq!(enabled, vec!["cpu", "time"]);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].0, "systemd");
        assert_eq!(held[0].1.names(), vec!["dbus"]);

        let mut enabled = vec!["cpu", "systemd"];
        let in_force = Set::for_collectors(&["systemd"]);
        assert!(hold_back(in_force, &mut enabled).is_empty());
        assert_eq!(enabled, vec!["cpu", "systemd"]);
    }
}
