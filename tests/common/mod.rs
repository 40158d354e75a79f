//! Shared test fixtures: an in-process fake STS (`FakeSts`, a `CredentialSource`), the one
//! sidecar builder (`start_sidecar`), direct handler calls, a log capture, HTTP over
//! loopback (`http`; `http_paused` for tests with paused time), and the golden switch.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use passport_core::clock::Clock;
use passport_core::credentials::Credentials;
use passport_core::refresh::{RefreshSettings, Shared};
use passport_core::secret::Secret;
use passport_core::server::imds::ImdsSettings;
use passport_core::server::{App, ServerSettings};
use passport_core::sidecar::{Shutdown, Sidecar};
use passport_core::sts::{AssumeRoleRequest, BoxFuture, CredentialSource, ErrorClass, SourceError};
use tokio_util::sync::CancellationToken;

pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/app";

/// `passport serve` for a role, with an STS that refuses every connection (port 9): for
/// tests of what passport does before, or without, credentials. Add listeners and files.
pub const SERVE_WITHOUT_STS: [&str; 7] = [
    "serve",
    "--role-arn",
    ROLE_ARN,
    "--region",
    "us-east-1",
    "--sts-endpoint",
    "http://127.0.0.1:9",
];

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
/// 2026-01-01T00:00:00Z
pub const START: u64 = 1_767_225_600;

pub fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START)
}

/// What the fake does on a call.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Issue,
    Fail(SourceError),
    /// Issue credentials that expire this long from now (ignoring the lifetime).
    IssueExpiringIn(Duration),
    /// Issue exactly these keys (e.g. with characters JSON must escape), for the lifetime.
    IssueKeys {
        access_key_id: &'static str,
        secret_access_key: &'static str,
        session_token: &'static str,
    },
    /// Never answer (the refresher's timeout must fire).
    Hang,
}

pub struct FakeSts {
    clock: Arc<dyn Clock>,
    pub lifetime: Mutex<Duration>,
    pub script: Mutex<VecDeque<Behaviour>>,
    pub default: Mutex<Behaviour>,
    calls: AtomicU64,
    /// The wall-clock time of every call, in order.
    pub call_times: Mutex<Vec<SystemTime>>,
    pub tokens_seen: Mutex<Vec<String>>,
    pub issued: Mutex<Vec<Credentials>>,
}

impl FakeSts {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            lifetime: Mutex::new(Duration::from_secs(3600)),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Behaviour::Issue),
            calls: AtomicU64::new(0),
            call_times: Mutex::new(Vec::new()),
            tokens_seen: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_default(&self, b: Behaviour) {
        *self.default.lock().unwrap() = b;
    }

    pub fn push(&self, b: Behaviour) {
        self.script.lock().unwrap().push_back(b);
    }

    pub fn last_issued(&self) -> Credentials {
        self.issued
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("something was issued")
    }

    fn issue(&self, n: u64, expiration: SystemTime) -> Credentials {
        self.issue_keys(
            format!("ASIAFAKE{n:012}"),
            format!("PLANTED-SECRET-KEY-{n:04}-wJalrXUtnFEMI"),
            format!("PLANTED-SESSION-TOKEN-{n:04}-FwoGZXIvYXdz"),
            expiration,
        )
    }

    fn issue_keys(
        &self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: impl Into<String>,
        expiration: SystemTime,
    ) -> Credentials {
        let creds = Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key.into()),
            session_token: Secret::new(session_token.into()),
            expiration,
            assumed_role_arn: Some(
                "arn:aws:sts::111122223333:assumed-role/app/test-session".into(),
            ),
        };
        self.issued.lock().unwrap().push(creds.clone());
        creds
    }
}

pub fn error(class: ErrorClass, code: &str) -> SourceError {
    SourceError::new(class, code, format!("fake {code}"))
}

