//! Role trust policies for IRSA: `passport trust-policy` writes the one that lets exactly
//! one service account assume a role (or, with `--for-role`, the one that lets that role
//! chain into a second role), and `passport check --trust-policy` explains, with the
//! emulator's evaluator, whether a given token would be accepted and what refuses it.

use serde_json::json;

use crate::args::ConfigErrors;
use crate::trust_policy::provider_arn;

#[derive(Debug, Clone, clap::Args)]
pub struct TrustPolicyArgs {
    /// The cluster's OIDC issuer URL (e.g. https://oidc.eks.us-east-1.amazonaws.com/id/ABC).
    #[arg(long, conflicts_with = "oidc_provider_arn")]
    pub issuer: Option<String>,
    /// The IAM OIDC provider ARN, instead of --issuer and --account-id.
    #[arg(long)]
    pub oidc_provider_arn: Option<String>,
    /// The AWS account that owns the role and the OIDC provider.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Kubernetes namespace of the service account.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Kubernetes service account name.
    #[arg(long)]
    pub service_account: Option<String>,
    /// Token audience STS should require.
    #[arg(long, default_value = "sts.amazonaws.com")]
    pub audience: String,
    /// Instead: the trust policy of a second role (role chaining) that lets this first
    /// role, the one the pod's token assumes, call sts:AssumeRole on it.
    #[arg(long, value_name = "FIRST_ROLE_ARN", conflicts_with_all = ["issuer", "oidc_provider_arn", "account_id", "namespace", "service_account"])]
    pub for_role: Option<String>,
    /// With --for-role: require this external id (sts:ExternalId).
    #[arg(long, requires = "for_role")]
    pub external_id: Option<String>,
    /// With --for-role: also allow session tags (sts:TagSession).
    #[arg(long, requires = "for_role")]
    pub allow_session_tags: bool,
}

/// `passport trust-policy`: print the policy, or every problem with the flags (exit 64).
pub fn main(args: &TrustPolicyArgs) -> std::process::ExitCode {
    match render(args) {
        Ok(policy) => {
            print!("{policy}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => super::usage(e),
    }
}

/// The trust policy JSON, or every problem with the arguments.
pub fn render(args: &TrustPolicyArgs) -> Result<String, ConfigErrors> {
    if let Some(first) = &args.for_role {
        return chained_role_policy(first, args);
    }
    let mut problems = Vec::new();
    let provider_arn = match (&args.issuer, &args.oidc_provider_arn, &args.account_id) {
        (_, Some(arn), _) => {
            if arn.starts_with("arn:aws") && arn.contains(":oidc-provider/") {
                Some(arn.clone())
            } else {
                problems.push(format!("--oidc-provider-arn {arn:?}: expected arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH"));
                None
            }
        }
        (Some(issuer), None, Some(account)) => {
            if !issuer.starts_with("https://") {
                problems.push(format!(
                    "--issuer {issuer:?}: IAM OIDC providers are https:// URLs"
                ));
            }
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!("--account-id {account:?}: expected 12 digits"));
            }
            Some(provider_arn(account, issuer))
        }
        (Some(_), None, None) => {
            problems.push("--account-id is required with --issuer".into());
            None
        }
        (None, None, _) => {
            problems.push("--issuer (with --account-id) or --oidc-provider-arn is required".into());
            None
        }
    };
    let k8s_name = |flag: &str, value: &Option<String>, problems: &mut Vec<String>| match value {
        Some(v)
            if !v.is_empty()
                && v.len() <= 253
                && v.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                }) =>
        {
            Some(v.clone())
        }
        Some(v) => {
            problems.push(format!(
                "{flag} {v:?}: not a Kubernetes name (lowercase letters, digits, '-', '.')"
            ));
            None
        }
        None => {
            problems.push(format!("{flag} is required"));
            None
        }
    };
    let namespace = k8s_name("--namespace", &args.namespace, &mut problems);
    let service_account = k8s_name("--service-account", &args.service_account, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let (provider_arn, namespace, service_account) = (
        provider_arn.expect("checked"),
        namespace.expect("checked"),
        service_account.expect("checked"),
    );
    let path = provider_arn
        .split_once(":oidc-provider/")
        .map(|(_, p)| p)
        .unwrap_or_default();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{path}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                    format!("{path}:aud"): args.audience,
                }
            }
        }]
    });
    Ok(serde_json::to_string_pretty(&policy).expect("JSON renders") + "\n")
}

