//! `qdisc` collector: queueing discipline statistics of the root qdisc of each network
//! device, as node_exporter 1.12's `qdisc_linux.go` (off by default).
//!
//! - Per root qdisc (parent handle 0), labels `device` and `kind`: `node_qdisc_bytes_total`,
//!   `packets_total`, `drops_total`, `requeues_total`, `overlimits_total` (counters),
//!   `current_queue_length` and `backlog` (gauges).
//! - `--collector.qdisc.device-include` / `--collector.qdisc.device-exclude` (mutually
//!   exclusive; the hidden 1.12 spellings `--collector.qdisk.device-include`/`-exclude` are
//!   accepted as deprecated aliases) filter by device name.
//! - `--collector.qdisc.fixtures=<dir>` (for 1.12's end-to-end test): the
//!   qdiscs are read from `<dir>/results.json`, a JSON array of ema/qdisc's `QdiscInfo`
//!   (`IfaceName`, `Parent`, `Kind`, `Bytes`, `Packets`, `Drops`, `Requeues`, `Overlimits`,
//!   `Qlen`, `Backlog`, ...), decoded as Go's encoding/json does ([`super::gojson`]). Landlock
//!   grants exactly that file (SECURITY.md). Any read or decode error fails the collector.
//! - Without fixtures (the live mode), as 1.12's ema/qdisc: an `RTM_GETQDISC` dump over
//!   rtnetlink, `TCA_STATS2` (basic and queue statistics) then the legacy `TCA_STATS` in the
//!   order the kernel sends them, a parent of `TC_H_ROOT` counting as 0 (root). Device names
//!   come from `/sys/class/net/*/ifindex` (ema/qdisc asks rtnetlink with `net.Interfaces()`);
//!   an index without a name gets `device=""`, as there.
//! - The rtnetlink socket is opened once, before the sandbox, as the agent's user
//!   ([`connect_before_sandbox`], when the collector is enabled at start-up), bound by the
//!   kernel and connected to it; under the sandbox it is only written (`sendto` without an
//!   address) and read (`recvfrom`), which the base seccomp policy allows: no new socket, no
//!   policy fragment. Enabled later by SIGHUP, the collector has no socket and says that it
//!   needs a restart. Messages left from an interrupted dump are drained before each request
//!   and replies are matched by sequence number; a read waits at most 5 s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::tc::{TcAttribute, TcMessage, TcStats2};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::options::{collector_options, Pattern};
use super::{gojson, read_to_string, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

collector_options! {
    /// Options of the qdisc collector (`[collector.qdisc]` in the file).
    pub struct QdiscOptions {
        /// test fixtures to use for qdisc collector end-to-end testing: a directory holding
        /// results.json (granted by Landlock; a change needs a restart). Without it the qdiscs
        /// are dumped over rtnetlink.
        #[arg(id = "collector.qdisc.fixtures", long = "collector.qdisc.fixtures", value_name = "DIR",
              value_parser = crate::collector::options::parse_path_or_empty)]
        pub fixtures: Option<PathBuf>,
        /// Regexp of qdisc devices to include (mutually exclusive to device-exclude).
        #[arg(id = "collector.qdisc.device-include", long = "collector.qdisc.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of qdisc devices to exclude (mutually exclusive to device-include).
        #[arg(id = "collector.qdisc.device-exclude", long = "collector.qdisc.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
        /// DEPRECATED: Use collector.qdisc.device-include.
        #[arg(id = "collector.qdisk.device-include", long = "collector.qdisk.device-include", value_name = "REGEX", hide = true)]
        pub qdisk_device_include: Option<Pattern>,
        /// DEPRECATED: Use collector.qdisc.device-exclude.
        #[arg(id = "collector.qdisk.device-exclude", long = "collector.qdisk.device-exclude", value_name = "REGEX", hide = true)]
        pub qdisk_device_exclude: Option<Pattern>,
    }
    check(o) {
        if o.qdisk_device_include.is_some() && o.device_include.is_some() {
            return Err("--collector.qdisk.device-include and --collector.qdisc.device-include are mutually exclusive".into());
        }
        if o.qdisk_device_exclude.is_some() && o.device_exclude.is_some() {
            return Err("--collector.qdisk.device-exclude and --collector.qdisc.device-exclude are mutually exclusive".into());
        }
        DeviceFilter::exclusive(
            &o.device_include.clone().or(o.qdisk_device_include.clone()),
            &o.device_exclude.clone().or(o.qdisk_device_exclude.clone()),
        )
    }
}

