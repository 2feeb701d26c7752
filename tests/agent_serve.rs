//! Foreground serve and scrape through the real binary (started as root, so dropped to the
//! agent's user and sandboxed): the exposition checked with `promtool`, the expected families
//! and their values against the host, OpenMetrics and gzip negotiation, HEAD, 404, 405, the
//! landing page, telemetry path and listen addresses from flags and from the file.

mod common;

use std::collections::BTreeSet;

use common::*;

/// Prometheus' own Accept header (2.x, OpenMetrics enabled).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// (family, type) every scrape must have, named as node_exporter names them.
const EXPECTED: &[(&str, &str)] = &[
    ("node_cpu_seconds_total", "counter"),
    ("node_memory_MemTotal_bytes", "gauge"),
    ("node_memory_MemFree_bytes", "gauge"),
    ("node_load1", "gauge"),
    ("node_load5", "gauge"),
    ("node_load15", "gauge"),
    ("node_boot_time_seconds", "gauge"),
    ("node_context_switches_total", "counter"),
    ("node_forks_total", "counter"),
    ("node_intr_total", "counter"),
    ("node_procs_running", "gauge"),
    ("node_procs_blocked", "gauge"),
    ("node_uname_info", "gauge"),
    ("node_time_seconds", "gauge"),
    ("node_scrape_collector_success", "gauge"),
    ("node_scrape_collector_duration_seconds", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("monitoring_agent_build_info", "gauge"),
];

/// The collectors of the first issue; each must report success.
const COLLECTORS: &[&str] = &["cpu", "meminfo", "loadavg", "stat", "uname", "time"];

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn assert_complete(body: &str) {
    let types = types(body);
    let mut missing = Vec::new();
    for (name, kind) in EXPECTED {
        match types.get(*name) {
            Some(t) if t == kind => {}
            Some(t) => missing.push(format!("{name} has type {t}, want {kind}")),
            None => missing.push(format!("{name} missing")),
        }
        if !samples(body).iter().any(|(n, _, _)| n == name) {
            missing.push(format!("{name} has no sample"));
        }
    }
    for c in COLLECTORS {
        match value(body, "node_scrape_collector_success", &[("collector", c)]) {
            Some(1.0) => {}
            other => missing.push(format!(
                "node_scrape_collector_success{{collector=\"{c}\"}} is {other:?}, want 1"
            )),
        }
        if value(
            body,
            "node_scrape_collector_duration_seconds",
            &[("collector", c)],
        )
        .is_none()
        {
            missing.push(format!(
                "node_scrape_collector_duration_seconds{{collector=\"{c}\"}} missing"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "scrape incomplete:\n{}\n--- body ---\n{}",
        missing.join("\n"),
        body
    );
}

#[test]
fn scrape_text_format_passes_promtool_and_has_every_family() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let r = agent.get("/metrics");
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.diagnostics());
    assert_eq!(r.header("content-type"), Some(TEXT_CONTENT_TYPE), "{r:?}");
    assert_eq!(
        r.header("content-encoding"),
        None,
        "gzip without Accept-Encoding: {r:?}"
    );
    let body = r.text();
    assert!(!body.contains("# EOF"), "text format must not carry # EOF");
    assert_promtool_ok(&body);
    assert_complete(&body);
    assert_eq!(
        must_value(
            &body,
            "monitoring_agent_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Every sample belongs to a family declared before it, and families are contiguous.
    let mut seen = BTreeSet::new();
    let mut current = String::new();
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            current = rest.split_whitespace().next().unwrap_or("").to_string();
            assert!(
                seen.insert(current.clone()),
                "family {current} appears twice"
            );
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            assert_eq!(name, current, "sample {l:?} outside its family");
        }
    }

    // The scrape counter counts scrapes.
    let first = must_value(&body, "monitoring_agent_scrapes_total", &[]);
    let again = agent.scrape("/metrics");
    assert_eq!(
        must_value(&again, "monitoring_agent_scrapes_total", &[]),
        first + 1.0
    );
    assert_eq!(
        must_value(
            &again,
            "monitoring_agent_config_last_reload_successful",
            &[]
        ),
        1.0
    );
    assert_eq!(
        must_value(&again, "monitoring_agent_config_reload_failures_total", &[]),
        0.0
    );
}

/// The node_* values are the host's.
#[test]
fn node_values_match_the_host() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let mem_total = || -> f64 {
        let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("MemTotal");
        kb * 1024.0
    };
    let mem_before = mem_total();
    let before = unix_now();
    let body = agent.scrape("/metrics");
    let after = unix_now();
    let mem_after = mem_total();

    // MemTotal can move (memory balloon): the scrape's value is one the host had.
    let got = must_value(&body, "node_memory_MemTotal_bytes", &[]);
    assert!(
        got == mem_before || got == mem_after,
        "node_memory_MemTotal_bytes {got}, /proc/meminfo says {mem_before} / {mem_after}"
    );

    let stat = std::fs::read_to_string("/proc/stat").expect("stat");
    let btime: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .expect("btime");
    assert_eq!(must_value(&body, "node_boot_time_seconds", &[]), btime);

    // One idle series per CPU line of /proc/stat.
    let cpus: BTreeSet<String> = stat
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|f| f.strip_prefix("cpu"))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    for cpu in &cpus {
        for mode in [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ] {
            let v = must_value(
                &body,
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
            );
            assert!(v >= 0.0, "cpu {cpu} mode {mode}: {v}");
        }
    }
    let idle_series = samples(&body)
        .iter()
        .filter(|(n, l, _)| n == "node_cpu_seconds_total" && l.contains("mode=\"idle\""))
        .count();
    assert_eq!(idle_series, cpus.len(), "one idle series per CPU");

    let uname = nix::sys::utsname::uname().expect("uname");
    let release = uname.release().to_string_lossy().into_owned();
    let nodename = uname.nodename().to_string_lossy().into_owned();
    assert_eq!(
        must_value(
            &body,
            "node_uname_info",
            &[
                ("sysname", "Linux"),
                ("release", &release),
                ("nodename", &nodename)
            ]
        ),
        1.0
    );

    let t = must_value(&body, "node_time_seconds", &[]);
    assert!(
        t >= before.floor() - 1.0 && t <= after.ceil() + 1.0,
        "node_time_seconds {t} not between {before} and {after}"
    );
    let load1 = must_value(&body, "node_load1", &[]);
    assert!(load1 >= 0.0);
}

