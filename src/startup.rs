//! The start-up sequence, in one place and in order (DESIGN.md §1). Everything here runs on
//! the main thread before any other thread exists; nothing privileged happens after step 8.
//!
//! 1. Parse the command line, load and validate the configuration, resolve the user.
//! 2. Daemon mode: detach; the launching command waits for the daemon's report.
//! 3. Open the log destinations and connect `$NOTIFY_SOCKET`.
//! 4. Create and lock the PID file.
//! 5. Bind the listening sockets (or take systemd's); read what the collectors need from
//!    outside the sandbox.
//! 6. Drop privileges.
//! 7. Landlock.
//! 8. seccomp.
//! 9. Build the tokio runtime and serve.

use std::path::{Path, PathBuf};

use crate::cli::Cli;
use crate::config::{self, ConfigAccess, Settings, StartupSettings};
use crate::daemon::pidfile::PidFile;
use crate::daemon::{self, Readiness};
use crate::{agent, check, collectors, exit, privilege, runtime, sandbox, server, StartError};

/// Runs the agent with the given arguments; returns the process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    limit_malloc_arenas();
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    // `monitoring-agent migrate-from-node-exporter ...`: a one-shot conversion, not the agent.
    if args.get(1).is_some_and(|a| a == crate::migrate::SUBCOMMAND) {
        return crate::migrate::run(args[1..].to_vec());
    }
    // Step 1: parse, load, validate, resolve. Nothing is touched before this succeeds.
    let cli = match Cli::parse_args(args) {
        Ok(c) => c,
        Err((0, text)) => {
            print!("{text}");
            return exit::OK;
        }
        Err((code, line)) => {
            eprintln!("monitoring-agent: {line}");
            return code;
        }
    };
    if cli.reload {
        return crate::reload::client(&cli);
    }
    if cli.check_sandbox {
        return match Settings::load(&cli) {
            Ok(settings) => check::run(&settings),
            Err(e) => {
                eprintln!("monitoring-agent: {e}");
                exit::CONFIG
            }
        };
    }
    let prepared = match prepare(&cli) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("monitoring-agent: {e}");
            return e.exit_code();
        }
    };
    if cli.check_config {
        let file = prepared.settings.startup.config_file.as_deref();
        if let Some(w) = file.and_then(|f| ConfigAccess::of(f).warning(f)) {
            eprintln!("monitoring-agent: warning: {w}");
        }
        for w in &prepared.web_warnings {
            eprintln!("monitoring-agent: warning: {w}");
        }
        if let Some(w) = &prepared.settings.startup.web_config_file {
            println!("monitoring-agent: web config OK ({})", w.display());
        }
        println!(
            "monitoring-agent: configuration OK ({})",
            file.map_or("built-in defaults and flags".into(), |p| p
                .display()
                .to_string())
        );
        return exit::OK;
    }
    // Step 2: daemon mode detaches here; the launching command waits for our report.
    let mut readiness = if prepared.settings.startup.daemon {
        match daemon::daemonize() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("monitoring-agent: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        Readiness::none()
    };
    // After the fork: the launching process must still answer Ctrl-C while it waits.
    block_signals_until_runtime();
    let mut logging_ready = false;
    match start(cli, prepared, &mut readiness, &mut logging_ready) {
        Ok(()) => exit::OK,
        Err(e) => {
            let code = e.exit_code();
            if logging_ready {
                log::error!("{e}");
            } else if !readiness.is_waiting() {
                eprintln!("monitoring-agent: {e}");
            }
            readiness.failed(code, &e.to_string());
            code
        }
    }
}

