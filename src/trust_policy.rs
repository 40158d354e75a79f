//! Role trust policies, evaluated the way IAM does for `sts:AssumeRoleWithWebIdentity`
//! (the pod's token) and for `sts:AssumeRole` by a role session (role chaining).
//!
//! One evaluator, shared by the STS emulator and `passport check`. What it models, each
//! backed by a row of `tests/trust_cases/cases.json`:
//!
//! * `Statement` (one or a list), `Effect`, `Principal` (`"*"`, `{"AWS": "*"}`,
//!   `{"Federated": ...}`, and for role chaining `{"AWS": ...}` naming a role ARN, an
//!   account root, an account id or an assumed-role session ARN; a wildcard in part of a
//!   principal is invalid), `Action`/`NotAction` (case-insensitive, `*`/`?`),
//!   explicit Deny wins over Allow; `sts:TagSession` is required as well when session tags
//!   are passed;
//! * condition operators: the six `String…` operators (`…IgnoreCase`, `…Like` wildcards), the
//!   six `Date…` and six `Numeric…` operators, `Null`, the `Arn…` operators (on
//!   `aws:PrincipalArn`), each with `…IfExists` (not `Null`) and
//!   the `ForAnyValue:`/`ForAllValues:` set qualifiers;
//! * condition keys of this call: `<provider>:sub`, `<provider>:aud`,
//!   `cognito-identity.amazonaws.com:amr`, `accounts.google.com:oaud`, `sts:RoleSessionName`,
//!   `sts:SourceIdentity`, `aws:SourceIdentity` (absent on this call), `aws:CurrentTime`,
//!   `aws:EpochTime`, `aws:TokenIssueTime` (absent on this call); for `sts:AssumeRole`,
//!   `sts:ExternalId`, `aws:PrincipalArn`, `aws:RequestTag/KEY`, `aws:TagKeys`,
//!   `sts:TransitiveTagKeys`, `sts:RoleSessionName` and the time keys.
//!
//! Anything else IAM accepts but passport cannot evaluate offline (another key, operator or
//! a policy variable) is refused when the policy is loaded, naming the statement, the key
//! and why ([`PolicyError::Unmodelled`]); what IAM itself rejects is
//! [`PolicyError::Invalid`]. Nothing is silently treated as an absent key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde_json::Value;

pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
pub const SET_SOURCE_IDENTITY: &str = "sts:SetSourceIdentity";
pub const ASSUME_ROLE: &str = "sts:AssumeRole";
pub const TAG_SESSION: &str = "sts:TagSession";
/// The token claim that carries the source identity.
pub const SOURCE_IDENTITY_CLAIM: &str = "https://aws.amazon.com/source_identity";

const COGNITO: &str = "cognito-identity.amazonaws.com";
const GOOGLE: &str = "accounts.google.com";
/// Web identity providers IAM names without an `oidc-provider/` ARN.
const BUILT_IN_PROVIDERS: [&str; 4] = [COGNITO, GOOGLE, "graph.facebook.com", "www.amazon.com"];

/// Something in a policy that passport cannot evaluate offline although IAM accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmodelled {
    /// `Statement[1]` or `Statement[1] (Sid)`.
    pub statement: String,
    pub operator: Option<String>,
    pub key: Option<String>,
    pub why: String,
}

