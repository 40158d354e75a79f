//! The pieces older SDKs need (issue 13), over real loopback sockets: the unauthenticated
//! `--relative-uri-listen` listener (credentials path only, Host check, shared connection
//! cap and metrics), a shared auth token (wrong token 403, rotation picked up without a
//! restart), [::1] beside 127.0.0.1, and IMDSv1 off unless asked for.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::clock::SystemClock;
use passport_core::secret::Secret;
use passport_core::server::imds::ImdsSettings;
use passport_core::server::{LegacySettings, ServerSettings};
use passport_core::sidecar::{Shutdown, Sidecar};
use tokio_util::sync::CancellationToken;

struct Running {
    sidecar: std::net::SocketAddr,
    relative: Option<std::net::SocketAddr>,
    ipv6: Option<std::net::SocketAddr>,
    admin: std::net::SocketAddr,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.done.await.unwrap();
    }
}

async fn start(
    auth_token: &str,
    legacy: LegacySettings,
    imds_allow_v1: bool,
    max_connections: usize,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "system:serviceaccount:ns:app");
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        auth_token: Secret::new(auth_token),
        max_connections,
        header_read_timeout: Duration::from_secs(5),
        imds: Some(ImdsSettings::new(
            &ROLE_ARN.parse().unwrap(),
            &"us-east-1".parse().unwrap(),
            imds_allow_v1,
        )),
        legacy,
    };
    let sts = FakeSts::new(Arc::new(SystemClock));
    let sidecar = Sidecar::bind(
        refresh_settings(token),
        settings,
        sts,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let running = Running {
        sidecar: sidecar.local_addr(),
        relative: sidecar.relative_uri_addr(),
        ipv6: sidecar.ipv6_addr(),
        admin: sidecar.admin_addr().unwrap(),
        stop: CancellationToken::new(),
        done: tokio::spawn(async {}),
        _dir: dir,
    };
    let shared = sidecar.shared();
    let stop = running.stop.clone();
    let done = tokio::spawn(sidecar.run(stop, Shutdown::PROMPT));
    tokio::time::timeout(Duration::from_secs(10), shared.first_credentials())
        .await
        .expect("ready");
    Running { done, ..running }
}

