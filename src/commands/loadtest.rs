//! `passport loadtest`: a load generator for credential endpoints, passport's or anyone's.
//!
//! - Closed loop (default): `--concurrency` connections, each sending its next request as
//!   soon as the last answer arrived. Measures throughput.
//! - Fixed rate (`--rate`): request `k` is due at `start + k / rate`, whoever sends it; its
//!   latency counts from that due time, so a stalled server is charged for the requests
//!   it kept waiting (no coordinated omission). Requests may leave up to 1 ms early, so the
//!   timer's millisecond granularity is not charged to the server.
//! - `--new-connection`: a fresh TCP connection per fetch (`Connection: close`, so the
//!   server closes and keeps the TIME_WAIT), as many SDK clients do.
//! - `--imds`: a fetch is the IMDSv2 sequence SDKs run on a refresh: `PUT /latest/api/token`,
//!   `GET .../security-credentials/` (the role name), `GET .../security-credentials/<role>`.
//!
//! Every credentials body is validated (a fast wrong answer is not throughput): JSON with
//! non-empty `AccessKeyId`, `SecretAccessKey`, `Token`, and an `Expiration` of the form
//! `YYYY-MM-DDTHH:MM:SSZ` in the future. A body byte-identical to the last one validated on
//! the same connection task is checked by comparison plus the expiry, so the generator
//! spends its CPU on load, not on re-parsing the same JSON.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

const IMDS_TOKEN_PATH: &str = "/latest/api/token";
const IMDS_ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const IMDS_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const IMDS_TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// Flags of `passport loadtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// The credentials URL (with `--imds`: the IMDS base URL, e.g. http://127.0.0.1:9911).
    #[arg(long, default_value = "http://127.0.0.1:9911/v1/credentials")]
    pub url: String,
    /// File whose content is sent as `Authorization` (container endpoint).
    #[arg(long)]
    pub auth_token_file: Option<PathBuf>,
    /// Connections (concurrent fetches).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run, e.g. 10s [default: 10s unless --requests is given].
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after this many fetches.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Fixed arrival rate (fetches per second) instead of a closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open a new TCP connection for every fetch.
    #[arg(long)]
    pub new_connection: bool,
    /// Run the IMDSv2 sequence (token, role name, credentials) for every fetch.
    #[arg(long)]
    pub imds: bool,
    /// passport's admin /metrics URL: report the STS calls made during the run.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Fail a body whose AccessKeyId differs.
    #[arg(long)]
    pub expect_access_key_id: Option<String>,
    /// Runtime worker threads [default: the CPUs this process may run on].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Per-request timeout.
    #[arg(long, default_value = "5s")]
    pub timeout: String,
    /// Print the report as JSON (no progress line).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

#[derive(Debug, Clone)]
pub struct LoadtestConfig {
    pub url: String,
    pub auth_token: Option<String>,
    pub concurrency: usize,
    pub stop: Stop,
    pub rate: Option<f64>,
    pub new_connection: bool,
    pub imds: bool,
    pub metrics_url: Option<String>,
    pub expect_access_key_id: Option<String>,
    pub timeout: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl LoadtestConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth_token: None,
            concurrency: 64,
            stop: Stop::After(Duration::from_secs(10)),
            rate: None,
            new_connection: false,
            imds: false,
            metrics_url: None,
            expect_access_key_id: None,
            timeout: Duration::from_secs(5),
            progress: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Errors {
    /// TCP connect or HTTP handshake failed.
    pub connect: u64,
    /// The connection failed mid-request.
    pub http: u64,
    pub timeout: u64,
    /// A 200 whose body failed validation.
    pub invalid_body: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.http + self.timeout + self.invalid_body
    }

    fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.http += other.http;
        self.timeout += other.timeout;
        self.invalid_body += other.invalid_body;
    }
}

/// Latency of a fetch, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub mode: &'static str,
    pub imds: bool,
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub elapsed_s: f64,
    /// Fetches that got an answer (any status).
    pub fetches: u64,
    /// Fetches whose every response was a 200 with a valid body.
    pub ok: u64,
    /// Fetches per second (completed fetches over the elapsed time).
    pub requests_per_second: f64,
    /// HTTP requests sent (3 per fetch with `--imds`).
    pub http_requests: u64,
    pub latency_us: Latency,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: Errors,
    pub valid_bodies: u64,
    /// STS calls during the run, from `--metrics-url`.
    pub sts_calls: Option<u64>,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
}

impl Report {
    /// Every fetch answered 200 with a valid body, and no errors.
    pub fn clean(&self) -> bool {
        self.errors.total() == 0 && self.ok == self.fetches && self.fetches > 0
    }
}

