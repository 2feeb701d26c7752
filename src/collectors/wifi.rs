//! `wifi` collector: WiFi interfaces, their BSS and stations, as node_exporter 1.12's
//! `wifi_linux.go` (off by default).
//!
//! - Per named interface: `node_wifi_interface_frequency_hertz{device}` (MHz × 10⁶); with BSS
//!   information `node_wifi_station_info{device,bssid,ssid,mode}` 1 (`mode`: `client` when
//!   authenticated or associated, `ad-hoc` for an IBSS, else `unknown`); per station
//!   (`device`, `mac_address`): `station_connected_seconds_total`, `station_inactive_seconds`,
//!   `station_receive_bits_per_second`, `station_transmit_bits_per_second`,
//!   `station_receive_bytes_total`, `station_transmit_bytes_total`, `station_signal_dbm`,
//!   `station_transmit_retries_total`, `station_transmit_failed_total`,
//!   `station_beacon_loss_total`, `station_transmitted_packets_total`,
//!   `station_received_packets_total`. Interfaces without a name are skipped.
//! - `--collector.wifi.fixtures=<dir>` (1.12's end-to-end test mode): `<dir>/interfaces.json`
//!   (mdlayher/wifi `[]*Interface`), `<dir>/<iface>/bss.json` (`BSS`) and
//!   `<dir>/<iface>/stationinfo.json` (`[]*StationInfo`), decoded as Go's encoding/json does
//!   ([`super::gojson`]; durations in nanoseconds, addresses in base64). A missing BSS or
//!   station file means that interface has none (as `os.ErrNotExist` in 1.12); a missing
//!   `interfaces.json` or any decode error fails the collector (samples of the interfaces
//!   before the failing one are kept, as 1.12 sends them first). Landlock grants the directory.
//!   A `null` interface or station entry is an error here (1.12 would dereference nil and
//!   crash); the nested `Load` and `RSN` structs of a BSS are only checked to be objects.
//! - Without fixtures (the live mode) it asks nl80211 over generic netlink, as 1.12 does
//!   ([`super::wifi_nl80211`], policy fragment `netlink-generic`); without nl80211 (the family
//!   not registered: no wireless stack) the scrape is 1.12's `ErrNoData`.

use std::path::{Path, PathBuf};

use super::options::collector_options;
use super::{gojson, read_to_string, CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

collector_options! {
    /// Options of the wifi collector (`[collector.wifi]` in the file).
    pub struct WifiOptions {
        /// test fixtures to use for wifi collector metrics: a directory (granted by Landlock;
        /// a change needs a restart). Without it the collector asks nl80211 (generic netlink).
        #[arg(id = "collector.wifi.fixtures", long = "collector.wifi.fixtures", value_name = "DIR",
              value_parser = crate::collector::options::parse_path_or_empty)]
        pub fixtures: Option<PathBuf>,
        /// Set at start-up once the fixture directory has moved out of the options (not a flag
        /// or file setting): whether the collector reads fixtures rather than nl80211.
        #[arg(skip)]
        #[serde(skip)]
        pub with_fixtures: Option<bool>,
    }
}

/// Whether the collector asks nl80211 (its live mode), which needs the `netlink-generic`
/// policy fragment: without fixtures.
pub fn uses_nl80211(o: &WifiOptions) -> bool {
    !o.with_fixtures.unwrap_or(false)
        && o.fixtures.as_ref().is_none_or(|p| p.as_os_str().is_empty())
}

/// An interface (mdlayher/wifi `Interface`, the fields used).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub frequency: i64,
}

/// A BSS (mdlayher/wifi `BSS`, the fields used).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bss {
    pub ssid: String,
    pub bssid: Vec<u8>,
    pub status: i64,
}

