//! End-to-end golden test: the real binary, started as root (so it drops to `monitoring-agent`
//! and sandboxes itself as in production), pointed with `--path.procfs`, `--path.sysfs`,
//! `--path.rootfs`, `--path.udev.data` and `--collector.textfile.directory` at the committed
//! fixture tree `tests/fixtures/e2e/`, with a fixed set of collectors that depend on that tree
//! only. Its scrape, normalised (see [`normalise`]), must equal
//! `tests/fixtures/e2e/expected.prom` line for line.
//!
//! Regenerate the expected output with `sudo scripts/regenerate-golden.sh` (see
//! `tests/fixtures/e2e/README.md`), which runs this test with `E2E_GOLDEN_REGENERATE=1`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{assert_promtool_ok, assert_sandbox_enforced, Start, TestDir};

/// Collectors whose output depends on the fixture tree alone. Left out: `time`, `timex` and
/// `uname` (system calls about the running host), `filesystem` (statfs of live mount points),
/// `processes` (walks the live process table), `network_route` (netlink) and `sysctl`
/// (needs include flags). Keep in sync with `ne_collectors` in scripts/regenerate-golden.sh
/// (which lacks the three node_exporter 1.5 does not have: cpu_vulnerabilities, softirqs,
/// watchdog).
pub const COLLECTORS: &[&str] = &[
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "buddyinfo",
    "conntrack",
    "cpu",
    "cpu_vulnerabilities",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "hwmon",
    "infiniband",
    "interrupts",
    "ipvs",
    "ksmd",
    "loadavg",
    "mdadm",
    "meminfo",
    "meminfo_numa",
    "mountstats",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "os",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "selinux",
    "sockstat",
    "softirqs",
    "softnet",
    "stat",
    "tapestats",
    "textfile",
    "thermal_zone",
    "udp_queues",
    "vmstat",
    "watchdog",
    "xfs",
    "zfs",
    "zoneinfo",
];

/// The committed fixture tree.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e")
}

/// Copies `src` to `dst` recursively: directories 0755, files 0644, symlinks as symlinks (the
/// sysfs fixtures use relative links as the kernel does). The dropped, Landlocked agent must be
/// able to read the copy even when the checkout sits below a 0700 directory.
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    let mut entries: Vec<_> = fs::read_dir(src)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", src.display()))
        .map(|e| e.expect("dir entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type().expect("file type");
        if ft.is_symlink() {
            let target = fs::read_link(&from).expect("readlink");
            std::os::unix::fs::symlink(&target, &to)
                .unwrap_or_else(|err| panic!("symlink {}: {err}", to.display()));
        } else if ft.is_dir() {
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).unwrap_or_else(|err| panic!("copy {}: {err}", from.display()));
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
        }
    }
}

