//! `ntp` collector (off by default, deprecated in node_exporter 1.12, which logs so when it is
//! built): one SNTP query (RFC 5905 client packet, 48 bytes) per scrape to a local NTP server,
//! as node_exporter 1.12's `ntp.go`, whose client is github.com/beevik/ntp v1.5.0. The packet,
//! the checks on the reply and the computations (clock offset, round trip, root distance,
//! minimum error, `Validate`) follow beevik/ntp line by line: [`Header`], [`check_reply`],
//! [`Response::from_reply`], [`Response::validate`]. No crate is used: the query is one UDP
//! datagram each way, and beevik's arithmetic (wrapping 64-bit NTP timestamps, Go duration
//! rounding, its minimum error and sanity rules) is what the samples must reproduce; no SNTP
//! crate exposes it.
//!
//! Families (all gauges, no labels): `node_ntp_stratum`, `node_ntp_leap`,
//! `node_ntp_rtt_seconds`, `node_ntp_offset_seconds`, `node_ntp_reference_timestamp_seconds`,
//! `node_ntp_root_delay_seconds`, `node_ntp_root_dispersion_seconds`, `node_ntp_sanity`.
//!
//! Flags (1.12's): `--collector.ntp.server` (default `127.0.0.1`), `.server-port` (123),
//! `.protocol-version` (4), `.server-is-local` (false), `.ip-ttl` (1), `.max-distance`
//! (3.46608s), `.local-offset-tolerance` (1ms). As 1.12, when the collector is enabled the
//! agent refuses to start on a server that is not a loopback IP address without
//! `--collector.ntp.server-is-local`, on a protocol version outside 2..=4 and on a port outside
//! 1..=65535 ([`check_enabled`]). Unlike 1.12, a host name is refused even with
//! `server-is-local`: resolving it would need DNS under the sandbox (files and sockets the
//! policy does not allow); give the server's address.
//!
//! Sandbox: the `ntp` policy fragment (`policy/fragments/ntp.json`): the datagram socket of
//! one query, its `connect` (with the length of a `sockaddr_storage`, [`query`]), `IP_TTL` and
//! `SO_RCVTIMEO`. Landlock does not govern UDP.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::options::{collector_options, parse_bool, GoDurationOpt};
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

collector_options! {
    /// Options of the ntp collector (`[collector.ntp]` in the file).
    pub struct NtpOptions {
        /// NTP server to use for ntp collector (an IP address). [default: 127.0.0.1]
        #[arg(id = "collector.ntp.server", long = "collector.ntp.server", value_name = "ADDRESS")]
        pub server: Option<String>,
        /// UDP port number to connect to on NTP server. [default: 123]
        #[arg(id = "collector.ntp.server-port", long = "collector.ntp.server-port", value_name = "PORT",
              allow_negative_numbers = true)]
        pub server_port: Option<i64>,
        /// NTP protocol version. [default: 4]
        #[arg(id = "collector.ntp.protocol-version", long = "collector.ntp.protocol-version",
              value_name = "VERSION", allow_negative_numbers = true)]
        pub protocol_version: Option<i64>,
        /// Certify that collector.ntp.server address is not a public ntp server. [default: false]
        #[arg(id = "collector.ntp.server-is-local", long = "collector.ntp.server-is-local",
              value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = parse_bool,
              overrides_with = "collector.ntp.no-server-is-local")]
        pub server_is_local: Option<bool>,
        /// node_exporter's negation of --collector.ntp.server-is-local (the default).
        #[arg(id = "collector.ntp.no-server-is-local", long = "no-collector.ntp.server-is-local",
              value_name = "BOOL", num_args = 0, default_missing_value = "true",
              value_parser = parse_bool, hide = true, overrides_with = "collector.ntp.server-is-local")]
        pub no_server_is_local: Option<bool>,
        /// IP TTL to use while sending NTP query. [default: 1]
        #[arg(id = "collector.ntp.ip-ttl", long = "collector.ntp.ip-ttl", value_name = "TTL",
              allow_negative_numbers = true)]
        pub ip_ttl: Option<i64>,
        /// Max accumulated distance to the root. [default: 3.46608s]
        #[arg(id = "collector.ntp.max-distance", long = "collector.ntp.max-distance", value_name = "DURATION")]
        pub max_distance: Option<GoDurationOpt>,
        /// Offset between local clock and local ntpd time to tolerate. [default: 1ms]
        #[arg(id = "collector.ntp.local-offset-tolerance", long = "collector.ntp.local-offset-tolerance",
              value_name = "DURATION")]
        pub local_offset_tolerance: Option<GoDurationOpt>,
    }
}

/// The collector's settings, from its options (1.12's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server: String,
    pub port: i64,
    pub version: i64,
    pub server_is_local: bool,
    pub ttl: i64,
    pub max_distance: Duration,
    pub offset_tolerance: Duration,
}

impl Settings {
    pub fn of(o: &NtpOptions) -> Settings {
        Settings {
            server: o.server.clone().unwrap_or_else(|| "127.0.0.1".into()),
            port: o.server_port.unwrap_or(123),
            version: o.protocol_version.unwrap_or(4),
            server_is_local: super::netlink::flag(o.server_is_local, o.no_server_is_local),
            ttl: o.ip_ttl.unwrap_or(1),
            // 3.46608s ~ 1.5s + PHI * (1 << maxPoll) (1.12's comment).
            max_distance: o
                .max_distance
                .map_or(Duration::from_micros(3_466_080), |d| d.0),
            offset_tolerance: o
                .local_offset_tolerance
                .map_or(Duration::from_millis(1), |d| d.0),
        }
    }
}

