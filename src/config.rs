//! Command line and configuration, in two stages: clap parses raw flags (each also read from
//! an environment variable), then `*Config::from_args` validates them into typed settings,
//! collecting every problem so a bad invocation is reported once, completely (exit 64).
//!
//! Environment beyond the flags (`AWS_DEFAULT_REGION`, `POD_NAME`, `POD_NAMESPACE`,
//! `HOSTNAME`) is read through a lookup function, so tests never touch the process
//! environment.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::refresh::RefreshSettings;
use crate::server::imds::ImdsSettings;
use crate::sts::StsSettings;

/// Where EKS projects the service-account token for IRSA.
pub const EKS_TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
/// The credentials listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";
/// The admin listener's default address: the pod IP, so the kubelet can probe it.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9912";

#[derive(Debug, Parser)]
#[command(
    name = "passport",
    version,
    about = "Serve IRSA web-identity credentials to any AWS SDK over the container and IMDS endpoints"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exchange the pod's web-identity token with STS and serve the credentials on localhost.
    Serve(ServeArgs),
    /// Run a command with credentials from passport (local development, like `aws-vault exec`).
    Exec(ExecArgs),
    /// Validate the IRSA setup as an application sees it, and say what is wrong.
    Check(crate::check::CheckArgs),
    /// Print the IAM role trust policy that lets exactly one service account assume the role.
    TrustPolicy(crate::trust::TrustPolicyArgs),
    /// Add the passport sidecar to Kubernetes workloads: YAML in (file or stdin), YAML out.
    Inject(crate::inject::InjectArgs),
    /// The whole IRSA path on this machine: issuer, STS emulator, rotating token, sidecar, report.
    Demo(crate::commands::demo::DemoArgs),
    /// Run a local OIDC issuer and STS emulator on loopback (no AWS account needed).
    Emulator(crate::emulator::cli::EmulatorArgs),
    /// Service-account tokens, minted like the kubelet projects them.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load-test a credentials endpoint (passport's or anyone's).
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Simulate a fleet's STS refresh schedule on virtual time.
    SimulateFleet(crate::fleet::SimulateFleetArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a projected-style service-account token into a file (optionally keep rotating it).
    Mint(crate::emulator::cli::TokenMintArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, global = true, env = "PASSPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax (e.g. `info`, `passport=debug`).
    #[arg(long, global = true, env = "PASSPORT_LOG", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How to obtain credentials: shared by `serve` and `exec`.
#[derive(Debug, Clone, Args)]
pub struct StsArgs {
    /// ARN of the IAM role to assume.
    #[arg(long, env = "AWS_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// The web-identity token (JWT) file, re-read for every exchange.
    #[arg(long, env = "AWS_WEB_IDENTITY_TOKEN_FILE", default_value = EKS_TOKEN_FILE)]
    pub token_file: PathBuf,
    /// Role session name, shown in CloudTrail [default: NAMESPACE.POD from the downward API, else the host name].
    #[arg(long, env = "AWS_ROLE_SESSION_NAME")]
    pub session_name: Option<String>,
    /// AWS region, for the regional STS endpoint (falls back to AWS_DEFAULT_REGION).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// STS endpoint override, e.g. a local emulator (`http://` only on loopback).
    #[arg(long, env = "AWS_ENDPOINT_URL_STS")]
    pub sts_endpoint: Option<String>,
    /// Session duration requested from STS, 900..43200 seconds.
    #[arg(long, env = "PASSPORT_DURATION_SECONDS", default_value = "3600")]
    pub duration_seconds: String,
    /// Upper bound on one STS call.
    #[arg(long, env = "PASSPORT_STS_TIMEOUT", default_value = "10s")]
    pub sts_timeout: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub sts: StsArgs,
    /// Address for the credentials endpoints (container and IMDS).
    #[arg(long, env = "PASSPORT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Allow `--listen` on a non-loopback address (credentials become reachable from the network).
    #[arg(long, env = "PASSPORT_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// File to write the client auth token to; give the same path to the application as
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
    #[arg(long, env = "PASSPORT_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Permission bits of the auth token file (octal).
    #[arg(long, env = "PASSPORT_AUTH_TOKEN_FILE_MODE", default_value = "0640")]
    pub auth_token_file_mode: String,
    /// Address for /healthz, /readyz and /metrics, or `off`.
    #[arg(long, env = "PASSPORT_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN)]
    pub admin_listen: String,
    /// Open connections allowed per listener.
    #[arg(long, env = "PASSPORT_MAX_CONNECTIONS", default_value = "2048")]
    pub max_connections: String,
    /// After SIGTERM, keep serving this long (the application may still be shutting down).
    #[arg(long, env = "PASSPORT_DRAIN_DELAY", default_value = "5s")]
    pub drain_delay: String,
    /// After the drain delay, wait this long for in-flight requests.
    #[arg(long, env = "PASSPORT_SHUTDOWN_TIMEOUT", default_value = "5s")]
    pub shutdown_timeout: String,
    /// Do not serve the IMDS-compatible endpoint under /latest/ (it is on by default).
    #[arg(long, env = "PASSPORT_DISABLE_IMDS")]
    pub disable_imds: bool,
    /// Answer IMDS GETs without a session token (IMDSv1). Off by default: v2 only.
    #[arg(long, env = "PASSPORT_IMDS_ALLOW_V1")]
    pub imds_allow_v1: bool,
    /// Print the environment an application needs, as `export` lines, and exit.
    #[arg(long)]
    pub print_env: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub sts: StsArgs,
    /// How long to wait for the first credentials before giving up.
    #[arg(long, env = "PASSPORT_EXEC_WAIT", default_value = "30s")]
    pub wait: String,
    /// The command to run, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Every problem found in the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Validated settings for talking to STS.
#[derive(Debug, Clone)]
pub struct StsConfig {
    pub refresh: RefreshSettings,
    pub sts: StsSettings,
}

/// Validated settings for `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub sts: StsConfig,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub auth_token_file: PathBuf,
    pub auth_token_file_mode: u32,
    pub max_connections: usize,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    /// `None` with `--disable-imds`.
    pub imds: Option<ImdsSettings>,
}

/// Validated settings for `exec`.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub sts: StsConfig,
    pub wait: Duration,
    pub command: Vec<OsString>,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl StsConfig {
    fn from_args(args: &StsArgs, env: Env<'_>, problems: &mut Vec<String>) -> Option<Self> {
        let role_arn = match &args.role_arn {
            None => {
                problems.push("--role-arn (AWS_ROLE_ARN) is required".into());
                None
            }
            Some(arn) => match validate_role_arn(arn) {
                Ok(()) => Some(arn.clone()),
                Err(why) => {
                    problems.push(format!("--role-arn {arn:?}: {why}"));
                    None
                }
            },
        };
        let session_name = match &args.session_name {
            Some(name) => match validate_session_name(name) {
                Ok(()) => Some(name.clone()),
                Err(why) => {
                    problems.push(format!("--session-name {name:?}: {why}"));
                    None
                }
            },
            None => Some(default_session_name(env)),
        };
        let region = args
            .region
            .clone()
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .filter(|r| !r.is_empty());
        let region = match region {
            Some(r)
                if r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Some(r)
            }
            Some(r) => {
                problems.push(format!("--region {r:?}: not a region name"));
                None
            }
            // A local STS stand-in does not care which region is signed for.
            None if args.sts_endpoint.is_some() => Some("us-east-1".into()),
            None => {
                problems.push("--region (AWS_REGION or AWS_DEFAULT_REGION) is required to pick the regional STS endpoint".into());
                None
            }
        };
        let endpoint = match &args.sts_endpoint {
            None => Some(None),
            Some(url) => match validate_endpoint(url) {
                Ok(()) => Some(Some(url.trim_end_matches('/').to_owned())),
                Err(why) => {
                    problems.push(format!("--sts-endpoint {url:?}: {why}"));
                    None
                }
            },
        };
        let duration = parse_in_range(
            &args.duration_seconds,
            900,
            43_200,
            "--duration-seconds",
            problems,
        );
        let timeout = parse_duration(&args.sts_timeout, "--sts-timeout", problems);
        let (role_arn, session_name, region, endpoint, duration, timeout) = (
            role_arn?,
            session_name?,
            region?,
            endpoint?,
            duration?,
            timeout?,
        );
        Some(StsConfig {
            refresh: RefreshSettings {
                role_arn,
                session_name,
                duration_seconds: duration as u32,
                token_file: args.token_file.clone(),
                attempt_timeout: timeout,
            },
            sts: StsSettings {
                region,
                endpoint,
                connect_timeout: Duration::from_secs(3).min(timeout),
                attempt_timeout: timeout,
            },
        })
    }
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs, env: Env<'_>) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        let sts = StsConfig::from_args(&args.sts, env, &mut problems);
        let listen = match args.listen.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() || args.allow_non_loopback => Some(addr),
            Ok(addr) => {
                problems.push(format!(
                    "--listen {addr}: not a loopback address; credentials would be reachable from the network \
                     (add --allow-non-loopback if that is really intended)"
                ));
                None
            }
            Err(_) => {
                problems.push(format!(
                    "--listen {:?}: expected IP:PORT, e.g. {DEFAULT_LISTEN}",
                    args.listen
                ));
                None
            }
        };
        let admin_listen = if args.admin_listen.eq_ignore_ascii_case("off") {
            Some(None)
        } else {
            match args.admin_listen.parse::<SocketAddr>() {
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    problems.push(format!(
                        "--admin-listen {:?}: expected IP:PORT or `off`",
                        args.admin_listen
                    ));
                    None
                }
            }
        };
        let auth_token_file = match &args.auth_token_file {
            Some(path) if !path.as_os_str().is_empty() => Some(path.clone()),
            _ => {
                problems.push(
                    "--auth-token-file (PASSPORT_AUTH_TOKEN_FILE) is required: passport writes the client auth token there"
                        .into(),
                );
                None
            }
        };
        let mode = match u32::from_str_radix(args.auth_token_file_mode.trim_start_matches("0o"), 8)
        {
            Ok(mode) if mode <= 0o777 && mode & 0o400 != 0 && mode & 0o022 == 0 => Some(mode),
            _ => {
                problems.push(format!(
                    "--auth-token-file-mode {:?}: expected octal permission bits, owner-readable, not group/world-writable (e.g. 0640)",
                    args.auth_token_file_mode
                ));
                None
            }
        };
        let max_connections = parse_in_range(
            &args.max_connections,
            1,
            1_000_000,
            "--max-connections",
            &mut problems,
        );
        let drain_delay = parse_duration(&args.drain_delay, "--drain-delay", &mut problems);
        let shutdown_timeout =
            parse_duration(&args.shutdown_timeout, "--shutdown-timeout", &mut problems);
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        let sts = sts.expect("no problems");
        let imds = if args.disable_imds {
            None
        } else {
            // The role ARN is validated above, so this cannot fail.
            ImdsSettings::from_role_arn(&sts.refresh.role_arn, &sts.sts.region, args.imds_allow_v1)
        };
        Ok(ServeConfig {
            sts,
            listen: listen.expect("no problems"),
            admin_listen: admin_listen.expect("no problems"),
            auth_token_file: auth_token_file.expect("no problems"),
            auth_token_file_mode: mode.expect("no problems"),
            max_connections: max_connections.expect("no problems") as usize,
            drain_delay: drain_delay.expect("no problems"),
            shutdown_timeout: shutdown_timeout.expect("no problems"),
            imds,
        })
    }
}

