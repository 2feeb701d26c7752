//! `nfsd` collector: node_exporter 1.12's `nfsd_linux.go` over prometheus/procfs' parser of
//! `/proc/net/rpc/nfsd` (the kernel NFS server's statistics).
//!
//! Families: `node_nfsd_reply_cache_{hits,misses,nocache}_total`,
//! `node_nfsd_file_handles_stale_total`, `node_nfsd_disk_bytes_{read,written}_total`,
//! `node_nfsd_server_threads`, `node_nfsd_read_ahead_cache_size_blocks`,
//! `node_nfsd_read_ahead_cache_not_found_total`, `node_nfsd_packets_total{proto}`,
//! `node_nfsd_connections_total`, `node_nfsd_rpc_errors_total{error}`,
//! `node_nfsd_server_rpcs_total` and `node_nfsd_requests_total{method,proto}` (NFSv2 and v3
//! procedures without `Null`, NFSv4 operations, and 1.12's `WdelegGetattr` from the
//! `wdeleg_getattr` line of Linux 6.x). A line the file lacks (e.g. `ra`, gone from recent
//! kernels) reports zeros, as node_exporter does.
//!
//! Without `/proc/net/rpc/nfsd` (no NFS server module) the collector fails, as
//! node_exporter's `ErrNoData` does (`node_scrape_collector_success 0`).
//!
//! node_exporter 1.12 semantics, differing from 1.5:
//! - procfs 0.8 (1.5) mapped `proc4ops` without the `SETCLIENTID` and `SETCLIENTID_CONFIRM`
//!   slots, so 1.5 reported SETCLIENTID as `Verify`, SETCLIENTID_CONFIRM as `Write` and VERIFY
//!   as `RelLockOwner`. 1.12 follows the kernel's order (`include/linux/nfs4.h`) and exports
//!   `SetClientID` and `SetClientIDConfirm`; so do we.
//! - `wdeleg_getattr` (Linux 6.x) is `requests_total{method="WdelegGetattr",proto="4"}`
//!   (always present, 0 without the line); procfs 0.8 failed the whole file on it, so 1.5
//!   reported nothing on such kernels.
//!
//! Deviation: another line procfs does not know is skipped; procfs fails the whole file.

use super::nfs::{copy_into, counted, fixed, parse_lines, push_requests, V2, V3};
use super::{read_parsed, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Nfsd)
}

/// NFSv4 server operations, in `/proc` order from `OP_ACCESS` (procfs' `V4Ops` fields from the
/// fourth on; the first three are unused slots). The 40th, `RelLockOwner`, is absent from
/// 2.5-era kernels.
const V4_OPS: [&str; 37] = [
    "Access",
    "Close",
    "Commit",
    "Create",
    "DelegPurge",
    "DelegReturn",
    "GetAttr",
    "GetFH",
    "Link",
    "Lock",
    "Lockt",
    "Locku",
    "Lookup",
    "LookupRoot",
    "Nverify",
    "Open",
    "OpenAttr",
    "OpenConfirm",
    "OpenDgrd",
    "PutFH",
    "PutPubFH",
    "PutRootFH",
    "Read",
    "ReadDir",
    "ReadLink",
    "Remove",
    "Rename",
    "Renew",
    "RestoreFH",
    "SaveFH",
    "SecInfo",
    "SetAttr",
    "SetClientID",
    "SetClientIDConfirm",
    "Verify",
    "Write",
    "RelLockOwner",
];

/// The v4 operations node_exporter does not export (1.12 exports SetClientID and
/// SetClientIDConfirm, which 1.5's procfs did not map).
const V4_SKIPPED: [&str; 2] = ["PutPubFH", "PutRootFH"];

/// What node_exporter reports from `/proc/net/rpc/nfsd`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// `rc`: hits, misses, nocache.
    pub reply_cache: [u64; 3],
    /// `fh`: stale (the other four are unused by the kernel).
    pub fh_stale: u64,
    /// `io`: read, write.
    pub io: [u64; 2],
    /// `th`: threads.
    pub threads: u64,
    /// `ra`: cache size and not-found (the histogram is not exported).
    pub ra_size: u64,
    pub ra_not_found: u64,
    /// `net`: packets, udp, tcp, tcp connections.
    pub net: [u64; 4],
    /// `rpc`: calls, bad total, bad format, bad auth, bad client.
    pub rpc: [u64; 5],
    pub v2: [u64; 18],
    pub v3: [u64; 22],
    /// `proc4ops` from `OP_ACCESS` on, see [`V4_OPS`].
    pub v4_ops: [u64; 37],
    /// `wdeleg_getattr` (Linux 6.x; 0 where absent, as procfs).
    pub wdeleg_getattr: u64,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            reply_cache: [0; 3],
            fh_stale: 0,
            io: [0; 2],
            threads: 0,
            ra_size: 0,
            ra_not_found: 0,
            net: [0; 4],
            rpc: [0; 5],
            v2: [0; 18],
            v3: [0; 22],
            v4_ops: [0; 37],
            wdeleg_getattr: 0,
        }
    }
}

