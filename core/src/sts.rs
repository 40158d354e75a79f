//! The credential source: one `AssumeRoleWithWebIdentity` call, and what its errors mean.
//!
//! `CredentialSource` only talks to STS; scheduling, retries and caching belong to the
//! refresher. `StsSource` is the real implementation on `aws-sdk-sts`, with the SDK's own
//! retries switched off so that every attempt is visible to the refresher's backoff, logs and
//! metrics. Tests substitute an in-process fake.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::aws::{RoleArn, SessionName};
use crate::credentials::Credentials;
use crate::secret::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One exchange request.
#[derive(Debug, Clone)]
pub struct AssumeRoleRequest {
    pub role_arn: RoleArn,
    pub session_name: SessionName,
    pub web_identity_token: Secret,
    pub duration_seconds: u32,
}

/// How the refresher should react to a failed exchange (client-compat.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Network trouble, 5xx, timeouts, IdP unreachable: retry with backoff.
    Transient,
    /// STS asks us to slow down: retry with a longer backoff.
    Throttled,
    /// The token was refused as invalid or not yet valid: re-read the file, retry slowly.
    TokenRejected,
    /// The token expired: re-read the file (the kubelet rotates it) and retry.
    TokenExpired,
    /// The trust policy or configuration refuses us: retry slowly, report loudly.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Throttled => "throttled",
            ErrorClass::TokenRejected => "token_rejected",
            ErrorClass::TokenExpired => "token_expired",
            ErrorClass::Permanent => "permanent",
        }
    }

    /// Classify an STS error code; `status` decides for codes we do not know.
    pub fn from_code(code: &str, status: Option<u16>) -> Self {
        match code {
            "IDPCommunicationError"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError" => ErrorClass::Transient,
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "SlowDown" => ErrorClass::Throttled,
            "InvalidIdentityToken" => ErrorClass::TokenRejected,
            "ExpiredTokenException" | "ExpiredToken" => ErrorClass::TokenExpired,
            "IDPRejectedClaim"
            | "AccessDenied"
            | "RegionDisabledException"
            | "MalformedPolicyDocument"
            | "PackedPolicyTooLarge"
            | "ValidationError"
            | "InvalidParameterValue" => ErrorClass::Permanent,
            _ => match status {
                // 5xx, or a 2xx whose body could not be parsed (truncated, not XML).
                Some(s) if !(400..500).contains(&s) => ErrorClass::Transient,
                Some(429) => ErrorClass::Throttled,
                Some(_) => ErrorClass::Permanent,
                None => ErrorClass::Transient,
            },
        }
    }
}

/// A failed exchange. `message` never contains the token (see `scrub`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SourceError {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
}

impl SourceError {
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
        }
    }
}

pub trait CredentialSource: Send + Sync + 'static {
    fn assume_role<'a>(
        &'a self,
        request: &'a AssumeRoleRequest,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>>;
}

/// Where and how to reach STS.
#[derive(Debug, Clone)]
pub struct StsSettings {
    pub region: crate::aws::Region,
    /// Override, e.g. a local emulator or moto. `None`: the regional endpoint.
    pub endpoint: Option<String>,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
}

/// `AssumeRoleWithWebIdentity` through aws-sdk-sts.
#[derive(Debug, Clone)]
pub struct StsSource {
    client: aws_sdk_sts::Client,
}

impl StsSource {
    pub fn new(settings: &StsSettings) -> Self {
        let timeouts = aws_sdk_sts::config::timeout::TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .operation_timeout(settings.attempt_timeout)
            .build();
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.to_string()))
            .timeout_config(timeouts)
            // The refresher owns retries: one attempt per call keeps backoff and metrics honest.
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_sts::Client::from_conf(config.build()),
        }
    }
}

impl CredentialSource for StsSource {
    fn assume_role<'a>(
        &'a self,
        request: &'a AssumeRoleRequest,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            let jwt = request.web_identity_token.expose();
            let result = self
                .client
                .assume_role_with_web_identity()
                .role_arn(request.role_arn.as_str())
                .role_session_name(request.session_name.as_str())
                .web_identity_token(jwt)
                .duration_seconds(request.duration_seconds as i32)
                .send()
                .await;
            let output = result.map_err(|e| classify_sdk_error(e, jwt))?;
            credentials_from(
                output.credentials(),
                output.assumed_role_user().map(|u| u.arn().to_owned()),
            )
        })
    }
}

impl crate::chain::RoleAssumer for StsSource {
    fn assume_role_as<'a>(
        &'a self,
        caller: &'a Credentials,
        call: &'a crate::chain::AssumeRoleCall,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            // Signed with the first hop's keys, given to this one call only: the same
            // client (connection pool, TLS) as the web-identity exchange, which is unsigned.
            let signer = aws_sdk_sts::config::Credentials::new(
                &caller.access_key_id,
                caller.secret_access_key.expose(),
                Some(caller.session_token.expose().to_owned()),
                Some(caller.expiration),
                "passport-first-hop",
            );
            let s = &call.settings;
            let mut request = self
                .client
                .assume_role()
                .role_arn(s.role_arn.as_str())
                .role_session_name(s.session_name.as_str())
                .duration_seconds(s.duration_seconds as i32)
                .set_external_id(call.external_id.as_ref().map(|e| e.expose().to_owned()))
                .set_policy(s.policy.clone());
            for (key, value) in &s.tags {
                request = request.tags(
                    aws_sdk_sts::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .map_err(|e| {
                            SourceError::new(ErrorClass::Permanent, "InvalidTag", e.to_string())
                        })?,
                );
            }
            for key in &s.transitive_tag_keys {
                request = request.transitive_tag_keys(key);
            }
            for arn in &s.policy_arns {
                request = request.policy_arns(
                    aws_sdk_sts::types::PolicyDescriptorType::builder()
                        .arn(arn)
                        .build(),
                );
            }
            let secret = call
                .external_id
                .as_ref()
                .map_or(String::new(), |e| e.expose().to_owned());
            let output = request
                .customize()
                .config_override(aws_sdk_sts::Config::builder().credentials_provider(signer))
                .send()
                .await
                .map_err(|e| classify_sdk_error(e, &secret))?;
            credentials_from(
                output.credentials(),
                output.assumed_role_user().map(|u| u.arn().to_owned()),
            )
        })
    }
}

