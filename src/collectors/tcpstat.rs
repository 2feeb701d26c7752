//! `tcpstat` collector (off by default): TCP sockets per state and their queued bytes, from
//! sock_diag dumps (`SOCK_DIAG_BY_FAMILY` over `NETLINK_SOCK_DIAG`, IPv4, then IPv6 when
//! `<procfs>/net/tcp6` exists), as node_exporter 1.12's `tcpstat_linux.go`:
//! `node_tcp_connection_states{state}` (HELP `Number of connection states.`), with the
//! pseudo-states `rx_queued_bytes` and `tx_queued_bytes` (the sums of the sockets' receive and
//! send queues). A state appears when at least one socket is in it. node_exporter 1.12 has no
//! `--collector.tcpstat.*` option; neither has this collector.
//!
//! The dumps need the `netlink-sock-diag` policy fragment
//! (`policy/fragments/netlink-sock-diag.json`), in force only when this collector is enabled.
//! No extension is requested (node_exporter asks for `INET_DIAG_INFO` and does not read it):
//! the counts are the same, the kernel does less work.

use std::collections::BTreeMap;

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// `TCPF_ALL`: every state bit node_exporter asks for (`TCP_ESTABLISHED` .. `TCP_CLOSING`).
const TCPF_ALL: u32 = 0xFFF;

/// node_exporter's name of a `tcp_states` value. Its enum continues past `TCP_CLOSING` with its
/// two pseudo-states, so a socket in state 12 or 13 would be counted under them, as there.
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        12 => "rx_queued_bytes",
        13 => "tx_queued_bytes",
        _ => "unknown",
    }
}

/// Adds one dump's sockets to `stats`: (state, receive queue, send queue) per socket.
pub fn add(stats: &mut BTreeMap<&'static str, f64>, sockets: &[(u8, u32, u32)]) {
    for (state, rq, wq) in sockets {
        *stats.entry("tx_queued_bytes").or_insert(0.0) += f64::from(*wq);
        *stats.entry("rx_queued_bytes").or_insert(0.0) += f64::from(*rq);
        *stats.entry(state_name(*state)).or_insert(0.0) += 1.0;
    }
}

pub fn families(stats: &BTreeMap<&'static str, f64>) -> Vec<MetricFamily> {
    let mut fam = MetricFamily::gauge("node_tcp_connection_states", "Number of connection states.");
    for (state, v) in stats {
        fam.push(&[("state", state)], *v);
    }
    vec![fam]
}

/// One `SOCK_DIAG_BY_FAMILY` dump of the TCP sockets of `family`.
fn dump(family: u8) -> Result<Vec<(u8, u32, u32)>, CollectError> {
    let request = SockDiagMessage::InetRequest(InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::from_bits_retain(TCPF_ALL),
        socket_id: if family == AF_INET6 {
            SocketId::new_v6()
        } else {
            SocketId::new_v4()
        },
    });
    let answer = super::netlink::dump(
        super::netlink::NETLINK_SOCK_DIAG,
        "SOCK_DIAG_BY_FAMILY",
        request,
    )?;
    Ok(answer
        .into_iter()
        .filter_map(|m| match m {
            SockDiagMessage::InetResponse(r) => {
                Some((r.header.state, r.header.recv_queue, r.header.send_queue))
            }
            _ => None,
        })
        .collect())
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(TcpStat)
}

pub struct TcpStat;

impl Collector for TcpStat {
    fn name(&self) -> &'static str {
        "tcpstat"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut stats = BTreeMap::new();
        add(&mut stats, &dump(AF_INET)?);
        // IPv6 when the kernel has it, as node_exporter decides.
        if paths.proc("net/tcp6").exists() {
            add(&mut stats, &dump(AF_INET6)?);
        }
        Ok(families(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_states_and_queues() {
        let mut stats = BTreeMap::new();
        add(&mut stats, &[(1, 10, 3), (1, 0, 0), (10, 0, 0), (6, 0, 0)]);
        add(&mut stats, &[(10, 0, 0), (8, 5, 1)]);
        let text = crate::collectors::testutil::render(families(&stats));
        let want = "# HELP node_tcp_connection_states Number of connection states.
# TYPE node_tcp_connection_states gauge
node_tcp_connection_states{state=\"close_wait\"} 1
node_tcp_connection_states{state=\"established\"} 2
node_tcp_connection_states{state=\"listen\"} 2
node_tcp_connection_states{state=\"rx_queued_bytes\"} 15
node_tcp_connection_states{state=\"time_wait\"} 1
node_tcp_connection_states{state=\"tx_queued_bytes\"} 4
";
        assert_eq!(text, want);
        assert_eq!(state_name(0), "unknown");
        assert!(families(&BTreeMap::new())[0].samples.is_empty());
    }

    /// Unsandboxed (a unit test): a listening socket of our own is counted.
    #[test]
    fn live() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let fams = TcpStat.collect(&Paths::default()).expect("dumps");
        let listen = fams[0]
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(_, v)| v == "listen"))
            .map(|s| s.value);
        assert!(listen.is_some_and(|n| n >= 1.0), "{fams:?}");
        drop(l);
    }
}