impl fmt::Display for Unmodelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.statement)?;
        match (&self.operator, &self.key) {
            (Some(op), Some(key)) => write!(f, "{op} on {key}: ")?,
            (None, Some(key)) => write!(f, "{key}: ")?,
            (Some(op), None) => write!(f, "{op}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.why)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// IAM would reject this document.
    Invalid(String),
    /// IAM accepts it, but passport cannot evaluate every part of it offline.
    Unmodelled(Vec<Unmodelled>),
}

impl PolicyError {
    /// One line per problem, worded for `check` and the emulator alike.
    pub fn lines(&self) -> Vec<String> {
        match self {
            PolicyError::Invalid(why) => {
                vec![format!("not a trust policy IAM would accept: {why}")]
            }
            PolicyError::Unmodelled(items) => items
                .iter()
                .map(|u| format!("IAM accepts this, but passport cannot evaluate it offline: {u}"))
                .collect(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("; "))
    }
}

impl std::error::Error for PolicyError {}

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
    /// `{"Federated": [...]}`: OIDC providers, for `AssumeRoleWithWebIdentity`.
    Federated(Vec<String>),
    /// `{"AWS": [...]}`: role ARNs, account roots (`arn:aws:iam::ACCOUNT:root`) or account
    /// ids, for `AssumeRole` (role chaining).
    Aws(Vec<String>),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Equals,
    NotEquals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl CmpOp {
    fn holds(self, actual: f64, policy: f64) -> bool {
        match self {
            CmpOp::Equals => actual == policy,
            CmpOp::NotEquals => actual != policy,
            CmpOp::LessThan => actual < policy,
            CmpOp::LessThanEquals => actual <= policy,
            CmpOp::GreaterThan => actual > policy,
            CmpOp::GreaterThanEquals => actual >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    String(StringOp),
    Date(CmpOp),
    Numeric(CmpOp),
    Null,
    /// `ArnEquals`/`ArnLike` (`negated`: `ArnNotEquals`/`ArnNotLike`): the six
    /// colon-delimited parts compared one by one, each with `*`/`?` wildcards.
    Arn {
        negated: bool,
    },
}

impl Op {
    /// `…Not…` operators: true on an absent key, NOR over the policy values.
    fn negated(self) -> bool {
        matches!(
            self,
            Op::String(StringOp::NotEquals | StringOp::NotEqualsIgnoreCase | StringOp::NotLike)
                | Op::Date(CmpOp::NotEquals)
                | Op::Numeric(CmpOp::NotEquals)
                | Op::Arn { negated: true }
        )
    }

    /// Does one request value match one policy value (the positive form for negated ops)?
    fn matches_one(self, policy: &PolicyValue, value: &str) -> bool {
        match (self, policy) {
            (Op::String(op), PolicyValue::Text(p)) => match op {
                StringOp::Equals | StringOp::NotEquals => p == value,
                StringOp::EqualsIgnoreCase | StringOp::NotEqualsIgnoreCase => {
                    p.to_lowercase() == value.to_lowercase()
                }
                StringOp::Like | StringOp::NotLike => wildcard_match(p, value),
            },
            (Op::Arn { .. }, PolicyValue::Text(p)) => arn_match(p, value),
            (Op::Date(op) | Op::Numeric(op), PolicyValue::Number(p)) => {
                let Ok(actual) = value.parse::<f64>() else {
                    return false;
                };
                let op = if op == CmpOp::NotEquals {
                    CmpOp::Equals
                } else {
                    op
                };
                op.holds(actual, *p)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyValue {
    Text(String),
    /// Dates as Unix seconds, numbers as written.
    Number(f64),
}

/// One `Operator: { key: [values] }` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionClause {
    /// The operator as written (e.g. `ForAnyValue:StringLikeIfExists`), for explanations.
    pub operator: String,
    pub qualifier: Qualifier,
    pub op: Op,
    pub if_exists: bool,
    /// As written in the policy; compared case-insensitively.
    pub key: String,
    /// As written, for explanations.
    pub values: Vec<String>,
    parsed: Vec<PolicyValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Principal,
    /// `Action`, or `NotAction` when `not_action`.
    pub actions: Vec<String>,
    pub not_action: bool,
    pub conditions: Vec<ConditionClause>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrustPolicy {
    pub statements: Vec<Statement>,
}

fn statement_name(index: usize, sid: Option<&str>) -> String {
    match sid {
        Some(sid) if !sid.is_empty() => format!("Statement[{index}] ({sid})"),
        _ => format!("Statement[{index}]"),
    }
}

impl TrustPolicy {
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PolicyError::Invalid(format!("not JSON: {e}")))?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let invalid = |m: String| PolicyError::Invalid(m);
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("the document is not an object".into()))?;
        let statements = match obj.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => return Err(invalid("Statement must be an object or a list".into())),
            None => return Err(invalid("missing Statement".into())),
        };
        if statements.is_empty() {
            return Err(invalid("Statement is empty".into()));
        }
        let mut parsed = Vec::new();
        let mut unmodelled = Vec::new();
        for (i, s) in statements.into_iter().enumerate() {
            let sid = s.get("Sid").and_then(Value::as_str);
            let name = statement_name(i, sid);
            match parse_statement(s, &name, &mut unmodelled) {
                Ok(st) => parsed.push(st),
                Err(why) => return Err(invalid(format!("{name}: {why}"))),
            }
        }
        if !unmodelled.is_empty() {
            return Err(PolicyError::Unmodelled(unmodelled));
        }
        Ok(Self { statements: parsed })
    }

    /// The policy IAM would hold for a role trusting `provider_arn` for any Kubernetes
    /// service account with audience `sts.amazonaws.com`.
    pub fn any_service_account(provider_arn: &str) -> Self {
        let host = provider_arn
            .split_once(":oidc-provider/")
            .map(|(_, h)| h)
            .unwrap_or(provider_arn);
        let clause = |op, operator: &str, key: String, value: &str| ConditionClause {
            operator: operator.into(),
            qualifier: Qualifier::None,
            op: Op::String(op),
            if_exists: false,
            key,
            values: vec![value.into()],
            parsed: vec![PolicyValue::Text(value.into())],
        };
        Self {
            statements: vec![Statement {
                sid: Some("PassportDemo".into()),
                effect: Effect::Allow,
                principal: Principal::Federated(vec![provider_arn.to_owned()]),
                actions: vec![ASSUME_ROLE_WITH_WEB_IDENTITY.into()],
                not_action: false,
                conditions: vec![
                    clause(
                        StringOp::Like,
                        "StringLike",
                        format!("{host}:sub"),
                        "system:serviceaccount:*:*",
                    ),
                    clause(
                        StringOp::Equals,
                        "StringEquals",
                        format!("{host}:aud"),
                        "sts.amazonaws.com",
                    ),
                ],
            }],
        }
    }

    /// Every `Principal.Federated` value of the Allow statements.
    pub fn trusted_providers(&self) -> Vec<&str> {
        self.statements
            .iter()
            .filter(|s| s.effect == Effect::Allow)
            .flat_map(|s| match &s.principal {
                Principal::Federated(v) => v.iter().map(String::as_str).collect::<Vec<_>>(),
                Principal::Any | Principal::Aws(_) => Vec::new(),
            })
            .collect()
    }
}

fn string_or_list(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let one = |i: &Value| match i {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("{what} values must be strings")),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(_) | Value::Null => {
            Err(format!("{what} must be a string or a list of strings"))
        }
        other => Ok(vec![one(other)?]),
    }
}

fn parse_statement(
    v: &Value,
    name: &str,
    unmodelled: &mut Vec<Unmodelled>,
) -> Result<Statement, String> {
    let obj = v.as_object().ok_or("not an object")?;
    if obj.contains_key("NotPrincipal") {
        return Err("NotPrincipal: IAM does not allow it in a role trust policy (\"You cannot use the NotPrincipal element in an IAM identity-based policy nor in an IAM role trust policy\")".into());
    }
    for key in ["Resource", "NotResource"] {
        if obj.contains_key(key) {
            return Err(format!(
                "{key}: IAM rejects it in a role trust policy (MalformedPolicyDocument: Has prohibited field {key})"
            ));
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
            let list = |key: &str| match p.get(key) {
                Some(v) => string_or_list(v, &format!("Principal.{key}")),
                None => Ok(Vec::new()),
            };
            let (federated, aws) = (list("Federated")?, list("AWS")?);
            if let Some(partial) = aws.iter().find(|a| *a != "*" && a.contains('*')) {
                return Err(format!(
                    "Principal.AWS {partial:?}: IAM rejects a wildcard in part of a principal (\"You cannot use a wildcard to match part of a principal name or ARN\"; MalformedPolicyDocument: Invalid principal in policy)"
                ));
            }
            if aws.iter().any(|a| a == "*") {
                Principal::Any
            } else if !aws.is_empty() && !federated.is_empty() {
                unmodelled.push(Unmodelled {
                    statement: name.to_owned(),
                    operator: None,
                    key: None,
                    why: "a statement naming both Federated and AWS principals is not modelled; write one statement for each".into(),
                });
                Principal::Federated(federated)
            } else if !aws.is_empty() {
                Principal::Aws(aws)
            } else {
                Principal::Federated(federated)
            }
        }
        Some(_) => return Err("Principal must be \"*\" or an object".into()),
        None => return Err("missing Principal".into()),
    };
    let (actions, not_action) = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(a), None) => (string_or_list(a, "Action")?, false),
        (None, Some(a)) => (string_or_list(a, "NotAction")?, true),
        (Some(_), Some(_)) => return Err("both Action and NotAction".into()),
        (None, None) => return Err("missing Action".into()),
    };
    let mut conditions = Vec::new();
    if let Some(cond) = obj.get("Condition") {
        let cond = cond.as_object().ok_or("Condition must be an object")?;
        for (operator, block) in cond {
            let block = block
                .as_object()
                .ok_or_else(|| format!("Condition.{operator} must be an object"))?;
            let parsed_op = parse_operator(operator)?;
            for (key, values) in block {
                let values = string_or_list(values, "Condition")?;
                let mut refuse = |why: String| {
                    unmodelled.push(Unmodelled {
                        statement: name.to_owned(),
                        operator: Some(operator.clone()),
                        key: Some(key.clone()),
                        why,
                    })
                };
                let (qualifier, op, if_exists) = match parsed_op {
                    Ok(parts) => parts,
                    Err(ref why) => {
                        refuse(why.clone());
                        continue;
                    }
                };
                match check_clause(qualifier, op, key, &values) {
                    Ok(parsed) => conditions.push(ConditionClause {
                        operator: operator.clone(),
                        qualifier,
                        op,
                        if_exists,
                        key: key.clone(),
                        values,
                        parsed,
                    }),
                    Err(Refusal::Unmodelled(why)) => refuse(why),
                    Err(Refusal::Invalid(why)) => {
                        return Err(format!("{operator} on {key}: {why}"));
                    }
                }
            }
        }
    }
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        not_action,
        conditions,
    })
}

