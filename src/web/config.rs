//! The web-config file: exporter-toolkit's YAML format, field for field, parsed strictly (an
//! unknown key is an error, as Go's `yaml.UnmarshalStrict`) and validated in exporter-toolkit's
//! order, so that its good and bad test files are accepted and refused the same way (the two
//! deliberate differences, Go-only cipher suites and P-521, are refused by name: see
//! [`CIPHERS`] and [`CURVES`]). Relative paths resolve against the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a web-config file cannot be used. Each names the file, the field and the reason.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("web config file {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("web config file {path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

/// A YAML scalar read as text, as Go's YAML decoder does for `map[string]string` (header
/// values such as `X-XSS-Protection: 1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_norway::Value;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, found {other:?}"
            ))),
        }
    }
}

/// A Go `time.Duration` in YAML: an integer (nanoseconds) or a string such as `1s`, `500ms`,
/// `1m30s`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_norway::Value;
        match Value::deserialize(d)? {
            Value::Number(n) => match n.as_u64() {
                Some(ns) => Ok(GoDuration(Duration::from_nanos(ns))),
                None => Err(serde::de::Error::custom(format!(
                    "invalid duration {n}: expected nanoseconds (a whole number) or e.g. \"1s\""
                ))),
            },
            Value::String(s) => parse_go_duration(&s)
                .map(GoDuration)
                .map_err(serde::de::Error::custom),
            Value::Null => Ok(GoDuration(Duration::ZERO)),
            other => Err(serde::de::Error::custom(format!(
                "invalid duration {other:?}"
            ))),
        }
    }
}

/// Go's `time.ParseDuration` (moved to `values`, shared with the collectors' options).
pub use crate::values::parse_go_duration;

/// The file's shape (exporter-toolkit's `Config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub tls_server_config: Option<TlsFile>,
    pub http_server_config: Option<HttpFile>,
    pub rate_limit: Option<RateFile>,
    pub basic_auth_users: Option<BTreeMap<String, Scalar>>,
}

/// `tls_server_config` (exporter-toolkit's `TLSConfig`). Empty strings count as unset, as in Go.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub curve_preferences: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub client_allowed_sans: Option<Vec<String>>,
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub http2: Option<bool>,
    pub headers: Option<BTreeMap<String, Scalar>>,
}

/// `rate_limit` (golang.org/x/time/rate: one token every `interval`, at most `burst`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub interval: Option<GoDuration>,
    pub burst: Option<i64>,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl TlsFile {
    /// exporter-toolkit's `IsEnabled`: any of the fields that turn TLS on.
    pub fn is_enabled(&self) -> bool {
        [
            &self.cert_file,
            &self.cert,
            &self.key_file,
            &self.key,
            &self.client_ca_file,
            &self.client_ca,
            &self.client_auth_type,
        ]
        .iter()
        .any(|v| set(v).is_some())
    }

    pub fn cert_file(&self) -> Option<&str> {
        set(&self.cert_file)
    }
    pub fn key_file(&self) -> Option<&str> {
        set(&self.key_file)
    }
    pub fn client_ca_file(&self) -> Option<&str> {
        set(&self.client_ca_file)
    }
    pub fn cert(&self) -> Option<&str> {
        set(&self.cert)
    }
    pub fn key(&self) -> Option<&str> {
        set(&self.key)
    }
    pub fn client_ca(&self) -> Option<&str> {
        set(&self.client_ca)
    }
    pub fn client_auth_type(&self) -> Option<&str> {
        set(&self.client_auth_type)
    }
}

/// How a supported TLS 1.2 suite, a TLS 1.3 suite (not configurable, as in Go) or a Go-only
/// suite is named in the file (Go's `tls.CipherSuites()` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherKind {
    /// A TLS 1.2 suite rustls (ring) implements.
    Tls12(&'static str),
    /// A TLS 1.3 suite: Go accepts the name and ignores it (TLS 1.3 suites are not
    /// configurable); so do we.
    Tls13,
    /// In Go's list, not in rustls: CBC and RSA key exchange suites. Refused by name.
    GoOnly,
}

/// Go's secure cipher suite names and what they are here.
pub const CIPHERS: &[(&str, CipherKind)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherKind::Tls12("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherKind::Tls12("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherKind::Tls12("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherKind::Tls12("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherKind::Tls12("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherKind::Tls12("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ),
    ("TLS_AES_128_GCM_SHA256", CipherKind::Tls13),
    ("TLS_AES_256_GCM_SHA384", CipherKind::Tls13),
    ("TLS_CHACHA20_POLY1305_SHA256", CipherKind::Tls13),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", CipherKind::GoOnly),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", CipherKind::GoOnly),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", CipherKind::GoOnly),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", CipherKind::GoOnly),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", CipherKind::GoOnly),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", CipherKind::GoOnly),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", CipherKind::GoOnly),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", CipherKind::GoOnly),
];

/// exporter-toolkit's curve names; `None`: known to Go, not offered by ring.
pub const CURVES: &[(&str, Option<&str>)] = &[
    ("CurveP256", Some("secp256r1")),
    ("CurveP384", Some("secp384r1")),
    ("CurveP521", None),
    ("X25519", Some("X25519")),
];

/// Protocol versions by exporter-toolkit's names (the number is the wire version).
pub const VERSIONS: &[(&str, u16)] = &[
    ("TLS10", 0x0301),
    ("TLS11", 0x0302),
    ("TLS12", 0x0303),
    ("TLS13", 0x0304),
];

/// exporter-toolkit's `extraHTTPHeaders`: the headers a web config may set, and the values
/// allowed where the header is an enumeration.
pub const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// exporter-toolkit's `validateHeaderConfig`.
pub fn check_headers(headers: &BTreeMap<String, Scalar>) -> Result<(), (String, String)> {
    for (k, v) in headers {
        let field = format!("http_server_config.headers.{k}");
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(name, _)| name == k) else {
            return Err((
                field,
                format!(
                    "HTTP header {k:?} can not be configured (allowed: {})",
                    EXTRA_HEADERS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&v.0.as_str()) {
            return Err((
                field,
                format!(
                    "invalid value for {k}. Expected one of: {allowed:?}, but got: {:?}",
                    v.0
                ),
            ));
        }
        if hyper::header::HeaderValue::from_str(&v.0).is_err() {
            return Err((field, format!("{:?} is not a valid header value", v.0)));
        }
    }
    Ok(())
}

/// Joins a relative path with the web-config file's directory (Go's `config_util.JoinDir`).
pub fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in ["", "1", "s", "1x", "-1s", "1s2"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_validation_follows_exporter_toolkit() {
        let m = |k: &str, v: &str| BTreeMap::from([(k.to_string(), Scalar(v.to_string()))]);
        assert!(check_headers(&m("X-Frame-Options", "deny")).is_ok());
        assert!(check_headers(&m("Strict-Transport-Security", "max-age=1")).is_ok());
        let (field, why) = check_headers(&m("X-Frame-Options", "foo")).expect_err("enum");
        assert_eq!(field, "http_server_config.headers.X-Frame-Options");
        assert!(why.contains("invalid value for"), "{why}");
        let (_, why) = check_headers(&m("Content-Type", "foo")).expect_err("not allowed");
        assert!(why.contains("can not be configured"), "{why}");
        let (_, why) = check_headers(&m("Content-Security-Policy", "a\nb")).expect_err("bad value");
        assert!(why.contains("not a valid header value"), "{why}");
    }
}
