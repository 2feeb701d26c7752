//! systemd's notification protocol (`sd_notify`): `READY=1`, `RELOADING=1`, `STOPPING=1`,
//! `STATUS=`, `WATCHDOG=1`. The socket named by `$NOTIFY_SOCKET` is connected once at start-up
//! (step 3), before the sandbox forbids new sockets, and reused for every message (the
//! `sd-notify` crate opens a new socket per call, which the sandbox would refuse).
//!
//! Socket activation (`LISTEN_FDS`, `LISTEN_PID`) lives here too: it is the other half of the
//! same protocol.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Why the notification socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("socket activation: {0}")]
    Activation(String),
}

/// A connected notification socket, or nothing when not run by systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// No systemd: every message is dropped.
    pub fn none() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// Connects `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and reads
    /// `$WATCHDOG_USEC` (honoured only when `$WATCHDOG_PID` is unset or ours). The variables
    /// are removed from the environment so nothing else reuses them.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier::none());
        };
        let path = path.to_string_lossy().into_owned();
        let connect_err = |source| NotifyError::Connect {
            path: path.clone(),
            source,
        };
        let socket = UnixDatagram::unbound().map_err(connect_err)?;
        let addr = if let Some(name) = path.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())
        } else {
            SocketAddr::from_pathname(&path)
        }
        .map_err(connect_err)?;
        socket.connect_addr(&addr).map_err(connect_err)?;

        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|us| *us > 0 && ours)
            .map(Duration::from_micros);
        // Still single-threaded at start-up: changing the environment races with nothing.
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
        Ok(Notifier {
            socket: Some(socket),
            watchdog,
        })
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    /// advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// Sends one message (newline-separated assignments). Errors are logged, not fatal:
    /// systemd going away must not stop the agent.
    pub fn send(&self, msg: &str) {
        if let Some(s) = &self.socket {
            if let Err(e) = s.send(msg.as_bytes()) {
                log::warn!("sd_notify: {e}");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading configuration",
            monotonic_usec()
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// `CLOCK_MONOTONIC` in microseconds, as `RELOADING=1` wants it.
fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000,
        Err(_) => 0,
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Takes the listening sockets systemd passed (`$LISTEN_FDS` for our `$LISTEN_PID`), checks
/// that each is a listening TCP socket, and makes them close-on-exec and non-blocking.
pub fn listen_fds() -> Result<Vec<std::net::TcpListener>, NotifyError> {
    let pid = std::env::var("LISTEN_PID").map_err(|_| {
        NotifyError::Activation(
            "--web.systemd-socket given but LISTEN_PID is not set: not started by a .socket unit"
                .into(),
        )
    })?;
    if pid.trim() != std::process::id().to_string() {
        return Err(NotifyError::Activation(format!(
            "LISTEN_PID is {pid}, not this process"
        )));
    }
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0 && *n < 64)
        .ok_or_else(|| NotifyError::Activation("LISTEN_FDS is unset or invalid".into()))?;
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut out = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + n {
        use nix::sys::socket::{getsockopt, sockopt};
        // SAFETY: systemd passed us this descriptor and nothing else in the process owns it;
        // we take it over exactly once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let listening = getsockopt(&owned, sockopt::AcceptConn).unwrap_or(false);
        let stream = getsockopt(&owned, sockopt::SockType)
            .is_ok_and(|t| t == nix::sys::socket::SockType::Stream);
        if !listening || !stream {
            return Err(NotifyError::Activation(format!(
                "descriptor {fd} is not a listening stream socket"
            )));
        }
        nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| NotifyError::Activation(format!("descriptor {fd}: {e}")))?;
        let l = std::net::TcpListener::from(owned);
        l.set_nonblocking(true)
            .map_err(|e| NotifyError::Activation(format!("descriptor {fd}: {e}")))?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconnected_notifier_is_silent() {
        let n = Notifier::none();
        assert!(!n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x");
    }

    #[test]
    fn messages_reach_the_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let client = UnixDatagram::unbound().expect("socket");
        client.connect(&path).expect("connect");
        let n = Notifier {
            socket: Some(client),
            watchdog: Some(Duration::from_secs(10)),
        };
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
        n.ready("serving");
        n.reloading();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");
        let len = server.recv(&mut buf).expect("recv");
        let text = std::str::from_utf8(&buf[..len]).expect("utf8");
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
    }
}
