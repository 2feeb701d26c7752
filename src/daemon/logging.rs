//! Logging: syslog (`LOG_DAEMON`, with the pid), an optional log file, and stderr in the
//! foreground (with `<N>` priority prefixes when stderr is the journal, which then replaces
//! syslog: journald is the syslog under systemd, and both would log every line twice). Every destination is
//! opened at start-up, before the sandbox forbids new sockets and paths.
//!
//! Messages are escaped ([`sanitize`]: control, line-separator, bidirectional and invisible
//! format characters); messages a client can trigger go through [`client_event`], which is
//! rate-limited. A write to the log file that fails (a full disk) is counted
//! ([`file_write_errors`], `monitoring_agent_log_write_errors_total`), never fatal, and the
//! next line that gets through is preceded by one saying how many were lost.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{LogFormat, LogLevel};

/// Why a log destination could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a logger is already installed")]
    AlreadyInstalled,
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct AgentLogger {
    /// `Some(journal)` in the foreground: whether stderr is the systemd journal.
    stderr: Option<bool>,
    syslog: Option<Mutex<Syslog>>,
    file: Option<Mutex<File>>,
    /// `--log.format` for stderr (outside the journal) and the file.
    format: Option<LogFormat>,
}

static CONFIGURED: AtomicU8 = AtomicU8::new(2);
/// Lines the log file did not take (write errors), since start-up.
static FILE_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Lines the log file did not take since start-up (a full disk, an I/O error).
pub fn file_write_errors() -> u64 {
    FILE_WRITE_ERRORS.load(Ordering::Relaxed)
}
static DEBUG_TOGGLED: AtomicBool = AtomicBool::new(false);

