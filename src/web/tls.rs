//! `tls_server_config` to a rustls `ServerConfig` (ring provider): the certificate and key
//! (checked to match), the five client-auth policies of Go's `crypto/tls`, the client CA,
//! `client_allowed_sans`, protocol versions, TLS 1.2 cipher suites, curves, and the server's
//! cipher order.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use super::config::{resolve, CipherKind, TlsFile, CIPHERS, CURVES, VERSIONS};

/// A field and why it is refused.
pub type FieldError = (String, String);

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    (format!("tls_server_config.{field}"), reason.into())
}

/// Reads a file the web config names (as the agent's user once sandboxed).
fn read(field: &str, path: &Path) -> Result<Vec<u8>, FieldError> {
    std::fs::read(path).map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))
}

/// The checked client-auth policy (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: Option<&str>) -> Result<ClientAuth, FieldError> {
        Ok(match s.unwrap_or("") {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert": kept by exporter-toolkit for backwards compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(err(
                    "client_auth_type",
                    format!(
                        "invalid ClientAuth: {other:?} (expected NoClientCert, RequestClientCert, \
                         RequireAnyClientCert, VerifyClientCertIfGiven or \
                         RequireAndVerifyClientCert)"
                    ),
                ))
            }
        })
    }
}

/// What TLS 1.2 suites, curves and versions a `tls_server_config` selects, checked without
/// reading any file (the names are checked when the file is parsed, as Go does).
pub struct Protocol {
    pub provider: CryptoProvider,
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// Whether a cipher list was given and TLS 1.2 is allowed (Go's HTTP/2 check).
    pub tls12_suites_restricted: bool,
    pub tls12_suite_names: Vec<&'static str>,
    pub prefer_server_order: bool,
}

/// Checks the names: cipher suites, curves, versions.
pub fn protocol(c: &TlsFile) -> Result<Protocol, FieldError> {
    let base = rustls::crypto::ring::default_provider();
    let version = |field: &str, v: &Option<String>, default: u16| -> Result<u16, FieldError> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(name) => VERSIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    err(
                        field,
                        format!(
                            "unknown TLS version: {name} (expected TLS10, TLS11, TLS12 or TLS13)"
                        ),
                    )
                }),
        }
    };
    let min = version("min_version", &c.min_version, 0x0303)?;
    let max = version("max_version", &c.max_version, 0x0304)?;
    let mut versions = Vec::new();
    if min <= 0x0303 && max >= 0x0303 {
        versions.push(&rustls::version::TLS12);
    }
    if min <= 0x0304 && max >= 0x0304 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(err(
            "max_version",
            "no supported versions satisfy min_version and max_version (rustls speaks TLS12 \
             and TLS13 only)",
        ));
    }

    let mut suites = base.cipher_suites.clone();
    let mut names = Vec::new();
    let restricted = c.cipher_suites.as_ref().is_some_and(|l| !l.is_empty());
    if let Some(list) = c.cipher_suites.as_ref().filter(|l| !l.is_empty()) {
        let mut tls12 = Vec::new();
        for (i, name) in list.iter().enumerate() {
            let field = format!("cipher_suites[{i}]");
            match CIPHERS.iter().find(|(n, _)| n == name).map(|(_, k)| *k) {
                None => return Err(err(&field, format!("unknown cipher: {name}"))),
                Some(CipherKind::GoOnly) => {
                    return Err(err(
                        &field,
                        format!(
                            "cipher suite {name} is offered by Go's crypto/tls but not by \
                             rustls (CBC or RSA key exchange); remove it (supported TLS 1.2 \
                             suites: the ECDHE ones with AES-GCM or CHACHA20_POLY1305)"
                        ),
                    ))
                }
                Some(CipherKind::Tls13) => {}
                Some(CipherKind::Tls12(n)) => {
                    let suite = base
                        .cipher_suites
                        .iter()
                        .find(|s| s.suite().as_str() == Some(n))
                        .copied()
                        .ok_or_else(|| err(&field, format!("cipher {name} is not built in")))?;
                    if !tls12
                        .iter()
                        .any(|s: &rustls::SupportedCipherSuite| s.suite() == suite.suite())
                    {
                        tls12.push(suite);
                        names.push(n);
                    }
                }
            }
        }
        // TLS 1.3 suites are not configurable (Go ignores them too): all of them, first.
        let mut v: Vec<_> = base
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        if tls12.is_empty() && versions.len() == 1 && versions[0] == &rustls::version::TLS12 {
            return Err(err(
                "cipher_suites",
                "no TLS 1.2 cipher suite left, and max_version allows only TLS 1.2",
            ));
        }
        if tls12.is_empty() {
            versions.retain(|v| *v != &rustls::version::TLS12);
        }
        v.extend(tls12);
        suites = v;
    }

    let mut kx = base.kx_groups.clone();
    if let Some(list) = c.curve_preferences.as_ref().filter(|l| !l.is_empty()) {
        let mut chosen = Vec::new();
        for (i, name) in list.iter().enumerate() {
            let field = format!("curve_preferences[{i}]");
            match CURVES.iter().find(|(n, _)| n == name) {
                None => return Err(err(&field, format!("unknown curve: {name}"))),
                Some((_, None)) => {
                    return Err(err(
                        &field,
                        format!(
                            "curve {name} is offered by Go's crypto/tls but not by rustls' ring \
                             provider; use CurveP256, CurveP384 or X25519"
                        ),
                    ))
                }
                Some((_, Some(id))) => {
                    if let Some(g) = base
                        .kx_groups
                        .iter()
                        .find(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(id))
                    {
                        if !chosen
                            .iter()
                            .any(|c: &&dyn rustls::crypto::SupportedKxGroup| c.name() == g.name())
                        {
                            chosen.push(*g);
                        }
                    } else {
                        return Err(err(&field, format!("curve {name} is not built in")));
                    }
                }
            }
        }
        kx = chosen;
    }
    let provider = CryptoProvider {
        cipher_suites: suites,
        kx_groups: kx,
        ..base
    };
    Ok(Protocol {
        provider,
        tls12_suites_restricted: restricted && versions.contains(&&rustls::version::TLS12),
        versions,
        tls12_suite_names: names,
        prefer_server_order: c.prefer_server_cipher_suites.unwrap_or(true),
    })
}

