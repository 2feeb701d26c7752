//! Sandbox: Landlock then seccomp on the single main thread, after the privilege drop and before
//! the tokio runtime exists (DESIGN.md §1 steps 7-8), and the report of what really holds.

pub mod landlock;
pub mod seccomp;
pub mod verify;

use std::path::PathBuf;
use std::str::FromStr;

use crate::exposition::MetricFamily;
use crate::privilege::PrivilegeReport;

/// How strictly the sandbox is applied (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every layer must be fully enforced, or the agent refuses to start (the default).
    #[default]
    Enforce,
    /// Apply what the kernel supports; log every missing layer at warning level.
    BestEffort,
    /// Apply neither Landlock nor seccomp (debugging only); logged at warning level.
    Off,
}

impl FromStr for Mode {
    type Err = SandboxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "best-effort" => Ok(Mode::BestEffort),
            "off" => Ok(Mode::Off),
            other => Err(SandboxError::InvalidMode(other.to_string())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::BestEffort => "best-effort",
            Mode::Off => "off",
        })
    }
}

/// What the sandboxed process still needs.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Files and directories that stay readable: the procfs and sysfs roots, the config file,
    /// operator-configured files. Nothing else is readable, nothing is writable or executable.
    ///
    /// A rule follows the inode, not the name: a config file replaced by rename (most editors,
    /// configuration management) is unreadable after SIGHUP unless its directory is listed.
    pub read_only: Vec<PathBuf>,
    /// Directories in which files may be removed: the PID file's directory, only when the
    /// agent's user owns it (see [`crate::privilege::prepare_owned_dir`]).
    pub remove_file_dirs: Vec<PathBuf>,
    /// TCP ports the agent may bind again (SIGHUP moving the listener to another address).
    pub bind_ports: Vec<u16>,
}

/// The layers, in the order they are reported.
pub const LAYERS: [&str; 7] = [
    "privileges_dropped",
    "no_new_privs",
    "capabilities",
    "landlock_fs",
    "landlock_net",
    "landlock_scope",
    "seccomp",
];

/// What is really enforced on this process (each `true` means fully enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enforcement {
    pub privileges_dropped: bool,
    pub no_new_privs: bool,
    pub capabilities: bool,
    pub landlock_fs: bool,
    pub landlock_net: bool,
    pub landlock_scope: bool,
    pub seccomp: bool,
    /// The running kernel's Landlock ABI (0: no Landlock). The agent requests
    /// [`landlock::PINNED_ABI`] whatever this is.
    pub landlock_abi: i32,
}

impl Enforcement {
    /// Each layer with its verdict, in [`LAYERS`] order.
    pub fn layers(&self) -> [(&'static str, bool); 7] {
        [
            (LAYERS[0], self.privileges_dropped),
            (LAYERS[1], self.no_new_privs),
            (LAYERS[2], self.capabilities),
            (LAYERS[3], self.landlock_fs),
            (LAYERS[4], self.landlock_net),
            (LAYERS[5], self.landlock_scope),
            (LAYERS[6], self.seccomp),
        ]
    }

    /// True when every layer is enforced.
    pub fn complete(&self) -> bool {
        self.layers().iter().all(|(_, on)| *on)
    }

    /// `monitoring_agent_sandbox_enforced{layer}` and `monitoring_agent_landlock_abi`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let mut enforced = MetricFamily::gauge(
            "monitoring_agent_sandbox_enforced",
            "Whether a sandbox layer is fully enforced on this process (1) or not (0).",
        );
        for (layer, on) in self.layers() {
            enforced.push(&[("layer", layer)], if on { 1.0 } else { 0.0 });
        }
        let abi = MetricFamily::gauge(
            "monitoring_agent_landlock_abi",
            "Landlock ABI version of the running kernel (0: unavailable).",
        )
        .with(&[], f64::from(self.landlock_abi));
        vec![enforced, abi]
    }
}

/// Sandbox failures. Each names the layer it is about (see [`SandboxError::layer`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox mode {0:?}: expected enforce, best-effort or off")]
    InvalidMode(String),
    #[error(
        "sandbox layer {layer} cannot be fully enforced: {reason}; refusing to start \
         (--sandbox=best-effort runs degraded)"
    )]
    NotEnforced { layer: &'static str, reason: String },
    #[error(
        "the sandbox must be applied while the process has a single thread, found {0}: \
         Landlock and seccomp would not cover the others"
    )]
    Threads(usize),
    #[error("sandbox layer {source}; refusing to start (--sandbox=best-effort runs degraded)")]
    Landlock {
        #[from]
        source: landlock::LandlockError,
    },
    #[error("sandbox layer seccomp: {0}; refusing to start (--sandbox=best-effort runs degraded)")]
    Seccomp(#[from] seccomp::SeccompError),
}

impl SandboxError {
    /// The layer the error is about, if any.
    pub fn layer(&self) -> Option<&'static str> {
        match self {
            SandboxError::InvalidMode(_) => None,
            SandboxError::NotEnforced { layer, .. } => Some(layer),
            SandboxError::Threads(_) => Some("seccomp"),
            SandboxError::Landlock { source } => Some(source.layer()),
            SandboxError::Seccomp(_) => Some("seccomp"),
        }
    }
}

/// Number of threads of this process (from `/proc/self/task`).
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|d| d.filter_map(Result::ok).count())
}

/// Whether `PR_SET_NO_NEW_PRIVS` is set on the calling thread.
pub fn no_new_privs() -> bool {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments and only returns 0 or 1.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    r == 1
}

