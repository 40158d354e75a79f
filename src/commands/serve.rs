//! `passport serve`: the sidecar's main job. Owns its flags, their validation into a
//! [`ServeConfig`], `--print-env`, and the run until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use passport_core::aws::{RoleArn, RoleName};
use passport_core::refresh::RefreshSettings;
use passport_core::schedule::{CLIENT_REFRESH_WINDOW, minimum_time_left};
use passport_core::secret::Secret;
use passport_core::server::imds::ImdsSettings;
use passport_core::server::{LegacySettings, ServerSettings};
use passport_core::sidecar::{ExtraRole, Shutdown, Sidecar};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Signals;
use super::sts_options::{StsArgs, StsConfig};
use crate::args::{self, ConfigErrors, EXIT_UNAVAILABLE};
use crate::compat::Compat;
use crate::env;

/// The credentials listener's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";
/// The admin listener's default address: the pod IP, so the kubelet can probe it.
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9912";

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
    /// Instead of generating the auth token, read it from this file, provisioned by someone
    /// else (a Kubernetes Secret key the application also gets as
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN); never written, re-read when it changes.
    #[arg(long, env = "PASSPORT_SHARED_AUTH_TOKEN_FILE")]
    pub shared_auth_token_file: Option<PathBuf>,
    /// Second listener with NO client authentication, serving only the credentials path
    /// (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI through a 169.254.170.2:80 redirect, or
    /// FULL_URI clients that send no token). Off by default.
    #[arg(long, env = "PASSPORT_RELATIVE_URI_LISTEN")]
    pub relative_uri_listen: Option<String>,
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
    /// Serve the IMDS-compatible endpoint under /latest/ (IMDSv2). Off by default: IMDS has
    /// no client authentication, so anything that reaches the port (any container of the
    /// pod, a port-forward) gets credentials; the container endpoint needs the auth token.
    #[arg(long, env = "PASSPORT_IMDS")]
    pub imds: bool,
    /// No IMDS endpoint: the default; kept for manifests that still set it.
    #[arg(long, env = "PASSPORT_DISABLE_IMDS")]
    pub disable_imds: bool,
    /// Serve IMDS and answer GETs without a session token (IMDSv1; implies --imds).
    #[arg(long, env = "PASSPORT_IMDS_ALLOW_V1")]
    pub imds_allow_v1: bool,
    /// Print the environment an application needs, as `export` lines, and exit.
    #[arg(long)]
    pub print_env: bool,
    /// Serve another role at /v1/credentials/NAME (repeatable): `NAME=ARN` by web identity
    /// with the same token, or `NAME=ARN,chain` by sts:AssumeRole with --role-arn's
    /// credentials (using the role-chaining options below). Each role refreshes on its own;
    /// /readyz waits for all of them. PASSPORT_EXTRA_ROLES takes them space-separated.
    #[arg(
        long = "extra-role",
        env = "PASSPORT_EXTRA_ROLES",
        value_delimiter = ' ',
        value_name = "NAME=ARN[,chain]"
    )]
    pub extra_roles: Vec<String>,
    /// With --print-env: the compatibility level whose variables to print.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Compat::Modern)]
    pub compat: Compat,
}

/// Validated settings for `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub sts: StsConfig,
    /// `--extra-role`s, validated, with their chain settings filled in.
    pub extra_roles: Vec<ExtraRole>,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub auth: AuthTokenSource,
    pub relative_uri_listen: Option<SocketAddr>,
    pub max_connections: usize,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    /// `None` with `--disable-imds`.
    pub imds: Option<ImdsSettings>,
}

/// Where the client auth token comes from.
#[derive(Debug, Clone)]
pub enum AuthTokenSource {
    /// Generated at start and written to `file` with `mode` (the default).
    Generated { file: PathBuf, mode: u32 },
    /// Provisioned by someone else in `file`; `token` is its content at start.
    Shared { file: PathBuf, token: Secret },
}

