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
    /// Listeners and token sources for older SDKs (issue 13); all off by default.
    pub legacy: LegacySettings,
}

/// What older SDKs need beyond the modern container endpoint.
#[derive(Debug, Clone, Default)]
pub struct LegacySettings {
    /// A second listener with NO client authentication that serves only the credentials
    /// path (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` through a redirect of
    /// 169.254.170.2:80, or FULL_URI clients that send no token). It shares the Host
    /// check, the connection cap and the metrics of the credentials listener.
    pub relative_uri_listen: Option<SocketAddr>,
    /// When `listen` is 127.0.0.1, also listen on [::1] at the same port (Node 17+ resolves
    /// `localhost` to ::1). Failing to (IPv6 disabled in the pod) is logged, not fatal.
    pub ipv6_loopback: bool,
    /// Re-read the auth token from this file while serving (a shared Kubernetes Secret,
    /// rotated by the kubelet's `..data` swap). `auth_token` is its content at start.
    pub shared_auth_token_file: Option<std::path::PathBuf>,
}

/// How often a shared auth token file is re-read. The kubelet itself takes up to a minute
/// to project a changed Secret, so a second adds nothing noticeable.
pub const SHARED_TOKEN_POLL: Duration = Duration::from_secs(1);

/// What every handler can reach.
pub struct App {
    /// The default role (`--role-arn`, or its chain): `/v1/credentials` and IMDS. Its
    /// metrics registry also counts the listeners' requests and refused connections.
    pub shared: Arc<Shared>,
    /// `--extra-role`s, each served at `/v1/credentials/NAME` from its own snapshot.
    pub extra: ExtraRoles,
    pub auth_token: crate::auth::AuthToken,
    pub imds: Option<imds::Imds>,
}

/// The extra roles by name, each with its own refresher's snapshot.
pub type ExtraRoles = std::collections::BTreeMap<crate::aws::RoleName, Arc<Shared>>;

pub struct Server {
    listener: TcpListener,
    /// [::1] at the credentials port, when asked for and possible.
    ipv6: Option<TcpListener>,
    /// The unauthenticated credentials-only listener.
    relative: Option<TcpListener>,
    admin: Option<TcpListener>,
    app: Arc<App>,
    settings: ServerSettings,
}

impl Server {
    pub async fn bind(settings: ServerSettings, shared: Arc<Shared>) -> io::Result<Self> {
        Self::bind_roles(settings, shared, ExtraRoles::new()).await
    }

    /// Bind, serving `extra` roles besides the default one.
    pub async fn bind_roles(
        settings: ServerSettings,
        shared: Arc<Shared>,
        extra: ExtraRoles,
    ) -> io::Result<Self> {
        let listener = bind(settings.listen).await?;
        let ipv6 = if settings.legacy.ipv6_loopback
            && settings.listen.ip() == std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        {
            let port = listener.local_addr()?.port();
            let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
            match TcpListener::bind(v6).await {
                Ok(l) => Some(l),
                Err(e) => {
                    info!(address = %v6, error = %e, "not listening on IPv6 loopback (IPv6 disabled in this pod?); serving on 127.0.0.1 only");
                    None
                }
            }
        } else {
            None
        };
        let relative = match settings.legacy.relative_uri_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
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
            extra,
            auth_token: crate::auth::AuthToken::new(settings.auth_token.clone()),
            imds,
        });
        Ok(Self {
            listener,
            ipv6,
            relative,
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
        bound_addr(&self.admin)
    }

    /// An extra role's shared state, by name.
    pub fn extra_role(&self, name: &str) -> Option<Arc<Shared>> {
        self.app.extra.get(name).cloned()
    }

    /// The unauthenticated credentials-only listener, when configured.
    pub fn relative_uri_addr(&self) -> Option<SocketAddr> {
        bound_addr(&self.relative)
    }

    /// The [::1] listener, when asked for and IPv6 is available.
    pub fn ipv6_addr(&self) -> Option<SocketAddr> {
        bound_addr(&self.ipv6)
    }

    /// Serve until `stop` is cancelled, then let in-flight requests finish for up to
    /// `drain_timeout`.
    pub async fn serve(self, stop: CancellationToken, drain_timeout: Duration) {
        let graceful = Arc::new(GracefulShutdown::new());
        let mut tasks = tokio::task::JoinSet::new();
        let Server {
            listener,
            ipv6,
            relative,
            admin,
            app,
            settings,
        } = self;
        // One cap for everything that serves credentials; the admin listener has its own,
        // so a flood of credential requests never starves the kubelet's probes.
        let credentials_permits = Arc::new(Semaphore::new(settings.max_connections));
        let credential_listeners = std::iter::once((listener, Route::Credentials))
            .chain(ipv6.map(|l| (l, Route::Credentials)))
            .chain(relative.map(|l| (l, Route::Unauthenticated)));
        for (listener, route) in credential_listeners {
            tasks.spawn(accept_loop(
                listener,
                app.clone(),
                route,
                settings.clone(),
                credentials_permits.clone(),
                graceful.clone(),
                stop.clone(),
            ));
        }
        if let Some(path) = settings.legacy.shared_auth_token_file.clone() {
            tasks.spawn(watch_shared_token(app.clone(), path, stop.clone()));
        }
        if let Some(admin) = admin {
            let permits = Arc::new(Semaphore::new(settings.max_connections));
            tasks.spawn(accept_loop(
                admin,
                app,
                Route::Admin,
                settings,
                permits,
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
    /// `--relative-uri-listen`: the credentials path only, without client authentication.
    Unauthenticated,
    Admin,
}

/// Re-read the shared auth token file until `stop`; a bad or missing file keeps the token
/// in use (a Secret mid-update, or deleted by mistake, must not lock every client out).
async fn watch_shared_token(app: Arc<App>, path: std::path::PathBuf, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SHARED_TOKEN_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_problem: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        match app.auth_token.reload(&path) {
            Ok(true) => {
                info!(path = %path.display(), "shared auth token changed; the new one is in use");
                last_problem = None;
            }
            Ok(false) => last_problem = None,
            Err(problem) => {
                if last_problem.as_deref() != Some(problem.as_str()) {
                    warn!(path = %path.display(), %problem, "shared auth token file unusable; keeping the token in use");
                    last_problem = Some(problem);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    route: Route,
    settings: ServerSettings,
    permits: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    stop: CancellationToken,
) {
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
            } else if let Some(role) = container::role_in(req.uri().path()) {
                container::handle(app, role, &req)
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
        Route::Unauthenticated => {
            if !request_host_allowed(&req) {
                error(StatusCode::FORBIDDEN, &FOREIGN_HOST)
            } else if req.uri().path() == container::PATH {
                // The default role only: extra roles are served behind the auth token alone,
                // and their names are not answered here either.
                container::handle_unauthenticated(app, &req)
            } else {
                error(StatusCode::NOT_FOUND, &NOT_FOUND)
            }
        }
        Route::Admin => admin::handle(app, &req),
    };
    if let Route::Credentials | Route::Unauthenticated = route {
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
    info!(credentials = %server.local_addr(), ipv6 = ?server.ipv6_addr(), admin = ?server.admin_addr(), "listening");
    if let Some(addr) = server.relative_uri_addr() {
        warn!(address = %addr, "unauthenticated credentials listener (--relative-uri-listen): any process that can reach it gets the credentials, as with IMDSv1");
    }
}

/// The address of an optional bound listener.
fn bound_addr(listener: &Option<TcpListener>) -> Option<SocketAddr> {
    listener
        .as_ref()
        .map(|l| l.local_addr().expect("bound listener has an address"))
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
