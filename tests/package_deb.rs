//! The Debian package (issue 14), inspected the way dpkg and lintian see it:
//!
//! * `lintian` reports no error and no warning that is not overridden, and every override in
//!   `debian/lintian-overrides` carries its reason in a comment;
//! * the files are where the README says (binary, units in /lib/systemd/system, conffiles,
//!   man pages, completions, documentation), with the control fields of the port story
//!   (Conflicts/Provides prometheus-node-exporter);
//! * the packaged unit is the repository's, the man page and completions know every
//!   collector flag, the maintainer scripts parse and do what the README promises.
//!
//! The package is the one `scripts/package.sh` built: scripts/test.sh builds it before the
//! suite and passes its path in `MONITORING_AGENT_DEB`; without it this test runs package.sh
//! itself (a release build). Fails, never skips, when dpkg-deb or lintian is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: install the Debian package `{package}` (scripts/test.sh does)");
}

/// The .deb under test, built once per test binary.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(p) = std::env::var_os("MONITORING_AGENT_DEB") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "MONITORING_AGENT_DEB={} is not a file",
                p.display()
            );
            return p;
        }
        let out = Command::new(repo("scripts/package.sh"))
            .output()
            .expect("run scripts/package.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/package.sh failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = PathBuf::from(stdout.lines().last().expect("a path").trim());
        assert!(p.is_file(), "package.sh printed {p:?}, not a file");
        p
    })
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn dpkg_deb(args: &[&str]) -> String {
    let (ok, out) = run(Command::new(tool("dpkg-deb", "dpkg")).args(args).arg(deb()));
    assert!(ok, "dpkg-deb {args:?}: {out}");
    out
}

/// The package unpacked (files and control area) into a temporary directory.
fn unpacked() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let (ok, out) = run(Command::new(tool("dpkg-deb", "dpkg"))
            .arg("-R")
            .arg(deb())
            .arg(dir.path()));
        assert!(ok, "dpkg-deb -R: {out}");
        dir
    })
    .path()
}

fn read(rel: &str) -> String {
    let p = unpacked().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gunzip(rel: &str) -> String {
    let p = unpacked().join(rel);
    let (ok, out) = run(Command::new(tool("gzip", "gzip")).arg("-dc").arg(&p));
    assert!(ok, "gzip -dc {}: {out}", p.display());
    out
}

#[test]
fn lintian_reports_no_error_and_no_unexplained_warning() {
    let lintian = tool("lintian", "lintian");
    let (ok, out) = run(Command::new(lintian)
        // Not --show-overrides: with it, --fail-on counts overridden tags too.
        .args(["--fail-on", "error,warning", "--display-level", ">=info"])
        .arg(deb()));
    println!("lintian {}:\n{out}", deb().display());
    let unexplained: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        ok && unexplained.is_empty(),
        "lintian found errors or warnings without an override in debian/lintian-overrides:\n{}",
        unexplained.join("\n")
    );
    // Every override has its reason: a comment right above it.
    let overrides = fs::read_to_string(repo("debian/lintian-overrides")).expect("overrides");
    let mut previous_is_comment = false;
    for line in overrides.lines() {
        let t = line.trim();
        if t.is_empty() {
            previous_is_comment = false;
            continue;
        }
        if t.starts_with('#') {
            previous_is_comment = true;
            continue;
        }
        assert!(
            previous_is_comment,
            "debian/lintian-overrides: {t:?} has no comment above it giving the reason"
        );
    }
}

