//! The refresher: the one writer of the served snapshot.
//!
//! Loop: read the token file, call the credential source, publish a new `Snapshot`, sleep
//! until the next refresh. When to refresh and how long to back off are pure functions of
//! the lifetime, the attempt and an RNG (`refresh_delay`, `retry_delay`), so the fleet
//! simulation and unit tests exercise the exact code the sidecar runs.
//!
//! Schedule: with lifetime `L` (time left when credentials arrive), refresh at a uniformly
//! random point in `[0.4 L, latest]`, where `latest` keeps at least 20 minutes (or half the
//! lifetime, for short sessions) in hand. With 1 h sessions a client never sees less than
//! 24 minutes left. The first refresh after start draws from `[0.1 L, latest]` instead: a
//! rollout starts a fleet within seconds, and the wide first window spreads its refreshes
//! over half an hour so they never march in step.
//!
//! Failures back off exponentially with jitter, per error class, re-reading the token file
//! on every attempt; while the last good credentials have plenty of time left the back-off
//! may stretch to 5 minutes, so a fleet riding out an STS outage does not press it. The last
//! good credentials stay published; handlers stop serving them on their own a margin before
//! expiry (see `Served::servable_for`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::{Rng, RngExt, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::{Clock, format_rfc3339_seconds};
use crate::credentials::{Served, Snapshot, error_body};
use crate::metrics::Metrics;
use crate::sts::{AssumeRoleRequest, CredentialSource, ErrorClass, SourceError, scrub};
use crate::token::read_token_file;

/// Served credentials keep at least this long in hand at refresh time (longer sessions).
pub const KEEP_IN_HAND: Duration = Duration::from_secs(20 * 60);
/// Clients refetch on every call below this much time left (botocore's advisory window).
pub const CLIENT_REFRESH_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How often a sleeping refresher checks that the clocks still agree with its schedule.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Never refresh more often than this, whatever STS returns.
pub const MIN_REFRESH_DELAY: Duration = Duration::from_secs(5);

/// When to refresh credentials that have `lifetime` left.
pub fn refresh_delay<R: Rng + ?Sized>(
    lifetime: Duration,
    first_after_start: bool,
    rng: &mut R,
) -> Duration {
    let l = lifetime.as_secs_f64();
    let latest = (l * 0.6).min((l - KEEP_IN_HAND.as_secs_f64()).max(l * 0.5));
    let earliest = if first_after_start { l * 0.1 } else { l * 0.4 }.min(latest);
    let at = if latest > earliest {
        rng.random_range(earliest..=latest)
    } else {
        latest
    };
    Duration::from_secs_f64(at).max(MIN_REFRESH_DELAY)
}

/// The longest time a client can be handed credentials with, given the session duration:
/// the minimum time left at any refresh point (for the start-up warning).
pub fn minimum_time_left(duration: Duration) -> Duration {
    let l = duration.as_secs_f64();
    let latest = (l * 0.6).min((l - KEEP_IN_HAND.as_secs_f64()).max(l * 0.5));
    Duration::from_secs_f64(l - latest)
}

/// Per error class: the first back-off and the cap it doubles up to (client-compat.md §3).
fn backoff_bounds(class: ErrorClass) -> (Duration, Duration) {
    let (base, cap) = match class {
        ErrorClass::Transient | ErrorClass::TokenExpired => (1, 60),
        ErrorClass::Throttled => (5, 120),
        ErrorClass::TokenRejected => (10, 180),
        ErrorClass::Permanent => (30, 300),
    };
    (Duration::from_secs(base), Duration::from_secs(cap))
}

/// The back-off ceiling while the last good credentials can be served for a long while yet.
pub const RELAXED_RETRY_CAP: Duration = Duration::from_secs(5 * 60);

/// The longest back-off after a failure of this class, given how long the last good
/// credentials can still be served (`None`: nothing servable). A sidecar with plenty in hand
/// has no reason to press an STS that is failing (a fleet of them riding out an outage is
/// most of its load), so it may wait up to [`RELAXED_RETRY_CAP`], but never so long that the
/// wait eats into [`KEEP_IN_HAND`]; a sidecar short of time retries at the class's own cap.
pub fn retry_cap(class: ErrorClass, servable: Option<Duration>) -> Duration {
    let (_, cap) = backoff_bounds(class);
    let spare = servable.map_or(Duration::ZERO, |left| left.saturating_sub(KEEP_IN_HAND));
    cap.max(spare.min(RELAXED_RETRY_CAP))
}

