//! `drm` collector (off by default, as in node_exporter 1.12): AMD GPUs from
//! `/sys/class/drm/card[0-9]/device/`, as node_exporter 1.12's `drm_linux.go` through
//! prometheus/procfs' `ClassDRMCardAMDGPUStats`: `node_drm_card_info{card,memory_vendor,
//! power_performance_level,unique_id,vendor="amd"} 1`, `node_drm_gpu_busy_percent` and the
//! GTT, VRAM and visible-VRAM sizes and use (`node_drm_memory_*_bytes`), per card.
//!
//! As procfs: a card whose `device/uevent` does not say `DRIVER=amdgpu` is skipped; an
//! unreadable `uevent` or `device` link fails the collector (`ENODATA` skips the card); an
//! attribute that cannot be read counts as 0 (or empty). Where procfs would dereference a nil
//! pointer (an attribute that is not a number: node_exporter panics), it is 0 here.

use std::path::Path;

use super::{fsio, glob_names, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// One AMD card.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Card {
    pub name: String,
    pub busy_percent: u64,
    pub gtt_size: u64,
    pub gtt_used: u64,
    pub vis_vram_size: u64,
    pub vis_vram_used: u64,
    pub vram_size: u64,
    pub vram_used: u64,
    pub vram_vendor: String,
    pub performance_level: String,
    pub unique_id: String,
}

