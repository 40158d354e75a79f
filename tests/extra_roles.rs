//! Several roles from one sidecar (`serve --extra-role NAME=ARN`): each served at
//! `/v1/credentials/NAME` from its own refresher, `/readyz` over all of them, metrics and
//! logs by role, and one role failing never taking the others down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::aws::RoleName;
use passport_core::clock::{Clock, ManualClock};
use passport_core::metrics::Metrics;
use passport_core::refresh::{Refresher, Shared};
use passport_core::sidecar::Shutdown;
use passport_core::sts::ErrorClass;
use tokio_util::sync::CancellationToken;

const REPORTS_ARN: &str = "arn:aws:iam::111122223333:role/reports";

fn keys(access_key_id: &'static str) -> Behaviour {
    Behaviour::IssueKeys {
        access_key_id,
        secret_access_key: "PLANTED-SECRET-KEY-extra-roles",
        session_token: "PLANTED-SESSION-TOKEN-extra-roles",
    }
}

/// Over real sockets: each role at its own path, behind the same client authentication.
#[tokio::test]
async fn each_role_is_served_at_its_own_path_behind_the_same_token() {
    let clock: Arc<dyn Clock> = Arc::new(passport_core::clock::SystemClock);
    let default_sts = FakeSts::new(clock.clone());
    default_sts.set_default(keys("ASIADEFAULT000000001"));
    let reports_sts = FakeSts::new(clock.clone());
    reports_sts.set_default(keys("ASIAREPORTS000000001"));
    let running = start_sidecar(default_sts.clone())
        .extra_role("reports", REPORTS_ARN, reports_sts.clone())
        .run(Shutdown::PROMPT)
        .await;
    let reports = running.role("reports");
    tokio::time::timeout(Duration::from_secs(10), reports.first_credentials())
        .await
        .expect("the extra role's first credentials");

    let auth = [("authorization", AUTH)];
    let default = http(running.addr, "GET", "/v1/credentials", &auth).await;
    assert_eq!(default.status, 200, "{}", default.text());
    assert_eq!(default.json()["AccessKeyId"], "ASIADEFAULT000000001");
    let extra = http(running.addr, "GET", "/v1/credentials/reports", &auth).await;
    assert_eq!(extra.status, 200, "{}", extra.text());
    assert_eq!(extra.json()["AccessKeyId"], "ASIAREPORTS000000001");

    // Same rules as the default path: no token, no credentials, and no hint of which
    // names exist.
    for path in ["/v1/credentials/reports", "/v1/credentials/nope"] {
        let reply = http(running.addr, "GET", path, &[]).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
    }
    let unknown = http(running.addr, "GET", "/v1/credentials/nope", &auth).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "NoSuchRole");
    let nested = http(running.addr, "GET", "/v1/credentials/reports/x", &auth).await;
    assert_eq!(nested.status, 404);

    let ready = http(running.admin(), "GET", "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["roles"]["reports"]["status"], "ready");
    assert_eq!(ready.json()["roles"]["default"]["status"], "ready");
    let metrics = http(running.admin(), "GET", "/metrics", &[])
        .await
        .text()
        .to_owned();
    assert!(
        metrics.contains("passport_ready{role=\"reports\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("passport_refresh_total{role=\"reports\",outcome=\"success\",code=\"\"} 1")
    );
    assert!(
        metrics
            .contains("passport_refresh_total{role=\"default\",outcome=\"success\",code=\"\"} 1")
    );
    running.shutdown().await;
}

/// The unauthenticated listener (`--relative-uri-listen`, the relative-uri level) serves
/// the default role only: an extra role, which needs the token, is not served there, and
/// the answer does not say whether the name exists.
#[tokio::test]
async fn the_unauthenticated_listener_serves_no_extra_role() {
    let clock: Arc<dyn Clock> = Arc::new(passport_core::clock::SystemClock);
    let mut builder = start_sidecar(FakeSts::new(clock.clone())).extra_role(
        "reports",
        REPORTS_ARN,
        FakeSts::new(clock.clone()),
    );
    builder.server.legacy.relative_uri_listen = Some("127.0.0.1:0".parse().unwrap());
    let running = builder.run(Shutdown::PROMPT).await;
    let relative = running.relative.expect("the relative-uri listener");
    assert_eq!(
        http(relative, "GET", "/v1/credentials", &[]).await.status,
        200
    );
    let auth = [("authorization", AUTH)];
    for path in ["/v1/credentials/reports", "/v1/credentials/nope"] {
        for headers in [&[][..], &auth[..]] {
            let reply = http(relative, "GET", path, headers).await;
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.json()["code"], "NotFound", "{path}: {}", reply.text());
        }
    }
    running.shutdown().await;
}

