//! The filesystem collector describes the host, not the systemd unit's mount namespace
//! (issue 11, "Host view under the unit").
//!
//! The test makes its own "host" (a PID and mount namespace whose PID 1 is a shell, with a few
//! tmpfs mounts of its own: nothing is mounted in the machine's namespace, so tests running at
//! the same time see nothing), then starts the same binary twice, as root, on loopback:
//!
//! * A, in the host namespace (as without the unit);
//! * B, in a private mount namespace made like the shipped unit's: every mount remounted
//!   read-only (`ProtectSystem=strict`), a fresh `/proc` with `hidepid=invisible`
//!   (`ProtectProc=invisible`), an empty mode-000 tmpfs over the home-like mount
//!   (`ProtectHome=`), private `/tmp` and `/var/tmp` (`PrivateTmp=`), a writable runtime
//!   directory (`RuntimeDirectory=`), and the unit's capability bounding set.
//!
//! Their filesystem samples must agree: the same mount points, the same read-only flags (a
//! read-write mount stays 0 although B's namespace has it read-only), the same sizes, none of
//! B's private mounts; the one mount B's namespace covers (home) is reported by B with
//! `device_error 1` and no sizes, never with the sizes of the tmpfs over it. A control reads
//! B's own mount table from outside to prove the namespace really differs.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// Series of one family: labels (`device,fstype,mountpoint`) to value.
fn series(body: &str, family: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(family) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        out.insert(labels.to_string(), value.trim().parse().expect("a number"));
    }
    out
}