/// `Ok(Ok(..))`: modelled; `Ok(Err(why))`: a real IAM operator passport does not model;
/// `Err(why)`: not an IAM operator.
type ParsedOperator = Result<(Qualifier, Op, bool), String>;

fn parse_operator(operator: &str) -> Result<ParsedOperator, String> {
    let (qualifier, rest) = match operator.split_once(':') {
        Some(("ForAnyValue", rest)) => (Qualifier::ForAnyValue, rest),
        Some(("ForAllValues", rest)) => (Qualifier::ForAllValues, rest),
        Some((q, _)) => return Err(format!("unknown condition set qualifier {q}:")),
        None => (Qualifier::None, operator),
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let cmp = |s: &str| match s {
        "Equals" => Some(CmpOp::Equals),
        "NotEquals" => Some(CmpOp::NotEquals),
        "LessThan" => Some(CmpOp::LessThan),
        "LessThanEquals" => Some(CmpOp::LessThanEquals),
        "GreaterThan" => Some(CmpOp::GreaterThan),
        "GreaterThanEquals" => Some(CmpOp::GreaterThanEquals),
        _ => None,
    };
    let op = match base {
        "StringEquals" => Op::String(StringOp::Equals),
        "StringNotEquals" => Op::String(StringOp::NotEquals),
        "StringEqualsIgnoreCase" => Op::String(StringOp::EqualsIgnoreCase),
        "StringNotEqualsIgnoreCase" => Op::String(StringOp::NotEqualsIgnoreCase),
        "StringLike" => Op::String(StringOp::Like),
        "StringNotLike" => Op::String(StringOp::NotLike),
        "Null" => {
            if if_exists {
                return Err("IfExists cannot be added to Null".into());
            }
            if qualifier != Qualifier::None {
                return Ok(Err(
                    "a set qualifier on Null is not documented; passport does not guess".into(),
                ));
            }
            Op::Null
        }
        // IAM documents ArnEquals and ArnLike identically (and their negations).
        "ArnEquals" | "ArnLike" => Op::Arn { negated: false },
        "ArnNotEquals" | "ArnNotLike" => Op::Arn { negated: true },
        "Bool" | "BinaryEquals" | "IpAddress" | "NotIpAddress" => {
            return Ok(Err(format!(
                "{base} is not modelled: no condition key of its type exists for AssumeRoleWithWebIdentity or AssumeRole in passport's model"
            )));
        }
        other => match (
            other.strip_prefix("Date").and_then(cmp),
            other.strip_prefix("Numeric").and_then(cmp),
        ) {
            (Some(c), _) => Op::Date(c),
            (_, Some(c)) => Op::Numeric(c),
            _ => return Err(format!("unknown condition operator {operator}")),
        },
    };
    Ok(Ok((qualifier, op, if_exists)))
}

enum Refusal {
    Invalid(String),
    Unmodelled(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    String {
        multivalued: bool,
    },
    /// `aws:CurrentTime`, `aws:TokenIssueTime`: date operators.
    Date,
    /// `aws:EpochTime`: date or numeric operators.
    Epoch,
}

/// The keys this call has, and why the others are refused.
fn key_type(key: &str) -> Result<KeyType, String> {
    let lower = key.to_lowercase();
    let single = KeyType::String { multivalued: false };
    match lower.as_str() {
        "sts:rolesessionname" | "sts:sourceidentity" | "aws:sourceidentity" => return Ok(single),
        "aws:currenttime" | "aws:tokenissuetime" => return Ok(KeyType::Date),
        "aws:epochtime" => return Ok(KeyType::Epoch),
        "aws:principalaccount" => {
            return Err("AWS does not document which account a web-identity caller belongs to before its role session exists".into());
        }
        // Role chaining (sts:AssumeRole): absent on AssumeRoleWithWebIdentity.
        "sts:externalid" | "aws:principalarn" => return Ok(single),
        "aws:tagkeys" | "sts:transitivetagkeys" => {
            return Ok(KeyType::String { multivalued: true });
        }
        "sts:tagsession" => {
            return Err(
                "sts:TagSession is an action (allow it in Action), not a condition key".into(),
            );
        }
        _ if lower.starts_with("aws:requesttag/") && lower.len() > "aws:requesttag/".len() => {
            return Ok(single);
        }
        _ => {}
    }
    let Some((prefix, name)) = lower.rsplit_once(':') else {
        return Err("not a condition key passport knows".into());
    };
    if prefix == "aws" || prefix == "sts" {
        return Err(format!(
            "{key} is not modelled (passport models aws:CurrentTime, aws:EpochTime, aws:TokenIssueTime, aws:SourceIdentity, sts:RoleSessionName, sts:SourceIdentity, and for role chaining sts:ExternalId, aws:PrincipalArn, aws:RequestTag/KEY, aws:TagKeys, sts:TransitiveTagKeys)"
        ));
    }
    match name {
        "sub" | "aud" => Ok(single),
        "amr" if prefix == COGNITO => Ok(KeyType::String { multivalued: true }),
        "amr" => Err("the amr key is documented for Amazon Cognito (cognito-identity.amazonaws.com:amr) only".into()),
        "oaud" if prefix == GOOGLE => Ok(single),
        "oaud" => Err("the oaud key is documented for Google (accounts.google.com:oaud) only".into()),
        _ => Err(format!(
            "{name} is not a documented web-identity condition key: AWS documents sub, aud, amr (Amazon Cognito) and oaud (Google); other claims are reported not to reach the request context (email is reported to work, undocumented)"
        )),
    }
}

fn check_clause(
    qualifier: Qualifier,
    op: Op,
    key: &str,
    values: &[String],
) -> Result<Vec<PolicyValue>, Refusal> {
    let kind = key_type(key).map_err(Refusal::Unmodelled)?;
    if values.is_empty() {
        return Err(Refusal::Invalid("no values".into()));
    }
    if let KeyType::String { multivalued: true } = kind
        && qualifier == Qualifier::None
        && op != Op::Null
    {
        return Err(Refusal::Unmodelled(
            "a multivalued key needs ForAnyValue: or ForAllValues:; IAM's answer without one is not documented".into(),
        ));
    }
    match op {
        Op::Null => values
            .iter()
            .map(|v| match v.to_lowercase().as_str() {
                "true" | "false" => Ok(PolicyValue::Text(v.to_lowercase())),
                _ => Err(Refusal::Invalid(format!(
                    "Null takes true or false, not {v:?}"
                ))),
            })
            .collect(),
        Op::String(_) => {
            if !matches!(kind, KeyType::String { .. }) {
                return Err(Refusal::Unmodelled(format!(
                    "a string operator on the date key {key}: comparing its text is not modelled; use a Date operator"
                )));
            }
            if let Some(v) = values.iter().find(|v| v.contains("${")) {
                return Err(Refusal::Unmodelled(format!(
                    "{v:?} holds a policy variable; passport does not substitute policy variables"
                )));
            }
            Ok(values.iter().cloned().map(PolicyValue::Text).collect())
        }
        Op::Arn { .. } => {
            if !key.eq_ignore_ascii_case("aws:PrincipalArn") {
                return Err(Refusal::Unmodelled(format!(
                    "an ARN operator on {key}: the only ARN key passport models is aws:PrincipalArn"
                )));
            }
            if let Some(v) = values.iter().find(|v| v.contains("${")) {
                return Err(Refusal::Unmodelled(format!(
                    "{v:?} holds a policy variable; passport does not substitute policy variables"
                )));
            }
            Ok(values.iter().cloned().map(PolicyValue::Text).collect())
        }
        Op::Date(_) => {
            if !matches!(kind, KeyType::Date | KeyType::Epoch) {
                return Err(Refusal::Unmodelled(format!(
                    "a date operator on {key}, which is not a date key"
                )));
            }
            values
                .iter()
                .map(|v| {
                    parse_date(v).map(PolicyValue::Number).ok_or_else(|| {
                        Refusal::Unmodelled(format!(
                            "{v:?} is not a date passport can read (W3C ISO 8601 or Unix seconds)"
                        ))
                    })
                })
                .collect()
        }
        Op::Numeric(_) => {
            if kind != KeyType::Epoch {
                return Err(Refusal::Unmodelled(format!(
                    "a numeric operator on {key}, which is not a number key"
                )));
            }
            values
                .iter()
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map(PolicyValue::Number)
                        .map_err(|_| Refusal::Invalid(format!("{v:?} is not a number")))
                })
                .collect()
        }
    }
}