/// Parses `/proc/net/rpc/nfsd` with procfs 0.8's checks.
pub fn parse_server(text: &str) -> Result<ServerStats, String> {
    let mut s = ServerStats::default();
    let keys = [
        "rc",
        "fh",
        "io",
        "th",
        "ra",
        "net",
        "rpc",
        "proc2",
        "proc3",
        "proc4",
        "proc4ops",
        "wdeleg_getattr",
    ];
    for (key, v) in parse_lines(text, &keys)? {
        match key {
            "rc" => copy_into(&mut s.reply_cache, fixed(key, &v, 3)?),
            "fh" => s.fh_stale = fixed(key, &v, 5)?.first().copied().unwrap_or(0),
            "io" => copy_into(&mut s.io, fixed(key, &v, 2)?),
            "th" => s.threads = fixed(key, &v, 2)?.first().copied().unwrap_or(0),
            "ra" => {
                let v = fixed(key, &v, 12)?;
                s.ra_size = v.first().copied().unwrap_or(0);
                s.ra_not_found = v.last().copied().unwrap_or(0);
            }
            "net" => copy_into(&mut s.net, fixed(key, &v, 4)?),
            "rpc" => copy_into(&mut s.rpc, fixed(key, &v, 5)?),
            "proc2" => copy_into(&mut s.v2, counted(key, &v, 18)?),
            "proc3" => copy_into(&mut s.v3, counted(key, &v, 22)?),
            "proc4" => {
                // Null and Compound: checked as procfs does, not exported.
                match v.split_first() {
                    Some((2, rest)) if rest.len() == 2 => {}
                    _ => return Err(format!("invalid proc4 line {v:?}")),
                }
            }
            "wdeleg_getattr" => s.wdeleg_getattr = v.first().copied().unwrap_or(0),
            _ => {
                let ops = counted(key, &v, 39)?;
                copy_into(&mut s.v4_ops, ops.get(3..).unwrap_or(&[]));
            }
        }
    }
    Ok(s)
}

pub fn families(s: &ServerStats) -> Vec<MetricFamily> {
    let c = |name: &'static str, help: &'static str, v: u64| {
        MetricFamily::counter(name, help).with(&[], v as f64)
    };
    let g = |name: &'static str, help: &'static str, v: u64| {
        MetricFamily::gauge(name, help).with(&[], v as f64)
    };
    let mut requests = MetricFamily::counter(
        "node_nfsd_requests_total",
        "Total number NFSd Requests by method and protocol.",
    );
    let mut rows = Vec::with_capacity(80);
    // v2 and v3: every procedure but Null.
    rows.extend(V2.iter().zip(&s.v2).skip(1).map(|(m, v)| (*m, "2", *v)));
    rows.extend(V3.iter().zip(&s.v3).skip(1).map(|(m, v)| (*m, "3", *v)));
    rows.extend(
        V4_OPS
            .iter()
            .zip(&s.v4_ops)
            .filter(|(m, _)| !V4_SKIPPED.contains(m))
            .map(|(m, v)| (*m, "4", *v)),
    );
    rows.push(("WdelegGetattr", "4", s.wdeleg_getattr));
    push_requests(&mut requests, rows);
    vec![
        c(
            "node_nfsd_connections_total",
            "Total number of NFSd TCP connections.",
            s.net[3],
        ),
        c(
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            s.io[0],
        ),
        c(
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            s.io[1],
        ),
        c(
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            s.fh_stale,
        ),
        MetricFamily::counter(
            "node_nfsd_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
        )
        .with(&[("proto", "tcp")], s.net[2] as f64)
        .with(&[("proto", "udp")], s.net[1] as f64),
        c(
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            s.ra_not_found,
        ),
        g(
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            s.ra_size,
        ),
        c(
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            s.reply_cache[0],
        ),
        c(
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            s.reply_cache[1],
        ),
        c(
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            s.reply_cache[2],
        ),
        requests,
        MetricFamily::counter(
            "node_nfsd_rpc_errors_total",
            "Total number of NFSd RPC errors by error type.",
        )
        .with(&[("error", "auth")], s.rpc[3] as f64)
        .with(&[("error", "cInt")], s.rpc[4] as f64)
        .with(&[("error", "fmt")], s.rpc[2] as f64),
        c(
            "node_nfsd_server_rpcs_total",
            "Total number of NFSd RPCs.",
            s.rpc[0],
        ),
        g(
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            s.threads,
        ),
    ]
}

