//! `monitoring-agent migrate-from-node-exporter`: turns Debian's prometheus-node-exporter
//! settings (`ARGS=` in `/etc/default/prometheus-node-exporter`) into this agent's
//! (`ARGS=` in `/etc/default/monitoring-agent`, which `monitoring-agent.service` reads).
//!
//! node_exporter's flags are sorted by this agent's own command line ([`crate::cli::command`]),
//! so the answer stays true as flags are added: a flag the agent accepts is kept, an older
//! node_exporter name of one is renamed, and every other flag is named in the output with the
//! reason it is not carried over (the agent would refuse to start with it). Debian's node_exporter
//! reads `/var/lib/prometheus/node-exporter` as its textfile directory by default
//! (prometheus-node-exporter-collectors' timers write there); the migration points the agent at
//! it unless the old `ARGS` named another one.
//!
//! The file is read as systemd reads an `EnvironmentFile=` and splits an unbraced `$ARGS`:
//! double quotes with `\"`, `\\`, `` \` `` and `\$` escapes, single quotes literal, then words split
//! at whitespace with quotes and backslash escapes removed (hence Debian's note that a regex
//! backslash is written four times under systemd). The output is written so that the same two
//! steps give back exactly the kept words.
//!
//! The Debian package's postinst runs this once, on the first installation, when the old file
//! exists and `/etc/default/monitoring-agent` does not: installing the package is the migration.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};

/// The subcommand's name, as the first argument.
pub const SUBCOMMAND: &str = "migrate-from-node-exporter";
/// Debian's prometheus-node-exporter settings.
pub const NODE_EXPORTER_DEFAULTS: &str = "/etc/default/prometheus-node-exporter";
/// This agent's, read by `monitoring-agent.service` (`EnvironmentFile=-`).
pub const AGENT_DEFAULTS: &str = "/etc/default/monitoring-agent";
/// Debian's node_exporter textfile directory (its compiled-in default).
pub const DEBIAN_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";

/// node_exporter 1.5 flags that are older names of flags this agent has (node_exporter still
/// accepts them, hidden, as deprecated aliases).
const RENAMED: &[(&str, &str)] = &[
    (
        "collector.filesystem.ignored-mount-points",
        "collector.filesystem.mount-points-exclude",
    ),
    (
        "collector.filesystem.ignored-fs-types",
        "collector.filesystem.fs-types-exclude",
    ),
    (
        "collector.diskstats.ignored-devices",
        "collector.diskstats.device-exclude",
    ),
    // Hidden deprecated aliases in node_exporter (1.5 and 1.12); the agent accepts them too,
    // with 1.12's warning, but the migration writes the current names.
    (
        "collector.netdev.device-whitelist",
        "collector.netdev.device-include",
    ),
    (
        "collector.netdev.device-blacklist",
        "collector.netdev.device-exclude",
    ),
];

/// `--collector.netdev.enable-detailed-metrics` names the counters after the mode they are read
/// in. node_exporter (1.5 and 1.12) reads netdev over netlink by default, this agent from
/// `/proc/net/dev`: with the detailed names and no netdev netlink flag in `ARGS`, the migration
/// adds `--collector.netdev.netlink` so that the same metric names come out.
fn netdev_detailed_needs_netlink(words: &[String], args: &[String]) -> bool {
    let detailed = args.iter().any(|a| {
        [
            "--collector.netdev.enable-detailed-metrics",
            "--collector.netdev.enable-detailed-metrics=true",
            "--collector.netdev.enable-detailed-metrics=1",
        ]
        .contains(&a.as_str())
    });
    let mode_given = words.iter().any(|w| {
        let name = w.split('=').next().unwrap_or(w);
        name == "--collector.netdev.netlink" || name == "--no-collector.netdev.netlink"
    });
    detailed && !mode_given
}

/// Flags this agent has that must not come from `ARGS` under `monitoring-agent.service`, and
/// node_exporter flags worth a specific reason.
const REASONS: &[(&str, &str)] = &[
    (
        "web.systemd-socket",
        "monitoring-agent.service binds its own port; for socket activation use \
         monitoring-agent.socket (which passes the socket) instead",
    ),
    (
        "runtime.gomaxprocs",
        "a Go runtime setting; this agent is not a Go program",
    ),
    (
        "daemon",
        "monitoring-agent.service runs the agent in the foreground (Type=notify)",
    ),
    ("pid-file", "monitoring-agent.service sets it"),
    ("log-file", "monitoring-agent.service sets it"),
];

