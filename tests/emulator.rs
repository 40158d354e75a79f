//! The emulator, driven by the real aws-sdk-sts client.

use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use passport::emulator::mint::{self, MintRequest};
use passport::emulator::sts_server::{DURATION_EXCEEDS_MAX, NOT_AUTHORIZED};
use passport::emulator::{Emulator, EmulatorConfig, Faults, RoleConfig, SigningKey, TrustedIssuer};
use passport_core::secret::Secret;
use passport_core::sts::{AssumeRoleRequest, CredentialSource, ErrorClass, StsSettings, StsSource};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EKS_ISSUER: &str =
    "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn client(emu: &Emulator, creds: Option<Credentials>) -> aws_sdk_sts::Client {
    let mut b = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emu.sts_url())
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled());
    if let Some(c) = creds {
        b = b.credentials_provider(c);
    }
    aws_sdk_sts::Client::from_conf(b.build())
}

async fn assume(
    emu: &Emulator,
    role: &str,
    token: &str,
    session: &str,
    duration: Option<i32>,
) -> Result<
    aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
    (String, String, u16),
> {
    client(emu, None)
        .assume_role_with_web_identity()
        .role_arn(emu.role_arn(role))
        .role_session_name(session)
        .web_identity_token(token)
        .set_duration_seconds(duration)
        .send()
        .await
        .map_err(code_of)
}

/// Signing keys for the SDK client: an access key id, a secret and a session token.
fn keys(access_key_id: &str, secret: &str, session_token: Option<&str>) -> Credentials {
    Credentials::new(
        access_key_id,
        secret,
        session_token.map(str::to_owned),
        None,
        "test",
    )
}

/// The keys an STS response vended.
fn vended(c: &aws_sdk_sts::types::Credentials) -> Credentials {
    keys(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token()),
    )
}

/// (code, message, HTTP status) of an SDK error.
fn code_of<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
) -> (String, String, u16) {
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().unwrap_or("<none>").to_owned();
    let message = err.message().unwrap_or("").to_owned();
    (code, message, status)
}

async fn start(roles: Vec<RoleConfig>, trusted: Vec<TrustedIssuer>) -> Emulator {
    Emulator::start(EmulatorConfig {
        roles,
        trusted_issuers: trusted,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn app_role() -> RoleConfig {
    RoleConfig::new(
        "app",
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "{{provider_arn}}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    "{{issuer_host}}:sub": "system:serviceaccount:prod:app",
                    "{{issuer_host}}:aud": "sts.amazonaws.com"
                }}
            }]
        })
        .to_string(),
    )
}

