//! `nfs` collector: node_exporter 1.12's `nfs_linux.go` over prometheus/procfs' parser of
//! `/proc/net/rpc/nfs` (the NFS client's RPC statistics).
//!
//! Families: `node_nfs_packets_total{protocol}` (udp, tcp), `node_nfs_connections_total`,
//! `node_nfs_rpcs_total`, `node_nfs_rpc_retransmissions_total`,
//! `node_nfs_rpc_authentication_refreshes_total` and `node_nfs_requests_total{method,proto}`
//! for every NFSv2 (18), v3 (22) and v4 (59) client procedure procfs knows, named as procfs'
//! struct fields. A line the file lacks reports zeros, as node_exporter does.
//!
//! Without `/proc/net/rpc/nfs` (no NFS client module) the collector fails, as node_exporter's
//! `ErrNoData` does (`node_scrape_collector_success 0`).
//!
//! node_exporter 1.12 semantics: procfs (since 0.9) reads the NFSv4 column 45 as
//! `GetDeviceInfo` and 46 as `LayoutGet`, the reverse of the kernel's table and of 1.5; we
//! report them as 1.12 does.
//!
//! Deviation: a line procfs does not know is skipped; procfs fails the whole file.

use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Nfs)
}

/// The lines of a `/proc/net/rpc/nfs{,d}` file: a key and its numbers. `keep` says which keys
/// to parse (others are skipped); `th` keeps only its first two numbers (the rest are
/// fractional histogram buckets), as procfs does.
pub(super) fn parse_lines<'a>(
    text: &'a str,
    keep: &[&str],
) -> Result<Vec<(&'a str, Vec<u64>)>, String> {
    let mut out = Vec::with_capacity(keep.len());
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(_)) = (parts.next(), line.split_ascii_whitespace().nth(1)) else {
            return Err(format!("invalid metric line {line:?}"));
        };
        if !keep.contains(&key) {
            continue;
        }
        let take = if key == "th" { 2 } else { usize::MAX };
        let values: Vec<u64> = parts
            .take(take)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("bad number {v:?} in line {line:?}"))
            })
            .collect::<Result<_, _>>()?;
        if key == "th" && values.len() < 2 {
            return Err(format!("invalid th metric line {line:?}"));
        }
        out.push((key, values));
    }
    Ok(out)
}

/// Checks a fixed-length line (`net`, `rpc`, ...).
pub(super) fn fixed<'a>(key: &str, v: &'a [u64], n: usize) -> Result<&'a [u64], String> {
    if v.len() == n {
        Ok(v)
    } else {
        Err(format!("invalid {key} line {v:?}"))
    }
}

/// Checks a `procN` line: a count, then exactly that many numbers, at least `min` of them.
pub(super) fn counted<'a>(key: &str, v: &'a [u64], min: usize) -> Result<&'a [u64], String> {
    match v.split_first() {
        Some((&n, rest)) if rest.len() as u64 == n && rest.len() >= min => Ok(rest),
        _ => Err(format!("invalid {key} line {v:?}")),
    }
}

/// NFSv2 procedures, in `/proc` order (procfs' `V2Stats` fields).
pub(super) const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

/// NFSv3 procedures, in `/proc` order (procfs' `V3Stats` fields).
pub(super) const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

/// NFSv4 client operations, in `/proc` order (procfs' `ClientV4Stats` fields).
const V4: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    // prometheus/procfs (node_exporter 1.12) reads column 45 as GetDeviceInfo and 46 as
    // LayoutGet (1.5's procfs had them the other way round, as the kernel's table does):
    // followed as 1.12 reports them.
    "GetDeviceInfo",
    "LayoutGet",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// What node_exporter reports from `/proc/net/rpc/nfs`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStats {
    /// `net`: packets, udp, tcp, tcp connections.
    pub net: [u64; 4],
    /// `rpc`: calls, retransmissions, authentication refreshes.
    pub rpc: [u64; 3],
    pub v2: [u64; 18],
    pub v3: [u64; 22],
    pub v4: [u64; 59],
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            net: [0; 4],
            rpc: [0; 3],
            v2: [0; 18],
            v3: [0; 22],
            v4: [0; 59],
        }
    }
}