/// The migration's result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The new `ARGS`, one word each (`--flag` or `--flag=value`).
    pub args: Vec<String>,
    /// What happened to each old flag and what was added: one line each.
    pub kept: Vec<String>,
    /// Old flags not carried over, each with its reason.
    pub dropped: Vec<(String, String)>,
}

/// Facts about the host the migration depends on.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Whether [`DEBIAN_TEXTFILE_DIR`] exists (the agent refuses a textfile directory it
    /// cannot open in its sandbox).
    pub debian_textfile_dir: bool,
}

/// The value of the last `ARGS=` assignment of an environment file, as systemd reads it;
/// `None` when there is none.
pub fn args_value(text: &str) -> Option<String> {
    // Backslash-newline continues a line.
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            cur.push_str(&line[..line.len() - 1]);
            continue;
        }
        cur.push_str(line);
        logical.push(std::mem::take(&mut cur));
    }
    if !cur.is_empty() {
        logical.push(cur);
    }
    let mut value = None;
    for line in logical {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
        let Some((key, raw)) = t.split_once('=') else {
            continue;
        };
        if key.trim_end() == "ARGS" {
            value = Some(env_value(raw.trim_start()));
        }
    }
    value
}

/// An environment file's value: `"..."` with `\"`, `\\`, `` \` ``, `\$` escapes, `'...'` literal,
/// unquoted text with `\x` meaning `x`; unquoted trailing whitespace dropped.
fn env_value(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    // Length of `out` up to its last quoted or escaped character: trailing unquoted whitespace
    // after it is dropped.
    let mut keep = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e) if "\"\\`$".contains(e) => out.push(e),
                            Some(e) => {
                                out.push('\\');
                                out.push(e);
                            }
                            None => out.push('\\'),
                        },
                        d => out.push(d),
                    }
                }
                keep = out.len();
            }
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    out.push(d);
                }
                keep = out.len();
            }
            '\\' => {
                if let Some(e) = chars.next() {
                    out.push(e);
                }
                keep = out.len();
            }
            c => {
                out.push(c);
                if !c.is_whitespace() {
                    keep = out.len();
                }
            }
        }
    }
    out.truncate(keep);
    out
}