impl AuthTokenSource {
    /// The file the application reads (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).
    pub fn file(&self) -> &std::path::Path {
        match self {
            AuthTokenSource::Generated { file, .. } | AuthTokenSource::Shared { file, .. } => file,
        }
    }
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs, env: env::Lookup<'_>) -> Result<Self, ConfigErrors> {
        let mut problems = ConfigErrors::default();
        let extra_roles = extra_roles(&args.extra_roles, &mut problems);
        let extra_chained = extra_roles.iter().any(|r| r.chain);
        let sts =
            StsConfig::from_args_with_extra_chains(&args.sts, env, extra_chained, &mut problems);
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
            problems
                .check(
                    "--admin-listen",
                    &args.admin_listen,
                    args.admin_listen
                        .parse::<SocketAddr>()
                        .map_err(|_| "expected IP:PORT or `off`"),
                )
                .map(Some)
        };
        let given = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let auth_token_file = match (
            given(&args.auth_token_file),
            given(&args.shared_auth_token_file),
        ) {
            (Some(_), Some(_)) => {
                problems.push(
                    "--auth-token-file (PASSPORT_AUTH_TOKEN_FILE) and --shared-auth-token-file (PASSPORT_SHARED_AUTH_TOKEN_FILE) \
                     conflict: passport either generates the token or reads a shared one",
                );
                None
            }
            (Some(path), None) => Some(Err(path)),
            (None, Some(path)) => match passport_core::auth::read_shared(&path) {
                Ok(token) => Some(Ok((path, token))),
                Err(why) => {
                    problems.push(format!(
                        "--shared-auth-token-file {}: {why}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => {
                problems.push(
                    "--auth-token-file (PASSPORT_AUTH_TOKEN_FILE) is required: passport writes the client auth token there \
                     (or --shared-auth-token-file to read one provisioned by a Secret)",
                );
                None
            }
        };
        let relative_uri_listen = match &args.relative_uri_listen {
            None => Some(None),
            Some(raw) => match raw.parse::<SocketAddr>() {
                Ok(addr) if !(addr.ip().is_loopback() || args.allow_non_loopback) => {
                    problems.push(format!(
                        "--relative-uri-listen {addr}: not a loopback address; this listener has no client authentication \
                         (add --allow-non-loopback if that is really intended)"
                    ));
                    None
                }
                Ok(addr) if listen == Some(addr) => {
                    problems.push(format!(
                        "--relative-uri-listen {addr}: the same address as --listen; it needs its own port"
                    ));
                    None
                }
                Ok(addr) => Some(Some(addr)),
                Err(_) => {
                    problems.push(format!(
                        "--relative-uri-listen {raw:?}: expected IP:PORT, e.g. 127.0.0.1:{}",
                        crate::compat::RELATIVE_URI_PORT
                    ));
                    None
                }
            },
        };
        if args.compat != Compat::Modern && !args.print_env {
            problems.push(format!(
                "--compat {}: only with --print-env (a level is the pod's whole set-up: see `passport inject --compat`)",
                args.compat.name()
            ));
        }
        let mode = problems.parse(
            "--auth-token-file-mode",
            &args.auth_token_file_mode,
            file_mode,
        );
        let max_connections = problems.parse("--max-connections", &args.max_connections, |raw| {
            args::number_in(raw, 1, 1_000_000)
        });
        let drain_delay = problems.parse("--drain-delay", &args.drain_delay, args::duration);
        let shutdown_timeout =
            problems.parse("--shutdown-timeout", &args.shutdown_timeout, args::duration);
        let imds = imds_enabled(args, &mut problems);
        problems.into_result()?;
        let (sts, chain_options) = sts.expect("no problems");
        let extra_roles = extra_roles
            .into_iter()
            .map(|role| ExtraRole {
                refresh: if role.chain {
                    let options = chain_options.as_ref().expect("validated for chained roles");
                    RefreshSettings {
                        chain: Some(options.for_role(role.arn)),
                        ..sts.refresh.clone()
                    }
                } else {
                    RefreshSettings {
                        role_arn: role.arn,
                        chain: None,
                        ..sts.refresh.clone()
                    }
                },
                name: role.name,
            })
            .collect();
        let imds = imds.then(|| {
            ImdsSettings::new(
                sts.refresh.served_role(),
                &sts.sts.region,
                args.imds_allow_v1,
            )
        });
        Ok(ServeConfig {
            sts,
            extra_roles,
            listen: listen.expect("no problems"),
            admin_listen: admin_listen.expect("no problems"),
            auth: match auth_token_file.expect("no problems") {
                Err(file) => AuthTokenSource::Generated {
                    file,
                    mode: mode.expect("no problems"),
                },
                Ok((file, token)) => AuthTokenSource::Shared { file, token },
            },
            relative_uri_listen: relative_uri_listen.expect("no problems"),
            max_connections: max_connections.expect("no problems") as usize,
            drain_delay: drain_delay.expect("no problems"),
            shutdown_timeout: shutdown_timeout.expect("no problems"),
            imds,
        })
    }
}

/// Whether IMDS is served: `--imds` or `--imds-allow-v1`, and not `--disable-imds`.
fn imds_enabled(args: &ServeArgs, problems: &mut ConfigErrors) -> bool {
    if args.disable_imds && (args.imds || args.imds_allow_v1) {
        problems.push(
            "--disable-imds (PASSPORT_DISABLE_IMDS) contradicts --imds / --imds-allow-v1 \
             (IMDS is off unless one of those is given)",
        );
    }
    (args.imds || args.imds_allow_v1) && !args.disable_imds
}

/// One `--extra-role` (of `serve`, and of `inject`, which passes it on), parsed.
pub struct ExtraRoleArg {
    pub name: RoleName,
    pub arn: RoleArn,
    pub chain: bool,
}

impl std::fmt::Display for ExtraRoleArg {
    /// The `NAME=ARN[,chain]` form `--extra-role` and `PASSPORT_EXTRA_ROLES` take.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.arn)?;
        if self.chain {
            f.write_str(",chain")?;
        }
        Ok(())
    }
}