#[tokio::test]
async fn assume_then_get_caller_identity_with_the_vended_keys() {
    let emu = start(vec![app_role()], vec![]).await;
    let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    let out = assume(&emu, "app", &token, "passport-test", Some(900))
        .await
        .unwrap();
    let creds = out.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert_eq!(creds.access_key_id().len(), 20);
    assert_eq!(creds.secret_access_key().len(), 40);
    assert!(!creds.session_token().is_empty());
    let left = SystemTime::try_from(*creds.expiration())
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(900) && left > Duration::from_secs(880));
    let user = out.assumed_role_user().unwrap();
    let arn = "arn:aws:sts::111122223333:assumed-role/app/passport-test";
    assert_eq!(user.arn(), arn);
    assert!(user.assumed_role_id().starts_with("AROA"));
    assert!(user.assumed_role_id().ends_with(":passport-test"));
    assert_eq!(
        out.subject_from_web_identity_token(),
        Some("system:serviceaccount:prod:app")
    );
    assert_eq!(out.audience(), Some("sts.amazonaws.com"));
    assert_eq!(out.provider(), Some(emu.provider_arn().as_str()));

    let me = client(&emu, Some(vended(creds)))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(arn));
    assert_eq!(me.account(), Some("111122223333"));
    assert_eq!(me.user_id(), Some(user.assumed_role_id()));

    // A tampered secret: the signature does not match.
    let mut secret = creds.secret_access_key().to_owned();
    secret.replace_range(0..1, if secret.starts_with('A') { "B" } else { "A" });
    let tampered = keys(creds.access_key_id(), &secret, Some(creds.session_token()));
    let err = client(&emu, Some(tampered))
        .get_caller_identity()
        .send()
        .await
        .map_err(code_of)
        .unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("SignatureDoesNotMatch", 403));

    // An unknown key id, and a wrong session token.
    let unknown = keys(
        "ASIAAAAAAAAAAAAAAAAA",
        creds.secret_access_key(),
        Some(creds.session_token()),
    );
    let err = client(&emu, Some(unknown))
        .get_caller_identity()
        .send()
        .await
        .map_err(code_of)
        .unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("InvalidClientTokenId", 403));
    let no_token = keys(creds.access_key_id(), creds.secret_access_key(), None);
    let err = client(&emu, Some(no_token))
        .get_caller_identity()
        .send()
        .await
        .map_err(code_of)
        .unwrap_err();
    assert_eq!(err.0, "InvalidClientTokenId");
    assert_eq!(emu.session_count(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn trust_policy_and_token_refusals_use_real_sts_codes() {
    let emu = start(vec![app_role()], vec![]).await;

    // Wrong sub: the trust policy refuses.
    let token = emu.mint(&MintRequest::new("prod", "other")).unwrap();
    let err = assume(&emu, "app", &token, "s1", None).await.unwrap_err();
    assert_eq!(err, ("AccessDenied".into(), NOT_AUTHORIZED.into(), 403));

    // Unknown role: the same answer as real STS.
    let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    let err = assume(&emu, "nope", &token, "s1", None).await.unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("AccessDenied", 403));

    // Wrong aud.
    let mut req = MintRequest::new("prod", "app");
    req.audiences = vec!["sts.amazon.com".into()];
    let err = assume(&emu, "app", &emu.mint(&req).unwrap(), "s1", None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        (
            "InvalidIdentityToken".into(),
            "Incorrect token audience".into(),
            400
        )
    );

    // Unknown issuer.
    let mut req = MintRequest::new("prod", "app");
    req.issuer = Some("https://issuer.example.com".into());
    let err = assume(&emu, "app", &emu.mint(&req).unwrap(), "s1", None)
        .await
        .unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("InvalidIdentityToken", 400));
    assert!(err.1.contains(
        "No OpenIDConnect provider found in your account for https://issuer.example.com"
    ));

    // Bad signature: a payload swapped under a valid signature.
    let good = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    let other = emu.mint(&MintRequest::new("prod", "app2")).unwrap();
    let g: Vec<&str> = good.split('.').collect();
    let o: Vec<&str> = other.split('.').collect();
    let forged = format!("{}.{}.{}", g[0], o[1], g[2]);
    let err = assume(&emu, "app", &forged, "s1", None).await.unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("InvalidIdentityToken", 400));

    // Signed by a key the issuer never published (same kid header is not enough).
    let stranger = SigningKey::generate().unwrap();
    let foreign = mint::mint_token(
        &stranger,
        emu.issuer_url(),
        &MintRequest::new("prod", "app"),
        SystemTime::now(),
    )
    .unwrap();
    let err = assume(&emu, "app", &foreign, "s1", None).await.unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("InvalidIdentityToken", 400));

    // Expired, past the skew.
    let mut req = MintRequest::new("prod", "app");
    req.issued_at = Some(SystemTime::now() - Duration::from_secs(7200));
    let err = assume(&emu, "app", &emu.mint(&req).unwrap(), "s1", None)
        .await
        .unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("ExpiredTokenException", 400));
    assert!(
        err.1.starts_with("Token expired: current date/time"),
        "{}",
        err.1
    );

    // Expired but within the 60 s skew: accepted.
    let mut req = MintRequest::new("prod", "app");
    req.issued_at = Some(SystemTime::now() - Duration::from_secs(3630));
    assume(&emu, "app", &emu.mint(&req).unwrap(), "s1", None)
        .await
        .unwrap();

    // Not yet valid.
    let mut req = MintRequest::new("prod", "app");
    req.issued_at = Some(SystemTime::now() + Duration::from_secs(600));
    let err = assume(&emu, "app", &emu.mint(&req).unwrap(), "s1", None)
        .await
        .unwrap_err();
    assert_eq!(err.0, "InvalidIdentityToken");

    // Not a JWT at all.
    let err = assume(&emu, "app", "not-a-jwt", "s1", None)
        .await
        .unwrap_err();
    assert_eq!(err.0, "InvalidIdentityToken");
    emu.shutdown().await;
}

