//! Command line: flags named as node_exporter's where one exists, plus the classic daemon
//! options. Every flag overrides the configuration file's value.

use std::path::PathBuf;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::values::{ListenAddr, LogFormat, LogLevel, TelemetryPath, DEFAULT_MAX_REQUESTS};

/// Default configuration file; a missing one is fine, a missing explicitly named one is not.
pub const DEFAULT_CONFIG: &str = "/etc/monitoring-agent/config.toml";

/// Prometheus host-metrics agent for Linux: node_exporter's metrics from a hardened,
/// privilege-separated daemon.
///
/// Listens on port 9100 on all addresses by default (`:9100`), serves metrics on /metrics.
/// Started as root it binds its port, opens its files, then drops to an unprivileged user
/// keeping only CAP_NET_BIND_SERVICE.
#[derive(Debug, Parser, Default)]
#[command(name = "monitoring-agent", version, about, long_about)]
pub struct Cli {
    /// Run as a background daemon (double fork, setsid, chdir /, stdio on /dev/null); the
    /// command returns once the daemon serves, or fails with the daemon's error.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Port to listen on, on every listen address [default: 9100].
    #[arg(short = 'p', long = "port", value_name = "PORT", value_parser = parse_port)]
    pub port: Option<u16>,

    /// Address to listen on: HOST:PORT, [IPV6]:PORT or :PORT (all addresses). Repeatable
    /// [default: :9100].
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_addresses: Vec<ListenAddr>,

    /// Serve the listening sockets systemd passes (socket activation: LISTEN_FDS) instead of
    /// binding; no capability is kept then.
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,

    /// Path under which to expose metrics [default: /metrics].
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<TelemetryPath>,

    /// Maximum number of parallel scrape requests; more get 503 (the default is added from
    /// `DEFAULT_MAX_REQUESTS` by `with_defaults`).
    #[arg(long = "web.max-requests", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests: Option<u32>,

    /// Exclude metrics about the exporter itself (process_*, promhttp_*), as node_exporter's
    /// flag (which also drops its go_*); the monitoring_agent_* families stay.
    #[arg(long = "web.disable-exporter-metrics")]
    pub disable_exporter_metrics: bool,

    /// TLS and authentication configuration (exporter-toolkit's web-config YAML format, as
    /// node_exporter's flag): certificates, client certificates, basic auth, headers, rate
    /// limit. Relative paths in it resolve against its directory. Empty: none (as
    /// node_exporter's default).
    #[arg(long = "web.config.file", value_name = "FILE", value_parser = any_path)]
    pub web_config_file: Option<PathBuf>,

    /// Configuration file (TOML) [default: /etc/monitoring-agent/config.toml, if present].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// User to run as after start-up, as NAME or UID[:GID] [default: monitoring-agent].
    #[arg(long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// PID file, created and locked at start-up, removed at exit
    /// [default as root: /run/monitoring-agent/monitoring-agent.pid; otherwise none].
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,

    /// Log file, appended to (in addition to syslog).
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Only log messages with the given severity or above: debug, info, warn, error
    /// [default: info].
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// Output format of log messages on stderr and in the log file: logfmt or json (as
    /// node_exporter's promslog) [default: the agent's "TIME LEVEL message" lines]. Syslog and
    /// the journal keep their own framing.
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// procfs mountpoint [default: /proc].
    #[arg(long = "path.procfs", value_name = "PATH")]
    pub procfs: Option<PathBuf>,

    /// sysfs mountpoint [default: /sys].
    #[arg(long = "path.sysfs", value_name = "PATH")]
    pub sysfs: Option<PathBuf>,

    /// rootfs mountpoint [default: /].
    #[arg(long = "path.rootfs", value_name = "PATH")]
    pub rootfs: Option<PathBuf>,

    /// Sandbox mode: strict (refuse unless the kernel's Landlock has every feature: Linux
    /// 6.12+), enforce (refuse unless every layer holds, by Landlock or, on older Landlock ABIs,
    /// by the seccomp filter), best-effort (warns) or off (debugging; warns) [default: enforce].
    #[arg(long = "sandbox", value_name = "MODE")]
    pub sandbox: Option<String>,

    /// Testing: request at most this Landlock ABI (1-6), to reproduce an older kernel's
    /// Landlock on a newer one. Only ever lowers Landlock; the seccomp filter is unchanged and
    /// the metrics report the ABI in force.
    #[arg(long = "landlock-max-abi", value_name = "N", hide = true,
          value_parser = clap::value_parser!(i32).range(1..=6))]
    pub landlock_max_abi: Option<i32>,

    /// Validate the configuration and exit (0 when valid, 2 when not).
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Check the running instance named by the PID file (and configuration): print each
    /// sandbox layer with a verdict; exit 1 when a layer is not enforced.
    #[arg(long = "check-sandbox")]
    pub check_sandbox: bool,

    /// Reload the running instance named by the PID file (SIGHUP), wait for the outcome and
    /// exit 0 when the configuration was reloaded, 1 when not (systemd's ExecReload=). Run as
    /// root.
    #[arg(long = "reload", conflicts_with_all = ["check_sandbox", "check_config"])]
    pub reload: bool,

    /// udev data path, for node_disk_info [default: /run/udev/data].
    #[arg(long = "path.udev.data", value_name = "PATH")]
    pub udev_data: Option<PathBuf>,

    /// Set all collectors to disabled by default; enable them one by one with
    /// --collector.<name>.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,

    /// Time a collector may take in a scrape before it is reported failed
    /// (node_scrape_collector_success 0) and the scrape goes on without it [default: 5].
    #[arg(long = "collector.deadline", value_name = "SECONDS", value_parser = parse_seconds)]
    pub collector_deadline: Option<f64>,

    /// Each collector's own options (`--collector.<name>.<option>`), declared in its file.
    #[command(flatten)]
    pub collector: crate::collectors::Options,

    /// Collectors switched on with --collector.<name> (filled from the dynamic flags).
    #[arg(skip)]
    pub collectors_on: Vec<&'static str>,

    /// Collectors switched off with --no-collector.<name>.
    #[arg(skip)]
    pub collectors_off: Vec<&'static str>,
}

