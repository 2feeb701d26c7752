//! `mdadm` collector: node_exporter 1.5's `mdadm_linux.go` over prometheus/procfs 0.8's
//! `/proc/mdstat` parser.
//!
//! Families, per md device: `node_md_state{device,state}` (one of `active`, `inactive`,
//! `recovering`, `resync`, `check` is 1), `node_md_disks{device,state}` (active, failed (`(F)`),
//! spare (`(S)`)), `node_md_disks_required`, `node_md_blocks`, `node_md_blocks_synced`.
//!
//! Without `/proc/mdstat` (no md driver) the collector fails, as node_exporter's `ErrNoData`
//! does (`node_scrape_collector_success 0`).
//!
//! node_exporter 1.12 semantics: after the `/proc/mdstat` families, from
//! `/sys/block/md*/md/` (procfs' `Mdraids`): `node_md_raid_disks{device}` (`raid_disks`; the
//! first number during a reshape's `"11 (10)"`; none for container, imsm and ddf arrays or an
//! empty `level` or `raid_disks`) and `node_md_degraded{device}` (`degraded` for raid1, 4, 5, 6
//! and 10, 0 for other levels). As procfs, a missing or unreadable `level`, `array_state`,
//! `metadata_version`, `uuid`, component `state`, or level-specific `chunk_size`, `degraded`,
//! `sync_action`, `sync_completed` fails the collector, keeping the `/proc/mdstat` families
//! (partial output); no `md*` directory gives no sysfs samples.
//!
//! Deviation: a line starting with a tab (the kernel prints `\tresync=DELAYED` and
//! `\tresync=PENDING`) is a continuation line here; procfs 0.8 takes it for a device line and
//! fails the whole collector.

use std::sync::LazyLock;

use regex::Regex;

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Mdadm)
}

/// One md device, as procfs' `MDStat` (the fields node_exporter uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdStat {
    pub name: String,
    /// `active`, `inactive`, `recovering`, `resyncing`, `checking`, or whatever word the
    /// kernel printed third (e.g. `(auto-read-only)`).
    pub state: String,
    pub disks_active: i64,
    pub disks_total: i64,
    pub disks_failed: i64,
    pub disks_spare: i64,
    pub blocks_total: i64,
    pub blocks_synced: i64,
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|_| unreachable!("built-in pattern"))
}

static STATUS_LINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]"));
static RECOVERY_BLOCKS: LazyLock<Regex> = LazyLock::new(|| re(r"\((\d+)/\d+\)"));
static RECOVERY_PCT: LazyLock<Regex> = LazyLock::new(|| re(r"= (.+)%"));
static RECOVERY_FINISH: LazyLock<Regex> = LazyLock::new(|| re(r"finish=(.+)min"));
static RECOVERY_SPEED: LazyLock<Regex> = LazyLock::new(|| re(r"speed=(.+)[A-Z]"));

/// Parses `/proc/mdstat` as procfs 0.8 does (see the module doc for the one deviation).
pub fn parse_mdstat(text: &str) -> Result<Vec<MdStat>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with('\t')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(state)) = (fields.first(), fields.get(2)) else {
            return Err(format!(
                "not enough fields in mdline (expected at least 3): {line}"
            ));
        };
        let (Some(status), Some(third), Some(_)) =
            (lines.get(i + 1), lines.get(i + 2), lines.get(i + 3))
        else {
            return Err(format!(
                "error parsing {name:?}: too few lines for md device"
            ));
        };
        let failed = line.matches("(F)").count() as i64;
        let spare = line.matches("(S)").count() as i64;
        let (active, total, size) = eval_status_line(line, status)?;
        let sync_line = if third.contains("bitmap") {
            lines.get(i + 3).copied().unwrap_or("")
        } else {
            third
        };
        let recovering = sync_line.contains("recovery");
        let resyncing = sync_line.contains("resync");
        let checking = sync_line.contains("check");
        let mut state = (*state).to_string();
        let mut synced = size;
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            if sync_line.contains("PENDING") || sync_line.contains("DELAYED") {
                synced = 0;
            } else {
                synced = eval_recovery_line(sync_line)
                    .map_err(|e| format!("error parsing sync line in md device {name:?}: {e}"))?;
            }
        }
        out.push(MdStat {
            name: (*name).to_string(),
            state,
            disks_active: active,
            disks_total: total,
            disks_failed: failed,
            disks_spare: spare,
            blocks_total: size,
            blocks_synced: synced,
        });
    }
    Ok(out)
}