#[test]
fn control_fields_tell_the_port_story() {
    let fields = dpkg_deb(&["-f"]);
    let field = |name: &str| -> String {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name}: field in\n{fields}"))
            .to_string()
    };
    assert_eq!(field("Package"), "monitoring-agent");
    assert!(field("Version").starts_with(env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Conflicts"), "prometheus-node-exporter");
    assert_eq!(field("Provides"), "prometheus-node-exporter");
    let depends = field("Depends");
    for d in ["adduser", "debconf", "init-system-helpers", "libc6"] {
        assert!(depends.contains(d), "Depends lacks {d}: {depends}");
    }
}

#[test]
fn files_are_where_the_readme_says() {
    let listing = dpkg_deb(&["-c"]);
    let entry = |path: &str| -> String {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
            .to_string()
    };
    for (path, mode) in [
        ("/usr/bin/monitoring-agent", "-rwxr-xr-x"),
        ("/lib/systemd/system/monitoring-agent.service", "-rw-r--r--"),
        ("/lib/systemd/system/monitoring-agent.socket", "-rw-r--r--"),
        (
            "/lib/systemd/system/monitoring-agent-socket.service",
            "-rw-r--r--",
        ),
        ("/etc/monitoring-agent/config.toml", "-rw-r--r--"),
        ("/etc/logrotate.d/monitoring-agent", "-rw-r--r--"),
        ("/usr/share/monitoring-agent/default", "-rw-r--r--"),
        ("/usr/share/man/man1/monitoring-agent.1.gz", "-rw-r--r--"),
        (
            "/usr/share/man/man1/monitoring-agent-migrate-from-node-exporter.1.gz",
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/monitoring-agent",
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_monitoring-agent",
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/monitoring-agent.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/monitoring-agent/README.md.gz", "-rw-r--r--"),
        ("/usr/share/doc/monitoring-agent/changelog.gz", "-rw-r--r--"),
        (
            "/usr/share/doc/monitoring-agent/changelog.Debian.gz",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/monitoring-agent/copyright", "-rw-r--r--"),
    ] {
        let e = entry(path);
        assert!(e.starts_with(mode), "{path}: {e} (expected {mode})");
        assert!(e.contains("root/root"), "{path}: {e} (expected root/root)");
    }
    // Configuration files are conffiles: an upgrade keeps the operator's edits.
    let conffiles = read("DEBIAN/conffiles");
    for c in [
        "/etc/monitoring-agent/config.toml",
        "/etc/logrotate.d/monitoring-agent",
    ] {
        assert!(
            conffiles.lines().any(|l| l == c),
            "{c} is not a conffile:\n{conffiles}"
        );
    }
    // The unit and the configuration are the repository's, byte for byte.
    for (inside, source) in [
        (
            "lib/systemd/system/monitoring-agent.service",
            "monitoring-agent.service",
        ),
        (
            "lib/systemd/system/monitoring-agent-socket.service",
            "contrib/systemd/monitoring-agent-socket.service",
        ),
        (
            "etc/monitoring-agent/config.toml",
            "contrib/config.example.toml",
        ),
        ("usr/share/monitoring-agent/default", "debian/default"),
    ] {
        assert_eq!(
            read(inside),
            fs::read_to_string(repo(source)).expect("source"),
            "{inside} differs from {source}"
        );
    }
}

#[test]
fn packaged_binary_man_page_and_completions_know_every_collector() {
    let bin = unpacked().join("usr/bin/monitoring-agent");
    let (ok, version) = run(Command::new(&bin).arg("--version"));
    assert!(
        ok && version.contains(env!("CARGO_PKG_VERSION")),
        "{version}"
    );
    let (ok, help) = run(Command::new(&bin).arg("--help"));
    assert!(ok, "{help}");
    let man = gunzip("usr/share/man/man1/monitoring-agent.1.gz");
    let bash = read("usr/share/bash-completion/completions/monitoring-agent");
    let zsh = read("usr/share/zsh/vendor-completions/_monitoring-agent");
    let fish = read("usr/share/fish/vendor_completions.d/monitoring-agent.fish");
    for k in monitoring_agent::collectors::KNOWN {
        let flag = format!("collector.{}", k.name);
        assert!(help.contains(&format!("--{flag}")), "--help lacks --{flag}");
        // roff escapes '-' as '\-'.
        assert!(
            man.contains(&format!("\\-\\-{flag}")),
            "the man page lacks --{flag}"
        );
        for (shell, text) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
            assert!(text.contains(&flag), "{shell} completion lacks {flag}");
        }
    }
    for section in [
        "EXIT STATUS",
        "SIGNALS",
        "FILES",
        "migrate\\-from\\-node\\-exporter",
    ] {
        assert!(man.contains(section), "the man page lacks {section}");
    }
    // The man page renders without warnings.
    let page = unpacked().join("usr/share/man/man1/monitoring-agent.1.gz");
    let (ok, out) = run(Command::new(tool("man", "man-db"))
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(&page));
    assert!(ok, "man -l: {out}");
}

#[test]
fn maintainer_scripts_parse_and_keep_their_promises() {
    for s in ["postinst", "prerm", "postrm", "config"] {
        let path = unpacked().join("DEBIAN").join(s);
        let (ok, out) = run(Command::new("/bin/sh").arg("-n").arg(&path));
        assert!(ok, "sh -n {s}: {out}");
    }
    let postinst = read("DEBIAN/postinst");
    for needle in [
        "adduser --system",
        "migrate-from-node-exporter",
        "deb-systemd-helper enable \"$UNIT\"",
        "_dh_action=restart",
        "_dh_action=start",
        // The empty assignment resets the unit's default list: without it the answer would
        // only add to it (seen in the Debian 12 VM: a loopback scrape still answered).
        "IPAddressDeny=any\nIPAddressAllow=\nIPAddressAllow=$allow",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
    // The socket-activated variant is installed, never enabled by the package itself.
    assert!(!postinst.contains("deb-systemd-helper enable monitoring-agent.socket"));
    assert!(read("DEBIAN/prerm").contains("deb-systemd-invoke stop"));
    let postrm = read("DEBIAN/postrm");
    for needle in [
        "deb-systemd-helper purge",
        "rm -f /etc/default/monitoring-agent",
        "db_purge",
        "deluser --system",
    ] {
        assert!(postrm.contains(needle), "postrm lacks {needle:?}");
    }
    let templates = read("DEBIAN/templates");
    assert!(templates.contains("Template: monitoring-agent/ip-address-allow"));
}