/// process_* describe the agent's own process.
#[test]
fn process_metrics_describe_the_agent() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let body = agent.scrape("/metrics");
    let pid = agent.pid();

    // Start time: /proc/PID/stat starttime (clock ticks since boot) + btime.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("agent stat");
    let fields = stat_fields(&stat);
    // After the name: state(0) ppid(1) ... starttime is field 22 of the full line, i.e. 19 here.
    let start_ticks: f64 = fields[19].parse().expect("starttime");
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .expect("stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .expect("btime");
    let want = btime + start_ticks / hz;
    let got = must_value(&body, "process_start_time_seconds", &[]);
    assert!(
        (got - want).abs() <= 1.5,
        "process_start_time_seconds {got}, the agent's process started at {want}"
    );

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let soft: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("Max open files");
    assert_eq!(must_value(&body, "process_max_fds", &[]), soft);

    let open = must_value(&body, "process_open_fds", &[]);
    assert!(open >= 3.0 && open <= soft, "process_open_fds {open}");
    let rss = must_value(&body, "process_resident_memory_bytes", &[]);
    assert!(rss > 1024.0 * 1024.0, "process_resident_memory_bytes {rss}");
    assert!(must_value(&body, "process_cpu_seconds_total", &[]) >= 0.0);
}

/// OpenMetrics when the Accept header prefers it (as Prometheus sends it), with its content
/// type, `_total` counters under a suffix-less family name, and `# EOF` at the end; the text
/// format when text is preferred.
#[test]
fn openmetrics_when_preferred() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    for accept in [
        PROMETHEUS_ACCEPT,
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0",
        "text/plain;q=0.5, application/openmetrics-text;version=1.0.0;q=0.9",
    ] {
        let r = agent.request("GET", "/metrics", &[("Accept", accept)]);
        assert_eq!(r.status, 200, "{accept}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some(OPENMETRICS_CONTENT_TYPE),
            "{accept}"
        );
        let body = r.text();
        assert!(
            body.ends_with("\n# EOF\n"),
            "{accept}: body does not end with # EOF"
        );
        assert_eq!(
            count_lines(&body, "# EOF"),
            1,
            "{accept}: # EOF more than once"
        );
        assert!(
            !body.contains("\n\n"),
            "{accept}: blank line in OpenMetrics"
        );
        let types = types(&body);
        assert_eq!(
            types.get("node_cpu_seconds").map(String::as_str),
            Some("counter"),
            "{accept}"
        );
        assert!(
            !types.contains_key("node_cpu_seconds_total"),
            "{accept}: counter family keeps _total"
        );
        assert_eq!(types.get("node_load1").map(String::as_str), Some("gauge"));
        assert!(value(
            &body,
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "idle")]
        )
        .is_some());
        assert!(value(&body, "node_context_switches_total", &[]).is_some());
        // Every sample belongs to a declared family (counter samples carry _total).
        for (name, _, _) in samples(&body) {
            let family = name.strip_suffix("_total").unwrap_or(&name);
            assert!(
                types.contains_key(&name) || types.get(family).is_some_and(|t| t == "counter"),
                "{accept}: sample {name} has no family"
            );
        }
        assert!(
            !body.contains("untyped"),
            "{accept}: OpenMetrics has no 'untyped' type"
        );
    }
    for accept in [
        "text/plain",
        "text/plain;version=0.0.4",
        "application/openmetrics-text;q=0.3, text/plain;q=0.7",
        "application/openmetrics-text;q=0",
        "application/json",
        "*/*",
    ] {
        let r = agent.request("GET", "/metrics", &[("Accept", accept)]);
        assert_eq!(r.status, 200, "{accept}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some(TEXT_CONTENT_TYPE),
            "{accept}"
        );
        assert!(!r.text().contains("# EOF"), "{accept}");
    }
}

