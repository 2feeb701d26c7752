//! seccomp: installs the BPF filters compiled at build time from `policy/seccomp/<arch>.json`.
//!
//! Three filters are installed on the calling thread, which must be the only thread: the tokio
//! threads created afterwards inherit them, so no TSYNC is needed.
//!
//! - `clone3` (installed first): returns `ENOSYS` for `clone3(2)`, whose flags live in memory a
//!   seccomp filter cannot read; glibc then falls back to `clone(2)`, whose flags `main` checks.
//! - `signals` (installed second): kills the process when `tgkill(2)` targets any process but
//!   the agent itself. The agent's pid is known only at run time: the policy carries the
//!   placeholder [`PID_PLACEHOLDER`], which [`apply`] replaces with `getpid()` in the compiled
//!   program before installing it. This is what keeps signals inside the sandbox on kernels
//!   whose Landlock lacks the signal scope (ABI < 6).
//! - `main`: the allowlist; every other system call kills the whole process (`SIGSYS`). It is
//!   the base policy plus the policy fragments of the enabled collectors
//!   ([`super::fragments`]): `build.rs` compiled every combination, [`apply_with`] picks one.
//!
//! The kernel evaluates every installed filter and keeps the strictest verdict, so `clone3`'s
//! `ERRNO` wins over `main`'s `allow`, and `main`'s `kill_process` wins over `clone3`'s `allow`.
//! `main` does not allow `seccomp(2)` or `prctl(PR_SET_SECCOMP)`, which is why it goes last.

use seccompiler::sock_filter;

use super::fragments;
/// The `clone3` filter, see the module documentation.
static CLONE3_FILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp_clone3.bpf"));
/// The `signals` filter, see the module documentation.
static SIGNALS_FILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp_signals.bpf"));

/// The value `policy/seccomp/<arch>.json` writes where the agent's pid belongs (`0x7ffffeff`,
/// above any pid Linux hands out: `pid_max` is at most 4,194,304).
pub const PID_PLACEHOLDER: u32 = 0x7fff_feff;
/// `BPF_JMP | BPF_JEQ | BPF_K`: the comparison seccompiler emits for an `eq`/`ne` condition.
const BPF_JEQ_K: u16 = 0x15;

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("embedded seccomp filter {name:?} is malformed ({len} bytes)")]
    Malformed { name: &'static str, len: usize },
    #[error(
        "embedded seccomp filter {name:?} carries the pid placeholder {found} times, expected once"
    )]
    Placeholder { name: &'static str, found: usize },
    #[error("installing the seccomp filter {name:?} failed: {source}")]
    Install {
        name: &'static str,
        #[source]
        source: seccompiler::Error,
    },
}

/// Decodes a filter written by `build.rs`.
fn decode(name: &'static str, bytes: &[u8]) -> Result<Vec<sock_filter>, SeccompError> {
    if bytes.is_empty() || bytes.len() % 8 != 0 {
        return Err(SeccompError::Malformed {
            name,
            len: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The embedded `main` filter (the allowlist) of the base policy alone, decoded.
pub fn main_filter() -> Result<Vec<sock_filter>, SeccompError> {
    main_filter_with(fragments::Set::default())
}

/// The embedded `main` filter made of the base policy and the fragments in `set`, decoded
/// (raw `struct sock_filter` arrays, little-endian, written by `build.rs`).
pub fn main_filter_with(set: fragments::Set) -> Result<Vec<sock_filter>, SeccompError> {
    let bytes = fragments::MAIN_VARIANTS
        .get(set.0)
        .ok_or(SeccompError::Malformed {
            name: "main",
            len: 0,
        })?;
    decode("main", bytes)
}

/// The embedded `clone3` filter, decoded.
pub fn clone3_filter() -> Result<Vec<sock_filter>, SeccompError> {
    decode("clone3", CLONE3_FILTER)
}

/// The embedded `signals` filter with the placeholder replaced by `pid`. Exactly one
/// comparison must carry the placeholder, or the policy and this code disagree.
pub fn signals_filter(pid: u32) -> Result<Vec<sock_filter>, SeccompError> {
    let mut program = decode("signals", SIGNALS_FILTER)?;
    let mut found = 0;
    for insn in program
        .iter_mut()
        .filter(|i| i.code == BPF_JEQ_K && i.k == PID_PLACEHOLDER)
    {
        insn.k = pid;
        found += 1;
    }
    if found != 1 {
        return Err(SeccompError::Placeholder {
            name: "signals",
            found,
        });
    }
    Ok(program)
}

/// Installs the embedded base policy on the calling thread: [`apply_with`] and no fragment.
pub fn apply() -> Result<(), SeccompError> {
    apply_with(fragments::Set::default())
}

/// Installs the embedded policy, its `main` filter made of the base rules and the fragments in
/// `set`, on the calling thread. Sets `PR_SET_NO_NEW_PRIVS` as a side effect (seccompiler
/// does, the kernel requires it without `CAP_SYS_ADMIN`).
///
/// Call it on the only thread of the process, after Landlock (whose system calls the policy does
/// not allow) and before the tokio runtime exists. Irreversible.
pub fn apply_with(set: fragments::Set) -> Result<(), SeccompError> {
    // Decode all first so that a malformed blob cannot leave a half-installed policy.
    let clone3 = clone3_filter()?;
    let signals = signals_filter(std::process::id())?;
    let main = main_filter_with(set)?;
    seccompiler::apply_filter(&clone3).map_err(|source| SeccompError::Install {
        name: "clone3",
        source,
    })?;
    seccompiler::apply_filter(&signals).map_err(|source| SeccompError::Install {
        name: "signals",
        source,
    })?;
    seccompiler::apply_filter(&main).map_err(|source| SeccompError::Install {
        name: "main",
        source,
    })?;
    Ok(())
}

/// The seccomp mode of the calling thread as `/proc/thread-self/status` reports it
/// (`0` disabled, `1` strict, `2` filter), or `None` if it cannot be read.
pub fn current_mode() -> Option<u8> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_filters_decode() {
        let main = main_filter().expect("main filter");
        let clone3 = clone3_filter().expect("clone3 filter");
        assert!(main.len() > 50, "main filter suspiciously short");
        assert!(!clone3.is_empty());
        assert!(main.len() <= 4096);
        for mask in 0..fragments::MAIN_VARIANTS.len() {
            let with = main_filter_with(fragments::Set(mask)).expect("variant");
            assert!(with.len() >= main.len(), "a fragment only adds rules");
        }
        assert!(main_filter_with(fragments::Set(fragments::MAIN_VARIANTS.len())).is_err());
    }

    #[test]
    fn signals_filter_carries_the_pid_once() {
        let pid = 4242;
        let program = signals_filter(pid).expect("signals filter");
        let hits = program
            .iter()
            .filter(|i| i.code == BPF_JEQ_K && i.k == pid)
            .count();
        assert_eq!(hits, 1, "the pid must replace exactly one comparison");
        assert!(!program.iter().any(|i| i.k == PID_PLACEHOLDER));
    }

    #[test]
    fn malformed_is_rejected() {
        assert!(decode("x", &[]).is_err());
        assert!(decode("x", &[0; 7]).is_err());
    }
}
