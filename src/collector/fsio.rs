//! Reading `/proc` and `/sys` files cheaply. Files on procfs and sysfs are kept open and re-read
//! from offset 0 with `pread` on every scrape: the kernel generates their content on each read,
//! so the result is as fresh as a new `open`, without the path walk, the Landlock check, the
//! `open`/`statx`/`close` and the allocation of a new kernel file. Measured on the reference
//! machine with perf: `open`, `close` and `statx` were about 40% of the agent's CPU per scrape.
//!
//! Other files (the textfile directory, a regular-file fixture tree) are read afresh every
//! time: they may be replaced by rename, and a kept descriptor would read the old file.
//!
//! Staleness: a sysfs descriptor follows its kernel object, so after a device is renamed
//! (`eth0` → `eth1`) a kept `/sys/class/net/eth0/...` descriptor would read the renamed
//! device. Every kept descriptor is dropped when it fails (the object went away) and the
//! whole cache is dropped every [`MAX_AGE`], which bounds how long such a rename can show.
//! Per-process files (`/proc/<pid>/...`) are never kept: processes come and go.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most descriptors kept open (a busy host has a few hundred procfs/sysfs files per scrape).
const MAX_CACHED: usize = 2048;
/// The whole cache is dropped this often (see the module docs).
const MAX_AGE: Duration = Duration::from_secs(60);

/// A kept descriptor. Reads through it are serialised: two scrapes reading one seq_file in
/// chunks at once would move each other's position and could tear a record.
type Kept = Arc<Mutex<File>>;

struct Cache {
    files: HashMap<PathBuf, Kept>,
    since: Instant,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Reads a whole file as UTF-8 (invalid sequences replaced), keeping procfs and sysfs files
/// open for the next scrape.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref();
    let mut buf = Vec::with_capacity(4096);
    read_into(path, &mut buf)?;
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads a whole file into `buf` (cleared first).
pub fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if let Some(kept) = cached(path) {
        let read = match kept.lock() {
            Ok(file) => pread_all(&file, buf),
            Err(_) => Err(io::Error::other("poisoned")),
        };
        match read {
            Ok(()) => return Ok(()),
            // The kernel object went away or changed: forget it and open the path afresh.
            Err(_) => forget(path),
        }
        buf.clear();
    }
    let mut file = File::open(path)?;
    if keepable(path, &file) {
        pread_all(&file, buf)?;
        remember(path, file);
    } else {
        file.read_to_end(buf)?;
    }
    Ok(())
}

fn pread_all(file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut offset = 0u64;
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        let len = buf.len();
        let spare = buf.capacity() - len;
        buf.resize(len + spare, 0);
        let n = match file.read_at(buf.get_mut(len..).unwrap_or_default(), offset) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        };
        buf.truncate(len + n);
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
    }
}

/// Only procfs and sysfs files, and no per-process ones.
fn keepable(path: &Path, file: &File) -> bool {
    let per_process = path.components().any(|c| match c {
        Component::Normal(s) => s
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }) || path.components().any(|c| c.as_os_str() == "self");
    if per_process {
        return false;
    }
    match nix::sys::statfs::fstatfs(file) {
        Ok(st) => {
            let t = st.filesystem_type();
            t == nix::sys::statfs::PROC_SUPER_MAGIC || t == nix::sys::statfs::SYSFS_MAGIC
        }
        Err(_) => false,
    }
}

fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> Option<T> {
    let mut guard = CACHE.lock().ok()?;
    let cache = guard.get_or_insert_with(|| Cache {
        files: HashMap::new(),
        since: Instant::now(),
    });
    if cache.since.elapsed() > MAX_AGE {
        cache.files.clear();
        cache.since = Instant::now();
    }
    Some(f(cache))
}

fn cached(path: &Path) -> Option<Kept> {
    with_cache(|c| c.files.get(path).cloned()).flatten()
}

fn remember(path: &Path, file: File) {
    with_cache(|c| {
        if c.files.len() < MAX_CACHED {
            c.files
                .insert(path.to_path_buf(), Arc::new(Mutex::new(file)));
        }
    });
}

fn forget(path: &Path) {
    with_cache(|c| c.files.remove(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_files_are_kept_and_fresh() {
        let p = Path::new("/proc/uptime");
        let first = read_to_string(p).expect("read");
        assert!(cached(p).is_some(), "a procfs file is kept open");
        std::thread::sleep(Duration::from_millis(20));
        let second = read_to_string(p).expect("read again");
        assert_ne!(
            first, second,
            "re-reading through the kept descriptor gives fresh content"
        );
        assert_eq!(std::fs::read_to_string(p).expect("std").lines().count(), 1);
    }

    #[test]
    fn regular_and_per_process_files_are_not_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("a.prom");
        std::fs::write(&f, "one\n").expect("write");
        assert_eq!(read_to_string(&f).expect("read"), "one\n");
        assert!(cached(&f).is_none());
        // Replaced by rename: the new content is read.
        let tmp = dir.path().join("a.tmp");
        std::fs::write(&tmp, "two\n").expect("write");
        std::fs::rename(&tmp, &f).expect("rename");
        assert_eq!(read_to_string(&f).expect("read"), "two\n");

        let own = PathBuf::from(format!("/proc/{}/stat", std::process::id()));
        read_to_string(&own).expect("read");
        assert!(cached(&own).is_none());
        read_to_string(Path::new("/proc/self/stat")).expect("read");
        assert!(cached(Path::new("/proc/self/stat")).is_none());
    }

    #[test]
    fn large_files_are_read_whole() {
        let p = Path::new("/proc/self/maps");
        let ours = read_to_string(p).expect("read");
        assert!(ours.ends_with('\n') && ours.lines().count() > 10);
        let sys = Path::new("/proc/stat");
        let a = read_to_string(sys).expect("read");
        let b = read_to_string(sys).expect("read");
        assert_eq!(a.lines().count(), b.lines().count());
        assert!(b.contains("\nbtime "));
    }

    #[test]
    fn missing_files_are_errors() {
        let e = read_to_string(Path::new("/proc/no-such-file")).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
