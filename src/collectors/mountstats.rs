//! `mountstats` collector (off by default): node_exporter 1.12's `mountstats_linux.go` over
//! prometheus/procfs' `/proc/self/mountstats` and `/proc/self/mountinfo` parsers.
//!
//! For every NFS (v3/v4) mount with statistics, labelled `{export,mountaddr,protocol}` (the
//! device, the `addr=` super option of the mount at the same position in `mountinfo`, and the
//! RPC transport's protocol), the `node_mountstats_nfs_*` families:
//!
//! - `age_seconds_total`; byte counters `read_bytes_total`, `write_bytes_total`,
//!   `direct_read_bytes_total`, `direct_write_bytes_total`, `total_read_bytes_total`,
//!   `total_write_bytes_total`, `read_pages_total`, `write_pages_total`;
//! - 26 `event_*_total` counters (every `events:` field but the unused congestion wait);
//! - `transport_*` for **every** `xprt:` line (several with `nconnect`), labelled also
//!   `transport` (the line's index from 0): `bind_total`, `connect_total`,
//!   `idle_time_seconds`, `sends_total`, `receives_total`, `bad_transaction_ids_total`,
//!   `backlog_queue_total`, `maximum_rpc_slots`, `sending_queue_total`, `pending_queue_total`;
//! - `mountpoint_info{export,mountaddr,mountpoint,protocol} 1`, once per mount point;
//! - per operation `{export,mountaddr,operation,protocol}`: `operations_requests_total`,
//!   `_transmissions_total`, `_major_timeouts_total`, `_sent_bytes_total`,
//!   `_received_bytes_total`, `_queue_time_seconds_total`, `_response_time_seconds_total`,
//!   `_request_time_seconds_total` (milliseconds modulo 2^53, then seconds, as node_exporter).
//!
//! A second mount of the same export, protocol and address is skipped (but still has its
//! `mountpoint_info`), as node_exporter does; see [`families`] for 1.12's exact walk.
//!
//! node_exporter 1.12 semantics, differing from 1.5 (procfs 0.8 kept only the last `xprt:`
//! line): the `transport` label and every transport; `mountpoint_info`; a mount without any
//! `xprt:` line reports nothing (1.5 reported it with empty transport values); `rdma`
//! transports (stats 1.1) are accepted, their RDMA-only counters not exported.
//!
//! Behaviour kept from node_exporter 1.5 / procfs 0.8: a missing or unparsable `mountstats` or
//! `mountinfo` fails the collector (a host without NFS mounts still has both files, so it
//! reports no samples and success); so does a mount with statistics that is not `nfs`/`nfs4`,
//! or an NFS transport other than `tcp`/`udp`/`rdma`. `mountinfo` lines are parsed as
//! procfs 0.8 does: split on single spaces, at least ten fields, `-` fourth from the end.
//!
//! The files are `/proc/self/...`: the agent's own mount namespace, as node_exporter's.
//!
//! **Read before the privilege drop:** `/proc/self/mountstats` is mode 0400, and after the
//! agent changes its uid the kernel marks it non-dumpable, which makes its `/proc/self` entries
//! root-owned: opening the file then fails with `EACCES` (measured: even with the sandbox
//! off). [`warm_up`], called before the drop, opens it once and keeps the descriptor; every
//! scrape re-reads it from offset 0 with `pread`, which makes the kernel generate the content
//! afresh (measured: a mount made after the drop shows up). Without the kept descriptor (tests,
//! another `--path.procfs` after a reload) the file is opened per scrape. `mountinfo` is 0444
//! and is opened per scrape.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(MountStats)
}

/// 2^53, node_exporter's `float64Mantissa`: some millisecond counters are reduced modulo it.
const FLOAT64_MANTISSA: u64 = 9_007_199_254_740_992;

/// The RPC transport statistics of an NFS mount (the fields node_exporter exports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub protocol: String,
    pub bind: u64,
    pub connect: u64,
    pub idle_time_seconds: u64,
    pub sends: u64,
    pub receives: u64,
    pub bad_transaction_ids: u64,
    pub cumulative_backlog: u64,
    pub maximum_rpc_slots_used: u64,
    pub cumulative_sending_queue: u64,
    pub cumulative_pending_queue: u64,
}

/// One line of the per-operation statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    pub requests: u64,
    pub transmissions: u64,
    pub major_timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub queue_ms: u64,
    pub response_ms: u64,
    pub request_ms: u64,
}