/// glibc gives every thread that allocates its own malloc arena (up to 8 per core), each
/// keeping freed memory. Measured under 8 concurrent scrapers (wrk): peak RSS 19.5 MiB with
/// glibc's default and 16 blocking threads, 12.9 MiB with two arenas and 8 threads (12.4 MiB
/// with one arena: not worth serialising the allocator), at the same throughput.
///
/// An arena also keeps up to 128 KiB free at its top (glibc's default trim threshold) after
/// every scrape. At 16 KiB: idle RSS after 20 scrapes 0.2 MiB lower (anonymous 2.56 to 2.36
/// MiB, 4 fresh instances each, issue 12), the peak under 64 clients unchanged, and about
/// one page fault, 0.24 `madvise` and 0.04 `brk` more per scrape (strace, 100 scrapes).
/// Setting it also fixes the mmap threshold at 128 KiB (no per-scrape `mmap` seen).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator parameters; called on the main thread before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 * 1024);
    }
}

/// What step 1 produces.
struct Prepared {
    settings: Settings,
    target: Option<privilege::Target>,
    mode: sandbox::Mode,
    /// What Landlock leaves readable for the web config and the files it names.
    web_grants: Vec<PathBuf>,
    /// Web-config files in shared directories (rotation by rename cannot reach them).
    web_warnings: Vec<String>,
}

fn prepare(cli: &Cli) -> Result<Prepared, StartError> {
    let settings = Settings::load(cli)?;
    let user: privilege::UserSpec = settings
        .startup
        .user
        .parse()
        .map_err(|e| StartError::Invalid(format!("--user: {e}")))?;
    let mode: sandbox::Mode = settings
        .startup
        .sandbox
        .parse()
        .map_err(|e| StartError::Invalid(format!("--sandbox: {e}")))?;
    let target =
        privilege::resolve(&user).map_err(|e| StartError::Invalid(format!("user: {e}")))?;
    // The whole web config, its certificate, key and CA, checked now (exit status 2); read
    // again as the agent's user once sandboxed (`web::Edge::start`).
    let (web_grants, web_warnings) = match &settings.startup.web_config_file {
        Some(path) => {
            let web = crate::web::load(path)?;
            (crate::web::grants(&web), crate::web::warnings(&web))
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Prepared {
        settings,
        target,
        mode,
        web_grants,
        web_warnings,
    })
}

/// The signals the runtime handles. During start-up they are blocked, not lost: a SIGTERM
/// that arrives while the agent binds and sandboxes itself is delivered (and handled as a
/// clean stop) once the runtime's handlers exist, and a SIGHUP cannot kill it with the
/// default action. The runtime unblocks them on every thread (step 9).
pub fn handled_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

fn block_signals_until_runtime() {
    let _ = handled_signals().thread_block();
}

/// Steps 3 to 9.
fn start(
    cli: Cli,
    prepared: Prepared,
    readiness: &mut Readiness,
    logging_ready: &mut bool,
) -> Result<(), StartError> {
    let Prepared {
        settings,
        target,
        mode,
        web_grants,
        web_warnings,
    } = prepared;
    let startup = &settings.startup;

    // Step 3: log destinations, connected now: the sandbox forbids new sockets and paths.
    daemon::logging::init(
        settings.reloadable.log_level,
        startup.log_format,
        !startup.daemon,
        startup.log_file.as_deref(),
    )?;
    *logging_ready = true;
    let notifier = daemon::notify::Notifier::from_env()?;
    // The reload outcome channel for `--reload`, made now: the sandbox allows no new file.
    let reload_channel = match daemon::reload_channel::ReloadChannel::create() {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("reload outcome channel unavailable ({e}): --reload cannot report");
            None
        }
    };
    log::info!(
        "monitoring-agent {} starting (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    if let Some(w) = startup
        .config_file
        .as_deref()
        .and_then(|f| ConfigAccess::of(f).warning(f))
    {
        log::warn!("{w}");
    }
    for w in &web_warnings {
        log::warn!("{w}");
    }

    // Step 4: the PID file.
    let (pid_file, remove_dirs) = match &startup.pid_file {
        Some(path) => {
            let removable = pid_dir_for_user(path, target.as_ref());
            let remove_dirs: Vec<PathBuf> = removable.iter().map(|d| d.to_path_buf()).collect();
            (
                Some(PidFile::acquire(path, removable.is_some())?),
                remove_dirs,
            )
        }
        None => (None, Vec::new()),
    };

    // Steps 5 to 8. A start-up that fails from here on leaves no PID file behind.
    let locked = match lock_down(
        startup,
        &settings.reloadable.collectors.enabled,
        target.as_ref(),
        mode,
        remove_dirs,
        web_grants,
        cli.landlock_max_abi,
    ) {
        Ok(l) => l,
        Err(e) => {
            if let Some(p) = pid_file {
                p.remove();
            }
            return Err(e);
        }
    };

    // The web config, read as the agent's user under the sandbox: what a certificate rotation
    // will read. A key the user cannot read fails here, not at the first rotation.
    let edge = match &startup.web_config_file {
        Some(path) => match crate::web::Edge::start(path) {
            Ok(e) => {
                log::info!(
                    "web config {}: TLS {}",
                    path.display(),
                    if e.tls() { "on" } else { "off" }
                );
                Some(std::sync::Arc::new(e))
            }
            Err(e) => {
                if let Some(p) = pid_file {
                    p.remove();
                }
                return Err(explain_web_read(e, startup));
            }
        },
        None => None,
    };

    // Step 9: the runtime.
    let mut static_families = locked.enforcement.families();
    static_families.push(agent::self_metrics::build_info());
    let agent = agent::Agent::new(settings, static_families).with_edge(edge);
    runtime::run(
        agent,
        cli,
        runtime::Handoff {
            listeners: locked.listeners,
            readiness,
            notifier,
            pid_file,
            nofile: locked.nofile,
            reload_channel,
        },
    )?;
    Ok(())
}

/// The PID file's directory, when the agent's user may remove the file from it at exit (it
/// owns the directory: chrony's way); Landlock then grants remove-file there alone. The
/// default directory is the agent's own: created and handed to its user when possible.
fn pid_dir_for_user<'a>(path: &'a Path, target: Option<&privilege::Target>) -> Option<&'a Path> {
    let default = Path::new(config::DEFAULT_PID_FILE);
    if let (true, Some(dir), Some(t)) = (path == default, default.parent(), target) {
        // Without it (no CAP_CHOWN under the systemd unit, say) the PID file stays after
        // exit; PidFile::acquire says so.
        if let Err(e) = privilege::prepare_owned_dir(dir, t) {
            log::debug!("{e}");
        }
    }
    let owner = target.map_or_else(|| nix::unistd::geteuid().as_raw(), |t| t.uid);
    path.parent().filter(|dir| {
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == owner)
    })
}

