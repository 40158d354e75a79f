//! CI smoke for `passport loadtest` against a real `Sidecar` with a fake credential source:
//! correctness only (zero errors, every body valid, no STS calls per request), no timing.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use passport::clock::SystemClock;
use passport::credentials::Credentials;
use passport::loadtest::{self, LoadtestConfig, Stop};
use passport::refresh::RefreshSettings;
use passport::secret::Secret;
use passport::server::ServerSettings;
use passport::sidecar::{Shutdown, Sidecar};
use passport::sts::{AssumeRoleRequest, BoxFuture, CredentialSource, SourceError};
use tokio_util::sync::CancellationToken;

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
const AUTH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct FakeSts {
    calls: AtomicU64,
}

impl CredentialSource for FakeSts {
    fn assume_role<'a>(
        &'a self,
        _request: &'a AssumeRoleRequest,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, SeqCst);
            Ok(Credentials {
                access_key_id: "ASIAFAKELOADTEST".into(),
                secret_access_key: Secret::new("secret"),
                session_token: Secret::new("session-token"),
                expiration: SystemTime::now() + Duration::from_secs(3600),
                assumed_role_arn: Some(
                    "arn:aws:sts::123456789012:assumed-role/bench/loadtest".into(),
                ),
            })
        })
    }
}

struct Running {
    url: String,
    metrics_url: String,
    sts: Arc<FakeSts>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, JWT).unwrap();
    let sts = Arc::new(FakeSts {
        calls: AtomicU64::new(0),
    });
    let sidecar = Sidecar::bind(
        RefreshSettings {
            role_arn: "arn:aws:iam::123456789012:role/bench".into(),
            session_name: "loadtest".into(),
            duration_seconds: 3600,
            token_file,
            attempt_timeout: Duration::from_secs(5),
        },
        ServerSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            auth_token: Secret::new(AUTH),
            max_connections: 2048,
            header_read_timeout: Duration::from_secs(5),
        },
        sts.clone(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let url = format!("http://{}/v1/credentials", sidecar.local_addr());
    let metrics_url = format!("http://{}/metrics", sidecar.admin_addr().unwrap());
    let shared = sidecar.shared();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sidecar.run(
        stop.clone(),
        Shutdown {
            drain_delay: Duration::ZERO,
            timeout: Duration::from_secs(1),
        },
    ));
    tokio::time::timeout(Duration::from_secs(10), shared.first_credentials())
        .await
        .unwrap();
    Running {
        url,
        metrics_url,
        sts,
        stop,
        task,
        _dir: dir,
    }
}

fn config(r: &Running) -> LoadtestConfig {
    let mut c = LoadtestConfig::new(&r.url);
    c.auth_token = Some(AUTH.into());
    c.metrics_url = Some(r.metrics_url.clone());
    c.expect_access_key_id = Some("ASIAFAKELOADTEST".into());
    c.concurrency = 16;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_new_connection_and_fixed_rate_are_clean() {
    let r = start().await;
    let calls_before = r.sts.calls.load(SeqCst);

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

    assert_eq!(r.sts.calls.load(SeqCst), calls_before);
    r.stop.cancel();
    r.task.await.unwrap();
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
    r.stop.cancel();
    r.task.await.unwrap();

    // Nothing listening: connect errors, no hang.
    let mut c = LoadtestConfig::new("http://127.0.0.1:1/v1/credentials");
    c.concurrency = 2;
    c.stop = Stop::Requests(10);
    let report = loadtest::run(c).await.unwrap();
    assert_eq!(report.errors.connect, 10);
    assert_eq!(report.fetches, 0);
}

/// A minimal IMDSv2 stand-in, for the `--imds` sequence.
async fn fake_imds() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let exp =
        passport::clock::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let creds = Bytes::from(format!(
        r#"{{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAFAKELOADTEST","SecretAccessKey":"s","Token":"t","Expiration":"{exp}"}}"#
    ));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let creds = creds.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let creds = creds.clone();
                async move {
                    let token_ok = req
                        .headers()
                        .get("x-aws-ec2-metadata-token")
                        .is_some_and(|v| v == "tok");
                    let (status, body) = match (req.method().as_str(), req.uri().path()) {
                        ("PUT", "/latest/api/token")
                            if req
                                .headers()
                                .contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
                        {
                            (StatusCode::OK, Bytes::from_static(b"tok"))
                        }
                        ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => {
                            (StatusCode::OK, Bytes::from_static(b"bench"))
                        }
                        ("GET", "/latest/meta-data/iam/security-credentials/bench") if token_ok => {
                            (StatusCode::OK, creds)
                        }
                        _ => (StatusCode::UNAUTHORIZED, Bytes::new()),
                    };
                    let mut resp = Response::new(Full::new(body));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_sequence() {
    let url = fake_imds().await;
    for new_connection in [false, true] {
        let mut c = LoadtestConfig::new(&url);
        c.imds = true;
        c.concurrency = 4;
        c.new_connection = new_connection;
        c.stop = Stop::Requests(100);
        let report = loadtest::run(c).await.unwrap();
        assert!(report.clean(), "{}", loadtest::render(&report));
        assert_eq!(report.http_requests, 300);
        assert_eq!(report.valid_bodies, 100);
    }
}