/// W3C ISO 8601 (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm[:ss[.s]]TZD`) or Unix
/// seconds, as Unix seconds.
pub fn parse_date(s: &str) -> Option<f64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() != 4 {
        return s.parse().ok();
    }
    let num = |t: &str| -> Option<i64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = num(parts.next()?)?;
    let m = parts.next().map(num).unwrap_or(Some(1))?;
    let d = parts.next().map(num).unwrap_or(Some(1))?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = 0f64;
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
            (c, 0i64)
        } else {
            let i = t.rfind(['+', '-'])?;
            let (c, z) = t.split_at(i);
            let (hh, mm) = z[1..].split_once(':')?;
            let off = num(hh)? * 3600 + num(mm)? * 60;
            (c, if z.starts_with('-') { -off } else { off })
        };
        let mut hms = clock.split(':');
        let h = num(hms.next()?)?;
        let mi = num(hms.next()?)?;
        let sec: f64 = match hms.next() {
            Some(x) => {
                let (whole, frac) = x.split_once('.').unwrap_or((x, "0"));
                num(whole)? as f64 + format!("0.{frac}").parse::<f64>().ok()?
            }
            None => 0.0,
        };
        if hms.next().is_some() || h > 23 || mi > 59 || sec >= 61.0 {
            return None;
        }
        secs = (h * 3600 + mi * 60 - offset) as f64 + sec;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days as f64 * 86_400.0 + secs)
}