/// One qdisc (the fields of ema/qdisc's `QdiscInfo` node_exporter uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QdiscInfo {
    pub iface_name: String,
    pub parent: u32,
    pub kind: String,
    pub bytes: u64,
    pub packets: u32,
    pub drops: u32,
    pub requeues: u32,
    pub overlimits: u32,
    pub qlen: u32,
    pub backlog: u32,
}

fn u32_field(o: &gojson::Obj<'_>, name: &str) -> Result<u32, String> {
    // `uint` with 32 bits never exceeds u32::MAX.
    o.uint(name, 32)
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Decodes `results.json` as 1.12's `testQdiscGet` (`json.Unmarshal` into
/// `[]qdisc.QdiscInfo`).
pub fn parse_fixture(text: &str) -> Result<Vec<QdiscInfo>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in gojson::array(&v)? {
        let Some(o) = gojson::object(item)? else {
            out.push(QdiscInfo::default());
            continue;
        };
        // Fields 1.12 ignores are still type-checked, as json.Unmarshal does.
        o.uint("Handle", 32)?;
        for f in ["GcFlows", "Throttled", "FlowsPlimit"] {
            o.uint(f, 64)?;
        }
        out.push(QdiscInfo {
            iface_name: o.string("IfaceName")?,
            parent: u32_field(&o, "Parent")?,
            kind: o.string("Kind")?,
            bytes: o.uint("Bytes", 64)?,
            packets: u32_field(&o, "Packets")?,
            drops: u32_field(&o, "Drops")?,
            requeues: u32_field(&o, "Requeues")?,
            overlimits: u32_field(&o, "Overlimits")?,
            qlen: u32_field(&o, "Qlen")?,
            backlog: u32_field(&o, "Backlog")?,
        });
    }
    Ok(out)
}

pub fn families(qdiscs: &[QdiscInfo], filter: &DeviceFilter) -> Vec<MetricFamily> {
    let c = MetricFamily::counter;
    let g = MetricFamily::gauge;
    let mut bytes = c("node_qdisc_bytes_total", "Number of bytes sent.");
    let mut packets = c("node_qdisc_packets_total", "Number of packets sent.");
    let mut drops = c("node_qdisc_drops_total", "Number of packets dropped.");
    let mut requeues = c(
        "node_qdisc_requeues_total",
        "Number of packets dequeued, not transmitted, and requeued.",
    );
    let mut overlimits = c(
        "node_qdisc_overlimits_total",
        "Number of overlimit packets.",
    );
    let mut qlen = g(
        "node_qdisc_current_queue_length",
        "Number of packets currently in queue to be sent.",
    );
    let mut backlog = g(
        "node_qdisc_backlog",
        "Number of bytes currently in queue to be sent.",
    );
    for q in qdiscs {
        // Only root qdiscs.
        if q.parent != 0 || filter.ignored(&q.iface_name) {
            continue;
        }
        let l = [("device", q.iface_name.as_str()), ("kind", q.kind.as_str())];
        bytes.push(&l, q.bytes as f64);
        packets.push(&l, f64::from(q.packets));
        drops.push(&l, f64::from(q.drops));
        requeues.push(&l, f64::from(q.requeues));
        overlimits.push(&l, f64::from(q.overlimits));
        qlen.push(&l, f64::from(q.qlen));
        backlog.push(&l, f64::from(q.backlog));
    }
    nonempty_sorted(vec![
        backlog, bytes, qlen, drops, overlimits, packets, requeues,
    ])
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.qdisc;
    let include = o.device_include.clone().or(o.qdisk_device_include.clone());
    let exclude = o.device_exclude.clone().or(o.qdisk_device_exclude.clone());
    if o.qdisk_device_include.is_some() || o.qdisk_device_exclude.is_some() {
        log::warn!(
            "--collector.qdisk.device-include/-exclude are DEPRECATED and will be removed in \
             node_exporter 2.0.0, use --collector.qdisc.device-include/-exclude"
        );
    }
    Box::new(Qdisc {
        filter: DeviceFilter::new(&include, &exclude, None),
    })
}

