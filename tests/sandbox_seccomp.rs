//! The real embedded seccomp policy, applied in forked children (the test harness stays
//! unfiltered): forbidden system calls kill the process with SIGSYS, allowed ones work.
//! Needs no privilege.

use monitoring_agent::sandbox::seccomp;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// Writes to stderr without std's locks (another harness thread may hold them at fork time).
fn say(msg: &str) {
    // SAFETY: writing a valid, live buffer of the given length to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Runs `body` in a forked child after installing the policy; returns how the child ended.
/// `body` returns the exit code (0: success).
fn filtered_child(body: fn() -> i32) -> WaitStatus {
    // SAFETY: the child only runs `body` and then `_exit`s; glibc resets its malloc locks in the
    // child after fork, and the child avoids std's stdio locks (see `say`).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match seccomp::apply() {
                Ok(()) => std::panic::catch_unwind(body).unwrap_or(101),
                Err(e) => {
                    say(&format!("seccomp::apply failed: {e}\n"));
                    100
                }
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn assert_killed_by_sigsys(what: &str, body: fn() -> i32) {
    match filtered_child(body) {
        WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
        other => panic!("{what}: expected death by SIGSYS, got {other:?}"),
    }
}

fn assert_exits_cleanly(what: &str, body: fn() -> i32) {
    match filtered_child(body) {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("{what}: expected exit 0 under the filter, got {other:?}"),
    }
}

#[test]
fn execve_kills() {
    assert_killed_by_sigsys("execve", || {
        let path = c"/bin/true";
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: valid NUL-terminated path, NULL-terminated argv and envp arrays.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        1
    });
}

#[test]
fn ptrace_kills() {
    assert_killed_by_sigsys("ptrace", || {
        // SAFETY: PTRACE_TRACEME takes no pointers.
        unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        1
    });
}

#[test]
fn mount_kills() {
    assert_killed_by_sigsys("mount", || {
        // SAFETY: valid NUL-terminated strings and a NULL data pointer.
        unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/mnt".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        1
    });
}

#[test]
fn packet_socket_kills() {
    assert_killed_by_sigsys("socket(AF_PACKET)", || {
        // SAFETY: integer arguments only.
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        1
    });
}

#[test]
fn unix_socket_kills() {
    assert_killed_by_sigsys("socket(AF_UNIX)", || {
        // SAFETY: integer arguments only.
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
        1
    });
}

#[test]
fn udp_socket_kills() {
    assert_killed_by_sigsys("socket(AF_INET, SOCK_DGRAM)", || {
        // SAFETY: integer arguments only.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        1
    });
}

#[test]
fn open_for_writing_kills() {
    assert_killed_by_sigsys("openat(O_WRONLY)", || {
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) };
        1
    });
    assert_killed_by_sigsys("openat(O_RDWR)", || {
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        1
    });
    assert_killed_by_sigsys("openat(O_RDONLY|O_CREAT)", || {
        // SAFETY: valid NUL-terminated path; mode passed for O_CREAT.
        unsafe {
            libc::open(
                c"/tmp/seccomp-test".as_ptr(),
                libc::O_RDONLY | libc::O_CREAT,
                0o600,
            )
        };
        1
    });
}

#[test]
fn fork_kills() {
    // glibc's fork uses clone(SIGCHLD): not a thread, so the clone rule refuses it.
    assert_killed_by_sigsys("fork", || {
        // SAFETY: raw fork; if it were allowed the child would _exit at once.
        let r = unsafe { libc::fork() };
        if r == 0 {
            // SAFETY: ends the unexpected child.
            unsafe { libc::_exit(0) };
        }
        1
    });
}

#[test]
fn executable_mapping_kills() {
    assert_killed_by_sigsys("mmap(PROT_EXEC)", || {
        // SAFETY: anonymous private mapping, no address hint.
        unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        1
    });
    assert_killed_by_sigsys("mprotect(PROT_EXEC)", || {
        // SAFETY: anonymous private mapping, no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return 2;
        }
        // SAFETY: p is the page just mapped.
        unsafe { libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) };
        1
    });
}

#[test]
fn setuid_and_seccomp_changes_kill() {
    assert_killed_by_sigsys("setuid", || {
        // SAFETY: integer argument only.
        unsafe { libc::setuid(0) };
        1
    });
    assert_killed_by_sigsys("prctl(PR_SET_DUMPABLE)", || {
        // SAFETY: integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        1
    });
}

