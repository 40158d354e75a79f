//! Role chaining on paused time: the refresher drives a `ChainedSource` whose first hop is
//! the fake web-identity STS and whose second hop is a fake `AssumeRole`. What clients see
//! over hours, when either hop fails, and how often each hop is called.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::chain::{AssumeRoleCall, ChainSettings, ChainedSource, RoleAssumer};
use passport_core::clock::{Clock, ManualClock};
use passport_core::credentials::Credentials;
use passport_core::metrics::Metrics;
use passport_core::refresh::{RefreshSettings, Refresher, Shared};
use passport_core::secret::Secret;
use passport_core::server::App;
use passport_core::sts::{BoxFuture, ErrorClass, SourceError};
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const CHAINED: &str = "arn:aws:iam::444455556666:role/reader";

/// The second hop: issues 1-hour credentials, or fails as scripted; records who signed.
struct FakeAssumeRole {
    clock: Arc<dyn Clock>,
    calls: AtomicU64,
    script: Mutex<VecDeque<SourceError>>,
    signed_by: Mutex<Vec<String>>,
}

impl RoleAssumer for FakeAssumeRole {
    fn assume_role_as<'a>(
        &'a self,
        caller: &'a Credentials,
        call: &'a AssumeRoleCall,
    ) -> BoxFuture<'a, Result<Credentials, SourceError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.signed_by
                .lock()
                .unwrap()
                .push(caller.access_key_id.clone());
            if let Some(e) = self.script.lock().unwrap().pop_front() {
                return Err(e);
            }
            let duration = Duration::from_secs(call.settings.duration_seconds.into());
            Ok(Credentials {
                access_key_id: format!("ASIACHAIN{n:011}"),
                secret_access_key: Secret::new(format!("chained-secret-{n}")),
                session_token: Secret::new(format!("chained-token-{n}")),
                expiration: self.clock.wall() + duration,
                assumed_role_arn: Some(format!(
                    "arn:aws:sts::444455556666:assumed-role/reader/{}",
                    call.settings.session_name
                )),
            })
        })
    }
}

