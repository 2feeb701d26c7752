//! Landlock: read-only access to the configured paths, remove-file in the PID file's directory,
//! no TCP bind, TCP connect only to the supervisord collector's port when it is enabled, and
//! scoped abstract unix sockets and signals.
//!
//! The requested ABI is pinned to [`PINNED_ABI`] (6). The crate's "latest" grows with every
//! release, and ABI 9 adds `LANDLOCK_ACCESS_FS_RESOLVE_UNIX`, which would deny connecting to
//! pathname unix sockets (`/dev/log` reconnects, `$NOTIFY_SOCKET`). ABI 7 and 8 add only audit
//! logging flags and thread synchronisation, which the agent does not need (it restricts itself
//! while single-threaded).
//!
//! The request is best effort against the running kernel, which enforces what its ABI knows
//! (Debian 12's 6.1 offers 2, Ubuntu 22.04's 5.15 offers 1, 24.04's 6.8 offers 4). What an
//! older ABI lacks, the seccomp policy blocks on every kernel (see [`super::By`]):
//! - `landlock_fs` is fully Landlock's from ABI 5 (ABI 3 adds `Truncate`, ABI 5 `IoctlDev`;
//!   ABI 2 `Refer`); below that Landlock still restricts what can be opened, and seccomp
//!   denies truncate, rename, link and device ioctls;
//! - `landlock_net` is Landlock's from ABI 4 (TCP bind/connect); seccomp denies `socket`,
//!   `bind`, `listen` and `connect` on every kernel anyway;
//! - `landlock_scope` is Landlock's from ABI 6 (abstract unix sockets, signals); seccomp
//!   denies every destination address and every signal to another process.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// The Landlock ABI the agent requests, whatever the kernel offers beyond it.
pub const PINNED_ABI: ABI = ABI::V6;
/// [`PINNED_ABI`] as a number.
pub const PINNED_ABI_NUMBER: i32 = 6;
/// Lowest kernel ABI that enforces every filesystem right handled at [`PINNED_ABI`].
pub const FS_MIN_ABI: i32 = 5;
/// Lowest ABI with any Landlock at all (read-only paths).
pub const FS_ANY_ABI: i32 = 1;
/// Lowest kernel ABI with TCP bind/connect rules.
pub const NET_MIN_ABI: i32 = 4;
/// Lowest kernel ABI with scopes (abstract unix sockets, signals).
pub const SCOPE_MIN_ABI: i32 = 6;

/// What the caller wants restricted.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Files and directories (recursively) that stay readable: the procfs and sysfs roots, the
    /// configuration, operator-configured directories. Nothing else is readable, nothing is
    /// writable or executable. A rule follows the inode, not the name: a config file replaced
    /// by rename is unreadable after SIGHUP unless its directory is listed.
    pub read_only: Vec<PathBuf>,
    /// Directories in which files may be removed: the PID file's directory, only when the
    /// agent's user owns it (see [`crate::privilege::prepare_owned_dir`]).
    pub remove_file_dirs: Vec<PathBuf>,
    /// TCP ports the agent may connect to (from ABI 4): the supervisord collector's
    /// `--collector.supervisord.url` port when it is enabled with an `http://` URL. Empty: no
    /// TCP connect at all.
    pub connect_tcp_ports: Vec<u16>,
    /// The highest ABI to request, at most [`PINNED_ABI_NUMBER`]: lower only to reproduce an
    /// older kernel's Landlock on a newer one (`--landlock-max-abi`, for tests).
    pub max_abi: i32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            read_only: Vec::new(),
            remove_file_dirs: Vec::new(),
            connect_tcp_ports: Vec::new(),
            max_abi: PINNED_ABI_NUMBER,
        }
    }
}

/// What Landlock really enforces for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The ABI of the ruleset in force: the lower of the kernel's and the requested one, 0 when
    /// no ruleset is enforced. What each layer gets from it: [`super::By::landlock_layer`].
    pub enforced_abi: i32,
    /// The kernel's Landlock ABI (0 when Landlock is unavailable).
    pub kernel_abi: i32,
    /// The status the `landlock` crate reported for the whole ruleset.
    pub ruleset_fully_enforced: bool,
}

/// The crate's ABI value for a number in `1..=6`.
fn abi(n: i32) -> ABI {
    match n {
        i32::MIN..=1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        _ => ABI::V6,
    }
}

/// Landlock failures; each names the layer (`landlock_fs`, `landlock_net`, `landlock_scope`).
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("{layer}: read-only path {path}: {source}")]
    Path {
        layer: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{layer}: {source}")]
    Ruleset {
        layer: &'static str,
        #[source]
        source: landlock::RulesetError,
    },
}

impl LandlockError {
    /// The sandbox layer the error is about.
    pub fn layer(&self) -> &'static str {
        match self {
            LandlockError::Path { layer, .. } | LandlockError::Ruleset { layer, .. } => layer,
        }
    }
}

