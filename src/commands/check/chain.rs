//! `passport check` with `--chain-role-arn`: the chain explained hop by hop.
//!
//! Hop 1 is `AssumeRoleWithWebIdentity` into `AWS_ROLE_ARN` (the cluster's account), hop 2
//! is `sts:AssumeRole` into the chained role (usually another account), signed with hop 1's
//! credentials. Three sections:
//!
//! * "Role chain": the settings as `serve` would read them (the same `ChainArgs`);
//! * "Trust policy (hop 2, AssumeRole)" with `--chain-trust-policy FILE`: the other
//!   account's trust policy evaluated offline by the shared evaluator, with hop 1's role
//!   session as the caller: principal mismatch, external id mismatch (never its value),
//!   missing `sts:TagSession`, the one-hour cap;
//! * "Chain (live)": both hops against STS, unless `--no-identity`: which hop failed and,
//!   for an `AccessDenied` on hop 2, whose trust policy refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use passport_core::aws::{RoleArn, SessionName};
use passport_core::chain::RoleAssumer;
use passport_core::chain::{AssumeRoleCall, ChainSettings, ExternalId, MAX_CHAINED_SECONDS};
use passport_core::credentials::Credentials;
use passport_core::secret::Secret;
use passport_core::sts::{
    AssumeRoleRequest, CredentialSource, SourceError, StsSettings, StsSource,
};

use super::{CheckArgs, Lines, Section, human};
use crate::commands::sts_options::{StsArgs, StsConfig, default_session_name};
use crate::emulator::sts_server::CHAINED_DURATION;
use crate::trust_policy::{self, Decision, Element, Outcome, PolicyError, TrustPolicy};

/// What the chain is, read leniently (so that every hop can be explained even when a flag
/// is wrong; the flag problems are reported as `serve` would report them).
struct Chain {
    first: RoleArn,
    first_session: SessionName,
    second: RoleArn,
    settings: ChainSettings,
    /// The external id's value, if one is configured and readable. Never printed.
    external_id: Option<Secret>,
}

impl Chain {
    /// How hop 1's session appears to STS on hop 2: `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    fn caller_session_arn(&self) -> String {
        format!(
            "arn:{}:sts::{}:assumed-role/{}/{}",
            self.first.partition(),
            self.first.account_id(),
            self.first.name(),
            self.first_session.as_str()
        )
    }

    fn tag_keys(&self) -> String {
        self.settings
            .tags
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "role reader in account 444455556666 (the other account)".
    fn second_named(&self) -> String {
        let other = if self.second.account_id() == self.first.account_id() {
            "the same account as hop 1"
        } else {
            "the other account"
        };
        format!(
            "role {} in account {} ({other})",
            self.second.name(),
            self.second.account_id()
        )
    }
}

pub(super) async fn sections(
    args: &CheckArgs,
    env: &dyn Fn(&str) -> Option<String>,
    token_path: Option<&Path>,
    now: SystemTime,
) -> Vec<Section> {
    let mut l = Lines::default();
    let Some(chain) = read_chain(args, env, &mut l) else {
        return vec![l.section("Role chain")];
    };
    l.info(format!(
        "hop 1: AssumeRoleWithWebIdentity into {} (account {}), session {}",
        chain.first,
        chain.first.account_id(),
        chain.first_session.as_str()
    ));
    l.info(format!(
        "hop 2: AssumeRole into {}, {}, signed as {}",
        chain.second,
        chain.second_named(),
        chain.caller_session_arn()
    ));
    let s = &chain.settings;
    let mut asks = Vec::new();
    if s.external_id.is_some() {
        asks.push("an external id".to_owned());
    }
    if !s.tags.is_empty() {
        asks.push(format!("session tags ({})", chain.tag_keys()));
    }
    if !s.transitive_tag_keys.is_empty() {
        asks.push(format!(
            "transitive tag keys ({})",
            s.transitive_tag_keys.join(", ")
        ));
    }
    if s.policy.is_some() || !s.policy_arns.is_empty() {
        asks.push("a session policy".to_owned());
    }
    if !asks.is_empty() {
        l.info(format!("hop 2 passes {}", asks.join(", ")));
    }
    duration_cap(s.duration_seconds, &mut l);
    let mut out = vec![l.section("Role chain")];
    if let Some(path) = &args.chain_trust_policy {
        out.push(offline_hop2(path, &chain, now));
    }
    if !args.no_identity {
        out.push(live(args, env, token_path, &chain, now).await);
    }
    out
}

