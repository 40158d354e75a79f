//! Prometheus metrics, hand-rolled on atomics.
//!
//! A handful of counters and one histogram do not justify a metrics framework; atomics keep
//! the request path at one relaxed increment. Handles are passed explicitly (no globals), so
//! every test gets its own registry.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::sts::ErrorClass;

/// Upper bounds (seconds) of the STS latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Response statuses counted individually; anything else lands in "other".
const STATUSES: [u16; 11] = [200, 400, 401, 403, 404, 405, 421, 431, 500, 503, 0];

#[derive(Debug, Default)]
pub struct Metrics {
    refresh_success: AtomicU64,
    /// Failures by (class, code). Written once per failed STS call: a mutex is fine.
    refresh_failures: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    requests: [AtomicU64; STATUSES.len()],
    connections_refused: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record_refresh_success(&self, latency: Duration) {
        self.refresh_success.fetch_add(1, Relaxed);
        self.record_latency(latency);
    }

    pub fn record_refresh_failure(&self, class: ErrorClass, code: &str, latency: Option<Duration>) {
        *self
            .refresh_failures
            .lock()
            .unwrap()
            .entry((class.as_str(), code.to_owned()))
            .or_default() += 1;
        if let Some(latency) = latency {
            self.record_latency(latency);
        }
    }

    fn record_latency(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Relaxed);
    }

    pub fn record_request(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[i].fetch_add(1, Relaxed);
    }

    pub fn record_connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// Number of STS calls made so far (successes and failures that reached STS or timed out).
    pub fn sts_calls(&self) -> u64 {
        self.latency_count.load(Relaxed)
    }

    pub fn refresh_successes(&self) -> u64 {
        self.refresh_success.load(Relaxed)
    }

    pub fn requests_with_status(&self, status: u16) -> u64 {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.requests[i].load(Relaxed))
    }
}

/// What `/metrics` shows of one served role: its own refresh counters and latency, and
/// its snapshot's expiry and readiness.
pub struct RoleView<'a> {
    pub name: &'a str,
    pub metrics: &'a Metrics,
    pub seconds_until_expiry: Option<f64>,
    pub ready: bool,
}

/// The Prometheus text exposition format: the per-role families with a `role` label (each
/// role refreshes on its own), then the listener counters, kept in `server` (the default
/// role's registry: requests are counted once, whichever role they ask for).
pub fn render(roles: &[RoleView<'_>], server: &Metrics) -> String {
    let mut out = String::with_capacity(2048 * roles.len().max(1));
    let o = &mut out;
    family(
        o,
        "passport_refresh_total",
        "counter",
        "STS credential refreshes by role and outcome.",
    );
    for r in roles {
        let role = r.name;
        sample(
            o,
            &format!("passport_refresh_total{{role=\"{role}\",outcome=\"success\",code=\"\"}}"),
            r.metrics.refresh_success.load(Relaxed),
        );
        for ((class, code), n) in r.metrics.refresh_failures.lock().unwrap().iter() {
            let name = format!(
                "passport_refresh_total{{role=\"{role}\",outcome=\"{class}\",code=\"{}\"}}",
                label(code)
            );
            sample(o, &name, n);
        }
    }

    let latency = "passport_sts_request_duration_seconds";
    family(
        o,
        latency,
        "histogram",
        "Latency of STS calls (AssumeRoleWithWebIdentity, and AssumeRole when chained), by role.",
    );
    for r in roles {
        let role = r.name;
        let m = r.metrics;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&m.latency_buckets) {
            sample(
                o,
                &format!("{latency}_bucket{{role=\"{role}\",le=\"{bound}\"}}"),
                bucket.load(Relaxed),
            );
        }
        let count = m.latency_count.load(Relaxed);
        sample(
            o,
            &format!("{latency}_bucket{{role=\"{role}\",le=\"+Inf\"}}"),
            count,
        );
        let sum = m.latency_sum_micros.load(Relaxed) as f64 / 1e6;
        sample(o, &format!("{latency}_sum{{role=\"{role}\"}}"), sum);
        sample(o, &format!("{latency}_count{{role=\"{role}\"}}"), count);
    }

    let expiry = "passport_credentials_expiry_seconds";
    family(
        o,
        expiry,
        "gauge",
        "Seconds until the served credentials expire, by role.",
    );
    for r in roles {
        if let Some(s) = r.seconds_until_expiry {
            sample(
                o,
                &format!("{expiry}{{role=\"{}\"}}", r.name),
                format_args!("{s:.0}"),
            );
        }
    }
    family(
        o,
        "passport_ready",
        "gauge",
        "Whether valid credentials are being served, by role.",
    );
    for r in roles {
        sample(
            o,
            &format!("passport_ready{{role=\"{}\"}}", r.name),
            u8::from(r.ready),
        );
    }

    family(
        o,
        "passport_http_requests_total",
        "counter",
        "Credential endpoint responses by status.",
    );
    for (status, n) in STATUSES.iter().zip(&server.requests) {
        let status = if *status == 0 {
            "other".to_string()
        } else {
            status.to_string()
        };
        sample(
            o,
            &format!("passport_http_requests_total{{status=\"{status}\"}}"),
            n.load(Relaxed),
        );
    }
    let refused = "passport_connections_refused_total";
    family(
        o,
        refused,
        "counter",
        "Connections closed at accept because the cap was reached.",
    );
    sample(o, refused, server.connections_refused.load(Relaxed));
    out
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line: `name{labels} value`.
fn sample(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name} {value}");
}