fn relative() -> LegacySettings {
    LegacySettings {
        relative_uri_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_unauthenticated_listener_serves_only_the_credentials_path() {
    let r = start(AUTH, relative(), false, 64).await;
    let rel = r.relative.expect("relative listener bound");
    assert_ne!(rel, r.sidecar);

    // No token needed, and the same body as the authenticated listener.
    let plain = http(rel, "GET", "/v1/credentials", &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    let authed = http(
        r.sidecar,
        "GET",
        "/v1/credentials",
        &[("authorization", AUTH)],
    )
    .await;
    assert_eq!(plain.body, authed.body);
    // A client that sends a token anyway (or a wrong one) is not refused here.
    let wrong = http(
        rel,
        "GET",
        "/v1/credentials?x=1",
        &[("authorization", "nope")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::OK);
    // ECS-style clients call 169.254.170.2; the redirect keeps that Host.
    let ecs = http(rel, "GET", "/v1/credentials", &[("host", "169.254.170.2")]).await;
    assert_eq!(ecs.status, StatusCode::OK);

    // Nothing else: not IMDS (even with a v2 token from the main listener), not admin.
    let imds_token = http(
        r.sidecar,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(imds_token.status, StatusCode::OK);
    let v2 = [("x-aws-ec2-metadata-token", imds_token.text())];
    for (method, path, headers) in [
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/",
            &v2[..],
        ),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials/app",
            &v2[..],
        ),
        (
            "PUT",
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", "60")][..],
        ),
        ("GET", "/metrics", &[][..]),
        ("GET", "/healthz", &[][..]),
        ("GET", "/readyz", &[][..]),
        ("GET", "/", &[][..]),
        ("GET", "/v1/credentials/", &[][..]),
        ("GET", "/v1/credentials/../metrics", &[][..]),
        ("GET", "/V1/CREDENTIALS", &[][..]),
    ] {
        let reply = http(rel, method, path, headers).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(!reply.text().contains("SecretAccessKey"), "{method} {path}");
    }
    let post = http(rel, "POST", "/v1/credentials", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    // The same Host check (DNS rebinding) as the main listener.
    let rebound = http(rel, "GET", "/v1/credentials", &[("host", "evil.example")]).await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    assert_eq!(rebound.json()["Code"], "InvalidHost");

    // The same metrics: every request above is counted with the main listener's.
    let metrics = http(r.admin, "GET", "/metrics", &[]).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("passport_http_requests_total{status=\"404\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("passport_http_requests_total{status=\"403\"} 1"),
        "{text}"
    );
    r.stop().await;
}

#[tokio::test]
async fn the_main_listener_still_requires_the_token() {
    let r = start(AUTH, relative(), false, 64).await;
    let none = http(r.sidecar, "GET", "/v1/credentials", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let wrong = http(
        r.sidecar,
        "GET",
        "/v1/credentials",
        &[("authorization", "x")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    r.stop().await;
}

#[tokio::test]
async fn the_connection_cap_is_shared_with_the_main_listener() {
    let r = start(AUTH, relative(), false, 2).await;
    let rel = r.relative.unwrap();
    // Two idle connections on the main listener take the whole cap...
    let held = [
        tokio::net::TcpStream::connect(r.sidecar).await.unwrap(),
        tokio::net::TcpStream::connect(r.sidecar).await.unwrap(),
    ];
    // ...so the unauthenticated listener closes new connections at once (poll until both
    // held connections have been accepted).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let refused = refused_at_once(rel).await;
        if refused {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cap never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if !refused_at_once(rel).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cap never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = http(r.admin, "GET", "/metrics", &[]).await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("passport_connections_refused_total"));
    r.stop().await;
}

/// Whether a new connection to `addr` is closed by the server before answering.
async fn refused_at_once(addr: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    !buf.starts_with(b"HTTP/1.1 200")
}

#[tokio::test]
async fn a_shared_token_rotates_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The kubelet's layout: the key is a symlink through `..data`, swapped atomically.
    let (first, second) = ("a".repeat(40), "b".repeat(40));
    let kubelet_write = |generation: u32, value: &str| {
        let data = dir.path().join(format!("..gen{generation}"));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("auth-token"), value).unwrap();
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(format!("..gen{generation}"), &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
    };
    kubelet_write(1, &first);
    let file = dir.path().join("auth-token");
    std::os::unix::fs::symlink("..data/auth-token", &file).unwrap();

    let r = start(
        &first,
        LegacySettings {
            shared_auth_token_file: Some(file.clone()),
            ..Default::default()
        },
        false,
        64,
    )
    .await;
    let addr = r.sidecar;
    let get = |token: String| async move {
        http(addr, "GET", "/v1/credentials", &[("authorization", &token)])
            .await
            .status
    };
    assert_eq!(get(first.clone()).await, StatusCode::OK);
    assert_eq!(get(second.clone()).await, StatusCode::FORBIDDEN);

    kubelet_write(2, &second);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(second.clone()).await != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(first.clone()).await, StatusCode::FORBIDDEN);

    // A bad value (too short) or a vanished file keeps the token in use.
    kubelet_write(3, "short");
    tokio::time::sleep(passport_core::server::SHARED_TOKEN_POLL * 2).await;
    assert_eq!(get(second.clone()).await, StatusCode::OK);
    r.stop().await;
}

#[tokio::test]
async fn ipv6_loopback_serves_too_when_available() {
    let r = start(
        AUTH,
        LegacySettings {
            ipv6_loopback: true,
            ..Default::default()
        },
        false,
        64,
    )
    .await;
    match r.ipv6 {
        Some(v6) => {
            assert_eq!(v6.port(), r.sidecar.port(), "same port on [::1]");
            let ok = http(v6, "GET", "/v1/credentials", &[("authorization", AUTH)]).await;
            assert_eq!(ok.status, StatusCode::OK);
            let none = http(v6, "GET", "/v1/credentials", &[]).await;
            assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        }
        // A host with IPv6 disabled: passport must still have started (it did: we are
        // here), serving 127.0.0.1 only.
        None => assert!(std::net::TcpListener::bind("[::1]:0").is_err()),
    }
    r.stop().await;
}

#[tokio::test]
async fn imdsv1_is_off_unless_asked_for() {
    let off = start(AUTH, LegacySettings::default(), false, 64).await;
    let v1 = http(
        off.sidecar,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        &[],
    )
    .await;
    assert_eq!(v1.status, StatusCode::UNAUTHORIZED);
    off.stop().await;
    let on = start(AUTH, LegacySettings::default(), true, 64).await;
    let v1 = http(
        on.sidecar,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        &[],
    )
    .await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.text(), "app");
    on.stop().await;
}

/// A shared token that is too short or not header-safe stops `serve` at start: exit 64, the
/// reason named, the token itself never echoed.
#[test]
fn bad_shared_tokens_exit_64_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, why) in [
        ("short", "tooshort-0123456789", "fewer than 32"),
        ("newline", "0123456789abcdef0123456789abcdef\n", "newline"),
        (
            "space",
            "0123456789abcdef 0123456789abcdef",
            "visible ASCII",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
            .args(["serve", "--role-arn", ROLE_ARN, "--region", "us-east-1"])
            .arg("--shared-auth-token-file")
            .arg(&path)
            .env_remove("PASSPORT_AUTH_TOKEN_FILE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            !stderr.contains(content.trim_end()),
            "{name}: token echoed: {stderr}"
        );
    }
}
