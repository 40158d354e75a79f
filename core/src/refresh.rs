//! The refresher: the one writer of the served snapshot.
//!
//! Loop: read the token file, call the credential source, publish a new `Snapshot`, sleep
//! until the next refresh. When to refresh and how long to back off is the [`Schedule`]'s
//! decision (pure and seeded, shared with the fleet simulation); the refresher does the I/O.
//!
//! The token file is re-read on every attempt, so a token the kubelet rotated is used at
//! once. After a failure the last good credentials stay published; handlers stop serving
//! them on their own a margin before expiry (see `Served::servable_for`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::aws::{RoleArn, RoleName, SessionName};
use crate::clock::{Clock, format_rfc3339_seconds};
use crate::credentials::{Served, Snapshot, error_body};
use crate::metrics::Metrics;
use crate::schedule::{CLIENT_REFRESH_WINDOW, Schedule};
use crate::sts::{AssumeRoleRequest, CredentialSource, ErrorClass, SourceError, scrub};
use crate::token::read_token_file;

/// How often a sleeping refresher checks that the clocks still agree with its schedule.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the refresher needs to know to ask for credentials.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    pub role_arn: RoleArn,
    pub session_name: SessionName,
    pub duration_seconds: u32,
    pub token_file: PathBuf,
    /// Upper bound on one STS call, on top of the SDK's own timeouts.
    pub attempt_timeout: Duration,
    /// A second hop (`sts:AssumeRole`) whose credentials are served instead of the first's.
    pub chain: Option<crate::chain::ChainSettings>,
}

impl RefreshSettings {
    /// The role whose credentials are served: the chained one, if any.
    pub fn served_role(&self) -> &RoleArn {
        self.chain.as_ref().map_or(&self.role_arn, |c| &c.role_arn)
    }
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
    /// Which served role this refresher keeps fresh: in every log line it writes.
    role: RoleName,
    settings: RefreshSettings,
    source: Arc<dyn CredentialSource>,
    shared: Arc<Shared>,
    schedule: Schedule,
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
            role: RoleName::default_role(),
            settings,
            source,
            shared,
            schedule: Schedule::from_entropy(),
        }
    }

    /// Name the role (an `--extra-role`); `default` otherwise.
    pub fn with_role(mut self, role: RoleName) -> Self {
        self.role = role;
        self
    }

    /// Seeded randomness, for deterministic tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.schedule = Schedule::seeded(seed);
        self
    }

    /// Refresh until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let delay = match self.refresh_once().await {
                Outcome::Refreshed { lifetime } => {
                    let delay = self.schedule.after_success(lifetime);
                    info!(
                        role = %self.role,
                        next_refresh_in_s = delay.as_secs(),
                        "next refresh scheduled"
                    );
                    delay
                }
                Outcome::Failed(err) => {
                    let backoff = self.schedule.after_failure(err.class, self.servable_for());
                    let (attempt, delay) = (backoff.attempt, backoff.delay);
                    self.publish_failure(&err);
                    let ready = self.shared.is_ready();
                    if err.class == ErrorClass::Permanent {
                        error!(role = %self.role, code = %err.code, class = err.class.as_str(), message = %err.message,
                            attempt, retry_in_ms = delay.as_millis() as u64, serving = ready,
                            "STS refused the web-identity exchange; check the role's trust policy and the token");
                    } else {
                        warn!(role = %self.role, code = %err.code, class = err.class.as_str(), message = %err.message,
                            attempt, retry_in_ms = delay.as_millis() as u64, serving = ready,
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
                if self.needs_refresh_now(self.schedule.urgent_below()) {
                    warn!(
                        role = %self.role,
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
        debug!(role = %self.role, iss = ?token.claims.iss, sub = ?token.claims.sub, aud = ?token.claims.aud,
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
        let served = Served::new(&creds, self.settings.served_role().as_str(), clock);
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
        info!(role = %self.role, access_key_id = %creds.access_key_id, expiration = %format_rfc3339_seconds(creds.expiration),
            latency_ms = latency.as_millis() as u64, sub = ?token.claims.sub, "refreshed credentials");
        if servable + crate::credentials::SERVE_MARGIN < CLIENT_REFRESH_WINDOW {
            warn!(
                role = %self.role,
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