/// Builds the server configuration, reading the certificate, key and CA (`dir`: the web-config
/// file's directory). `http2`: offer `h2` by ALPN.
pub fn server_config(c: &TlsFile, dir: &Path, http2: bool) -> Result<ServerConfig, FieldError> {
    if c.cert_file().is_none() && c.cert().is_none() {
        return Err(err("cert_file", "missing one of cert or cert_file"));
    }
    if c.key_file().is_none() && c.key().is_none() {
        return Err(err("key_file", "missing one of key or key_file"));
    }
    let proto = protocol(c)?;
    // Go's HTTP/2 server refuses a TLS 1.2 cipher list without its required suite.
    if http2
        && proto.tls12_suites_restricted
        && !proto.tls12_suite_names.iter().any(|n| {
            *n == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                || *n == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        })
    {
        return Err(err(
            "cipher_suites",
            "TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher \
             (need at least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or \
             TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), or set http_server_config.http2: false",
        ));
    }

    let (cert_pem, cert_field) = match c.cert_file() {
        Some(f) => (read("cert_file", &resolve(dir, f))?, "cert_file"),
        None => (c.cert().unwrap_or("").as_bytes().to_vec(), "cert"),
    };
    let (key_pem, key_field) = match c.key_file() {
        Some(f) => (read("key_file", &resolve(dir, f))?, "key_file"),
        None => (c.key().unwrap_or("").as_bytes().to_vec(), "key"),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                cert_field,
                format!("failed to load X509KeyPair: certificate PEM: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(err(
            cert_field,
            "failed to load X509KeyPair: no PEM CERTIFICATE block found",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        err(
            key_field,
            format!("failed to load X509KeyPair: private key PEM: {e}"),
        )
    })?;

    // exporter-toolkit's order: read the CA file, then the policy, then the CA's content.
    let ca = match (c.client_ca_file(), c.client_ca()) {
        (Some(f), _) => Some((read("client_ca_file", &resolve(dir, f))?, "client_ca_file")),
        (None, Some(text)) => Some((text.as_bytes().to_vec(), "client_ca")),
        (None, None) => None,
    };
    let auth = ClientAuth::parse(c.client_auth_type())?;
    if ca.is_some() && auth == ClientAuth::NoClientCert {
        return Err(err(
            "client_auth_type",
            "client CA's have been configured without a Client Auth Policy",
        ));
    }
    let mut pinned = Vec::new();
    let roots = if let Some((pem, field)) = ca {
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| err(field, format!("CA PEM: {e}")))?;
            pinned.push(cert.clone());
            store
                .add(cert)
                .map_err(|e| err(field, format!("CA certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(err(field, "no PEM CERTIFICATE block found"));
        }
        Some(Arc::new(store))
    } else {
        None
    };
    let provider = Arc::new(proto.provider);
    let algs = provider.signature_verification_algorithms;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match (auth, roots) {
        (ClientAuth::NoClientCert, _) => None,
        (ClientAuth::RequestClientCert, _) => Some(Arc::new(AnyClientCert {
            mandatory: false,
            algs,
        })),
        (ClientAuth::RequireAnyClientCert, _) => Some(Arc::new(AnyClientCert {
            mandatory: true,
            algs,
        })),
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(err(
                "client_ca_file",
                format!(
                    "client_auth_type {} needs the CAs to verify against: client_ca_file or \
                     client_ca",
                    c.client_auth_type().unwrap_or("")
                ),
            ))
        }
        (a, Some(roots)) => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if a == ClientAuth::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            let inner = b
                .build()
                .map_err(|e| err("client_ca_file", format!("client verifier: {e}")))?;
            Some(Arc::new(SelfSignedAsItsOwnCa { inner, pinned }) as Arc<dyn ClientCertVerifier>)
        }
    };
    let verifier = match (verifier, &c.client_allowed_sans) {
        (Some(v), Some(sans)) => Some(Arc::new(AllowedSans {
            inner: v,
            sans: sans.clone(),
        }) as Arc<dyn ClientCertVerifier>),
        (v, _) => v,
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&proto.versions)
        .map_err(|e| err("min_version", e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| {
        err(
            key_field,
            format!("failed to load X509KeyPair: the key does not match the certificate or is unusable: {e}"),
        )
    })?;
    cfg.ignore_client_order = proto.prefer_server_order;
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(cfg)
}

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a certificate and checks only that
/// the client holds its key (the handshake signature), not who issued it.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `client_allowed_sans`: after the policy's own checks, the client certificate must carry one
/// of the allowed values among its DNS names, e-mail addresses, IP addresses and URIs (Go's
/// `VerifyPeerCertificate` in exporter-toolkit).
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