/// Go's `net.IP.IsLoopback`: 127.0.0.0/8 (also IPv4-mapped) and `::1`.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// The server's address, as Go's `net.ParseIP` reads it (an IPv4-mapped IPv6 address is IPv4).
pub fn parse_server(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// What 1.12's `NewNtpCollector` refuses (the agent refuses to start, or a reload keeps the
/// running configuration), checked only when the collector is enabled, as there.
pub fn check_enabled(o: &NtpOptions) -> Result<(), String> {
    let s = Settings::of(o);
    let ip = parse_server(&s.server);
    if !s.server_is_local && !ip.is_some_and(is_loopback) {
        return Err(
            "only IP address of local NTP server is valid for --collector.ntp.server".into(),
        );
    }
    if ip.is_none() {
        return Err(format!(
            "--collector.ntp.server={}: not an IP address; host names are not supported \
             (resolving one would need DNS, which the sandbox does not allow): give the \
             server's address",
            s.server
        ));
    }
    if !(2..=4).contains(&s.version) {
        return Err(format!(
            "invalid NTP protocol version {}; must be 2, 3, or 4",
            s.version
        ));
    }
    if !(1..=65535).contains(&s.port) {
        return Err(format!(
            "invalid NTP port number {}; must be between 1 and 65535 inclusive",
            s.port
        ));
    }
    Ok(())
}

pub fn collector(opts: &Options) -> Box<dyn Collector> {
    log::warn!(
        "collector ntp: This collector is deprecated and will be removed in the next major \
         version release."
    );
    Box::new(Ntp {
        settings: Settings::of(&opts.ntp),
    })
}

// ---------------------------------------------------------------------------------------
// The packet and beevik/ntp's arithmetic
// ---------------------------------------------------------------------------------------

const NANO_PER_SEC: u64 = 1_000_000_000;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: i128 = 2_208_988_800;
/// beevik/ntp's `maxStratum`, `maxPollInterval` (2^17 s), `maxDispersion` (16 s).
const MAX_STRATUM: u8 = 16;
const MAX_POLL_INTERVAL_NS: i128 = (1 << 17) * NANO_PER_SEC as i128;
const MAX_DISPERSION_NS: i64 = 16 * NANO_PER_SEC as i64;
const DAY_NS: i128 = 86_400 * NANO_PER_SEC as i128;
/// The length of an NTP header (no extension, no MAC).
pub const HEADER_LEN: usize = 48;

/// beevik/ntp's `header`: the 48 bytes of an NTP packet, big-endian.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub li_vn_mode: u8,
    pub stratum: u8,
    pub poll: i8,
    pub precision: i8,
    pub root_delay: u32,
    pub root_dispersion: u32,
    pub reference_id: u32,
    pub reference_time: u64,
    pub origin_time: u64,
    pub receive_time: u64,
    pub transmit_time: u64,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Header {
    /// A reply's header: its first 48 bytes (what follows, extensions or a MAC, is ignored,
    /// as beevik/ntp without extensions or a key). Shorter: Go's `binary.Read` error.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        let short = || format!("short NTP reply: {} bytes, want {HEADER_LEN}", b.len());
        let byte = |i: usize| b.get(i).copied().ok_or_else(short);
        let w32 = |i: usize| be_u32(b, i).ok_or_else(short);
        let w64 = |i: usize| be_u64(b, i).ok_or_else(short);
        Ok(Header {
            li_vn_mode: byte(0)?,
            stratum: byte(1)?,
            poll: byte(2)? as i8,
            precision: byte(3)? as i8,
            root_delay: w32(4)?,
            root_dispersion: w32(8)?,
            reference_id: w32(12)?,
            reference_time: w64(16)?,
            origin_time: w64(24)?,
            receive_time: w64(32)?,
            transmit_time: w64(40)?,
        })
    }

    /// beevik/ntp's query: mode 3 (client), the version, leap 0, precision 0x20 and a random
    /// transmit timestamp (which the reply must echo as its origin), the rest zero.
    pub fn request(version: u8, transmit: u64) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = b.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0, &[((version & 0x7) << 3) | 3]);
        put(3, &[0x20]);
        put(40, &transmit.to_be_bytes());
        b
    }

    pub fn mode(&self) -> u8 {
        self.li_vn_mode & 0x7
    }

    pub fn leap(&self) -> u8 {
        (self.li_vn_mode >> 6) & 0x3
    }
}

/// beevik/ntp's `getTime` checks on the reply to the query whose transmit timestamp was
/// `sent`.
pub fn check_reply(h: &Header, sent: u64) -> Result<(), &'static str> {
    if h.mode() != 4 {
        return Err("invalid mode in response");
    }
    if h.transmit_time == 0 {
        return Err("invalid transmit time in response");
    }
    if h.origin_time != sent {
        return Err("server response didn't match request");
    }
    if h.receive_time > h.transmit_time {
        return Err("server clock ticked backwards");
    }
    Ok(())
}

