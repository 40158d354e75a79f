//! Every row of `tests/trust_cases/cases.json`, run against the STS emulator (real
//! `aws-sdk-sts` `AssumeRoleWithWebIdentity` calls, and for `assume_role` rows a SigV4-signed
//! `AssumeRole` with the first session's keys) and against `passport check`'s offline
//! evaluation, so the two can never diverge. See tests/trust_cases/README.md.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::ProvideErrorMetadata;
use passport::emulator::{Emulator, EmulatorConfig, RoleConfig, SigningKey, TrustedIssuer};
use passport::trust_policy::{self, Level, StsAnswer, TokenFacts};
use passport_core::clock::ManualClock;
use serde_json::{Value, json};

const TABLE: &str = include_str!("trust_cases/cases.json");

struct Case<'a> {
    id: &'a str,
    row: &'a Value,
    defaults: &'a Value,
}

impl Case<'_> {
    fn get(&self, field: &str) -> Option<&Value> {
        self.row.get(field)
    }
    fn default(&self, field: &str) -> &Value {
        &self.defaults[field]
    }
    fn issuer(&self) -> String {
        self.get("issuer")
            .unwrap_or(self.default("issuer"))
            .as_str()
            .unwrap()
            .to_owned()
    }
    /// `None`: no provider registered.
    fn registered_issuer(&self) -> Option<String> {
        match self.get("registered_issuer") {
            Some(Value::Null) => None,
            Some(v) => Some(v.as_str().unwrap().to_owned()),
            None => Some(self.issuer()),
        }
    }
    fn client_ids(&self) -> Vec<String> {
        strings(self.get("client_ids").unwrap_or(self.default("client_ids")))
    }
    fn session_name(&self) -> String {
        self.row
            .pointer("/call/role_session_name")
            .unwrap_or(self.default("role_session_name"))
            .as_str()
            .unwrap()
            .to_owned()
    }
    fn account(&self) -> String {
        self.default("account_id").as_str().unwrap().to_owned()
    }
    fn now(&self) -> SystemTime {
        let secs = trust_policy::parse_date(self.default("now").as_str().unwrap()).unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    }
    fn unix_now(&self) -> i64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
    fn claims(&self) -> Value {
        let mut claims = self.row["claims"].clone();
        let obj = claims.as_object_mut().unwrap();
        obj.entry("iss").or_insert_with(|| json!(self.issuer()));
        obj.insert("iat".into(), json!(self.unix_now() - 60));
        obj.insert("exp".into(), json!(self.unix_now() + 3600));
        claims
    }
    fn policy(&self) -> String {
        self.row["policy"].to_string()
    }
    fn expect(&self) -> &Value {
        &self.row["expect"]
    }
    /// The expected STS answer, for allow/deny rows.
    fn expected_answer(&self) -> Option<StsAnswer> {
        let e = self.expect();
        match e["result"].as_str().unwrap() {
            "allow" => Some(StsAnswer::Credentials),
            "deny" => Some(StsAnswer::error(
                e["code"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )),
            _ => None,
        }
    }
    /// Words a line refusing the policy must contain.
    fn refusal_words(&self) -> Vec<String> {
        let e = self.expect();
        match e["result"].as_str().unwrap() {
            "refused" => vec![
                "IAM accepts this, but passport cannot evaluate it offline".into(),
                e["key"].as_str().unwrap().into(),
                e["why"].as_str().unwrap().into(),
            ],
            "invalid" => vec![
                "not a trust policy IAM would accept".into(),
                e["why"].as_str().unwrap().into(),
            ],
            _ => Vec::new(),
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// The emulator as a row expects it: refusing the policy with the row's words (`None`:
/// nothing more to check), or running when the row expects no refusal.
async fn started_as_expected<E: std::fmt::Display>(
    case: &Case<'_>,
    started: Result<Emulator, E>,
) -> Result<Option<Emulator>, String> {
    let words = case.refusal_words();
    match started {
        Err(e) if !words.is_empty() => {
            let text = e.to_string();
            match words.iter().find(|w| !text.contains(w.as_str())) {
                None => Ok(None),
                Some(w) => Err(format!(
                    "the emulator refused the policy without {w:?}: {text}"
                )),
            }
        }
        Err(e) => Err(format!("the emulator did not start: {e}")),
        Ok(emu) if !words.is_empty() => {
            emu.shutdown().await;
            Err("the emulator loaded a policy it should refuse".into())
        }
        Ok(emu) => Ok(Some(emu)),
    }
}

async fn run_emulator(case: &Case<'_>, key: &Arc<SigningKey>) -> Result<(), String> {
    let mut trusted = Vec::new();
    if let Some(registered) = case.registered_issuer() {
        let mut t = TrustedIssuer::new(registered, key.jwks());
        t.audiences = case.client_ids();
        trusted.push(t);
    }
    let started = Emulator::start(EmulatorConfig {
        account_id: case.account(),
        signing_key: Some(key.clone()),
        roles: vec![RoleConfig::new("app", case.policy())],
        default_role: false,
        trusted_issuers: trusted,
        clock: Arc::new(ManualClock::new(case.now())),
        ..Default::default()
    })
    .await;
    let Some(emu) = started_as_expected(case, started).await? else {
        return Ok(());
    };
    let token = key.sign(&case.claims()).unwrap();
    let client = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(emu.sts_url())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build(),
    );
    let got = match client
        .assume_role_with_web_identity()
        .role_arn(emu.role_arn("app"))
        .role_session_name(case.session_name())
        .web_identity_token(token)
        .send()
        .await
    {
        Ok(out) => {
            if out.credentials().is_none() {
                return Err("success without credentials".into());
            }
            StsAnswer::Credentials
        }
        Err(e) => StsAnswer::error(e.code().unwrap_or("<none>"), e.message().unwrap_or("")),
    };
    emu.shutdown().await;
    answered_as_expected(case, got)
}

/// The emulator's answer against the row's.
fn answered_as_expected(case: &Case<'_>, got: StsAnswer) -> Result<(), String> {
    let want = case.expected_answer().unwrap();
    if got == want {
        Ok(())
    } else {
        Err(format!("the emulator answered {got}, expected {want}"))
    }
}

fn run_check(case: &Case<'_>) -> Result<(), String> {
    let claims = case.claims();
    let facts = TokenFacts {
        iss: claims["iss"].as_str().unwrap().to_owned(),
        sub: claims["sub"].as_str().unwrap_or_default().to_owned(),
        aud: strings(&claims["aud"]),
        azp: claims["azp"].as_str().map(str::to_owned),
        amr: claims.get("amr").map(strings),
        source_identity: claims[trust_policy::SOURCE_IDENTITY_CLAIM]
            .as_str()
            .map(str::to_owned),
    };
    let session = case.session_name();
    let report = trust_policy::offline(
        &case.policy(),
        &facts,
        &case.account(),
        Some(&session),
        case.now(),
    );
    let text = report
        .lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let words = case.refusal_words();
    if !words.is_empty() {
        return match words.iter().find(|w| !text.contains(w.as_str())) {
            None if report.possible.is_empty() => Ok(()),
            None => Err("check refused the policy but still gave answers".into()),
            Some(w) => Err(format!("check's report lacks {w:?}:\n{text}")),
        };
    }
    for warn in strings(case.get("check_warns").unwrap_or(&Value::Null)) {
        if !report
            .lines
            .iter()
            .any(|(level, l)| *level == Level::Warn && l.contains(&warn))
        {
            return Err(format!("check did not warn about {warn:?}:\n{text}"));
        }
    }
    let want = case.expected_answer().unwrap();
    if !report.possible.contains(&want) {
        return Err(format!(
            "check does not list {want} among the possible answers {:?}:\n{text}",
            report.possible
        ));
    }
    // With the provider registered as the token implies and a single audience candidate,
    // check's headline answer must be the emulator's.
    let registered_normally = case.registered_issuer() == Some(facts.iss.clone());
    let one_audience = facts.azp.is_some() || facts.aud.len() <= 1;
    let token_error =
        matches!(&want, StsAnswer::Error { code, .. } if code == "InvalidIdentityToken");
    if registered_normally && one_audience && !token_error && report.primary.as_ref() != Some(&want)
    {
        return Err(format!(
            "check's headline answer is {:?}, expected {want}:\n{text}",
            report.primary
        ));
    }
    Ok(())
}

#[tokio::test]
async fn every_case_agrees_with_the_emulator_and_check() {
    let table: Value = serde_json::from_str(TABLE).unwrap();
    let defaults = &table["defaults"];
    let rows = table["cases"].as_array().unwrap();
    assert!(rows.len() >= 40, "the table must keep at least 40 cases");
    let key = Arc::new(SigningKey::generate().unwrap());
    let (mut emulator_ok, mut check_ok) = (0, 0);
    let mut failures = Vec::new();
    for row in rows {
        let case = Case {
            id: row["id"].as_str().unwrap(),
            row,
            defaults,
        };
        assert!(
            !row["sources"].as_array().unwrap().is_empty(),
            "{}: every row cites its documentation",
            case.id
        );
        let chained = case.get("kind").and_then(Value::as_str) == Some("assume_role");
        let emulated = if chained {
            run_emulator_assume_role(&case, &key).await
        } else {
            run_emulator(&case, &key).await
        };
        match emulated {
            Ok(()) => emulator_ok += 1,
            Err(e) => failures.push(format!("{} [emulator]: {e}", case.id)),
        }
        let checked = if chained {
            run_check_assume_role(&case)
        } else {
            run_check(&case)
        };
        match checked {
            Ok(()) => check_ok += 1,
            Err(e) => failures.push(format!("{} [check]: {e}", case.id)),
        }
    }
    println!(
        "trust cases: {} rows; emulator {emulator_ok}/{0}, check {check_ok}/{0}",
        rows.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// --- sts:AssumeRole rows (role chaining, issue 14) ---------------------------------------
//
// `"kind": "assume_role"` rows: the caller is a session of role `defaults.assume_role.caller_role`
// (account `defaults.account_id`), obtained by web identity; the row's `policy` is the trust
// policy of `defaults.assume_role.target_role` (another account); `assume_role` holds the
// AssumeRole parameters. The emulator is called with aws-sdk-sts, SigV4-signed with the first
// session's keys; the check side is the evaluator `passport check --chain-trust-policy` uses.

impl Case<'_> {
    fn chain_default(&self, field: &str) -> String {
        self.defaults["assume_role"][field]
            .as_str()
            .unwrap()
            .to_owned()
    }
    fn chain_param(&self, field: &str) -> Option<&Value> {
        self.row.pointer(&format!("/assume_role/{field}"))
    }
    fn chain_session_name(&self) -> String {
        self.chain_param("role_session_name")
            .and_then(Value::as_str)
            .map_or_else(|| self.chain_default("role_session_name"), str::to_owned)
    }
    fn external_id(&self) -> Option<String> {
        self.chain_param("external_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
    fn tags(&self) -> Vec<(String, String)> {
        self.chain_param("tags")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn transitive_tag_keys(&self) -> Vec<String> {
        strings(
            self.chain_param("transitive_tag_keys")
                .unwrap_or(&Value::Null),
        )
    }
    fn caller_role_arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role/{}",
            self.account(),
            self.chain_default("caller_role")
        )
    }
    fn caller_session_arn(&self) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            self.account(),
            self.chain_default("caller_role"),
            self.session_name()
        )
    }
    fn target_role_arn(&self) -> String {
        let (account, name) = self
            .chain_default("target_role")
            .split_once(':')
            .map(|(a, n)| (a.to_owned(), n.to_owned()))
            .unwrap();
        format!("arn:aws:iam::{account}:role/{name}")
    }
    /// STS's refusal of `action` for this caller and role.
    fn denied(&self, action: &str) -> StsAnswer {
        StsAnswer::error(
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: {action} on resource: {}",
                self.caller_session_arn(),
                self.target_role_arn()
            ),
        )
    }
}

async fn run_emulator_assume_role(case: &Case<'_>, key: &Arc<SigningKey>) -> Result<(), String> {
    let issuer = case.issuer();
    let provider = trust_policy::provider_arn(&case.account(), &issuer);
    let caller_policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity"
    }]});
    let mut t = TrustedIssuer::new(issuer.clone(), key.jwks());
    t.audiences = case.client_ids();
    let started = Emulator::start(EmulatorConfig {
        account_id: case.account(),
        signing_key: Some(key.clone()),
        roles: vec![
            RoleConfig::new(case.chain_default("caller_role"), caller_policy.to_string()),
            RoleConfig::new(case.chain_default("target_role"), case.policy()),
        ],
        default_role: false,
        trusted_issuers: vec![t],
        // The SDK signs AssumeRole with the wall clock, and the emulator checks SigV4 dates
        // against its own: these rows run on the wall clock (none tests a time key).
        clock: Arc::new(passport_core::clock::SystemClock),
        ..Default::default()
    })
    .await;
    let Some(emu) = started_as_expected(case, started).await? else {
        return Ok(());
    };
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": issuer,
        "sub": "system:serviceaccount:default:app",
        "aud": "sts.amazonaws.com",
        "iat": wall - 60,
        "exp": wall + 3600,
    });
    let token = key.sign(&claims).unwrap();
    let config = || {
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(emu.sts_url())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
    };
    let first = aws_sdk_sts::Client::from_conf(config().build())
        .assume_role_with_web_identity()
        .role_arn(case.caller_role_arn())
        .role_session_name(case.session_name())
        .web_identity_token(token)
        .send()
        .await
        .map_err(|e| format!("hop 1 failed: {:?}", e.code()))?;
    let c = first.credentials().unwrap();
    let signer = aws_sdk_sts::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "trust-cases",
    );
    let client = aws_sdk_sts::Client::from_conf(config().credentials_provider(signer).build());
    let mut request = client
        .assume_role()
        .role_arn(case.target_role_arn())
        .role_session_name(case.chain_session_name())
        .set_external_id(case.external_id());
    for (k, v) in case.tags() {
        request = request.tags(
            aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap(),
        );
    }
    for k in case.transitive_tag_keys() {
        request = request.transitive_tag_keys(k);
    }
    let got = match request.send().await {
        Ok(out) if out.credentials().is_some() => StsAnswer::Credentials,
        Ok(_) => return Err("success without credentials".into()),
        Err(e) => StsAnswer::error(e.code().unwrap_or("<none>"), e.message().unwrap_or("")),
    };
    emu.shutdown().await;
    answered_as_expected(case, got)
}