/// What steps 5 to 8 leave: the bound sockets and what the sandbox enforces.
struct LockedDown {
    listeners: Vec<(config::ListenAddr, std::net::TcpListener)>,
    enforcement: sandbox::Enforcement,
    /// The soft descriptor limit after step 5 raised it.
    nofile: u64,
}

/// Steps 5 to 8: bind, drop privileges, Landlock, seccomp.
fn lock_down(
    startup: &StartupSettings,
    enabled: &[&'static str],
    target: Option<&privilege::Target>,
    mode: sandbox::Mode,
    remove_file_dirs: Vec<PathBuf>,
    web_grants: Vec<PathBuf>,
    landlock_max_abi: Option<i32>,
) -> Result<LockedDown, StartError> {
    // Step 5: as many descriptors as the hard limit allows (each client connection holds
    // one), then the listening sockets, bound here or passed by systemd (socket activation).
    let nofile = raise_nofile_limit();
    let mut listeners = Vec::new();
    if startup.systemd_socket {
        for l in daemon::notify::listen_fds()? {
            let local = l
                .local_addr()
                .map_err(|e| StartError::Invalid(format!("socket passed by systemd: {e}")))?;
            listeners.push((config::ListenAddr::Addr(local), l));
        }
    } else {
        for addr in &startup.listen {
            listeners.push((*addr, server::bind(addr)?));
        }
    }
    // What the collectors must read before the sandbox closes the filesystem.
    collectors::warm_up(&startup.paths);
    // The runners a scrape starts, from the CPU count (cgroup files included).
    agent::scheduler::first_runners();

    // Step 6: drop privileges.
    // Socket activation: systemd binds, so not even CAP_NET_BIND_SERVICE is kept.
    let keep = if startup.systemd_socket {
        privilege::Keep::Nothing
    } else {
        privilege::Keep::NetBindService
    };
    let privileges = privilege::drop_privileges(target, keep)?;
    // Between steps 6 and 7: what collectors connect to as the agent's user (the system bus),
    // still on the single thread and before the sandbox.
    collectors::connect_before_sandbox(enabled);

    // Steps 7 and 8: Landlock, then seccomp with the policy fragments of the enabled
    // collectors (policy/fragments/).
    let mut read_only = readable_paths(startup);
    // Operator-configured: the web config's directory and those of the certificate, key and
    // CA it names (the files alone in shared directories), for rotation without a restart.
    read_only.extend(web_grants);
    let spec = sandbox::Spec {
        read_only,
        remove_file_dirs,
        // The supervisord collector's TCP port (an `http://` URL), when it is enabled.
        connect_tcp_ports: startup.paths.collector_files.connect_tcp_ports(),
        max_abi: landlock_max_abi.unwrap_or(sandbox::landlock::PINNED_ABI_NUMBER),
    };
    let enforcement = sandbox::apply_with(&spec, startup.fragments, mode, &privileges)?;
    Ok(LockedDown {
        listeners,
        enforcement,
        nofile,
    })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does for
/// node_exporter: the soft default (1024) would make a thousand idle sockets exhaust the
/// agent's descriptors. Returns the soft limit in force, which sizes the connection table
/// ([`server::connection_capacity`]).
fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                log::debug!("descriptor limit (RLIMIT_NOFILE) raised from {soft} to {hard}");
                return hard;
            }
            Err(e) => log::warn!("cannot raise the descriptor limit from {soft} to {hard}: {e}"),
        }
    }
    soft
}

