//! `netclass` collector: per-interface properties from `/sys/class/net/<iface>/*`, as
//! node_exporter 1.12's `netclass_linux.go` in its default (sysfs) mode:
//! `node_network_info{address,adminstate,broadcast,device,duplex,ifalias,operstate}`
//! (`adminstate` is 1.12's: `up` when bit 0 (IFF_UP) of `flags` is set, `down` when not,
//! `unknown` when `flags` is unreadable), `node_network_up`
//! and one `node_network_<property>` gauge (counter for the carrier change counts) per numeric
//! attribute (HELP `Network device property: <name>`).
//!
//! As prometheus/procfs, an attribute whose file is absent or whose read fails with ENOENT,
//! EACCES, EOPNOTSUPP or EINVAL (e.g. `speed` or `carrier` of an interface that is down) is
//! skipped; any other read error fails the collector. A missing `/sys/class/net` fails it too
//! (node_exporter's `ErrNoData`, which reports `success 0`). Devices matching
//! `--collector.netclass.ignored-devices` are skipped. Speed is exported as node_exporter
//! does, including the kernel's `-1` for an unknown speed (`-125000` bytes), unless
//! `--collector.netclass.ignore-invalid-speed` (node_exporter 1.12) leaves negative speeds out.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::options::{collector_options, parse_bool, Pattern};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

/// What node_exporter exports of one interface; `None` when the attribute is unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iface {
    pub name: String,
    pub address: String,
    pub broadcast: String,
    pub duplex: String,
    pub ifalias: String,
    pub operstate: String,
    /// The numeric attributes, indexed as [`NUMERIC`].
    pub numbers: [Option<i64>; NUMERIC.len()],
}

/// A numeric attribute: sysfs file, metric suffix, whether a counter.
pub struct Numeric {
    pub file: &'static str,
    pub metric: &'static str,
    pub counter: bool,
}

const fn num(file: &'static str, metric: &'static str, counter: bool) -> Numeric {
    Numeric {
        file,
        metric,
        counter,
    }
}

/// The numeric attributes node_exporter 1.5 exports, by sysfs file name.
pub const NUMERIC: [Numeric; 17] = [
    num("addr_assign_type", "address_assign_type", false),
    num("carrier", "carrier", false),
    num("carrier_changes", "carrier_changes_total", true),
    num("carrier_up_count", "carrier_up_changes_total", true),
    num("carrier_down_count", "carrier_down_changes_total", true),
    num("dev_id", "device_id", false),
    num("dormant", "dormant", false),
    num("flags", "flags", false),
    num("ifindex", "iface_id", false),
    num("iflink", "iface_link", false),
    num("link_mode", "iface_link_mode", false),
    num("mtu", "mtu_bytes", false),
    num("name_assign_type", "name_assign_type", false),
    num("netdev_group", "net_dev_group", false),
    num("speed", "speed_bytes", false),
    num("tx_queue_len", "transmit_queue_length", false),
    num("type", "protocol_type", false),
];
const SPEED: usize = 14;
const FLAGS: usize = 7;

/// node_exporter 1.12's `adminstate` label: IFF_UP of `flags`.
pub fn admin_state(flags: Option<i64>) -> &'static str {
    match flags {
        None => "unknown",
        Some(f) if f & 1 == 1 => "up",
        Some(_) => "down",
    }
}

/// Parses a sysfs integer as procfs' value parser does (base prefix `0x` for hex, as `flags`
/// and `dev_id` are printed). `None` for anything else.
pub fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Names and HELP texts of the numeric attributes.
static NAMES: super::NameCache = super::NameCache::new();

