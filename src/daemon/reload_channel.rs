//! The reload outcome channel: how `monitoring-agent --reload` learns whether the reload its
//! SIGHUP caused succeeded.
//!
//! The sandboxed agent can open no file, socket or path after start-up, so the channel is made
//! before: a 4 KiB sealed `memfd` (`monitoring-agent-reload`), mapped shared and kept open.
//! After the sandbox the agent only stores into that page (no system call). The client, run
//! as root (systemd's `ExecReload=+`), finds the descriptor among `/proc/PID/fd/*` by its name,
//! opens it read-only and maps it.
//!
//! The page: a magic number, `started` (reloads begun, the generation counter), `finished`
//! (`generation << 1 | ok` of the last reload that ended, `BUSY` while it is being written)
//! and the last outcome's message (a seqlock: the reader retries while `finished` changes).
//! The client reads `started` *before* it sends SIGHUP and waits for a `finished` generation
//! greater than that: a reload that began after the client's read, so one that read the
//! configuration as the operator left it. Concurrent clients each wait for their own; signals
//! that coalesce into one reload give every client that reload's outcome.
//!
//! Seals: the page cannot grow, shrink or be resized (`F_SEAL_GROW`, `F_SEAL_SHRINK`,
//! `F_SEAL_SEAL`), so a compromised agent can write nothing but these 4 KiB through it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};

/// The memfd's name, as `/proc/PID/fd/N` shows it (`/memfd:NAME (deleted)`).
pub const NAME: &str = "monitoring-agent-reload";
const LEN: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"mareload");
const BUSY: u64 = u64::MAX;
/// Word offsets.
const W_MAGIC: usize = 0;
const W_STARTED: usize = 1;
const W_FINISHED: usize = 2;
const W_MSG_LEN: usize = 3;
/// Where the message starts, in bytes.
const MSG_AT: usize = 32;
/// The longest message kept.
pub const MSG_MAX: usize = LEN - MSG_AT;

/// A shared page (the agent's read-write mapping, or the client's read-only one).
struct Page {
    base: NonNull<u8>,
    /// Keeps the memfd open: the client finds it through `/proc/PID/fd`.
    _fd: OwnedFd,
}

// SAFETY: the page is only accessed through atomics; the mapping lives as long as `Page`.
unsafe impl Send for Page {}
// SAFETY: as above: every access is atomic.
unsafe impl Sync for Page {}

impl Page {
    fn map(fd: OwnedFd, writable: bool) -> io::Result<Page> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a new mapping chosen by the kernel (null hint), of a file at least LEN long
        // (the agent sized it and sealed its size; the client checks it); nothing else
        // refers to that address range.
        let ptr = unsafe { mmap(std::ptr::null_mut(), LEN, prot, MapFlags::SHARED, &fd, 0) }
            .map_err(io::Error::from)?;
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap: null"))?;
        Ok(Page { base, _fd: fd })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i * 8 + 8 <= MSG_AT);
        // SAFETY: the mapping is LEN bytes, page-aligned, alive as long as self; word i lies
        // within the header; AtomicU64 has the alignment and size of u64 and the page is only
        // ever accessed atomically (by both processes).
        unsafe { &*self.base.as_ptr().add(i * 8).cast::<AtomicU64>() }
    }

    fn byte(&self, i: usize) -> &AtomicU8 {
        debug_assert!(MSG_AT + i < LEN);
        // SAFETY: as for `word`: within the mapping, accessed only atomically.
        unsafe { &*self.base.as_ptr().add(MSG_AT + i).cast::<AtomicU8>() }
    }
}

/// The agent's end: made in the root phase, written after each reload.
pub struct ReloadChannel {
    page: Page,
}

impl ReloadChannel {
    /// Creates the sealed memfd and maps it. Call before the sandbox (it allows neither
    /// `memfd_create` nor a writable shared mapping).
    pub fn create() -> io::Result<ReloadChannel> {
        use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
        let fd = memfd_create(NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(io::Error::from)?;
        ftruncate(&fd, LEN as u64).map_err(io::Error::from)?;
        fcntl_add_seals(&fd, SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)
            .map_err(io::Error::from)?;
        let page = Page::map(fd, true)?;
        page.word(W_MAGIC).store(MAGIC, Ordering::Release);
        Ok(ReloadChannel { page })
    }

    /// A reload begins: returns its generation.
    pub fn begin(&self) -> u64 {
        self.page.word(W_STARTED).fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The reload of `generation` ended.
    pub fn finish(&self, generation: u64, ok: bool, message: &str) {
        let finished = self.page.word(W_FINISHED);
        finished.store(BUSY, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut n = message.len().min(MSG_MAX);
        while !message.is_char_boundary(n) {
            n -= 1;
        }
        for (i, b) in message.as_bytes().iter().take(n).enumerate() {
            self.page.byte(i).store(*b, Ordering::Relaxed);
        }
        self.page.word(W_MSG_LEN).store(n as u64, Ordering::Relaxed);
        finished.store(generation << 1 | u64::from(ok), Ordering::Release);
    }
}

/// The outcome of one finished reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub generation: u64,
    pub ok: bool,
    pub message: String,
}

/// The client's end: a read-only view of a running agent's page.
pub struct ReloadView {
    page: Page,
}

/// Why the channel of a running agent could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot list the descriptors of pid {pid} ({source}); run as root")]
    List { pid: u32, source: io::Error },
    #[error(
        "pid {pid} has no reload channel (not a monitoring-agent, or one older than --reload)"
    )]
    Missing { pid: u32 },
    #[error("opening the reload channel of pid {pid}: {source}")]
    Open { pid: u32, source: io::Error },
}