#[tokio::test]
async fn string_like_policy_for_a_trusted_external_issuer() {
    let eks_key = SigningKey::generate().unwrap();
    let role = RoleConfig::new(
        "team",
        json!({"Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!(
                "arn:aws:iam::111122223333:oidc-provider/{}",
                EKS_ISSUER.trim_start_matches("https://"))},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {
                format!("{}:SUB", EKS_ISSUER.trim_start_matches("https://")): "system:serviceaccount:team-*:*"
            }}
        }]})
        .to_string(),
    );
    let emu = start(
        vec![role],
        vec![TrustedIssuer::new(EKS_ISSUER, eks_key.jwks())],
    )
    .await;
    let mint_eks = |ns: &str| {
        mint::mint_token(
            &eks_key,
            EKS_ISSUER,
            &MintRequest::new(ns, "worker"),
            SystemTime::now(),
        )
        .unwrap()
    };
    let out = assume(&emu, "team", &mint_eks("team-blue"), "worker", None)
        .await
        .unwrap();
    assert_eq!(
        out.provider(),
        Some(format!(
            "arn:aws:iam::111122223333:oidc-provider/{}",
            EKS_ISSUER.trim_start_matches("https://")
        ))
        .as_deref()
    );
    let err = assume(&emu, "team", &mint_eks("blue"), "worker", None)
        .await
        .unwrap_err();
    assert_eq!(err.0, "AccessDenied");
    // The built-in issuer is not trusted by this role.
    let err = assume(
        &emu,
        "team",
        &emu.mint(&MintRequest::new("team-blue", "worker")).unwrap(),
        "worker",
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, "AccessDenied");
    emu.shutdown().await;
}

#[tokio::test]
async fn validation_errors_for_duration_and_session_name() {
    let emu = start(vec![app_role()], vec![]).await;
    let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    // Within STS's range but above the role's 3600 s maximum.
    let err = assume(&emu, "app", &token, "s1", Some(7200))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ("ValidationError".into(), DURATION_EXCEEDS_MAX.into(), 400)
    );
    // The demo role allows 12 h, but not more.
    let ok = assume(&emu, "passport-demo", &token, "s1", Some(43_200)).await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = assume(&emu, "passport-demo", &token, "s1", Some(43_201))
        .await
        .unwrap_err();
    assert_eq!(err.0, "ValidationError");
    assert!(err.1.contains("less than or equal to 43200"), "{}", err.1);
    let err = assume(&emu, "app", &token, "s1", Some(60))
        .await
        .unwrap_err();
    assert!(err.1.contains("greater than or equal to 900"), "{}", err.1);

    let err = assume(&emu, "app", &token, "bad name", None)
        .await
        .unwrap_err();
    assert_eq!((err.0.as_str(), err.2), ("ValidationError", 400));
    assert_eq!(
        err.1,
        "1 validation error detected: Value 'bad name' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
    );
    let err = assume(&emu, "app", &token, "x", None).await.unwrap_err();
    assert!(err.1.contains("greater than or equal to 2"), "{}", err.1);
    emu.shutdown().await;
}

#[tokio::test]
async fn scripted_faults_then_success_through_the_sidecars_source() {
    let emu = start(vec![], vec![]).await;
    emu.push_fault("Throttling");
    emu.push_fault("IDPCommunicationError");
    let source = StsSource::new(&StsSettings {
        region: "us-east-1".parse().unwrap(),
        endpoint: Some(emu.sts_url()),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    });
    let request = AssumeRoleRequest {
        role_arn: emu.role_arn("passport-demo").parse().unwrap(),
        session_name: "passport".parse().unwrap(),
        web_identity_token: Secret::new(emu.mint(&MintRequest::new("default", "app")).unwrap()),
        duration_seconds: 3600,
    };
    let e = source.assume_role(&request).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("Throttling", ErrorClass::Throttled)
    );
    let e = source.assume_role(&request).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    let creds = source.assume_role(&request).await.unwrap();
    assert_eq!(
        creds.assumed_role_arn.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/passport-demo/passport")
    );
    assert_eq!(creds.account_id(), Some("111122223333"));

    // Faults over HTTP: set, read back, take effect, clear.
    let (status, body) = http(
        &emu,
        "POST",
        "/_passport/faults",
        r#"{"script":["ServiceUnavailable"],"latency_ms":1}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(emu.faults().script.len(), 1);
    let e = source.assume_role(&request).await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("ServiceUnavailable", ErrorClass::Transient)
    );
    let (status, _) = http(&emu, "POST", "/_passport/faults", r#"{"error_rate":7}"#).await;
    assert_eq!(status, 400);
    let (status, body) = http(&emu, "DELETE", "/_passport/faults", "").await;
    assert_eq!(status, 200);
    assert_eq!(emu.faults(), Faults::default(), "{body}");
    source.assume_role(&request).await.unwrap();

    // An always-failing error rate, set in process.
    emu.set_faults(Faults {
        error_rate: 1.0,
        error_code: Some("InternalFailure".into()),
        ..Default::default()
    })
    .unwrap();
    let e = source.assume_role(&request).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    emu.shutdown().await;
}