/// `ArnEquals`/`ArnLike`: "Each of the six colon-delimited components of the ARN is checked
/// separately and each can include multi-character match wildcards (*) or single-character
/// match wildcards (?)" (IAM condition operators). A value that is not an ARN matches nothing.
fn arn_match(pattern: &str, value: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6 && v.len() == 6 && p.iter().zip(&v).all(|(p, v)| wildcard_match(p, v))
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

/// The issuer URL without its scheme, slash kept: how IAM names an OIDC provider and
/// prefixes its condition keys (`auth.example.com/` for `https://auth.example.com/`).
pub fn provider_host(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer)
}

/// `Principal.Federated` for tokens from `issuer`: the provider ARN, or the bare name of the
/// providers IAM has built in (Amazon Cognito, Google, Facebook, Login with Amazon).
pub fn provider_arn(account_id: &str, issuer: &str) -> String {
    let host = provider_host(issuer);
    if BUILT_IN_PROVIDERS.contains(&host) {
        return host.to_owned();
    }
    format!("arn:aws:iam::{account_id}:oidc-provider/{host}")
}

/// Which value `<provider>:aud` carries, and which value STS checks against the provider's
/// client IDs: `azp` when the token has it (documented for Google), else the first of the
/// token's audiences that is a registered client ID (STS's `Audience` answer); without the
/// client ID list (offline), every audience is a candidate.
pub fn audience_candidates(
    aud: &[String],
    azp: Option<&str>,
    client_ids: Option<&[String]>,
) -> Vec<String> {
    if let Some(azp) = azp {
        return vec![azp.to_owned()];
    }
    match client_ids {
        Some(ids) => aud
            .iter()
            .find(|a| ids.contains(a))
            .cloned()
            .into_iter()
            .collect(),
        None => aud.to_vec(),
    }
}

/// What the caller presents in one `AssumeRoleWithWebIdentity` call.
#[derive(Debug, Clone, Default)]
pub struct WebIdentityCall {
    pub account_id: String,
    pub issuer: String,
    pub sub: String,
    /// The single value of `<provider>:aud` (see [`audience_candidates`]).
    pub aud: Option<String>,
    /// The token's `aud` claim, for `accounts.google.com:oaud`.
    pub token_aud: Vec<String>,
    /// The token's `amr` claim (Amazon Cognito).
    pub amr: Option<Vec<String>>,
    pub role_session_name: Option<String>,
    /// The token's `https://aws.amazon.com/source_identity` claim.
    pub source_identity: Option<String>,
    pub now: Option<SystemTime>,
}

/// What the evaluator sees: the federated principal, the action and the context keys.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH` (or a built-in provider's name).
    pub federated_principal: String,
    /// For `sts:AssumeRole`: the calling role's ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub aws_principal: Option<String>,
    /// For `sts:AssumeRole`: the calling session's ARN
    /// (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`), which `Principal.AWS` may name.
    pub aws_session_principal: Option<String>,
    pub action: String,
    /// Context keys, lower-cased, to their values; dates as Unix seconds.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// The request IAM builds for `action` (`sts:AssumeRoleWithWebIdentity`, or
    /// `sts:SetSourceIdentity` when the token sets a source identity).
    pub fn web_identity(call: &WebIdentityCall, action: &str) -> Self {
        let host = provider_host(&call.issuer).to_lowercase();
        let mut context = BTreeMap::new();
        let mut put = |k: String, v: Vec<String>| {
            context.insert(k.to_lowercase(), v);
        };
        put(format!("{host}:sub"), vec![call.sub.clone()]);
        if let Some(aud) = &call.aud {
            put(format!("{host}:aud"), vec![aud.clone()]);
        }
        if host == GOOGLE && call.token_aud.len() == 1 {
            put(format!("{host}:oaud"), call.token_aud.clone());
        }
        if host == COGNITO
            && let Some(amr) = &call.amr
        {
            put(format!("{host}:amr"), amr.clone());
        }
        if let Some(name) = &call.role_session_name {
            put("sts:RoleSessionName".into(), vec![name.clone()]);
        }
        if let Some(si) = &call.source_identity {
            put("sts:SourceIdentity".into(), vec![si.clone()]);
        }
        if let Some(now) = call.now {
            let secs = match now.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            put("aws:CurrentTime".into(), vec![secs.to_string()]);
            put("aws:EpochTime".into(), vec![secs.to_string()]);
        }
        Self {
            federated_principal: provider_arn(&call.account_id, &call.issuer),
            aws_principal: None,
            aws_session_principal: None,
            action: action.into(),
            context,
        }
    }

    /// The request IAM builds for `sts:AssumeRole` (or `sts:TagSession`) by a role session.
    pub fn assume_role(call: &AssumeRoleCall, action: &str) -> Self {
        let mut context = BTreeMap::new();
        let mut put = |k: &str, v: Vec<String>| {
            context.insert(k.to_lowercase(), v);
        };
        put("aws:PrincipalArn", vec![call.caller_role_arn.clone()]);
        put("sts:RoleSessionName", vec![call.role_session_name.clone()]);
        if let Some(id) = &call.external_id {
            put("sts:ExternalId", vec![id.clone()]);
        }
        for (k, v) in &call.tags {
            put(&format!("aws:RequestTag/{k}"), vec![v.clone()]);
        }
        if !call.tags.is_empty() {
            put(
                "aws:TagKeys",
                call.tags.iter().map(|(k, _)| k.clone()).collect(),
            );
        }
        if !call.transitive_tag_keys.is_empty() {
            put("sts:TransitiveTagKeys", call.transitive_tag_keys.clone());
        }
        if let Some(now) = call.now {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            put("aws:CurrentTime", vec![secs.to_string()]);
            put("aws:EpochTime", vec![secs.to_string()]);
        }
        Self {
            federated_principal: String::new(),
            aws_principal: Some(call.caller_role_arn.clone()),
            aws_session_principal: call.caller_session_arn.clone(),
            action: action.into(),
            context,
        }
    }
}