/// `ntpTime.Duration()`: a 64-bit NTP timestamp (32.32 fixed point) as nanoseconds, rounded
/// half up. At most 2^32 s, so it fits a Go `Duration`.
pub fn ntp_duration(t: u64) -> i64 {
    let sec = (t >> 32).wrapping_mul(NANO_PER_SEC);
    let frac = (t & 0xffff_ffff).wrapping_mul(NANO_PER_SEC);
    let mut nsec = frac >> 32;
    if (frac as u32) >= 0x8000_0000 {
        nsec += 1;
    }
    sec.wrapping_add(nsec) as i64
}

/// `ntpTimeShort.Duration()`: a 16.16 fixed point interval as nanoseconds.
pub fn short_duration(t: u32) -> i64 {
    let sec = u64::from(t >> 16) * NANO_PER_SEC;
    let frac = u64::from(t & 0xffff) * NANO_PER_SEC;
    let mut nsec = frac >> 16;
    if (frac as u16) >= 0x8000 {
        nsec += 1;
    }
    (sec + nsec) as i64
}

/// `ntpTime.Time()` as Unix nanoseconds: era 0 (1900) unless before 1970 in it, then era 1
/// (2036-02-07 06:28:16 UTC).
pub fn ntp_unix_nanos(t: u64) -> i128 {
    const T1970: u64 = 0x83aa_7e80_0000_0000;
    let d = i128::from(ntp_duration(t));
    if t < T1970 {
        // 2036-02-07 06:28:16 UTC is 2^32 s after 1900.
        d + ((1i128 << 32) - NTP_UNIX_OFFSET) * i128::from(NANO_PER_SEC)
    } else {
        d - NTP_UNIX_OFFSET * i128::from(NANO_PER_SEC)
    }
}

/// `toNtpTime`: Unix nanoseconds (after 1900) as an NTP timestamp, the fraction rounded half
/// up.
pub fn to_ntp_time(unix_nanos: i128) -> u64 {
    let nsec = (unix_nanos + NTP_UNIX_OFFSET * i128::from(NANO_PER_SEC)).max(0) as u64;
    let sec = nsec / NANO_PER_SEC;
    let rem = (nsec - sec * NANO_PER_SEC) << 32;
    let mut frac = rem / NANO_PER_SEC;
    if rem % NANO_PER_SEC >= NANO_PER_SEC / 2 {
        frac += 1;
    }
    (sec << 32) | frac
}

/// `rtt(org, rec, xmt, dst)`.
fn rtt(org: u64, rec: u64, xmt: u64, dst: u64) -> i64 {
    let a = dst.wrapping_sub(org) as i64;
    let b = xmt.wrapping_sub(rec) as i64;
    let rtt = a.wrapping_sub(b).max(0);
    ntp_duration(rtt as u64)
}

/// `offset(org, rec, xmt, dst)`.
fn offset(org: u64, rec: u64, xmt: u64, dst: u64) -> i64 {
    let a = rec.wrapping_sub(org) as i64;
    let b = xmt.wrapping_sub(dst) as i64;
    let offset = a.wrapping_add(b.wrapping_sub(a) / 2);
    if offset < 0 {
        -ntp_duration(offset.wrapping_neg() as u64)
    } else {
        ntp_duration(offset as u64)
    }
}

/// `minError(org, rec, xmt, dst)`.
fn min_error(org: u64, rec: u64, xmt: u64, dst: u64) -> i64 {
    let e0 = org.saturating_sub(rec);
    let e1 = xmt.saturating_sub(dst);
    ntp_duration(e0.max(e1))
}

/// beevik/ntp's `Response` (the fields 1.12 uses), nanoseconds; times are Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub time: i128,
    pub clock_offset: i64,
    pub rtt: i64,
    pub stratum: u8,
    pub reference_time: i128,
    pub root_delay: i64,
    pub root_dispersion: i64,
    pub root_distance: i64,
    pub leap: u8,
    pub min_error: i64,
}

impl Response {
    /// `generateResponse`: `org` and `dst` are the local clock's NTP timestamps when the query
    /// left and the reply arrived (beevik/ntp puts `org` in place of the echoed origin).
    pub fn from_reply(h: &Header, org: u64, dst: u64) -> Response {
        let (rec, xmt) = (h.receive_time, h.transmit_time);
        let rtt = rtt(org, rec, xmt, dst);
        let root_delay = short_duration(h.root_delay);
        let root_dispersion = short_duration(h.root_dispersion);
        Response {
            time: ntp_unix_nanos(xmt),
            clock_offset: offset(org, rec, xmt, dst),
            rtt,
            stratum: h.stratum,
            reference_time: ntp_unix_nanos(h.reference_time),
            root_delay,
            root_dispersion,
            // rootDistance: (rtt + rootDelay)/2 + rootDisp, Go durations.
            root_distance: rtt.wrapping_add(root_delay) / 2 + root_dispersion,
            leap: h.leap(),
            min_error: min_error(org, rec, xmt, dst),
        }
    }

    /// `Response.Validate` (no authentication): why the reply is not a usable time.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.stratum == 0 {
            return Err("kiss of death received");
        }
        if self.stratum >= MAX_STRATUM {
            return Err("invalid stratum in response");
        }
        if self.time - self.reference_time > MAX_POLL_INTERVAL_NS {
            return Err("server clock not fresh");
        }
        if self.root_delay / 2 + self.root_dispersion > MAX_DISPERSION_NS {
            return Err("invalid dispersion in response");
        }
        if self.time < self.reference_time {
            return Err("invalid time reported");
        }
        if self.leap == 3 {
            return Err("invalid leap second in response");
        }
        Ok(())
    }
}