#[test]
fn allowed_operations_work() {
    assert_exits_cleanly("read /proc/stat", || {
        match std::fs::read_to_string("/proc/stat") {
            Ok(s) if s.starts_with("cpu ") => 0,
            _ => 2,
        }
    });
    assert_exits_cleanly("clock_gettime (raw syscall, no vDSO)", || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid, writable timespec.
        let r = unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
        if r == 0 && (ts.tv_sec > 0 || ts.tv_nsec > 0) {
            0
        } else {
            2
        }
    });
    assert_exits_cleanly("spawning a thread (clone3 -> ENOSYS -> clone)", || {
        let h = std::thread::Builder::new()
            .name("worker".into())
            .spawn(|| std::fs::read_to_string("/proc/self/stat").map(|s| s.len()));
        match h.map(|h| h.join()) {
            Ok(Ok(Ok(n))) if n > 0 => 0,
            _ => 2,
        }
    });
    assert_exits_cleanly("clone3 answers ENOSYS", || {
        // SAFETY: a NULL clone_args with size 0 is never dereferenced; the filter answers first.
        let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        if r == -1 && errno == Some(libc::ENOSYS) {
            0
        } else {
            2
        }
    });
    assert_exits_cleanly(
        "socketpair(AF_UNIX) for tokio signals, send without address",
        || {
            let Some((a, b)) = stream_pair() else {
                return 2;
            };
            let mut buf = [0u8; 1];
            // SAFETY: valid buffers of the given lengths; no address.
            let (sent, got) = unsafe {
                (
                    libc::sendto(
                        a,
                        b"x".as_ptr().cast(),
                        1,
                        libc::MSG_NOSIGNAL,
                        std::ptr::null(),
                        0,
                    ),
                    libc::recvfrom(
                        b,
                        buf.as_mut_ptr().cast(),
                        1,
                        0,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    ),
                )
            };
            if sent == 1 && got == 1 && buf == *b"x" {
                0
            } else {
                2
            }
        },
    );
    assert_exits_cleanly(
        "ppoll with a zero timeout on /proc/self/mountinfo (the filesystem collector)",
        || {
            use nix::poll::{ppoll, PollFd, PollFlags};
            use std::os::fd::AsFd;
            let Ok(f) = std::fs::File::open("/proc/self/mountinfo") else {
                return 2;
            };
            let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
            match ppoll(&mut fds, Some(nix::sys::time::TimeSpec::new(0, 0)), None) {
                Ok(_) => 0,
                Err(_) => 2,
            }
        },
    );
    assert_exits_cleanly("metadata, read_dir, statfs, uname", || {
        let ok = std::fs::metadata("/proc/meminfo").is_ok()
            && std::fs::read_dir("/sys/class")
                .map(|d| d.count() > 0)
                .unwrap_or(false)
            && nix::sys::statfs::statfs("/").is_ok()
            && nix::sys::utsname::uname().is_ok();
        if ok {
            0
        } else {
            2
        }
    });
}

/// A named body to run under the filter.
type Case = (&'static str, fn() -> i32);

/// A connected AF_UNIX stream pair (allowed: tokio's signal self-pipe), for the cases below.
fn stream_pair() -> Option<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for the kernel to fill.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    (r == 0).then_some((fds[0], fds[1]))
}

/// A sockaddr_un naming a path, and its length.
fn unix_addr(path: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in a.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    (
        a,
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    )
}

/// No new network endpoint after the sandbox: no socket of any family or protocol, no bind,
/// listen or connect, no destination address on sendto, no TCP Fast Open, no datagram pair,
/// no io_uring, and setsockopt only for TCP_NODELAY.
#[test]
fn new_network_endpoints_kill() {
    let cases: [Case; 14] = [
        ("socket(AF_INET, SOCK_STREAM)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            1
        }),
        ("socket(AF_INET6, SOCK_STREAM)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) };
            1
        }),
        ("socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 262) };
            1
        }),
        ("socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP) };
            1
        }),
        ("socket(AF_NETLINK)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) };
            1
        }),
        ("listen (automatic bind)", || {
            // SAFETY: integer arguments only; fd 0 is whatever it is, the call never runs.
            unsafe { libc::listen(0, 1) };
            1
        }),
        ("bind", || {
            let (a, len) = unix_addr(b"/tmp/monitoring-agent-seccomp-bind");
            // SAFETY: a valid sockaddr_un of the given length.
            unsafe { libc::bind(0, std::ptr::addr_of!(a).cast(), len) };
            1
        }),
        ("connect", || {
            let (a, len) = unix_addr(b"/run/systemd/notify");
            // SAFETY: a valid sockaddr_un of the given length.
            unsafe { libc::connect(0, std::ptr::addr_of!(a).cast(), len) };
            1
        }),
        ("sendto with a destination address", || {
            let Some((a, _)) = stream_pair() else {
                return 2;
            };
            let (addr, len) = unix_addr(b"/run/systemd/notify");
            // SAFETY: a valid buffer and sockaddr_un of the given lengths.
            unsafe {
                libc::sendto(
                    a,
                    b"READY=1".as_ptr().cast(),
                    7,
                    0,
                    std::ptr::addr_of!(addr).cast(),
                    len,
                )
            };
            1
        }),
        ("sendto with MSG_FASTOPEN", || {
            let Some((a, _)) = stream_pair() else {
                return 2;
            };
            // SAFETY: a valid buffer; no address.
            unsafe { libc::sendto(a, b"x".as_ptr().cast(), 1, 0x2000_0000, std::ptr::null(), 0) };
            1
        }),
        ("sendmsg", || {
            let Some((a, _)) = stream_pair() else {
                return 2;
            };
            // SAFETY: msghdr is plain data; all zeroes is an empty message.
            let msg: libc::msghdr = unsafe { std::mem::zeroed() };
            // SAFETY: a valid, empty msghdr.
            unsafe { libc::sendmsg(a, &msg, 0) };
            1
        }),
        ("socketpair(AF_UNIX, SOCK_DGRAM)", || {
            let mut fds = [0i32; 2];
            // SAFETY: fds is a valid array of two ints.
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
            1
        }),
        ("setsockopt(SO_REUSEADDR)", || {
            let Some((a, _)) = stream_pair() else {
                return 2;
            };
            let one: libc::c_int = 1;
            // SAFETY: a valid int option value of the given size.
            unsafe {
                libc::setsockopt(
                    a,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    std::ptr::addr_of!(one).cast(),
                    4,
                )
            };
            1
        }),
        ("io_uring_setup", || {
            // SAFETY: a NULL params pointer; the filter answers before the kernel reads it.
            unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null::<u8>()) };
            1
        }),
    ];
    for (what, body) in cases {
        assert_killed_by_sigsys(what, body);
    }
}

