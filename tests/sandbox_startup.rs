//! Steps 5-9 of the startup sequence in one forked child, as root: bind, drop privileges,
//! Landlock + seccomp in enforce mode, then a multi-threaded tokio runtime serving one HTTP
//! request with hyper, reading /proc on the blocking pool, sleeping on a timer and handling a
//! signal. The child must not die of SIGSYS, and every thread must show the hardened status.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use monitoring_agent::privilege::{self, Target};
use monitoring_agent::sandbox::{self, verify, Mode, Spec};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

fn say(msg: &str) {
    // SAFETY: writing a valid, live buffer of the given length to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

async fn handle(
    _req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let stat = tokio::task::spawn_blocking(|| std::fs::read_to_string("/proc/stat"))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let body = format!("proc_stat_bytes {}\n", stat.len());
    Ok(hyper::Response::new(http_body_util::Full::new(
        bytes::Bytes::from(body),
    )))
}

fn serve(listener: TcpListener) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("signal: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|e| format!("from_std: {e}"))?;
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, hyper::service::service_fn(handle))
            .await
            .map_err(|e| format!("serve: {e}"))?;
        // SIGHUP to ourselves (raise → tgkill), received through tokio's signal driver.
        // SAFETY: raise with a valid signal number.
        unsafe { libc::raise(libc::SIGHUP) };
        tokio::time::timeout(Duration::from_secs(5), hup.recv())
            .await
            .map_err(|_| "SIGHUP not received".to_string())?;
        Ok::<(), String>(())
    })?;
    // Every thread of the process, runtime threads included.
    let threads = verify::threads(Path::new("/proc"), std::process::id() as i32)
        .map_err(|e| e.to_string())?;
    if threads.len() < 3 {
        return Err(format!("expected runtime threads, saw {}", threads.len()));
    }
    for v in verify::judge(&threads) {
        if !v.ok {
            return Err(format!("verify {}: {}", v.layer, v.detail));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

#[test]
fn hardened_runtime_serves_a_request() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root (it switches users)"
    );
    // Step 5: the listener exists before the fork, so the parent can connect at once.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();

    // SAFETY: the child runs the startup steps then `_exit`s; glibc resets its malloc locks in
    // the child after fork, and the child avoids std's stdio locks (see `say`).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let run = || -> Result<(), String> {
                let target = Target {
                    uid: 65533,
                    gid: 65533,
                    name: None,
                };
                let report =
                    privilege::drop_privileges(Some(&target), privilege::Keep::NetBindService)
                        .map_err(|e| e.to_string())?;
                let spec = Spec {
                    read_only: vec![PathBuf::from("/proc"), PathBuf::from("/sys")],
                    ..Spec::default()
                };
                let enforcement =
                    sandbox::apply(&spec, Mode::Enforce, &report).map_err(|e| e.to_string())?;
                if !enforcement.complete() {
                    return Err(format!("not complete: {enforcement:?}"));
                }
                serve(listener)
            };
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                Ok(Ok(())) => 0,
                Ok(Err(msg)) => {
                    say(&format!("child: {msg}\n"));
                    1
                }
                Err(_) => 101,
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(listener);
            let mut response = String::new();
            let client = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                s.read_to_string(&mut response)
            });
            let status = waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, WaitStatus::Exited(_, 0)),
                "child ended with {status:?} (SIGSYS means the seccomp policy lacks a system \
                 call: run it under strace -f)"
            );
            client.expect("HTTP exchange");
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(response.contains("proc_stat_bytes "), "{response}");
            assert!(!response.contains("proc_stat_bytes 0\n"), "{response}");
        }
    }
}
