//! `supervisord` collector: node_exporter 1.12's deprecated `supervisord.go` (off by default, as
//! in 1.12; enabling it logs 1.12's deprecation warning), asking supervisord's XML-RPC
//! interface for `supervisor.getAllProcessInfo` as `github.com/mattn/go-xmlrpc` does: an HTTP
//! `POST` of `text/xml` to `--collector.supervisord.url` (default
//! `http://localhost:9001/RPC2`, or the `SUPERVISORD_URL` environment variable when the flag is
//! not given, as kingpin's `Envar`). A `unix://PATH` URL connects to the unix socket `PATH` and
//! asks for `/RPC2` there, as 1.12.
//!
//! Per process (labels `name`, `group`): `node_supervisord_state` (supervisord's state number),
//! `node_supervisord_exit_status`, `node_supervisord_up` (1 for `STARTING`, `RUNNING`,
//! `STOPPING`: 10, 20, 40) and, only for those, the counter
//! `node_supervisord_start_time_seconds` (`start`). As 1.12's loop, the fields of one process
//! carry over to the next when its struct lacks them.
//!
//! Errors: a failed connection, a non-2xx status, a fault or an answer that is not an array of
//! structs fails the collector without samples ("unable to call supervisord: ..."), as 1.12,
//! whose type assertions panic (and crash the exporter) on a member of the wrong type: here
//! that is an error too. The exchange is bounded: 10 s in all (connect included, Go's client
//! timeout), at most [`MAX_REPLY`] bytes read, XML nesting at most [`MAX_DEPTH`] deep.
//!
//! Differences from 1.12: no `https://` (refused), no HTTP proxy from the environment and no
//! redirects; the request is HTTP/1.0 (the server closes the connection after answering) and a
//! chunked answer is refused. A host name is resolved once, before the sandbox (`warm_up`):
//! the sandbox allows no name service; a change of address needs a restart.
//!
//! Sandbox: the `supervisord` policy fragment (policy/fragments/supervisord.json) allows the
//! stream sockets and `connect` this needs; Landlock (ABI 4 and later) allows a TCP connect to
//! the URL's port only.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use quick_xml::events::Event;
use quick_xml::Reader;
use socket2::{Domain, SockAddr, Socket, Type};

use super::options::collector_options;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::{nonempty_sorted, MetricFamily};

/// node_exporter's default `--collector.supervisord.url`.
pub const DEFAULT_URL: &str = "http://localhost:9001/RPC2";
/// The environment variable node_exporter reads when the flag is not given.
pub const URL_ENV: &str = "SUPERVISORD_URL";
/// The deprecation warning node_exporter 1.12 logs when the collector is built.
pub const DEPRECATED: &str =
    "This collector is deprecated and will be removed in the next major version release.";
/// Largest answer read (head and body), in bytes.
pub const MAX_REPLY: usize = 8 << 20;
/// Deepest XML element nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// The whole exchange's bound (go-xmlrpc's `http.Client` timeout).
pub const TIMEOUT: Duration = Duration::from_secs(10);

collector_options! {
    /// Options of the supervisord collector (`[collector.supervisord]` in the file).
    pub struct SupervisordOptions {
        /// XML RPC endpoint: http://HOST[:PORT]/PATH or unix://PATH (also from the
        /// SUPERVISORD_URL environment variable; a change needs a restart).
        /// [default: http://localhost:9001/RPC2]
        #[arg(id = "collector.supervisord.url", long = "collector.supervisord.url", value_name = "URL")]
        pub url: Option<String>,
    }
}

/// Where the collector connects, parsed from the URL (start-up setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://[user:password@]host[:port]/path[?query]`.
    Http {
        /// The host as written (brackets stripped from an IPv6 literal).
        host: String,
        port: u16,
        /// The `Host` header: the URL's authority without user information.
        authority: String,
        /// The request target: path (`/` when empty) and query.
        path: String,
        /// `Authorization: Basic` credentials (base64 of `user:password`), from the URL.
        basic: Option<String>,
    },
    /// `unix://PATH`: go's URL path, the socket's path.
    Unix { path: PathBuf },
    /// A URL the collector cannot use: the reason.
    Invalid(String),
}

