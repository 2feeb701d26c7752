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
        "TCP listener (SIGHUP rebind path)",
        || match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => match l.set_nonblocking(true).and_then(|()| l.local_addr()) {
                Ok(_) => 0,
                Err(_) => 3,
            },
            Err(_) => 2,
        },
    );
    assert_exits_cleanly("socketpair(AF_UNIX) for tokio signals", || {
        match std::os::unix::net::UnixStream::pair() {
            Ok(_) => 0,
            Err(_) => 2,
        }
    });
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
