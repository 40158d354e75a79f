//! `passport webhook` over TLS: AdmissionReview JSON sent to the running server (with a
//! fixed ServiceAccount source instead of an API server), the certificate reload, and the
//! binary's flag handling. The same cases run against a real kube-apiserver in
//! tests/k8s/test_webhook.py.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use passport::commands::inject;
use passport::commands::webhook::review::{
    INJECT_LABEL, ROLE_ANNOTATION, SKIP_ANNOTATION, SaLookup, SaRef,
};
use passport::commands::webhook::service_accounts::{BoxFuture, Fixed, ServiceAccounts};
use passport::commands::webhook::{certs, server, tls};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

struct Webhook {
    addr: SocketAddr,
    ca: certs::Ca,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn write_pair(dir: &Path, ca: &certs::Ca, name: &str) -> String {
    let serving = certs::serving(ca, &["127.0.0.1".into(), "localhost".into()], 1).unwrap();
    // Written aside and renamed into place, as a Secret volume update swaps files.
    for (file, pem) in [
        ("tls.crt", &serving.cert_pem),
        ("tls.key", &serving.key_pem),
    ] {
        let tmp = dir.join(format!("{file}.{name}"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
    serving.cert_pem
}

fn service_accounts() -> Fixed {
    Fixed(HashMap::from([(
        SaRef {
            namespace: "team".into(),
            name: "app".into(),
        },
        BTreeMap::from([(ROLE_ANNOTATION.to_owned(), ROLE.to_owned())]),
    )]))
}

/// The review was denied, and its message says `needle`.
fn assert_denied(response: &Value, needle: &str) {
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

async fn start(sas: Arc<dyn ServiceAccounts>) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::new_ca("test CA", 1).unwrap();
    write_pair(dir.path(), &ca, "first");
    let tls = Arc::new(
        tls::Reloading::new(
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
            tls::provider(),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(server::State::new(
        inject::Options {
            secret: false,
            ..Default::default()
        },
        sas,
    ));
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(listener, tls, state, stop.clone()));
    Webhook {
        addr,
        ca,
        stop,
        _dir: dir,
    }
}

/// One HTTPS request, trusting only `ca`. Returns (status, body, the server's certificate).
async fn request(
    addr: SocketAddr,
    ca: &certs::Ca,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>, Vec<u8>) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let peer = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body, peer)
}

fn review(pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "0f6f8d2c", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": "team", "object": pod}
    }))
    .unwrap()
}

fn pod(labelled: bool, sa: &str) -> Value {
    let labels = if labelled {
        json!({INJECT_LABEL: "true", "app": "web"})
    } else {
        json!({"app": "web"})
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "team", "labels": labels},
        "spec": {"serviceAccountName": sa,
            "initContainers": [{"name": "migrate", "image": "app:1"}],
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}]}})
}

async fn mutate(w: &Webhook, pod: &Value) -> Value {
    let (status, body, _) = request(w.addr, &w.ca, "POST", "/mutate", review(pod)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["response"]["uid"], "0f6f8d2c");
    out["response"].clone()
}

