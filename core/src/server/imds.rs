//! IMDSv2-compatible endpoint under `/latest/`, on the credentials listener.
//!
//! Contract (client-compat.md §2.2):
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 1..21600` issues a
//!   session token (400 for a missing or bad TTL); the TTL is echoed in the response header,
//!   which aws-sdk-rust and the Go SDKs require.
//! - Any request carrying `X-Forwarded-For` is refused with 403, as real IMDS does: a
//!   request that went through a proxy or an SSRF-able relay is not the application asking.
//! - GETs need a valid `X-aws-ec2-metadata-token` (401 otherwise) unless `--imds-allow-v1`;
//!   a token that is present but invalid is 401 even then, like real IMDS.
//! - `meta-data/iam/security-credentials[-extended]/[ROLE]`, `meta-data/iam/info`,
//!   `meta-data/placement/{region,availability-zone}`, `dynamic/instance-identity/document`;
//!   everything else 404.
//!
//! Session tokens are stateless: `base64url(expiry || nonce || HMAC-SHA256(key, expiry ||
//! nonce)[..16])` with a per-process random key, so there is no table to grow or lock, and
//! tokens die with the process. Expiry is counted on the monotonic clock from the moment
//! the server was bound: the key is per process, so a per-process time origin costs
//! nothing, and a wall clock stepped by NTP can neither extend nor cut short a token.

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use rand::RngExt;
use serde::Serialize;
use sha2::Sha256;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::container::RETRY_AFTER_SECONDS;
use super::{App, Body, METHOD_NOT_ALLOWED, NOT_FOUND, StaticError, error, json};
use crate::aws::{Region, RoleArn};
use crate::clock::{Clock, format_rfc3339_seconds};

pub const PREFIX: &str = "/latest/";
pub const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PREFIX: &str = "/latest/meta-data/iam/security-credentials";
const EXTENDED_PREFIX: &str = "/latest/meta-data/iam/security-credentials-extended";
const INFO_PATH: &str = "/latest/meta-data/iam/info";
const REGION_PATH: &str = "/latest/meta-data/placement/region";
const AZ_PATH: &str = "/latest/meta-data/placement/availability-zone";
const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";

pub static TTL_HEADER: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
pub static TOKEN_HEADER: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Real IMDS bounds on the token TTL.
pub const MAX_TTL_SECONDS: u64 = 21_600;

/// What the IMDS endpoint serves besides credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsSettings {
    /// Answer GETs without a session token (IMDSv1). Off by default.
    pub allow_v1: bool,
    /// The role name listed under `security-credentials/`.
    pub role_name: String,
    pub region: String,
    pub account_id: String,
}

impl ImdsSettings {
    pub fn new(role_arn: &RoleArn, region: &Region, allow_v1: bool) -> Self {
        Self {
            allow_v1,
            role_name: role_arn.name().to_owned(),
            region: region.to_string(),
            account_id: role_arn.account_id().to_owned(),
        }
    }
}

/// Per-process IMDS state: settings, the token key and time origin, pre-rendered bodies.
pub struct Imds {
    settings: ImdsSettings,
    tokens: SessionTokens,
    role_name: Bytes,
    region: Bytes,
    availability_zone: Bytes,
    identity_document: Bytes,
    instance_profile_arn: String,
    instance_profile_id: String,
}

impl Imds {
    pub fn new(settings: ImdsSettings, clock: &dyn Clock) -> Self {
        let az = format!("{}a", settings.region);
        let identity = IdentityDocument {
            account_id: &settings.account_id,
            architecture: match std::env::consts::ARCH {
                "aarch64" => "arm64",
                other => other,
            },
            availability_zone: &az,
            billing_products: None,
            devpay_product_codes: None,
            marketplace_product_codes: None,
            image_id: "ami-00000000000000000",
            instance_id: "i-00000000000000000",
            instance_type: "passport",
            kernel_id: None,
            pending_time: &format_rfc3339_seconds(clock.wall()),
            private_ip: "127.0.0.1",
            ramdisk_id: None,
            region: &settings.region,
            version: "2017-09-30",
        };
        let identity_document =
            Bytes::from(serde_json::to_vec_pretty(&identity).expect("document serialises"));
        // Partition from nothing we know: the region's prefix picks it as AWS does.
        let partition = if settings.region.starts_with("cn-") {
            "aws-cn"
        } else if settings.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        let instance_profile_arn = format!(
            "arn:{partition}:iam::{}:instance-profile/{}",
            settings.account_id, settings.role_name
        );
        let instance_profile_id = synthetic_profile_id(&instance_profile_arn);
        Self {
            role_name: Bytes::from(settings.role_name.clone()),
            region: Bytes::from(settings.region.clone()),
            availability_zone: Bytes::from(az),
            identity_document,
            instance_profile_arn,
            instance_profile_id,
            tokens: SessionTokens::new(clock.mono()),
            settings,
        }
    }

    pub fn settings(&self) -> &ImdsSettings {
        &self.settings
    }

    pub fn tokens(&self) -> &SessionTokens {
        &self.tokens
    }
}

/// `AIPA` + 17 characters, as IAM instance-profile ids look; stable for a given ARN.
fn synthetic_profile_id(arn: &str) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.as_bytes());
    let mut id = String::from("AIPA");
    id.extend(
        digest
            .iter()
            .take(17)
            .map(|b| ALPHABET[(b & 31) as usize] as char),
    );
    id
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDocument<'a> {
    account_id: &'a str,
    architecture: &'a str,
    availability_zone: &'a str,
    billing_products: Option<()>,
    devpay_product_codes: Option<()>,
    marketplace_product_codes: Option<()>,
    image_id: &'a str,
    instance_id: &'a str,
    instance_type: &'a str,
    kernel_id: Option<()>,
    pending_time: &'a str,
    private_ip: &'a str,
    ramdisk_id: Option<()>,
    region: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfoBody<'a> {
    code: &'a str,
    last_updated: &'a str,
    instance_profile_arn: &'a str,
    instance_profile_id: &'a str,
}

