//! `infiniband` collector: InfiniBand HCA ports from `/sys/class/infiniband/<device>`, as
//! node_exporter 1.5's `infiniband_linux.go` over prometheus/procfs' `InfiniBandClass`:
//! `node_infiniband_info{board_id,device,firmware_version,hca_type}`, per port
//! `state_id`, `physical_state_id`, `rate_bytes_per_second` and one counter per file of
//! `ports/<n>/counters` and `ports/<n>/counters_ext` (the `legacy_*` families), labelled
//! `device` and `port`. Data counters (`port_rcv_data`, `port_xmit_data` and their `_64`
//! variants) count 4-byte words and are multiplied by 4, as procfs does.
//!
//! Without InfiniBand `/sys/class/infiniband` is absent: node_exporter returns `ErrNoData`
//! (`success 0`), and so does this collector (an error). A counter reading `N/A (no PMA)` or
//! failing with ENOENT/EACCES/EINVAL/EOPNOTSUPP is skipped; a port without a `counters`
//! directory (Intel `irdma`) has only its state and rate; any other error fails the collector.
//!
//! node_exporter 1.12's `--collector.infiniband.device-include` /
//! `--collector.infiniband.device-exclude`: regexps on the device name (`mlx4_0`); a device
//! matching the exclude pattern or not matching the include pattern is left out entirely
//! (its `_info` too). As in 1.12 every device is still read first (procfs'
//! `InfiniBandClass`: an unreadable excluded device fails the collector), both patterns apply
//! when both are given (its help calls them mutually exclusive, nothing enforces it), and an
//! empty pattern is none.

use std::path::Path;

use super::options::{collector_options, Pattern};
use super::{read_to_string, sorted_names, CollectError, Collector, DeviceFilter, Options, Paths};
use crate::exposition::nonempty_sorted;
use crate::exposition::MetricFamily;

/// A counter: directory (`counters` or `counters_ext`), file, metric suffix, HELP, times 4.
struct Counter {
    dir: &'static str,
    file: &'static str,
    metric: &'static str,
    help: &'static str,
    words: bool,
}

const fn c(
    dir: &'static str,
    file: &'static str,
    metric: &'static str,
    help: &'static str,
    words: bool,
) -> Counter {
    Counter {
        dir,
        file,
        metric,
        help,
        words,
    }
}

const C: &str = "counters";
const X: &str = "counters_ext";

