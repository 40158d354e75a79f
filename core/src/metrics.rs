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

    /// Render the Prometheus text exposition format. `seconds_until_expiry` and `ready` are
    /// read from the live snapshot by the caller.
    pub fn render(&self, seconds_until_expiry: Option<f64>, ready: bool) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP passport_refresh_total STS credential refreshes by outcome."
        );
        let _ = writeln!(out, "# TYPE passport_refresh_total counter");
        let _ = writeln!(
            out,
            "passport_refresh_total{{outcome=\"success\",code=\"\"}} {}",
            self.refresh_success.load(Relaxed)
        );
        for ((class, code), n) in self.refresh_failures.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "passport_refresh_total{{outcome=\"{class}\",code=\"{}\"}} {n}",
                label(code)
            );
        }

        let _ = writeln!(
            out,
            "# HELP passport_sts_request_duration_seconds Latency of STS AssumeRoleWithWebIdentity calls."
        );
        let _ = writeln!(
            out,
            "# TYPE passport_sts_request_duration_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "passport_sts_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "passport_sts_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "passport_sts_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "passport_sts_request_duration_seconds_count {count}");

        let _ = writeln!(
            out,
            "# HELP passport_credentials_expiry_seconds Seconds until the served credentials expire."
        );
        let _ = writeln!(out, "# TYPE passport_credentials_expiry_seconds gauge");
        if let Some(s) = seconds_until_expiry {
            let _ = writeln!(out, "passport_credentials_expiry_seconds {s:.0}");
        }
        let _ = writeln!(
            out,
            "# HELP passport_ready Whether valid credentials are being served."
        );
        let _ = writeln!(out, "# TYPE passport_ready gauge");
        let _ = writeln!(out, "passport_ready {}", u8::from(ready));

        let _ = writeln!(
            out,
            "# HELP passport_http_requests_total Credential endpoint responses by status."
        );
        let _ = writeln!(out, "# TYPE passport_http_requests_total counter");
        for (status, n) in STATUSES.iter().zip(&self.requests) {
            let status = if *status == 0 {
                "other".to_string()
            } else {
                status.to_string()
            };
            let _ = writeln!(
                out,
                "passport_http_requests_total{{status=\"{status}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP passport_connections_refused_total Connections closed at accept because the cap was reached."
        );
        let _ = writeln!(out, "# TYPE passport_connections_refused_total counter");
        let _ = writeln!(
            out,
            "passport_connections_refused_total {}",
            self.connections_refused.load(Relaxed)
        );
        out
    }
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
        let text = m.render(Some(1799.6), true);
        assert!(text.contains("passport_refresh_total{outcome=\"success\",code=\"\"} 1"));
        assert!(
            text.contains("passport_refresh_total{outcome=\"throttled\",code=\"Throttling\"} 1")
        );
        assert!(
            text.contains("passport_refresh_total{outcome=\"permanent\",code=\"AccessDenied\"} 1")
        );
        assert!(text.contains("passport_sts_request_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("passport_sts_request_duration_seconds_bucket{le=\"1\"} 2"));
        assert!(text.contains("passport_sts_request_duration_seconds_count 2"));
        assert!(text.contains("passport_credentials_expiry_seconds 1800"));
        assert!(text.contains("passport_http_requests_total{status=\"200\"} 2"));
        assert!(text.contains("passport_http_requests_total{status=\"other\"} 1"));
        assert_eq!(m.sts_calls(), 2);
    }
}
