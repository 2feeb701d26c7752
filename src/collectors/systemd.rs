//! `systemd` collector: unit states and counters from systemd's manager over D-Bus, as
//! node_exporter 1.12's `collector/systemd_linux.go` (Apache-2.0; names, labels, help texts,
//! flags and defaults follow it). Off by default, as there; Debian's prometheus-node-exporter
//! package turns it on, and `migrate-from-node-exporter` carries that over.
//!
//! What it exports (`name` is the unit's name):
//! - `node_systemd_unit_state{name,state,type}`: one sample per state of `active`,
//!   `activating`, `deactivating`, `inactive`, `failed`, 1 for the unit's `ActiveState`; `type`
//!   is a service's or mount's `Type` property, empty for other units (or when it cannot be
//!   read);
//! - `node_systemd_units{state}`: units per `ActiveState`, over every unit `ListUnits` returns
//!   (before the include/exclude filter), the five states always present;
//! - `node_systemd_service_restart_total{name}` (counter, `NRestarts`), with
//!   `--collector.systemd.enable-restarts-metrics`;
//! - `node_systemd_unit_start_time_seconds{name}` (`ActiveEnterTimestamp`, 0 for a unit that
//!   is not active), with `--collector.systemd.enable-start-time-metrics`;
//! - `node_systemd_unit_tasks_current{name}` and `node_systemd_unit_tasks_max{name}` for
//!   services (not exported when systemd reports `u64::MAX`, "no value"), with
//!   `--collector.systemd.enable-task-metrics`;
//! - `node_systemd_timer_last_trigger_seconds{name}` (`LastTriggerUSec`) for timers, and
//!   `node_systemd_system_running` (`SystemState` is `running`), both from systemd 212 on;
//! - `node_systemd_socket_accepted_connections_total` (counter),
//!   `node_systemd_socket_current_connections` and
//!   `node_systemd_socket_refused_connections_total` (a gauge, as node_exporter has it) for
//!   socket units;
//! - `node_systemd_version{version}` (the number as value, the whole string as label) and
//!   `node_systemd_virtualization_info{virtualization_type}` (`none` on bare metal, `unknown`
//!   when it cannot be read).
//!
//! Units are kept when their name matches `--collector.systemd.unit-include` (default `.+`),
//! does not match `--collector.systemd.unit-exclude` (default
//! `.+\.(automount|device|mount|scope|slice)`), both anchored, and their `LoadState` is
//! `loaded`. The deprecated `unit-whitelist`/`unit-blacklist` spellings are accepted (hidden)
//! and refused together with their successor, as node_exporter does.
//!
//! A property that cannot be read is skipped (node_exporter logs it at debug level); a failed
//! `ListUnits` or `SystemState` fails the collector.
//!
//! **The connection.** The system bus is `DBUS_SYSTEM_BUS_ADDRESS` (its first `unix:path=`
//! entry) or `/run/dbus/system_bus_socket`, reached as the agent's user. The first connection
//! is made during start-up, after the privilege drop and before the sandbox
//! ([`connect_before_sandbox`], on the single start-up thread: the zbus connection runs on a
//! current-thread tokio runtime of this module, which starts no thread). When the bus goes
//! away (dbus restarted), the next scrape connects again, under the sandbox: that is what the
//! `dbus` policy fragment allows (`policy/fragments/dbus.json`): an `AF_UNIX` stream socket,
//! `connect` with the full `sizeof(struct sockaddr_un)` as address length (which is how
//! [`connect_unix`] calls it), and `geteuid` for D-Bus's EXTERNAL authentication. Reads and
//! writes go through `read`/`write` ([`BusSocket`]), not `sendmsg`/`recvmsg`, so no file
//! descriptor passing and no destination address is needed.
//!
//! Known differences from node_exporter 1.12:
//! - `--collector.systemd.private` (a direct connection to `/run/systemd/private`, which systemd
//!   accepts from root only) is refused: the agent never runs its collectors as root.
//! - node_exporter still exports what it gathered before a failed `SystemState`; here a failed
//!   collector exports nothing.
//! - Properties are read one at a time on one connection (node_exporter reads four groups in
//!   parallel goroutines); the values are the same.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use regex::Regex;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::options::{collector_options, parse_bool, Pattern};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// node_exporter's default `--collector.systemd.unit-include`.
pub const DEFAULT_UNIT_INCLUDE: &str = ".+";
/// node_exporter's default `--collector.systemd.unit-exclude`.
pub const DEFAULT_UNIT_EXCLUDE: &str = r".+\.(automount|device|mount|scope|slice)";
/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const DEFAULT_SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
/// systemd 212 added `SystemState` and the timers' `LastTriggerUSec`.
const MIN_VERSION_SYSTEM_STATE: f64 = 212.0;
/// The unit states node_exporter exports, in its order.
pub const UNIT_STATES: [&str; 5] = ["active", "activating", "deactivating", "inactive", "failed"];
/// How long one D-Bus call may take before the connection is given up (the scrape's deadline
/// is usually shorter; this keeps a stuck bus from holding the connection for ever).
const METHOD_TIMEOUT: Duration = Duration::from_secs(10);

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