/// gzip when Accept-Encoding allows it; the decoded body is a valid exposition.
#[test]
fn gzip_when_accepted() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    for ae in [
        "gzip",
        "gzip, deflate, br",
        "deflate;q=1.0, gzip;q=0.5",
        "*",
        "GZIP",
    ] {
        let r = agent.request("GET", "/metrics", &[("Accept-Encoding", ae)]);
        assert_eq!(r.status, 200, "{ae}: {r:?}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{ae}: {r:?}");
        assert_eq!(r.header("content-type"), Some(TEXT_CONTENT_TYPE), "{ae}");
        assert!(
            r.header("vary")
                .is_some_and(|v| v.contains("Accept-Encoding")),
            "{ae}: Vary should name Accept-Encoding: {r:?}"
        );
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "{ae}: not a gzip stream");
        let body = r.gunzip();
        assert_promtool_ok(&body);
        assert_complete(&body);
    }
    // OpenMetrics and gzip together.
    let r = agent.request(
        "GET",
        "/metrics",
        &[("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    assert!(r.gunzip().ends_with("# EOF\n"));
    // Not allowed: plain body.
    for ae in ["identity", "gzip;q=0", "deflate", "br"] {
        let r = agent.request("GET", "/metrics", &[("Accept-Encoding", ae)]);
        assert_eq!(r.status, 200, "{ae}");
        assert_eq!(r.header("content-encoding"), None, "{ae}: {r:?}");
        assert!(r.text().contains("node_load1 "), "{ae}");
    }
}

/// HEAD: the GET response's status and headers, no body.
#[test]
fn head_returns_headers_without_body() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    // The client fails if any byte follows the head of a HEAD response.
    let r = agent.request("HEAD", "/metrics", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(TEXT_CONTENT_TYPE));
    assert!(r.body.is_empty());
    let r = agent.request("HEAD", "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    let r = agent.request("HEAD", "/", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let r = agent.request("HEAD", "/nope", &[]);
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn unknown_paths_are_404() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    for path in [
        "/nope",
        "/metrics/",
        "/metricsx",
        "/metrics/extra",
        "/favicon.ico",
        "//metrics",
        "/index.html",
    ] {
        let r = agent.get(path);
        assert_eq!(r.status, 404, "GET {path}: {r:?}");
    }
    // Other methods elsewhere are 404 too (the path does not exist).
    let r = agent.request("POST", "/nope", &[("Content-Length", "0")]);
    assert_eq!(r.status, 404, "POST /nope: {r:?}");
    // A query string does not change the path.
    let r = agent.get("/metrics?x=1");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn other_methods_are_405_with_allow() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    for path in ["/metrics", "/"] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let r = agent.request(method, path, &[("Content-Length", "0")]);
            assert_eq!(r.status, 405, "{method} {path}: {r:?}");
            let allow = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow: {r:?}"));
            let allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
            assert_eq!(
                allowed,
                BTreeSet::from(["GET", "HEAD"]),
                "{method} {path}: Allow {allow}"
            );
        }
    }
    // Still serving afterwards.
    agent.scrape("/metrics");
}

