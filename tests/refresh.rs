//! The refresher on paused time with an in-process fake STS: what clients see over hours of
//! simulated time, through STS outages, permanent refusals, token rotation and clock steps.
//! Handlers are called directly (no sockets), so tokio's auto-advancing clock is safe.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::clock::{Clock, ManualClock};
use passport_core::metrics::Metrics;
use passport_core::refresh::{Refresher, Shared};
use passport_core::server::App;
use passport_core::sts::ErrorClass;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

struct Harness {
    clock: Arc<ManualClock>,
    sts: Arc<FakeSts>,
    app: App,
    dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl Harness {
    fn start(seed: u64) -> Self {
        Self::start_with(seed, |_| {})
    }

    fn start_with(seed: u64, prepare: impl FnOnce(&Harness)) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let sts = FakeSts::new(clock.clone());
        let shared = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
        let dir = tempfile::tempdir().unwrap();
        let h = Harness {
            clock,
            sts,
            app: app(shared),
            dir,
            stop: CancellationToken::new(),
        };
        let token_file = h.dir.path().join("token");
        prepare(&h);
        let refresher = Refresher::new(
            refresh_settings(token_file),
            h.sts.clone(),
            h.app.shared.clone(),
        )
        .with_seed(seed);
        tokio::spawn(refresher.run(h.stop.clone()));
        h
    }

    fn token(&self, sub: &str) {
        write_token(self.dir.path(), sub);
    }

    async fn fetch(&self) -> Reply {
        fetch(&self.app, Some(AUTH)).await
    }