/// (active, total, size) from the device line and the status line after it.
fn eval_status_line(device_line: &str, status_line: &str) -> Result<(i64, i64, i64), String> {
    let bad = || format!("unexpected statusLine {status_line:?}");
    let size: i64 = status_line
        .split_whitespace()
        .next()
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if device_line.contains("raid0") || device_line.contains("linear") {
        // Only the member disks carry a `[n]` on the device line.
        let total = device_line.matches('[').count() as i64;
        return Ok((total, total, size));
    }
    if device_line.contains("inactive") {
        return Ok((0, 0, size));
    }
    let c = STATUS_LINE
        .captures(status_line)
        .ok_or_else(|| format!("couldn't find all the substring matches: {status_line}"))?;
    let num = |i: usize| -> Result<i64, String> {
        c.get(i)
            .and_then(|m| m.as_str().parse().ok())
            .ok_or_else(bad)
    };
    Ok((num(3)?, num(2)?, size))
}

/// The synced blocks of a recovery/resync/check line; the percentage, finish time and speed
/// must be there too (procfs fails otherwise).
fn eval_recovery_line(line: &str) -> Result<i64, String> {
    let bad = || format!("unexpected recoveryLine: {line}");
    let cap = |r: &Regex| r.captures(line).and_then(|c| c.get(1)).map(|m| m.as_str());
    let synced: i64 = cap(&RECOVERY_BLOCKS)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    for (r, trim) in [
        (&*RECOVERY_PCT, true),
        (&*RECOVERY_FINISH, false),
        (&*RECOVERY_SPEED, false),
    ] {
        let s = cap(r).ok_or_else(bad)?;
        let s = if trim { s.trim() } else { s };
        s.parse::<f64>().map_err(|_| bad())?;
    }
    Ok(synced)
}

/// The families, samples sorted by device name.
pub fn families(mut mds: Vec<MdStat>) -> Vec<MetricFamily> {
    mds.sort_by(|a, b| a.name.cmp(&b.name));
    let mut blocks = MetricFamily::gauge("node_md_blocks", "Total number of blocks on device.");
    let mut synced = MetricFamily::gauge(
        "node_md_blocks_synced",
        "Number of blocks synced on device.",
    );
    let mut disks = MetricFamily::gauge(
        "node_md_disks",
        "Number of active/failed/spare disks of device.",
    );
    let mut required =
        MetricFamily::gauge("node_md_disks_required", "Total number of disks of device.");
    let mut state = MetricFamily::gauge("node_md_state", "Indicates the state of md-device.");
    for md in &mds {
        let dev = md.name.as_str();
        blocks.push(&[("device", dev)], md.blocks_total as f64);
        synced.push(&[("device", dev)], md.blocks_synced as f64);
        for (s, v) in [
            ("active", md.disks_active),
            ("failed", md.disks_failed),
            ("spare", md.disks_spare),
        ] {
            disks.push(&[("device", dev), ("state", s)], v as f64);
        }
        required.push(&[("device", dev)], md.disks_total as f64);
        // Label values in output (sorted) order, with procfs' activity state for each.
        for (label, activity) in [
            ("active", "active"),
            ("check", "checking"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
        ] {
            let v = if md.state == activity { 1.0 } else { 0.0 };
            state.push(&[("device", dev), ("state", label)], v);
        }
    }
    vec![blocks, synced, disks, required, state]
}

/// One array of `/sys/block/md*/md`, what node_exporter 1.12 exports of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mdraid {
    pub device: String,
    /// `raid_disks`; `None` when not applicable or unreadable as a count.
    pub disks: Option<u64>,
    /// `degraded` (raid1, 4, 5, 6, 10), else 0.
    pub degraded: u64,
}

/// `raid_disks` as procfs reads it: a plain count, or the first number of a reshape's
/// `current (previous)`; `None` otherwise.
pub fn parse_raid_disks(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(v) = t.parse() {
        return Some(v);
    }
    t.split_once(' ').and_then(|(first, _)| first.parse().ok())
}

fn sys_text(path: &std::path::Path) -> Result<String, CollectError> {
    super::fsio::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| CollectError::io(path, e))
}