/// A station (mdlayher/wifi `StationInfo`, the fields used).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Station {
    pub hardware_addr: Vec<u8>,
    /// Nanoseconds.
    pub connected: i64,
    /// Nanoseconds.
    pub inactive: i64,
    pub received_bytes: i64,
    pub transmitted_bytes: i64,
    pub received_packets: i64,
    pub transmitted_packets: i64,
    pub receive_bitrate: i64,
    pub transmit_bitrate: i64,
    pub signal: i64,
    pub transmit_retries: i64,
    pub transmit_failed: i64,
    pub beacon_loss: i64,
}

fn json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// `interfaces.json`.
pub fn parse_interfaces(text: &str) -> Result<Vec<Interface>, String> {
    let v = json(text)?;
    let mut out = Vec::new();
    for item in gojson::array(&v)? {
        let o = gojson::object(item)?.ok_or("null interface entry")?;
        for f in ["Index", "PHY", "Device", "Type", "ChannelWidth"] {
            o.int(f, 64)?;
        }
        o.bytes("HardwareAddr")?;
        out.push(Interface {
            name: o.string("Name")?,
            frequency: o.int("Frequency", 64)?,
        });
    }
    Ok(out)
}

/// `<iface>/bss.json`.
pub fn parse_bss(text: &str) -> Result<Bss, String> {
    let v = json(text)?;
    let Some(o) = gojson::object(&v)? else {
        return Ok(Bss::default());
    };
    for f in ["Frequency", "BeaconInterval", "LastSeen"] {
        o.int(f, 64)?;
    }
    o.int("Signal", 32)?;
    o.uint("SignalUnspecified", 32)?;
    o.any_object("Load")?;
    o.any_object("RSN")?;
    Ok(Bss {
        ssid: o.string("SSID")?,
        bssid: o.bytes("BSSID")?,
        status: o.int("Status", 64)?,
    })
}

/// `<iface>/stationinfo.json`.
pub fn parse_stations(text: &str) -> Result<Vec<Station>, String> {
    let v = json(text)?;
    let mut out = Vec::new();
    for item in gojson::array(&v)? {
        let o = gojson::object(item)?.ok_or("null station entry")?;
        o.int("InterfaceIndex", 64)?;
        o.int("SignalAverage", 64)?;
        let i = |f: &str| o.int(f, 64);
        out.push(Station {
            hardware_addr: o.bytes("HardwareAddr")?,
            connected: i("Connected")?,
            inactive: i("Inactive")?,
            received_bytes: i("ReceivedBytes")?,
            transmitted_bytes: i("TransmittedBytes")?,
            received_packets: i("ReceivedPackets")?,
            transmitted_packets: i("TransmittedPackets")?,
            receive_bitrate: i("ReceiveBitrate")?,
            transmit_bitrate: i("TransmitBitrate")?,
            signal: i("Signal")?,
            transmit_retries: i("TransmitRetries")?,
            transmit_failed: i("TransmitFailed")?,
            beacon_loss: i("BeaconLoss")?,
        });
    }
    Ok(out)
}

/// 1.12's `bssStatusMode` (mdlayher/wifi: 0 authenticated, 1 associated, 3 IBSS joined).
pub fn bss_mode(status: i64) -> &'static str {
    match status {
        0 | 1 => "client",
        3 => "ad-hoc",
        _ => "unknown",
    }
}

/// The families being filled, in 1.12's order of emission (both modes fill them alike).
pub(crate) struct Families {
    freq: MetricFamily,
    info: MetricFamily,
    /// The station families, in the order of [`station_values`].
    station: Vec<MetricFamily>,
}

