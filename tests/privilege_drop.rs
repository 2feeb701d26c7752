//! The privilege drop, as root, in forked children (it is irreversible): uid/gid/groups,
//! capability sets, securebits, no_new_privs, no way back to root, a privileged port still
//! bindable. Also user resolution and the PID directory preparation.
//!
//! These tests need root; run as another user they fail with a message saying so.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use monitoring_agent::privilege::{self, PrivilegeError, Target, UserSpec};
use monitoring_agent::sandbox::verify;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// A uid and gid that exist nowhere in /etc/passwd or /etc/group on a test machine.
const UID: u32 = 65533;
const GID: u32 = 65533;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the privilege tests must run as root (they switch users)"
    );
}

/// Writes to stderr without std's locks (another harness thread may hold them at fork time).
fn say(msg: &str) {
    // SAFETY: writing a valid, live buffer of the given length to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

fn in_child(body: impl FnOnce() -> Result<(), String>) -> i32 {
    // SAFETY: the child only runs `body` and then `_exit`s; glibc resets its malloc locks in the
    // child after fork, and the child avoids std's stdio locks (see `say`).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(Ok(())) => 0,
                Ok(Err(msg)) => {
                    say(&format!("{msg}\n"));
                    1
                }
                Err(_) => 101,
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit normally: {other:?}"),
        },
    }
}

fn status_field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn expect_field(text: &str, name: &str, want: &str) -> Result<(), String> {
    let got = status_field(text, name);
    if got == want {
        Ok(())
    } else {
        Err(format!("{name}: got {got:?}, want {want:?}"))
    }
}