struct Target {
    addr: SocketAddr,
    authority: HeaderValue,
    path: String,
}

async fn target(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {url:?}: only http:// URLs are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--url {url:?}: no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("--url {url:?}: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: cannot resolve"))?;
    Ok(Target {
        addr,
        authority: HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
        path: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
    })
}

enum FetchError {
    Connect(String),
    Http(String),
    Timeout,
}

type Sender = SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, FetchError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| FetchError::Connect(format!("connect {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Connect(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Send one request and read the whole answer.
async fn exchange(
    sender: &mut Sender,
    req: Request<Empty<Bytes>>,
) -> Result<(StatusCode, bool, Bytes), FetchError> {
    sender
        .ready()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let status = response.status();
    let close = response
        .headers()
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?
        .to_bytes();
    Ok((status, close, body))
}

/// Validate a credentials body; returns its expiration.
pub fn validate_body(
    body: &[u8],
    expect_access_key_id: Option<&str>,
) -> Result<SystemTime, String> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("body is not a JSON object: {e}"))?;
    let field = |name: &str| -> Result<&str, String> {
        match value.get(name) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(format!("body has no non-empty string {name}")),
        }
    };
    let akid = field("AccessKeyId")?;
    field("SecretAccessKey")?;
    field("Token")?;
    let expiration = field("Expiration")?;
    if let Some(code) = value.get("Code")
        && code != "Success"
    {
        return Err(format!("IMDS body has Code {code}"));
    }
    if let Some(expected) = expect_access_key_id
        && akid != expected
    {
        return Err(format!("AccessKeyId {akid:?}, expected {expected:?}"));
    }
    let shape_ok = expiration.len() == 20
        && expiration.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(format!(
            "Expiration {expiration:?} is not YYYY-MM-DDTHH:MM:SSZ"
        ));
    }
    let at = humantime::parse_rfc3339(expiration)
        .map_err(|e| format!("Expiration {expiration:?}: {e}"))?;
    if at <= SystemTime::now() {
        return Err(format!("Expiration {expiration} is in the past"));
    }
    Ok(at)
}

/// Full validation of a new body, comparison plus expiry for a repeat of the last one.
struct Validator {
    expect: Option<String>,
    last: Option<(Bytes, SystemTime)>,
}

impl Validator {
    fn check(&mut self, body: &Bytes) -> Result<(), String> {
        if let Some((last, expires)) = &self.last
            && last == body
        {
            return if *expires > SystemTime::now() {
                Ok(())
            } else {
                Err("Expiration is in the past".into())
            };
        }
        let expires = validate_body(body, self.expect.as_deref())?;
        self.last = Some((body.clone(), expires));
        Ok(())
    }
}

struct Shared {
    config: LoadtestConfig,
    target: Target,
    auth: Option<HeaderValue>,
    start: Instant,
    deadline: Option<Instant>,
    issued: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
}

struct WorkerStats {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: Errors,
    valid: u64,
    ok: u64,
    http_requests: u64,
    first_error: Option<String>,
}

impl WorkerStats {
    fn new() -> Self {
        Self {
            // Nanoseconds, 1 ns to 100 s, 3 significant figures.
            hist: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds"),
            statuses: BTreeMap::new(),
            errors: Errors::default(),
            valid: 0,
            ok: 0,
            http_requests: 0,
            first_error: None,
        }
    }

    fn note(&mut self, error: String) {
        self.first_error.get_or_insert(error);
    }
}

struct Worker {
    shared: Arc<Shared>,
    sender: Option<Sender>,
    validator: Validator,
    stats: WorkerStats,
    /// IMDS: the role name and its credentials path, from the last listing.
    role_path: Option<(Bytes, String)>,
}

enum Outcome {
    /// Got answers; `ok` if every one was a 200 with a valid body.
    Answered {
        ok: bool,
    },
    Failed,
}

