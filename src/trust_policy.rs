//! Role trust policies, evaluated the way IAM does for `sts:AssumeRoleWithWebIdentity`.
//!
//! Supported: `Statement` (one object or a list), `Effect` Allow/Deny, `Principal`
//! (`"*"`, `{"Federated": ARN or [ARN..]}`, `{"AWS": "*"}`), `Action` (string or list,
//! case-insensitive, `*`/`?` wildcards), and `Condition` with `StringEquals`, `StringLike`,
//! `StringNotEquals`, `StringNotLike`, `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`
//! (each optionally with `IfExists`). Condition keys are case-insensitive, values are not.
//! An explicit Deny wins over any Allow; without a matching Allow the answer is an implicit deny.
//!
//! `evaluate` returns a [`Decision`] with a per-statement trace, so that callers (the STS
//! emulator, `passport check`) can say exactly which element refused.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trust policy: {0}")]
pub struct PolicyError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `"*"` or `{"AWS": "*"}`.
    Any,
    /// `{"Federated": [...]}` (plus any other principal types, which never match a
    /// web-identity caller but are kept for explanations).
    Federated(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringOp {
    Equals,
    NotEquals,
    EqualsIgnoreCase,
    NotEqualsIgnoreCase,
    Like,
    NotLike,
}

impl StringOp {
    fn negated(self) -> bool {
        matches!(
            self,
            StringOp::NotEquals | StringOp::NotEqualsIgnoreCase | StringOp::NotLike
        )
    }

    fn matches_one(self, pattern: &str, value: &str) -> bool {
        match self {
            StringOp::Equals | StringOp::NotEquals => pattern == value,
            StringOp::EqualsIgnoreCase | StringOp::NotEqualsIgnoreCase => {
                pattern.to_lowercase() == value.to_lowercase()
            }
            StringOp::Like | StringOp::NotLike => wildcard_match(pattern, value),
        }
    }
}

/// One `Operator: { key: [values] }` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionClause {
    /// The operator as written (e.g. `StringLikeIfExists`), for explanations.
    pub operator: String,
    pub op: StringOp,
    pub if_exists: bool,
    /// As written in the policy; compared case-insensitively.
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Principal,
    pub actions: Vec<String>,
    pub conditions: Vec<ConditionClause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub statements: Vec<Statement>,
}