fn run_check_assume_role(case: &Case<'_>) -> Result<(), String> {
    let words = case.refusal_words();
    let policy = match trust_policy::TrustPolicy::parse(&case.policy()) {
        Ok(p) if words.is_empty() => p,
        Ok(_) => return Err("the evaluator loaded a policy it should refuse".into()),
        Err(e) => {
            let text = e.lines().join("\n");
            return match words.iter().find(|w| !text.contains(w.as_str())) {
                None if !words.is_empty() => Ok(()),
                None => Err(format!("the evaluator refused the policy: {text}")),
                Some(w) => Err(format!("the evaluator's refusal lacks {w:?}:\n{text}")),
            };
        }
    };
    let call = trust_policy::AssumeRoleCall {
        caller_role_arn: case.caller_role_arn(),
        caller_session_arn: Some(case.caller_session_arn()),
        role_session_name: case.chain_session_name(),
        external_id: case.external_id(),
        tags: case.tags(),
        transitive_tag_keys: case.transitive_tag_keys(),
        now: Some(case.now()),
    };
    let decision = trust_policy::evaluate_assume_role(&policy, &call);
    let got = if decision.allowed() {
        StsAnswer::Credentials
    } else {
        case.denied(&decision.action)
    };
    let want = case.expected_answer().unwrap();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "the evaluator answered {got}, expected {want}:\n{}",
            decision.explain()
        ))
    }
}