#[tokio::test]
async fn issuer_documents_are_served() {
    let emu = start(vec![], vec![]).await;
    let (status, body) = http(&emu, "GET", "/.well-known/openid-configuration", "").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["issuer"], emu.issuer_url());
    assert_eq!(doc["jwks_uri"], format!("{}/keys", emu.issuer_url()));
    let (status, body) = http(&emu, "GET", "/keys", "").await;
    assert_eq!(status, 200);
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], emu.signing_key().kid());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(jwks["keys"][0]["use"], "sig");
    let (status, _) = http(&emu, "GET", "/nope", "").await;
    assert_eq!(status, 404);
    // GET query form of the STS API, and an unknown action.
    let (status, body) = http(&emu, "GET", "/?Action=Nope&Version=2011-06-15", "").await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    assert!(body.contains("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
    let (status, body) = http(
        &emu,
        "GET",
        "/?Action=GetCallerIdentity&Version=2011-06-15",
        "",
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("MissingAuthenticationToken"), "{body}");
    emu.shutdown().await;
}

/// A tiny HTTP/1.1 client: (status, body).
async fn http(emu: &Emulator, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(emu.local_addr())
        .await
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        emu.local_addr(),
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A wall clock the test moves by hand.
struct SteppedClock(std::sync::atomic::AtomicU64);

impl passport_core::clock::Clock for SteppedClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[tokio::test]
async fn expired_session_credentials_get_expired_token() {
    let clock = std::sync::Arc::new(SteppedClock(0.into()));
    let emu = Emulator::start(EmulatorConfig {
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let token = emu.mint(&MintRequest::new("default", "app")).unwrap();
    let out = assume(&emu, "passport-demo", &token, "expiring", Some(900))
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let vended = vended(c);
    client(&emu, Some(vended.clone()))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    clock.0.store(901, std::sync::atomic::Ordering::SeqCst);
    let err = client(&emu, Some(vended))
        .get_caller_identity()
        .send()
        .await
        .map_err(code_of)
        .unwrap_err();
    assert_eq!(
        err,
        (
            "ExpiredToken".into(),
            "The security token included in the request is expired".into(),
            403
        )
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn an_issuer_url_with_a_trailing_slash_is_kept_exactly() {
    // IAM names the provider for https://auth.example.com/ "auth.example.com/": the
    // emulator must not strip the slash from --issuer-url, iss or the provider ARN.
    let emu = Emulator::start(EmulatorConfig {
        issuer_url: Some("https://auth.example.com/".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(emu.issuer_url(), "https://auth.example.com/");
    let arn = "arn:aws:iam::111122223333:oidc-provider/auth.example.com/";
    assert_eq!(emu.provider_arn(), arn);
    let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    let out = assume(&emu, "passport-demo", &token, "s1", None)
        .await
        .unwrap();
    assert_eq!(out.provider(), Some(arn));
    let (status, body) = http(&emu, "GET", "/.well-known/openid-configuration", "").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["issuer"], "https://auth.example.com/");
    emu.shutdown().await;
}

/// The role chaining target: a role in account 444455556666 that trusts the `app` role of
/// the emulated account, with an external id, and allows session tags.
fn reader_role(principal: &str) -> RoleConfig {
    RoleConfig::new(
        "444455556666:reader",
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"sts:ExternalId": "shared-secret-id"}}
            }, {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "sts:TagSession",
                "Condition": {"StringEquals": {"aws:RequestTag/env": "prod"}}
            }]
        })
        .to_string(),
    )
}

/// Web identity into `app`, then AssumeRole into `reader` in another account, both through
/// passport's own sources; the emulator verifies the second call's SigV4 signature with the
/// first hop's secret, evaluates the other account's trust policy, and GetCallerIdentity
/// with the chained keys names the chained role.
#[tokio::test]
async fn role_chaining_into_another_account() {
    use passport_core::chain::{ChainSettings, ChainedSource, ExternalId};
    use std::sync::Arc;

    for principal in [
        "arn:aws:iam::111122223333:role/app",
        "arn:aws:iam::111122223333:root",
        "111122223333",
    ] {
        let emu = start(vec![app_role(), reader_role(principal)], vec![]).await;
        let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
        let sts = Arc::new(StsSource::new(&StsSettings {
            region: "us-east-1".parse().unwrap(),
            endpoint: Some(emu.sts_url()),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
        }));
        let chain = |external_id: &str, tags: Vec<(String, String)>, duration| ChainSettings {
            role_arn: emu.role_arn("444455556666:reader").parse().unwrap(),
            session_name: "chained".parse().unwrap(),
            duration_seconds: duration,
            external_id: Some(ExternalId::Value(Secret::new(external_id))),
            tags,
            transitive_tag_keys: vec![],
            policy: None,
            policy_arns: vec![],
        };
        let request = AssumeRoleRequest {
            role_arn: emu.role_arn("app").parse().unwrap(),
            session_name: "first".parse().unwrap(),
            web_identity_token: Secret::new(token),
            duration_seconds: 3600,
        };
        let run = |settings: ChainSettings| {
            let source = ChainedSource::new(
                sts.clone(),
                sts.clone(),
                settings,
                Arc::new(passport_core::clock::SystemClock),
            );
            let request = request.clone();
            async move { source.assume_role(&request).await }
        };

        let team = vec![("team".to_string(), "payments".to_string())];
        let creds = run(chain("shared-secret-id", team, 3600)).await.unwrap();
        assert_eq!(
            creds.assumed_role_arn.as_deref(),
            Some("arn:aws:sts::444455556666:assumed-role/reader/chained")
        );
        let vended = keys(
            &creds.access_key_id,
            creds.secret_access_key.expose(),
            Some(creds.session_token.expose()),
        );
        let me = client(&emu, Some(vended))
            .get_caller_identity()
            .send()
            .await
            .unwrap();
        assert_eq!(
            me.arn(),
            Some("arn:aws:sts::444455556666:assumed-role/reader/chained")
        );
        assert_eq!(me.account(), Some("444455556666"));

        // The other account's trust policy refuses: a wrong external id, or a tag its Deny
        // statement forbids (sts:TagSession). The message says which hop and whose policy.
        let prod = vec![("env".to_string(), "prod".to_string())];
        for (settings, action) in [
            (chain("wrong-id", vec![], 3600), "sts:AssumeRole"),
            (chain("shared-secret-id", prod, 3600), "sts:TagSession"),
        ] {
            let err = run(settings).await.unwrap_err();
            assert_eq!(
                (err.code.as_str(), err.class),
                ("AccessDenied", ErrorClass::Permanent)
            );
            for needle in [
                "hop 2, AssumeRole into arn:aws:iam::444455556666:role/reader",
                &format!(
                    "User: arn:aws:sts::111122223333:assumed-role/app/first is not authorized to perform: {action} on resource: arn:aws:iam::444455556666:role/reader"
                ),
                "the trust policy of arn:aws:iam::444455556666:role/reader (account 444455556666)",
            ] {
                assert!(
                    err.message.contains(needle),
                    "{needle}\n in {}",
                    err.message
                );
            }
            assert!(!err.message.contains("shared-secret-id"));
        }
        emu.shutdown().await;
    }
}

/// STS's one-hour cap on chained sessions, and AssumeRole without a signature.
#[tokio::test]
async fn chained_sessions_are_capped_at_one_hour_and_must_be_signed() {
    let emu = start(vec![app_role(), reader_role("111122223333")], vec![]).await;
    let token = emu.mint(&MintRequest::new("prod", "app")).unwrap();
    let out = assume(&emu, "app", &token, "first", None).await.unwrap();
    let c = out.credentials().unwrap();
    let vended = vended(c);
    let call = |client: aws_sdk_sts::Client, duration| async move {
        client
            .assume_role()
            .role_arn("arn:aws:iam::444455556666:role/reader")
            .role_session_name("chained")
            .external_id("shared-secret-id")
            .duration_seconds(duration)
            .send()
            .await
            .map_err(code_of)
    };
    let err = call(client(&emu, Some(vended.clone())), 7200)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        (
            "ValidationError".into(),
            passport::emulator::sts_server::CHAINED_DURATION.into(),
            400
        )
    );
    assert!(call(client(&emu, Some(vended)), 3600).await.is_ok());
    // Unsigned (no credentials at all): the SDK refuses to send, or STS refuses it.
    let (status, unsigned) = http(
        &emu,
        "POST",
        "/",
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::444455556666:role/reader&RoleSessionName=x1",
    )
    .await;
    assert_eq!(status, 403, "{unsigned}");
    assert!(
        unsigned.contains("MissingAuthenticationToken"),
        "{unsigned}"
    );
    emu.shutdown().await;
}