/// The `device="..."` of a label string.
fn device(labels: &str) -> &str {
    labels
        .split("device=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

#[test]
fn filesystem_samples_under_a_unit_like_namespace_match_the_hosts() {
    require_root_and_user();
    let setpriv = find_program("setpriv").expect("setpriv (util-linux) is needed");
    // Not under /tmp: B's namespace has a private /tmp, which would hide the binary and the
    // test directory from B.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for p in [Path::new(BIN), base.as_path()] {
        assert!(
            !p.starts_with("/tmp") && !p.starts_with("/var/tmp"),
            "{} is under /tmp or /var/tmp, which the unit-like namespace replaces (PrivateTmp=): \
             run the suite from a checkout outside them",
            p.display()
        );
    }
    let t = target_tempdir("host-view.");
    let t = t.path().to_path_buf();
    let (port_a, port_b) = (free_port(), free_port());
    let script = t.join("host.sh");
    fs::write(
        &script,
        r#"set -eu
T=$1; BIN=$2; SETPRIV=$3; PA=$4; PB=$5
# The host's own mounts: home-like, a read-write and a read-only file system.
mkdir -p "$T/m/home" "$T/m/data" "$T/m/ro" "$T/run"
mount -t tmpfs -o size=4m hostview-home "$T/m/home"
mount -t tmpfs -o size=8m hostview-data "$T/m/data"
mount -t tmpfs -o size=2m,ro hostview-ro "$T/m/ro"
ARGS="--collector.disable-defaults --collector.filesystem --log.level debug"
# A: as without the unit.
"$BIN" --web.listen-address 127.0.0.1:$PA --pid-file "$T/a.pid" --log-file "$T/a.log" $ARGS &
# B: in a namespace made like the unit's.
unshare -m --propagation slave sh -c '
  set -eu
  T=$1; BIN=$2; SETPRIV=$3; PB=$4; shift 4
  # ProtectSystem=strict: every mount read-only in this namespace.
  awk "{ print \$5 }" /proc/self/mountinfo | sort -u | while read -r mp; do
    case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$mp" 2>/dev/null || true
  done
  # ProtectProc=invisible
  mount -t proc -o hidepid=invisible proc /proc
  # ProtectHome=: an empty, inaccessible file system over the home-like mount.
  mount -t tmpfs -o mode=000,size=1m protecthome "$T/m/home"
  # PrivateTmp=
  mount -t tmpfs -o size=1m privatetmp /tmp
  mount -t tmpfs -o size=1m privatevartmp /var/tmp
  # RuntimeDirectory=: the writable PID and log directory.
  mount -t tmpfs -o size=1m,mode=755 runtimedir "$T/run"
  # The unit bounding set.
  exec "$SETPRIV" --bounding-set=-all,+setuid,+setgid,+setpcap,+net_bind_service --inh-caps=-all \
    "$BIN" --web.listen-address 127.0.0.1:$PB --pid-file "$T/run/b.pid" --log-file "$T/run/b.log" "$@"
' sh "$T" "$BIN" "$SETPRIV" "$PB" $ARGS &
wait
"#,
    )
    .expect("write script");
    let _ns = Namespace::start(
        &script,
        &[
            OsString::from(&t),
            OsString::from(BIN),
            OsString::from(&setpriv),
            OsString::from(port_a.to_string()),
            OsString::from(port_b.to_string()),
        ],
    );

    let (a, b) = (loopback(port_a), loopback(port_b));
    for addr in [a, b] {
        wait_until(|| format!("an agent listening on {addr}"), || accepts(addr));
    }
    let get = |addr| {
        let r = http(addr, "GET", "/metrics", &[]).expect("scrape");
        assert_eq!(r.status, 200, "{r:?}");
        r.text()
    };
    let (ma, mb) = (get(a), get(b));

    // The control: B's namespace really is the unit's kind (its own table has the data mount
    // read-only, the private /tmp and the cover over home).
    let b_pid = processes_mentioning(&format!("127.0.0.1:{port_b}"))
        .into_iter()
        .map(|(pid, _)| pid)
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("monitoring"))
        })
        .expect("agent B's pid");
    let b_table = fs::read_to_string(format!("/proc/{b_pid}/mountinfo")).expect("B's mountinfo");
    let data_line = b_table
        .lines()
        .find(|l| l.contains(" hostview-data "))
        .expect("the data mount in B's namespace");
    assert!(
        data_line
            .split(' ')
            .nth(5)
            .is_some_and(|o| o.split(',').any(|x| x == "ro")),
        "B's namespace must have the data mount read-only: {data_line}"
    );
    for private in [" privatetmp ", " protecthome ", " runtimedir "] {
        assert!(
            b_table.contains(private),
            "B's namespace lacks {private}:\n{b_table}"
        );
    }

    let errors_a = series(&ma, "node_filesystem_device_error");
    let errors_b = series(&mb, "node_filesystem_device_error");
    assert!(
        errors_a.keys().any(|l| device(l) == "hostview-data"),
        "A reports the host's mounts:\n{ma}"
    );
    // The same mount points, none of B's private ones.
    assert_eq!(
        errors_a.keys().collect::<Vec<_>>(),
        errors_b.keys().collect::<Vec<_>>(),
        "the mount points differ\nA:\n{ma}\nB:\n{mb}"
    );
    // The home-like mount is covered in B's namespace: an error there, never the cover's
    // sizes; everything else is read.
    for (labels, err_b) in &errors_b {
        let hidden = device(labels) == "hostview-home";
        let want = if hidden { 1.0 } else { errors_a[labels] };
        assert_eq!(*err_b, want, "device_error of {labels}\nA:\n{ma}\nB:\n{mb}");
    }
    let home = errors_a
        .keys()
        .find(|l| device(l) == "hostview-home")
        .expect("home in A");
    assert_eq!(errors_a[home], 0.0, "A reads home");

    // The same read-only flags wherever B has one, and B has one for every mount but home.
    let ro_a = series(&ma, "node_filesystem_readonly");
    let ro_b = series(&mb, "node_filesystem_readonly");
    let expected_b: Vec<&String> = ro_a.keys().filter(|l| *l != home).collect();
    assert_eq!(
        ro_b.keys().collect::<Vec<_>>(),
        expected_b,
        "A:\n{ma}\nB:\n{mb}"
    );
    for (labels, v) in &ro_b {
        assert_eq!(*v, ro_a[labels], "readonly of {labels}\nA:\n{ma}\nB:\n{mb}");
    }
    let ro_of = |dev: &str| {
        ro_b.iter()
            .find(|(l, _)| device(l) == dev)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no readonly for {dev}:\n{mb}"))
    };
    assert_eq!(ro_of("hostview-data"), 0.0, "read-write on the host");
    assert_eq!(ro_of("hostview-ro"), 1.0, "read-only on the host");
    if let Some(root) = ro_a.keys().find(|l| l.contains("mountpoint=\"/\"")) {
        assert_eq!(ro_b[root], ro_a[root], "the root file system's flag");
    }

    // The test's own file systems have the same sizes in both.
    let size_a = series(&ma, "node_filesystem_size_bytes");
    let size_b = series(&mb, "node_filesystem_size_bytes");
    for dev in ["hostview-data", "hostview-ro"] {
        let (l, v) = size_a
            .iter()
            .find(|(l, _)| device(l) == dev)
            .expect("size in A");
        assert_eq!(size_b.get(l), Some(v), "size of {dev}\nB:\n{mb}");
    }
    assert!(
        !size_b.keys().any(|l| device(l) == "hostview-home"),
        "B must not report the cover's size as home's:\n{mb}"
    );
}
