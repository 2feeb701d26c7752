//! The PID file: created and locked (`flock`, non-blocking) at start-up, held for the life of
//! the process. The lock, not the file's existence, says whether an instance runs, so a file
//! left by `kill -9` never blocks the next start.
//!
//! The pid is written through a read-write descriptor that is closed again at once; the lock is
//! held through a second, read-only descriptor, the only one kept across the sandbox. The
//! sandboxed agent therefore cannot rewrite or truncate its PID file. At exit it removes the
//! file when its user may (the file's directory is the user's own, and Landlock grants
//! remove-file there); otherwise the file stays, with its lock released, which is what marks
//! it stale (systemd removes its `RuntimeDirectory=` anyway).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the PID file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("already running (pid {pid}): {path} is locked")]
    AlreadyRunning { path: PathBuf, pid: String },
    #[error("PID file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A locked PID file holding our pid.
pub struct PidFile {
    path: PathBuf,
    /// Read-only: holds the lock and nothing else. Never dropped: nix's `Flock` would
    /// `flock(LOCK_UN)` on drop, which the sandbox forbids (a compromised agent could
    /// otherwise unlock and let a second instance start). The descriptor, and the lock with
    /// it, goes when the process exits.
    _lock: std::mem::ManuallyDrop<Flock<File>>,
    /// Whether the agent's user may remove the file at exit.
    removable: bool,
}

impl PidFile {
    /// Opens (creating if needed) and locks `path`, then writes our pid. Another live instance
    /// holding the lock makes this fail without changing the file. A path that is not a
    /// regular file with a single link (a FIFO, a device, a symbolic or hard link) is refused
    /// without blocking (see [`super::open_regular`]).
    ///
    /// `removable`: the file's directory lets the (dropped) agent remove it at exit.
    pub fn acquire(path: &Path, removable: bool) -> Result<PidFile, PidFileError> {
        let io = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = super::open_regular(path, libc::O_RDWR, 0o644).map_err(io)?;
        // The lock's descriptor: the same file, opened read-only.
        let reader = super::open_regular(path, libc::O_RDONLY, 0o644).map_err(io)?;
        let (w, r) = (
            writer.metadata().map_err(io)?,
            reader.metadata().map_err(io)?,
        );
        if (w.dev(), w.ino()) != (r.dev(), r.ino()) {
            return Err(io(std::io::Error::other(
                "refusing to use it: it was replaced while being opened",
            )));
        }
        let lock = match Flock::lock(reader, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, nix::Error::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = (&writer).take(64).read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(PidFileError::AlreadyRunning {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_string()
                    },
                });
            }
            Err((_, e)) => return Err(io(std::io::Error::from(e))),
        };
        writer.set_len(0).map_err(io)?;
        writer
            .write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        drop(writer);
        if !removable {
            log::info!(
                "PID file {}: its directory is not the agent's user's, so the file stays after \
                 exit; its released lock marks it stale",
                path.display()
            );
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: std::mem::ManuallyDrop::new(lock),
            removable,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file at exit when the agent's user may; otherwise leaves it (said at
    /// start-up). The lock is released when the process exits, a moment later.
    pub fn remove(self) {
        if self.removable {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!(
                    "could not remove PID file {} ({e}); its lock is released at exit",
                    self.path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("agent.pid");
        let first = PidFile::acquire(&path, true).expect("first");
        let before = std::fs::read_to_string(&path).expect("read");
        assert_eq!(before, format!("{}\n", std::process::id()));
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        match PidFile::acquire(&path, true) {
            Err(PidFileError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second acquire succeeded"),
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
        first.remove();
        assert!(!path.exists());
    }

    #[test]
    fn stale_file_does_not_block() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("agent.pid");
        std::fs::write(&path, "999999 and more text than a pid\n").expect("write");
        let pf = PidFile::acquire(&path, false).expect("stale file is taken over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
        pf.remove();
        assert!(path.exists(), "a non-removable PID file stays");
    }

    #[test]
    fn the_kept_descriptor_is_read_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("agent.pid");
        let pf = PidFile::acquire(&path, true).expect("acquire");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&**pf._lock);
        // SAFETY: F_GETFL on a descriptor we own; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY);
        pf.remove();
    }

    #[test]
    fn fifo_symlink_hard_link_and_device_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo.pid");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        let target = dir.path().join("target");
        std::fs::write(&target, "keep\n").expect("write");
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let hard = dir.path().join("hard.pid");
        std::fs::hard_link(&target, &hard).expect("hard link");
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (link.as_path(), "a symbolic link"),
            (hard.as_path(), "a hard link"),
            (Path::new("/dev/null"), "a device"),
        ] {
            match PidFile::acquire(path, false) {
                Err(PidFileError::Io { source, .. }) => {
                    assert!(source.to_string().contains(what), "{path:?}: {source}")
                }
                Err(e) => panic!("{path:?}: unexpected error {e}"),
                Ok(_) => panic!("{path:?} was accepted"),
            }
        }
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep\n");
    }
}
