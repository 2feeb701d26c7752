//! Privilege separation: resolve the agent's user at start-up (DESIGN.md §1 step 1), switch to
//! it keeping only `CAP_NET_BIND_SERVICE` (step 6), and prepare a directory it owns.
//!
//! `privdrop` 0.5 is not used for the switch, on purpose: it always puts the primary group into
//! the supplementary groups (`setgroups([gid])`, so `Groups:` would not be empty), uses
//! `setgid`/`setuid` rather than `setresgid`/`setresuid`, leaves gid 0 for a numeric user without
//! a group, and does nothing about capabilities, securebits, `no_new_privs` or a regain check.
//! Its name lookup is private. Everything here is done with `nix` and `caps` instead, in the
//! order the kernel requires.

use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// The command that creates the default user, quoted in the error when it is missing.
pub const CREATE_USER_HINT: &str =
    "useradd --system --no-create-home --shell /usr/sbin/nologin monitoring-agent";

/// The only capability the agent keeps: a SIGHUP reload may bind the same privileged port on
/// another address.
pub const KEPT_CAPABILITY: Capability = Capability::CAP_NET_BIND_SERVICE;

/// Every securebit set and locked after the switch: no root magic on exec
/// (`NOROOT`), no capability fix-up on uid changes (`NO_SETUID_FIXUP`), `KEEP_CAPS` off and
/// locked, no ambient raise.
const SECUREBITS: libc::c_ulong = (libc::SECBIT_NOROOT
    | libc::SECBIT_NOROOT_LOCKED
    | libc::SECBIT_NO_SETUID_FIXUP
    | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
    | libc::SECBIT_KEEP_CAPS_LOCKED
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE
    | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) as libc::c_ulong;

/// `--user`: a name, a numeric `UID` or `UID:GID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    Name(String),
    Id { uid: u32, gid: Option<u32> },
}

impl Default for UserSpec {
    fn default() -> Self {
        UserSpec::Name("monitoring-agent".to_string())
    }
}

impl std::fmt::Display for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserSpec::Name(n) => f.write_str(n),
            UserSpec::Id { uid, gid: None } => write!(f, "{uid}"),
            UserSpec::Id {
                uid,
                gid: Some(gid),
            } => write!(f, "{uid}:{gid}"),
        }
    }
}

/// Parses a numeric id; `u32::MAX` (`-1`) means "unchanged" to `setresuid` and is refused.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

/// POSIX-portable user names plus what shadow's `useradd` accepts: letters, digits, `_`, `-`,
/// `.`, an optional trailing `$`, not starting with `-`, at most 32 bytes.
fn valid_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 32
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl FromStr for UserSpec {
    type Err = PrivilegeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| PrivilegeError::InvalidUser {
            value: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if let Some((u, g)) = s.split_once(':') {
            let uid = parse_id(u).ok_or_else(|| bad("UID in UID:GID must be a number"))?;
            let gid = parse_id(g).ok_or_else(|| bad("GID in UID:GID must be a number"))?;
            return Ok(UserSpec::Id {
                uid,
                gid: Some(gid),
            });
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let uid = parse_id(s).ok_or_else(|| bad("UID out of range"))?;
            return Ok(UserSpec::Id { uid, gid: None });
        }
        if !valid_name(s) {
            return Err(bad(
                "expected a user name (letters, digits, '_', '-', '.'), UID or UID:GID",
            ));
        }
        Ok(UserSpec::Name(s.to_string()))
    }
}

/// The resolved user and group the agent switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uid: u32,
    pub gid: u32,
    /// The passwd name, when the uid has one.
    pub name: Option<String>,
}

/// What [`drop_privileges`] achieved, verified by reading the state back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrivilegeReport {
    /// Real, effective and saved uid and gid are all non-zero (the agent's user), no
    /// supplementary group but its own gid, and `setuid(0)` fails.
    pub privileges_dropped: bool,
    /// `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
    /// Permitted and effective hold at most `CAP_NET_BIND_SERVICE`, inheritable and ambient are
    /// empty, and (when the process started as root) the bounding set is `CAP_NET_BIND_SERVICE`.
    pub capabilities: bool,
    /// The securebits were set and locked (needs `CAP_SETPCAP`, i.e. started as root).
    pub securebits_locked: bool,
    /// Whether `CAP_NET_BIND_SERVICE` is still effective (binding ports below 1024 works).
    pub net_bind_service: bool,
}