/// What `serve --print-env` needs: only where to connect and which token file to read,
/// so it works in a shell that has none of the STS settings.
pub fn print_env_target(args: &ServeArgs) -> Result<(SocketAddr, PathBuf), ConfigErrors> {
    let mut problems = Vec::new();
    let listen = args.listen.parse::<SocketAddr>().map_err(|_| {
        problems.push(format!(
            "--listen {:?}: expected IP:PORT, e.g. {DEFAULT_LISTEN}",
            args.listen
        ));
    });
    // Absolute, so the application finds it whatever its working directory.
    let file = args
        .auth_token_file
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    if file.is_none() {
        problems.push("--auth-token-file (PASSPORT_AUTH_TOKEN_FILE) is required: the application reads the token there".into());
    }
    match (listen, file) {
        (Ok(listen), Some(file)) => Ok((listen, file)),
        _ => Err(ConfigErrors(problems)),
    }
}

impl ExecConfig {
    pub fn from_args(args: &ExecArgs, env: Env<'_>) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        let sts = StsConfig::from_args(&args.sts, env, &mut problems);
        let wait = parse_duration(&args.wait, "--wait", &mut problems);
        if args.command.is_empty() {
            problems.push("a command to run is required after `--`".into());
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(ExecConfig {
            sts: sts.expect("no problems"),
            wait: wait.expect("no problems"),
            command: args.command.clone(),
        })
    }
}

fn parse_in_range(
    raw: &str,
    min: u64,
    max: u64,
    flag: &str,
    problems: &mut Vec<String>,
) -> Option<u64> {
    match raw.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            problems.push(format!(
                "{flag} {raw:?}: expected a whole number from {min} to {max}"
            ));
            None
        }
    }
}

