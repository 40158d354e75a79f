//! Golden-output tests for `passport check`: the human report and `--json`, for the
//! situations users actually hit. Regenerate after an intended change with
//! `PASSPORT_UPDATE_GOLDEN=1 cargo test --test check` and review the diff.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use passport::commands::check::{CheckArgs, Inputs, Report, run};
use serde_json::json;

const NOW: u64 = START;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

fn args() -> CheckArgs {
    CheckArgs {
        json: false,
        trust_policy: None,
        sts_endpoint: None,
        no_identity: false,
        wait: None,
    }
}

fn jwt(sub: &str, aud: &str, exp_from_now: i64) -> String {
    passport_core::token::test_jwt(&json!({
        "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC123",
        "sub": sub,
        "aud": [aud],
        "iat": NOW as i64 - 60,
        "exp": NOW as i64 + exp_from_now,
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api"}, "pod": {"name": "api-7d9f"}}
    }))
}

async fn check(env: &HashMap<String, String>, args: &CheckArgs) -> Report {
    let lookup = |k: &str| env.get(k).cloned();
    run(
        args,
        &Inputs {
            env: &lookup,
            now: now(),
        },
    )
    .await
}

/// Compare with (or, with PASSPORT_UPDATE_GOLDEN=1, write) tests/golden/check/NAME.{txt,json},
/// after replacing the temp dir and ephemeral ports with placeholders.
fn golden(name: &str, report: &Report, dir: &Path) {
    let normalise = |s: String| {
        let s = s.replace(&dir.display().to_string(), "<DIR>");
        regex_lite_ports(&s)
    };
    let human = normalise(report.human());
    let json = normalise(serde_json::to_string_pretty(report).unwrap() + "\n");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/check");
    for (ext, actual) in [("txt", human), ("json", json)] {
        let path = base.join(format!("{name}.{ext}"));
        if update_golden() {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
        assert_eq!(
            actual, expected,
            "{name}.{ext} differs from the golden file (PASSPORT_UPDATE_GOLDEN=1 to accept)"
        );
    }
}

/// `127.0.0.1:12345` -> `127.0.0.1:<PORT>`.
fn regex_lite_ports(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<PORT>");
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

struct Env {
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Env {
    /// A pod with IRSA: token file and role, region set both ways.
    fn irsa(token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        let mut vars = HashMap::new();
        vars.insert(
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token_file.display().to_string(),
        );
        vars.insert("AWS_ROLE_ARN".into(), ROLE_ARN.into());
        vars.insert("AWS_REGION".into(), "us-east-1".into());
        vars.insert("AWS_DEFAULT_REGION".into(), "us-east-1".into());
        Self { dir, vars }
    }

    fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.insert(k.into(), v.into());
        self
    }

    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }
}

#[tokio::test]
async fn env_missing() {
    let dir = tempfile::tempdir().unwrap();
    let report = check(&HashMap::new(), &args()).await;
    assert!(!report.ok());
    golden("env_missing", &report, dir.path());
}

#[tokio::test]
async fn token_file_missing_and_shadowing_keys() {
    let mut env = Env::irsa("");
    let missing = env.dir.path().join("nope").display().to_string();
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", &missing)
        .set("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE");
    env.vars.remove("AWS_DEFAULT_REGION");
    let report = check(&env.vars, &args()).await;
    assert!(!report.ok());
    golden("token_file_missing", &report, env.dir.path());
}

#[tokio::test]
async fn token_not_a_jwt() {
    let env = Env::irsa("this is not a token\n");
    let report = check(&env.vars, &args()).await;
    assert!(!report.ok());
    golden("token_not_jwt", &report, env.dir.path());
}

#[tokio::test]
async fn wrong_audience_warns() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "pods.eks.amazonaws.com",
        3000,
    ));
    let report = check(&env.vars, &args()).await;
    assert_eq!(report.warnings, 1, "{}", report.human());
    golden("wrong_audience", &report, env.dir.path());
}

