//! TLS helpers for the web-config tests: a throw-away PKI made with the `openssl` command
//! (RSA keys, as exporter-toolkit's test certificates, so the ECDHE_RSA suites apply), and a
//! rustls client whose versions, suites, curves and client certificate a test chooses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{find_program, parse_response, Response, WAIT};

fn openssl(args: &[&str], cwd: &Path) {
    let bin = find_program("openssl").unwrap_or_else(|| {
        panic!("the `openssl` command was not found: install the Debian package `openssl` (scripts/test.sh does)")
    });
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificates of exporter-toolkit's `web/testdata`, made afresh in `dir`:
/// - `tls-ca-chain.pem` / `ca.key`: the CA;
/// - `server.crt` / `server.key`: signed by it, for `localhost` and `127.0.0.1`;
/// - `client_selfsigned.pem/.key`: a self-signed client (also its own CA, as there);
/// - `client2_selfsigned.pem/.key`: a self-signed client with SANs `DNS:test3`,
///   `DNS:test4`, `email:test@example.com`, `IP:127.0.0.2`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "tls-ca-chain.pem",
                "-days",
                "3",
                "-subj",
                "/CN=monitoring-agent test CA",
            ],
            dir,
        );
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.server_cert("server", "server");
        for (name, san) in [
            ("client_selfsigned", "DNS:client"),
            (
                "client2_selfsigned",
                "DNS:test3,DNS:test4,email:test@example.com,IP:127.0.0.2",
            ),
        ] {
            openssl(
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "3",
                    "-subj",
                    &format!("/CN={name}"),
                    "-addext",
                    &format!("subjectAltName={san}"),
                    "-addext",
                    "extendedKeyUsage=clientAuth",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                ],
                dir,
            );
        }
        pki
    }

    /// A server certificate and key signed by the CA: `<name>.crt`, `<name>.key`, with the
    /// common name `cn`.
    pub fn server_cert(&self, name: &str, cn: &str) {
        self.signed(
            name,
            &format!("{name}.crt"),
            cn,
            "DNS:localhost,IP:127.0.0.1",
            "serverAuth",
        );
    }

    /// A client certificate signed by the CA: `<name>.pem`, `<name>.key`.
    pub fn client_cert(&self, name: &str) {
        self.signed(
            name,
            &format!("{name}.pem"),
            name,
            "DNS:prometheus",
            "clientAuth",
        );
    }

    /// A leaf certificate signed by the CA (`out`) with its new key (`<name>.key`).
    fn signed(&self, name: &str, out: &str, cn: &str, san: &str, usage: &str) {
        openssl(
            &[
                "req",
                "-x509",
                "-CA",
                "tls-ca-chain.pem",
                "-CAkey",
                "ca.key",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                out,
                "-days",
                "3",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                &format!("subjectAltName={san}"),
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                &format!("extendedKeyUsage={usage}"),
            ],
            &self.dir,
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What a TLS client offers.
#[derive(Default, Clone)]
pub struct Client {
    /// The CA to trust (PEM file); default: the test CA in the `Pki` directory.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM files).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Only TLS 1.2 (rustls speaks 1.2 and 1.3).
    pub tls12_only: bool,
    /// Cipher suites offered, in order, by rustls' names (default: all).
    pub suites: Vec<&'static str>,
    /// Key-exchange groups offered, by rustls' names (`X25519`, `secp256r1`, `secp384r1`).
    pub groups: Vec<&'static str>,
    /// ALPN protocols offered.
    pub alpn: Vec<&'static str>,
    /// The local address to connect from (default: the kernel's choice).
    pub from: Option<std::net::Ipv4Addr>,
}

/// What the handshake chose, and the answer.
pub struct TlsResponse {
    pub response: Response,
    pub suite: String,
    pub alpn: Option<String>,
    /// The server certificate's subject common name.
    pub server_cn: String,
}

impl Client {
    pub fn with_ca(pki: &Pki) -> Client {
        Client {
            ca: Some(pki.path("tls-ca-chain.pem")),
            ..Client::default()
        }
    }

    fn config(&self) -> rustls::ClientConfig {
        let base = rustls::crypto::ring::default_provider();
        let mut provider = base.clone();
        if !self.suites.is_empty() {
            provider.cipher_suites = self
                .suites
                .iter()
                .map(|n| {
                    *base
                        .cipher_suites
                        .iter()
                        .find(|s| s.suite().as_str() == Some(n))
                        .unwrap_or_else(|| panic!("rustls has no suite {n}"))
                })
                .collect();
        }
        if !self.groups.is_empty() {
            provider.kx_groups = self
                .groups
                .iter()
                .map(|n| {
                    *base
                        .kx_groups
                        .iter()
                        .find(|g| format!("{:?}", g.name()) == *n)
                        .unwrap_or_else(|| panic!("rustls has no group {n}"))
                })
                .collect();
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut roots = rustls::RootCertStore::empty();
        let ca = self.ca.as_ref().expect("a CA to trust");
        for c in CertificateDer::pem_file_iter(ca).expect("read CA") {
            roots.add(c.expect("CA PEM")).expect("add CA");
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut cfg = match &self.cert {
            Some((c, k)) => b
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(c)
                        .expect("read client cert")
                        .collect::<Result<Vec<_>, _>>()
                        .expect("client cert PEM"),
                    PrivateKeyDer::from_pem_file(k).expect("client key"),
                )
                .expect("client auth cert"),
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        cfg
    }

    /// One HTTP/1.1 request over TLS (`Connection: close`), read to EOF. `Err`: the handshake
    /// or the exchange failed (its message names why).
    pub fn get(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<TlsResponse, String> {
        let mut conn =
            rustls::ClientConnection::new(Arc::new(self.config()), ServerName::from(addr.ip()))
                .map_err(|e| e.to_string())?;
        let mut sock = match self.from {
            None => TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| format!("connect {addr}: {e}"))?,
            Some(from) => {
                use socket2::{Domain, Socket, Type};
                let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)
                    .map_err(|e| format!("socket: {e}"))?;
                s.bind(&std::net::SocketAddr::from((from, 0)).into())
                    .map_err(|e| format!("bind {from}: {e}"))?;
                s.connect_timeout(&addr.into(), Duration::from_secs(5))
                    .map_err(|e| format!("connect {addr} from {from}: {e}"))?;
                s.into()
            }
        };
        sock.set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let server_cn = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| subject_cn(c.as_ref()))
            .unwrap_or_default();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tls.write_all(req.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // The server may close without close_notify after `Connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(format!("read: {e} (got {} bytes)", raw.len())),
        }
        Ok(TlsResponse {
            response: parse_response(&raw, false)?,
            suite,
            alpn,
            server_cn,
        })
    }

    /// Polls until a TLS request for `/` answers (any status), or fails after [`WAIT`].
    pub fn wait_serving(&self, addr: SocketAddr, diagnostics: impl Fn() -> String) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.get(addr, "/", &[]) {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no TLS answer from {addr} within {WAIT:?}: {last}\n{}",
            diagnostics()
        );
    }
}

/// The subject CN of a DER certificate (enough for tests: the UTF8String/PrintableString
/// after the commonName OID 2.5.4.3, last occurrence = the subject, which follows the issuer).
pub fn subject_cn(der: &[u8]) -> String {
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let pos = der.windows(5).rposition(|w| w == oid);
    match pos {
        Some(p) if p + 7 <= der.len() => {
            let len = der[p + 6] as usize;
            String::from_utf8_lossy(&der[p + 7..(p + 7 + len).min(der.len())]).into_owned()
        }
        _ => String::new(),
    }
}

/// Basic-auth header value.
pub fn basic(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let b = raw.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}