/// The statistics of one NFS mount.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NfsStats {
    pub age_seconds: f64,
    /// read, write, direct read, direct write, read total, write total, read pages, write
    /// pages.
    pub bytes: [u64; 8],
    /// The 27 `events:` fields in kernel order.
    pub events: [u64; 27],
    /// One per `xprt:` line (several with `nconnect`), in file order.
    pub transports: Vec<Transport>,
    pub operations: Vec<Operation>,
}

/// One `device ... mounted on ... with fstype ...` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    /// Present for NFS mounts that print statistics.
    pub nfs: Option<NfsStats>,
}

fn u64s<const N: usize>(fields: &[&str], what: &str) -> Result<[u64; N], String> {
    if fields.len() != N {
        return Err(format!("invalid NFS {what} stats: {fields:?}"));
    }
    let mut out = [0u64; N];
    for (o, f) in out.iter_mut().zip(fields) {
        *o = f
            .parse()
            .map_err(|_| format!("invalid number {f:?} in NFS {what} stats"))?;
    }
    Ok(out)
}

/// Go's `time.ParseDuration(s + "s").Seconds()` for the `age:` value.
fn parse_age(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty()
        || body == "."
        || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || body.bytes().filter(|&b| b == b'.').count() > 1
    {
        return None;
    }
    let v: f64 = body.parse().ok()?;
    Some(if s.starts_with('-') { -v } else { v })
}

fn parse_transport(fields: &[&str], stat_version: &str) -> Result<Transport, String> {
    let (protocol, rest) = fields
        .split_first()
        .ok_or_else(|| "empty NFS transport stats".to_string())?;
    let want = match (stat_version, *protocol) {
        ("1.0", "tcp") => 10,
        ("1.0", "udp") => 7,
        ("1.1", "tcp") => 13,
        ("1.1", "udp") => 10,
        // procfs >= 0.11 (node_exporter 1.12): RDMA, at least 20 fields.
        ("1.1", "rdma") => 20,
        ("1.0" | "1.1", p) => {
            return Err(format!(
                "invalid NFS protocol {p:?} in stats {stat_version} statement"
            ))
        }
        (v, _) => return Err(format!("unrecognized NFS transport stats version: {v:?}")),
    };
    let rdma = *protocol == "rdma";
    if (!rdma && rest.len() != want) || (rdma && rest.len() < want) {
        return Err(format!(
            "invalid NFS transport stats {stat_version} statement: {rest:?}"
        ));
    }
    let mut ns = [0u64; 16];
    // udp has no connect count, connect idle time or idle time: procfs inserts zeros. rdma
    // has no maximum slots, sending or pending queue: its fields from the 11th on are RDMA
    // counters, which node_exporter does not export (the three read 0).
    let skip = if *protocol == "udp" { 3 } else { 0 };
    for (i, f) in rest.iter().enumerate() {
        let at = if i < 2 {
            i
        } else if rdma && i >= 10 {
            usize::MAX
        } else {
            i + skip
        };
        let v = f
            .parse()
            .map_err(|_| format!("invalid number {f:?} in NFS transport stats"))?;
        if let Some(slot) = ns.get_mut(at) {
            *slot = v;
        }
    }
    Ok(Transport {
        protocol: protocol.to_string(),
        bind: ns[1],
        connect: ns[2],
        idle_time_seconds: ns[4],
        sends: ns[5],
        receives: ns[6],
        bad_transaction_ids: ns[7],
        cumulative_backlog: ns[9],
        maximum_rpc_slots_used: ns[10],
        cumulative_sending_queue: ns[11],
        cumulative_pending_queue: ns[12],
    })
}

fn parse_operation(fields: &[&str]) -> Result<Operation, String> {
    let invalid = || format!("invalid NFS per-operations stats: {fields:?}");
    let Some((name, values)) = fields.split_first().filter(|_| fields.len() >= 9) else {
        return Err(invalid());
    };
    let mut ns = Vec::with_capacity(values.len());
    for f in values {
        ns.push(
            f.parse::<u64>()
                .map_err(|_| format!("invalid number {f:?} in NFS per-operation stats"))?,
        );
    }
    let &[requests, transmissions, major_timeouts, bytes_sent, bytes_received, queue_ms, response_ms, request_ms, ..] =
        ns.as_slice()
    else {
        return Err(invalid());
    };
    Ok(Operation {
        name: name.strip_suffix(':').unwrap_or(name).to_string(),
        requests,
        transmissions,
        major_timeouts,
        bytes_sent,
        bytes_received,
        queue_ms,
        response_ms,
        request_ms,
    })
}