const COUNTERS: [Counter; 30] = [
    c(X, "port_multicast_rcv_packets", "legacy_multicast_packets_received_total", "Number of multicast packets received", false),
    c(X, "port_multicast_xmit_packets", "legacy_multicast_packets_transmitted_total", "Number of multicast packets transmitted", false),
    c(X, "port_rcv_data_64", "legacy_data_received_bytes_total", "Number of data octets received on all links", true),
    c(X, "port_rcv_packets_64", "legacy_packets_received_total", "Number of data packets received on all links", false),
    c(X, "port_unicast_rcv_packets", "legacy_unicast_packets_received_total", "Number of unicast packets received", false),
    c(X, "port_unicast_xmit_packets", "legacy_unicast_packets_transmitted_total", "Number of unicast packets transmitted", false),
    c(X, "port_xmit_data_64", "legacy_data_transmitted_bytes_total", "Number of data octets transmitted on all links", true),
    c(X, "port_xmit_packets_64", "legacy_packets_transmitted_total", "Number of data packets received on all links", false),
    c(C, "excessive_buffer_overrun_errors", "excessive_buffer_overrun_errors_total", "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error.", false),
    c(C, "link_downed", "link_downed_total", "Number of times the link failed to recover from an error state and went down", false),
    c(C, "link_error_recovery", "link_error_recovery_total", "Number of times the link successfully recovered from an error state", false),
    c(C, "local_link_integrity_errors", "local_link_integrity_errors_total", "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.", false),
    c(C, "multicast_rcv_packets", "multicast_packets_received_total", "Number of multicast packets received (including errors)", false),
    c(C, "multicast_xmit_packets", "multicast_packets_transmitted_total", "Number of multicast packets transmitted (including errors)", false),
    c(C, "port_rcv_constraint_errors", "port_constraint_errors_received_total", "Number of packets received on the switch physical port that are discarded", false),
    c(C, "port_xmit_constraint_errors", "port_constraint_errors_transmitted_total", "Number of packets not transmitted from the switch physical port", false),
    c(C, "port_rcv_data", "port_data_received_bytes_total", "Number of data octets received on all links", true),
    c(C, "port_xmit_data", "port_data_transmitted_bytes_total", "Number of data octets transmitted on all links", true),
    c(C, "port_rcv_discards", "port_discards_received_total", "Number of inbound packets discarded by the port because the port is down or congested", false),
    c(C, "port_xmit_discards", "port_discards_transmitted_total", "Number of outbound packets discarded by the port because the port is down or congested", false),
    c(C, "port_rcv_errors", "port_errors_received_total", "Number of packets containing an error that were received on this port", false),
    c(C, "port_rcv_packets", "port_packets_received_total", "Number of packets received on all VLs by this port (including errors)", false),
    c(C, "port_xmit_packets", "port_packets_transmitted_total", "Number of packets transmitted on all VLs from this port (including errors)", false),
    c(C, "port_xmit_wait", "port_transmit_wait_total", "Number of ticks during which the port had data to transmit but no data was sent during the entire tick", false),
    c(C, "unicast_rcv_packets", "unicast_packets_received_total", "Number of unicast packets received (including errors)", false),
    c(C, "unicast_xmit_packets", "unicast_packets_transmitted_total", "Number of unicast packets transmitted (including errors)", false),
    c(C, "port_rcv_remote_physical_errors", "port_receive_remote_physical_errors_total", "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.", false),
    c(C, "port_rcv_switch_relay_errors", "port_receive_switch_relay_errors_total", "Number of packets that could not be forwarded by the switch.", false),
    c(C, "symbol_error", "symbol_error_total", "Number of minor link errors detected on one or more physical lanes.", false),
    c(C, "VL15_dropped", "vl15_dropped_total", "Number of incoming VL15 packets dropped due to resource limitations.", false),
];

const N_COUNTERS: usize = COUNTERS.len();

/// One port.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub port: u32,
    pub state_id: u64,
    pub phys_state_id: u64,
    pub rate: u64,
    /// Indexed as [`COUNTERS`].
    pub counters: Vec<Option<u64>>,
}

/// One device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub board_id: String,
    pub firmware_version: String,
    pub hca_type: String,
    pub ports: Vec<Port>,
}

/// `4: ACTIVE` → 4.
pub fn parse_state(s: &str) -> Result<u64, String> {
    let mut parts = s.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(_), None) => id
            .trim()
            .parse()
            .map_err(|_| format!("bad state id in {s:?}")),
        _ => Err(format!("failed to split {s:?} into 'ID: NAME'")),
    }
}

/// `40 Gb/sec (4X QDR)` → bytes per second (the Gb/s figure read as a 32-bit float, as procfs).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let mut parts = s.split("Gb/sec");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(_), None) => {
            let v: f32 = v.trim().parse().map_err(|_| format!("bad rate {s:?}"))?;
            Ok((f64::from(v) * 125_000_000.0) as u64)
        }
        _ => Err(format!("failed to split {s:?} by 'Gb/sec'")),
    }
}

/// Reads an optional attribute: `Ok(None)` for the errors procfs skips.
fn read_attr(path: &Path) -> Result<Option<String>, CollectError> {
    match super::fsio::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(CollectError::io(path, e)),
    }
}

