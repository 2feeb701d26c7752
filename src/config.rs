//! Configuration: defaults, then the TOML file, then command-line flags, validated into one
//! immutable [`Settings`]. Errors name the file, line and column.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{Cli, DEFAULT_CONFIG};
use crate::collector::Paths;
pub use crate::values::{
    ListenAddr, LogFormat, LogLevel, TelemetryPath, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUESTS,
    DEFAULT_PORT,
};

pub const DEFAULT_USER: &str = "monitoring-agent";
pub const DEFAULT_PID_FILE: &str = "/run/monitoring-agent/monitoring-agent.pid";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}, column {column}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("config file {path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{0}")]
    Flags(String),
}

macro_rules! deserialize_from_str {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
deserialize_from_str!(ListenAddr);
deserialize_from_str!(LogLevel);
deserialize_from_str!(LogFormat);
deserialize_from_str!(TelemetryPath);
deserialize_from_str!(CollectorName);

/// The file's shape: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    daemon: Option<bool>,
    user: Option<toml::Spanned<String>>,
    pid_file: Option<PathBuf>,
    log_file: Option<PathBuf>,
    log_level: Option<LogLevel>,
    log_format: Option<LogFormat>,
    sandbox: Option<toml::Spanned<String>>,
    #[serde(default)]
    web: FileWeb,
    #[serde(default)]
    paths: FilePaths,
    #[serde(default)]
    collectors: FileCollectors,
    /// Each collector's own options: `[collector.<name>]`.
    #[serde(default)]
    collector: crate::collectors::Options,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCollectors {
    enable: Option<Vec<CollectorName>>,
    disable: Option<Vec<CollectorName>>,
    disable_defaults: Option<bool>,
    deadline_seconds: Option<Seconds>,
}

/// The name of a collector this build knows.
#[derive(Debug, Clone, Copy)]
struct CollectorName(&'static str);

impl FromStr for CollectorName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::collectors::known(s)
            .map(|k| CollectorName(k.name))
            .ok_or_else(|| format!("unknown collector '{s}'"))
    }
}

/// A positive number of seconds, at most an hour.
#[derive(Debug, Clone, Copy)]
struct Seconds(f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v > 0.0 && v <= 3600.0 {
            Ok(Seconds(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid value {v}: expected seconds above 0 and at most 3600"
            )))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    listen_addresses: Option<Vec<toml::Spanned<String>>>,
    telemetry_path: Option<TelemetryPath>,
    max_requests: Option<Positive>,
    max_connections: Option<Positive>,
    header_read_timeout_seconds: Option<Positive>,
    idle_timeout_seconds: Option<Positive>,
    shutdown_timeout_seconds: Option<Positive>,
    max_header_bytes: Option<Positive>,
    /// `--web.config.file`; relative to the TOML file's directory.
    config_file: Option<PathBuf>,
    disable_exporter_metrics: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePaths {
    procfs: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    rootfs: Option<PathBuf>,
    udev_data: Option<PathBuf>,
}

/// A whole number of at least 1.
#[derive(Debug, Clone, Copy)]
struct Positive(u32);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(v) if v >= 1 => Ok(Positive(v)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid value {n}: expected a whole number from 1 to {}",
                u32::MAX
            ))),
        }
    }
}

/// HTTP server settings; all of them take effect on a SIGHUP reload. (The listen addresses are
/// [`StartupSettings`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub telemetry_path: TelemetryPath,
    /// Parallel scrapes; more are answered 503 (node_exporter's `--web.max-requests`).
    pub max_requests: u32,
    /// Connections served at once; more are accepted and wait, and one address holding
    /// more than its share gives up its oldest connection that has not yet sent a request
    /// (`server::ConnSlots`).
    pub max_connections: u32,
    /// Time allowed for a request's headers, counted from when the server starts waiting
    /// for them (so it also closes keep-alive connections idle that long).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed (a client that stopped
    /// reading its response).
    pub idle_timeout: Duration,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Largest request head accepted (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// `--web.disable-exporter-metrics`: leave out the agent's `process_*` and `promhttp_*`
    /// families, as node_exporter leaves out its `process_*`, `go_*` and `promhttp_*`.
    pub disable_exporter_metrics: bool,
}

/// Which collectors run, how long each may take, and their options.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSettings {
    /// Enabled collectors, sorted by name.
    pub enabled: Vec<&'static str>,
    pub deadline: Duration,
    pub options: crate::collectors::Options,
}