/// procfs' `parseMountStatsNFS`: the lines after a device line, up to the blank line that
/// ends its per-operation statistics.
fn parse_nfs<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
    stat_version: &str,
) -> Result<NfsStats, String> {
    let mut s = NfsStats::default();
    for line in lines.by_ref() {
        let ss: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some((&first, args)) = ss.split_first() else {
            break;
        };
        match first {
            "opts:" | "age:" | "bytes:" | "events:" if args.is_empty() => {
                return Err(format!("not enough information for NFS stats: {ss:?}"))
            }
            "age:" => {
                let age = args.first().copied().unwrap_or("");
                s.age_seconds = parse_age(age).ok_or_else(|| format!("invalid NFS age {age:?}"))?
            }
            "bytes:" => s.bytes = u64s(args, "bytes")?,
            "events:" => s.events = u64s(args, "events")?,
            "xprt:" => {
                if args.len() < 2 {
                    return Err(format!(
                        "not enough information for NFS transport stats: {ss:?}"
                    ));
                }
                s.transports.push(parse_transport(args, stat_version)?);
            }
            "per-op" => break,
            _ => {}
        }
    }
    for line in lines.by_ref() {
        let ss: Vec<&str> = line.split_ascii_whitespace().collect();
        if ss.is_empty() {
            break;
        }
        s.operations.push(parse_operation(&ss)?);
    }
    Ok(s)
}

/// procfs' `parseMountStats`: every device entry, with NFS statistics where printed.
pub fn parse_mountstats(text: &str) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let ss: Vec<&str> = line.split_ascii_whitespace().collect();
        if ss.first() != Some(&"device") {
            continue;
        }
        let &[_, device, "mounted", "on", mount_point, "with", "fstype", fs_type, ref rest @ ..] =
            ss.as_slice()
        else {
            return Err(format!("invalid device entry {line:?}"));
        };
        let mut m = Mount {
            device: device.to_string(),
            mount_point: mount_point.to_string(),
            fs_type: fs_type.to_string(),
            nfs: None,
        };
        if let Some(statvers) = rest.first() {
            if m.fs_type != "nfs" && m.fs_type != "nfs4" {
                return Err(format!(
                    "cannot parse MountStats for fstype {:?}",
                    m.fs_type
                ));
            }
            let version = statvers.strip_prefix("statvers=").unwrap_or(statvers);
            m.nfs = Some(parse_nfs(&mut lines, version)?);
        }
        mounts.push(m);
    }
    Ok(mounts)
}

/// procfs 0.8's `parseMountInfo`, keeping only what the collector uses: each mount's `addr=`
/// super option (empty when absent), in file order.
pub fn parse_mountinfo_addrs(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let n = f.len();
        let (Some(id), Some(parent), Some(sep), Some(opts)) =
            (f.first(), f.get(1), f.get(n.wrapping_sub(4)), f.last())
        else {
            return Err(format!(
                "couldn't find enough fields in mount string: {line:?}"
            ));
        };
        if n < 10 {
            return Err(format!(
                "couldn't find enough fields in mount string: {line:?}"
            ));
        }
        if *sep != "-" {
            return Err(format!(
                "couldn't find separator in expected field: {sep:?}"
            ));
        }
        if id.parse::<i64>().is_err() {
            return Err("failed to parse mount ID".into());
        }
        if parent.parse::<i64>().is_err() {
            return Err("failed to parse parent ID".into());
        }
        let mut addr = "";
        for opt in opts.split(',') {
            let mut kv = opt.split('=');
            if kv.next() == Some("addr") {
                addr = kv.next().unwrap_or("");
            }
        }
        out.push(addr.to_string());
    }
    Ok(out)
}

type Get = fn(&NfsStats) -> f64;