fn sys_uint(path: &std::path::Path) -> Result<u64, CollectError> {
    let t = sys_text(path)?;
    t.parse()
        .map_err(|_| CollectError::parse(path, format!("not an unsigned integer: {t:?}")))
}

/// Reads every `<sysfs>/block/md*/md` as procfs' `Mdraids` (names sorted).
pub fn read_mdraids(paths: &Paths) -> Result<Vec<Mdraid>, CollectError> {
    let block = paths.sys("block");
    // procfs globs `block/md*/md`: no directory, no match, no error.
    if !crate::collector::is_dir(&block) {
        return Ok(Vec::new());
    }
    let names = super::sorted_names(&block)?;
    let mut out = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with("md")) {
        let dir = block.join(&name).join("md");
        if !crate::collector::is_dir(&dir) {
            continue;
        }
        let level = sys_text(&dir.join("level"))?;
        sys_text(&dir.join("array_state"))?;
        sys_text(&dir.join("metadata_version"))?;
        let disks = match level.as_str() {
            "container" | "imsm" | "ddf" | "" => None,
            _ => parse_raid_disks(&sys_text(&dir.join("raid_disks"))?),
        };
        sys_text(&dir.join("uuid"))?;
        for comp in super::sorted_names(&dir)?
            .into_iter()
            .filter(|n| n.starts_with("dev-"))
        {
            sys_text(&dir.join(comp).join("state"))?;
        }
        if matches!(
            level.as_str(),
            "raid0" | "raid4" | "raid5" | "raid6" | "raid10"
        ) {
            sys_uint(&dir.join("chunk_size"))?;
        }
        let mut degraded = 0;
        if matches!(
            level.as_str(),
            "raid1" | "raid4" | "raid5" | "raid6" | "raid10"
        ) {
            degraded = sys_uint(&dir.join("degraded"))?;
            sys_text(&dir.join("sync_action"))?;
            let completed_path = dir.join("sync_completed");
            let completed = sys_text(&completed_path)?;
            if completed != "none" {
                let ok = completed
                    .split_once(" / ")
                    .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
                if !ok {
                    return Err(CollectError::parse(
                        &completed_path,
                        format!("not 'a / b': {completed:?}"),
                    ));
                }
            }
        }
        out.push(Mdraid {
            device: name,
            disks,
            degraded,
        });
    }
    Ok(out)
}

/// `node_md_raid_disks` and `node_md_degraded` (node_exporter 1.12).
pub fn mdraid_families(mdraids: &[Mdraid]) -> [MetricFamily; 2] {
    let mut disks = MetricFamily::gauge("node_md_raid_disks", "Number of raid disks on device.");
    let mut degraded =
        MetricFamily::gauge("node_md_degraded", "Number of degraded disks on device.");
    for m in mdraids {
        if let Some(d) = m.disks {
            disks.push(&[("device", m.device.as_str())], d as f64);
        }
        degraded.push(&[("device", m.device.as_str())], m.degraded as f64);
    }
    [degraded, disks]
}

struct Mdadm;

impl Collector for Mdadm {
    fn name(&self) -> &'static str {
        "mdadm"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("mdstat");
        let mds = read_parsed(&path, parse_mdstat).map_err(CollectError::absent_is_no_data)?;
        let mut fams = families(mds);
        // 1.12 reads sysfs after sending the mdstat families: an error keeps them.
        match read_mdraids(paths) {
            Ok(m) => fams.extend(mdraid_families(&m)),
            Err(e) => return Err(CollectError::partial(fams, e.absent_is_no_data())),
        }
        fams.retain(|f| !f.samples.is_empty());
        fams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(fams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture_text, procfs, raw};

    /// Our output for a fixture tree equals node_exporter 1.5's, byte for byte.
    fn golden(dir: &str) {
        let fams = Mdadm
            .collect(&procfs("storage", &format!("{dir}/proc")))
            .expect("collects");
        assert_golden(raw(&fams), "storage", &format!("{dir}/expected.txt"));
    }

    #[test]
    fn matches_node_exporter() {
        golden("mdadm");
        golden("mdadm-idle");
    }

