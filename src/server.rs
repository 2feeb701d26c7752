//! The HTTP side: listeners bound before the sandbox (step 5), and the hyper 1 server that
//! serves them (routes, limits, timeouts, graceful stop).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use crate::agent::Agent;
use crate::config::ListenAddr;
use crate::daemon::logging::client_event;
use crate::exposition::{self, Format};

/// Why a listening socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: String,
    #[source]
    pub source: io::Error,
}

/// The accept queue's length asked of the kernel (`listen(2)`'s backlog, capped by
/// `net.core.somaxconn`, 4096 by default): a burst of connections waits there until the
/// accept loop takes it, instead of seeing its SYNs dropped (std asks for 128).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds one configured address (close-on-exec, `SO_REUSEADDR` as std sets them, a
/// [`LISTEN_BACKLOG`] queue, non-blocking for tokio). `:PORT` binds the IPv6 wildcard
/// (dual-stack), or the IPv4 one where the host has no IPv6. Runs before the sandbox, which
/// forbids `socket`, `bind` and `listen`.
pub fn bind(addr: &ListenAddr) -> Result<StdListener, BindError> {
    let err = |a: String| move |source| BindError { addr: a, source };
    let listener = match addr {
        ListenAddr::Addr(a) => listen_on(*a).map_err(err(a.to_string()))?,
        ListenAddr::Any(port) => {
            match listen_on(SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port))) {
                Ok(l) => l,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    ) =>
                {
                    listen_on(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port)))
                        .map_err(err(addr.to_string()))?
                }
                Err(e) => return Err(err(addr.to_string())(e)),
            }
        }
    };
    Ok(listener)
}

fn listen_on(addr: SocketAddr) -> io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    // socket2 creates it close-on-exec.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Who a connection counts against: its IPv4 address (an IPv4-mapped IPv6 peer of a
/// dual-stack listener is its IPv4 address), or the /64 prefix of an IPv6 address (one host
/// commonly holds a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Where a held connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Accepted, not served: over `web.max_connections`, it waits for a slot.
    Waiting,
    /// Served, but no complete request head yet (nor TLS handshake): evictable.
    Unproven,
    /// Served, and has sent at least one complete request head: never evicted.
    Proven,
}