/// Error codes come from STS; keep label values to a safe alphabet.
fn label(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let m = Metrics::new();
        m.record_refresh_success(Duration::from_millis(40));
        m.record_refresh_failure(
            ErrorClass::Throttled,
            "Throttling",
            Some(Duration::from_millis(700)),
        );
        m.record_refresh_failure(ErrorClass::Permanent, "Acc\"ess}Denied", None);
        m.record_request(200);
        m.record_request(200);
        m.record_request(418);
        let text = render(
            &[RoleView {
                name: "default",
                metrics: &m,
                seconds_until_expiry: Some(1799.6),
                ready: true,
            }],
            &m,
        );
        assert!(
            text.contains(
                "passport_refresh_total{role=\"default\",outcome=\"success\",code=\"\"} 1"
            )
        );
        assert!(text.contains(
            "passport_refresh_total{role=\"default\",outcome=\"throttled\",code=\"Throttling\"} 1"
        ));
        assert!(text.contains(
            "passport_refresh_total{role=\"default\",outcome=\"permanent\",code=\"AccessDenied\"} 1"
        ));
        assert!(text.contains(
            "passport_sts_request_duration_seconds_bucket{role=\"default\",le=\"0.05\"} 1"
        ));
        assert!(
            text.contains(
                "passport_sts_request_duration_seconds_bucket{role=\"default\",le=\"1\"} 2"
            )
        );
        assert!(text.contains("passport_sts_request_duration_seconds_count{role=\"default\"} 2"));
        assert!(text.contains("passport_credentials_expiry_seconds{role=\"default\"} 1800"));
        assert!(text.contains("passport_http_requests_total{status=\"200\"} 2"));
        assert!(text.contains("passport_http_requests_total{status=\"other\"} 1"));
        assert_eq!(m.sts_calls(), 2);
    }

    #[test]
    fn every_role_has_its_own_labelled_series_and_requests_are_counted_once() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.record_refresh_success(Duration::from_millis(10));
        b.record_refresh_failure(ErrorClass::Permanent, "AccessDenied", None);
        a.record_request(200);
        let text = render(
            &[
                RoleView {
                    name: "default",
                    metrics: &a,
                    seconds_until_expiry: Some(60.0),
                    ready: true,
                },
                RoleView {
                    name: "reports",
                    metrics: &b,
                    seconds_until_expiry: None,
                    ready: false,
                },
            ],
            &a,
        );
        assert!(
            text.contains("passport_ready{role=\"default\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("passport_ready{role=\"reports\"} 0"),
            "{text}"
        );
        assert!(text.contains(
            "passport_refresh_total{role=\"reports\",outcome=\"permanent\",code=\"AccessDenied\"} 1"
        ));
        assert!(
            text.contains(
                "passport_refresh_total{role=\"reports\",outcome=\"success\",code=\"\"} 0"
            )
        );
        assert!(text.contains("passport_sts_request_duration_seconds_count{role=\"default\"} 1"));
        assert!(!text.contains("passport_credentials_expiry_seconds{role=\"reports\"}"));
        assert_eq!(text.matches("# TYPE passport_ready gauge").count(), 1);
        assert_eq!(
            text.matches("passport_http_requests_total{status=\"200\"} 1")
                .count(),
            1
        );
    }
}
