//! The network edge configured by `--web.config.file` (exporter-toolkit's web-config format):
//! TLS with rustls, client certificates, HTTP/2 by ALPN, response headers, basic auth and the
//! request rate limit.
//!
//! - [`config`]: the file's shape and its validation; [`tls`]: the rustls configuration;
//!   [`auth`]: basic auth and rate limits.
//! - Start-up (as root, step 1) loads the whole file once to refuse a bad one with exit status
//!   2, and names the directories Landlock must leave readable ([`grants`]). After the sandbox,
//!   [`Edge::start`] loads it again as the agent's user: what it reads then is what a rotation
//!   will read.
//! - Rotation: on SIGHUP ([`Edge::reload`]) and when the web config or a file it names
//!   changes (`stat`: inode, size, mtime; checked on a new connection at most once a second,
//!   [`Edge::refresh_if_changed`]). A file renamed over the old one is a new inode: noticed.
//!   A broken rotation keeps the running configuration, is logged and counted
//!   (`monitoring_agent_tls_reload_failures_total`). Whether TLS is on is fixed at start-up.

pub mod auth;
pub mod config;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

pub use config::WebConfigError;

use crate::config::ConfigAccess;
use crate::daemon::logging::client_event;
use crate::exposition::MetricFamily;

/// A web-config file, read and checked: everything a request needs.
pub struct WebConfig {
    /// `None`: plain HTTP (no TLS field set, as exporter-toolkit).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub http2: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub users: Option<Arc<auth::Users>>,
    pub rate_limit: Option<auth::Bucket>,
    /// The files read: the web config and the certificate, key and CA files it names.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("users", &self.users.is_some())
            .field("files", &self.files)
            .finish()
    }
}

/// The file's directory, for relative paths (Go's `filepath.Dir`).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads and parses the file, without reading the files it names.
fn parse(path: &Path) -> Result<config::File, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed: Option<config::File> =
        serde_norway::from_str(&text).map_err(|e| WebConfigError::Parse {
            path: path.to_path_buf(),
            msg: format!("YAML error: {}", e.to_string().replace('\n', " ")),
        })?;
    Ok(parsed.unwrap_or_default())
}

/// Loads and checks the whole file (exporter-toolkit's `Validate`, in its order): the YAML,
/// the names of suites, curves and versions, the headers, the users' bcrypt hashes, then the
/// TLS material (certificate, key matching it, CA).
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let invalid = |(field, reason): (String, String)| WebConfigError::Invalid {
        path: path.to_path_buf(),
        field,
        reason,
    };
    let f = parse(path)?;
    let dir = dir_of(path);
    let tls_file = f.tls_server_config.unwrap_or_default();
    // The names first (Go refuses them while parsing).
    if tls_file.is_enabled() {
        tls::protocol(&tls_file).map_err(invalid)?;
    }
    let http = f.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let header_map = http.headers.unwrap_or_default();
    config::check_headers(&header_map).map_err(invalid)?;
    let mut headers = Vec::new();
    for (k, v) in &header_map {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| invalid((format!("http_server_config.headers.{k}"), e.to_string())))?;
        let value = HeaderValue::from_str(&v.0)
            .map_err(|e| invalid((format!("http_server_config.headers.{k}"), e.to_string())))?;
        headers.push((name, value));
    }
    let users = match f.basic_auth_users {
        Some(map) if !map.is_empty() => {
            let mut hashes = BTreeMap::new();
            for (user, hash) in map {
                auth::hash_cost(&hash.0)
                    .map_err(|why| invalid((format!("basic_auth_users.{user}"), why)))?;
                hashes.insert(user, hash.0);
            }
            Some(Arc::new(auth::Users::new(hashes)))
        }
        _ => None,
    };
    let rate = f.rate_limit.unwrap_or_default();
    let interval = rate.interval.unwrap_or_default().0;
    let burst = rate.burst.unwrap_or(0);
    let burst = u32::try_from(burst).map_err(|_| {
        invalid((
            "rate_limit.burst".into(),
            format!("invalid value {burst}: expected a whole number from 0"),
        ))
    })?;
    let rate_limit = (!interval.is_zero()).then(|| auth::Bucket::new(interval, burst));

    let mut files = vec![path.to_path_buf()];
    let tls = if tls_file.is_enabled() {
        let cfg = tls::server_config(&tls_file, &dir, http2).map_err(invalid)?;
        for f in [
            tls_file.cert_file(),
            tls_file.key_file(),
            tls_file.client_ca_file(),
        ]
        .into_iter()
        .flatten()
        {
            files.push(config::resolve(&dir, f));
        }
        Some(Arc::new(cfg))
    } else {
        None
    };
    Ok(WebConfig {
        tls,
        http2,
        headers,
        users,
        rate_limit,
        files,
    })
}

