//! The command line and the configuration file, through the real binary: help and version,
//! every kind of bad flag, bad configuration files (with line and column), a missing explicit
//! configuration file, and `--check-config`. None of these may create anything on disk or
//! leave a process running.

mod common;

use common::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The output is exactly one non-empty line on stderr, nothing on stdout.
fn assert_one_error_line(out: &std::process::Output, args: &[String]) -> String {
    let err = stderr_of(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "`monitoring-agent {}` should print exactly one error line, got:\n{err}",
        args.join(" ")
    );
    assert!(
        out.stdout.is_empty(),
        "`monitoring-agent {}` printed on stdout: {}",
        args.join(" "),
        stdout_of(out)
    );
    lines[0].to_string()
}

#[test]
fn help_documents_flags_and_default_port() {
    let dir = TestDir::new();
    for flag in ["-h", "--help"] {
        let args = s(&[flag]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr_of(&out));
        let text = stdout_of(&out);
        for needle in [
            "9100",
            "--daemon",
            "--port",
            "--web.listen-address",
            "--web.telemetry-path",
            "--config",
            "--user",
            "--pid-file",
            "--log-file",
            "--log.level",
            "--path.procfs",
            "--path.sysfs",
            "--path.rootfs",
            "--check-config",
            "--version",
        ] {
            assert!(
                text.contains(needle),
                "{flag} output lacks {needle}:\n{text}"
            );
        }
        assert!(
            out.stderr.is_empty(),
            "{flag} wrote to stderr: {}",
            stderr_of(&out)
        );
    }
    assert!(dir.entries().is_empty());
}

#[test]
fn version_prints_package_version() {
    for flag in ["-V", "--version"] {
        let out = run(&s(&[flag]));
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(
            text.contains("monitoring-agent") && text.contains(env!("CARGO_PKG_VERSION")),
            "{flag}: {text}"
        );
    }
}

/// Each bad flag: exit 2, one stderr line naming the flag and the bad value, nothing created
/// in the directory the PID and log files point into, nothing left running.
#[test]
fn bad_flags_exit_2_with_one_line_naming_flag_and_value() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-p", "0"], "--port", "'0'"),
        (&["-p", "70000"], "--port", "70000"),
        (&["-p", "abc"], "--port", "abc"),
        (&["--port=-5"], "--port", "-5"),
        (&["--port", "9100x"], "--port", "9100x"),
        (
            &["--web.listen-address", "1.2.3:80"],
            "--web.listen-address",
            "1.2.3:80",
        ),
        (
            &["--web.listen-address", "127.0.0.1"],
            "--web.listen-address",
            "127.0.0.1",
        ),
        (
            &["--web.listen-address", "[::1]"],
            "--web.listen-address",
            "[::1]",
        ),
        (
            &["--web.listen-address", "::1:9100"],
            "--web.listen-address",
            "::1:9100",
        ),
        (
            &["--web.listen-address", "[127.0.0.1]:80"],
            "--web.listen-address",
            "[127.0.0.1]:80",
        ),
        (
            &["--web.listen-address", "localhost:0"],
            "--web.listen-address",
            "localhost:0",
        ),
        (
            &["--web.listen-address", ":70000"],
            "--web.listen-address",
            ":70000",
        ),
        (
            &["--web.listen-address", "example.com:80"],
            "--web.listen-address",
            "example.com:80",
        ),
        (&["--log.level", "loud"], "--log.level", "loud"),
        (&["--web.max-requests", "0"], "--web.max-requests", "'0'"),
        (
            &["--web.max-requests", "lots"],
            "--web.max-requests",
            "lots",
        ),
        (
            &["--web.telemetry-path", "metrics"],
            "--web.telemetry-path",
            "metrics",
        ),
        (&["--sandbox", "maybe"], "--sandbox", "maybe"),
        (&["--user", "bad!user"], "--user", "bad!user"),
        (&["--user", "1:x"], "--user", "1:x"),
        (&["--no-such-flag"], "--no-such-flag", "--no-such-flag"),
        (&["--no-such-flag=3"], "--no-such-flag", "--no-such-flag"),
    ];
    for (bad, flag, value) in cases {
        let dir = TestDir::new();
        let mut args = vec![
            "--web.listen-address".to_string(),
            format!("127.0.0.1:{}", free_port()),
        ];
        args.extend(dir.file_args());
        args.extend(bad.iter().map(|x| x.to_string()));
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "`monitoring-agent {}` should exit 2; stderr: {}",
            args.join(" "),
            stderr_of(&out)
        );
        let line = assert_one_error_line(&out, &args);
        assert!(
            line.contains(flag) && line.contains(value),
            "the error for {bad:?} should name the flag {flag} and the value {value}: {line}"
        );
        assert!(
            dir.entries().is_empty(),
            "{bad:?} created {:?} in {}",
            dir.entries(),
            dir.path().display()
        );
        assert_nothing_running(&dir);
    }
}

