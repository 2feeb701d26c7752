//! The `wifi` collector's live mode: nl80211 over generic netlink, as node_exporter 1.12's
//! `wifi_linux.go` over mdlayher/wifi (`client_linux.go`).
//!
//! Per scrape, each exchange on a socket of its own ([`super::netlink::exchange`]):
//! 1. `CTRL_CMD_GETFAMILY` for `nl80211` (a plain request to `GENL_ID_CTRL`, as mdlayher/genetlink's
//!    `GetFamily`; the kernel may load cfg80211 for it, as for 1.12). `ENOENT` (the family is not
//!    registered: no wireless stack) and `EPERM`/`EACCES` are 1.12's `ErrNoData`.
//! 2. `NL80211_CMD_GET_INTERFACE` dump: index, name, MAC address, frequency of each interface.
//! 3. Per named interface, `NL80211_CMD_GET_SCAN` dump (`NL80211_ATTR_IFINDEX`, `NL80211_ATTR_MAC`):
//!    the BSS with `NL80211_BSS_STATUS` (the one the interface is in), and
//!    `NL80211_CMD_GET_STATION` dump (same attributes): its stations.
//!    As mdlayher/wifi, a kernel `ENOENT` or no matching answer means "none" (`os.ErrNotExist`:
//!    1.12 skips it); any other error fails the scrape, keeping the samples sent before it.
//!
//! Values as mdlayher/wifi decodes them: `CONNECTED_TIME` seconds, `INACTIVE_TIME`
//! milliseconds, bitrates in 100 kbit/s (`BITRATE32`, else `BITRATE`), `RX/TX_BYTES64` before the
//! 32-bit counters, `SIGNAL` as a signed byte (dBm), the SSID from the information elements
//! decoded rune by rune (an invalid byte is one U+FFFD, as Go's `utf8.DecodeRune`). Where Go
//! would panic on a short attribute (`binary.NativeEndian.Uint32` of fewer than 4 bytes) this
//! fails the scrape with an error naming the attribute. Integers are native-endian, as the kernel
//! sends them.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NlasIterator, NLA_TYPE_MASK,
    NLM_F_DUMP,
};

use super::netlink::{exchange, Failure, NETLINK_GENERIC};
use super::wifi::{Bss, Families, Interface, Station};
use super::CollectError;
use crate::exposition::MetricFamily;

/// `GENL_ID_CTRL`: the generic netlink controller's message type.
pub const GENL_ID_CTRL: u16 = 0x10;
/// `CTRL_CMD_GETFAMILY`, `CTRL_ATTR_FAMILY_ID`, `CTRL_ATTR_FAMILY_NAME`, `CTRL_ATTR_VERSION`.
pub const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_VERSION: u16 = 3;
/// The controller's version mdlayher/genetlink sends (`ctrlVersion`).
const CTRL_VERSION: u8 = 1;
/// `NL80211_GENL_NAME`.
pub const NL80211: &str = "nl80211";

/// `enum nl80211_commands` (include/uapi/linux/nl80211.h).
pub const NL80211_CMD_GET_INTERFACE: u8 = 5;
pub const NL80211_CMD_GET_STATION: u8 = 17;
pub const NL80211_CMD_GET_SCAN: u8 = 32;
/// `enum nl80211_attrs`.
pub const NL80211_ATTR_IFINDEX: u16 = 3;
pub const NL80211_ATTR_IFNAME: u16 = 4;
pub const NL80211_ATTR_MAC: u16 = 6;
pub const NL80211_ATTR_STA_INFO: u16 = 21;
pub const NL80211_ATTR_WIPHY_FREQ: u16 = 38;
pub const NL80211_ATTR_BSS: u16 = 47;
/// `enum nl80211_sta_info`.
pub const STA_INFO_INACTIVE_TIME: u16 = 1;
pub const STA_INFO_RX_BYTES: u16 = 2;
pub const STA_INFO_TX_BYTES: u16 = 3;
pub const STA_INFO_SIGNAL: u16 = 7;
pub const STA_INFO_TX_BITRATE: u16 = 8;
pub const STA_INFO_RX_PACKETS: u16 = 9;
pub const STA_INFO_TX_PACKETS: u16 = 10;
pub const STA_INFO_TX_RETRIES: u16 = 11;
pub const STA_INFO_TX_FAILED: u16 = 12;
pub const STA_INFO_RX_BITRATE: u16 = 14;
pub const STA_INFO_CONNECTED_TIME: u16 = 16;
pub const STA_INFO_BEACON_LOSS: u16 = 18;
pub const STA_INFO_RX_BYTES64: u16 = 23;
pub const STA_INFO_TX_BYTES64: u16 = 24;
/// `enum nl80211_rate_info`.
pub const RATE_INFO_BITRATE: u16 = 1;
pub const RATE_INFO_BITRATE32: u16 = 5;
/// `enum nl80211_bss`.
pub const BSS_BSSID: u16 = 1;
pub const BSS_INFORMATION_ELEMENTS: u16 = 6;
pub const BSS_STATUS: u16 = 9;
/// The SSID information element's id.
const IE_SSID: u8 = 0;