/// A path, empty allowed (node_exporter's `--web.config.file=""` means none).
fn any_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('s').parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 3600.0 => Ok(v),
        _ => Err("must be a number of seconds above 0 and at most 3600".into()),
    }
}

/// Adds `--collector.<name>` and `--no-collector.<name>` for every known collector, as
/// node_exporter's flags.
/// The whole command line as [`Cli::parse_args`] parses it: the derived flags, the defaults
/// shown from code, and one `--collector.<name>` (and hidden `--no-collector.<name>`) per known
/// collector. Also for generated documentation (`examples/gen-docs.rs`: man page, shell
/// completions) and for `monitoring-agent migrate-from-node-exporter`, which sorts
/// node_exporter's flags by it.
pub fn command() -> clap::Command {
    with_collector_flags(with_defaults(Cli::command()))
}

/// Help texts that show a default defined in code, from that definition.
fn with_defaults(cmd: clap::Command) -> clap::Command {
    cmd.mut_arg("max_requests", |a| {
        a.help(format!(
            "Maximum number of parallel scrape requests; more get 503 [default: {DEFAULT_MAX_REQUESTS}]"
        ))
    })
}

fn with_collector_flags(mut cmd: clap::Command) -> clap::Command {
    for k in crate::collectors::KNOWN {
        cmd = cmd
            .arg(
                Arg::new(format!("collector.{}", k.name))
                    .long(format!("collector.{}", k.name))
                    .action(ArgAction::SetTrue)
                    .help(format!(
                        "Enable the {} collector (default: {}).",
                        k.name,
                        if k.default_on { "enabled" } else { "disabled" }
                    ))
                    .help_heading("Collectors"),
            )
            .arg(
                Arg::new(format!("no-collector.{}", k.name))
                    .long(format!("no-collector.{}", k.name))
                    .action(ArgAction::SetTrue)
                    .hide(true),
            );
    }
    cmd
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err("must be between 1 and 65535".into()),
        Err(_) => Err("not a port number".into()),
    }
}

impl Cli {
    /// Parses the process arguments. `Err` carries the exit code and the text to print:
    /// help and version on stdout with 0, a usage error as one line on stderr with 2.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, (i32, String)>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let parsed = command().try_get_matches_from(args).and_then(|m| {
            let mut cli = Cli::from_arg_matches(&m)?;
            for k in crate::collectors::KNOWN {
                let on = format!("collector.{}", k.name);
                let off = format!("no-collector.{}", k.name);
                // The later of the two flags wins, as with node_exporter's.
                let last = |id: &str| {
                    m.get_flag(id)
                        .then(|| m.indices_of(id).and_then(|i| i.max()))
                        .flatten()
                };
                match (last(&on), last(&off)) {
                    (Some(a), Some(b)) if a > b => cli.collectors_on.push(k.name),
                    (Some(_), Some(_)) | (None, Some(_)) => cli.collectors_off.push(k.name),
                    (Some(_), None) => cli.collectors_on.push(k.name),
                    (None, None) => {}
                }
            }
            Ok(cli)
        });
        match parsed {
            Ok(cli) => Ok(cli),
            Err(e) => {
                use clap::error::ErrorKind;
                match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        Err((0, e.render().to_string()))
                    }
                    _ => {
                        // clap's error names the flag and the value on its first line; the
                        // usage lines after it are noise for an operator reading a log.
                        let rendered = e.render().to_string();
                        let line = rendered
                            .lines()
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or("error: invalid command line")
                            .to_string();
                        Err((2, format!("{line} (see --help)")))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> (i32, String) {
        let mut v = vec!["monitoring-agent"];
        v.extend_from_slice(args);
        Cli::parse_args(v).expect_err("should fail")
    }

    #[test]
    fn bad_flags_name_flag_and_value() {
        for (args, flag, value) in [
            (&["-p", "0"][..], "--port", "0"),
            (&["-p", "70000"][..], "--port", "70000"),
            (&["-p", "abc"][..], "--port", "abc"),
            (
                &["--web.listen-address", "1.2.3:80"][..],
                "--web.listen-address",
                "1.2.3:80",
            ),
            (&["--log.level", "loud"][..], "--log.level", "loud"),
        ] {
            let (code, line) = err(args);
            assert_eq!(code, 2);
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains(flag), "{line}");
            assert!(line.contains(value), "{line}");
        }
    }

    #[test]
    fn help_and_version_exit_zero() {
        let (code, text) = err(&["--help"]);
        assert_eq!(code, 0);
        assert!(text.contains("9100"));
        let (code, text) = err(&["-V"]);
        assert_eq!(code, 0);
        assert!(text.contains(env!("CARGO_PKG_VERSION")));
    }
}