/// A flag without its value names the flag.
#[test]
fn flag_missing_its_value_exits_2() {
    for (bad, flag) in [
        ("-p", "--port"),
        ("--path.procfs", "--path.procfs"),
        ("-c", "--config"),
    ] {
        let dir = TestDir::new();
        let mut args = dir.file_args();
        args.push(bad.to_string());
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr_of(&out));
        let line = assert_one_error_line(&out, &args);
        assert!(line.contains(flag), "{bad}: {line}");
        assert!(
            dir.entries().is_empty(),
            "{bad} created {:?}",
            dir.entries()
        );
        assert_nothing_running(&dir);
    }
}

/// A user that does not exist is refused before anything is touched (never runs as root).
#[test]
fn unknown_user_is_refused_before_anything_is_created() {
    let dir = TestDir::new();
    let mut args = dir.file_args();
    args.extend(s(&[
        "--web.listen-address",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    args.extend(s(&["--user", "no-such-user-zz9"]));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let line = assert_one_error_line(&out, &args);
    assert!(line.contains("no-such-user-zz9"), "{line}");
    assert!(dir.entries().is_empty(), "created {:?}", dir.entries());
    assert_nothing_running(&dir);
}

/// Bad configuration files: unknown key, wrong type, invalid value, syntax error. Each is
/// rejected with exit 2 and "config file PATH, line L, column C: ...", pointing at the
/// offending key or value, and nothing else is created.
#[test]
fn bad_config_files_exit_2_with_file_line_and_column() {
    // (file text, line, column, text the message must contain)
    let cases: &[(&str, usize, usize, &str)] = &[
        // Unknown keys, at top level and in a section: the key is pointed at.
        ("log_level = \"info\"\nbogus = 1\n", 2, 1, "bogus"),
        (
            "[web]\ntelemetry_path = \"/m\"\nlisten_adress = [\":9100\"]\n",
            3,
            1,
            "listen_adress",
        ),
        (
            "[paths]\nprocfs = \"/proc\"\nprocfss = \"/proc\"\n",
            3,
            1,
            "procfss",
        ),
        // Wrong types: the value is pointed at.
        ("[web]\nmax_requests = \"many\"\n", 2, 16, "many"),
        ("daemon = \"yes\"\n", 1, 10, "yes"),
        ("[paths]\nprocfs = 5\n", 2, 10, "5"),
        // Invalid values.
        ("sandbox = \"maybe\"\n", 1, 11, "maybe"),
        ("[web]\ntelemetry_path = \"metrics\"\n", 2, 18, "metrics"),
        ("[web]\nmax_connections = 0\n", 2, 19, "0"),
        ("log_level = \"loud\"\n", 1, 13, "loud"),
        ("user = \"\"\n", 1, 8, "user"),
        // Syntax errors.
        ("[web\n", 1, 5, ""),
        ("pid_file = \"/x\"\npid_file = \"/y\"\n", 2, 1, "pid_file"),
    ];
    assert_config_errors(cases);
}

/// A bad element of `listen_addresses` is pointed at itself (not at the array holding it),
/// so that the operator sees which of several addresses is wrong.
#[test]
fn bad_listen_address_in_config_points_at_the_element() {
    assert_config_errors(&[
        (
            "# listen on a port that does not exist\n[web]\nlisten_addresses = [\":0\"]\n",
            3,
            21,
            ":0",
        ),
        (
            "[web]\nlisten_addresses = [\"127.0.0.1:9100\", \"1.2.3:80\"]\n",
            2,
            39,
            "1.2.3:80",
        ),
    ]);
}

/// Each (file text, line, column, needle): exit 2, one stderr line with
/// "config file PATH, line L, column C: " and the needle; nothing created, nothing running.
fn assert_config_errors(cases: &[(&str, usize, usize, &str)]) {
    let mut failures = Vec::new();
    for (text, line, column, needle) in cases {
        let dir = TestDir::new();
        let cfg = dir.write_config(text);
        let mut args = s(&["-c", &cfg.display().to_string()]);
        args.extend(s(&[
            "--web.listen-address",
            &format!("127.0.0.1:{}", free_port()),
        ]));
        args.extend(dir.file_args());
        let out = run(&args);
        let err = stderr_of(&out);
        let want = format!(
            "config file {}, line {line}, column {column}: ",
            cfg.display()
        );
        let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
        if out.status.code() != Some(2)
            || !err.contains(&want)
            || !err.contains(needle)
            || lines != 1
        {
            failures.push(format!(
                "config {text:?}: want exit 2 and one line containing {want:?} and {needle:?}; \
                 got exit {:?}, stderr {err:?}",
                out.status.code()
            ));
        }
        assert_eq!(
            dir.entries(),
            vec!["agent.toml".to_string()],
            "config {text:?}"
        );
        assert_nothing_running(&dir);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An explicitly named configuration file that does not exist is an error naming it.
#[test]
fn missing_explicit_config_file_is_an_error() {
    let dir = TestDir::new();
    let missing = dir.path().join("nonexistent.toml");
    let mut args = s(&["--config", &missing.display().to_string()]);
    args.extend(s(&[
        "--web.listen-address",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    args.extend(dir.file_args());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let line = assert_one_error_line(&out, &args);
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(dir.entries().is_empty(), "created {:?}", dir.entries());
    assert_nothing_running(&dir);

    // Also with --check-config.
    args.push("--check-config".into());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

/// `--check-config` validates and exits: 0 for a valid file (creating nothing, binding
/// nothing), 2 for an invalid one or an invalid flag.
#[test]
fn check_config_validates_and_exits() {
    let dir = TestDir::new();
    let port = free_port();
    let cfg = dir.write_config(&format!(
        "log_level = \"debug\"\nsandbox = \"enforce\"\n\n[web]\nlisten_addresses = [\"127.0.0.1:{port}\"]\n\
         telemetry_path = \"/m\"\nmax_requests = 5\nmax_connections = 10\n\
         header_read_timeout_seconds = 5\nidle_timeout_seconds = 30\nshutdown_timeout_seconds = 3\n\
         max_header_bytes = 16384\n\n[paths]\nprocfs = \"/proc\"\nsysfs = \"/sys\"\nrootfs = \"/\"\n"
    ));
    let cfg_s = cfg.display().to_string();
    let mut args = s(&["--check-config", "-c", &cfg_s]);
    args.extend(dir.file_args());
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "valid config: {}",
        stderr_of(&out)
    );
    assert!(stdout_of(&out).contains("OK"), "{}", stdout_of(&out));
    assert_eq!(
        dir.entries(),
        vec!["agent.toml".to_string()],
        "--check-config created files"
    );
    assert!(
        !accepts(loopback(port)),
        "--check-config left port {port} listening"
    );
    assert_nothing_running(&dir);

    // Without a file: the flags alone.
    let out = run(&s(&["--check-config", "-p", "9101", "--log.level", "warn"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "flags only: {}",
        stderr_of(&out)
    );

    // Invalid file.
    write_in_place(&cfg, "[web]\nmax_requests = -1\n");
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "invalid config: {}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains(&format!("config file {cfg_s}, line 2, column 16")),
        "{}",
        stderr_of(&out)
    );

    // Invalid flag with a valid file.
    write_in_place(&cfg, "[web]\nmax_requests = 1\n");
    let mut bad = args.clone();
    bad.extend(s(&["-p", "0"]));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(dir.entries(), vec!["agent.toml".to_string()]);
    assert_nothing_running(&dir);
}