#[test]
fn drop_to_numeric_user_keeps_only_net_bind_service() {
    require_root();
    let code = in_child(|| {
        let target = Target {
            uid: UID,
            gid: GID,
            name: None,
        };
        let report = privilege::drop_privileges(Some(&target), privilege::Keep::NetBindService)
            .map_err(|e| e.to_string())?;
        if !(report.privileges_dropped
            && report.no_new_privs
            && report.capabilities
            && report.securebits_locked
            && report.net_bind_service)
        {
            return Err(format!("incomplete report: {report:?}"));
        }
        // A thread started after the drop inherits everything: check it too.
        let worker = std::thread::spawn(|| {
            std::fs::read_to_string("/proc/thread-self/status").map_err(|e| e.to_string())
        });
        let worker_status = worker.join().map_err(|_| "worker panicked")??;
        for text in [
            std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?,
            worker_status,
        ] {
            let ids = format!("{UID}\t{UID}\t{UID}\t{UID}");
            expect_field(&text, "Uid", &ids)?;
            let gids = format!("{GID}\t{GID}\t{GID}\t{GID}");
            expect_field(&text, "Gid", &gids)?;
            expect_field(&text, "Groups", "")?;
            expect_field(&text, "CapPrm", "0000000000000400")?;
            expect_field(&text, "CapEff", "0000000000000400")?;
            expect_field(&text, "CapInh", "0000000000000000")?;
            expect_field(&text, "CapAmb", "0000000000000000")?;
            expect_field(&text, "CapBnd", "0000000000000400")?;
            expect_field(&text, "NoNewPrivs", "1")?;
        }
        // No way back.
        if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
            return Err("setuid(0) succeeded".into());
        }
        if nix::unistd::setresuid(0.into(), 0.into(), 0.into()).is_ok() {
            return Err("setresuid(0) succeeded".into());
        }
        if nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(0)]).is_ok() {
            return Err("setgroups([0]) succeeded".into());
        }
        // Securebits: NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE set, all locked, KEEP_CAPS
        // off.
        // SAFETY: PR_GET_SECUREBITS takes no pointer.
        let bits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
        if bits != 0xef {
            return Err(format!("securebits {bits:#x}, want 0xef"));
        }
        if caps::raise(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .is_ok()
        {
            return Err("CAP_SYS_ADMIN could be raised".into());
        }
        // What the capability is kept for: binding a port below 1024.
        std::net::TcpListener::bind("127.0.0.1:80")
            .or_else(|_| std::net::TcpListener::bind("127.0.0.1:81"))
            .map_err(|e| format!("binding a privileged port after the drop: {e}"))?;
        // Root's files are out of reach now.
        if std::fs::read_to_string("/etc/shadow").is_ok() {
            return Err("/etc/shadow readable after the drop".into());
        }
        // The operator check sees every thread hardened except for seccomp (not applied here).
        let threads = verify::threads(Path::new("/proc"), std::process::id() as i32)
            .map_err(|e| e.to_string())?;
        for v in verify::judge(&threads) {
            if v.layer != "seccomp" && !v.ok {
                return Err(format!("verify {}: {}", v.layer, v.detail));
            }
        }
        Ok(())
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn drop_without_target_as_non_root_clears_capabilities() {
    require_root();
    let code = in_child(|| {
        // Become an ordinary user the classic way first (all capabilities lost), then call the
        // non-root path.
        let gid = nix::unistd::Gid::from_raw(GID);
        nix::unistd::setgroups(&[]).map_err(|e| e.to_string())?;
        nix::unistd::setresgid(gid, gid, gid).map_err(|e| e.to_string())?;
        let uid = nix::unistd::Uid::from_raw(UID);
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| e.to_string())?;
        if privilege::resolve(&UserSpec::default())
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Err("resolve must return None when not root".into());
        }
        let report = privilege::drop_privileges(None, privilege::Keep::NetBindService)
            .map_err(|e| e.to_string())?;
        if !(report.privileges_dropped && report.no_new_privs && report.capabilities) {
            return Err(format!("report: {report:?}"));
        }
        if report.net_bind_service {
            return Err("CAP_NET_BIND_SERVICE appeared from nowhere".into());
        }
        let text = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        expect_field(&text, "CapPrm", "0000000000000000")?;
        expect_field(&text, "CapEff", "0000000000000000")?;
        expect_field(&text, "NoNewPrivs", "1")?;
        Ok(())
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn drop_refuses_root_target() {
    require_root();
    let code = in_child(|| {
        let root = Target {
            uid: 0,
            gid: 0,
            name: Some("root".into()),
        };
        match privilege::drop_privileges(Some(&root), privilege::Keep::NetBindService) {
            Err(PrivilegeError::RootTarget { .. }) => Ok(()),
            other => Err(format!("expected RootTarget, got {other:?}")),
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn resolve_as_root() {
    require_root();
    // Missing user: a clear message with the command to create it, no fallback.
    let e = privilege::resolve(&UserSpec::Name("no-such-user-monitoring-agent".into()))
        .expect_err("missing user");
    let msg = e.to_string();
    assert!(msg.contains("useradd --system"), "{msg}");
    assert!(msg.contains("no-such-user-monitoring-agent"), "{msg}");
    // Root refused, by name and by number.
    assert!(matches!(
        privilege::resolve(&UserSpec::Name("root".into())),
        Err(PrivilegeError::RootTarget { .. })
    ));
    assert!(matches!(
        privilege::resolve(&"0:0".parse().expect("spec")),
        Err(PrivilegeError::RootTarget { .. })
    ));
    assert!(matches!(
        privilege::resolve(&format!("{UID}:0").parse().expect("spec")),
        Err(PrivilegeError::RootTarget { what: "group" })
    ));
    // A numeric uid without passwd entry needs its group spelled out.
    assert!(matches!(
        privilege::resolve(&UID.to_string().parse().expect("spec")),
        Err(PrivilegeError::GroupUnknown { .. })
    ));
    let t = privilege::resolve(&format!("{UID}:{GID}").parse().expect("spec"))
        .expect("numeric user")
        .expect("as root, a target");
    assert_eq!((t.uid, t.gid, t.name), (UID, GID, None));
    // An existing system user resolves to its passwd ids (daemon is uid 1 on Debian).
    if let Ok(Some(d)) = nix::unistd::User::from_name("daemon") {
        let t = privilege::resolve(&UserSpec::Name("daemon".into()))
            .expect("daemon")
            .expect("target");
        assert_eq!((t.uid, t.gid), (d.uid.as_raw(), d.gid.as_raw()));
    }
}

#[test]
fn prepare_owned_dir_creates_and_chowns() {
    require_root();
    let base = tempfile::tempdir_in("/tmp").expect("tempdir");
    let dir = base.path().join("run-monitoring-agent");
    let target = Target {
        uid: UID,
        gid: GID,
        name: None,
    };
    privilege::prepare_owned_dir(&dir, &target).expect("create");
    let meta = std::fs::metadata(&dir).expect("created");
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.gid()), (UID, GID));
    assert_eq!(meta.mode() & 0o7777, 0o755);
    // Idempotent.
    privilege::prepare_owned_dir(&dir, &target).expect("again");
    // Refusals: a symlink, a world-writable directory, a file.
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).expect("symlink");
    assert!(privilege::prepare_owned_dir(&link, &target).is_err());
    let open = base.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    assert!(privilege::prepare_owned_dir(&open, &target).is_err());
    let file = base.path().join("file");
    std::fs::write(&file, b"").expect("file");
    assert!(privilege::prepare_owned_dir(&file, &target).is_err());
    assert!(privilege::prepare_owned_dir(Path::new("/run"), &target).is_err());
    assert_eq!(std::fs::metadata("/run").expect("/run").uid(), 0);
}
