//! `--web.config.file`: exporter-toolkit's own test cases (its `web/testdata` configs and
//! `web/tls_config_test.go`, `web/handler_test.go`) against the real, sandboxed agent, with
//! certificates made afresh by the test (tests/common/tls.rs).
//!
//! The YAML texts below are copied from prometheus/exporter-toolkit `web/testdata` (Apache
//! License 2.0, Copyright The Prometheus Authors); the inline PEM blocks are replaced with
//! the test's own certificate and key. Where we deliberately differ (Go-only CBC suites, P-521,
//! a verifying policy without a CA) the test says so and checks the refusal names the cause.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::tls::{basic, Client, Pki};
use common::*;

/// A directory holding the PKI and web configs, root-owned, keys `root:monitoring-agent 0640`
/// (the documented permissions).
struct Web {
    dir: TestDir,
    pki: Pki,
}

impl Web {
    fn new() -> Web {
        let dir = TestDir::new();
        let web = dir.path().join("web");
        fs::create_dir(&web).expect("mkdir web");
        fs::set_permissions(&web, fs::Permissions::from_mode(0o755)).expect("chmod");
        let pki = Pki::new(&web);
        let w = Web { dir, pki };
        w.protect_keys();
        w
    }

    fn protect_keys(&self) {
        for e in fs::read_dir(&self.pki.dir).expect("read web dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "key") {
                std::os::unix::fs::chown(&p, Some(0), Some(self.dir.gid)).expect("chown key");
                fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).expect("chmod key");
            }
        }
    }

    /// Writes a web config next to the certificates (relative paths resolve there).
    fn config(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.pki.dir.join(name);
        fs::write(&p, yaml).expect("write web config");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        p
    }

    fn check(&self, config: &Path) -> (i32, String) {
        let out = run(&[
            "--check-config".into(),
            "--web.config.file".into(),
            config.display().to_string(),
        ]);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn start(&self, config: &Path, tls: bool) -> Agent {
        let agent = Start::new(&self.dir)
            .args([
                "--web.config.file".to_string(),
                config.display().to_string(),
            ])
            .spawn_no_wait();
        if tls {
            Client::with_ca(&self.pki).wait_serving(agent.addr(), || agent.diagnostics());
        } else {
            wait_until(|| agent.diagnostics(), || accepts(agent.addr()));
        }
        agent
    }

    fn inline(&self, name: &str) -> String {
        let text = fs::read_to_string(self.pki.path(name)).expect("read PEM");
        text.lines().map(|l| format!("    {l}\n")).collect()
    }
}

const SERVER: &str =
    "tls_server_config:\n  cert_file: \"server.crt\"\n  key_file: \"server.key\"\n";

