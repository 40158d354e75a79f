//! The HTTP side of the emulator: STS Query API, the OIDC issuer documents, the fault API.
//!
//! Routes (one port):
//! * `POST /` or `GET /?Action=...`: STS (`AssumeRoleWithWebIdentity`, `AssumeRole` for
//!   role chaining, `GetCallerIdentity`);
//! * `GET /.well-known/openid-configuration`, `GET /keys`: the built-in issuer;
//! * `GET|POST|DELETE /_passport/faults`: fault injection (see `faults`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use rand::RngExt;

use crate::emulator::faults::{FaultState, Faults, StsError};
use crate::emulator::issuer::{SigningKey, discovery_document};
use crate::emulator::sigv4;
use crate::trust_policy::{self, TrustPolicy};
use passport_core::aws::RoleArn;
use passport_core::clock::{Clock, format_rfc3339_seconds};
use passport_core::secret::Secret;

pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const MAX_BODY: usize = 64 * 1024;

/// A role as IAM holds it.
#[derive(Debug, Clone)]
pub struct Role {
    pub account_id: String,
    pub name: String,
    pub policy: TrustPolicy,
    /// Seconds, 3600..=43200.
    pub max_session_duration: u32,
    /// `AROA...`
    pub role_id: String,
}

/// An OIDC provider the emulated account trusts.
#[derive(Debug, Clone)]
pub struct Provider {
    pub issuer: String,
    pub jwks: JwkSet,
    /// Client ids (accepted `aud` values).
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone)]
struct Session {
    secret: Secret,
    session_token: Secret,
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    arn: String,
    user_id: String,
    account_id: String,
    expires: SystemTime,
}

impl Session {
    /// The role a session belongs to: `arn:aws:iam::ACCOUNT:role/NAME`.
    fn role_arn(&self) -> String {
        let name = self.arn.split('/').nth(1).unwrap_or_default();
        format!("arn:aws:iam::{}:role/{name}", self.account_id)
    }
}

/// The key of a role in `State::roles`.
pub fn role_key(account_id: &str, name: &str) -> String {
    format!("{account_id}:{name}")
}

pub(crate) struct State {
    pub account_id: String,
    pub issuer_url: String,
    pub key: Arc<SigningKey>,
    pub roles: HashMap<String, Role>,
    pub providers: Vec<Provider>,
    pub faults: Mutex<FaultState>,
    pub clock: Arc<dyn Clock>,
    pub skew: Duration,
    pub max_sessions: usize,
    sessions: Mutex<HashMap<String, Session>>,
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        account_id: String,
        issuer_url: String,
        key: Arc<SigningKey>,
        roles: HashMap<String, Role>,
        providers: Vec<Provider>,
        faults: Faults,
        clock: Arc<dyn Clock>,
        skew: Duration,
        max_sessions: usize,
    ) -> Self {
        Self {
            account_id,
            issuer_url,
            key,
            roles,
            providers,
            faults: Mutex::new(FaultState::new(faults)),
            clock,
            skew,
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }
}

/// `AROA` + 17 characters derived from the role name, stable across restarts.
pub fn role_id_for(account_id: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{account_id}/{name}").as_bytes());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| alphabet[(*b as usize) % 32] as char)
        .collect();
    format!("AROA{tail}")
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

fn request_id() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

type Resp = Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn error_xml(err: &StsError, request_id: &str) -> Resp {
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        err.error_type(),
        xml_escape(&err.code),
        xml_escape(&err.message),
        request_id
    );
    let mut resp = respond(err.status, "text/xml", body);
    resp.headers_mut().insert(
        "x-amzn-requestid",
        request_id.parse().expect("ascii request id"),
    );
    resp
}

fn ok_xml(action: &str, result: &str, request_id: &str) -> Resp {
    let body = format!(
        "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>\n{result}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
    );
    let mut resp = respond(200, "text/xml", body);
    resp.headers_mut().insert(
        "x-amzn-requestid",
        request_id.parse().expect("ascii request id"),
    );
    resp
}