/// `card` followed by one digit (procfs' glob `card[0-9]`).
fn is_card(name: &str) -> bool {
    name.strip_prefix("card")
        .is_some_and(|d| d.len() == 1 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn field(dev: &Path, name: &str) -> Option<String> {
    fsio::read_to_string(dev.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Go's `strconv.ParseUint(v, 0, 64)`: decimal, `0x` hex, `0o`/`0` octal, `0b` binary.
fn uint(v: Option<String>) -> u64 {
    let Some(v) = v else { return 0 };
    let v = v.replace('_', "");
    let parsed = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if let Some(b) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        u64::from_str_radix(b, 2)
    } else if let Some(o) = v.strip_prefix("0o").or_else(|| v.strip_prefix("0O")) {
        u64::from_str_radix(o, 8)
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(v.get(1..).unwrap_or_default(), 8)
    } else {
        v.parse()
    };
    parsed.unwrap_or(0)
}

/// Reads one card directory; `None` when it is not an amdgpu card or says `ENODATA`.
pub fn read_card(dir: &Path, name: &str) -> Result<Option<Card>, CollectError> {
    let dev = dir.join("device");
    let uevent = dev.join("uevent");
    let text = match fsio::read_to_string(&uevent) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
        Err(e) => return Err(CollectError::io(&uevent, e)),
    };
    if !text.contains("DRIVER=amdgpu") {
        return Ok(None);
    }
    // procfs resolves the `device` link (its name and parent are unused by the collector);
    // a card whose link is broken fails it.
    std::fs::canonicalize(&dev).map_err(|e| CollectError::io(&dev, e))?;
    Ok(Some(Card {
        name: name.to_string(),
        busy_percent: uint(field(&dev, "gpu_busy_percent")),
        gtt_size: uint(field(&dev, "mem_info_gtt_total")),
        gtt_used: uint(field(&dev, "mem_info_gtt_used")),
        vis_vram_size: uint(field(&dev, "mem_info_vis_vram_total")),
        vis_vram_used: uint(field(&dev, "mem_info_vis_vram_used")),
        vram_size: uint(field(&dev, "mem_info_vram_total")),
        vram_used: uint(field(&dev, "mem_info_vram_used")),
        vram_vendor: field(&dev, "mem_info_vram_vendor").unwrap_or_default(),
        performance_level: field(&dev, "power_dpm_force_performance_level").unwrap_or_default(),
        unique_id: field(&dev, "unique_id").unwrap_or_default(),
    }))
}

/// A per-card gauge: name, HELP, value.
type Gauge = (&'static str, &'static str, fn(&Card) -> u64);

pub fn families(cards: &[Card]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge("node_drm_card_info", "Card information");
    let gauges: [Gauge; 7] = [
        (
            "node_drm_gpu_busy_percent",
            "How busy the GPU is as a percentage.",
            |c| c.busy_percent,
        ),
        (
            "node_drm_memory_gtt_size_bytes",
            "The size of the graphics translation table (GTT) block in bytes.",
            |c| c.gtt_size,
        ),
        (
            "node_drm_memory_gtt_used_bytes",
            "The used amount of the graphics translation table (GTT) block in bytes.",
            |c| c.gtt_used,
        ),
        (
            "node_drm_memory_vis_vram_size_bytes",
            "The size of visible VRAM in bytes.",
            |c| c.vis_vram_size,
        ),
        (
            "node_drm_memory_vis_vram_used_bytes",
            "The used amount of visible VRAM in bytes.",
            |c| c.vis_vram_used,
        ),
        (
            "node_drm_memory_vram_size_bytes",
            "The size of VRAM in bytes.",
            |c| c.vram_size,
        ),
        (
            "node_drm_memory_vram_used_bytes",
            "The used amount of VRAM in bytes.",
            |c| c.vram_used,
        ),
    ];
    let mut out: Vec<MetricFamily> = Vec::new();
    for c in cards {
        info.push(
            &[
                ("card", c.name.as_str()),
                ("memory_vendor", c.vram_vendor.as_str()),
                ("power_performance_level", c.performance_level.as_str()),
                ("unique_id", c.unique_id.as_str()),
                ("vendor", "amd"),
            ],
            1.0,
        );
    }
    out.push(info);
    for (name, help, get) in gauges {
        let mut fam = MetricFamily::gauge(name, help);
        for c in cards {
            fam.push(&[("card", c.name.as_str())], get(c) as f64);
        }
        out.push(fam);
    }
    out
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Drm)
}

pub struct Drm;

impl Collector for Drm {
    fn name(&self) -> &'static str {
        "drm"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let class = paths.sys("class/drm");
        let mut cards = Vec::new();
        for name in glob_names(&class, is_card) {
            if let Some(c) = read_card(&class.join(&name), &name)? {
                cards.push(c);
            }
        }
        Ok(families(&cards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::sysfs;

    #[test]
    fn procfs_fixture() {
        let fams = Drm.collect(&sysfs("drm", "procfs/sys")).expect("collects");
        let text = crate::collectors::testutil::render(fams);
        for want in [
            "node_drm_card_info{card=\"card0\",memory_vendor=\"samsung\",power_performance_level=\"manual\",unique_id=\"0123456789abcdef\",vendor=\"amd\"} 1",
            "node_drm_gpu_busy_percent{card=\"card0\"} 4",
            "node_drm_memory_gtt_size_bytes{card=\"card0\"} 8.573157376e+09",
            "node_drm_memory_gtt_used_bytes{card=\"card0\"} 1.44560128e+08",
            "node_drm_memory_vis_vram_size_bytes{card=\"card0\"} 8.573157376e+09",
            "node_drm_memory_vis_vram_used_bytes{card=\"card0\"} 1.490378752e+09",
            "node_drm_memory_vram_size_bytes{card=\"card0\"} 8.573157376e+09",
            "node_drm_memory_vram_used_bytes{card=\"card0\"} 1.490378752e+09",
            "# HELP node_drm_card_info Card information",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
        }
        // card1 is an i915 card, card0-DP-1 a connector.
        assert!(!text.contains("card1") && !text.contains("DP-1"), "{text}");
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 8);
    }

    #[test]
    fn numbers_and_names() {
        assert!(is_card("card0") && is_card("card9"));
        assert!(!is_card("card10") && !is_card("card0-DP-1") && !is_card("renderD128"));
        assert_eq!(uint(Some("0x10".into())), 16);
        assert_eq!(uint(Some("010".into())), 8);
        assert_eq!(uint(Some("12".into())), 12);
        assert_eq!(uint(Some("x".into())), 0);
        assert_eq!(uint(None), 0);
    }

    #[test]
    fn absent_class_is_empty() {
        let fams = Drm.collect(&sysfs("drm", "nowhere")).expect("no cards");
        assert!(fams.iter().all(|f| f.samples.is_empty()));
    }
}
