//! The real Landlock rules, applied in forked children that report by exit code (Landlock is
//! irreversible; the harness stays unrestricted), and the kernel ABI oracle.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

use monitoring_agent::privilege::PrivilegeReport;
use monitoring_agent::sandbox::{self, landlock, By, Mode, Spec};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// Environment variable naming the Landlock ABI the kernel must offer (CI sets it).
const EXPECT_ABI_ENV: &str = "MONITORING_AGENT_EXPECT_LANDLOCK_ABI";

/// Writes to stderr without std's locks (another harness thread may hold them at fork time).
fn say(msg: &str) {
    // SAFETY: writing a valid, live buffer of the given length to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Runs `body` in a forked child; returns its exit code (or panics if it was killed).
fn in_child(body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `body` and then `_exit`s; glibc resets its malloc locks in the
    // child after fork, and the child avoids std's stdio locks (see `say`).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit normally: {other:?}"),
        },
    }
}

/// The rules the agent applies for a default configuration.
fn agent_rules() -> landlock::Rules {
    landlock::Rules {
        read_only: vec![PathBuf::from("/proc"), PathBuf::from("/sys")],
        ..landlock::Rules::default()
    }
}

fn denied<T>(what: &str, r: std::io::Result<T>) -> bool {
    match r {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => true,
        Err(e) => {
            say(&format!("{what}: expected EACCES/EPERM, got {e}\n"));
            false
        }
        Ok(_) => {
            say(&format!("{what}: expected EACCES/EPERM, it succeeded\n"));
            false
        }
    }
}

fn allowed<T>(what: &str, r: std::io::Result<T>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            say(&format!("{what}: expected success, got {e}\n"));
            false
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn landlock_abi_matches_expectation() {
    let expected: i32 = match std::env::var(EXPECT_ABI_ENV) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            panic!("{EXPECT_ABI_ENV}={v:?} is not a number (e.g. 7 for Linux 6.15+)")
        }),
        Err(_) => panic!(
            "{EXPECT_ABI_ENV} is not set: state the Landlock ABI this kernel must offer \
             (e.g. {EXPECT_ABI_ENV}=7 for Linux 6.15+, 0 for no Landlock), so that a kernel \
             lacking it cannot pass the sandbox tests silently"
        ),
    };
    let actual = landlock::kernel_abi().unwrap_or(0);
    assert_eq!(
        actual, expected,
        "the kernel offers Landlock ABI {actual}, {EXPECT_ABI_ENV} expects {expected}"
    );
}