/// Every `--extra-role` (serve's, and inject's, which passes them on), parsed; bad ones and
/// repeated names are problems.
pub fn extra_roles(raws: &[String], problems: &mut ConfigErrors) -> Vec<ExtraRoleArg> {
    let roles: Vec<ExtraRoleArg> = raws
        .iter()
        .filter(|raw| !raw.is_empty())
        .filter_map(|raw| problems.parse("--extra-role", raw, extra_role))
        .collect();
    for (i, role) in roles.iter().enumerate() {
        if roles[..i].iter().any(|r| r.name == role.name) {
            problems.push(format!(
                "--extra-role {}: the name is given twice; each role needs its own",
                role.name
            ));
        }
    }
    roles
}

/// `NAME=ARN` or `NAME=ARN,chain`.
fn extra_role(raw: &str) -> Result<ExtraRoleArg, String> {
    const SHAPE: &str = "expected NAME=ARN or NAME=ARN,chain";
    let (name, rest) = raw.split_once('=').ok_or(SHAPE)?;
    let (arn, chain) = match rest.split_once(',') {
        None => (rest, false),
        Some((arn, "chain")) => (arn, true),
        Some((_, other)) => {
            return Err(format!("unknown option {other:?} after the ARN ({SHAPE})"));
        }
    };
    let name: RoleName = name
        .parse()
        .map_err(|why| format!("name {name:?}: {why}"))?;
    if name.is_default() {
        return Err(format!(
            "`{}` is --role-arn's own name, served at /v1/credentials",
            RoleName::DEFAULT
        ));
    }
    let arn = arn.parse().map_err(|why: &str| why.to_string())?;
    Ok(ExtraRoleArg { name, arn, chain })
}

/// Octal permission bits for a token file: owner-readable, never group/world-writable.
fn file_mode(raw: &str) -> Result<u32, &'static str> {
    match u32::from_str_radix(raw.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o400 != 0 && mode & 0o022 == 0 => Ok(mode),
        _ => Err(
            "expected octal permission bits, owner-readable, not group/world-writable (e.g. 0640)",
        ),
    }
}

