//! `drm` collector: node_exporter 1.12's `drm_linux.go` over prometheus/procfs'
//! `sysfs.ClassDRMCardAMDGPUStats` (off by default, as there). Only AMD GPUs (`amdgpu`), as
//! upstream.
//!
//! For each `class/drm/card<D>` (one digit: procfs' glob `card[0-9]`) whose `device/uevent`
//! (its first 128 bytes, procfs' `SysReadFile`) contains `DRIVER=amdgpu`:
//! `node_drm_card_info{card,memory_vendor,power_performance_level,unique_id,vendor="amd"} 1`
//! and `node_drm_gpu_busy_percent`, `node_drm_memory_{gtt,vram,vis_vram}_{size,used}_bytes`
//! from `device/gpu_busy_percent`, `mem_info_*`, `mem_info_vram_vendor`,
//! `power_dpm_force_performance_level` and `unique_id`. A missing attribute reads as 0 (or
//! empty), as procfs.
//!
//! Errors, as procfs: `device/uevent` unreadable fails the collector, except ENODATA (the card
//! is skipped); so does a `device` link that does not resolve. One difference: an attribute
//! that is present but not an unsigned integer (Go's `strconv.ParseUint` with base 0) makes
//! node_exporter dereference a nil pointer and crash; here it fails the collector, naming the
//! file. No `class/drm` directory: no sample, success 1 (the glob matches nothing).

use std::path::Path;

use super::{glob_names, CollectError, Collector, Options, Paths};
use crate::collectors::nvme::sys_read_file;
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Drm)
}

/// One amdgpu card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    pub name: String,
    pub gpu_busy_percent: u64,
    pub gtt_size: u64,
    pub gtt_used: u64,
    pub vis_vram_size: u64,
    pub vis_vram_used: u64,
    pub vram_size: u64,
    pub vram_used: u64,
    pub vram_vendor: String,
    pub power_performance_level: String,
    pub unique_id: String,
}