/// A generic netlink message: the netlink message type (the family id), `genlmsghdr`
/// (command, version, 2 reserved bytes) and the attributes, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenlMessage {
    pub family: u16,
    pub cmd: u8,
    pub version: u8,
    pub attrs: Vec<u8>,
}

const GENL_HDRLEN: usize = 4;

impl NetlinkSerializable for GenlMessage {
    fn message_type(&self) -> u16 {
        self.family
    }
    fn buffer_len(&self) -> usize {
        GENL_HDRLEN + self.attrs.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        let mut v = vec![self.cmd, self.version, 0, 0];
        v.extend_from_slice(&self.attrs);
        for (d, s) in buffer.iter_mut().zip(v) {
            *d = s;
        }
    }
}

impl NetlinkDeserializable for GenlMessage {
    type Error = std::io::Error;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        let short = || std::io::Error::other("generic netlink message shorter than genlmsghdr");
        let (&cmd, rest) = payload.split_first().ok_or_else(short)?;
        let (&version, rest) = rest.split_first().ok_or_else(short)?;
        let attrs = rest.get(2..).ok_or_else(short)?.to_vec();
        Ok(GenlMessage {
            family: header.message_type,
            cmd,
            version,
            attrs,
        })
    }
}

/// One attribute, encoded: `nlattr` (length, type) and the value, padded to 4 bytes.
pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut v = Vec::with_capacity(len.div_ceil(4) * 4);
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize(len.div_ceil(4) * 4, 0);
    v
}

/// The attributes in `buf` (netlink-packet-core's `NlasIterator`): (type without the
/// nested/byte-order flags, value).
pub fn attrs(buf: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, String> {
    NlasIterator::new(buf)
        .map(|a| {
            let a = a.map_err(|e| format!("bad attribute: {e}"))?;
            Ok((a.kind() & NLA_TYPE_MASK, a.value().to_vec()))
        })
        .collect()
}

fn u32_of(name: &str, v: &[u8]) -> Result<u32, String> {
    let b: [u8; 4] = v
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{name}: {} bytes, expected 4", v.len()))?;
    Ok(u32::from_ne_bytes(b))
}

fn u16_of(name: &str, v: &[u8]) -> Result<u16, String> {
    let b: [u8; 2] = v
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{name}: {} bytes, expected 2", v.len()))?;
    Ok(u16::from_ne_bytes(b))
}

fn u64_of(name: &str, v: &[u8]) -> Result<u64, String> {
    let b: [u8; 8] = v
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{name}: {} bytes, expected 8", v.len()))?;
    Ok(u64::from_ne_bytes(b))
}

/// The `CTRL_CMD_GETFAMILY` request for nl80211 (by name, NUL-terminated).
pub fn family_request() -> GenlMessage {
    GenlMessage {
        family: GENL_ID_CTRL,
        cmd: CTRL_CMD_GETFAMILY,
        version: CTRL_VERSION,
        attrs: attr(CTRL_ATTR_FAMILY_NAME, b"nl80211\0"),
    }
}

/// The family id and version in the controller's answer.
pub fn parse_family(msgs: &[GenlMessage]) -> Result<(u16, u8), String> {
    let m = msgs.first().ok_or("no answer to CTRL_CMD_GETFAMILY")?;
    let (mut id, mut version) = (None, 0u8);
    for (k, v) in attrs(&m.attrs)? {
        match k {
            CTRL_ATTR_FAMILY_ID => id = Some(u16_of("CTRL_ATTR_FAMILY_ID", &v)?),
            CTRL_ATTR_VERSION => version = u32_of("CTRL_ATTR_VERSION", &v)? as u8,
            _ => {}
        }
    }
    Ok((id.ok_or("no CTRL_ATTR_FAMILY_ID in the answer")?, version))
}

/// A live interface: what the collector reports and what identifies it in later requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveInterface {
    pub index: u32,
    pub mac: Option<Vec<u8>>,
    pub iface: Interface,
}

/// `NL80211_CMD_GET_INTERFACE` dump request (no attributes).
pub fn interfaces_request(family: u16, version: u8) -> GenlMessage {
    GenlMessage {
        family,
        cmd: NL80211_CMD_GET_INTERFACE,
        version,
        attrs: Vec::new(),
    }
}