collector_options! {
    /// Options of the systemd collector (`[collector.systemd]` in the file).
    pub struct SystemdOptions {
        /// Regexp of systemd units to include. Units must both match include and not match
        /// exclude to be included. [default: .+]
        #[arg(id = "collector.systemd.unit-include", long = "collector.systemd.unit-include", value_name = "REGEX")]
        pub unit_include: Option<Pattern>,
        /// DEPRECATED: use --collector.systemd.unit-include.
        #[arg(id = "collector.systemd.unit-whitelist", long = "collector.systemd.unit-whitelist", value_name = "REGEX", hide = true)]
        pub unit_whitelist: Option<Pattern>,
        /// Regexp of systemd units to exclude. Units must both match include and not match
        /// exclude to be included. [default: .+\.(automount|device|mount|scope|slice)]
        #[arg(id = "collector.systemd.unit-exclude", long = "collector.systemd.unit-exclude", value_name = "REGEX")]
        pub unit_exclude: Option<Pattern>,
        /// DEPRECATED: use --collector.systemd.unit-exclude.
        #[arg(id = "collector.systemd.unit-blacklist", long = "collector.systemd.unit-blacklist", value_name = "REGEX", hide = true)]
        pub unit_blacklist: Option<Pattern>,
        /// node_exporter's direct connection to systemd's private socket (root only): refused.
        #[arg(id = "collector.systemd.private", long = "collector.systemd.private", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = parse_bool, hide = true)]
        pub private: Option<bool>,
        /// Enables service unit tasks metrics unit_tasks_current and unit_tasks_max.
        #[arg(id = "collector.systemd.enable-task-metrics", long = "collector.systemd.enable-task-metrics",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub enable_task_metrics: Option<bool>,
        /// Enables service unit metric service_restart_total.
        #[arg(id = "collector.systemd.enable-restarts-metrics", long = "collector.systemd.enable-restarts-metrics",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub enable_restarts_metrics: Option<bool>,
        /// Enables service unit metric unit_start_time_seconds.
        #[arg(id = "collector.systemd.enable-start-time-metrics", long = "collector.systemd.enable-start-time-metrics",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub enable_start_time_metrics: Option<bool>,
    }
    check(s) {
        if s.unit_whitelist.is_some() && s.unit_include.is_some() {
            return Err("--collector.systemd.unit-whitelist and --collector.systemd.unit-include \
                        are mutually exclusive".into());
        }
        if s.unit_blacklist.is_some() && s.unit_exclude.is_some() {
            return Err("--collector.systemd.unit-blacklist and --collector.systemd.unit-exclude \
                        are mutually exclusive".into());
        }
        if s.private == Some(true) {
            return Err("--collector.systemd.private is not supported: systemd's private socket \
                        accepts root only, and the agent reads systemd as its own user over the \
                        system bus".into());
        }
        Ok(())
    }
}

/// What the collector does, from its options.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Anchored include pattern (`^(?:...)$`, as node_exporter compiles it).
    include: Result<Regex, String>,
    exclude: Result<Regex, String>,
    pub tasks: bool,
    pub restarts: bool,
    pub start_time: bool,
}

/// node_exporter anchors the unit patterns: `^(?:PATTERN)$`.
fn anchored(p: Option<&Pattern>, default: &str) -> Result<Regex, String> {
    let src = p.map_or(default, |p| p.0.as_str());
    Regex::new(&format!("^(?:{src})$")).map_err(|e| format!("unit pattern '{src}': {e}"))
}