// ---------------------------------------------------------------------------------------
// Session tokens

const EXPIRY_LEN: usize = 8;
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = EXPIRY_LEN + NONCE_LEN + TAG_LEN;
/// base64url without padding of `RAW_LEN` bytes.
pub const TOKEN_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// Stateless IMDS session tokens: `base64url(expiry_ms || nonce || tag)`, where `expiry_ms`
/// is milliseconds since `origin` on the monotonic clock (big-endian u64) and `tag` is the
/// first 128 bits of HMAC-SHA256 over `expiry_ms || nonce` under a random per-process key.
pub struct SessionTokens {
    key: Zeroizing<[u8; 32]>,
    origin: Instant,
}

impl SessionTokens {
    pub fn new(origin: Instant) -> Self {
        Self {
            key: Zeroizing::new(rand::rng().random()),
            origin,
        }
    }

    fn since_origin(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }

    fn tag(&self, signed: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key[..])
            .expect("HMAC takes keys of any length");
        mac.update(signed);
        mac
    }

    /// A token valid until `now + ttl`.
    pub fn issue(&self, now: Instant, ttl: Duration) -> String {
        let expiry = self
            .since_origin(now)
            .saturating_add(ttl.as_millis() as u64);
        let mut raw = [0u8; RAW_LEN];
        raw[..EXPIRY_LEN].copy_from_slice(&expiry.to_be_bytes());
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        raw[EXPIRY_LEN..EXPIRY_LEN + NONCE_LEN].copy_from_slice(&nonce);
        let tag = self
            .tag(&raw[..EXPIRY_LEN + NONCE_LEN])
            .finalize()
            .into_bytes();
        raw[EXPIRY_LEN + NONCE_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// True for a token this process issued that has not expired at `now`. Never panics;
    /// anything but exactly `TOKEN_LEN` bytes is refused before decoding, and the tag is
    /// compared in constant time.
    pub fn verify(&self, token: &[u8], now: Instant) -> bool {
        if token.len() != TOKEN_LEN {
            return false;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(token, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return false,
        }
        let (signed, tag) = raw.split_at(EXPIRY_LEN + NONCE_LEN);
        if self.tag(signed).verify_truncated_left(tag).is_err() {
            return false;
        }
        let mut expiry = [0u8; EXPIRY_LEN];
        expiry.copy_from_slice(&signed[..EXPIRY_LEN]);
        self.since_origin(now) < u64::from_be_bytes(expiry)
    }
}

// ---------------------------------------------------------------------------------------
// Handler

static FORWARDED: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "Forbidden",
        "requests carrying X-Forwarded-For are refused: IMDS is not served through proxies",
    )
});
static BAD_TTL: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "InvalidTTL",
        "X-aws-ec2-metadata-token-ttl-seconds must be a whole number from 1 to 21600",
    )
});
static TOKEN_REQUIRED: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "Unauthorized",
        "a valid X-aws-ec2-metadata-token is required (PUT /latest/api/token first)",
    )
});
static PUT_ONLY: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "MethodNotAllowed",
        "only PUT is allowed on /latest/api/token",
    )
});

