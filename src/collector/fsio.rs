//! Reading `/proc` and `/sys` files cheaply. Files on procfs and sysfs are kept open and re-read
//! from offset 0 with `pread` on every scrape: the kernel generates their content on each read,
//! so the result is as fresh as a new `open`, without the path walk, the Landlock check, the
//! `open`/`statx`/`close` and the allocation of a new kernel file. Measured on the reference
//! machine with perf: `open`, `close` and `statx` were about 40% of the agent's CPU per scrape.
//!
//! A procfs file is read until a read returns 0 (a seq_file hands over at most a page of
//! records a read), unless its reader knows how long its records can be ([`Records`]). A
//! sysfs attribute is read once: its whole content comes in the first read
//! ([`ReadKind::OneShow`]).
//!
//! Other files (the textfile directory, a regular-file fixture tree) are read afresh every
//! time: they may be replaced by rename, and a kept descriptor would read the old file.
//!
//! Staleness: a sysfs descriptor follows its kernel object, so after a device is renamed
//! (`eth0` → `eth1`) a kept `/sys/class/net/eth0/...` descriptor would read the renamed
//! device. Every kept descriptor is dropped when it fails (the object went away) and the
//! whole cache is dropped every [`MAX_AGE`], which bounds how long such a rename can show.
//! Per-process files (`/proc/<pid>/...`) are never kept: processes come and go, and a number
//! can name another process later. The agent's own (`/proc/self/...`: the process collector's
//! `stat` and `limits`, the filesystem collector's `mountinfo`) are kept like any other: the
//! process they name is the one holding the descriptor.
//!
//! A read that fails with an error the attribute itself gives while its object exists
//! (`EINVAL`, `EOPNOTSUPP`, `ENODATA`, `EBUSY`, `EAGAIN`: the `speed` of an interface that is
//! down) keeps the descriptor: reopening would only fail the same way, at the price of an
//! `openat`, `fstat`, `fstatfs` and `close` on every scrape.
//!
//! Directories: a procfs or sysfs directory is kept open too, and each listing rewinds it
//! (`lseek` to 0) and reads it again (`getdents64`): kernfs and procfs list a directory's
//! children as they are at the time of the read, so the listing is as fresh as a new `open`
//! (issue 12: the `openat`, `fstat` and `close` of about ten directories per scrape, path walk
//! and Landlock check included, were about 40 µs per scrape). A listing that comes back
//! empty is not kept: a removed directory lists empty through an old descriptor (its children
//! are removed first), so the next listing opens the path afresh and sees a directory created
//! again under that name; [`MAX_AGE`] bounds the rest, as for files. A procfs or sysfs
//! directory found empty that way (`/sys/class/power_supply` and `/sys/class/thermal` on a
//! host with neither: an `openat`, two `getdents64` and a `close` each, on every scrape) is
//! remembered empty like an absent path: it is listed again once the cache is dropped, so an
//! entry that appears (a device, a module loaded) shows within [`MAX_AGE`], as it would had
//! the directory itself been absent. Other directories (the textfile directory) are listed
//! afresh every time, empty or not.
//!
//! Negative cache: a procfs or sysfs path that does not exist (`ENOENT`: a module not loaded,
//! hardware absent; or `ENOTDIR`: a file where the path expects a directory, as
//! `/sys/fs/xfs/stats/stats/stats` for the xfs collector's per-device pattern) is remembered
//! with its error, and answered that error without a system call until the cache is dropped
//! ([`MAX_AGE`]), so a module loaded or a device that appears is seen within that time.
//! Whether the path is on procfs or sysfs is asked once, of its nearest existing ancestor,
//! when the miss is first seen; other trees (fixtures, the textfile directory) are not cached,
//! but for udev's database, which its reader names ([`note_missing_anywhere`]).
//! [`missing_error`] and [`note_missing`] let directory listings and `metadata` share it.
//!
//! Hostile or broken trees: every file is opened with `O_NONBLOCK` and must be a regular file
//! (checked with `fstat` on the open descriptor), so a FIFO, socket or device planted where a
//! collector expects a file fails at once instead of blocking the collector for good; and no
//! more than [`MAX_FILE_BYTES`] are read from one file, so a file that returns more data on
//! every read (or a huge one) fails instead of filling memory. `O_NONBLOCK` is allowed by the
//! seccomp policy's `openat` rule (it checks only the access mode, `O_CREAT`, `O_TRUNC` and
//! `O_PATH`) and changes nothing for regular files.

use rustc_hash::{FxHashMap, FxHashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most descriptors kept open (a busy host has a few hundred procfs/sysfs files per scrape).
const MAX_CACHED: usize = 2048;
/// The whole cache is dropped this often (see the module docs).
const MAX_AGE: Duration = Duration::from_secs(60);

/// Most bytes read from one `/proc`, `/sys` or other collector file: the largest real ones
/// (`/proc/net/ipv6_route` with a full routing table, `/proc/self/mountstats` of a big NFS
/// client) stay well below it.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// What an open finds that is not a regular file, in words for the error.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without ever blocking in `open(2)` (`O_NONBLOCK`: a FIFO nobody
/// writes returns at once) and only if it is a regular file (`fstat` on the descriptor, so a
/// symlink to a FIFO is caught too). A socket fails the open itself (`ENXIO`).
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_regular_sized(path).map(|(file, _)| file)
}