impl Settings {
    pub fn from_options(o: &SystemdOptions) -> Settings {
        if o.unit_whitelist.is_some() {
            log::warn!(
                "--collector.systemd.unit-whitelist is DEPRECATED, use \
                 --collector.systemd.unit-include"
            );
        }
        if o.unit_blacklist.is_some() {
            log::warn!(
                "--collector.systemd.unit-blacklist is DEPRECATED, use \
                 --collector.systemd.unit-exclude"
            );
        }
        Settings {
            include: anchored(
                o.unit_include.as_ref().or(o.unit_whitelist.as_ref()),
                DEFAULT_UNIT_INCLUDE,
            ),
            exclude: anchored(
                o.unit_exclude.as_ref().or(o.unit_blacklist.as_ref()),
                DEFAULT_UNIT_EXCLUDE,
            ),
            tasks: o.enable_task_metrics.unwrap_or(false),
            restarts: o.enable_restarts_metrics.unwrap_or(false),
            start_time: o.enable_start_time_metrics.unwrap_or(false),
        }
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(Systemd {
        settings: Settings::from_options(&opts.systemd),
    })
}

pub struct Systemd {
    settings: Settings,
}

impl Collector for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let include = self.settings.include.clone().map_err(CollectError::Other)?;
        let exclude = self.settings.exclude.clone().map_err(CollectError::Other)?;
        let settings = &self.settings;
        let (include, exclude) = (&include, &exclude);
        let snapshot = with_bus(|bus| {
            bus.run("systemd", |conn| async move {
                read_snapshot(&conn, settings, include, exclude).await
            })
        })?;
        render(&snapshot, &self.settings)
    }
}

// ---------------------------------------------------------------------------------------
// What one scrape reads, and how it becomes metrics (pure).

/// One unit of `ListUnits`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedUnit {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub path: String,
}

/// The properties read for one unit that passed the filter (`None`: not read or not
/// readable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitProps {
    /// `Service.Type` or `Mount.Type`.
    pub kind: Option<String>,
    pub restarts: Option<u32>,
    /// `ActiveEnterTimestamp` in microseconds.
    pub active_enter_usec: Option<u64>,
    pub tasks_current: Option<u64>,
    pub tasks_max: Option<u64>,
    pub last_trigger_usec: Option<u64>,
    pub accepted: Option<u32>,
    pub connections: Option<u32>,
    pub refused: Option<u32>,
}

/// Everything one scrape read from systemd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The `Version` property, `None` when unreadable.
    pub version: Option<String>,
    /// The `Virtualization` property, `None` when unreadable.
    pub virtualization: Option<String>,
    /// Every unit `ListUnits` returned.
    pub units: Vec<ListedUnit>,
    /// The units that passed the filter, with their properties.
    pub kept: Vec<(ListedUnit, UnitProps)>,
    /// `SystemState` (read from systemd 212 on): `Err` carries why it could not be read.
    pub system_state: Option<Result<String, String>>,
}

/// node_exporter's `systemdVersionRE` (`[0-9]{3,}(\.[0-9]+)?`) applied to the version string:
/// the number and the string, or `(0, "")` when there is none.
pub fn parse_version(v: &str) -> (f64, String) {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"[0-9]{3,}(\.[0-9]+)?").ok());
    let number = re
        .as_ref()
        .and_then(|re| re.find(v))
        .and_then(|m| m.as_str().parse::<f64>().ok());
    match number {
        Some(n) => (n, v.to_string()),
        None => (0.0, String::new()),
    }
}

/// Whether a unit passes the include/exclude filter (and is loaded).
pub fn kept(u: &ListedUnit, include: &Regex, exclude: &Regex) -> bool {
    include.is_match(&u.name) && !exclude.is_match(&u.name) && u.load_state == "loaded"
}

