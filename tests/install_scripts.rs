//! scripts/install.sh and scripts/uninstall.sh: everything lands where the README says, a
//! second run changes nothing (an edited configuration survives), removal is idempotent.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn run(script: &str, root: &Path, args: &[&str]) -> String {
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
    assert!(out.status.success(), "{script} failed: {text}");
    text
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
    run("scripts/install.sh", r, &[]);
    let expected = [
        ("usr/local/bin/monitoring-agent", 0o755),
        ("etc/systemd/system/monitoring-agent.service", 0o644),
        ("etc/systemd/system/monitoring-agent.socket", 0o644),
        ("etc/systemd/system/monitoring-agent-socket.service", 0o644),
        ("etc/logrotate.d/monitoring-agent", 0o644),
        ("etc/monitoring-agent/config.toml", 0o644),
        ("var/log/monitoring-agent", 0o750),
    ];
    for (p, m) in expected {
        assert_eq!(mode(&r.join(p)), m, "{p}");
    }
    let logrotate =
        std::fs::read_to_string(r.join("etc/logrotate.d/monitoring-agent")).expect("logrotate");
    assert!(logrotate.contains("copytruncate"), "{logrotate}");

    // The operator edits the configuration; a second install keeps it.
    let cfg = r.join("etc/monitoring-agent/config.toml");
    std::fs::write(&cfg, "log_level = \"debug\"\n").expect("edit");
    let second = run("scripts/install.sh", r, &[]);
    assert!(second.contains("keeping the existing"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&cfg).expect("read"),
        "log_level = \"debug\"\n"
    );

    run("scripts/uninstall.sh", r, &[]);
    run("scripts/uninstall.sh", r, &[]);
    for (p, _) in expected.iter().take(5) {
        assert!(!r.join(p).exists(), "{p} left behind");
    }
    assert!(cfg.exists(), "configuration kept without --purge");
    run("scripts/uninstall.sh", r, &["--purge"]);
    assert!(!cfg.exists() && !r.join("var/log/monitoring-agent").exists());
}