/// [`open_regular`], with the size `fstat` gave.
fn open_regular_sized(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {}, not a regular file", path.display(), kind_of(t)),
        ));
    }
    Ok((file, meta.len()))
}

/// The error for a file larger than `cap`.
pub fn too_large(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {cap} bytes (the per-file read cap)"),
    )
}

/// Reads `file` from its position into `buf` (appending), at most `cap` bytes: one more is an
/// error ([`too_large`]).
pub fn read_capped(file: &mut File, cap: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let start = buf.len();
    file.take(cap.saturating_add(1)).read_to_end(buf)?;
    if (buf.len() - start) as u64 > cap {
        buf.truncate(start);
        return Err(too_large(cap));
    }
    Ok(())
}

/// Reads a whole file's bytes (see [`read_into`]).
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    read_into(path.as_ref(), &mut buf)?;
    Ok(buf)
}

/// A kept descriptor. Reads through it are serialised: two scrapes reading one seq_file in
/// chunks at once would move each other's position and could tear a record.
type Kept = Arc<KeptFile>;

struct KeptFile {
    file: Mutex<File>,
    read: ReadKind,
}

/// How much of a file one read gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadKind {
    /// Read until a read returns 0 (a sysfs binary attribute).
    UntilEnd,
    /// A procfs file: read until a read returns 0, but where its reader knows how long its
    /// records can be ([`Records`]). A seq_file hands over records while they fit in its
    /// buffer (a page at first, larger only after a record did not fit in it), so a short
    /// read does not by itself mean the end.
    Procfs,
    /// A sysfs attribute (`show`): sysfs gives it the size of a page (`PAGE_SIZE`; a binary
    /// attribute has its own size instead), and its whole content is made by one `show()` of
    /// less than a page, handed over in the first read when the buffer holds a page (kernel
    /// `sysfs_kf_seq_show` and `sysfs_kf_read`, the same since 3.14). A first read that left
    /// room in the buffer is therefore the whole file, and the read that would return 0 is
    /// not made: about 80 system calls fewer per scrape, a third of its `pread`s (issue 12).
    OneShow,
}

/// Keyed by a path's bytes with FxHash, not by `Path` with std's SipHash: the keys are the
/// agent's own paths, not a client's input, and `Path`'s component-wise hashing and comparing
/// were about 5% of a scrape's user-space instructions (issue 12, callgrind). Two spellings of
/// one path (`a//b`) are two keys: a second descriptor, never a wrong one.
struct Cache {
    files: FxHashMap<Box<[u8]>, Kept>,
    /// Kept procfs and sysfs directories (see the module docs), listed under their lock.
    dirs: FxHashMap<Box<[u8]>, Arc<Mutex<rustix::fs::Dir>>>,
    /// procfs and sysfs paths found absent (see the module docs), with the error they gave
    /// (`ENOENT` or `ENOTDIR`), given again to whoever asks.
    missing: FxHashMap<Box<[u8]>, i32>,
    /// procfs and sysfs directories found empty (see the module docs).
    empty: FxHashSet<Box<[u8]>>,
    /// Directories whose absent entries are not on procfs or sysfs (`/run/udev/data` on a
    /// host without udev): a miss under one is not cached and needs no `statfs` walk to tell.
    foreign: FxHashSet<Box<[u8]>>,
    since: Instant,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

thread_local! {
    /// Each thread's read buffer ([`with_scratch`]).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's read buffer (empty, with the capacity earlier reads left), so
/// that a read allocates nothing but its result. A fresh 4 KiB buffer per file read was about
/// 50 allocations of the glibc "large" size class per scrape, each of which makes glibc
/// consolidate its fast bins (issue 12: `malloc_consolidate`, `unlink_chunk`). A nested call
/// (a parser reading another file) gets a buffer of its own. Buffers above 1 MiB are freed.
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = SCRATCH.with(|s| s.take());
    buf.clear();
    let out = f(&mut buf);
    if buf.capacity() <= 1 << 20 {
        SCRATCH.with(|s| s.set(buf));
    }
    out
}

/// Reads a whole file as UTF-8 (invalid sequences replaced), keeping procfs and sysfs files
/// open for the next scrape. The string is allocated at its exact length.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    read_str_with(path.as_ref(), str::to_owned)
}

/// Reads a whole file as UTF-8 (invalid sequences replaced) into this thread's read buffer
/// and gives it to `f`, without allocating for it.
pub fn read_str_with<T>(path: &Path, f: impl FnOnce(&str) -> T) -> io::Result<T> {
    read_records_str_with(path, Records::Unknown, f)
}