/// Go's `Duration.Seconds()`.
fn seconds(ns: i64) -> f64 {
    let sec = ns / NANO_PER_SEC as i64;
    let nsec = ns % NANO_PER_SEC as i64;
    sec as f64 + nsec as f64 / 1e9
}

/// 1.12's cached leap midnight (`leapMidnight`): the leap flag is dropped right after
/// midnight, so the day around it keeps the extra tolerance. Unix nanoseconds; shared by every
/// build of the collector, as 1.12's package variable.
static LEAP_MIDNIGHT: LazyLock<Mutex<Option<i128>>> = LazyLock::new(|| Mutex::new(None));

/// 1.12's sanity: `Validate() == nil && RootDistance <= max-distance && MinError <= maxerr`,
/// where maxerr is the offset tolerance, one second more within a day of a leap midnight.
pub fn sanity(r: &Response, s: &Settings, leap_midnight: &mut Option<i128>) -> bool {
    let mut maxerr = i128::try_from(s.offset_tolerance.as_nanos()).unwrap_or(i128::MAX);
    if r.leap == 1 || r.leap == 2 {
        // Time.Truncate(24h) on a UTC time: its midnight.
        *leap_midnight = Some(r.time.div_euclid(DAY_NS) * DAY_NS + DAY_NS);
    }
    if let Some(m) = *leap_midnight {
        if m - DAY_NS < r.time && r.time < m + DAY_NS {
            maxerr = maxerr.saturating_add(i128::from(NANO_PER_SEC));
        }
    }
    let max_distance = i128::try_from(s.max_distance.as_nanos()).unwrap_or(i128::MAX);
    r.validate().is_ok()
        && i128::from(r.root_distance) <= max_distance
        && i128::from(r.min_error) <= maxerr
}

/// The eight families of one reply.
pub fn families(r: &Response, sane: bool) -> Vec<MetricFamily> {
    let g = |name: &'static str, help: &'static str, v: f64| {
        MetricFamily::gauge(name, help).with(&[], v)
    };
    // 1.12 keeps every reference time up to the Unix epoch's first second as 0.
    let reftime = if r.reference_time.div_euclid(i128::from(NANO_PER_SEC)) > 0 {
        r.reference_time as f64 / 1e9
    } else {
        0.0
    };
    vec![
        g("node_ntp_stratum", "NTPD stratum.", f64::from(r.stratum)),
        g(
            "node_ntp_leap",
            "NTPD leap second indicator, 2 bits.",
            f64::from(r.leap),
        ),
        g("node_ntp_rtt_seconds", "RTT to NTPD.", seconds(r.rtt)),
        g(
            "node_ntp_offset_seconds",
            "ClockOffset between NTP and local clock.",
            seconds(r.clock_offset),
        ),
        g(
            "node_ntp_reference_timestamp_seconds",
            "NTPD ReferenceTime, UNIX timestamp.",
            reftime,
        ),
        g(
            "node_ntp_root_delay_seconds",
            "NTPD RootDelay.",
            seconds(r.root_delay),
        ),
        g(
            "node_ntp_root_dispersion_seconds",
            "NTPD RootDispersion.",
            seconds(r.root_dispersion),
        ),
        g(
            "node_ntp_sanity",
            "NTPD sanity according to RFC5905 heuristics and configured limits.",
            if sane { 1.0 } else { 0.0 },
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// The query
// ---------------------------------------------------------------------------------------

/// The local clock as Unix nanoseconds.
fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

fn io_err(what: &str, addr: SocketAddr, e: std::io::Error) -> CollectError {
    CollectError::Other(format!("couldn't get SNTP reply: {what} {addr}: {e}"))
}

/// One SNTP exchange with `addr`, as beevik/ntp's `getTime` with 1.12's options (no local
/// address, no extension, no key): a fresh datagram socket, `IP_TTL` when `ttl` is not 0, a
/// one second receive timeout (1.12's, "default `ntpdate` timeout"), one query and one reply.
/// Returns the reply's header and the local NTP timestamps of sending and receiving.
///
/// The socket is connected with the length of a whole `struct sockaddr_storage` (128 bytes):
/// the kernel takes it for an IPv4 or IPv6 address (only a lower bound is checked), while a
/// unix socket refuses any length above `sizeof(struct sockaddr_un)` (110). The `ntp` policy
/// fragment allows `connect` with exactly that length, so it cannot reach a unix socket name
/// through the agent's unix descriptors.
pub fn query(
    addr: SocketAddr,
    version: u8,
    ttl: i64,
    timeout: Duration,
) -> Result<(Header, u64, u64), CollectError> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, None)
        .map_err(|e| io_err("socket for", addr, e))?;
    if ttl != 0 {
        // The kernel reads an int: -1 is its default, 1..=255 a TTL, anything else EINVAL.
        let ttl = i32::try_from(ttl).unwrap_or(i32::MAX) as u32;
        sock.set_ttl_v4(ttl)
            .map_err(|e| io_err("setting IP_TTL for", addr, e))?;
    }
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| io_err("setting the receive timeout for", addr, e))?;
    let mut sa = SockAddr::from(addr);
    let storage_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `SockAddr::from` builds the address in a zeroed `sockaddr_storage`, so all its
    // `storage_len` bytes are initialised; only the length passed to connect(2) changes.
    unsafe { sa.set_length(storage_len) };
    sock.connect(&sa)
        .map_err(|e| io_err("connecting to", addr, e))?;
    let sock: UdpSocket = sock.into();

    let mut bits = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bits)
        .map_err(|_| CollectError::Other("couldn't get SNTP reply: no random bytes".into()))?;
    let sent = u64::from_be_bytes(bits);
    let request = Header::request(version, sent);
    let org = to_ntp_time(now_nanos());
    sock.send(&request)
        .map_err(|e| io_err("sending the query to", addr, e))?;
    let mut buf = [0u8; 8192];
    let n = sock
        .recv(&mut buf)
        .map_err(|e| io_err("reading the reply of", addr, e))?;
    let dst = to_ntp_time(now_nanos());
    let h = Header::parse(buf.get(..n).unwrap_or_default())
        .map_err(|e| CollectError::Other(format!("couldn't get SNTP reply: {e}")))?;
    check_reply(&h, sent)
        .map_err(|e| CollectError::Other(format!("couldn't get SNTP reply: {e}")))?;
    Ok((h, org, dst))
}