fn parse_duration(raw: &str, flag: &str, problems: &mut Vec<String>) -> Option<Duration> {
    // A bare number means seconds.
    let parsed = match raw.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(raw.trim()),
    };
    match parsed {
        Ok(d) if d <= Duration::from_secs(24 * 3600) => Some(d),
        _ => {
            problems.push(format!(
                "{flag} {raw:?}: expected a duration such as 5s, 500ms or 2m (at most 24h)"
            ));
            None
        }
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn validate_role_arn(arn: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err("expected arn:aws:iam::ACCOUNT_ID:role/NAME");
    };
    if prefix != "arn" || !partition.starts_with("aws") || service != "iam" || !region.is_empty() {
        return Err("expected arn:aws:iam::ACCOUNT_ID:role/NAME");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the account id must be 12 digits");
    }
    let Some(name) = resource.strip_prefix("role/") else {
        return Err("not a role ARN (the resource must start with role/)");
    };
    let name = name.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err("the role name must be 1 to 64 characters");
    }
    if !(20..=2048).contains(&arn.len()) {
        return Err("STS accepts role ARNs of 20 to 2048 characters");
    }
    Ok(())
}

fn session_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// STS's rule for `RoleSessionName`: 2 to 64 characters of `[\w+=,.@-]`.
pub fn validate_session_name(name: &str) -> Result<(), &'static str> {
    if !(2..=64).contains(&name.len()) {
        return Err("must be 2 to 64 characters");
    }
    if !name.chars().all(session_char_ok) {
        return Err("may contain only letters, digits and _+=,.@-");
    }
    Ok(())
}