impl Worker {
    async fn run(mut self) -> WorkerStats {
        let shared = self.shared.clone();
        loop {
            let slot = shared.issued.fetch_add(1, Relaxed);
            if let Stop::Requests(n) = shared.config.stop
                && slot >= n
            {
                break;
            }
            let due = shared
                .config
                .rate
                .map(|rate| shared.start + Duration::from_secs_f64(slot as f64 / rate));
            if let Some(deadline) = shared.deadline
                && due.unwrap_or_else(Instant::now) >= deadline
            {
                break;
            }
            if let Some(due) = due {
                let early = due.checked_sub(Duration::from_millis(1)).unwrap_or(due);
                if early > Instant::now() {
                    tokio::time::sleep_until(early).await;
                }
            }
            let sent = Instant::now();
            let origin = due.map_or(sent, |due| due.min(sent));
            let outcome = self.fetch().await;
            match outcome {
                Outcome::Answered { ok } => {
                    let nanos = origin.elapsed().as_nanos().max(1) as u64;
                    let _ = self.stats.hist.record(nanos.min(self.stats.hist.high()));
                    shared.completed.fetch_add(1, Relaxed);
                    if ok {
                        self.stats.ok += 1;
                    } else {
                        shared.failed.fetch_add(1, Relaxed);
                    }
                }
                Outcome::Failed => {
                    shared.failed.fetch_add(1, Relaxed);
                    self.sender = None;
                    // A refused connection fails at once: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            if shared.config.new_connection {
                self.sender = None;
            }
        }
        self.stats
    }

    fn request(&self, method: Method, path: &str) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().expect("valid path");
        let headers = req.headers_mut();
        headers.insert(HOST, self.shared.target.authority.clone());
        if let Some(auth) = &self.shared.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if self.shared.config.new_connection {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        req
    }

    /// One request on the current connection (opening one if needed).
    async fn one(&mut self, req: Request<Empty<Bytes>>) -> Result<(StatusCode, Bytes), ()> {
        let timeout = self.shared.config.timeout;
        let result = tokio::time::timeout(timeout, async {
            let sender = match &mut self.sender {
                Some(sender) if !sender.is_closed() => sender,
                slot => slot.insert(connect(self.shared.target.addr).await?),
            };
            exchange(sender, req).await
        })
        .await
        .unwrap_or(Err(FetchError::Timeout));
        self.stats.http_requests += 1;
        match result {
            Ok((status, close, body)) => {
                if close {
                    self.sender = None;
                }
                *self.stats.statuses.entry(status.as_u16()).or_default() += 1;
                Ok((status, body))
            }
            Err(e) => {
                let msg = match e {
                    FetchError::Connect(m) => {
                        self.stats.errors.connect += 1;
                        m
                    }
                    FetchError::Http(m) => {
                        self.stats.errors.http += 1;
                        m
                    }
                    FetchError::Timeout => {
                        self.stats.errors.timeout += 1;
                        format!("no answer within {timeout:?}")
                    }
                };
                self.stats.note(msg);
                Err(())
            }
        }
    }

    fn check_credentials(&mut self, status: StatusCode, body: &Bytes) -> bool {
        if status != StatusCode::OK {
            self.stats.note(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
            return false;
        }
        match self.validator.check(body) {
            Ok(()) => {
                self.stats.valid += 1;
                true
            }
            Err(e) => {
                self.stats.errors.invalid_body += 1;
                self.stats.note(e);
                false
            }
        }
    }

    async fn fetch(&mut self) -> Outcome {
        if !self.shared.config.imds {
            let req = self.request(Method::GET, &self.shared.target.path);
            let Ok((status, body)) = self.one(req).await else {
                return Outcome::Failed;
            };
            let ok = self.check_credentials(status, &body);
            return Outcome::Answered { ok };
        }
        // IMDSv2: session token, role name, credentials.
        let mut req = self.request(Method::PUT, IMDS_TOKEN_PATH);
        req.headers_mut()
            .insert(IMDS_TTL_HEADER, HeaderValue::from_static("21600"));
        req.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let Ok((status, token)) = self.one(req).await else {
            return Outcome::Failed;
        };
        let token = match HeaderValue::from_maybe_shared(token) {
            Ok(token) if status == StatusCode::OK && !token.is_empty() => token,
            _ => {
                self.stats
                    .note(format!("IMDS token request: status {status}"));
                return Outcome::Answered { ok: false };
            }
        };
        let mut req = self.request(Method::GET, IMDS_ROLES_PATH);
        req.headers_mut().insert(IMDS_TOKEN_HEADER, token.clone());
        let Ok((status, roles)) = self.one(req).await else {
            return Outcome::Failed;
        };
        let role = roles
            .split(|b| *b == b'\n')
            .next()
            .filter(|r| !r.is_empty() && r.iter().all(|b| b.is_ascii_graphic()));
        let (status, role) = match role {
            Some(role) if status == StatusCode::OK => (status, roles.slice_ref(role)),
            _ => {
                self.stats
                    .note(format!("IMDS role listing: status {status}, no role name"));
                return Outcome::Answered { ok: false };
            }
        };
        let _ = status;
        let path = match &self.role_path {
            Some((name, path)) if *name == role => path.clone(),
            _ => {
                let path = format!("{IMDS_ROLES_PATH}{}", String::from_utf8_lossy(&role));
                self.role_path = Some((role, path.clone()));
                path
            }
        };
        let mut req = self.request(Method::GET, &path);
        req.headers_mut().insert(IMDS_TOKEN_HEADER, token);
        let Ok((status, body)) = self.one(req).await else {
            return Outcome::Failed;
        };
        let ok = self.check_credentials(status, &body);
        Outcome::Answered { ok }
    }
}

/// A plain GET with a fresh connection (metrics scraping).
async fn get_text(url: &str) -> Result<String, String> {
    let t = target(url).await?;
    let mut sender = connect(t.addr).await.map_err(|e| match e {
        FetchError::Connect(m) | FetchError::Http(m) => m,
        FetchError::Timeout => "timeout".into(),
    })?;
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = t.path.parse().map_err(|e| format!("{e}"))?;
    req.headers_mut().insert(HOST, t.authority.clone());
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(5), exchange(&mut sender, req))
            .await
            .map_err(|_| format!("{url}: timeout"))?
            .map_err(|e| match e {
                FetchError::Connect(m) | FetchError::Http(m) => m,
                FetchError::Timeout => "timeout".into(),
            })?;
    if status != StatusCode::OK {
        return Err(format!("{url}: status {status}"));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// passport's count of STS calls, every role's together, from its Prometheus text.
pub async fn sts_calls(metrics_url: &str) -> Result<u64, String> {
    let text = get_text(metrics_url).await?;
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("passport_sts_request_duration_seconds_count"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse().ok())
        .collect();
    if counts.is_empty() {
        return Err(format!(
            "{metrics_url}: no passport_sts_request_duration_seconds_count"
        ));
    }
    Ok(counts.iter().sum())
}

/// Run a load test on the current runtime.
pub async fn run(config: LoadtestConfig) -> Result<Report, String> {
    if config.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if config.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number".into());
    }
    let target = target(&config.url).await?;
    let auth = config
        .auth_token
        .as_deref()
        .map(|t| HeaderValue::from_str(t).map_err(|_| "the auth token is not a valid header value"))
        .transpose()?;
    let sts_before = match &config.metrics_url {
        Some(url) => Some(sts_calls(url).await?),
        None => None,
    };
    let start = Instant::now();
    let deadline = match config.stop {
        Stop::After(d) => Some(start + d),
        Stop::Requests(_) => None,
    };
    let shared = Arc::new(Shared {
        target,
        auth,
        start,
        deadline,
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        config,
    });
    let progress = shared.config.progress.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                shared.start + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let mut last = 0;
            loop {
                tick.tick().await;
                let done = shared.completed.load(Relaxed);
                eprint!(
                    "\r{:>6.1}s  {:>10} fetches  {:>9.0}/s  {} errors   ",
                    shared.start.elapsed().as_secs_f64(),
                    done,
                    (done - last) as f64,
                    shared.failed.load(Relaxed)
                );
                last = done;
            }
        })
    });
    let workers: Vec<_> = (0..shared.config.concurrency)
        .map(|_| {
            tokio::spawn(
                Worker {
                    shared: shared.clone(),
                    sender: None,
                    validator: Validator {
                        expect: shared.config.expect_access_key_id.clone(),
                        last: None,
                    },
                    stats: WorkerStats::new(),
                    role_path: None,
                }
                .run(),
            )
        })
        .collect();
    let mut total = WorkerStats::new();
    for w in workers {
        let stats = w.await.map_err(|e| format!("worker panicked: {e}"))?;
        total.hist.add(&stats.hist).expect("same bounds");
        for (status, n) in stats.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.errors.add(&stats.errors);
        total.valid += stats.valid;
        total.ok += stats.ok;
        total.http_requests += stats.http_requests;
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
    }
    let elapsed = shared.start.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let sts_calls = match (&shared.config.metrics_url, sts_before) {
        (Some(url), Some(before)) => Some(sts_calls(url).await?.saturating_sub(before)),
        _ => None,
    };
    let h = &total.hist;
    let us = |v: u64| v as f64 / 1000.0;
    let fetches = h.len();
    Ok(Report {
        url: shared.config.url.clone(),
        mode: if shared.config.new_connection {
            "new-connection"
        } else {
            "keep-alive"
        },
        imds: shared.config.imds,
        concurrency: shared.config.concurrency,
        target_rate: shared.config.rate,
        elapsed_s: elapsed.as_secs_f64(),
        fetches,
        ok: total.ok,
        requests_per_second: fetches as f64 / elapsed.as_secs_f64(),
        http_requests: total.http_requests,
        latency_us: if fetches == 0 {
            Latency::default()
        } else {
            Latency {
                p50: us(h.value_at_quantile(0.5)),
                p90: us(h.value_at_quantile(0.9)),
                p99: us(h.value_at_quantile(0.99)),
                p999: us(h.value_at_quantile(0.999)),
                max: us(h.max()),
                mean: h.mean() / 1000.0,
            }
        },
        statuses: total.statuses,
        errors: total.errors,
        valid_bodies: total.valid,
        sts_calls,
        first_error: total.first_error,
    })
}

pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let rate = r
        .target_rate
        .map_or(String::new(), |rate| format!(", fixed rate {rate:.0}/s"));
    let _ = writeln!(
        out,
        "{}{}: {}, {} connections{}, {:.1} s",
        r.url,
        if r.imds { " (IMDSv2)" } else { "" },
        r.mode,
        r.concurrency,
        rate,
        r.elapsed_s
    );
    let _ = writeln!(
        out,
        "  fetches       {} ({} ok), {:.0}/s, {} HTTP requests",
        r.fetches, r.ok, r.requests_per_second, r.http_requests
    );
    let l = &r.latency_us;
    let _ = writeln!(
        out,
        "  latency (us)  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let _ = writeln!(out, "  statuses      {}", statuses.join(", "));
    let e = &r.errors;
    let _ = writeln!(
        out,
        "  errors        {} (connect {}, http {}, timeout {}, invalid body {})",
        e.total(),
        e.connect,
        e.http,
        e.timeout,
        e.invalid_body
    );
    let _ = writeln!(out, "  valid bodies  {}", r.valid_bodies);
    if let Some(n) = r.sts_calls {
        let _ = writeln!(out, "  STS calls     {n} during the run");
    }
    if let Some(err) = &r.first_error {
        let _ = writeln!(out, "  first error   {err}");
    }
    out
}