/// Real IMDS answers `text/plain` for everything, credentials JSON included. Every SDK in
/// client-compat.md §2 parses the body without looking at `Content-Type` (botocore
/// `json.loads(response.text)`, aws-config, Go, JS and Java likewise), so mirroring IMDS
/// is the choice that cannot surprise a client written against the real service.
fn plain(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn ttl_seconds(value: Option<&HeaderValue>) -> Option<u64> {
    let value = value?.as_bytes();
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ttl: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (1..=MAX_TTL_SECONDS).contains(&ttl).then_some(ttl)
}

pub fn handle<B>(app: &App, imds: &Imds, req: &Request<B>) -> Response<Body> {
    let headers = req.headers();
    if headers.contains_key(&FORWARDED_FOR) {
        return error(StatusCode::FORBIDDEN, &FORWARDED);
    }
    let path = req.uri().path();
    let now = app.shared.clock.mono();

    if path == TOKEN_PATH {
        if req.method() != Method::PUT {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, &PUT_ONLY);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("PUT"));
            return response;
        }
        let Some(ttl) = ttl_seconds(headers.get(&TTL_HEADER)) else {
            return error(StatusCode::BAD_REQUEST, &BAD_TTL);
        };
        let token = imds.tokens.issue(now, Duration::from_secs(ttl));
        let mut response = plain(StatusCode::OK, Bytes::from(token));
        response
            .headers_mut()
            .insert(TTL_HEADER.clone(), HeaderValue::from(ttl));
        return response;
    }

    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    match headers.get(&TOKEN_HEADER) {
        Some(token) if imds.tokens.verify(token.as_bytes(), now) => {}
        None if imds.settings.allow_v1 => {}
        _ => return error(StatusCode::UNAUTHORIZED, &TOKEN_REQUIRED),
    }

    // Leaf paths answer with or without one trailing slash, as real IMDS does: botocore's
    // region fetcher asks for `placement/availability-zone/`.
    let path = match path.strip_suffix('/') {
        Some(leaf) if !leaf.ends_with('/') => leaf,
        _ => path,
    };
    let role_path = |prefix: &str| -> Option<Option<&str>> {
        match path.strip_prefix(prefix)? {
            "" => Some(None),
            rest => rest.strip_prefix('/').map(Some),
        }
    };
    if let Some(role) = role_path(EXTENDED_PREFIX) {
        return credentials(app, imds, role, true);
    }
    if let Some(role) = role_path(CREDENTIALS_PREFIX) {
        return credentials(app, imds, role, false);
    }
    match path {
        INFO_PATH => info(app, imds),
        REGION_PATH => plain(StatusCode::OK, imds.region.clone()),
        AZ_PATH => plain(StatusCode::OK, imds.availability_zone.clone()),
        IDENTITY_PATH => plain(StatusCode::OK, imds.identity_document.clone()),
        _ => error(StatusCode::NOT_FOUND, &NOT_FOUND),
    }
}

