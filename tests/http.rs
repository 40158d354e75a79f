//! The sidecar over real loopback sockets: routing, statuses, Host check, the cache under
//! concurrency, the drain on shutdown, and the real aws-sdk-sts client against a stub.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::clock::SystemClock;
use passport_core::sidecar::Shutdown;
use passport_core::sts::{StsSettings, StsSource};

async fn start(
    source: Arc<dyn passport_core::sts::CredentialSource>,
    shutdown: Shutdown,
) -> Running {
    start_sidecar(source)
        .max_connections(4096)
        .run(shutdown)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_fetches_make_no_extra_sts_calls() {
    let sts = FakeSts::new(Arc::new(SystemClock));
    let r = start(sts.clone(), Shutdown::PROMPT).await;
    assert_eq!(sts.calls(), 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let addr = r.addr;
        tasks.spawn(async move {
            http(addr, "GET", "/v1/credentials", &[("authorization", AUTH)]).await
        });
    }
    let mut bodies = std::collections::HashSet::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        bodies.insert(reply.body);
    }
    assert_eq!(bodies.len(), 1, "every client got the same rendered body");
    assert_eq!(sts.calls(), 1, "fetches never reach STS");
    let metrics = http(r.admin(), "GET", "/metrics", &[]).await;
    assert!(
        String::from_utf8_lossy(&metrics.body)
            .contains("passport_http_requests_total{status=\"200\"} 1000")
    );
    r.shutdown().await;
}

#[tokio::test]
async fn routing_methods_and_host_check() {
    let sts = FakeSts::new(Arc::new(SystemClock));
    let r = start(sts.clone(), Shutdown::PROMPT).await;
    let a = r.addr;
    let auth = [("authorization", AUTH)];

    let ok = http(a, "GET", "/v1/credentials?ignored=1", &auth).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["content-type"], "application/json");
    let head = http(a, "HEAD", "/v1/credentials", &auth).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.headers["content-length"], ok.body.len().to_string());

    let post = http(a, "POST", "/v1/credentials", &auth).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    let missing = http(a, "GET", "/nope", &auth).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["Code"], "NotFound");

    // DNS rebinding: a foreign Host is refused even with the right token.
    let rebound = http(
        a,
        "GET",
        "/v1/credentials",
        &[("authorization", AUTH), ("host", "evil.example:9911")],
    )
    .await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    assert_eq!(rebound.json()["Code"], "InvalidHost");
    let local = http(
        a,
        "GET",
        "/v1/credentials",
        &[("authorization", AUTH), ("host", "localhost")],
    )
    .await;
    assert_eq!(local.status, StatusCode::OK);

    // The admin listener never serves credentials.
    let admin_creds = http(r.admin(), "GET", "/v1/credentials", &auth).await;
    assert_eq!(admin_creds.status, StatusCode::NOT_FOUND);
    assert_eq!(
        http(r.admin(), "GET", "/healthz", &[]).await.status,
        StatusCode::OK
    );
    let ready = http(r.admin(), "GET", "/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert!(!String::from_utf8_lossy(&ready.body).contains("ASIA"));
    r.shutdown().await;
}

#[tokio::test]
async fn keeps_serving_during_the_drain_delay_then_stops() {
    let sts = FakeSts::new(Arc::new(SystemClock));
    // A long drain: the assertion does not depend on timing, only on order.
    let mut r = start(
        sts.clone(),
        Shutdown {
            drain_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        },
    )
    .await;
    r.stop.cancel();
    tokio::task::yield_now().await;
    let during = http(r.addr, "GET", "/v1/credentials", &[("authorization", AUTH)]).await;
    assert_eq!(
        during.status,
        StatusCode::OK,
        "the application may still need credentials while shutting down"
    );
    assert!(!r.done.as_ref().unwrap().is_finished());
    r.done.take().unwrap().abort();
}

#[tokio::test]
async fn shutdown_lets_open_connections_finish_and_closes_the_listener() {
    let sts = FakeSts::new(Arc::new(SystemClock));
    let mut r = start(sts.clone(), Shutdown::PROMPT).await;
    // An idle keep-alive connection must not hold the shutdown hostage.
    let stream = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/v1/credentials")
        .header("authorization", AUTH)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(
        sender.send_request(req).await.unwrap().status(),
        StatusCode::OK
    );
    r.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), r.done.take().unwrap())
        .await
        .expect("stopped promptly")
        .unwrap();
    // The server closed the idle connection gracefully.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("connection closed")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(r.addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn the_real_sts_client_parses_credentials_and_classifies_errors() {
    let expiration = passport_core::clock::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(3600),
    );
    let stub = StsStub::start((
        200,
        success_xml(
            "ASIASTUB000000000001",
            "stub/secret+key",
            "stub-session-token",
            &expiration,
        ),
    ))
    .await;
    stub.push(
        400,
        error_xml(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider",
        ),
    );
    stub.push(400, error_xml("Throttling", "Rate exceeded"));
    stub.push(503, "<html>service unavailable</html>".into());
    stub.push(200, "<AssumeRoleWithWebIdentityResponse><truncated".into());
    stub.push(
        403,
        error_xml(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
    );
    let source = StsSource::new(&StsSettings {
        region: "us-east-1".parse().unwrap(),
        endpoint: Some(stub.url.clone()),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    });
    let dir = tempfile::tempdir().unwrap();
    let token = passport_core::token::read_token_file(&write_token(dir.path(), "sub")).unwrap();
    let request = passport_core::sts::AssumeRoleRequest {
        role_arn: ROLE_ARN.parse().unwrap(),
        session_name: "test-session".parse().unwrap(),
        web_identity_token: token.jwt.clone(),
        duration_seconds: 3600,
    };
    use passport_core::sts::{CredentialSource, ErrorClass::*};
    let expect = [
        (TokenRejected, "InvalidIdentityToken"),
        (Throttled, "Throttling"),
        (Transient, ""),
        (Transient, "MalformedResponse"),
        (Permanent, "AccessDenied"),
    ];
    for (class, code) in expect {
        let err = source.assume_role(&request).await.unwrap_err();
        assert_eq!(err.class, class, "{err}");
        if !code.is_empty() {
            assert_eq!(err.code, code);
        }
    }
    let creds = source.assume_role(&request).await.unwrap();
    assert_eq!(creds.access_key_id, "ASIASTUB000000000001");
    assert_eq!(creds.secret_access_key.expose(), "stub/secret+key");
    assert_eq!(creds.session_token.expose(), "stub-session-token");
    assert_eq!(
        passport_core::clock::format_rfc3339_seconds(creds.expiration),
        expiration
    );
    assert_eq!(creds.account_id(), Some("111122223333"));

    // What went over the wire: the unsigned Query API call with our parameters.
    let sent = stub.requests.lock().unwrap().last().unwrap().clone();
    let params: std::collections::HashMap<String, String> = form_urlencoded::parse(sent.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(params["Version"], "2011-06-15");
    assert_eq!(params["RoleArn"], ROLE_ARN);
    assert_eq!(params["RoleSessionName"], "test-session");
    assert_eq!(params["DurationSeconds"], "3600");
    assert_eq!(params["WebIdentityToken"], token.jwt.expose());
}
