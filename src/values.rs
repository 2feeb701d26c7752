//! Values read from both the command line and the configuration file, each validated by its
//! `FromStr`: listen addresses, the log level, the telemetry path. A leaf module: the command
//! line and the configuration both use it, and it uses neither.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The port node_exporter uses, so we are a drop-in.
pub const DEFAULT_PORT: u16 = 9100;
/// Parallel scrapes before 503 (node_exporter's `--web.max-requests` default).
pub const DEFAULT_MAX_REQUESTS: u32 = 40;
/// Connections served at once (`web.max_connections`). Above the 1,600 hostile sockets one
/// address holds in `tests/edge_hostile.rs`; an idle connection costs about one kilobyte, one
/// trickling a request head about ten (hyper's read buffer).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 2048;

/// A listen address: `HOST:PORT`, `[V6]:PORT`, or `:PORT` for every address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// `:PORT`: all addresses (IPv6 dual-stack, IPv4 where IPv6 is unavailable).
    Any(u16),
    Addr(SocketAddr),
}

impl ListenAddr {
    pub fn port(&self) -> u16 {
        match self {
            ListenAddr::Any(p) => *p,
            ListenAddr::Addr(a) => a.port(),
        }
    }
    pub fn with_port(&self, port: u16) -> ListenAddr {
        match self {
            ListenAddr::Any(_) => ListenAddr::Any(port),
            ListenAddr::Addr(a) => ListenAddr::Addr(SocketAddr::new(a.ip(), port)),
        }
    }
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port_of = |p: &str| -> Result<u16, String> {
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(format!(
                    "invalid listen address '{s}': port must be 1 to 65535"
                )),
            }
        };
        if let Some(port) = s.strip_prefix(':') {
            return Ok(ListenAddr::Any(port_of(port)?));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("invalid listen address '{s}': expected [IPV6]:PORT"))?;
            (h, p)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| format!("invalid listen address '{s}': expected HOST:PORT"))?
        };
        let port = port_of(port)?;
        let ip = match host {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            h => h
                .parse::<IpAddr>()
                .map_err(|_| format!("invalid listen address '{s}': '{h}' is not an IP address"))?,
        };
        if s.starts_with('[') != ip.is_ipv6() {
            return Err(format!(
                "invalid listen address '{s}': IPv6 addresses go in brackets, IPv4 ones do not"
            ));
        }
        Ok(ListenAddr::Addr(SocketAddr::new(ip, port)))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Any(p) => write!(f, ":{p}"),
            ListenAddr::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// `--log.format`: node_exporter's (promslog's) line formats for stderr and the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time=... level=INFO msg="..."`
    Logfmt,
    /// `{"time":"...","level":"INFO","msg":"..."}`
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("invalid log format '{s}': expected logfmt or json")),
        }
    }
}

/// Log severity threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "invalid log level '{s}': expected debug, info, warn or error"
            )),
        }
    }
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
        }
    }
}

/// The HTTP path metrics are served under: absolute, not `/`, printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPath(pub String);

impl FromStr for TelemetryPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') || s == "/" {
            return Err(format!(
                "invalid telemetry path '{s}': must start with '/' and not be '/' (the landing page)"
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) || s.contains(['?', '#']) {
            return Err(format!(
                "invalid telemetry path '{s}': only printable ASCII without '?' or '#'"
            ));
        }
        Ok(TelemetryPath(s.to_string()))
    }
}

/// Go's `time.ParseDuration` for non-negative values: `[0-9.]+` and a unit (`ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`), repeated; `0` alone.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. \"1s\", \"500ms\", \"1m30s\"");
    let t = s.strip_prefix('+').unwrap_or(s);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut rest = t;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}