/// STS refuses a chained session above one hour, whatever the role's maximum.
fn duration_cap(seconds: u32, l: &mut Lines) {
    if seconds > MAX_CHAINED_SECONDS {
        l.fail(format!(
            "--chain-duration-seconds {seconds}: STS caps a session assumed with another role's \
             credentials (role chaining) at 1 hour and answers ValidationError: {CHAINED_DURATION}"
        ));
    } else if seconds < 900 {
        l.fail(format!(
            "--chain-duration-seconds {seconds}: STS accepts 900 to 3600 for a chained session"
        ));
    } else {
        l.pass(format!(
            "hop 2 asks for {seconds} s, within STS's 1-hour cap on role chaining"
        ));
    }
}

fn read_chain(
    args: &CheckArgs,
    env: &dyn Fn(&str) -> Option<String>,
    l: &mut Lines,
) -> Option<Chain> {
    let c = &args.chain;
    // `serve`'s own validation of the chain flags, on the same ChainArgs: what it would refuse.
    let sts_args = StsArgs {
        role_arn: Some(
            env("AWS_ROLE_ARN")
                .filter(|a| a.parse::<RoleArn>().is_ok())
                .unwrap_or_else(|| "arn:aws:iam::111122223333:role/placeholder".into()),
        ),
        token_file: PathBuf::from("/dev/null"),
        session_name: None,
        region: Some("us-east-1".into()),
        sts_endpoint: None,
        duration_seconds: "3600".into(),
        sts_timeout: "10s".into(),
        chain: c.clone(),
    };
    let mut problems = crate::args::ConfigErrors::default();
    let _ = StsConfig::from_args(&sts_args, env, &mut problems);
    for p in &problems.0 {
        l.fail(format!("serve would refuse: {p}"));
    }

    let Some(first) = env("AWS_ROLE_ARN").and_then(|a| a.parse::<RoleArn>().ok()) else {
        l.fail("AWS_ROLE_ARN (hop 1's role) is missing or not a role ARN: the chain starts there");
        return None;
    };
    let raw = c.chain_role_arn.as_deref().unwrap_or_default();
    let Ok(second) = raw.parse::<RoleArn>() else {
        l.fail(format!("--chain-role-arn {raw:?} is not a role ARN"));
        return None;
    };
    let first_session = env("AWS_ROLE_SESSION_NAME")
        .and_then(|n| n.parse::<SessionName>().ok())
        .unwrap_or_else(|| default_session_name(env));
    let session_name = c
        .chain_session_name
        .as_deref()
        .and_then(|n| n.parse::<SessionName>().ok())
        .unwrap_or_else(|| first_session.clone());
    let duration_seconds = c.chain_duration_seconds.trim().parse().unwrap_or(3600);
    let (external_id_source, external_id) = match (&c.external_id, &c.external_id_file) {
        (Some(v), _) => (
            Some(ExternalId::Value(Secret::new(v.clone()))),
            Some(Secret::new(v.clone())),
        ),
        (None, Some(path)) => {
            let value = std::fs::read_to_string(path)
                .ok()
                .map(|v| Secret::new(v.trim_end().to_owned()));
            (Some(ExternalId::File(path.clone())), value)
        }
        (None, None) => (None, None),
    };
    let tags = c
        .session_tags
        .iter()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let policy = c
        .session_policy_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let settings = ChainSettings {
        role_arn: second.clone(),
        session_name,
        duration_seconds,
        external_id: external_id_source,
        tags,
        transitive_tag_keys: c.transitive_tag_keys.clone(),
        policy,
        policy_arns: c.session_policy_arns.clone(),
    };
    Some(Chain {
        first,
        first_session,
        second,
        settings,
        external_id,
    })
}