/// Handles a layer that is not enforced: an error in [`Mode::Enforce`], a warning otherwise.
fn missing(mode: Mode, layer: &'static str, reason: String) -> Result<(), SandboxError> {
    if mode == Mode::Enforce {
        return Err(SandboxError::NotEnforced { layer, reason });
    }
    log::warn!("SANDBOX DEGRADED (--sandbox={mode}): layer {layer} is NOT enforced: {reason}");
    Ok(())
}

/// Steps 7-8: Landlock, then seccomp from the embedded policy, on the calling thread, which must
/// be the only one. Call it after [`crate::privilege::drop_privileges`] and before building the
/// tokio runtime.
///
/// [`Mode::Enforce`]: any layer (including the privilege layers reported in `privileges`) not
/// fully enforced is an error naming the layer, before anything irreversible happens where that
/// can be known in advance. [`Mode::BestEffort`]: each missing layer is logged at warning level
/// and the agent goes on. [`Mode::Off`]: nothing is applied (warning).
pub fn apply(
    spec: &Spec,
    mode: Mode,
    privileges: &PrivilegeReport,
) -> Result<Enforcement, SandboxError> {
    let kernel_abi = landlock::kernel_abi();
    let mut enforcement = Enforcement {
        privileges_dropped: privileges.privileges_dropped,
        no_new_privs: privileges.no_new_privs,
        capabilities: privileges.capabilities,
        landlock_abi: kernel_abi.unwrap_or(0),
        ..Enforcement::default()
    };

    if mode == Mode::Off {
        log::warn!(
            "SANDBOX DISABLED (--sandbox=off): no Landlock, no seccomp filter; \
             use this for debugging only"
        );
        return Ok(enforcement);
    }

    // Everything below is per thread: a second thread would escape it.
    match thread_count() {
        Some(1) => {}
        Some(n) => {
            if mode == Mode::Enforce {
                return Err(SandboxError::Threads(n));
            }
            log::warn!("SANDBOX DEGRADED: {n} threads exist; only the calling one is sandboxed");
        }
        None => missing(
            mode,
            "seccomp",
            "cannot count the process's threads in /proc/self/task".into(),
        )?,
    }

    // The privilege layers were applied by privilege::drop_privileges.
    if !privileges.privileges_dropped {
        missing(
            mode,
            "privileges_dropped",
            "the process still runs as root (uid 0)".into(),
        )?;
    }
    if !privileges.capabilities {
        missing(
            mode,
            "capabilities",
            "capability sets hold more than CAP_NET_BIND_SERVICE".into(),
        )?;
    }

    // Landlock: in enforce mode, tell the operator exactly which layer the kernel lacks before
    // anything is applied.
    if mode == Mode::Enforce {
        match kernel_abi {
            Err(why) => missing(mode, "landlock_fs", why.to_string())?,
            Ok(abi) => {
                for (layer, min) in [
                    ("landlock_fs", landlock::FS_MIN_ABI),
                    ("landlock_net", landlock::NET_MIN_ABI),
                    ("landlock_scope", landlock::SCOPE_MIN_ABI),
                ] {
                    if abi < min {
                        missing(
                            mode,
                            layer,
                            format!("the kernel offers Landlock ABI {abi}, this layer needs {min}"),
                        )?;
                    }
                }
            }
        }
    }
    let rules = landlock::Rules {
        read_only: spec.read_only.clone(),
        remove_file_dirs: spec.remove_file_dirs.clone(),
        bind_ports: spec.bind_ports.clone(),
    };
    match landlock::restrict(&rules, mode == Mode::Enforce) {
        Ok(outcome) => {
            enforcement.landlock_fs = outcome.fs;
            enforcement.landlock_net = outcome.net;
            enforcement.landlock_scope = outcome.scope;
            let abi = outcome.kernel_abi;
            for (layer, on, min) in [
                ("landlock_fs", outcome.fs, landlock::FS_MIN_ABI),
                ("landlock_net", outcome.net, landlock::NET_MIN_ABI),
                ("landlock_scope", outcome.scope, landlock::SCOPE_MIN_ABI),
            ] {
                if !on {
                    let reason = match &kernel_abi {
                        Err(why) => why.to_string(),
                        Ok(_) => format!("kernel Landlock ABI {abi}, this layer needs {min}"),
                    };
                    missing(mode, layer, reason)?;
                }
            }
        }
        Err(e) if mode == Mode::Enforce => return Err(e.into()),
        Err(e) => log::warn!("SANDBOX DEGRADED: Landlock not applied: {e}"),
    }

    // Landlock (and seccompiler below) set no_new_privs; read back what holds now, because the
    // seccomp policy does not allow prctl(PR_GET_NO_NEW_PRIVS).
    enforcement.no_new_privs = no_new_privs();
    match seccomp::apply() {
        Ok(()) => {
            enforcement.seccomp = true;
            // seccompiler sets PR_SET_NO_NEW_PRIVS before installing and fails without it.
            enforcement.no_new_privs = true;
        }
        Err(e) if mode == Mode::Enforce => return Err(e.into()),
        Err(e) => log::warn!("SANDBOX DEGRADED: layer seccomp is NOT enforced: {e}"),
    }
    if !enforcement.no_new_privs {
        missing(
            mode,
            "no_new_privs",
            "PR_SET_NO_NEW_PRIVS is not set".into(),
        )?;
    }

    let summary: Vec<String> = enforcement
        .layers()
        .iter()
        .map(|(l, on)| format!("{l}={}", u8::from(*on)))
        .collect();
    log::info!(
        "sandbox ({mode}): {} (kernel Landlock ABI {}, requested {})",
        summary.join(" "),
        enforcement.landlock_abi,
        landlock::PINNED_ABI_NUMBER
    );
    Ok(enforcement)
}
