//! `netclass` in its netlink mode (`--collector.netclass.netlink`, node_exporter 1.12's
//! `netclass_rtnl_linux.go`): the interfaces' properties from one `RTM_GETLINK` dump instead of
//! one sysfs read per attribute (reading most of `/sys/class/net/*/` takes the RTNL lock, which
//! this mode avoids). The three attributes netlink does not carry (`addr_assign_type`,
//! `dev_id`, `name_assign_type`) are still read from sysfs, as node_exporter does; an
//! unreadable one is skipped.
//!
//! Differences from node_exporter 1.12, all in what it takes from the ethtool generic-netlink
//! family: `node_network_speed_bytes` and the `duplex` label of `node_network_info` need
//! `ETHTOOL_MSG_LINKMODES_GET` over `NETLINK_GENERIC`, which the `netlink-route` fragment does
//! not allow; they are absent and empty here, exactly as node_exporter 1.12 reports them on a
//! kernel without the ethtool netlink interface ("duplex and linkspeed are not scraped").
//! node_exporter's `node_network_dormant` carries `IFLA_LINKMODE` (not the dormant state), and
//! so does this one.
//!
//! `--collector.netclass_rtnl.with-stats` adds the interface statistics
//! (`node_network_receive_packets_total`, ... as gauges, as node_exporter).

use std::collections::BTreeMap;

use netlink_packet_route::link::{LinkAttribute, LinkMessage, Prop};
use regex::Regex;

