//! The root phase trusts nothing in a directory the agent's user can write (DESIGN.md §5): a
//! FIFO, a device, a symbolic link or a hard link planted as the PID file or the log file is
//! refused with one clear line and exit status 1, without blocking and without touching what
//! the link points to. Each case runs the real binary as root in a directory owned by the
//! agent's user, as systemd's `RuntimeDirectory=` and `LogsDirectory=` would prepare it.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

/// Plants `what` at `path` (owned by the agent's user, as an attacker running as that user
/// would leave it).
fn plant(dir: &TestDir, path: &Path, what: &str, target: &Path) {
    match what {
        "fifo" => nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo"),
        "symlink" => std::os::unix::fs::symlink(target, path).expect("symlink"),
        "hard link" => fs::hard_link(target, path).expect("hard link"),
        "device" => nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod /dev/null's twin"),
        other => panic!("unknown plant {other}"),
    }
    if what != "hard link" {
        // A hard link shares the target's owner: chowning it would change the target.
        std::os::unix::fs::lchown(path, Some(dir.uid), Some(dir.gid)).expect("lchown");
    }
}

/// Starts the agent with `which` ("PID file" or "log file") replaced by `what`; asserts one
/// clear line, exit 1, nothing left running, and the link target untouched.
fn refused(which: &str, what: &str, expect: &str) {
    let dir = TestDir::new();
    // A root-owned file the planted link points to (think /etc/shadow).
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("secret");
    fs::write(&secret, "root-only content\n").expect("secret");
    let before = fs::metadata(&secret).expect("stat secret");
    let path = if which == "PID file" {
        dir.pid_file()
    } else {
        dir.log_file()
    };
    plant(&dir, &path, what, &secret);

    let mut args = dir.file_args();
    args.extend(["-p".into(), free_port().to_string()]);
    // `run` waits a bounded time and fails the test if the agent hangs.
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{which} planted as {what}: exit status {:?}\n{err}",
        out.status
    );
    // Start-up lines (the version, syslog's absence here) may come first; the refusal is
    // one line, the only error.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("refusing") || l.contains("ERROR"))
        .collect();
    assert!(
        lines.len() == 1 && lines[0].contains(expect) && lines[0].contains("refusing"),
        "{which} planted as {what}: expected one line naming {expect:?}, got:\n{err}"
    );
    assert!(
        lines[0].contains(&path.display().to_string()),
        "the line names the path: {err}"
    );
    assert_nothing_running(&dir);
    let after = fs::metadata(&secret).expect("stat secret");
    assert_eq!(
        fs::read_to_string(&secret).expect("read secret"),
        "root-only content\n",
        "{which} planted as {what}: the target was written"
    );
    assert_eq!(
        (before.uid(), before.mode(), before.len()),
        (after.uid(), after.mode(), after.len()),
        "{which} planted as {what}: the target changed"
    );
}

#[test]
fn fifo_as_log_file_is_refused_without_hanging() {
    refused("log file", "fifo", "a FIFO");
}

#[test]
fn fifo_as_pid_file_is_refused_without_hanging() {
    refused("PID file", "fifo", "a FIFO");
}

/// The case: a FIFO as the PID file while something holds a lock on it.
#[test]
fn locked_fifo_as_pid_file_is_refused_without_hanging() {
    let dir = TestDir::new();
    let pid = dir.pid_file();
    plant(&dir, &pid, "fifo", Path::new("/"));
    // Hold a lock on the FIFO (opened without blocking, read side).
    let holder = fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&pid)
        .expect("open fifo");
    let _lock = nix::fcntl::Flock::lock(holder, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("lock fifo");
    let mut args = dir.file_args();
    args.extend(["-p".into(), free_port().to_string()]);
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a FIFO") && err.contains("refusing"), "{err}");
}

#[test]
fn symlink_as_log_file_is_refused() {
    refused("log file", "symlink", "a symbolic link");
}

#[test]
fn symlink_as_pid_file_is_refused() {
    refused("PID file", "symlink", "a symbolic link");
}

#[test]
fn hard_link_as_log_file_is_refused() {
    refused("log file", "hard link", "a hard link");
}

#[test]
fn hard_link_as_pid_file_is_refused() {
    refused("PID file", "hard link", "a hard link");
}

#[test]
fn device_as_log_file_is_refused() {
    refused("log file", "device", "a device");
}

#[test]
fn device_as_pid_file_is_refused() {
    refused("PID file", "device", "a device");
}

/// `OpenOptions` with `O_NONBLOCK`, so a FIFO opens at once.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}
