//! Plant known secrets (secret key, session token, web-identity JWT, client auth token),
//! run every path with logging at TRACE for every crate (the SDK and hyper included), and
//! scan all log output, error bodies and `Debug` renderings: zero hits allowed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use passport_core::clock::SystemClock;
use passport_core::secret::Secret;
use passport_core::server::ServerSettings;
use passport_core::sidecar::{Shutdown, Sidecar};
use passport_core::sts::{StsSettings, StsSource};
use tokio_util::sync::CancellationToken;

const SECRET_KEY: &str = "PLANTEDsecretKEY0123456789abcdefghijklmn";
const SESSION_TOKEN: &str = "PLANTEDsessionTOKEN/IQoJb3JpZ2luX2VjEXAMPLE==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let logs = LogCapture::default();
    tracing_subscriber::fmt()
        .with_env_filter(passport::logging::filter("trace").unwrap())
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "system:serviceaccount:ns:app");
    let jwt = std::fs::read_to_string(&token_file).unwrap();
    let expiration = passport_core::clock::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(3600),
    );
    let stub = StsStub::start((
        200,
        success_xml(
            "ASIAPLANTED000000001",
            SECRET_KEY,
            SESSION_TOKEN,
            &expiration,
        ),
    ))
    .await;
    // Errors that echo the token back, as a careless proxy or IdP might.
    stub.push(
        400,
        error_xml("InvalidIdentityToken", &format!("token {jwt} is not valid")),
    );
    stub.push(500, format!("<html>upstream said {jwt}</html>"));
    stub.push(200, format!("<AssumeRoleWithWebIdentityResponse>{jwt}"));

    let auth_file = dir.path().join("auth");
    let auth = passport_core::auth::generate();
    passport_core::auth::write_token_file(&auth_file, &auth, 0o600).unwrap();
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        auth_token: auth.clone(),
        max_connections: 64,
        header_read_timeout: Duration::from_secs(5),
        imds: Some(passport_core::server::imds::ImdsSettings::new(
            &ROLE_ARN.parse().unwrap(),
            &"us-east-1".parse().unwrap(),
            false,
        )),
        legacy: Default::default(),
    };
    let source = Arc::new(StsSource::new(&StsSettings {
        region: "us-east-1".parse().unwrap(),
        endpoint: Some(stub.url.clone()),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }));
    let mut refresh = refresh_settings(token_file);
    refresh.attempt_timeout = Duration::from_secs(5);
    let sidecar = Sidecar::bind(
        refresh.clone(),
        settings.clone(),
        source.clone(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let (addr, admin_addr, shared) = (
        sidecar.local_addr(),
        sidecar.admin_addr().unwrap(),
        sidecar.shared(),
    );
    let stop = CancellationToken::new();
    let done = tokio::spawn(sidecar.run(stop.clone(), Shutdown::PROMPT));

    // Three failures (backoff about 0.5-1 s, 1-2 s, 2-4 s), then success.
    let mut exposed = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            // Error bodies served while failing.
            let reply = http(
                addr,
                "GET",
                "/v1/credentials",
                &[("authorization", auth.expose())],
            )
            .await;
            if reply.status == hyper::StatusCode::OK {
                break reply;
            }
            exposed.push(String::from_utf8_lossy(&reply.body).into_owned());
            exposed.push(
                String::from_utf8_lossy(&http(admin_addr, "GET", "/readyz", &[]).await.body)
                    .into_owned(),
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let ok = wait.await.expect("credentials after the scripted failures");
    assert_eq!(
        ok.json()["SecretAccessKey"],
        SECRET_KEY,
        "the one place the secret belongs"
    );
    assert_eq!(stub.requests.lock().unwrap().len(), 4);

    for (path, headers) in [
        ("/v1/credentials", vec![]),
        ("/v1/credentials", vec![("authorization", "wrong")]),
        (
            "/v1/credentials",
            vec![("authorization", auth.expose()), ("host", "evil.example")],
        ),
        ("/nope", vec![("authorization", auth.expose())]),
    ] {
        exposed.push(
            String::from_utf8_lossy(&http(addr, "GET", path, &headers).await.body).into_owned(),
        );
    }
    exposed.push(
        String::from_utf8_lossy(
            &http(
                addr,
                "POST",
                "/v1/credentials",
                &[("authorization", auth.expose())],
            )
            .await
            .body,
        )
        .into_owned(),
    );
    // IMDS: the token dance and its refusals (the credentials body itself is the one
    // legitimate place for the secrets, as with the container endpoint).
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "60")];
    let imds_token = http(addr, "PUT", "/latest/api/token", &ttl).await;
    assert_eq!(imds_token.status, hyper::StatusCode::OK);
    let imds_token = String::from_utf8(imds_token.body.to_vec()).unwrap();
    for (method, path, headers) in [
        (
            "PUT",
            "/latest/api/token",
            vec![
                ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
                ("x-forwarded-for", "1.2.3.4"),
            ],
        ),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/app",
            vec![],
        ),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/app",
            vec![("x-aws-ec2-metadata-token", "forged")],
        ),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/",
            vec![("x-aws-ec2-metadata-token", imds_token.as_str())],
        ),
        (
            "GET",
            "/latest/meta-data/iam/info",
            vec![("x-aws-ec2-metadata-token", imds_token.as_str())],
        ),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/other",
            vec![("x-aws-ec2-metadata-token", imds_token.as_str())],
        ),
    ] {
        exposed.push(
            String::from_utf8_lossy(&http(addr, method, path, &headers).await.body).into_owned(),
        );
    }
    for path in ["/metrics", "/readyz", "/healthz", "/v1/credentials"] {
        exposed.push(
            String::from_utf8_lossy(&http(admin_addr, "GET", path, &[]).await.body).into_owned(),
        );
    }
    exposed.push(format!("{:?}", shared.snapshot.load()));
    exposed.push(format!("{settings:?} {refresh:?} {source:?}"));
    exposed.push(format!(
        "{:?}",
        passport_core::token::read_token_file(&refresh.token_file).unwrap()
    ));
    exposed.push(format!(
        "{:?}",
        passport_core::sts::AssumeRoleRequest {
            role_arn: ROLE_ARN.parse().unwrap(),
            session_name: "test-session".parse().unwrap(),
            web_identity_token: Secret::new(jwt.clone()),
            duration_seconds: 900,
        }
    ));
    stop.cancel();
    done.await.unwrap();

    let log_text = logs.text();
    assert!(
        log_text.contains("refreshed credentials"),
        "logging was captured"
    );
    assert!(
        log_text.contains("ASIAPLANTED000000001"),
        "the access key id is logged"
    );
    assert!(
        log_text.contains("InvalidIdentityToken"),
        "errors are logged"
    );
    assert!(
        log_text.contains("read web-identity token"),
        "passport's own DEBUG output was captured"
    );
    exposed.push(log_text);
    let all = exposed.join("\n");
    for (name, secret) in [
        ("secret key", SECRET_KEY),
        ("session token", SESSION_TOKEN),
        ("web-identity JWT", jwt.as_str()),
        ("JWT signature+payload", jwt.split_once('.').unwrap().1),
        ("client auth token", auth.expose()),
    ] {
        if let Some(at) = all.find(secret) {
            panic!(
                "{name} leaked: ...{}...",
                &all[at.saturating_sub(300)..(at + 40).min(all.len())]
            );
        }
    }
}
