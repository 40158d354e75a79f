//! What passport serves: `Credentials` from STS and the `Snapshot` published to handlers.
//!
//! The refresher builds a `Snapshot` once per refresh, rendering every response body up
//! front; request handlers only load the current snapshot and clone a `Bytes` handle. The
//! rendered bodies hold secrets, so they live in buffers that are zeroed when the last
//! handle drops.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::clock::{Clock, format_rfc3339_seconds};
use crate::secret::Secret;

/// Temporary credentials as STS issued them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: SystemTime,
    /// The assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub assumed_role_arn: Option<String>,
}

impl Credentials {
    /// Account id: the fifth `:` field of the assumed-role ARN.
    pub fn account_id(&self) -> Option<&str> {
        let arn = self.assumed_role_arn.as_deref()?;
        let account = arn.split(':').nth(4)?;
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
    }
}

/// How long before expiry passport stops serving a credential. Clients treat credentials
/// this close to expiry as already expired (aws-sdk-rust: 10 s, botocore: raises once
/// expired), so serving them would only hand out failures.
pub const SERVE_MARGIN: Duration = Duration::from_secs(60);

/// Credentials ready to serve, with every body rendered.
pub struct Served {
    pub access_key_id: String,
    pub account_id: Option<String>,
    pub role_arn: String,
    pub expiration: SystemTime,
    /// The same instant on the monotonic clock, fixed when the credentials arrived, so a
    /// wall clock stepped backwards cannot make expired credentials look valid.
    pub expires_mono: Instant,
    /// When passport received these credentials (IMDS `LastUpdated`).
    pub last_updated: SystemTime,
    /// `GET /v1/credentials` body.
    pub container_body: Bytes,
    /// IMDS `security-credentials/<role>` body.
    pub imds_body: Bytes,
    /// IMDS `security-credentials-extended/<role>` body (adds `AccountId`).
    pub imds_extended_body: Bytes,
}

impl std::fmt::Debug for Served {
    // The rendered bodies hold the secret key and session token: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("role_arn", &self.role_arn)
            .field("expiration", &format_rfc3339_seconds(self.expiration))
            .finish_non_exhaustive()
    }
}

impl Served {
    pub fn new(creds: &Credentials, role_arn: &str, clock: &dyn Clock) -> Self {
        let now = clock.wall();
        let remaining = creds
            .expiration
            .duration_since(now)
            .unwrap_or(Duration::ZERO);
        let expiration = format_rfc3339_seconds(creds.expiration);
        let account_id = creds.account_id().map(str::to_owned);
        let keys = Keys {
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.secret_access_key.expose(),
            token: creds.session_token.expose(),
            expiration: &expiration,
            account_id: account_id.as_deref(),
        };
        let container = ContainerBody { keys, role_arn };
        let last_updated = format_rfc3339_seconds(now);
        let imds_extended = ImdsBody {
            code: "Success",
            last_updated: &last_updated,
            kind: "AWS-HMAC",
            keys,
        };
        // Plain IMDS has no AccountId; the extended path (Java v2, Go v2) adds it.
        let imds = ImdsBody {
            keys: Keys {
                account_id: None,
                ..keys
            },
            ..imds_extended
        };
        let container_body = secret_json(&container);
        let imds_body = secret_json(&imds);
        let imds_extended_body = secret_json(&imds_extended);
        Self {
            access_key_id: creds.access_key_id.clone(),
            account_id,
            role_arn: role_arn.to_owned(),
            expiration: creds.expiration,
            expires_mono: clock.mono() + remaining,
            last_updated: now,
            container_body,
            imds_body,
            imds_extended_body,
        }
    }

    /// Time left before these credentials stop being served, by the more pessimistic of
    /// the two clocks; `None` once they must no longer be served.
    pub fn servable_for(&self, clock: &dyn Clock) -> Option<Duration> {
        let by_wall = self.expiration.duration_since(clock.wall()).ok()?;
        let by_mono = self.expires_mono.checked_duration_since(clock.mono())?;
        by_wall
            .min(by_mono)
            .checked_sub(SERVE_MARGIN)
            .filter(|d| !d.is_zero())
    }

    /// Seconds until expiry (negative once expired), for metrics.
    pub fn seconds_until_expiry(&self, clock: &dyn Clock) -> f64 {
        match self.expiration.duration_since(clock.wall()) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }
}

/// The state request handlers read: the credentials to serve, if any, and the error to
/// answer with when there are none.
#[derive(Debug)]
pub struct Snapshot {
    pub served: Option<std::sync::Arc<Served>>,
    /// Pre-rendered 503 body explaining why nothing can be served.
    pub unavailable_body: Bytes,
}

impl Snapshot {
    pub fn starting() -> Self {
        Self {
            served: None,
            unavailable_body: error_body(
                "CredentialsNotReady",
                "passport has not obtained credentials from STS yet",
            ),
        }
    }

