//! Role chaining: web identity into the first role, then `sts:AssumeRole` into a second
//! role (usually in another account), signed with the first hop's credentials. The second
//! hop's credentials are what passport serves.
//!
//! [`ChainedSource`] is a [`CredentialSource`] like any other, so the refresher, its
//! schedule and the server do not know a chain exists: the second hop's lifetime (at most
//! one hour, STS's cap for chained sessions) bounds everything they decide. The first hop
//! is cached and refreshed on a schedule of its own (the same [`Schedule`] rules applied to
//! its own, longer, lifetime), so a refresh of the second hop costs one STS call, not two.
//! Errors say which hop failed: an `AccessDenied` on the second hop is the other role's
//! trust policy (or the first role's permissions), not the web-identity trust policy.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::aws::{RoleArn, SessionName};
use crate::clock::Clock;
use crate::credentials::Credentials;
use crate::schedule::Schedule;
use crate::secret::Secret;
use crate::sts::{AssumeRoleRequest, BoxFuture, CredentialSource, ErrorClass, SourceError};

/// STS refuses chained sessions longer than this.
pub const MAX_CHAINED_SECONDS: u32 = 3600;

/// The first hop is used to sign the second only while it has at least this long left:
/// a request signed with credentials about to expire can arrive after they did.
const FIRST_HOP_MIN_LEFT: Duration = Duration::from_secs(5 * 60);

/// Where an external id comes from. A file is re-read for every call, so a rotated secret
/// is picked up without a restart.
#[derive(Debug, Clone)]
pub enum ExternalId {
    Value(Secret),
    File(PathBuf),
}

impl ExternalId {
    fn read(&self) -> Result<Secret, SourceError> {
        match self {
            ExternalId::Value(v) => Ok(v.clone()),
            ExternalId::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end().to_owned()))
                .map_err(|e| {
                    SourceError::new(
                        ErrorClass::Transient,
                        "ExternalIdUnreadable",
                        format!("cannot read the external id file {}: {e}", path.display()),
                    )
                }),
        }
    }
}

/// The second hop: what to ask `sts:AssumeRole` for.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    pub role_arn: RoleArn,
    pub session_name: SessionName,
    /// 900..=3600.
    pub duration_seconds: u32,
    pub external_id: Option<ExternalId>,
    /// Session tags (`sts:TagSession` must be allowed by the second role's trust policy).
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    /// An inline session policy (JSON), intersected with the role's own policies.
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
}

/// One `sts:AssumeRole` call.
#[derive(Debug, Clone)]
pub struct AssumeRoleCall {
    pub settings: ChainSettings,
    pub external_id: Option<Secret>,
}

/// Something that can call `sts:AssumeRole` signed with `caller`'s credentials.
pub trait RoleAssumer: Send + Sync + 'static {
    fn assume_role_as<'a>(
        &'a self,
        caller: &'a Credentials,
        call: &'a AssumeRoleCall,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>>;
}

struct FirstHop {
    credentials: Credentials,
    /// Wall-clock time at which the first hop is due for its own refresh.
    refresh_at: SystemTime,
}

/// Web identity, then `AssumeRole`.
pub struct ChainedSource {
    first: Arc<dyn CredentialSource>,
    second: Arc<dyn RoleAssumer>,
    settings: ChainSettings,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<FirstHop>>,
    schedule: Mutex<Schedule>,
}

impl ChainedSource {
    pub fn new(
        first: Arc<dyn CredentialSource>,
        second: Arc<dyn RoleAssumer>,
        settings: ChainSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            first,
            second,
            settings,
            clock,
            cached: Mutex::new(None),
            schedule: Mutex::new(Schedule::from_entropy()),
        }
    }

    /// Seeded first-hop schedule, for deterministic tests.
    pub fn with_seed(self, seed: u64) -> Self {
        *self.schedule.lock().unwrap() = Schedule::seeded(seed);
        self
    }

    /// The cached first hop, if it is neither due for refresh nor too close to expiry.
    fn cached_first_hop(&self) -> Option<Credentials> {
        let now = self.clock.wall();
        let cached = self.cached.lock().unwrap();
        let hop = cached.as_ref()?;
        let left = hop.credentials.expiration.duration_since(now).ok()?;
        (now < hop.refresh_at && left >= FIRST_HOP_MIN_LEFT).then(|| hop.credentials.clone())
    }

    async fn first_hop(&self, request: &AssumeRoleRequest) -> Result<Credentials, SourceError> {
        if let Some(creds) = self.cached_first_hop() {
            return Ok(creds);
        }
        let creds = self
            .first
            .assume_role(request)
            .await
            .map_err(|e| hop_error(1, &request.role_arn, e))?;
        let now = self.clock.wall();
        let lifetime = creds.expiration.duration_since(now).unwrap_or_default();
        let delay = self.schedule.lock().unwrap().after_success(lifetime);
        *self.cached.lock().unwrap() = Some(FirstHop {
            credentials: creds.clone(),
            refresh_at: now + delay,
        });
        Ok(creds)
    }

    async fn second_hop(&self, first: &Credentials) -> Result<Credentials, SourceError> {
        let call = AssumeRoleCall {
            settings: self.settings.clone(),
            external_id: self
                .settings
                .external_id
                .as_ref()
                .map(ExternalId::read)
                .transpose()?,
        };
        self.second.assume_role_as(first, &call).await.map_err(|e| {
            if matches!(
                e.code.as_str(),
                "ExpiredToken" | "ExpiredTokenException" | "InvalidClientTokenId"
            ) {
                // STS no longer accepts the first hop's keys: fetch a new first hop on
                // the next attempt, which the refresher makes soon (transient back-off).
                *self.cached.lock().unwrap() = None;
                let e = SourceError::new(ErrorClass::Transient, e.code, e.message);
                return hop_error(2, &self.settings.role_arn, e);
            }
            hop_error(2, &self.settings.role_arn, e)
        })
    }
}

/// Say which hop failed and, for a refusal, whose policy refused.
fn hop_error(hop: u8, role: &RoleArn, mut e: SourceError) -> SourceError {
    let what = if hop == 1 {
        "hop 1, AssumeRoleWithWebIdentity"
    } else {
        "hop 2, AssumeRole"
    };
    let hint = match (hop, e.code.as_str()) {
        (2, "AccessDenied") => format!(
            "; the trust policy of {role} (account {}) must allow the first role's session as \
             Principal.AWS (with sts:TagSession when tags are passed, and the external id if it \
             asks for one), and the first role needs sts:AssumeRole on it",
            role.account_id()
        ),
        _ => String::new(),
    };
    e.message = format!("{what} into {role}: {}{hint}", e.message);
    e
}

impl CredentialSource for ChainedSource {
    fn assume_role<'a>(
        &'a self,
        request: &'a AssumeRoleRequest,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            let first = self.first_hop(request).await?;
            self.second_hop(&first).await
        })
    }
}
