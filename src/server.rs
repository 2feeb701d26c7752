//! The HTTP side: listeners bound before the sandbox (step 5), and the hyper 1 server that
//! serves them (routes, limits, timeouts, graceful stop).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdListener};
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

/// Binds one configured address (close-on-exec, `SO_REUSEADDR` as std sets them,
/// non-blocking for tokio). `:PORT` binds the IPv6 wildcard (dual-stack), or the IPv4 one
/// where the host has no IPv6.
pub fn bind(addr: &ListenAddr) -> Result<StdListener, BindError> {
    let err = |a: String| move |source| BindError { addr: a, source };
    let listener = match addr {
        ListenAddr::Addr(a) => StdListener::bind(a).map_err(err(a.to_string()))?,
        ListenAddr::Any(port) => {
            match StdListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port))) {
                Ok(l) => l,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    ) =>
                {
                    StdListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port)))
                        .map_err(err(addr.to_string()))?
                }
                Err(e) => return Err(err(addr.to_string())(e)),
            }
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(err(addr.to_string()))?;
    Ok(listener)
}

/// The cap on open connections (`web.max_connections`), which a reload may raise or lower.
/// Lowered below the number of connections open, it lets no new one in until enough have
/// closed (a semaphore could only forget its free permits).
pub struct ConnSlots {
    /// (open, limit)
    state: std::sync::Mutex<(u32, u32)>,
    freed: tokio::sync::Notify,
}

/// One open connection's slot, given back when dropped.
pub struct ConnSlot(Arc<ConnSlots>);

impl ConnSlots {
    pub fn new(limit: u32) -> ConnSlots {
        ConnSlots {
            state: std::sync::Mutex::new((0, limit)),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (u32, u32)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer connections than the limit are open, and takes a slot.
    pub async fn acquire(self: &Arc<Self>) -> ConnSlot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.state();
                if s.0 < s.1 {
                    s.0 += 1;
                    return ConnSlot(self.clone());
                }
            }
            freed.await;
        }
    }

    /// Sets the limit (SIGHUP).
    pub fn set_limit(&self, limit: u32) {
        self.state().1 = limit;
        self.freed.notify_waiters();
    }
}

impl ConnSlot {
    /// Waits until this slot is within the limit: a slot taken before a reload lowered the
    /// limit (the accept loop takes one before it waits for a connection) must not let a
    /// connection past the new cap.
    pub async fn within_limit(&self) {
        loop {
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let s = self.0.state();
                if s.0 <= s.1 {
                    return;
                }
            }
            freed.await;
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.state().0 -= 1;
        self.0.freed.notify_waiters();
    }
}

/// Shared by the accept loops of every listener.
pub struct ConnLimits {
    /// Caps open connections; further ones wait in the kernel's accept queue.
    pub slots: Arc<ConnSlots>,
    /// Cloned into every connection task; shutdown waits until all clones are gone.
    pub tracker: mpsc::Sender<()>,
    /// Flips to true at shutdown: connections finish their request and close.
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections on one listener until `stop` fires or the agent shuts down.
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
        let permit = tokio::select! {
            p = limits.slots.acquire() => p,
            _ = stop.changed() => return,
            _ = shutdown.changed() => return,
        };
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
        let agent = agent.clone();
        let tracker = limits.tracker.clone();
        let conn_shutdown = limits.shutdown.clone();
        tokio::spawn(async move {
            let mut stopping = conn_shutdown.clone();
            tokio::select! {
                () = permit.within_limit() => {
                    serve_connection(agent, stream, peer, conn_shutdown).await;
                }
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {}
            }
            drop(permit);
            drop(tracker);
        });
    }
}

async fn serve_connection(
    agent: Arc<Agent>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let web = agent.web();
    let service_agent = agent.clone();
    let service = hyper::service::service_fn(move |req| {
        let agent = service_agent.clone();
        async move { Ok::<_, Infallible>(edge_then_handle(agent, peer, req).await) }
    });
    // `--web.config.file` with TLS: the handshake (bounded by the header timeout), then
    // HTTP/1.1 or HTTP/2 (src/web/).
    if let Some(edge) = agent.edge().filter(|e| e.tls()) {
        let params = crate::web::ConnParams {
            header_read_timeout: web.header_read_timeout,
            max_header_bytes: web.max_header_bytes,
        };
        let io = IdleTimeout::new(stream, web.idle_timeout);
        crate::web::serve_tls(edge, io, service, params, peer, shutdown).await;
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

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
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
            let mut r = Response::new(Full::new(Bytes::from(format!("400 {msg}\n"))));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    // Prometheus says how long it will wait; collectors get a little less.
    let scrape_timeout = header_str(HeaderName::from_static(
        "x-prometheus-scrape-timeout-seconds",
    ))
    .and_then(|v| v.trim().parse::<f64>().ok())
    .filter(|v| v.is_finite() && *v > 0.0)
    .map(Duration::from_secs_f64);
    let body = agent.scrape(format, &selection, scrape_timeout).await;
    let mut resp = if gzip {
        match exposition::gzip(body.as_bytes()) {
            Ok(z) => {
                let mut r = Response::new(Full::new(Bytes::from(z)));
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(e) => {
                log::warn!("gzip failed, sending uncompressed: {e}");
                Response::new(Full::new(Bytes::from(body)))
            }
        }
    } else {
        Response::new(Full::new(Bytes::from(body)))
    };
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

/// The `collect[]` and `exclude[]` values of a query string.
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
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
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
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
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
        assert_eq!(collector_params(""), (vec![], vec![]));
    }
}