impl Target {
    /// The TCP port Landlock must allow a connect to.
    pub fn tcp_port(&self) -> Option<u16> {
        match self {
            Target::Http { port, .. } => Some(*port),
            _ => None,
        }
    }
}

/// The URL the options name: the flag, else `SUPERVISORD_URL`, else the default.
pub fn url(o: &SupervisordOptions) -> String {
    o.url
        .clone()
        .or_else(|| std::env::var(URL_ENV).ok())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// Parses the URL as Go's `url.Parse` reads what go-xmlrpc and 1.12 use of it.
pub fn parse_url(url: &str) -> Target {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Target::Invalid(format!("{url:?}: unsupported protocol scheme \"\""));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "unix" {
        // Go: the URL's path only (`unix:///run/s.sock`, `unix:/run/s.sock`).
        let path = match rest.strip_prefix("//") {
            Some(r) => r.find('/').and_then(|i| r.get(i..)).unwrap_or(""),
            None => rest,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        return Target::Unix {
            path: PathBuf::from(path),
        };
    }
    if scheme != "http" {
        return Target::Invalid(format!(
            "{url:?}: unsupported protocol scheme {scheme:?} (this agent speaks http:// and unix://)"
        ));
    }
    let Some(rest) = rest.strip_prefix("//") else {
        return Target::Invalid(format!("{url:?}: no host"));
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let path = if path.starts_with('?') || path.is_empty() {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (userinfo, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Target::Invalid(format!("{url:?}: invalid host")),
            },
            None => return Target::Invalid(format!("{url:?}: invalid host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Target::Invalid(format!("{url:?}: invalid port {p:?}")),
        },
    };
    if host.is_empty() {
        return Target::Invalid(format!("{url:?}: no host"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f)
        || hostport.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Target::Invalid(format!("{url:?}: invalid character in URL"));
    }
    let basic = userinfo.map(|u| {
        use base64::Engine;
        let u = percent_decode(u);
        base64::engine::general_purpose::STANDARD.encode(u)
    });
    Target::Http {
        host: host.to_string(),
        port,
        authority: hostport.to_string(),
        path,
        basic,
    }
}

/// `%XX` decoding of URL user information (invalid escapes kept as written).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The addresses of the URL's host, resolved once before the sandbox.
static RESOLVED: OnceLock<Result<Vec<SocketAddr>, String>> = OnceLock::new();

/// Resolves the host of an `http://` target now, before the sandbox (which allows no name
/// service: `/etc/hosts` is unreadable, DNS needs a socket the policy refuses).
pub fn warm_up(target: &Target) {
    if let Target::Http { host, port, .. } = target {
        if host.parse::<IpAddr>().is_err() {
            let r = (host.as_str(), *port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
                .map_err(|e| format!("resolving {host}: {e}"));
            if let Err(e) = &r {
                log::warn!("collector supervisord: {e} (at start-up; the collector will fail)");
            }
            let _ = RESOLVED.set(r);
        }
    }
}

fn addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match RESOLVED.get() {
        Some(r) => r.clone(),
        None => Err(format!(
            "{host}: not resolved at start-up (the sandbox allows no name service)"
        )),
    }
}

/// go-xmlrpc's request body for a call without arguments.
pub fn request_body(method: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params></params></methodCall>"
    )
}

fn request(host: &str, path: &str, basic: Option<&str>, body: &str) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: monitoring-agent\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(b) = basic {
        r.push_str(&format!("Authorization: Basic {b}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("no answer in time".into())
    } else {
        Ok(left)
    }
}

/// A stream socket of `domain` connected to `addr` within the deadline: `SO_SNDTIMEO` bounds
/// a blocking `connect` on Linux, `SO_RCVTIMEO` and `SO_SNDTIMEO` are set again before each
/// read and write.
fn connect(domain: Domain, addr: &SockAddr, deadline: Instant) -> Result<Socket, String> {
    let s = Socket::new(domain, Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
    s.set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| format!("setsockopt: {e}"))?;
    s.connect(addr).map_err(|e| format!("connect: {e}"))?;
    Ok(s)
}

/// `sockaddr_un` for `path` with the full structure's length, as the `dbus` and
/// `supervisord` fragments allow (see `systemd::connect_unix`).
fn unix_addr(path: &Path) -> Result<SockAddr, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= 108 || bytes.contains(&0) {
        return Err(format!("{}: not a usable unix socket path", path.display()));
    }
    // SAFETY: `try_init` hands a zeroed sockaddr_storage, of which we fill a sockaddr_un
    // (smaller) and report its full size.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let un = storage.cast::<libc::sockaddr_un>();
            (*un).sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (d, s) in (*un).sun_path.iter_mut().zip(bytes) {
                *d = *s as libc::c_char;
            }
            *len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            Ok(())
        })
    }
    .map_err(|e| e.to_string())?;
    Ok(addr)
}

/// Sends `req` and reads the answer to its end (or [`MAX_REPLY`]), within the deadline.
fn exchange(s: &Socket, req: &[u8], deadline: Instant) -> Result<Vec<u8>, String> {
    let mut s = s;
    let mut sent = 0;
    while let Some(rest) = req.get(sent..).filter(|r| !r.is_empty()) {
        s.set_write_timeout(Some(remaining(deadline)?))
            .map_err(|e| format!("setsockopt: {e}"))?;
        match s.write(rest) {
            Ok(0) => return Err("connection closed while sending".into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("sending: {e}")),
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        s.set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| format!("setsockopt: {e}"))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                got.extend_from_slice(buf.get(..n).unwrap_or_default());
                if got.len() > MAX_REPLY {
                    return Err(format!("answer larger than {MAX_REPLY} bytes"));
                }
                if let Some(done) = complete_length(&got) {
                    got.truncate(done);
                    return Ok(got);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer in time".into())
            }
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
}

/// The answer's whole length once its head and `Content-Length` bytes of body are in.
fn complete_length(got: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = resp.parse(got).ok()? else {
        return None;
    };
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })?;
    let total = head.checked_add(len)?;
    (got.len() >= total).then_some(total)
}