/// A per-interface dump request (`GET_SCAN`, `GET_STATION`): `NL80211_ATTR_IFINDEX` (u32),
/// then `NL80211_ATTR_MAC` when the interface has one, as mdlayher/wifi's `get`.
pub fn interface_request(family: u16, version: u8, cmd: u8, ifi: &LiveInterface) -> GenlMessage {
    let mut a = attr(NL80211_ATTR_IFINDEX, &ifi.index.to_ne_bytes());
    if let Some(mac) = &ifi.mac {
        a.extend(attr(NL80211_ATTR_MAC, mac));
    }
    GenlMessage {
        family,
        cmd,
        version,
        attrs: a,
    }
}

/// mdlayher/wifi `Interface.parseAttributes` (the fields the collector uses).
pub fn parse_interface(m: &GenlMessage) -> Result<LiveInterface, String> {
    let mut ifi = LiveInterface::default();
    for (k, v) in attrs(&m.attrs)? {
        match k {
            NL80211_ATTR_IFINDEX => ifi.index = u32_of("NL80211_ATTR_IFINDEX", &v)?,
            NL80211_ATTR_IFNAME => ifi.iface.name = nl_string(&v),
            NL80211_ATTR_MAC => ifi.mac = Some(v),
            NL80211_ATTR_WIPHY_FREQ => {
                ifi.iface.frequency = i64::from(u32_of("NL80211_ATTR_WIPHY_FREQ", &v)?)
            }
            _ => {}
        }
    }
    Ok(ifi)
}

/// mdlayher/netlink `nlenc.String`: up to the first NUL.
fn nl_string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(v.get(..end).unwrap_or_default()).into_owned()
}

/// mdlayher/wifi `decodeSSID`: rune by rune, each invalid byte one U+FFFD.
pub fn decode_ssid(mut b: &[u8]) -> String {
    let mut s = String::new();
    while !b.is_empty() {
        match std::str::from_utf8(b) {
            Ok(v) => {
                s.push_str(v);
                break;
            }
            Err(e) => {
                let (good, bad) = b.split_at(e.valid_up_to());
                s.push_str(std::str::from_utf8(good).unwrap_or_default());
                s.push(char::REPLACEMENT_CHARACTER);
                b = bad.get(1..).unwrap_or_default();
            }
        }
    }
    s
}

/// mdlayher/wifi `parseBSS`: the first `NL80211_ATTR_BSS` with `NL80211_BSS_STATUS`, or `None`
/// (`os.ErrNotExist`).
pub fn parse_bss(msgs: &[GenlMessage]) -> Result<Option<Bss>, String> {
    for m in msgs {
        for (k, v) in attrs(&m.attrs)? {
            if k != NL80211_ATTR_BSS {
                continue;
            }
            let nested = attrs(&v)?;
            if !nested.iter().any(|(k, _)| *k == BSS_STATUS) {
                continue;
            }
            let mut bss = Bss::default();
            for (k, v) in nested {
                match k {
                    BSS_BSSID => bss.bssid = v,
                    BSS_STATUS => bss.status = i64::from(u32_of("NL80211_BSS_STATUS", &v)?),
                    BSS_INFORMATION_ELEMENTS => {
                        for (id, data) in parse_ies(&v)? {
                            if id == IE_SSID {
                                bss.ssid = decode_ssid(data);
                            }
                        }
                    }
                    _ => {}
                }
            }
            return Ok(Some(bss));
        }
    }
    Ok(None)
}

/// mdlayher/wifi `parseIEs`: (id, length, data) triples.
fn parse_ies(mut b: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while let [id, len, rest @ ..] = b {
        let data = rest
            .get(..usize::from(*len))
            .ok_or("invalid information element")?;
        out.push((*id, data));
        b = rest.get(usize::from(*len)..).unwrap_or_default();
    }
    if !b.is_empty() {
        return Err("invalid information element".into());
    }
    Ok(out)
}

