//! A real Prometheus server (Debian package `prometheus`) scrapes the real agent on loopback,
//! configured with the documented scrape job, `contrib/prometheus/scrape.yml` (only its target
//! replaced): through Prometheus' HTTP API the target is `up` and `node_cpu_seconds_total` and
//! `node_memory_MemAvailable_bytes` were ingested with the expected labels. This tests both the
//! agent's exposition as Prometheus parses it and the documentation (issue 5).
//!
//! Waits are bounded (up to [`PROM_WAIT`]); nothing asserts how long anything took.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long Prometheus may take to start, scrape and answer, at most.
const PROM_WAIT: Duration = Duration::from_secs(60);
/// The documented job, and the target written in it.
const SCRAPE_YML: &str = "contrib/prometheus/scrape.yml";
const DOC_TARGET: &str = "localhost:9100";

/// Path of the `prometheus` server; fails, never skips, when it is missing.
fn prometheus_bin() -> PathBuf {
    find_program("prometheus").unwrap_or_else(|| {
        panic!(
        "the `prometheus` server binary was not found: install the Debian package `prometheus` \
         (`apt-get install prometheus`; scripts/test.sh installs it) — this test runs a real \
         Prometheus against the agent"
        )
    })
}

/// A Prometheus server started by the test, killed and reaped on drop.
struct Prometheus {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, config: &Path) -> Prometheus {
        let port = free_port();
        let storage = dir.join("tsdb");
        fs::create_dir(&storage).expect("create the tsdb directory");
        let log = dir.join("prometheus.log");
        let out = File::create(&log).expect("create prometheus.log");
        let err = out.try_clone().expect("dup prometheus.log");
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            child: Some(child),
            port,
            log,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on Prometheus' HTTP API; None while it does not answer 200.
    fn get(&mut self, path: &str) -> Option<String> {
        if let Some(st) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
        {
            panic!("prometheus exited ({st:?}):\n{}", self.log());
        }
        let r = http(loopback(self.port), "GET", path, &[]).ok()?;
        (r.status == 200).then(|| r.text())
    }

    /// Polls `path` until `ok` accepts the body, at most [`PROM_WAIT`]; returns that body.
    fn poll(&mut self, path: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PROM_WAIT;
        let mut last = None;
        loop {
            if let Some(body) = self.get(path) {
                if ok(&body) {
                    return body;
                }
                last = Some(body);
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {PROM_WAIT:?} waiting for {what} (GET {path}); last answer: \
                     {}\n--- prometheus log ---\n{}",
                    last.as_deref().unwrap_or("(none)"),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The documented job with its target replaced by `target`, after a `global:` section that
/// scrapes every second.
fn config_from_doc(target: &str) -> String {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRAPE_YML);
    let doc = fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("read the documented scrape job {}: {e}", doc_path.display()));
    assert_eq!(
        doc.matches(DOC_TARGET).count(),
        1,
        "{SCRAPE_YML} should name the target {DOC_TARGET} exactly once (the test replaces it)"
    );
    assert!(
        doc.lines().any(|l| l.starts_with("- job_name:")),
        "{SCRAPE_YML} should be a job to paste under `scrape_configs:` (a `- job_name:` item)"
    );
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n{}",
        doc.replace(DOC_TARGET, target)
    )
}

/// The documented job's name.
fn doc_job_name() -> String {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRAPE_YML))
        .expect("read scrape.yml");
    doc.lines()
        .find_map(|l| l.strip_prefix("- job_name:"))
        .map(|n| n.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .expect("job_name in scrape.yml")
}

