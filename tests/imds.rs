//! Contract tests for the IMDS endpoint (client-compat.md §2.2), against a real `Sidecar`
//! on 127.0.0.1:0 with common's fake STS and a `ManualClock`.
//!
//! HTTP is spoken with common's `http_paused` (blocking `std::net::TcpStream`s inside
//! `spawn_blocking`), so paused time moves only with `tokio::time::advance` and a request in
//! flight can never expire a token behind the test's back.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use passport_core::clock::{Clock, ManualClock, format_rfc3339_seconds};
use passport_core::server::imds::{ImdsSettings, SessionTokens, TOKEN_LEN};
use passport_core::sidecar::Shutdown;
use passport_core::sts::ErrorClass;

/// A path in the role ARN: IMDS lists the role name, its last segment.
const IMDS_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/team/app";
const ROLE: &str = "app";
const ACCESS_KEY: &str = "ASIAFAKEIMDS00000001";
/// Characters the JSON answer must escape.
const SECRET_KEY: &str = "fake/secret+key\"with\\quotes";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEFakeSessionToken==";

struct Harness {
    sidecar: Running,
    clock: Arc<ManualClock>,
}

impl std::ops::Deref for Harness {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.sidecar
    }
}

impl Harness {
    async fn stop(self) {
        self.sidecar.shutdown().await;
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        http_paused(self.addr, "GET", path, headers).await
    }