pub struct Qdisc {
    filter: DeviceFilter,
}

/// The live mode's rtnetlink socket and the last sequence number used, opened before the
/// sandbox (or the reason it could not be).
static SOCKET: OnceLock<Result<Mutex<(Socket, u32)>, String>> = OnceLock::new();

/// Opens the live mode's rtnetlink socket: on the single start-up thread, after the privilege
/// drop and before the sandbox (which allows no `socket`, `bind` or `connect`).
pub fn connect_before_sandbox() {
    let r = open_socket()
        .map(|s| Mutex::new((s, 0)))
        .map_err(|e| format!("cannot open the rtnetlink socket at start-up: {e}"));
    if let Err(e) = &r {
        log::warn!("qdisc: {e}");
    }
    let _ = SOCKET.set(r);
}

fn open_socket() -> std::io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    // Connected to the kernel: requests are sent without an address (the sandbox allows no
    // other `sendto`).
    s.connect(&SocketAddr::new(0, 0))?;
    // As ema/qdisc; kernels before 4.20 do not know it.
    if let Err(e) = s.set_netlink_get_strict_chk(true) {
        if e.raw_os_error() != Some(libc::ENOPROTOOPT) {
            return Err(e);
        }
    }
    let timeout = nix::sys::time::TimeVal::new(5, 0);
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)?;
    Ok(s)
}

/// One qdisc of a dump (ema/qdisc's `parseMessage`), its device named by `names`.
pub fn from_tc(tc: &TcMessage, names: &HashMap<i32, String>) -> QdiscInfo {
    let parent = u32::from(tc.header.parent);
    let mut q = QdiscInfo {
        iface_name: names.get(&tc.header.index).cloned().unwrap_or_default(),
        parent: if parent == u32::MAX { 0 } else { parent },
        ..QdiscInfo::default()
    };
    for a in &tc.attributes {
        match a {
            TcAttribute::Kind(k) => q.kind = k.clone(),
            TcAttribute::Stats2(stats) => {
                let (mut bytes, mut packets) = (0, 0);
                let (mut qlen, mut backlog, mut drops, mut requeues, mut overlimits) =
                    (0, 0, 0, 0, 0);
                for st in stats {
                    match st {
                        TcStats2::Basic(b) => (bytes, packets) = (b.bytes, b.packets),
                        TcStats2::Queue(qu) => {
                            (qlen, backlog, drops, requeues, overlimits) =
                                (qu.qlen, qu.backlog, qu.drops, qu.requeues, qu.overlimits)
                        }
                        _ => {}
                    }
                }
                (
                    q.bytes,
                    q.packets,
                    q.drops,
                    q.requeues,
                    q.overlimits,
                    q.qlen,
                    q.backlog,
                ) = (bytes, packets, drops, requeues, overlimits, qlen, backlog);
            }
            TcAttribute::Stats(st) => {
                (q.bytes, q.packets, q.drops, q.overlimits, q.qlen, q.backlog) = (
                    st.bytes,
                    st.packets,
                    st.drops,
                    st.overlimits,
                    st.qlen,
                    st.backlog,
                );
            }
            _ => {}
        }
    }
    q
}