/// [`read_str_with`], telling the reader what is known of the file's records.
fn read_records_str_with<T>(
    path: &Path,
    records: Records,
    f: impl FnOnce(&str) -> T,
) -> io::Result<T> {
    with_scratch(|buf| {
        read_into_with(path, buf, records)?;
        // `from_utf8` first: its check is far cheaper than the lossy decoder's.
        Ok(match std::str::from_utf8(buf) {
            Ok(s) => f(s),
            Err(_) => f(&String::from_utf8_lossy(buf)),
        })
    })
}

/// What a reader knows of a procfs file's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    Unknown,
    /// A seq_file whose records (lines) are never longer than this many bytes. A read stops
    /// short of the buffer only at the end, or when the next record would not fit in the
    /// seq_file's buffer (at least a page: kernel `seq_read_iter`); so a read that left room
    /// in ours and that much room in a page was the last, and the read that would return 0
    /// is not made. That read is not free: for `/proc/net/udp` it walks the whole UDP hash
    /// table again (`udp_get_first`, about 2% of a scrape's CPU on the reference host).
    AtMost(usize),
}

/// [`read_to_string`] for a procfs seq_file whose records are at most `max_record` bytes
/// ([`Records::AtMost`]): the same content, one read fewer when it fits in a page.
pub fn read_records_to_string(path: &Path, max_record: usize) -> io::Result<String> {
    read_records_str_with(path, Records::AtMost(max_record), str::to_owned)
}

/// Reads a whole file into `buf` (cleared first): a regular file only, never blocking in
/// `open`, at most [`MAX_FILE_BYTES`].
pub fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    read_into_with(path, buf, Records::Unknown)
}

fn read_into_with(path: &Path, buf: &mut Vec<u8>, records: Records) -> io::Result<()> {
    buf.clear();
    let (kept, missing) = lookup(path);
    if let Some(errno) = missing {
        return Err(io::Error::from_raw_os_error(errno));
    }
    if let Some(kept) = kept {
        let read = match kept.file.lock() {
            Ok(file) => pread_all(&file, buf, kept.read, records),
            Err(_) => Err(io::Error::other("poisoned")),
        };
        match read {
            Ok(()) => return Ok(()),
            // The attribute refuses to be read now; its object is still there.
            Err(e) if attribute_error(&e) => return Err(e),
            // The kernel object went away or changed: forget it and open the path afresh.
            Err(_) => forget(path),
        }
        buf.clear();
    }
    let (mut file, size) = match open_regular_sized(path) {
        Ok(f) => f,
        Err(e) => {
            note_missing(path, &e);
            return Err(e);
        }
    };
    if let Some(kind) = keepable(path, &file, size) {
        let read = pread_all(&file, buf, kind, records);
        if read.is_ok() || read.as_ref().is_err_and(attribute_error) {
            remember(path, file, kind);
        }
        read?;
    } else {
        read_capped(&mut file, MAX_FILE_BYTES, buf)?;
    }
    Ok(())
}

/// Reads a whole file from offset 0 through a descriptor kept by its owner (one that `fsio`
/// would not keep itself, e.g. PID 1's mount table opened before the privilege drop).
pub fn pread_to_string(file: &File) -> io::Result<String> {
    let mut buf = Vec::with_capacity(4096);
    pread_all(file, &mut buf, ReadKind::UntilEnd, Records::Unknown)?;
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn pread_all(file: &File, buf: &mut Vec<u8>, kind: ReadKind, records: Records) -> io::Result<()> {
    let start = buf.len();
    let mut offset = 0u64;
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        if kind == ReadKind::OneShow && offset == 0 {
            buf.reserve(page_size());
        }
        let room = buf.capacity() - buf.len();
        // Straight into the spare capacity: no zeroing of the buffer before each read (it
        // was a visible part of a scrape's CPU: issue 12).
        let n = match rustix::io::pread(file, rustix::buffer::spare_capacity(buf), offset) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                buf.truncate(start);
                return Err(e.into());
            }
        };
        if n == 0 {
            return Ok(());
        }
        if last_read(kind, records, offset, n, room) {
            return Ok(());
        }
        offset += n as u64;
        if offset > MAX_FILE_BYTES {
            buf.clear();
            return Err(too_large(MAX_FILE_BYTES));
        }
    }
}

/// What a directory entry is, from the directory's own record of it (`d_type`), or from
/// `lstat` where the file system does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
    Other,
}

impl FileKind {
    pub fn is_dir(self) -> bool {
        self == FileKind::Dir
    }
    pub fn is_file(self) -> bool {
        self == FileKind::File
    }
    pub fn is_symlink(self) -> bool {
        self == FileKind::Symlink
    }
    fn of(t: std::fs::FileType) -> FileKind {
        if t.is_dir() {
            FileKind::Dir
        } else if t.is_file() {
            FileKind::File
        } else if t.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        }
    }
}