/// Splits a value into words as systemd splits an unbraced `$ARGS`: at whitespace, with
/// `'...'` and `"..."` quoting and backslash escapes removed.
pub fn split_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(d) => cur.push(d),
                        None => return Err(format!("unterminated ' in {value:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => cur.push(e),
                            None => return Err(format!("trailing \\ in {value:?}")),
                        },
                        Some(d) => cur.push(d),
                        None => return Err(format!("unterminated \" in {value:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => return Err(format!("trailing \\ in {value:?}")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Writes `words` as the value of `ARGS="..."` such that [`args_value`] then [`split_words`]
/// (and systemd) give them back unchanged.
pub fn quote_args(words: &[String]) -> String {
    let mut out = String::from("ARGS=\"");
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in w.chars() {
            // Word level: whitespace, quotes and backslashes are escaped with a backslash...
            let word_level = c.is_whitespace() || "'\"\\".contains(c);
            // ...and inside the double-quoted value, `"`, `\`, `` ` `` and `$` are escaped again.
            let push = |out: &mut String, c: char| {
                if "\"\\`$".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            };
            if word_level {
                push(&mut out, '\\');
            }
            push(&mut out, c);
        }
    }
    out.push('"');
    out
}

/// Whether the agent accepts `args` alone; the error line when it does not.
fn accepted(args: &[String]) -> Result<(), String> {
    let mut v = vec!["monitoring-agent".to_string()];
    v.extend(args.iter().cloned());
    match crate::cli::Cli::parse_args(v) {
        // The collectors' own checks too (e.g. ipvs's backend labels): the agent refuses
        // to start on them as on a bad flag.
        Ok(cli) => cli.collector.check(),
        Err((0, _)) => Err("prints help or version instead of running".into()),
        Err((_, line)) => Err(line),
    }
}

/// Sorts node_exporter's `ARGS` words into what this agent keeps and what it does not.
pub fn migrate(words: &[String], host: Host) -> Migration {
    let cmd = crate::cli::command();
    let find =
        |name: &str| -> Option<&Arg> { cmd.get_arguments().find(|a| a.get_long() == Some(name)) };
    let known_collector = |name: &str| crate::collectors::known(name).is_some();
    let mut m = Migration::default();
    let mut textfile = false;
    let mut systemd = false;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let Some(flag) = word.strip_prefix("--") else {
            let why = if word.starts_with('-') {
                "node_exporter has no short flag but -h; this agent has no such flag"
            } else {
                "not a flag (node_exporter takes no arguments)"
            };
            m.dropped.push((word.clone(), why.into()));
            continue;
        };
        let (name, mut value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let renamed = RENAMED
            .iter()
            .find(|(old, _)| *old == name)
            .map(|(_, new)| *new);
        let target = renamed.unwrap_or(&name).to_string();
        let arg = find(&target);
        // A switch with an optional `=true`/`=false` (the systemd collector's enable-* flags,
        // kingpin booleans in node_exporter): never takes the next word.
        let switch_like =
            arg.is_some_and(|a| a.get_num_args().is_some_and(|r| r.min_values() == 0));
        let takes_value = arg.map(|a| a.get_action().takes_values() && !switch_like);
        // A flag's value may be the next word (`--flag value`): for the agent's own flags their
        // definition says so; for others, node_exporter has no positional argument, so a next
        // word that is not a flag can only be this flag's value.
        if value.is_none() {
            let next_is_value = i < words.len() && !words[i].starts_with('-');
            if takes_value.unwrap_or(next_is_value) && next_is_value {
                value = Some(words[i].clone());
                i += 1;
            }
        }
        let original = match &value {
            Some(v) => format!("--{name}={v}"),
            None => format!("--{name}"),
        };
        if let Some((_, why)) = REASONS.iter().find(|(n, _)| *n == target) {
            m.dropped.push((original, (*why).into()));
            continue;
        }
        let Some(arg) = arg else {
            m.dropped
                .push((original, unknown_reason(&name, &known_collector)));
            continue;
        };
        let new = match (arg.get_action().takes_values(), &value) {
            (true, Some(v)) => format!("--{target}={v}"),
            (true, None) if switch_like => format!("--{target}"),
            (true, None) => {
                m.dropped.push((original, "no value given".into()));
                continue;
            }
            (false, None) => format!("--{target}"),
            (false, Some(v)) if v == "true" => format!("--{target}"),
            (false, Some(v)) if v == "false" => {
                if let Some(c) = target.strip_prefix("collector.") {
                    format!("--no-collector.{c}")
                } else if let Some(c) = target.strip_prefix("no-collector.") {
                    format!("--collector.{c}")
                } else {
                    m.dropped
                        .push((original, "=false: leave the flag out instead".into()));
                    continue;
                }
            }
            (false, Some(_)) => {
                m.dropped.push((original, "a switch takes no value".into()));
                continue;
            }
        };
        if let Err(why) = accepted(std::slice::from_ref(&new)) {
            m.dropped
                .push((original, format!("refused by this agent: {why}")));
            continue;
        }
        if target == "collector.textfile.directory" {
            textfile = true;
        }
        if target == "collector.systemd" || target == "no-collector.systemd" {
            systemd = true;
        }
        if renamed.is_some() || new != original {
            m.kept
                .push(format!("{original} -> {new} (node_exporter's older name)"));
        } else {
            m.kept.push(format!("{original} (kept)"));
        }
        m.args.push(new);
    }
    if !textfile {
        if host.debian_textfile_dir {
            let flag = format!("--collector.textfile.directory={DEBIAN_TEXTFILE_DIR}");
            m.kept.push(format!(
                "{flag} (added: Debian's node_exporter reads this directory by default, and \
                 prometheus-node-exporter-collectors' timers write there)"
            ));
            m.args.push(flag);
        } else {
            m.kept.push(format!(
                "no textfile directory: Debian's {DEBIAN_TEXTFILE_DIR} does not exist here"
            ));
        }
    }
    if !systemd {
        // Debian builds node_exporter with its systemd collector enabled by default (node_exporter
        // itself and this agent have it off): keep what the host had.
        let flag = "--collector.systemd".to_string();
        m.kept.push(format!(
            "{flag} (added: Debian's node_exporter enables its systemd collector by default; \
             node-mixin's NodeSystemdServiceFailed alert reads it)"
        ));
        m.args.push(flag);
    }
    if netdev_detailed_needs_netlink(words, &m.args) {
        let flag = "--collector.netdev.netlink".to_string();
        m.kept.push(format!(
            "{flag} (added: node_exporter reads netdev over netlink by default, and              --collector.netdev.enable-detailed-metrics names the counters after the netlink              mode; brings the netlink-route sandbox policy fragment)"
        ));
        m.args.push(flag);
    }
    // The whole line must be accepted too (e.g. two flags that exclude each other).
    if let Err(why) = accepted(&m.args) {
        m.kept.push(format!(
            "WARNING: the flags above are refused together: {why}; fix ARGS before starting"
        ));
    }
    m
}

fn unknown_reason(name: &str, known_collector: &dyn Fn(&str) -> bool) -> String {
    if let Some(c) = name.strip_prefix("no-collector.") {
        return format!("this agent has no {c} collector: nothing to switch off");
    }
    if let Some(rest) = name.strip_prefix("collector.") {
        return match rest.split_once('.') {
            None => format!("this agent has no {rest} collector"),
            Some((c, opt)) if known_collector(c) => {
                format!("this agent's {c} collector has no {opt} option")
            }
            Some((c, _)) => format!("option of the {c} collector, which this agent does not have"),
        };
    }
    "this agent has no such flag (see monitoring-agent --help)".into()
}

/// The new `/etc/default/monitoring-agent`.
pub fn render(m: &Migration, from: &Path) -> String {
    let mut s = String::new();
    s.push_str(
        "# /etc/default/monitoring-agent: command-line flags that monitoring-agent.service appends\n\
         # to its command line (EnvironmentFile=, $ARGS). Flags override\n\
         # /etc/monitoring-agent/config.toml; apply a change with `systemctl restart monitoring-agent`.\n\
         # Under systemd a regex backslash is written four times here (\\\\\\\\d for \\d).\n#\n",
    );
    s.push_str(&format!(
        "# Written by `monitoring-agent {SUBCOMMAND}` from {}:\n",
        from.display()
    ));
    if m.kept.is_empty() {
        s.push_str("#   (no flags)\n");
    }
    for k in &m.kept {
        s.push_str(&format!("#   {k}\n"));
    }
    if !m.dropped.is_empty() {
        s.push_str("# NOT carried over (the agent would refuse to start with them):\n");
        for (flag, why) in &m.dropped {
            s.push_str(&format!("#   {flag}: {why}\n"));
        }
    }
    s.push_str(
        "# Port: the agent listens on node_exporter's :9100 unless --web.listen-address says\n\
         # otherwise; the package conflicts with prometheus-node-exporter, so the port is free.\n",
    );
    s.push_str(&quote_args(&m.args));
    s.push('\n');
    s
}

/// The subcommand's command line.
pub fn command() -> Command {
    Command::new(SUBCOMMAND)
        .about("Convert prometheus-node-exporter's ARGS (Debian) into monitoring-agent's")
        .long_about(
            "Reads ARGS from Debian's /etc/default/prometheus-node-exporter, keeps every flag \
             this agent accepts (renaming node_exporter's older names), names every other flag \
             with the reason it is not carried over, points the textfile collector at Debian's \
             /var/lib/prometheus/node-exporter unless ARGS named a directory, and prints the new \
             /etc/default/monitoring-agent (or writes it with --output). The Debian package \
             runs it on first installation.",
        )
        .arg(
            Arg::new("from")
                .long("from")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .default_value(NODE_EXPORTER_DEFAULTS)
                .help("node_exporter's environment file"),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "Write the result to FILE (atomically, mode 0644), e.g. {AGENT_DEFAULTS}, \
                     instead of printing it"
                )),
        )
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .disable_help_flag(true)
}

