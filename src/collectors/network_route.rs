//! `network_route` collector (off by default): the unicast routes of every table, over
//! rtnetlink (`RTM_GETROUTE` and `RTM_GETLINK` dumps) as node_exporter 1.12's
//! `network_route_linux.go` does: `node_network_route_info{dest,device,gw,priority,proto,src,
//! weight} 1` and `node_network_routes{device}`. A multipath route gives one sample per next
//! hop, with `weight` = the hop's `rtnh_hops` + 1; other routes have an empty `weight`.
//!
//! The dumps need the `netlink-route` policy fragment (`policy/fragments/netlink-route.json`),
//! in force only when this collector is enabled. (Before node_exporter 1.12 parity this
//! collector read `/proc/net/route` and `/proc/net/ipv6_route` and inferred `proto`; the
//! kernel's own protocol, other tables and multipath hops are what netlink adds.)

use std::collections::HashMap;
use std::net::IpAddr;

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// One sample of `node_network_route_info`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dest: String,
    pub device: String,
    pub gw: String,
    pub priority: String,
    pub proto: &'static str,
    pub src: String,
    pub weight: String,
}

/// `rtm_protocol` as node_exporter names it (`networkRouteProtocolToString`).
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "mrouted",
        42 => "babel",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        _ => "unknown",
    }
}

/// An address as Go's `net.IP.String()` prints it (an IPv4-mapped IPv6 address in dotted
/// form); empty for none.
fn ip(a: Option<&RouteAddress>) -> String {
    let ip = match a {
        Some(RouteAddress::Inet(v4)) => IpAddr::V4(*v4),
        Some(RouteAddress::Inet6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(*v6),
        },
        _ => return String::new(),
    };
    ip.to_string()
}

/// The destination as node_exporter prints it: `default` for prefix length 0, else
/// `address/length`.
fn dest(a: Option<&RouteAddress>, len: u8) -> String {
    if len == 0 {
        return "default".into();
    }
    let addr = ip(a);
    if addr.is_empty() {
        // Go's IPNet.String() of a nil IP with a mask.
        return format!("<nil>/{len}");
    }
    format!("{addr}/{len}")
}

/// The samples of a route dump; `names` maps interface indexes to names (an unknown index
/// gives an empty `device`, as node_exporter).
pub fn routes(dump: &[RouteMessage], names: &HashMap<u32, String>) -> Vec<Route> {
    let mut out = Vec::new();
    for r in dump {
        if r.header.kind != RouteType::Unicast {
            continue;
        }
        let (mut dst, mut src, mut gw, mut oif, mut priority, mut hops) =
            (None, None, None, None, 0u32, None);
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = Some(d),
                RouteAttribute::PrefSource(s) => src = Some(s),
                RouteAttribute::Gateway(g) => gw = Some(g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => priority = *p,
                RouteAttribute::MultiPath(h) if !h.is_empty() => hops = Some(h),
                _ => {}
            }
        }
        let name = |i: Option<u32>| i.and_then(|i| names.get(&i).cloned()).unwrap_or_default();
        let base = Route {
            dest: dest(dst, r.header.destination_prefix_length),
            device: String::new(),
            gw: String::new(),
            priority: priority.to_string(),
            proto: protocol_name(u8::from(r.header.protocol)),
            src: ip(src),
            weight: String::new(),
        };
        match hops {
            Some(hops) => {
                for h in hops {
                    let hop_gw = h.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => Some(g),
                        _ => None,
                    });
                    out.push(Route {
                        device: name(Some(h.interface_index)),
                        gw: ip(hop_gw),
                        weight: (u32::from(h.hops) + 1).to_string(),
                        ..base.clone()
                    });
                }
            }
            None => out.push(Route {
                device: name(oif),
                gw: ip(gw),
                ..base
            }),
        }
    }
    out
}

pub fn families(mut routes: Vec<Route>) -> Vec<MetricFamily> {
    routes.sort();
    routes.dedup();
    let mut info = MetricFamily::gauge(
        "node_network_route_info",
        "network routing table information",
    );
    let mut per_dev: Vec<(&str, u32)> = Vec::new();
    for r in &routes {
        info.push(
            &[
                ("dest", &r.dest),
                ("device", &r.device),
                ("gw", &r.gw),
                ("priority", &r.priority),
                ("proto", r.proto),
                ("src", &r.src),
                ("weight", &r.weight),
            ],
            1.0,
        );
        match per_dev.iter_mut().find(|(d, _)| *d == r.device) {
            Some((_, n)) => *n += 1,
            None => per_dev.push((&r.device, 1)),
        }
    }
    per_dev.sort();
    let mut count = MetricFamily::gauge("node_network_routes", "network routes by interface");
    for (dev, n) in per_dev {
        count.push(&[("device", dev)], n as f64);
    }
    vec![info, count]
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(NetworkRoute)
}

pub struct NetworkRoute;

