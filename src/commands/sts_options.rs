//! The options `serve` and `exec` share: which role, which token, which STS. Parsed into
//! core types once; every problem is collected, none stops the others being found.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use passport_core::aws::{Region, RoleArn, SessionName};
use passport_core::chain::{ChainSettings, ExternalId, MAX_CHAINED_SECONDS};
use passport_core::refresh::RefreshSettings;
use passport_core::secret::Secret;
use passport_core::sts::StsSettings;

use crate::args::{self, ConfigErrors};
use crate::env;

/// Where EKS projects the service-account token for IRSA.
pub const EKS_TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/// How to obtain credentials.
#[derive(Debug, Clone, Args)]
pub struct StsArgs {
    /// ARN of the IAM role to assume.
    #[arg(long, env = env::ROLE_ARN)]
    pub role_arn: Option<String>,
    /// The web-identity token (JWT) file, re-read for every exchange.
    #[arg(long, env = env::WEB_IDENTITY_TOKEN_FILE, default_value = EKS_TOKEN_FILE)]
    pub token_file: PathBuf,
    /// Role session name, shown in CloudTrail [default: NAMESPACE.POD from the downward API, else the host name].
    #[arg(long, env = env::ROLE_SESSION_NAME)]
    pub session_name: Option<String>,
    /// AWS region, for the regional STS endpoint (falls back to AWS_DEFAULT_REGION).
    #[arg(long, env = env::REGION)]
    pub region: Option<String>,
    /// STS endpoint override, e.g. a local emulator (`http://` only on loopback).
    #[arg(long, env = env::ENDPOINT_URL_STS)]
    pub sts_endpoint: Option<String>,
    /// Session duration requested from STS, 900..43200 seconds.
    #[arg(long, env = "PASSPORT_DURATION_SECONDS", default_value = "3600")]
    pub duration_seconds: String,
    /// Upper bound on one STS call.
    #[arg(long, env = "PASSPORT_STS_TIMEOUT", default_value = "10s")]
    pub sts_timeout: String,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Role chaining: after the web-identity exchange, `sts:AssumeRole` into a second role.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Role chaining")]
pub struct ChainArgs {
    /// Then assume this role (often in another account) with the first role's credentials,
    /// and serve its credentials instead.
    #[arg(long, env = "PASSPORT_CHAIN_ROLE_ARN")]
    pub chain_role_arn: Option<String>,
    /// Session length asked for the chained role, 900..3600 (STS caps chained sessions at 1 h).
    #[arg(long, env = "PASSPORT_CHAIN_DURATION_SECONDS", default_value = "3600")]
    pub chain_duration_seconds: String,
    /// Session name for the chained role [default: the first hop's].
    #[arg(long, env = "PASSPORT_CHAIN_SESSION_NAME")]
    pub chain_session_name: Option<String>,
    /// External id the chained role's trust policy asks for (visible in `ps`: prefer --external-id-file).
    #[arg(
        long,
        env = "PASSPORT_EXTERNAL_ID",
        hide_env_values = true,
        conflicts_with = "external_id_file"
    )]
    pub external_id: Option<String>,
    /// File holding the external id, re-read for every call (a mounted Secret).
    #[arg(long, env = "PASSPORT_EXTERNAL_ID_FILE")]
    pub external_id_file: Option<PathBuf>,
    /// Session tag KEY=VALUE for the chained session (repeatable; needs sts:TagSession).
    #[arg(
        long = "session-tag",
        env = "PASSPORT_SESSION_TAGS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub session_tags: Vec<String>,
    /// Tag key that stays with further chained sessions (repeatable; must be one of the tags).
    #[arg(
        long = "transitive-tag-key",
        env = "PASSPORT_TRANSITIVE_TAG_KEYS",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub transitive_tag_keys: Vec<String>,
    /// Inline session policy (JSON file): the chained session gets the intersection.
    #[arg(long, env = "PASSPORT_SESSION_POLICY_FILE")]
    pub session_policy_file: Option<PathBuf>,
    /// Managed session policy ARN (repeatable, up to 10).
    #[arg(
        long = "session-policy-arn",
        env = "PASSPORT_SESSION_POLICY_ARNS",
        value_delimiter = ',',
        value_name = "ARN"
    )]
    pub session_policy_arns: Vec<String>,
}