/// The second hop's trust policy: the first role may assume it (and tag the session).
fn chained_role_policy(first: &str, args: &TrustPolicyArgs) -> Result<String, ConfigErrors> {
    let mut problems = ConfigErrors::default();
    problems.check(
        "--for-role",
        first,
        first.parse::<passport_core::aws::RoleArn>(),
    );
    if let Some(id) = &args.external_id
        && !(2..=1224).contains(&id.len())
    {
        problems.push("--external-id: STS accepts 2 to 1224 characters");
    }
    problems.into_result()?;
    Ok(chained_role_policy_json(
        first,
        args.external_id.as_deref(),
        args.allow_session_tags,
    ))
}

/// The trust policy of a role that `first` (a role ARN) may chain into.
pub fn chained_role_policy_json(first: &str, external_id: Option<&str>, tags: bool) -> String {
    let mut actions = vec!["sts:AssumeRole"];
    if tags {
        actions.push("sts:TagSession");
    }
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "AWS": first },
        "Action": actions,
    });
    if let Some(id) = external_id {
        statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": id } });
    }
    let policy = json!({ "Version": "2012-10-17", "Statement": [statement] });
    serde_json::to_string_pretty(&policy).expect("JSON renders") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TrustPolicyArgs {
        TrustPolicyArgs {
            issuer: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC123".into()),
            oidc_provider_arn: None,
            account_id: Some("111122223333".into()),
            namespace: Some("payments".into()),
            service_account: Some("api".into()),
            audience: "sts.amazonaws.com".into(),
            for_role: None,
            external_id: None,
            allow_session_tags: false,
        }
    }

    #[test]
    fn second_hop_policy_trusts_the_first_role_and_parses_in_the_evaluator() {
        let a = TrustPolicyArgs {
            for_role: Some("arn:aws:iam::111122223333:role/app".into()),
            external_id: Some("shared-secret-id".into()),
            allow_session_tags: true,
            ..args()
        };
        let text = render(&a).unwrap();
        let policy = crate::trust_policy::TrustPolicy::parse(&text).unwrap();
        let call = crate::trust_policy::AssumeRoleCall {
            caller_role_arn: "arn:aws:iam::111122223333:role/app".into(),
            role_session_name: "s1".into(),
            external_id: Some("shared-secret-id".into()),
            tags: vec![("team".into(), "a".into())],
            ..Default::default()
        };
        assert!(crate::trust_policy::evaluate_assume_role(&policy, &call).allowed());
        let other = crate::trust_policy::AssumeRoleCall {
            caller_role_arn: "arn:aws:iam::111122223333:role/other".into(),
            ..call.clone()
        };
        assert!(!crate::trust_policy::evaluate_assume_role(&policy, &other).allowed());
        let bad = TrustPolicyArgs {
            for_role: Some("arn:aws:iam::1:role/x".into()),
            ..a
        };
        assert!(render(&bad).is_err());
    }

    #[test]
    fn an_issuer_with_a_trailing_slash_keeps_it() {
        // IAM names the provider for https://auth.example.com/ "auth.example.com/", and its
        // condition keys "auth.example.com/:sub" (tests/trust_cases: slash-issuer-*).
        let mut a = args();
        a.issuer = Some("https://auth.example.com/".into());
        assert_trusts_provider(&statement(&a), "auth.example.com/");
    }

    /// The first statement of the rendered policy.
    fn statement(a: &TrustPolicyArgs) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&render(a).unwrap()).unwrap();
        v["Statement"][0].clone()
    }

    /// The statement trusts account 111122223333's OIDC provider `provider` (IAM's name for
    /// it) for service account payments/api.
    fn assert_trusts_provider(st: &serde_json::Value, provider: &str) {
        assert_eq!(
            st["Principal"]["Federated"],
            format!("arn:aws:iam::111122223333:oidc-provider/{provider}")
        );
        assert_eq!(
            st["Condition"]["StringEquals"][format!("{provider}:sub")],
            "system:serviceaccount:payments:api"
        );
    }

    #[test]
    fn renders_the_eks_shaped_policy() {
        let st = statement(&args());
        assert_trusts_provider(&st, "oidc.eks.us-east-1.amazonaws.com/id/ABC123");
        assert_eq!(
            st["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/ABC123:aud"],
            "sts.amazonaws.com"
        );
        let mut by_arn = args();
        by_arn.issuer = None;
        by_arn.account_id = None;
        by_arn.oidc_provider_arn = Some(
            "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"
                .into(),
        );
        assert_eq!(render(&by_arn).unwrap(), render(&args()).unwrap());
    }

    #[test]
    fn reports_every_problem() {
        let bad = TrustPolicyArgs {
            issuer: Some("http://x".into()),
            oidc_provider_arn: None,
            account_id: Some("12".into()),
            namespace: Some("Bad_NS".into()),
            service_account: None,
            ..args()
        };
        assert_eq!(render(&bad).unwrap_err().0.len(), 4);
    }
}