impl Collector for NetworkRoute {
    fn name(&self) -> &'static str {
        "network_route"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        use super::netlink::route as rtnl;
        let names = rtnl::names(&rtnl::links()?);
        Ok(families(routes(&rtnl::routes()?, &names)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteNextHop, RouteProtocol};
    use netlink_packet_route::AddressFamily;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn route(
        family: AddressFamily,
        len: u8,
        proto: RouteProtocol,
        kind: RouteType,
        attrs: Vec<RouteAttribute>,
    ) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = family;
        r.header.destination_prefix_length = len;
        r.header.protocol = proto;
        r.header.kind = kind;
        r.attributes = attrs;
        r
    }

    #[test]
    fn as_node_exporter_labels_them() {
        let names: HashMap<u32, String> = [
            (1, "lo".to_string()),
            (2, "eth0".to_string()),
            (3, "eth1".to_string()),
        ]
        .into();
        let v4 = |a, b, c, d| RouteAddress::Inet(Ipv4Addr::new(a, b, c, d));
        let mut hop1 = RouteNextHop::default();
        hop1.interface_index = 2;
        hop1.hops = 0;
        hop1.attributes = vec![RouteAttribute::Gateway(v4(10, 0, 0, 1))];
        let mut hop2 = RouteNextHop::default();
        hop2.interface_index = 3;
        hop2.hops = 4;
        hop2.attributes = vec![RouteAttribute::Gateway(v4(10, 1, 0, 1))];
        let dump = vec![
            // default via 192.168.1.1 dev eth0 proto dhcp src 192.168.1.7 metric 100
            route(
                AddressFamily::Inet,
                0,
                RouteProtocol::Dhcp,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Gateway(v4(192, 168, 1, 1)),
                    RouteAttribute::PrefSource(v4(192, 168, 1, 7)),
                    RouteAttribute::Oif(2),
                    RouteAttribute::Priority(100),
                ],
            ),
            // 192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.7
            route(
                AddressFamily::Inet,
                24,
                RouteProtocol::Kernel,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(v4(192, 168, 1, 0)),
                    RouteAttribute::PrefSource(v4(192, 168, 1, 7)),
                    RouteAttribute::Oif(2),
                ],
            ),
            // local 127.0.0.1 dev lo table local: not unicast
            route(
                AddressFamily::Inet,
                32,
                RouteProtocol::Kernel,
                RouteType::Local,
                vec![
                    RouteAttribute::Destination(v4(127, 0, 0, 1)),
                    RouteAttribute::Oif(1),
                ],
            ),
            // 10.9.0.0/16 proto bird nexthop via 10.0.0.1 dev eth0 weight 1 nexthop via
            // 10.1.0.1 dev eth1 weight 5
            route(
                AddressFamily::Inet,
                16,
                RouteProtocol::Bird,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(v4(10, 9, 0, 0)),
                    RouteAttribute::MultiPath(vec![hop1, hop2]),
                ],
            ),
            // 2001:db8::/64 dev eth1 proto ra metric 1024 via fe80::1
            route(
                AddressFamily::Inet6,
                64,
                RouteProtocol::Ra,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet6(
                        "2001:db8::".parse::<Ipv6Addr>().expect("v6"),
                    )),
                    RouteAttribute::Gateway(RouteAddress::Inet6(
                        "fe80::1".parse::<Ipv6Addr>().expect("v6"),
                    )),
                    RouteAttribute::Oif(3),
                    RouteAttribute::Priority(1024),
                ],
            ),
        ];
        let text = crate::collectors::testutil::render(families(routes(&dump, &names)));
        let got: Vec<&str> = text.lines().collect();
        let want = [
            "node_network_route_info{dest=\"10.9.0.0/16\",device=\"eth0\",gw=\"10.0.0.1\",priority=\"0\",proto=\"bird\",src=\"\",weight=\"1\"} 1",
            "node_network_route_info{dest=\"10.9.0.0/16\",device=\"eth1\",gw=\"10.1.0.1\",priority=\"0\",proto=\"bird\",src=\"\",weight=\"5\"} 1",
            "node_network_route_info{dest=\"192.168.1.0/24\",device=\"eth0\",gw=\"\",priority=\"0\",proto=\"kernel\",src=\"192.168.1.7\",weight=\"\"} 1",
            "node_network_route_info{dest=\"2001:db8::/64\",device=\"eth1\",gw=\"fe80::1\",priority=\"1024\",proto=\"ra\",src=\"\",weight=\"\"} 1",
            "node_network_route_info{dest=\"default\",device=\"eth0\",gw=\"192.168.1.1\",priority=\"100\",proto=\"dhcp\",src=\"192.168.1.7\",weight=\"\"} 1",
            "node_network_routes{device=\"eth0\"} 3",
            "node_network_routes{device=\"eth1\"} 2",
        ];
        for w in want {
            assert!(got.contains(&w), "missing {w} in {got:#?}");
        }
        let samples = got.iter().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, want.len(), "{got:#?}");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(protocol_name(2), "kernel");
        assert_eq!(protocol_name(16), "dhcp");
        assert_eq!(protocol_name(99), "unknown");
    }

    /// Unsandboxed (a unit test): the dump works and the host has at least one route.
    #[test]
    fn live() {
        let fams = NetworkRoute.collect(&Paths::default()).expect("dumps");
        assert!(!fams[0].samples.is_empty());
    }
}