/// Builds the families from parsed interfaces (samples sorted by device); negative speeds are
/// left out when `ignore_invalid_speed`.
pub fn families(ifaces: &[Iface], ignore_invalid_speed: bool) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
    );
    let mut up = MetricFamily::gauge(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
    );
    let mut numeric: Vec<MetricFamily> = NUMERIC
        .iter()
        .map(|n| {
            let (name, help) = NAMES.get(n.metric, |m| {
                (
                    super::concat(&["node_network_", m]),
                    super::concat(&["Network device property: ", m]),
                )
            });
            if n.counter {
                MetricFamily::counter(name, help)
            } else {
                MetricFamily::gauge(name, help)
            }
        })
        .collect();
    for i in ifaces {
        let dev = i.name.as_str();
        up.push(
            &[("device", dev)],
            if i.operstate == "up" { 1.0 } else { 0.0 },
        );
        let flags = i.numbers.get(FLAGS).copied().flatten();
        info.push(
            &[
                ("address", &i.address),
                ("adminstate", admin_state(flags)),
                ("broadcast", &i.broadcast),
                ("device", dev),
                ("duplex", &i.duplex),
                ("ifalias", &i.ifalias),
                ("operstate", &i.operstate),
            ],
            1.0,
        );
        for (k, v) in i.numbers.iter().enumerate() {
            let Some(v) = *v else { continue };
            if k == SPEED && v < 0 && ignore_invalid_speed {
                continue;
            }
            let value = if k == SPEED {
                // Mbit/s to bytes/s in integer arithmetic, as node_exporter.
                v.wrapping_mul(1_000_000) / 8
            } else {
                v
            };
            if let Some(fam) = numeric.get_mut(k) {
                fam.push(&[("device", dev)], value as f64);
            }
        }
    }
    let mut out = vec![info, up];
    out.append(&mut numeric);
    nonempty_sorted(out)
}

/// Reads a small sysfs file into `buf`. `Ok(false)` for the errors procfs treats as "attribute
/// not available" (also netdev's `--collector.netdev.label-ifalias`).
pub(crate) fn read_attr(path: &Path, buf: &mut String) -> Result<bool, CollectError> {
    // Read straight into `buf`'s bytes (no new buffer per attribute).
    let mut bytes = std::mem::take(buf).into_bytes();
    let read = super::fsio::read_into(path, &mut bytes);
    *buf = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match read {
        Ok(()) => Ok(true),
        Err(e) => {
            buf.clear();
            // ENOENT, EACCES, EINVAL, EOPNOTSUPP.
            let skip = matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::Unsupported
            );
            if skip {
                Ok(false)
            } else {
                Err(CollectError::io(path, e))
            }
        }
    }
}

/// Reads one interface directory.
pub fn read_iface(dir: &mut PathBuf, name: &str) -> Result<Iface, CollectError> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut iface = Iface {
        name: name.to_string(),
        ..Iface::default()
    };
    let mut buf = String::with_capacity(64);
    // `dir/file` built by truncating a byte buffer (`PathBuf::pop` parses components).
    let mut path = std::mem::take(dir).into_os_string().into_vec();
    let base = path.len();
    let mut text = |file: &str, buf: &mut String| {
        path.truncate(base);
        path.push(b'/');
        path.extend_from_slice(file.as_bytes());
        read_attr(Path::new(std::ffi::OsStr::from_bytes(&path)), buf)
    };
    let mut result = Ok(());
    for (slot, file) in [
        (&mut iface.address, "address"),
        (&mut iface.broadcast, "broadcast"),
        (&mut iface.duplex, "duplex"),
        (&mut iface.ifalias, "ifalias"),
        (&mut iface.operstate, "operstate"),
    ] {
        match text(file, &mut buf) {
            Ok(true) => *slot = buf.trim().to_string(),
            Ok(false) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        for (slot, n) in iface.numbers.iter_mut().zip(NUMERIC.iter()) {
            match text(n.file, &mut buf) {
                Ok(true) => *slot = parse_int(&buf),
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    path.truncate(base);
    *dir = PathBuf::from(std::ffi::OsString::from_vec(path));
    result.map(|()| iface)
}

collector_options! {
    /// Options of the netclass collector (`[collector.netclass]` in the file).
    pub struct NetclassOptions {
        /// Regexp of net devices to ignore for the netclass collector [default: ^$].
        #[arg(id = "collector.netclass.ignored-devices", long = "collector.netclass.ignored-devices", value_name = "REGEX")]
        pub ignored_devices: Option<Pattern>,
        /// Ignore devices where the speed is invalid. This will be the default behavior in 2.x.
        #[arg(id = "collector.netclass.ignore-invalid-speed", long = "collector.netclass.ignore-invalid-speed",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool)]
        pub ignore_invalid_speed: Option<bool>,
        /// Use netlink (RTM_GETLINK) to gather the properties instead of sysfs
        /// (src/collectors/netclass_rtnl.rs); widens the sandbox by the netlink-route policy
        /// fragment. [default: false]
        #[arg(id = "collector.netclass.netlink", long = "collector.netclass.netlink", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = super::netlink::parse_bool, overrides_with = "collector.netclass.no-netlink")]
        pub netlink: Option<bool>,
        /// node_exporter's negation of --collector.netclass.netlink (the default).
        #[arg(id = "collector.netclass.no-netlink", long = "no-collector.netclass.netlink", value_name = "BOOL",
              num_args = 0, default_missing_value = "true", value_parser = super::netlink::parse_bool,
              hide = true, overrides_with = "collector.netclass.netlink")]
        pub no_netlink: Option<bool>,
        /// Expose the statistics for each network device (netlink mode only).
        #[arg(id = "collector.netclass_rtnl.with-stats", long = "collector.netclass_rtnl.with-stats", value_name = "BOOL",
              num_args = 0..=1, require_equals = true, default_missing_value = "true",
              value_parser = super::netlink::parse_bool)]
        pub rtnl_with_stats: Option<bool>,
    }
}

