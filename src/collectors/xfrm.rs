//! `xfrm` collector: node_exporter 1.12's `xfrm.go` over procfs 0.21's `NewXfrmStat` (off by
//! default, as in 1.12): the 28 IPsec (XFRM) error counters of `/proc/net/xfrm_stat` as
//! `node_xfrm_<name>_packets_total`, e.g. `XfrmInNoStates` as
//! `node_xfrm_in_no_states_packets_total`. A counter the kernel does not print is 0, as in
//! procfs; a name procfs does not know is ignored.
//!
//! As procfs, every line must be exactly a name and an integer, or the collector fails (all or
//! nothing); a missing file (no `CONFIG_XFRM_STATISTICS`) is an error (`success 0`), not "no
//! data", as in 1.12.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Xfrm)
}

/// The kernel's name, node_exporter's metric name (without `node_xfrm_`) and HELP text, in
/// node_exporter's order.
pub const COUNTERS: [(&str, &str, &str); 28] = [
    (
        "XfrmInError",
        "in_error_packets_total",
        "All errors not matched by other",
    ),
    (
        "XfrmInBufferError",
        "in_buffer_error_packets_total",
        "No buffer is left",
    ),
    (
        "XfrmInHdrError",
        "in_hdr_error_packets_total",
        "Header error",
    ),
    (
        "XfrmInNoStates",
        "in_no_states_packets_total",
        "No state is found i.e. Either inbound SPI, address, or IPsec protocol at SA is wrong",
    ),
    (
        "XfrmInStateProtoError",
        "in_state_proto_error_packets_total",
        "Transformation protocol specific error e.g. SA key is wrong",
    ),
    (
        "XfrmInStateModeError",
        "in_state_mode_error_packets_total",
        "Transformation mode specific error",
    ),
    (
        "XfrmInStateSeqError",
        "in_state_seq_error_packets_total",
        "Sequence error i.e. Sequence number is out of window",
    ),
    (
        "XfrmInStateExpired",
        "in_state_expired_packets_total",
        "State is expired",
    ),
    (
        "XfrmInStateMismatch",
        "in_state_mismatch_packets_total",
        "State has mismatch option e.g. UDP encapsulation type is mismatch",
    ),
    (
        "XfrmInStateInvalid",
        "in_state_invalid_packets_total",
        "State is invalid",
    ),
    (
        "XfrmInTmplMismatch",
        "in_tmpl_mismatch_packets_total",
        "No matching template for states e.g. Inbound SAs are correct but SP rule is wrong",
    ),
    (
        "XfrmInNoPols",
        "in_no_pols_packets_total",
        "No policy is found for states e.g. Inbound SAs are correct but no SP is found",
    ),
    (
        "XfrmInPolBlock",
        "in_pol_block_packets_total",
        "Policy discards",
    ),
    (
        "XfrmInPolError",
        "in_pol_error_packets_total",
        "Policy error",
    ),
    (
        "XfrmOutError",
        "out_error_packets_total",
        "All errors which is not matched others",
    ),
    (
        "XfrmOutBundleGenError",
        "out_bundle_gen_error_packets_total",
        "Bundle generation error",
    ),
    (
        "XfrmOutBundleCheckError",
        "out_bundle_check_error_packets_total",
        "Bundle check error",
    ),
    (
        "XfrmOutNoStates",
        "out_no_states_packets_total",
        "No state is found",
    ),
    (
        "XfrmOutStateProtoError",
        "out_state_proto_error_packets_total",
        "Transformation protocol specific error",
    ),
    (
        "XfrmOutStateModeError",
        "out_state_mode_error_packets_total",
        "Transformation mode specific error",
    ),
    (
        "XfrmOutStateSeqError",
        "out_state_seq_error_packets_total",
        "Sequence error i.e. Sequence number overflow",
    ),
    (
        "XfrmOutStateExpired",
        "out_state_expired_packets_total",
        "State is expired",
    ),
    (
        "XfrmOutPolBlock",
        "out_pol_block_packets_total",
        "Policy discards",
    ),
    (
        "XfrmOutPolDead",
        "out_pol_dead_packets_total",
        "Policy is dead",
    ),
    (
        "XfrmOutPolError",
        "out_pol_error_packets_total",
        "Policy error",
    ),
    (
        "XfrmFwdHdrError",
        "fwd_hdr_error_packets_total",
        "Forward routing of a packet is not allowed",
    ),
    (
        "XfrmOutStateInvalid",
        "out_state_invalid_packets_total",
        "State is invalid, perhaps expired",
    ),
    (
        "XfrmAcquireError",
        "acquire_error_packets_total",
        "State hasn\u{2019}t been fully acquired before use",
    ),
];

/// Parses `/proc/net/xfrm_stat` as procfs: the value of each of [`COUNTERS`], in that order.
pub fn parse_xfrm_stat(text: &str) -> Result<[i64; 28], String> {
    let mut out = [0i64; 28];
    for line in text.lines() {
        let &[name, value] = line.split_whitespace().collect::<Vec<_>>().as_slice() else {
            return Err(format!("malformed line {line:?}"));
        };
        let value: i64 = value
            .parse()
            .map_err(|_| format!("invalid value in line {line:?}"))?;
        if let Some(slot) = COUNTERS
            .iter()
            .position(|(k, _, _)| *k == name)
            .and_then(|i| out.get_mut(i))
        {
            *slot = value;
        }
    }
    Ok(out)
}

pub fn families(values: &[i64; 28]) -> Vec<MetricFamily> {
    COUNTERS
        .iter()
        .zip(values)
        .map(|((_, name, help), v)| {
            MetricFamily::counter(format!("node_xfrm_{name}"), *help).with(&[], *v as f64)
        })
        .collect()
}

pub struct Xfrm;

impl Collector for Xfrm {
    fn name(&self) -> &'static str {
        "xfrm"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let values = read_parsed(&paths.proc("net/xfrm_stat"), parse_xfrm_stat)?;
        Ok(families(&values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{expected_1_12, lines, procfs, procfs_at};

    #[test]
    fn as_node_exporter_1_12_prints_the_e2e_fixture() {
        let fams = Xfrm
            .collect(&procfs("ne112", "kernel-stats/proc"))
            .expect("collects");
        let want = expected_1_12("node_xfrm_");
        assert_eq!(want.len(), 3 * 28);
        assert_eq!(lines::render(&lines::sorted(fams)), want);
    }

    #[test]
    fn parses_as_procfs() {
        let v = parse_xfrm_stat("XfrmInError 5\nXfrmUnknownNew 9\nXfrmAcquireError\t-2\n")
            .expect("parses");
        assert_eq!(v[0], 5);
        assert_eq!(v[27], -2);
        assert_eq!(
            v.iter().sum::<i64>(),
            3,
            "unknown names ignored, absent ones 0"
        );
        assert!(parse_xfrm_stat("XfrmInError 5 6\n").is_err());
        assert!(parse_xfrm_stat("XfrmInError\n").is_err());
        assert!(parse_xfrm_stat("XfrmInError x\n").is_err());
        assert!(
            parse_xfrm_stat("XfrmInError 1\n\n").is_err(),
            "an empty line"
        );
    }

    #[test]
    fn absent_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Xfrm.collect(&procfs_at(dir.path())).expect_err("absent");
        assert!(!e.is_no_data(), "{e}");
    }
}