impl TrustPolicy {
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| PolicyError("the document is not an object".into()))?;
        let statements = match obj.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => return Err(PolicyError("Statement must be an object or a list".into())),
            None => return Err(PolicyError("missing Statement".into())),
        };
        if statements.is_empty() {
            return Err(PolicyError("Statement is empty".into()));
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                parse_statement(s).map_err(|e| PolicyError(format!("Statement[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// The policy IAM would hold for a role trusting `provider_arn` for any Kubernetes
    /// service account with audience `sts.amazonaws.com`.
    pub fn any_service_account(provider_arn: &str) -> Self {
        let host = provider_arn
            .split_once(":oidc-provider/")
            .map(|(_, h)| h)
            .unwrap_or(provider_arn);
        Self {
            statements: vec![Statement {
                sid: Some("PassportDemo".into()),
                effect: Effect::Allow,
                principal: Principal::Federated(vec![provider_arn.to_owned()]),
                actions: vec![ASSUME_ROLE_WITH_WEB_IDENTITY.into()],
                conditions: vec![
                    ConditionClause {
                        operator: "StringLike".into(),
                        op: StringOp::Like,
                        if_exists: false,
                        key: format!("{host}:sub"),
                        values: vec!["system:serviceaccount:*:*".into()],
                    },
                    ConditionClause {
                        operator: "StringEquals".into(),
                        op: StringOp::Equals,
                        if_exists: false,
                        key: format!("{host}:aud"),
                        values: vec!["sts.amazonaws.com".into()],
                    },
                ],
            }],
        }
    }
}

fn string_or_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{what} values must be strings")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

fn parse_statement(v: &Value) -> Result<Statement, String> {
    let obj = v.as_object().ok_or("not an object")?;
    for key in ["NotPrincipal", "NotAction", "NotResource"] {
        if obj.contains_key(key) {
            return Err(format!("{key} is not supported by this emulator"));
        }
    }
    let sid = obj.get("Sid").and_then(Value::as_str).map(str::to_owned);
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(format!("Effect must be Allow or Deny, not {other:?}")),
        None => return Err("missing Effect".into()),
    };
    let principal = match obj.get("Principal") {
        Some(Value::String(s)) if s == "*" => Principal::Any,
        Some(Value::Object(p)) => {
            if p.get("AWS").and_then(Value::as_str) == Some("*") {
                Principal::Any
            } else {
                let federated = match p.get("Federated") {
                    Some(f) => string_or_list(f, "Principal.Federated")?,
                    None => Vec::new(),
                };
                Principal::Federated(federated)
            }
        }
        Some(_) => return Err("Principal must be \"*\" or an object".into()),
        None => return Err("missing Principal".into()),
    };
    let actions = match obj.get("Action") {
        Some(a) => string_or_list(a, "Action")?,
        None => return Err("missing Action".into()),
    };
    let mut conditions = Vec::new();
    if let Some(cond) = obj.get("Condition") {
        let cond = cond.as_object().ok_or("Condition must be an object")?;
        for (operator, block) in cond {
            if operator.contains(':') {
                return Err(format!(
                    "condition set operators ({operator}) are not supported by this emulator"
                ));
            }
            let (base, if_exists) = match operator.strip_suffix("IfExists") {
                Some(base) => (base, true),
                None => (operator.as_str(), false),
            };
            let op = match base {
                "StringEquals" => StringOp::Equals,
                "StringNotEquals" => StringOp::NotEquals,
                "StringEqualsIgnoreCase" => StringOp::EqualsIgnoreCase,
                "StringNotEqualsIgnoreCase" => StringOp::NotEqualsIgnoreCase,
                "StringLike" => StringOp::Like,
                "StringNotLike" => StringOp::NotLike,
                other => return Err(format!("condition operator {other} is not supported")),
            };
            let block = block
                .as_object()
                .ok_or_else(|| format!("Condition.{operator} must be an object"))?;
            for (key, values) in block {
                conditions.push(ConditionClause {
                    operator: operator.clone(),
                    op,
                    if_exists,
                    key: key.clone(),
                    values: string_or_list(values, "Condition")?,
                });
            }
        }
    }
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        conditions,
    })
}

/// IAM string wildcards: `*` any run (including empty), `?` exactly one character.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// What the caller presents: the federated principal, the action and the context keys.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`.
    pub federated_principal: String,
    pub action: String,
    /// Context keys, lower-cased, to their values (`aud` may hold several).
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// The request IAM builds for `AssumeRoleWithWebIdentity` with a token from `issuer`.
    pub fn web_identity(account_id: &str, issuer: &str, sub: &str, aud: &[String]) -> Self {
        let host = provider_host(issuer);
        let mut context = BTreeMap::new();
        context.insert(format!("{host}:sub").to_lowercase(), vec![sub.to_owned()]);
        context.insert(format!("{host}:aud").to_lowercase(), aud.to_vec());
        Self {
            federated_principal: provider_arn(account_id, issuer),
            action: ASSUME_ROLE_WITH_WEB_IDENTITY.into(),
            context,
        }
    }
}

/// The issuer URL without its scheme and trailing slash, as IAM names OIDC providers.
pub fn provider_host(issuer: &str) -> &str {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer);
    rest.trim_end_matches('/')
}

pub fn provider_arn(account_id: &str, issuer: &str) -> String {
    format!(
        "arn:aws:iam::{account_id}:oidc-provider/{}",
        provider_host(issuer)
    )
}

/// The element of a statement that did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    Principal,
    Action,
    Condition,
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Element::Principal => "Principal",
            Element::Action => "Action",
            Element::Condition => "Condition",
        })
    }
}