struct Harness {
    clock: Arc<ManualClock>,
    first: Arc<FakeSts>,
    second: Arc<FakeAssumeRole>,
    app: App,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// First hop sessions of `first_hop_lifetime`; the chained session is one hour.
    fn start(first_hop_lifetime: Duration) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let first = FakeSts::new(clock.clone());
        *first.lifetime.lock().unwrap() = first_hop_lifetime;
        let second = Arc::new(FakeAssumeRole {
            clock: clock.clone(),
            calls: AtomicU64::new(0),
            script: Mutex::new(VecDeque::new()),
            signed_by: Mutex::new(Vec::new()),
        });
        let dir = tempfile::tempdir().unwrap();
        let chain = ChainSettings {
            role_arn: CHAINED.parse().unwrap(),
            session_name: "test-session".parse().unwrap(),
            duration_seconds: 3600,
            external_id: None,
            tags: vec![],
            transitive_tag_keys: vec![],
            policy: None,
            policy_arns: vec![],
        };
        let settings = RefreshSettings {
            chain: Some(chain.clone()),
            ..refresh_settings(write_token(dir.path(), "system:serviceaccount:ns:app"))
        };
        let source =
            ChainedSource::new(first.clone(), second.clone(), chain, clock.clone()).with_seed(5);
        let shared = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
        let app = app(shared.clone());
        let stop = CancellationToken::new();
        tokio::spawn(
            Refresher::new(settings, Arc::new(source), shared)
                .with_seed(9)
                .run(stop.clone()),
        );
        Self {
            clock,
            first,
            second,
            app,
            stop,
            _dir: dir,
        }
    }

    /// Status, and the time left on what a client gets now.
    async fn client_sees(&self) -> (StatusCode, Option<Duration>, serde_json::Value) {
        let reply = fetch(&self.app, Some(AUTH)).await;
        let body = reply.json();
        let left = body["Expiration"].as_str().map(|e| {
            parse_expiration(e)
                .duration_since(self.clock.wall())
                .unwrap()
        });
        (reply.status, left, body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn denied() -> SourceError {
    SourceError::new(
        ErrorClass::Permanent,
        "AccessDenied",
        "User: arn:aws:sts::111122223333:assumed-role/app/test-session is not authorized to perform: sts:AssumeRole",
    )
}

#[tokio::test(start_paused = true)]
async fn a_one_hour_chain_keeps_clients_above_15_minutes_and_caches_the_first_hop() {
    let h = Harness::start(12 * HOUR);
    let mut lowest = HOUR;
    for _ in 0..(24 * 60) {
        tokio::time::sleep(MINUTE).await;
        let (status, left, body) = h.client_sees().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["RoleArn"], CHAINED, "the chained role is served");
        lowest = lowest.min(left.unwrap());
    }
    assert!(lowest >= 20 * MINUTE, "a client saw {lowest:?} left");
    let (hop1, hop2) = (h.first.calls(), h.second.calls.load(Ordering::SeqCst));
    // One-hour chained sessions refresh every 24-36 minutes; the 12-hour first hop only
    // every 4.8-7.2 hours.
    assert!((40..=62).contains(&hop2), "second hop calls: {hop2}");
    assert!((4..=6).contains(&hop1), "first hop calls: {hop1}");
    // Every second hop was signed with first-hop keys.
    assert!(
        h.second
            .signed_by
            .lock()
            .unwrap()
            .iter()
            .all(|k| k.starts_with("ASIAFAKE"))
    );
}

#[tokio::test(start_paused = true)]
async fn first_hop_failing_leaves_the_chained_credentials_served() {
    // One-hour first hop: due for its own refresh about as often as the second.
    let h = Harness::start(HOUR);
    tokio::time::sleep(MINUTE).await;
    assert_eq!(h.client_sees().await.0, StatusCode::OK);
    h.first.set_default(Behaviour::Fail(error(
        ErrorClass::Transient,
        "IDPCommunicationError",
    )));
    // The web-identity side stays down for 40 minutes: the chained credentials issued
    // before still hold, and nothing is served with under a minute left.
    let before = h.first.calls();
    for _ in 0..40 {
        tokio::time::sleep(MINUTE).await;
        let (status, left, body) = h.client_sees().await;
        match status {
            StatusCode::OK => assert!(left.unwrap() > MINUTE, "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        h.first.calls() > before,
        "the first hop was retried during the outage"
    );
    h.first.set_default(Behaviour::Issue);
    for _ in 0..120 {
        tokio::time::sleep(MINUTE).await;
        assert_eq!(h.client_sees().await.0, StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn access_denied_on_the_second_hop_names_the_other_accounts_trust_policy() {
    let h = Harness::start(HOUR);
    h.second.script.lock().unwrap().extend([denied(), denied()]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _, body) = h.client_sees().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("AccessDenied"), "{message}");
    assert!(
        message.contains("hop 2, AssumeRole into arn:aws:iam::444455556666:role/reader"),
        "{message}"
    );
    assert!(
        message.contains(
            "the trust policy of arn:aws:iam::444455556666:role/reader (account 444455556666)"
        ),
        "{message}"
    );
    // The first hop succeeded and is cached: the retries do not call it again.
    assert_eq!(h.first.calls(), 1);
    // Permanent errors back off slowly; after a few minutes the chain is served.
    tokio::time::sleep(10 * MINUTE).await;
    assert_eq!(h.client_sees().await.0, StatusCode::OK);
    assert_eq!(h.first.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn first_hop_errors_say_so() {
    let h = Harness::start(HOUR);
    h.first.push(Behaviour::Fail(error(
        ErrorClass::Permanent,
        "AccessDenied",
    )));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, _, body) = h.client_sees().await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message
            .contains("hop 1, AssumeRoleWithWebIdentity into arn:aws:iam::111122223333:role/app"),
        "{message}"
    );
    assert!(!message.contains("trust policy of"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn expired_first_hop_keys_are_replaced_at_once() {
    let h = Harness::start(12 * HOUR);
    tokio::time::sleep(MINUTE).await;
    assert_eq!(h.first.calls(), 1);
    // STS says the first hop's session token expired (revoked, or a stepped clock).
    h.second.script.lock().unwrap().push_back(SourceError::new(
        ErrorClass::TokenExpired,
        "ExpiredToken",
        "The security token included in the request is expired",
    ));
    // Force a second-hop refresh by stepping the wall clock past the chained expiry's margin.
    h.clock.jump_forward(50 * MINUTE);
    tokio::time::sleep(MINUTE).await;
    assert_eq!(h.first.calls(), 2, "the first hop was fetched again");
    assert_eq!(h.client_sees().await.0, StatusCode::OK);
}

/// Both hops through the real aws-sdk-sts client: the second is `AssumeRole` with every
/// chaining option, signed with the first hop's access key.
#[tokio::test]
async fn both_hops_through_aws_sdk_sts() {
    use passport_core::chain::ExternalId;
    use passport_core::sts::{AssumeRoleRequest, CredentialSource, StsSettings, StsSource};

    let expiration =
        passport_core::clock::format_rfc3339_seconds(std::time::SystemTime::now() + HOUR);
    let stub = StsStub::start((500, error_xml("InternalFailure", "unexpected call"))).await;
    stub.push(
        200,
        success_xml(
            "ASIAFIRSTHOP00000001",
            "first-secret",
            "first-token",
            &expiration,
        ),
    );
    let chained_arn = "arn:aws:sts::444455556666:assumed-role/reader/chained";
    stub.push(
        200,
        assume_role_xml(chained_arn, "ASIACHAINED000000001", &expiration),
    );
    let sts = Arc::new(StsSource::new(&StsSettings {
        region: "us-east-1".parse().unwrap(),
        endpoint: Some(stub.url.clone()),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }));
    let dir = tempfile::tempdir().unwrap();
    let id_file = dir.path().join("external-id");
    std::fs::write(&id_file, "shared-secret-id\n").unwrap();
    let chain = ChainSettings {
        role_arn: CHAINED.parse().unwrap(),
        session_name: "chained".parse().unwrap(),
        duration_seconds: 1800,
        external_id: Some(ExternalId::File(id_file)),
        tags: vec![
            ("team".into(), "payments".into()),
            ("env".into(), "prod".into()),
        ],
        transitive_tag_keys: vec!["team".into()],
        policy: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
        policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
    };
    let source = ChainedSource::new(
        sts.clone(),
        sts,
        chain,
        Arc::new(passport_core::clock::SystemClock),
    );
    let request = AssumeRoleRequest {
        role_arn: ROLE_ARN.parse().unwrap(),
        session_name: "test-session".parse().unwrap(),
        web_identity_token: Secret::new(passport_core::token::test_jwt(
            &serde_json::json!({"sub": "s"}),
        )),
        duration_seconds: 3600,
    };
    let creds = source.assume_role(&request).await.unwrap();
    assert_eq!(creds.access_key_id, "ASIACHAINED000000001");
    assert_eq!(creds.assumed_role_arn.as_deref(), Some(chained_arn));

    let bodies = stub.requests.lock().unwrap().clone();
    let auths = stub.authorizations.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].contains("Action=AssumeRoleWithWebIdentity"));
    assert!(auths[0].is_empty(), "the web-identity call is unsigned");
    let hop2: std::collections::HashMap<String, String> =
        form_urlencoded::parse(bodies[1].as_bytes())
            .into_owned()
            .collect();
    let expect = [
        ("Action", "AssumeRole"),
        ("RoleArn", CHAINED),
        ("RoleSessionName", "chained"),
        ("DurationSeconds", "1800"),
        ("ExternalId", "shared-secret-id"),
        ("Tags.member.1.Key", "team"),
        ("Tags.member.1.Value", "payments"),
        ("Tags.member.2.Key", "env"),
        ("TransitiveTagKeys.member.1", "team"),
        ("Policy", r#"{"Version":"2012-10-17","Statement":[]}"#),
        (
            "PolicyArns.member.1.arn",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ),
    ];
    for (key, value) in expect {
        assert_eq!(
            hop2.get(key).map(String::as_str),
            Some(value),
            "{key} in {hop2:?}"
        );
    }
    assert!(
        auths[1].starts_with("AWS4-HMAC-SHA256 Credential=ASIAFIRSTHOP00000001/"),
        "signed with the first hop's key: {}",
        auths[1]
    );
}