    async fn token(&self, ttl: &str) -> String {
        let r = http_paused(self.addr, "PUT", "/latest/api/token", &[(TTL, ttl)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.text().to_owned()
    }
}

fn settings(allow_v1: bool) -> Option<ImdsSettings> {
    Some(ImdsSettings::new(
        &IMDS_ROLE_ARN.parse().unwrap(),
        &"eu-west-1".parse().unwrap(),
        allow_v1,
    ))
}

async fn start(imds: Option<ImdsSettings>, sts_up: bool) -> Harness {
    start_at(
        imds,
        sts_up,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
    .await
}

/// A sidecar whose STS issues the fixed keys above for one hour (by the injected wall
/// clock), or is down (`sts_up == false`).
async fn start_at(imds: Option<ImdsSettings>, sts_up: bool, wall: SystemTime) -> Harness {
    let clock = Arc::new(ManualClock::new(wall));
    let sts = FakeSts::new(clock.clone());
    sts.set_default(if sts_up {
        Behaviour::IssueKeys {
            access_key_id: ACCESS_KEY,
            secret_access_key: SECRET_KEY,
            session_token: SESSION_TOKEN,
        }
    } else {
        Behaviour::Fail(error(ErrorClass::Transient, "IDPCommunicationError"))
    });
    let mut sidecar = start_sidecar(sts)
        .clock(clock.clone())
        .role_arn(IMDS_ROLE_ARN)
        .imds_settings(imds)
        .no_admin()
        .seed(7);
    if !sts_up {
        sidecar = sidecar.no_wait();
    }
    Harness {
        sidecar: sidecar.run(Shutdown::PROMPT).await,
        clock,
    }
}

const TOKEN: &str = "X-aws-ec2-metadata-token";
const TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const LISTING: &str = "/latest/meta-data/iam/security-credentials/";

#[tokio::test(start_paused = true)]
async fn token_ttl_bounds() {
    let h = start(settings(false), true).await;
    for (ttl, status) in [
        ("1", 200),
        ("21600", 200),
        ("300", 200),
        ("0", 400),
        ("21601", 400),
        ("abc", 400),
        ("1.5", 400),
        ("-1", 400),
        ("", 400),
    ] {
        let r = http_paused(h.addr, "PUT", "/latest/api/token", &[(TTL, ttl)]).await;
        assert_eq!(r.status, status, "ttl {ttl:?}: {r:?}");
        if status == 200 {
            assert_eq!(r.header(TTL), Some(ttl), "TTL echoed");
            assert_eq!(r.header("content-type"), Some("text/plain"));
            assert_eq!(r.body.len(), TOKEN_LEN);
        }
    }
    let missing = http_paused(h.addr, "PUT", "/latest/api/token", &[]).await;
    assert_eq!(missing.status, 400);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn x_forwarded_for_is_refused_on_put_and_get() {
    let h = start(settings(true), true).await;
    let xff = ("X-Forwarded-For", "203.0.113.7");
    let r = http_paused(h.addr, "PUT", "/latest/api/token", &[(TTL, "21600"), xff]).await;
    assert_eq!(r.status, 403, "{r:?}");
    let token = h.token("21600").await;
    let r = h.get(LISTING, &[(TOKEN, &token), xff]).await;
    assert_eq!(r.status, 403);
    // Even with IMDSv1 allowed and no token.
    let r = h.get(LISTING, &[xff]).await;
    assert_eq!(r.status, 403);
    let r = h.get(LISTING, &[("x-forwarded-for", "")]).await;
    assert_eq!(
        r.status, 403,
        "an empty X-Forwarded-For still marks a relay"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn methods() {
    let h = start(settings(false), true).await;
    let r = http_paused(h.addr, "GET", "/latest/api/token", &[(TTL, "60")]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PUT"));
    let token = h.token("60").await;
    let r = http_paused(h.addr, "POST", LISTING, &[(TOKEN, &token)]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = http_paused(h.addr, "PUT", LISTING, &[(TOKEN, &token)]).await;
    assert_eq!(r.status, 405);
    let r = http_paused(h.addr, "HEAD", LISTING, &[(TOKEN, &token)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "", "HEAD has no body");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_on_the_monotonic_clock() {
    let h = start(settings(false), true).await;
    let short = h.token("1").await;
    let long = h.token("21600").await;
    let region = "/latest/meta-data/placement/region";
    assert_eq!(h.get(region, &[(TOKEN, &short)]).await.status, 200);

    // Wall clock stepped a day forward (NTP): tokens are unaffected.
    h.clock.jump_forward(Duration::from_secs(86_400));
    assert_eq!(h.get(region, &[(TOKEN, &short)]).await.status, 200);

    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(h.get(region, &[(TOKEN, &short)]).await.status, 200);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(h.get(region, &[(TOKEN, &short)]).await.status, 401);
    assert_eq!(h.get(region, &[(TOKEN, &long)]).await.status, 200);

    tokio::time::advance(Duration::from_secs(21_600 - 2)).await;
    assert_eq!(h.get(region, &[(TOKEN, &long)]).await.status, 200);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.get(region, &[(TOKEN, &long)]).await.status, 401);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn forged_malformed_oversized_and_foreign_tokens_get_401() {
    let h = start(settings(false), true).await;
    let other = start(settings(false), true).await;
    let good = h.token("600").await;
    assert_eq!(h.get(LISTING, &[(TOKEN, &good)]).await.status, 200);

    let mut flipped = good.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let foreign = other.token("600").await;
    let oversized = "A".repeat(300);
    let wrong_length = format!("{good}A");
    let padded = format!("{good}==");
    for bad in [
        "",
        "x",
        flipped.as_str(),
        foreign.as_str(),
        oversized.as_str(),
        wrong_length.as_str(),
        &good[..good.len() - 1],
        padded.as_str(),
        &"A".repeat(TOKEN_LEN),
        &"!".repeat(TOKEN_LEN),
    ] {
        let r = h.get(LISTING, &[(TOKEN, bad)]).await;
        assert_eq!(r.status, 401, "{bad:?}");
    }
    // Non-UTF-8 bytes in the header value.
    let mut head =
        format!("GET {LISTING} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{TOKEN}: ")
            .into_bytes();
    head.extend_from_slice(b"\xff\xfe\x80abc\r\n\r\n");
    assert_eq!(http_raw_paused(h.addr, head).await.status, 401);
    h.stop().await;
    other.stop().await;
}

#[tokio::test(start_paused = true)]
async fn v1_is_refused_by_default_and_allowed_with_the_flag() {
    let h = start(settings(false), true).await;
    let r = h.get(LISTING, &[]).await;
    assert_eq!(r.status, 401);
    let r = h.get("/latest/meta-data/no/such/path", &[]).await;
    assert_eq!(r.status, 401, "no path probing without a token");
    h.stop().await;

    let h = start(settings(true), true).await;
    let r = h.get(LISTING, &[]).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, ROLE));
    let r = h.get(&format!("{LISTING}{ROLE}"), &[]).await.json();
    assert_eq!(r["AccessKeyId"], ACCESS_KEY);
    // A token that is present must be valid, as with real IMDS in optional mode.
    assert_eq!(h.get(LISTING, &[(TOKEN, "forged")]).await.status, 401);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn credentials_paths() {
    let h = start(settings(false), true).await;
    let t = h.token("21600").await;
    let auth = [(TOKEN, t.as_str())];
    let expiration = format_rfc3339_seconds(h.clock.wall() + Duration::from_secs(3600));

    for listing in [
        LISTING,
        "/latest/meta-data/iam/security-credentials-extended/",
    ] {
        let r = h.get(listing, &auth).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), ROLE, "exactly the role name, no newline");
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }

    let r = h.get(&format!("{LISTING}{ROLE}/"), &auth).await;
    assert_eq!(r.status, 200, "one trailing slash is tolerated");
    let r = h.get(&format!("{LISTING}{ROLE}"), &auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let body = r.json();
    let last_updated = body["LastUpdated"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        serde_json::json!({
            "Code": "Success",
            "LastUpdated": last_updated,
            "Type": "AWS-HMAC",
            "AccessKeyId": ACCESS_KEY,
            "SecretAccessKey": SECRET_KEY,
            "Token": SESSION_TOKEN,
            "Expiration": expiration,
        })
    );
    assert!(last_updated.ends_with('Z') && last_updated.len() == 20);

    let r = h
        .get(
            &format!("/latest/meta-data/iam/security-credentials-extended/{ROLE}"),
            &auth,
        )
        .await;
    assert_eq!(r.status, 200);
    let ext = r.json();
    assert_eq!(ext["AccountId"], "111122223333");
    assert_eq!(ext["Code"], "Success");
    assert_eq!(ext["Token"], SESSION_TOKEN);
    assert_eq!(ext["Expiration"], expiration);

    for missing in [
        format!("{LISTING}other-role"),
        format!("{LISTING}{ROLE}//"),
        format!("{LISTING}{ROLE}x"),
        "/latest/meta-data/iam/security-credentials-extended/other-role".into(),
        "/latest/meta-data/".into(),
        "/latest/user-data".into(),
        "/latest/".into(),
    ] {
        let r = h.get(&missing, &auth).await;
        assert_eq!(r.status, 404, "{missing}");
    }

    let info = h.get("/latest/meta-data/iam/info", &auth).await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["Code"], "Success");
    assert_eq!(info["LastUpdated"], last_updated.as_str());
    assert_eq!(
        info["InstanceProfileArn"],
        "arn:aws:iam::111122223333:instance-profile/app"
    );
    let id = info["InstanceProfileId"].as_str().unwrap();
    assert!(id.starts_with("AIPA") && id.len() == 21, "{id}");

    // Counted by the shared request metrics.
    assert!(h.shared.metrics.requests_with_status(200) >= 5);
    assert!(h.shared.metrics.requests_with_status(404) >= 7);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn region_paths() {
    let h = start(settings(false), true).await;
    let t = h.token("60").await;
    let auth = [(TOKEN, t.as_str())];
    let r = h.get("/latest/meta-data/placement/region", &auth).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "eu-west-1"));
    // botocore's region fetcher asks with a trailing slash.
    for az in [
        "/latest/meta-data/placement/availability-zone",
        "/latest/meta-data/placement/availability-zone/",
    ] {
        let r = h.get(az, &auth).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "eu-west-1a"), "{az}");
    }
    let doc = h
        .get("/latest/dynamic/instance-identity/document", &auth)
        .await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["region"], "eu-west-1");
    assert_eq!(doc["accountId"], "111122223333");
    assert_eq!(doc["availabilityZone"], "eu-west-1a");
    for key in [
        "instanceId",
        "imageId",
        "instanceType",
        "architecture",
        "pendingTime",
        "version",
    ] {
        assert!(doc[key].is_string(), "{key}");
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unavailable_before_first_credentials() {
    let h = start(settings(false), false).await;
    let t = h.token("60").await;
    let auth = [(TOKEN, t.as_str())];
    // The listing is configuration; it answers.
    assert_eq!(h.get(LISTING, &auth).await.text(), ROLE);
    for path in [
        format!("{LISTING}{ROLE}"),
        format!("/latest/meta-data/iam/security-credentials-extended/{ROLE}"),
        "/latest/meta-data/iam/info".into(),
    ] {
        let r = h.get(&path, &auth).await;
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.header("retry-after"), Some("5"));
        let body = r.json();
        assert_ne!(body["Code"], "Success");
        assert!(body.get("AccessKeyId").is_none());
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn disabled_imds_is_404() {
    let h = start(None, true).await;
    let r = http_paused(h.addr, "PUT", "/latest/api/token", &[(TTL, "60")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(h.get(LISTING, &[]).await.status, 404);
    assert_eq!(h.get(&format!("{LISTING}{ROLE}"), &[]).await.status, 404);
    h.stop().await;
}

/// aws-config's own IMDS credentials provider gets exactly what the fake STS issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_config_imds_provider() {
    use aws_config::imds::credentials::ImdsCredentialsProvider;
    use aws_sdk_sts::config::ProvideCredentials;

    // Real wall time: the SDK compares Expiration with its own clock.
    let h = start_at(settings(false), true, SystemTime::now()).await;
    let client = aws_config::imds::Client::builder()
        .endpoint(format!("http://{}", h.addr))
        .unwrap()
        .build();
    let provider = ImdsCredentialsProvider::builder()
        .imds_client(client)
        .build();
    let creds = provider.provide_credentials().await.unwrap();
    assert_eq!(creds.access_key_id(), ACCESS_KEY);
    assert_eq!(creds.secret_access_key(), SECRET_KEY);
    assert_eq!(creds.session_token(), Some(SESSION_TOKEN));
    let expected: SystemTime = h.clock.wall() + Duration::from_secs(3600);
    let got = creds.expiry().unwrap();
    let diff = expected
        .duration_since(got)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(2), "{diff:?}");
    h.stop().await;
}

/// The token verifier never panics, whatever arrives in the header.
#[tokio::test(start_paused = true)]
async fn token_verification_never_panics() {
    use rand::RngExt;
    let tokens = SessionTokens::new(tokio::time::Instant::now());
    let now = tokio::time::Instant::now();
    let good = tokens.issue(now, Duration::from_secs(60));
    assert!(tokens.verify(good.as_bytes(), now));

    let mut rng = rand::rng();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=";
    for i in 0..20_000 {
        let len = match i % 4 {
            0 => TOKEN_LEN,
            1 => rng.random_range(0..TOKEN_LEN * 2),
            2 => rng.random_range(0..1024),
            _ => TOKEN_LEN + rng.random_range(0..4),
        };
        let input: Vec<u8> = if i % 2 == 0 {
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        } else {
            (0..len).map(|_| rng.random()).collect()
        };
        assert!(!tokens.verify(&input, now));
    }
    // Edge cases: every prefix and extension of a good token, extreme times.
    for n in 0..good.len() {
        assert!(!tokens.verify(&good.as_bytes()[..n], now));
    }
    assert!(!tokens.verify(format!("{good}=").as_bytes(), now));
    let far = now + Duration::from_secs(u32::MAX as u64);
    assert!(!tokens.verify(good.as_bytes(), far));
    let forever = tokens.issue(now, Duration::MAX);
    assert!(tokens.verify(forever.as_bytes(), far));
}
