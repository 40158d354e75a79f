//! CI smoke for `passport loadtest` against a real `Sidecar` with a fake credential source:
//! correctness only (zero errors, every body valid, no STS calls per request), no timing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use passport::commands::loadtest::{self, LoadtestConfig, Stop};
use passport_core::clock::SystemClock;
use passport_core::sidecar::Shutdown;

/// A sidecar serving both endpoints, the URLs the load generator needs, and its fake STS.
struct Harness {
    base: String,
    url: String,
    metrics_url: String,
    sts: Arc<FakeSts>,
    access_key_id: String,
    sidecar: Running,
}

async fn start() -> Harness {
    let sts = FakeSts::new(Arc::new(SystemClock));
    let sidecar = start_sidecar(sts.clone())
        .max_connections(2048)
        .imds(false)
        .run(Shutdown::PROMPT)
        .await;
    let base = format!("http://{}", sidecar.addr);
    Harness {
        url: format!("{base}/v1/credentials"),
        metrics_url: format!("http://{}/metrics", sidecar.admin()),
        base,
        access_key_id: sts.last_issued().access_key_id,
        sts,
        sidecar,
    }
}

fn config(r: &Harness) -> LoadtestConfig {
    let mut c = LoadtestConfig::new(&r.url);
    c.auth_token = Some(AUTH.into());
    c.metrics_url = Some(r.metrics_url.clone());
    c.expect_access_key_id = Some(r.access_key_id.clone());
    c.concurrency = 16;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_new_connection_and_fixed_rate_are_clean() {
    let r = start().await;
    let calls_before = r.sts.calls();

    let mut c = config(&r);
    c.stop = Stop::Requests(2_000);
    let report = loadtest::run(c).await.unwrap();
    assert!(report.clean(), "{}", loadtest::render(&report));
    assert_eq!(report.fetches, 2_000);
    assert_eq!(report.valid_bodies, 2_000);
    assert_eq!(report.statuses.get(&200), Some(&2_000));
    assert_eq!(report.sts_calls, Some(0));

    let mut c = config(&r);
    c.stop = Stop::Requests(200);
    c.new_connection = true;
    let report = loadtest::run(c).await.unwrap();
    assert!(report.clean(), "{}", loadtest::render(&report));
    assert_eq!(report.valid_bodies, 200);
    assert_eq!(report.sts_calls, Some(0));

    // Fixed rate: 1,000/s for 0.3 s is ~300 fetches, whatever the concurrency.
    let mut c = config(&r);
    c.stop = Stop::After(Duration::from_millis(300));
    c.rate = Some(1_000.0);
    let report = loadtest::run(c).await.unwrap();
    assert!(report.clean(), "{}", loadtest::render(&report));
    assert!((250..=310).contains(&report.fetches), "{}", report.fetches);

    assert_eq!(r.sts.calls(), calls_before);
    r.sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_answers_are_not_throughput() {
    let r = start().await;
    // Wrong token: every answer is a 403, counted as such, and the run is not clean.
    let mut c = config(&r);
    c.auth_token = Some("wrong".into());
    c.stop = Stop::Requests(50);
    let report = loadtest::run(c).await.unwrap();
    assert!(!report.clean());
    assert_eq!(report.statuses.get(&403), Some(&50));
    assert_eq!(report.valid_bodies, 0);
    // Another key than expected: invalid bodies.
    let mut c = config(&r);
    c.expect_access_key_id = Some("ASIAOTHER".into());
    c.stop = Stop::Requests(20);
    let report = loadtest::run(c).await.unwrap();
    assert_eq!(report.errors.invalid_body, 20);
    assert!(!report.clean());
    r.sidecar.shutdown().await;

    // Nothing listening: connect errors, no hang.
    let mut c = LoadtestConfig::new("http://127.0.0.1:1/v1/credentials");
    c.concurrency = 2;
    c.stop = Stop::Requests(10);
    let report = loadtest::run(c).await.unwrap();
    assert_eq!(report.errors.connect, 10);
    assert_eq!(report.fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_sequence_against_passport() {
    let r = start().await;
    for new_connection in [false, true] {
        let mut c = LoadtestConfig::new(&r.base);
        c.imds = true;
        c.concurrency = 4;
        c.new_connection = new_connection;
        c.metrics_url = Some(r.metrics_url.clone());
        c.expect_access_key_id = Some(r.access_key_id.clone());
        c.stop = Stop::Requests(100);
        let report = loadtest::run(c).await.unwrap();
        assert!(report.clean(), "{}", loadtest::render(&report));
        assert_eq!(
            report.http_requests, 300,
            "token PUT, role listing, credentials per fetch"
        );
        assert_eq!(report.valid_bodies, 100);
        assert_eq!(report.sts_calls, Some(0));
    }
    r.sidecar.shutdown().await;
}
