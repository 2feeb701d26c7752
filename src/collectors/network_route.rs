//! `network_route` collector (off by default): the unicast routes as node_exporter 1.5's
//! `network_route_linux.go` exports them (`node_network_route_info{dest,device,gw,priority,
//! proto,src,weight} 1` and `node_network_routes{device}`).
//!
//! node_exporter dumps the routes over rtnetlink. The sandbox allows no netlink socket, so this
//! collector reads the same tables from procfs instead:
//!
//! - IPv4: `/proc/net/route` (the main table), with the preferred source of a directly
//!   connected route taken from the local addresses listed in `/proc/net/fib_trie` (the lowest
//!   local address inside the route's prefix; the kernel's is the interface's primary one);
//! - IPv6: `/proc/net/ipv6_route` (every table), without local, anycast, multicast
//!   (`ff00::/8`), cached and reject entries (rtnetlink's non-unicast types).
//!
//! What procfs does not say is inferred, and documented here as the known deviations: the
//! routing protocol (`proto`) is `kernel` for a route without gateway, `ra` for an IPv6 route
//! learned from router advertisements (`RTF_ADDRCONF`/`RTF_ROUTEINFO`) and `boot` for any other
//! route with a gateway (routes installed by a DHCP client or a routing daemon are thus
//! reported as `boot`/`kernel`, where node_exporter says `dhcp`, `static`, `bird`, …). IPv4
//! routes of tables other than `main` (policy routing) are not listed by `/proc/net/route`, and
//! an IPv4 multipath route appears once, with its first next hop (node_exporter: one sample per
//! hop, `weight` set). `weight` is always empty.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

/// One route, as node_exporter labels it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dest: String,
    pub device: String,
    pub gw: String,
    pub priority: String,
    pub proto: &'static str,
    pub src: String,
}

const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;
const RTF_ROUTEINFO: u32 = 0x0002_0000;
const RTF_ADDRCONF: u32 = 0x0004_0000;
const RTF_ANYCAST: u32 = 0x0010_0000;
const RTF_CACHE: u32 = 0x0100_0000;
const RTF_LOCAL: u32 = 0x8000_0000;

/// An IPv4 address as `/proc/net/route` prints it: the in-memory (network order) bytes read
/// as a native-endian number.
fn route_v4(hex: &str) -> Result<Ipv4Addr, String> {
    let v = u32::from_str_radix(hex, 16).map_err(|_| format!("bad IPv4 field {hex:?}"))?;
    Ok(Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parses `/proc/net/route`. `locals` are the host's IPv4 addresses (for `src`).
pub fn parse_route(text: &str, locals: &[Ipv4Addr]) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let &[device, dest, gw, flags, _, _, metric, mask, ..] = f.as_slice() else {
            return Err(format!("too few fields in line {line:?}"));
        };
        let dest = route_v4(dest)?;
        let gw = route_v4(gw)?;
        let flags = u32::from_str_radix(flags, 16).map_err(|_| format!("bad flags {flags:?}"))?;
        let metric: u32 = metric
            .parse()
            .map_err(|_| format!("bad metric {metric:?}"))?;
        let mask = route_v4(mask)?;
        if flags & RTF_REJECT != 0 {
            continue;
        }
        let prefix = u32::from(mask).count_ones();
        let has_gw = flags & RTF_GATEWAY != 0;
        let src = if has_gw {
            String::new()
        } else {
            let net = u32::from(dest) & u32::from(mask);
            locals
                .iter()
                .find(|a| u32::from(**a) & u32::from(mask) == net && prefix > 0)
                .map(|a| a.to_string())
                .unwrap_or_default()
        };
        out.push(Route {
            dest: if prefix == 0 {
                "default".into()
            } else {
                format!("{dest}/{prefix}")
            },
            device: device.to_string(),
            gw: if has_gw {
                gw.to_string()
            } else {
                String::new()
            },
            priority: metric.to_string(),
            proto: if has_gw { "boot" } else { "kernel" },
            src,
        });
    }
    Ok(out)
}

fn v6(hex: &str) -> Result<Ipv6Addr, String> {
    let v = u128::from_str_radix(hex, 16).map_err(|_| format!("bad IPv6 field {hex:?}"))?;
    if hex.len() != 32 {
        return Err(format!("bad IPv6 field {hex:?}"));
    }
    Ok(Ipv6Addr::from(v))
}

