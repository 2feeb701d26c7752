//! monitoring-agent: a Prometheus host-metrics agent for Linux that runs as a hardened,
//! privilege-separated daemon.
//!
//! One path for data, one module per step, all on the main thread before any other thread
//! exists (see `run`):
//!
//! 1. [`cli`] and [`config`]: parse, load, validate; resolve the user ([`privilege::resolve`]).
//! 2. [`daemon`]: detach (daemon mode only).
//! 3. [`daemon::logging`]: connect syslog, open the log file.
//! 4. [`daemon::pidfile`]: create and lock the PID file.
//! 5. [`server::bind`]: bind the listening sockets.
//! 6. [`privilege`]: drop to the agent's user, keeping only `CAP_NET_BIND_SERVICE`.
//! 7. [`sandbox::landlock`]: filesystem, network and scope rules.
//! 8. [`sandbox::seccomp`]: the syscall filter compiled from `policy/`.
//! 9. [`runtime`]: the tokio runtime, the [`server`], [`collectors`] and [`exposition`].

pub mod agent;
pub mod check;
pub mod cli;
pub mod collector;
pub mod collectors;
pub mod config;
pub mod daemon;
pub mod exposition;
pub mod migrate;
pub mod privilege;
pub mod reload;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod startup;
pub mod values;
pub mod web;

pub use startup::{handled_signals, run};

use config::ConfigError;
use daemon::logging::LogError;
use daemon::pidfile::PidFileError;
use daemon::DaemonError;

/// Exit statuses, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// Start-up or runtime failure (a socket, a file, the runtime).
    pub const FAILURE: i32 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: i32 = 2;
    /// Another instance holds the PID file.
    pub const ALREADY_RUNNING: i32 = 3;
    /// The privilege drop or a sandbox layer could not be enforced.
    pub const SANDBOX: i32 = 4;
}

/// Everything that can stop the agent from starting, each with the step it failed in.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
    #[error(transparent)]
    Privilege(#[from] privilege::PrivilegeError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Notify(#[from] daemon::notify::NotifyError),
    #[error(transparent)]
    WebConfig(#[from] web::WebConfigError),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) | StartError::Invalid(_) | StartError::WebConfig(_) => {
                exit::CONFIG
            }
            StartError::PidFile(PidFileError::AlreadyRunning { .. }) => exit::ALREADY_RUNNING,
            StartError::Privilege(_) | StartError::Sandbox(_) => exit::SANDBOX,
            _ => exit::FAILURE,
        }
    }
}