/// What Landlock must leave readable for the agent's user to read this web config and rotate
/// its certificates: each file's directory, or the file alone where the directory is shared
/// with the rest of the system ([`ConfigAccess`]: a file there replaced by rename stays
/// unreadable until a restart).
pub fn grants(config: &WebConfig) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    for f in &config.files {
        let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
        let g = ConfigAccess::of(&abs).granted(&abs);
        if !v.contains(&g) {
            v.push(g);
        }
    }
    v
}

/// Warnings for files whose directory is shared (rotation by rename cannot work there).
pub fn warnings(config: &WebConfig) -> Vec<String> {
    config
        .files
        .iter()
        .filter_map(|f| {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            ConfigAccess::of(&abs).warning(&abs)
        })
        .collect()
}

/// A file's identity and state, to notice a change cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, u64, i64, i64)>);

fn stamp(path: &Path) -> Stamp {
    Stamp(
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())),
    )
}

/// The web config in force at runtime, and its rotation.
pub struct Edge {
    path: PathBuf,
    tls_on: bool,
    current: RwLock<Arc<WebConfig>>,
    /// When the files were last looked at, and what they were then.
    seen: Mutex<(Instant, Vec<(PathBuf, Stamp)>)>,
    guard: auth::Guard,
    reload_failures: AtomicU64,
    reload_ok: AtomicBool,
    reloads: AtomicU64,
}

