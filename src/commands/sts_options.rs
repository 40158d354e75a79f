//! The options `serve` and `exec` share: which role, which token, which STS. Parsed into
//! core types once; every problem is collected, none stops the others being found.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use passport_core::aws::{Region, RoleArn, SessionName};
use passport_core::refresh::RefreshSettings;
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
        Some(StsConfig {
            refresh: RefreshSettings {
                role_arn: role_arn?,
                session_name: session_name?,
                duration_seconds: duration? as u32,
                token_file: args.token_file.clone(),
                attempt_timeout: timeout?,
            },
            sts: StsSettings {
                region: region?,
                endpoint: endpoint?,
                connect_timeout: Duration::from_secs(3).min(timeout?),
                attempt_timeout: timeout?,
            },
        })
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
}