/// The second hop's options, for whichever role is chained into: --chain-role-arn's, or
/// each `--extra-role NAME=ARN,chain`'s.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    pub session_name: SessionName,
    pub duration_seconds: u32,
    pub external_id: Option<ExternalId>,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
}

impl ChainOptions {
    /// The chain into `role_arn` with these options.
    pub fn for_role(&self, role_arn: RoleArn) -> ChainSettings {
        ChainSettings {
            role_arn,
            session_name: self.session_name.clone(),
            duration_seconds: self.duration_seconds,
            external_id: self.external_id.clone(),
            tags: self.tags.clone(),
            transitive_tag_keys: self.transitive_tag_keys.clone(),
            policy: self.policy.clone(),
            policy_arns: self.policy_arns.clone(),
        }
    }
}

impl ChainArgs {
    /// The chain options, validated when some role is chained into (`chained`); `None`
    /// inside otherwise, and then no chain-only flag may be set.
    fn validate(
        &self,
        session_name: Option<&SessionName>,
        chained: bool,
        problems: &mut ConfigErrors,
    ) -> Option<Option<ChainOptions>> {
        if !chained {
            let stray = [
                ("--external-id", self.external_id.is_some()),
                ("--external-id-file", self.external_id_file.is_some()),
                ("--session-tag", !self.session_tags.is_empty()),
                ("--transitive-tag-key", !self.transitive_tag_keys.is_empty()),
                ("--session-policy-file", self.session_policy_file.is_some()),
                ("--session-policy-arn", !self.session_policy_arns.is_empty()),
                ("--chain-session-name", self.chain_session_name.is_some()),
            ];
            for (flag, set) in stray {
                if set {
                    problems.push(format!(
                        "{flag} applies to chained roles: add --chain-role-arn (or an --extra-role NAME=ARN,chain)"
                    ));
                }
            }
            return Some(None);
        }
        let duration = problems.parse(
            "--chain-duration-seconds",
            &self.chain_duration_seconds,
            |raw| {
                let n = args::number_in(raw, 900, 43_200)?;
                if n > u64::from(MAX_CHAINED_SECONDS) {
                    return Err("STS caps sessions assumed with another role's credentials (role chaining) at 3600 seconds".to_string());
                }
                Ok(n as u32)
            },
        );
        let chain_name = match &self.chain_session_name {
            Some(name) => problems.check("--chain-session-name", name, name.parse::<SessionName>()),
            None => session_name.cloned(),
        };
        let external_id = match (&self.external_id, &self.external_id_file) {
            (Some(value), _) => problems
                .check("--external-id", "<redacted>", external_id_ok(value))
                .map(|()| Some(ExternalId::Value(Secret::new(value.clone())))),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(value) => problems
                    .check(
                        "--external-id-file",
                        &path.display().to_string(),
                        external_id_ok(value.trim_end()),
                    )
                    .map(|()| Some(ExternalId::File(path.clone()))),
                Err(e) => {
                    problems.push(format!("--external-id-file {}: {e}", path.display()));
                    None
                }
            },
            (None, None) => Some(None),
        };
        let mut tags = Vec::new();
        for raw in &self.session_tags {
            if let Some(tag) = problems.parse("--session-tag", raw, session_tag) {
                tags.push(tag);
            }
        }
        if tags.len() > 50 {
            problems.push("--session-tag: STS accepts at most 50 session tags");
        }
        for key in &self.transitive_tag_keys {
            if !tags.iter().any(|(k, _)| k == key) {
                problems.push(format!(
                    "--transitive-tag-key {key:?}: not one of the --session-tag keys"
                ));
            }
        }
        let policy = match &self.session_policy_file {
            None => Some(None),
            Some(path) => problems
                .parse("--session-policy-file", &path.display().to_string(), |_| {
                    session_policy(path)
                })
                .map(Some),
        };
        if self.session_policy_arns.len() > 10 {
            problems.push("--session-policy-arn: STS accepts at most 10 managed session policies");
        }
        for arn in &self.session_policy_arns {
            if !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":policy/")) {
                problems.push(format!(
                    "--session-policy-arn {arn:?}: expected arn:aws:iam::ACCOUNT:policy/NAME"
                ));
            }
        }
        Some(Some(ChainOptions {
            session_name: chain_name?,
            duration_seconds: duration?,
            external_id: external_id?,
            tags,
            transitive_tag_keys: self.transitive_tag_keys.clone(),
            policy: policy?,
            policy_arns: self.session_policy_arns.clone(),
        }))
    }
}