/// What `serve --print-env` needs: where to connect, which token file the application
/// reads, and the level's extras; so it works in a shell that has none of the STS settings.
pub fn print_env_target(args: &ServeArgs) -> Result<PrintEnv, ConfigErrors> {
    let mut problems = ConfigErrors::default();
    let listen = problems.check(
        "--listen",
        &args.listen,
        args.listen
            .parse::<SocketAddr>()
            .map_err(|_| "expected IP:PORT"),
    );
    // Absolute, so the application finds it whatever its working directory.
    let file = args
        .auth_token_file
        .as_ref()
        .or(args.shared_auth_token_file.as_ref())
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    if file.is_none() {
        problems.push(
            "--auth-token-file (PASSPORT_AUTH_TOKEN_FILE) or --shared-auth-token-file (PASSPORT_SHARED_AUTH_TOKEN_FILE) \
             is required: the application reads the token there",
        );
    }
    let relative_uri_listen = match (&args.relative_uri_listen, args.compat) {
        (Some(raw), _) => problems.check(
            "--relative-uri-listen",
            raw,
            raw.parse::<SocketAddr>().map_err(|_| "expected IP:PORT"),
        ),
        (None, Compat::RelativeUri) => {
            problems.push(
                "--compat relative-uri needs --relative-uri-listen (PASSPORT_RELATIVE_URI_LISTEN): \
                 the unauthenticated listener the 169.254.170.2:80 redirect reaches",
            );
            None
        }
        (None, _) => None,
    };
    let imds = imds_enabled(args, &mut problems);
    if args.compat == Compat::Imds {
        if args.disable_imds {
            problems.push("--compat imds and --disable-imds contradict each other");
        } else if !args.imds_allow_v1 {
            problems.push(
                "--compat imds needs --imds-allow-v1 (PASSPORT_IMDS_ALLOW_V1=true): SDKs from before late 2019 \
                 speak only IMDSv1",
            );
        }
    }
    problems.into_result()?;
    Ok(PrintEnv {
        level: args.compat,
        listen: listen.expect("no problems"),
        token_file: file.expect("no problems"),
        relative_uri_listen,
        imds,
    })
}

/// Validated `serve --print-env` inputs; see [`crate::compat::env_lines`].
#[derive(Debug, Clone)]
pub struct PrintEnv {
    pub level: Compat,
    pub listen: SocketAddr,
    pub token_file: PathBuf,
    pub relative_uri_listen: Option<SocketAddr>,
    pub imds: bool,
}

impl PrintEnv {
    pub fn lines(&self) -> String {
        crate::compat::env_lines(&crate::compat::EnvTarget {
            level: self.level,
            listen: self.listen,
            token_file: &self.token_file,
            relative_uri_listen: self.relative_uri_listen,
            imds: self.imds,
        })
    }
}

/// `passport serve`, from the parsed flags to an exit status.
pub fn main(args: ServeArgs, env: env::Lookup<'_>) -> ExitCode {
    if args.print_env {
        return match print_env_target(&args) {
            Ok(target) => {
                print!("{}", target.lines());
                ExitCode::SUCCESS
            }
            Err(e) => super::usage(e),
        };
    }
    match ServeConfig::from_args(&args, env) {
        Ok(config) => super::block_on(run(config)),
        Err(e) => super::usage(e),
    }
}