fn unavailable(body: Bytes) -> Response<Body> {
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, body);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    response
}

/// The role listing is configuration and always answers; a role's credentials answer 503
/// (never a `"Code":"Success"` body) while nothing valid can be served.
fn credentials(app: &App, imds: &Imds, role: Option<&str>, extended: bool) -> Response<Body> {
    let Some(role) = role else {
        return plain(StatusCode::OK, imds.role_name.clone());
    };
    if role != imds.settings.role_name {
        return error(StatusCode::NOT_FOUND, &NOT_FOUND);
    }
    let snapshot = app.shared.snapshot.load();
    match snapshot.current(&*app.shared.clock) {
        Some(served) if extended => plain(StatusCode::OK, served.imds_extended_body.clone()),
        Some(served) => plain(StatusCode::OK, served.imds_body.clone()),
        None => unavailable(snapshot.unavailable_body.clone()),
    }
}

/// `iam/info` says `"Code":"Success"`, so it too answers 503 until credentials exist.
fn info(app: &App, imds: &Imds) -> Response<Body> {
    let snapshot = app.shared.snapshot.load();
    let Some(served) = snapshot.current(&*app.shared.clock) else {
        return unavailable(snapshot.unavailable_body.clone());
    };
    let last_updated = format_rfc3339_seconds(served.last_updated);
    let body = InfoBody {
        code: "Success",
        last_updated: &last_updated,
        instance_profile_arn: &imds.instance_profile_arn,
        instance_profile_id: &imds.instance_profile_id,
    };
    plain(
        StatusCode::OK,
        Bytes::from(serde_json::to_vec_pretty(&body).expect("info serialises")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_role_arns() {
        let s = ImdsSettings::new(
            &"arn:aws:iam::111122223333:role/path/to/app"
                .parse()
                .unwrap(),
            &"eu-west-1".parse().unwrap(),
            false,
        );
        assert_eq!(s.role_name, "app");
        assert_eq!(s.account_id, "111122223333");
        assert_eq!(s.region, "eu-west-1");
    }

    #[test]
    fn ttl_header_parsing() {
        let ttl = |s: &str| ttl_seconds(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(ttl("1"), Some(1));
        assert_eq!(ttl("21600"), Some(21600));
        assert_eq!(ttl("021600"), None);
        for bad in ["0", "21601", "", "-1", "+5", " 5", "5.0", "abc", "99999"] {
            assert_eq!(ttl(bad), None, "{bad:?}");
        }
        assert_eq!(ttl_seconds(None), None);
    }

    #[test]
    fn profile_ids_look_like_iam_ids() {
        let id = synthetic_profile_id("arn:aws:iam::111122223333:instance-profile/app");
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AIPA"));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_round_trip_and_expire() {
        let tokens = SessionTokens::new(Instant::now());
        let t = tokens.issue(Instant::now(), Duration::from_secs(2));
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(tokens.verify(t.as_bytes(), Instant::now()));
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(tokens.verify(t.as_bytes(), Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!tokens.verify(t.as_bytes(), Instant::now()));

        let other = SessionTokens::new(Instant::now());
        let t = tokens.issue(Instant::now(), Duration::from_secs(60));
        assert!(!other.verify(t.as_bytes(), Instant::now()));
        // Flip each character: never accepted.
        for i in 0..t.len() {
            let mut forged = t.clone().into_bytes();
            forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
            assert!(!tokens.verify(&forged, Instant::now()), "{i}");
        }
    }
}