/// Go's `strconv.ParseUint(s, 0, 64)`: an optional `0x`/`0o`/`0b` prefix (or a leading `0`
/// for octal), underscores allowed between digits.
pub fn parse_uint_base0(s: &str) -> Option<u64> {
    let (radix, digits, prefixed) = if let Some(r) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (16, r, true)
    } else if let Some(r) = s.strip_prefix("0b").or(s.strip_prefix("0B")) {
        (2, r, true)
    } else if let Some(r) = s.strip_prefix("0o").or(s.strip_prefix("0O")) {
        (8, r, true)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, s.get(1..)?, true)
    } else {
        (10, s, false)
    };
    // Underscores: only between digits, or right after a base prefix.
    let bytes = digits.as_bytes();
    let mut prev_us = !prefixed;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            if prev_us || i + 1 == bytes.len() {
                return None;
            }
            prev_us = true;
        } else {
            prev_us = false;
        }
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || clean.starts_with('+') {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

/// `card<one digit>`.
fn is_card(name: &str) -> bool {
    name.strip_prefix("card")
        .is_some_and(|d| d.len() == 1 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn read_card(dir: &Path, name: &str) -> Result<Option<Card>, CollectError> {
    let dev = dir.join("device");
    let uevent_path = dev.join("uevent");
    let uevent = match sys_read_file(&uevent_path) {
        Ok(u) => u,
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
        Err(e) => return Err(CollectError::io(&uevent_path, e)),
    };
    if !uevent.contains("DRIVER=amdgpu") {
        return Ok(None);
    }
    // procfs resolves the `device` link (its name and parent's are not exported).
    std::fs::canonicalize(&dev).map_err(|e| CollectError::io(&dev, e))?;
    let text = |field: &str| sys_read_file(&dev.join(field)).ok();
    let num = |field: &str| -> Result<u64, CollectError> {
        match text(field) {
            None => Ok(0),
            Some(v) => parse_uint_base0(&v).ok_or_else(|| {
                CollectError::parse(&dev.join(field), format!("not an unsigned integer: {v:?}"))
            }),
        }
    };
    Ok(Some(Card {
        name: name.to_string(),
        gpu_busy_percent: num("gpu_busy_percent")?,
        gtt_size: num("mem_info_gtt_total")?,
        gtt_used: num("mem_info_gtt_used")?,
        vis_vram_size: num("mem_info_vis_vram_total")?,
        vis_vram_used: num("mem_info_vis_vram_used")?,
        vram_size: num("mem_info_vram_total")?,
        vram_used: num("mem_info_vram_used")?,
        vram_vendor: text("mem_info_vram_vendor").unwrap_or_default(),
        power_performance_level: text("power_dpm_force_performance_level").unwrap_or_default(),
        unique_id: text("unique_id").unwrap_or_default(),
    }))
}

fn read_cards(class: &Path) -> Result<Vec<Card>, CollectError> {
    // Go's filepath.Glob: an unreadable or absent directory matches nothing.
    let names = glob_names(class, is_card);
    let mut out = Vec::new();
    for name in names {
        if let Some(card) = read_card(&class.join(&name), &name)? {
            out.push(card);
        }
    }
    Ok(out)
}

/// The families, in node_exporter's order of emission.
pub fn families(cards: &[Card]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge("node_drm_card_info", "Card information");
    let mut busy = MetricFamily::gauge(
        "node_drm_gpu_busy_percent",
        "How busy the GPU is as a percentage.",
    );
    let mut gtt_size = MetricFamily::gauge(
        "node_drm_memory_gtt_size_bytes",
        "The size of the graphics translation table (GTT) block in bytes.",
    );
    let mut gtt_used = MetricFamily::gauge(
        "node_drm_memory_gtt_used_bytes",
        "The used amount of the graphics translation table (GTT) block in bytes.",
    );
    let mut vram_size = MetricFamily::gauge(
        "node_drm_memory_vram_size_bytes",
        "The size of VRAM in bytes.",
    );
    let mut vram_used = MetricFamily::gauge(
        "node_drm_memory_vram_used_bytes",
        "The used amount of VRAM in bytes.",
    );
    let mut vis_size = MetricFamily::gauge(
        "node_drm_memory_vis_vram_size_bytes",
        "The size of visible VRAM in bytes.",
    );
    let mut vis_used = MetricFamily::gauge(
        "node_drm_memory_vis_vram_used_bytes",
        "The used amount of visible VRAM in bytes.",
    );
    for c in cards {
        info.push(
            &[
                ("card", &c.name),
                ("memory_vendor", &c.vram_vendor),
                ("power_performance_level", &c.power_performance_level),
                ("unique_id", &c.unique_id),
                ("vendor", "amd"),
            ],
            1.0,
        );
        let card = [("card", c.name.as_str())];
        busy.push(&card, c.gpu_busy_percent as f64);
        gtt_size.push(&card, c.gtt_size as f64);
        gtt_used.push(&card, c.gtt_used as f64);
        vram_size.push(&card, c.vram_size as f64);
        vram_used.push(&card, c.vram_used as f64);
        vis_size.push(&card, c.vis_vram_size as f64);
        vis_used.push(&card, c.vis_vram_used as f64);
    }
    vec![
        info, busy, gtt_size, gtt_used, vram_size, vram_used, vis_size, vis_used,
    ]
}

struct Drm;

impl Collector for Drm {
    fn name(&self) -> &'static str {
        "drm"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(families(&read_cards(&paths.sys("class/drm"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture_copy, render, sysfs, sysfs_at};

    #[test]
    fn matches_node_exporter_112() {
        let fams = Drm.collect(&sysfs("ne112", "drm/sys")).expect("collects");
        assert_golden(render(fams), "ne112", "drm/expected.txt");
    }

    #[test]
    fn go_parse_uint_base0() {
        for (s, v) in [
            ("4", Some(4)),
            ("0x10", Some(16)),
            ("0X1f", Some(31)),
            ("010", Some(8)),
            ("0o10", Some(8)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("_1", None),
            ("0x_10", Some(16)),
            ("0_10", Some(8)),
            ("0", Some(0)),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("18446744073709551616", None),
            ("1__0", None),
            ("0x", None),
        ] {
            assert_eq!(parse_uint_base0(s), v, "{s:?}");
        }
    }

    #[test]
    fn only_single_digit_cards() {
        assert!(is_card("card0"));
        assert!(!is_card("card10"));
        assert!(!is_card("card0-DP-1"));
        assert!(!is_card("renderD128"));
    }

    #[test]
    fn no_drm_class_is_success_without_samples() {
        let fams = Drm
            .collect(&sysfs_at(std::env::temp_dir().join("drm-test-no-such-sys")))
            .expect("collects");
        assert!(fams.iter().all(|f| f.samples.is_empty()));
    }

    #[test]
    fn a_bad_number_fails_naming_the_file() {
        let tmp = fixture_copy("ne112", "drm/sys");
        let dir = tmp.path().to_path_buf();
        std::fs::write(
            dir.join("class/drm/card0/device/gpu_busy_percent"),
            "busy\n",
        )
        .expect("write");
        let err = Drm.collect(&sysfs_at(dir)).expect_err("bad number");
        assert!(format!("{err}").contains("gpu_busy_percent"), "{err}");
    }
}