    /// The credentials to serve now, or `None`.
    pub fn current(&self, clock: &dyn Clock) -> Option<&Served> {
        self.served
            .as_deref()
            .filter(|s| s.servable_for(clock).is_some())
    }
}

/// JSON error body carrying both casings, as SDKs parse either (client-compat.md §1.2.6).
pub fn error_body(code: &str, message: &str) -> Bytes {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "Code")]
        code_upper: &'a str,
        #[serde(rename = "Message")]
        message_upper: &'a str,
    }
    let body = ErrorBody {
        code,
        message,
        code_upper: code,
        message_upper: message,
    };
    Bytes::from(serde_json::to_vec(&body).expect("error body serialises"))
}

/// The fields both wire formats share, in the order both send them.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "PascalCase")]
struct Keys<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerBody<'a> {
    #[serde(flatten)]
    keys: Keys<'a>,
    role_arn: &'a str,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "PascalCase")]
struct ImdsBody<'a> {
    code: &'a str,
    last_updated: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(flatten)]
    keys: Keys<'a>,
}

/// A buffer holding secrets: zeroed when the last `Bytes` handle to it drops.
struct SecretBuf(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn secret_json(value: &impl Serialize) -> Bytes {
    let buf = serde_json::to_vec(value).expect("credential body serialises");
    Bytes::from_owner(SecretBuf(Zeroizing::new(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    pub(crate) fn sample(expiration: SystemTime) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLEKEY000001".into(),
            secret_access_key: Secret::new("secret/with+chars\"and\\quotes"),
            session_token: Secret::new("FwoGZXIvYXdzEXAMPLE=="),
            expiration,
            assumed_role_arn: Some("arn:aws:sts::111122223333:assumed-role/app/ns.pod".into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn renders_container_and_imds_bodies() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::new(now);
        let creds = sample(now + Duration::from_millis(3_600_500));
        let served = Served::new(&creds, "arn:aws:iam::111122223333:role/app", &clock);

        let body: serde_json::Value = serde_json::from_slice(&served.container_body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "AccessKeyId": "ASIAEXAMPLEKEY000001",
                "SecretAccessKey": "secret/with+chars\"and\\quotes",
                "Token": "FwoGZXIvYXdzEXAMPLE==",
                "Expiration": "2023-11-14T23:13:20Z",
                "AccountId": "111122223333",
                "RoleArn": "arn:aws:iam::111122223333:role/app",
            })
        );
        let imds: serde_json::Value = serde_json::from_slice(&served.imds_body).unwrap();
        assert_eq!(imds["Code"], "Success");
        assert_eq!(imds["Type"], "AWS-HMAC");
        assert_eq!(imds["LastUpdated"], "2023-11-14T22:13:20Z");
        assert_eq!(imds["Expiration"], "2023-11-14T23:13:20Z");
        assert!(imds.get("AccountId").is_none());
        let extended: serde_json::Value =
            serde_json::from_slice(&served.imds_extended_body).unwrap();
        assert_eq!(extended["AccountId"], "111122223333");
        assert_eq!(extended["Token"], imds["Token"]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_serving_a_margin_before_expiry_on_either_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::new(now);
        let served = Served::new(&sample(now + Duration::from_secs(600)), "r", &clock);
        assert_eq!(served.servable_for(&clock), Some(Duration::from_secs(540)));

        // Wall clock stepped back an hour: the monotonic deadline still holds.
        clock.jump_back(Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(539)).await;
        assert_eq!(served.servable_for(&clock), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(served.servable_for(&clock), None);

        // Wall clock stepped forward: the wall deadline holds.
        let clock = ManualClock::new(now);
        let served = Served::new(&sample(now + Duration::from_secs(600)), "r", &clock);
        clock.jump_forward(Duration::from_secs(590));
        assert_eq!(served.servable_for(&clock), None);
    }

    #[test]
    fn account_id_comes_from_the_assumed_role_arn() {
        let mut c = sample(SystemTime::UNIX_EPOCH);
        assert_eq!(c.account_id(), Some("111122223333"));
        c.assumed_role_arn = Some("not-an-arn".into());
        assert_eq!(c.account_id(), None);
    }

    #[test]
    fn error_body_has_both_casings() {
        let v: serde_json::Value = serde_json::from_slice(&error_body("X", "m \"q\"")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code":"X","message":"m \"q\"","Code":"X","Message":"m \"q\""})
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = sample(SystemTime::UNIX_EPOCH);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret/with"));
        assert!(!dbg.contains("FwoGZXIv"));
        assert!(dbg.contains("ASIAEXAMPLEKEY000001"));
        let served = Served::new(&c, "r", &crate::clock::SystemClock);
        let served = std::sync::Arc::new(served);
        let snapshot = Snapshot {
            served: Some(served.clone()),
            unavailable_body: Bytes::new(),
        };
        let dbg = format!("{served:?} {snapshot:?}");
        assert!(!dbg.contains("secret/with"));
        assert!(!dbg.contains("FwoGZXIv"));
    }
}