fn apply(pod: &Value, response: &Value) -> Value {
    let mut doc = pod.clone();
    if let Some(p) = response["patch"].as_str() {
        use base64::Engine;
        assert_eq!(response["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
    }
    doc
}

fn patch_ops(response: &Value) -> Vec<Value> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn an_opted_in_pod_gets_exactly_injects_mutation_patched_by_element() {
    let w = start(Arc::new(service_accounts())).await;
    let p = pod(true, "app");
    let response = mutate(&w, &p).await;
    assert_eq!(response["allowed"], true, "{response}");
    let mutated = apply(&p, &response);

    let mut template: serde_norway::Mapping =
        serde_norway::from_value(serde_norway::to_value(&p).unwrap()).unwrap();
    let opts = inject::Options {
        role_arn: Some(ROLE.into()),
        secret: false,
        ..Default::default()
    };
    inject::inject_pod_template(&mut template, &opts, "pod", &mut |_| {}).unwrap();
    assert_eq!(mutated, serde_json::to_value(&template).unwrap());

    // The sidecar first, the existing init container kept after it.
    assert_eq!(mutated["spec"]["initContainers"][0]["name"], "passport");
    assert_eq!(mutated["spec"]["initContainers"][1]["name"], "migrate");
    let ops = patch_ops(&response);
    let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/spec/initContainers/0"), "{paths:?}");
    assert!(paths.contains(&"/spec/containers/0/env/-"), "{paths:?}");
    for whole in [
        "/spec/initContainers",
        "/spec/containers",
        "/spec/containers/0/env",
    ] {
        assert!(!paths.contains(&whole), "{whole} replaced whole: {paths:?}");
    }
}

#[tokio::test]
async fn reinvocation_does_not_duplicate_the_sidecar() {
    let w = start(Arc::new(service_accounts())).await;
    let p = pod(true, "app");
    let once = apply(&p, &mutate(&w, &p).await);
    let again = mutate(&w, &once).await;
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none(), "{again}");
}

#[tokio::test]
async fn a_pod_without_a_role_is_denied_naming_the_service_account() {
    let w = start(Arc::new(service_accounts())).await;
    let response = mutate(&w, &pod(true, "norole")).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ServiceAccount team/norole") && message.contains(ROLE_ANNOTATION),
        "{message}"
    );
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn unlabelled_pods_are_untouched_and_host_network_is_denied() {
    let w = start(Arc::new(service_accounts())).await;
    let response = mutate(&w, &pod(false, "norole")).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());

    let mut p = pod(true, "app");
    p["spec"]["hostNetwork"] = json!(true);
    assert_denied(&mutate(&w, &p).await, "hostNetwork");

    let mut p = pod(true, "app");
    p["metadata"]["annotations"] = json!({SKIP_ANNOTATION: "app", "passport.dev/compat": "nope"});
    assert_denied(&mutate(&w, &p).await, "passport.dev/compat \"nope\"");
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_metrics_count_results() {
    let w = start(Arc::new(service_accounts())).await;
    for body in [
        &b"not json"[..],
        b"{}",
        b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}",
    ] {
        let (status, out, _) = request(w.addr, &w.ca, "POST", "/mutate", body.to_vec()).await;
        assert_eq!(status, 400);
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert!(out["error"].is_string());
    }
    let (status, _, _) = request(w.addr, &w.ca, "GET", "/mutate", vec![]).await;
    assert_eq!(status, 405);
    let (status, _, _) = request(w.addr, &w.ca, "GET", "/nope", vec![]).await;
    assert_eq!(status, 404);
    let too_big = vec![b' '; server::MAX_BODY + 1];
    let (status, _, _) = request(w.addr, &w.ca, "POST", "/mutate", too_big).await;
    assert_eq!(status, 413);

    mutate(&w, &pod(true, "app")).await;
    mutate(&w, &pod(true, "norole")).await;
    mutate(&w, &pod(false, "app")).await;
    let (status, _, _) = request(w.addr, &w.ca, "GET", "/healthz", vec![]).await;
    assert_eq!(status, 200);
    let (status, _, _) = request(w.addr, &w.ca, "GET", "/readyz", vec![]).await;
    assert_eq!(status, 200);
    let (_, metrics, _) = request(w.addr, &w.ca, "GET", "/metrics", vec![]).await;
    let metrics = String::from_utf8(metrics).unwrap();
    for line in [
        "passport_webhook_reviews_total{result=\"mutated\"} 1",
        "passport_webhook_reviews_total{result=\"denied\"} 1",
        "passport_webhook_reviews_total{result=\"skipped\"} 1",
        "passport_webhook_bad_requests_total 4",
        "passport_webhook_ready 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
}

/// Never ready, and the API server is down.
struct Unsynced;

impl ServiceAccounts for Unsynced {
    fn lookup<'a>(&'a self, _sa: &'a SaRef) -> BoxFuture<'a, SaLookup> {
        Box::pin(async { SaLookup::Failed("connection refused".into()) })
    }
    fn ready(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn not_ready_until_synced_and_lookup_failures_deny() {
    let w = start(Arc::new(Unsynced)).await;
    let (status, _, _) = request(w.addr, &w.ca, "GET", "/readyz", vec![]).await;
    assert_eq!(status, 503);
    let response = mutate(&w, &pod(true, "app")).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("team/app") && message.contains("connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn the_certificate_is_reloaded_when_its_files_change() {
    let w = start(Arc::new(service_accounts())).await;
    let dir = w._dir.path();
    let (_, _, first) = request(w.addr, &w.ca, "GET", "/healthz", vec![]).await;
    let second_pem = write_pair(dir, &w.ca, "second");
    let (_, _, served) = request(w.addr, &w.ca, "GET", "/healthz", vec![]).await;
    assert_ne!(served, first);
    use rustls::pki_types::pem::PemObject;
    let second = rustls::pki_types::CertificateDer::from_pem_slice(second_pem.as_bytes()).unwrap();
    assert_eq!(served, second.to_vec());
    // A broken pair (key written, certificate not yet) keeps the last good one.
    std::fs::write(dir.join("tls.crt.tmp"), "garbage").unwrap();
    std::fs::rename(dir.join("tls.crt.tmp"), dir.join("tls.crt")).unwrap();
    let (status, _, served) = request(w.addr, &w.ca, "GET", "/healthz", vec![]).await;
    assert_eq!((status, served), (200, second.to_vec()));
}

#[test]
fn bad_flags_exit_64_listing_every_problem() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
        .args([
            "webhook",
            "--listen",
            "nowhere",
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--region",
            "not a region",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Without --region at all, that is a problem too.
    let bare = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["webhook", "--tls-cert-file", "a", "--tls-key-file", "b"])
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--region: required"));
    for needle in [
        "--listen \"nowhere\"",
        "--tls-cert-file /nonexistent/tls.crt",
        "--tls-key-file: required",
        "--kubeconfig /nonexistent/kubeconfig",
        "--region \"not a region\"",
    ] {
        assert!(stderr.contains(needle), "{needle} not in:\n{stderr}");
    }
}

#[test]
fn a_certificate_that_does_not_load_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c"), "not pem").unwrap();
    std::fs::write(dir.path().join("k"), "not pem").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
        .arg("webhook")
        .arg("--tls-cert-file")
        .arg(dir.path().join("c"))
        .arg("--tls-key-file")
        .arg(dir.path().join("k"))
        .args(["--region", "us-east-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PEM certificate"));
}

/// The load figure (not a timed test): reviews per second and latency percentiles at 64
/// concurrent connections (BENCH_CONCURRENCY), ServiceAccount lookups answered from memory (a warm cache).
/// `cargo test --release --test webhook -- --ignored --nocapture bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/webhook.sh"]
async fn bench_reviews_at_64_concurrent() {
    let w = Arc::new(start(Arc::new(service_accounts())).await);
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let body = Bytes::from(review(&pod(true, "app")));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let w = w.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(
                    rustls::pki_types::CertificateDer::from_pem_slice(w.ca.cert_pem.as_bytes())
                        .unwrap(),
                )
                .unwrap();
            let config = rustls::ClientConfig::builder_with_provider(tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tcp = TcpStream::connect(w.addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let stream = TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let req = hyper::Request::post("/mutate")
                    .header("host", "127.0.0.1")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let started = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "webhook bench: {} reviews in {seconds}s = {:.0}/s at {concurrency} concurrent; p50 {:?} p99 {:?} max {:?}",
        all.len(),
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1]
    );
}

#[test]
fn self_managed_flags_are_checked_together() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
        .args([
            "webhook",
            "--self-managed-ca-secret",
            "no-slash",
            "--tls-cert-file",
            "/nonexistent/dir/tls.crt",
            "--tls-key-file",
            "tls.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "--self-managed-ca-secret \"no-slash\": expected NAMESPACE/NAME",
        "--webhook-configuration: required",
        "--dns-name: at least one",
        "--tls-cert-file /nonexistent/dir/tls.crt: its directory does not exist",
    ] {
        assert!(stderr.contains(needle), "{needle} not in:\n{stderr}");
    }
    // A key in the working directory is fine (written at start-up).
    assert!(!stderr.contains("--tls-key-file"), "{stderr}");
}

#[test]
fn check_says_when_the_webhook_did_not_mutate_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "app=\"web\"\npassport.dev/inject=\"true\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["check", "--no-identity"])
        .env_clear()
        .env("PASSPORT_POD_LABELS_FILE", &labels)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Admission webhook")
            && stdout.contains("passport.dev/inject=true but none of passport's variables"),
        "{stdout}"
    );
}
