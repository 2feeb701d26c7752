//! The PID file: created and locked (`flock`, non-blocking) at start-up, held for the life of
//! the process. The lock, not the file's existence, says whether an instance runs, so a file
//! left by `kill -9` never blocks the next start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
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
    file: Flock<File>,
}

impl PidFile {
    /// Opens (creating if needed) and locks `path`, then writes our pid. Another live instance
    /// holding the lock makes this fail without changing the file.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io = |source| PidFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut file, nix::Error::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
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
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file at exit. Where the (unprivileged, sandboxed) process may not unlink
    /// it, empties it through the descriptor it holds instead and says so: the released lock
    /// already makes the file harmless.
    pub fn remove(self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) => {
                let _ = self.file.set_len(0);
                log::warn!(
                    "could not remove PID file {} ({e}); emptied it instead",
                    self.path.display()
                );
            }
        }
        // The lock goes with the descriptor.
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("agent.pid");
        let first = PidFile::acquire(&path).expect("first");
        let before = std::fs::read_to_string(&path).expect("read");
        assert_eq!(before, format!("{}\n", std::process::id()));
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        match PidFile::acquire(&path) {
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
        std::fs::write(&path, "999999\n").expect("write");
        let pf = PidFile::acquire(&path).expect("stale file is taken over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
        pf.remove();
    }
}