/// The `RTM_GETQDISC` dump request with sequence number `seq`.
pub fn dump_request(seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default())),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Parses one datagram of the dump: its qdiscs (messages of sequence `seq` only) into `out`;
/// `true` once the dump is done.
pub fn parse_datagram(
    mut data: &[u8],
    seq: u32,
    names: &HashMap<i32, String>,
    out: &mut Vec<QdiscInfo>,
) -> Result<bool, String> {
    while !data.is_empty() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data)
            .map_err(|e| format!("bad rtnetlink message: {e}"))?;
        let len = msg.header.length as usize;
        if len == 0 {
            return Err("rtnetlink message of length 0".into());
        }
        // Messages are 4-byte aligned within a datagram.
        data = data.get(len.saturating_add(3) & !3..).unwrap_or(&[]);
        if msg.header.sequence_number != seq {
            continue;
        }
        match msg.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(format!("RTM_GETQDISC: {}", e.to_io()))
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewQueueDiscipline(tc)) => {
                out.push(from_tc(&tc, names));
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The interface names by index, from `/sys/class/net/<name>/ifindex`.
fn interface_names(paths: &Paths) -> HashMap<i32, String> {
    let dir = paths.sys("class/net");
    super::glob_names(&dir, |_| true)
        .into_iter()
        .filter_map(|n| {
            let i = super::fsio::read_to_string(dir.join(&n).join("ifindex")).ok()?;
            Some((i.trim().parse().ok()?, n))
        })
        .collect()
}

/// The live mode: a dump over the socket opened before the sandbox.
fn live(paths: &Paths) -> Result<Vec<QdiscInfo>, CollectError> {
    let sock = match SOCKET.get() {
        None => {
            return Err(CollectError::Other(
                "qdisc: no rtnetlink socket: it is opened at start-up when the collector is \
                 enabled (enabled by a reload, the collector needs a restart)"
                    .into(),
            ))
        }
        Some(Err(e)) => return Err(CollectError::Other(format!("qdisc: {e}"))),
        Some(Ok(s)) => s,
    };
    let names = interface_names(paths);
    let mut guard = sock.lock().unwrap_or_else(|p| p.into_inner());
    let (socket, seq) = &mut *guard;
    let err = |what: &str, e: std::io::Error| CollectError::Other(format!("qdisc: {what}: {e}"));
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    // Whatever an interrupted dump left behind.
    loop {
        buf.clear();
        match socket.recv(&mut buf, libc::MSG_DONTWAIT) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(err("draining the rtnetlink socket", e)),
        }
    }
    *seq = seq.wrapping_add(1);
    socket
        .send(&dump_request(*seq), 0)
        .map_err(|e| err("sending RTM_GETQDISC", e))?;
    let mut out = Vec::new();
    loop {
        buf.clear();
        let n = socket
            .recv(&mut buf, 0)
            .map_err(|e| err("reading the RTM_GETQDISC dump", e))?;
        if n > buf.len() {
            return Err(CollectError::Other(format!(
                "qdisc: rtnetlink datagram of {n} bytes truncated"
            )));
        }
        if parse_datagram(&buf, *seq, &names, &mut out).map_err(CollectError::Other)? {
            return Ok(out);
        }
    }
}