fn json_resp(status: u16, value: &serde_json::Value) -> Resp {
    respond(status, "application/json", value.to_string())
}

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(respond(413, "text/plain", "request body too large\n")),
    };
    let path = parts.uri.path().to_owned();
    let resp = match (path.as_str(), &parts.method) {
        ("/.well-known/openid-configuration", &Method::GET) => {
            json_resp(200, &discovery_document(&state.issuer_url))
        }
        ("/keys" | "/openid/v1/jwks", &Method::GET) => json_resp(
            200,
            &serde_json::to_value(state.key.jwks()).unwrap_or_default(),
        ),
        ("/_passport/faults", m) => faults_endpoint(&state, m, &body),
        ("/", &Method::GET | &Method::POST) => sts(&state, &parts, &body).await,
        ("/.well-known/openid-configuration" | "/keys" | "/", _) => {
            respond(405, "text/plain", "method not allowed\n")
        }
        _ => respond(404, "text/plain", "not found\n"),
    };
    Ok(resp)
}

fn faults_endpoint(state: &State, method: &Method, body: &[u8]) -> Resp {
    let mut faults = state.faults.lock().unwrap();
    match *method {
        Method::GET => {}
        Method::DELETE => faults.set(Faults::default()),
        Method::POST | Method::PUT => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => match f.validate() {
                Ok(()) => faults.set(f),
                Err(e) => return json_resp(400, &serde_json::json!({"error": e})),
            },
            Err(e) => return json_resp(400, &serde_json::json!({"error": e.to_string()})),
        },
        _ => return respond(405, "text/plain", "method not allowed\n"),
    }
    json_resp(
        200,
        &serde_json::to_value(&faults.faults).unwrap_or_default(),
    )
}