/// How often [`Edge::refresh_if_changed`] looks at the files at most.
pub const CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Edge {
    /// Loads the web config (after the sandbox: as the agent's user).
    pub fn start(path: &Path) -> Result<Edge, WebConfigError> {
        let cfg = load(path)?;
        let seen = cfg.files.iter().map(|f| (f.clone(), stamp(f))).collect();
        Ok(Edge {
            path: path.to_path_buf(),
            tls_on: cfg.tls.is_some(),
            current: RwLock::new(Arc::new(cfg)),
            seen: Mutex::new((Instant::now(), seen)),
            guard: auth::Guard::default(),
            reload_failures: AtomicU64::new(0),
            reload_ok: AtomicBool::new(true),
            reloads: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether connections are TLS (fixed at start-up).
    pub fn tls(&self) -> bool {
        self.tls_on
    }

    pub fn current(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the web config and its files; on failure keeps the running one, logs why and
    /// counts it. `why`: what triggered it, for the log.
    pub fn reload(&self, why: &str) -> bool {
        let snapshot: Vec<(PathBuf, Stamp)> = {
            let cur = self.current();
            cur.files.iter().map(|f| (f.clone(), stamp(f))).collect()
        };
        let result = load(&self.path).and_then(|cfg| {
            if cfg.tls.is_some() != self.tls_on {
                Err(WebConfigError::Invalid {
                    path: self.path.clone(),
                    field: "tls_server_config".into(),
                    reason: format!(
                        "turning TLS {} needs a restart",
                        if self.tls_on { "off" } else { "on" }
                    ),
                })
            } else {
                Ok(cfg)
            }
        });
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(cfg) => {
                seen.1 = cfg.files.iter().map(|f| (f.clone(), stamp(f))).collect();
                let cfg = Arc::new(cfg);
                match self.current.write() {
                    Ok(mut g) => *g = cfg,
                    Err(p) => *p.into_inner() = cfg,
                }
                self.reload_ok.store(true, Ordering::Relaxed);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "{why}: web config {} reloaded{}",
                    self.path.display(),
                    if self.tls_on {
                        " (new TLS connections use the new certificate)"
                    } else {
                        ""
                    }
                );
                true
            }
            Err(e) => {
                // Remember what was seen, so a broken file is reported once per change.
                seen.1 = snapshot;
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                self.reload_ok.store(false, Ordering::Relaxed);
                log::error!("{why}: web config not reloaded, keeping the running one: {e}");
                false
            }
        }
    }

    /// On a new connection: looks at the files at most once a second, and reloads when one
    /// changed (including one renamed over the old: a new inode).
    pub fn refresh_if_changed(&self) {
        let changed = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.0.elapsed() < CHANGE_CHECK_INTERVAL {
                return;
            }
            seen.0 = Instant::now();
            seen.1.iter().any(|(f, s)| stamp(f) != *s)
        };
        if changed {
            self.reload("files changed");
        }
    }

    /// The edge's own metrics.
    pub fn families(&self) -> Vec<MetricFamily> {
        vec![
            MetricFamily::counter(
                "monitoring_agent_tls_reload_failures_total",
                "Reloads of the web config (certificate rotations) that failed and kept the running configuration.",
            )
            .with(&[], self.reload_failures.load(Ordering::Relaxed) as f64),
            MetricFamily::gauge(
                "monitoring_agent_web_config_last_reload_successful",
                "Whether the last reload of the web config succeeded.",
            )
            .with(&[], if self.reload_ok.load(Ordering::Relaxed) { 1.0 } else { 0.0 }),
            MetricFamily::counter(
                "monitoring_agent_web_config_reloads_total",
                "Successful reloads of the web config since start-up.",
            )
            .with(&[], self.reloads.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_basic_auth_bcrypt_total",
                "bcrypt comparisons run for basic auth (cached successes run none).",
            )
            .with(&[], self.guard.bcrypt_runs.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_basic_auth_throttled_total",
                "Basic-auth attempts refused (429) because their peer failed too often.",
            )
            .with(&[], self.guard.throttled.load(Ordering::Relaxed) as f64),
        ]
    }

    /// The request hook: the rate limit, basic auth, then `next`; the configured headers on
    /// every answer.
    pub async fn serve<F, Fut>(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
        next: F,
    ) -> Response<Full<Bytes>>
    where
        F: FnOnce(Request<Incoming>) -> Fut,
        Fut: std::future::Future<Output = Response<Full<Bytes>>>,
    {
        let cfg = self.current();
        let mut resp = 'answer: {
            if let Some(bucket) = &cfg.rate_limit {
                if !bucket.allow() {
                    break 'answer refusal(
                        StatusCode::TOO_MANY_REQUESTS,
                        "429 Too Many Requests\n",
                    );
                }
            }
            if let Some(users) = &cfg.users {
                let authz = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes());
                match self.guard.check(users, peer.ip(), authz).await {
                    auth::Verdict::Ok => {}
                    auth::Verdict::Denied => {
                        let mut r = refusal(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
                        r.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                        break 'answer r;
                    }
                    auth::Verdict::Throttled => {
                        let mut r = refusal(
                            StatusCode::TOO_MANY_REQUESTS,
                            "429 Too Many Requests: too many failed logins\n",
                        );
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                        break 'answer r;
                    }
                }
            }
            next(req).await
        };
        for (k, v) in &cfg.headers {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
        resp
    }
}

fn refusal(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Limits the TLS connection's HTTP server takes from the agent's web settings.
pub struct ConnParams {
    /// Also the TLS handshake's deadline: a connection that does not finish its handshake in
    /// time is closed.
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
}

/// Serves one accepted connection over TLS: the handshake (bounded by the header timeout),
/// then HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.
pub async fn serve_tls<IO, S>(
    edge: &Edge,
    io: IO,
    service: S,
    params: ConnParams,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    edge.refresh_if_changed();
    let Some(cfg) = edge.current().tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let stream = tokio::select! {
        r = tokio::time::timeout(params.header_read_timeout, acceptor.accept(io)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                client_event(log::Level::Debug, format_args!("TLS handshake with {peer}: {e}"));
                return;
            }
            Err(_) => {
                client_event(
                    log::Level::Debug,
                    format_args!("TLS handshake with {peer}: not finished in time; closed"),
                );
                return;
            }
        },
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(params.header_read_timeout)
        .max_buf_size(params.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(params.max_header_bytes as u32)
        .max_concurrent_streams(16)
        .keep_alive_interval(None);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        client_event(
            log::Level::Debug,
            format_args!("TLS connection from {peer}: {e}"),
        );
    }
}