impl Collector for Qdisc {
    fn name(&self) -> &'static str {
        "qdisc"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let Some(dir) = &paths.collector_files.qdisc_fixtures else {
            return Ok(families(&live(paths)?, &self.filter));
        };
        let path = dir.join("results.json");
        let text = read_to_string(&path)?;
        let qdiscs = parse_fixture(&text).map_err(|m| CollectError::parse(&path, m))?;
        Ok(families(&qdiscs, &self.filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::fixture;

    fn paths() -> Paths {
        let mut p = Paths::default();
        p.collector_files.qdisc_fixtures = Some(fixture("ne112", "qdisc"));
        p
    }

    #[test]
    fn node_exporter_112_e2e_fixture_and_flags() {
        // end-to-end-test.sh: --collector.qdisc.device-include=(wlan0|eth0).
        let mut o = Options::default();
        o.qdisc.device_include = Some("(wlan0|eth0)".parse().expect("pattern"));
        let fams = collector(&o).collect(&paths()).expect("collects");
        assert_eq!(ne112::render(&fams), ne112::expected("node_qdisc_"));
        o.qdisc.device_include = Some("^eth".parse().expect("pattern"));
        let fams = collector(&o).collect(&paths()).expect("collects");
        assert!(fams.iter().all(|f| f.samples.len() == 1));
    }

    #[test]
    fn only_root_qdiscs_and_bad_json_fails() {
        let q = parse_fixture(r#"[{"IfaceName":"a","Parent":1},{"ifacename":"b","kind":"fq"}]"#)
            .expect("parses");
        let fams = families(&q, &DeviceFilter::default());
        assert_eq!(fams.len(), 7);
        assert!(fams.iter().all(|f| f.samples.len() == 1));
        assert!(parse_fixture(r#"[{"Bytes":"1"}]"#).is_err());
        assert!(parse_fixture(r#"{"Bytes":1}"#).is_err());
        assert!(parse_fixture("[").is_err());
    }

    #[test]
    fn dump_messages_as_ema_qdisc_reads_them() {
        use netlink_packet_route::tc::{TcHandle, TcStats, TcStatsBasic, TcStatsQueue};
        let mut basic = TcStatsBasic::default();
        (basic.bytes, basic.packets) = (1000, 10);
        let mut queue = TcStatsQueue::default();
        (
            queue.qlen,
            queue.backlog,
            queue.drops,
            queue.requeues,
            queue.overlimits,
        ) = (1, 2, 3, 4, 5);
        let mut legacy = TcStats::default();
        (
            legacy.bytes,
            legacy.packets,
            legacy.drops,
            legacy.overlimits,
        ) = (1000, 10, 3, 5);
        (legacy.qlen, legacy.backlog) = (1, 2);
        let mut tc = TcMessage::default();
        tc.header.index = 2;
        tc.header.parent = TcHandle::from(u32::MAX);
        tc.attributes = vec![
            TcAttribute::Kind("fq_codel".into()),
            TcAttribute::Stats2(vec![TcStats2::Basic(basic), TcStats2::Queue(queue)]),
            TcAttribute::Stats(legacy),
        ];
        let mut header = NetlinkHeader::default();
        header.sequence_number = 7;
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewQueueDiscipline(tc)),
        );
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        let names: HashMap<i32, String> = [(2, "eth0".to_string())].into();
        let mut out = Vec::new();
        assert_eq!(parse_datagram(&buf, 7, &names, &mut out), Ok(false));
        assert_eq!(
            out,
            [QdiscInfo {
                iface_name: "eth0".into(),
                parent: 0,
                kind: "fq_codel".into(),
                bytes: 1000,
                packets: 10,
                drops: 3,
                requeues: 4,
                overlimits: 5,
                qlen: 1,
                backlog: 2,
            }]
        );
        // Another sequence number is left alone; garbage is an error, not a panic.
        let mut other = Vec::new();
        assert_eq!(parse_datagram(&buf, 8, &names, &mut other), Ok(false));
        assert!(other.is_empty());
        assert!(parse_datagram(&[1, 2, 3], 7, &names, &mut other).is_err());
        assert!(!dump_request(1).is_empty());
    }

    #[test]
    fn live_mode_without_a_socket_says_why() {
        // The unit tests never open the socket (that is start-up's, before the sandbox).
        let e = collector(&Options::default())
            .collect(&Paths::default())
            .expect_err("no socket");
        assert!(e.to_string().contains("rtnetlink socket"), "{e}");
        assert!(!e.is_no_data());
    }

    #[test]
    fn deprecated_alias_and_exclusivity() {
        let mut o = QdiscOptions {
            qdisk_device_include: Some("eth0".parse().expect("pattern")),
            ..Default::default()
        };
        use crate::collector::options::Merge;
        assert!(o.check().is_ok());
        o.device_include = Some("x".parse().expect("pattern"));
        assert!(o.check().is_err());
        o.device_include = None;
        o.device_exclude = Some("x".parse().expect("pattern"));
        assert!(o.check().is_err());
    }
}