async fn sts(state: &State, parts: &hyper::http::request::Parts, body: &Bytes) -> Resp {
    let rid = request_id();
    let query = parts.uri.query().unwrap_or("");
    let mut params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if parts.method == Method::POST {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    let action = params.get("Action").cloned().unwrap_or_default();
    let result = match action.as_str() {
        "AssumeRoleWithWebIdentity" => {
            let latency = state.faults.lock().unwrap().faults.latency_ms;
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            let fault = state.faults.lock().unwrap().next_fault();
            match fault {
                Some(err) => Err(err),
                None => assume_role_with_web_identity(state, &params),
            }
        }
        "GetCallerIdentity" => get_caller_identity(state, parts, body),
        "AssumeRole" => assume_role(state, parts, body, &params),
        "" => Err(StsError::new(
            400,
            "MissingAction",
            "Missing Action parameter",
        )),
        other => Err(StsError::new(
            400,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    };
    match result {
        Ok(xml) => ok_xml(&action, &xml, &rid),
        Err(err) => {
            tracing::info!(action, code = %err.code, message = %err.message, "sts emulator refused");
            error_xml(&err, &rid)
        }
    }
}

fn validation_error(problems: Vec<String>) -> StsError {
    let n = problems.len();
    StsError::new(
        400,
        "ValidationError",
        format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            problems.join("; ")
        ),
    )
}

/// Check `RoleSessionName` as STS does; the problem text when it fails.
pub fn validate_session_name(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let len = name.chars().count();
    if len < 2 {
        problems.push(format!("Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"));
    }
    if len > 64 {
        problems.push(format!("Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        problems.push(format!("Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"));
    }
    problems
}

/// Check `DurationSeconds` against STS's range (not the role's maximum).
pub fn validate_duration(raw: Option<&str>) -> Result<u32, Vec<String>> {
    let Some(raw) = raw else { return Ok(3600) };
    let Ok(value) = raw.trim().parse::<i64>() else {
        return Err(vec![format!(
            "Value '{raw}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"
        )]);
    };
    if value < 900 {
        return Err(vec![format!(
            "Value '{value}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        )]);
    }
    if value > 43_200 {
        return Err(vec![format!(
            "Value '{value}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"
        )]);
    }
    Ok(value as u32)
}

pub const DURATION_EXCEEDS_MAX: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
pub const NOT_AUTHORIZED: &str = trust_policy::NOT_AUTHORIZED;

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn invalid_token(message: impl Into<String>) -> StsError {
    StsError::new(400, "InvalidIdentityToken", message)
}

/// The verified claims of a web-identity token.
struct Verified {
    issuer: String,
    sub: String,
    aud: Vec<String>,
    /// The audience STS checked against the provider's client IDs (`azp` if present).
    matched_aud: String,
    amr: Option<Vec<String>>,
    source_identity: Option<String>,
}

fn verify_token(state: &State, jwt: &str) -> Result<Verified, StsError> {
    let not_jwt = || {
        invalid_token(
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
        )
    };
    let claims = passport_core::token::decode_claims(jwt).map_err(|_| not_jwt())?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| not_jwt())?;
    let iss = claims
        .iss
        .clone()
        .ok_or_else(|| invalid_token("The ID Token has no issuer (iss) claim"))?;
    let provider = state
        .providers
        .iter()
        // IAM names a provider by its URL exactly: a trailing slash is part of the name.
        .find(|p| p.issuer == iss)
        .ok_or_else(|| {
            invalid_token(format!(
                "No OpenIDConnect provider found in your account for {iss}"
            ))
        })?;
    let jwk = match &header.kid {
        Some(kid) => provider.jwks.find(kid),
        None if provider.jwks.keys.len() == 1 => provider.jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| {
        invalid_token("Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements")
    })?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| invalid_token("The identity provider's key could not be used"))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let all_claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
        .map_err(|_| invalid_token("The web identity token signature could not be verified"))?
        .claims;
    let text = |name: &str| {
        all_claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };

    let now = unix(state.clock.wall());
    let skew = state.skew.as_secs() as i64;
    let exp = claims
        .exp
        .ok_or_else(|| invalid_token("The ID Token has no expiration (exp) claim"))?;
    if now > exp + skew {
        return Err(StsError::new(
            400,
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            ),
        ));
    }
    if let Some(nbf) = claims.nbf
        && nbf > now + skew
    {
        return Err(invalid_token(format!(
            "Token used before its not-before time: current date/time {now} must be after {nbf}"
        )));
    }
    if let Some(iat) = claims.iat
        && iat > now + skew
    {
        return Err(invalid_token(format!(
            "Token issued in the future: current date/time {now} must be after {iat}"
        )));
    }
    let azp = text("azp");
    let matched_aud =
        trust_policy::audience_candidates(&claims.aud, azp.as_deref(), Some(&provider.audiences))
            .into_iter()
            .find(|a| provider.audiences.contains(a))
            .ok_or_else(|| invalid_token(trust_policy::INCORRECT_AUDIENCE))?;
    let amr = match all_claims.get("amr") {
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    };
    let sub = claims
        .sub
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            StsError::new(
                403,
                "IDPRejectedClaim",
                "The ID Token has no subject (sub) claim",
            )
        })?;
    Ok(Verified {
        issuer: provider.issuer.clone(),
        sub,
        aud: claims.aud,
        matched_aud,
        amr,
        source_identity: text(trust_policy::SOURCE_IDENTITY_CLAIM),
    })
}

/// The role `arn` names (`None`: no such role in any emulated account), or STS's
/// ValidationError for an ARN that is not a role ARN.
fn lookup_role<'a>(state: &'a State, arn: &str) -> Result<Option<&'a Role>, StsError> {
    let arn: RoleArn = arn
        .parse()
        .map_err(|_| StsError::new(400, "ValidationError", "Request ARN is invalid"))?;
    Ok(state.roles.get(&role_key(arn.account_id(), arn.name())))
}