/// mdlayher/wifi `ParseStationInfo`: `None` when the message has no `NL80211_ATTR_STA_INFO`
/// (`os.ErrNotExist`, which makes 1.12 skip the interface's stations).
pub fn parse_station(m: &GenlMessage) -> Result<Option<Station>, String> {
    let mut st = Station::default();
    for (k, v) in attrs(&m.attrs)? {
        match k {
            NL80211_ATTR_MAC => st.hardware_addr = v,
            NL80211_ATTR_STA_INFO => {
                station_info(&mut st, &v)?;
                return Ok(Some(st));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// mdlayher/wifi `StationInfo.parseAttributes`.
fn station_info(st: &mut Station, b: &[u8]) -> Result<(), String> {
    let u32v = |n: &str, v: &[u8]| u32_of(n, v).map(i64::from);
    for (k, v) in attrs(b)? {
        match k {
            STA_INFO_CONNECTED_TIME => {
                st.connected = u32v("CONNECTED_TIME", &v)?.saturating_mul(1_000_000_000)
            }
            STA_INFO_INACTIVE_TIME => {
                st.inactive = u32v("INACTIVE_TIME", &v)?.saturating_mul(1_000_000)
            }
            STA_INFO_RX_BYTES64 => st.received_bytes = u64_of("RX_BYTES64", &v)? as i64,
            STA_INFO_TX_BYTES64 => st.transmitted_bytes = u64_of("TX_BYTES64", &v)? as i64,
            STA_INFO_SIGNAL => {
                st.signal = i64::from(*v.first().ok_or("SIGNAL: empty")? as i8);
            }
            STA_INFO_RX_PACKETS => st.received_packets = u32v("RX_PACKETS", &v)?,
            STA_INFO_TX_PACKETS => st.transmitted_packets = u32v("TX_PACKETS", &v)?,
            STA_INFO_TX_RETRIES => st.transmit_retries = u32v("TX_RETRIES", &v)?,
            STA_INFO_TX_FAILED => st.transmit_failed = u32v("TX_FAILED", &v)?,
            STA_INFO_BEACON_LOSS => st.beacon_loss = u32v("BEACON_LOSS", &v)?,
            STA_INFO_RX_BITRATE => st.receive_bitrate = rate(&v)?,
            STA_INFO_TX_BITRATE => st.transmit_bitrate = rate(&v)?,
            _ => {}
        }
        // The 32-bit counters only while no 64-bit one was seen (a later 64-bit one wins).
        if st.received_bytes == 0 && k == STA_INFO_RX_BYTES {
            st.received_bytes = u32v("RX_BYTES", &v)?;
        }
        if st.transmitted_bytes == 0 && k == STA_INFO_TX_BYTES {
            st.transmitted_bytes = u32v("TX_BYTES", &v)?;
        }
    }
    Ok(())
}

/// mdlayher/wifi `parseRateInfo`: bits per second (`BITRATE32`, else the 16-bit `BITRATE`,
/// both in 100 kbit/s).
fn rate(b: &[u8]) -> Result<i64, String> {
    let mut r = 0i64;
    for (k, v) in attrs(b)? {
        if k == RATE_INFO_BITRATE32 {
            r = i64::from(u32_of("RATE_INFO_BITRATE32", &v)?);
        }
        if r == 0 && k == RATE_INFO_BITRATE {
            r = i64::from(u16_of("RATE_INFO_BITRATE", &v)?);
        }
    }
    Ok(r * 100 * 1000)
}

fn is_not_exist(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// One nl80211 dump for an interface; `Ok(None)` for a kernel `ENOENT` (`os.ErrNotExist`).
fn dump_for(
    family: u16,
    version: u8,
    cmd: u8,
    what: &str,
    ifi: &LiveInterface,
) -> Result<Option<Vec<GenlMessage>>, CollectError> {
    let req = interface_request(family, version, cmd, ifi);
    match exchange(NETLINK_GENERIC, what, req, NLM_F_DUMP) {
        Ok(m) => Ok(Some(m)),
        Err(Failure::Kernel(e)) if is_not_exist(&e) => Ok(None),
        Err(Failure::Kernel(e)) => Err(CollectError::Other(format!("netlink {what}: {e}"))),
        Err(Failure::Transport(e)) => Err(e),
    }
}

/// 1.12's `Update` without fixtures.
pub fn collect_live() -> Result<Vec<MetricFamily>, CollectError> {
    let (family, version) =
        match exchange(NETLINK_GENERIC, "CTRL_CMD_GETFAMILY", family_request(), 0) {
            Ok(m) => parse_family(&m).map_err(|e| {
                CollectError::Other(format!("failed to access wifi data: nl80211 family: {e}"))
            })?,
            Err(Failure::Kernel(e))
                if is_not_exist(&e) || e.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                return Err(CollectError::NoData {
                    what: format!("wifi: generic netlink family {NL80211} ({e})"),
                })
            }
            Err(Failure::Kernel(e)) => {
                return Err(CollectError::Other(format!(
                    "failed to access wifi data: CTRL_CMD_GETFAMILY {NL80211}: {e}"
                )))
            }
            Err(Failure::Transport(e)) => {
                return Err(CollectError::Other(format!(
                    "failed to access wifi data: {e}"
                )))
            }
        };
    let msgs = exchange(
        NETLINK_GENERIC,
        "NL80211_CMD_GET_INTERFACE",
        interfaces_request(family, version),
        NLM_F_DUMP,
    )
    .map_err(|e| {
        let e = match e {
            Failure::Kernel(e) => e.to_string(),
            Failure::Transport(e) => e.to_string(),
        };
        CollectError::Other(format!("failed to retrieve wifi interfaces: {e}"))
    })?;
    let ifis = msgs
        .iter()
        .map(parse_interface)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CollectError::Other(format!("failed to retrieve wifi interfaces: {e}")))?;
    let mut ask = |cmd: u8, ifi: &LiveInterface| {
        let what = if cmd == NL80211_CMD_GET_SCAN {
            "NL80211_CMD_GET_SCAN"
        } else {
            "NL80211_CMD_GET_STATION"
        };
        dump_for(family, version, cmd, what, ifi)
    };
    families(&ifis, &mut ask)
}

/// An nl80211 dump for an interface (`NL80211_CMD_GET_SCAN` or `NL80211_CMD_GET_STATION`):
/// the answer, `None` for `os.ErrNotExist`.
pub type Ask<'a> =
    dyn FnMut(u8, &LiveInterface) -> Result<Option<Vec<GenlMessage>>, CollectError> + 'a;

/// The samples of the interfaces, asking `ask` for each one's BSS and stations (1.12's loop;
/// an error keeps the samples before it).
pub fn families(ifis: &[LiveInterface], ask: &mut Ask) -> Result<Vec<MetricFamily>, CollectError> {
    let mut f = Families::new();
    for ifi in ifis {
        if let Err(e) = interface_samples(&mut f, ifi, ask) {
            return Err(CollectError::partial(f.done(), e));
        }
    }
    Ok(f.done())
}

/// One interface's samples (1.12's loop body): frequency, BSS, stations.
fn interface_samples(
    f: &mut Families,
    ifi: &LiveInterface,
    ask: &mut Ask,
) -> Result<(), CollectError> {
    let name = &ifi.iface.name;
    if name.is_empty() {
        return Ok(());
    }
    f.interface(&ifi.iface);
    let bss_err =
        |e: String| CollectError::Other(format!("failed to retrieve BSS for device {name}: {e}"));
    let scan = ask(NL80211_CMD_GET_SCAN, ifi).map_err(|e| bss_err(e.to_string()))?;
    if let Some(msgs) = scan {
        if let Some(b) = parse_bss(&msgs).map_err(bss_err)? {
            f.bss(name, &b);
        }
    }
    let st_err = |e: String| {
        CollectError::Other(format!(
            "failed to retrieve station info for device \"{name}\": {e}"
        ))
    };
    let answer = ask(NL80211_CMD_GET_STATION, ifi).map_err(|e| st_err(e.to_string()))?;
    if let Some(msgs) = answer {
        let parsed = msgs
            .iter()
            .map(parse_station)
            .collect::<Result<Option<Vec<_>>, _>>()
            .map_err(st_err)?;
        // A message without station info: 1.12 skips all of the interface's stations.
        if let Some(stations) = parsed {
            f.stations(name, &stations);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ne112;
    use crate::collectors::testutil::fixture;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};

    // The nl80211 layout written out by hand (not with [`attr`]): `struct nlattr` is
    // `u16 nla_len` (header + value, unpadded), `u16 nla_type`, then the value padded to 4.

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn u32a(kind: u16, x: u32) -> Vec<u8> {
        nla(kind, &x.to_ne_bytes())
    }

    /// A whole kernel answer: `nlmsghdr` (length, type = family, NLM_F_MULTI, seq 1, port 0),
    /// `genlmsghdr` (cmd, version 1, reserved) and the attributes; parsed as the transport does.
    fn answer(family: u16, cmd: u8, attrs: &[Vec<u8>]) -> GenlMessage {
        let body: Vec<u8> = attrs.concat();
        let len = 16 + 4 + body.len();
        let mut b = (len as u32).to_ne_bytes().to_vec();
        b.extend_from_slice(&family.to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&[cmd, 1, 0, 0]);
        b.extend_from_slice(&body);
        let m = NetlinkMessage::<GenlMessage>::deserialize(&b).expect("parses");
        assert_eq!(m.header.length as usize, len);
        match m.payload {
            NetlinkPayload::InnerMessage(g) => g,
            other => panic!("not an inner message: {other:?}"),
        }
    }

    fn serialized(m: GenlMessage, flags: u16) -> Vec<u8> {
        let mut h = NetlinkHeader::default();
        h.flags = flags;
        h.sequence_number = 1;
        let mut p = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(m));
        p.finalize();
        let mut out = vec![0u8; p.buffer_len()];
        p.serialize(&mut out);
        out
    }

    #[test]
    fn requests_byte_exact() {
        // CTRL_CMD_GETFAMILY "nl80211": 16 + 4 + 12 bytes, type 0x10, NLM_F_REQUEST.
        let mut want = 32u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&0x10u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[3, 1, 0, 0]);
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(b"nl80211\0");
        assert_eq!(serialized(family_request(), NLM_F_REQUEST), want);

        // NL80211_CMD_GET_INTERFACE dump: no attributes.
        let got = serialized(interfaces_request(0x1c, 1), NLM_F_REQUEST | NLM_F_DUMP);
        let mut want = 20u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&0x1cu16.to_ne_bytes());
        want.extend_from_slice(&0x301u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[5, 1, 0, 0]);
        assert_eq!(got, want);

        // NL80211_CMD_GET_STATION dump for ifindex 3 with its MAC (6 bytes padded to 8).
        let ifi = LiveInterface {
            index: 3,
            mac: Some(vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]),
            iface: Interface::default(),
        };
        let got = serialized(
            interface_request(0x1c, 1, NL80211_CMD_GET_STATION, &ifi),
            NLM_F_REQUEST | NLM_F_DUMP,
        );
        let mut want = 40u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&0x1cu16.to_ne_bytes());
        want.extend_from_slice(&0x301u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[17, 1, 0, 0]);
        want.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
        want.extend_from_slice(&3u16.to_ne_bytes()); // NL80211_ATTR_IFINDEX
        want.extend_from_slice(&3u32.to_ne_bytes());
        want.extend_from_slice(&10u16.to_ne_bytes()); // 4 + 6, unpadded
        want.extend_from_slice(&6u16.to_ne_bytes()); // NL80211_ATTR_MAC
        want.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0]);
        assert_eq!(got, want);
        // Without a MAC only the index.
        let got = serialized(
            interface_request(
                0x1c,
                1,
                NL80211_CMD_GET_SCAN,
                &LiveInterface { mac: None, ..ifi },
            ),
            NLM_F_REQUEST | NLM_F_DUMP,
        );
        assert_eq!(got.len(), 28);
        assert_eq!(got.get(16), Some(&32));
    }

    #[test]
    fn family_answer() {
        let m = answer(
            0x10,
            1, // CTRL_CMD_NEWFAMILY
            &[
                nla(2, b"nl80211\0"),
                nla(1, &0x1cu16.to_ne_bytes()),
                u32a(3, 1),
                u32a(4, 0),
            ],
        );
        assert_eq!(parse_family(&[m]), Ok((0x1c, 1)));
        assert!(parse_family(&[answer(0x10, 1, &[u32a(3, 1)])]).is_err());
        assert!(parse_family(&[]).is_err());
    }

    fn ies(ssid: &[u8]) -> Vec<u8> {
        let mut v = vec![0, ssid.len() as u8];
        v.extend_from_slice(ssid);
        v.extend_from_slice(&[1, 2, 0x82, 0x84]); // supported rates, skipped
        v
    }

    fn station(mac: [u8; 6], info: &[Vec<u8>]) -> GenlMessage {
        answer(
            0x1c,
            NL80211_CMD_GET_STATION, // the kernel answers with NL80211_CMD_NEW_STATION (19)
            &[u32a(3, 3), nla(6, &mac), nla(21, &info.concat())],
        )
    }

    /// The interfaces, BSS and stations of node_exporter 1.12's e2e wifi fixture, as nl80211
    /// would send them.
    fn e2e_equivalent() -> (Vec<LiveInterface>, GenlMessage, Vec<GenlMessage>) {
        let ifis = [
            answer(
                0x1c,
                7,
                &[
                    u32a(3, 3),
                    nla(4, b"wlan0\0"),
                    u32a(5, 2),
                    nla(6, &[2, 0, 0, 0, 0, 1]),
                    u32a(38, 2412),
                ],
            ),
            answer(
                0x1c,
                7,
                &[u32a(3, 4), nla(4, b"wlan1\0"), u32a(5, 3), u32a(38, 2412)],
            ),
            // A P2P device: no index, no name (skipped).
            answer(0x1c, 7, &[u32a(5, 10), nla(153, &1u64.to_ne_bytes())]),
        ];
        let ifis: Vec<LiveInterface> = ifis
            .iter()
            .map(|m| parse_interface(m).expect("interface"))
            .collect();
        // A BSS without status first (another scan result), then the associated one.
        let bss = answer(
            0x1c,
            34,
            &[
                u32a(3, 3),
                nla(
                    47,
                    &[
                        nla(1, &[0x66, 0, 0, 0, 0, 1]),
                        nla(6, &ies(b"Other")),
                        u32a(2, 2437),
                    ]
                    .concat(),
                ),
                nla(
                    47,
                    &[
                        nla(1, &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
                        u32a(2, 2412),
                        nla(4, &100u16.to_ne_bytes()),
                        nla(6, &ies(b"Example")),
                        u32a(7, (-5200i32) as u32),
                        u32a(9, 1),
                    ]
                    .concat(),
                ),
            ],
        );
        let rate = |bitrate32: Option<u32>, bitrate16: u16| {
            let mut v = vec![nla(1, &bitrate16.to_ne_bytes())];
            if let Some(b) = bitrate32 {
                v.push(u32a(5, b));
            }
            v.concat()
        };
        let stations = vec![
            station(
                [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
                &[
                    u32a(16, 30),                     // CONNECTED_TIME, s
                    u32a(1, 400),                     // INACTIVE_TIME, ms
                    nla(14, &rate(Some(1280), 1280)), // RX_BITRATE: 128 Mbit/s
                    nla(8, &rate(None, 1640)),        // TX_BITRATE, 16-bit only
                    nla(7, &[(-52i8) as u8]),         // SIGNAL
                    nla(13, &[(-50i8) as u8]),        // SIGNAL_AVG, unused
                    u32a(11, 10),
                    u32a(12, 2),
                    u32a(18, 1),
                ],
            ),
            station(
                [1, 2, 3, 4, 5, 6],
                &[
                    u32a(16, 60),
                    u32a(1, 800),
                    nla(14, &rate(Some(2560), 0)),
                    nla(8, &rate(Some(3280), 0)),
                    nla(7, &[(-26i8) as u8]),
                    u32a(11, 20),
                    u32a(12, 4),
                    u32a(18, 2),
                ],
            ),
        ];
        (ifis, bss, stations)
    }

    #[test]
    fn synthetic_answers_give_node_exporter_112_e2e_output() {
        let (ifis, bss, stations) = e2e_equivalent();
        assert_eq!(ifis.first().map(|i| i.index), Some(3));
        assert_eq!(
            ifis.first().and_then(|i| i.mac.clone()),
            Some(vec![2, 0, 0, 0, 0, 1])
        );
        let mut asked = Vec::new();
        let mut ask = |cmd: u8, ifi: &LiveInterface| {
            asked.push((cmd, ifi.iface.name.clone()));
            Ok(match (cmd, ifi.iface.name.as_str()) {
                (NL80211_CMD_GET_SCAN, "wlan0") => Some(vec![bss.clone()]),
                (NL80211_CMD_GET_STATION, "wlan0") => Some(stations.clone()),
                // wlan1: ENOENT for the scan, an empty station dump.
                (NL80211_CMD_GET_SCAN, _) => None,
                _ => Some(Vec::new()),
            })
        };
        let live = families(&ifis, &mut ask).expect("collects");
        // The same families, values and order as node_exporter 1.12's e2e output, and as the
        // fixture mode's from 1.12's JSON for the same data.
        assert_eq!(ne112::render(&live), ne112::expected("node_wifi_"));
        let from_json =
            super::super::wifi::collect_fixtures(&fixture("ne112", "wifi")).expect("fixture mode");
        assert_eq!(ne112::render(&live), ne112::render(&from_json));
        // The unnamed interface is never asked about.
        assert_eq!(
            asked,
            vec![
                (NL80211_CMD_GET_SCAN, "wlan0".to_string()),
                (NL80211_CMD_GET_STATION, "wlan0".to_string()),
                (NL80211_CMD_GET_SCAN, "wlan1".to_string()),
                (NL80211_CMD_GET_STATION, "wlan1".to_string()),
            ]
        );
    }

    #[test]
    fn counters_as_the_fixture_mode_reads_them() {
        // RX_BYTES (32-bit) then RX_BYTES64: the 64-bit one wins; TX_BYTES alone is used;
        // TX_BYTES64 before a 32-bit TX_BYTES keeps the 64-bit value.
        let st = station(
            [0xde, 0xad, 0xbe, 0xef, 0, 1],
            &[
                u32a(2, 7),
                nla(23, &(5u64 << 32).to_ne_bytes()),
                nla(24, &(1u64 << 33).to_ne_bytes()),
                u32a(3, 9),
                u32a(9, 1000),
                u32a(10, 2000),
                u32a(16, 5),
                nla(7, &[0x80]), // -128 dBm
            ],
        );
        let s = parse_station(&st).expect("parses").expect("has STA_INFO");
        assert_eq!(s.received_bytes, 5 << 32);
        assert_eq!(s.transmitted_bytes, 1 << 33);
        assert_eq!(s.signal, -128);
        let ifi = LiveInterface {
            index: 3,
            mac: None,
            iface: Interface {
                name: "wlp2s0".into(),
                frequency: 5180,
            },
        };
        let mut ask = |cmd: u8, _: &LiveInterface| {
            Ok((cmd == NL80211_CMD_GET_STATION).then(|| vec![st.clone()]))
        };
        let live = families(std::slice::from_ref(&ifi), &mut ask).expect("collects");

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("interfaces.json"),
            r#"[{"name":"wlp2s0","frequency":5180}]"#,
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("wlp2s0")).expect("mkdir");
        std::fs::write(
            dir.path().join("wlp2s0/stationinfo.json"),
            r#"[{"hardwareaddr":"3q2+7wAB","connected":5000000000,"receivedbytes":21474836480,
                "transmittedbytes":8589934592,"receivedpackets":1000,"transmittedpackets":2000,
                "signal":-128}]"#,
        )
        .expect("write");
        let from_json =
            super::super::wifi::collect_fixtures(dir.path()).expect("fixture mode collects");
        assert_eq!(ne112::render(&live), ne112::render(&from_json));
        assert!(live
            .iter()
            .any(|f| f.name == "node_wifi_station_receive_bytes_total"));
    }

    #[test]
    fn not_exist_and_errors_as_mdlayher_wifi() {
        // A station message without STA_INFO: os.ErrNotExist, 1.12 skips the stations.
        let bare = answer(0x1c, 19, &[u32a(3, 3), nla(6, &[1, 2, 3, 4, 5, 6])]);
        assert_eq!(parse_station(&bare), Ok(None));
        // No BSS with a status: none.
        let scan = answer(0x1c, 34, &[nla(47, &nla(1, &[1, 2, 3, 4, 5, 6]))]);
        assert_eq!(parse_bss(&[scan]), Ok(None));
        // A short u32 fails (Go would panic) instead of reading past the attribute.
        let short = answer(0x1c, 7, &[nla(38, &[1, 2])]);
        assert!(parse_interface(&short).is_err());
        // A truncated attribute list fails.
        let mut bad = answer(0x1c, 7, &[u32a(38, 2412)]);
        bad.attrs.truncate(6);
        assert!(parse_interface(&bad).is_err());
        // A broken information element fails the BSS.
        let ie = answer(
            0x1c,
            34,
            &[nla(47, &[u32a(9, 0), nla(6, &[0, 9, b'x'])].concat())],
        );
        assert!(parse_bss(&[ie]).is_err());
        // The SSID rune by rune: each invalid byte one U+FFFD (Go's utf8.DecodeRune).
        assert_eq!(decode_ssid(b"ab\xe2\x82c"), "ab\u{fffd}\u{fffd}c");
        assert_eq!(decode_ssid("café".as_bytes()), "café");
        // An error after the first interface keeps its samples.
        let (ifis, _, _) = e2e_equivalent();
        let mut ask = |cmd: u8, ifi: &LiveInterface| {
            if ifi.iface.name == "wlan1" && cmd == NL80211_CMD_GET_STATION {
                Err(CollectError::Other(
                    "netlink NL80211_CMD_GET_STATION: EIO".into(),
                ))
            } else {
                Ok(None)
            }
        };
        match families(&ifis, &mut ask) {
            Err(CollectError::Partial { families, source }) => {
                assert!(source.to_string().contains("device \"wlan1\""), "{source}");
                let f = families
                    .iter()
                    .find(|f| f.name == "node_wifi_interface_frequency_hertz")
                    .expect("frequencies kept");
                assert_eq!(f.samples.len(), 2);
            }
            other => panic!("expected a partial failure, got {other:?}"),
        }
    }

    /// On a host without cfg80211 (no nl80211 family, as the test VM and CI host) the live mode
    /// is 1.12's ErrNoData; with cfg80211 the family resolves and it must not be that NoData.
    #[test]
    fn live_without_nl80211_is_no_data() {
        // cfg80211 (module or built in: it has parameters) registers the nl80211 family.
        let registered = std::path::Path::new("/sys/module/cfg80211").exists();
        if registered {
            // nl80211 exists: the live mode must not be NoData for a missing family.
            if let Err(CollectError::NoData { what }) = collect_live() {
                panic!("nl80211 is registered here, yet: {what}");
            }
            return;
        }
        match collect_live() {
            Err(CollectError::NoData { what }) => assert!(what.contains("nl80211"), "{what}"),
            other => panic!("expected no data without nl80211, got {other:?}"),
        }
    }

    /// Who needs the `netlink-generic` fragment: wifi without fixtures only.
    #[test]
    fn fragment_only_for_the_live_mode() {
        use crate::collectors::{policy_users, Options};
        use crate::sandbox::fragments::Set;
        let mut o = Options::default();
        let users = policy_users(&["wifi"], &o);
        assert_eq!(users, vec!["wifi", "wifi.nl80211"]);
        assert_eq!(Set::for_collectors(&users).names(), vec!["netlink-generic"]);
        o.wifi.with_fixtures = Some(true);
        let users = policy_users(&["wifi"], &o);
        assert_eq!(users, vec!["wifi"]);
        assert_eq!(Set::for_collectors(&users), Set(0));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any attribute bytes (a kernel answer the agent does not expect): no panic, an
        /// error or a value.
        #[test]
        fn any_answer_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
                                   cut in 0usize..256) {
            let m = GenlMessage { family: 0x1c, cmd: 7, version: 1, attrs: raw.clone() };
            let _ = parse_interface(&m);
            let _ = parse_station(&m);
            let _ = parse_bss(std::slice::from_ref(&m));
            let _ = parse_family(std::slice::from_ref(&m));
            // Well-formed outer attributes around arbitrary nested ones.
            let nested = GenlMessage {
                attrs: [attr(NL80211_ATTR_STA_INFO, &raw), attr(NL80211_ATTR_BSS, &raw)].concat(),
                ..m
            };
            let _ = parse_station(&nested);
            let _ = parse_bss(std::slice::from_ref(&nested));
            let _ = decode_ssid(raw.get(..cut.min(raw.len())).unwrap_or_default());
        }
    }
}
