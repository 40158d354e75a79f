//! Every row of `tests/trust_cases/cases.json`, run against the STS emulator (real
//! `aws-sdk-sts` `AssumeRoleWithWebIdentity` calls) and against `passport check`'s offline
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
    let words = case.refusal_words();
    let emu = match started {
        Err(e) if !words.is_empty() => {
            let text = e.to_string();
            return match words.iter().find(|w| !text.contains(w.as_str())) {
                None => Ok(()),
                Some(w) => Err(format!(
                    "the emulator refused the policy without {w:?}: {text}"
                )),
            };
        }
        Err(e) => return Err(format!("the emulator did not start: {e}")),
        Ok(emu) if !words.is_empty() => {
            emu.shutdown().await;
            return Err("the emulator loaded a policy it should refuse".into());
        }
        Ok(emu) => emu,
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
        match run_emulator(&case, &key).await {
            Ok(()) => emulator_ok += 1,
            Err(e) => failures.push(format!("{} [emulator]: {e}", case.id)),
        }
        match run_check(&case) {
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