/// The body of an HTTP answer: 2xx required (go-xmlrpc: "Bad Request" otherwise), no chunked
/// transfer coding, cut at `Content-Length` when given.
pub fn http_body(answer: &[u8]) -> Result<&[u8], String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated HTTP answer".into()),
        Err(e) => return Err(format!("invalid HTTP answer: {e}")),
    };
    let code = resp.code.unwrap_or(0);
    if code / 100 != 2 {
        return Err(format!("Bad Request (HTTP status {code})"));
    }
    let mut len = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && !h.value.eq_ignore_ascii_case(b"identity")
        {
            return Err("chunked HTTP answer not supported".into());
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        }
    }
    let body = answer.get(head..).unwrap_or_default();
    Ok(match len {
        Some(n) => body.get(..n).ok_or("truncated HTTP answer body")?,
        None => body,
    })
}

/// One XML-RPC call without arguments within `timeout`: the answer's body.
fn call(target: &Target, method: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let body = request_body(method);
    let (sock, req) = match target {
        Target::Invalid(e) => return Err(e.clone()),
        Target::Unix { path } => {
            let s = connect(Domain::UNIX, &unix_addr(path)?, deadline)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (s, request("unix", "/RPC2", None, &body))
        }
        Target::Http {
            host,
            port,
            authority,
            path,
            basic,
        } => {
            let mut last = format!("{host}: no address");
            let mut sock = None;
            for a in addresses(host, *port)? {
                match connect(Domain::for_address(a), &SockAddr::from(a), deadline) {
                    Ok(s) => {
                        sock = Some(s);
                        break;
                    }
                    Err(e) => last = format!("{a}: {e}"),
                }
            }
            let s = sock.ok_or(last)?;
            (s, request(authority, path, basic.as_deref(), &body))
        }
    };
    let answer = exchange(&sock, &req, deadline)?;
    http_body(&answer).map(<[u8]>::to_vec)
}

/// An XML-RPC value, as go-xmlrpc decodes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    Str(String),
    Double(f64),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
    Nil,
    /// `dateTime.iso8601`, `base64` and unknown types: kept as their text, never used.
    Other(String),
}