fn assume_role_with_web_identity(
    state: &State,
    params: &HashMap<String, String>,
) -> Result<String, StsError> {
    let mut problems = Vec::new();
    let get = |k: &str| params.get(k).map(String::as_str);
    let role_arn = get("RoleArn");
    let session = get("RoleSessionName");
    let token = get("WebIdentityToken").map(str::trim_end);
    match role_arn {
        None => problems.push("Value null at 'roleArn' failed to satisfy constraint: Member must not be null".to_owned()),
        Some(a) if a.len() < 20 => problems.push(format!("Value '{a}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20")),
        Some(a) if a.len() > 2048 => problems.push("Value at 'roleArn' failed to satisfy constraint: Member must have length less than or equal to 2048".to_owned()),
        Some(_) => {}
    }
    match session {
        None => problems.push(
            "Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"
                .to_owned(),
        ),
        Some(s) => problems.extend(validate_session_name(s)),
    }
    match token {
        None => problems.push("Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null".to_owned()),
        Some(t) if t.len() < 4 => problems.push("Value at 'webIdentityToken' failed to satisfy constraint: Member must have length greater than or equal to 4".to_owned()),
        Some(t) if t.len() > 20_000 => problems.push("Value at 'webIdentityToken' failed to satisfy constraint: Member must have length less than or equal to 20000".to_owned()),
        Some(_) => {}
    }
    let duration = match validate_duration(get("DurationSeconds")) {
        Ok(d) => d,
        Err(p) => {
            problems.extend(p);
            0
        }
    };
    if !problems.is_empty() {
        return Err(validation_error(problems));
    }
    let (role_arn, session, token) = (
        role_arn.unwrap_or_default(),
        session.unwrap_or_default(),
        token.unwrap_or_default(),
    );
    let role = lookup_role(state, role_arn)?;

    let verified = verify_token(state, token)?;

    let denied = || StsError::new(403, "AccessDenied", NOT_AUTHORIZED);
    let role = role.ok_or_else(|| {
        tracing::info!(role_arn, "no such role in the emulated account");
        denied()
    })?;
    let call = trust_policy::WebIdentityCall {
        account_id: role.account_id.clone(),
        issuer: verified.issuer.clone(),
        sub: verified.sub.clone(),
        aud: Some(verified.matched_aud.clone()),
        token_aud: verified.aud.clone(),
        amr: verified.amr.clone(),
        role_session_name: Some(session.to_owned()),
        source_identity: verified.source_identity.clone(),
        now: Some(state.clock.wall()),
    };
    let decision = trust_policy::evaluate_web_identity(&role.policy, &call);
    if !decision.allowed() {
        tracing::info!(role = %role.name, sub = %verified.sub, explanation = %decision.explain(), "trust policy refused");
        return Err(denied());
    }
    if duration > role.max_session_duration {
        return Err(StsError::new(400, "ValidationError", DURATION_EXCEEDS_MAX));
    }

    let issued = issue_session(state, role, session, duration);
    let provider = trust_policy::provider_arn(&role.account_id, &verified.issuer);
    Ok(format!(
        "{}    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n{}    <Provider>{}</Provider>\n    <Audience>{}</Audience>\n{}",
        issued.credentials_xml,
        xml_escape(&verified.sub),
        issued.user_xml,
        xml_escape(&provider),
        xml_escape(&verified.matched_aud),
        verified
            .source_identity
            .as_deref()
            .map(|si| format!("    <SourceIdentity>{}</SourceIdentity>\n", xml_escape(si)))
            .unwrap_or_default(),
    ))
}

/// The `<Credentials>` and `<AssumedRoleUser>` elements of a new session.
struct Issued {
    credentials_xml: String,
    user_xml: String,
}

/// Mint keys for a session of `role`, remember them (for SigV4 checks) and render them.
fn issue_session(state: &State, role: &Role, session: &str, duration: u32) -> Issued {
    let now = state.clock.wall();
    let expires = now + Duration::from_secs(u64::from(duration));
    let akid = format!(
        "ASIA{}",
        random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    );
    let secret = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let session_token = format!(
        "FwoGZXIvYXdzEP//////////wEaD{}",
        random_string(
            300,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        )
    );
    let user_id = format!("{}:{session}", role.role_id);
    let arn = format!(
        "arn:aws:sts::{}:assumed-role/{}/{session}",
        role.account_id, role.name
    );
    let credentials_xml = format!(
        "    <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
        xml_escape(&secret),
        xml_escape(&session_token),
        format_rfc3339_seconds(expires),
    );
    let user_xml = format!(
        "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n",
        xml_escape(&user_id),
        xml_escape(&arn),
    );
    let mut sessions = state.sessions.lock().unwrap();
    if sessions.len() >= state.max_sessions {
        sessions.retain(|_, s| s.expires > now);
    }
    while sessions.len() >= state.max_sessions {
        let oldest = sessions
            .iter()
            .min_by_key(|(_, s)| s.expires)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => sessions.remove(&k),
            None => break,
        };
    }
    sessions.insert(
        akid,
        Session {
            secret: Secret::new(secret),
            session_token: Secret::new(session_token),
            arn,
            user_id,
            account_id: role.account_id.clone(),
            expires,
        },
    );
    Issued {
        credentials_xml,
        user_xml,
    }
}