/// The other account's trust policy, evaluated offline for hop 2.
fn offline_hop2(path: &Path, chain: &Chain, now: SystemTime) -> Section {
    const NAME: &str = "Trust policy (hop 2, AssumeRole)";
    let mut l = Lines::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            l.fail(format!("cannot read {}: {e}", path.display()));
            return l.section(NAME);
        }
    };
    let policy = match TrustPolicy::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            let invalid = matches!(e, PolicyError::Invalid(_));
            for line in e.lines() {
                if invalid {
                    l.fail(format!("{} is {line}", path.display()));
                } else {
                    l.warn(line);
                }
            }
            return l.section(NAME);
        }
    };
    l.info(format!(
        "the trust policy of {}, {}, for the caller {} (role {})",
        chain.second,
        chain.second_named(),
        chain.caller_session_arn(),
        chain.first
    ));
    if chain.settings.external_id.is_some() && chain.external_id.is_none() {
        l.fail("the external id file cannot be read: hop 2 would be sent without one");
    }
    let s = &chain.settings;
    let call = trust_policy::AssumeRoleCall {
        caller_role_arn: chain.first.as_str().to_owned(),
        caller_session_arn: Some(chain.caller_session_arn()),
        role_session_name: s.session_name.as_str().to_owned(),
        external_id: chain.external_id.as_ref().map(|e| e.expose().to_owned()),
        tags: s.tags.clone(),
        transitive_tag_keys: s.transitive_tag_keys.clone(),
        now: Some(now),
    };
    let decision = trust_policy::evaluate_assume_role(&policy, &call);
    explain_decision(&decision, chain, &mut l);
    if s.duration_seconds > MAX_CHAINED_SECONDS {
        l.fail(format!(
            "even with the trust policy satisfied, STS refuses --chain-duration-seconds {} for a chained session: \
             ValidationError: {CHAINED_DURATION}",
            s.duration_seconds
        ));
    }
    l.section(NAME)
}

/// STS's verdict, then one line per statement that refused, in terms of passport's flags.
fn explain_decision(decision: &Decision, chain: &Chain, l: &mut Lines) {
    let name = |i: usize, sid: Option<&str>| match sid {
        Some(sid) => format!("Statement[{i}] ({sid})"),
        None => format!("Statement[{i}]"),
    };
    match decision.outcome {
        Outcome::Allowed { statement } => {
            let t = &decision.statements[statement];
            let tags = if chain.settings.tags.is_empty() {
                String::new()
            } else {
                " and sts:TagSession".to_owned()
            };
            l.pass(format!(
                "STS would allow hop 2: sts:AssumeRole{tags} allowed by {}",
                name(t.index, t.sid.as_deref())
            ));
            return;
        }
        Outcome::ExplicitDeny { statement } => {
            let t = &decision.statements[statement];
            l.fail(format!(
                "STS would refuse hop 2 with AccessDenied: {} (Effect Deny) applies to {}",
                name(t.index, t.sid.as_deref()),
                decision.action
            ));
            return;
        }
        Outcome::ImplicitDeny => l.fail(format!(
            "STS would refuse hop 2 with AccessDenied (User: {} is not authorized to perform: {} on resource: {}): \
             the trust policy of {} allows no such call",
            chain.caller_session_arn(),
            decision.action,
            chain.second,
            chain.second_named()
        )),
    }
    for t in decision.refusals() {
        let Some(m) = &t.mismatch else { continue };
        let who = name(t.index, t.sid.as_deref());
        let line = match m.element {
            Element::Principal => format!(
                "{who}: Principal.AWS names {:?}, neither hop 1's role, its account nor its session: \
                 passport signs hop 2 as {} (role {}, account {}); list {} or arn:{}:iam::{}:root",
                m.expected,
                chain.caller_session_arn(),
                chain.first,
                chain.first.account_id(),
                chain.first,
                chain.first.partition(),
                chain.first.account_id()
            ),
            Element::Action if decision.action == trust_policy::TAG_SESSION => format!(
                "{who}: allows {:?} but not sts:TagSession, which STS requires because passport passes \
                 session tags (--session-tag {}): add \"sts:TagSession\" to its Action, or drop the tags",
                m.expected,
                chain.tag_keys()
            ),
            Element::Action => format!(
                "{who}: Action {:?} does not include {}",
                m.expected, decision.action
            ),
            Element::Condition
                if m.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("sts:ExternalId")) =>
            {
                let op = m.operator.as_deref().unwrap_or_default();
                if m.actual.is_empty() {
                    format!(
                        "{who}: {op} on sts:ExternalId: the role asks for an external id and passport sends none \
                         (set --external-id-file)"
                    )
                } else {
                    // The value is a shared secret: neither it nor the policy's is printed.
                    format!(
                        "{who}: {op} on sts:ExternalId: the external id passport sends does not match the condition"
                    )
                }
            }
            Element::Condition => format!("{who}: {m}"),
        };
        l.fail(line);
    }
}