/// One entry of a directory listing ([`list_dir`]): the subset of `std::fs::DirEntry` the
/// collectors use.
#[derive(Debug)]
pub struct DirEntry {
    dir: Arc<Path>,
    name: std::ffi::OsString,
    /// `None`: the listing did not say (`DT_UNKNOWN`); [`DirEntry::file_type`] asks `lstat`.
    kind: Option<FileKind>,
}

impl DirEntry {
    pub fn file_name(&self) -> std::ffi::OsString {
        self.name.clone()
    }
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join(&self.name)
    }
    /// The entry's type, symlinks not followed (as `std::fs::DirEntry::file_type`).
    pub fn file_type(&self) -> io::Result<FileKind> {
        match self.kind {
            Some(k) => Ok(k),
            None => std::fs::symlink_metadata(self.path()).map(|m| FileKind::of(m.file_type())),
        }
    }
}

/// Lists a directory (without `.` and `..`), in the order the file system gives. A procfs or
/// sysfs directory is kept open and rewound for the next listing (see the module docs);
/// another (a fixture tree, the textfile directory) is opened afresh for every listing.
pub fn list_dir(path: &Path) -> io::Result<Vec<DirEntry>> {
    let (kept, empty) = with_cache(|c| {
        let k = key(path);
        (c.dirs.get(k).cloned(), c.empty.contains(k))
    })
    .unwrap_or((None, false));
    if empty {
        return Ok(Vec::new());
    }
    let dir: Arc<Path> = Arc::from(path);
    if let Some(kept) = kept {
        let listed = match kept.lock() {
            Ok(mut d) => entries(&mut d, &dir),
            Err(_) => Err(io::Error::other("poisoned")),
        };
        match listed {
            Ok(v) if !v.is_empty() => return Ok(v),
            // Empty (removed?) or failing: forget it and open the path afresh.
            _ => {
                with_cache(|c| c.dirs.remove(key(path)));
            }
        }
    }
    use rustix::fs::{Mode, OFlags};
    // `openat`, not rustix's `open` (the raw `open` system call, which the seccomp policy
    // does not allow).
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = rustix::fs::Dir::new(fd)?;
    let v = entries(&mut d, &dir)?;
    // Not asked, after the first listing, of a directory off procfs and sysfs (the textfile
    // directory, a fixture tree's). Its parent's answer does not count: procfs or sysfs can be
    // mounted on it (`/host/proc`).
    let on = !per_process(path)
        && !known_foreign(path)
        && d.fd().is_ok_and(|fd| {
            let on = nix::sys::statfs::fstatfs(fd).is_ok_and(|st| proc_or_sys(&st));
            if !on {
                note_foreign(path);
            }
            on
        });
    if on {
        with_cache(|c| {
            if v.is_empty() {
                if c.empty.len() < MAX_CACHED {
                    c.empty.insert(key(path).into());
                }
            } else if c.dirs.len() < MAX_CACHED {
                c.dirs.insert(key(path).into(), Arc::new(Mutex::new(d)));
            }
        });
    }
    Ok(v)
}

/// Reads `d` whole, from its start (`rewind`: an `lseek` to 0 before the first read).
fn entries(d: &mut rustix::fs::Dir, dir: &Arc<Path>) -> io::Result<Vec<DirEntry>> {
    use rustix::fs::FileType;
    use std::os::unix::ffi::OsStrExt as _;
    d.rewind();
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match e.file_type() {
            FileType::Directory => Some(FileKind::Dir),
            FileType::RegularFile => Some(FileKind::File),
            FileType::Symlink => Some(FileKind::Symlink),
            FileType::Unknown => None,
            _ => Some(FileKind::Other),
        };
        out.push(DirEntry {
            dir: dir.clone(),
            name: std::ffi::OsStr::from_bytes(name).to_os_string(),
            kind,
        });
    }
    Ok(out)
}

/// Whether a read of `n` bytes at `offset` into `room` bytes of buffer was the file's last
/// ([`ReadKind::OneShow`], [`Records::AtMost`]).
fn last_read(kind: ReadKind, records: Records, offset: u64, n: usize, room: usize) -> bool {
    match (kind, records) {
        (ReadKind::OneShow, _) => offset == 0 && n < room,
        (ReadKind::Procfs, Records::AtMost(r)) => n < room && n.saturating_add(r) <= page_size(),
        _ => false,
    }
}

/// An error a procfs or sysfs attribute gives while its object exists (see the module docs).
fn attribute_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENODATA | libc::EBUSY | libc::EAGAIN)
    )
}

/// A path of another process (`/proc/<pid>/...`): never cached. `/proc/self/...` is the
/// agent's own and is kept: it cannot come to name another process.
fn per_process(path: &Path) -> bool {
    path.components().any(|c| match c {
        Component::Normal(s) => s
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    })
}

fn proc_or_sys(st: &nix::sys::statfs::Statfs) -> bool {
    let t = st.filesystem_type();
    t == nix::sys::statfs::PROC_SUPER_MAGIC || t == nix::sys::statfs::SYSFS_MAGIC
}