/// Per-mount families: name suffix, HELP, counter?, value.
const MOUNT_FAMILIES: [(&str, &str, bool, Get); 35] = [
    (
        "age_seconds_total",
        "The age of the NFS mount in seconds.",
        true,
        |s| s.age_seconds,
    ),
    (
        "read_bytes_total",
        "Number of bytes read using the read() syscall.",
        true,
        |s| s.bytes[0] as f64,
    ),
    (
        "write_bytes_total",
        "Number of bytes written using the write() syscall.",
        true,
        |s| s.bytes[1] as f64,
    ),
    (
        "direct_read_bytes_total",
        "Number of bytes read using the read() syscall in O_DIRECT mode.",
        true,
        |s| s.bytes[2] as f64,
    ),
    (
        "direct_write_bytes_total",
        "Number of bytes written using the write() syscall in O_DIRECT mode.",
        true,
        |s| s.bytes[3] as f64,
    ),
    (
        "total_read_bytes_total",
        "Number of bytes read from the NFS server, in total.",
        true,
        |s| s.bytes[4] as f64,
    ),
    (
        "total_write_bytes_total",
        "Number of bytes written to the NFS server, in total.",
        true,
        |s| s.bytes[5] as f64,
    ),
    (
        "read_pages_total",
        "Number of pages read directly via mmap()'d files.",
        true,
        |s| s.bytes[6] as f64,
    ),
    (
        "write_pages_total",
        "Number of pages written directly via mmap()'d files.",
        true,
        |s| s.bytes[7] as f64,
    ),
    (
        "event_inode_revalidate_total",
        "Number of times cached inode attributes are re-validated from the server.",
        true,
        |s| s.events[0] as f64,
    ),
    (
        "event_dnode_revalidate_total",
        "Number of times cached dentry nodes are re-validated from the server.",
        true,
        |s| s.events[1] as f64,
    ),
    (
        "event_data_invalidate_total",
        "Number of times an inode cache is cleared.",
        true,
        |s| s.events[2] as f64,
    ),
    (
        "event_attribute_invalidate_total",
        "Number of times cached inode attributes are invalidated.",
        true,
        |s| s.events[3] as f64,
    ),
    (
        "event_vfs_open_total",
        "Number of times cached inode attributes are invalidated.",
        true,
        |s| s.events[4] as f64,
    ),
    (
        "event_vfs_lookup_total",
        "Number of times a directory lookup has occurred.",
        true,
        |s| s.events[5] as f64,
    ),
    (
        "event_vfs_access_total",
        "Number of times permissions have been checked.",
        true,
        |s| s.events[6] as f64,
    ),
    (
        "event_vfs_update_page_total",
        "Number of updates (and potential writes) to pages.",
        true,
        |s| s.events[7] as f64,
    ),
    (
        "event_vfs_read_page_total",
        "Number of pages read directly via mmap()'d files.",
        true,
        |s| s.events[8] as f64,
    ),
    (
        "event_vfs_read_pages_total",
        "Number of times a group of pages have been read.",
        true,
        |s| s.events[9] as f64,
    ),
    (
        "event_vfs_write_page_total",
        "Number of pages written directly via mmap()'d files.",
        true,
        |s| s.events[10] as f64,
    ),
    (
        "event_vfs_write_pages_total",
        "Number of times a group of pages have been written.",
        true,
        |s| s.events[11] as f64,
    ),
    (
        "event_vfs_getdents_total",
        "Number of times directory entries have been read with getdents().",
        true,
        |s| s.events[12] as f64,
    ),
    (
        "event_vfs_setattr_total",
        "Number of times directory entries have been read with getdents().",
        true,
        |s| s.events[13] as f64,
    ),
    (
        "event_vfs_flush_total",
        "Number of pending writes that have been forcefully flushed to the server.",
        true,
        |s| s.events[14] as f64,
    ),
    (
        "event_vfs_fsync_total",
        "Number of times fsync() has been called on directories and files.",
        true,
        |s| s.events[15] as f64,
    ),
    (
        "event_vfs_lock_total",
        "Number of times locking has been attempted on a file.",
        true,
        |s| s.events[16] as f64,
    ),
    (
        "event_vfs_file_release_total",
        "Number of times files have been closed and released.",
        true,
        |s| s.events[17] as f64,
    ),
    // events[18] is the congestion wait count, which node_exporter does not export.
    (
        "event_truncation_total",
        "Number of times files have been truncated.",
        true,
        |s| s.events[19] as f64,
    ),
    (
        "event_write_extension_total",
        "Number of times a file has been grown due to writes beyond its existing end.",
        true,
        |s| s.events[20] as f64,
    ),
    (
        "event_silly_rename_total",
        "Number of times a file was removed while still open by another process.",
        true,
        |s| s.events[21] as f64,
    ),
    (
        "event_short_read_total",
        "Number of times the NFS server gave less data than expected while reading.",
        true,
        |s| s.events[22] as f64,
    ),
    (
        "event_short_write_total",
        "Number of times the NFS server wrote less data than expected while writing.",
        true,
        |s| s.events[23] as f64,
    ),
    (
        "event_jukebox_delay_total",
        "Number of times the NFS server indicated EJUKEBOX; retrieving data from offline storage.",
        true,
        |s| s.events[24] as f64,
    ),
    (
        "event_pnfs_read_total",
        "Number of NFS v4.1+ pNFS reads.",
        true,
        |s| s.events[25] as f64,
    ),
    (
        "event_pnfs_write_total",
        "Number of NFS v4.1+ pNFS writes.",
        true,
        |s| s.events[26] as f64,
    ),
];