impl CredentialSource for FakeSts {
    fn assume_role<'a>(
        &'a self,
        request: &'a AssumeRoleRequest,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.call_times.lock().unwrap().push(self.clock.wall());
            self.tokens_seen
                .lock()
                .unwrap()
                .push(request.web_identity_token.expose().to_owned());
            let behaviour = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.default.lock().unwrap().clone());
            let lifetime = *self.lifetime.lock().unwrap();
            match behaviour {
                Behaviour::Issue => Ok(self.issue(n, self.clock.wall() + lifetime)),
                Behaviour::IssueKeys {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => Ok(self.issue_keys(
                    access_key_id,
                    secret_access_key,
                    session_token,
                    self.clock.wall() + lifetime,
                )),
                Behaviour::IssueExpiringIn(d) => Ok(self.issue(n, self.clock.wall() + d)),
                Behaviour::Fail(e) => Err(e),
                Behaviour::Hang => std::future::pending().await,
            }
        })
    }
}

/// A token file holding a well-formed (unsigned) JWT for `sub`.
pub fn write_token(dir: &Path, sub: &str) -> PathBuf {
    let path = dir.join("token");
    let jwt = passport_core::token::test_jwt(&serde_json::json!({
        "iss": "https://oidc.example", "sub": sub, "aud": "sts.amazonaws.com", "exp": 4_000_000_000u64
    }));
    std::fs::write(&path, jwt).unwrap();
    path
}

pub fn refresh_settings(token_file: PathBuf) -> RefreshSettings {
    RefreshSettings {
        role_arn: ROLE_ARN.parse().unwrap(),
        session_name: "test-session".parse().unwrap(),
        duration_seconds: 3600,
        token_file,
        attempt_timeout: Duration::from_secs(10),
        chain: None,
    }
}

pub const AUTH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|e| panic!("not UTF-8 ({e}): {:?}", self.body))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Call the container handler directly (no socket), as a client with `auth` would.
/// An `App` for calling handlers directly: `shared` as the default role, the test auth
/// token, no IMDS, no extra roles.
pub fn app(shared: Arc<Shared>) -> App {
    App {
        shared,
        extra: Default::default(),
        auth_token: passport_core::auth::AuthToken::new(Secret::new(AUTH)),
        imds: None,
    }
}

pub async fn fetch(app: &App, auth: Option<&str>) -> Reply {
    fetch_role(app, None, auth).await
}

/// `GET /v1/credentials[/role]` straight into the handler.
pub async fn fetch_role(app: &App, role: Option<&str>, auth: Option<&str>) -> Reply {
    let mut req = Request::builder().uri("/v1/credentials");
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    let response = passport_core::server::container::handle(app, role, &req.body(()).unwrap());
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn admin(app: &App, path: &str) -> Reply {
    let req = Request::builder().uri(path).body(()).unwrap();
    let response = passport_core::server::admin::handle(app, &req);
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (the only shape passport serves).
pub fn parse_expiration(s: &str) -> SystemTime {
    assert_eq!(s.len(), 20, "{s}");
    assert!(s.ends_with('Z') && &s[10..11] == "T", "{s}");
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A `MakeWriter` that keeps everything written, for scanning logs.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// One HTTP/1.1 request on a fresh connection, spoken with a blocking `std::net::TcpStream`
/// inside `spawn_blocking`: for tests with paused time. While a blocking task runs, tokio
/// does not auto-advance paused time, so a request in flight can never let the runtime jump
/// to the next timer (the refresher's, hyper's header timeout) behind the test's back.
pub async fn http_paused(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    http_raw_paused(addr, head.into_bytes()).await
}

/// `http_paused` with the request head as raw bytes (anything allowed in header values).
pub async fn http_raw_paused(addr: std::net::SocketAddr, head: Vec<u8>) -> Reply {
    use std::io::{Read, Write};
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&head).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let mut headers = hyper::HeaderMap::new();
        for line in lines {
            let (k, v) = line.split_once(':').unwrap();
            headers.append(
                hyper::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                hyper::header::HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
        Reply {
            status: status.parse().unwrap(),
            headers,
            body: Bytes::copy_from_slice(&raw[split + 4..]),
        }
    })
    .await
    .unwrap()
}

/// A stand-in STS speaking the Query API's XML, answering from a script; for tests that
/// need the real aws-sdk-sts client on the other end.
pub struct StsStub {
    pub url: String,
    /// Request bodies, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The `Authorization` header of each request ("" for unsigned calls).
    pub authorizations: Arc<Mutex<Vec<String>>>,
    pub script: Arc<Mutex<VecDeque<(u16, String)>>>,
}

pub fn success_xml(
    access_key_id: &str,
    secret: &str,
    session_token: &str,
    expiration: &str,
) -> String {
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:app</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111122223333:assumed-role/app/test-session</Arn>
      <AssumedRoleId>AROAEXAMPLEID:test-session</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{session_token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{access_key_id}</AccessKeyId>
    </Credentials>
    <Provider>oidc.example</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    )
}

/// An `AssumeRole` answer for `arn` (the chained role's assumed-role ARN).
pub fn assume_role_xml(arn: &str, access_key_id: &str, expiration: &str) -> String {
    format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>{arn}</Arn><AssumedRoleId>AROACHAINED:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>chained-session-token</SessionToken>
      <SecretAccessKey>chained-secret-access-key</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{access_key_id}</AccessKeyId>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#
    )
}

pub fn error_xml(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"#
    )
}