/// The `"result":[...]` entries of an instant query answer: one string per series (its
/// `"metric":{...}` object and value), without a JSON parser.
fn series(body: &str) -> Vec<String> {
    assert!(
        body.contains(r#""status":"success""#) && body.contains(r#""resultType":"vector""#),
        "not a successful instant vector answer: {body}"
    );
    body.split(r#"{"metric":{"#)
        .skip(1)
        .map(|s| s.to_string())
        .collect()
}

/// The sample value of one series entry (`"value":[<ts>,"<v>"]`).
fn series_value(entry: &str) -> f64 {
    let after = entry
        .split(r#""value":["#)
        .nth(1)
        .unwrap_or_else(|| panic!("no value in {entry}"));
    let v = after
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no value string in {entry}"));
    v.parse()
        .unwrap_or_else(|_| panic!("value {v:?} in {entry} is not a number"))
}

#[test]
fn real_prometheus_scrapes_the_agent_with_the_documented_job() {
    // Fail first, with the install hint, when the server is missing.
    prometheus_bin();
    let dir = TestDir::new();
    let agent = Start::new(&dir).spawn();
    let target = format!("127.0.0.1:{}", agent.port);
    let job = doc_job_name();

    // Prometheus' own files go in a directory of their own (root's), not the agent's.
    let pdir = tempfile::Builder::new()
        .prefix("monitoring-agent-prometheus.")
        .tempdir()
        .expect("create prometheus' temp dir");
    let config = pdir.path().join("prometheus.yml");
    fs::write(&config, config_from_doc(&target)).expect("write prometheus.yml");

    // The documented job is a valid Prometheus configuration.
    let check = Command::new(promtool())
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run promtool check config");
    assert!(
        check.status.success(),
        "promtool check config rejects {SCRAPE_YML} pasted under scrape_configs:\n{}{}\n--- \
         config ---\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        fs::read_to_string(&config).unwrap_or_default()
    );

    let mut prom = Prometheus::start(pdir.path(), &config);

    // The target is up.
    let targets = prom.poll("/api/v1/targets", "the agent's target to be up", |b| {
        b.contains(&format!("\"scrapeUrl\":\"http://{target}/metrics\""))
            && b.contains(r#""health":"up""#)
    });
    assert!(
        !targets.contains(r#""health":"down""#),
        "a target is down: {targets}\n{}",
        agent.diagnostics()
    );
    assert!(
        targets.contains(&format!("\"job\":\"{job}\"")),
        "the target is not in the documented job {job:?}: {targets}"
    );

    // node_cpu_seconds_total: one series per cpu and mode, labelled as node_exporter's.
    let cpu = prom.poll(
        "/api/v1/query?query=node_cpu_seconds_total",
        "node_cpu_seconds_total to be ingested",
        |b| !series(b).is_empty(),
    );
    let entries = series(&cpu);
    let instance = format!("\"instance\":\"{target}\"");
    let job_label = format!("\"job\":\"{job}\"");
    for e in &entries {
        assert!(
            e.contains(r#""__name__":"node_cpu_seconds_total""#)
                && e.contains(r#""cpu":""#)
                && e.contains(r#""mode":""#)
                && e.contains(&instance)
                && e.contains(&job_label),
            "node_cpu_seconds_total series without the cpu, mode, instance and job labels: {e}"
        );
        assert!(series_value(e) >= 0.0, "negative CPU seconds: {e}");
    }
    for mode in ["idle", "user", "system"] {
        assert!(
            entries
                .iter()
                .any(|e| e.contains(r#""cpu":"0""#) && e.contains(&format!("\"mode\":\"{mode}\""))),
            "no node_cpu_seconds_total{{cpu=\"0\",mode=\"{mode}\"}} ingested: {cpu}"
        );
    }

    // node_memory_MemAvailable_bytes: one series, a positive number of bytes.
    let mem = prom.poll(
        "/api/v1/query?query=node_memory_MemAvailable_bytes",
        "node_memory_MemAvailable_bytes to be ingested",
        |b| !series(b).is_empty(),
    );
    let entries = series(&mem);
    assert_eq!(entries.len(), 1, "one MemAvailable series expected: {mem}");
    assert!(
        entries[0].contains(&instance) && entries[0].contains(&job_label),
        "node_memory_MemAvailable_bytes without the instance and job labels: {mem}"
    );
    assert!(
        series_value(&entries[0]) > 0.0,
        "node_memory_MemAvailable_bytes is not positive: {mem}"
    );

    // And Prometheus itself saw no failed scrape of it: `up` is 1.
    let up = prom.poll("/api/v1/query?query=up", "the up series", |b| {
        !series(b).is_empty()
    });
    let entries = series(&up);
    assert!(
        entries.len() == 1 && series_value(&entries[0]) == 1.0,
        "up should be 1 for the agent's target: {up}"
    );
    // Both are killed and reaped when `prom` and `agent` go out of scope.
    drop(prom);
    drop(agent);
    assert_nothing_running(&dir);
}