/// STS: 2 to 1224 characters of `[\w+=,.@:/-]`.
fn external_id_ok(value: &str) -> Result<(), &'static str> {
    let ok = (2..=1224).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("an external id is 2 to 1224 characters of letters, digits and _+=,.@:/-")
    }
}

/// `KEY=VALUE`: key 1..128, value 0..256 characters (STS's limits).
fn session_tag(raw: &str) -> Result<(String, String), &'static str> {
    let (key, value) = raw.split_once('=').ok_or("expected KEY=VALUE")?;
    if key.is_empty() || key.len() > 128 || value.len() > 256 {
        return Err("tag keys are 1 to 128 characters, values at most 256");
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A JSON policy document, at most 2048 characters as STS requires.
fn session_policy(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("not JSON: {e}"))?;
    if text.len() > 2048 {
        return Err(format!(
            "{} characters; STS accepts at most 2048",
            text.len()
        ));
    }
    Ok(text)
}

/// Validated settings for talking to STS.
#[derive(Debug, Clone)]
pub struct StsConfig {
    pub refresh: RefreshSettings,
    pub sts: StsSettings,
}

impl StsConfig {
    /// `None` when anything is wrong; the problems are in `problems`.
    pub fn from_args(
        args: &StsArgs,
        env: env::Lookup<'_>,
        problems: &mut ConfigErrors,
    ) -> Option<Self> {
        Self::from_args_with_extra_chains(args, env, false, problems).map(|(config, _)| config)
    }

    /// [`StsConfig::from_args`] for `serve` with extra roles: also the chain options, which
    /// are validated when `extra_chained` (some `--extra-role NAME=ARN,chain`) even without
    /// --chain-role-arn.
    pub fn from_args_with_extra_chains(
        args: &StsArgs,
        env: env::Lookup<'_>,
        extra_chained: bool,
        problems: &mut ConfigErrors,
    ) -> Option<(Self, Option<ChainOptions>)> {
        let role_arn = match &args.role_arn {
            None => {
                problems.push("--role-arn (AWS_ROLE_ARN) is required");
                None
            }
            Some(arn) => problems.check("--role-arn", arn, arn.parse::<RoleArn>()),
        };
        let session_name = match &args.session_name {
            Some(name) => problems.check("--session-name", name, name.parse::<SessionName>()),
            None => Some(default_session_name(env)),
        };
        let region = args
            .region
            .clone()
            .or_else(|| env(env::DEFAULT_REGION))
            .filter(|r| !r.is_empty());
        let region = match region {
            Some(r) => problems.check("--region", &r, r.parse::<Region>()),
            // A local STS stand-in does not care which region is signed for.
            None if args.sts_endpoint.is_some() => Some("us-east-1".parse().expect("a region")),
            None => {
                problems.push("--region (AWS_REGION or AWS_DEFAULT_REGION) is required to pick the regional STS endpoint");
                None
            }
        };
        let endpoint = match &args.sts_endpoint {
            None => Some(None),
            Some(url) => problems
                .check("--sts-endpoint", url, validate_endpoint(url))
                .map(|()| Some(url.trim_end_matches('/').to_owned())),
        };
        let duration = problems.parse("--duration-seconds", &args.duration_seconds, |raw| {
            args::number_in(raw, 900, 43_200)
        });
        let timeout = problems.parse("--sts-timeout", &args.sts_timeout, args::duration);
        let chain_role = match &args.chain.chain_role_arn {
            None => Some(None),
            Some(arn) => problems
                .check("--chain-role-arn", arn, arn.parse::<RoleArn>())
                .map(Some),
        };
        let chain_options = args.chain.validate(
            session_name.as_ref(),
            args.chain.chain_role_arn.is_some() || extra_chained,
            problems,
        );
        let (chain_role, chain_options) = (chain_role?, chain_options?);
        let chain = chain_role.map(|arn| {
            chain_options
                .as_ref()
                .expect("validated with --chain-role-arn")
                .for_role(arn)
        });
        let config = StsConfig {
            refresh: RefreshSettings {
                role_arn: role_arn?,
                session_name: session_name?,
                duration_seconds: duration? as u32,
                token_file: args.token_file.clone(),
                attempt_timeout: timeout?,
                chain,
            },
            sts: StsSettings {
                region: region?,
                endpoint: endpoint?,
                connect_timeout: Duration::from_secs(3).min(timeout?),
                attempt_timeout: timeout?,
            },
        };
        Some((config, chain_options))
    }
}