pub async fn run(config: ServeConfig) -> ExitCode {
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let url = format!(
        "http://{}{}",
        config.listen,
        passport_core::server::container::PATH
    );
    warn_about(&config);

    let (auth_token, shared_auth_token_file) = match &config.auth {
        AuthTokenSource::Generated { file, mode } => {
            let token = passport_core::auth::generate();
            if let Err(e) = passport_core::auth::write_token_file(file, &token, *mode) {
                error!(path = %file.display(), error = %e, "cannot write the auth token file");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
            (token, None)
        }
        AuthTokenSource::Shared { file, token } => (token.clone(), Some(file.clone())),
    };
    let settings = ServerSettings {
        listen: config.listen,
        admin_listen: config.admin_listen,
        auth_token,
        max_connections: config.max_connections,
        header_read_timeout: std::time::Duration::from_secs(5),
        imds: config.imds.clone(),
        legacy: LegacySettings {
            relative_uri_listen: config.relative_uri_listen,
            ipv6_loopback: true,
            shared_auth_token_file,
        },
    };
    let sidecar = match Sidecar::bind_sts_roles(
        config.sts.refresh.clone(),
        config.extra_roles.clone(),
        settings,
        &config.sts.sts,
    )
    .await
    {
        Ok(sidecar) => sidecar,
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    info!(
        role_arn = %config.sts.refresh.role_arn,
        chain_role_arn = config.sts.refresh.chain.as_ref().map(|c| c.role_arn.to_string()),
        session_name = %config.sts.refresh.session_name,
        token_file = %config.sts.refresh.token_file.display(),
        region = %config.sts.sts.region,
        sts_endpoint = config.sts.sts.endpoint.as_deref().unwrap_or("regional"),
        url = %url,
        auth_token_file = %config.auth.file().display(),
        shared_auth_token = matches!(config.auth, AuthTokenSource::Shared { .. }),
        relative_uri_listen = ?config.relative_uri_listen,
        imds_v1 = config.imds.as_ref().is_some_and(|i| i.allow_v1),
        "passport serving"
    );
    for role in &config.extra_roles {
        info!(
            role = %role.name,
            role_arn = %role.refresh.role_arn,
            chain_role_arn = role.refresh.chain.as_ref().map(|c| c.role_arn.to_string()),
            url = %format!("{url}/{}", role.name),
            "serving an extra role"
        );
    }
    let stop = CancellationToken::new();
    let run = tokio::spawn(sidecar.run(
        stop.clone(),
        Shutdown {
            drain_delay: config.drain_delay,
            timeout: config.shutdown_timeout,
        },
    ));
    signals.wait().await;
    stop.cancel();
    let _ = run.await;
    ExitCode::SUCCESS
}

fn warn_about(config: &ServeConfig) {
    if !config.listen.ip().is_loopback() {
        warn!(listen = %config.listen, "credentials endpoint listens on a non-loopback address: anything that can reach it and knows the auth token gets credentials");
    }
    let duration = std::time::Duration::from_secs(config.sts.refresh.duration_seconds.into());
    let left = minimum_time_left(duration);
    if left < CLIENT_REFRESH_WINDOW {
        warn!(
            duration_seconds = config.sts.refresh.duration_seconds,
            min_seconds_left = left.as_secs(),
            "sessions this short leave clients under 15 minutes at times; botocore then refetches on every call"
        );
    }
    if !config.sts.refresh.token_file.exists() {
        warn!(token_file = %config.sts.refresh.token_file.display(), "token file does not exist yet; will keep retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

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

    const MINIMAL: [&str; 6] = [
        "--role-arn",
        ROLE,
        "--region",
        "eu-west-1",
        "--auth-token-file",
        "/tmp/a",
    ];

    #[test]
    fn valid_minimal_config() {
        let c = serve(&MINIMAL).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.sts.refresh.duration_seconds, 3600);
        assert_eq!(c.sts.sts.region.as_str(), "eu-west-1");
        assert_eq!(c.sts.sts.endpoint, None);
        assert_eq!(
            c.sts.refresh.token_file,
            PathBuf::from(super::super::sts_options::EKS_TOKEN_FILE)
        );
        assert!(matches!(
            c.auth,
            AuthTokenSource::Generated { mode: 0o640, .. }
        ));
        assert_eq!(c.relative_uri_listen, None);
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(c.imds, None, "IMDS only when asked for");
        let mut with_imds = MINIMAL.to_vec();
        with_imds.push("--imds");
        assert_eq!(
            serve(&with_imds).unwrap().imds,
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
        assert_eq!(with(&[]).imds, None, "off by default");
        assert_eq!(with(&["--disable-imds"]).imds, None);
        let v2 = with(&["--imds"]).imds.unwrap();
        assert!(!v2.allow_v1);
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
        assert_eq!(c.sts.sts.region.as_str(), "us-east-1");
        assert_eq!(c.sts.sts.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn non_loopback_listen_needs_the_opt_in() {
        let valid = |extra: &[&str]| {
            let mut args = vec!["--role-arn", ROLE, "--region", "us-east-1"];
            args.extend_from_slice(&["--auth-token-file", "a"]);
            args.extend_from_slice(extra);
            serve(&args)
        };
        assert!(valid(&["--listen", "0.0.0.0:9911"]).is_err());
        let c = valid(&["--listen", "0.0.0.0:9911", "--allow-non-loopback"]).unwrap();
        assert!(!c.listen.ip().is_loopback());
        let c = valid(&["--admin-listen", "off", "--listen", "[::1]:1"]).unwrap();
        assert_eq!(c.admin_listen, None);
    }

    fn print_env(args: &[&str]) -> Result<PrintEnv, ConfigErrors> {
        let mut full = vec!["passport", "serve", "--print-env"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!()
        };
        print_env_target(&serve)
    }

    const BASE: [&str; 4] = ["--role-arn", ROLE, "--region", "us-east-1"];

    fn with(extra: &[&str]) -> Result<ServeConfig, ConfigErrors> {
        let mut args = BASE.to_vec();
        args.extend_from_slice(extra);
        serve(&args)
    }

    #[test]
    fn shared_auth_token_file_is_read_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let token = "0123456789abcdef0123456789abcdef";
        std::fs::write(&path, token).unwrap();
        let c = with(&["--shared-auth-token-file", path.to_str().unwrap()]).unwrap();
        match &c.auth {
            AuthTokenSource::Shared { file, token: t } => {
                assert_eq!(file, &path);
                assert_eq!(t.expose(), token);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.auth.file(), path);
    }

    #[test]
    fn bad_shared_tokens_are_refused_at_start_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("short", "s3cr3t-but-short", "fewer than 32"),
            ("newline", "0123456789abcdef0123456789abcdef\n", "newline"),
            (
                "space",
                "0123456789abcdef 0123456789abcdef",
                "visible ASCII",
            ),
        ];
        for (name, content, why) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            let err = with(&["--shared-auth-token-file", path.to_str().unwrap()]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("--shared-auth-token-file") && text.contains(why),
                "{text}"
            );
            assert!(!text.contains(content.trim_end()), "token echoed: {text}");
        }
        let err = with(&["--shared-auth-token-file", "/nonexistent/token"]).unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }

    #[test]
    fn shared_and_generated_tokens_conflict_and_every_problem_is_listed() {
        let err = with(&[
            "--shared-auth-token-file",
            "/x",
            "--auth-token-file",
            "/y",
            "--relative-uri-listen",
            "0.0.0.0:9913",
            "--compat",
            "imds",
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert!(text.contains("conflict"), "{text}");
        assert!(
            text.contains("--relative-uri-listen 0.0.0.0:9913: not a loopback"),
            "{text}"
        );
        assert!(
            text.contains("--compat imds: only with --print-env"),
            "{text}"
        );
    }

    #[test]
    fn relative_uri_listener_is_loopback_and_its_own_port() {
        let c = with(&[
            "--auth-token-file",
            "a",
            "--relative-uri-listen",
            "127.0.0.1:9913",
        ])
        .unwrap();
        assert_eq!(
            c.relative_uri_listen,
            Some("127.0.0.1:9913".parse().unwrap())
        );
        let err = with(&[
            "--auth-token-file",
            "a",
            "--relative-uri-listen",
            "127.0.0.1:9911",
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("the same address as --listen"),
            "{err}"
        );
        let err = with(&["--auth-token-file", "a", "--relative-uri-listen", "nope"]).unwrap_err();
        assert!(err.to_string().contains("expected IP:PORT"), "{err}");
    }

    #[test]
    fn print_env_levels_need_their_pieces() {
        let ok = print_env(&["--auth-token-file", "/t", "--compat", "token-env"]).unwrap();
        assert_eq!(ok.level, Compat::TokenEnv);
        assert!(
            ok.lines()
                .contains("AWS_CONTAINER_AUTHORIZATION_TOKEN=\"$(cat /t)\"")
        );
        let shared =
            print_env(&["--shared-auth-token-file", "/s", "--compat", "token-env"]).unwrap();
        assert_eq!(shared.token_file, PathBuf::from("/s"));
        let err = print_env(&["--auth-token-file", "/t", "--compat", "relative-uri"]).unwrap_err();
        assert!(
            err.to_string().contains("needs --relative-uri-listen"),
            "{err}"
        );
        let ok = print_env(&[
            "--auth-token-file",
            "/t",
            "--compat",
            "relative-uri",
            "--relative-uri-listen",
            "127.0.0.1:9913",
        ])
        .unwrap();
        assert!(
            ok.lines()
                .contains("export AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v1/credentials\n")
        );
        let err = print_env(&["--auth-token-file", "/t", "--compat", "imds"]).unwrap_err();
        assert!(err.to_string().contains("needs --imds-allow-v1"), "{err}");
        let ok = print_env(&[
            "--auth-token-file",
            "/t",
            "--compat",
            "imds",
            "--imds-allow-v1",
        ])
        .unwrap();
        assert!(!ok.lines().contains("export AWS_CONTAINER_"));
        let modern = print_env(&["--auth-token-file", "/t"]).unwrap();
        assert_eq!(modern.level, Compat::Modern);
    }

    fn with_roles(extra: &[&str]) -> Result<ServeConfig, ConfigErrors> {
        let mut args = vec!["--auth-token-file", "/tmp/passport-test-token"];
        args.extend_from_slice(extra);
        with(&args)
    }

    #[test]
    fn extra_roles_by_web_identity_or_chained_with_the_chain_options() {
        let c = with_roles(&[
            "--extra-role",
            "reports=arn:aws:iam::111122223333:role/reports",
            "--extra-role",
            "audit=arn:aws:iam::444455556666:role/audit,chain",
            "--chain-duration-seconds",
            "1800",
        ])
        .unwrap();
        assert!(
            c.sts.refresh.chain.is_none(),
            "the default role is not chained"
        );
        let [reports, audit] = &c.extra_roles[..] else {
            panic!("{:?}", c.extra_roles)
        };
        assert_eq!(reports.name.as_str(), "reports");
        assert_eq!(
            reports.refresh.role_arn.as_str(),
            "arn:aws:iam::111122223333:role/reports"
        );
        assert!(reports.refresh.chain.is_none());
        assert_eq!(
            audit.refresh.role_arn, c.sts.refresh.role_arn,
            "hop 1 is --role-arn"
        );
        let hop2 = audit.refresh.chain.as_ref().unwrap();
        assert_eq!(
            hop2.role_arn.as_str(),
            "arn:aws:iam::444455556666:role/audit"
        );
        assert_eq!(hop2.duration_seconds, 1800);
    }

    #[test]
    fn extra_roles_split_on_spaces_as_in_passport_extra_roles() {
        // clap applies the same delimiter to PASSPORT_EXTRA_ROLES as to a flag value.
        let c = with_roles(&[
            "--extra-role",
            "a=arn:aws:iam::111122223333:role/a b=arn:aws:iam::111122223333:role/b,chain",
        ])
        .unwrap();
        let names: Vec<&str> = c.extra_roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn bad_extra_roles_are_all_reported() {
        let err = with_roles(&[
            "--extra-role",
            "Reports=arn:aws:iam::111122223333:role/r",
            "--extra-role",
            "default=arn:aws:iam::111122223333:role/r",
            "--extra-role",
            "x=not-an-arn",
            "--extra-role",
            "y=arn:aws:iam::111122223333:role/y,chian",
            "--extra-role",
            "noequals",
            "--extra-role",
            "z=arn:aws:iam::111122223333:role/z",
            "--extra-role",
            "z=arn:aws:iam::111122223333:role/z2",
        ])
        .unwrap_err()
        .to_string();
        for expected in [
            "name \"Reports\"",
            "`default` is --role-arn's own name",
            "--extra-role \"x=not-an-arn\"",
            "unknown option \"chian\"",
            "--extra-role \"noequals\": expected NAME=ARN",
            "--extra-role z: the name is given twice",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from:\n{err}");
        }
    }

    #[test]
    fn chain_options_without_any_chained_role_are_refused() {
        let err = with_roles(&[
            "--extra-role",
            "reports=arn:aws:iam::111122223333:role/reports",
            "--session-tag",
            "team=a",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--session-tag applies to chained roles"),
            "{err}"
        );
        with_roles(&[
            "--extra-role",
            "reports=arn:aws:iam::111122223333:role/reports,chain",
            "--session-tag",
            "team=a",
        ])
        .unwrap();
    }
}
