//! seccomp: installs the BPF filters compiled at build time from `policy/seccomp/<arch>.json`.
//!
//! Two filters are installed on the calling thread, which must be the only thread: the tokio
//! threads created afterwards inherit them, so no TSYNC is needed.
//!
//! - `clone3` (installed first): returns `ENOSYS` for `clone3(2)`, whose flags live in memory a
//!   seccomp filter cannot read; glibc then falls back to `clone(2)`, whose flags `main` checks.
//! - `main`: the allowlist; every other system call kills the whole process (`SIGSYS`).
//!
//! The kernel evaluates every installed filter and keeps the strictest verdict, so `clone3`'s
//! `ERRNO` wins over `main`'s `allow`, and `main`'s `kill_process` wins over `clone3`'s `allow`.
//! `main` does not allow `seccomp(2)` or `prctl(PR_SET_SECCOMP)`, which is why it goes last.

use seccompiler::sock_filter;

/// The `main` filter: raw `struct sock_filter` array, little-endian, written by `build.rs`.
static MAIN_FILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp_main.bpf"));
/// The `clone3` filter, see the module documentation.
static CLONE3_FILTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp_clone3.bpf"));

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("embedded seccomp filter {name:?} is malformed ({len} bytes)")]
    Malformed { name: &'static str, len: usize },
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

/// The embedded `main` filter (the allowlist), decoded.
pub fn main_filter() -> Result<Vec<sock_filter>, SeccompError> {
    decode("main", MAIN_FILTER)
}

/// The embedded `clone3` filter, decoded.
pub fn clone3_filter() -> Result<Vec<sock_filter>, SeccompError> {
    decode("clone3", CLONE3_FILTER)
}

/// Installs the embedded policy on the calling thread. Sets `PR_SET_NO_NEW_PRIVS` as a side
/// effect (seccompiler does, the kernel requires it without `CAP_SYS_ADMIN`).
///
/// Call it on the only thread of the process, after Landlock (whose system calls the policy does
/// not allow) and before the tokio runtime exists. Irreversible.
pub fn apply() -> Result<(), SeccompError> {
    // Decode both first so that a malformed blob cannot leave a half-installed policy.
    let clone3 = clone3_filter()?;
    let main = main_filter()?;
    seccompiler::apply_filter(&clone3).map_err(|source| SeccompError::Install {
        name: "clone3",
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
    }

    #[test]
    fn malformed_is_rejected() {
        assert!(decode("x", &[]).is_err());
        assert!(decode("x", &[0; 7]).is_err());
    }
}
