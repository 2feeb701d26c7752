//! Sandbox: Landlock then seccomp on the single main thread, after the privilege drop and before
//! the tokio runtime exists (DESIGN.md §1 steps 7-8), and the report of what really holds.

pub mod fragments;
pub mod landlock;
pub mod seccomp;
pub mod verify;

use std::str::FromStr;

use crate::exposition::MetricFamily;
use crate::privilege::PrivilegeReport;

/// How strictly the sandbox is applied (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every Landlock feature of the pinned ABI must be the kernel's own (Linux 6.12+), or the
    /// agent refuses to start.
    Strict,
    /// Every layer must hold, by Landlock or, where the kernel's Landlock ABI lacks a feature,
    /// by the seccomp filter (the default). Needs Landlock (any ABI) and seccomp.
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
            "strict" => Ok(Mode::Strict),
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
            Mode::Strict => "strict",
            Mode::Enforce => "enforce",
            Mode::BestEffort => "best-effort",
            Mode::Off => "off",
        })
    }
}

/// What the sandboxed process still needs: the Landlock rules (the seccomp policy is fixed at
/// build time).
pub type Spec = landlock::Rules;

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

/// Who enforces a layer on this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    /// Not enforced.
    #[default]
    Nothing,
    /// The kernel's process state (uid, capabilities, `no_new_privs`, the seccomp filter).
    Kernel,
    /// Landlock, at the ABI in force, enforces the whole layer.
    Landlock,
    /// Landlock enforces part of the layer (what can be opened); the seccomp filter blocks
    /// what that ABI lacks (truncate, rename/link, device ioctls).
    LandlockAndSeccomp,
    /// The kernel's Landlock lacks the whole layer; the seccomp filter blocks it.
    Seccomp,
}

impl By {
    /// The `enforced_by` label value.
    pub fn label(self) -> &'static str {
        match self {
            By::Nothing => "none",
            By::Kernel => "kernel",
            By::Landlock => "landlock",
            By::LandlockAndSeccomp => "landlock+seccomp",
            By::Seccomp => "seccomp",
        }
    }

    /// Parses [`By::label`].
    pub fn from_label(s: &str) -> Option<By> {
        [
            By::Nothing,
            By::Kernel,
            By::Landlock,
            By::LandlockAndSeccomp,
            By::Seccomp,
        ]
        .into_iter()
        .find(|b| b.label() == s)
    }

    /// The layer holds, whoever enforces it.
    pub fn holds(self) -> bool {
        self != By::Nothing
    }

    /// Landlock lacks (part of) the layer on this kernel and the seccomp filter stands in.
    pub fn compensated(self) -> bool {
        matches!(self, By::LandlockAndSeccomp | By::Seccomp)
    }

    fn kernel(on: bool) -> By {
        if on {
            By::Kernel
        } else {
            By::Nothing
        }
    }

    /// Who enforces a Landlock layer, given the ABI of the ruleset in force (0: none) and
    /// whether the seccomp filter is installed. The seccomp policy blocks, on every kernel,
    /// everything the Landlock layers add after ABI 1 (see `policy/README.md`).
    pub fn landlock_layer(layer: &str, abi: i32, seccomp: bool) -> By {
        let full = match layer {
            "landlock_fs" => landlock::FS_MIN_ABI,
            "landlock_net" => landlock::NET_MIN_ABI,
            _ => landlock::SCOPE_MIN_ABI,
        };
        if abi >= full {
            By::Landlock
        } else if !seccomp {
            By::Nothing
        } else if layer == "landlock_fs" {
            // What may be read at all is Landlock's alone.
            if abi >= landlock::FS_ANY_ABI {
                By::LandlockAndSeccomp
            } else {
                By::Nothing
            }
        } else {
            By::Seccomp
        }
    }
}

/// What is really enforced on this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enforcement {
    pub privileges_dropped: bool,
    pub no_new_privs: bool,
    pub capabilities: bool,
    pub landlock_fs: By,
    pub landlock_net: By,
    pub landlock_scope: By,
    pub seccomp: bool,
    /// The running kernel's Landlock ABI (0: no Landlock). The agent requests
    /// [`landlock::PINNED_ABI`] whatever this is.
    pub landlock_abi: i32,
    /// The ABI of the Landlock ruleset in force (0: none).
    pub landlock_enforced_abi: i32,
    /// The policy fragments in the seccomp filter in force (empty without a filter).
    pub fragments: fragments::Set,
}