/// Only procfs and sysfs files, and no per-process ones; with how to read the file ([`ReadKind`],
/// from the file system and `size`, what `fstat` gave). A file whose directory was found off
/// procfs and sysfs before (the textfile directory, a fixture tree given by `--path.*`) is not
/// asked again: one `fstatfs` fewer for each of its files on every scrape (on the benchmark's
/// synthetic tree of 1,024 CPUs, about 9,000 a scrape). Not keeping a file is always safe;
/// the answer is dropped with the cache ([`MAX_AGE`]).
fn keepable(path: &Path, file: &File, size: u64) -> Option<ReadKind> {
    if per_process(path) {
        return None;
    }
    let dir = path.parent();
    if dir.is_some_and(known_foreign) {
        return None;
    }
    let fs = nix::sys::statfs::fstatfs(file)
        .ok()
        .filter(proc_or_sys)
        .map(|st| st.filesystem_type());
    if let (None, Some(d)) = (fs, dir) {
        note_foreign(d);
    }
    let sysfs = nix::sys::statfs::SYSFS_MAGIC;
    fs.map(|t| match t {
        t if t == sysfs && size == page_size() as u64 => ReadKind::OneShow,
        t if t == sysfs => ReadKind::UntilEnd,
        _ => ReadKind::Procfs,
    })
}

/// The size of a memory page (4 KiB where `sysconf` fails, the smallest Linux has).
fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(4096)
    })
}

/// Whether `dir` was found off procfs and sysfs since the cache was last dropped.
fn known_foreign(dir: &Path) -> bool {
    with_cache(|c| c.foreign.contains(key(dir))).unwrap_or(false)
}

/// Remembers that `dir` is off procfs and sysfs.
fn note_foreign(dir: &Path) {
    with_cache(|c| {
        if c.foreign.len() < MAX_CACHED {
            c.foreign.insert(key(dir).into());
        }
    });
}

/// The error `path` gave when it was found absent since the cache was last dropped (a
/// procfs or sysfs path, or one [`note_missing_anywhere`] named): the caller answers it
/// without asking the kernel.
pub fn missing_error(path: &Path) -> Option<io::Error> {
    let errno = with_cache(|c| c.missing.get(key(path)).copied()).flatten()?;
    Some(io::Error::from_raw_os_error(errno))
}

/// Whether `path` is remembered as an empty directory.
#[cfg(test)]
fn known_empty(path: &Path) -> bool {
    with_cache(|c| c.empty.contains(key(path))).unwrap_or(false)
}

/// Whether `path` is remembered absent ([`missing_error`]).
#[cfg(test)]
pub fn known_missing(path: &Path) -> bool {
    missing_error(path).is_some()
}

/// The errno of an error that says a path does not exist: `ENOENT`, or `ENOTDIR` (a file
/// where the path wants a directory).
fn absence(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
        .filter(|&n| n == libc::ENOENT || n == libc::ENOTDIR)
}

/// Remembers that `path` is absent if `e` says so ([`absence`]) and it is a procfs or sysfs
/// path, not a per-process one: its nearest existing ancestor (at most a few levels up)
/// tells.
pub fn note_missing(path: &Path, e: &io::Error) {
    let Some(errno) = absence(e) else { return };
    if per_process(path) {
        return;
    }
    let parent = path.parent();
    if parent.is_some_and(known_foreign) {
        return;
    }
    let on_proc_or_sys = path
        .ancestors()
        .skip(1)
        .take(4)
        .find_map(|a| match nix::sys::statfs::statfs(a) {
            Ok(st) => Some(proc_or_sys(&st)),
            Err(nix::errno::Errno::ENOENT) => None,
            Err(_) => Some(false),
        })
        .unwrap_or(false);
    with_cache(|c| {
        if on_proc_or_sys {
            if c.missing.len() < MAX_CACHED {
                c.missing.insert(key(path).into(), errno);
            }
        } else if let Some(d) = parent {
            if c.foreign.len() < MAX_CACHED {
                c.foreign.insert(key(d).into());
            }
        }
    });
}

/// [`note_missing`] whatever file system `path` is on: for a reader that knows a file can
/// appear there only with a new device, so that asking again every [`MAX_AGE`] is soon enough
/// (udev's database: a device-mapper volume that udev does not manage has no file, and
/// node_exporter's diskstats collector tries it on every scrape).
pub fn note_missing_anywhere(path: &Path, e: &io::Error) {
    let Some(errno) = absence(e) else { return };
    with_cache(|c| {
        if c.missing.len() < MAX_CACHED {
            c.missing.insert(key(path).into(), errno);
        }
    });
}

fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> Option<T> {
    let mut guard = CACHE.lock().ok()?;
    let cache = guard.get_or_insert_with(|| Cache {
        files: FxHashMap::default(),
        dirs: FxHashMap::default(),
        missing: FxHashMap::default(),
        empty: FxHashSet::default(),
        foreign: FxHashSet::default(),
        since: Instant::now(),
    });
    if cache.since.elapsed() > MAX_AGE {
        cache.files.clear();
        cache.dirs.clear();
        cache.missing.clear();
        cache.empty.clear();
        cache.foreign.clear();
        cache.since = Instant::now();
    }
    Some(f(cache))
}

#[cfg(test)]
fn cached(path: &Path) -> Option<Kept> {
    lookup(path).0
}

/// The kept descriptor of `path`, and whether it is remembered absent: one lock.
/// A path's cache key: its bytes.
fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// The kept descriptor of `path`, and the error it gave if it is remembered absent: one lock.
fn lookup(path: &Path) -> (Option<Kept>, Option<i32>) {
    let k = key(path);
    with_cache(|c| (c.files.get(k).cloned(), c.missing.get(k).copied())).unwrap_or((None, None))
}

fn remember(path: &Path, file: File, read: ReadKind) {
    with_cache(|c| {
        if c.files.len() < MAX_CACHED {
            let kept = KeptFile {
                file: Mutex::new(file),
                read,
            };
            c.files.insert(key(path).into(), Arc::new(kept));
        }
    });
}

