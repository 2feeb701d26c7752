//! Checks a running agent from the outside: reads `/proc/PID/task/*/status` for every thread
//! and gives each layer a verdict. Landlock is not visible in `/proc`; its layers are reported
//! by the agent itself (`monitoring_agent_sandbox_enforced`).

use std::path::{Path, PathBuf};

/// The verdict on one layer, over every thread of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub layer: &'static str,
    pub ok: bool,
    /// The layer holds, but through the seccomp filter standing in for a Landlock feature the
    /// kernel lacks (see [`crate::sandbox::By::compensated`]).
    pub compensated: bool,
    /// What was seen (the first offending thread, or the common value).
    pub detail: String,
}

/// Why a process could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: field {field} missing or malformed")]
    Field { path: PathBuf, field: &'static str },
}

/// The fields of one thread's `status` file that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadStatus {
    pub tid: String,
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub no_new_privs: u8,
    pub seccomp: u8,
}

/// `CAP_NET_BIND_SERVICE` as a capability mask.
pub const NET_BIND_SERVICE_MASK: u64 = 1 << 10;

/// Parses the text of `/proc/PID/task/TID/status` (pure, for tests).
pub fn parse_status(tid: &str, text: &str, path: &Path) -> Result<ThreadStatus, VerifyError> {
    let field = |name: &'static str| -> Result<&str, VerifyError> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .ok_or(VerifyError::Field {
                path: path.to_path_buf(),
                field: name,
            })
    };
    let bad = |name: &'static str| VerifyError::Field {
        path: path.to_path_buf(),
        field: name,
    };
    let ids = |name: &'static str| -> Result<[u32; 4], VerifyError> {
        let v: Vec<u32> = field(name)?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad(name))?;
        v.try_into().map_err(|_| bad(name))
    };
    let hex = |name: &'static str| -> Result<u64, VerifyError> {
        u64::from_str_radix(field(name)?, 16).map_err(|_| bad(name))
    };
    let num = |name: &'static str| -> Result<u8, VerifyError> {
        field(name)?.parse().map_err(|_| bad(name))
    };
    Ok(ThreadStatus {
        tid: tid.to_string(),
        uid: ids("Uid")?,
        gid: ids("Gid")?,
        groups: field("Groups")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad("Groups"))?,
        cap_inh: hex("CapInh")?,
        cap_prm: hex("CapPrm")?,
        cap_eff: hex("CapEff")?,
        cap_bnd: hex("CapBnd")?,
        cap_amb: hex("CapAmb")?,
        no_new_privs: num("NoNewPrivs")?,
        seccomp: num("Seccomp")?,
    })
}

/// Reads the status of every thread of `pid` under `proc_root` (normally `/proc`).
pub fn threads(proc_root: &Path, pid: i32) -> Result<Vec<ThreadStatus>, VerifyError> {
    let task = proc_root.join(pid.to_string()).join("task");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&task).map_err(io(&task))? {
        let entry = entry.map_err(io(&task))?;
        let path = entry.path().join("status");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A thread that exited between readdir and open (ENOENT), or between open and
            // read (ESRCH: procfs finds no task behind the open file). Seen in CI as
            // `--check-sandbox` exiting 2 while a runtime thread ended.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                continue
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let tid = entry.file_name().to_string_lossy().into_owned();
        out.push(parse_status(&tid, &text, &path)?);
    }
    Ok(out)
}

/// Judges the layers visible from `/proc` over all threads.
pub fn judge(threads: &[ThreadStatus]) -> Vec<Verdict> {
    fn over(
        layer: &'static str,
        threads: &[ThreadStatus],
        ok: impl Fn(&ThreadStatus) -> bool,
        show: impl Fn(&ThreadStatus) -> String,
    ) -> Verdict {
        match threads.iter().find(|t| !ok(t)) {
            Some(bad) => Verdict {
                layer,
                ok: false,
                compensated: false,
                detail: format!("thread {}: {}", bad.tid, show(bad)),
            },
            None => Verdict {
                layer,
                ok: !threads.is_empty(),
                compensated: false,
                detail: threads
                    .first()
                    .map(|t| format!("{} threads: {}", threads.len(), show(t)))
                    .unwrap_or_else(|| "no threads".into()),
            },
        }
    }
    vec![
        over(
            "privileges_dropped",
            threads,
            // A supplementary group that is the thread's own gid grants nothing (systemd's
            // `User=` puts the primary group there); any other one is a privilege kept.
            |t| {
                !t.uid.contains(&0)
                    && !t.gid.contains(&0)
                    && t.groups.iter().all(|g| t.gid.contains(g))
            },
            |t| format!("Uid {:?} Gid {:?} Groups {:?}", t.uid, t.gid, t.groups),
        ),
        over(
            "no_new_privs",
            threads,
            |t| t.no_new_privs == 1,
            |t| format!("NoNewPrivs {}", t.no_new_privs),
        ),
        over(
            "capabilities",
            threads,
            |t| {
                t.cap_prm & !NET_BIND_SERVICE_MASK == 0
                    && t.cap_eff & !NET_BIND_SERVICE_MASK == 0
                    && t.cap_inh == 0
                    && t.cap_amb == 0
                    && t.cap_bnd & !NET_BIND_SERVICE_MASK == 0
            },
            |t| {
                format!(
                    "CapPrm {:#x} CapEff {:#x} CapInh {:#x} CapAmb {:#x} CapBnd {:#x}",
                    t.cap_prm, t.cap_eff, t.cap_inh, t.cap_amb, t.cap_bnd
                )
            },
        ),
        over(
            "seccomp",
            threads,
            |t| t.seccomp == 2,
            |t| format!("Seccomp {}", t.seccomp),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDENED: &str = "Name:\tmonitoring-agen\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nGroups:\t\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t0000000000000400\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";

    #[test]
    fn hardened_thread_passes() {
        let t = parse_status("1", HARDENED, Path::new("x")).expect("parse");
        assert!(judge(&[t]).iter().all(|v| v.ok));
    }

    #[test]
    fn own_group_as_supplementary_passes_another_fails() {
        let own = HARDENED.replace("Groups:\t\n", "Groups:\t997 \n");
        let t = parse_status("1", &own, Path::new("x")).expect("parse");
        assert!(judge(&[t]).iter().all(|v| v.ok));
        let other = HARDENED.replace("Groups:\t\n", "Groups:\t4 997 \n");
        let t = parse_status("1", &other, Path::new("x")).expect("parse");
        let v = judge(&[t]);
        assert!(!v[0].ok, "{:?}", v[0].detail);
    }

    #[test]
    fn root_thread_fails() {
        let text = HARDENED
            .replace("Uid:\t998\t998\t998\t998", "Uid:\t0\t0\t0\t0")
            .replace("Seccomp:\t2", "Seccomp:\t0");
        let ok = parse_status("1", HARDENED, Path::new("x")).expect("parse");
        let bad = parse_status("2", &text, Path::new("x")).expect("parse");
        let v = judge(&[ok, bad]);
        assert!(!v[0].ok && v[0].detail.starts_with("thread 2"));
        assert!(v[1].ok);
        assert!(!v[3].ok);
    }

    #[test]
    fn live_process_parses() {
        let me = threads(Path::new("/proc"), std::process::id() as i32).expect("own threads");
        assert!(!me.is_empty());
    }
}