const STATION_FAMILIES: [(&str, &str, bool); 12] = [
    (
        "node_wifi_station_connected_seconds_total",
        "The total number of seconds a station has been connected to an access point.",
        true,
    ),
    (
        "node_wifi_station_inactive_seconds",
        "The number of seconds since any wireless activity has occurred on a station.",
        false,
    ),
    (
        "node_wifi_station_receive_bits_per_second",
        "The current WiFi receive bitrate of a station, in bits per second.",
        false,
    ),
    (
        "node_wifi_station_transmit_bits_per_second",
        "The current WiFi transmit bitrate of a station, in bits per second.",
        false,
    ),
    (
        "node_wifi_station_receive_bytes_total",
        "The total number of bytes received by a WiFi station.",
        true,
    ),
    (
        "node_wifi_station_transmit_bytes_total",
        "The total number of bytes transmitted by a WiFi station.",
        true,
    ),
    (
        "node_wifi_station_signal_dbm",
        "The current WiFi signal strength, in decibel-milliwatts (dBm).",
        false,
    ),
    (
        "node_wifi_station_transmit_retries_total",
        "The total number of times a station has had to retry while sending a packet.",
        true,
    ),
    (
        "node_wifi_station_transmit_failed_total",
        "The total number of times a station has failed to send a packet.",
        true,
    ),
    (
        "node_wifi_station_beacon_loss_total",
        "The total number of times a station has detected a beacon loss.",
        true,
    ),
    (
        "node_wifi_station_transmitted_packets_total",
        "The total number of packets transmitted by a station.",
        true,
    ),
    (
        "node_wifi_station_received_packets_total",
        "The total number of packets received by a station.",
        true,
    ),
];

/// A station's values in [`STATION_FAMILIES`]' order (durations in seconds).
fn station_values(s: &Station) -> [f64; 12] {
    [
        s.connected as f64 / 1e9,
        s.inactive as f64 / 1e9,
        s.receive_bitrate as f64,
        s.transmit_bitrate as f64,
        s.received_bytes as f64,
        s.transmitted_bytes as f64,
        s.signal as f64,
        s.transmit_retries as f64,
        s.transmit_failed as f64,
        s.beacon_loss as f64,
        s.transmitted_packets as f64,
        s.received_packets as f64,
    ]
}

impl Families {
    pub(crate) fn new() -> Self {
        Families {
            freq: MetricFamily::gauge(
                "node_wifi_interface_frequency_hertz",
                "The current frequency a WiFi interface is operating at, in hertz.",
            ),
            info: MetricFamily::gauge(
                "node_wifi_station_info",
                "Labeled WiFi interface station information as provided by the operating system.",
            ),
            station: STATION_FAMILIES
                .iter()
                .map(|(name, help, counter)| {
                    if *counter {
                        MetricFamily::counter(*name, *help)
                    } else {
                        MetricFamily::gauge(*name, *help)
                    }
                })
                .collect(),
        }
    }

    pub(crate) fn done(self) -> Vec<MetricFamily> {
        let mut v = vec![self.freq, self.info];
        v.extend(self.station);
        nonempty_sorted(v)
    }

    /// An interface's frequency (1.12's `mHzToHz`).
    pub(crate) fn interface(&mut self, ifi: &Interface) {
        self.freq
            .push(&[("device", &ifi.name)], ifi.frequency as f64 * 1e6);
    }

    /// 1.12's `updateBSSStats`.
    pub(crate) fn bss(&mut self, device: &str, b: &Bss) {
        self.info.push(
            &[
                ("device", device),
                ("bssid", &gojson::hardware_addr(&b.bssid)),
                ("ssid", &b.ssid),
                ("mode", bss_mode(b.status)),
            ],
            1.0,
        );
    }

    /// 1.12's `updateStationStats`, per station.
    pub(crate) fn stations(&mut self, device: &str, stations: &[Station]) {
        for s in stations {
            let mac = gojson::hardware_addr(&s.hardware_addr);
            let l = [("device", device), ("mac_address", mac.as_str())];
            for (fam, v) in self.station.iter_mut().zip(station_values(s)) {
                fam.push(&l, v);
            }
        }
    }
}

/// Reads an optional per-interface fixture: `None` when the file does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CollectError> {
    match super::fsio::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, e)),
    }
}