/// exporter-toolkit's `TestYAMLFiles` (its `validate/` half: `--check-config`), plus its bad
/// header and HTTP/2 cases, plus our deliberate refusals. Each error names the file, the
/// field and the reason; exit status 2.
#[test]
fn check_config_accepts_and_refuses_as_exporter_toolkit() {
    let w = Web::new();
    let key_inline = w.inline("server.key");
    let cert_inline = w.inline("server.crt");
    let cases: Vec<(&str, String, Option<&[&str]>)> = vec![
        ("web_config_empty.yml", String::new(), None),
        (
            "web_config_junk.yml",
            "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\nay3RiOtykgt4m6m3KOol\n".into(),
            Some(&["YAML error"]),
        ),
        (
            "web_config_junk_key.yml",
            "tls_server_config:\n  cert_filse: \"server.crt\"\n".into(),
            Some(&["YAML error", "cert_filse"]),
        ),
        (
            "web_config_noAuth_certPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"\"\n  key_file: \"server.key\"\n".into(),
            Some(&["tls_server_config.cert_file", "missing one of cert or cert_file"]),
        ),
        (
            "web_config_noAuth_cert_empty.bad.yml",
            "tls_server_config:\n  cert: \"\"\n  key_file: \"server.key\"\n".into(),
            Some(&["missing one of cert or cert_file"]),
        ),
        (
            "web_config_noAuth_keyPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"server.crt\"\n  key_file: \"\"\n".into(),
            Some(&["tls_server_config.key_file", "missing one of key or key_file"]),
        ),
        (
            "web_config_noAuth_key_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"server.crt\"\n  key: \"\"\n".into(),
            Some(&["missing one of key or key_file"]),
        ),
        (
            "web_config_noAuth_certPath_keyPath_empty.bad.yml",
            "tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n  client_auth_type: \"x\"\n"
                .into(),
            Some(&["missing one of cert or cert_file"]),
        ),
        (
            "web_config_noAuth_certPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: \"somefile\"\n  key_file: \"server.key\"\n".into(),
            Some(&["tls_server_config.cert_file", "somefile", "No such file"]),
        ),
        (
            "web_config_noAuth_keyPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: \"server.cert\"\n  key_file: \"somefile\"\n".into(),
            Some(&["No such file"]),
        ),
        (
            "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
            "tls_server_config:\n  cert_file: \"somefile\"\n  key_file: \"somefile\"\n".into(),
            Some(&["No such file"]),
        ),
        (
            "web_config_noAuth.bad.yml",
            format!("{SERVER}  client_ca_file: \"/dev/null\"\n"),
            Some(&[
                "tls_server_config.client_auth_type",
                "client CA's have been configured without a Client Auth Policy",
            ]),
        ),
        (
            "web_config_auth_clientCAs_invalid.bad.yml",
            format!("{SERVER}  client_ca_file: \"somefile\"\n"),
            Some(&["tls_server_config.client_ca_file", "No such file"]),
        ),
        (
            "web_config_auth_user_list_invalid.bad.yml",
            format!("{SERVER}basic_auth_users:\n  john: doe\n"),
            Some(&["basic_auth_users.john", "hashedSecret too short to be a bcrypted password"]),
        ),
        (
            "web_config_noAuth_inventedCiphers.bad.yml",
            format!("{SERVER}  client_auth_type: \"VerifyClientCertIfGiven\"\n  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048\n"),
            Some(&["tls_server_config.cipher_suites[0]", "unknown cipher"]),
        ),
        (
            "web_config_noAuth_inventedCurves.bad.yml",
            format!("{SERVER}  curve_preferences:\n    - CurveP257\n"),
            Some(&["tls_server_config.curve_preferences[0]", "unknown curve"]),
        ),
        (
            "web_config_noAuth_wrongTLSVersion.bad.yml",
            format!("{SERVER}  min_version: TLS111\n"),
            Some(&["tls_server_config.min_version", "unknown TLS version"]),
        ),
        (
            "web_config_headers_content_type_options.bad.yml",
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n".into(),
            Some(&["http_server_config.headers.X-Content-Type-Options", "invalid value for"]),
        ),
        (
            "web_config_headers_frame_options.bad.yml",
            "http_server_config:\n  headers:\n    X-Frame-Options: foo\n".into(),
            Some(&["invalid value for"]),
        ),
        (
            "web_config_headers_extra_header.bad.yml",
            "http_server_config:\n  headers:\n    Content-Type: foo\n".into(),
            Some(&["HTTP header \"Content-Type\" can not be configured"]),
        ),
        (
            "web_config_noAuth_noHTTP2Cipher.bad.yml",
            format!("{SERVER}  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\n"),
            Some(&["tls_server_config.cipher_suites", "HTTP/2-required"]),
        ),
        // Good in exporter-toolkit, refused here by name: Go-only CBC suites.
        (
            "web_config_noAuth_allCiphers.good.yml",
            format!("{SERVER}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_AES_128_GCM_SHA256\n  - TLS_AES_256_GCM_SHA384\n  - TLS_CHACHA20_POLY1305_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n"),
            Some(&["cipher_suites[9]", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "not by rustls"]),
        ),
        // Good in exporter-toolkit, refused here by name: ring has no P-521.
        (
            "web_config_noAuth_allCurves.good.yml",
            format!("{SERVER}  curve_preferences:\n    - CurveP256\n    - CurveP384\n    - CurveP521\n    - X25519\n"),
            Some(&["curve_preferences[2]", "CurveP521"]),
        ),
        // exporter-toolkit ships this as both `good.blocking` and `clientCAs_missing.bad`;
        // verifying client certificates needs a CA to verify against: refused.
        (
            "web_config_auth_clientCAs_missing.bad.yml",
            format!("{SERVER}  client_auth_type: \"RequireAndVerifyClientCert\"\n"),
            Some(&["client_ca_file", "needs the CAs"]),
        ),
        (
            "mismatched key",
            "tls_server_config:\n  cert_file: \"server.crt\"\n  key_file: \"client_selfsigned.key\"\n".into(),
            Some(&["tls_server_config.key_file", "does not match the certificate"]),
        ),
        (
            "bad rate limit",
            "rate_limit:\n  interval: 1 hour\n".into(),
            Some(&["invalid duration"]),
        ),
        // Good ones.
        ("web_config_noAuth.good.yml", format!("{SERVER}  client_auth_type: \"VerifyClientCertIfGiven\"\n  client_ca_file: tls-ca-chain.pem\n"), None),
        ("web_config_noAuth_tlsInline.good.yml", format!("tls_server_config:\n  cert: |\n{cert_inline}  key: |\n{key_inline}"), None),
        ("tls_config_noAuth.requireanyclientcertkeyinline.good.yml", format!("tls_server_config:\n  cert_file: \"server.crt\"\n  key: |\n{key_inline}  client_auth_type: \"RequireAnyClientCert\"\n"), None),
        ("all supported ciphers and curves", format!("{SERVER}  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_AES_128_GCM_SHA256\n  curve_preferences: [CurveP256, CurveP384, X25519]\n  prefer_server_cipher_suites: false\n"), None),
        ("web_config_headers.good.yml", "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000; includeSubDomains\n    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n    Content-Security-Policy: \"default-src 'self' *.test.example.net\"\n".into(), None),
        ("web_config_rate_limiter_nonblocking.yaml", "rate_limit:\n  interval: 0\n  burst: 0\n".into(), None),
        ("web_config_users_noTLS.good.yml", USERS.into(), None),
    ];
    let mut failures = Vec::new();
    for (name, yaml, expect) in &cases {
        let file = w.config(&name.replace(' ', "_"), yaml);
        let (code, out) = w.check(&file);
        match expect {
            None if code != 0 => failures.push(format!("{name}: expected OK, got {code}: {out}")),
            None => {}
            Some(needles) => {
                let file_named = out.contains(&file.display().to_string());
                let missing: Vec<_> = needles.iter().filter(|n| !out.contains(**n)).collect();
                if code != 2 || !missing.is_empty() || !file_named || out.lines().count() != 1 {
                    failures.push(format!(
                        "{name}: expected exit 2, one line naming the file and {missing:?}; got {code}: {out}"
                    ));
                }
            }
        }
    }
    // A missing web-config file.
    let (code, out) = w.check(&w.pki.dir.join("somefile"));
    if code != 2 || !out.contains("No such file") {
        failures.push(format!("missing file: got {code}: {out}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// exporter-toolkit's users: alice, bob, carol, dave (bcrypt), from web/testdata.
const USERS: &str = "basic_auth_users:\n  alice: $2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby\n  bob: $2y$18$4VeFDzXIoPHKnKTU3O3GH.N.vZu06CVqczYZ8WvfzrddFU6tGqjR.\n  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu\n  dave: $2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq\n";

fn status(r: &Result<common::tls::TlsResponse, String>) -> Result<u16, String> {
    r.as_ref().map(|t| t.response.status).map_err(|e| e.clone())
}

/// exporter-toolkit's `TestServerBehaviour`: plain and TLS clients, versions, suites and who
/// picks them, curves, HTTP/2 off, headers, client certificates, SAN checks.
#[test]
fn server_behaviour_follows_exporter_toolkit() {
    let w = Web::new();
    let client = Client::with_ca(&w.pki);
    let with_cert = |name: &str| Client {
        cert: Some((
            w.pki.path(&format!("{name}.pem")),
            w.pki.path(&format!("{name}.key")),
        )),
        ..client.clone()
    };

    // valid tls config yml and default (plain) client: no metrics, and TLS clients work.
    let cfg = w.config("noAuth.good.yml", &format!("{SERVER}  client_auth_type: \"VerifyClientCertIfGiven\"\n  client_ca_file: tls-ca-chain.pem\n"));
    {
        let a = w.start(&cfg, true);
        // No HTTP answer at all is what Go's TLS server gives a plain client; any answer
        // must carry no metrics.
        if let Ok(r) = http(a.addr(), "GET", "/metrics", &[]) {
            assert!(
                r.status != 200 && !r.text().contains("node_cpu_seconds_total"),
                "plain HTTP on the TLS port got metrics: {r:?}"
            );
        }
        let r = client.get(a.addr(), "/metrics", &[]).expect("TLS client");
        assert_eq!(r.response.status, 200);
        assert!(r.response.text().contains("node_cpu_seconds_total"));
        // A client certificate that the CA did not sign is refused (VerifyClientCertIfGiven).
        assert!(with_cert("client_selfsigned")
            .get(a.addr(), "/", &[])
            .is_err());
    }

    // Inline cert and key.
    let cfg = w.config("inline.yml", &format!("tls_server_config:\n  cert: |\n{}  key: |\n{}  client_auth_type: \"VerifyClientCertIfGiven\"\n  client_ca_file: tls-ca-chain.pem\n", w.inline("server.crt"), w.inline("server.key")));
    {
        let a = w.start(&cfg, true);
        assert_eq!(status(&client.get(a.addr(), "/", &[])), Ok(200));
    }

    // someCiphers (server order) and someCiphers_noOrder (client order); a TLS 1.1 client
    // and a client without a common suite are refused.
    let some = "  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  min_version: TLS12\n  max_version: TLS12\n";
    let cfg = w.config("someCiphers.yml", &format!("{SERVER}{some}"));
    {
        let a = w.start(&cfg, true);
        let c = |suites: Vec<&'static str>| Client {
            tls12_only: true,
            suites,
            ..client.clone()
        };
        let r = c(vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
            .get(a.addr(), "/", &[])
            .expect("one common suite");
        assert_eq!(r.suite, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert!(
            c(vec!["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"])
                .get(a.addr(), "/", &[])
                .is_err(),
            "no common suite"
        );
        let r = c(vec![
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ])
        .get(a.addr(), "/", &[])
        .expect("two");
        assert_eq!(
            r.suite, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "the server's order wins"
        );
        // A TLS 1.3 client is refused by max_version TLS12 (rustls offers no TLS 1.1 client;
        // openssl does).
        let tls13 = Client { ..client.clone() };
        let r = tls13
            .get(a.addr(), "/", &[])
            .expect("1.3+1.2 client falls back to 1.2");
        assert_eq!(r.response.status, 200);
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &a.addr().to_string(),
                "-tls1_1",
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !text.contains("BEGIN CERTIFICATE"),
            "a TLS 1.1 client must be refused: {text}"
        );
    }
    let cfg = w.config("someCiphers_noOrder.yml", &format!("{SERVER}  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  prefer_server_cipher_suites: false\n  min_version: TLS12\n  max_version: TLS12\n"));
    {
        let a = w.start(&cfg, true);
        let c = Client {
            tls12_only: true,
            suites: vec![
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ],
            ..client.clone()
        };
        assert_eq!(
            c.get(a.addr(), "/", &[]).expect("ok").suite,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "the client's order wins"
        );
    }

    // someCurves (with P-384 for P-521, which ring lacks): a common curve works, none fails.
    let cfg = w.config(
        "someCurves.yml",
        &format!("{SERVER}  min_version: TLS13\n  curve_preferences:\n  - CurveP384\n"),
    );
    {
        let a = w.start(&cfg, true);
        let c = |g: &'static str| Client {
            groups: vec![g],
            ..client.clone()
        };
        assert_eq!(status(&c("secp384r1").get(a.addr(), "/", &[])), Ok(200));
        assert!(
            c("X25519").get(a.addr(), "/", &[]).is_err(),
            "no common curve"
        );
    }

    // noHTTP2: http2 off with a TLS 1.2 suite list; ALPN never chooses h2.
    let cfg = w.config("noHTTP2.yml", &format!("{SERVER}  cipher_suites:\n    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\nhttp_server_config:\n  http2: false\n"));
    {
        let a = w.start(&cfg, true);
        let c = Client {
            alpn: vec!["h2", "http/1.1"],
            ..client.clone()
        };
        let r = c.get(a.addr(), "/", &[]).expect("http/1.1");
        assert_eq!(r.alpn.as_deref(), Some("http/1.1"));
    }

    // Headers, on every answer.
    let cfg = w.config("headers.yml", &format!("{SERVER}http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000; includeSubDomains\n    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n    Content-Security-Policy: \"default-src 'self' *.test.example.net\"\n"));
    {
        let a = w.start(&cfg, true);
        for path in ["/", "/metrics", "/nothing"] {
            let r = client.get(a.addr(), path, &[]).expect("get").response;
            assert_eq!(r.header("x-frame-options"), Some("deny"), "{path}: {r:?}");
            assert_eq!(r.header("x-xss-protection"), Some("1"));
            assert_eq!(
                r.header("strict-transport-security"),
                Some("max-age=31536000; includeSubDomains")
            );
            assert_eq!(
                r.header("content-security-policy"),
                Some("default-src 'self' *.test.example.net")
            );
        }
    }

    // Client certificates: RequireAnyClientCert, RequireAndVerifyClientCert (self-signed
    // client as its own CA), RequestClientCert.
    let cfg = w.config(
        "requireany.yml",
        &format!("{SERVER}  client_auth_type: \"RequireAnyClientCert\"\n"),
    );
    {
        let a = w.start(&w.config("bootstrap.yml", SERVER), true);
        drop(a);
        let a = Start::new(&w.dir)
            .args(["--web.config.file".to_string(), cfg.display().to_string()])
            .spawn_no_wait();
        with_cert("client_selfsigned").wait_serving(a.addr(), || a.diagnostics());
        assert_eq!(
            status(&with_cert("client_selfsigned").get(a.addr(), "/", &[])),
            Ok(200)
        );
        assert!(
            client.get(a.addr(), "/", &[]).is_err(),
            "no certificate: refused"
        );
    }
    let cfg = w.config(
        "requestclientcert.yml",
        &format!("{SERVER}  client_auth_type: \"RequestClientCert\"\n"),
    );
    {
        let a = w.start(&cfg, true);
        assert_eq!(
            status(&client.get(a.addr(), "/", &[])),
            Ok(200),
            "certificate optional"
        );
        assert_eq!(
            status(&with_cert("client_selfsigned").get(a.addr(), "/", &[])),
            Ok(200)
        );
    }
    let cfg = w.config("requireandverify.yml", &format!("{SERVER}  client_auth_type: \"RequireAndVerifyClientCert\"\n  client_ca_file: \"client_selfsigned.pem\"\n"));
    {
        let a = Start::new(&w.dir)
            .args(["--web.config.file".to_string(), cfg.display().to_string()])
            .spawn_no_wait();
        with_cert("client_selfsigned").wait_serving(a.addr(), || a.diagnostics());
        assert!(
            client.get(a.addr(), "/", &[]).is_err(),
            "no certificate: refused"
        );
        assert!(
            with_cert("client2_selfsigned")
                .get(a.addr(), "/", &[])
                .is_err(),
            "unknown CA: refused"
        );
    }
    // SAN checks: web_config_auth_client_san.good.yaml / .bad.yaml.
    let good = w.config("san.good.yaml", &format!("{SERVER}  client_auth_type: \"RequireAndVerifyClientCert\"\n  client_ca_file: \"client2_selfsigned.pem\"\n  client_allowed_sans:\n    - \"one\"\n    - \"test3\"\n    - \"two\"\n"));
    let bad = w.config("san.bad.yaml", &format!("{SERVER}  client_auth_type: \"RequireAndVerifyClientCert\"\n  client_ca_file: \"client2_selfsigned.pem\"\n  client_allowed_sans:\n    - \"bad\"\n"));
    {
        let a = Start::new(&w.dir)
            .args(["--web.config.file".to_string(), good.display().to_string()])
            .spawn_no_wait();
        with_cert("client2_selfsigned").wait_serving(a.addr(), || a.diagnostics());
        assert_eq!(
            status(&with_cert("client2_selfsigned").get(a.addr(), "/", &[])),
            Ok(200)
        );
    }
    {
        let a = Start::new(&w.dir)
            .args(["--web.config.file".to_string(), bad.display().to_string()])
            .spawn_no_wait();
        wait_until(|| a.diagnostics(), || a.log().contains("serving metrics"));
        let r = with_cert("client2_selfsigned").get(a.addr(), "/", &[]);
        assert!(
            r.is_err(),
            "a certificate without an allowed SAN must be refused"
        );
    }

    // Rate limiter: interval 0 never blocks; interval 1s with burst 0 refuses with 429.
    let cfg = w.config("rl0.yaml", "rate_limit:\n  interval: 0\n  burst: 0\n");
    {
        let a = w.start(&cfg, false);
        for _ in 0..=10 {
            assert_eq!(http(a.addr(), "GET", "/", &[]).expect("get").status, 200);
        }
    }
    let cfg = w.config("rl1.yaml", "rate_limit:\n  interval: \"1s\"\n  burst: 0\n");
    {
        let a = w.start(&cfg, false);
        let r = http(a.addr(), "GET", "/", &[]).expect("get");
        assert_eq!(r.status, 429, "{r:?}");
        assert!(r.text().contains("Too Many Requests"));
    }
}

/// exporter-toolkit's `TestUsers`, `TestBasicAuthCache`, `TestBasicAuthWithFakepassword` and
/// `TestByPassBasicAuthVuln` (CVE-2022-46146), with and without TLS.
#[test]
fn basic_auth_users_follow_exporter_toolkit() {
    let w = Web::new();
    let client = Client::with_ca(&w.pki);
    let no_tls = w.config("users_noTLS.yml", USERS);
    {
        let a = w.start(&no_tls, false);
        let r = http(a.addr(), "GET", "/metrics", &[]).expect("get");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Basic"));
        let dave = basic("dave", "dave123");
        let r = http(a.addr(), "GET", "/metrics", &[("Authorization", &dave)]).expect("get");
        assert_eq!(r.status, 200);
        assert!(r.text().contains("node_cpu_seconds_total"));
        // alice (cost 12): right then wrong.
        let ok = basic("alice", "alice123");
        assert_eq!(
            http(a.addr(), "GET", "/", &[("Authorization", &ok)])
                .expect("get")
                .status,
            200
        );
        let wrong = basic("alice", "alice1234");
        assert_eq!(
            http(a.addr(), "GET", "/", &[("Authorization", &wrong)])
                .expect("get")
                .status,
            401
        );
        // Fake user, cold cache then warm.
        let fake = basic("fakeuser", "fakepassword");
        for _ in 0..2 {
            assert_eq!(
                http(a.addr(), "GET", "/", &[("Authorization", &fake)])
                    .expect("get")
                    .status,
                401
            );
        }
        // CVE-2022-46146: poison, then a wrong password equal to hash + fake password.
        let poison = basic(
            "alice$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby",
            "fakepassword",
        );
        assert_eq!(
            http(a.addr(), "GET", "/", &[("Authorization", &poison)])
                .expect("get")
                .status,
            401
        );
        let bypass = basic(
            "alice",
            "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSifakepassword",
        );
        let r = http(a.addr(), "GET", "/", &[("Authorization", &bypass)]).expect("get");
        assert!(r.status == 401 || r.status == 429, "{r:?}");
        // A cached good login runs no bcrypt: the counter does not move.
        let count = |a: &Agent| -> f64 {
            let r = http(a.addr(), "GET", "/metrics", &[("Authorization", &dave)]).expect("get");
            r.text()
                .lines()
                .find_map(|l| l.strip_prefix("monitoring_agent_basic_auth_bcrypt_total "))
                .and_then(|v| v.parse().ok())
                .expect("bcrypt counter")
        };
        let before = count(&a);
        assert_eq!(count(&a), before, "cached logins run no bcrypt");
    }
    let with_tls = w.config("users.yml", &format!("{SERVER}{USERS}"));
    {
        let a = w.start(&with_tls, true);
        let get = |auth: Option<String>| {
            let h: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|v| vec![("Authorization", v)])
                .unwrap_or_default();
            client
                .get(a.addr(), "/metrics", &h)
                .expect("TLS get")
                .response
        };
        let r = get(None);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Basic"));
        assert_eq!(get(Some(basic("dave", "dave123"))).status, 200);
        assert_eq!(get(Some(basic("carol", "carol123"))).status, 200);
        assert_eq!(get(Some(basic("dave", "bad"))).status, 401);
        assert_eq!(get(Some(basic("nonexistent", "nonexistent"))).status, 401);
    }
}