fn read_port(port_dir: &Path, port: u32) -> Result<Port, CollectError> {
    let text = |f: &str| -> Result<(std::path::PathBuf, String), CollectError> {
        let p = port_dir.join(f);
        let t = read_to_string(&p)?;
        Ok((p, t))
    };
    let (p, t) = text("state")?;
    let state_id = parse_state(&t).map_err(|m| CollectError::parse(&p, m))?;
    let (p, t) = text("phys_state")?;
    let phys_state_id = parse_state(&t).map_err(|m| CollectError::parse(&p, m))?;
    let (p, t) = text("rate")?;
    let rate = parse_rate(&t).map_err(|m| CollectError::parse(&p, m))?;
    let mut counters = vec![None; N_COUNTERS];
    for (slot, c) in counters.iter_mut().zip(COUNTERS.iter()) {
        let path = port_dir.join(c.dir).join(c.file);
        let Some(v) = read_attr(&path)? else { continue };
        let v = v.trim();
        match v.parse::<u64>() {
            Ok(n) => *slot = Some(if c.words { n.wrapping_mul(4) } else { n }),
            Err(_) if v.contains("N/A (no PMA)") => {}
            Err(_) => return Err(CollectError::parse(&path, format!("bad counter {v:?}"))),
        }
    }
    Ok(Port {
        port,
        state_id,
        phys_state_id,
        rate,
        counters,
    })
}

/// Reads every device under `class` (`<sysfs>/class/infiniband`).
pub fn read_devices(class: &Path) -> Result<Vec<Device>, CollectError> {
    let mut out = Vec::new();
    for name in sorted_names(class)? {
        let dir = class.join(&name);
        let fw = dir.join("fw_ver");
        let firmware_version = read_to_string(&fw)?.trim().to_string();
        let opt = |f: &str| -> Result<String, CollectError> {
            let p = dir.join(f);
            match super::fsio::read_to_string(&p) {
                Ok(s) => Ok(s.trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(CollectError::io(&p, e)),
            }
        };
        let board_id = opt("board_id")?;
        let hca_type = opt("hca_type")?;
        let ports_dir = dir.join("ports");
        let mut ports = Vec::new();
        for p in sorted_names(&ports_dir)? {
            let n: u32 = p.parse().map_err(|_| {
                CollectError::parse(&ports_dir, format!("port {p:?} is not a number"))
            })?;
            ports.push(read_port(&ports_dir.join(&p), n)?);
        }
        out.push(Device {
            name,
            board_id,
            firmware_version,
            hca_type,
            ports,
        });
    }
    Ok(out)
}

pub fn families(devices: &[Device]) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "node_infiniband_info",
        "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
    );
    let mut state = MetricFamily::gauge(
        "node_infiniband_state_id",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
    );
    let mut phys = MetricFamily::gauge(
        "node_infiniband_physical_state_id",
        "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
    );
    let mut rate = MetricFamily::gauge(
        "node_infiniband_rate_bytes_per_second",
        "Maximum signal transfer rate",
    );
    let mut counters: Vec<MetricFamily> = COUNTERS
        .iter()
        .map(|c| MetricFamily::counter(format!("node_infiniband_{}", c.metric), c.help))
        .collect();
    for d in devices {
        info.push(
            &[
                ("board_id", &d.board_id),
                ("device", &d.name),
                ("firmware_version", &d.firmware_version),
                ("hca_type", &d.hca_type),
            ],
            1.0,
        );
        for p in &d.ports {
            let port = p.port.to_string();
            let labels = [("device", d.name.as_str()), ("port", port.as_str())];
            state.push(&labels, p.state_id as f64);
            phys.push(&labels, p.phys_state_id as f64);
            rate.push(&labels, p.rate as f64);
            for (fam, v) in counters.iter_mut().zip(&p.counters) {
                if let Some(v) = v {
                    fam.push(&labels, *v as f64);
                }
            }
        }
    }
    let mut out = vec![info, state, phys, rate];
    out.append(&mut counters);
    nonempty_sorted(out)
}

