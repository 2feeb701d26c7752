//! Writes the man pages and shell completions the Debian package ships, from the very clap
//! definition the agent parses (`monitoring_agent::cli::command()`, which adds one
//! `--collector.<name>` per collector to the derived flags, and the
//! `migrate-from-node-exporter` subcommand):
//!
//! ```sh
//! cargo run --release --locked --example gen-docs -- OUT_DIR
//! ```
//!
//! writes `OUT_DIR/man/monitoring-agent.1.gz`,
//! `OUT_DIR/man/monitoring-agent-migrate-from-node-exporter.1.gz` and
//! `OUT_DIR/completions/{monitoring-agent.bash,_monitoring-agent,monitoring-agent.fish}`
//! (`scripts/package.sh` runs it).
//!
//! Why an example: a build script cannot see `src/cli.rs` without compiling it (and the
//! collector list behind it) a second time, coupling `build.rs` to the command line; a hidden
//! flag in the agent would ship `clap_mangen` and `clap_complete` in the binary. An example
//! links the library as built and keeps both crates dev-dependencies.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use flate2::write::GzEncoder;
use flate2::Compression;

const NAME: &str = "monitoring-agent";

fn main() {
    let out = PathBuf::from(std::env::args_os().nth(1).expect("usage: gen-docs OUT_DIR"));
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }

    let version = env!("CARGO_PKG_VERSION");
    let cmd = monitoring_agent::cli::command()
        .version(version)
        .subcommand(monitoring_agent::migrate::command());

    // The agent's page: clap's sections, then what an operator looks for in a daemon's page.
    let mut page = Vec::new();
    let m = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .source(format!("{NAME} {version}"))
        .manual("monitoring-agent manual");
    m.render_title(&mut page).expect("render");
    m.render_name_section(&mut page).expect("render");
    m.render_synopsis_section(&mut page).expect("render");
    m.render_description_section(&mut page).expect("render");
    m.render_options_section(&mut page).expect("render");
    m.render_subcommands_section(&mut page).expect("render");
    page.extend_from_slice(EXTRA.as_bytes());
    m.render_version_section(&mut page).expect("render");
    write_gz(&man.join(format!("{NAME}.1.gz")), &page);

    let sub = monitoring_agent::migrate::command()
        .name(format!("{NAME}-{}", monitoring_agent::migrate::SUBCOMMAND))
        .bin_name(format!("{NAME} {}", monitoring_agent::migrate::SUBCOMMAND))
        .version(version);
    let mut page = Vec::new();
    clap_mangen::Man::new(sub)
        .section("1")
        .source(format!("{NAME} {version}"))
        .manual("monitoring-agent manual")
        .render(&mut page)
        .expect("render");
    write_gz(
        &man.join(format!(
            "{NAME}-{}.1.gz",
            monitoring_agent::migrate::SUBCOMMAND
        )),
        &page,
    );

    for (shell, file) in [
        (Shell::Bash, format!("{NAME}.bash")),
        (Shell::Zsh, format!("_{NAME}")),
        (Shell::Fish, format!("{NAME}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), NAME, &mut buf);
        let path = completions.join(file);
        fs::write(&path, buf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    println!(
        "gen-docs: wrote {} and {}",
        man.display(),
        completions.display()
    );
}

/// gzip -9 without a timestamp or file name: the same input gives the same bytes (lintian
/// checks man pages are compressed with maximum compression).
fn write_gz(path: &Path, data: &[u8]) {
    let file = fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut gz = GzEncoder::new(file, Compression::best());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip");
}

/// Sections clap does not know about, in roff.
const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
0
success (for the server: a clean stop on SIGTERM or SIGINT)
.TP
1
start\-up or runtime failure
.TP
2
bad command line or configuration
.TP
3
already running (another instance holds the PID file)
.TP
4
privilege drop or sandbox not enforceable on this kernel
.SH SIGNALS
.TP
SIGHUP
re\-read the configuration file (systemctl reload); an invalid file keeps the running configuration
.TP
SIGTERM, SIGINT
stop accepting, let in\-flight scrapes finish, remove the PID file, exit 0
.TP
SIGUSR1
toggle debug logging
.TP
SIGUSR2
log a one\-line summary (uptime, scrapes served, errors)
.SH FILES
.TP
/etc/monitoring\-agent/config.toml
configuration (TOML); flags override it
.TP
/etc/default/monitoring\-agent
ARGS, the extra flags monitoring\-agent.service passes
.TP
/run/monitoring\-agent/monitoring\-agent.pid
PID file (as root)
.TP
/var/log/monitoring\-agent/monitoring\-agent.log
log file of the packaged service, rotated by logrotate (copytruncate)
.TP
/var/lib/prometheus/node\-exporter
textfile directory of the packaged service (*.prom, as Debian's node_exporter)
.SH "SEE ALSO"
.BR systemd.exec (5),
.BR systemd\-analyze (1),
/usr/share/doc/monitoring\-agent/README.md.gz
"#;