/// Why one statement did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub element: Element,
    /// The condition key (as written in the policy), for `Condition`.
    pub key: Option<String>,
    /// The condition operator (as written), for `Condition`.
    pub operator: Option<String>,
    pub expected: Vec<String>,
    /// What the request carried; empty when a condition key was absent.
    pub actual: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.operator) {
            (Some(key), Some(op)) => write!(
                f,
                "Condition {op} on {key}: expected {:?}, got {}",
                self.expected,
                if self.actual.is_empty() {
                    "no such key".to_owned()
                } else {
                    format!("{:?}", self.actual)
                }
            ),
            _ => write!(
                f,
                "{}: expected {:?}, got {:?}",
                self.element, self.expected, self.actual
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementTrace {
    pub index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    /// `None` when every element matched (the statement applies).
    pub mismatch: Option<Mismatch>,
}

impl StatementTrace {
    pub fn applies(&self) -> bool {
        self.mismatch.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed by the statement with this index (the first that applies).
    Allowed { statement: usize },
    /// Refused by an explicit Deny in the statement with this index.
    ExplicitDeny { statement: usize },
    /// No Allow statement applies.
    ImplicitDeny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub statements: Vec<StatementTrace>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self.outcome, Outcome::Allowed { .. })
    }

    /// The trace of the statement that refused (explicit deny), or of the Allow statements
    /// that failed to match (implicit deny).
    pub fn refusals(&self) -> Vec<&StatementTrace> {
        match self.outcome {
            Outcome::Allowed { .. } => Vec::new(),
            Outcome::ExplicitDeny { statement } => vec![&self.statements[statement]],
            Outcome::ImplicitDeny => self
                .statements
                .iter()
                .filter(|s| s.effect == Effect::Allow)
                .collect(),
        }
    }

    /// A human-readable, multi-line explanation.
    pub fn explain(&self) -> String {
        let name = |t: &StatementTrace| match &t.sid {
            Some(sid) => format!("Statement[{}] ({sid})", t.index),
            None => format!("Statement[{}]", t.index),
        };
        match self.outcome {
            Outcome::Allowed { statement } => {
                format!("allowed by {}", name(&self.statements[statement]))
            }
            Outcome::ExplicitDeny { statement } => {
                format!("explicitly denied by {}", name(&self.statements[statement]))
            }
            Outcome::ImplicitDeny => {
                let mut out = String::from("no Allow statement matches");
                for t in self.refusals() {
                    if let Some(m) = &t.mismatch {
                        out.push_str(&format!("\n  {}: {m}", name(t)));
                    }
                }
                out
            }
        }
    }
}

fn check_statement(s: &Statement, req: &Request) -> Option<Mismatch> {
    match &s.principal {
        Principal::Any => {}
        Principal::Federated(arns) => {
            if !arns.iter().any(|a| a == &req.federated_principal) {
                return Some(Mismatch {
                    element: Element::Principal,
                    key: None,
                    operator: None,
                    expected: arns.clone(),
                    actual: vec![req.federated_principal.clone()],
                });
            }
        }
    }
    let action = req.action.to_lowercase();
    if !s
        .actions
        .iter()
        .any(|a| wildcard_match(&a.to_lowercase(), &action))
    {
        return Some(Mismatch {
            element: Element::Action,
            key: None,
            operator: None,
            expected: s.actions.clone(),
            actual: vec![req.action.clone()],
        });
    }
    for c in &s.conditions {
        let actual = req.context.get(&c.key.to_lowercase());
        let ok = match actual {
            None => c.if_exists || c.op.negated(),
            Some(values) => {
                let any = values
                    .iter()
                    .any(|v| c.values.iter().any(|p| c.op.matches_one(p, v)));
                if c.op.negated() { !any } else { any }
            }
        };
        if !ok {
            return Some(Mismatch {
                element: Element::Condition,
                key: Some(c.key.clone()),
                operator: Some(c.operator.clone()),
                expected: c.values.clone(),
                actual: actual.cloned().unwrap_or_default(),
            });
        }
    }
    None
}

/// Evaluate `policy` for `request`: explicit Deny wins, then any Allow, else implicit deny.
pub fn evaluate(policy: &TrustPolicy, request: &Request) -> Decision {
    let statements: Vec<StatementTrace> = policy
        .statements
        .iter()
        .enumerate()
        .map(|(index, s)| StatementTrace {
            index,
            sid: s.sid.clone(),
            effect: s.effect,
            mismatch: check_statement(s, request),
        })
        .collect();
    let first = |effect| {
        statements
            .iter()
            .find(|t| t.effect == effect && t.applies())
            .map(|t| t.index)
    };
    let outcome = if let Some(statement) = first(Effect::Deny) {
        Outcome::ExplicitDeny { statement }
    } else if let Some(statement) = first(Effect::Allow) {
        Outcome::Allowed { statement }
    } else {
        Outcome::ImplicitDeny
    };
    Decision {
        outcome,
        statements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const ARN: &str =
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn req(sub: &str, aud: &str) -> Request {
        Request::web_identity("111122223333", ISSUER, sub, &[aud.to_owned()])
    }

    fn policy(condition: serde_json::Value) -> TrustPolicy {
        TrustPolicy::from_value(&json!({
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Principal": {"Federated": ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition
            }
        }))
        .unwrap()
    }

    #[test]
    fn provider_names() {
        assert_eq!(provider_host(ISSUER), HOST);
        assert_eq!(provider_host("http://127.0.0.1:9401/"), "127.0.0.1:9401");
        assert_eq!(provider_arn("111122223333", ISSUER), ARN);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "system:serviceaccount:*:*",
            "system:serviceaccount:a:b"
        ));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("a*b*c", "aXXbYbZc"));
        assert!(!wildcard_match("a*b", "aXXbc"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("sts:*", "sts:assumerolewithwebidentity"));
    }

    #[test]
    fn string_equals_matches_and_explains() {
        let p = policy(json!({"StringEquals": {
            format!("{HOST}:sub"): "system:serviceaccount:ns:sa",
            format!("{HOST}:aud"): "sts.amazonaws.com"
        }}));
        assert!(evaluate(&p, &req("system:serviceaccount:ns:sa", "sts.amazonaws.com")).allowed());

        let d = evaluate(
            &p,
            &req("system:serviceaccount:ns:other", "sts.amazonaws.com"),
        );
        assert_eq!(d.outcome, Outcome::ImplicitDeny);
        let m = d.statements[0].mismatch.clone().unwrap();
        assert_eq!(m.element, Element::Condition);
        assert_eq!(m.operator.as_deref(), Some("StringEquals"));
        assert_eq!(m.key.as_deref(), Some(format!("{HOST}:sub").as_str()));
        assert_eq!(m.expected, vec!["system:serviceaccount:ns:sa"]);
        assert_eq!(m.actual, vec!["system:serviceaccount:ns:other"]);
        let text = d.explain();
        assert!(text.contains("Statement[0]"), "{text}");
        assert!(text.contains("system:serviceaccount:ns:other"), "{text}");

        // Values are case-sensitive.
        assert!(!evaluate(&p, &req("system:serviceaccount:NS:sa", "sts.amazonaws.com")).allowed());
        let d = evaluate(&p, &req("system:serviceaccount:ns:sa", "sts.amazonaws.co"));
        assert_eq!(
            d.statements[0].mismatch.as_ref().unwrap().key.as_deref(),
            Some(format!("{HOST}:aud").as_str())
        );
    }

    #[test]
    fn keys_are_case_insensitive() {
        let p = policy(json!({"StringEquals": {
            format!("{}:SUB", HOST.to_uppercase()): "system:serviceaccount:ns:sa"
        }}));
        assert!(evaluate(&p, &req("system:serviceaccount:ns:sa", "x")).allowed());
    }

    #[test]
    fn string_like_and_not_like() {
        let p = policy(
            json!({"StringLike": {format!("{HOST}:sub"): ["system:serviceaccount:prod-*:*", "system:serviceaccount:ns:s?"]}}),
        );
        assert!(evaluate(&p, &req("system:serviceaccount:prod-eu:api", "a")).allowed());
        assert!(evaluate(&p, &req("system:serviceaccount:ns:sa", "a")).allowed());
        assert!(!evaluate(&p, &req("system:serviceaccount:ns:saa", "a")).allowed());

        let p = policy(
            json!({"StringNotLike": {format!("{HOST}:sub"): "system:serviceaccount:kube-system:*"}}),
        );
        assert!(evaluate(&p, &req("system:serviceaccount:ns:sa", "a")).allowed());
        let d = evaluate(&p, &req("system:serviceaccount:kube-system:x", "a"));
        assert_eq!(
            d.statements[0]
                .mismatch
                .as_ref()
                .unwrap()
                .operator
                .as_deref(),
            Some("StringNotLike")
        );
    }

    #[test]
    fn string_not_equals_and_missing_keys() {
        let p = policy(json!({"StringNotEquals": {format!("{HOST}:sub"): ["a", "b"]}}));
        assert!(evaluate(&p, &req("c", "x")).allowed());
        assert!(!evaluate(&p, &req("b", "x")).allowed());
        // A negated operator on a missing key is true; a positive one is false.
        let p = policy(json!({"StringNotEquals": {"other:key": "a"}}));
        assert!(evaluate(&p, &req("c", "x")).allowed());
        let p = policy(json!({"StringEquals": {"other:key": "a"}}));
        let d = evaluate(&p, &req("c", "x"));
        assert!(d.statements[0].mismatch.as_ref().unwrap().actual.is_empty());
        assert!(d.explain().contains("no such key"));
        let p = policy(json!({"StringEqualsIfExists": {"other:key": "a"}}));
        assert!(evaluate(&p, &req("c", "x")).allowed());
    }

    #[test]
    fn principal_and_action_mismatch() {
        let p = TrustPolicy::parse(
            &json!({"Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/elsewhere"},
                "Action": "sts:AssumeRoleWithWebIdentity"
            }, {
                "Sid": "WrongAction",
                "Effect": "Allow",
                "Principal": {"Federated": [ARN]},
                "Action": ["sts:AssumeRole", "sts:TagSession"]
            }]})
            .to_string(),
        )
        .unwrap();
        let d = evaluate(&p, &req("s", "a"));
        assert_eq!(d.outcome, Outcome::ImplicitDeny);
        assert_eq!(
            d.statements[0].mismatch.as_ref().unwrap().element,
            Element::Principal
        );
        assert_eq!(d.statements[0].mismatch.as_ref().unwrap().actual, vec![ARN]);
        assert_eq!(
            d.statements[1].mismatch.as_ref().unwrap().element,
            Element::Action
        );
        assert_eq!(d.refusals().len(), 2);
        assert!(d.explain().contains("(WrongAction)"));

        // Actions are case-insensitive and take wildcards.
        let p = TrustPolicy::parse(
            &json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "STS:AssumeRoleWith*"}})
                .to_string(),
        )
        .unwrap();
        assert!(evaluate(&p, &req("s", "a")).allowed());
    }

    #[test]
    fn explicit_deny_wins() {
        let p = TrustPolicy::from_value(&json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Federated": ARN}, "Action": "sts:*"},
            {"Sid": "NoKubeSystem", "Effect": "Deny", "Principal": {"Federated": ARN}, "Action": "sts:*",
             "Condition": {"StringLike": {format!("{HOST}:sub"): "system:serviceaccount:kube-system:*"}}}
        ]}))
        .unwrap();
        assert_eq!(
            evaluate(&p, &req("system:serviceaccount:ns:sa", "a")).outcome,
            Outcome::Allowed { statement: 0 }
        );
        let d = evaluate(&p, &req("system:serviceaccount:kube-system:sa", "a"));
        assert_eq!(d.outcome, Outcome::ExplicitDeny { statement: 1 });
        assert_eq!(d.refusals()[0].sid.as_deref(), Some("NoKubeSystem"));
        assert!(d.explain().contains("explicitly denied"));
    }

    #[test]
    fn default_policy_and_parse_errors() {
        let p = TrustPolicy::any_service_account(ARN);
        assert!(evaluate(&p, &req("system:serviceaccount:a:b", "sts.amazonaws.com")).allowed());
        assert!(!evaluate(&p, &req("someone", "sts.amazonaws.com")).allowed());

        for bad in [
            "[]",
            "{}",
            r#"{"Statement": []}"#,
            r#"{"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "x"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Action": "x"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "x", "Condition": {"NumericEquals": {"a": "1"}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "NotPrincipal": "*", "Action": "x"}}"#,
        ] {
            assert!(TrustPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