/// Both hops against STS, as `serve` would make them.
async fn live(
    args: &CheckArgs,
    env: &dyn Fn(&str) -> Option<String>,
    token_path: Option<&Path>,
    chain: &Chain,
    now: SystemTime,
) -> Section {
    const NAME: &str = "Chain (live)";
    let mut l = Lines::default();
    let Some(token_path) = token_path else {
        l.info("skipped: no readable web-identity token for hop 1");
        return l.section(NAME);
    };
    let token = match std::fs::read_to_string(token_path) {
        Ok(t) => Secret::new(t.trim_end().to_owned()),
        Err(e) => {
            l.fail(format!("cannot read the token: {e}"));
            return l.section(NAME);
        }
    };
    let endpoint = args
        .sts_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_STS"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| "us-east-1".parse().expect("a region"));
    let sts = StsSource::new(&StsSettings {
        region,
        endpoint,
        connect_timeout: Duration::from_secs(3),
        attempt_timeout: Duration::from_secs(10),
    });
    let request = AssumeRoleRequest {
        role_arn: chain.first.clone(),
        session_name: chain.first_session.clone(),
        web_identity_token: token,
        duration_seconds: 3600,
    };
    let first = match sts.assume_role(&request).await {
        Ok(creds) => {
            l.pass(format!(
                "hop 1: AssumeRoleWithWebIdentity into {}: {}{}",
                chain.first,
                creds.assumed_role_arn.as_deref().unwrap_or("(no ARN)"),
                left(&creds, now)
            ));
            creds
        }
        Err(e) => {
            l.fail(format!(
                "hop 1 failed: AssumeRoleWithWebIdentity into {}: {}: {}",
                chain.first, e.code, e.message
            ));
            if e.code == "AccessDenied" {
                l.fail(format!(
                    "this refusal is the web-identity trust policy of role {} in account {} (hop 1), \
                     not the chained role's; check it offline with --trust-policy FILE",
                    chain.first.name(),
                    chain.first.account_id()
                ));
            }
            l.info("hop 2 not attempted: it is signed with hop 1's credentials");
            return l.section(NAME);
        }
    };
    if chain.settings.external_id.is_some() && chain.external_id.is_none() {
        l.fail("hop 2 not attempted: the external id file cannot be read");
        return l.section(NAME);
    }
    let call = AssumeRoleCall {
        settings: chain.settings.clone(),
        external_id: chain.external_id.clone(),
    };
    match sts.assume_role_as(&first, &call).await {
        Ok(creds) => {
            l.pass(format!(
                "hop 2: AssumeRole into {}: {}{}",
                chain.second,
                creds.assumed_role_arn.as_deref().unwrap_or("(no ARN)"),
                left(&creds, now)
            ));
        }
        Err(e) => hop2_failed(&e, chain, &mut l),
    }
    l.section(NAME)
}

fn left(creds: &Credentials, now: SystemTime) -> String {
    match creds.expiration.duration_since(now) {
        Ok(d) => format!(" ({} left)", human(d)),
        Err(_) => " (already expired)".to_owned(),
    }
}

fn hop2_failed(e: &SourceError, chain: &Chain, l: &mut Lines) {
    l.fail(format!(
        "hop 2 failed: AssumeRole into {}: {}: {}",
        chain.second, e.code, e.message
    ));
    match e.code.as_str() {
        "AccessDenied" => {
            let mut needs = vec![format!(
                "allow {} (or its account's root) as Principal.AWS",
                chain.first
            )];
            if !chain.settings.tags.is_empty() {
                needs.push(format!(
                    "allow sts:TagSession, since passport passes session tags ({})",
                    chain.tag_keys()
                ));
            }
            if chain.settings.external_id.is_some() {
                needs.push(
                    "match the external id passport sends, if it has an sts:ExternalId condition"
                        .to_owned(),
                );
            }
            l.fail(format!(
                "hop 1 succeeded, so this refusal is the trust policy of {}, not the web-identity trust policy: \
                 it must {}; and role {} needs sts:AssumeRole on {} in its permissions. \
                 Check it offline with --chain-trust-policy FILE",
                chain.second_named(),
                needs.join(", "),
                chain.first.name(),
                chain.second
            ));
        }
        "ValidationError" if e.message.contains("1 hour") => l.fail(format!(
            "STS caps role chaining at 1 hour: set --chain-duration-seconds to at most {MAX_CHAINED_SECONDS}"
        )),
        "ValidationError" if e.message.contains("MaxSessionDuration") => l.fail(format!(
            "the maximum session duration of {} is below --chain-duration-seconds {}",
            chain.second_named(),
            chain.settings.duration_seconds
        )),
        _ => {}
    }
}