struct Nfsd;

impl Collector for Nfsd {
    fn name(&self) -> &'static str {
        "nfsd"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let path = paths.proc("net/rpc/nfsd");
        let stats = read_parsed(&path, parse_server).map_err(CollectError::absent_is_no_data)?;
        Ok(families(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture_text, procfs, raw};

    /// node_exporter 1.5's output (expected.txt) turned into 1.12's (see the module doc): the
    /// fixture's SETCLIENTID and SETCLIENTID_CONFIRM counts (3 and 3) are not `Verify` and
    /// `Write`, which are 0, as is RELEASE_LOCKOWNER; `SetClientID`, `SetClientIDConfirm` and
    /// `WdelegGetattr` are there. (The same lines as 1.12's e2e-output.txt for this file.)
    fn expected(wdeleg: u64) -> String {
        let want = fixture_text("storage", "nfsd/expected.txt");
        let mut fixed: Vec<String> = Vec::new();
        for l in want.lines() {
            match l {
                r#"node_nfsd_requests_total{method="Verify",proto="4"} 3"# => {
                    fixed.push(r#"node_nfsd_requests_total{method="Verify",proto="4"} 0"#.into());
                    fixed.push(format!(
                        r#"node_nfsd_requests_total{{method="WdelegGetattr",proto="4"}} {wdeleg}"#
                    ));
                }
                r#"node_nfsd_requests_total{method="Write",proto="4"} 3"# => {
                    fixed.push(r#"node_nfsd_requests_total{method="Write",proto="4"} 0"#.into())
                }
                r#"node_nfsd_requests_total{method="SetAttr",proto="4"} 0"# => {
                    fixed.push(l.to_string());
                    fixed.push(
                        r#"node_nfsd_requests_total{method="SetClientID",proto="4"} 3"#.into(),
                    );
                    fixed.push(
                        r#"node_nfsd_requests_total{method="SetClientIDConfirm",proto="4"} 3"#
                            .into(),
                    );
                }
                _ => fixed.push(l.to_string()),
            }
        }
        assert_ne!(fixed.join("\n") + "\n", want, "the golden file changed");
        fixed.join("\n") + "\n"
    }

    #[test]
    fn matches_node_exporter() {
        let fams = Nfsd
            .collect(&procfs("storage", "nfsd/proc"))
            .expect("collects");
        assert_eq!(raw(&fams), expected(0));
        // A 6.x kernel's extra `wdeleg_getattr` line (node_exporter 1.5 fails there).
        let fams = Nfsd
            .collect(&procfs("storage", "nfsd-6.x/proc"))
            .expect("collects");
        assert_eq!(raw(&fams), expected(15));
    }

    #[test]
    fn values() {
        let text = fixture_text("storage", "nfsd/proc/net/rpc/nfsd");
        let s = parse_server(&text).expect("parses");
        assert_eq!(s.reply_cache, [0, 6, 18622]);
        assert_eq!(s.threads, 8);
        assert_eq!(s.ra_size, 32);
        assert_eq!(s.rpc, [18628, 3, 1, 2, 0]);
        // proc4ops: OP_ACCESS is the 4th number.
        assert_eq!(s.v4_ops[0], 1098);
    }

    #[test]
    fn garbled() {
        assert!(parse_server("th 8\n").is_err());
        assert!(parse_server("rc 1 2\n").is_err());
        assert!(parse_server("proc4 3 1 2 3\n").is_err());
        assert!(parse_server("proc4ops 3 1 2 3\n").is_err());
        assert!(parse_server("io 1 x\n").is_err());
        // No `ra` line (recent kernels): zeros.
        let s = parse_server("th 16 0 0.000\nio 1 2\n").expect("parses");
        assert_eq!((s.threads, s.ra_size, s.io), (16, 0, [1, 2]));
    }

    #[test]
    fn absent_source_fails() {
        assert!(Nfsd.collect(&procfs("storage", "nowhere/proc")).is_err());
    }

    #[test]
    fn live() {
        let p = Paths::default();
        assert_eq!(Nfsd.collect(&p).is_ok(), p.proc("net/rpc/nfsd").exists());
    }
}
