//! "Local border control": an OIDC issuer and an STS emulator on loopback, for tests and
//! demos. Nothing on the sidecar's serving path depends on this module.
//!
//! * [`issuer`]: the RS256 signing key, JWKS and discovery document;
//! * [`mint`]: projected-style service-account tokens, written like the kubelet does;
//! * [`trust_policy`]: IAM trust-policy evaluation with explanations (shared with `check`);
//! * [`sigv4`]: SigV4 verification for `GetCallerIdentity`;
//! * [`faults`]: error rate, scripted errors, latency, throttling;
//! * [`sts_server`]: the HTTP routes; [`Emulator`] starts it all in process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), passport::emulator::EmulatorError> {
//! use passport::emulator::{Emulator, EmulatorConfig, MintRequest};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! let jwt = emu.mint(&MintRequest::new("default", "app"))?;
//! // call emu.sts_url() with RoleArn = emu.role_arn("passport-demo") ...
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod faults;
pub mod issuer;
pub mod mint;
pub mod sigv4;
pub mod sts_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::trust_policy;
pub use crate::trust_policy::{Decision, TrustPolicy};
pub use faults::{Faults, StsError};
pub use issuer::SigningKey;
pub use mint::{MintError, MintRequest};
use passport_core::clock::{Clock, SystemClock};
use sts_server::{Provider, Role, State};

pub const DEFAULT_ACCOUNT_ID: &str = "111122223333";
pub const DEFAULT_ROLE: &str = "passport-demo";

/// A role to create. `policy` is JSON; before parsing, `{{issuer_host}}`,
/// `{{provider_arn}}` and `{{account_id}}` are replaced with the built-in issuer's values
/// (its port is only known once bound).
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// `NAME`, in the emulated account, or `ACCOUNT:NAME` for a role in another account
    /// (the target of role chaining).
    pub name: String,
    pub policy: String,
    /// Seconds; IAM allows 3600..=43200. Default 3600.
    pub max_session_duration: u32,
}

impl RoleConfig {
    pub fn new(name: impl Into<String>, policy: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            policy: policy.into(),
            max_session_duration: 3600,
        }
    }
}

/// An extra OIDC provider the emulated account trusts (e.g. a real cluster's issuer).
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub jwks: JwkSet,
    /// Accepted `aud` values (IAM's client id list). Default `sts.amazonaws.com`.
    pub audiences: Vec<String>,
}

impl TrustedIssuer {
    pub fn new(issuer: impl Into<String>, jwks: JwkSet) -> Self {
        Self {
            issuer: issuer.into(),
            jwks,
            audiences: vec![mint::DEFAULT_AUDIENCE.into()],
        }
    }
}

#[derive(Clone)]
pub struct EmulatorConfig {
    /// Must be a loopback address. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    pub account_id: String,
    /// `None`: generate a key.
    pub signing_key: Option<Arc<SigningKey>>,
    /// `None`: `http://LISTEN_ADDR`.
    pub issuer_url: Option<String>,
    /// Accepted `aud` values for the built-in issuer.
    pub audiences: Vec<String>,
    pub roles: Vec<RoleConfig>,
    /// Create `passport-demo`, trusting the built-in issuer for any service account.
    pub default_role: bool,
    pub trusted_issuers: Vec<TrustedIssuer>,
    pub faults: Faults,
    pub clock: Arc<dyn Clock>,
    /// Allowed clock skew for `exp`/`nbf`/`iat`. Default 60 s.
    pub clock_skew: Duration,
    /// Issued credentials kept for `GetCallerIdentity`. Default 10,000.
    pub max_sessions: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            signing_key: None,
            issuer_url: None,
            audiences: vec![mint::DEFAULT_AUDIENCE.into()],
            roles: Vec::new(),
            default_role: true,
            trusted_issuers: Vec::new(),
            faults: Faults::default(),
            clock: Arc::new(SystemClock),
            clock_skew: Duration::from_secs(60),
            max_sessions: 10_000,
        }
    }
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("listen", &self.listen)
            .field("account_id", &self.account_id)
            .field("issuer_url", &self.issuer_url)
            .field("roles", &self.roles)
            .field("default_role", &self.default_role)
            .field("trusted_issuers", &self.trusted_issuers.len())
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] issuer::KeyError),
    #[error(transparent)]
    Mint(#[from] MintError),
}