/// An extra role refused by STS: the default role is served throughout, the extra role's
/// path says why, `/readyz` names it, and its metrics count it.
#[tokio::test]
async fn a_refused_extra_role_leaves_the_default_served_and_readyz_names_it() {
    let clock: Arc<dyn Clock> = Arc::new(passport_core::clock::SystemClock);
    let default_sts = FakeSts::new(clock.clone());
    let reports_sts = FakeSts::new(clock.clone());
    reports_sts.set_default(Behaviour::Fail(error(
        ErrorClass::Permanent,
        "AccessDenied",
    )));
    let running = start_sidecar(default_sts)
        .extra_role("reports", REPORTS_ARN, reports_sts.clone())
        .run(Shutdown::PROMPT)
        .await;
    // Start-up poll: the refused first attempt happens at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reports_sts.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no STS call for the extra role"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let auth = [("authorization", AUTH)];
    let default = http(running.addr, "GET", "/v1/credentials", &auth).await;
    assert_eq!(default.status, 200);
    let extra = http(running.addr, "GET", "/v1/credentials/reports", &auth).await;
    assert_eq!(extra.status, 503);
    assert_eq!(extra.header("retry-after"), Some("5"));
    assert!(extra.text().contains("AccessDenied"), "{}", extra.text());

    let ready = http(running.admin(), "GET", "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = ready.json();
    assert_eq!(body["code"], "RoleNotReady");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("reports: ") && message.contains("AccessDenied"),
        "{message}"
    );
    assert_eq!(body["roles"]["default"]["status"], "ready");
    assert_eq!(body["roles"]["reports"]["status"], "not ready");
    let metrics = http(running.admin(), "GET", "/metrics", &[])
        .await
        .text()
        .to_owned();
    assert!(
        metrics.contains("passport_ready{role=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("passport_ready{role=\"reports\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "passport_refresh_total{role=\"reports\",outcome=\"permanent\",code=\"AccessDenied\"}"
        ),
        "{metrics}"
    );
    running.shutdown().await;
}

/// What the default role's clients saw over 12 paused hours, with or without a failing
/// extra role beside it.
struct Scenario {
    default_calls: u64,
    default_call_times: Vec<std::time::SystemTime>,
    min_left: Duration,
    extra_back_after_min: Option<u64>,
}

async fn twelve_hours(with_extra: bool) -> Scenario {
    let clock = Arc::new(ManualClock::new(start_time()));
    let default_sts = FakeSts::new(clock.clone());
    let reports_sts = FakeSts::new(clock.clone());
    reports_sts.set_default(Behaviour::Fail(error(
        ErrorClass::Permanent,
        "AccessDenied",
    )));
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "system:serviceaccount:default:app");
    let reports = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
    let mut app = app(Arc::new(Shared::new(
        clock.clone(),
        Arc::new(Metrics::new()),
    )));
    let stop = CancellationToken::new();
    let settings = refresh_settings(token_file);
    tokio::spawn(
        Refresher::new(settings.clone(), default_sts.clone(), app.shared.clone())
            .with_seed(1)
            .run(stop.clone()),
    );
    if with_extra {
        app.extra
            .insert("reports".parse::<RoleName>().unwrap(), reports.clone());
        let reports_settings = passport_core::refresh::RefreshSettings {
            role_arn: REPORTS_ARN.parse().unwrap(),
            ..settings
        };
        tokio::spawn(
            Refresher::new(reports_settings, reports_sts.clone(), reports.clone())
                .with_role("reports".parse().unwrap())
                .with_seed(2)
                .run(stop.clone()),
        );
    }

    let minute = Duration::from_secs(60);
    let mut min_left = Duration::MAX;
    let mut extra_back_after_min = None;
    for m in 0..12 * 60 {
        if m == 6 * 60 {
            reports_sts.set_default(Behaviour::Issue);
        }
        tokio::time::sleep(minute).await;
        let reply = fetch_role(&app, None, Some(AUTH)).await;
        assert_eq!(reply.status, StatusCode::OK, "minute {m}: {}", reply.text());
        let expiration = parse_expiration(reply.json()["Expiration"].as_str().unwrap());
        min_left = min_left.min(expiration.duration_since(clock.wall()).unwrap());
        if !with_extra {
            continue;
        }
        let extra = fetch_role(&app, Some("reports"), Some(AUTH)).await;
        if m < 6 * 60 {
            assert_eq!(extra.status, StatusCode::SERVICE_UNAVAILABLE, "minute {m}");
        } else if extra.status == StatusCode::OK && extra_back_after_min.is_none() {
            extra_back_after_min = Some(m - 6 * 60);
        }
    }
    stop.cancel();
    Scenario {
        default_calls: default_sts.calls(),
        default_call_times: default_sts.call_times.lock().unwrap().clone(),
        min_left,
        extra_back_after_min,
    }
}

/// Paused time, 12 hours: the extra role is refused for the first 6, then allowed. The
/// default role refreshes exactly as it does alone (same seed, same STS calls at the same
/// times), its clients never see less than 15 minutes left or an error, and the extra role
/// is served again within its back-off once STS allows it.
#[tokio::test(start_paused = true)]
async fn an_extra_role_failing_for_hours_never_disturbs_the_default_role() {
    let alone = twelve_hours(false).await;
    // Logs as `serve --log-format json` writes them; the tasks run on this thread.
    let logs = LogCapture::default();
    let guard = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .finish();
    let guard = tracing::subscriber::set_default(guard);
    let beside = twelve_hours(true).await;
    drop(guard);
    let lines: Vec<serde_json::Value> = logs
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let said = |role: &str, what: &str| {
        lines
            .iter()
            .any(|l| l["role"] == role && l.to_string().contains(what))
    };
    assert!(said("reports", "AccessDenied"), "{}", logs.text());
    assert!(said("reports", "refreshed credentials"));
    assert!(said("default", "refreshed credentials"));
    assert!(
        !said("default", "AccessDenied"),
        "a refusal logged under the wrong role"
    );
    assert_eq!(beside.default_calls, alone.default_calls);
    assert_eq!(beside.default_call_times, alone.default_call_times);
    assert!(
        beside.min_left >= Duration::from_secs(15 * 60),
        "default role clients saw {:?} left",
        beside.min_left
    );
    let back = beside
        .extra_back_after_min
        .expect("the extra role is served again once STS allows it");
    // Permanent refusals back off to at most 15 minutes (schedule.rs).
    assert!(back <= 16, "extra role back after {back} min");
}