collector_options! {
    /// Options of the infiniband collector (`[collector.infiniband]` in the file).
    pub struct InfinibandOptions {
        /// Regexp of infiniband devices to include (mutually exclusive to device-exclude in
        /// node_exporter's words; both apply when both are given).
        #[arg(id = "collector.infiniband.device-include", long = "collector.infiniband.device-include", value_name = "REGEX")]
        pub device_include: Option<Pattern>,
        /// Regexp of infiniband devices to exclude (mutually exclusive to device-include in
        /// node_exporter's words; both apply when both are given).
        #[arg(id = "collector.infiniband.device-exclude", long = "collector.infiniband.device-exclude", value_name = "REGEX")]
        pub device_exclude: Option<Pattern>,
    }
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    let o = &opts.infiniband;
    if let Some(p) = o
        .device_include
        .as_ref()
        .filter(|p| !p.0.as_str().is_empty())
    {
        log::info!("Parsed flag --collector.infiniband.device-include: {}", p.0);
    }
    if let Some(p) = o
        .device_exclude
        .as_ref()
        .filter(|p| !p.0.as_str().is_empty())
    {
        log::info!("Parsed flag --collector.infiniband.device-exclude: {}", p.0);
    }
    Box::new(InfiniBand {
        filter: DeviceFilter::both(&o.device_include, &o.device_exclude),
    })
}

/// The collector, with the device filter of its flags (none by default).
#[derive(Default)]
pub struct InfiniBand {
    pub filter: DeviceFilter,
}