#[test]
fn landing_page_links_the_telemetry_path() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let r = agent.get("/");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{r:?}"
    );
    let page = r.text();
    assert!(page.contains("href=\"/metrics\""), "{page}");
    assert!(page.contains("monitoring-agent"), "{page}");
}

/// `--web.telemetry-path` moves the metrics (and the landing page's link); the flag
/// overrides the file's value.
#[test]
fn telemetry_path_from_flag_overrides_file() {
    let dir = TestDir::new();
    let cfg = dir.write_config("[web]\ntelemetry_path = \"/from-file\"\n");
    let agent = Start::new(&dir)
        .args([
            "-c",
            &cfg.display().to_string(),
            "--web.telemetry-path",
            "/from-flag",
        ])
        .spawn();
    let body = agent.scrape("/from-flag");
    assert_complete(&body);
    assert_eq!(agent.get("/from-file").status, 404);
    assert_eq!(agent.get("/metrics").status, 404);
    assert!(agent.get("/").text().contains("href=\"/from-flag\""));
    assert_eq!(
        agent
            .request("POST", "/from-flag", &[("Content-Length", "0")])
            .status,
        405
    );
}

/// Settings from the file when no flag overrides them: listen address, telemetry path.
#[test]
fn settings_from_config_file() {
    let dir = TestDir::new();
    let port = free_port();
    let cfg = dir.write_config(&format!(
        "# test config\nlog_level = \"info\"\n\n[web]\nlisten_addresses = [\"127.0.0.1:{port}\"]\ntelemetry_path = \"/from-file\"\n"
    ));
    let agent = Start::new(&dir)
        .port(port)
        .no_listen_arg()
        .args(["-c", &cfg.display().to_string()])
        .spawn();
    assert_complete(&agent.scrape("/from-file"));
    assert_eq!(agent.get("/metrics").status, 404);
}

/// Repeatable `--web.listen-address`, IPv4 and IPv6, with `-p` replacing every port.
#[test]
fn ipv4_and_ipv6_listen_addresses_with_port_override() {
    let dir = TestDir::new();
    let port = free_port_v4_v6();
    let agent = Start::new(&dir)
        .port(port)
        .no_listen_arg()
        .args([
            "--web.listen-address",
            "127.0.0.1:1",
            "--web.listen-address",
            "[::1]:2",
            "-p",
            &port.to_string(),
        ])
        .spawn();
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().expect("v6 addr");
    wait_until(
        || format!("[::1]:{port} listening\n{}", agent.diagnostics()),
        || accepts(v6),
    );
    let r = http(v6, "GET", "/metrics", &[]).expect("scrape over IPv6");
    assert_eq!(r.status, 200, "{r:?}");
    assert_complete(&r.text());
    assert_eq!(agent.get("/metrics").status, 200);
    // The start-up line names both addresses, with the port -p gave.
    let log = agent.wait_log("serving metrics on");
    let line = log
        .lines()
        .find(|l| l.contains("serving metrics on"))
        .unwrap_or("");
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains(&format!("[::1]:{port}")),
        "{line}"
    );
}

