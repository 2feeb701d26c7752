//! scripts/install.sh and scripts/uninstall.sh: everything lands where the README says, a
//! second run changes nothing and says so (an edited configuration survives), a configuration
//! the new binary refuses leaves every installed file alone, `--ip-allow` writes and removes
//! its drop-in, removal is idempotent.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs the script; returns (success, stdout + stderr).
fn try_run(script: &str, root: &Path, args: &[&str]) -> (bool, String) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the install tests run as root (scripts/test.sh); run them with sudo"
    );
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .env("ROOT", root)
        .env("BIN", env!("CARGO_BIN_EXE_monitoring-agent"))
        .output()
        .expect("script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn run(script: &str, root: &Path, args: &[&str]) -> String {
    let (ok, text) = try_run(script, root, args);
    assert!(ok, "{script} failed: {text}");
    text
}

/// The script's last line (`install.sh: changed: ...` or `install.sh: nothing changed`).
fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn install_twice_then_uninstall_twice() {
    let root = tempfile::tempdir().expect("tmp");
    let r = root.path();
    let first = run("scripts/install.sh", r, &[]);
    assert!(
        last_line(&first).starts_with("install.sh: changed: ") && first.contains("binary"),
        "{first}"
    );
    let expected = [
        ("usr/local/bin/monitoring-agent", 0o755),
        ("etc/systemd/system/monitoring-agent.service", 0o644),
        ("etc/systemd/system/monitoring-agent.socket", 0o644),
        ("etc/systemd/system/monitoring-agent-socket.service", 0o644),
        ("etc/logrotate.d/monitoring-agent", 0o644),
        ("etc/monitoring-agent/config.toml", 0o644),
        ("etc/default/monitoring-agent", 0o644),
        ("var/log/monitoring-agent", 0o750),
    ];
    for (p, m) in expected {
        assert_eq!(mode(&r.join(p)), m, "{p}");
    }
    let logrotate =
        std::fs::read_to_string(r.join("etc/logrotate.d/monitoring-agent")).expect("logrotate");
    assert!(logrotate.contains("copytruncate"), "{logrotate}");
    // The units run the binary where this script puts it.
    for u in [
        "monitoring-agent.service",
        "monitoring-agent-socket.service",
    ] {
        let unit = std::fs::read_to_string(r.join("etc/systemd/system").join(u)).expect("unit");
        assert!(
            unit.contains("ExecStart=/usr/local/bin/monitoring-agent ")
                && !unit.contains("/usr/bin/monitoring-agent"),
            "{u}: {unit}"
        );
    }

    // Nothing differs: nothing is written, and the script says so (no restart under systemd).
    let again = run("scripts/install.sh", r, &[]);
    assert_eq!(last_line(&again), "install.sh: nothing changed", "{again}");

    // The operator edits the configuration; a second install keeps it.
    let cfg = r.join("etc/monitoring-agent/config.toml");
    std::fs::write(&cfg, "log_level = \"debug\"\n").expect("edit");
    let second = run("scripts/install.sh", r, &[]);
    assert!(second.contains("keeping the existing"), "{second}");
    assert_eq!(
        last_line(&second),
        "install.sh: nothing changed",
        "{second}"
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).expect("read"),
        "log_level = \"debug\"\n"
    );

    // A configuration the new binary refuses: nothing is replaced (here the "old" binary is a
    // marker file), and the script fails saying so.
    let bin = r.join("usr/local/bin/monitoring-agent");
    std::fs::write(&bin, "old binary\n").expect("marker");
    std::fs::write(&cfg, "no_such_setting = true\n").expect("bad config");
    let (ok, refused) = try_run("scripts/install.sh", r, &[]);
    assert!(
        !ok,
        "install.sh accepted a refused configuration: {refused}"
    );
    assert!(refused.contains("nothing was changed"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(&bin).expect("read"),
        "old binary\n",
        "the binary was replaced although the configuration was refused"
    );
    // The same for flags in /etc/default/monitoring-agent.
    std::fs::write(&cfg, "").expect("good config");
    let defaults = r.join("etc/default/monitoring-agent");
    let saved_defaults = std::fs::read_to_string(&defaults).expect("defaults");
    std::fs::write(&defaults, "ARGS=\"--no-such-flag\"\n").expect("bad ARGS");
    let (ok, refused) = try_run("scripts/install.sh", r, &[]);
    assert!(!ok && refused.contains("nothing was changed"), "{refused}");
    assert_eq!(std::fs::read_to_string(&bin).expect("read"), "old binary\n");
    std::fs::write(&defaults, saved_defaults).expect("restore");
    let fixed = run("scripts/install.sh", r, &[]);
    assert_eq!(last_line(&fixed), "install.sh: changed: binary", "{fixed}");

    // Who may scrape: a drop-in, written once, removed with `any`.
    let dropin = r.join("etc/systemd/system/monitoring-agent.service.d/ip-address-allow.conf");
    let out = run(
        "scripts/install.sh",
        r,
        &["--ip-allow", "localhost 10.0.0.0/8"],
    );
    assert_eq!(last_line(&out), "install.sh: changed: ip-allow", "{out}");
    let text = std::fs::read_to_string(&dropin).expect("drop-in");
    assert!(
        text.contains("IPAddressDeny=any\nIPAddressAllow=\nIPAddressAllow=localhost 10.0.0.0/8\n"),
        "{text}"
    );
    let out = run(
        "scripts/install.sh",
        r,
        &["--ip-allow", "localhost 10.0.0.0/8"],
    );
    assert_eq!(last_line(&out), "install.sh: nothing changed", "{out}");
    let out = run("scripts/install.sh", r, &[]);
    assert_eq!(last_line(&out), "install.sh: nothing changed", "{out}");
    assert!(
        dropin.exists(),
        "a run without --ip-allow removed the choice"
    );
    let (ok, out) = try_run(
        "scripts/install.sh",
        r,
        &["--ip-allow", "10.0.0.0/8; rm -rf /"],
    );
    assert!(!ok, "{out}");
    let out = run("scripts/install.sh", r, &["--ip-allow", "any"]);
    assert_eq!(last_line(&out), "install.sh: changed: ip-allow", "{out}");
    assert!(!dropin.exists());

    run("scripts/uninstall.sh", r, &[]);
    run("scripts/uninstall.sh", r, &[]);
    for (p, _) in expected.iter().take(5) {
        assert!(!r.join(p).exists(), "{p} left behind");
    }
    assert!(cfg.exists(), "configuration kept without --purge");
    assert!(defaults.exists(), "ARGS kept without --purge");
    run("scripts/uninstall.sh", r, &["--purge"]);
    assert!(!cfg.exists() && !r.join("var/log/monitoring-agent").exists());
    assert!(
        !defaults.exists(),
        "/etc/default/monitoring-agent left after --purge"
    );
}