/// The collector.
pub struct Ntp {
    settings: Settings,
}

impl Collector for Ntp {
    fn name(&self) -> &'static str {
        "ntp"
    }

    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let s = &self.settings;
        // Checked at start-up (check_enabled); again here so that nothing panics.
        let ip = parse_server(&s.server).ok_or_else(|| {
            CollectError::Other(format!(
                "--collector.ntp.server={}: not an IP address",
                s.server
            ))
        })?;
        let port = u16::try_from(s.port)
            .map_err(|_| CollectError::Other(format!("invalid NTP port number {}", s.port)))?;
        let version = u8::try_from(s.version)
            .ok()
            .filter(|v| (2..=4).contains(v))
            .ok_or_else(|| CollectError::Other("invalid protocol version requested".into()))?;
        let (h, org, dst) = query(
            SocketAddr::new(ip, port),
            version,
            s.ttl,
            Duration::from_secs(1),
        )?;
        let r = Response::from_reply(&h, org, dst);
        let sane = {
            let mut m = LEAP_MIDNIGHT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sanity(&r, s, &mut m)
        };
        Ok(families(&r, sane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(f: &[MetricFamily], name: &str) -> f64 {
        f.iter()
            .find(|x| x.name == name)
            .map(|x| x.samples[0].value)
            .unwrap_or(f64::NAN)
    }

    /// A server reply written for these tests, laid out as RFC 5905's packet: leap 0,
    /// version 4, mode 4 (server), stratum 3, poll 6, precision -25, root delay 0x0000_0a3d
    /// (0.0399933 s), root dispersion 0x0000_0831, reference id 192.0.2.1, reference time, origin
    /// 0xe8f0_1234_5678_9abc (the query's transmit time echoed), receive and transmit times
    /// (2023-11).
    const REPLY: [u8; 48] = [
        0x24, 0x03, 0x06, 0xe7, 0x00, 0x00, 0x0a, 0x3d, 0x00, 0x00, 0x08, 0x31, 0xc0, 0x00, 0x02,
        0x01, 0xe8, 0xf0, 0x12, 0x00, 0x10, 0x00, 0x00, 0x00, 0xe8, 0xf0, 0x12, 0x34, 0x56, 0x78,
        0x9a, 0xbc, 0xe8, 0xf0, 0x12, 0x34, 0x80, 0x00, 0x00, 0x00, 0xe8, 0xf0, 0x12, 0x34, 0x80,
        0x01, 0x00, 0x00,
    ];

    #[test]
    fn parses_a_reply() {
        let h = Header::parse(&REPLY).unwrap();
        assert_eq!(h.leap(), 0);
        assert_eq!(h.mode(), 4);
        assert_eq!((h.li_vn_mode >> 3) & 7, 4);
        assert_eq!(h.stratum, 3);
        assert_eq!(h.poll, 6);
        assert_eq!(h.precision, -25);
        assert_eq!(h.root_delay, 0x0a3d);
        assert_eq!(h.reference_id, 0xc000_0201);
        assert_eq!(h.origin_time, 0xe8f0_1234_5678_9abc);
        assert_eq!(h.receive_time, 0xe8f0_1234_8000_0000);
        assert_eq!(h.transmit_time, 0xe8f0_1234_8001_0000);
        // Extra bytes (an extension field) are ignored; fewer than 48 are an error.
        let mut long = REPLY.to_vec();
        long.extend_from_slice(&[0xaa; 20]);
        assert_eq!(Header::parse(&long).unwrap(), h);
        for n in 0..48 {
            assert!(Header::parse(&REPLY[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn request_is_beevik_s() {
        let b = Header::request(4, 0x0102_0304_0506_0708);
        assert_eq!(b[0], 0x23); // leap 0, version 4, mode 3
        assert_eq!(b[3], 0x20); // precision
        assert_eq!(&b[40..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(b[1..3].iter().chain(&b[4..40]).all(|&x| x == 0));
        assert_eq!(Header::request(2, 0)[0], 0x13);
        assert_eq!(Header::request(3, 0)[0], 0x1b);
    }

    #[test]
    fn reply_checks() {
        let h = Header::parse(&REPLY).unwrap();
        let sent = 0xe8f0_1234_5678_9abc;
        assert_eq!(check_reply(&h, sent), Ok(()));
        assert_eq!(
            check_reply(&h, sent + 1),
            Err("server response didn't match request")
        );
        let mut m = h;
        m.li_vn_mode = 0x23;
        assert_eq!(check_reply(&m, sent), Err("invalid mode in response"));
        let mut z = h;
        z.transmit_time = 0;
        assert_eq!(
            check_reply(&z, sent),
            Err("invalid transmit time in response")
        );
        let mut b = h;
        b.receive_time = h.transmit_time + 1;
        assert_eq!(check_reply(&b, sent), Err("server clock ticked backwards"));
    }

    #[test]
    fn time_conversions_are_go_s() {
        // 0.5 s rounds; 1 s.
        assert_eq!(ntp_duration(1 << 31), 500_000_000);
        assert_eq!(ntp_duration(1 << 32), 1_000_000_000);
        assert_eq!(ntp_duration(1), 0); // 0.23 ns rounds down
        assert_eq!(ntp_duration(3), 1); // 0.70 ns rounds up
        assert_eq!(short_duration(0x0001_8000), 1_500_000_000);
        assert_eq!(short_duration(0x0a3d), 39_993_286);
        // 1970-01-01 in era 0; 2036-02-07 06:28:16 begins era 1 (timestamp 0).
        assert_eq!(ntp_unix_nanos(2_208_988_800 << 32), 0);
        assert_eq!(ntp_unix_nanos(0), 2_085_978_496 * 1_000_000_000);
        for unix in [
            0i128,
            1,
            1_700_000_000_123_456_789,
            1_000_000_000_999_999_999,
        ] {
            let t = to_ntp_time(unix);
            assert!((ntp_unix_nanos(t) - unix).abs() <= 1, "{unix}");
        }
    }

    /// beevik/ntp v1.5.0's offline tests (ntp_test.go, MIT license), ported:
    /// TestOfflineConvertShort, TestOfflineTimeRollover, TestOfflineOffsetCalculation,
    /// TestOfflineOffsetCalculationNegative, TestOfflineOffsetRollover, TestOfflineMinError.
    #[test]
    fn beevik_offline_tests() {
        const S: i64 = 1_000_000_000;
        for (t, d) in [
            (0x0000_0000u32, 0i64),
            (0x0000_0001, 15_259),
            (0x0000_8000, S / 2),
            (0x0000_c000, 3 * S / 4),
            (0x0000_ff80, S - S / 512),
            (0x0001_0000, S),
            (0x0001_8000, 3 * S / 2),
            (0xffff_0000, 65_535 * S),
            (0xffff_ff80, 65_536 * S - S / 512),
        ] {
            assert_eq!(short_duration(t), d, "{t:#x}");
        }
        let ns = |unix: i64| i128::from(unix) * i128::from(S);
        for (t, unix) in [
            (0x0000_0000_0000_0000u64, 2_085_978_496i64),
            (0x0000_0001_0000_0000, 2_085_978_497),
            (0x1000_0000_0000_0000, 2_354_413_952),
            (0x2000_0000_0000_0000, 2_622_849_408),
            (0x3000_0000_0000_0000, 2_891_284_864),
            (0x4000_0000_0000_0000, 3_159_720_320),
            (0x5000_0000_0000_0000, 3_428_155_776),
            (0x6000_0000_0000_0000, 3_696_591_232),
            (0x7000_0000_0000_0000, 3_965_026_688),
            (0x8000_0000_0000_0000, 4_233_462_144),
            (0x83aa_7e70_0000_0000, 4_294_967_280),
            (0x83aa_7e80_0000_0000, 0),
            (0x9000_0000_0000_0000, 206_930_304),
            (0xa000_0000_0000_0000, 475_365_760),
            (0xb000_0000_0000_0000, 743_801_216),
            (0xc000_0000_0000_0000, 1_012_236_672),
            (0xd000_0000_0000_0000, 1_280_672_128),
            (0xe000_0000_0000_0000, 1_549_107_584),
            (0xf000_0000_0000_0000, 1_817_543_040),
            (0xffff_ffff_0000_0000, 2_085_978_495),
        ] {
            assert_eq!(ntp_unix_nanos(t), ns(unix), "{t:#x}");
            assert_eq!(to_ntp_time(ns(unix)), t, "{unix}");
        }
        let now = 1_717_027_200_123_456_789i128;
        let at = |secs: i128| to_ntp_time(now + secs * i128::from(S));
        assert_eq!(offset(at(0), at(20), at(21), at(5)), 18 * S);
        assert_eq!(offset(at(101), at(102), at(103), at(105)), -S / 2);
        for (client, server) in [
            (0i64, 1_717_027_200i64),
            (1_717_027_200, 0),
            (2_429_913_600, 1_704_067_200),
            (1_704_067_200, 2_429_913_600),
            (2_429_913_600, 2_432_592_000),
            (2_432_592_000, 2_429_913_600),
        ] {
            let (c, s) = (ns(client), ns(server));
            let org = to_ntp_time(c);
            let rec = to_ntp_time(s);
            let xmt = to_ntp_time(s + i128::from(S));
            let dst = to_ntp_time(c + i128::from(S));
            assert_eq!(offset(org, rec, xmt, dst), (server - client) * S);
        }
        // MinError over beevik's grid (whole seconds 1..=10).
        for org in 1..=10i64 {
            for rec in 1..=10 {
                for xmt in rec..=10 {
                    for dst in org..=10 {
                        let t = |x: i64| at(i128::from(x));
                        let e0 = (org - rec).max(0);
                        let e1 = (xmt - dst).max(0);
                        assert_eq!(min_error(t(org), t(rec), t(xmt), t(dst)), e0.max(e1) * S);
                    }
                }
            }
        }
        // rtt: (dst-org) - (xmt-rec), never negative.
        assert_eq!(rtt(at(1), at(2), at(3), at(6)), 4 * S);
        assert_eq!(rtt(at(5), at(0), at(9), at(6)), 0);
    }

    fn settings() -> Settings {
        Settings::of(&NtpOptions::default())
    }

    #[test]
    fn a_server_reply_end_to_end() {
        let h = Header::parse(&REPLY).unwrap();
        // Sent at the server's receive time less 1 ms, received 2 ms after its transmit.
        let org = h.receive_time - (1u64 << 32) / 1000;
        let dst = h.transmit_time + 2 * ((1u64 << 32) / 1000);
        let r = Response::from_reply(&h, org, dst);
        assert_eq!(r.stratum, 3);
        assert_eq!(r.leap, 0);
        // rtt = (dst-org) - (xmt-rec) = 3 ms; offset = ((rec-org) + (xmt-dst))/2 = -0.5 ms.
        assert!((r.rtt - 3_000_000).abs() <= 2, "{}", r.rtt);
        assert!((r.clock_offset + 500_000).abs() <= 2, "{}", r.clock_offset);
        assert_eq!(r.root_delay, 39_993_286);
        assert_eq!(r.root_dispersion, short_duration(0x0831));
        assert_eq!(
            r.root_distance,
            (r.rtt + r.root_delay) / 2 + r.root_dispersion
        );
        assert_eq!(r.min_error, 0);
        assert_eq!(r.validate(), Ok(()));
        let mut leap = None;
        assert!(sanity(&r, &settings(), &mut leap));
        let f = families(&r, true);
        let names: Vec<&str> = f.iter().map(|x| &*x.name).collect();
        assert_eq!(
            names,
            [
                "node_ntp_stratum",
                "node_ntp_leap",
                "node_ntp_rtt_seconds",
                "node_ntp_offset_seconds",
                "node_ntp_reference_timestamp_seconds",
                "node_ntp_root_delay_seconds",
                "node_ntp_root_dispersion_seconds",
                "node_ntp_sanity",
            ]
        );
        assert_eq!(value(&f, "node_ntp_stratum"), 3.0);
        assert_eq!(value(&f, "node_ntp_root_delay_seconds"), 0.039993286);
        assert_eq!(value(&f, "node_ntp_sanity"), 1.0);
        let reft = value(&f, "node_ntp_reference_timestamp_seconds");
        assert_eq!(reft, ntp_unix_nanos(0xe8f0_1200_1000_0000) as f64 / 1e9);
        assert!(reft > 1.69e9, "{reft}");
    }

    fn good() -> Response {
        let h = Header::parse(&REPLY).unwrap();
        Response::from_reply(&h, h.receive_time, h.transmit_time)
    }

    #[test]
    fn validate_as_beevik() {
        assert_eq!(good().validate(), Ok(()));
        let with = |f: &dyn Fn(&mut Response)| {
            let mut r = good();
            f(&mut r);
            r.validate()
        };
        assert_eq!(with(&|r| r.stratum = 0), Err("kiss of death received"));
        assert_eq!(
            with(&|r| r.stratum = 16),
            Err("invalid stratum in response")
        );
        assert_eq!(with(&|r| r.stratum = 15), Ok(()));
        assert_eq!(
            with(&|r| r.reference_time = r.time - MAX_POLL_INTERVAL_NS - 1),
            Err("server clock not fresh")
        );
        assert_eq!(
            with(&|r| r.root_dispersion = 16_000_000_001),
            Err("invalid dispersion in response")
        );
        assert_eq!(
            with(&|r| r.reference_time = r.time + 1),
            Err("invalid time reported")
        );
        assert_eq!(
            with(&|r| r.leap = 3),
            Err("invalid leap second in response")
        );
    }

    #[test]
    fn sanity_limits_and_leap_smearing() {
        let s = settings();
        let mut leap = None;
        let mut r = good();
        r.root_distance = 3_466_080_000;
        assert!(sanity(&r, &s, &mut leap));
        r.root_distance += 1;
        assert!(!sanity(&r, &s, &mut leap));
        let mut r = good();
        r.min_error = 1_000_000;
        assert!(sanity(&r, &s, &mut leap));
        r.min_error = 1_000_001;
        assert!(!sanity(&r, &s, &mut leap));
        // A leap announced: one more second of tolerance until a day after that midnight,
        // remembered after the flag is gone.
        r.leap = 1;
        assert!(sanity(&r, &s, &mut leap));
        let midnight = leap.unwrap();
        assert_eq!(midnight.rem_euclid(DAY_NS), 0);
        assert!(midnight > r.time && midnight - r.time <= DAY_NS);
        r.leap = 0;
        r.time = midnight + DAY_NS - 1;
        r.reference_time = r.time;
        assert!(sanity(&r, &s, &mut leap));
        r.time = midnight + DAY_NS;
        r.reference_time = r.time;
        assert!(!sanity(&r, &s, &mut leap));
        // An invalid reply is never sane.
        let mut r = good();
        r.stratum = 0;
        assert!(!sanity(&r, &s, &mut None));
    }

    #[test]
    fn ancient_reference_time_is_zero() {
        let mut r = good();
        r.reference_time = 999_999_999;
        assert_eq!(
            value(&families(&r, false), "node_ntp_reference_timestamp_seconds"),
            0.0
        );
        r.reference_time = 1_000_000_000;
        assert_eq!(
            value(&families(&r, false), "node_ntp_reference_timestamp_seconds"),
            1.0
        );
        assert_eq!(value(&families(&r, false), "node_ntp_sanity"), 0.0);
    }

    #[test]
    fn go_seconds() {
        assert_eq!(seconds(-1_500_000_000), -1.5);
        assert_eq!(seconds(39_993_286), 0.039993286);
    }

    #[test]
    fn checks_when_enabled_are_1_12_s() {
        let o = |args: &[&str]| {
            let mut v = vec!["monitoring-agent"];
            v.extend_from_slice(args);
            crate::cli::Cli::parse_args(v).unwrap().collector.ntp
        };
        assert_eq!(check_enabled(&o(&[])), Ok(()));
        assert_eq!(check_enabled(&o(&["--collector.ntp.server=::1"])), Ok(()));
        assert_eq!(
            check_enabled(&o(&["--collector.ntp.server=::ffff:127.0.0.2"])),
            Ok(())
        );
        let local = "only IP address of local NTP server is valid for --collector.ntp.server";
        assert_eq!(
            check_enabled(&o(&["--collector.ntp.server=192.0.2.1"])),
            Err(local.into())
        );
        assert_eq!(
            check_enabled(&o(&["--collector.ntp.server=localhost"])),
            Err(local.into())
        );
        assert_eq!(
            check_enabled(&o(&[
                "--collector.ntp.server=192.0.2.1",
                "--collector.ntp.server-is-local"
            ])),
            Ok(())
        );
        assert_eq!(
            check_enabled(&o(&[
                "--collector.ntp.server=192.0.2.1",
                "--collector.ntp.server-is-local",
                "--no-collector.ntp.server-is-local"
            ])),
            Err(local.into())
        );
        assert_eq!(
            check_enabled(&o(&[
                "--no-collector.ntp.server-is-local",
                "--collector.ntp.server=192.0.2.1",
                "--collector.ntp.server-is-local=true"
            ])),
            Ok(())
        );
        let e = check_enabled(&o(&[
            "--collector.ntp.server=ntp.example",
            "--collector.ntp.server-is-local=true",
        ]))
        .unwrap_err();
        assert!(e.contains("host names are not supported"), "{e}");
        for v in ["1", "5"] {
            let e =
                check_enabled(&o(&[&format!("--collector.ntp.protocol-version={v}")])).unwrap_err();
            assert_eq!(
                e,
                format!("invalid NTP protocol version {v}; must be 2, 3, or 4")
            );
        }
        for p in ["0", "65536", "-1"] {
            let e = check_enabled(&o(&[&format!("--collector.ntp.server-port={p}")])).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid NTP port number {p};")),
                "{e}"
            );
        }
        let s = Settings::of(&o(&[
            "--collector.ntp.ip-ttl=3",
            "--collector.ntp.max-distance=2s",
            "--collector.ntp.local-offset-tolerance=5ms",
            "--collector.ntp.protocol-version=3",
            "--collector.ntp.server-port=1123",
        ]));
        assert_eq!(
            (s.ttl, s.max_distance, s.offset_tolerance, s.version, s.port),
            (3, Duration::from_secs(2), Duration::from_millis(5), 3, 1123)
        );
        let d = settings();
        assert_eq!(d.max_distance, Duration::from_nanos(3_466_080_000));
        assert_eq!(d.offset_tolerance, Duration::from_millis(1));
        assert_eq!(
            (d.server.as_str(), d.port, d.version, d.ttl),
            ("127.0.0.1", 123, 4, 1)
        );
    }

    /// A query against a server on loopback (a thread of this test answering as a server),
    /// and the mismatch and timeout errors.
    #[test]
    fn queries_a_loopback_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(n, 48);
            let q = Header::parse(&buf[..n]).unwrap();
            assert_eq!(q.li_vn_mode, 0x1b); // version 3 asked
            let now = to_ntp_time(now_nanos());
            let mut reply = REPLY;
            reply[24..32].copy_from_slice(&q.transmit_time.to_be_bytes());
            reply[32..40].copy_from_slice(&now.to_be_bytes());
            reply[40..48].copy_from_slice(&now.to_be_bytes());
            reply[16..24].copy_from_slice(&now.to_be_bytes());
            server.send_to(&reply, from).unwrap();
            // Then a reply that does not echo the query.
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(n, 48);
            server.send_to(&REPLY, from).unwrap();
            // Then none.
            let _ = server.recv_from(&mut buf).unwrap();
        });
        let (h, org, dst) = query(addr, 3, 1, Duration::from_secs(1)).unwrap();
        let r = Response::from_reply(&h, org, dst);
        assert_eq!(r.stratum, 3);
        assert!(r.rtt >= 0 && r.rtt < 1_000_000_000, "{r:?}");
        assert!(r.clock_offset.abs() < 1_000_000_000, "{r:?}");
        let e = query(addr, 4, 1, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("didn't match request"), "{e}");
        let e = query(addr, 4, 0, Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("reading the reply"), "{e}");
        t.join().unwrap();
    }
}