/// Session name from the pod (downward API) or the host, made acceptable to STS.
pub fn default_session_name(env: Env<'_>) -> String {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let raw = match (get("POD_NAMESPACE"), get("POD_NAME")) {
        (Some(ns), Some(pod)) => format!("{ns}.{pod}"),
        (None, Some(pod)) => pod,
        _ => get("HOSTNAME").unwrap_or_else(|| "passport".into()),
    };
    sanitize_session_name(&raw)
}

/// Replace characters STS refuses with `-`; shorten names over 64 characters keeping the
/// start and a hash of the whole, so distinct long pod names stay distinct.
pub fn sanitize_session_name(raw: &str) -> String {
    let mut name: String = raw
        .trim()
        .chars()
        .map(|c| if session_char_ok(c) { c } else { '-' })
        .collect();
    if name.len() > 64 {
        // FNV-1a: stable across builds and platforms, no dependency needed.
        let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        name.truncate(55);
        name = format!("{name}-{:08x}", hash as u32);
    }
    match name.len() {
        0 => "passport".into(),
        1 => format!("passport-{name}"),
        _ => name,
    }
}

fn validate_endpoint(url: &str) -> Result<(), &'static str> {
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

    fn serve(args: &[&str]) -> Result<ServeConfig, ConfigErrors> {
        let mut full = vec!["passport", "serve"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!()
        };
        ServeConfig::from_args(&serve, &no_env)
    }

    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    #[test]
    fn valid_minimal_config() {
        let c = serve(&[
            "--role-arn",
            ROLE,
            "--region",
            "eu-west-1",
            "--auth-token-file",
            "/tmp/a",
        ])
        .unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.sts.refresh.duration_seconds, 3600);
        assert_eq!(c.sts.sts.region, "eu-west-1");
        assert_eq!(c.sts.sts.endpoint, None);
        assert_eq!(c.sts.refresh.token_file, PathBuf::from(EKS_TOKEN_FILE));
        assert_eq!(c.auth_token_file_mode, 0o640);
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(
            c.imds,
            Some(ImdsSettings {
                allow_v1: false,
                role_name: "app".into(),
                region: "eu-west-1".into(),
                account_id: "111122223333".into(),
            })
        );
    }

    #[test]
    fn imds_flags() {
        let base = [
            "--role-arn",
            "arn:aws:iam::111122223333:role/team/app",
            "--region",
            "us-west-2",
            "--auth-token-file",
            "/tmp/a",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            serve(&args).unwrap()
        };
        assert_eq!(with(&["--disable-imds"]).imds, None);
        let imds = with(&["--imds-allow-v1"]).imds.unwrap();
        assert!(imds.allow_v1);
        assert_eq!(imds.role_name, "app");
        assert_eq!(imds.region, "us-west-2");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = serve(&[
            "--role-arn",
            "arn:aws:iam::123:user/bob",
            "--duration-seconds",
            "60",
            "--listen",
            "0.0.0.0:80",
            "--admin-listen",
            "nope",
            "--sts-endpoint",
            "http://sts.example.com",
            "--session-name",
            "a/b",
            "--auth-token-file-mode",
            "0666",
            "--drain-delay",
            "soon",
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 9, "{text}");
        for needle in [
            "--role-arn",
            "--duration-seconds",
            "--listen",
            "--admin-listen",
            "--sts-endpoint",
            "--session-name",
            "--auth-token-file ",
            "--auth-token-file-mode",
            "--drain-delay",
        ] {
            assert!(text.contains(needle), "missing {needle}: {text}");
        }
    }

    #[test]
    fn missing_role_and_region_are_reported() {
        let err = serve(&["--auth-token-file", "/tmp/a"]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn endpoint_override_implies_a_region_and_allows_loopback_http() {
        let c = serve(&[
            "--role-arn",
            ROLE,
            "--sts-endpoint",
            "http://127.0.0.1:5000/",
            "--auth-token-file",
            "a",
        ])
        .unwrap();
        assert_eq!(c.sts.sts.region, "us-east-1");
        assert_eq!(c.sts.sts.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(validate_endpoint("http://[::1]:5000").is_ok());
        assert!(validate_endpoint("http://localhost:5000").is_ok());
        assert!(validate_endpoint("https://sts.example.com").is_ok());
        assert!(validate_endpoint("http://10.0.0.1").is_err());
        assert!(validate_endpoint("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn non_loopback_listen_needs_the_opt_in() {
        let c = serve(&[
            "--role-arn",
            ROLE,
            "--region",
            "us-east-1",
            "--auth-token-file",
            "a",
            "--listen",
            "0.0.0.0:9911",
            "--allow-non-loopback",
        ])
        .unwrap();
        assert!(!c.listen.ip().is_loopback());
        let c = serve(&[
            "--role-arn",
            ROLE,
            "--region",
            "us-east-1",
            "--auth-token-file",
            "a",
            "--admin-listen",
            "off",
            "--listen",
            "[::1]:1",
        ])
        .unwrap();
        assert_eq!(c.admin_listen, None);
    }

    #[test]
    fn role_arns() {
        assert!(validate_role_arn(ROLE).is_ok());
        assert!(validate_role_arn("arn:aws:iam::111122223333:role/path/to/app").is_ok());
        assert!(validate_role_arn("arn:aws-cn:iam::111122223333:role/app").is_ok());
        for bad in [
            "",
            "app",
            "arn:aws:iam::1111:role/app",
            "arn:aws:iam::111122223333:user/app",
            "arn:aws:s3::111122223333:role/app",
            "arn:aws:iam:us-east-1:111122223333:role/app",
            "arn:aws:iam::111122223333:role/",
        ] {
            assert!(validate_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names_are_derived_and_sanitised() {
        let env = |k: &str| match k {
            "POD_NAMESPACE" => Some("payments".to_string()),
            "POD_NAME" => Some("api-7d9f8b6c5d-x2x9z".to_string()),
            _ => None,
        };
        assert_eq!(default_session_name(&env), "payments.api-7d9f8b6c5d-x2x9z");
        let host = |k: &str| (k == "HOSTNAME").then(|| "my host/1".to_string());
        assert_eq!(default_session_name(&host), "my-host-1");
        assert_eq!(default_session_name(&no_env), "passport");
        assert_eq!(sanitize_session_name("x"), "passport-x");
        assert_eq!(sanitize_session_name("ok+=,.@-_Z9"), "ok+=,.@-_Z9");
        assert_eq!(sanitize_session_name("ünï/côde"), "-n--c-de");

        let long_a = format!("ns.{}", "a".repeat(100));
        let long_b = format!("ns.{}b", "a".repeat(99));
        let (a, b) = (
            sanitize_session_name(&long_a),
            sanitize_session_name(&long_b),
        );
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(validate_session_name(&a).is_ok());
        assert_eq!(a, sanitize_session_name(&long_a), "stable");
    }

    #[test]
    fn session_name_validation() {
        assert!(validate_session_name("ab").is_ok());
        assert!(validate_session_name("a").is_err());
        assert!(validate_session_name(&"a".repeat(65)).is_err());
        assert!(validate_session_name("a b").is_err());
    }

    #[test]
    fn exec_requires_a_command() {
        assert!(Cli::try_parse_from(["passport", "exec", "--role-arn", ROLE]).is_err());
        let cli = Cli::try_parse_from([
            "passport",
            "exec",
            "--role-arn",
            ROLE,
            "--region",
            "us-east-1",
            "--",
            "aws",
            "--version",
        ])
        .unwrap();
        let Command::Exec(args) = cli.command else {
            panic!()
        };
        let c = ExecConfig::from_args(&args, &no_env).unwrap();
        assert_eq!(
            c.command,
            vec![OsString::from("aws"), OsString::from("--version")]
        );
    }
}