type TransportGet = fn(&Transport) -> f64;

/// Per-transport families (1.12: labelled `transport`, the `xprt:` line's index).
#[rustfmt::skip]
const TRANSPORT_FAMILIES: [(&str, &str, bool, TransportGet); 10] = [
        ("transport_bind_total", "Number of times the client has had to establish a connection from scratch to the NFS server.", true, |t| t.bind as f64),
        ("transport_connect_total", "Number of times the client has made a TCP connection to the NFS server.", true, |t| t.connect as f64),
        ("transport_idle_time_seconds", "Duration since the NFS mount last saw any RPC traffic, in seconds.", false, |t| (t.idle_time_seconds % FLOAT64_MANTISSA) as f64),
        ("transport_sends_total", "Number of RPC requests for this mount sent to the NFS server.", true, |t| t.sends as f64),
        ("transport_receives_total", "Number of RPC responses for this mount received from the NFS server.", true, |t| t.receives as f64),
        ("transport_bad_transaction_ids_total", "Number of times the NFS server sent a response with a transaction ID unknown to this client.", true, |t| t.bad_transaction_ids as f64),
        ("transport_backlog_queue_total", "Total number of items added to the RPC backlog queue.", true, |t| t.cumulative_backlog as f64),
        ("transport_maximum_rpc_slots", "Maximum number of simultaneously active RPC requests ever used.", false, |t| t.maximum_rpc_slots_used as f64),
        ("transport_sending_queue_total", "Total number of items added to the RPC transmission sending queue.", true, |t| t.cumulative_sending_queue as f64),
        ("transport_pending_queue_total", "Total number of items added to the RPC transmission pending queue.", true, |t| t.cumulative_pending_queue as f64),
];

type OpGet = fn(&Operation) -> f64;

fn ms_to_s(ms: u64) -> f64 {
    (ms % FLOAT64_MANTISSA) as f64 / 1000.0
}

/// Per-operation families.
const OP_FAMILIES: [(&str, &str, OpGet); 8] = [
    ("operations_requests_total", "Number of requests performed for a given operation.", |o| o.requests as f64),
    ("operations_transmissions_total", "Number of times an actual RPC request has been transmitted for a given operation.", |o| o.transmissions as f64),
    ("operations_major_timeouts_total", "Number of times a request has had a major timeout for a given operation.", |o| o.major_timeouts as f64),
    ("operations_sent_bytes_total", "Number of bytes sent for a given operation, including RPC headers and payload.", |o| o.bytes_sent as f64),
    ("operations_received_bytes_total", "Number of bytes received for a given operation, including RPC headers and payload.", |o| o.bytes_received as f64),
    ("operations_queue_time_seconds_total", "Duration all requests spent queued for transmission for a given operation before they were sent, in seconds.", |o| ms_to_s(o.queue_ms)),
    ("operations_response_time_seconds_total", "Duration all requests took to get a reply back after a request for a given operation was transmitted, in seconds.", |o| ms_to_s(o.response_ms)),
    ("operations_request_time_seconds_total", "Duration all requests took from when a request was enqueued to when it was completely handled for a given operation, in seconds.", |o| ms_to_s(o.request_ms)),
];