#[tokio::test]
async fn expired_token_fails() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        -120,
    ));
    let report = check(&env.vars, &args()).await;
    assert!(!report.ok());
    golden("expired_token", &report, env.dir.path());
}

fn generated_policy(env: &Env, namespace: &str, service_account: &str) -> std::path::PathBuf {
    let policy = passport::commands::trust_policy::render(
        &passport::commands::trust_policy::TrustPolicyArgs {
            issuer: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC123".into()),
            oidc_provider_arn: None,
            account_id: Some("111122223333".into()),
            namespace: Some(namespace.into()),
            service_account: Some(service_account.into()),
            audience: "sts.amazonaws.com".into(),
            for_role: None,
            external_id: None,
            allow_session_tags: false,
        },
    )
    .unwrap();
    env.dir.path().join(env.file("policy.json", &policy))
}

#[tokio::test]
async fn generated_trust_policy_accepts_its_service_account_only() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        3000,
    ));
    let mut a = args();
    a.trust_policy = Some(generated_policy(&env, "payments", "api"));
    let report = check(&env.vars, &a).await;
    assert!(report.ok(), "{}", report.human());
    golden("trust_policy_accepts", &report, env.dir.path());

    // Same policy, another service account in the token: refused, and the line says why.
    let other = Env::irsa(&jwt(
        "system:serviceaccount:payments:batch",
        "sts.amazonaws.com",
        3000,
    ));
    let mut a = args();
    a.trust_policy = Some(generated_policy(&other, "payments", "api"));
    let report = check(&other.vars, &a).await;
    assert!(!report.ok());
    assert!(
        report
            .human()
            .contains("system:serviceaccount:payments:batch"),
        "{}",
        report.human()
    );
    golden("trust_policy_refuses_sub", &report, other.dir.path());
}

/// A policy IAM accepts but passport cannot evaluate offline: said so, never "key absent".
#[tokio::test]
async fn trust_policy_with_an_unmodelled_key_is_refused_loudly() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        3000,
    ));
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "Groups",
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/ABC123:groups": "admins"}}
    }]});
    let mut a = args();
    a.trust_policy = Some(
        env.dir
            .path()
            .join(env.file("policy.json", &policy.to_string())),
    );
    let report = check(&env.vars, &a).await;
    let human = report.human();
    assert!(
        human.contains("IAM accepts this, but passport cannot evaluate it offline: Statement[0] (Groups): StringEquals on oidc.eks.us-east-1.amazonaws.com/id/ABC123:groups"),
        "{human}"
    );
    assert!(!human.contains("STS would"), "{human}");
    golden("trust_policy_unmodelled", &report, env.dir.path());
}

/// A token with two audiences: check warns, and gives the answer for each candidate and
/// the InvalidIdentityToken answer for an unregistered provider.
#[tokio::test]
async fn trust_policy_with_a_multi_audience_token() {
    let token = passport_core::token::test_jwt(&json!({
        "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC123",
        "sub": "system:serviceaccount:payments:api",
        "aud": ["https://vault.example.com", "sts.amazonaws.com"],
        "iat": NOW as i64 - 60,
        "exp": NOW as i64 + 3000,
    }));
    let env = Env::irsa(&token);
    let mut a = args();
    a.trust_policy = Some(generated_policy(&env, "payments", "api"));
    let report = check(&env.vars, &a).await;
    let human = report.human();
    assert!(human.contains("the token has 2 audiences"), "{human}");
    assert!(
        human.contains("with client ID sts.amazonaws.com: STS would accept this token"),
        "{human}"
    );
    assert!(human.contains("InvalidIdentityToken"), "{human}");
    assert!(
        report.ok(),
        "the answer depends on registration: a warning, not a failure"
    );
    golden("trust_policy_multi_audience", &report, env.dir.path());
}

