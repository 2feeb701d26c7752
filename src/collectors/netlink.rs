//! The netlink transport the netlink collectors share: one request with `NLM_F_DUMP`, the
//! answers read until `NLMSG_DONE`, on a socket opened for the scrape and closed after it.
//!
//! Messages are built and parsed by the rust-netlink crates (`netlink-packet-route` for
//! rtnetlink, `netlink-packet-sock-diag` for sock_diag, over `netlink-packet-core`); the socket
//! is `netlink-sys`'s. Why these and not neli: they are the crates `rtnetlink`/`iproute2`-style
//! Rust tools use, maintained together by the rust-netlink organisation, with typed
//! `RTM_GETLINK`/`RTM_GETADDR`/`RTM_GETNEIGH`/`RTM_GETROUTE` and `SOCK_DIAG_BY_FAMILY` messages (neli would
//! have us declare the rtnetlink attribute layouts ourselves), and their socket does exactly
//! what the policy fragments allow and nothing more.
//!
//! System calls, all under the sandbox (`policy/fragments/netlink-route.json`,
//! `netlink-sock-diag.json`, `netlink-generic.json` for wifi's nl80211 requests, whose generic
//! netlink messages `wifi_nl80211.rs` builds over netlink-packet-core):
//! `socket(AF_NETLINK, SOCK_DGRAM|SOCK_CLOEXEC, protocol)`
//! (`netlink_sys::Socket::new`) for the fragment's one protocol; no `bind` (the kernel binds
//! the socket to a free port id on the first `send`, `netlink_autobind`), `send` (the base
//! policy's `sendto` with no address: the kernel is the default destination), `recv` (the base
//! policy's `recvfrom`), `close`.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::Socket;

use super::CollectError;

/// `NETLINK_ROUTE`: links, addresses, neighbours, routes (fragment `netlink_route`).
pub const NETLINK_ROUTE: isize = netlink_sys::protocols::NETLINK_ROUTE;
/// `NETLINK_SOCK_DIAG` (`NETLINK_INET_DIAG`): socket dumps (fragment `netlink_sock_diag`).
pub const NETLINK_SOCK_DIAG: isize = netlink_sys::protocols::NETLINK_SOCK_DIAG;
/// `NETLINK_GENERIC`: generic netlink families, nl80211 for `wifi` (fragment `netlink_generic`).
pub const NETLINK_GENERIC: isize = netlink_sys::protocols::NETLINK_GENERIC;

/// Receive buffer: the kernel sizes a dump's messages to the reader's buffer up to 32 KiB
/// (`netlink_recvmsg`, `max_recvmsg_len`), so 64 KiB never truncates one.
const RECV_BUFFER: usize = 64 * 1024;

/// At most this many datagrams per dump: a kernel that never sends `NLMSG_DONE` cannot keep a
/// scrape reading forever (the per-collector deadline answers the scrape; this ends the thread).
const MAX_DATAGRAMS: usize = 1 << 16;

fn err(what: &str, e: impl std::fmt::Display) -> CollectError {
    CollectError::Other(format!("netlink {what}: {e}"))
}

/// Sends `request` as a dump request over a new socket of `protocol` and returns every inner
/// message of the answer. `what` names the dump in errors (`RTM_GETLINK`).
pub fn dump<T>(protocol: isize, what: &str, request: T) -> Result<Vec<T>, CollectError>
where
    T: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
{
    exchange(protocol, what, request, NLM_F_DUMP).map_err(|e| match e {
        Failure::Kernel(e) => err(what, e),
        Failure::Transport(e) => e,
    })
}

/// Why an [`exchange`] failed: the kernel's answer was an error (its errno, e.g. `ENOENT` for
/// a generic netlink family that is not registered), or the exchange itself failed.
#[derive(Debug)]
pub enum Failure {
    Kernel(std::io::Error),
    Transport(CollectError),
}

/// Sends `request` with `NLM_F_REQUEST | flags` over a new socket of `protocol`: with
/// `NLM_F_DUMP` every inner message until `NLMSG_DONE`, without it the one answer (the
/// kernel's reply to a plain request is a single message, in one datagram).
pub fn exchange<T>(protocol: isize, what: &str, request: T, flags: u16) -> Result<Vec<T>, Failure>
where
    T: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
{
    let fail = |m: String| Failure::Transport(err(what, m));
    let socket = Socket::new(protocol).map_err(|e| fail(format!("socket: {e}")))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    packet.finalize();
    let mut out = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut out);
    let sent = socket
        .send(&out, 0)
        .map_err(|e| fail(format!("send: {e}")))?;
    if sent != out.len() {
        return Err(fail(format!("sent {sent} of {} bytes", out.len())));
    }
    let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut found = Vec::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    for _ in 0..MAX_DATAGRAMS {
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| fail(format!("recv: {e}")))?;
        let mut rest = buf.get(..n).unwrap_or_default();
        if rest.is_empty() {
            return Err(fail("the kernel closed the dump without NLMSG_DONE".into()));
        }
        while !rest.is_empty() {
            let msg = NetlinkMessage::<T>::deserialize(rest)
                .map_err(|e| fail(format!("bad message: {e}")))?;
            let len = msg.header.length as usize;
            // NLMSG_ALIGN: messages in a datagram start on 4-byte boundaries.
            let step = len.div_ceil(4).saturating_mul(4);
            if len == 0 {
                return Err(fail("a message of length 0".into()));
            }
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(found),
                // An error message with code 0 is an acknowledgement.
                NetlinkPayload::Error(e) if e.code.is_none() => {}
                NetlinkPayload::Error(e) => return Err(Failure::Kernel(e.to_io())),
                NetlinkPayload::InnerMessage(m) => found.push(m),
                _ => {}
            }
            rest = rest.get(step..).unwrap_or_default();
        }
        if !is_dump {
            return Ok(found);
        }
    }
    Err(fail(format!(
        "no NLMSG_DONE after {MAX_DATAGRAMS} datagrams"
    )))
}