/// Opens every destination and installs the logger. Syslog being unavailable (no `/dev/log`
/// in a container) is reported but not fatal; a configured log file that cannot be opened is.
pub fn init(
    level: LogLevel,
    format: Option<LogFormat>,
    foreground: bool,
    log_file: Option<&Path>,
) -> Result<(), LogError> {
    let file = match log_file {
        Some(path) => Some(Mutex::new(open_log_file(path)?)),
        None => None,
    };
    // Under systemd, stderr is the journal and journald is the system's syslog: writing to
    // /dev/log too would put every line in the journal twice.
    let stderr = foreground.then(stderr_is_journal);
    let (syslog, syslog_err) = if stderr == Some(true) {
        (None, None)
    } else {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "monitoring-agent".into(),
            pid: std::process::id(),
        };
        match syslog::unix(formatter) {
            Ok(l) => (Some(Mutex::new(l)), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let logger = AgentLogger {
        stderr,
        syslog,
        file,
        format,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|_| LogError::AlreadyInstalled)?;
    set_level(level);
    if let Some(e) = syslog_err {
        log::warn!("syslog unavailable ({e}); logging to the other destinations only");
    }
    Ok(())
}

/// Append-only: the descriptor is `O_APPEND`, and the sandbox allows neither `fcntl(F_SETFL)`
/// (which could clear it) nor `ftruncate`, so the agent can only add to its log.
fn open_log_file(path: &Path) -> Result<File, LogError> {
    super::open_regular(path, libc::O_WRONLY | libc::O_APPEND, 0o640).map_err(|source| {
        LogError::File {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// systemd sets `JOURNAL_STREAM=DEV:INO` for the stream it connected to stderr.
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Sets the configured threshold (start-up and reload); cancels a SIGUSR1 debug toggle.
pub fn set_level(level: LogLevel) {
    CONFIGURED.store(level as u8, Ordering::Relaxed);
    DEBUG_TOGGLED.store(false, Ordering::Relaxed);
    log::set_max_level(level.filter());
}

/// SIGUSR1: switches debug logging on, or back to the configured level. Returns whether debug
/// is now on.
pub fn toggle_debug() -> bool {
    let on = !DEBUG_TOGGLED.fetch_xor(true, Ordering::Relaxed);
    let configured = match CONFIGURED.load(Ordering::Relaxed) {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        _ => LogLevel::Debug,
    };
    log::set_max_level(if on {
        LevelFilter::Debug
    } else {
        configured.filter()
    });
    on
}

/// Whether `c` could mislead a terminal or a log viewer and is shown escaped: control
/// characters (C0, DEL, C1: terminal escapes, newlines, NEL), the line and paragraph
/// separators (U+2028, U+2029: a new line in many viewers), and the format characters
/// (Unicode category Cf: the bidirectional controls U+061C, U+200E/F, U+202A–U+202E,
/// U+2066–U+2069, which reorder what follows, and the invisible ones such as U+200B–U+200D,
/// U+2060–U+2064, U+FEFF, U+00AD and the tag characters, which hide text).
pub fn misleading(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// Replaces every [`misleading`] character (terminal escapes, newlines from a client, bidi
/// overrides, line separators) with a visible escape (`\n`, `\u{202e}`), so a log line is
/// one line, shows what it contains, and cannot drive a terminal.
pub fn sanitize(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(misleading) {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if misleading(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Allows `burst` client-triggered messages per window, then counts what it drops and says
/// so once the window turns.
struct RateLimit {
    window_start: Option<Instant>,
    sent: u32,
    dropped: u64,
}

static CLIENT_LIMIT: Mutex<RateLimit> = Mutex::new(RateLimit::new());
/// A collector's failures and "no data" answers (logged on every scrape) have a budget per
/// collector, so one collector failing or absent on every scrape never crowds another
/// collector's new failure out of the log.
static COLLECTOR_LIMITS: Mutex<BTreeMap<String, RateLimit>> = Mutex::new(BTreeMap::new());
const CLIENT_BURST: u32 = 10;
const CLIENT_WINDOW_SECS: u64 = 60;

impl RateLimit {
    const fn new() -> RateLimit {
        RateLimit {
            window_start: None,
            sent: 0,
            dropped: 0,
        }
    }
}

/// Logs a message a client can trigger (bad request, refused connection, a missed deadline),
/// at most `CLIENT_BURST` a minute.
pub fn client_event(level: Level, args: std::fmt::Arguments<'_>) {
    limited(&CLIENT_LIMIT, level, args);
}

/// Logs what a collector's run in a scrape ended with (failed, no data), at most
/// `CLIENT_BURST` a minute per collector.
pub fn collector_event(collector: &str, level: Level, args: std::fmt::Arguments<'_>) {
    if !log::log_enabled!(level) {
        return;
    }
    let Ok(mut limits) = COLLECTOR_LIMITS.lock() else {
        return;
    };
    let rl = limits
        .entry(collector.to_string())
        .or_insert(RateLimit::new());
    let dropped_before = match rl.admit(Instant::now()) {
        Some(d) => d,
        None => return,
    };
    drop(limits);
    if dropped_before > 0 {
        log::warn!(
            "{dropped_before} log messages about the {collector} collector suppressed in the last minute"
        );
    }
    log::log!(level, "{args}");
}

impl RateLimit {
    /// Counts one message in: `Some(dropped in the window that just ended)` when it may be
    /// logged, `None` when the window's budget is spent (it is counted as dropped).
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let mut dropped_before = 0;
        let expired = self
            .window_start
            .is_none_or(|s| now.duration_since(s).as_secs() >= CLIENT_WINDOW_SECS);
        if expired {
            dropped_before = self.dropped;
            self.window_start = Some(now);
            self.sent = 0;
            self.dropped = 0;
        }
        if self.sent >= CLIENT_BURST {
            self.dropped += 1;
            return None;
        }
        self.sent += 1;
        Some(dropped_before)
    }
}

fn limited(limit: &Mutex<RateLimit>, level: Level, args: std::fmt::Arguments<'_>) {
    if !log::log_enabled!(level) {
        return;
    }
    let dropped_before;
    {
        let Ok(mut rl) = limit.lock() else {
            return;
        };
        match rl.admit(Instant::now()) {
            Some(d) => dropped_before = d,
            None => return,
        }
    }
    if dropped_before > 0 {
        log::warn!("{dropped_before} client-triggered log messages suppressed in the last minute");
    }
    log::log!(level, "{args}");
}

impl Log for AgentLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let raw = record.args().to_string();
        let msg = sanitize(&raw);
        let level = record.level();
        if let Some(journal) = self.stderr {
            let line = if journal {
                format!("<{}>{msg}\n", priority(level))
            } else {
                format_line(self.format, &timestamp(), level, &msg)
            };
            // stderr may be gone (closed terminal): nothing more to do then.
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                write_file(
                    &mut *f,
                    &format_line(self.format, &timestamp(), level, &msg),
                );
            }
        }
        if let Some(syslog) = &self.syslog {
            if let Ok(mut s) = syslog.lock() {
                let m: &str = &msg;
                let _ = match level {
                    Level::Error => s.err(m),
                    Level::Warn => s.warning(m),
                    Level::Info => s.info(m),
                    Level::Debug | Level::Trace => s.debug(m),
                };
            }
        }
    }

    fn flush(&self) {
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                let _ = f.flush();
            }
        }
    }
}

/// One log line (with its newline) in the agent's own format or `--log.format`'s, as
/// node_exporter's promslog writes them (`time`, `level`, `msg`; no `source`: the agent's
/// messages name what they are about).
pub fn format_line(format: Option<LogFormat>, time: &str, level: Level, msg: &str) -> String {
    match format {
        None => format!("{time} {level:<5} {msg}\n"),
        Some(LogFormat::Logfmt) => format!("time={time} level={level} msg={}\n", logfmt_value(msg)),
        Some(LogFormat::Json) => format!(
            "{{\"time\":{},\"level\":{},\"msg\":{}}}\n",
            json_string(time),
            json_string(level.as_str()),
            json_string(msg)
        ),
    }
}

/// A logfmt value as Go's slog `TextHandler` writes it: bare when it needs no quoting, else a
/// quoted string with `\` and `"` escaped (control characters are already escaped by
/// [`sanitize`]).
fn logfmt_value(v: &str) -> String {
    let bare = !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if bare {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string literal.
fn json_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lines lost since the last line the file took (reported in the file once it takes lines
/// again).
static FILE_LOST: AtomicU64 = AtomicU64::new(0);

/// Appends `line` to the log file; a failure is counted, not fatal (the agent keeps serving
/// with a full disk), and the next line that gets through is preceded by one saying how many
/// were lost. The descriptor is `O_APPEND`: after a copy-and-truncate rotation every write
/// lands at the new end, leaving no hole of NULs.
fn write_file(f: &mut impl Write, line: &str) {
    let lost = FILE_LOST.load(Ordering::Relaxed);
    if lost > 0 {
        // A line the disk cut short is ended first, and marked, so that the notice starts a
        // line and no reader takes the fragment for a whole line.
        let cut = if FILE_CUT.load(Ordering::Relaxed) {
            CUT_MARK
        } else {
            ""
        };
        let notice = format!(
            "{cut}{} WARN  {lost} log lines could not be written to this file (write errors; counted in monitoring_agent_log_write_errors_total)\n",
            timestamp()
        );
        if f.write_all(notice.as_bytes()).is_ok() {
            FILE_LOST.fetch_sub(lost, Ordering::Relaxed);
            FILE_CUT.store(false, Ordering::Relaxed);
        }
    }
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        match f.write(rest) {
            Ok(0) | Err(_) => {
                if rest.len() < line.len() {
                    FILE_CUT.store(true, Ordering::Relaxed);
                }
                FILE_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                FILE_LOST.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
        }
    }
}

/// What ends a line the disk cut short, once the file takes lines again.
pub const CUT_MARK: &str = " [line cut short: write error]\n";

/// Whether the last failed line was cut short (part of it is in the file).
static FILE_CUT: AtomicBool = AtomicBool::new(false);

/// syslog priority of a level, for the journal's `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// RFC 3339 UTC timestamp with milliseconds, computed without reading the time zone database
/// (which the sandbox does not allow).
pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_window_admits_a_burst_then_counts_the_rest() {
        let mut rl = RateLimit::new();
        let t0 = Instant::now();
        for _ in 0..CLIENT_BURST {
            assert_eq!(rl.admit(t0), Some(0));
        }
        assert_eq!(rl.admit(t0), None);
        assert_eq!(rl.admit(t0), None);
        // The next window says how many were dropped in the last one.
        let t1 = t0 + std::time::Duration::from_secs(CLIENT_WINDOW_SECS);
        assert_eq!(rl.admit(t1), Some(2));
        assert_eq!(rl.admit(t1), Some(0));
    }

    #[test]
    fn one_collectors_budget_is_its_own() {
        let mut limits: BTreeMap<String, RateLimit> = BTreeMap::new();
        let now = Instant::now();
        for _ in 0..(CLIENT_BURST + 5) {
            let _ = limits
                .entry("loadavg".into())
                .or_insert(RateLimit::new())
                .admit(now);
        }
        let fresh = limits
            .entry("vmstat".into())
            .or_insert(RateLimit::new())
            .admit(now);
        assert_eq!(fresh, Some(0), "vmstat's first failure is logged");
    }

    #[test]
    fn sanitize_escapes_controls() {
        assert_eq!(sanitize("plain text"), "plain text");
        assert_eq!(sanitize("a\x1b[31mred\nb\r"), "a\\u{1b}[31mred\\nb\\r");
        // C1 (NEL, CSI) and DEL.
        assert_eq!(
            sanitize("a\u{85}b\u{9b}c\u{7f}"),
            "a\\u{85}b\\u{9b}c\\u{7f}"
        );
    }

    /// Every character that reorders, hides or breaks a line in a terminal or a log viewer is
    /// escaped, one by one; ordinary text in any script is not.
    #[test]
    fn sanitize_escapes_separators_bidi_and_invisible_characters() {
        let cases = [
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{202A}', "\\u{202a}"),
            ('\u{202B}', "\\u{202b}"),
            ('\u{202C}', "\\u{202c}"),
            ('\u{202D}', "\\u{202d}"),
            ('\u{202E}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2067}', "\\u{2067}"),
            ('\u{2068}', "\\u{2068}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200E}', "\\u{200e}"),
            ('\u{200F}', "\\u{200f}"),
            ('\u{061C}', "\\u{61c}"),
            ('\u{200B}', "\\u{200b}"),
            ('\u{FEFF}', "\\u{feff}"),
            ('\u{E0041}', "\\u{e0041}"),
        ];
        for (c, want) in cases {
            assert!(misleading(c), "{:?}", c);
            assert_eq!(sanitize(&format!("x{c}y")), format!("x{want}y"), "{:?}", c);
        }
        // Every C0 and C1 control.
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(!sanitize(&c.to_string()).contains(c), "{:?}", c);
        }
        for plain in [
            "/metrics?x=1",
            "Grüße",
            "Привет",
            "مرحبا",
            "שלום",
            "日本語",
            "e\u{301}",
            "😀",
        ] {
            assert_eq!(sanitize(plain), plain);
        }
        // A realistic attack: a "path" that reverses what follows in the viewer.
        assert_eq!(
            sanitize("GET /a\u{202E}txt.exe HTTP/1.1"),
            "GET /a\\u{202e}txt.exe HTTP/1.1"
        );
    }

    /// A writer that refuses everything while `full` is set (a full disk).
    struct Disk {
        full: bool,
        data: Vec<u8>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.full {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Write errors are counted, and the file says how many lines it missed once it takes
    /// lines again.
    #[test]
    fn write_errors_are_counted_and_reported_in_the_file() {
        let mut disk = Disk {
            full: false,
            data: Vec::new(),
        };
        let before = file_write_errors();
        write_file(&mut disk, "one\n");
        disk.full = true;
        write_file(&mut disk, "two\n");
        write_file(&mut disk, "three\n");
        assert!(file_write_errors() >= before + 2);
        disk.full = false;
        write_file(&mut disk, "four\n");
        let text = String::from_utf8(disk.data).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "one");
        assert!(
            lines[1].ends_with("2 log lines could not be written to this file (write errors; counted in monitoring_agent_log_write_errors_total)"),
            "{text}"
        );
        assert_eq!(lines[2], "four");

        // A line the disk cut short (part of it written) is ended with the mark once the
        // file takes lines again, before the notice (same test: the counters are global).
        struct Cut {
            room: usize,
            data: Vec<u8>,
        }
        impl Write for Cut {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.room == 0 {
                    return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
                }
                let n = buf.len().min(self.room);
                self.room -= n;
                self.data.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut disk = Cut {
            room: 3,
            data: Vec::new(),
        };
        write_file(&mut disk, "abcdef\n");
        disk.room = usize::MAX;
        write_file(&mut disk, "next\n");
        let text = String::from_utf8(disk.data).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(format!("{}\n", lines[0]), format!("abc{CUT_MARK}"));
        assert!(lines[1].ends_with("1 log lines could not be written to this file (write errors; counted in monitoring_agent_log_write_errors_total)"), "{text}");
        assert_eq!(lines[2], "next");
    }

    #[test]
    fn log_formats() {
        let t = "2026-01-02T03:04:05.678Z";
        assert_eq!(
            format_line(None, t, Level::Warn, "disk full"),
            "2026-01-02T03:04:05.678Z WARN  disk full\n"
        );
        assert_eq!(
            format_line(Some(LogFormat::Logfmt), t, Level::Info, "a \"b\" c=d\\"),
            "time=2026-01-02T03:04:05.678Z level=INFO msg=\"a \\\"b\\\" c=d\\\\\"\n"
        );
        assert_eq!(
            format_line(Some(LogFormat::Logfmt), t, Level::Error, "single"),
            "time=2026-01-02T03:04:05.678Z level=ERROR msg=single\n"
        );
        assert_eq!(
            format_line(Some(LogFormat::Json), t, Level::Debug, "q\"\\\u{1}"),
            "{\"time\":\"2026-01-02T03:04:05.678Z\",\"level\":\"DEBUG\",\"msg\":\"q\\\"\\\\\\u0001\"}\n"
        );
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
