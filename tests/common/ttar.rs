//! A reader for ttar archives (<https://github.com/ideaship/ttar>), the plain-text archives
//! node_exporter keeps its `sys` and `udev` fixture trees in (`collector/fixtures/*.ttar`).
//!
//! The format, one record after another, each closed by a `# ttar - - -` separator line:
//! - `Directory: <path>` then `Mode: <octal>`: a directory;
//! - `Path: <path>`, `Lines: <n>`, the file's `n` lines, `Mode: <octal>`: a regular file. In
//!   the content, `NULLBYTE` stands for a zero byte, and a last line ending in `EOF` has no
//!   newline after it (the `EOF` is not content);
//! - `Path: <path>` then `SymlinkTo: <target>`: a symbolic link.
//!
//! Lines starting with `#` outside a file's content are comments. Content is bytes (sysfs
//! attributes such as `vpd` are binary), so the archive is read as bytes, split on `\n`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What went wrong, with the archive's line number (1-based).
#[derive(Debug)]
pub struct TtarError {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for TtarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// One entry of an archive, in archive order.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Dir {
        path: String,
        mode: Option<u32>,
    },
    File {
        path: String,
        content: Vec<u8>,
        mode: Option<u32>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

fn text(line: &[u8], no: usize) -> Result<&str, TtarError> {
    std::str::from_utf8(line).map_err(|_| TtarError {
        line: no,
        msg: "header line is not UTF-8".into(),
    })
}

/// Parses a whole archive.
pub fn parse(archive: &[u8]) -> Result<Vec<Entry>, TtarError> {
    let mut lines: Vec<&[u8]> = archive.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out: Vec<Entry> = Vec::new();
    let mut path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let no = i + 1;
        let line = text(lines[i], no)?;
        i += 1;
        let err = |msg: String| TtarError { line: no, msg };
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(p) = line.strip_prefix("Directory: ") {
            out.push(Entry::Dir {
                path: p.to_string(),
                mode: None,
            });
            path = None;
        } else if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.to_string());
        } else if let Some(n) = line.strip_prefix("Lines: ") {
            let n: usize = n.parse().map_err(|_| err(format!("bad count {n:?}")))?;
            let p = path
                .take()
                .ok_or_else(|| err("Lines: without Path:".into()))?;
            let body = lines
                .get(i..i + n)
                .ok_or_else(|| err(format!("{p}: {n} lines announced, archive ends")))?;
            i += n;
            let mut content = Vec::new();
            for (k, l) in body.iter().enumerate() {
                let last = k + 1 == n;
                let (l, newline) = match l.strip_suffix(b"EOF") {
                    Some(rest) if last => (rest, false),
                    _ => (*l, true),
                };
                content.extend(replace_nullbyte(l));
                if newline {
                    content.push(b'\n');
                }
            }
            out.push(Entry::File {
                path: p,
                content,
                mode: None,
            });
        } else if let Some(t) = line.strip_prefix("SymlinkTo: ") {
            let p = path
                .take()
                .ok_or_else(|| err("SymlinkTo: without Path:".into()))?;
            out.push(Entry::Symlink {
                path: p,
                target: t.to_string(),
            });
        } else if let Some(m) = line.strip_prefix("Mode: ") {
            let m = u32::from_str_radix(m, 8).map_err(|_| err(format!("bad mode {m:?}")))?;
            match out.last_mut() {
                Some(Entry::Dir { mode, .. }) | Some(Entry::File { mode, .. }) => *mode = Some(m),
                _ => return Err(err("Mode: without a file or directory".into())),
            }
        } else {
            return Err(err(format!("unknown record line {line:?}")));
        }
    }
    Ok(out)
}

fn replace_nullbyte(l: &[u8]) -> Vec<u8> {
    const TOKEN: &[u8] = b"NULLBYTE";
    let mut out = Vec::with_capacity(l.len());
    let mut rest = l;
    while !rest.is_empty() {
        if rest.starts_with(TOKEN) {
            out.push(0);
            rest = &rest[TOKEN.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Extracts `archive` under `dest` (paths in the archive are relative, e.g. `sys/...`), with
/// the recorded modes. Panics, naming the archive, on any error: a test helper.
pub fn extract(archive: &Path, dest: &Path) -> Vec<PathBuf> {
    let bytes = fs::read(archive).unwrap_or_else(|e| panic!("read {}: {e}", archive.display()));
    let entries = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let mut written = Vec::with_capacity(entries.len());
    let mut dir_modes = Vec::new();
    for e in entries {
        match e {
            Entry::Dir { path, mode } => {
                let p = dest.join(&path);
                fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                // Directories get their mode last, so a read-only one can still be filled.
                dir_modes.push((p.clone(), mode.unwrap_or(0o755)));
                written.push(p);
            }
            Entry::File {
                path,
                content,
                mode,
            } => {
                let p = dest.join(&path);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)
                        .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
                }
                fs::write(&p, &content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
                fs::set_permissions(&p, fs::Permissions::from_mode(mode.unwrap_or(0o644)))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
                written.push(p);
            }
            Entry::Symlink { path, target } => {
                let p = dest.join(&path);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)
                        .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
                }
                let _ = fs::remove_file(&p);
                std::os::unix::fs::symlink(&target, &p)
                    .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
                written.push(p);
            }
        }
    }
    for (p, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
    }
    written
}