/// A netlink-mode flag's value (`--collector.<name>.netlink[=BOOL]`), or `true`/`false`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, not '{s}'")),
    }
}

/// A netlink mode from `--collector.X.netlink[=BOOL]` and node_exporter's negation
/// `--no-collector.X.netlink` (the later one wins on the command line: clap's
/// `overrides_with`). Off unless asked for: see README, "netlink modes".
pub fn flag(on: Option<bool>, no: Option<bool>) -> bool {
    match (on, no) {
        (_, Some(true)) => false,
        (Some(v), _) => v,
        _ => false,
    }
}

/// `rtnl_link_stats` widened to `rtnl_link_stats64` (`IFLA_STATS` when a driver gives no
/// `IFLA_STATS64`), as node_exporter does.
pub fn stats64_of(s: &netlink_packet_route::link::Stats) -> netlink_packet_route::link::Stats64 {
    let mut o = netlink_packet_route::link::Stats64::default();
    o.rx_packets = s.rx_packets.into();
    o.tx_packets = s.tx_packets.into();
    o.rx_bytes = s.rx_bytes.into();
    o.tx_bytes = s.tx_bytes.into();
    o.rx_errors = s.rx_errors.into();
    o.tx_errors = s.tx_errors.into();
    o.rx_dropped = s.rx_dropped.into();
    o.tx_dropped = s.tx_dropped.into();
    o.multicast = s.multicast.into();
    o.collisions = s.collisions.into();
    o.rx_length_errors = s.rx_length_errors.into();
    o.rx_over_errors = s.rx_over_errors.into();
    o.rx_crc_errors = s.rx_crc_errors.into();
    o.rx_frame_errors = s.rx_frame_errors.into();
    o.rx_fifo_errors = s.rx_fifo_errors.into();
    o.rx_missed_errors = s.rx_missed_errors.into();
    o.tx_aborted_errors = s.tx_aborted_errors.into();
    o.tx_carrier_errors = s.tx_carrier_errors.into();
    o.tx_fifo_errors = s.tx_fifo_errors.into();
    o.tx_heartbeat_errors = s.tx_heartbeat_errors.into();
    o.tx_window_errors = s.tx_window_errors.into();
    o.rx_compressed = s.rx_compressed.into();
    o.tx_compressed = s.tx_compressed.into();
    o.rx_nohandler = s.rx_nohandler.into();
    o
}

/// rtnetlink dumps (`NETLINK_ROUTE`, fragment `netlink_route`).
pub mod route {
    use netlink_packet_route::address::AddressMessage;
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::neighbour::NeighbourMessage;
    use netlink_packet_route::route::RouteMessage;
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

    use super::{dump, NETLINK_ROUTE};
    use crate::collectors::CollectError;

    /// `RTM_GETLINK` dump: every interface with its attributes (name, statistics, ...).
    pub fn links() -> Result<Vec<LinkMessage>, CollectError> {
        let answer = dump(
            NETLINK_ROUTE,
            "RTM_GETLINK",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// `RTM_GETNEIGH` dump of one address family.
    pub fn neighbours(family: AddressFamily) -> Result<Vec<NeighbourMessage>, CollectError> {
        let mut req = NeighbourMessage::default();
        req.header.family = family;
        let answer = dump(
            NETLINK_ROUTE,
            "RTM_GETNEIGH",
            RouteNetlinkMessage::GetNeighbour(req),
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// `RTM_GETROUTE` dump: every table, both address families.
    pub fn routes() -> Result<Vec<RouteMessage>, CollectError> {
        let answer = dump(
            NETLINK_ROUTE,
            "RTM_GETROUTE",
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// `RTM_GETADDR` dump: every address of both families (netdev's
    /// `--collector.netdev.address-info`, as Go's `Interface.Addrs()`).
    pub fn addresses() -> Result<Vec<AddressMessage>, CollectError> {
        let answer = dump(
            NETLINK_ROUTE,
            "RTM_GETADDR",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Interface index to name, from a link dump.
    pub fn names(links: &[LinkMessage]) -> std::collections::HashMap<u32, String> {
        links
            .iter()
            .filter_map(|l| Some((l.header.index, name(l)?.to_string())))
            .collect()
    }

    /// The interface's name (`IFLA_IFNAME`).
    pub fn name(l: &LinkMessage) -> Option<&str> {
        l.attributes.iter().find_map(|a| match a {
            netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        })
    }
}