/// The families for the parsed files, as node_exporter 1.12's `Update`: for each transport
/// of a mount, `mountpoint_info` once per (export, protocol, address, mount point); the
/// mount's statistics once per (export, protocol, address), labelled with that transport's
/// protocol, every transport of the mount under its index; at the first transport whose
/// (export, protocol, address) was seen, the mount's remaining transports are skipped.
pub fn families(mounts: &[Mount], addrs: &[String]) -> Vec<MetricFamily> {
    let fam = |name: &str, help: &'static str, counter: bool| {
        let name = format!("node_mountstats_nfs_{name}");
        if counter {
            MetricFamily::counter(name, help)
        } else {
            MetricFamily::gauge(name, help)
        }
    };
    let mut info = MetricFamily::gauge(
        "node_mountstats_nfs_mountpoint_info",
        "Info metric for an NFS mountpoint.",
    );
    let mut per_mount: Vec<MetricFamily> = MOUNT_FAMILIES
        .iter()
        .map(|(name, help, counter, _)| fam(name, help, *counter))
        .collect();
    let mut per_transport: Vec<MetricFamily> = TRANSPORT_FAMILIES
        .iter()
        .map(|(name, help, counter, _)| fam(name, help, *counter))
        .collect();
    let mut per_op: Vec<MetricFamily> = OP_FAMILIES
        .iter()
        .map(|(name, help, _)| fam(name, help, true))
        .collect();
    let mut seen_mountpoints: HashSet<(&str, &str, &str, &str)> = HashSet::new();
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::new();
    for (idx, m) in mounts.iter().enumerate() {
        let Some(s) = &m.nfs else { continue };
        // mountstats and mountinfo list the same mounts in the same order.
        let addr = addrs.get(idx).map(String::as_str).unwrap_or("");
        for t in &s.transports {
            let protocol = t.protocol.as_str();
            let device = m.device.as_str();
            if seen_mountpoints.insert((device, protocol, addr, &m.mount_point)) {
                info.push(
                    &[
                        ("export", device),
                        ("mountaddr", addr),
                        ("mountpoint", &m.mount_point),
                        ("protocol", protocol),
                    ],
                    1.0,
                );
            }
            if !seen.insert((device, protocol, addr)) {
                break;
            }
            let labels = [
                ("export", device),
                ("mountaddr", addr),
                ("protocol", protocol),
            ];
            for (fam, (_, _, _, get)) in per_mount.iter_mut().zip(MOUNT_FAMILIES.iter()) {
                fam.push(&labels, get(s));
            }
            for (i, tr) in s.transports.iter().enumerate() {
                let i = i.to_string();
                let labels = [
                    ("export", device),
                    ("mountaddr", addr),
                    ("protocol", protocol),
                    ("transport", i.as_str()),
                ];
                for (fam, (_, _, _, get)) in per_transport.iter_mut().zip(TRANSPORT_FAMILIES.iter())
                {
                    fam.push(&labels, get(tr));
                }
            }
            for op in &s.operations {
                let labels = [
                    ("export", device),
                    ("mountaddr", addr),
                    ("operation", op.name.as_str()),
                    ("protocol", protocol),
                ];
                for (fam, (_, _, get)) in per_op.iter_mut().zip(OP_FAMILIES.iter()) {
                    fam.push(&labels, get(op));
                }
            }
        }
    }
    per_mount.push(info);
    per_mount.extend(per_transport);
    per_mount.extend(per_op);
    for f in &mut per_mount {
        crate::exposition::sort_samples(f);
    }
    per_mount
}

/// `/proc/self/mountstats`, opened before the privilege drop (see the module docs). The mutex
/// also keeps two scrapes from interleaving their reads of the one seq_file.
static KEPT: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Opens `<procfs>/self/mountstats` while the agent may still do so, for every later scrape.
/// Call before dropping privileges.
pub fn warm_up(paths: &Paths) {
    let path = paths.proc("self/mountstats");
    if let Ok(file) = super::fsio::open_regular(&path) {
        if let Ok(mut kept) = KEPT.lock() {
            *kept = Some((path, file));
        }
    }
}