#[test]
fn rules_allow_proc_and_sys_and_deny_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let target = listener.local_addr().expect("addr");
    let port = free_port();
    let scratch = tempfile::tempdir_in("/tmp").expect("tempdir");
    let scratch_file = scratch.path().join("written-under-landlock");
    let parent_pid = nix::unistd::getppid();

    let code = in_child(|| {
        let outcome = match landlock::restrict(&agent_rules(), true) {
            Ok(o) => o,
            Err(e) => {
                say(&format!("landlock::restrict: {e}\n"));
                return 2;
            }
        };
        if !(outcome.enforced_abi == landlock::PINNED_ABI_NUMBER && outcome.ruleset_fully_enforced)
        {
            say(&format!("not fully enforced: {outcome:?}\n"));
            return 3;
        }
        let checks = [
            allowed("read /proc/stat", std::fs::read_to_string("/proc/stat")),
            allowed(
                "read /proc/meminfo",
                std::fs::read_to_string("/proc/meminfo"),
            ),
            allowed("list /sys/class/net", std::fs::read_dir("/sys/class/net")),
            allowed(
                "read /sys/devices/system/cpu/online",
                std::fs::read_to_string("/sys/devices/system/cpu/online"),
            ),
            denied(
                "read /etc/hostname",
                std::fs::read_to_string("/etc/hostname"),
            ),
            denied("list /root", std::fs::read_dir("/root")),
            denied(
                "create a file under /tmp",
                std::fs::write(&scratch_file, b"x"),
            ),
            denied(
                "write /proc/sys/kernel/hostname",
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/proc/sys/kernel/hostname"),
            ),
            denied(
                "TCP connect to a loopback listener",
                TcpStream::connect(target),
            ),
            // Listeners are bound before the sandbox: no port at all afterwards.
            denied(
                "TCP bind on any port",
                TcpListener::bind(("127.0.0.1", port)),
            ),
            denied(
                "execute /bin/true",
                std::process::Command::new("/bin/true").status(),
            ),
            // Scoped signals: a process outside the sandbox (the test harness) is off limits.
            denied(
                "signal the parent",
                nix::sys::signal::kill(parent_pid, None).map_err(std::io::Error::from),
            ),
        ];
        if checks.iter().all(|ok| *ok) {
            0
        } else {
            4
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
    assert!(!scratch_file.exists());
    drop(listener);
}

#[test]
fn abstract_unix_sockets_are_scoped() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let name = format!("monitoring-agent-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let _outside = UnixDatagram::bind_addr(&addr).expect("abstract socket outside the sandbox");
    let code = in_child(|| {
        if let Err(e) = landlock::restrict(&agent_rules(), true) {
            say(&format!("landlock::restrict: {e}\n"));
            return 2;
        }
        let sock = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(_) => return 3,
        };
        if denied(
            "connect to an abstract socket outside",
            sock.connect_addr(&addr),
        ) {
            0
        } else {
            4
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn remove_file_right_is_limited_to_the_pid_dir() {
    let piddir = tempfile::tempdir_in("/tmp").expect("tempdir");
    let other = tempfile::tempdir_in("/tmp").expect("tempdir");
    let pidfile = piddir.path().join("agent.pid");
    let otherfile = other.path().join("agent.pid");
    std::fs::write(&pidfile, b"1\n").expect("pid file");
    std::fs::write(&otherfile, b"1\n").expect("other file");
    let rules = landlock::Rules {
        read_only: vec![PathBuf::from("/proc")],
        remove_file_dirs: vec![piddir.path().to_path_buf()],
        ..landlock::Rules::default()
    };
    let code = in_child(|| {
        if let Err(e) = landlock::restrict(&rules, true) {
            say(&format!("landlock::restrict: {e}\n"));
            return 2;
        }
        let ok = allowed("unlink the PID file", std::fs::remove_file(&pidfile))
            && denied("unlink elsewhere", std::fs::remove_file(&otherfile))
            && denied(
                "create in the PID directory",
                std::fs::write(piddir.path().join("new"), b"x"),
            );
        if ok {
            0
        } else {
            4
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
    assert!(!pidfile.exists());
    assert!(otherfile.exists());
}

#[test]
fn missing_read_only_path_fails_in_enforce_mode() {
    let code = in_child(|| {
        let rules = landlock::Rules {
            read_only: vec![PathBuf::from("/nonexistent/monitoring-agent")],
            ..landlock::Rules::default()
        };
        match landlock::restrict(&rules, true) {
            Err(e) if e.layer() == "landlock_fs" && e.to_string().contains("/nonexistent") => 0,
            Err(e) => {
                say(&format!("unexpected error: {e}\n"));
                2
            }
            Ok(_) => 3,
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn full_sandbox_in_enforce_mode_reports_every_layer() {
    let code = in_child(|| {
        // This child is not privilege-separated; state the report the privilege step would give.
        let privileges = PrivilegeReport {
            privileges_dropped: true,
            no_new_privs: true,
            capabilities: true,
            ..PrivilegeReport::default()
        };
        let spec = Spec {
            read_only: vec![PathBuf::from("/proc"), PathBuf::from("/sys")],
            ..Spec::default()
        };
        let e = match sandbox::apply(&spec, Mode::Enforce, &privileges) {
            Ok(e) => e,
            Err(err) => {
                say(&format!("sandbox::apply: {err}\n"));
                return 2;
            }
        };
        if !e.complete() || e.landlock_abi < 6 {
            say(&format!("incomplete: {e:?}\n"));
            return 3;
        }
        let families = e.families();
        // The layers, who enforces them, the two ABIs, and the policy fragments (none here).
        if families.len() != 5
            || families[0].samples.len() != 7
            || families[4].samples.iter().any(|s| s.value != 0.0)
        {
            return 4;
        }
        let ok = allowed("read /proc/stat", std::fs::read_to_string("/proc/stat"))
            && denied(
                "read /etc/hostname",
                std::fs::read_to_string("/etc/hostname"),
            )
            && monitoring_agent::sandbox::seccomp::current_mode() == Some(2);
        if ok {
            0
        } else {
            5
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn enforce_mode_refuses_root_and_names_the_layer() {
    let code = in_child(|| {
        let privileges = PrivilegeReport {
            privileges_dropped: false,
            no_new_privs: true,
            capabilities: true,
            ..PrivilegeReport::default()
        };
        match sandbox::apply(&Spec::default(), Mode::Enforce, &privileges) {
            Err(e) if e.layer() == Some("privileges_dropped") => 0,
            Err(e) => {
                say(&format!("unexpected error: {e}\n"));
                2
            }
            Ok(_) => 3,
        }
    });
    assert_eq!(code, 0, "see the child's messages above");
}

#[test]
fn off_mode_applies_nothing() {
    let code = in_child(|| {
        let e = match sandbox::apply(&Spec::default(), Mode::Off, &PrivilegeReport::default()) {
            Ok(e) => e,
            Err(_) => return 2,
        };
        let untouched = std::fs::read_to_string("/etc/hostname").is_ok()
            && monitoring_agent::sandbox::seccomp::current_mode() == Some(0);
        if !e.seccomp && !e.landlock_fs.holds() && untouched {
            0
        } else {
            3
        }
    });
    assert_eq!(code, 0);
}

/// The privilege report of a child that is not privilege-separated: state what the privilege
/// step would give.
fn dropped() -> PrivilegeReport {
    PrivilegeReport {
        privileges_dropped: true,
        no_new_privs: true,
        capabilities: true,
        ..PrivilegeReport::default()
    }
}

/// Enforce mode on every Landlock ABI the agent may meet (5.13's 1 to 6.12's 6, reproduced
/// with `max_abi` on this kernel): it starts, every layer holds, and the layers the
/// ABI lacks are reported as compensated by seccomp, exactly per the table in SECURITY.md.
#[test]
fn enforce_mode_starts_on_every_landlock_abi_and_names_compensated_layers() {
    use By::{Landlock, LandlockAndSeccomp as Both, Seccomp};
    let expected = [
        (1, [Both, Seccomp, Seccomp]),
        (2, [Both, Seccomp, Seccomp]),
        (3, [Both, Seccomp, Seccomp]),
        (4, [Both, Landlock, Seccomp]),
        (5, [Landlock, Landlock, Seccomp]),
        (6, [Landlock, Landlock, Landlock]),
    ];
    for (abi, by) in expected {
        let code = in_child(|| {
            let spec = Spec {
                read_only: vec![PathBuf::from("/proc")],
                max_abi: abi,
                ..Spec::default()
            };
            let e = match sandbox::apply(&spec, Mode::Enforce, &dropped()) {
                Ok(e) => e,
                Err(err) => {
                    say(&format!("ABI {abi}: sandbox::apply: {err}\n"));
                    return 2;
                }
            };
            let got = [e.landlock_fs, e.landlock_net, e.landlock_scope];
            if !e.complete() || e.landlock_enforced_abi != abi || got != by {
                say(&format!("ABI {abi}: expected {by:?}, got {e:?}\n"));
                return 3;
            }
            // Landlock of ABI 1 already confines reads.
            if !denied(
                "read /etc/hostname",
                std::fs::read_to_string("/etc/hostname"),
            ) {
                return 4;
            }
            let info = e.families();
            let text = format!("{info:?}");
            if by.iter().any(|b| b.compensated()) && !text.contains("seccomp") {
                say(&format!(
                    "ABI {abi}: the metrics do not name seccomp: {text}\n"
                ));
                return 5;
            }
            0
        });
        assert_eq!(
            code, 0,
            "Landlock ABI {abi}: see the child's messages above"
        );
    }
}

/// `--sandbox strict` takes no stand-in: with an older ABI it refuses before applying
/// anything, naming the first layer the ABI lacks; with the pinned ABI it applies.
#[test]
fn strict_mode_refuses_an_older_abi_and_accepts_the_pinned_one() {
    for (abi, layer) in [
        (2, Some("landlock_fs")),
        (4, Some("landlock_fs")),
        (5, Some("landlock_scope")),
        (6, None),
    ] {
        let code = in_child(|| {
            let spec = Spec {
                read_only: vec![PathBuf::from("/proc")],
                max_abi: abi,
                ..Spec::default()
            };
            match (sandbox::apply(&spec, Mode::Strict, &dropped()), layer) {
                (Err(e), Some(l)) if e.layer() == Some(l) && e.to_string().contains("strict") => {
                    // Refused before anything irreversible: nothing applied.
                    if std::fs::read_to_string("/etc/hostname").is_ok()
                        && monitoring_agent::sandbox::seccomp::current_mode() == Some(0)
                    {
                        0
                    } else {
                        say(&format!("ABI {abi}: refused, but something was applied\n"));
                        6
                    }
                }
                (Ok(e), None)
                    if e.complete() && !e.layers().iter().any(|(_, b)| b.compensated()) =>
                {
                    0
                }
                (Err(e), _) => {
                    say(&format!("ABI {abi}: unexpected error {e}\n"));
                    2
                }
                (Ok(e), _) => {
                    say(&format!("ABI {abi}: unexpected success {e:?}\n"));
                    3
                }
            }
        });
        assert_eq!(
            code, 0,
            "Landlock ABI {abi}: see the child's messages above"
        );
    }
}

/// A kernel (or an outer filter, as systemd 252's `@system-service` with EPERM) that offers no
/// Landlock: enforce and strict refuse before applying anything, naming landlock_fs and the
/// cause; best-effort starts and reports the Landlock layers it cannot hold.
#[test]
fn no_landlock_refuses_in_enforce_and_strict_mode() {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    for mode in [Mode::Enforce, Mode::Strict, Mode::BestEffort] {
        let code = in_child(|| {
            // Landlock's calls answer EPERM, as under a unit that forgot to allow them.
            let rules = [
                libc::SYS_landlock_create_ruleset,
                libc::SYS_landlock_add_rule,
                libc::SYS_landlock_restrict_self,
            ]
            .into_iter()
            .map(|n| (n, Vec::new()))
            .collect();
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EPERM as u32),
                std::env::consts::ARCH.try_into().expect("arch"),
            )
            .expect("filter");
            let program: BpfProgram = filter.try_into().expect("bpf");
            seccompiler::apply_filter(&program).expect("outer filter");
            let spec = Spec {
                read_only: vec![PathBuf::from("/proc")],
                ..Spec::default()
            };
            match (mode, sandbox::apply(&spec, mode, &dropped())) {
                (Mode::Enforce | Mode::Strict, Err(e)) => {
                    let msg = e.to_string();
                    if e.layer() == Some("landlock_fs") && msg.contains("outer seccomp filter") {
                        // Refused before anything irreversible of its own: reads still work.
                        if std::fs::read_to_string("/etc/hostname").is_ok() {
                            0
                        } else {
                            6
                        }
                    } else {
                        say(&format!("{mode}: unexpected error {msg}\n"));
                        2
                    }
                }
                (Mode::BestEffort, Ok(e)) => {
                    if !e.landlock_fs.holds() && e.landlock_net.holds() && e.seccomp {
                        0
                    } else {
                        say(&format!("best-effort: unexpected report {e:?}\n"));
                        3
                    }
                }
                (_, r) => {
                    say(&format!(
                        "{mode}: unexpected outcome {:?}\n",
                        r.map(|e| e.summary())
                    ));
                    4
                }
            }
        });
        assert_eq!(code, 0, "{mode}: see the child's messages above");
    }
}

#[test]
fn mode_parses() {
    assert_eq!("strict".parse::<Mode>().ok(), Some(Mode::Strict));
    assert_eq!("enforce".parse::<Mode>().ok(), Some(Mode::Enforce));
    assert_eq!("best-effort".parse::<Mode>().ok(), Some(Mode::BestEffort));
    assert_eq!("off".parse::<Mode>().ok(), Some(Mode::Off));
    let e = "maybe".parse::<Mode>().expect_err("invalid mode");
    assert!(e.to_string().contains("\"maybe\""));
    assert_eq!(Mode::default(), Mode::Enforce);
}