/// Why the kernel offers no Landlock at all, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// `ENOSYS`: not built into the kernel.
    NotImplemented,
    /// `EOPNOTSUPP`: built in but not enabled at boot (`lsm=` on the kernel command line).
    NotEnabled,
    /// `EPERM`: a seccomp filter around us (e.g. systemd's `SystemCallFilter=@system-service`
    /// with `SystemCallErrorNumber=EPERM`) denies the Landlock system calls.
    Denied,
    /// Any other error.
    Other(i32),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotImplemented => f.write_str("Landlock is not built into this kernel"),
            Unavailable::NotEnabled => f.write_str(
                "Landlock is built in but not enabled (add landlock to the kernel's lsm= list)",
            ),
            Unavailable::Denied => f.write_str(
                "the Landlock system calls are denied by an outer seccomp filter (systemd: add \
                 landlock_create_ruleset landlock_add_rule landlock_restrict_self to \
                 SystemCallFilter=)",
            ),
            Unavailable::Other(e) => write!(
                f,
                "Landlock ABI query failed: {}",
                std::io::Error::from_raw_os_error(*e)
            ),
        }
    }
}

/// The kernel's Landlock ABI version, asked directly with
/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub fn kernel_abi() -> Result<i32, Unavailable> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the kernel reads no
    // memory and only returns the ABI number (or -1 and errno).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 0 {
        return Ok(i32::try_from(v).unwrap_or(i32::MAX));
    }
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Err(match errno {
        libc::ENOSYS => Unavailable::NotImplemented,
        libc::EOPNOTSUPP => Unavailable::NotEnabled,
        libc::EPERM => Unavailable::Denied,
        e => Unavailable::Other(e),
    })
}

/// The rights a read-only path gets: read files, and list directories if it is one. Never
/// execute.
fn read_access(path: &Path) -> Result<BitFlags<AccessFs>, std::io::Error> {
    let meta = std::fs::metadata(path)?;
    Ok(if meta.is_dir() {
        AccessFs::ReadFile | AccessFs::ReadDir
    } else {
        AccessFs::ReadFile.into()
    })
}

/// Restricts the calling thread (and every thread it creates later). Irreversible.
///
/// `strict` selects [`CompatLevel::HardRequirement`]: any right the kernel cannot enforce is an
/// error naming the layer, and a missing path is an error. Otherwise
/// [`CompatLevel::BestEffort`]: the kernel enforces what it can, missing paths are skipped with
/// a warning, and the [`Outcome`] tells what holds.
pub fn restrict(rules: &Rules, strict: bool) -> Result<Outcome, LandlockError> {
    let kernel_abi = kernel_abi().unwrap_or(0);
    let requested = rules.max_abi.clamp(1, PINNED_ABI_NUMBER);
    let want = abi(requested);
    let level = if strict {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let fs_err = |source| LandlockError::Ruleset {
        layer: "landlock_fs",
        source,
    };
    let net_err = |source| LandlockError::Ruleset {
        layer: "landlock_net",
        source,
    };

    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(want))
        .map_err(fs_err)?;
    // Handled: no TCP bind at all (the listeners are bound before the sandbox; an address
    // change needs a restart), and TCP connect only to `connect_tcp_ports` (supervisord).
    let net = AccessNet::from_all(want);
    if !net.is_empty() {
        ruleset = ruleset.handle_access(net).map_err(net_err)?;
    }
    let scopes = Scope::from_all(want);
    if !scopes.is_empty() {
        ruleset = ruleset
            .scope(scopes)
            .map_err(|source| LandlockError::Ruleset {
                layer: "landlock_scope",
                source,
            })?;
    }
    let mut created = ruleset.create().map_err(fs_err)?;

    for path in &rules.read_only {
        let opened = read_access(path).and_then(|access| {
            PathFd::new(path)
                .map(|fd| (fd, access))
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        match opened {
            Ok((fd, access)) => {
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(fs_err)?;
            }
            Err(source) if strict => {
                return Err(LandlockError::Path {
                    layer: "landlock_fs",
                    path: path.clone(),
                    source,
                })
            }
            Err(e) => log::warn!(
                "landlock: read-only path {} skipped ({e}): it will be unreadable",
                path.display()
            ),
        }
    }
    for dir in &rules.remove_file_dirs {
        match PathFd::new(dir) {
            Ok(fd) => {
                created = created
                    .add_rule(PathBeneath::new(fd, AccessFs::RemoveFile))
                    .map_err(fs_err)?;
            }
            Err(e) if strict => {
                return Err(LandlockError::Path {
                    layer: "landlock_fs",
                    path: dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            }
            Err(e) => log::warn!(
                "landlock: remove-file directory {} skipped ({e})",
                dir.display()
            ),
        }
    }
    if !net.is_empty() {
        for port in &rules.connect_tcp_ports {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(net_err)?;
        }
    }
    let status = created.restrict_self().map_err(fs_err)?;
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    let effective = match status.landlock {
        landlock::LandlockStatus::Available { effective_abi, .. } => effective_abi as i32,
        _ => 0,
    };
    Ok(Outcome {
        enforced_abi: if enforced {
            effective.min(requested)
        } else {
            0
        },
        kernel_abi,
        ruleset_fully_enforced: status.ruleset == RulesetStatus::FullyEnforced,
    })
}