/// Reads the whole file from offset 0 through a kept descriptor.
fn pread_to_string(file: &File) -> std::io::Result<String> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    loop {
        if buf.len() - len < 4096 {
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read_at(buf.get_mut(len..).unwrap_or_default(), len as u64)?;
        if n == 0 {
            break;
        }
        len += n;
        if len as u64 > super::fsio::MAX_FILE_BYTES {
            return Err(super::fsio::too_large(super::fsio::MAX_FILE_BYTES));
        }
    }
    buf.truncate(len);
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The mountstats text: through the descriptor kept by [`warm_up`] when it is for this path,
/// else by opening the path.
fn read_mountstats(path: &Path) -> Result<String, CollectError> {
    if let Ok(kept) = KEPT.lock() {
        if let Some((p, file)) = kept.as_ref() {
            if p == path {
                return pread_to_string(file).map_err(|e| CollectError::io(path, e));
            }
        }
    }
    read_to_string(path)
}

struct MountStats;

impl Collector for MountStats {
    fn name(&self) -> &'static str {
        "mountstats"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let stats_path = paths.proc("self/mountstats");
        let text = read_mountstats(&stats_path)?;
        let mounts = parse_mountstats(&text).map_err(|m| CollectError::parse(&stats_path, m))?;
        let info_path = paths.proc("self/mountinfo");
        let info = read_to_string(&info_path)?;
        let addrs = parse_mountinfo_addrs(&info).map_err(|m| CollectError::parse(&info_path, m))?;
        if mounts.iter().all(|m| m.nfs.is_none()) {
            return Ok(Vec::new());
        }
        Ok(families(&mounts, &addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{assert_golden, fixture_text, procfs, served};

    #[test]
    fn matches_node_exporter() {
        // node_exporter 1.12.1's fixture tree and its e2e-output.txt lines (1.12 semantics:
        // `transport` label, `mountpoint_info`). mountstats/expected.txt is 1.5's output for
        // the older tree, kept for reference.
        let fams = MountStats
            .collect(&procfs("storage2", "mountstats-1.12/proc"))
            .expect("collects");
        assert_golden(served(fams), "storage2", "mountstats-1.12/expected.txt");
    }

    #[test]
    fn every_transport_under_its_index() {
        // The older fixture: the first mount has two `xprt:` lines (nconnect).
        let fams = MountStats
            .collect(&procfs("storage2", "mountstats/proc"))
            .expect("collects");
        let sends = fams
            .iter()
            .find(|f| f.name == "node_mountstats_nfs_transport_sends_total")
            .expect("sends");
        let tcp: Vec<(&str, f64)> = sends
            .samples
            .iter()
            .filter(|s| s.labels.iter().any(|(k, v)| k == "protocol" && v == "tcp"))
            .map(|s| (s.labels[3].1.as_str(), s.value))
            .collect();
        assert_eq!(tcp, [("0", 6428.0), ("1", 2826.0)]);
        let info = fams
            .iter()
            .find(|f| f.name == "node_mountstats_nfs_mountpoint_info")
            .expect("info");
        // One per (export, protocol, address, mount point): the duplicate mount point's
        // second tcp transport adds none.
        assert_eq!(info.samples.len(), 3);
    }

    #[test]
    fn parses_fixture_exactly() {
        let text = fixture_text("storage2", "mountstats/proc/10/mountstats");
        let mounts = parse_mountstats(&text).expect("parses");
        assert_eq!(mounts.len(), 7);
        assert!(mounts[..4].iter().all(|m| m.nfs.is_none()));
        assert_eq!(mounts[4].device, "192.168.1.1:/srv/test");
        assert_eq!(mounts[5].mount_point, "/mnt/nfs/test-dupe");
        let s = mounts[4].nfs.as_ref().expect("nfs");
        assert_eq!(s.age_seconds, 13968.0);
        assert_eq!(
            s.bytes,
            [1_207_640_230, 0, 0, 0, 1_210_214_218, 0, 295_483, 0]
        );
        assert_eq!(s.events[1], 226);
        // Every xprt line, in order.
        assert_eq!(s.transports.len(), 2);
        assert_eq!(
            s.transports[1],
            Transport {
                protocol: "tcp".into(),
                bind: 1,
                connect: 2,
                idle_time_seconds: 0,
                sends: 2826,
                receives: 2818,
                bad_transaction_ids: 0,
                cumulative_backlog: 0,
                maximum_rpc_slots_used: 10,
                cumulative_sending_queue: 0,
                cumulative_pending_queue: 22129,
            }
        );
        assert_eq!(s.operations.len(), 3);
        assert_eq!(s.operations[1].name, "READ");
        assert_eq!(s.operations[1].request_ms, 79407);
        // udp: zeros inserted for connect count, connect idle time and idle time.
        let u = mounts[6].nfs.as_ref().expect("nfs");
        let ut = &u.transports[0];
        assert_eq!(ut.protocol, "udp");
        assert_eq!((ut.bind, ut.connect), (0, 0));
        assert_eq!((ut.sends, ut.maximum_rpc_slots_used), (6428, 24));
        assert_eq!(u.operations[3].queue_ms, 18_446_743_919_241_604_546);
        assert_eq!(ms_to_s(u.operations[3].queue_ms), 9_007_044_786_793.922);

        let info = fixture_text("storage2", "mountstats/proc/10/mountinfo");
        let addrs = parse_mountinfo_addrs(&info).expect("parses");
        assert_eq!(
            addrs,
            ["", "", "", "192.168.1.1", "192.168.1.1", "192.168.1.1"]
        );

        let fams = families(&mounts, &addrs);
        let age = &fams[0];
        assert_eq!(age.samples.len(), 2, "the duplicate tcp mount is skipped");
        assert_eq!(
            age.samples[0]
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect::<Vec<_>>(),
            vec![
                ("export".into(), "192.168.1.1:/srv/test".to_string()),
                ("mountaddr".into(), String::new()),
                ("protocol".into(), "udp".to_string()),
            ]
        );
    }

    #[test]
    fn mountinfo_like_procfs_0_8() {
        let ok = "16 21 0:16 / /s-ys rw  - sysfs sysfs rw\n\
                  20 1 0:42 / /mnt rw shared:1 master:2 - nfs4 h:/x rw,addr=10.0.0.1,addr=10.0.0.2\n";
        assert_eq!(parse_mountinfo_addrs(ok).expect("parses"), ["", "10.0.0.2"]);
        assert!(parse_mountinfo_addrs("16 21 0:16 / /sys rw - sysfs sysfs\n").is_err());
        assert!(parse_mountinfo_addrs("x 21 0:16 / /sys rw - sysfs sysfs rw\n").is_err());
        assert!(parse_mountinfo_addrs("16 21 0:16 / /sys rw x sysfs sysfs rw\n").is_err());
        assert!(parse_mountinfo_addrs("").expect("empty").is_empty());
    }

    #[test]
    fn garbled_mountstats() {
        let head = "device h:/x mounted on /m with fstype nfs4 statvers=1.1\n";
        let body =
            "\tage:\t5\n\tbytes:\t1 2 3 4 5 6 7 8\n\txprt:\ttcp 1 2 3 4 5 6 7 8 9 10 11 12 13\n\
                    \tper-op statistics\n\t  NULL: 1 2 3 4 5 6 7 8 9\n\n";
        let m = parse_mountstats(&format!("{head}{body}")).expect("parses");
        let s = m[0].nfs.as_ref().expect("nfs");
        assert_eq!(
            (s.age_seconds, s.transports[0].cumulative_pending_queue),
            (5.0, 13)
        );
        // procfs >= 0.11: rdma (1.1, at least 20 fields); the slots and queues read 0.
        let rdma = "\txprt:\trdma 0 0 0 0 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19\n";
        let m = parse_mountstats(&format!("{head}{rdma}")).expect("parses");
        let t = &m[0].nfs.as_ref().expect("nfs").transports[0];
        assert_eq!(
            (
                t.protocol.as_str(),
                t.sends,
                t.cumulative_backlog,
                t.maximum_rpc_slots_used
            ),
            ("rdma", 5, 9, 0)
        );
        assert_eq!(s.operations[0].request_ms, 8);
        for bad in [
            "\tbytes:\t1 2 3\n",
            "\tevents:\t1\n",
            "\tage:\tsoon\n",
            "\txprt:\trdma 1 2 3 4 5 6 7 8 9 10 11 12 13\n",
            "\txprt:\tsctp 1 2 3 4 5 6 7 8 9 10 11 12 13\n",
            "\txprt:\ttcp 1 2\n",
            "\tper-op statistics\n\t  NULL: 1 2\n",
        ] {
            assert!(
                parse_mountstats(&format!("{head}{bad}")).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_mountstats("device a mounted on /b with fstype ext4 x\n").is_err());
        assert!(parse_mountstats("device a mounted at /b with fstype ext4\n").is_err());
        assert!(parse_mountstats(
            "device h:/x mounted on /m with fstype nfs statvers=2.0\n\txprt:\ttcp 1\n"
        )
        .is_err());
        assert_eq!(parse_age("1.5"), Some(1.5));
        assert_eq!(parse_age("1e3"), None);
    }

    #[test]
    fn kept_descriptor_is_reread_fresh() {
        let dir = std::env::temp_dir().join(format!("mountstats-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("self")).expect("mkdir");
        let f = dir.join("self/mountstats");
        std::fs::write(&f, "device a mounted on /b with fstype ext4\n").expect("write");
        std::fs::write(dir.join("self/mountinfo"), "").expect("write");
        let paths = Paths {
            procfs: dir.clone(),
            ..Paths::default()
        };
        warm_up(&paths);
        // Rewritten in place (same inode): the kept descriptor sees the new content.
        std::fs::write(&f, "device h:/x mounted on /m with fstype nfs4 statvers=1.1\n\tage:\t7\n\txprt:\ttcp 1 2 3 4 5 6 7 8 9 10 11 12 13\n\tper-op statistics\n\n").expect("write");
        let text = read_mountstats(&f).expect("reads");
        assert!(text.contains("age:\t7"));
        let fams = MountStats.collect(&paths).expect("collects");
        assert_eq!(fams[0].samples[0].value, 7.0);
        *KEPT.lock().expect("lock") = None;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn live_host() {
        // True on every host: both files exist, success, and families exactly when there is
        // an NFS mount (one with `statvers=`; this VM has none: nothing, as node_exporter).
        let fams = MountStats.collect(&Paths::default()).expect("collects");
        let text = std::fs::read_to_string("/proc/self/mountstats").expect("mountstats");
        assert_eq!(fams.is_empty(), !text.contains("statvers="), "{fams:?}");
        assert!(MountStats
            .collect(&procfs("storage2", "no-such-dir"))
            .is_err());
    }
}