/// Copies `src` into the start of `dst`, as far as both go.
pub(super) fn copy_into(dst: &mut [u64], src: &[u64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Parses `/proc/net/rpc/nfs` with procfs 0.8's checks.
pub fn parse_client(text: &str) -> Result<ClientStats, String> {
    let mut s = ClientStats::default();
    for (key, v) in parse_lines(text, &["net", "rpc", "proc2", "proc3", "proc4"])? {
        match key {
            "net" => copy_into(&mut s.net, fixed(key, &v, 4)?),
            "rpc" => copy_into(&mut s.rpc, fixed(key, &v, 3)?),
            "proc2" => copy_into(&mut s.v2, counted(key, &v, 18)?),
            "proc3" => copy_into(&mut s.v3, counted(key, &v, 22)?),
            // Older kernels print fewer v4 operations: the rest stay 0.
            _ => copy_into(&mut s.v4, counted(key, &v, 0)?),
        }
    }
    Ok(s)
}

/// Pushes `(method, proto)` samples, sorted by method then proto as node_exporter's output.
pub(super) fn push_requests(fam: &mut MetricFamily, mut rows: Vec<(&str, &'static str, u64)>) {
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (method, proto, v) in rows {
        fam.push(&[("method", method), ("proto", proto)], v as f64);
    }
}

pub fn families(s: &ClientStats) -> Vec<MetricFamily> {
    let mut requests = MetricFamily::counter(
        "node_nfs_requests_total",
        "Number of NFS procedures invoked.",
    );
    let mut rows = Vec::with_capacity(V2.len() + V3.len() + V4.len());
    rows.extend(V2.iter().zip(&s.v2).map(|(m, v)| (*m, "2", *v)));
    rows.extend(V3.iter().zip(&s.v3).map(|(m, v)| (*m, "3", *v)));
    rows.extend(V4.iter().zip(&s.v4).map(|(m, v)| (*m, "4", *v)));
    push_requests(&mut requests, rows);
    vec![
        MetricFamily::counter(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
        )
        .with(&[], s.net[3] as f64),
        MetricFamily::counter(
            "node_nfs_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
        )
        .with(&[("protocol", "tcp")], s.net[2] as f64)
        .with(&[("protocol", "udp")], s.net[1] as f64),
        requests,
        MetricFamily::counter(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
        )
        .with(&[], s.rpc[2] as f64),
        MetricFamily::counter(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
        )
        .with(&[], s.rpc[1] as f64),
        MetricFamily::counter("node_nfs_rpcs_total", "Total number of RPCs performed.")
            .with(&[], s.rpc[0] as f64),
    ]
}

struct Nfs;

impl Collector for Nfs {
    fn name(&self) -> &'static str {
        "nfs"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("net/rpc/nfs");
        let stats = read_parsed(&path, parse_client).map_err(CollectError::absent_is_no_data)?;
        Ok(families(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture_text, procfs, raw};

    #[test]
    fn matches_node_exporter() {
        let fams = Nfs
            .collect(&procfs("storage", "nfs/proc"))
            .expect("collects");
        // expected.txt is 1.5's output; 1.12's procfs swapped the GetDeviceInfo and LayoutGet
        // columns (its e2e-output.txt: GetDeviceInfo 1, LayoutGet 90).
        let want = fixture_text("storage", "nfs/expected.txt")
            .replace(
                "{method=\"GetDeviceInfo\",proto=\"4\"} 90",
                "{method=\"GetDeviceInfo\",proto=\"4\"} 1",
            )
            .replace(
                "{method=\"LayoutGet\",proto=\"4\"} 1",
                "{method=\"LayoutGet\",proto=\"4\"} 90",
            );
        assert_eq!(raw(&fams), want);
    }

    #[test]
    fn values_and_padding() {
        let text = fixture_text("storage", "nfs/proc/net/rpc/nfs");
        let s = parse_client(&text).expect("parses");
        assert_eq!(s.net, [70, 70, 69, 45]);
        assert_eq!(s.rpc, [1_218_785_755, 374_636, 1_218_815_394]);
        assert_eq!(s.v3[1], 1_061_909_262);
        // 48 v4 operations printed: the last 11 are padded with zeros.
        assert_eq!(s.v4[47], 0);
        assert_eq!(s.v4[46], 26);
        assert_eq!(s.v4[58], 0);
    }

    #[test]
    fn garbled_and_unknown() {
        assert!(parse_client("net 1 2 3\n").is_err());
        assert!(parse_client("rpc 1 2 x\n").is_err());
        assert!(parse_client("proc3 22 1 2\n").is_err());
        assert!(parse_client("proc2 3 1 2 3\n").is_err());
        assert!(parse_client("net\n").is_err());
        // An unknown line is skipped (procfs 0.8 would fail).
        let s = parse_client("net 1 2 3 4\nfuture 7 8\n").expect("parses");
        assert_eq!(s.net, [1, 2, 3, 4]);
        // Absent lines report zeros.
        assert_eq!(s.rpc, [0, 0, 0]);
    }

    #[test]
    fn absent_source_fails() {
        assert!(Nfs.collect(&procfs("storage", "nowhere/proc")).is_err());
    }

    #[test]
    fn live() {
        let p = Paths::default();
        let r = Nfs.collect(&p);
        assert_eq!(r.is_ok(), p.proc("net/rpc/nfs").exists());
    }
}