/// The served credentials from an STS response, refusing incomplete ones.
fn credentials_from(
    creds: Option<&aws_sdk_sts::types::Credentials>,
    assumed_role_arn: Option<String>,
) -> Result<Credentials, SourceError> {
    let malformed = |what: &str| {
        SourceError::new(
            ErrorClass::Transient,
            "MalformedResponse",
            format!("STS response has no {what}"),
        )
    };
    let creds = creds.ok_or_else(|| malformed("Credentials"))?;
    let expiration =
        SystemTime::try_from(*creds.expiration()).map_err(|_| malformed("valid Expiration"))?;
    if creds.access_key_id().is_empty()
        || creds.secret_access_key().is_empty()
        || creds.session_token().is_empty()
    {
        return Err(malformed("complete credentials"));
    }
    Ok(Credentials {
        access_key_id: creds.access_key_id().to_owned(),
        secret_access_key: Secret::new(creds.secret_access_key()),
        session_token: Secret::new(creds.session_token()),
        expiration,
        assumed_role_arn,
    })
}

fn classify_sdk_error<E>(err: SdkError<E, HttpResponse>, jwt: &str) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let meta = ctx.err().meta();
            let status = Some(ctx.raw().status().as_u16());
            if status < Some(400) {
                // A success status with a body the SDK could not read as a response.
                return SourceError::new(
                    ErrorClass::Transient,
                    "MalformedResponse",
                    "STS answered with a response that could not be parsed",
                );
            }
            let code = meta.code().unwrap_or("Unknown");
            let message = meta.message().unwrap_or("no message");
            SourceError::new(
                ErrorClass::from_code(code, status),
                code,
                scrub(
                    &format!(
                        "{message} (HTTP {})",
                        status.map_or("?".into(), |s| s.to_string())
                    ),
                    jwt,
                ),
            )
        }
        SdkError::TimeoutError(_) => SourceError::new(
            ErrorClass::Transient,
            "Timeout",
            "STS did not answer in time",
        ),
        SdkError::DispatchFailure(f) => SourceError::new(
            ErrorClass::Transient,
            "DispatchFailure",
            scrub(
                &format!(
                    "cannot reach STS: {}",
                    error_chain(
                        f.as_connector_error()
                            .map(|e| e as &(dyn std::error::Error + 'static))
                    )
                ),
                jwt,
            ),
        ),
        SdkError::ResponseError(_) => SourceError::new(
            ErrorClass::Transient,
            "MalformedResponse",
            "STS answered with a response that could not be parsed",
        ),
        SdkError::ConstructionFailure(_) => SourceError::new(
            ErrorClass::Permanent,
            "InvalidRequest",
            scrub(
                &format!("cannot build the STS request: {}", error_chain(Some(&err))),
                jwt,
            ),
        ),
        _ => SourceError::new(
            ErrorClass::Transient,
            "Unknown",
            scrub(&error_chain(Some(&err)), jwt),
        ),
    }
}

/// An SDK error and its sources on one line (for errors with no STS error code).
pub fn describe_sdk_error(err: &(dyn std::error::Error + 'static)) -> String {
    error_chain(Some(err))
}

fn error_chain(err: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut out = String::new();
    let mut next = err;
    while let Some(e) = next {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&e.to_string());
        next = e.source();
    }
    if out.is_empty() {
        "unknown error".into()
    } else {
        out
    }
}

/// Remove the token from text that came back from STS or the network stack, in case an
/// error echoes the request.
pub fn scrub(text: &str, jwt: &str) -> String {
    if jwt.len() >= 8 && text.contains(jwt) {
        text.replace(jwt, "** redacted **")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_codes_in_the_compat_table() {
        use ErrorClass::*;
        for (code, class) in [
            ("IDPCommunicationError", Transient),
            ("Throttling", Throttled),
            ("InvalidIdentityToken", TokenRejected),
            ("ExpiredTokenException", TokenExpired),
            ("IDPRejectedClaim", Permanent),
            ("AccessDenied", Permanent),
            ("RegionDisabledException", Permanent),
            ("MalformedPolicyDocument", Permanent),
            ("PackedPolicyTooLarge", Permanent),
        ] {
            assert_eq!(ErrorClass::from_code(code, Some(400)), class, "{code}");
        }
        assert_eq!(ErrorClass::from_code("Whatever", Some(503)), Transient);
        assert_eq!(ErrorClass::from_code("Whatever", Some(429)), Throttled);
        assert_eq!(ErrorClass::from_code("Whatever", Some(400)), Permanent);
        assert_eq!(ErrorClass::from_code("Whatever", None), Transient);
        assert_eq!(ErrorClass::from_code("Unknown", Some(200)), Transient);
    }

    #[test]
    fn scrub_removes_the_token() {
        let jwt = "eyJhbGciOi.eyJzdWIi.c2ln";
        assert_eq!(
            scrub(&format!("bad token {jwt} here"), jwt),
            "bad token ** redacted ** here"
        );
        assert_eq!(scrub("nothing", jwt), "nothing");
    }
}