struct Parser<'a> {
    r: Reader<&'a [u8]>,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Event<'a>, String> {
        loop {
            match self.r.read_event() {
                Ok(Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_)) => {}
                Ok(e) => return Ok(e),
                Err(e) => {
                    return Err(format!(
                        "invalid XML at byte {}: {e}",
                        self.r.buffer_position()
                    ))
                }
            }
        }
    }

    /// The next element start, skipping blank text; `Empty` elements are starts with `empty`.
    fn start(&mut self, want: &str) -> Result<bool, String> {
        loop {
            match self.next()? {
                Event::Start(s) if s.local_name().as_ref() == want.as_bytes() => return Ok(false),
                Event::Empty(s) if s.local_name().as_ref() == want.as_bytes() => return Ok(true),
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                e => return Err(format!("expected <{want}>, found {}", describe(&e))),
            }
        }
    }

    fn end(&mut self, want: &str) -> Result<(), String> {
        loop {
            match self.next()? {
                Event::End(e) if e.local_name().as_ref() == want.as_bytes() => return Ok(()),
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                e => return Err(format!("expected </{want}>, found {}", describe(&e))),
            }
        }
    }

    /// Text up to the end of the element `tag` (references resolved, CDATA included).
    fn text(&mut self, tag: &str) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next()? {
                Event::Text(t) => s.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::CData(t) => s.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c,
                        None => match &r[..] {
                            b"amp" => '&',
                            b"lt" => '<',
                            b"gt" => '>',
                            b"quot" => '"',
                            b"apos" => '\'',
                            other => {
                                return Err(format!(
                                    "unknown entity &{};",
                                    String::from_utf8_lossy(other)
                                ))
                            }
                        },
                    };
                    s.push(c);
                }
                Event::End(e) if e.local_name().as_ref() == tag.as_bytes() => return Ok(s),
                e => return Err(format!("in <{tag}>: unexpected {}", describe(&e))),
            }
            if s.len() > MAX_REPLY {
                return Err("text too long".into());
            }
        }
    }

    /// The content of a `<value>` whose start was read, up to its end.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let mut untyped = String::new();
        loop {
            match self.next()? {
                Event::Start(s) => {
                    let tag = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    let v = self.typed(&tag, false, depth)?;
                    self.end("value")?;
                    return Ok(v);
                }
                Event::Empty(s) => {
                    let tag = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    let v = self.typed(&tag, true, depth)?;
                    self.end("value")?;
                    return Ok(v);
                }
                Event::Text(t) => untyped.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::GeneralRef(_) | Event::CData(_) => {
                    return Err("untyped value with references".into())
                }
                Event::End(e) if e.local_name().as_ref() == b"value" => {
                    return Ok(Value::Str(untyped))
                }
                e => return Err(format!("in <value>: unexpected {}", describe(&e))),
            }
        }
    }

    fn typed(&mut self, tag: &str, empty: bool, depth: usize) -> Result<Value, String> {
        let text = |p: &mut Self| -> Result<String, String> {
            if empty {
                Ok(String::new())
            } else {
                p.text(tag)
            }
        };
        Ok(match tag {
            "string" => Value::Str(text(self)?),
            "int" | "i1" | "i2" | "i4" | "i8" => {
                let t = text(self)?;
                Value::Int(
                    t.trim()
                        .parse()
                        .map_err(|_| format!("invalid <{tag}> {t:?}"))?,
                )
            }
            "boolean" => match text(self)?.trim() {
                "1" | "true" => Value::Bool(true),
                "0" | "false" => Value::Bool(false),
                t => return Err(format!("invalid boolean value {t:?}")),
            },
            "double" => {
                let t = text(self)?;
                Value::Double(
                    t.trim()
                        .parse()
                        .map_err(|_| format!("invalid <double> {t:?}"))?,
                )
            }
            "nil" => {
                if !empty {
                    self.end("nil")?;
                }
                Value::Nil
            }
            "array" => {
                let mut items = Vec::new();
                if !empty && !self.start("data")? {
                    loop {
                        match self.next()? {
                            Event::Start(s) if s.local_name().as_ref() == b"value" => {
                                items.push(self.value(depth + 1)?)
                            }
                            Event::Empty(s) if s.local_name().as_ref() == b"value" => {
                                items.push(Value::Str(String::new()))
                            }
                            Event::End(e) if e.local_name().as_ref() == b"data" => break,
                            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                            e => return Err(format!("in <data>: unexpected {}", describe(&e))),
                        }
                    }
                    self.end("array")?;
                } else if !empty {
                    self.end("array")?;
                }
                Value::Array(items)
            }
            "struct" => {
                let mut members = Vec::new();
                if !empty {
                    loop {
                        match self.next()? {
                            Event::Start(s) if s.local_name().as_ref() == b"member" => {
                                members.push(self.member(depth)?)
                            }
                            Event::End(e) if e.local_name().as_ref() == b"struct" => break,
                            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                            e => return Err(format!("in <struct>: unexpected {}", describe(&e))),
                        }
                    }
                }
                Value::Struct(members)
            }
            _ => Value::Other(text(self)?),
        })
    }

    /// `<name>N</name><value>V</value></member>`, the member's start read.
    fn member(&mut self, depth: usize) -> Result<(String, Value), String> {
        let name = if self.start("name")? {
            String::new()
        } else {
            self.text("name")?
        };
        let v = if self.start("value")? {
            Value::Str(String::new())
        } else {
            self.value(depth + 1)?
        };
        self.end("member")?;
        Ok((name, v))
    }
}