impl ReloadView {
    /// Finds and maps the channel of the agent `pid` (under `procfs`, normally `/proc`).
    pub fn open(procfs: &Path, pid: u32) -> Result<ReloadView, ViewError> {
        let dir = procfs.join(pid.to_string()).join("fd");
        let entries = std::fs::read_dir(&dir).map_err(|source| ViewError::List { pid, source })?;
        let want = format!("/memfd:{NAME}");
        for e in entries.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            if !target.to_string_lossy().starts_with(&want) {
                continue;
            }
            let open = || -> io::Result<ReloadView> {
                let file = File::open(e.path())?;
                if file.metadata()?.len() < LEN as u64 {
                    return Err(io::Error::other("shorter than a page"));
                }
                let page = Page::map(OwnedFd::from(file), false)?;
                if page.word(W_MAGIC).load(Ordering::Acquire) != MAGIC {
                    return Err(io::Error::other("not a reload channel (magic number)"));
                }
                Ok(ReloadView { page })
            };
            return open().map_err(|source| ViewError::Open { pid, source });
        }
        Err(ViewError::Missing { pid })
    }

    /// Reloads begun so far.
    pub fn started(&self) -> u64 {
        self.page.word(W_STARTED).load(Ordering::SeqCst)
    }

    /// The last finished reload, if any finished; `None` also while one is being written.
    pub fn last(&self) -> Option<Outcome> {
        let finished = self.page.word(W_FINISHED);
        for _ in 0..100 {
            let before = finished.load(Ordering::Acquire);
            if before == BUSY {
                std::thread::yield_now();
                continue;
            }
            if before == 0 {
                return None;
            }
            let n = (self.page.word(W_MSG_LEN).load(Ordering::Relaxed) as usize).min(MSG_MAX);
            let bytes: Vec<u8> = (0..n)
                .map(|i| self.page.byte(i).load(Ordering::Relaxed))
                .collect();
            fence(Ordering::Acquire);
            if finished.load(Ordering::Relaxed) != before {
                continue;
            }
            return Some(Outcome {
                generation: before >> 1,
                ok: before & 1 == 1,
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        None
    }
}

impl AsFd for ReloadChannel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.page._fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends in one process: the client finds the page through /proc/self/fd, sees each
    /// generation's outcome, a message cut at a character boundary, and no outcome before
    /// the first reload.
    #[test]
    fn outcomes_travel_through_the_page() {
        let chan = ReloadChannel::create().expect("memfd");
        let view = ReloadView::open(Path::new("/proc"), std::process::id()).expect("found");
        assert_eq!(view.started(), 0);
        assert_eq!(view.last(), None);
        let g = chan.begin();
        assert_eq!((g, view.started()), (1, 1));
        assert_eq!(view.last(), None, "begun, not finished");
        chan.finish(g, true, "reloaded");
        assert_eq!(
            view.last(),
            Some(Outcome {
                generation: 1,
                ok: true,
                message: "reloaded".into()
            })
        );
        let g = chan.begin();
        let long = "é".repeat(MSG_MAX);
        chan.finish(g, false, &long);
        let last = view.last().expect("outcome");
        assert_eq!((last.generation, last.ok), (2, false));
        assert!(last.message.len() <= MSG_MAX && last.message.chars().all(|c| c == 'é'));
        assert!(chan.as_fd().try_clone_to_owned().is_ok());
    }

    /// The size is sealed: neither the agent nor anyone holding the descriptor can grow it.
    #[test]
    fn the_page_cannot_grow() {
        let chan = ReloadChannel::create().expect("memfd");
        let e = rustix::fs::ftruncate(&chan, 1 << 20).expect_err("sealed");
        assert_eq!(e, rustix::io::Errno::PERM);
        let mut f = File::from(chan.as_fd().try_clone_to_owned().expect("dup"));
        use std::io::{Seek, SeekFrom, Write};
        f.seek(SeekFrom::Start(LEN as u64)).expect("seek");
        assert!(f.write_all(b"x").is_err(), "a write past the page grows it");
    }

    #[test]
    fn no_channel_is_a_clear_error() {
        // PID 1 of the test's namespace has none (a shell, an init, or the harness).
        match ReloadView::open(Path::new("/proc"), 1) {
            Err(ViewError::Missing { pid: 1 }) => {}
            Err(e) => panic!("unexpected: {e}"),
            Ok(_) => panic!("PID 1 has a reload channel"),
        }
    }
}