/// Settings fixed for the life of the process: the root phase, the bind, the privilege drop
/// and the sandbox are built from them before any reload can happen (the Landlock rules from
/// the paths, the listeners from the addresses). A reload never produces a new one; it only
/// names, with [`StartupSettings::changes`], what waits for a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupSettings {
    /// The configuration file in use, if any (re-read on SIGHUP).
    pub config_file: Option<PathBuf>,
    pub daemon: bool,
    pub user: String,
    pub pid_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// `--log.format` (`None`: the agent's own line format).
    pub log_format: Option<LogFormat>,
    pub sandbox: String,
    /// Where the collectors read, the textfile directory included: what Landlock grants.
    pub paths: Paths,
    pub listen: Vec<ListenAddr>,
    /// Serve the sockets systemd passes instead of binding `listen`.
    pub systemd_socket: bool,
    /// The seccomp policy fragments the collectors enabled at start-up need
    /// (`policy/fragments/`): fixed with the filter, so a collector enabled later by SIGHUP
    /// that needs another one waits for a restart.
    pub fragments: crate::sandbox::fragments::Set,
    /// `--web.config.file` (absolute): TLS and authentication. Landlock grants the directories
    /// of the files it names; its content reloads on SIGHUP and when its files change.
    pub web_config_file: Option<PathBuf>,
}

impl StartupSettings {
    /// The settings that differ in `new` and so wait for a restart, by their configuration
    /// names. Destructured whole: a new field does not compile until it is listed here.
    pub fn changes(&self, new: &StartupSettings) -> Vec<&'static str> {
        let StartupSettings {
            config_file: _,
            daemon,
            user,
            pid_file,
            log_file,
            log_format,
            sandbox,
            paths:
                Paths {
                    procfs,
                    sysfs,
                    rootfs,
                    udev_data,
                    textfile_directory,
                    collector_files,
                },
            listen,
            systemd_socket,
            fragments,
            web_config_file,
        } = self;
        let mut v = Vec::new();
        let mut differs = |changed: bool, name: &'static str| {
            if changed {
                v.push(name);
            }
        };
        differs(*daemon != new.daemon, "daemon");
        differs(*user != new.user, "user");
        differs(*pid_file != new.pid_file, "pid_file");
        differs(*log_file != new.log_file, "log_file");
        differs(*log_format != new.log_format, "log_format");
        differs(*sandbox != new.sandbox, "sandbox");
        differs(*procfs != new.paths.procfs, "paths.procfs");
        differs(*sysfs != new.paths.sysfs, "paths.sysfs");
        differs(*rootfs != new.paths.rootfs, "paths.rootfs");
        differs(*udev_data != new.paths.udev_data, "paths.udev_data");
        differs(
            *textfile_directory != new.paths.textfile_directory,
            "collector.textfile.directory",
        );
        differs(
            *collector_files != new.paths.collector_files,
            "collector files granted by Landlock (pcidevice pci.ids, qdisc/wifi fixtures)",
        );
        // Listeners are bound before the sandbox, which allows no socket, bind or listen
        // afterwards (a new listener could be opened on any port through listen's automatic
        // bind, and on kernels without Landlock ABI 4 on any port at all).
        differs(
            *listen != new.listen && !*systemd_socket,
            "web.listen_addresses",
        );
        differs(*systemd_socket != new.systemd_socket, "web.systemd_socket");
        // The seccomp filter is installed once (src/reload.rs names the collectors concerned).
        differs(
            !fragments.contains(new.fragments),
            "sandbox policy fragments (collectors that need one)",
        );
        // Landlock grants the directories it names, fixed at start-up.
        differs(*web_config_file != new.web_config_file, "web.config_file");
        v
    }
}

/// Settings a SIGHUP reload replaces as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadableSettings {
    pub log_level: LogLevel,
    pub web: WebSettings,
    pub collectors: CollectorSettings,
}

/// Directories shared with the rest of the system: the sandbox never grants one of them whole
/// for reading the configuration (it would expose every other service's files there).
const SHARED_DIRS: &[&str] = &[
    "/",
    "/etc",
    "/etc/default",
    "/etc/sysconfig",
    "/usr",
    "/usr/local",
    "/usr/local/etc",
    "/var",
    "/var/lib",
    "/tmp",
    "/var/tmp",
    "/run",
    "/var/run",
    "/home",
    "/root",
    "/opt",
    "/srv",
    "/mnt",
    "/media",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
];

