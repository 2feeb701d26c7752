//! The classic daemon: detaching from the terminal, the PID file, and the log destinations.
//! Everything here runs on the main thread before any other thread exists.

pub mod logging;
pub mod notify;
pub mod pidfile;
pub mod reload_channel;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, fork, setsid, ForkResult};

/// Why the process could not become a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("daemonizing: {what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("daemonizing: opening /dev/null: {0}")]
    DevNull(#[source] std::io::Error),
}

/// Opens a file the root phase writes to (the PID file, the log file) in a directory that the
/// agent's user may control, trusting nothing found there: the path must not be a symbolic
/// link (`O_NOFOLLOW`), and what it opens must be a regular file with a single link, so a
/// FIFO, a device, a socket or a hard link to another file (`/etc/shadow`) is refused. It
/// never blocks: `O_NONBLOCK` makes opening a FIFO return at once (regular files ignore the
/// flag), and the type is checked with `lstat` before opening (no device is ever opened) and
/// with `fstat` after (no swap in between).
///
/// `flags` are the access flags (`O_RDWR`, `O_WRONLY | O_APPEND`, ...); `O_CREAT` is added
/// unless the access is read-only.
pub fn open_regular(path: &Path, flags: i32, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let refuse = |what: &str| {
        std::io::Error::other(format!(
            "refusing to use it: it is {what}, not a regular file with a single link"
        ))
    };
    let describe = |t: std::fs::FileType| {
        if t.is_symlink() {
            "a symbolic link"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        }
    };
    let before = match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return Err(refuse(describe(m.file_type()))),
        Ok(m) if m.nlink() != 1 => return Err(refuse("a hard link")),
        Ok(m) => Some((m.dev(), m.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let file = std::fs::OpenOptions::new()
        .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
        .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .append(flags & libc::O_APPEND != 0)
        .create(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse(describe(meta.file_type())));
    }
    if meta.nlink() != 1 {
        return Err(refuse("a hard link"));
    }
    if before.is_some_and(|b| b != (meta.dev(), meta.ino())) {
        return Err(std::io::Error::other(
            "refusing to use it: it was replaced while being opened",
        ));
    }
    Ok(file)
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> DaemonError {
    move |source| DaemonError::Sys { what, source }
}

/// The daemon's end of the start-up report pipe: the launching command waits on it and exits
/// with the status the daemon reports.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// No one is waiting (foreground mode).
    pub fn none() -> Self {
        Readiness { pipe: None }
    }

    /// Whether a launching command waits for the report (daemon mode, not yet reported).
    pub fn is_waiting(&self) -> bool {
        self.pipe.is_some()
    }

    /// Tells the launching command that the daemon serves; it exits 0.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"READY\n");
        }
    }

    /// Tells the launching command that start-up failed; it prints `msg` and exits `code`.
    pub fn failed(&mut self, code: i32, msg: &str) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(format!("ERROR {code} {}\n", msg.replace('\n', " ")).as_bytes());
        }
    }
}

/// Forks twice with `setsid` in between, so the daemon is no session leader and can never
/// reacquire a controlling terminal; `chdir("/")`, umask 027, closes every inherited
/// descriptor and points 0/1/2 at `/dev/null`.
///
/// Returns in the daemon only. The launching process waits for the daemon's report and exits
/// from here with the daemon's status (0 once it serves).
///
/// Must be called while the process has a single thread.
pub fn daemonize() -> Result<Readiness, DaemonError> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;

    // SAFETY: the process is single-threaded here (start-up, before the runtime exists), so
    // the child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Parent { child } => {
            drop(write_end);
            // The intermediate child exits right after the second fork.
            let _ = waitpid(child, None);
            std::process::exit(wait_for_report(read_end));
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(sys("setsid"))?;
    // SAFETY: still single-threaded; the intermediate child only exits.
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Parent { .. } => {
            // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers and
            // buffered stdio, which belong to the launching process.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    chdir("/").map_err(sys("chdir /"))?;
    nix::sys::stat::umask(Mode::from_bits_truncate(0o027));
    close_inherited_fds(write_end.as_raw_fd())?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(DaemonError::DevNull)?;
    nix::unistd::dup2_stdin(&devnull).map_err(sys("dup2 stdin"))?;
    nix::unistd::dup2_stdout(&devnull).map_err(sys("dup2 stdout"))?;
    nix::unistd::dup2_stderr(&devnull).map_err(sys("dup2 stderr"))?;
    Ok(Readiness {
        pipe: Some(File::from(write_end)),
    })
}

/// Closes every descriptor from 3 up except `keep`.
fn close_inherited_fds(keep: i32) -> Result<(), DaemonError> {
    let ranges = [
        (3u32, (keep as u32).saturating_sub(1)),
        (keep as u32 + 1, u32::MAX),
    ];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range only closes descriptors; none in these ranges is owned by a Rust
        // object still in use (the only descriptor we keep is `keep`).
        let rc = unsafe { libc::close_range(first, last, 0) };
        if rc != 0 {
            return Err(DaemonError::Sys {
                what: "close_range",
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

/// In the launching process: waits for the daemon's report and returns the exit status.
fn wait_for_report(read_end: OwnedFd) -> i32 {
    let mut text = String::new();
    let _ = File::from(read_end).read_to_string(&mut text);
    let line = text.lines().next().unwrap_or("");
    if line == "READY" {
        return 0;
    }
    if let Some(rest) = line.strip_prefix("ERROR ") {
        let (code, msg) = rest.split_once(' ').unwrap_or(("1", rest));
        eprintln!("monitoring-agent: {msg}");
        return code.parse().unwrap_or(1);
    }
    eprintln!("monitoring-agent: the daemon exited during start-up without a report");
    1
}