/// Privilege errors, each with the value, path or system call concerned.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("invalid --user {value:?}: {why}")]
    InvalidUser { value: String, why: String },
    #[error(
        "user {name:?} does not exist; create it with: useradd --system --no-create-home \
         --shell /usr/sbin/nologin {name} (or pass --user UID:GID); refusing to run as root"
    )]
    UserNotFound { name: String },
    #[error(
        "UID {uid} has no passwd entry, so its group is unknown: pass --user {uid}:GID \
         (refusing to guess gid 0)"
    )]
    GroupUnknown { uid: u32 },
    #[error("refusing to run as {what} 0 (root): the agent must switch to an unprivileged {what}")]
    RootTarget { what: &'static str },
    #[error("looking up {what} {value:?}: {source}")]
    Lookup {
        what: &'static str,
        value: String,
        #[source]
        source: nix::Error,
    },
    #[error("{call} failed: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("{call} failed: {source}")]
    Caps {
        call: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("privilege drop verification failed: {0}")]
    Verify(String),
    #[error("cannot switch to uid {uid}: the process is not root (euid {euid})")]
    NotRoot { uid: u32, euid: u32 },
    #[error("{path}: {why}")]
    Dir { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Step 1: resolves `spec` before anything is touched.
///
/// Returns `Ok(None)` when the process is not root (euid ≠ 0): no switch is possible or needed.
/// As root: the user must exist (a numeric `UID` without passwd entry needs an explicit `GID`),
/// and neither uid nor gid may be 0. There is no fallback to root or `nobody`.
pub fn resolve(spec: &UserSpec) -> Result<Option<Target>, PrivilegeError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let target = match spec {
        UserSpec::Name(name) => {
            let user = User::from_name(name)
                .map_err(|source| PrivilegeError::Lookup {
                    what: "user",
                    value: name.clone(),
                    source,
                })?
                .ok_or_else(|| PrivilegeError::UserNotFound { name: name.clone() })?;
            Target {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                name: Some(user.name),
            }
        }
        UserSpec::Id { uid, gid } => {
            let user =
                User::from_uid(Uid::from_raw(*uid)).map_err(|source| PrivilegeError::Lookup {
                    what: "uid",
                    value: uid.to_string(),
                    source,
                })?;
            let gid = match (gid, &user) {
                (Some(g), _) => *g,
                (None, Some(u)) => u.gid.as_raw(),
                (None, None) => return Err(PrivilegeError::GroupUnknown { uid: *uid }),
            };
            Target {
                uid: *uid,
                gid,
                name: user.map(|u| u.name),
            }
        }
    };
    if target.uid == 0 {
        return Err(PrivilegeError::RootTarget { what: "user" });
    }
    if target.gid == 0 {
        return Err(PrivilegeError::RootTarget { what: "group" });
    }
    Ok(Some(target))
}

fn sys<T>(call: &'static str, r: nix::Result<T>) -> Result<T, PrivilegeError> {
    r.map_err(|source| PrivilegeError::Sys { call, source })
}

fn caps_call<T>(
    call: &'static str,
    r: Result<T, caps::errors::CapsError>,
) -> Result<T, PrivilegeError> {
    r.map_err(|source| PrivilegeError::Caps { call, source })
}

/// Which capability survives the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// `CAP_NET_BIND_SERVICE`: a reload may bind the same privileged port on another address.
    #[default]
    NetBindService,
    /// Nothing at all (socket activation: systemd binds, the agent never does).
    Nothing,
}

impl Keep {
    fn set(self) -> CapsHashSet {
        match self {
            Keep::NetBindService => HashSet::from([KEPT_CAPABILITY]),
            Keep::Nothing => HashSet::new(),
        }
    }
}

