//! The agent's own metrics: scrapes served, collector failures, configuration reloads, log
//! write errors, and the build information.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Agent;
use crate::exposition::MetricFamily;

/// The status codes `promhttp_metric_handler_requests_total` reports, as client_golang
/// initialises them.
pub const HANDLER_CODES: [u16; 3] = [200, 500, 503];

impl Agent {
    /// Counts one answer of the metrics handler (200, or 503 when over
    /// `--web.max-requests`); other codes (400 for a bad `collect[]`, 401) are not the
    /// handler's, as in node_exporter.
    pub fn count_handler_response(&self, code: u16) {
        if let Some(i) = HANDLER_CODES.iter().position(|c| *c == code) {
            if let Some(c) = self.handler_codes.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// client_golang's `promhttp.InstrumentMetricHandler` families, as node_exporter 1.12
    /// exports them: the scrape in progress counts in `requests_in_flight` and not yet in
    /// `requests_total`; `errors_total{cause="encoding"}` stays 0 (the encoder cannot fail),
    /// `{cause="gathering"}` counts scrapes that dropped duplicate series.
    pub(super) fn promhttp_families(&self) -> Vec<MetricFamily> {
        let mut total = MetricFamily::counter(
            "promhttp_metric_handler_requests_total",
            "Total number of scrapes by HTTP status code.",
        );
        for (code, n) in HANDLER_CODES.iter().zip(&self.handler_codes) {
            total.push(
                &[("code", &code.to_string())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        vec![
            MetricFamily::counter(
                "promhttp_metric_handler_errors_total",
                "Total number of internal errors encountered by the promhttp metric handler.",
            )
            .with(&[("cause", "encoding")], 0.0)
            .with(
                &[("cause", "gathering")],
                self.gathering_errors.load(Ordering::Relaxed) as f64,
            ),
            MetricFamily::gauge(
                "promhttp_metric_handler_requests_in_flight",
                "Current number of scrapes being served.",
            )
            .with(&[], self.in_flight.load(Ordering::Relaxed) as f64),
            total,
        ]
    }

    pub(super) fn own_families(&self, scrapes: u64) -> Vec<MetricFamily> {
        vec![
            MetricFamily::counter(
                "monitoring_agent_scrapes_total",
                "Scrapes served since the agent started.",
            )
            .with(&[], scrapes as f64),
            MetricFamily::counter(
                "monitoring_agent_collector_failures_total",
                "Collector runs that failed since the agent started.",
            )
            .with(&[], self.collector_failures.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_collector_no_data_total",
                "Collector runs that found no such hardware or kernel feature (node_exporter's \
                 ErrNoData: success 0, not counted as failures) since the agent started.",
            )
            .with(&[], self.collector_no_data.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_collector_runs_joined_total",
                "Collector results a scrape took from a run another concurrent scrape had \
                 started, instead of running the collector again, since the agent started.",
            )
            .with(
                &[],
                self.collector_runs_joined.load(Ordering::Relaxed) as f64,
            ),
            MetricFamily::counter(
                "monitoring_agent_scrape_answers_shared_total",
                "Scrapes answered with the body an identical concurrent scrape had just built \
                 (same format, encoding and collectors), instead of building it again, since \
                 the agent started.",
            )
            .with(&[], self.answers_shared.load(Ordering::Relaxed) as f64),
            MetricFamily::gauge(
                "monitoring_agent_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
            )
            .with(
                &[],
                if self.reload_ok.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ),
            MetricFamily::gauge(
                "monitoring_agent_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration load.",
            )
            .with(&[], self.reload_time.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_config_reload_failures_total",
                "Configuration reloads that failed and left the running configuration in place.",
            )
            .with(&[], self.reload_failures.load(Ordering::Relaxed) as f64),
            MetricFamily::counter(
                "monitoring_agent_log_write_errors_total",
                "Log lines the log file did not take (a full disk, an I/O error) since the agent started.",
            )
            .with(
                &[("destination", "file")],
                crate::daemon::logging::file_write_errors() as f64,
            ),
        ]
    }
}

/// `monitoring_agent_build_info`.
pub fn build_info() -> MetricFamily {
    MetricFamily::gauge(
        "monitoring_agent_build_info",
        "A metric with a constant '1' value labeled by version and target architecture.",
    )
    .with(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("arch", std::env::consts::ARCH),
        ],
        1.0,
    )
}

/// Seconds since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
