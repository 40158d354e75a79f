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
    CheckArgs::default()
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

// --- Role chaining: each hop explained (issue 14) -------------------------------------

const READER: &str = "arn:aws:iam::444455556666:role/reader";
const EXTERNAL_ID: &str = "shared-secret-id-7f3a";

/// `passport check` with these flags, parsed as the command line would be.
fn check_args(flags: &[&str]) -> CheckArgs {
    use clap::Parser;
    let mut argv = vec!["passport", "check"];
    argv.extend_from_slice(flags);
    match passport::cli::Cli::try_parse_from(argv).unwrap().command {
        passport::cli::Command::Check(a) => a,
        _ => unreachable!(),
    }
}

/// The other account's trust policy, as `passport trust-policy --for-role` prints it.
fn reader_policy(principal: &str, external_id: Option<&str>, tags: bool) -> String {
    passport::commands::trust_policy::chained_role_policy_json(principal, external_id, tags)
}

/// The emulator with hop 1's role (`passport-demo`, any service account; `app`, only
/// payments/api) and the chained role `reader` in account 444455556666 with `policy`.
struct ChainRig {
    emulator: passport::emulator::Emulator,
    env: Env,
    policy_file: String,
}

impl ChainRig {
    async fn start(policy: &str, service_account: &str) -> Self {
        use passport::emulator::mint::MintRequest;
        use passport::emulator::{Emulator, EmulatorConfig, RoleConfig};
        let app = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "{{provider_arn}}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"{{issuer_host}}:sub": "system:serviceaccount:payments:api"}}
        }]});
        let emulator = Emulator::start(EmulatorConfig {
            roles: vec![
                RoleConfig::new("app", app.to_string()),
                RoleConfig::new("444455556666:reader", policy),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
        let token = emulator
            .mint(&MintRequest::new("payments", service_account))
            .unwrap();
        let mut env = Env::irsa(&token);
        env.set("AWS_ROLE_ARN", &emulator.role_arn("passport-demo"))
            .set("AWS_ROLE_SESSION_NAME", "hop1")
            .set("AWS_ENDPOINT_URL_STS", &emulator.sts_url());
        let policy_file = env.file("reader-policy.json", policy);
        Self {
            emulator,
            env,
            policy_file,
        }
    }

    /// Online (both hops against the emulator) and offline (`--chain-trust-policy`).
    async fn check_both(&self, flags: &[&str]) -> (Report, Report) {
        let mut flags: Vec<&str> = [&["--chain-role-arn", READER][..], flags].concat();
        let lookup = |k: &str| self.env.vars.get(k).cloned();
        let inputs = Inputs {
            env: &lookup,
            now: SystemTime::now(),
        };
        let online = run(&check_args(&flags), &inputs).await;
        flags.extend(["--no-identity", "--chain-trust-policy", &self.policy_file]);
        let offline = run(&check_args(&flags), &inputs).await;
        (online, offline)
    }
}

/// Every line of a report, human and JSON, for "never printed" assertions.
fn everything(report: &Report) -> String {
    report.human() + &serde_json::to_string(report).unwrap()
}

fn has(report: &Report, words: &str) {
    assert!(
        report.human().contains(words),
        "missing {words:?} in:\n{}",
        report.human()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_both_hops_pass_online_and_offline() {
    let policy = reader_policy(
        "arn:aws:iam::111122223333:role/passport-demo",
        Some(EXTERNAL_ID),
        true,
    );
    let rig = ChainRig::start(&policy, "api").await;
    let id_file = rig.env.file("external-id", &format!("{EXTERNAL_ID}\n"));
    let (online, offline) = rig
        .check_both(&[
            "--external-id-file",
            &id_file,
            "--session-tag",
            "team=payments",
        ])
        .await;
    assert!(online.ok(), "{}", online.human());
    has(
        &online,
        "hop 1: AssumeRoleWithWebIdentity into arn:aws:iam::111122223333:role/passport-demo: arn:aws:sts::111122223333:assumed-role/passport-demo/hop1",
    );
    has(
        &online,
        "hop 2: AssumeRole into arn:aws:iam::444455556666:role/reader: arn:aws:sts::444455556666:assumed-role/reader/hop1",
    );
    has(
        &online,
        "signed as arn:aws:sts::111122223333:assumed-role/passport-demo/hop1",
    );
    assert!(offline.ok(), "{}", offline.human());
    has(
        &offline,
        "STS would allow hop 2: sts:AssumeRole and sts:TagSession allowed by Statement[0]",
    );
    assert!(
        !offline.human().contains("Chain (live)"),
        "--no-identity makes no STS call"
    );
    for r in [&online, &offline] {
        assert!(
            !everything(r).contains(EXTERNAL_ID),
            "the external id leaked:\n{}",
            r.human()
        );
    }
    rig.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_external_id_mismatch_names_the_other_accounts_trust_policy() {
    let policy = reader_policy(
        "arn:aws:iam::111122223333:role/passport-demo",
        Some(EXTERNAL_ID),
        false,
    );
    let rig = ChainRig::start(&policy, "api").await;
    let (online, offline) = rig
        .check_both(&["--external-id", "not-the-shared-id"])
        .await;
    assert!(!online.ok());
    has(&online, "hop 1: AssumeRoleWithWebIdentity");
    has(
        &online,
        "hop 2 failed: AssumeRole into arn:aws:iam::444455556666:role/reader: AccessDenied",
    );
    has(
        &online,
        "this refusal is the trust policy of role reader in account 444455556666 (the other account), not the web-identity trust policy",
    );
    has(&online, "match the external id passport sends");
    assert!(!offline.ok());
    has(
        &offline,
        "StringEquals on sts:ExternalId: the external id passport sends does not match the condition",
    );
    for r in [&online, &offline] {
        let all = everything(r);
        assert!(
            !all.contains(EXTERNAL_ID) && !all.contains("not-the-shared-id"),
            "{all}"
        );
    }

    // No external id at all: said so, offline; refused online.
    let (online, offline) = rig.check_both(&[]).await;
    has(&online, "hop 2 failed");
    has(
        &offline,
        "the role asks for an external id and passport sends none",
    );
    assert!(!everything(&offline).contains(EXTERNAL_ID));
    rig.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_tags_without_tag_session_are_refused() {
    let policy = reader_policy("arn:aws:iam::111122223333:role/passport-demo", None, false);
    let rig = ChainRig::start(&policy, "api").await;
    let (online, offline) = rig
        .check_both(&["--session-tag", "team=payments", "--session-tag", "env=dev"])
        .await;
    has(&online, "hop 2 failed");
    has(
        &online,
        "allow sts:TagSession, since passport passes session tags (team, env)",
    );
    has(&offline, "STS would refuse hop 2 with AccessDenied");
    has(
        &offline,
        "not sts:TagSession, which STS requires because passport passes session tags (--session-tag team, env)",
    );
    // Without tags the same policy allows the chain, both ways.
    let (online, offline) = rig.check_both(&[]).await;
    assert!(online.ok(), "{}", online.human());
    assert!(offline.ok(), "{}", offline.human());
    rig.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_principal_mismatch_says_which_role_signs_hop_2() {
    let policy = reader_policy("arn:aws:iam::111122223333:role/other", None, false);
    let rig = ChainRig::start(&policy, "api").await;
    let (online, offline) = rig.check_both(&[]).await;
    has(
        &online,
        "hop 2 failed: AssumeRole into arn:aws:iam::444455556666:role/reader: AccessDenied",
    );
    has(
        &online,
        "role reader in account 444455556666 (the other account)",
    );
    has(
        &online,
        "allow arn:aws:iam::111122223333:role/passport-demo (or its account's root) as Principal.AWS",
    );
    has(
        &offline,
        "Statement[0]: Principal.AWS names [\"arn:aws:iam::111122223333:role/other\"], neither hop 1's role, its account nor its session: passport signs hop 2 as arn:aws:sts::111122223333:assumed-role/passport-demo/hop1",
    );
    assert!(!offline.ok() && !online.ok());
    rig.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_above_one_hour_is_the_chaining_cap() {
    let policy = reader_policy("arn:aws:iam::111122223333:root", None, false);
    let rig = ChainRig::start(&policy, "api").await;
    let (online, offline) = rig.check_both(&["--chain-duration-seconds", "7200"]).await;
    has(&online, "serve would refuse: --chain-duration-seconds");
    has(
        &online,
        "hop 2 failed: AssumeRole into arn:aws:iam::444455556666:role/reader: ValidationError: The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
    );
    has(&online, "STS caps role chaining at 1 hour");
    has(&offline, "STS would allow hop 2");
    has(
        &offline,
        "even with the trust policy satisfied, STS refuses --chain-duration-seconds 7200",
    );
    assert!(!online.ok() && !offline.ok());
    rig.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_hop_1_failing_is_told_apart() {
    let policy = reader_policy("arn:aws:iam::111122223333:role/app", None, false);
    // `app` trusts payments/api only; the token is payments/batch.
    let mut rig = ChainRig::start(&policy, "batch").await;
    let app = rig.emulator.role_arn("app");
    rig.env.set("AWS_ROLE_ARN", &app);
    let (online, offline) = rig.check_both(&[]).await;
    has(
        &online,
        "hop 1 failed: AssumeRoleWithWebIdentity into arn:aws:iam::111122223333:role/app: AccessDenied",
    );
    has(
        &online,
        "this refusal is the web-identity trust policy of role app in account 111122223333 (hop 1)",
    );
    has(&online, "hop 2 not attempted");
    assert!(
        !online.human().contains("hop 2 failed"),
        "{}",
        online.human()
    );
    // Offline, hop 2's policy is fine: the chained role trusts `app`.
    has(&offline, "STS would allow hop 2");
    rig.emulator.shutdown().await;
}

/// Offline only, one policy per hop: `--trust-policy` for hop 1 (web identity) and
/// `--chain-trust-policy` for hop 2, each in its own section.
#[tokio::test]
async fn chain_offline_evaluates_each_hops_policy() {
    let env = Env::irsa(&jwt(
        "system:serviceaccount:payments:api",
        "sts.amazonaws.com",
        3000,
    ));
    let hop1 = generated_policy(&env, "payments", "api");
    let hop2 = env.file(
        "reader.json",
        &reader_policy(ROLE_ARN, Some(EXTERNAL_ID), true),
    );
    let id_file = env.file("external-id", EXTERNAL_ID);
    let hop1 = hop1.display().to_string();
    let flags = vec![
        "--no-identity",
        "--chain-role-arn",
        READER,
        "--trust-policy",
        &hop1,
        "--chain-trust-policy",
        &hop2,
        "--external-id-file",
        &id_file,
        "--session-tag",
        "team=payments",
    ];
    let report = check(&env.vars, &check_args(&flags)).await;
    assert!(report.ok(), "{}", report.human());
    let names: Vec<&str> = report.sections.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "Environment",
            "Token",
            "Trust policy (hop 1, AssumeRoleWithWebIdentity)",
            "Role chain",
            "Trust policy (hop 2, AssumeRole)",
            "Credentials endpoint"
        ]
    );
    has(
        &report,
        "STS would allow hop 2: sts:AssumeRole and sts:TagSession allowed by Statement[0]",
    );

    // Another service account, same files: hop 1's policy refuses, hop 2's still allows.
    let other = Env::irsa(&jwt(
        "system:serviceaccount:payments:batch",
        "sts.amazonaws.com",
        3000,
    ));
    let report = check(&other.vars, &check_args(&flags)).await;
    assert!(!report.ok());
    let hop1_section = &report.sections[2];
    assert!(
        hop1_section
            .checks
            .iter()
            .any(|c| c.status == passport::commands::check::Status::Fail),
        "{}",
        report.human()
    );
    has(&report, "STS would allow hop 2");
}
