//! SIGHUP: re-reads the configuration file (command-line flags still override it) and replaces
//! the reloadable settings as a whole. The start-up settings are never replaced: a change to
//! one of them is named in the log as waiting for a restart. An invalid file keeps the running
//! configuration and counts the failure.

use std::sync::Arc;

use crate::agent::Agent;
use crate::cli::Cli;
use crate::config::{ConfigAccess, ConfigError, Settings};
use crate::daemon::logging;
use crate::server::ConnLimits;

/// Reloads; returns the status line for systemd.
pub fn reload(agent: &Arc<Agent>, cli: &Cli, limits: &Arc<ConnLimits>) -> String {
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
            log::error!("SIGHUP: configuration not reloaded, keeping the running one: {why}");
            return "reload failed, serving with the previous configuration".into();
        }
    };
    for name in agent.startup().changes(&new.startup) {
        log::warn!("SIGHUP: the change to {name} takes effect only after a restart");
    }
    let reloadable = new.reloadable;
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
