//! A FUSE mount whose daemon never answers hangs every `statfs` of it in the kernel (the
//! connection is never initialised): the filesystem collector must report it with
//! `device_error 1`, remember it as stuck, and keep serving the other mounts, scrape after
//! scrape. Local mounts are stat'ed on the collector's own thread, without a timeout: a FUSE
//! mount taken for one would hang the collector (`node_scrape_collector_success 0`), which
//! this test sees (checked by adding `fuse` to `INLINE_STATFS_TYPES`: it fails).
//!
//! The test makes its own "host" (a PID and mount namespace whose PID 1 is a shell holding
//! `/dev/fuse`, with a tmpfs and the hung FUSE mount of its own: nothing is mounted in the
//! machine's namespace, so tests running at the same time see nothing), then starts the real
//! binary (as root, sandboxed, on loopback) twice: A in that namespace, B in a private mount
//! namespace of it (another namespace: every path is checked with `statx` first, which hangs on
//! the FUSE mount too). Killing the namespace ends the shell, which aborts the connection.

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use common::*;

/// The value of `family{...mountpoint="mp"...}`, if served.
fn value(body: &str, family: &str, mp: &str) -> Option<f64> {
    let needle = format!("mountpoint=\"{mp}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&needle))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

#[test]
fn hung_fuse_mount_is_isolated_and_skipped() {
    require_root_and_user();
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is needed to make a hung FUSE mount (modprobe fuse)"
    );
    let t = target_tempdir("hung-mount.");
    let t = t.path().to_path_buf();
    let (port_a, port_b) = (free_port(), free_port());
    let script = t.join("host.sh");
    fs::write(
        &script,
        r#"set -eu
T=$1; BIN=$2; PA=$3; PB=$4
mkdir -p "$T/m/data" "$T/m/hung"
mount -t tmpfs -o size=8m hungtest-data "$T/m/data"
# A FUSE connection whose daemon (this shell, holding fd 3) never reads: the kernel's INIT
# request is never answered, so every statfs and statx of the mount waits (killably).
exec 3<>/dev/fuse
mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0,allow_other hungtest-fuse "$T/m/hung"
ARGS="--collector.disable-defaults --collector.filesystem --collector.filesystem.mount-timeout 300ms --collector.filesystem.stat-workers 2 --log.level debug"
"$BIN" --web.listen-address 127.0.0.1:$PA --pid-file "$T/a.pid" --log-file "$T/a.log" $ARGS 3<&- &
unshare -m --propagation slave "$BIN" --web.listen-address 127.0.0.1:$PB --pid-file "$T/b.pid" --log-file "$T/b.log" $ARGS 3<&- &
wait
"#,
    )
    .expect("write script");
    let _ns = Namespace::start(
        &script,
        &[
            OsString::from(&t),
            OsString::from(BIN),
            OsString::from(port_a.to_string()),
            OsString::from(port_b.to_string()),
        ],
    );

    let hung = t.join("m/hung");
    let data = t.join("m/data");
    let (hung, data) = (hung.to_string_lossy(), data.to_string_lossy());
    for (port, log) in [(port_a, "a.log"), (port_b, "b.log")] {
        let addr = loopback(port);
        wait_until(|| format!("an agent listening on {addr}"), || accepts(addr));
        for scrape in 0..3 {
            let r = http(addr, "GET", "/metrics", &[]).expect("scrape");
            assert_eq!(r.status, 200, "{r:?}");
            let body = r.text();
            let ctx = || format!("{log}, scrape {scrape}:\n{body}");
            assert!(
                body.contains("node_scrape_collector_success{collector=\"filesystem\"} 1"),
                "{}",
                ctx()
            );
            // The hung mount reports its error and no size; the tmpfs beside it its size.
            for (metric, mount, want) in [
                ("node_filesystem_device_error", &hung, Some(1.0)),
                ("node_filesystem_size_bytes", &hung, None),
                ("node_filesystem_device_error", &data, Some(0.0)),
                (
                    "node_filesystem_size_bytes",
                    &data,
                    Some(8.0 * 1024.0 * 1024.0),
                ),
            ] {
                assert_eq!(
                    value(&body, metric, mount),
                    want,
                    "{metric} of {mount}, {}",
                    ctx()
                );
            }
        }
        // One timed-out call, then skipped: the mount is remembered as stuck.
        let text = fs::read_to_string(t.join(log)).expect("log");
        let timed_out = format!("mount point {hung}: statfs timed out");
        assert_eq!(text.matches(&timed_out).count(), 1, "{log}:\n{text}");
        assert!(
            text.contains(&format!("mount point {hung}: still not answering, skipped")),
            "{log}:\n{text}"
        );
    }
}