fn describe(e: &Event<'_>) -> String {
    match e {
        Event::Start(s) | Event::Empty(s) => {
            format!("<{}>", String::from_utf8_lossy(s.name().as_ref()))
        }
        Event::End(s) => format!("</{}>", String::from_utf8_lossy(s.name().as_ref())),
        Event::Eof => "the end".into(),
        _ => "text".into(),
    }
}

/// A `methodResponse`: its one parameter, or the fault as an error.
pub fn parse_response(xml: &[u8]) -> Result<Value, String> {
    if xml.len() > MAX_REPLY {
        return Err(format!("answer larger than {MAX_REPLY} bytes"));
    }
    let mut p = Parser {
        r: Reader::from_reader(xml),
    };
    if p.start("methodResponse")? {
        return Err("invalid response: missing params".into());
    }
    let mut e = p.next()?;
    while matches!(&e, Event::Text(t) if t.iter().all(u8::is_ascii_whitespace)) {
        e = p.next()?;
    }
    match e {
        Event::Start(s) if s.local_name().as_ref() == b"params" => {}
        Event::Start(s) if s.local_name().as_ref() == b"fault" => {
            let fault = if p.start("value")? {
                Value::Nil
            } else {
                p.value(1)?
            };
            let mut code = None;
            let mut text = String::new();
            if let Value::Struct(m) = fault {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("faultCode", Value::Int(c)) => code = Some(c),
                        ("faultString", Value::Str(s)) => text = s,
                        _ => {}
                    }
                }
            }
            return Err(format!(
                "fault {}: {text}",
                code.map_or_else(|| "?".to_string(), |c| c.to_string())
            ));
        }
        _ => return Err("invalid response: missing params".into()),
    }
    if p.start("param")? {
        return Err("invalid response: missing param".into());
    }
    if p.start("value")? {
        return Ok(Value::Str(String::new()));
    }
    p.value(1)
}

/// One process as 1.12's `info` struct holds it (fields carry over between processes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub group: String,
    pub start: i64,
    pub state: i64,
    pub exit_status: i64,
}

/// 1.12's loop over `getAllProcessInfo`'s answer: an array of structs whose known members
/// must have their type (1.12's type assertions panic otherwise: here, an error).
pub fn processes(v: &Value) -> Result<Vec<Info>, String> {
    let Value::Array(items) = v else {
        return Err("answer is not an array".into());
    };
    let mut info = Info::default();
    let mut out = Vec::with_capacity(items.len());
    for p in items {
        let Value::Struct(members) = p else {
            return Err("array element is not a struct".into());
        };
        for (k, v) in members {
            let int = |v: &Value| match v {
                Value::Int(i) => Ok(*i),
                _ => Err(format!("member {k:?} is not an int")),
            };
            let string = |v: &Value| match v {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(format!("member {k:?} is not a string")),
            };
            match k.as_str() {
                "name" => info.name = string(v)?,
                "group" => info.group = string(v)?,
                "statename" => {
                    string(v)?;
                }
                "start" => info.start = int(v)?,
                "state" => info.state = int(v)?,
                "exitstatus" => info.exit_status = int(v)?,
                "stop" | "now" | "pid" => {
                    int(v)?;
                }
                _ => {}
            }
        }
        out.push(info.clone());
    }
    Ok(out)
}