/// What a role session presents in one `sts:AssumeRole` call (role chaining).
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleCall {
    /// The calling session's role: `arn:aws:iam::ACCOUNT:role/NAME`.
    pub caller_role_arn: String,
    /// The calling session itself: `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    pub caller_session_arn: Option<String>,
    pub role_session_name: String,
    pub external_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub now: Option<SystemTime>,
}

/// Whether `entry` (a `Principal.AWS` value) names the caller: its role's ARN, its account's
/// root or account id, or its own assumed-role session ARN (IAM: "To specify the
/// assumed-role session ARN in the Principal element, use [...]
/// arn:aws:sts::AWS-account-ID:assumed-role/role-name/role-session-name").
fn aws_principal_matches(entry: &str, caller_role_arn: &str, session_arn: Option<&str>) -> bool {
    let account = caller_role_arn.split(':').nth(4).unwrap_or_default();
    entry == caller_role_arn
        || entry == format!("arn:aws:iam::{account}:root")
        || (entry.len() == 12 && entry == account)
        || session_arn == Some(entry)
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
                    "nothing (this call has no such value)".to_owned()
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
    pub action: String,
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
        let name = |t: &StatementTrace| statement_name(t.index, t.sid.as_deref());
        let suffix = if self.action == ASSUME_ROLE_WITH_WEB_IDENTITY {
            String::new()
        } else {
            format!(" for {}", self.action)
        };
        match self.outcome {
            Outcome::Allowed { statement } => {
                format!("allowed by {}{suffix}", name(&self.statements[statement]))
            }
            Outcome::ExplicitDeny { statement } => {
                format!(
                    "explicitly denied by {}{suffix}",
                    name(&self.statements[statement])
                )
            }
            Outcome::ImplicitDeny => {
                let mut out = format!("no Allow statement matches{suffix}");
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

fn clause_holds(c: &ConditionClause, actual: Option<&Vec<String>>) -> bool {
    let Some(values) = actual else {
        // Absent key.
        return match (c.op, c.qualifier) {
            (Op::Null, _) => c
                .parsed
                .iter()
                .any(|p| *p == PolicyValue::Text("true".into())),
            _ if c.if_exists => true,
            (_, Qualifier::ForAllValues) => true,
            (_, Qualifier::ForAnyValue) => false,
            (op, Qualifier::None) => op.negated(),
        };
    };
    if c.op == Op::Null {
        return c
            .parsed
            .iter()
            .any(|p| *p == PolicyValue::Text("false".into()));
    }
    // A request value "matches" when it equals/likes any policy value (OR); negated
    // operators hold for a value that matches none of them (NOR).
    let value_holds = |v: &String| {
        let any = c.parsed.iter().any(|p| c.op.matches_one(p, v));
        if c.op.negated() { !any } else { any }
    };
    match c.qualifier {
        Qualifier::ForAllValues => values.iter().all(value_holds),
        Qualifier::ForAnyValue => values.iter().any(value_holds),
        // Single-valued keys carry one value.
        Qualifier::None => values.iter().any(value_holds),
    }
}

fn check_statement(s: &Statement, req: &Request) -> Option<Mismatch> {
    match &s.principal {
        Principal::Any => {}
        Principal::Aws(entries) => {
            let caller = req.aws_principal.as_deref().unwrap_or_default();
            let session = req.aws_session_principal.as_deref();
            if !entries
                .iter()
                .any(|e| aws_principal_matches(e, caller, session))
            {
                return Some(Mismatch {
                    element: Element::Principal,
                    key: None,
                    operator: None,
                    expected: entries.clone(),
                    actual: vec![caller.to_owned()],
                });
            }
        }
        Principal::Federated(arns) => {
            if req.aws_principal.is_some() || !arns.iter().any(|a| a == &req.federated_principal) {
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
    let listed = s
        .actions
        .iter()
        .any(|a| wildcard_match(&a.to_lowercase(), &action));
    if listed == s.not_action {
        return Some(Mismatch {
            element: Element::Action,
            key: None,
            operator: None,
            expected: if s.not_action {
                vec![format!("anything but {:?}", s.actions)]
            } else {
                s.actions.clone()
            },
            actual: vec![req.action.clone()],
        });
    }
    for c in &s.conditions {
        let actual = req.context.get(&c.key.to_lowercase());
        if !clause_holds(c, actual) {
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
        action: request.action.clone(),
        outcome,
        statements,
    }
}

/// The whole decision for one call: `sts:AssumeRoleWithWebIdentity`, and
/// `sts:SetSourceIdentity` too when the token sets a source identity.
pub fn evaluate_web_identity(policy: &TrustPolicy, call: &WebIdentityCall) -> Decision {
    let assume = evaluate(
        policy,
        &Request::web_identity(call, ASSUME_ROLE_WITH_WEB_IDENTITY),
    );
    if !assume.allowed() || call.source_identity.is_none() {
        return assume;
    }
    let set = evaluate(policy, &Request::web_identity(call, SET_SOURCE_IDENTITY));
    if set.allowed() { assume } else { set }
}

/// The whole decision for one `sts:AssumeRole` call: `sts:AssumeRole`, and
/// `sts:TagSession` too when session tags are passed.
pub fn evaluate_assume_role(policy: &TrustPolicy, call: &AssumeRoleCall) -> Decision {
    let assume = evaluate(policy, &Request::assume_role(call, ASSUME_ROLE));
    if !assume.allowed() || call.tags.is_empty() {
        return assume;
    }
    let tag = evaluate(policy, &Request::assume_role(call, TAG_SESSION));
    if tag.allowed() { assume } else { tag }
}

/// What STS answers to one `AssumeRoleWithWebIdentity` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsAnswer {
    Credentials,
    Error { code: String, message: String },
}

impl StsAnswer {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        StsAnswer::Error {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn access_denied() -> Self {
        Self::error("AccessDenied", NOT_AUTHORIZED)
    }
}

impl fmt::Display for StsAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StsAnswer::Credentials => f.write_str("credentials"),
            StsAnswer::Error { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

pub const NOT_AUTHORIZED: &str = "Not authorized to perform sts:AssumeRoleWithWebIdentity";
pub const INCORRECT_AUDIENCE: &str = "Incorrect token audience";

pub fn no_provider_message(iss: &str) -> String {
    format!("No OpenIDConnect provider found in your account for {iss}")
}

/// The token claims the trust decision reads (decoded, not verified).
#[derive(Debug, Clone, Default)]
pub struct TokenFacts {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub amr: Option<Vec<String>>,
    pub source_identity: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Pass,
    Warn,
    Fail,
    Info,
}

/// `passport check`'s offline verdict on a trust policy for one token.
#[derive(Debug, Clone)]
pub struct Offline {
    pub lines: Vec<(Level, String)>,
    /// STS's answer if the account registers the token's issuer exactly as an OIDC provider
    /// whose client IDs include the token's (first candidate) audience. `None` when the
    /// policy cannot be evaluated.
    pub primary: Option<StsAnswer>,
    /// Every answer STS may give, registration unknown.
    pub possible: Vec<StsAnswer>,
}

/// Evaluate `policy` offline for `token`, for a role in `account_id`, as `check` reports it.
pub fn offline(
    policy: &str,
    token: &TokenFacts,
    account_id: &str,
    role_session_name: Option<&str>,
    now: SystemTime,
) -> Offline {
    let mut lines = Vec::new();
    let policy = match TrustPolicy::parse(policy) {
        Ok(p) => p,
        Err(e) => {
            let level = match e {
                PolicyError::Invalid(_) => Level::Fail,
                PolicyError::Unmodelled(_) => Level::Warn,
            };
            lines.extend(e.lines().into_iter().map(|l| (level, l)));
            return Offline {
                lines,
                primary: None,
                possible: Vec::new(),
            };
        }
    };
    let host = provider_host(&token.iss);
    let principal = provider_arn(account_id, &token.iss);
    lines.push((
        Level::Info,
        format!("token maps to principal {principal} with sub {}", token.sub),
    ));
    let trusted = policy.trusted_providers();
    if !trusted.is_empty()
        && !trusted.contains(&principal.as_str())
        && let Some(near) = trusted
            .iter()
            .find(|t| t.trim_end_matches('/') == principal.trim_end_matches('/'))
    {
        lines.push((
            Level::Warn,
            format!(
                "the policy trusts {near}, but iss {} is the provider {principal}: IAM names a provider by its URL exactly, trailing slash included",
                token.iss
            ),
        ));
    }
    if token.aud.len() > 1 {
        let which = match &token.azp {
            Some(azp) => format!("passport uses azp ({azp}), as IAM documents for Google"),
            None => "passport takes the one STS matches against the provider's client IDs (its Audience answer); offline, each is tried".into(),
        };
        lines.push((
            Level::Warn,
            format!(
                "the token has {} audiences ({}): AWS documents which one {host}:aud carries only for Google; {which}",
                token.aud.len(),
                token.aud.join(", ")
            ),
        ));
    }
    let mentions_session_name = policy
        .statements
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.key.eq_ignore_ascii_case("sts:RoleSessionName"));
    if role_session_name.is_none() && mentions_session_name {
        lines.push((
            Level::Warn,
            "the policy tests sts:RoleSessionName, but AWS_ROLE_SESSION_NAME is not set: SDKs then make one up (evaluated as absent)".into(),
        ));
    }
    let mut candidates: Vec<Option<String>> =
        audience_candidates(&token.aud, token.azp.as_deref(), None)
            .into_iter()
            .map(Some)
            .collect();
    if candidates.is_empty() {
        candidates.push(None);
    }
    let results: Vec<(Option<String>, Decision)> = candidates
        .into_iter()
        .map(|aud| {
            let call = WebIdentityCall {
                account_id: account_id.to_owned(),
                issuer: token.iss.clone(),
                sub: token.sub.clone(),
                aud: aud.clone(),
                token_aud: token.aud.clone(),
                amr: token.amr.clone(),
                role_session_name: role_session_name.map(str::to_owned),
                source_identity: token.source_identity.clone(),
                now: Some(now),
            };
            let decision = evaluate_web_identity(&policy, &call);
            (aud, decision)
        })
        .collect();
    let answer = |d: &Decision| {
        if d.allowed() {
            StsAnswer::Credentials
        } else {
            StsAnswer::access_denied()
        }
    };
    let split = |d: &Decision| {
        let mut lines = d
            .explain()
            .lines()
            .map(str::trim)
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let headline = lines.remove(0);
        (headline, lines)
    };
    let primary = answer(&results[0].1);
    let mut possible = Vec::new();
    for (_, d) in &results {
        if !possible.contains(&answer(d)) {
            possible.push(answer(d));
        }
    }
    let client_ids = results
        .iter()
        .map(|(aud, _)| aud.as_deref().unwrap_or("(none)"))
        .collect::<Vec<_>>()
        .join(" or ");
    let otherwise = format!(
        "otherwise STS answers InvalidIdentityToken: \"{}\" (or \"{INCORRECT_AUDIENCE}\")",
        no_provider_message(&token.iss)
    );
    if possible.len() == 1 {
        let (headline, details) = split(&results[0].1);
        if primary == StsAnswer::Credentials {
            lines.push((
                Level::Pass,
                format!("STS would accept this token: {headline}"),
            ));
        } else {
            lines.push((
                Level::Fail,
                format!("STS would refuse this token (AccessDenied: {NOT_AUTHORIZED}): {headline}"),
            ));
            lines.extend(details.into_iter().map(|l| (Level::Fail, l)));
        }
        lines.push((
            Level::Info,
            format!(
                "assuming account {account_id} registers the OIDC provider {} exactly, with client ID {client_ids}; {otherwise}",
                token.iss
            ),
        ));
    } else {
        lines.push((
            Level::Warn,
            format!(
                "STS's answer depends on which audience account {account_id}'s OIDC provider {} lists as a client ID; {otherwise}",
                token.iss
            ),
        ));
        for (aud, d) in &results {
            let (headline, details) = split(d);
            let aud = aud.as_deref().unwrap_or("(none)");
            let mut line = if d.allowed() {
                format!("with client ID {aud}: STS would accept this token: {headline}")
            } else {
                format!(
                    "with client ID {aud}: STS would refuse this token (AccessDenied): {headline}"
                )
            };
            for detail in details {
                line.push_str("; ");
                line.push_str(&detail);
            }
            lines.push((Level::Info, line));
        }
    }
    possible.push(StsAnswer::error(
        "InvalidIdentityToken",
        no_provider_message(&token.iss),
    ));
    possible.push(StsAnswer::error("InvalidIdentityToken", INCORRECT_AUDIENCE));
    Offline {
        lines,
        primary: Some(primary),
        possible,
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

    fn call(sub: &str, aud: &str) -> WebIdentityCall {
        WebIdentityCall {
            account_id: "111122223333".into(),
            issuer: ISSUER.into(),
            sub: sub.into(),
            aud: Some(aud.into()),
            token_aud: vec![aud.into()],
            ..Default::default()
        }
    }

    fn policy(condition: Value) -> TrustPolicy {
        TrustPolicy::from_value(&json!({"Statement": {
            "Sid": "Only",
            "Effect": "Allow",
            "Principal": {"Federated": ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition
        }}))
        .unwrap()
    }

    #[test]
    fn provider_names_keep_the_slash_and_drop_the_scheme() {
        assert_eq!(provider_host(ISSUER), HOST);
        assert_eq!(
            provider_host("https://auth.example.com/"),
            "auth.example.com/"
        );
        assert_eq!(provider_host("http://127.0.0.1:9401"), "127.0.0.1:9401");
        assert_eq!(provider_arn("111122223333", ISSUER), ARN);
        assert_eq!(
            provider_arn("111122223333", "https://auth.example.com/"),
            "arn:aws:iam::111122223333:oidc-provider/auth.example.com/"
        );
        assert_eq!(
            provider_arn("111122223333", "https://cognito-identity.amazonaws.com"),
            "cognito-identity.amazonaws.com"
        );
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
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1780315200"), Some(1_780_315_200.0));
        assert_eq!(parse_date("2026-06-01T12:00:00Z"), Some(1_780_315_200.0));
        assert_eq!(
            parse_date("2026-06-01T14:00:00+02:00"),
            Some(1_780_315_200.0)
        );
        assert_eq!(parse_date("2026-06-01T12:00Z"), Some(1_780_315_200.0));
        assert_eq!(parse_date("2026-06-01T12:00:00.5Z"), Some(1_780_315_200.5));
        assert_eq!(parse_date("2026-06-01"), Some(1_780_272_000.0));
        assert_eq!(parse_date("2026"), parse_date("2026-01-01"));
        for bad in [
            "",
            "soon",
            "2026-13-01",
            "2026-06-01T25:00:00Z",
            "2026-06-01T12:00:00",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn audience_is_one_value() {
        let aud = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(audience_candidates(&aud, Some("c"), None), vec!["c"]);
        assert_eq!(
            audience_candidates(&aud, None, Some(&["b".to_owned()])),
            vec!["b"]
        );
        assert!(audience_candidates(&aud, None, Some(&["x".to_owned()])).is_empty());
        assert_eq!(audience_candidates(&aud, None, None), aud);
    }

    #[test]
    fn evaluates_and_explains() {
        let p =
            policy(json!({"StringEquals": {format!("{HOST}:sub"): "system:serviceaccount:ns:sa"}}));
        assert!(evaluate_web_identity(&p, &call("system:serviceaccount:ns:sa", "x")).allowed());
        let d = evaluate_web_identity(&p, &call("system:serviceaccount:ns:other", "x"));
        assert_eq!(d.outcome, Outcome::ImplicitDeny);
        let m = d.statements[0].mismatch.clone().unwrap();
        assert_eq!(m.element, Element::Condition);
        assert_eq!(m.actual, vec!["system:serviceaccount:ns:other"]);
        let text = d.explain();
        assert!(text.contains("Statement[0] (Only)"), "{text}");
        let p = TrustPolicy::any_service_account(ARN);
        assert!(
            evaluate_web_identity(&p, &call("system:serviceaccount:a:b", "sts.amazonaws.com"))
                .allowed()
        );
        assert!(!evaluate_web_identity(&p, &call("someone", "sts.amazonaws.com")).allowed());
    }

    #[test]
    fn refuses_loudly_and_names_every_problem() {
        let err = TrustPolicy::from_value(&json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sts:*",
             "Condition": {"StringEquals": {format!("{HOST}:groups"): "a", "aws:PrincipalAccount": "1"}}},
            {"Sid": "Two", "Effect": "Allow", "Principal": "*", "Action": "sts:*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
        ]}))
        .unwrap_err();
        let PolicyError::Unmodelled(items) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].statement, "Statement[1] (Two)");
        let lines = err.lines();
        assert!(
            lines
                .iter()
                .all(|l| l
                    .starts_with("IAM accepts this, but passport cannot evaluate it offline: "))
        );
        assert!(lines[0].contains(&format!("{HOST}:groups")), "{lines:?}");

        for bad in [
            "[]",
            "{}",
            r#"{"Statement": []}"#,
            r#"{"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "x"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Action": "x"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "x", "Condition": {"StringEqualz": {"sts:RoleSessionName": "1"}}}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "x", "Condition": {"NullIfExists": {"sts:RoleSessionName": "true"}}}}"#,
            r#"{"Statement": {"Effect": "Deny", "NotPrincipal": "*", "Action": "x"}}"#,
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*"}}"#,
        ] {
            assert!(
                matches!(TrustPolicy::parse(bad), Err(PolicyError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