impl Collector for InfiniBand {
    fn name(&self) -> &'static str {
        "infiniband"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let mut devices = read_devices(&paths.sys("class/infiniband"))
            .map_err(CollectError::absent_is_no_data)?;
        devices.retain(|d| !self.filter.ignored(&d.name));
        Ok(families(&devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::sysfs;

    fn sample(fams: &[MetricFamily], name: &str, dev: &str, port: &str) -> Option<f64> {
        fams.iter()
            .find(|f| f.name == name)?
            .samples
            .iter()
            .find(|s| s.labels[0].1 == dev && s.labels[1].1 == port)
            .map(|s| s.value)
    }

    /// node_exporter 1.12's `--collector.infiniband.device-include`/`-exclude` on its fixture
    /// devices (`i40iw0`, `mlx4_0`): a left-out device has no sample at all, not even `_info`.
    #[test]
    fn device_include_exclude() {
        use clap::Parser;
        let paths = sysfs("net", "node_exporter-fixture/sys");
        let devices = |args: &[&str]| -> Vec<String> {
            let mut argv = vec!["monitoring-agent"];
            argv.extend_from_slice(args);
            let cli = crate::cli::Cli::try_parse_from(argv).expect("parses");
            let fams = collector(&cli.collector).collect(&paths).expect("collects");
            let mut d: Vec<String> = fams
                .iter()
                .flat_map(|f| f.samples.iter())
                .filter_map(|s| s.labels.iter().find(|(k, _)| k == "device"))
                .map(|(_, v)| v.to_string())
                .collect();
            d.sort();
            d.dedup();
            d
        };
        assert_eq!(devices(&[]), ["i40iw0", "mlx4_0"]);
        assert_eq!(
            devices(&["--collector.infiniband.device-include=^mlx"]),
            ["mlx4_0"]
        );
        assert_eq!(
            devices(&["--collector.infiniband.device-exclude=mlx4_0"]),
            ["i40iw0"]
        );
        // Unanchored, as node_exporter's regexp.MatchString.
        assert_eq!(
            devices(&["--collector.infiniband.device-exclude=iw"]),
            ["mlx4_0"]
        );
        // Both apply (1.12 does not refuse the pair); an empty pattern is none.
        assert_eq!(
            devices(&[
                "--collector.infiniband.device-include=_0$",
                "--collector.infiniband.device-exclude=^i40"
            ]),
            ["mlx4_0"]
        );
        assert_eq!(
            devices(&["--collector.infiniband.device-exclude="]),
            ["i40iw0", "mlx4_0"]
        );
        // Everything left out: success, no samples.
        assert!(devices(&["--collector.infiniband.device-include=^none$"]).is_empty());
        // The file's keys.
        let o = Options {
            infiniband: toml::from_str("device_exclude = \"^i40\"\n").expect("toml"),
            ..Options::default()
        };
        let fams = collector(&o).collect(&paths).expect("collects");
        let info = fams
            .iter()
            .find(|f| f.name == "node_infiniband_info")
            .expect("info");
        assert_eq!(info.samples.len(), 1);
    }

    #[test]
    fn node_exporter_fixture() {
        let fams = InfiniBand::default()
            .collect(&sysfs("net", "node_exporter-fixture/sys"))
            .expect("collects");
        let info = fams
            .iter()
            .find(|f| f.name == "node_infiniband_info")
            .expect("info");
        let labels: Vec<Vec<String>> = info
            .samples
            .iter()
            .map(|s| s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .collect();
        assert_eq!(
            labels,
            [
                [
                    "board_id=I40IW Board ID",
                    "device=i40iw0",
                    "firmware_version=0.2",
                    "hca_type=I40IW"
                ],
                [
                    "board_id=SM_1141000001000",
                    "device=mlx4_0",
                    "firmware_version=2.31.5050",
                    "hca_type=MT4099"
                ]
            ]
        );
        let s = |n: &str, d: &str, p: &str| sample(&fams, &format!("node_infiniband_{n}"), d, p);
        assert_eq!(s("state_id", "mlx4_0", "1"), Some(4.0));
        assert_eq!(s("physical_state_id", "i40iw0", "1"), Some(5.0));
        assert_eq!(s("rate_bytes_per_second", "mlx4_0", "2"), Some(5e9));
        assert_eq!(s("rate_bytes_per_second", "i40iw0", "1"), Some(1.25e9));
        // Data counters count 4-byte words.
        assert_eq!(
            s("port_data_received_bytes_total", "mlx4_0", "1"),
            Some(18_527_668.0)
        );
        assert_eq!(
            s("legacy_data_transmitted_bytes_total", "mlx4_0", "1"),
            Some(14_933_760.0)
        );
        assert_eq!(
            s("port_packets_received_total", "mlx4_0", "1"),
            Some(6_825_908_347.0)
        );
        assert_eq!(
            s("port_transmit_wait_total", "mlx4_0", "1"),
            Some(4_294_967_295.0)
        );
        assert_eq!(
            s("port_discards_transmitted_total", "mlx4_0", "1"),
            Some(5.0)
        );
        assert_eq!(
            s("multicast_packets_received_total", "mlx4_0", "1"),
            Some(93.0)
        );
        assert_eq!(s("legacy_packets_received_total", "mlx4_0", "2"), Some(0.0));
        // Port 2 has no port_rcv_packets file; i40iw0's counters are all "N/A (no PMA)".
        assert_eq!(s("port_packets_received_total", "mlx4_0", "2"), None);
        assert_eq!(s("link_downed_total", "i40iw0", "1"), None);
        assert_eq!(s("vl15_dropped_total", "i40iw0", "1"), None);
        let c = fams
            .iter()
            .find(|f| f.name == "node_infiniband_link_downed_total")
            .expect("link_downed");
        assert_eq!(c.kind, crate::exposition::MetricType::Counter);
        assert_eq!(c.samples.len(), 2);
    }

    #[test]
    fn states_and_rates() {
        assert_eq!(parse_state("4: ACTIVE\n"), Ok(4));
        assert!(parse_state("ACTIVE").is_err());
        assert!(parse_state("x: ACTIVE").is_err());
        assert_eq!(parse_rate("56 Gb/sec (4X FDR)\n"), Ok(7_000_000_000));
        assert_eq!(parse_rate("2.5 Gb/sec (1X SDR)"), Ok(312_500_000));
        assert!(parse_rate("10 Mb/sec").is_err());
    }

    #[test]
    fn absent() {
        assert!(InfiniBand::default()
            .collect(&sysfs("net", "debian12-vm-6.18/sys"))
            .is_err());
    }

    #[test]
    fn live() {
        let present = Path::new("/sys/class/infiniband").exists();
        assert_eq!(
            InfiniBand::default().collect(&Paths::default()).is_ok(),
            present
        );
    }
}