/// What the sandbox leaves readable: the collectors' roots, the udev database, the textfile
/// directory when configured, and the configuration re-read on SIGHUP (its directory when it
/// has one of its own, so that a file replaced by rename is still readable; the file alone in
/// a shared directory: see [`ConfigAccess`]).
fn readable_paths(startup: &StartupSettings) -> Vec<PathBuf> {
    let paths = &startup.paths;
    let mut v = vec![paths.procfs.clone(), paths.sysfs.clone()];
    // udev's database, for node_disk_info, where the host has one (containers often do not).
    if paths.udev_data.is_dir() {
        v.push(paths.udev_data.clone());
    }
    // Operator-configured: the textfile collector's directory.
    v.extend(paths.textfile_directory.clone());
    // Enabled collectors' files outside procfs and sysfs, each alone: pcidevice's pci.ids,
    // the qdisc fixture file, the wifi fixture directory. One that does not exist is not
    // granted (the collector reports the read error).
    v.extend(
        paths
            .collector_files
            .grants()
            .into_iter()
            .filter(|p| p.exists()),
    );
    if let Some(cfg) = &startup.config_file {
        v.push(ConfigAccess::of(cfg).granted(cfg));
    }
    v
}

/// A web-config file the agent's user cannot read once sandboxed: name the file and the
/// permissions it needs.
fn explain_web_read(e: crate::web::WebConfigError, startup: &StartupSettings) -> StartError {
    let text = e.to_string();
    if text.contains("Permission denied") || text.contains("os error 13") {
        StartError::Invalid(format!(
            "{text}: the agent reads its web config, certificate, key and CA as its user ({}) \
             after dropping privileges, so that certificates rotate without a restart; make \
             them readable by that user (e.g. the key root:{} 0640, its directory 0750)",
            startup.user, startup.user
        ))
    } else {
        StartError::WebConfig(e)
    }
}