/// `-p PORT` alone: every address (`:PORT`), reachable over IPv4 and IPv6 loopback.
#[test]
fn port_flag_alone_listens_on_all_addresses() {
    let dir = TestDir::new();
    let port = free_port_v4_v6();
    let agent = Start::new(&dir)
        .port(port)
        .no_listen_arg()
        .args(["-p", &port.to_string()])
        .spawn();
    assert_eq!(agent.get("/metrics").status, 200);
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().expect("v6 addr");
    let r = http(v6, "GET", "/metrics", &[]).expect("scrape over IPv6");
    assert_eq!(r.status, 200, "{r:?}");
}

/// A request head larger than the cap is refused (never served), and the agent keeps
/// serving.
#[test]
fn oversized_request_head_is_refused() {
    use std::io::{Read, Write};
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let mut s = std::net::TcpStream::connect(agent.addr()).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let big = "a".repeat(64 * 1024);
    let req =
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    // The server may close before reading it all: write errors are fine.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    if !raw.is_empty() {
        let r = parse_response(&raw, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            (400..500).contains(&r.status),
            "a 64 KiB header should be refused, got {r:?}"
        );
    }
    assert!(alive(agent.pid()));
    assert_eq!(agent.get("/metrics").status, 200);
}

/// A client that connects and sends nothing is disconnected once the header-read timeout
/// (from the file) expires; the agent keeps serving others meanwhile.
#[test]
fn silent_client_is_disconnected_by_header_read_timeout() {
    use std::io::Read;
    let dir = TestDir::new();
    let cfg =
        dir.write_config("[web]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 2\n");
    let agent = Start::new(&dir)
        .args(["-c", &cfg.display().to_string()])
        .spawn();
    let mut silent = std::net::TcpStream::connect(agent.addr()).expect("connect");
    assert_eq!(
        agent.get("/metrics").status,
        200,
        "a silent client blocks others"
    );
    silent.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = Vec::new();
    match silent.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the silent connection was not closed by the agent within {WAIT:?}: {e}"),
    }
    assert_eq!(agent.get("/metrics").status, 200);
}

/// node_exporter 1.12's `promhttp_metric_handler_*` families: the scrape in progress is in
/// flight and not yet counted; earlier scrapes count under code 200.
/// `--web.disable-exporter-metrics` drops them and `process_*`, keeping `monitoring_agent_*`.
#[test]
fn promhttp_families_and_disable_exporter_metrics() {
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let first = agent.scrape("/metrics");
    assert_eq!(
        must_value(&first, "promhttp_metric_handler_requests_in_flight", &[]),
        1.0
    );
    let second = agent.scrape("/metrics");
    // `spawn` may have scraped to see the agent up: count from the first body on.
    let before = must_value(
        &first,
        "promhttp_metric_handler_requests_total",
        &[("code", "200")],
    );
    assert_eq!(
        must_value(
            &second,
            "promhttp_metric_handler_requests_total",
            &[("code", "200")]
        ),
        before + 1.0
    );
    for code in ["500", "503"] {
        assert_eq!(
            must_value(
                &second,
                "promhttp_metric_handler_requests_total",
                &[("code", code)]
            ),
            0.0
        );
    }
    for cause in ["encoding", "gathering"] {
        assert_eq!(
            must_value(
                &second,
                "promhttp_metric_handler_errors_total",
                &[("cause", cause)]
            ),
            0.0
        );
    }
    drop(agent);

    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .arg("--web.disable-exporter-metrics")
        .spawn();
    let body = agent.scrape("/metrics");
    for prefix in ["process_", "promhttp_"] {
        assert!(
            !body
                .lines()
                .any(|l| l.starts_with(prefix) || l.starts_with(&format!("# HELP {prefix}"))),
            "{prefix}* still served with --web.disable-exporter-metrics"
        );
    }
    assert!(body.contains("\nmonitoring_agent_build_info{"), "{body}");
    assert!(body.contains("\nnode_load1 "), "{body}");
}