impl Enforcement {
    /// Each layer with who enforces it, in [`LAYERS`] order.
    pub fn layers(&self) -> [(&'static str, By); 7] {
        [
            (LAYERS[0], By::kernel(self.privileges_dropped)),
            (LAYERS[1], By::kernel(self.no_new_privs)),
            (LAYERS[2], By::kernel(self.capabilities)),
            (LAYERS[3], self.landlock_fs),
            (LAYERS[4], self.landlock_net),
            (LAYERS[5], self.landlock_scope),
            (LAYERS[6], By::kernel(self.seccomp)),
        ]
    }

    /// True when every layer holds (enforced or compensated).
    pub fn complete(&self) -> bool {
        self.layers().iter().all(|(_, by)| by.holds())
    }

    /// `monitoring_agent_sandbox_enforced{layer}`, `monitoring_agent_sandbox_layer_info{layer,
    /// enforced_by}`, `monitoring_agent_landlock_abi` and
    /// `monitoring_agent_landlock_enforced_abi`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let mut enforced = MetricFamily::gauge(
            "monitoring_agent_sandbox_enforced",
            "Whether a sandbox layer holds on this process (1), by Landlock, the kernel or the \
             seccomp filter standing in for an older Landlock ABI, or not (0).",
        );
        let mut info = MetricFamily::gauge(
            "monitoring_agent_sandbox_layer_info",
            "Who enforces each sandbox layer: kernel, landlock, landlock+seccomp or seccomp \
             (compensated: the kernel's Landlock ABI lacks the feature), none.",
        );
        for (layer, by) in self.layers() {
            enforced.push(&[("layer", layer)], if by.holds() { 1.0 } else { 0.0 });
            info.push(&[("layer", layer), ("enforced_by", by.label())], 1.0);
        }
        let abi = MetricFamily::gauge(
            "monitoring_agent_landlock_abi",
            "Landlock ABI version of the running kernel (0: unavailable).",
        )
        .with(&[], f64::from(self.landlock_abi));
        let enforced_abi = MetricFamily::gauge(
            "monitoring_agent_landlock_enforced_abi",
            "Landlock ABI of the ruleset in force on this process (0: none).",
        )
        .with(&[], f64::from(self.landlock_enforced_abi));
        let mut fragment = MetricFamily::gauge(
            "monitoring_agent_sandbox_fragment",
            "Whether a policy fragment (policy/fragments/) is part of the seccomp filter in \
             force (1) or not (0); the enabled collectors decide at start-up.",
        );
        for (i, f) in fragments::FRAGMENTS.iter().enumerate() {
            let on = self.fragments.0 & (1 << i) != 0;
            fragment.push(&[("fragment", f.name)], if on { 1.0 } else { 0.0 });
        }
        vec![enforced, info, abi, enforced_abi, fragment]
    }

    /// One line for the log: each layer and who enforces it.
    pub fn summary(&self) -> String {
        self.layers()
            .iter()
            .map(|(l, by)| format!("{l}={}", by.label()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Sandbox failures. Each names the layer it is about (see [`SandboxError::layer`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox mode {0:?}: expected strict, enforce, best-effort or off")]
    InvalidMode(String),
    #[error(
        "sandbox layer {layer} cannot be enforced: {reason}; refusing to start \
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

/// Handles a layer that is not enforced: an error in [`Mode::Strict`] and [`Mode::Enforce`], a
/// warning otherwise.
fn missing(mode: Mode, layer: &'static str, reason: String) -> Result<(), SandboxError> {
    if matches!(mode, Mode::Strict | Mode::Enforce) {
        return Err(SandboxError::NotEnforced { layer, reason });
    }
    log::warn!("SANDBOX DEGRADED (--sandbox={mode}): layer {layer} is NOT enforced: {reason}");
    Ok(())
}

/// What the kernel's Landlock lacks for a layer that needs `min`, for messages.
fn lacking(layer: &str, abi: i32, min: i32) -> String {
    format!("the kernel's Landlock ABI is {abi}, {layer} needs {min}")
}

/// Steps 7-8: Landlock, then seccomp from the embedded policy, on the calling thread, which must
/// be the only one. Call it after [`crate::privilege::drop_privileges`] and before building the
/// tokio runtime.
///
/// - [`Mode::Strict`]: every layer must be enforced by its own mechanism: Landlock at the
///   pinned ABI in full (a kernel with ABI 6 or later).
/// - [`Mode::Enforce`]: every layer must hold. Landlock (any ABI) and seccomp are required;
///   what the kernel's Landlock ABI lacks is blocked by the seccomp policy and reported as
///   compensated ([`By::compensated`]).
/// - [`Mode::BestEffort`]: each missing layer is logged at warning level and the agent goes
///   on.
/// - [`Mode::Off`]: nothing is applied (warning).
///
/// Whatever can be known in advance is checked before anything irreversible happens.
pub fn apply(
    spec: &Spec,
    mode: Mode,
    privileges: &PrivilegeReport,
) -> Result<Enforcement, SandboxError> {
    apply_with(spec, fragments::Set::default(), mode, privileges)
}

/// [`apply`] with the seccomp policy fragments in `set` (those of the enabled collectors,
/// [`fragments::Set::for_collectors`]) merged into the `main` filter.
pub fn apply_with(
    spec: &Spec,
    set: fragments::Set,
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
            if mode != Mode::BestEffort {
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

    // Landlock: tell the operator exactly what the kernel lacks before anything is applied.
    let requested = spec.max_abi.clamp(1, landlock::PINNED_ABI_NUMBER);
    match (mode, kernel_abi) {
        (Mode::Strict | Mode::Enforce, Err(why)) => missing(mode, "landlock_fs", why.to_string())?,
        (Mode::Strict, Ok(abi)) => {
            let usable = abi.min(requested);
            for (layer, min) in [
                ("landlock_fs", landlock::FS_MIN_ABI),
                ("landlock_net", landlock::NET_MIN_ABI),
                ("landlock_scope", landlock::SCOPE_MIN_ABI),
            ] {
                if usable < min {
                    missing(
                        mode,
                        layer,
                        format!(
                            "{} (--sandbox=strict takes no seccomp stand-in; \
                             --sandbox=enforce does)",
                            lacking(layer, usable, min)
                        ),
                    )?;
                }
            }
        }
        _ => {}
    }
    match landlock::restrict(spec, mode == Mode::Strict) {
        Ok(outcome) => enforcement.landlock_enforced_abi = outcome.enforced_abi,
        Err(e) if mode != Mode::BestEffort => return Err(e.into()),
        Err(e) => log::warn!("SANDBOX DEGRADED: Landlock not applied: {e}"),
    }
    if enforcement.landlock_enforced_abi < landlock::FS_ANY_ABI {
        let reason = match &kernel_abi {
            Err(why) => why.to_string(),
            Ok(_) => "no Landlock ruleset is in force".into(),
        };
        missing(mode, "landlock_fs", reason)?;
    }

    // Landlock (and seccompiler below) set no_new_privs; read back what holds now, because the
    // seccomp policy does not allow prctl(PR_GET_NO_NEW_PRIVS).
    enforcement.no_new_privs = crate::privilege::no_new_privs();
    match seccomp::apply_with(set) {
        Ok(()) => {
            enforcement.seccomp = true;
            enforcement.fragments = set;
            // seccompiler sets PR_SET_NO_NEW_PRIVS before installing and fails without it.
            enforcement.no_new_privs = true;
        }
        Err(e) if mode != Mode::BestEffort => return Err(e.into()),
        Err(e) => log::warn!("SANDBOX DEGRADED: layer seccomp is NOT enforced: {e}"),
    }
    let abi = enforcement.landlock_enforced_abi;
    enforcement.landlock_fs = By::landlock_layer("landlock_fs", abi, enforcement.seccomp);
    enforcement.landlock_net = By::landlock_layer("landlock_net", abi, enforcement.seccomp);
    enforcement.landlock_scope = By::landlock_layer("landlock_scope", abi, enforcement.seccomp);
    for (layer, by) in [
        ("landlock_net", enforcement.landlock_net),
        ("landlock_scope", enforcement.landlock_scope),
    ] {
        if !by.holds() {
            missing(
                mode,
                layer,
                "neither Landlock nor the seccomp filter enforces it".into(),
            )?;
        }
    }
    if !enforcement.no_new_privs {
        missing(
            mode,
            "no_new_privs",
            "PR_SET_NO_NEW_PRIVS is not set".into(),
        )?;
    }

    let compensated: Vec<&str> = enforcement
        .layers()
        .iter()
        .filter(|(_, by)| by.compensated())
        .map(|(l, _)| *l)
        .collect();
    let note = if compensated.is_empty() {
        String::new()
    } else {
        format!(
            "; compensated by seccomp for Landlock ABI {abi}: {}",
            compensated.join(", ")
        )
    };
    log::info!(
        "sandbox ({mode}): {} (kernel Landlock ABI {}, requested {requested}, in force {abi}); \
         policy fragments: {}{note}",
        enforcement.summary(),
        enforcement.landlock_abi,
        enforcement.fragments.describe(),
    );
    Ok(enforcement)
}