/// Runs the subcommand; `args` start with the subcommand's name. Returns the exit status:
/// 0 done, 1 the output could not be written, 2 bad arguments or unreadable input.
pub fn run(args: Vec<OsString>) -> i32 {
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp => {
                    print!("{}", e.render());
                    crate::exit::OK
                }
                _ => {
                    eprint!("{}", e.render());
                    crate::exit::CONFIG
                }
            };
        }
    };
    let from = matches
        .get_one::<PathBuf>("from")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(NODE_EXPORTER_DEFAULTS));
    let text = match std::fs::read_to_string(&from) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("monitoring-agent {SUBCOMMAND}: {}: {e}", from.display());
            return crate::exit::CONFIG;
        }
    };
    let value = args_value(&text).unwrap_or_default();
    let words = match split_words(&value) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "monitoring-agent {SUBCOMMAND}: {}: ARGS: {e}",
                from.display()
            );
            return crate::exit::CONFIG;
        }
    };
    let host = Host {
        debian_textfile_dir: Path::new(DEBIAN_TEXTFILE_DIR).is_dir(),
    };
    let m = migrate(&words, host);
    let out = render(&m, &from);
    match matches.get_one::<PathBuf>("output") {
        None => {
            print!("{out}");
            crate::exit::OK
        }
        Some(path) => match write_atomically(path, &out) {
            Ok(()) => {
                eprintln!(
                    "monitoring-agent {SUBCOMMAND}: wrote {}: {} flag(s) in ARGS, {} not carried \
                     over (listed in the file)",
                    path.display(),
                    m.args.len(),
                    m.dropped.len()
                );
                crate::exit::OK
            }
            Err(e) => {
                eprintln!("monitoring-agent {SUBCOMMAND}: {}: {e}", path.display());
                crate::exit::FAILURE
            }
        },
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".migrate-tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    const HOST: Host = Host {
        debian_textfile_dir: true,
    };

    #[test]
    fn debian_default_file_gives_the_textfile_directory_and_systemd() {
        let text = "# Set the command-line arguments to pass to the server.\n\
                    # them (\\\\d for \\d). If running under systemd, you need to double them again\n\
                    ARGS=\"\"\n";
        let value = args_value(text).expect("ARGS");
        assert_eq!(value, "");
        let m = migrate(&split_words(&value).expect("split"), HOST);
        assert_eq!(
            m.args,
            words(&[
                "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
                "--collector.systemd"
            ])
        );
        assert!(m.dropped.is_empty());
    }

    #[test]
    fn every_flag_is_kept_renamed_or_named() {
        let old = words(&[
            "--web.listen-address=:9100",
            "--web.telemetry-path",
            "/metrics",
            "--collector.systemd",
            "--collector.systemd.unit-include=(ssh|cron)\\.service",
            "--collector.systemd.enable-restarts-metrics",
            "--no-collector.perf",
            "--collector.processes",
            "--no-collector.zfs",
            "--collector.filesystem.ignored-mount-points=^/(sys|proc|dev)($|/)",
            "--collector.cpu.info",
            "--collector.cpu.guest=false",
            "--web.config.file=/etc/prometheus/web.yml",
            "--log.format=json",
            "--collector.textfile.directory",
            "/srv/textfile",
            "--web.systemd-socket",
            "stray",
        ]);
        let m = migrate(&old, HOST);
        assert_eq!(
            m.args,
            words(&[
                "--web.listen-address=:9100",
                "--web.telemetry-path=/metrics",
                "--collector.systemd",
                "--collector.systemd.unit-include=(ssh|cron)\\.service",
                "--collector.systemd.enable-restarts-metrics",
                "--collector.processes",
                "--no-collector.zfs",
                "--collector.filesystem.mount-points-exclude=^/(sys|proc|dev)($|/)",
                "--collector.cpu.info",
                // node_exporter 1.12's boolean with its value, as the agent takes it.
                "--collector.cpu.guest=false",
                "--web.config.file=/etc/prometheus/web.yml",
                // node_exporter 1.12's log formats are the agent's too.
                "--log.format=json",
                "--collector.textfile.directory=/srv/textfile",
            ])
        );
        let dropped: Vec<&str> = m.dropped.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            dropped,
            ["--no-collector.perf", "--web.systemd-socket", "stray",]
        );
        assert!(m.dropped[0].1.contains("no perf collector"), "{m:?}");
        // Every kept or renamed old flag is accounted for in the comments.
        assert_eq!(m.kept.len(), 13, "{m:?}");
    }

    /// node_exporter 1.12's last collector flags the agent once refused are carried over
    /// as written (values, `=false` booleans, empty values).
    #[test]
    fn node_exporter_112_collector_flags_are_kept() {
        let flags = [
            "--collector.cpu.guest=false",
            "--collector.filesystem.stat-workers=8",
            "--collector.infiniband.device-include=^mlx",
            "--collector.infiniband.device-exclude=mlx4_1",
            "--collector.interrupts.include-zeros=false",
            "--collector.interrupts.name-include=eth",
            "--collector.interrupts.name-exclude=^LOC;",
            "--collector.ipvs.backend-labels=local_address,proto",
            "--collector.rapl.enable-zone-label",
            "--collector.rapl.enable-zone-label=true",
            "--collector.tapestats.ignored-devices=^nst",
        ];
        let m = migrate(&words(&flags), HOST);
        assert!(m.dropped.is_empty(), "{m:?}");
        assert_eq!(m.args.get(..flags.len()), Some(&words(&flags)[..]), "{m:?}");
        // `--flag value` becomes `--flag=value`; a refused value is named.
        let m = migrate(
            &words(&[
                "--collector.ipvs.backend-labels",
                "proto",
                "--collector.ipvs.backend-labels=zone",
            ]),
            HOST,
        );
        assert_eq!(
            m.args.first().map(String::as_str),
            Some("--collector.ipvs.backend-labels=proto")
        );
        assert_eq!(m.dropped.len(), 1, "{m:?}");
        assert!(
            m.dropped[0].1.contains("unknown IPVS backend labels"),
            "{m:?}"
        );
    }

    /// node_exporter 1.12's deprecated runit and supervisord collectors and their flags are
    /// carried over.
    #[test]
    fn runit_flags_are_carried_over() {
        let flags = [
            "--collector.runit",
            "--collector.runit.servicedir=/etc/service",
            "--collector.supervisord",
            "--collector.supervisord.url=unix:///run/supervisor.sock",
        ];
        let m = migrate(&words(&flags), HOST);
        assert!(m.dropped.is_empty(), "{m:?}");
        assert_eq!(m.args.get(..flags.len()), Some(&words(&flags)[..]), "{m:?}");
        // `--flag value` becomes `--flag=value`.
        let m = migrate(
            &words(&["--collector.runit.servicedir", "/var/service"]),
            HOST,
        );
        assert_eq!(
            m.args.first().map(String::as_str),
            Some("--collector.runit.servicedir=/var/service")
        );
    }

    /// The deprecated ntp collector's flags are carried over as written (node_exporter 1.12's
    /// kingpin negation of its boolean too).
    #[test]
    fn ntp_flags_are_carried_over() {
        let flags = [
            "--collector.ntp",
            "--collector.ntp.server=192.0.2.10",
            "--collector.ntp.server-port=1123",
            "--collector.ntp.protocol-version=3",
            "--collector.ntp.server-is-local",
            "--collector.ntp.ip-ttl=2",
            "--collector.ntp.max-distance=2s",
            "--collector.ntp.local-offset-tolerance=5ms",
            "--no-collector.ntp.server-is-local",
            "--collector.ntp.server-is-local=true",
        ];
        let m = migrate(&words(&flags), HOST);
        assert!(m.dropped.is_empty(), "{m:?}");
        let mut want = words(&flags);
        want.push("--collector.textfile.directory=/var/lib/prometheus/node-exporter".into());
        // Debian enables systemd by default: the migration says so unless ARGS disabled it.
        want.push("--collector.systemd".into());
        assert_eq!(m.args, want);
    }

    /// node_exporter 1.12's last netdev flags are carried over; the deprecated filter names
    /// are renamed; the detailed names keep node_exporter's default netlink mode.
    #[test]
    fn netdev_flags_are_carried_over() {
        let m = migrate(
            &words(&[
                "--collector.netdev.address-info",
                "--collector.netdev.label-ifalias=true",
                "--collector.netdev.enable-detailed-metrics",
                "--collector.netdev.device-blacklist=^lo$",
                "--no-collector.systemd",
            ]),
            HOST,
        );
        assert!(m.dropped.is_empty(), "{m:?}");
        assert_eq!(
            m.args,
            words(&[
                "--collector.netdev.address-info",
                "--collector.netdev.label-ifalias=true",
                "--collector.netdev.enable-detailed-metrics",
                "--collector.netdev.device-exclude=^lo$",
                "--no-collector.systemd",
                "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
                "--collector.netdev.netlink",
            ])
        );
        assert!(m
            .kept
            .iter()
            .any(|k| k.contains("-> --collector.netdev.device-exclude=^lo$")));
        assert!(!m.kept.iter().any(|k| k.contains("WARNING")), "{m:?}");
        // An explicit mode is kept as it is; the whitelist becomes device-include.
        for mode in [
            "--no-collector.netdev.netlink",
            "--collector.netdev.netlink=false",
        ] {
            let m = migrate(
                &words(&[
                    "--collector.netdev.enable-detailed-metrics",
                    mode,
                    "--collector.netdev.device-whitelist",
                    "^eth",
                ]),
                HOST,
            );
            assert!(m.dropped.is_empty(), "{m:?}");
            assert_eq!(
                m.args
                    .iter()
                    .filter(|a| a.contains("netdev.netlink"))
                    .collect::<Vec<_>>(),
                [mode]
            );
            assert!(m
                .args
                .contains(&"--collector.netdev.device-include=^eth".to_string()));
        }
        // Without the detailed names nothing is added.
        let m = migrate(&words(&["--collector.netdev.address-info"]), HOST);
        assert!(
            !m.args.iter().any(|a| a.contains("netdev.netlink")),
            "{m:?}"
        );
        // Both spellings at once are refused by node_exporter 1.12 too: named, not hidden.
        let m = migrate(
            &words(&[
                "--collector.netdev.device-whitelist=a",
                "--collector.netdev.device-include=b",
            ]),
            HOST,
        );
        assert!(m.kept.iter().any(|k| k.starts_with("WARNING")), "{m:?}");
    }

    #[test]
    fn debians_systemd_collector_stays_on_unless_switched_off() {
        let m = migrate(&[], HOST);
        assert!(m.args.contains(&"--collector.systemd".to_string()), "{m:?}");
        let m = migrate(&words(&["--no-collector.systemd"]), HOST);
        assert_eq!(
            m.args,
            words(&[
                "--no-collector.systemd",
                "--collector.textfile.directory=/var/lib/prometheus/node-exporter"
            ])
        );
        let m = migrate(
            &words(&[
                "--collector.systemd.enable-task-metrics",
                "--collector.systemd.enable-start-time-metrics=false",
            ]),
            HOST,
        );
        assert!(m.dropped.is_empty(), "{m:?}");
        assert!(m
            .args
            .contains(&"--collector.systemd.enable-task-metrics".to_string()));
        assert!(m
            .args
            .contains(&"--collector.systemd.enable-start-time-metrics=false".to_string()));
    }

    #[test]
    fn invalid_values_are_named_not_kept() {
        let m = migrate(&words(&["--web.listen-address=nonsense", "-x"]), HOST);
        assert_eq!(
            m.args,
            words(&[
                "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
                "--collector.systemd"
            ])
        );
        assert_eq!(m.dropped.len(), 2, "{m:?}");
        assert!(m.dropped[0].1.contains("refused"), "{m:?}");
    }

    #[test]
    fn without_debians_directory_none_is_added() {
        let m = migrate(
            &[],
            Host {
                debian_textfile_dir: false,
            },
        );
        assert_eq!(m.args, words(&["--collector.systemd"]));
    }

    #[test]
    fn systemd_quoting_round_trips() {
        // As Debian's comment says: \\\\d in the file is \d for the program.
        let text =
            "ARGS=\"--collector.diskstats.device-exclude=^(ram|loop)\\\\\\\\d+$ '--x=a b'\"\n";
        let value = args_value(text).expect("ARGS");
        let w = split_words(&value).expect("split");
        assert_eq!(
            w,
            words(&[
                "--collector.diskstats.device-exclude=^(ram|loop)\\d+$",
                "--x=a b"
            ])
        );
        for sample in [
            words(&["--a=^/(dev|proc)($|/)", "--b=\\d+ \"q\" 'x' `y` $HOME"]),
            words(&[]),
            words(&["--collector.textfile.directory=/var/lib/prometheus/node-exporter"]),
        ] {
            let line = quote_args(&sample);
            let back = split_words(&args_value(&line).expect("ARGS")).expect("split");
            assert_eq!(back, sample, "{line}");
        }
    }

    #[test]
    fn last_assignment_and_continuations() {
        let text = "ARGS=\"--one\"\n# ARGS=\"--commented\"\nexport ARGS=\"--two \\\n  --three\"\n";
        assert_eq!(args_value(text).as_deref(), Some("--two   --three"));
        assert_eq!(args_value("OTHER=1\n"), None);
    }

    #[test]
    fn rendered_file_is_read_back() {
        let m = migrate(
            &words(&["--collector.perf", "--web.listen-address=:9100"]),
            HOST,
        );
        let text = render(&m, Path::new(NODE_EXPORTER_DEFAULTS));
        assert!(text.contains("--collector.perf: this agent has no perf collector"));
        let back = split_words(&args_value(&text).expect("ARGS")).expect("split");
        assert_eq!(back, m.args);
    }
}