#[tokio::test]
async fn trust_policy_refuses_on_audience() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "pods.eks.amazonaws.com",
        3000,
    ));
    let mut a = args();
    a.trust_policy = Some(generated_policy(&env, "payments", "api"));
    let report = check(&env.vars, &a).await;
    assert!(!report.ok());
    assert!(report.human().contains(":aud"), "{}", report.human());
    golden("trust_policy_refuses_aud", &report, env.dir.path());
}

#[tokio::test]
async fn endpoint_returning_a_bad_body() {
    let stub = StsStub::start((
        200,
        r#"{"AccessKeyId":"ASIAX","Expiration":"2026-01-01T01:00:00+00:00"}"#.into(),
    ))
    .await;
    let mut env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        3000,
    ));
    let auth = env.file("auth", "0123");
    env.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v1/credentials", stub.url),
    )
    .set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &auth);
    let report = check(&env.vars, &args()).await;
    assert!(!report.ok());
    golden("endpoint_bad_body", &report, env.dir.path());
}

#[tokio::test]
async fn endpoint_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        3000,
    ));
    let auth = env.file("auth", "0123\n");
    env.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("http://127.0.0.1:{port}/v1/credentials"),
    )
    .set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &auth)
    .set("HTTPS_PROXY", "http://proxy.corp:3128");
    let report = check(&env.vars, &args()).await;
    assert!(!report.ok());
    golden("endpoint_down", &report, env.dir.path());
}

/// Everything real: the emulator as STS (verifying the token's signature and, for
/// GetCallerIdentity, the SigV4 signature made with the served secret), the sidecar
/// serving both endpoints, and `check` reading them as an SDK would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_good_against_the_emulator() {
    use passport::emulator::mint::MintRequest;
    use passport::emulator::{Emulator, EmulatorConfig};
    use passport_core::sidecar::Shutdown;

    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let role_arn = emulator.role_arn("passport-demo");
    let mut env = Env::irsa(&emulator.mint(&MintRequest::new("payments", "api")).unwrap());
    env.set("AWS_ROLE_ARN", &role_arn);
    let auth = passport_core::auth::generate();
    let auth_file = env.file("auth", auth.expose());
    let source = Arc::new(passport_core::sts::StsSource::new(
        &passport_core::sts::StsSettings {
            region: "us-east-1".parse().unwrap(),
            endpoint: Some(emulator.sts_url()),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
        },
    ));
    let sidecar = start_sidecar(source)
        .role_arn(role_arn.clone())
        .token_file(env.dir.path().join("token"))
        .auth(auth)
        .imds(false)
        .run(Shutdown::PROMPT)
        .await;
    let addr = sidecar.addr;

    env.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("http://{addr}/v1/credentials"),
    )
    .set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &auth_file)
    .set(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        &format!("http://{addr}"),
    )
    .set("AWS_ENDPOINT_URL_STS", &emulator.sts_url());
    let lookup = |k: &str| env.vars.get(k).cloned();
    let report = run(
        &args(),
        &Inputs {
            env: &lookup,
            now: SystemTime::now(),
        },
    )
    .await;
    assert!(report.ok(), "{}", report.human());
    assert!(
        report
            .human()
            .contains("✓ Arn arn:aws:sts::111122223333:assumed-role/passport-demo/test-session"),
        "{}",
        report.human()
    );
    sidecar.shutdown().await;

    // Golden, with what changes from run to run masked.
    let masks = [
        (r"ASIA[A-Z0-9]{16}", "<ACCESS_KEY_ID>"),
        (r"AROA[A-Z0-9]+", "<ROLE_ID>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<TIME>"),
        (r"\d+h \d\dm|\d+m \d\ds|\b\d+s\b", "<DURATION>"),
        (r"\(\d+ bytes", "(<N> bytes"),
        (r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:<PORT>"),
    ];
    let mut masked = report.clone();
    for check in masked.sections.iter_mut().flat_map(|s| s.checks.iter_mut()) {
        for (pattern, with) in masks {
            check.message = regex_lite::Regex::new(pattern)
                .unwrap()
                .replace_all(&check.message, with)
                .into_owned();
        }
    }
    golden("all_good", &masked, env.dir.path());
}