/// How long to wait after the `attempt`-th consecutive failure (1-based) of this class.
/// Exponential growth from a per-class base up to `cap` (see [`retry_cap`]), with jitter
/// drawn from `[base/2, ceiling]` so that a fleet recovering from an STS outage does not
/// retry in step.
pub fn retry_delay<R: Rng + ?Sized>(
    class: ErrorClass,
    attempt: u32,
    cap: Duration,
    rng: &mut R,
) -> Duration {
    let base = backoff_bounds(class).0.as_secs_f64();
    let ceiling = (base * 2f64.powi(attempt.saturating_sub(1).min(16) as i32))
        .min(cap.as_secs_f64())
        .max(base / 2.0);
    Duration::from_secs_f64(rng.random_range(base / 2.0..=ceiling))
}

/// What the refresher needs to know to ask for credentials.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    pub role_arn: String,
    pub session_name: String,
    pub duration_seconds: u32,
    pub token_file: PathBuf,
    /// Upper bound on one STS call, on top of the SDK's own timeouts.
    pub attempt_timeout: Duration,
}

/// State shared between the refresher (one writer) and the handlers (many readers).
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
}

impl Shared {
    pub fn new(clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot::starting()),
            clock,
            metrics,
            ready: watch::channel(false).0,
        }
    }

    /// True while credentials can be served.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().current(&*self.clock).is_some()
    }

    /// Resolves once the first credentials have been published.
    pub async fn first_credentials(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

pub struct Refresher {
    settings: RefreshSettings,
    source: Arc<dyn CredentialSource>,
    shared: Arc<Shared>,
    rng: rand::rngs::SmallRng,
}

enum Outcome {
    Refreshed { lifetime: Duration },
    Failed(SourceError),
}

impl Refresher {
    pub fn new(
        settings: RefreshSettings,
        source: Arc<dyn CredentialSource>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            settings,
            source,
            shared,
            rng: rand::rngs::SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// Seeded randomness, for deterministic tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = rand::rngs::SmallRng::seed_from_u64(seed);
        self
    }

    /// Refresh until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut first = true;
        let mut failures = 0u32;
        // Below this much servable time, refresh at once whatever the schedule said: only a
        // wall clock stepped forward gets here while STS is healthy.
        let mut urgent_below = Duration::ZERO;
        loop {
            let delay = match self.refresh_once().await {
                Outcome::Refreshed { lifetime } => {
                    failures = 0;
                    let delay = refresh_delay(lifetime, first, &mut self.rng);
                    urgent_below = CLIENT_REFRESH_WINDOW.min(minimum_time_left(lifetime) / 2);
                    first = false;
                    info!(
                        next_refresh_in_s = delay.as_secs(),
                        "next refresh scheduled"
                    );
                    delay
                }
                Outcome::Failed(err) => {
                    failures += 1;
                    let cap = retry_cap(err.class, self.servable_for());
                    let delay = retry_delay(err.class, failures, cap, &mut self.rng);
                    self.publish_failure(&err);
                    let ready = self.shared.is_ready();
                    if err.class == ErrorClass::Permanent {
                        error!(code = %err.code, class = err.class.as_str(), message = %err.message,
                            attempt = failures, retry_in_ms = delay.as_millis() as u64, serving = ready,
                            "STS refused the web-identity exchange; check the role's trust policy and the token");
                    } else {
                        warn!(code = %err.code, class = err.class.as_str(), message = %err.message,
                            attempt = failures, retry_in_ms = delay.as_millis() as u64, serving = ready,
                            "credential refresh failed; retrying");
                    }
                    delay
                }
            };
            let wake_at = Instant::now() + delay;
            while Instant::now() < wake_at {
                let nap = (wake_at - Instant::now()).min(CLOCK_CHECK_INTERVAL);
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.cancelled() => return,
                }
                if self.needs_refresh_now(urgent_below) {
                    warn!(
                        "served credentials are closer to expiry than scheduled (wall clock stepped?); refreshing now"
                    );
                    break;
                }
            }
        }
    }

    /// How long the published credentials can still be served (`None`: nothing servable).
    fn servable_for(&self) -> Option<Duration> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .served
            .as_ref()
            .and_then(|served| served.servable_for(&*self.shared.clock))
    }

    fn needs_refresh_now(&self, urgent_below: Duration) -> bool {
        let snapshot = self.shared.snapshot.load();
        match &snapshot.served {
            Some(served) => served
                .servable_for(&*self.shared.clock)
                .is_none_or(|left| left < urgent_below),
            None => false,
        }
    }

    async fn refresh_once(&mut self) -> Outcome {
        let token = match read_token_file(&self.settings.token_file) {
            Ok(token) => token,
            Err(e) => {
                self.shared
                    .metrics
                    .record_refresh_failure(ErrorClass::Transient, e.code(), None);
                return Outcome::Failed(SourceError::new(
                    ErrorClass::Transient,
                    e.code(),
                    e.to_string(),
                ));
            }
        };
        debug!(iss = ?token.claims.iss, sub = ?token.claims.sub, aud = ?token.claims.aud,
            exp = ?token.claims.exp, "read web-identity token");
        let request = AssumeRoleRequest {
            role_arn: self.settings.role_arn.clone(),
            session_name: self.settings.session_name.clone(),
            web_identity_token: token.jwt,
            duration_seconds: self.settings.duration_seconds,
        };
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.settings.attempt_timeout,
            self.source.assume_role(&request),
        )
        .await;
        let latency = started.elapsed();
        let metrics = &self.shared.metrics;
        let creds = match result {
            Ok(Ok(creds)) => creds,
            Ok(Err(mut err)) => {
                // Sources scrub their own messages; do it again before anything is logged or served.
                err.message = scrub(&err.message, request.web_identity_token.expose());
                metrics.record_refresh_failure(err.class, &err.code, Some(latency));
                return Outcome::Failed(err);
            }
            Err(_) => {
                let err = SourceError::new(
                    ErrorClass::Transient,
                    "Timeout",
                    "STS did not answer in time",
                );
                metrics.record_refresh_failure(err.class, &err.code, Some(latency));
                return Outcome::Failed(err);
            }
        };

        let clock = &*self.shared.clock;
        let served = Served::new(&creds, &self.settings.role_arn, clock);
        let Some(servable) = served.servable_for(clock) else {
            let err = SourceError::new(
                ErrorClass::Transient,
                "CredentialsAlreadyExpired",
                format!(
                    "STS returned credentials expiring at {}, too soon to serve",
                    format_rfc3339_seconds(creds.expiration)
                ),
            );
            metrics.record_refresh_failure(err.class, &err.code, Some(latency));
            return Outcome::Failed(err);
        };
        metrics.record_refresh_success(latency);
        info!(access_key_id = %creds.access_key_id, expiration = %format_rfc3339_seconds(creds.expiration),
            latency_ms = latency.as_millis() as u64, sub = ?token.claims.sub, "refreshed credentials");
        if servable + crate::credentials::SERVE_MARGIN < CLIENT_REFRESH_WINDOW {
            warn!(
                seconds_left = servable.as_secs(),
                "STS returned credentials shorter-lived than SDK refresh windows; clients will refetch often"
            );
        }
        self.shared.snapshot.store(Arc::new(Snapshot {
            served: Some(Arc::new(served)),
            unavailable_body: error_body(
                "CredentialsExpired",
                "the last credentials expired and refreshing them is failing",
            ),
        }));
        self.shared.ready.send_replace(true);
        Outcome::Refreshed {
            lifetime: servable + crate::credentials::SERVE_MARGIN,
        }
    }

    /// Keep the last good credentials; update the explanation served once they run out.
    fn publish_failure(&self, err: &SourceError) {
        let current = self.shared.snapshot.load();
        let message = format!(
            "cannot obtain credentials from STS: {}: {}",
            err.code, err.message
        );
        self.shared.snapshot.store(Arc::new(Snapshot {
            served: current.served.clone(),
            unavailable_body: error_body("CredentialsUnavailable", &message),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn one_hour_sessions_keep_24_minutes_in_hand() {
        let mut rng = SmallRng::seed_from_u64(7);
        for first in [true, false] {
            for _ in 0..10_000 {
                let d = refresh_delay(HOUR, first, &mut rng);
                assert!(d <= Duration::from_secs(2160), "{d:?}");
                assert!(HOUR - d >= Duration::from_secs(24 * 60));
                let floor = if first { 360 } else { 1440 };
                assert!(d >= Duration::from_secs(floor), "{d:?}");
            }
        }
        assert_eq!(minimum_time_left(HOUR), Duration::from_secs(1440));
    }

    #[test]
    fn long_and_short_sessions() {
        let mut rng = SmallRng::seed_from_u64(1);
        let twelve = 12 * HOUR;
        for _ in 0..1000 {
            let d = refresh_delay(twelve, false, &mut rng);
            assert!(d >= twelve.mul_f64(0.4) && d <= twelve.mul_f64(0.6));
            // 15-minute sessions: refresh at 40-50% of the lifetime.
            let d = refresh_delay(Duration::from_secs(900), false, &mut rng);
            assert!(
                d >= Duration::from_secs(360) && d <= Duration::from_secs(450),
                "{d:?}"
            );
        }
        assert!(minimum_time_left(Duration::from_secs(900)) < CLIENT_REFRESH_WINDOW);
        // Tiny lifetimes never cause a tight loop.
        assert_eq!(
            refresh_delay(Duration::from_secs(2), false, &mut rng),
            MIN_REFRESH_DELAY
        );
    }

    #[test]
    fn first_refresh_is_spread_over_a_wide_window() {
        let mut rng = SmallRng::seed_from_u64(3);
        let delays: Vec<f64> = (0..10_000)
            .map(|_| refresh_delay(HOUR, true, &mut rng).as_secs_f64())
            .collect();
        let min = delays.iter().cloned().fold(f64::MAX, f64::min);
        let max = delays.iter().cloned().fold(0.0, f64::max);
        assert!(min < 400.0 && max > 2100.0, "{min}..{max}");
    }

    #[test]
    fn backoff_grows_per_class_and_is_capped() {
        let mut rng = SmallRng::seed_from_u64(11);
        let transient = retry_cap(ErrorClass::Transient, None);
        let permanent = retry_cap(ErrorClass::Permanent, None);
        assert_eq!(transient, Duration::from_secs(60));
        assert_eq!(permanent, Duration::from_secs(300));
        for attempt in 1..40 {
            let t = retry_delay(ErrorClass::Transient, attempt, transient, &mut rng);
            assert!(
                t >= Duration::from_millis(500) && t <= Duration::from_secs(60),
                "{attempt}: {t:?}"
            );
            let p = retry_delay(ErrorClass::Permanent, attempt, permanent, &mut rng);
            assert!(p >= Duration::from_secs(15) && p <= Duration::from_secs(300));
        }
        assert!(
            retry_delay(ErrorClass::Transient, 1, transient, &mut rng) <= Duration::from_secs(1)
        );
        // Later attempts spread out: the ceiling doubles until the cap.
        let late: Vec<Duration> = (0..1000)
            .map(|_| retry_delay(ErrorClass::Transient, 10, transient, &mut rng))
            .collect();
        assert!(late.iter().any(|d| *d > Duration::from_secs(50)));
        assert!(late.iter().any(|d| *d < Duration::from_secs(10)));
    }

    #[test]
    fn backoff_stretches_only_while_the_wait_leaves_time_in_hand() {
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        // Nothing servable, or too little to spare: the class cap.
        assert_eq!(
            retry_cap(ErrorClass::Transient, None),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_cap(ErrorClass::Transient, min(21)),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_cap(ErrorClass::Throttled, min(21)),
            Duration::from_secs(120)
        );
        // Time to spare above KEEP_IN_HAND: up to that, at most 5 minutes, never below the
        // class's own cap.
        assert_eq!(
            retry_cap(ErrorClass::Transient, min(23)),
            Duration::from_secs(180)
        );
        assert_eq!(retry_cap(ErrorClass::Transient, min(50)), RELAXED_RETRY_CAP);
        assert_eq!(retry_cap(ErrorClass::Permanent, min(50)), RELAXED_RETRY_CAP);
        assert_eq!(retry_cap(ErrorClass::Permanent, min(22)), RELAXED_RETRY_CAP);
        // Whatever is drawn under that cap still leaves KEEP_IN_HAND.
        let mut rng = SmallRng::seed_from_u64(3);
        for left in [21, 23, 24, 30] {
            let left = min(left).unwrap();
            let cap = retry_cap(ErrorClass::Transient, Some(left));
            for attempt in 1..20 {
                let d = retry_delay(ErrorClass::Transient, attempt, cap, &mut rng);
                assert!(d <= cap, "{d:?} > {cap:?}");
                if cap > Duration::from_secs(60) {
                    assert!(left - d >= KEEP_IN_HAND, "{left:?} - {d:?}");
                }
            }
        }
        // A cap below the base still yields the base's lower bound, not a panic.
        let d = retry_delay(ErrorClass::Permanent, 1, Duration::from_secs(1), &mut rng);
        assert_eq!(d, Duration::from_secs(15));
    }
}