/// Kept descriptors cannot be turned into something else: no O_PATH open (Landlock does not
/// check those), no truncation, and O_APPEND cannot be cleared (no fcntl(F_SETFL)).
#[test]
fn descriptor_abuse_kills() {
    let cases: [Case; 3] = [
        ("openat(O_PATH)", || {
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::open(c"/etc/shadow".as_ptr(), libc::O_PATH) };
            1
        }),
        ("ftruncate", || {
            // SAFETY: integer arguments only.
            unsafe { libc::ftruncate(2, 0) };
            1
        }),
        ("fcntl(F_SETFL)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::fcntl(2, libc::F_SETFL, 0) };
            1
        }),
    ];
    for (what, body) in cases {
        assert_killed_by_sigsys(what, body);
    }
}

/// Signals reach only the agent itself, on every kernel: tgkill to another process kills, and
/// kill, tkill, rt_sigqueueinfo and pidfd_send_signal are not allowed at all.
#[test]
fn signals_to_other_processes_kill() {
    let cases: [Case; 4] = [
        ("tgkill(parent)", || {
            // SAFETY: integer arguments only; signal 0 only probes.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getppid(), libc::getppid(), 0) };
            1
        }),
        ("kill(parent, 0)", || {
            // SAFETY: integer arguments only; signal 0 only probes.
            unsafe { libc::kill(libc::getppid(), 0) };
            1
        }),
        ("tkill(parent, 0)", || {
            // SAFETY: integer arguments only.
            unsafe { libc::syscall(libc::SYS_tkill, libc::getppid(), 0) };
            1
        }),
        ("pidfd_send_signal", || {
            // SAFETY: integer arguments and a NULL siginfo.
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, 0, 0, std::ptr::null::<u8>(), 0) };
            1
        }),
    ];
    for (what, body) in cases {
        assert_killed_by_sigsys(what, body);
    }
    assert_exits_cleanly("tgkill(self, signal 0)", || {
        // SAFETY: integer arguments only; signal 0 only probes the target.
        let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), 0) };
        if r == 0 {
            0
        } else {
            2
        }
    });
}

#[test]
fn panic_with_backtrace_is_not_killed() {
    // A panicking handler thread with RUST_BACKTRACE=full: the message, the thread name, the
    // backtrace (getcwd, reading the binary's debug info) all run under the filter.
    assert_exits_cleanly("panic with RUST_BACKTRACE=full", || {
        // SAFETY: the child is single-threaded at this point.
        unsafe { std::env::set_var("RUST_BACKTRACE", "full") };
        let h = std::thread::Builder::new()
            .name("handler".into())
            .spawn(|| panic!("request handler panicked (test)"));
        match h.map(|h| h.join()) {
            Ok(Err(_)) => 0,
            _ => 2,
        }
    });
}

#[test]
fn abort_dies_of_sigabrt_not_sigsys() {
    // panic = "abort" in release: abort() must reach SIGABRT (rt_sigprocmask, getpid, gettid,
    // tgkill), not be cut short by the filter.
    match filtered_child(|| std::process::abort()) {
        WaitStatus::Signaled(_, Signal::SIGABRT, _) => {}
        other => panic!("expected SIGABRT, got {other:?}"),
    }
}

#[test]
fn seccomp_mode_is_filter_in_child() {
    assert_exits_cleanly("Seccomp: 2 in /proc/thread-self/status", || {
        if seccomp::current_mode() == Some(2) {
            0
        } else {
            2
        }
    });
}