/// What legitimately varies from run to run is taken out of a scrape:
/// - the agent's own families (`monitoring_agent_*`: scrape counters, reload timestamps,
///   version, sandbox layers) and the process families (`process_*`), HELP and TYPE included;
/// - the values of `node_scrape_collector_duration_seconds` (the series stay: they show which
///   collectors ran) and of `node_textfile_mtime_seconds` (the copy's mtime) become `<varies>`;
/// - the absolute path of the tree copy becomes `@TREE@`.
///
/// Everything else is kept byte for byte, in the served order.
pub fn normalise(body: &str, tree: &Path) -> String {
    let tree = tree.display().to_string();
    let mut out = String::with_capacity(body.len());
    for line in body.lines() {
        let name = if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            rest.split_whitespace().next().unwrap_or("")
        } else {
            line.split(['{', ' ']).next().unwrap_or("")
        };
        if name.starts_with("monitoring_agent_") || name.starts_with("process_") {
            continue;
        }
        let line = line.replace(&tree, "@TREE@");
        if !line.starts_with('#')
            && (name == "node_scrape_collector_duration_seconds"
                || name == "node_textfile_mtime_seconds")
        {
            let series = match line.rfind('}') {
                Some(i) => &line[..=i],
                None => line.split(' ').next().unwrap_or(""),
            };
            out.push_str(series);
            out.push_str(" <varies>\n");
            continue;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A listing of the lines that differ, in the style of a unified diff: `-` lines expected but
/// not served, `+` lines served but not expected, each with its line number, in order.
fn diff_listing(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    // Longest common subsequence on the lines (outputs are a few thousand lines at most).
    let (n, m) = (e.len(), a.len());
    let mut out = String::new();
    if n.saturating_mul(m) > 40_000_000 {
        // Too large for the table: list set differences instead.
        let es: std::collections::HashSet<&str> = e.iter().copied().collect();
        let as_: std::collections::HashSet<&str> = a.iter().copied().collect();
        for (i, l) in e.iter().enumerate() {
            if !as_.contains(l) {
                out.push_str(&format!("-{:>5}: {l}\n", i + 1));
            }
        }
        for (i, l) in a.iter().enumerate() {
            if !es.contains(l) {
                out.push_str(&format!("+{:>5}: {l}\n", i + 1));
            }
        }
        return out;
    }
    let mut t = vec![0u32; (n + 1) * (m + 1)];
    let idx = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[idx(i, j)] = if e[i] == a[j] {
                t[idx(i + 1, j + 1)] + 1
            } else {
                t[idx(i + 1, j)].max(t[idx(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut last_printed_common: Option<usize> = None;
    while i < n || j < m {
        if i < n && j < m && e[i] == a[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[idx(i, j + 1)] >= t[idx(i + 1, j)]) {
            if last_printed_common != Some(i) && i > 0 {
                out.push_str(&format!(" {:>5}: {}\n", i, e[i - 1]));
                last_printed_common = Some(i);
            }
            out.push_str(&format!("+{:>5}: {}\n", j + 1, a[j]));
            j += 1;
        } else {
            if last_printed_common != Some(i) && i > 0 {
                out.push_str(&format!(" {:>5}: {}\n", i, e[i - 1]));
                last_printed_common = Some(i);
            }
            out.push_str(&format!("-{:>5}: {}\n", i + 1, e[i]));
            i += 1;
        }
    }
    out
}

/// Starts the agent on a readable copy of the fixture tree and returns the raw scrape and the
/// copy's path (the [`TestDir`] must outlive the use of the path).
fn scrape_fixture(dir: &TestDir) -> (String, PathBuf) {
    let tree = dir.path().join("tree");
    copy_tree(&fixture_dir(), &tree);
    let mut args: Vec<String> = vec![
        "--collector.disable-defaults".into(),
        "--path.procfs".into(),
        tree.join("proc").display().to_string(),
        "--path.sysfs".into(),
        tree.join("sys").display().to_string(),
        "--path.rootfs".into(),
        tree.join("rootfs").display().to_string(),
        "--path.udev.data".into(),
        tree.join("udev/data").display().to_string(),
        "--collector.textfile.directory".into(),
        tree.join("textfile").display().to_string(),
        // The real sandbox, as in production: the test also proves the collectors work
        // under it against these roots.
        "--sandbox".into(),
        "enforce".into(),
    ];
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    let agent = Start::new(dir).args(args).spawn();
    let body = agent.scrape("/metrics");
    // A second scrape must serve the same (the tree does not change; nothing is cached
    // wrongly between scrapes).
    let again = agent.scrape("/metrics");
    assert_eq!(
        normalise(&body, &tree),
        normalise(&again, &tree),
        "two scrapes of an unchanging fixture tree differ\n{}",
        diff_listing(&normalise(&body, &tree), &normalise(&again, &tree))
    );
    assert_sandbox_enforced(&body, "the e2e run must be sandboxed", || {
        agent.diagnostics()
    });
    (body, tree)
}

#[test]
fn fixture_tree_scrape_matches_golden() {
    let dir = TestDir::new();
    let (body, tree) = scrape_fixture(&dir);
    assert_promtool_ok(&body);
    let actual = normalise(&body, &tree);

    // Every collector of the set ran (meta series present), whatever its outcome: the
    // outcome itself is part of the golden file.
    for c in COLLECTORS {
        assert!(
            actual.contains(&format!(
                "node_scrape_collector_success{{collector=\"{c}\"}}"
            )),
            "collector {c} did not run:\n{actual}"
        );
    }

    let expected_path = fixture_dir().join("expected.prom");
    if std::env::var_os("E2E_GOLDEN_REGENERATE").is_some() {
        fs::write(&expected_path, &actual)
            .unwrap_or_else(|e| panic!("write {}: {e}", expected_path.display()));
        eprintln!(
            "E2E_GOLDEN_REGENERATE: wrote {} ({} lines); review it with git diff",
            expected_path.display(),
            actual.lines().count()
        );
        return;
    }
    let expected = fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with `sudo scripts/regenerate-golden.sh`",
            expected_path.display()
        )
    });
    if expected != actual {
        let failed: Vec<&str> = actual
            .lines()
            .filter(|l| l.starts_with("node_scrape_collector_success{") && l.ends_with(" 0"))
            .collect();
        panic!(
            "the scrape of tests/fixtures/e2e differs from expected.prom \
             ({} expected lines, {} served).\n\
             Collectors reporting success 0 in this run: {failed:?}\n\
             --- expected.prom\n+++ served (normalised)\n{}\n\
             If the change is intended, regenerate with `sudo scripts/regenerate-golden.sh` \
             and review the diff.",
            expected.lines().count(),
            actual.lines().count(),
            diff_listing(&expected, &actual)
        );
    }
}

/// Helper for scripts/regenerate-golden.sh (not a check): normalises the file named by
/// `E2E_GOLDEN_NORMALISE` (node_exporter's scrape of the same tree, copied to
/// `E2E_GOLDEN_TREE`) into `<file>.normalised`, with the very function the golden test uses.
#[test]
#[ignore = "helper run by scripts/regenerate-golden.sh with --ignored"]
fn normalise_file() {
    let file = std::env::var("E2E_GOLDEN_NORMALISE")
        .expect("E2E_GOLDEN_NORMALISE=<scrape file> (set by scripts/regenerate-golden.sh)");
    let tree = std::env::var("E2E_GOLDEN_TREE")
        .expect("E2E_GOLDEN_TREE=<tree copy> (set by scripts/regenerate-golden.sh)");
    let body = fs::read_to_string(&file).expect("read scrape file");
    // node_exporter's own meta families are named as its process' (go_*, promhttp_*); drop
    // them too.
    let body: String = body
        .lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            !(name.starts_with("go_")
                || name.starts_with("promhttp_")
                || name.starts_with("node_exporter_build_info"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(
        format!("{file}.normalised"),
        normalise(&body, Path::new(&tree)),
    )
    .expect("write normalised");
}

#[test]
fn diff_listing_shows_changed_lines() {
    let d = diff_listing("a\nb\nc\n", "a\nB\nc\nd\n");
    assert!(d.contains("-    2: b"), "{d}");
    assert!(d.contains("+    2: B"), "{d}");
    assert!(d.contains("+    4: d"), "{d}");
    assert!(!d.contains(": a\n-"), "{d}");
}

#[test]
fn normalise_drops_what_varies() {
    let body = "# HELP node_scrape_collector_duration_seconds d\n\
                # TYPE node_scrape_collector_duration_seconds gauge\n\
                node_scrape_collector_duration_seconds{collector=\"cpu\"} 0.0012\n\
                # HELP process_open_fds x\n# TYPE process_open_fds gauge\nprocess_open_fds 9\n\
                monitoring_agent_scrapes_total 3\n\
                node_textfile_mtime_seconds{file=\"/t/x/textfile/a.prom\"} 1.7e9\n\
                node_load1 0.21\n";
    let n = normalise(body, Path::new("/t/x"));
    assert_eq!(
        n,
        "# HELP node_scrape_collector_duration_seconds d\n\
         # TYPE node_scrape_collector_duration_seconds gauge\n\
         node_scrape_collector_duration_seconds{collector=\"cpu\"} <varies>\n\
         node_textfile_mtime_seconds{file=\"@TREE@/textfile/a.prom\"} <varies>\n\
         node_load1 0.21\n"
    );
}
