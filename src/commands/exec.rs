//! `passport exec -- CMD ARGS...`: serve on an ephemeral loopback port for one command.
//!
//! For local development, like `aws-vault exec`: the command sees only the container
//! endpoint (its URL, and the auth token both as a file and as a value, so SDKs back to 2017
//! work), with every variable that would take precedence over it in an SDK's credential
//! chain removed, and passport exits with the command's status.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use passport_core::server::ServerSettings;
use passport_core::sidecar::{Shutdown, Sidecar};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::sts_options::{StsArgs, StsConfig};
use crate::args::{self, ConfigErrors, EXIT_UNAVAILABLE};
use crate::env;

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

/// Validated settings for `exec`.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub sts: StsConfig,
    pub wait: Duration,
    pub command: Vec<OsString>,
}

impl ExecConfig {
    pub fn from_args(args: &ExecArgs, env: env::Lookup<'_>) -> Result<Self, ConfigErrors> {
        let mut problems = ConfigErrors::default();
        let sts = StsConfig::from_args(&args.sts, env, &mut problems);
        let wait = problems.parse("--wait", &args.wait, args::duration);
        if args.command.is_empty() {
            problems.push("a command to run is required after `--`");
        }
        problems.into_result()?;
        Ok(ExecConfig {
            sts: sts.expect("no problems"),
            wait: wait.expect("no problems"),
            command: args.command.clone(),
        })
    }
}

/// `passport exec`, from the parsed flags to the command's exit status.
pub fn main(args: ExecArgs, env: env::Lookup<'_>) -> ExitCode {
    match ExecConfig::from_args(&args, env) {
        Ok(config) => super::block_on(run(config)),
        Err(e) => super::usage(e),
    }
}

pub async fn run(config: ExecConfig) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("passport-exec-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            error!(error = %e, "cannot create a temporary directory for the auth token");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let token_file = dir.path().join("auth-token");
    let auth_token = passport_core::auth::generate();
    if let Err(e) = passport_core::auth::write_token_file(&token_file, &auth_token, 0o600) {
        error!(error = %e, "cannot write the auth token file");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    let token_value = auth_token.clone();
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        admin_listen: None,
        auth_token,
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        // exec exports only the container endpoint.
        imds: None,
        legacy: Default::default(),
    };
    let sidecar =
        match Sidecar::bind_sts(config.sts.refresh.clone(), settings, &config.sts.sts).await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot start");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
    let url = format!(
        "http://{}{}",
        sidecar.local_addr(),
        passport_core::server::container::PATH
    );
    let shared = sidecar.shared();
    let stop = CancellationToken::new();
    let running = tokio::spawn(sidecar.run(stop.clone(), Shutdown::PROMPT));

    if tokio::time::timeout(config.wait, shared.first_credentials())
        .await
        .is_err()
    {
        let why = shared.snapshot.load().unavailable_body.clone();
        error!(waited_ms = config.wait.as_millis() as u64, reason = %String::from_utf8_lossy(&why),
            "no credentials from STS; not running the command");
        stop.cancel();
        let _ = running.await;
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    info!(%url, "credentials ready; running the command");

    let mut command = tokio::process::Command::new(&config.command[0]);
    command.args(&config.command[1..]);
    for var in env::SHADOWING {
        command.env_remove(var);
    }
    // Every SDK reads the shared credentials file before the container endpoint, so keys in
    // its [default] profile would win; the file holds nothing else the command needs.
    command.env(env::SHARED_CREDENTIALS_FILE, "/dev/null");
    // Both the file (SDKs from late 2023 on) and the value (every SDK since 2017, which
    // knows only AWS_CONTAINER_AUTHORIZATION_TOKEN); SDKs that know both read the same token.
    command
        .env(env::CONTAINER_FULL_URI, &url)
        .env(env::CONTAINER_AUTH_TOKEN_FILE, &token_file)
        .env(env::CONTAINER_AUTH_TOKEN, token_value.expose());
    let region = config.sts.sts.region.as_str();
    for var in [env::REGION, env::DEFAULT_REGION] {
        if std::env::var_os(var).is_none() {
            command.env(var, region);
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            error!(command = %config.command[0].to_string_lossy(), error = %e, "cannot run the command");
            stop.cancel();
            let _ = running.await;
            return ExitCode::from(127);
        }
    };
    let status = wait_forwarding_signals(&mut child).await;
    stop.cancel();
    let _ = running.await;
    drop(dir);
    status
}

/// Wait for the child; pass SIGTERM/SIGINT/SIGHUP on to it rather than dying first (the
/// terminal already delivers Ctrl-C to the whole foreground group).
async fn wait_forwarding_signals(child: &mut tokio::process::Child) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        let forward = tokio::select! {
            status = child.wait() => return exit_code(status),
            _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
            _ = int.recv() => continue,
            _ = hup.recv() => nix::sys::signal::Signal::SIGHUP,
        };
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), forward);
        }
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
            (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
            _ => ExitCode::FAILURE,
        },
        Err(e) => {
            error!(error = %e, "waiting for the command failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    fn no_env(_: &str) -> Option<String> {
        None
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