/// The SAN values of a certificate, as exporter-toolkit lists them.
pub fn san_values(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("error parsing client certificate: {e}"))?;
    let mut v = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    v.push(s.to_string())
                }
                GeneralName::IPAddress(b) => match b.len() {
                    4 => v.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        v.push(std::net::Ipv6Addr::from(a).to_string())
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(v)
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let values = san_values(end_entity.as_ref()).map_err(rustls::Error::General)?;
        if values.iter().any(|v| self.sans.contains(v)) {
            Ok(ok)
        } else {
            crate::daemon::logging::client_event(
                log::Level::Info,
                format_args!(
                    "TLS client refused: could not find allowed SANs in client cert, found: {values:?}"
                ),
            );
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Go's `crypto/tls` trusts a self-signed client certificate listed among the client CAs as
/// itself (exporter-toolkit's `client_selfsigned.pem` is both the CA file and the client);
/// webpki refuses a CA certificate as an end entity. A presented certificate byte-equal to one
/// of the configured CAs, and within its validity period, is accepted; the handshake
/// signature still proves the client holds its key. Everything else goes to webpki.
#[derive(Debug)]
struct SelfSignedAsItsOwnCa {
    inner: Arc<dyn ClientCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ClientCertVerifier for SelfSignedAsItsOwnCa {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            let t = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            return if cert.validity().is_valid_at(t) {
                Ok(ClientCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired,
                ))
            };
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
