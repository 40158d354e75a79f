//! The HTTP side: listeners, connection limits, timeouts, Host check, graceful drain.
//!
//! Two listeners. The credentials listener (loopback by default) serves the container
//! endpoint (`container.rs`) and, when enabled, IMDS (`imds.rs`). The admin listener serves
//! `/healthz`, `/readyz` and `/metrics` (`admin.rs`) and never credentials, so it can be
//! exposed to the kubelet and Prometheus on the pod IP. Each listener has its own connection
//! cap, so a flood on one never starves the other.
//!
//! Handlers only `load()` the snapshot and clone pre-rendered bytes; nothing on this path
//! talks to STS or allocates beyond the response head.

pub mod admin;
pub mod container;
pub mod imds;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::credentials::error_body;
use crate::refresh::Shared;
use crate::secret::Secret;

pub type Body = Full<Bytes>;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// `None`: no admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Required verbatim in `Authorization` on the container endpoint.
    pub auth_token: Secret,
    /// Open connections per listener; more are accepted and closed at once.
    pub max_connections: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// `None`: no IMDS endpoint (paths under `/latest/` answer 404).
    pub imds: Option<imds::ImdsSettings>,
}

/// What every handler can reach.
pub struct App {
    pub shared: Arc<Shared>,
    pub auth_token: Secret,
    pub imds: Option<imds::Imds>,
}

pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    app: Arc<App>,
    settings: ServerSettings,
}

impl Server {
    pub async fn bind(settings: ServerSettings, shared: Arc<Shared>) -> io::Result<Self> {
        let listener = bind(settings.listen).await?;
        let admin = match settings.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let imds = settings
            .imds
            .clone()
            .map(|imds| imds::Imds::new(imds, &*shared.clock));
        let app = Arc::new(App {
            shared,
            auth_token: settings.auth_token.clone(),
            imds,
        });
        Ok(Self {
            listener,
            admin,
            app,
            settings,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Serve until `stop` is cancelled, then let in-flight requests finish for up to
    /// `drain_timeout`.
    pub async fn serve(self, stop: CancellationToken, drain_timeout: Duration) {
        let graceful = Arc::new(GracefulShutdown::new());
        let mut tasks = tokio::task::JoinSet::new();
        let Server {
            listener,
            admin,
            app,
            settings,
        } = self;
        tasks.spawn(accept_loop(
            listener,
            app.clone(),
            Route::Credentials,
            settings.clone(),
            graceful.clone(),
            stop.clone(),
        ));
        if let Some(admin) = admin {
            tasks.spawn(accept_loop(
                admin,
                app,
                Route::Admin,
                settings,
                graceful.clone(),
                stop.clone(),
            ));
        }
        // Accept loops end once `stop` fires; they hold clones of `graceful`.
        while tasks.join_next().await.is_some() {}
        let graceful = Arc::into_inner(graceful).expect("accept loops have ended");
        if tokio::time::timeout(drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(
                timeout_ms = drain_timeout.as_millis() as u64,
                "connections still open after the drain timeout; closing them"
            );
        }
    }
}

async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

#[derive(Clone, Copy)]
enum Route {
    Credentials,
    Admin,
}

async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    route: Route,
    settings: ServerSettings,
    graceful: Arc<GracefulShutdown>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        // Small, bounded request heads: credential requests are a few hundred bytes.
        .max_buf_size(16 * 1024)
        .max_headers(64);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            app.shared.metrics.record_connection_refused();
            debug!(%peer, "connection cap reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(dispatch(&app, route, req)) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn dispatch(app: &App, route: Route, req: Request<Incoming>) -> Response<Body> {
    let response = match route {
        Route::Credentials => {
            if !request_host_allowed(&req) {
                error(StatusCode::FORBIDDEN, &FOREIGN_HOST)
            } else if req.uri().path() == container::PATH {
                container::handle(app, &req)
            } else if let Some(imds) = app
                .imds
                .as_ref()
                .filter(|_| req.uri().path().starts_with(imds::PREFIX))
            {
                imds::handle(app, imds, &req)
            } else {
                error(StatusCode::NOT_FOUND, &NOT_FOUND)
            }
        }
        Route::Admin => admin::handle(app, &req),
    };
    if let Route::Credentials = route {
        app.shared
            .metrics
            .record_request(response.status().as_u16());
    }
    response
}

/// The Host header (exactly one, or none) and an absolute-form target's authority must
/// both pass `host_allowed`.
fn request_host_allowed<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() || !host_allowed(first) {
        return false;
    }
    match req.uri().authority() {
        Some(authority) => {
            HeaderValue::from_str(authority.as_str()).is_ok_and(|a| host_allowed(Some(&a)))
        }
        None => true,
    }
}

/// DNS-rebinding defence: a browser tricked into calling us sends the attacker's host name.
/// SDKs send the IP literal or `localhost` they were given, so accept only those (any IP
/// literal, so the metadata addresses and an opted-in pod IP work) or no Host at all.
pub fn host_allowed(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else { return true };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port))
                if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// A pre-rendered JSON error, built once: error paths stay as cheap as success, because
/// botocore and the JS SDK retry 4xx too.
pub struct StaticError {
    pub body: Bytes,
}

impl StaticError {
    fn new(code: &str, message: &str) -> Self {
        Self {
            body: error_body(code, message),
        }
    }
}

pub static NOT_FOUND: LazyLock<StaticError> =
    LazyLock::new(|| StaticError::new("NotFound", "no such path"));
pub static METHOD_NOT_ALLOWED: LazyLock<StaticError> =
    LazyLock::new(|| StaticError::new("MethodNotAllowed", "only GET and HEAD are allowed here"));
pub static FOREIGN_HOST: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "InvalidHost",
        "the Host header must be an IP address or localhost",
    )
});

pub fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn error(status: StatusCode, err: &StaticError) -> Response<Body> {
    let mut response = json(status, err.body.clone());
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

pub fn log_listening(server: &Server) {
    info!(credentials = %server.local_addr(), admin = ?server.admin_addr(), "listening");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(h: &str) -> bool {
        host_allowed(Some(&HeaderValue::from_str(h).unwrap()))
    }

    #[test]
    fn host_check_accepts_ip_literals_and_localhost_only() {
        for ok in [
            "127.0.0.1:9911",
            "127.0.0.1",
            "localhost",
            "LOCALHOST:80",
            "[::1]:9911",
            "[::1]",
            "169.254.169.254",
            "169.254.170.23:80",
            "[fd00:ec2::23]",
            "10.1.2.3:9911",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9911",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1",
            "[::1]x",
            "127.0.0.1:abc",
            "::1",
            "",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
        assert!(host_allowed(None));
    }
}