/// supervisord's STARTING, RUNNING, STOPPING.
fn is_running(state: i64) -> bool {
    matches!(state, 10 | 20 | 40)
}

pub fn families(procs: &[Info]) -> Vec<MetricFamily> {
    let mut up = MetricFamily::gauge("node_supervisord_up", "Process Up");
    let mut state = MetricFamily::gauge("node_supervisord_state", "Process State");
    let mut exit = MetricFamily::gauge("node_supervisord_exit_status", "Process Exit Status");
    let mut start =
        MetricFamily::counter("node_supervisord_start_time_seconds", "Process start time");
    for p in procs {
        let l: &[(&'static str, &str)] = &[("group", &p.group), ("name", &p.name)];
        state.push(l, p.state as f64);
        exit.push(l, p.exit_status as f64);
        if is_running(p.state) {
            up.push(l, 1.0);
            start.push(l, p.start as f64);
        } else {
            up.push(l, 0.0);
        }
        log::debug!(
            "supervisord: process info group={} name={} state={}",
            p.group,
            p.name,
            p.state
        );
    }
    nonempty_sorted(vec![exit, start, state, up])
}

/// The whole scrape: call (within `timeout`), parse, families.
pub fn scrape(target: &Target, timeout: Duration) -> Result<Vec<MetricFamily>, String> {
    let body = call(target, "supervisor.getAllProcessInfo", timeout)?;
    let v = parse_response(&body)?;
    Ok(families(&processes(&v)?))
}

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    log::warn!("collector supervisord: {DEPRECATED}");
    Box::new(Supervisord)
}

pub struct Supervisord;

impl Collector for Supervisord {
    fn name(&self) -> &'static str {
        "supervisord"
    }
    fn collect(&self, paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let target = parse_url(
            paths
                .collector_files
                .supervisord_url
                .as_deref()
                .unwrap_or(DEFAULT_URL),
        );
        scrape(&target, TIMEOUT)
            .map_err(|e| CollectError::Other(format!("unable to call supervisord: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, lines};
    use std::net::TcpListener;

    fn xml(name: &str) -> Vec<u8> {
        std::fs::read(fixture("supervisord", name)).expect("fixture")
    }

    fn rendered(fams: &[MetricFamily]) -> Vec<String> {
        lines::render(fams)
            .into_iter()
            .map(|(l, v)| match v {
                Some(v) => format!("{l} {v}"),
                None => l,
            })
            .collect()
    }

    #[test]
    fn python_marshalled_answer() {
        let v = parse_response(&xml("getAllProcessInfo.xml")).expect("parses");
        let fams = families(&processes(&v).expect("processes"));
        assert_eq!(
            rendered(&fams),
            [
                "# HELP node_supervisord_exit_status Process Exit Status",
                "# TYPE node_supervisord_exit_status gauge",
                r#"node_supervisord_exit_status{group="apps",name="web"} 0"#,
                r#"node_supervisord_exit_status{group="misc",name="cron & <friends>"} 0"#,
                r#"node_supervisord_exit_status{group="workers",name="worker_00"} 3"#,
                r#"node_supervisord_exit_status{group="workers",name="worker_01"} 0"#,
                "# HELP node_supervisord_start_time_seconds Process start time",
                "# TYPE node_supervisord_start_time_seconds counter",
                r#"node_supervisord_start_time_seconds{group="apps",name="web"} 1700000000"#,
                r#"node_supervisord_start_time_seconds{group="workers",name="worker_01"} 1700000400"#,
                "# HELP node_supervisord_state Process State",
                "# TYPE node_supervisord_state gauge",
                r#"node_supervisord_state{group="apps",name="web"} 20"#,
                r#"node_supervisord_state{group="misc",name="cron & <friends>"} 200"#,
                r#"node_supervisord_state{group="workers",name="worker_00"} 100"#,
                r#"node_supervisord_state{group="workers",name="worker_01"} 10"#,
                "# HELP node_supervisord_up Process Up",
                "# TYPE node_supervisord_up gauge",
                r#"node_supervisord_up{group="apps",name="web"} 1"#,
                r#"node_supervisord_up{group="misc",name="cron & <friends>"} 0"#,
                r#"node_supervisord_up{group="workers",name="worker_00"} 0"#,
                r#"node_supervisord_up{group="workers",name="worker_01"} 1"#,
            ]
        );
    }

    #[test]
    fn fault_and_malformed_answers_are_errors() {
        let e = parse_response(&xml("fault.xml")).expect_err("fault");
        assert_eq!(e, "fault 1: UNKNOWN_METHOD");
        let wrap = |inner: &str| {
            format!("<?xml version=\"1.0\"?><methodResponse><params><param><value>{inner}</value></param></params></methodResponse>")
        };
        let procs =
            |inner: &str| parse_response(wrap(inner).as_bytes()).and_then(|v| processes(&v));
        // 1.12 panics on each of these (type assertions): errors here.
        assert!(procs("<string>x</string>").is_err(), "not an array");
        assert!(procs("<array><data><value><int>1</int></value></data></array>").is_err());
        for bad in [
            "<name>state</name><value><string>20</string></value>",
            "<name>name</name><value><int>1</int></value>",
            "<name>pid</name><value><nil/></value>",
            "<name>start</name><value><double>1.5</double></value>",
        ] {
            let x = format!("<array><data><value><struct><member>{bad}</member></struct></value></data></array>");
            assert!(procs(&x).is_err(), "{bad}");
        }
        for bad in [
            "",
            "<methodResponse/>",
            "<methodResponse><params></params></methodResponse>",
            "<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><int>99999999999999999999</int></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><string>&bogus;</string></value></param></params></methodResponse>",
            "<methodResponse><params><param><value><string>a</value></string></param></params></methodResponse>",
            "<methodResponse><params><param><value><array><data><value>",
        ] {
            assert!(parse_response(bad.as_bytes()).is_err(), "{bad}");
        }
        // Nesting past MAX_DEPTH is refused, not a stack overflow.
        let deep = "<array><data><value>".repeat(100_000);
        let e = parse_response(wrap(&deep).as_bytes()).expect_err("deep");
        assert!(e.contains("nested deeper"), "{e}");
        // An empty array: no processes, no samples.
        let v = parse_response(wrap("<array><data></data></array>").as_bytes()).expect("empty");
        assert!(families(&processes(&v).expect("ok")).is_empty());
    }

    #[test]
    fn fields_carry_over_as_in_1_12() {
        // 1.12 keeps one `info` struct across the loop: a process without `group` or `state`
        // gets the previous one's.
        let x = "<?xml version='1.0'?><methodResponse><params><param><value><array><data>\
            <value><struct><member><name>name</name><value><string>a</string></value></member>\
            <member><name>group</name><value><string>g</string></value></member>\
            <member><name>state</name><value><int>20</int></value></member>\
            <member><name>start</name><value><i8>5</i8></value></member></struct></value>\
            <value><struct><member><name>name</name><value>b</value></member></struct></value>\
            </data></array></value></param></params></methodResponse>";
        let v = parse_response(x.as_bytes()).expect("parses");
        let p = processes(&v).expect("processes");
        assert_eq!(
            p,
            [
                Info {
                    name: "a".into(),
                    group: "g".into(),
                    start: 5,
                    state: 20,
                    exit_status: 0
                },
                Info {
                    name: "b".into(),
                    group: "g".into(),
                    start: 5,
                    state: 20,
                    exit_status: 0
                },
            ]
        );
    }

    #[test]
    fn urls_as_go_reads_them() {
        assert_eq!(
            parse_url(DEFAULT_URL),
            Target::Http {
                host: "localhost".into(),
                port: 9001,
                authority: "localhost:9001".into(),
                path: "/RPC2".into(),
                basic: None
            }
        );
        assert_eq!(
            parse_url("unix:///run/supervisor.sock"),
            Target::Unix {
                path: "/run/supervisor.sock".into()
            }
        );
        assert_eq!(
            parse_url("unix:/run/s.sock"),
            Target::Unix {
                path: "/run/s.sock".into()
            }
        );
        // Go takes the URL's path only: the "host" part is dropped.
        assert_eq!(
            parse_url("unix://var/run/s.sock"),
            Target::Unix {
                path: "/run/s.sock".into()
            }
        );
        match parse_url("HTTP://u%40x:p@[::1]:8080?x=1") {
            Target::Http {
                host,
                port,
                authority,
                path,
                basic,
            } => {
                assert_eq!((host.as_str(), port, path.as_str()), ("::1", 8080, "/?x=1"));
                assert_eq!(authority, "[::1]:8080");
                assert_eq!(basic.as_deref(), Some("dUB4OnA=")); // base64("u@x:p")
            }
            t => panic!("{t:?}"),
        }
        assert_eq!(parse_url("http://h").tcp_port(), Some(80));
        for bad in [
            "https://h/RPC2",
            "ftp://h",
            "nourl",
            "http://h:0/",
            "http://h:99999/",
            "http://:80/",
            "http://h/a b",
        ] {
            assert!(matches!(parse_url(bad), Target::Invalid(_)), "{bad}");
        }
    }

    /// A one-shot server on loopback answering `answer` (after `delay`), returning what it read.
    fn serve(answer: Vec<u8>, delay: Duration) -> (Target, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(12).any(|w| w == b"</methodCall") {
                let n = s.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            std::thread::sleep(delay);
            let _ = s.write_all(&answer);
            req
        });
        (parse_url(&format!("http://127.0.0.1:{port}/RPC2")), h)
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn http_exchange_on_loopback() {
        let (t, h) = serve(ok(&xml("getAllProcessInfo.xml")), Duration::ZERO);
        let fams = scrape(&t, TIMEOUT).expect("scrape");
        assert_eq!(fams.len(), 4);
        let req = String::from_utf8(h.join().expect("server")).expect("utf-8");
        assert!(
            req.starts_with("POST /RPC2 HTTP/1.0\r\nHost: 127.0.0.1:"),
            "{req}"
        );
        assert!(req.contains("Content-Type: text/xml\r\n"), "{req}");
        assert!(
            req.ends_with(&request_body("supervisor.getAllProcessInfo")),
            "{req}"
        );
        // Not 2xx, chunked, truncated: errors.
        for answer in [
            b"HTTP/1.0 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            b"HTTP/1.0 200 OK\r\nContent-Length: 500\r\n\r\n<methodResponse>".to_vec(),
            b"garbage".to_vec(),
        ] {
            let (t, h) = serve(answer.clone(), Duration::ZERO);
            assert!(
                scrape(&t, TIMEOUT).is_err(),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            h.join().expect("server");
        }
        // Nobody listening: an error, not a hang.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        assert!(scrape(&parse_url(&format!("http://127.0.0.1:{port}/")), TIMEOUT).is_err());
    }

    #[test]
    fn hostile_servers_are_bounded() {
        // Silent server: the deadline ends the call.
        let (t, h) = serve(Vec::new(), Duration::from_millis(1500));
        let e = scrape(&t, Duration::from_millis(300)).expect_err("silent");
        assert!(e.contains("in time"), "{e}");
        h.join().expect("server");
        // An endless answer: cut at MAX_REPLY.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n<methodResponse>");
            let chunk = vec![b' '; 65536];
            while s.write_all(&chunk).is_ok() {}
        });
        let e =
            scrape(&parse_url(&format!("http://127.0.0.1:{port}/")), TIMEOUT).expect_err("endless");
        assert!(e.contains("larger than"), "{e}");
        h.join().expect("server");
    }

    #[test]
    fn unix_socket_exchange() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let answer = ok(&xml("getAllProcessInfo.xml"));
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(12).any(|w| w == b"</methodCall") {
                let n = s.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(&answer).expect("write");
            req
        });
        let t = parse_url(&format!("unix://{}", path.display()));
        assert_eq!(scrape(&t, TIMEOUT).expect("scrape").len(), 4);
        let req = String::from_utf8(h.join().expect("server")).expect("utf-8");
        assert!(
            req.starts_with("POST /RPC2 HTTP/1.0\r\nHost: unix\r\n"),
            "{req}"
        );
        assert!(scrape(&parse_url("unix:///nonexistent/s.sock"), TIMEOUT).is_err());
    }
}