/// The session whose keys signed this request: SigV4 verified with its secret, its
/// session token checked, not expired.
fn authenticate(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<Session, StsError> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(authorization) = header("authorization") else {
        return Err(StsError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth = sigv4::parse_authorization(&authorization)
        .map_err(|e| StsError::new(400, "IncompleteSignature", e.0))?;
    if auth.service != "sts" {
        return Err(StsError::new(
            403,
            "SignatureDoesNotMatch",
            "Credential should be scoped to correct service: 'sts'. ",
        ));
    }
    let invalid = || {
        StsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let session = state
        .sessions
        .lock()
        .unwrap()
        .get(&auth.access_key_id)
        .cloned()
        .ok_or_else(invalid)?;
    let presented = header("x-amz-security-token").unwrap_or_default();
    let token_ok: bool = subtle::ConstantTimeEq::ct_eq(
        presented.as_bytes(),
        session.session_token.expose().as_bytes(),
    )
    .into();
    if !token_ok {
        return Err(invalid());
    }
    let now = state.clock.wall();
    if now >= session.expires {
        return Err(StsError::new(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    let req = sigv4::SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body,
    };
    sigv4::verify(&req, &auth, session.secret.expose(), Some(unix(now))).map_err(|e| match e {
        sigv4::VerifyError::Malformed(m) => StsError::new(400, "IncompleteSignature", m),
        other => StsError::new(403, "SignatureDoesNotMatch", other.to_string()),
    })?;
    Ok(session)
}

fn get_caller_identity(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<String, StsError> {
    let session = authenticate(state, parts, body)?;
    Ok(format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        xml_escape(&session.arn),
        xml_escape(&session.user_id),
        xml_escape(&session.account_id)
    ))
}

/// `sts:AssumeRole` by a role session (role chaining): SigV4 verified against the caller's
/// keys, the target role's trust policy evaluated with `Principal.AWS`, `sts:ExternalId`
/// and `sts:TagSession`, and STS's one-hour cap on chained sessions.
fn assume_role(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    params: &HashMap<String, String>,
) -> Result<String, StsError> {
    let caller = authenticate(state, parts, body)?;
    let get = |k: &str| params.get(k).map(String::as_str);
    let mut problems = Vec::new();
    let role_arn = get("RoleArn").unwrap_or_default();
    if role_arn.len() < 20 {
        problems.push(format!("Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"));
    }
    let session = get("RoleSessionName").unwrap_or_default();
    problems.extend(validate_session_name(session));
    let duration = validate_duration(get("DurationSeconds")).unwrap_or_else(|p| {
        problems.extend(p);
        0
    });
    let external_id = get("ExternalId").map(str::to_owned);
    if let Some(id) = &external_id
        && !(2..=1224).contains(&id.len())
    {
        problems.push("Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224".into());
    }
    let mut tags = Vec::new();
    for n in 1.. {
        let (Some(k), v) = (
            get(&format!("Tags.member.{n}.Key")),
            get(&format!("Tags.member.{n}.Value")),
        ) else {
            break;
        };
        tags.push((k.to_owned(), v.unwrap_or_default().to_owned()));
    }
    let transitive: Vec<String> = (1..)
        .map_while(|n| get(&format!("TransitiveTagKeys.member.{n}")).map(str::to_owned))
        .collect();
    let policy = get("Policy").map(str::to_owned);
    if !problems.is_empty() {
        return Err(validation_error(problems));
    }
    if let Some(p) = &policy
        && serde_json::from_str::<serde_json::Value>(p).is_err()
    {
        return Err(StsError::new(
            400,
            "MalformedPolicyDocument",
            "The policy is not in the valid JSON format.",
        ));
    }
    // Every caller here is a role session, so every AssumeRole is role chaining.
    if duration > 3600 {
        return Err(StsError::new(400, "ValidationError", CHAINED_DURATION));
    }
    let role = lookup_role(state, role_arn)?;
    let denied = |action: &str| {
        StsError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: {action} on resource: {role_arn}",
                caller.arn
            ),
        )
    };
    let role = role.ok_or_else(|| denied(trust_policy::ASSUME_ROLE))?;
    let call = trust_policy::AssumeRoleCall {
        caller_role_arn: caller.role_arn(),
        caller_session_arn: Some(caller.arn.clone()),
        role_session_name: session.to_owned(),
        external_id,
        tags: tags.clone(),
        transitive_tag_keys: transitive,
        now: Some(state.clock.wall()),
    };
    let decision = trust_policy::evaluate_assume_role(&role.policy, &call);
    if !decision.allowed() {
        tracing::info!(role = %role.name, caller = %caller.arn, explanation = %decision.explain(), "trust policy refused AssumeRole");
        return Err(denied(&decision.action));
    }
    if duration > role.max_session_duration {
        return Err(StsError::new(400, "ValidationError", DURATION_EXCEEDS_MAX));
    }
    let packed = (!tags.is_empty() || policy.is_some()).then(|| {
        // STS reports how much of the packed-policy budget tags and policies use; a
        // plausible, bounded percentage is what clients read.
        let size = tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + policy.as_ref().map_or(0, String::len);
        (size * 100 / 2048).clamp(1, 100)
    });
    let issued = issue_session(state, role, session, duration);
    // The emulator grants no permissions, so a session policy (the intersection of the
    // role's policies and this one) changes nothing it could show; it is only logged.
    tracing::info!(role = %role.name, caller = %caller.arn,
        tag_keys = ?tags.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        session_policy = policy.is_some(), "chained session issued");
    Ok(format!(
        "{}{}{}",
        issued.credentials_xml,
        issued.user_xml,
        packed
            .map(|p| format!("    <PackedPolicySize>{p}</PackedPolicySize>\n"))
            .unwrap_or_default()
    ))
}

/// STS's answer to a chained session asked for more than an hour.
pub const CHAINED_DURATION: &str = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        assert!(validate_session_name("botocore-session-1700000000").is_empty());
        assert!(validate_session_name("a_b+c=d,e.f@g-h").is_empty());
        assert!(validate_session_name(&"a".repeat(64)).is_empty());
        let p = validate_session_name("a");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("greater than or equal to 2"), "{p:?}");
        let p = validate_session_name(&"a".repeat(65));
        assert!(p[0].contains("less than or equal to 64"));
        let p = validate_session_name("has space");
        assert!(
            p[0].contains("regular expression pattern: [\\w+=,.@-]*"),
            "{p:?}"
        );
        assert_eq!(validate_session_name("x/").len(), 1);
        assert_eq!(validate_session_name("").len(), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(validate_duration(None), Ok(3600));
        assert_eq!(validate_duration(Some("900")), Ok(900));
        assert_eq!(validate_duration(Some("43200")), Ok(43200));
        let e = validate_duration(Some("899")).unwrap_err();
        assert_eq!(
            e[0],
            "Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        );
        let e = validate_duration(Some("43201")).unwrap_err();
        assert!(e[0].contains("less than or equal to 43200"));
        assert!(validate_duration(Some("soon")).is_err());
        let err = validation_error(vec!["a".into(), "b".into()]);
        assert_eq!(err.message, "2 validation errors detected: a; b");
        assert_eq!(
            validation_error(vec!["a".into()]).message,
            "1 validation error detected: a"
        );
    }

    #[test]
    fn role_arns_and_ids() {
        let arn: RoleArn = "arn:aws:iam::111122223333:role/path/to/app"
            .parse()
            .unwrap();
        assert_eq!((arn.account_id(), arn.name()), ("111122223333", "app"));
        assert!("arn:aws:iam::1111:role/app".parse::<RoleArn>().is_err());
        assert!(
            "arn:aws:iam::111122223333:user/app"
                .parse::<RoleArn>()
                .is_err()
        );
        let id = role_id_for("111122223333", "app");
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AROA"));
        assert_eq!(id, role_id_for("111122223333", "app"));
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml_escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
        let e = StsError::new(403, "AccessDenied", "x < y");
        assert_eq!(e.error_type(), "Sender");
    }
}