    /// Time left on what a client receives now, or `None` for a non-200.
    async fn client_sees(&self) -> Option<Duration> {
        let reply = self.fetch().await;
        if reply.status != StatusCode::OK {
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(reply.headers["retry-after"], "5");
            let body = reply.json();
            assert!(
                body["Code"].as_str().unwrap().starts_with("Credentials"),
                "{body}"
            );
            assert_eq!(body["code"], body["Code"]);
            return None;
        }
        let expiration = parse_expiration(reply.json()["Expiration"].as_str().unwrap());
        let left = expiration
            .duration_since(self.clock.wall())
            .expect("served credentials that had already expired");
        Some(left)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test(start_paused = true)]
async fn clients_never_get_less_than_20_minutes_over_a_day() {
    let h = Harness::start_with(1, |h| h.token("system:serviceaccount:ns:app"));
    h.app.shared.first_credentials().await;
    let mut min_left = Duration::MAX;
    for _ in 0..(24 * 360) {
        sleep(Duration::from_secs(10)).await;
        let left = h.client_sees().await.expect("STS is healthy: always 200");
        min_left = min_left.min(left);
    }
    // The schedule keeps >= 24 minutes in hand for 1 h sessions: well above botocore's 15.
    assert!(
        min_left >= 23 * MINUTE,
        "a client saw only {min_left:?} left"
    );
    // Refreshes every 24-36 minutes (the first one earlier): about 40-60 a day, never per request.
    let calls = h.sts.calls();
    assert!((40..=62).contains(&calls), "{calls} STS calls in 24 h");
}

#[tokio::test(start_paused = true)]
async fn sts_outage_serves_valid_credentials_then_503_never_expired_then_recovers() {
    let h = Harness::start_with(2, |h| h.token("sub"));
    h.app.shared.first_credentials().await;
    let first = h.sts.last_issued();
    h.sts.set_default(Behaviour::Fail(error(
        ErrorClass::Transient,
        "ServiceUnavailable",
    )));

    let mut served_until = None;
    let mut unavailable_since = None;
    for i in 0..(2 * 3600) {
        sleep(Duration::from_secs(1)).await;
        match h.client_sees().await {
            Some(left) => {
                assert!(
                    unavailable_since.is_none(),
                    "served again after 503 while STS is down"
                );
                assert!(
                    left > Duration::from_secs(59),
                    "served credentials with only {left:?} left"
                );
                served_until = Some(i);
            }
            None => {
                unavailable_since.get_or_insert(i);
            }
        }
    }
    // Served the first credentials until a minute before expiry, 503 after.
    let served_until = served_until.unwrap();
    assert!(
        (3530..3545).contains(&served_until),
        "last 200 at {served_until}s"
    );
    assert!(!h.app.shared.is_ready());
    assert_eq!(
        admin(&h.app, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let body = h.fetch().await.json();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("ServiceUnavailable"),
        "{body}"
    );
    // Backoff is capped at 60 s: about 2 h / 30 s average, and never a tight loop.
    let calls = h.sts.calls();
    assert!(
        (100..400).contains(&calls),
        "{calls} STS calls during a 2 h outage"
    );
    assert_eq!(first.access_key_id, "ASIAFAKE000000000001");

    // STS recovers: ready again within the backoff cap.
    h.sts.set_default(Behaviour::Issue);
    let healed_at = tokio::time::Instant::now();
    while h.client_sees().await.is_none() {
        sleep(Duration::from_secs(1)).await;
    }
    assert!(
        healed_at.elapsed() <= Duration::from_secs(61),
        "{:?}",
        healed_at.elapsed()
    );
    assert!(h.app.shared.is_ready());
}

#[tokio::test(start_paused = true)]
async fn outage_backoff_stretches_while_time_is_to_spare_and_tightens_when_short() {
    // 3 h sessions, so the first refresh (18-108 minutes in) finds plenty of time to spare.
    let h = Harness::start_with(4, |h| {
        h.token("sub");
        *h.sts.lifetime.lock().unwrap() = 3 * HOUR;
    });
    h.app.shared.first_credentials().await;
    let expires = h.sts.last_issued().expiration;
    h.sts.set_default(Behaviour::Fail(error(
        ErrorClass::Transient,
        "ServiceUnavailable",
    )));
    let succeeded = h.sts.calls() as usize;
    sleep(3 * HOUR).await;

    let times: Vec<_> = h.sts.call_times.lock().unwrap().clone();
    let failed = &times[succeeded..];
    assert!(failed.len() >= 10, "{} failed calls", failed.len());
    let mut longest_gap_with_time_to_spare = Duration::ZERO;
    for pair in failed.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        // Servable time when the previous call failed (served until a minute before expiry).
        let servable = expires
            .duration_since(pair[0])
            .unwrap_or_default()
            .saturating_sub(MINUTE);
        let spare = servable.saturating_sub(20 * MINUTE).min(5 * MINUTE);
        // Never a wait that eats into the 20 minutes kept in hand, beyond the 60 s cap.
        assert!(
            gap <= spare.max(MINUTE) + Duration::from_millis(500),
            "waited {gap:?} with {servable:?} servable"
        );
        if spare > MINUTE {
            longest_gap_with_time_to_spare = longest_gap_with_time_to_spare.max(gap);
        }
    }
    // With time to spare it did stretch beyond the 60 s transient cap.
    assert!(
        longest_gap_with_time_to_spare > 90 * Duration::from_secs(1),
        "{longest_gap_with_time_to_spare:?}"
    );
    // Once short of time (and after expiry) it retries at least once a minute.
    let short_since = expires - 21 * MINUTE;
    let late: Vec<_> = failed.iter().filter(|t| **t >= short_since).collect();
    assert!(
        late.len() >= 20,
        "{} calls in the last 21 minutes",
        late.len()
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_refusal_retries_slowly_and_never_becomes_ready() {
    let h = Harness::start_with(3, |h| {
        h.token("sub");
        h.sts.set_default(Behaviour::Fail(error(
            ErrorClass::Permanent,
            "AccessDenied",
        )));
    });
    sleep(HOUR).await;
    let calls = h.sts.calls();
    // 30 s base doubling to a 300 s cap: roughly a dozen calls an hour.
    assert!((5..=30).contains(&calls), "{calls} calls");
    assert!(h.client_sees().await.is_none());
    let readyz = admin(&h.app, "/readyz").await;
    assert_eq!(readyz.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&readyz.body).contains("AccessDenied"));
    let metrics = String::from_utf8_lossy(&admin(&h.app, "/metrics").await.body).into_owned();
    assert!(
        metrics.contains(&format!(
            "passport_refresh_total{{role=\"default\",outcome=\"permanent\",code=\"AccessDenied\"}} {calls}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("passport_ready{role=\"default\"} 0"));
}

#[tokio::test(start_paused = true)]
async fn missing_token_file_is_retried_until_it_appears() {
    let h = Harness::start(4);
    sleep(MINUTE).await;
    assert_eq!(h.sts.calls(), 0, "no STS call without a token");
    let body = h.fetch().await.json();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("TokenFileUnreadable"),
        "{body}"
    );

    // An empty file, then junk, are clear errors too.
    std::fs::write(h.dir.path().join("token"), "\n").unwrap();
    sleep(MINUTE).await;
    assert!(
        h.fetch().await.json()["Message"]
            .as_str()
            .unwrap()
            .contains("TokenFileEmpty")
    );
    std::fs::write(h.dir.path().join("token"), "not a jwt").unwrap();
    sleep(MINUTE).await;
    assert!(
        h.fetch().await.json()["Message"]
            .as_str()
            .unwrap()
            .contains("TokenNotJwt")
    );
    assert_eq!(h.sts.calls(), 0);

    h.token("late");
    let appeared = tokio::time::Instant::now();
    h.app.shared.first_credentials().await;
    assert!(appeared.elapsed() <= Duration::from_secs(60));
    assert_eq!(h.sts.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn token_rotation_and_expired_token_reread_the_file() {
    let h = Harness::start_with(5, |h| h.token("first"));
    h.app.shared.first_credentials().await;
    // Kubelet rotates the token; STS says the old one expired on the next call.
    h.token("second");
    h.sts.push(Behaviour::Fail(error(
        ErrorClass::TokenExpired,
        "ExpiredTokenException",
    )));
    while h.sts.calls() < 3 {
        sleep(Duration::from_secs(10)).await;
    }
    let seen = h.sts.tokens_seen.lock().unwrap().clone();
    let subs: Vec<String> = seen
        .iter()
        .map(|jwt| {
            passport_core::token::decode_claims(jwt)
                .unwrap()
                .sub
                .unwrap()
        })
        .collect();
    assert_eq!(subs, ["first", "second", "second"]);
    assert!(h.client_sees().await.is_some());
}

#[tokio::test(start_paused = true)]
async fn credentials_already_expired_or_short_lived_are_handled() {
    let h = Harness::start_with(6, |h| {
        h.token("sub");
        // STS (or a skewed clock) hands back credentials that are already unusable.
        h.sts
            .push(Behaviour::IssueExpiringIn(Duration::from_secs(30)));
        // Then short-lived ones: served, refreshed well before expiry.
        h.sts
            .push(Behaviour::IssueExpiringIn(Duration::from_secs(600)));
    });
    h.app.shared.first_credentials().await;
    assert_eq!(
        h.sts.calls(),
        2,
        "the already-expired credentials were rejected and retried"
    );
    for _ in 0..3600 {
        sleep(Duration::from_secs(1)).await;
        let left = h.client_sees().await.expect("always something valid");
        assert!(left > Duration::from_secs(60));
    }
}

#[tokio::test(start_paused = true)]
async fn wall_clock_steps_never_serve_expired_or_stuck_credentials() {
    let h = Harness::start_with(7, |h| h.token("sub"));
    h.app.shared.first_credentials().await;

    // Stepped forward 50 minutes: the credentials look 10 minutes from expiry; the
    // refresher notices within its check interval and fetches new ones.
    let before = h.sts.calls();
    h.clock.jump_forward(50 * MINUTE);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(h.sts.calls(), before + 1);
    assert!(h.client_sees().await.unwrap() > 50 * MINUTE);

    // Stepped back two hours with STS down: the monotonic deadline still ends serving a
    // minute before the real expiry.
    h.sts
        .set_default(Behaviour::Fail(error(ErrorClass::Transient, "Timeout")));
    let issued_at = tokio::time::Instant::now();
    h.clock.jump_back(2 * HOUR);
    loop {
        sleep(Duration::from_secs(1)).await;
        let reply = h.fetch().await;
        if reply.status != StatusCode::OK {
            break;
        }
    }
    let served_for = issued_at.elapsed();
    assert!(
        served_for >= 58 * MINUTE && served_for <= 59 * MINUTE + Duration::from_secs(2),
        "{served_for:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_sts_is_timed_out_and_retried() {
    let h = Harness::start_with(8, |h| {
        h.token("sub");
        h.sts.push(Behaviour::Hang);
    });
    h.app.shared.first_credentials().await;
    assert_eq!(h.sts.calls(), 2);
    let metrics = String::from_utf8_lossy(&admin(&h.app, "/metrics").await.body).into_owned();
    assert!(
        metrics.contains(
            "passport_refresh_total{role=\"default\",outcome=\"transient\",code=\"Timeout\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_longer_than_transient_errors() {
    let h = Harness::start_with(9, |h| {
        h.token("sub");
        h.sts
            .set_default(Behaviour::Fail(error(ErrorClass::Throttled, "Throttling")));
    });
    sleep(HOUR).await;
    let throttled = h.sts.calls();
    let t = Harness::start_with(9, |t| {
        t.token("sub");
        t.sts.set_default(Behaviour::Fail(error(
            ErrorClass::Transient,
            "IDPCommunicationError",
        )));
    });
    sleep(HOUR).await;
    let transient = t.sts.calls();
    assert!(
        throttled < transient,
        "throttled {throttled} vs transient {transient}"
    );
    assert!(transient <= 150, "{transient}");
}

#[tokio::test(start_paused = true)]
async fn auth_is_checked_before_anything_is_served() {
    let h = Harness::start_with(10, |h| h.token("sub"));
    h.app.shared.first_credentials().await;
    let missing = fetch(&h.app, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["Code"], "MissingAuthorization");
    let wrong = fetch(&h.app, Some("0123")).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.json()["code"], "InvalidAuthorization");
    let bearer = fetch(&h.app, Some(&format!("Bearer {AUTH}"))).await;
    assert_eq!(bearer.status, StatusCode::FORBIDDEN);
    for reply in [&missing, &wrong, &bearer] {
        assert_eq!(reply.headers["content-type"], "application/json");
        assert!(!String::from_utf8_lossy(&reply.body).contains("PLANTED"));
    }
    let ok = h.fetch().await;
    assert_eq!(ok.status, StatusCode::OK);
    let issued = h.sts.last_issued();
    let body = ok.json();
    assert_eq!(body["AccessKeyId"], issued.access_key_id);
    assert_eq!(body["SecretAccessKey"], issued.secret_access_key.expose());
    assert_eq!(body["Token"], issued.session_token.expose());
    assert_eq!(body["AccountId"], "111122223333");
    assert_eq!(body["RoleArn"], ROLE_ARN);
}
