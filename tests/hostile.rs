//! Hostile and malformed input at the credentials listener: each gets a clear status (or a
//! closed connection), changes nothing, and the server keeps serving.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::clock::ManualClock;
use passport_core::sidecar::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A sidecar on loopback plus its fake STS (to prove hostile input never reaches it).
struct Harness {
    sidecar: Running,
    sts: Arc<FakeSts>,
}

impl std::ops::Deref for Harness {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.sidecar
    }
}

async fn start(max_connections: usize) -> Harness {
    let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
    let sts = FakeSts::new(clock.clone());
    let sidecar = start_sidecar(sts.clone())
        .clock(clock)
        .max_connections(max_connections)
        .run(Shutdown::PROMPT)
        .await;
    Harness { sidecar, sts }
}

/// Send raw bytes, read until the server closes (or `limit` bytes), return what came back.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

async fn still_serving(r: &Harness) {
    let ok = http(r.addr, "GET", "/v1/credentials", &[("authorization", AUTH)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(r.sts.calls(), 1, "hostile input never causes an STS call");
}

#[tokio::test]
async fn oversized_headers_and_header_floods_are_refused() {
    let r = start(64).await;
    let huge = format!(
        "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = raw(r.addr, huge.as_bytes()).await;
    assert_eq!(status_of(&reply), "431", "{reply}");

    let mut flood = String::from("GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..200 {
        flood.push_str(&format!("X-Flood-{i}: x\r\n"));
    }
    flood.push_str("\r\n");
    let reply = raw(r.addr, flood.as_bytes()).await;
    assert_eq!(status_of(&reply), "431", "{reply}");

    // A long but legal Authorization is just wrong: 403, cheaply.
    let long = "b".repeat(8 * 1024);
    let reply = http(
        r.addr,
        "GET",
        "/v1/credentials",
        &[("authorization", &long)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    still_serving(&r).await;
}

#[tokio::test(start_paused = true)]
async fn slowloris_and_idle_connections_are_closed_by_the_header_timeout() {
    let r = start(64).await;
    let started = tokio::time::Instant::now();
    let mut slow = TcpStream::connect(r.addr).await.unwrap();
    slow.write_all(b"GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    let mut buf = Vec::new();
    // With paused time the runtime auto-advances to the header deadline: the reads end
    // with the server closing the connections, not with the test timing out.
    let _ = slow.read_to_end(&mut buf).await;
    let _ = idle.read_to_end(&mut buf).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(60),
        "{waited:?}"
    );

    // A keep-alive connection that goes quiet after a request is closed the same way.
    let mut quiet = TcpStream::connect(r.addr).await.unwrap();
    let req =
        format!("GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n\r\n");
    quiet.write_all(req.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    quiet.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let started = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(600), quiet.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "idle keep-alive connection was never closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    still_serving(&r).await;
}

#[tokio::test]
async fn connection_cap_refuses_extra_connections_and_admin_still_answers() {
    let r = start(8).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let s = TcpStream::connect(r.addr).await.unwrap();
        held.push(s);
    }
    // Give the accept loop a moment to take the held connections (no timing assertion).
    let _ = http(r.admin(), "GET", "/healthz", &[]).await;
    let mut extra = TcpStream::connect(r.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "over-cap connection must be closed"
    );
    // Admin has its own cap.
    assert_eq!(
        http(r.admin(), "GET", "/healthz", &[]).await.status,
        StatusCode::OK
    );
    let metrics = http(r.admin(), "GET", "/metrics", &[]).await;
    assert!(
        !String::from_utf8_lossy(&metrics.body).contains("passport_connections_refused_total 0")
    );
    drop(held);
    // Capacity comes back once connections close.
    let mut ok = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        let req = format!(
            "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(req.as_bytes()).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        if out.starts_with(b"HTTP/1.1 200") {
            ok = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(ok, "capacity was not released");
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let r = start(64).await;
    let one =
        format!("GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n\r\n");
    let mut batch = one.repeat(500);
    batch.push_str("GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let reply = raw(r.addr, batch.as_bytes()).await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 500);
    assert!(
        reply.trim_end().ends_with("\"Message\":\"no such path\"}"),
        "last answer is the 404"
    );
    still_serving(&r).await;
}

#[tokio::test]
async fn odd_requests_get_clear_statuses() {
    let r = start(64).await;
    let cases: &[(&str, &str)] = &[
        (
            "OPTIONS /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "405",
        ),
        (
            "TRACE /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "405",
        ),
        (
            "DELETE /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "405",
        ),
        (
            "GET /v1/credentials/../v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET //v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET /V1/CREDENTIALS HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "404",
        ),
        // Absolute-form through a confused proxy: the target's authority is checked too.
        (
            "GET http://evil.example/v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "403",
        ),
        (
            "GET /v1/credentials HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n",
            "403",
        ),
        (
            "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil\r\nConnection: close\r\n\r\n",
            "403",
        ),
        (
            "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            "401",
        ),
        (
            "GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization:\r\nConnection: close\r\n\r\n",
            "403",
        ),
        ("GET /v1/credentials HTTP/1.0\r\n\r\n", "401"),
        ("garbage\r\n\r\n", "400"),
        ("GET /v1/credentials HTTP/9.9\r\n\r\n", "400"),
    ];
    for (request, want) in cases {
        let reply = raw(r.addr, request.as_bytes()).await;
        assert_eq!(status_of(&reply), *want, "{request:?} -> {reply}");
        assert!(!reply.contains("ASIA"), "{request:?} leaked credentials");
    }
    // A body on a GET is ignored: the answer is the usual one.
    let with_body = format!(
        "GET /v1/credentials?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    assert_eq!(status_of(&raw(r.addr, with_body.as_bytes()).await), "200");
    still_serving(&r).await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_refused_cleanly() {
    let r = start(64).await;
    let reply = raw(
        r.addr,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    )
    .await;
    assert!(
        reply.is_empty() || status_of(&reply).starts_with('4') || status_of(&reply) == "505",
        "{reply}"
    );
    still_serving(&r).await;
}