/// A running issuer + STS emulator. Dropping it stops accepting connections.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        if !config.listen.ip().is_loopback() {
            return Err(EmulatorError::Config(format!(
                "the emulator only listens on loopback, not {}",
                config.listen
            )));
        }
        config.faults.validate().map_err(EmulatorError::Config)?;
        if config.account_id.len() != 12 || !config.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EmulatorError::Config(format!(
                "account id must be 12 digits, not {:?}",
                config.account_id
            )));
        }
        let key = match config.signing_key {
            Some(k) => k,
            None => Arc::new(SigningKey::generate()?),
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let issuer_url = config
            .issuer_url
            .clone()
            // Kept exactly: IAM names a provider by its URL, trailing slash included.
            .unwrap_or_else(|| format!("http://{addr}"));
        let provider_arn = trust_policy::provider_arn(&config.account_id, &issuer_url);

        let mut roles = HashMap::new();
        if config.default_role {
            roles.insert(
                sts_server::role_key(&config.account_id, DEFAULT_ROLE),
                Role {
                    account_id: config.account_id.clone(),
                    name: DEFAULT_ROLE.into(),
                    policy: TrustPolicy::any_service_account(&provider_arn),
                    max_session_duration: 43_200,
                    role_id: sts_server::role_id_for(&config.account_id, DEFAULT_ROLE),
                },
            );
        }
        for rc in &config.roles {
            if !(3600..=43_200).contains(&rc.max_session_duration) {
                return Err(EmulatorError::Config(format!(
                    "role {}: max session duration must be 3600..=43200 seconds",
                    rc.name
                )));
            }
            let text = rc
                .policy
                .replace("{{issuer_host}}", trust_policy::provider_host(&issuer_url))
                .replace("{{provider_arn}}", &provider_arn)
                .replace("{{account_id}}", &config.account_id);
            let policy = TrustPolicy::parse(&text)
                .map_err(|e| EmulatorError::Config(format!("role {}: {e}", rc.name)))?;
            let (account, name) = match rc.name.split_once(':') {
                Some((account, name)) => (account.to_owned(), name.to_owned()),
                None => (config.account_id.clone(), rc.name.clone()),
            };
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EmulatorError::Config(format!(
                    "role {}: the account must be 12 digits",
                    rc.name
                )));
            }
            roles.insert(
                sts_server::role_key(&account, &name),
                Role {
                    role_id: sts_server::role_id_for(&account, &name),
                    account_id: account,
                    name,
                    policy,
                    max_session_duration: rc.max_session_duration,
                },
            );
        }
        let mut providers = vec![Provider {
            issuer: issuer_url.clone(),
            jwks: key.jwks(),
            audiences: config.audiences.clone(),
        }];
        providers.extend(config.trusted_issuers.iter().map(|t| Provider {
            issuer: t.issuer.clone(),
            jwks: t.jwks.clone(),
            audiences: t.audiences.clone(),
        }));
        let state = Arc::new(State::new(
            config.account_id.clone(),
            issuer_url,
            key,
            roles,
            providers,
            config.faults.clone(),
            config.clock.clone(),
            config.clock_skew,
            config.max_sessions.max(1),
        ));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, state.clone(), cancel.clone()));
        Ok(Self {
            addr,
            state,
            cancel,
            task: Some(task),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The STS endpoint (`AWS_ENDPOINT_URL_STS`).
    pub fn sts_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The built-in issuer (`iss` of minted tokens).
    pub fn issuer_url(&self) -> &str {
        &self.state.issuer_url
    }

    pub fn account_id(&self) -> &str {
        &self.state.account_id
    }

    /// The ARN of role `NAME` in the emulated account, or of `ACCOUNT:NAME`.
    pub fn role_arn(&self, role: &str) -> String {
        match role.split_once(':') {
            Some((account, name)) => format!("arn:aws:iam::{account}:role/{name}"),
            None => format!("arn:aws:iam::{}:role/{role}", self.state.account_id),
        }
    }

    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST` of the built-in issuer.
    pub fn provider_arn(&self) -> String {
        trust_policy::provider_arn(&self.state.account_id, &self.state.issuer_url)
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.state.key
    }

    /// Mint a token from the built-in issuer, using the emulator's clock for `iat`.
    pub fn mint(&self, request: &MintRequest) -> Result<String, MintError> {
        mint::mint_token(
            &self.state.key,
            &self.state.issuer_url,
            request,
            self.state.clock.wall(),
        )
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), EmulatorError> {
        faults.validate().map_err(EmulatorError::Config)?;
        self.state.faults.lock().unwrap().set(faults);
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.state.faults.lock().unwrap().faults.clone()
    }

    /// Queue `code` to be returned by the next `AssumeRoleWithWebIdentity` (after any
    /// already queued).
    pub fn push_fault(&self, code: impl Into<String>) {
        self.state
            .faults
            .lock()
            .unwrap()
            .faults
            .script
            .push_back(code.into());
    }

    /// Credentials currently remembered for `GetCallerIdentity`.
    pub fn session_count(&self) -> usize {
        self.state.session_count()
    }

    /// Stop accepting, let in-flight requests finish (up to 5 s).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, cancel: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "emulator accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    sts_server::handle(state.clone(), req)
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// Parse `NAME=VALUE` (for `--role` and `--trust-jwks`).
pub fn split_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// Read a JWKS file (`{"keys": [...]}`).
pub fn load_jwks(path: &std::path::Path) -> Result<JwkSet, EmulatorError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EmulatorError::Config(format!("JWKS file {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| EmulatorError::Config(format!("JWKS file {}: {e}", path.display())))
}