fn set_no_new_privs() -> Result<(), PrivilegeError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS with constant integer arguments; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(PrivilegeError::Sys {
            call: "prctl(PR_SET_NO_NEW_PRIVS)",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

fn lock_securebits() -> Result<(), PrivilegeError> {
    // SAFETY: PR_SET_SECUREBITS takes an integer bit mask; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) };
    if r != 0 {
        return Err(PrivilegeError::Sys {
            call: "prctl(PR_SET_SECUREBITS)",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Shrinks the bounding set to `CAP_NET_BIND_SERVICE`; needs `CAP_SETPCAP` in effective.
fn shrink_bounding(keep: Keep) -> Result<(), PrivilegeError> {
    let kept = keep.set();
    for cap in caps::runtime::thread_all_supported() {
        if !kept.contains(&cap) {
            caps_call(
                "prctl(PR_CAPBSET_DROP)",
                caps::drop(None, CapSet::Bounding, cap),
            )?;
        }
    }
    Ok(())
}

/// Keeps `CAP_NET_BIND_SERVICE` in permitted and effective if it is permitted, drops every
/// other capability, clears inheritable and ambient.
fn restrict_capability_sets(keep: Keep) -> Result<(), PrivilegeError> {
    let permitted = caps_call("capget", caps::read(None, CapSet::Permitted))?;
    let keep: CapsHashSet = permitted.intersection(&keep.set()).copied().collect();
    // Nothing to take away (started unprivileged): no capset at all, so a unit that filters
    // @privileged (capset) still starts the agent.
    let effective = caps_call("capget", caps::read(None, CapSet::Effective))?;
    let inheritable = caps_call("capget", caps::read(None, CapSet::Inheritable))?;
    let ambient = caps_call("PR_CAP_AMBIENT_IS_SET", caps::read(None, CapSet::Ambient))?;
    if permitted == keep
        && effective.is_subset(&keep)
        && inheritable.is_empty()
        && ambient.is_empty()
    {
        return Ok(());
    }
    caps_call(
        "PR_CAP_AMBIENT_CLEAR_ALL",
        caps::clear(None, CapSet::Ambient),
    )?;
    // Effective must stay a subset of permitted at every capset: effective first.
    caps_call(
        "capset(effective)",
        caps::set(None, CapSet::Effective, &keep),
    )?;
    caps_call(
        "capset(inheritable)",
        caps::clear(None, CapSet::Inheritable),
    )?;
    caps_call(
        "capset(permitted)",
        caps::set(None, CapSet::Permitted, &keep),
    )?;
    Ok(())
}

/// Reads the capability sets back: `(capabilities verdict, CAP_NET_BIND_SERVICE effective)`.
fn check_capabilities(require_bounding: bool, keep: Keep) -> Result<(bool, bool), PrivilegeError> {
    let kept = keep.set();
    let prm = caps_call("capget", caps::read(None, CapSet::Permitted))?;
    let eff = caps_call("capget", caps::read(None, CapSet::Effective))?;
    let inh = caps_call("capget", caps::read(None, CapSet::Inheritable))?;
    let amb = caps_call("PR_CAP_AMBIENT_IS_SET", caps::read(None, CapSet::Ambient))?;
    let bnd = caps_call("PR_CAPBSET_READ", caps::read(None, CapSet::Bounding))?;
    let ok = prm.is_subset(&kept)
        && eff.is_subset(&kept)
        && inh.is_empty()
        && amb.is_empty()
        && (!require_bounding || bnd == kept);
    Ok((ok, eff.contains(&KEPT_CAPABILITY)))
}

/// True when every uid and gid is non-zero, there is no supplementary group but the process's
/// own gid, and `setuid(0)`/`setgid(0)` fail.
fn check_switched(expected: Option<&Target>) -> Result<(), String> {
    let uids = nix::unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let gids = nix::unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    let all_u = [uids.real, uids.effective, uids.saved].map(|u| u.as_raw());
    let all_g = [gids.real, gids.effective, gids.saved].map(|g| g.as_raw());
    if let Some(t) = expected {
        if all_u.iter().any(|u| *u != t.uid) || all_g.iter().any(|g| *g != t.gid) {
            return Err(format!(
                "uids {all_u:?} gids {all_g:?}, expected {}:{}",
                t.uid, t.gid
            ));
        }
    }
    if all_u.contains(&0) {
        return Err(format!("a uid is still 0: {all_u:?}"));
    }
    if all_g.contains(&0) {
        return Err(format!("a gid is still 0: {all_g:?}"));
    }
    // A supplementary group that is the process's own gid grants nothing more; systemd's
    // `User=` puts the user's primary group there (initgroups), and without CAP_SETGID the list
    // cannot be emptied. Any other group could open files the agent's user alone cannot.
    let groups = nix::unistd::getgroups().map_err(|e| format!("getgroups: {e}"))?;
    let extra: Vec<u32> = groups
        .iter()
        .map(|g| g.as_raw())
        .filter(|g| !all_g.contains(g))
        .collect();
    if !extra.is_empty() {
        return Err(format!("supplementary groups remain: {extra:?}"));
    }
    // Any uid change needs CAP_SETUID, which must be gone: the raw call must fail.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("setuid(0) succeeded: root can be regained".into());
    }
    if nix::unistd::setgid(Gid::from_raw(0)).is_ok() {
        return Err("setgid(0) succeeded: group root can be regained".into());
    }
    Ok(())
}

/// Step 6: switches to `target` keeping only `CAP_NET_BIND_SERVICE` (or nothing, with
/// [`Keep::Nothing`]), then verifies.
///
/// As root with `Some(target)`: shrink the bounding set while `CAP_SETPCAP` is held,
/// `PR_SET_KEEPCAPS`, `setgroups([])`, `setresgid`, `setresuid`, lock the securebits (raising
/// `CAP_SETPCAP` from permitted for that one call), permitted = effective =
/// `{CAP_NET_BIND_SERVICE}`, inheritable and ambient cleared, `PR_SET_NO_NEW_PRIVS`, and finally
/// check that `setuid(0)` fails. glibc applies the id changes to every thread, but the
/// capability calls are per thread: call this while the process has a single thread.
///
/// With `None` (not root): no switch; every capability except `CAP_NET_BIND_SERVICE` (kept only
/// if already permitted, e.g. systemd `AmbientCapabilities=`) is dropped, the bounding set shrunk
/// if `CAP_SETPCAP` happens to be held, `no_new_privs` set. `privileges_dropped` is then true
/// exactly when no uid or gid is 0.
///
/// An error means the process state is unknown: the caller must exit.
pub fn drop_privileges(
    target: Option<&Target>,
    keep: Keep,
) -> Result<PrivilegeReport, PrivilegeError> {
    let mut report = PrivilegeReport::default();
    match target {
        Some(t) => {
            let euid = Uid::effective().as_raw();
            if euid != 0 {
                return Err(PrivilegeError::NotRoot { uid: t.uid, euid });
            }
            if t.uid == 0 {
                return Err(PrivilegeError::RootTarget { what: "user" });
            }
            if t.gid == 0 {
                return Err(PrivilegeError::RootTarget { what: "group" });
            }
            // 1. Bounding set, while CAP_SETPCAP is still effective.
            shrink_bounding(keep)?;
            // 2. Keep the permitted set across the uid change (effective is cleared).
            caps_call(
                "prctl(PR_SET_KEEPCAPS)",
                caps::securebits::set_keepcaps(true),
            )?;
            // 3. Groups first (needs CAP_SETGID), then gid, then uid.
            sys("setgroups([])", nix::unistd::setgroups(&[]))?;
            let gid = Gid::from_raw(t.gid);
            sys("setresgid", nix::unistd::setresgid(gid, gid, gid))?;
            let uid = Uid::from_raw(t.uid);
            sys("setresuid", nix::unistd::setresuid(uid, uid, uid))?;
            // 4. Securebits need CAP_SETPCAP in effective: raise it from permitted for this call.
            caps_call(
                "capset(effective CAP_SETPCAP)",
                caps::set(
                    None,
                    CapSet::Effective,
                    &HashSet::from([Capability::CAP_SETPCAP]),
                ),
            )?;
            match lock_securebits() {
                Ok(()) => report.securebits_locked = true,
                Err(e) => log::warn!("securebits not locked: {e}"),
            }
            // 5. Final sets. KEEP_CAPS is cleared by the securebits above; clear it explicitly
            // when they could not be set.
            restrict_capability_sets(keep)?;
            if !report.securebits_locked {
                caps_call(
                    "prctl(PR_SET_KEEPCAPS, 0)",
                    caps::securebits::set_keepcaps(false),
                )?;
            }
        }
        None => {
            if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
                shrink_bounding(keep)?;
            }
            restrict_capability_sets(keep)?;
        }
    }
    // 6. no_new_privs: no exec can ever grant anything again.
    set_no_new_privs()?;
    report.no_new_privs = no_new_privs();

    // 7. Verify by reading everything back.
    match check_switched(target) {
        Ok(()) => report.privileges_dropped = true,
        Err(why) if target.is_some() => return Err(PrivilegeError::Verify(why)),
        Err(why) => log::info!("not running as an unprivileged user: {why}"),
    }
    let (caps_ok, nbs) = check_capabilities(target.is_some(), keep)?;
    if target.is_some() && !caps_ok {
        return Err(PrivilegeError::Verify(format!(
            "capability sets hold more than {:?}",
            keep.set()
        )));
    }
    report.capabilities = caps_ok;
    report.net_bind_service = nbs;
    Ok(report)
}

/// Directories that must never be handed to the agent's user, whatever the PID file path says.
const SHARED_DIRS: &[&str] = &[
    "/",
    "/run",
    "/var/run",
    "/var",
    "/tmp",
    "/var/tmp",
    "/etc",
    "/usr",
    "/home",
    "/root",
    "/dev",
    "/proc",
    "/sys",
    "/var/lib",
    "/var/log",
    "/run/user",
    "/run/lock",
    "/var/lock",
    "/opt",
    "/srv",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
];

/// Prepares `dir` (e.g. `/run/monitoring-agent`, the PID file's directory) owned by the target
/// user and group, mode 0755, before the drop, so that the agent can remove its PID file at
/// exit. Creates it if missing (the parent must exist).
///
/// Refuses, rather than chown, a symlink, a non-directory, a shared system directory (`/run`,
/// `/tmp`, `/var`, …), a world-writable directory, or one whose parent is not owned by root:
/// those are signs that the PID file lives in a directory the agent must not own. In that case
/// the caller keeps the PID file where it is and empties it through its descriptor at exit.
pub fn prepare_owned_dir(dir: &Path, target: &Target) -> Result<(), PrivilegeError> {
    let err = |why: String| PrivilegeError::Dir {
        path: dir.to_path_buf(),
        why,
    };
    if !dir.is_absolute() {
        return Err(err("must be an absolute path".into()));
    }
    let normalized: PathBuf = dir.components().collect();
    if SHARED_DIRS.iter().any(|d| Path::new(d) == normalized) {
        return Err(err(
            "is a shared system directory; refusing to give it to the agent's user \
             (put the PID file in its own directory, e.g. /run/monitoring-agent/)"
                .into(),
        ));
    }
    let parent = normalized
        .parent()
        .ok_or_else(|| err("has no parent directory".into()))?;
    let pmeta = std::fs::symlink_metadata(parent).map_err(|source| PrivilegeError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    if pmeta.uid() != 0 {
        return Err(err(format!(
            "parent {} is owned by uid {}, not root: refusing to chown inside it",
            parent.display(),
            pmeta.uid()
        )));
    }
    match std::fs::symlink_metadata(&normalized) {
        Ok(meta) => {
            if meta.file_type().is_symlink() {
                return Err(err("is a symbolic link".into()));
            }
            if !meta.is_dir() {
                return Err(err("exists and is not a directory".into()));
            }
            if meta.mode() & 0o002 != 0 {
                return Err(err("is world-writable".into()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&normalized)
                .map_err(|source| PrivilegeError::Io {
                    path: normalized.clone(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(PrivilegeError::Io {
                path: normalized,
                source,
            })
        }
    }
    // lchown: never follow a link swapped in meanwhile.
    std::os::unix::fs::lchown(&normalized, Some(target.uid), Some(target.gid)).map_err(
        |source| PrivilegeError::Io {
            path: normalized.clone(),
            source,
        },
    )?;
    std::fs::set_permissions(&normalized, std::fs::Permissions::from_mode(0o755)).map_err(
        |source| PrivilegeError::Io {
            path: normalized.clone(),
            source,
        },
    )?;
    Ok(())
}

/// Whether `PR_SET_NO_NEW_PRIVS` is set on the calling thread.
pub fn no_new_privs() -> bool {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments and only returns 0 or 1.
    let r = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    r == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_specs() {
        assert_eq!(
            "monitoring-agent".parse::<UserSpec>().ok(),
            Some(UserSpec::Name("monitoring-agent".into()))
        );
        assert_eq!(
            "65533".parse::<UserSpec>().ok(),
            Some(UserSpec::Id {
                uid: 65533,
                gid: None
            })
        );
        assert_eq!(
            "65533:65534".parse::<UserSpec>().ok(),
            Some(UserSpec::Id {
                uid: 65533,
                gid: Some(65534)
            })
        );
        for bad in [
            "",
            "a:b",
            "1:",
            ":1",
            "1:2:3",
            "-x",
            "a b",
            "4294967295",
            "99999999999",
        ] {
            let e = bad.parse::<UserSpec>().expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["agent", "10", "10:20"] {
            assert_eq!(
                s.parse::<UserSpec>().map(|u| u.to_string()).ok(),
                Some(s.into())
            );
        }
    }

    #[test]
    fn refuses_shared_dirs() {
        let t = Target {
            uid: 65533,
            gid: 65533,
            name: None,
        };
        for d in ["/run", "/run/", "/tmp", "/", "relative"] {
            assert!(prepare_owned_dir(Path::new(d), &t).is_err(), "{d}");
        }
    }
}