/// What the sandbox grants so that SIGHUP can re-read the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigAccess {
    /// The file's own directory, read-only: a file replaced by rename (editors, configuration
    /// management) is still readable.
    Directory(PathBuf),
    /// The file alone (Landlock follows its inode), because its directory is shared with the
    /// rest of the system: a file replaced by rename becomes unreadable until a restart.
    FileOnly { shared: PathBuf },
}

impl ConfigAccess {
    /// Decides for a configuration file (an absolute path).
    pub fn of(file: &Path) -> ConfigAccess {
        use std::os::unix::fs::PermissionsExt;
        let dir = file.parent().unwrap_or(Path::new("/"));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let normalized: PathBuf = dir.components().collect();
        // World-writable (or sticky, like /tmp): anyone could put files there.
        let open_to_all =
            std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o1002 != 0);
        if open_to_all || SHARED_DIRS.iter().any(|d| Path::new(d) == normalized) {
            ConfigAccess::FileOnly { shared: normalized }
        } else {
            ConfigAccess::Directory(normalized)
        }
    }

    /// The path the sandbox grants read access to.
    pub fn granted(&self, file: &Path) -> PathBuf {
        match self {
            ConfigAccess::Directory(d) => d.clone(),
            ConfigAccess::FileOnly { .. } => file.to_path_buf(),
        }
    }

    /// The start-up (and `--check-config`) warning for a file in a shared directory.
    pub fn warning(&self, file: &Path) -> Option<String> {
        match self {
            ConfigAccess::Directory(_) => None,
            ConfigAccess::FileOnly { shared } => Some(format!(
                "config file {} lives in the shared directory {}: the sandbox can grant only \
                 the file itself, so after it is replaced by rename (editors and configuration \
                 management do that) a SIGHUP cannot read it; keep it in a directory of its \
                 own, e.g. /etc/monitoring-agent/",
                file.display(),
                shared.display()
            )),
        }
    }
}

/// The validated configuration, split by lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub startup: StartupSettings,
    pub reloadable: ReloadableSettings,
}