fn config_from_args(args: &LoadtestArgs) -> Result<LoadtestConfig, String> {
    let auth_token = match &args.auth_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("--auth-token-file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let duration = |raw: &str, flag: &str| {
        raw.trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .or_else(|_| humantime::parse_duration(raw.trim()))
            .map_err(|_| format!("{flag} {raw:?}: expected a duration such as 10s or 1m"))
    };
    let stop = match (&args.duration, args.requests) {
        (Some(_), Some(_)) => return Err("give --duration or --requests, not both".into()),
        (None, Some(n)) => Stop::Requests(n),
        (Some(d), None) => Stop::After(duration(d, "--duration")?),
        (None, None) => Stop::After(Duration::from_secs(10)),
    };
    Ok(LoadtestConfig {
        url: args.url.clone(),
        auth_token,
        concurrency: args.concurrency,
        stop,
        rate: args.rate,
        new_connection: args.new_connection,
        imds: args.imds,
        metrics_url: args.metrics_url.clone(),
        expect_access_key_id: args.expect_access_key_id.clone(),
        timeout: duration(&args.timeout, "--timeout")?,
        progress: !args.json && std::io::stderr().is_terminal(),
    })
}

/// The `loadtest` subcommand: its own multi-thread runtime.
pub fn main(args: &LoadtestArgs) -> ExitCode {
    let config = match config_from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(crate::args::EXIT_USAGE);
        }
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                print!("{}", render(&report));
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(crate::args::EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(exp: &str) -> String {
        format!(
            r#"{{"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"{exp}"}}"#
        )
    }

    #[test]
    fn validates_bodies() {
        let future = passport_core::clock::format_rfc3339_seconds(
            SystemTime::now() + Duration::from_secs(3600),
        );
        assert!(validate_body(body(&future).as_bytes(), None).is_ok());
        assert!(validate_body(body(&future).as_bytes(), Some("ASIAX")).is_ok());
        assert!(validate_body(body(&future).as_bytes(), Some("ASIAY")).is_err());
        assert!(validate_body(body("2001-01-01T00:00:00Z").as_bytes(), None).is_err());
        assert!(validate_body(body("2999-01-01T00:00:00.000Z").as_bytes(), None).is_err());
        assert!(validate_body(body("2999-01-01 00:00:00Z").as_bytes(), None).is_err());
        assert!(validate_body(b"{}", None).is_err());
        assert!(validate_body(b"not json", None).is_err());
        let empty = format!(
            r#"{{"AccessKeyId":"","SecretAccessKey":"s","Token":"t","Expiration":"{future}"}}"#
        );
        assert!(validate_body(empty.as_bytes(), None).is_err());
        let imds_failed = format!(
            r#"{{"Code":"Failure","AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"{future}"}}"#
        );
        assert!(validate_body(imds_failed.as_bytes(), None).is_err());
    }
}