/// Whether `--collector.netclass.netlink` is in force (the `netlink-route` fragment's user
/// `netclass.netlink`).
pub fn uses_netlink(o: &NetclassOptions) -> bool {
    super::netlink::flag(o.netlink, o.no_netlink)
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    Box::new(NetClass {
        ignored: Pattern::or_default(&opts.netclass.ignored_devices, "^$"),
        ignore_invalid_speed: opts.netclass.ignore_invalid_speed.unwrap_or(false),
        netlink: uses_netlink(&opts.netclass),
        with_stats: opts.netclass.rtnl_with_stats.unwrap_or(false),
    })
}

pub struct NetClass {
    ignored: Regex,
    ignore_invalid_speed: bool,
    netlink: bool,
    with_stats: bool,
}

impl NetClass {
    /// Every interface of `<sysfs>/class/net` not ignored, sorted by name.
    pub fn read(&self, paths: &Paths) -> Result<Vec<Iface>, CollectError> {
        let class = paths.sys("class/net");
        let entries =
            crate::collector::read_dir(&class).map_err(|e| CollectError::io(&class, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CollectError::io(&class, e))?;
            // `bonding_masters` is a regular file there; interfaces are symlinks (or
            // directories in a copied tree).
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if self.ignored.is_match(&name) {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        let mut dir = class;
        for name in names {
            dir.push(&name);
            let r = read_iface(&mut dir, &name);
            dir.pop();
            out.push(r?);
        }
        Ok(out)
    }
}

impl Collector for NetClass {
    fn name(&self) -> &'static str {
        "netclass"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        if self.netlink {
            return super::netclass_rtnl::collect(paths, &self.ignored, self.with_stats);
        }
        Ok(families(
            &self.read(paths).map_err(CollectError::absent_is_no_data)?,
            self.ignore_invalid_speed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::lines::{parse, render, sorted};
    use crate::collectors::testutil::sysfs;

    fn nc(ignored: &str) -> NetClass {
        NetClass {
            ignored: Regex::new(ignored).expect("regex"),
            ignore_invalid_speed: false,
            netlink: false,
            with_stats: false,
        }
    }

    #[test]
    fn debian12_matches_node_exporter() {
        // The tree was copied from this host's /sys/class/net (files whose read fails, e.g.
        // `speed` of a down interface, are absent) and node_exporter 1.5 was scraped on the
        // same host at the same time.
        let fams = nc("^$")
            .collect(&sysfs("net", "debian12-vm-6.18/sys"))
            .expect("collects");
        let expected = include_str!(
            "../../tests/fixtures/net/debian12-vm-6.18/node_exporter-1.5-netclass.txt"
        );
        // node_exporter 1.12 semantics: `node_network_info` has an `adminstate` label 1.5 does
        // not have (checked in `invalid_speed_and_adminstate_node_exporter_112`); the rest is
        // 1.5's output.
        let adminstate = Regex::new(r#"adminstate="(up|down|unknown)","#).expect("regex");
        let ours: Vec<_> = render(&sorted(fams))
            .into_iter()
            .map(|(l, v)| (adminstate.replace(&l, "").into_owned(), v))
            .collect();
        assert_eq!(ours, parse(expected));
    }

    #[test]
    fn node_exporter_fixture() {
        let ifaces = nc("^$")
            .read(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("reads");
        // `bonding_masters` is a regular file: skipped.
        let names: Vec<_> = ifaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["bond0", "dmz", "int"]);
        let bond0 = &ifaces[0];
        assert_eq!(bond0.address, "01:01:01:01:01:01");
        assert_eq!(bond0.duplex, "full");
        assert_eq!(bond0.ifalias, "");
        assert_eq!(bond0.operstate, "up");
        let fams = families(&ifaces, false);
        let find = |name: &str, dev: &str| {
            fams.iter()
                .find(|f| f.name == name)
                .and_then(|f| f.samples.iter().find(|s| s.labels[0].1 == dev))
                .map(|s| s.value)
        };
        assert_eq!(find("node_network_device_id", "bond0"), Some(32.0));
        assert_eq!(find("node_network_flags", "bond0"), Some(4867.0));
        assert_eq!(find("node_network_speed_bytes", "bond0"), Some(-125000.0));
        assert_eq!(find("node_network_speed_bytes", "dmz"), Some(125000000.0));
        assert_eq!(find("node_network_carrier_changes_total", "int"), Some(2.0));
        assert_eq!(find("node_network_address_assign_type", "int"), Some(3.0));
        assert_eq!(find("node_network_protocol_type", "int"), Some(1.0));
        assert_eq!(find("node_network_up", "int"), Some(1.0));
        let info = fams
            .iter()
            .find(|f| f.name == "node_network_info")
            .expect("info");
        let labels: Vec<_> = info.samples[0]
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            labels,
            [
                "address=01:01:01:01:01:01",
                "adminstate=up",
                "broadcast=ff:ff:ff:ff:ff:ff",
                "device=bond0",
                "duplex=full",
                "ifalias=",
                "operstate=up"
            ]
        );
        // Every family: one sample per interface, counters typed as such.
        assert_eq!(fams.len(), 2 + NUMERIC.len());
        for f in &fams {
            assert_eq!(f.samples.len(), 3, "{}", f.name);
        }
        let carrier = fams
            .iter()
            .find(|f| f.name == "node_network_carrier_up_changes_total")
            .expect("carrier_up");
        assert_eq!(carrier.kind, crate::exposition::MetricType::Counter);
        assert_eq!(
            carrier.help,
            "Network device property: carrier_up_changes_total"
        );
    }

    /// node_exporter 1.12: `--collector.netclass.ignore-invalid-speed` drops bond0's `-1`;
    /// `adminstate` from IFF_UP.
    #[test]
    fn invalid_speed_and_adminstate_node_exporter_112() {
        let ifaces = nc("^$")
            .read(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("reads");
        let speeds = |ignore: bool| -> Vec<String> {
            families(&ifaces, ignore)
                .iter()
                .find(|f| f.name == "node_network_speed_bytes")
                .map(|f| {
                    f.samples
                        .iter()
                        .map(|s| s.labels[0].1.to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(speeds(false), ["bond0", "dmz", "int"]);
        assert_eq!(speeds(true), ["dmz", "int"]);
        assert_eq!(admin_state(Some(4867)), "up");
        assert_eq!(admin_state(Some(4098)), "down");
        assert_eq!(admin_state(None), "unknown");
    }

    #[test]
    fn ignored_devices() {
        let ifaces = nc("^(bond|int)")
            .read(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("reads");
        let names: Vec<_> = ifaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["dmz"]);
    }

    #[test]
    fn absent_class_fails() {
        assert!(nc("^$").collect(&sysfs("net", "nowhere")).is_err());
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int("0x1003\n"), Some(4099));
        assert_eq!(parse_int("-1\n"), Some(-1));
        assert_eq!(parse_int("1500"), Some(1500));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("up"), None);
        assert_eq!(parse_int("0x"), None);
        assert_eq!(parse_int("99999999999999999999"), None);
    }

    #[test]
    fn live() {
        let ifaces = nc("^$")
            .read(&Paths::default())
            .expect("reads /sys/class/net");
        assert!(ifaces.iter().any(|i| i.name == "lo"));
    }
}