    #[test]
    fn parsed_values() {
        let text = fixture_text("storage", "mdadm/proc/mdstat");
        let mds = parse_mdstat(&text).expect("parses");
        assert_eq!(mds.len(), 15);
        let md6 = mds.iter().find(|m| m.name == "md6").expect("md6");
        assert_eq!(
            *md6,
            MdStat {
                name: "md6".into(),
                state: "recovering".into(),
                disks_active: 1,
                disks_total: 2,
                disks_failed: 1,
                disks_spare: 1,
                blocks_total: 195_310_144,
                blocks_synced: 16_775_552,
            }
        );
        let md201 = mds.iter().find(|m| m.name == "md201").expect("md201");
        assert_eq!(md201.state, "checking");
        assert_eq!(md201.blocks_synced, 114_176);
        let md120 = mds.iter().find(|m| m.name == "md120").expect("linear");
        assert_eq!((md120.disks_active, md120.disks_total), (2, 2));
    }

    #[test]
    fn tab_led_lines_and_errors() {
        let delayed = "Personalities : [raid1]\nmd9 : active raid1 sdc2[2] sdd2[3] sdb2[1] sda2[0]\n      523968 blocks super 1.2 [4/4] [UUUU]\n\tresync=DELAYED\n\nunused devices: <none>\n";
        let mds = parse_mdstat(delayed).expect("parses");
        assert_eq!(mds[0].state, "resyncing");
        assert_eq!(mds[0].blocks_synced, 0);
        let auto_ro = "md11 : active (auto-read-only) raid1 sdb2[0] sdc2[1]\n      4190208 blocks super 1.2 [2/2] [UU]\n      resync=PENDING\n\n";
        let mds = parse_mdstat(auto_ro).expect("parses");
        assert_eq!(mds[0].state, "resyncing");
        // Too few lines after a device line.
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n      1 blocks [1/1] [U]\n").is_err());
        // A garbled status line.
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n      x blocks\n\n\n").is_err());
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n      1 blocks\n\n\n").is_err());
        // A recovery line without speed.
        assert!(parse_mdstat(
            "md0 : active raid1 sda[0]\n      8 blocks [1/1] [U]\n      recovery = 1.0% (1/8) finish=1.0min\n\n"
        )
        .is_err());
        assert!(parse_mdstat("md0 :\n\n\n\n").is_err());
    }

    /// node_exporter 1.12's fixture tree: `node_md_raid_disks` and `node_md_degraded` as its
    /// e2e output (`md5` and `md6` degraded by one, raid0's `md0` 0).
    #[test]
    fn mdraids_node_exporter_112() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (md, level, disks, degraded) in [
            ("md0", "raid0", "2", None),
            ("md5", "raid5", "3", Some("1")),
            ("md7", "raid1", "11 (10)", Some("0")),
            ("md8", "container", "", None),
        ] {
            let d = dir.path().join("block").join(md).join("md");
            std::fs::create_dir_all(d.join("dev-sda")).expect("mkdir");
            for (f, v) in [
                ("level", level),
                ("array_state", "clean"),
                ("metadata_version", "1.2"),
                ("raid_disks", disks),
                ("uuid", "u"),
                ("chunk_size", "524288"),
                ("sync_action", "idle"),
                ("sync_completed", "none"),
                ("dev-sda/state", "in_sync"),
            ] {
                std::fs::write(d.join(f), format!("{v}\n")).expect("write");
            }
            if let Some(v) = degraded {
                std::fs::write(d.join("degraded"), v).expect("write");
            }
        }
        let paths = Paths {
            sysfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let m = read_mdraids(&paths).expect("reads");
        let got: Vec<(&str, Option<u64>, u64)> = m
            .iter()
            .map(|m| (m.device.as_str(), m.disks, m.degraded))
            .collect();
        assert_eq!(
            got,
            [
                ("md0", Some(2), 0),
                ("md5", Some(3), 1),
                ("md7", Some(11), 0),
                ("md8", None, 0)
            ]
        );
        // A raid5 without `degraded` fails, as procfs.
        std::fs::remove_file(dir.path().join("block/md5/md/degraded")).expect("rm");
        assert!(read_mdraids(&paths).is_err());
        assert_eq!(parse_raid_disks("x"), None);
    }

    #[test]
    fn absent_source_fails() {
        assert!(Mdadm.collect(&procfs("storage", "nowhere/proc")).is_err());
    }
}