struct Held {
    key: IpAddr,
    stage: Stage,
    /// Wakes the connection's task: admitted, or evicted (gone from the table).
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerKey {
    /// Served (unproven or proven).
    open: usize,
    unproven: usize,
    waiting: usize,
}

struct Table {
    /// `web.max_connections`: connections served at once.
    limit: usize,
    /// Connections held at all (served and waiting): what the descriptor limit allows.
    capacity: usize,
    next_id: u64,
    /// By id, that is in accept order: the first one found is the oldest.
    conns: std::collections::BTreeMap<u64, Held>,
    keys: HashMap<IpAddr, PerKey>,
    open: usize,
}

/// The agent's connections: which are served, which wait, and which to give up when one
/// address holds more than its share (`web.max_connections`, which a reload may raise or
/// lower).
///
/// Every connection is accepted at once, so none waits in the kernel's accept queue behind
/// another client's. Then:
/// - at most `limit` are served; the others wait, accepted but unread, for a slot, and a
///   freed slot goes to the waiting connection whose address has the fewest served;
/// - a new connection finding every slot taken evicts the oldest *unproven* connection (one
///   that has not sent a complete request head) of the address holding the most unproven
///   ones, when that address holds at least two more than the newcomer's: one address can
///   never keep another's scrape out, however many sockets it opens; a client that already
///   sent a request is never evicted;
/// - an address waits with at most `limit` connections (its oldest waiting one is closed
///   beyond that), and all held connections stay within `capacity` (what the descriptor
///   limit allows), so descriptors and memory are bounded.
///
/// Lowering the limit below the number served lets no new connection in until enough have
/// closed (a semaphore could only forget its free permits).
pub struct ConnSlots {
    table: std::sync::Mutex<Table>,
}

/// One held connection's place in [`ConnSlots`], given back when dropped.
pub struct ConnSlot {
    slots: Arc<ConnSlots>,
    id: u64,
    wake: Arc<tokio::sync::Notify>,
    /// Set once the connection has sent a complete request head (so it is never evicted).
    proven: std::sync::atomic::AtomicBool,
}

/// Descriptors kept for everything but client connections: listeners, logs, the PID file,
/// the collectors' kept-open and per-scrape files, tokio's own.
pub const RESERVED_FDS: u64 = 256;

/// How many client connections a descriptor limit (`RLIMIT_NOFILE`) allows.
pub fn connection_capacity(nofile: u64) -> usize {
    let spare = nofile.saturating_sub(RESERVED_FDS).max(nofile / 2);
    usize::try_from(spare).unwrap_or(usize::MAX).max(1)
}

impl ConnSlots {
    /// `limit`: `web.max_connections`; `capacity`: connections the descriptor limit allows
    /// ([`connection_capacity`]).
    pub fn new(limit: u32, capacity: usize) -> ConnSlots {
        ConnSlots {
            table: std::sync::Mutex::new(Table {
                limit: limit as usize,
                capacity: capacity.max(1),
                next_id: 0,
                conns: std::collections::BTreeMap::new(),
                keys: HashMap::new(),
                open: 0,
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in a connection just accepted from `peer`: served at once if a slot is free
    /// (or one can be taken from an address holding more than its share), else waiting.
    /// `None`: nothing could make room within the capacity; close the connection.
    pub fn register(self: &Arc<Self>, peer: IpAddr) -> Option<ConnSlot> {
        let key = peer_key(peer);
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut t = self.table();
        let id = t.next_id;
        t.next_id += 1;
        t.insert(
            id,
            Held {
                key,
                stage: Stage::Waiting,
                wake: wake.clone(),
            },
        );
        if t.conns.len() > t.capacity && !t.evict_for_capacity() {
            t.remove(id);
        }
        if !t.conns.contains_key(&id) {
            // Nothing else could give way (or the newcomer's own address waits the most).
            return None;
        }
        if t.open < t.limit {
            t.admit(id);
        } else if let Some(victim) = t.fair_share_victim(key) {
            t.evict(victim);
            t.admit(id);
        } else {
            // Waiting: at most `limit` per address; the oldest gives way.
            let limit = t.limit.max(1);
            if t.keys.get(&key).map_or(0, |k| k.waiting) > limit {
                if let Some(old) = t.oldest(key, Stage::Waiting) {
                    t.evict(old);
                }
            }
        }
        drop(t);
        Some(ConnSlot {
            slots: self.clone(),
            id,
            wake,
            proven: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets the limit (SIGHUP); a raised one admits waiting connections at once.
    pub fn set_limit(&self, limit: u32) {
        let mut t = self.table();
        t.limit = limit as usize;
        t.admit_waiting();
    }

    /// Connections served and connections waiting, for the log and tests.
    pub fn counts(&self) -> (usize, usize) {
        let t = self.table();
        (t.open, t.conns.len() - t.open)
    }
}

impl Table {
    fn insert(&mut self, id: u64, held: Held) {
        let k = self.keys.entry(held.key).or_default();
        match held.stage {
            Stage::Waiting => k.waiting += 1,
            Stage::Unproven => {
                k.open += 1;
                k.unproven += 1;
            }
            Stage::Proven => k.open += 1,
        }
        if held.stage != Stage::Waiting {
            self.open += 1;
        }
        self.conns.insert(id, held);
    }

    /// Takes a connection out of the table; returns it if it was there.
    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.conns.remove(&id)?;
        if let Some(k) = self.keys.get_mut(&held.key) {
            match held.stage {
                Stage::Waiting => k.waiting -= 1,
                Stage::Unproven => {
                    k.open -= 1;
                    k.unproven -= 1;
                }
                Stage::Proven => k.open -= 1,
            }
            if k.open == 0 && k.waiting == 0 {
                self.keys.remove(&held.key);
            }
        }
        if held.stage != Stage::Waiting {
            self.open -= 1;
        }
        Some(held)
    }

    fn set_stage(&mut self, id: u64, stage: Stage) {
        if let Some(mut held) = self.remove(id) {
            held.stage = stage;
            let wake = held.wake.clone();
            self.insert(id, held);
            wake.notify_one();
        }
    }

    fn admit(&mut self, id: u64) {
        self.set_stage(id, Stage::Unproven);
    }

    /// Closes a connection: its task sees it gone from the table.
    fn evict(&mut self, id: u64) {
        if let Some(held) = self.remove(id) {
            held.wake.notify_one();
        }
    }

    fn oldest(&self, key: IpAddr, stage: Stage) -> Option<u64> {
        self.conns
            .iter()
            .find(|(_, h)| h.key == key && h.stage == stage)
            .map(|(id, _)| *id)
    }

    /// The address holding the most connections of `stage`, and how many.
    fn busiest(&self, stage: Stage) -> Option<(IpAddr, usize)> {
        self.keys
            .iter()
            .map(|(key, k)| {
                let n = match stage {
                    Stage::Waiting => k.waiting,
                    Stage::Unproven => k.unproven,
                    Stage::Proven => k.open - k.unproven,
                };
                (*key, n)
            })
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n)
    }

    /// The connection a newcomer from `key` may take the slot of: the oldest unproven one of
    /// the address holding the most unproven, if it holds at least two more than the
    /// newcomer's address serves (so two addresses never take slots back and forth).
    fn fair_share_victim(&self, key: IpAddr) -> Option<u64> {
        let (busiest, n) = self.busiest(Stage::Unproven)?;
        let mine = self.keys.get(&key).map_or(0, |k| k.open);
        if n > mine + 1 {
            self.oldest(busiest, Stage::Unproven)
        } else {
            None
        }
    }

    /// Over capacity: closes the oldest waiting connection of the address with the most
    /// waiting, else the oldest unproven one of the address with the most unproven.
    fn evict_for_capacity(&mut self) -> bool {
        for stage in [Stage::Waiting, Stage::Unproven] {
            if let Some(id) = self
                .busiest(stage)
                .and_then(|(key, _)| self.oldest(key, stage))
            {
                self.evict(id);
                return true;
            }
        }
        false
    }

    /// Fills free slots from the waiting connections: each time, the oldest of the address
    /// with the fewest served.
    fn admit_waiting(&mut self) {
        while self.open < self.limit {
            let next = self
                .conns
                .iter()
                .filter(|(_, h)| h.stage == Stage::Waiting)
                .min_by_key(|(id, h)| (self.keys.get(&h.key).map_or(0, |k| k.open), **id))
                .map(|(id, _)| *id);
            match next {
                Some(id) => self.admit(id),
                None => break,
            }
        }
    }
}

impl ConnSlot {
    fn stage(&self) -> Option<Stage> {
        self.slots.table().conns.get(&self.id).map(|h| h.stage)
    }

    /// Waits until the connection may be served: true, or it was evicted while waiting:
    /// false.
    pub async fn admitted(&self) -> bool {
        loop {
            match self.stage() {
                None => return false,
                Some(Stage::Waiting) => self.wake.notified().await,
                Some(_) => return true,
            }
        }
    }

    /// Completes once the connection has been evicted (taken out of the table).
    pub async fn evicted(&self) {
        while self.stage().is_some() {
            self.wake.notified().await;
        }
    }

    /// The connection sent a complete request head: it is never evicted from now on.
    pub fn prove(&self) {
        if !self.proven.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let mut t = self.slots.table();
            if t.conns.get(&self.id).map(|h| h.stage) == Some(Stage::Unproven) {
                t.set_stage(self.id, Stage::Proven);
            }
        }
    }

    pub fn is_proven(&self) -> bool {
        self.proven.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut t = self.slots.table();
        if t.remove(self.id).is_some_and(|h| h.stage != Stage::Waiting) {
            t.admit_waiting();
        }
    }
}

/// Shared by the accept loops of every listener.
pub struct ConnLimits {
    /// Which connections are served, which wait, which are evicted ([`ConnSlots`]).
    pub slots: Arc<ConnSlots>,
    /// Cloned into every connection task; shutdown waits until all clones are gone.
    pub tracker: mpsc::Sender<()>,
    /// Flips to true at shutdown: connections finish their request and close.
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections on one listener until `stop` fires or the agent shuts down. It
/// accepts every connection at once (none waits in the kernel's queue behind another
/// client's) and lets [`ConnSlots`] decide which is served.
pub async fn accept_loop(
    agent: Arc<Agent>,
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    mut stop: watch::Receiver<bool>,
) {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut shutdown = limits.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    client_event(log::Level::Warn, format_args!("accept on {local}: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
            _ = shutdown.changed() => return,
        };
        let Some(slot) = limits.slots.register(peer.ip()) else {
            client_event(
                log::Level::Warn,
                format_args!(
                    "connection from {peer} refused: {} connections held, none evictable",
                    limits.slots.counts().0
                ),
            );
            continue;
        };
        let agent = agent.clone();
        let tracker = limits.tracker.clone();
        let conn_shutdown = limits.shutdown.clone();
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let mut stopping = conn_shutdown.clone();
            let admitted = tokio::select! {
                a = slot.admitted() => a,
                _ = stopping.wait_for(|s| *s) => false,
            };
            if admitted {
                // Shutdown from here on is graceful: a request in flight is finished.
                serve_connection(agent, stream, peer, conn_shutdown, slot.clone()).await;
            }
            drop(slot);
            drop(tracker);
        });
    }
}

async fn serve_connection(
    agent: Arc<Agent>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    slot: Arc<ConnSlot>,
) {
    // Until its first complete request head (a TLS handshake included), a connection has
    // `header_read_timeout` from now in all, whatever it trickles, and may be evicted for
    // another address's client: both end `serve` wherever it is.
    let first_request_deadline = Instant::now() + agent.web().header_read_timeout;
    let unproven_deadline = {
        let slot = slot.clone();
        async move {
            tokio::time::sleep_until(first_request_deadline).await;
            if slot.is_proven() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = serve(agent, stream, peer, shutdown, slot.clone()) => {}
        () = unproven_deadline => {}
        () = slot.evicted() => {}
    }
}

/// One admitted connection, from its first byte to its end.
async fn serve(
    agent: Arc<Agent>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    slot: Arc<ConnSlot>,
) {
    // A silent connection costs no read buffer: hyper allocates one only once bytes come.
    tokio::select! {
        r = stream.readable() => if r.is_err() { return; },
        _ = shutdown.wait_for(|s| *s) => return,
    }
    // hyper's connection state lives on the heap from here on: the task of a connection that
    // sends nothing stays small.
    Box::pin(serve_http(agent, stream, peer, shutdown, slot)).await;
}

/// hyper on one connection that has sent its first bytes.
async fn serve_http(
    agent: Arc<Agent>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    slot: Arc<ConnSlot>,
) {
    let web = agent.web();
    let _ = stream.set_nodelay(true);
    let service_agent = agent.clone();
    let service = hyper::service::service_fn(move |req| {
        // A complete request head: never evicted from now on.
        slot.prove();
        let agent = service_agent.clone();
        async move {
            let mut r = edge_then_handle(agent, peer, req).await;
            // Every response: no browser may sniff a page into something else.
            r.headers_mut().insert(
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            );
            Ok::<_, Infallible>(r)
        }
    });
    // `--web.config.file` with TLS: the handshake (bounded by the header timeout), then
    // HTTP/1.1 or HTTP/2 (src/web/).
    if let Some(edge) = agent.edge().filter(|e| e.tls()) {
        let params = crate::web::ConnParams {
            header_read_timeout: web.header_read_timeout,
            max_header_bytes: web.max_header_bytes,
        };
        let io = IdleTimeout::new(stream, web.idle_timeout);
        // Boxed: the TLS state machine made every plain connection's future 8,168 bytes
        // (1,976 with it boxed; issue 12, memory under 64 keep-alive clients).
        Box::pin(crate::web::serve_tls(
            edge, io, service, params, peer, shutdown,
        ))
        .await;
        return;
    }
    let io = TokioIo::new(IdleTimeout::new(stream, web.idle_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(web.header_read_timeout)
        .max_buf_size(web.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            client_event(
                log::Level::Debug,
                format_args!("connection from {peer}: {e}"),
            );
        }
    }
}

type Body = Full<Bytes>;

/// The web config's rate limit, basic auth and headers (src/web/), around [`handle`].
async fn edge_then_handle(
    agent: Arc<Agent>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    match agent.edge().cloned() {
        Some(edge) => edge.serve(peer, req, |req| handle(agent, req)).await,
        None => handle(agent, req).await,
    }
}

/// An error page (or any short text answer): `text/plain; charset=utf-8`, and, as every
/// response, `X-Content-Type-Options: nosniff`. Client input in `text` must have gone
/// through [`printable`].
pub fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(text.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Response<Body> {
    let web = agent.web();
    let path = req.uri().path();
    let is_metrics = path == web.telemetry_path.0;
    if !is_metrics && path != "/" {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !is_metrics {
        let page = landing_page(&web.telemetry_path.0);
        let mut r = Response::new(Full::new(Bytes::from(page)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }

    let Some(_slot) = agent.try_scrape_slot(web.max_requests) else {
        client_event(
            log::Level::Warn,
            format_args!(
                "scrape refused: more than {} concurrent scrapes",
                web.max_requests
            ),
        );
        agent.count_handler_response(503);
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 too many concurrent scrapes\n",
        );
    };
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(header_str(header::ACCEPT));
    let gzip = exposition::accepts_gzip(header_str(header::ACCEPT_ENCODING));

    let (collect, exclude) = collector_params(req.uri().query().unwrap_or(""));
    let selection = match agent.selection(collect, exclude) {
        Ok(s) => s,
        Err(msg) => {
            client_event(log::Level::Info, format_args!("bad scrape request: {msg}"));
            return plain(StatusCode::BAD_REQUEST, format!("400 {msg}\n"));
        }
    };
    // Prometheus says how long it will wait; collectors get a little less.
    let scrape_timeout = scrape_timeout(header_str(HeaderName::from_static(
        "x-prometheus-scrape-timeout-seconds",
    )));
    // The request head shares hyper's read buffer: dropped before the wait for the answer,
    // hyper reads the connection's next bytes into that same buffer instead of a second
    // one (issue 12: memory under many keep-alive clients).
    drop(req);
    let answer = agent.answer(format, gzip, selection, scrape_timeout).await;
    agent.count_handler_response(200);
    let mut resp = Response::new(Full::new(answer.body.clone()));
    if answer.gzipped {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    resp
}

/// `X-Prometheus-Scrape-Timeout-Seconds`: a positive number of seconds a `Duration` can hold.
/// `Duration::from_secs_f64` panics past `u64::MAX` seconds: `1e300` aborted the agent
/// (issue 11), so the conversion is the checked one.
#[deny(clippy::indexing_slicing, clippy::string_slice)]
fn scrape_timeout(header: Option<&str>) -> Option<Duration> {
    let v = header?.trim().parse::<f64>().ok()?;
    if v > 0.0 {
        Duration::try_from_secs_f64(v).ok()
    } else {
        None
    }
}

/// The `collect[]` and `exclude[]` values of a query string.
#[deny(clippy::indexing_slicing, clippy::string_slice)]
fn collector_params(query: &str) -> (Vec<String>, Vec<String>) {
    let (mut collect, mut exclude) = (Vec::new(), Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k).as_str() {
            "collect[]" => collect.push(percent_decode(v)),
            "exclude[]" => exclude.push(percent_decode(v)),
            _ => {}
        }
    }
    (collect, exclude)
}

/// Decodes `%XX` escapes and `+` in a query component; invalid escapes stay as they are.
#[deny(clippy::indexing_slicing, clippy::string_slice)]
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        match c {
            b'+' => out.push(b' '),
            b'%' => match tail
                .get(..2)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    rest = tail.get(2..).unwrap_or_default();
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn landing_page(telemetry_path: &str) -> String {
    let p: String = telemetry_path
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html>\n<head><title>monitoring-agent</title></head>\n<body>\n\
         <h1>monitoring-agent</h1>\n<p>Prometheus host metrics for Linux, version {}.</p>\n\
         <p><a href=\"{p}\">Metrics</a></p>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Closes a connection on which no byte has moved, in either direction, for `timeout`: a
/// client that stopped reading its response, or one that never sends.
struct IdleTimeout {
    inner: TcpStream,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn activity(&mut self) {
        let deadline = Instant::now() + self.timeout;
        self.sleep.as_mut().reset(deadline);
    }

    /// A write's outcome: bytes written are activity; a write that waits checks the timer.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.activity();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.activity();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, written)
    }

    /// hyper queues the response body (the shared answer's `Bytes`) after the head and sends
    /// both with one `writev` when its transport writes vectored; otherwise it copies every
    /// body into a per-connection buffer that keeps its grown capacity for the connection's
    /// life (issue 12: 2.06 MB of the 4.32 MB heap peak under 64 keep-alive clients,
    /// heaptrack).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper queues a response's body (no copy into its per-connection buffer) only on a
    /// transport that writes vectored: the idle-timeout wrapper must say it does, and its
    /// vectored writes must deliver every slice and count as activity.
    #[tokio::test]
    async fn idle_timeout_writes_vectored() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut io = IdleTimeout::new(server, Duration::from_secs(30));
        assert!(io.is_write_vectored());
        let before = io.sleep.deadline();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (head, body) = (b"head ".as_slice(), b"body".as_slice());
        let mut sent = 0;
        while sent < head.len() + body.len() {
            let rest: Vec<io::IoSlice<'_>> = if sent < head.len() {
                vec![io::IoSlice::new(&head[sent..]), io::IoSlice::new(body)]
            } else {
                vec![io::IoSlice::new(&body[sent - head.len()..])]
            };
            let n = io.write_vectored(&rest).await.expect("writev");
            assert!(n > 0, "a vectored write made no progress");
            sent += n;
        }
        assert!(io.sleep.deadline() > before, "a vectored write is activity");
        let mut got = vec![0u8; head.len() + body.len()];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, b"head body");
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            collector_params("collect[]=cpu&collect%5B%5D=meminfo&x=1&exclude[]=a%2Bb+c"),
            (
                vec!["cpu".to_string(), "meminfo".to_string()],
                vec!["a+b c".to_string()]
            )
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%+1%4"), "A% 1%4");
        assert_eq!(percent_decode("%e2%80%AE%ff"), "\u{202e}\u{fffd}");
        assert_eq!(collector_params(""), (vec![], vec![]));
    }

    /// Issue 11: `X-Prometheus-Scrape-Timeout-Seconds: 1e300` made `Duration::from_secs_f64`
    /// panic (abort in release) before the scrape started.
    #[test]
    fn scrape_timeout_header_never_panics() {
        assert_eq!(
            scrape_timeout(Some(" 10.5 ")),
            Some(Duration::from_millis(10_500))
        );
        for bad in [
            "1e300", "1.9e19", "inf", "+Inf", "NaN", "-1", "0", "-0", "", "x", "1e-400",
        ] {
            let t = scrape_timeout(Some(bad));
            assert!(t.is_none_or(|d| d.is_zero()), "{bad:?}: {t:?}");
        }
        assert_eq!(scrape_timeout(None), None);
        // The largest it accepts still leaves `Agent::scrape` room to take 90% of it.
        let big = scrape_timeout(Some("1.8e19")).expect("fits a Duration");
        assert!(big.mul_f64(0.9) < big);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any query string: no panic, and every `collect[]`/`exclude[]` value comes back.
        #[test]
        fn query_strings_never_panic(q in r#"([a-z\[\]%+&=]|%[0-9a-fA-F]{0,2}|[^\x00-\x7f]){0,64}"#,
                                     raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let (c, e) = collector_params(&q);
            let n = q.split('&').filter(|p| !p.is_empty()).count();
            proptest::prop_assert!(c.len() + e.len() <= n);
            let _ = collector_params(&String::from_utf8_lossy(&raw));
            let _ = percent_decode(&String::from_utf8_lossy(&raw));
        }

        /// Any scrape timeout header value: no panic, and a `Duration` only for a positive
        /// number.
        #[test]
        fn scrape_timeout_values_never_panic(
            v in proptest::prelude::any::<f64>(),
            s in r"[-+ ]?[0-9.eEinfINFa_x]{0,12} ?",
        ) {
            let t = scrape_timeout(Some(&v.to_string()));
            proptest::prop_assert!(t.is_none() || v > 0.0);
            let _ = scrape_timeout(Some(&format!("{v:e}")));
            let _ = scrape_timeout(Some(&s));
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn stages(slots: &[&ConnSlot]) -> Vec<Option<Stage>> {
        slots.iter().map(|s| s.stage()).collect()
    }

    #[test]
    fn a_newcomer_takes_the_oldest_unproven_slot_of_the_busiest_address() {
        let slots = Arc::new(ConnSlots::new(3, 100));
        let a: Vec<ConnSlot> = (0..5)
            .map(|_| slots.register(ip("127.0.0.1")).expect("held"))
            .collect();
        // Three served, two waiting: the same address never evicts its own.
        assert_eq!(slots.counts(), (3, 2));
        a[1].prove();
        let b = slots.register(ip("127.0.0.2")).expect("held");
        // 127.0.0.1 serves two unproven and one proven: its oldest unproven one (the
        // first) gives way; the proven one is kept.
        assert_eq!(b.stage(), Some(Stage::Unproven));
        assert_eq!(
            stages(&a.iter().collect::<Vec<_>>()),
            vec![
                None,
                Some(Stage::Proven),
                Some(Stage::Unproven),
                Some(Stage::Waiting),
                Some(Stage::Waiting)
            ]
        );
        // A second newcomer from 127.0.0.2: 127.0.0.1 has one unproven, not two more
        // than 127.0.0.2's one: it waits.
        let b2 = slots.register(ip("127.0.0.2")).expect("held");
        assert_eq!(b2.stage(), Some(Stage::Waiting));
        // A freed slot goes to the waiting connection of the address with the fewest served.
        drop(a);
        assert_eq!(b2.stage(), Some(Stage::Unproven));
    }

    #[test]
    fn a_lowered_limit_admits_nobody_until_enough_close() {
        let slots = Arc::new(ConnSlots::new(4, 100));
        let mut held: Vec<ConnSlot> = (0..3)
            .map(|_| slots.register(ip("127.0.0.1")).expect("held"))
            .collect();
        slots.set_limit(2);
        held.pop();
        let new = slots.register(ip("127.0.0.1")).expect("held");
        assert_eq!(new.stage(), Some(Stage::Waiting));
        held.pop();
        assert_eq!(new.stage(), Some(Stage::Unproven));
        slots.set_limit(1);
        let waiting = slots.register(ip("127.0.0.1")).expect("held");
        slots.set_limit(10);
        assert_eq!(waiting.stage(), Some(Stage::Unproven));
    }

    #[test]
    fn waiting_and_held_connections_are_bounded() {
        let slots = Arc::new(ConnSlots::new(2, 6));
        let a: Vec<ConnSlot> = (0..10)
            .map(|_| slots.register(ip("::ffff:127.0.0.1")).expect("held"))
            .collect();
        // Two served, at most `limit` (two) waiting for one address.
        assert_eq!(slots.counts(), (2, 2));
        assert_eq!(a.iter().filter(|s| s.stage().is_some()).count(), 4);
        // Other addresses fill the capacity (six); beyond it, the busiest address's oldest
        // waiting connection gives way.
        let others: Vec<ConnSlot> = (1..=4)
            .map(|i| slots.register(ip(&format!("10.0.0.{i}"))).expect("held"))
            .collect();
        let (open, waiting) = slots.counts();
        assert!(open + waiting <= 6, "{open} + {waiting}");
        // 10.0.0.1 took the slot of 127.0.0.1's oldest unproven one (IPv4-mapped counts
        // as IPv4).
        assert_eq!(others[0].stage(), Some(Stage::Unproven));
        // Everything proven and the capacity full: a newcomer is refused.
        let full = Arc::new(ConnSlots::new(2, 2));
        let p: Vec<ConnSlot> = (0..2)
            .map(|_| full.register(ip("192.0.2.1")).expect("held"))
            .collect();
        p.iter().for_each(ConnSlot::prove);
        assert!(full.register(ip("192.0.2.2")).is_none());
    }

    #[test]
    fn ipv6_peers_count_per_64() {
        assert_eq!(peer_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(peer_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn client_input_is_echoed_as_printable_ascii() {
        assert_eq!(
            crate::agent::printable("<script>\u{1b}[31m\u{e9}\"x"),
            "<script>\\u{1b}[31m\\u{e9}\\\"x"
        );
        let long = "a".repeat(100);
        assert_eq!(
            crate::agent::printable(&long),
            format!("{}...", "a".repeat(64))
        );
    }

    #[test]
    fn error_pages_are_plain_text() {
        let r = plain(
            StatusCode::BAD_REQUEST,
            format!("400 {}\n", crate::agent::printable("x")),
        );
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"text/plain; charset=utf-8"[..])
        );
    }
}