/// The families for a snapshot, in node_exporter's order of declaration.
pub fn render(s: &Snapshot, opts: &Settings) -> Result<Vec<MetricFamily>, CollectError> {
    let (version, version_label) = s
        .version
        .as_deref()
        .map_or((0.0, String::new()), parse_version);
    let mut fams = Vec::new();
    fams.push(
        MetricFamily::gauge("node_systemd_version", "Detected systemd version")
            .with(&[("version", &version_label)], version),
    );
    let virt = match s.virtualization.as_deref() {
        None => "unknown",
        Some("") => "none",
        Some(v) => v,
    };
    fams.push(
        MetricFamily::gauge(
            "node_systemd_virtualization_info",
            "Detected virtualization technology",
        )
        .with(&[("virtualization_type", virt)], 1.0),
    );

    let mut summary = MetricFamily::gauge("node_systemd_units", "Summary of systemd unit states");
    let mut counts: Vec<(&str, f64)> = UNIT_STATES.iter().map(|s| (*s, 0.0)).collect();
    for u in &s.units {
        match counts.iter_mut().find(|(st, _)| *st == u.active_state) {
            Some((_, n)) => *n += 1.0,
            None => counts.push((&u.active_state, 1.0)),
        }
    }
    for (state, n) in counts {
        summary.push(&[("state", state)], n);
    }
    fams.push(summary);

    let mut unit_state = MetricFamily::gauge("node_systemd_unit_state", "Systemd unit");
    let mut restarts = MetricFamily::counter(
        "node_systemd_service_restart_total",
        "Service unit count of Restart triggers",
    );
    let mut start = MetricFamily::gauge(
        "node_systemd_unit_start_time_seconds",
        "Start time of the unit since unix epoch in seconds.",
    );
    let mut tasks_current = MetricFamily::gauge(
        "node_systemd_unit_tasks_current",
        "Current number of tasks per Systemd unit",
    );
    let mut tasks_max = MetricFamily::gauge(
        "node_systemd_unit_tasks_max",
        "Maximum number of tasks per Systemd unit",
    );
    let mut last_trigger = MetricFamily::gauge(
        "node_systemd_timer_last_trigger_seconds",
        "Seconds since epoch of last trigger.",
    );
    let mut accepted = MetricFamily::counter(
        "node_systemd_socket_accepted_connections_total",
        "Total number of accepted socket connections",
    );
    let mut current = MetricFamily::gauge(
        "node_systemd_socket_current_connections",
        "Current number of socket connections",
    );
    let mut refused = MetricFamily::gauge(
        "node_systemd_socket_refused_connections_total",
        "Total number of refused socket connections",
    );
    let timers = version >= MIN_VERSION_SYSTEM_STATE;
    for (u, p) in &s.kept {
        let name = u.name.as_str();
        let kind = p.kind.as_deref().unwrap_or("");
        for state in UNIT_STATES {
            let v = if state == u.active_state { 1.0 } else { 0.0 };
            unit_state.push(&[("name", name), ("state", state), ("type", kind)], v);
        }
        if opts.restarts && name.ends_with(".service") {
            if let Some(n) = p.restarts {
                restarts.push(&[("name", name)], f64::from(n));
            }
        }
        if opts.start_time {
            let usec = if u.active_state != "active" {
                Some(0)
            } else {
                p.active_enter_usec
            };
            if let Some(us) = usec {
                start.push(&[("name", name)], us as f64 / 1e6);
            }
        }
        if opts.tasks && name.ends_with(".service") {
            for (fam, v) in [
                (&mut tasks_current, p.tasks_current),
                (&mut tasks_max, p.tasks_max),
            ] {
                if let Some(v) = v.filter(|v| *v != u64::MAX) {
                    fam.push(&[("name", name)], v as f64);
                }
            }
        }
        if timers && name.ends_with(".timer") {
            if let Some(us) = p.last_trigger_usec {
                last_trigger.push(&[("name", name)], us as f64 / 1e6);
            }
        }
        if name.ends_with(".socket") {
            // As node_exporter: a socket whose NAccepted cannot be read is skipped, one whose
            // NConnections cannot be read gets no further samples.
            if let Some(a) = p.accepted {
                accepted.push(&[("name", name)], f64::from(a));
                if let Some(c) = p.connections {
                    current.push(&[("name", name)], f64::from(c));
                    if let Some(r) = p.refused {
                        refused.push(&[("name", name)], f64::from(r));
                    }
                }
            }
        }
    }
    fams.extend([
        unit_state,
        restarts,
        start,
        tasks_current,
        tasks_max,
        last_trigger,
        accepted,
        current,
        refused,
    ]);
    match &s.system_state {
        Some(Ok(state)) => fams.push(
            MetricFamily::gauge(
                "node_systemd_system_running",
                "Whether the system is operational (see 'systemctl is-system-running')",
            )
            .with(&[], if state == "running" { 1.0 } else { 0.0 }),
        ),
        Some(Err(e)) => {
            return Err(CollectError::Other(format!(
                "couldn't get system state: {e}"
            )))
        }
        None => {}
    }
    fams.retain(|f| !f.samples.is_empty());
    Ok(fams)
}

// ---------------------------------------------------------------------------------------
// The bus.

/// The system bus socket: the first `unix:path=` entry of `DBUS_SYSTEM_BUS_ADDRESS`, or
/// [`DEFAULT_SYSTEM_BUS`]. Other transports (abstract sockets, TCP) are not used: the sandbox
/// allows connecting to a pathname unix socket only.
pub fn bus_path(env: Option<&str>) -> Result<PathBuf, String> {
    let Some(addr) = env.filter(|a| !a.is_empty()) else {
        return Ok(PathBuf::from(DEFAULT_SYSTEM_BUS));
    };
    for entry in addr.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            if let Some(p) = kv.strip_prefix("path=") {
                return unescape(p).map(PathBuf::from);
            }
        }
    }
    Err(format!(
        "DBUS_SYSTEM_BUS_ADDRESS={addr:?} has no unix:path= entry (the sandbox allows \
         connecting to a pathname unix socket only)"
    ))
}