impl StsStub {
    pub async fn start(default: (u16, String)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (req_log, script_c) = (requests.clone(), script.clone());
        let auth_log = authorizations.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (req_log, script, default, auth_log) = (
                    req_log.clone(),
                    script_c.clone(),
                    default.clone(),
                    auth_log.clone(),
                );
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (req_log, script, default) =
                            (req_log.clone(), script.clone(), default.clone());
                        let authorization = req
                            .headers()
                            .get(AUTHORIZATION)
                            .map(|v| v.to_str().unwrap_or("").to_owned())
                            .unwrap_or_default();
                        auth_log.lock().unwrap().push(authorization);
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            req_log
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            let (status, text) =
                                script.lock().unwrap().pop_front().unwrap_or(default);
                            let mut response =
                                hyper::Response::new(http_body_util::Full::new(Bytes::from(text)));
                            *response.status_mut() = StatusCode::from_u16(status).unwrap();
                            response
                                .headers_mut()
                                .insert("content-type", "text/xml".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        Self {
            url,
            requests,
            authorizations,
            script,
        }
    }

    pub fn push(&self, status: u16, body: String) {
        self.script.lock().unwrap().push_back((status, body));
    }
}

/// The one way tests start a sidecar: on loopback ports, fed by `source`, with a
/// well-formed token in a temp directory. Defaults: admin listener on, no IMDS, auth token
/// [`AUTH`], 64 connections, the system clock, an unseeded schedule.
pub fn start_sidecar(source: Arc<dyn CredentialSource>) -> SidecarBuilder {
    SidecarBuilder {
        source,
        clock: Arc::new(passport_core::clock::SystemClock),
        role_arn: ROLE_ARN.into(),
        token_file: None,
        server: ServerSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            auth_token: Secret::new(AUTH),
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            imds: None,
            legacy: Default::default(),
        },
        imds: None,
        imds_settings: None,
        seed: None,
        wait_ready: true,
        extra: Vec::new(),
    }
}

pub struct SidecarBuilder {
    source: Arc<dyn CredentialSource>,
    clock: Arc<dyn Clock>,
    role_arn: String,
    token_file: Option<PathBuf>,
    pub server: ServerSettings,
    /// `Some(allow_v1)`: serve IMDS for the role, in us-east-1.
    imds: Option<bool>,
    imds_settings: Option<ImdsSettings>,
    seed: Option<u64>,
    wait_ready: bool,
    extra: Vec<(String, String, Arc<dyn CredentialSource>)>,
}