use super::{fsio, CollectError, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// `operstateStr` of node_exporter, indexed by `IF_OPER_*`.
const OPERSTATE: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// The numeric properties, in node_exporter's order: metric suffix, counter.
const PROPERTIES: [(&str, bool); 17] = [
    ("address_assign_type", false),
    ("carrier", false),
    ("carrier_changes_total", true),
    ("carrier_up_changes_total", true),
    ("carrier_down_changes_total", true),
    ("device_id", false),
    ("flags", false),
    ("iface_id", false),
    ("iface_link_mode", false),
    ("dormant", false),
    ("iface_link", false),
    ("mtu_bytes", false),
    ("name_assign_type", false),
    ("net_dev_group", false),
    ("transmit_queue_length", false),
    ("protocol_type", false),
    ("speed_bytes", false),
];

/// The statistics of `--collector.netclass_rtnl.with-stats`, in node_exporter's order.
const STATS: [&str; 24] = [
    "receive_packets_total",
    "transmit_packets_total",
    "receive_bytes_total",
    "transmit_bytes_total",
    "receive_errors_total",
    "transmit_errors_total",
    "receive_dropped_total",
    "transmit_dropped_total",
    "multicast_total",
    "collisions_total",
    "receive_length_errors_total",
    "receive_over_errors_total",
    "receive_crc_errors_total",
    "receive_frame_errors_total",
    "receive_fifo_errors_total",
    "receive_missed_errors_total",
    "transmit_aborted_errors_total",
    "transmit_carrier_errors_total",
    "transmit_fifo_errors_total",
    "transmit_heartbeat_errors_total",
    "transmit_window_errors_total",
    "receive_compressed_total",
    "transmit_compressed_total",
    "receive_nohandler_total",
];

/// A hardware address as Go's `net.HardwareAddr.String()`: lowercase hex bytes joined by `:`,
/// empty for none.
pub fn hw(addr: &[u8]) -> String {
    addr.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A sysfs attribute that netlink does not carry: decimal or `0x` hex, `None` if unreadable.
fn sys_attr(paths: &Paths, dev: &str, attr: &str) -> Option<f64> {
    if dev.contains('/') || dev == "." || dev == ".." {
        return None;
    }
    let text = fsio::read_to_string(paths.sys("class/net").join(dev).join(attr)).ok()?;
    let t = text.trim();
    let v = match t.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => t.parse::<i64>().ok()?,
    };
    Some(v as f64)
}

/// The families of one link dump. `sys` reads a sysfs attribute of a device (injected for
/// tests).
pub fn families(
    links: &[LinkMessage],
    ignored: &Regex,
    with_stats: bool,
    sys: &dyn Fn(&str, &str) -> Option<f64>,
) -> Vec<MetricFamily> {
    let mut up = MetricFamily::gauge(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
    );
    let mut info = MetricFamily::gauge(
        "node_network_info",
        "Non-numeric data of <iface>, value is always 1.",
    );
    let mut altnames = MetricFamily::gauge(
        "node_network_altnames_info",
        "Non-numeric data of <iface> altname, value is always 1.",
    );
    let mut props: Vec<MetricFamily> = PROPERTIES
        .iter()
        .map(|(name, counter)| {
            let help = format!("Network device property: {name}");
            let full = format!("node_network_{name}");
            if *counter {
                MetricFamily::counter(full, help)
            } else {
                MetricFamily::gauge(full, help)
            }
        })
        .collect();
    let mut stats: Vec<MetricFamily> = STATS
        .iter()
        .map(|name| {
            MetricFamily::gauge(
                format!("node_network_{name}"),
                format!("Network device property: {name}"),
            )
        })
        .collect();
    for l in links {
        let Some(dev) = super::netlink::route::name(l) else {
            continue;
        };
        if ignored.is_match(dev) {
            continue;
        }
        let mut v: BTreeMap<&str, f64> = BTreeMap::new();
        let (mut address, mut broadcast, mut alias, mut oper) =
            (String::new(), String::new(), String::new(), 0u8);
        let mut link = None;
        let mut s64 = None;
        for a in &l.attributes {
            match a {
                LinkAttribute::Address(x) => address = hw(x),
                LinkAttribute::Broadcast(x) => broadcast = hw(x),
                LinkAttribute::IfAlias(x) => alias = x.clone(),
                LinkAttribute::OperState(s) => oper = u8::from(*s),
                LinkAttribute::Carrier(c) => {
                    v.insert("carrier", f64::from(*c));
                }
                LinkAttribute::CarrierChanges(c) => {
                    v.insert("carrier_changes_total", f64::from(*c));
                }
                LinkAttribute::CarrierUpCount(c) => {
                    v.insert("carrier_up_changes_total", f64::from(*c));
                }
                LinkAttribute::CarrierDownCount(c) => {
                    v.insert("carrier_down_changes_total", f64::from(*c));
                }
                LinkAttribute::Mode(m) => {
                    let m = f64::from(u8::from(*m));
                    v.insert("iface_link_mode", m);
                    v.insert("dormant", m);
                }
                LinkAttribute::Link(i) => link = Some(*i),
                LinkAttribute::Mtu(m) => {
                    v.insert("mtu_bytes", f64::from(*m));
                }
                LinkAttribute::Group(g) => {
                    v.insert("net_dev_group", f64::from(*g));
                }
                LinkAttribute::TxQueueLen(q) => {
                    v.insert("transmit_queue_length", f64::from(*q));
                }
                LinkAttribute::PropList(props) => {
                    for p in props {
                        if let Prop::AltIfName(n) = p {
                            if !n.is_empty() {
                                altnames.push(&[("altname", n.as_str()), ("device", dev)], 1.0);
                            }
                        }
                    }
                }
                LinkAttribute::Stats64(s) => s64 = Some(*s),
                LinkAttribute::Stats(s) if s64.is_none() => {
                    s64 = Some(super::netlink::stats64_of(s));
                }
                _ => {}
            }
        }
        up.push(&[("device", dev)], if oper == 6 { 1.0 } else { 0.0 });
        let operstate = OPERSTATE
            .get(usize::from(oper))
            .copied()
            .unwrap_or("unknown");
        info.push(
            &[
                ("address", address.as_str()),
                ("broadcast", broadcast.as_str()),
                ("device", dev),
                ("duplex", ""),
                ("ifalias", alias.as_str()),
                ("operstate", operstate),
            ],
            1.0,
        );
        for (attr, key) in [
            ("addr_assign_type", "address_assign_type"),
            ("dev_id", "device_id"),
            ("name_assign_type", "name_assign_type"),
        ] {
            if let Some(x) = sys(dev, attr) {
                v.insert(key, x);
            }
        }
        v.insert("flags", f64::from(l.header.flags.bits()));
        v.insert("iface_id", f64::from(l.header.index));
        // The kernel omits IFLA_LINK when it equals the interface's own index.
        let iface_link = link.filter(|i| *i > 0).unwrap_or(l.header.index);
        v.insert("iface_link", f64::from(iface_link));
        v.insert(
            "protocol_type",
            f64::from(u16::from(l.header.link_layer_type)),
        );
        for ((name, _), fam) in PROPERTIES.iter().zip(props.iter_mut()) {
            if let Some(x) = v.get(name) {
                fam.push(&[("device", dev)], *x);
            }
        }
        if let (true, Some(s)) = (with_stats, s64) {
            let values = [
                s.rx_packets,
                s.tx_packets,
                s.rx_bytes,
                s.tx_bytes,
                s.rx_errors,
                s.tx_errors,
                s.rx_dropped,
                s.tx_dropped,
                s.multicast,
                s.collisions,
                s.rx_length_errors,
                s.rx_over_errors,
                s.rx_crc_errors,
                s.rx_frame_errors,
                s.rx_fifo_errors,
                s.rx_missed_errors,
                s.tx_aborted_errors,
                s.tx_carrier_errors,
                s.tx_fifo_errors,
                s.tx_heartbeat_errors,
                s.tx_window_errors,
                s.rx_compressed,
                s.tx_compressed,
                s.rx_nohandler,
            ];
            for (fam, x) in stats.iter_mut().zip(values) {
                fam.push(&[("device", dev)], x as f64);
            }
        }
    }
    let mut out = vec![up, info, altnames];
    out.append(&mut props);
    out.append(&mut stats);
    nonempty_sorted(out)
}

/// One scrape in netlink mode.
pub fn collect(
    paths: &Paths,
    ignored: &Regex,
    with_stats: bool,
) -> Result<Vec<MetricFamily>, CollectError> {
    let links = super::netlink::route::links()?;
    Ok(families(&links, ignored, with_stats, &|dev, attr| {
        sys_attr(paths, dev, attr)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMode, State, Stats64};

    fn link(index: u32, attrs: Vec<LinkAttribute>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.link_layer_type = LinkLayerType::Ether;
        l.attributes = attrs;
        l
    }

    /// What 1.12's netClassRTNLUpdate makes of a link: up, info (no duplex), altnames, the
    /// properties from netlink and the three from sysfs, iface_link defaulting to the index.
    #[test]
    fn as_node_exporter_1_12() {
        let mut s = Stats64::default();
        s.rx_bytes = 7;
        let eth0 = link(
            4,
            vec![
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::Address(vec![0x02, 0xfc, 0, 0, 0, 1]),
                LinkAttribute::Broadcast(vec![0xff; 6]),
                LinkAttribute::OperState(State::Up),
                LinkAttribute::Carrier(1),
                LinkAttribute::CarrierChanges(2),
                LinkAttribute::Mtu(1400),
                LinkAttribute::Mode(LinkMode::Default),
                LinkAttribute::TxQueueLen(1000),
                LinkAttribute::Group(0),
                LinkAttribute::PropList(vec![Prop::AltIfName("enp0s3".into())]),
                LinkAttribute::Stats64(s),
            ],
        );
        let dmz = link(5, vec![LinkAttribute::IfName("dmz".into())]);
        let sys = |dev: &str, attr: &str| match (dev, attr) {
            ("eth0", "addr_assign_type") => Some(0.0),
            ("eth0", "dev_id") => Some(0.0),
            _ => None,
        };
        let ignored = Regex::new("^dmz$").expect("regex");
        let text = crate::collectors::testutil::render(families(
            &[eth0.clone(), dmz],
            &ignored,
            false,
            &sys,
        ));
        for want in [
            "node_network_up{device=\"eth0\"} 1",
            "node_network_info{address=\"02:fc:00:00:00:01\",broadcast=\"ff:ff:ff:ff:ff:ff\",device=\"eth0\",duplex=\"\",ifalias=\"\",operstate=\"up\"} 1",
            "node_network_altnames_info{altname=\"enp0s3\",device=\"eth0\"} 1",
            "node_network_carrier{device=\"eth0\"} 1",
            "node_network_carrier_changes_total{device=\"eth0\"} 2",
            "node_network_mtu_bytes{device=\"eth0\"} 1400",
            "node_network_iface_id{device=\"eth0\"} 4",
            "node_network_iface_link{device=\"eth0\"} 4",
            "node_network_protocol_type{device=\"eth0\"} 1",
            "node_network_transmit_queue_length{device=\"eth0\"} 1000",
            "node_network_address_assign_type{device=\"eth0\"} 0",
            "node_network_device_id{device=\"eth0\"} 0",
            "# TYPE node_network_carrier_changes_total counter",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("dmz"), "ignored device exported:\n{text}");
        assert!(!text.contains("node_network_name_assign_type"));
        assert!(!text.contains("node_network_receive_bytes_total"));
        let with_stats =
            crate::collectors::testutil::render(families(&[eth0], &ignored, true, &sys));
        assert!(with_stats
            .lines()
            .any(|l| l == "node_network_receive_bytes_total{device=\"eth0\"} 7"));
        assert!(with_stats.contains("# TYPE node_network_receive_bytes_total gauge"));
    }

    #[test]
    fn hardware_addresses() {
        assert_eq!(hw(&[]), "");
        assert_eq!(hw(&[0xab, 1]), "ab:01");
    }
}