/// D-Bus address values escape bytes as `%XX`.
fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in D-Bus address value {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("D-Bus address value {s:?} is not UTF-8"))
}

/// Connects a unix stream socket to `path`, passing the full `sizeof(struct sockaddr_un)` as
/// the address length: the `dbus` policy fragment allows `connect` with that length only, so
/// an abstract socket (whose name is as long as the length says) is reachable only if its name
/// fills all 108 bytes.
pub fn connect_unix(path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut addr = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a usable unix socket path", path.display()),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let fd: OwnedFd = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    loop {
        // SAFETY: `addr` is a fully initialised sockaddr_un that outlives the call, and `len`
        // is its size; `fd` is an open socket we own. (nix's UnixAddr passes the path's own
        // length; the policy needs the full one, see above.)
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: `fd` is an open, connected unix stream socket whose ownership moves here.
    Ok(unsafe {
        std::os::unix::net::UnixStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd))
    })
}

/// A bus socket that reads and writes with `read`/`write` (through tokio): no file
/// descriptors are passed, so neither `sendmsg` nor `recvmsg` is needed under the sandbox.
#[derive(Debug)]
pub struct BusSocket(pub tokio::net::UnixStream);

#[derive(Debug)]
pub struct BusRead(tokio::net::unix::OwnedReadHalf);
#[derive(Debug)]
pub struct BusWrite(tokio::net::unix::OwnedWriteHalf);

impl zbus::connection::socket::Socket for BusSocket {
    type ReadHalf = BusRead;
    type WriteHalf = BusWrite;
    fn split(self) -> zbus::connection::socket::Split<BusRead, BusWrite> {
        let (r, w) = self.0.into_split();
        zbus::connection::socket::Split::new(BusRead(r), BusWrite(w))
    }
}

#[async_trait::async_trait]
impl zbus::connection::socket::ReadHalf for BusRead {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        let n = tokio::io::AsyncReadExt::read(&mut self.0, buf).await?;
        Ok((n, Vec::new()))
    }
}

#[async_trait::async_trait]
impl zbus::connection::socket::WriteHalf for BusWrite {
    async fn sendmsg(
        &mut self,
        buffer: &[u8],
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> std::io::Result<usize> {
        if !fds.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "passing file descriptors is not supported",
            ));
        }
        tokio::io::AsyncWriteExt::write(&mut self.0, buffer).await
    }

    async fn close(&mut self) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::shutdown(&mut self.0).await
    }
}

/// The process's connection to the system bus, made once and again after the bus went away.
pub struct Bus {
    rt: tokio::runtime::Runtime,
    conn: Option<zbus::Connection>,
}

/// The one bus connection of the process (scrapes take turns).
static BUS: Mutex<Option<Bus>> = Mutex::new(None);

/// Why a call failed: the bus answered with an error, or the connection is gone.
fn transport_broken(e: &zbus::Error) -> bool {
    !matches!(e, zbus::Error::MethodError(..) | zbus::Error::FDO(..))
}