/// Session name from the pod (downward API) or the host, made acceptable to STS.
pub fn default_session_name(env: env::Lookup<'_>) -> SessionName {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let raw = match (get(env::POD_NAMESPACE), get(env::POD_NAME)) {
        (Some(ns), Some(pod)) => format!("{ns}.{pod}"),
        (None, Some(pod)) => pod,
        _ => get(env::HOSTNAME).unwrap_or_else(|| "passport".into()),
    };
    SessionName::sanitize(&raw)
}

/// An STS endpoint: https anywhere, plain http only on loopback.
pub fn validate_endpoint(url: &str) -> Result<(), &'static str> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected http(s)://HOST[:PORT]")?;
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host_port.is_empty() {
        return Err("no host");
    }
    match scheme {
        "https" => Ok(()),
        "http" => {
            let host = if let Some(v6) = host_port.strip_prefix('[') {
                v6.split(']').next().unwrap_or_default()
            } else {
                host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(
                    "plain http is allowed only on loopback: the token would cross the network in clear text",
                )
            }
        }
        _ => Err("expected http(s)://HOST[:PORT]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn session_names_are_derived_from_the_pod_or_the_host() {
        let env = |k: &str| match k {
            "POD_NAMESPACE" => Some("payments".to_string()),
            "POD_NAME" => Some("api-7d9f8b6c5d-x2x9z".to_string()),
            _ => None,
        };
        assert_eq!(
            default_session_name(&env).as_str(),
            "payments.api-7d9f8b6c5d-x2x9z"
        );
        let host = |k: &str| (k == "HOSTNAME").then(|| "my host/1".to_string());
        assert_eq!(default_session_name(&host).as_str(), "my-host-1");
        assert_eq!(default_session_name(&no_env).as_str(), "passport");
    }

    #[test]
    fn endpoints() {
        assert!(validate_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(validate_endpoint("http://[::1]:5000").is_ok());
        assert!(validate_endpoint("http://localhost:5000").is_ok());
        assert!(validate_endpoint("https://sts.example.com").is_ok());
        assert!(validate_endpoint("http://10.0.0.1").is_err());
        assert!(validate_endpoint("ftp://127.0.0.1").is_err());
        assert!(validate_endpoint("https://").is_err());
    }

    fn chain(extra: &[&str]) -> Result<StsConfig, ConfigErrors> {
        use clap::Parser;
        let mut argv = vec![
            "passport",
            "serve",
            "--role-arn",
            "arn:aws:iam::111122223333:role/app",
        ];
        argv.extend_from_slice(&["--region", "us-east-1", "--auth-token-file", "a"]);
        argv.extend_from_slice(extra);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Serve(args) = cli.command else {
            panic!()
        };
        let mut problems = ConfigErrors::default();
        let config = StsConfig::from_args(&args.sts, &no_env, &mut problems);
        problems.into_result().map(|()| config.unwrap())
    }

    #[test]
    fn chain_flags_are_validated_together() {
        const READER: &str = "arn:aws:iam::444455556666:role/reader";
        let c = chain(&["--chain-role-arn", READER, "--session-tag", "team=payments"]).unwrap();
        let hop2 = c.refresh.chain.as_ref().unwrap();
        assert_eq!(hop2.role_arn.as_str(), READER);
        assert_eq!(hop2.duration_seconds, 3600);
        assert_eq!(c.refresh.served_role().as_str(), READER);
        assert_eq!(
            hop2.tags,
            vec![("team".to_string(), "payments".to_string())]
        );

        let err = chain(&[
            "--chain-role-arn",
            READER,
            "--chain-duration-seconds",
            "7200",
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("role chaining) at 3600 seconds"),
            "{err}"
        );

        let err = chain(&["--external-id", "abc", "--session-tag", "k=v"]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.to_string().contains("add --chain-role-arn"), "{err}");

        let err = chain(&[
            "--chain-role-arn",
            READER,
            "--external-id",
            "x",
            "--session-tag",
            "novalue",
            "--transitive-tag-key",
            "team",
            "--session-policy-arn",
            "arn:aws:s3:::bucket",
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        // The external id is a shared secret: never echoed.
        assert!(!err.to_string().contains("\"x\""), "{err}");
    }
}
