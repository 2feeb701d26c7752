//! Concurrent load with `wrk` (installed by scripts/test.sh): more parallel scrapes than
//! `--web.max-requests` allows, for a bounded number of seconds. The agent must stay up, answer
//! every request with 200 or the designed 503 ("too many concurrent scrapes"), lose no
//! connection, and serve normally afterwards. No timing is asserted: `-d` only bounds how long
//! the load lasts, and `--timeout` is a generous liveness bound (a request unanswered that long
//! is a hang, counted as an error).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{alive, collector_success, must_value, wait_until, Start, TestDir};
use nix::sys::signal::Signal;

/// Path of `wrk`; fails, never skips, when it is missing.
fn wrk() -> PathBuf {
    for p in ["/usr/bin/wrk", "/usr/local/bin/wrk"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("wrk not found: install the Debian package `wrk` (scripts/test.sh does)");
}

/// Counts statuses per thread and prints the totals and wrk's own error counts in `done`.
const SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; busy = 0; other = 0; other_codes = "" end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then busy = busy + 1
  else other = other + 1; other_codes = other_codes .. " " .. status end
end
function done(summary, latency, requests)
  local o, b, x, codes = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("busy"); x = x + t:get("other")
    codes = codes .. t:get("other_codes")
  end
  io.write(string.format("RESULT requests=%d ok=%d busy=%d other=%d\n",
    summary.requests, o, b, x))
  io.write(string.format("RESULT connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write("RESULT other_codes=" .. codes .. "\n")
end
"#;

/// `key=value` pairs of the `RESULT` lines.
fn results(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn concurrent_scrapes_get_200_or_503_and_the_agent_stays_up() {
    let dir = TestDir::new();
    let mut agent = Start::new(&dir)
        .args([
            // Fewer slots than wrk's connections: the 503 path is part of the load.
            "--web.max-requests",
            "2",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.stat",
            "--collector.netdev",
            "--collector.diskstats",
        ])
        .spawn();
    let script = dir.path().join("count.lua");
    fs::write(&script, SCRIPT).expect("write wrk script");
    let url = format!("http://{}/metrics", agent.addr());
    let out = Command::new(wrk())
        .args(["-t", "2", "-c", "16", "-d", "3s", "--timeout", "30s", "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .expect("run wrk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "wrk failed:\n{text}");
    let r = results(&text);
    let n = |k: &str| -> u64 {
        r.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in wrk's output:\n{text}"))
    };
    let (requests, ok, busy, other) = (n("requests"), n("ok"), n("busy"), n("other"));
    assert!(ok > 0, "no scrape succeeded under load:\n{text}");
    assert_eq!(
        other,
        0,
        "statuses other than 200 and 503:{}\n{text}",
        r.get("other_codes").map(String::as_str).unwrap_or("")
    );
    assert_eq!(ok + busy, requests, "responses not counted:\n{text}");
    // wrk counts every non-2xx/3xx response as a `status` error: exactly the 503s.
    assert_eq!(n("status"), busy, "{text}");
    for e in ["connect", "read", "write", "timeout"] {
        assert_eq!(
            n(e),
            0,
            "wrk counted {e} errors:\n{text}\n{}",
            agent.diagnostics()
        );
    }

    // Still up, and serving normally: every 200 counted as a scrape.
    assert!(
        alive(agent.pid()),
        "the agent died under load\n{}",
        agent.diagnostics()
    );
    assert!(agent.try_exit().is_none(), "{}", agent.diagnostics());
    // Scrapes wrk gave up on when its time ran out may still hold the two slots for a moment
    // (the collectors finish their run): wait for a slot, bounded, then scrape normally.
    wait_until(
        || format!("a free scrape slot after the load\n{}", agent.diagnostics()),
        || agent.get("/metrics").status == 200,
    );
    let body = agent.scrape("/metrics");
    let scrapes = must_value(&body, "monitoring_agent_scrapes_total", &[]);
    assert!(
        scrapes >= ok as f64,
        "the agent counts {scrapes} scrapes, wrk received {ok} successful ones"
    );
    assert!(
        !agent.log().contains("panicked"),
        "a panic under load:\n{}",
        agent.diagnostics()
    );
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit().code(), Some(0), "{}", agent.diagnostics());
}

/// Concurrent scrapes share one run per collector (an HA Prometheus pair scrapes at the same
/// moment), and identical concurrent scrapes share one answer: eight scrapes started together,
/// half asking for the text format and half for OpenMetrics, each report exactly the
/// per-collector success a lone scrape reports, with every default collector on the real
/// `/proc` and `/sys`, under the real sandbox. Rounds repeat until the agent has counted both
/// joined runs (`monitoring_agent_collector_runs_joined_total`: the two formats are different
/// answers, built from shared runs) and shared answers
/// (`monitoring_agent_scrape_answers_shared_total`: the scrapes of one format that arrived
/// while another built its answer), so the comparison is known to have covered both; every
/// round is checked.
#[test]
fn eight_simultaneous_scrapes_see_what_a_lone_scrape_sees() {
    let dir = TestDir::new();
    let agent = Start::new(&dir)
        .args(["--web.max-requests", "16", "--sandbox", "enforce"])
        .spawn();
    let lone = collector_success(&agent.scrape("/metrics"));
    assert!(lone.len() > 30, "default collectors: {lone:?}");
    // A second lone scrape agrees with the first (the host's answer is stable).
    assert_eq!(collector_success(&agent.scrape("/metrics")), lone);
    let addr = agent.addr();
    let mut joined = 0.0;
    let mut shared = 0.0;
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let bodies: Vec<String> = (0..8)
            .map(|i| {
                let b = barrier.clone();
                let accept = if i % 2 == 0 {
                    "text/plain;version=0.0.4"
                } else {
                    "application/openmetrics-text;version=1.0.0"
                };
                std::thread::spawn(move || {
                    b.wait();
                    common::http(addr, "GET", "/metrics", &[("Accept", accept)])
                        .map(|r| (r.status, r.text()))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| {
                let (status, body) = t
                    .join()
                    .expect("scrape thread")
                    .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", agent.diagnostics()));
                assert_eq!(status, 200, "round {round}: {body}");
                body
            })
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            // A shared answer is never one of the other format.
            assert_eq!(
                body.ends_with("# EOF\n"),
                i % 2 == 1,
                "round {round}, scrape {i}: the answer is not in the format it asked for"
            );
            let seen = collector_success(body);
            assert_eq!(
                seen,
                lone,
                "round {round}, scrape {i}: per-collector success differs from a lone scrape's\n{}",
                agent.diagnostics()
            );
        }
        let after = agent.scrape("/metrics");
        joined = must_value(&after, "monitoring_agent_collector_runs_joined_total", &[]);
        shared = must_value(&after, "monitoring_agent_scrape_answers_shared_total", &[]);
        if joined > 0.0 && shared > 0.0 {
            eprintln!(
                "{joined} joined runs and {shared} shared answers after {} rounds",
                round + 1
            );
            break;
        }
    }
    assert!(
        joined > 0.0,
        "twenty rounds of eight simultaneous scrapes and no scrape ever joined another's run"
    );
    assert!(
        shared > 0.0,
        "twenty rounds of eight simultaneous scrapes and no scrape ever shared another's answer"
    );
    assert!(
        !agent.log().contains("still running"),
        "{}",
        agent.diagnostics()
    );
    assert!(alive(agent.pid()));
}
