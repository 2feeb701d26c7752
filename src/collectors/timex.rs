//! `timex` collector: the kernel clock discipline from `adjtimex(2)`, as node_exporter 1.5's
//! `timex.go` (`node_timex_*`).
//!
//! The values come from one read-only `adjtimex` system call (`modes = 0`: nothing is changed),
//! made directly rather than through `libc::adjtimex`: glibc 2.36 implements that function as
//! `clock_adjtime(CLOCK_REALTIME, …)` (seen with `strace`), other C libraries as `adjtimex`;
//! the raw call keeps the seccomp policy to the one entry **`adjtimex`** whatever the libc. A
//! unit with `ProtectClock=yes` filters it: the call then fails with `EPERM`, which
//! node_exporter reports as "no data" (`node_scrape_collector_success 0`), as here.
//!
//! Offsets and jitter are in microseconds unless the status has `STA_NANO`; frequency values
//! are in ppm with a 16-bit fractional part (`NOTES` of adjtimex(2)).

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// `adjtimex`'s return value meaning "clock not synchronized".
const TIME_ERROR: i32 = 5;
/// Status bit: offsets and jitter in nanoseconds.
const STA_NANO: i64 = 0x2000;
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

/// The fields of `struct timex` node_exporter exports, widened to `i64`, plus the call's
/// return value (the clock state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub state: i32,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub status: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i64,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i64,
}

/// Reads the clock state without changing it.
fn read() -> Result<Snapshot, std::io::Error> {
    // SAFETY: `libc::timex` is a plain C struct of integers (and a `timeval`), for which the
    // all-zero bit pattern is a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: `tx` is a valid, exclusively borrowed `struct timex` that outlives the call; with
    // `modes == 0` the kernel only writes the current values into it.
    let ret = unsafe { libc::syscall(libc::SYS_adjtimex, &mut tx as *mut libc::timex) };
    let state = i32::try_from(ret).unwrap_or(-1);
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Snapshot {
        state,
        offset: tx.offset as i64,
        freq: tx.freq as i64,
        maxerror: tx.maxerror as i64,
        esterror: tx.esterror as i64,
        status: tx.status as i64,
        constant: tx.constant as i64,
        tick: tx.tick as i64,
        ppsfreq: tx.ppsfreq as i64,
        jitter: tx.jitter as i64,
        shift: tx.shift as i64,
        stabil: tx.stabil as i64,
        jitcnt: tx.jitcnt as i64,
        calcnt: tx.calcnt as i64,
        errcnt: tx.errcnt as i64,
        stbcnt: tx.stbcnt as i64,
        tai: tx.tai as i64,
    })
}

/// The families for one reading, with node_exporter's names, units and help texts.
pub fn families(s: &Snapshot) -> Vec<MetricFamily> {
    let divisor = if s.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let g = |name: &'static str, help: &'static str, v: f64| {
        MetricFamily::gauge(name, help).with(&[], v)
    };
    let c = |name: &'static str, help: &'static str, v: f64| {
        MetricFamily::counter(name, help).with(&[], v)
    };
    vec![
        g(
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            if s.state == TIME_ERROR { 0.0 } else { 1.0 },
        ),
        g(
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            s.offset as f64 / divisor,
        ),
        g(
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + s.freq as f64 / PPM16FRAC,
        ),
        g(
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            s.maxerror as f64 / 1e6,
        ),
        g(
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            s.esterror as f64 / 1e6,
        ),
        g(
            "node_timex_status",
            "Value of the status array bits.",
            s.status as f64,
        ),
        g(
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            s.constant as f64,
        ),
        g(
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            s.tick as f64 / 1e6,
        ),
        g(
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            s.ppsfreq as f64 / PPM16FRAC,
        ),
        g(
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            s.jitter as f64 / divisor,
        ),
        g(
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            s.shift as f64,
        ),
        g(
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            s.stabil as f64 / PPM16FRAC,
        ),
        c(
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            s.jitcnt as f64,
        ),
        c(
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            s.calcnt as f64,
        ),
        c(
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            s.errcnt as f64,
        ),
        c(
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            s.stbcnt as f64,
        ),
        g(
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            s.tai as f64,
        ),
    ]
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Timex)
}

struct Timex;

impl Collector for Timex {
    fn name(&self) -> &'static str {
        "timex"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        match read() {
            Ok(s) => Ok(families(&s)),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(CollectError::NoData {
                what: format!(
                    "not collecting timex metrics (adjtimex: {e}; ProtectClock= or a seccomp filter?)"
                ),
            }),
            Err(e) => Err(CollectError::Other(format!(
                "failed to retrieve adjtimex stats: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(f: &[MetricFamily], name: &str) -> f64 {
        f.iter()
            .find(|x| x.name == name)
            .map(|x| x.samples[0].value)
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn unsynchronised_vm() {
        // What adjtimex returned on this VM (no NTP daemon): TIME_ERROR, STA_UNSYNC (0x40),
        // maxerror/esterror 16 s, tick 10000 µs, constant 2 — the values node_exporter 1.5
        // printed here for the same call.
        let s = Snapshot {
            state: 5,
            status: 64,
            maxerror: 16_000_000,
            esterror: 16_000_000,
            constant: 2,
            tick: 10_000,
            ..Default::default()
        };
        let f = families(&s);
        assert_eq!(f.len(), 17);
        assert_eq!(value(&f, "node_timex_sync_status"), 0.0);
        assert_eq!(value(&f, "node_timex_status"), 64.0);
        assert_eq!(value(&f, "node_timex_maxerror_seconds"), 16.0);
        assert_eq!(value(&f, "node_timex_estimated_error_seconds"), 16.0);
        assert_eq!(value(&f, "node_timex_loop_time_constant"), 2.0);
        assert_eq!(value(&f, "node_timex_tick_seconds"), 0.01);
        assert_eq!(value(&f, "node_timex_frequency_adjustment_ratio"), 1.0);
        let counters: Vec<&str> = f
            .iter()
            .filter(|x| x.kind == crate::exposition::MetricType::Counter)
            .map(|x| &*x.name)
            .collect();
        assert_eq!(
            counters,
            vec![
                "node_timex_pps_jitter_total",
                "node_timex_pps_calibration_total",
                "node_timex_pps_error_total",
                "node_timex_pps_stability_exceeded_total",
            ]
        );
    }

    #[test]
    fn synchronised_nano() {
        // An NTP-disciplined clock: STA_PLL|STA_NANO, offset 1.5 ms in ns, freq -12.5 ppm.
        let s = Snapshot {
            state: 0,
            status: 0x2001,
            offset: 1_500_000,
            freq: -(12.5 * 65536.0) as i64,
            jitter: 2_000,
            tai: 37,
            ..Default::default()
        };
        let f = families(&s);
        assert_eq!(value(&f, "node_timex_sync_status"), 1.0);
        assert_eq!(value(&f, "node_timex_offset_seconds"), 0.0015);
        assert_eq!(
            value(&f, "node_timex_frequency_adjustment_ratio"),
            1.0 - 12.5e-6
        );
        assert_eq!(value(&f, "node_timex_pps_jitter_seconds"), 2e-6);
        assert_eq!(value(&f, "node_timex_tai_offset_seconds"), 37.0);
    }

    #[test]
    fn live() {
        // Unprivileged read-only adjtimex works everywhere unless a filter forbids it.
        let f = Timex
            .collect(&Paths::default())
            .expect("adjtimex works here");
        assert!(value(&f, "node_timex_tick_seconds") > 0.0);
    }
}