impl SidecarBuilder {
    /// Also serve role `name` (`arn`) from `source`, at `/v1/credentials/name`.
    pub fn extra_role(mut self, name: &str, arn: &str, source: Arc<dyn CredentialSource>) -> Self {
        self.extra.push((name.into(), arn.into(), source));
        self
    }
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    pub fn role_arn(mut self, arn: impl Into<String>) -> Self {
        self.role_arn = arn.into();
        self
    }
    /// Use this token file instead of writing a fake token.
    pub fn token_file(mut self, path: PathBuf) -> Self {
        self.token_file = Some(path);
        self
    }
    pub fn imds(mut self, allow_v1: bool) -> Self {
        self.imds = Some(allow_v1);
        self
    }
    /// Serve IMDS exactly so (`None`: not at all).
    pub fn imds_settings(mut self, settings: Option<ImdsSettings>) -> Self {
        self.imds = None;
        self.imds_settings = settings;
        self
    }
    pub fn no_admin(mut self) -> Self {
        self.server.admin_listen = None;
        self
    }
    pub fn max_connections(mut self, n: usize) -> Self {
        self.server.max_connections = n;
        self
    }
    pub fn auth(mut self, token: Secret) -> Self {
        self.server.auth_token = token;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Do not wait for the first credentials (a test whose STS is down from the start).
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Bind and run until the returned [`Running`] is stopped or dropped.
    pub async fn run(self, shutdown: Shutdown) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let token_file = self
            .token_file
            .unwrap_or_else(|| write_token(dir.path(), "system:serviceaccount:default:app"));
        let role_arn: passport_core::aws::RoleArn = self.role_arn.parse().unwrap();
        let mut server = self.server;
        server.imds = match self.imds {
            Some(allow_v1) => Some(ImdsSettings::new(
                &role_arn,
                &"us-east-1".parse().unwrap(),
                allow_v1,
            )),
            None => self.imds_settings,
        };
        let refresh = RefreshSettings {
            role_arn,
            ..refresh_settings(token_file.clone())
        };
        let extra_names: Vec<String> = self.extra.iter().map(|(n, _, _)| n.clone()).collect();
        let extra = self
            .extra
            .into_iter()
            .map(|(name, arn, source)| {
                let role = passport_core::sidecar::ExtraRole {
                    name: name.parse().unwrap(),
                    refresh: RefreshSettings {
                        role_arn: arn.parse().unwrap(),
                        ..refresh_settings(token_file.clone())
                    },
                };
                (role, source)
            })
            .collect();
        let mut sidecar = Sidecar::bind_roles(refresh, self.source, extra, server, self.clock)
            .await
            .unwrap();
        if let Some(seed) = self.seed {
            sidecar = sidecar.with_seed(seed);
        }
        let (addr, admin, shared) = (sidecar.local_addr(), sidecar.admin_addr(), sidecar.shared());
        let relative = sidecar.relative_uri_addr();
        let extra = extra_names
            .iter()
            .map(|name| (name.clone(), sidecar.extra_role(name).expect("bound")))
            .collect();
        let stop = CancellationToken::new();
        let done = tokio::spawn(sidecar.run(stop.clone(), shutdown));
        if self.wait_ready {
            tokio::time::timeout(Duration::from_secs(10), shared.first_credentials())
                .await
                .expect("first credentials within 10 s");
        }
        Running {
            addr,
            relative,
            extra,
            admin,
            shared,
            token_file,
            stop,
            done: Some(done),
            _dir: dir,
        }
    }
}

/// A running sidecar; dropping it cancels it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    /// The unauthenticated `--relative-uri-listen` listener, when configured.
    pub relative: Option<std::net::SocketAddr>,
    pub extra: std::collections::BTreeMap<String, Arc<Shared>>,
    pub admin: Option<std::net::SocketAddr>,
    pub shared: Arc<Shared>,
    pub token_file: PathBuf,
    pub stop: CancellationToken,
    pub done: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    pub fn admin(&self) -> std::net::SocketAddr {
        self.admin.expect("an admin listener")
    }

    /// An extra role's shared state (snapshot, readiness).
    pub fn role(&self, name: &str) -> Arc<Shared> {
        self.extra
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no extra role {name}"))
    }

    /// Cancel and wait for the shutdown sequence to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `PASSPORT_UPDATE_GOLDEN=1`: golden-file tests rewrite their expected files instead of
/// comparing (review the diff). The one switch for every golden test.
pub fn update_golden() -> bool {
    std::env::var_os("PASSPORT_UPDATE_GOLDEN").is_some()
}