fn forget(path: &Path) {
    with_cache(|c| c.files.remove(key(path)));
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

        let own = std::path::PathBuf::from(format!("/proc/{}/stat", std::process::id()));
        read_to_string(&own).expect("read");
        assert!(
            cached(&own).is_none(),
            "a numbered process path is never kept"
        );
    }

    #[test]
    fn the_agents_own_process_files_are_kept_and_fresh() {
        // `syscr` counts this process's read system calls: every read through the kept
        // descriptor is one more, so a fresh answer is always larger than the one before.
        let p = Path::new("/proc/self/io");
        let syscr = || {
            read_to_string(p)
                .expect("read")
                .lines()
                .find_map(|l| l.strip_prefix("syscr:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .expect("syscr: line")
        };
        let first = syscr();
        assert!(cached(p).is_some(), "/proc/self/... is kept");
        let second = syscr();
        assert!(cached(p).is_some());
        assert!(
            second > first,
            "re-read through the kept descriptor: {second} after {first}"
        );
    }

    use crate::collector::testutil::reads_so_far;

    /// How many read system calls `f` makes on this thread.
    fn reads_made_by(f: impl FnOnce()) -> u64 {
        // What reading the counter itself adds between two readings of it.
        let own = {
            let a = reads_so_far();
            reads_so_far() - a
        };
        let before = reads_so_far();
        f();
        reads_so_far() - before - own
    }

    #[test]
    fn a_sysfs_attribute_is_read_in_one_system_call_a_procfs_file_to_its_end() {
        // sysfs gives an attribute (not a binary one) the size of a page, and its whole
        // content comes in the first read; procfs files are read until a read returns 0.
        let attr = Path::new("/sys/devices/system/cpu/online");
        let first = read_to_string(attr).expect("read the sysfs attribute");
        assert_eq!(cached(attr).map(|k| k.read), Some(ReadKind::OneShow));
        let mut again = String::new();
        let n = reads_made_by(|| again = read_to_string(attr).expect("read again"));
        assert_eq!(n, 1, "one pread for a kept sysfs attribute");
        assert_eq!(again, first);
        assert_eq!(again, std::fs::read_to_string(attr).expect("std"));

        let procfs = Path::new("/proc/loadavg");
        read_to_string(procfs).expect("read");
        assert_eq!(cached(procfs).map(|k| k.read), Some(ReadKind::Procfs));
        let n = reads_made_by(|| {
            read_to_string(procfs).expect("read again");
        });
        assert_eq!(
            n, 2,
            "a procfs file: its content, then the read that returns 0"
        );
    }

    #[test]
    fn a_seq_file_of_short_records_that_fits_in_a_page_is_read_once() {
        let page = page_size();
        // The rule: a read that left room in the buffer and room for one more record in a
        // page was the last; anything else reads on.
        let some = Records::AtMost(256);
        assert!(last_read(ReadKind::Procfs, some, 0, 300, 8192));
        assert!(last_read(ReadKind::Procfs, some, 4096, page - 256, 8192));
        assert!(!last_read(ReadKind::Procfs, some, 0, page - 255, 8192));
        assert!(!last_read(ReadKind::Procfs, some, 0, 1024, 1024));
        assert!(!last_read(ReadKind::Procfs, Records::Unknown, 0, 300, 8192));
        assert!(!last_read(ReadKind::UntilEnd, some, 0, 300, 8192));
        assert!(last_read(ReadKind::OneShow, Records::Unknown, 0, 300, 8192));
        assert!(!last_read(
            ReadKind::OneShow,
            Records::Unknown,
            300,
            300,
            8192
        ));

        // A real one: the agent's own mount table (records well under 2 KiB here), read
        // through the kept descriptor. It has the same content as std reads, and takes one
        // read when it fits in a page with room for a record, two otherwise.
        let p = Path::new("/proc/self/mountinfo");
        let max = 2048;
        read_records_to_string(p, max).expect("read");
        assert_eq!(cached(p).map(|k| k.read), Some(ReadKind::Procfs));
        let mut ours = String::new();
        let n = reads_made_by(|| ours = read_records_to_string(p, max).expect("read again"));
        let std = std::fs::read_to_string(p).expect("std");
        assert_eq!(ours, std);
        assert!(
            std.lines().all(|l| l.len() < max),
            "a record over {max} bytes"
        );
        let want = if std.len() + max <= page { 1 } else { 2 };
        assert!(
            n == want || (want == 2 && n > 2),
            "{n} reads for {} bytes (a page: {page})",
            std.len()
        );
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
    fn fifos_sockets_and_directories_fail_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        let e = read_to_string(&fifo).expect_err("a FIFO is refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("a FIFO"), "{e}");
        // Through a symlink too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).expect("symlink");
        assert!(read_to_string(&link).is_err());
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        assert!(read_to_string(&sock).is_err(), "a socket is refused");
        let e = read_to_string(dir.path()).expect_err("a directory is refused");
        assert!(e.to_string().contains("a directory"), "{e}");
        // A symlink loop: ELOOP, at once.
        let a = dir.path().join("a");
        std::os::unix::fs::symlink(dir.path().join("b"), &a).expect("symlink");
        std::os::unix::fs::symlink(&a, dir.path().join("b")).expect("symlink");
        assert_eq!(
            read_to_string(&a).expect_err("loop").raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().expect("tmp");
        let big = dir.path().join("big");
        let f = File::create(&big).expect("create");
        f.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
        let e = read_to_string(&big).expect_err("over the cap");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        f.set_len(MAX_FILE_BYTES).expect("truncate");
        assert_eq!(read(&big).expect("at the cap").len() as u64, MAX_FILE_BYTES);
        let mut small = File::open(&big).expect("open");
        let mut buf = b"kept".to_vec();
        assert!(read_capped(&mut small, 10, &mut buf).is_err());
        assert_eq!(buf, b"kept", "nothing of the refused file is kept");
    }

    #[test]
    fn missing_files_are_errors() {
        let e = read_to_string(Path::new("/proc/no-such-file")).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    fn names(path: &Path) -> Vec<String> {
        list_dir(path)
            .expect("list")
            .iter()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn dir_kept(path: &Path) -> bool {
        with_cache(|c| c.dirs.contains_key(key(path))).unwrap_or(false)
    }

    #[test]
    fn reads_through_the_thread_buffer_nest_and_replace_invalid_utf8() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"first\xff").expect("write");
        std::fs::write(&b, "second".repeat(2000)).expect("write");
        // A parser that reads another file while it holds the first one's text.
        let (outer, inner) = read_str_with(&a, |s| {
            let inner = read_to_string(&b).expect("nested read");
            (s.to_string(), inner)
        })
        .expect("read");
        assert_eq!(outer, "first\u{fffd}");
        assert_eq!(inner, "second".repeat(2000));
        // The buffer is reused: a shorter file after a longer one leaves nothing behind.
        assert_eq!(read_to_string(&b).expect("read").len(), 12000);
        assert_eq!(read_to_string(&a).expect("read"), "first\u{fffd}");
    }

    #[test]
    fn empty_procfs_and_sysfs_directories_are_remembered_other_ones_not() {
        // A sysfs directory with nothing in it: one of these is empty on any host (a class
        // with no device, a mount point with nothing mounted on it).
        let candidates = [
            "/sys/class/power_supply",
            "/sys/class/thermal",
            "/sys/kernel/debug",
            "/sys/fs/pstore",
            "/sys/fs/bpf",
            "/sys/kernel/tracing",
            "/sys/fs/fuse/connections",
            "/sys/kernel/config",
            "/sys/firmware/acpi/hotplug",
        ];
        let on_sysfs = |p: &Path| {
            nix::sys::statfs::statfs(p)
                .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::SYSFS_MAGIC)
        };
        let empty = candidates
            .iter()
            .map(Path::new)
            .find(|p| on_sysfs(p) && std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none()))
            .unwrap_or_else(|| panic!("no empty sysfs directory among {candidates:?}"));
        assert!(list_dir(empty).expect("list").is_empty());
        assert!(
            known_empty(empty),
            "{} not remembered empty",
            empty.display()
        );
        assert!(list_dir(empty).expect("list again").is_empty());

        // Any other empty directory is listed afresh: a file put there is seen at once.
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(list_dir(tmp.path()).expect("list").is_empty());
        assert!(!known_empty(tmp.path()));
        std::fs::write(tmp.path().join("a.prom"), "x 1\n").expect("write");
        let names: Vec<_> = list_dir(tmp.path())
            .expect("list")
            .iter()
            .map(DirEntry::file_name)
            .collect();
        assert_eq!(names, ["a.prom"]);
    }

    #[test]
    fn procfs_directories_are_kept_and_listed_fresh() {
        // The agent's own task list: kept (procfs, not another process's), and a thread that
        // starts and ends shows up and goes away through the kept, rewound descriptor.
        let task = Path::new("/proc/self/task");
        let before = names(task);
        assert!(before.contains(&nix::unistd::gettid().as_raw().to_string()));
        assert!(dir_kept(task), "/proc/self/task not kept after a listing");
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tid_tx
                .send(nix::unistd::gettid().as_raw().to_string())
                .expect("send");
            let _ = stop_rx.recv();
        });
        let tid = tid_rx.recv().expect("tid");
        assert!(!before.contains(&tid));
        assert!(names(task).contains(&tid), "a new thread is not listed");
        assert!(
            dir_kept(task),
            "the descriptor was not kept across listings"
        );
        stop_tx.send(()).expect("stop");
        t.join().expect("join");
        // The kernel lets go of an ended thread's entry just after `join` returns (the join
        // waits for the thread's tid to be cleared, which comes first): bounded retries.
        let mut gone = false;
        for _ in 0..500 {
            if !names(task).contains(&tid) {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone, "an ended thread is still listed after 5 s");
    }

    #[test]
    fn other_directories_are_listed_afresh_with_their_entry_types() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::os::unix::fs::symlink("f", dir.path().join("l")).expect("symlink");
        let mut listed: Vec<(String, FileKind)> = list_dir(dir.path())
            .expect("list")
            .iter()
            .map(|e| {
                assert_eq!(e.path(), dir.path().join(e.file_name()));
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type().expect("type"),
                )
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listed,
            vec![
                ("d".to_string(), FileKind::Dir),
                ("f".to_string(), FileKind::File),
                ("l".to_string(), FileKind::Symlink)
            ]
        );
        assert!(
            !dir_kept(dir.path()),
            "a directory off procfs/sysfs was kept"
        );
        std::fs::write(dir.path().join("g"), b"y").expect("write");
        assert_eq!(names(dir.path()).len(), 4);
        assert!(list_dir(&dir.path().join("absent"))
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn absent_procfs_and_sysfs_paths_are_remembered_other_trees_not() {
        let p = Path::new("/sys/class/no-such-class/x/y");
        assert_eq!(
            read_to_string(p).expect_err("missing").kind(),
            io::ErrorKind::NotFound
        );
        assert!(known_missing(p), "a sysfs miss is remembered");
        assert_eq!(
            read_to_string(p).expect_err("still missing").kind(),
            io::ErrorKind::NotFound
        );
        // A file where the path wants a directory (`ENOTDIR`) is absent as well.
        let below_a_file = Path::new("/proc/meminfo/no-such");
        assert_eq!(
            read_to_string(below_a_file)
                .expect_err("not a directory")
                .kind(),
            io::ErrorKind::NotADirectory
        );
        assert!(known_missing(below_a_file), "an ENOTDIR miss is remembered");
        assert_eq!(
            read_to_string(below_a_file).expect_err("remembered").kind(),
            io::ErrorKind::NotADirectory,
            "and answered with the error it gave"
        );
        let own = std::path::PathBuf::from(format!("/proc/{}/no-such", std::process::id()));
        assert!(read_to_string(&own).is_err());
        assert!(!known_missing(&own), "per-process paths are not remembered");
        // A regular tree: a file that appears after a miss is read at once.
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("later");
        assert!(read_to_string(&f).is_err());
        assert!(!known_missing(&f));
        assert_eq!(
            with_cache(|c| c.foreign.contains(key(dir.path()))),
            Some(true),
            "its directory is remembered as off procfs and sysfs (no statfs walk next time)"
        );
        std::fs::write(&f, "now\n").expect("write");
        assert_eq!(read_to_string(&f).expect("read"), "now\n");
    }

    /// A file of a directory off procfs and sysfs is not kept, and its directory is
    /// remembered as such, so its next file is read without asking the file system again.
    #[test]
    fn directories_off_procfs_and_sysfs_are_remembered() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1\n").expect("write");
        std::fs::write(&b, "2\n").expect("write");
        assert_eq!(read_to_string(&a).expect("read"), "1\n");
        assert!(cached(&a).is_none());
        assert_eq!(
            with_cache(|c| c.foreign.contains(key(dir.path()))),
            Some(true),
            "the directory is remembered off procfs and sysfs"
        );
        assert_eq!(read_to_string(&b).expect("read"), "2\n");
        assert!(cached(&b).is_none());
        std::fs::write(&b, "3\n").expect("write");
        assert_eq!(read_to_string(&b).expect("read"), "3\n", "read afresh");
        // procfs is still asked, and kept.
        let p = Path::new("/proc/loadavg");
        read_to_string(p).expect("read");
        assert!(cached(p).is_some());
    }
}