impl Settings {
    /// Defaults, then the configuration file (the named one, or the default one if present),
    /// then the command line.
    pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
        let source = match &cli.config {
            Some(p) => Some((p.clone(), read_text(p)?)),
            None => {
                let p = Path::new(DEFAULT_CONFIG);
                match std::fs::read_to_string(p) {
                    Ok(text) => Some((p.to_path_buf(), text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        return Err(ConfigError::Read {
                            path: p.to_path_buf(),
                            source: e,
                        })
                    }
                }
            }
        };
        let (path, text) = match source {
            // Absolute: a daemon re-reads it after chdir("/").
            Some((p, t)) => (Some(std::path::absolute(&p).unwrap_or(p)), t),
            None => (None, String::new()),
        };
        let file_path = path.clone().unwrap_or_default();
        let f = parse_file(&file_path, &text)?;
        // Values checked after parsing keep their span, so errors still carry line and column.
        let spanned_err = |span: std::ops::Range<usize>, msg: String| {
            let (line, column) = line_col(&text, span.start);
            ConfigError::Parse {
                path: file_path.clone(),
                line,
                column,
                msg,
            }
        };

        // File values are validated (with their position) even where a flag overrides them.
        if let Some(u) = &f.user {
            if let Err(e) = u.get_ref().parse::<crate::privilege::UserSpec>() {
                return Err(spanned_err(u.span(), e.to_string()));
            }
        }
        if let Some(m) = &f.sandbox {
            if let Err(e) = m.get_ref().parse::<crate::sandbox::Mode>() {
                return Err(spanned_err(m.span(), e.to_string()));
            }
        }
        let user = cli
            .user
            .clone()
            .or_else(|| f.user.as_ref().map(|u| u.get_ref().clone()))
            .unwrap_or_else(|| DEFAULT_USER.to_string());
        let sandbox = cli
            .sandbox
            .clone()
            .or_else(|| f.sandbox.as_ref().map(|m| m.get_ref().clone()))
            .unwrap_or_else(|| "enforce".to_string());

        // Each entry keeps its own span, so an error points at the entry itself. The file is
        // validated whole even where a flag overrides it.
        let mut from_file = None;
        if let Some(entries) = &f.web.listen_addresses {
            let mut v = Vec::with_capacity(entries.len());
            for e in entries {
                v.push(
                    e.get_ref()
                        .parse::<ListenAddr>()
                        .map_err(|msg| spanned_err(e.span(), msg))?,
                );
            }
            from_file = Some(v);
        }
        let mut listen = if !cli.listen_addresses.is_empty() {
            cli.listen_addresses.clone()
        } else {
            from_file.unwrap_or_else(|| vec![ListenAddr::Any(DEFAULT_PORT)])
        };
        if listen.is_empty() {
            return Err(ConfigError::Invalid {
                path: file_path,
                msg: "web.listen_addresses must name at least one address".into(),
            });
        }
        if let Some(port) = cli.port {
            listen = listen.iter().map(|a| a.with_port(port)).collect();
        }
        let mut seen = std::collections::HashSet::new();
        listen.retain(|a| seen.insert(*a));

        let pid_file = cli
            .pid_file
            .clone()
            .or(f.pid_file)
            .or_else(|| {
                nix::unistd::geteuid()
                    .is_root()
                    .then(|| DEFAULT_PID_FILE.into())
            })
            .filter(|p| !p.as_os_str().is_empty());
        let log_file = cli
            .log_file
            .clone()
            .or(f.log_file)
            .filter(|p| !p.as_os_str().is_empty());

        let secs = |v: Option<Positive>, d: u64| Duration::from_secs(v.map_or(d, |p| p.0 as u64));
        let web = WebSettings {
            telemetry_path: cli
                .telemetry_path
                .clone()
                .or(f.web.telemetry_path)
                .unwrap_or(TelemetryPath("/metrics".into())),
            max_requests: cli
                .max_requests
                .or(f.web.max_requests.map(|p| p.0))
                .unwrap_or(DEFAULT_MAX_REQUESTS),
            max_connections: f
                .web
                .max_connections
                .map_or(DEFAULT_MAX_CONNECTIONS, |p| p.0),
            header_read_timeout: secs(f.web.header_read_timeout_seconds, 10),
            idle_timeout: secs(f.web.idle_timeout_seconds, 60),
            shutdown_timeout: secs(f.web.shutdown_timeout_seconds, 10),
            max_header_bytes: f
                .web
                .max_header_bytes
                .map_or(16 * 1024, |p| p.0 as usize)
                .max(8192),
            disable_exporter_metrics: cli.disable_exporter_metrics
                || f.web.disable_exporter_metrics.unwrap_or(false),
        };
        let (collectors, textfile_directory, collector_files) =
            collector_settings(cli, f.collectors, f.collector).map_err(|msg| match &path {
                Some(p) => ConfigError::Invalid {
                    path: p.clone(),
                    msg,
                },
                None => ConfigError::Flags(msg),
            })?;
        let web_config_file = cli
            .web_config_file
            .clone()
            .or_else(|| {
                let p = f.web.config_file.clone()?;
                let dir = path
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."));
                Some(dir.join(p))
            })
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| std::path::absolute(&p).unwrap_or(p));
        let paths = Paths {
            procfs: cli
                .procfs
                .clone()
                .or(f.paths.procfs)
                .unwrap_or("/proc".into()),
            sysfs: cli.sysfs.clone().or(f.paths.sysfs).unwrap_or("/sys".into()),
            rootfs: cli.rootfs.clone().or(f.paths.rootfs).unwrap_or("/".into()),
            udev_data: cli
                .udev_data
                .clone()
                .or(f.paths.udev_data)
                .unwrap_or("/run/udev/data".into()),
            textfile_directory,
            collector_files,
        };
        Ok(Settings {
            startup: StartupSettings {
                config_file: path,
                daemon: cli.daemon || f.daemon.unwrap_or(false),
                user,
                pid_file,
                log_file,
                log_format: cli.log_format.or(f.log_format),
                sandbox,
                paths,
                listen,
                systemd_socket: cli.systemd_socket,
                fragments: crate::sandbox::fragments::Set::for_collectors(
                    &crate::collectors::policy_users(&collectors.enabled, &collectors.options),
                ),
                web_config_file,
            },
            reloadable: ReloadableSettings {
                log_level: cli.log_level.or(f.log_level).unwrap_or(LogLevel::Info),
                web,
                collectors,
            },
        })
    }
}