/// 1.12's `Update` over the fixture directory `dir`.
pub fn collect_fixtures(dir: &Path) -> Result<Vec<MetricFamily>, CollectError> {
    let path = dir.join("interfaces.json");
    let ifis = parse_interfaces(&read_to_string(&path)?).map_err(|m| {
        CollectError::parse(&path, format!("failed to retrieve wifi interfaces: {m}"))
    })?;
    let mut f = Families::new();
    for ifi in ifis {
        if ifi.name.is_empty() {
            continue;
        }
        f.interface(&ifi);
        let bss_path = dir.join(&ifi.name).join("bss.json");
        let bss_text = read_optional(&bss_path).map_err(|e| {
            CollectError::Other(format!(
                "failed to retrieve BSS for device {}: {e}",
                ifi.name
            ))
        });
        let bss = match bss_text {
            Err(e) => return Err(CollectError::partial(f.done(), e)),
            Ok(None) => None,
            Ok(Some(text)) => match parse_bss(&text) {
                Ok(b) => Some(b),
                Err(m) => {
                    let e = CollectError::parse(&bss_path, format!("failed to retrieve BSS: {m}"));
                    return Err(CollectError::partial(f.done(), e));
                }
            },
        };
        if let Some(b) = bss {
            f.bss(&ifi.name, &b);
        }
        let st_path = dir.join(&ifi.name).join("stationinfo.json");
        let stations = match read_optional(&st_path) {
            Err(e) => return Err(CollectError::partial(f.done(), e)),
            Ok(None) => Vec::new(),
            Ok(Some(text)) => match parse_stations(&text) {
                Ok(s) => s,
                Err(m) => {
                    let e = CollectError::parse(
                        &st_path,
                        format!("failed to retrieve station info: {m}"),
                    );
                    return Err(CollectError::partial(f.done(), e));
                }
            },
        };
        f.stations(&ifi.name, &stations);
    }
    Ok(f.done())
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Wifi)
}

pub struct Wifi;

impl Collector for Wifi {
    fn name(&self) -> &'static str {
        "wifi"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        match &paths.collector_files.wifi_fixtures {
            Some(dir) => collect_fixtures(dir),
            None => super::wifi_nl80211::collect_live(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::{fixture, fixture_copy};

    #[test]
    fn node_exporter_112_e2e_fixture() {
        let fams = collect_fixtures(&fixture("ne112", "wifi")).expect("collects");
        assert_eq!(ne112::render(&fams), ne112::expected("node_wifi_"));
    }

    #[test]
    fn bad_station_file_keeps_earlier_samples() {
        let dir = fixture_copy("ne112", "wifi");
        std::fs::write(dir.path().join("wlan0/stationinfo.json"), "[null]").expect("write");
        match collect_fixtures(dir.path()) {
            Err(CollectError::Partial { families, .. }) => {
                assert!(families.iter().any(|f| f.name == "node_wifi_station_info"));
            }
            other => panic!("expected a partial failure, got {other:?}"),
        }
        std::fs::remove_file(dir.path().join("interfaces.json")).expect("rm");
        assert!(collect_fixtures(dir.path()).is_err());
    }

    #[test]
    fn bss_modes() {
        assert_eq!(bss_mode(0), "client");
        assert_eq!(bss_mode(1), "client");
        assert_eq!(bss_mode(3), "ad-hoc");
        assert_eq!(bss_mode(2), "unknown");
    }

    #[test]
    fn live_mode_needs_the_fragment_only_without_fixtures() {
        let mut o = WifiOptions::default();
        assert!(uses_nl80211(&o));
        o.fixtures = Some(PathBuf::from("/x"));
        assert!(!uses_nl80211(&o));
        // After start-up moved the directory out of the options.
        o.fixtures = None;
        o.with_fixtures = Some(true);
        assert!(!uses_nl80211(&o));
        o.with_fixtures = Some(false);
        assert!(uses_nl80211(&o));
        o.fixtures = Some(PathBuf::new());
        assert!(uses_nl80211(&o), "an empty path means none");
    }
}
