//! HTTPS: `POST /mutate` for the API server, `/healthz`, `/readyz` and `/metrics` for the
//! kubelet and Prometheus, on one TLS listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::review::{self, Outcome};
use super::service_accounts::ServiceAccounts;
use super::tls::Reloading;
use crate::commands::inject;

/// Largest review body accepted: Kubernetes objects are at most about 1.5 MiB in etcd.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive (the API server's own timeout is at most 5 s).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most (the API servers keep a few each; the rest are probes).
pub const MAX_CONNECTIONS: usize = 1024;

/// What the handlers share.
pub struct State {
    pub base: inject::Options,
    pub service_accounts: Arc<dyn ServiceAccounts>,
    pub metrics: Metrics,
    /// Self-managed certificates: set once the caBundle is in place.
    pub ca_bundle_ready: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl State {
    pub fn new(base: inject::Options, service_accounts: Arc<dyn ServiceAccounts>) -> Self {
        Self {
            base,
            service_accounts,
            metrics: Metrics::default(),
            ca_bundle_ready: None,
        }
    }

    /// `/readyz`: the ServiceAccount cache synced (and the caBundle set, when self-managed).
    pub fn ready(&self) -> bool {
        self.service_accounts.ready()
            && self
                .ca_bundle_ready
                .as_ref()
                .is_none_or(|r| r.load(Ordering::Acquire))
    }
}

#[derive(Default)]
pub struct Metrics {
    reviews: [AtomicU64; 4],
    bad_requests: AtomicU64,
    tls_failures: AtomicU64,
    seconds_micros: AtomicU64,
}

impl Metrics {
    fn record(&self, outcome: Outcome, took: Duration) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.reviews[i].fetch_add(1, Ordering::Relaxed);
        self.seconds_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, ready: bool, lookups: &[(&str, u64)]) -> String {
        let mut out = String::from(
            "# HELP passport_webhook_reviews_total Admission reviews answered, by result.\n# TYPE passport_webhook_reviews_total counter\n",
        );
        for (i, o) in Outcome::ALL.iter().enumerate() {
            out.push_str(&format!(
                "passport_webhook_reviews_total{{result=\"{}\"}} {}\n",
                o.name(),
                self.reviews[i].load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP passport_webhook_review_seconds_total Time spent deciding reviews.\n# TYPE passport_webhook_review_seconds_total counter\npassport_webhook_review_seconds_total {:.6}\n",
            self.seconds_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!(
            "# HELP passport_webhook_bad_requests_total Requests that were not AdmissionReviews (400).\n# TYPE passport_webhook_bad_requests_total counter\npassport_webhook_bad_requests_total {}\n",
            self.bad_requests.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP passport_webhook_tls_handshake_failures_total Failed TLS handshakes.\n# TYPE passport_webhook_tls_handshake_failures_total counter\npassport_webhook_tls_handshake_failures_total {}\n",
            self.tls_failures.load(Ordering::Relaxed)
        ));
        if !lookups.is_empty() {
            out.push_str("# HELP passport_webhook_service_account_lookups_total ServiceAccount lookups, by how they were answered (cache, api: a GET on a cache miss, error).\n# TYPE passport_webhook_service_account_lookups_total counter\n");
            for (source, n) in lookups {
                out.push_str(&format!(
                    "passport_webhook_service_account_lookups_total{{source=\"{source}\"}} {n}\n"
                ));
            }
        }
        out.push_str(&format!(
            "# HELP passport_webhook_ready 1 once the ServiceAccount cache has synced (and the caBundle is set).\n# TYPE passport_webhook_ready gauge\npassport_webhook_ready {}\n",
            u8::from(ready)
        ));
        out
    }
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    respond(
        status,
        "application/json",
        json!({"error": message}).to_string(),
    )
}

/// Answer one request.
pub async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/mutate") => {
            // A slow body holds a connection slot: the API server sends a review at once,
            // so anything slower than the handshake allowance is not one.
            let read = tokio::time::timeout(
                BODY_TIMEOUT,
                Limited::new(req.into_body(), MAX_BODY).collect(),
            )
            .await;
            let body = match read {
                Ok(Ok(b)) => b.to_bytes(),
                Err(_) => {
                    state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                    return json_error(StatusCode::REQUEST_TIMEOUT, "body not received in time");
                }
                Ok(Err(_)) => {
                    state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                    return json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body too large or unreadable",
                    );
                }
            };
            mutate(state, &body).await
        }
        (_, "/mutate") => json_error(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview"),
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            if state.ready() {
                respond(StatusCode::OK, "text/plain", "ok\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "ServiceAccount cache not synced yet, or caBundle not set yet\n",
                )
            }
        }
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state
                .metrics
                .render(state.ready(), &state.service_accounts.lookups()),
        ),
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// One review body → the AdmissionReview answer (or a 400).
pub async fn mutate(state: &State, body: &[u8]) -> Response<Body> {
    let started = Instant::now();
    let req = match review::parse(body) {
        Ok(r) => r,
        Err(bad) => {
            state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
            return respond(
                StatusCode::BAD_REQUEST,
                "application/json",
                review::bad_request(&bad).to_string(),
            );
        }
    };
    let lookup = match req.wants() {
        Some(sa) => state.service_accounts.lookup(&sa).await,
        None => review::SaLookup::NotFound,
    };
    let decision = review::decide(&req, &state.base, &lookup);
    state.metrics.record(decision.result, started.elapsed());
    match decision.result {
        Outcome::Skipped => {}
        Outcome::Denied => tracing::warn!(
            uid = %decision.uid,
            message = decision.message.as_deref().unwrap_or_default(),
            "review denied"
        ),
        other => {
            tracing::info!(uid = %decision.uid, result = other.name(), ops = decision.patch.len(), "review")
        }
    }
    respond(
        StatusCode::OK,
        "application/json",
        decision.to_review().to_string(),
    )
}

/// Accept TLS connections on `listener` until `stop`, then drain.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<Reloading>,
    state: Arc<State>,
    stop: CancellationToken,
) -> Result<(), String> {
    let acceptor = TlsAcceptor::from(Arc::new(tls.server_config()?));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(64);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection cap reached; closing a new connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    state.metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}