/// Defaults, then the file's `[collectors]` table, then the flags.
/// The collector settings, the textfile directory and the other files collectors read outside
/// procfs and sysfs (start-up settings: Landlock grants them).
fn collector_settings(
    cli: &Cli,
    f: FileCollectors,
    file_options: crate::collectors::Options,
) -> Result<
    (
        CollectorSettings,
        Option<PathBuf>,
        crate::collector::CollectorFiles,
    ),
    String,
> {
    use crate::collectors::KNOWN;
    let disable_defaults = cli.disable_defaults || f.disable_defaults.unwrap_or(false);
    let mut enabled: std::collections::BTreeSet<&'static str> = KNOWN
        .iter()
        .filter(|k| k.default_on && !disable_defaults)
        .map(|k| k.name)
        .collect();
    for n in f.enable.iter().flatten() {
        enabled.insert(n.0);
    }
    for n in f.disable.iter().flatten() {
        enabled.remove(n.0);
    }
    enabled.extend(cli.collectors_on.iter().copied());
    for n in &cli.collectors_off {
        enabled.remove(n);
    }
    // The flags over the file's `[collector.<name>]` tables, then each collector's check.
    let mut options = cli.collector.clone().merge(file_options);
    options.check()?;
    // What node_exporter 1.12 checks only when the collector is built (enabled).
    if enabled.contains("ntp") {
        crate::collectors::ntp::check_enabled(&options.ntp).map_err(|e| format!("ntp: {e}"))?;
    }
    // node_exporter 1.12's cpu collector asks whether cpufreq is on (node_cpu_frequency_hertz).
    options.cpu.cpufreq_enabled = Some(enabled.contains("cpufreq"));
    // Start-up only: the directory moves into `Paths` (Landlock grants it), and the reloadable
    // options keep no copy a reload could change.
    let textfile_directory = options
        .textfile
        .directory
        .take()
        .filter(|p| !p.as_os_str().is_empty());
    let collector_files = crate::collectors::collector_files(&enabled, &mut options);
    let deadline = cli
        .collector_deadline
        .or(f.deadline_seconds.map(|s| s.0))
        .unwrap_or(5.0);
    Ok((
        CollectorSettings {
            enabled: enabled.into_iter().collect(),
            deadline: Duration::from_secs_f64(deadline),
            options,
        },
        textfile_directory,
        collector_files,
    ))
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            msg: e.message().trim().replace('\n', " "),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["monitoring-agent"];
        v.extend_from_slice(args);
        Cli::parse_args(v).expect("cli")
    }

    fn with_file(text: &str, args: &[&str]) -> Result<Settings, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(text.as_bytes()).expect("write");
        let p = f.path().to_str().expect("utf8").to_string();
        let mut a = vec!["-c", &p];
        a.extend_from_slice(args);
        Settings::load(&cli(&a))
    }

    #[test]
    fn collector_files_are_start_up_settings_of_enabled_collectors() {
        // Flags: the fixtures and pci.ids move into `Paths::collector_files`, out of the
        // reloadable options.
        let s = Settings::load(&cli(&[
            "--collector.qdisc",
            "--collector.qdisc.fixtures=/q",
            "--collector.wifi.fixtures=/w",
            "--collector.pcidevice",
            "--collector.pcidevice.names",
            "--collector.pcidevice.idsfile=/ids/pci.ids",
        ]))
        .expect("loads");
        let files = &s.startup.paths.collector_files;
        assert_eq!(files.qdisc_fixtures, Some(PathBuf::from("/q")));
        // wifi is not enabled: its fixtures are not granted.
        assert_eq!(files.wifi_fixtures, None);
        assert_eq!(files.pci_ids, Some(PathBuf::from("/ids/pci.ids")));
        assert_eq!(s.reloadable.collectors.options.qdisc.fixtures, None);
        assert_eq!(s.reloadable.collectors.options.pcidevice.names, Some(true));
        // The file's tables give the same, and a change waits for a restart.
        let f = with_file(
            "[collectors]\nenable = [\"wifi\"]\n[collector.wifi]\nfixtures = \"/w\"\n",
            &[],
        )
        .expect("loads");
        assert_eq!(
            f.startup.paths.collector_files.wifi_fixtures,
            Some(PathBuf::from("/w"))
        );
        assert!(s
            .startup
            .changes(&f.startup)
            .iter()
            .any(|c| c.starts_with("collector files")));
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(":9100".parse(), Ok(ListenAddr::Any(9100)));
        assert_eq!(
            "127.0.0.1:80".parse::<ListenAddr>().map(|a| a.to_string()),
            Ok("127.0.0.1:80".into())
        );
        assert_eq!(
            "[::1]:9100".parse::<ListenAddr>().map(|a| a.to_string()),
            Ok("[::1]:9100".into())
        );
        for bad in [
            "",
            "9100",
            "1.2.3:80",
            "::1:80",
            "[127.0.0.1]:80",
            "host:0",
            ":70000",
            "[::1]",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_then_flags() {
        let s = with_file(
            "log_level = \"debug\"\n[web]\nlisten_addresses = [\"127.0.0.1:9200\", \"[::1]:9200\"]\ntelemetry_path = \"/m\"\n",
            &["-p", "9300", "--log.level", "warn"],
        )
        .expect("valid");
        assert_eq!(s.reloadable.log_level, LogLevel::Warn);
        assert_eq!(s.reloadable.web.telemetry_path.0, "/m");
        assert_eq!(
            s.startup
                .listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            vec!["127.0.0.1:9300", "[::1]:9300"]
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = with_file("log_level = \"info\"\nbogus = 1\n", &[]).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("line 2, column 1"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");

        let e = with_file("[web]\nmax_requests = \"many\"\n", &[]).expect_err("wrong type");
        assert!(e.to_string().contains("line 2, column 16"), "{e}");

        let e = with_file("[web]\nlisten_addresses = [\":0\"]\n", &[]).expect_err("bad value");
        assert!(e.to_string().contains("line 2, column 21"), "{e}");
        assert!(e.to_string().contains(":0"), "{e}");

        let e = with_file("sandbox = \"maybe\"\n", &[]).expect_err("bad sandbox");
        assert!(e.to_string().contains("line 1, column 11"), "{e}");
    }

    #[test]
    fn restart_only_changes_are_named_and_nothing_else() {
        let old = with_file("[collector.textfile]\ndirectory = \"/a\"\n", &[]).expect("valid");
        let new = with_file(
            "log_level = \"debug\"\n[web]\nlisten_addresses = [\"127.0.0.1:9100\"]\nmax_connections = 3\n[collector.textfile]\ndirectory = \"/b\"\n",
            &[],
        )
        .expect("valid");
        assert_eq!(
            old.startup.changes(&new.startup),
            vec!["collector.textfile.directory", "web.listen_addresses"]
        );
        assert!(old.startup.changes(&old.startup).is_empty());
    }

    #[test]
    fn config_access_grants_own_directories_only() {
        let own = Path::new("/etc/monitoring-agent/config.toml");
        assert_eq!(
            ConfigAccess::of(own),
            ConfigAccess::Directory("/etc/monitoring-agent".into())
        );
        assert!(ConfigAccess::of(own).warning(own).is_none());
        for shared in [
            "/etc/agent.toml",
            "/etc/default/agent.toml",
            "/tmp/agent.toml",
        ] {
            let f = Path::new(shared);
            let access = ConfigAccess::of(f);
            assert!(matches!(access, ConfigAccess::FileOnly { .. }), "{shared}");
            assert_eq!(access.granted(f), f);
            let w = access.warning(f).expect("a warning");
            assert!(w.contains("shared directory") && w.contains(shared), "{w}");
        }
    }

    #[test]
    fn web_config_file_resolves_against_the_toml_file_and_needs_a_restart() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(b"[web]\nconfig_file = \"web.yml\"\n")
            .expect("write");
        let p = f.path().to_str().expect("utf8").to_string();
        let s = Settings::load(&cli(&["-c", &p])).expect("valid");
        let dir = f.path().parent().expect("dir");
        assert_eq!(s.startup.web_config_file, Some(dir.join("web.yml")));
        // The flag wins.
        let s2 = Settings::load(&cli(&["-c", &p, "--web.config.file", "/x/w.yml"])).expect("ok");
        assert_eq!(s2.startup.web_config_file, Some(PathBuf::from("/x/w.yml")));
        assert_eq!(s.startup.changes(&s2.startup), vec!["web.config_file"]);
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let e = Settings::load(&cli(&["-c", "/nonexistent/agent.toml"])).expect_err("missing");
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/agent.toml"));
    }
}