/// Parses `/proc/net/ipv6_route`: dest, dest prefix, src, src prefix, next hop, metric,
/// refcount, use, flags, device (hex but the device).
pub fn parse_ipv6_route(text: &str) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let &[dest, prefix, _, _, gw, metric, _, _, flags, device] = f.as_slice() else {
            return Err(format!("expected 10 fields in line {line:?}"));
        };
        let dest = v6(dest)?;
        let prefix =
            u8::from_str_radix(prefix, 16).map_err(|_| format!("bad prefix {prefix:?}"))?;
        let gw = v6(gw)?;
        let metric =
            u32::from_str_radix(metric, 16).map_err(|_| format!("bad metric {metric:?}"))?;
        let flags = u32::from_str_radix(flags, 16).map_err(|_| format!("bad flags {flags:?}"))?;
        if flags & (RTF_REJECT | RTF_LOCAL | RTF_ANYCAST | RTF_CACHE) != 0
            || dest.segments()[0] & 0xff00 == 0xff00
        {
            continue;
        }
        let has_gw = flags & RTF_GATEWAY != 0;
        let proto = if flags & (RTF_ADDRCONF | RTF_ROUTEINFO) != 0 && has_gw
            || flags & RTF_ROUTEINFO != 0
        {
            "ra"
        } else if has_gw {
            "boot"
        } else {
            "kernel"
        };
        out.push(Route {
            dest: if prefix == 0 {
                "default".into()
            } else {
                format!("{dest}/{prefix}")
            },
            device: device.to_string(),
            gw: if has_gw {
                gw.to_string()
            } else {
                String::new()
            },
            priority: metric.to_string(),
            proto,
            src: String::new(),
        });
    }
    Ok(out)
}

/// The host's local IPv4 addresses from `/proc/net/fib_trie` (the `/32 host LOCAL` leaves),
/// sorted and deduplicated.
pub fn parse_fib_trie_locals(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last_leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last_leaf = ip.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last_leaf {
                out.push(ip);
            }
        } else if t.starts_with("+--") {
            last_leaf = None;
        }
    }
    out.sort();
    out.dedup();
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
                ("weight", ""),
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

/// Reads a file, `None` when it does not exist.
fn read_optional(path: &std::path::Path) -> Result<Option<String>, CollectError> {
    match super::fsio::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(NetworkRoute)
}

pub struct NetworkRoute;

impl Collector for NetworkRoute {
    fn name(&self) -> &'static str {
        "network_route"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let p4 = paths.proc("net/route");
        let p6 = paths.proc("net/ipv6_route");
        let v4 = read_optional(&p4)?;
        let v6 = read_optional(&p6)?;
        if v4.is_none() && v6.is_none() {
            return Err(CollectError::io(
                &p4,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let mut routes = Vec::new();
        if let Some(text) = v4 {
            let locals = read_optional(&paths.proc("net/fib_trie"))?
                .map(|t| parse_fib_trie_locals(&t))
                .unwrap_or_default();
            routes = parse_route(&text, &locals).map_err(|m| CollectError::parse(&p4, m))?;
        }
        if let Some(text) = v6 {
            routes.extend(parse_ipv6_route(&text).map_err(|m| CollectError::parse(&p6, m))?);
        }
        Ok(families(routes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::lines::{parse, render};
    use crate::collectors::testutil::procfs;

    #[test]
    fn debian12_matches_node_exporter() {
        let fams = NetworkRoute
            .collect(&procfs("net", "debian12-vm-6.18/proc"))
            .expect("collects");
        let expected = include_str!(
            "../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-network_route.txt"
        );
        assert_eq!(render(&fams), parse(expected));
    }

    #[test]
    fn fib_trie_locals() {
        let t = include_str!("../../tests/fixtures/net/debian12-vm-6.18/proc/net/fib_trie");
        assert_eq!(
            parse_fib_trie_locals(t),
            [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
    }

    #[test]
    fn ipv6_kinds() {
        let text = "\
20010db8000000000000000000000000 20 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0
20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00100001     eth0
20010db8000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 01000001     eth0
";
        let r = parse_ipv6_route(text).expect("parses");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dest, "2001:db8::/32");
        assert_eq!(r[0].gw, "fe80::1");
        assert_eq!(r[0].priority, "1024");
        assert_eq!(r[0].proto, "boot");
        assert_eq!(r[1].dest, "default");
        assert_eq!(r[1].proto, "ra");
    }

    #[test]
    fn ipv4_routes() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
*\t0000000A\t00000000\t0201\t0\t0\t0\t000000FF\t0\t0\t0
";
        let locals = [Ipv4Addr::new(192, 168, 1, 7)];
        let r = parse_route(text, &locals).expect("parses");
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            Route {
                dest: "default".into(),
                device: "eth0".into(),
                gw: "192.168.1.1".into(),
                priority: "100".into(),
                proto: "boot",
                src: String::new(),
            }
        );
        assert_eq!(r[1].dest, "192.168.1.0/24");
        assert_eq!(r[1].src, "192.168.1.7");
        assert_eq!(r[1].proto, "kernel");
    }

    #[test]
    fn garbled_and_absent() {
        assert!(parse_route("h\neth0 zz 0 0 0 0 0 0\n", &[]).is_err());
        assert!(parse_route("h\neth0 0 0\n", &[]).is_err());
        assert!(parse_ipv6_route("00 00\n").is_err());
        assert!(parse_ipv6_route(&"0 ".repeat(10)).is_err());
        assert!(NetworkRoute.collect(&procfs("net", "nowhere")).is_err());
    }

    #[test]
    fn live() {
        let fams = NetworkRoute.collect(&Paths::default()).expect("reads");
        assert!(!fams[0].samples.is_empty());
    }
}