impl Bus {
    fn new() -> Result<Bus, CollectError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| CollectError::Other(format!("D-Bus client runtime: {e}")))?;
        Ok(Bus { rt, conn: None })
    }

    /// Connects (again) to the system bus.
    fn connect(&mut self) -> Result<(), CollectError> {
        self.conn = None;
        let env = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok();
        let path = bus_path(env.as_deref()).map_err(CollectError::Other)?;
        let std_stream = connect_unix(&path).map_err(|e| CollectError::io(&path, e))?;
        std_stream
            .set_nonblocking(true)
            .map_err(|e| CollectError::io(&path, e))?;
        let conn = self.rt.block_on(async {
            let stream = tokio::net::UnixStream::from_std(std_stream)?;
            zbus::connection::Builder::socket(BusSocket(stream))
                .method_timeout(METHOD_TIMEOUT)
                .build()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
        let conn = conn.map_err(|e| {
            CollectError::Other(format!("D-Bus connection to {}: {e}", path.display()))
        })?;
        self.conn = Some(conn);
        Ok(())
    }

    /// One scrape's calls, `f` on the connection: connects first when there is no connection,
    /// and once more when the calls find it broken (dbus restarted). `f` returns whether an
    /// error means a broken connection. `who` names the collector in the log.
    pub(crate) fn run<T, F, Fut>(&mut self, who: &str, f: F) -> Result<T, CollectError>
    where
        F: Fn(zbus::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, (CollectError, bool)>>,
    {
        if self.conn.is_none() {
            self.connect()?;
        }
        match self.attempt(&f) {
            Ok(v) => Ok(v),
            Err((e, false)) => Err(e),
            Err((e, true)) => {
                // The bus went away (dbus restarted): connect again, once.
                log::info!("{who} collector: {e}; connecting to the system bus again");
                self.connect()?;
                self.attempt(&f).map_err(|(e, _)| e)
            }
        }
    }

    fn attempt<T, F, Fut>(&self, f: &F) -> Result<T, (CollectError, bool)>
    where
        F: Fn(zbus::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, (CollectError, bool)>>,
    {
        let Some(conn) = &self.conn else {
            return Err((CollectError::Other("not connected".into()), true));
        };
        self.rt.block_on(f(conn.clone()))
    }
}

/// Runs `f` on the process's bus connection (shared by the `systemd` and `logind`
/// collectors; scrapes take turns), creating it when needed.
pub(crate) fn with_bus<T>(
    f: impl FnOnce(&mut Bus) -> Result<T, CollectError>,
) -> Result<T, CollectError> {
    let mut guard = BUS
        .lock()
        .map_err(|_| CollectError::Other("D-Bus connection state poisoned".into()))?;
    if guard.is_none() {
        *guard = Some(Bus::new()?);
    }
    match guard.as_mut() {
        Some(bus) => f(bus),
        None => Err(CollectError::Other("no D-Bus connection".into())),
    }
}

/// Start-up, after the privilege drop and before the sandbox, on the single start-up thread:
/// the first connection to the system bus, as the agent's user, for the collectors `who`
/// (e.g. `systemd`, `logind`), which share it. Failure is not fatal (the bus may not be up
/// yet): the first scrape connects again, and says why it cannot.
pub fn connect_before_sandbox(who: &str) {
    let r = with_bus(|bus| bus.connect());
    match r {
        Ok(()) => log::info!("{who} collector: connected to the system bus"),
        Err(e) => log::warn!(
            "{who} collector: cannot connect to the system bus now ({e}); each scrape \
             tries again"
        ),
    }
}

async fn get_property(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    prop: &str,
) -> zbus::Result<OwnedValue> {
    let reply = conn
        .call_method(Some(DEST), path, Some(PROPERTIES), "Get", &(iface, prop))
        .await?;
    reply.body().deserialize::<OwnedValue>()
}

async fn string_property(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    prop: &str,
) -> zbus::Result<String> {
    let v = get_property(conn, path, iface, prop).await?;
    String::try_from(v).map_err(zbus::Error::Variant)
}

async fn u64_property(conn: &zbus::Connection, path: &str, iface: &str, prop: &str) -> Option<u64> {
    let v = get_property(conn, path, iface, prop).await.ok()?;
    u64::try_from(v).ok()
}

async fn u32_property(conn: &zbus::Connection, path: &str, iface: &str, prop: &str) -> Option<u32> {
    let v = get_property(conn, path, iface, prop).await.ok()?;
    u32::try_from(v).ok()
}

type ListUnitsReply = Vec<(
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
)>;

fn broken(e: zbus::Error, what: &str) -> (CollectError, bool) {
    let b = transport_broken(&e);
    (CollectError::Other(format!("{what}: {e}")), b)
}

async fn read_snapshot(
    conn: &zbus::Connection,
    opts: &Settings,
    include: &Regex,
    exclude: &Regex,
) -> Result<Snapshot, (CollectError, bool)> {
    // The first call tells whether the connection still works.
    let version = match string_property(conn, MANAGER_PATH, MANAGER, "Version").await {
        Ok(v) => Some(v),
        Err(e) if transport_broken(&e) => return Err(broken(e, "systemd version")),
        Err(e) => {
            log::debug!("systemd collector: cannot read Version: {e}");
            None
        }
    };
    let mut s = Snapshot {
        version,
        ..Snapshot::default()
    };
    s.virtualization = string_property(conn, MANAGER_PATH, MANAGER, "Virtualization")
        .await
        .ok();
    let reply = conn
        .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "ListUnits", &())
        .await
        .map_err(|e| broken(e, "couldn't get units"))?;
    let listed: ListUnitsReply = reply
        .body()
        .deserialize()
        .map_err(|e| broken(e, "couldn't get units"))?;
    s.units = listed
        .into_iter()
        .map(|(name, _, load, active, _, _, path, _, _, _)| ListedUnit {
            name,
            load_state: load,
            active_state: active,
            path: path.as_str().to_string(),
        })
        .collect();
    let (version, _) = s
        .version
        .as_deref()
        .map_or((0.0, String::new()), parse_version);
    for u in s.units.iter().filter(|u| kept(u, include, exclude)) {
        let mut p = UnitProps::default();
        let path = u.path.as_str();
        let service = u.name.ends_with(".service");
        if service {
            p.kind = string_property(conn, path, "org.freedesktop.systemd1.Service", "Type")
                .await
                .ok();
        } else if u.name.ends_with(".mount") {
            p.kind = string_property(conn, path, "org.freedesktop.systemd1.Mount", "Type")
                .await
                .ok();
        }
        if opts.restarts && service {
            p.restarts =
                u32_property(conn, path, "org.freedesktop.systemd1.Service", "NRestarts").await;
        }
        if opts.start_time && u.active_state == "active" {
            p.active_enter_usec = u64_property(
                conn,
                path,
                "org.freedesktop.systemd1.Unit",
                "ActiveEnterTimestamp",
            )
            .await;
        }
        if opts.tasks && service {
            let iface = "org.freedesktop.systemd1.Service";
            p.tasks_current = u64_property(conn, path, iface, "TasksCurrent").await;
            p.tasks_max = u64_property(conn, path, iface, "TasksMax").await;
        }
        if version >= MIN_VERSION_SYSTEM_STATE && u.name.ends_with(".timer") {
            p.last_trigger_usec = u64_property(
                conn,
                path,
                "org.freedesktop.systemd1.Timer",
                "LastTriggerUSec",
            )
            .await;
        }
        if u.name.ends_with(".socket") {
            let iface = "org.freedesktop.systemd1.Socket";
            p.accepted = u32_property(conn, path, iface, "NAccepted").await;
            p.connections = u32_property(conn, path, iface, "NConnections").await;
            p.refused = u32_property(conn, path, iface, "NRefused").await;
        }
        s.kept.push((u.clone(), p));
    }
    if version >= MIN_VERSION_SYSTEM_STATE {
        s.system_state = Some(
            string_property(conn, MANAGER_PATH, MANAGER, "SystemState")
                .await
                .map_err(|e| e.to_string()),
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::testutil::served;

    fn unit(name: &str, load: &str, active: &str) -> ListedUnit {
        ListedUnit {
            name: name.into(),
            load_state: load.into(),
            active_state: active.into(),
            path: String::new(),
        }
    }

    fn settings(all: bool) -> Settings {
        let mut o = SystemdOptions::default();
        if all {
            o.enable_task_metrics = Some(true);
            o.enable_restarts_metrics = Some(true);
            o.enable_start_time_metrics = Some(true);
        }
        Settings::from_options(&o)
    }

    #[test]
    fn version_as_node_exporter_parses_it() {
        assert_eq!(
            parse_version("252.38-1~deb12u1"),
            (252.38, "252.38-1~deb12u1".into())
        );
        assert_eq!(parse_version("249"), (249.0, "249".into()));
        assert_eq!(parse_version("v12"), (0.0, String::new()));
    }

    #[test]
    fn default_filter_drops_mounts_slices_and_unloaded_units() {
        let s = settings(false);
        let (inc, exc) = (
            s.include.clone().expect("include"),
            s.exclude.clone().expect("exclude"),
        );
        assert!(kept(&unit("ssh.service", "loaded", "active"), &inc, &exc));
        assert!(!kept(&unit("-.mount", "loaded", "active"), &inc, &exc));
        assert!(!kept(&unit("user.slice", "loaded", "active"), &inc, &exc));
        assert!(!kept(
            &unit("gone.service", "not-found", "inactive"),
            &inc,
            &exc
        ));
        // Anchored: an include of "ssh" does not keep "ssh.service".
        let o = SystemdOptions {
            unit_include: Some("ssh".parse().expect("pattern")),
            ..SystemdOptions::default()
        };
        let s = Settings::from_options(&o);
        assert!(!kept(
            &unit("ssh.service", "loaded", "active"),
            s.include.as_ref().expect("include"),
            &exc
        ));
    }

    #[test]
    fn deprecated_spellings_conflict_with_their_successors() {
        use crate::collector::options::Merge;
        let mut o = SystemdOptions {
            unit_whitelist: Some("a".parse().expect("pattern")),
            ..SystemdOptions::default()
        };
        assert!(o.check().is_ok());
        o.unit_include = Some("b".parse().expect("pattern"));
        assert!(o.check().is_err());
        let o = SystemdOptions {
            private: Some(true),
            ..SystemdOptions::default()
        };
        assert!(o.check().is_err());
    }

    #[test]
    fn bus_address_from_the_environment() {
        assert_eq!(bus_path(None), Ok(PathBuf::from(DEFAULT_SYSTEM_BUS)));
        assert_eq!(
            bus_path(Some("unix:path=/tmp/a%20b,guid=1234")),
            Ok(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(
            bus_path(Some("unix:abstract=x;unix:path=/run/x")),
            Ok(PathBuf::from("/run/x"))
        );
        assert!(bus_path(Some("tcp:host=localhost,port=1")).is_err());
        assert!(bus_path(Some("unix:path=/x%2")).is_err());
    }

    #[test]
    fn renders_node_exporter_families() {
        let snap = Snapshot {
            version: Some("252.38-1~deb12u1".into()),
            virtualization: Some(String::new()),
            units: vec![
                unit("a.service", "loaded", "active"),
                unit("b.service", "loaded", "failed"),
                unit("c.socket", "loaded", "active"),
                unit("d.timer", "loaded", "active"),
                unit("e.mount", "loaded", "active"),
                unit("f.service", "not-found", "inactive"),
            ],
            kept: vec![
                (
                    unit("a.service", "loaded", "active"),
                    UnitProps {
                        kind: Some("notify".into()),
                        restarts: Some(2),
                        active_enter_usec: Some(1_700_000_000_500_000),
                        tasks_current: Some(3),
                        tasks_max: Some(u64::MAX),
                        ..UnitProps::default()
                    },
                ),
                (
                    unit("b.service", "loaded", "failed"),
                    UnitProps {
                        kind: Some("oneshot".into()),
                        restarts: Some(0),
                        ..UnitProps::default()
                    },
                ),
                (
                    unit("c.socket", "loaded", "active"),
                    UnitProps {
                        accepted: Some(7),
                        connections: Some(1),
                        refused: None,
                        active_enter_usec: Some(1_000_000),
                        ..UnitProps::default()
                    },
                ),
                (
                    unit("d.timer", "loaded", "active"),
                    UnitProps {
                        last_trigger_usec: Some(2_500_000),
                        active_enter_usec: Some(0),
                        ..UnitProps::default()
                    },
                ),
            ],
            system_state: Some(Ok("degraded".into())),
        };
        let text = served(render(&snap, &settings(true)).expect("render"));
        let want = [
            "node_systemd_service_restart_total{name=\"a.service\"} 2",
            "node_systemd_service_restart_total{name=\"b.service\"} 0",
            "node_systemd_socket_accepted_connections_total{name=\"c.socket\"} 7",
            "node_systemd_socket_current_connections{name=\"c.socket\"} 1",
            "node_systemd_system_running 0",
            "node_systemd_timer_last_trigger_seconds{name=\"d.timer\"} 2.5",
            "node_systemd_unit_start_time_seconds{name=\"a.service\"} 1.7000000005e+09",
            "node_systemd_unit_start_time_seconds{name=\"b.service\"} 0",
            "node_systemd_unit_start_time_seconds{name=\"c.socket\"} 1",
            "node_systemd_unit_state{name=\"a.service\",state=\"active\",type=\"notify\"} 1",
            "node_systemd_unit_state{name=\"b.service\",state=\"failed\",type=\"oneshot\"} 1",
            "node_systemd_unit_state{name=\"b.service\",state=\"active\",type=\"oneshot\"} 0",
            "node_systemd_unit_state{name=\"c.socket\",state=\"active\",type=\"\"} 1",
            "node_systemd_unit_tasks_current{name=\"a.service\"} 3",
            "node_systemd_units{state=\"active\"} 4",
            "node_systemd_units{state=\"failed\"} 1",
            "node_systemd_units{state=\"inactive\"} 1",
            "node_systemd_units{state=\"deactivating\"} 0",
            "node_systemd_version{version=\"252.38-1~deb12u1\"} 252.38",
            "node_systemd_virtualization_info{virtualization_type=\"none\"} 1",
            "# TYPE node_systemd_service_restart_total counter",
            "# TYPE node_systemd_socket_accepted_connections_total counter",
        ];
        for w in want {
            assert!(text.lines().any(|l| l == w), "missing {w:?} in\n{text}");
        }
        assert!(!text.contains("node_systemd_unit_tasks_max"), "{text}");
        assert!(!text.contains("refused_connections_total{"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("node_systemd_unit_state{"))
                .count(),
            4 * 5
        );
        // Without the flags: no restart, start-time or task families.
        let plain = served(render(&snap, &settings(false)).expect("render"));
        for absent in ["restart_total", "start_time", "tasks_"] {
            assert!(!plain.contains(absent), "{absent} in\n{plain}");
        }
    }

    #[test]
    fn system_state_failure_fails_the_collector() {
        let snap = Snapshot {
            version: Some("252".into()),
            system_state: Some(Err("timeout".into())),
            ..Snapshot::default()
        };
        assert!(render(&snap, &settings(false)).is_err());
    }
}
